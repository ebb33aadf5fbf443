package capture

import (
	"encoding/binary"
	"errors"

	"mctun/encap"
)

// Errors CompleteChecksum returns for a packet whose checksum it cannot complete.
var (
	ErrNotIPv4             = encap.ErrNotIPv4
	ErrMalformed           = encap.ErrMalformed
	ErrFragment            = errors.New("IPv4 fragment")
	ErrUnsupportedProtocol = errors.New("transport protocol is neither UDP nor TCP")
)

const (
	protoTCP = 6 // UDP and IGMP are encap's

	udpChecksumAt = 6  // offset of the checksum in the UDP header
	tcpChecksumAt = 16 // offset of the checksum in the TCP header
)

// CompleteChecksum computes the UDP or TCP checksum of pkt, an IPv4 packet starting at its IP
// header, and stores it in the packet, as a NIC with transmit checksum offload would have.
//
// A host that offloads the checksum hands the packet to the driver with only the
// pseudo-header sum in the checksum field (the kernel's CHECKSUM_PARTIAL); AF_PACKET then
// flags the frame TP_STATUS_CSUMNOTREADY and a TUN reader gets the same unfinished bytes.
// CompleteChecksum ignores what the field holds and computes the checksum from scratch:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |  MF or offset: ErrFragment
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |  17 UDP, 6 TCP
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |  \
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   > pseudo-header, with
//	|                    Destination Address                        |  /  protocol and length
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options (IHL > 5)                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |  UDP (RFC 768)
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Length             |           Checksum            |  <- written here
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          data ...                             |
//
// The UDP checksum covers the pseudo-header and the Length bytes of the datagram; a result of
// zero is sent as 0xffff, since zero means "no checksum". The TCP checksum (RFC 9293) covers
// the pseudo-header and the whole segment, up to Total Length, and sits at offset 16 of the
// TCP header. A fragment is rejected: the kernel checksums a datagram in software before
// fragmenting it, so a fragment never needs completing, and it could not be completed alone.
//
// On error pkt is unchanged. CompleteChecksum does not allocate.
func CompleteChecksum(pkt []byte) error {
	if len(pkt) < 1 || pkt[0]>>4 != 4 {
		return ErrNotIPv4
	}
	if len(pkt) < 20 {
		return ErrMalformed
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if ihl < 20 || total < ihl || total > len(pkt) {
		return ErrMalformed
	}
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 { // MF flag or fragment offset
		return ErrFragment
	}
	proto := pkt[9]
	seg := pkt[ihl:total]
	var at int
	switch proto {
	case encap.ProtoUDP:
		if len(seg) < 8 {
			return ErrMalformed
		}
		n := int(binary.BigEndian.Uint16(seg[4:6]))
		if n < 8 || n > len(seg) {
			return ErrMalformed
		}
		seg, at = seg[:n], udpChecksumAt
	case protoTCP:
		if len(seg) < 20 {
			return ErrMalformed
		}
		at = tcpChecksumAt
	default:
		return ErrUnsupportedProtocol
	}

	seg[at], seg[at+1] = 0, 0
	sum := uint64(binary.BigEndian.Uint32(pkt[12:16])) + // source address
		uint64(binary.BigEndian.Uint32(pkt[16:20])) + // destination address
		uint64(proto) + uint64(len(seg))
	c := encap.Checksum(sum, seg)
	if c == 0 && proto == encap.ProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[at:], c)
	return nil
}

// ChecksumUnfinished reports whether pkt, an IPv4 UDP datagram that is not a fragment,
// carries in its checksum field what a host that offloads the checksum leaves there, the
// pseudo-header's sum, instead of a checksum that verifies.
//
// A datagram whose checksum offload travels with it (the kernel's CHECKSUM_PARTIAL, which a
// veth or virtio link carries to the next host) reaches a tunnel unfinished when a
// kernel-path source encapsulates it: a kernel-path member delivers it as it is, and its host
// trusts the offload; a user-space member writes bytes into its TUN, whose host checks them,
// so it finishes them first (CompleteChecksum). A datagram broken on the way fails the check
// and keeps its checksum, unless the breakage left exactly the pseudo-header's sum there.
func ChecksumUnfinished(pkt []byte) bool {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != encap.ProtoUDP || binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
		return false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl+8 {
		return false
	}
	udp := pkt[ihl:]
	n := int(binary.BigEndian.Uint16(udp[4:6]))
	field := binary.BigEndian.Uint16(udp[udpChecksumAt:])
	if n < 8 || n > len(udp) || field == 0 {
		return false
	}
	pseudo := uint64(binary.BigEndian.Uint32(pkt[12:16])) + uint64(binary.BigEndian.Uint32(pkt[16:20])) +
		uint64(encap.ProtoUDP) + uint64(n)
	if field != ^encap.Checksum(pseudo, nil) {
		return false
	}
	return encap.Checksum(pseudo, udp[:n]) != 0
}
