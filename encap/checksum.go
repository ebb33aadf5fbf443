package encap

import (
	"encoding/binary"
	"math/bits"
)

// Checksum is the Internet checksum (RFC 1071) of b, started from sum, a partial sum such as a
// pseudo-header's: the ones' complement of the ones' complement sum of b's big-endian 16-bit
// words. Over an IPv4 header whose checksum field is right it is 0. It does not allocate.
func Checksum(sum uint64, b []byte) uint16 {
	return ^fold(onesSum(sum, b))
}

// onesSum adds b, as big-endian 16-bit words, to sum in ones' complement arithmetic (RFC 1071),
// eight bytes at a time with the carry wrapped around. Fold the result with fold.
//
// Adding 64-bit words is adding their four 16-bit words, since 2^16 = 1 modulo 2^16-1. Four
// additions per round keep the carry in the CPU's flag between them, twice as fast as one.
func onesSum(sum uint64, b []byte) uint64 {
	var carry uint64
	for len(b) >= 32 {
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b), carry)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[8:]), carry)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[16:]), carry)
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b[24:]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	if len(b) >= 4 {
		sum, carry = bits.Add64(sum, uint64(binary.BigEndian.Uint32(b)), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		sum, carry = bits.Add64(sum, uint64(binary.BigEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		sum, carry = bits.Add64(sum, uint64(b[0])<<8, carry)
	}
	sum, carry = bits.Add64(sum, 0, carry)
	return sum + carry // a carry out here left sum at 0, so this cannot overflow
}

// fold reduces a 64-bit ones' complement sum to 16 bits.
func fold(sum uint64) uint16 {
	sum = sum>>32 + sum&0xffffffff
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
