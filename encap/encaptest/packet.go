package encaptest

import (
	"encoding/binary"
	"net/netip"

	"mctun/encap"
)

// UDPPacket builds a valid IPv4 UDP packet from src to dst:port carrying payload, with correct
// header and UDP checksums and TTL 8.
func UDPPacket(src netip.Addr, dst netip.AddrPort, payload []byte) []byte {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	s, d := src.As4(), dst.Addr().As4()
	pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, 17, byte(len(udp)>>8), byte(len(udp)))
	sum := encap.Checksum(0, append(pseudo, udp...))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], sum)
	return IPv4Packet(src, dst.Addr(), 17, udp)
}

// IPv4Packet builds a valid IPv4 packet (no options, not fragmented, TTL 8) around payload.
func IPv4Packet(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	b[8] = 8
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	SetHeaderChecksum(b)
	copy(b[20:], payload)
	return b
}

// SetHeaderChecksum recomputes the IPv4 header checksum of b after a test changed the header.
func SetHeaderChecksum(b []byte) {
	ihl := int(b[0]&0x0f) * 4
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], encap.Checksum(0, b[:ihl]))
}

// ReferenceSum is RFC 1071's ones' complement sum, a 16-bit word at a time: the slow, obvious
// computation that tests hold the fast ones to. A header with a right checksum sums to 0xffff.
func ReferenceSum(initial uint16, b []byte) uint16 {
	sum := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
