package kernelpath

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"mctun/encap"
)

// needRoot skips a test of the programs where they cannot be loaded and run.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the kernel path's programs are tested with BPF_PROG_TEST_RUN, which needs root (CAP_BPF and CAP_NET_ADMIN)")
	}
}

// Hand-made packets, laid out as the wire diagrams of bpf/mctun.h and encap/gre.go say.

var (
	hostMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	routerMAC = [6]byte{0x02, 0, 0, 0, 0, 0xfe}
)

// ipv4 is a 20-byte IPv4 header with a good checksum, for a payload of n bytes.
func ipv4(src, dst netip.Addr, proto uint8, n int) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+n))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	h[8] = 1
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], encap.Checksum(0, h))
	return h
}

// udp is a UDP header and its data, with checksum 0.
func udp(sport, dport uint16, data []byte) []byte {
	u := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(data)))
	return append(u, data...)
}

// innerUDP is an inner packet: a UDP datagram of n bytes from src to group:port.
func innerUDP(src, group netip.Addr, port uint16, n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	u := udp(40000, port, data)
	return append(ipv4(src, group, encap.ProtoUDP, len(u)), u...)
}

// gre is a tunnel packet: the GRE header mctun sends, then the inner packet.
func gre(key, seq uint32, inner []byte) []byte {
	g := make([]byte, encap.HeaderLen, encap.HeaderLen+len(inner))
	encap.PutHeader(g, encap.Header{Key: key, Seq: seq})
	return append(g, inner...)
}

// frame is an Ethernet frame from the router to this host carrying an outer IPv4 datagram
// from src to dst with a UDP payload.
func frame(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	u := udp(sport, dport, payload)
	f := append(routerMAC[:], hostMAC[:]...)
	f = append(f, 0x08, 0x00)
	f = append(f, ipv4(src, dst, encap.ProtoUDP, len(u))...)
	return append(f, u...)
}

// fixIPChecksum recomputes the IPv4 header checksum of the header at b.
func fixIPChecksum(b []byte) {
	ihl := int(b[0]&0x0f) * 4
	if ihl < 12 || ihl > len(b) {
		return // no checksum to fix
	}
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], encap.Checksum(0, b[:ihl]))
}
