package kernelpath

import (
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"mctun/encap"
	"mctun/encap/encaptest"
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
	return encaptest.IPv4Packet(src, group, encap.ProtoUDP, udp(40000, port, data))
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
	return append(f, encaptest.IPv4Packet(src, dst, encap.ProtoUDP, u)...)
}

// fixIPChecksum recomputes the checksum of the IPv4 header at b, if b holds one.
func fixIPChecksum(b []byte) {
	if ihl := int(b[0]&0x0f) * 4; ihl >= 12 && ihl <= len(b) {
		encaptest.SetHeaderChecksum(b)
	}
}
