package encap

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IPv4 protocol numbers the checks care about.
const (
	ProtoIGMP = 2
	ProtoUDP  = 17
)

const (
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
	maxIPv4Len    = 65535
)

// Errors CheckInner returns, one per reason an inner packet is refused. Both sides use them:
// the sender side before forwarding what it captured, the receiver side before writing into
// the TUN.
var (
	ErrNotIPv4      = errors.New("not an IPv4 packet")
	ErrMalformed    = errors.New("malformed IPv4 header")
	ErrLength       = errors.New("IPv4 total length does not match the packet")
	ErrOptions      = errors.New("IPv4 options present")
	ErrFragment     = errors.New("malformed IPv4 fragment")
	ErrNotMulticast = errors.New("destination is not a multicast address")
	ErrSource       = errors.New("source address is not a unicast host address")
	ErrIGMP         = errors.New("IGMP is host signalling, never forwarded")
)

// Inner is what CheckInner learned of a valid inner packet.
type Inner struct {
	Src, Dst netip.Addr
	Proto    uint8
	ID       uint16 // IP identification, which ties the fragments of one datagram together
	// Fragment is true for any fragment of a larger datagram, First for the one at offset 0.
	Fragment, First bool
	// Port is the UDP destination port; HasPort is false when the packet carries no UDP
	// header (another protocol, or a fragment after the first).
	Port    uint16
	HasPort bool
}

// CheckInner validates an inner packet: a whole IPv4 packet to a multicast group, as a host
// could have sent it. It refuses what a host's stack would refuse or should never be handed
// from a tunnel: another IP version, a bad header checksum, a total length that differs from
// the packet's length, IP options, fragments that cannot be part of a sane datagram, a source
// that is not a unicast host address, a unicast or broadcast destination, and IGMP.
func CheckInner(b []byte) (Inner, error) {
	if len(b) < 1 || b[0]>>4 != 4 {
		return Inner{}, ErrNotIPv4
	}
	if len(b) < ipv4HeaderLen {
		return Inner{}, ErrMalformed
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || ihl > len(b) || Checksum(0, b[:ihl]) != 0 {
		return Inner{}, ErrMalformed
	}
	if int(binary.BigEndian.Uint16(b[2:])) != len(b) {
		return Inner{}, ErrLength
	}
	if ihl != ipv4HeaderLen {
		return Inner{}, ErrOptions
	}
	in := Inner{
		Src:   netip.AddrFrom4([4]byte(b[12:16])),
		Dst:   netip.AddrFrom4([4]byte(b[16:20])),
		Proto: b[9],
		ID:    binary.BigEndian.Uint16(b[4:]),
	}
	if !in.Dst.IsMulticast() {
		return Inner{}, ErrNotMulticast
	}
	if !IsHostAddr(in.Src) {
		return Inner{}, ErrSource
	}
	if in.Proto == ProtoIGMP {
		return Inner{}, ErrIGMP
	}

	frag := binary.BigEndian.Uint16(b[6:])
	more := frag&0x2000 != 0
	offset := int(frag&0x1fff) * 8
	payload := len(b) - ihl
	in.Fragment = more || offset != 0
	in.First = offset == 0
	if in.Fragment {
		// RFC 791: every fragment but the last carries a multiple of 8 bytes, and no fragment
		// reaches past the largest datagram. RFC 1858: a first fragment holds the whole
		// transport header, so no later fragment can rewrite the ports a filter looked at.
		if (more && payload%8 != 0) || offset+payload > maxIPv4Len-ihl ||
			(in.First && in.Proto == ProtoUDP && payload < udpHeaderLen) {
			return Inner{}, ErrFragment
		}
	}
	if in.Proto == ProtoUDP && in.First && payload >= udpHeaderLen {
		in.Port = binary.BigEndian.Uint16(b[ihl+2:])
		in.HasPort = true
	}
	return in, nil
}

// IsHostAddr reports whether a is a source address a host may send from: not unspecified,
// multicast, loopback or the limited broadcast address.
func IsHostAddr(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
