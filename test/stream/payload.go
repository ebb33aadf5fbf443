package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the size of the sequence number and send time that start every payload, and
// so the smallest valid payload.
const HeaderLen = 16

// MaxUDPSize is the largest UDP payload an IPv4 datagram can carry.
const MaxUDPSize = 65535 - 20 - 8

// step is added to the pattern word for each 8 bytes of payload; it is odd, so the words of
// one payload never repeat.
const step = 0x9e3779b97f4a7c15

var (
	// ErrShort reports a payload shorter than HeaderLen.
	ErrShort = errors.New("stream: payload shorter than 16 bytes")
	// ErrPattern reports a payload whose bytes after the header are not the pattern its
	// sequence number calls for.
	ErrPattern = errors.New("stream: payload pattern mismatch")
)

// Header is the fixed start of every payload.
type Header struct {
	Seq    uint64 // sequence number, from 0 per sender run
	SentNs int64  // send time in unix nanoseconds, as the sender's clock read it
}

// Encode writes a complete payload into b: the header for seq and sentNs, then the pattern
// for seq over the rest of b. b must be at least HeaderLen bytes long; Encode panics
// otherwise, like binary.BigEndian.PutUint64.
func Encode(b []byte, seq uint64, sentNs int64) {
	binary.BigEndian.PutUint64(b[0:8], seq)
	binary.BigEndian.PutUint64(b[8:16], uint64(sentNs))
	fillPattern(b[HeaderLen:], seed(seq))
}

// Decode returns the header of payload b without checking the pattern.
func Decode(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrShort
	}
	return Header{
		Seq:    binary.BigEndian.Uint64(b[0:8]),
		SentNs: int64(binary.BigEndian.Uint64(b[8:16])),
	}, nil
}

// Check decodes the header of payload b and verifies every byte after it against the
// pattern for its sequence number. A mismatch is an error wrapping ErrPattern that names
// the offset of the first wrong byte.
func Check(b []byte) (Header, error) {
	h, err := Decode(b)
	if err != nil {
		return h, err
	}
	if off := firstMismatch(b[HeaderLen:], seed(h.Seq)); off >= 0 {
		return h, fmt.Errorf("%w at offset %d (seq %d, length %d)", ErrPattern, HeaderLen+off, h.Seq, len(b))
	}
	return h, nil
}

// seed is the splitmix64 finalizer: a cheap bijection that spreads consecutive sequence
// numbers over all 64 bits.
func seed(seq uint64) uint64 {
	z := seq + step
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// fillPattern writes the pattern words starting at w into p.
func fillPattern(p []byte, w uint64) {
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, w)
		w += step
		p = p[8:]
	}
	for i := range p {
		p[i] = byte(w >> (8 * i))
	}
}

// firstMismatch returns the offset in p of the first byte that differs from the pattern
// starting at w, or -1 when all of p matches.
func firstMismatch(p []byte, w uint64) int {
	off := 0
	for len(p)-off >= 8 {
		if got := binary.LittleEndian.Uint64(p[off:]); got != w {
			return off + firstDifferingByte(got, w)
		}
		w += step
		off += 8
	}
	for i := range p[off:] {
		if p[off+i] != byte(w>>(8*i)) {
			return off + i
		}
	}
	return -1
}

// firstDifferingByte returns the index of the lowest byte in which the little-endian words
// a and b differ; they must differ.
func firstDifferingByte(a, b uint64) int {
	x := a ^ b
	i := 0
	for x&0xff == 0 {
		x >>= 8
		i++
	}
	return i
}
