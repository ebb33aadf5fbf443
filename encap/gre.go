// Package encap is mctun's tunnel format and the socket that carries it.
//
// A tunnel packet is GRE-in-UDP (RFC 8086): the UDP payload is a GRE header (RFC 2784) with the
// key and sequence-number extensions of RFC 2890, followed by the inner packet, an IPv4
// multicast packet exactly as the source's application sent it:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|0|0|1|1|        reserved0        | ver |   protocol type 0x0800  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 key (mctun network id, configurable)            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        sequence number (per source and group, from 0)           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                original IPv4 packet, byte for byte              |
//
// Because this is the standard encapsulation on the IANA port 4754, tshark decodes it as GRE
// with the inner packet visible, without a plugin.
package encap

import (
	"encoding/binary"
	"errors"
)

// HeaderLen is the length of the GRE header mctun writes: flags and protocol, key, sequence.
const HeaderLen = 12

// Headroom is how many bytes a caller reserves in front of an inner packet so that
// Encapsulate, or Seal in the authenticated form, writes the headers in place and the inner
// packet is never copied.
const Headroom = HeaderLen + AuthHeaderLen

// greFlagsKS is the first GRE word's flag half with K (key present) and S (sequence number
// present) set; C, R, s, recursion, flags and version are all zero.
const greFlagsKS = 0x3000

// ethertypeIPv4 is the GRE protocol type of an IPv4 payload.
const ethertypeIPv4 = 0x0800

// Errors ParseHeader returns, one per reason a tunnel packet is refused.
var (
	ErrTruncated = errors.New("tunnel packet shorter than its GRE header")
	ErrFlags     = errors.New("GRE flags or version other than key and sequence number")
	ErrProtocol  = errors.New("GRE protocol type is not IPv4")
)

// Header is the content of a tunnel packet's GRE header.
type Header struct {
	Key uint32 // the mctun network id
	Seq uint32 // per source and group, from 0
}

// PutHeader writes h as a GRE header into b[:HeaderLen].
func PutHeader(b []byte, h Header) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint16(b[0:], greFlagsKS)
	binary.BigEndian.PutUint16(b[2:], ethertypeIPv4)
	binary.BigEndian.PutUint32(b[4:], h.Key)
	binary.BigEndian.PutUint32(b[8:], h.Seq)
}

// Encapsulate turns the inner packet at buf[Headroom:Headroom+n] into a tunnel packet by
// writing the header in the headroom in front of it, and returns the tunnel packet.
func Encapsulate(buf []byte, n int, h Header) []byte {
	PutHeader(buf[Headroom-HeaderLen:], h)
	return buf[Headroom-HeaderLen : Headroom+n]
}

// ParseHeader checks a tunnel packet's GRE header and returns it with the inner packet, which
// aliases b. It accepts exactly the form PutHeader writes: anything else (a checksum, routing,
// another version or payload type) is refused rather than guessed at.
func ParseHeader(b []byte) (Header, []byte, error) {
	if len(b) < HeaderLen {
		return Header{}, nil, ErrTruncated
	}
	if binary.BigEndian.Uint16(b[0:]) != greFlagsKS {
		return Header{}, nil, ErrFlags
	}
	if binary.BigEndian.Uint16(b[2:]) != ethertypeIPv4 {
		return Header{}, nil, ErrProtocol
	}
	h := Header{
		Key: binary.BigEndian.Uint32(b[4:]),
		Seq: binary.BigEndian.Uint32(b[8:]),
	}
	return h, b[HeaderLen:], nil
}
