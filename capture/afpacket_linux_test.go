package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"mctun/encap"
	"mctun/internal/wakeups"
)

// The privileged tests build this world in a network namespace of their own, and capture on
// capIf as mctun would on a source's interface:
//
//	198.18.200.1/24                       198.18.200.2/24
//	capIf (mtcap0)  <------ veth ------>  peerIf (mtcap1)
//	route 224.0.0.0/4 dev mtcap0
//	neighbour 198.18.200.3 on mtcap0 (permanent; nothing answers to it)
//
// Nothing outside the namespace is touched, and nothing is sent to an address outside it.
const (
	capIf  = "mtcap0"
	peerIf = "mtcap1"
)

var (
	capAddr   = netip.MustParseAddr("198.18.200.1")
	peerAddr  = netip.MustParseAddr("198.18.200.2")
	ghostAddr = netip.MustParseAddr("198.18.200.3")
	bcastAddr = netip.MustParseAddr("198.18.200.255")
	group     = netip.AddrPortFrom(netip.MustParseAddr("224.1.2.3"), 5000)
)

// readTimeout bounds every wait for a packet, so that a broken capture fails a test instead
// of hanging it. It is not a performance goal.
const readTimeout = 5 * time.Second

type testNet struct {
	name string
	ns   netns.NsHandle
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a network namespace and an AF_PACKET socket")
	}
	n := &testNet{name: fmt.Sprintf("mtcap-%08x", rand.Uint32())}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
	})
	n.ip(t, "link", "add", capIf, "type", "veth", "peer", "name", peerIf)
	n.ip(t, "addr", "add", capAddr.String()+"/24", "brd", "+", "dev", capIf)
	n.ip(t, "addr", "add", peerAddr.String()+"/24", "brd", "+", "dev", peerIf)
	n.ip(t, "link", "set", "lo", "up")
	n.ip(t, "link", "set", capIf, "up")
	n.ip(t, "link", "set", peerIf, "up")
	n.ip(t, "route", "add", "224.0.0.0/4", "dev", capIf)
	n.ip(t, "neigh", "add", ghostAddr.String(), "lladdr", "02:00:00:00:00:03", "dev", capIf, "nud", "permanent")
	ns, err := netns.GetFromName(n.name)
	if err != nil {
		t.Fatalf("netns %s: %v", n.name, err)
	}
	n.ns = ns
	t.Cleanup(func() { ns.Close() })
	return n
}

// ip runs "ip -n NAMESPACE args...".
func (n *testNet) ip(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"-n", n.name}, args...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// do runs f on a thread switched into the namespace. Sockets f creates stay in the namespace.
func (n *testNet) do(t *testing.T, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns.Get: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter %s: %v", n.name, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime ends it with the goroutine.
			t.Errorf("leave %s: %v", n.name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}

// open opens a capture on capIf, closed when the test ends.
func (n *testNet) open(t *testing.T, opts Options) *AFPacket {
	t.Helper()
	var a *AFPacket
	var err error
	n.do(t, func() { a, err = OpenAFPacket(capIf, opts) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// udp returns a UDP socket in the namespace bound to laddr, closed when the test ends.
// Multicast leaves by the 224.0.0.0/4 route, so from capIf, with TTL 1.
func (n *testNet) udp(t *testing.T, laddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	var err error
	n.do(t, func() { c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(laddr)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (n *testNet) ifindex(t *testing.T, name string) int {
	t.Helper()
	var ifi *net.Interface
	var err error
	n.do(t, func() { ifi, err = net.InterfaceByName(name) })
	if err != nil {
		t.Fatal(err)
	}
	return ifi.Index
}

func send(t *testing.T, c *net.UDPConn, payload []byte, to netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(payload, to); err != nil {
		t.Fatalf("send %d bytes to %v: %v", len(payload), to, err)
	}
}

func setsockopt(t *testing.T, c *net.UDPConn, f func(fd int) error) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = f(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}

// readPackets reads from a until it has n packets, and fails the test if they take longer
// than readTimeout (closing a, which is what unblocks its Read).
func readPackets(t *testing.T, a *AFPacket, n int) [][]byte {
	t.Helper()
	timer := time.AfterFunc(readTimeout, func() { a.Close() })
	defer timer.Stop()
	const offset = 32
	bufs, sizes := testBufs(a.BatchSize(), offset+65536)
	var pkts [][]byte
	for len(pkts) < n {
		k, err := a.Read(bufs[:min(len(bufs), n-len(pkts))], sizes, offset)
		if err != nil {
			t.Fatalf("Read after %d of %d packets: %v", len(pkts), n, err)
		}
		for i := range k {
			pkts = append(pkts, bytes.Clone(bufs[i][offset:offset+sizes[i]]))
		}
	}
	return pkts
}

// witness is an unfiltered AF_PACKET socket on capIf, in both directions. It shows that the
// traffic a test expects the capture to ignore did cross the interface, and how the kernel
// handed it over.
type witness struct{ fd int }

type seen struct {
	pkttype uint8  // PACKET_OUTGOING, PACKET_MULTICAST, ...
	status  uint32 // tpacket_auxdata.tp_status: TP_STATUS_CSUMNOTREADY, ...
	pkt     []byte // from the IPv4 header on
}

func (n *testNet) witness(t *testing.T) *witness {
	t.Helper()
	ifindex := n.ifindex(t, capIf)
	var fd int
	var err error
	n.do(t, func() {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	})
	if err != nil {
		t.Fatalf("witness socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	return &witness{fd: fd}
}

// waitFor returns the first IPv4 packet matching match, and fails the test if none comes.
func (w *witness) waitFor(t *testing.T, what string, match func(seen) bool) seen {
	t.Helper()
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for deadline := time.Now().Add(readTimeout); time.Now().Before(deadline); {
		n, oobn, _, from, err := unix.Recvmsg(w.fd, buf, oob, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("witness: %v", err)
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Protocol != htons(unix.ETH_P_IP) {
			continue
		}
		s := seen{pkttype: ll.Pkttype, pkt: bytes.Clone(buf[:n])}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 4 {
				s.status = binary.NativeEndian.Uint32(m.Data)
			}
		}
		if match(s) {
			return s
		}
	}
	t.Fatalf("witness: no %s on %s within %v", what, capIf, readTimeout)
	return seen{}
}

// udpTo matches an unfragmented UDP packet, or its first fragment, of the given direction to
// dst.
func udpTo(pkttype uint8, dst netip.AddrPort) func(seen) bool {
	return func(s seen) bool {
		p := s.pkt
		return s.pkttype == pkttype && len(p) >= 28 && p[9] == encap.ProtoUDP && ipDst(p) == dst.Addr() &&
			fragOffset(p) == 0 && binary.BigEndian.Uint16(p[ihl(p)+2:]) == dst.Port()
	}
}

func ihl(p []byte) int            { return int(p[0]&0x0f) * 4 }
func ipSrc(p []byte) netip.Addr   { return netip.AddrFrom4([4]byte(p[12:16])) }
func ipDst(p []byte) netip.Addr   { return netip.AddrFrom4([4]byte(p[16:20])) }
func fragOffset(p []byte) int     { return int(binary.BigEndian.Uint16(p[6:8])&0x1fff) * 8 }
func moreFragments(p []byte) bool { return p[6]&0x20 != 0 }
func udpPayload(p []byte) []byte  { return p[ihl(p)+8:] }
func ipTotalLen(p []byte) int     { return int(binary.BigEndian.Uint16(p[2:4])) }
func udpPorts(p []byte) (s, d uint16) {
	u := p[ihl(p):]
	return binary.BigEndian.Uint16(u), binary.BigEndian.Uint16(u[2:])
}

func testPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

const (
	pkttypeMulticast = 2 // PACKET_MULTICAST
	pkttypeOutgoing  = 4 // PACKET_OUTGOING
)

// TestAFPacketCapturesOutgoingMulticast: an application's datagram to a group is captured
// once, byte for byte as it left, with the UDP checksum that veth's checksum offload left
// unfinished completed.
func TestAFPacketCapturesOutgoingMulticast(t *testing.T) {
	n := newTestNet(t)
	a := n.open(t, Options{})
	w := n.witness(t)
	sender := n.udp(t, netip.AddrPortFrom(capAddr, 0))
	payload := []byte("mctun capture test: one datagram to 224.1.2.3:5000")

	send(t, sender, payload, group)
	got := readPackets(t, a, 1)[0]

	if !ipv4HeaderValid(got) || ipTotalLen(got) != len(got) || got[9] != encap.ProtoUDP ||
		ipSrc(got) != capAddr || ipDst(got) != group.Addr() {
		t.Fatalf("captured packet is not the IPv4 UDP datagram %v -> %v: %x", capAddr, group, got)
	}
	src, dst := udpPorts(got)
	if src != uint16(sender.LocalAddr().(*net.UDPAddr).Port) || dst != group.Port() ||
		!bytes.Equal(udpPayload(got), payload) {
		t.Fatalf("captured UDP %d -> %d with payload %q, want %v -> %v with %q",
			src, dst, udpPayload(got), sender.LocalAddr(), group, payload)
	}
	if !transportChecksumValid(got) {
		t.Errorf("captured UDP checksum %#04x does not verify", got[26:28])
	}

	// The witness saw the same packet leave, flagged CSUMNOTREADY, with only the
	// pseudo-header sum in its checksum field: forwarded as AF_PACKET shows it, it would be
	// dropped by every member.
	left := w.waitFor(t, "outgoing datagram to "+group.String(), udpTo(pkttypeOutgoing, group))
	if left.status&unix.TP_STATUS_CSUMNOTREADY == 0 {
		t.Errorf("veth did not leave the checksum to the NIC (tp_status %#x): this test no longer shows the completion matters", left.status)
	}
	if transportChecksumValid(left.pkt) {
		t.Errorf("the packet as it left already had a valid checksum %#04x", left.pkt[26:28])
	}
	if len(left.pkt) != len(got) || !bytes.Equal(left.pkt[:26], got[:26]) || !bytes.Equal(left.pkt[28:], got[28:]) {
		t.Errorf("captured packet differs from the one that left other than in the UDP checksum:\n got %x\nleft %x", got, left.pkt)
	}

	// Once: the next packet captured is the next datagram sent, not a second copy.
	next := []byte("mctun capture test: the next datagram")
	send(t, sender, next, group)
	if got := readPackets(t, a, 1)[0]; !bytes.Equal(udpPayload(got), next) {
		t.Errorf("second packet captured has payload %q, want %q", udpPayload(got), next)
	}
	if s := a.Stats(); s.Packets != 2 || s.Truncated != 0 || s.ChecksumSkipped != 0 || s.Drops != 0 {
		t.Errorf("Stats = %+v, want 2 packets and nothing else", s)
	}
}

// TestAFPacketCapturesFragments: a datagram larger than the MTU leaves as IP fragments, and
// every one of them is captured; put together they are the datagram, checksum and all.
func TestAFPacketCapturesFragments(t *testing.T) {
	n := newTestNet(t)
	a := n.open(t, Options{})
	sender := n.udp(t, netip.AddrPortFrom(capAddr, 0))
	payload := testPayload(8000)

	send(t, sender, payload, group)
	// 8008 bytes of UDP in fragments of at most 1480 (MTU 1500 less the IPv4 header): 6.
	frags := readPackets(t, a, 6)

	id := binary.BigEndian.Uint16(frags[0][4:6])
	var udp []byte
	for i, f := range frags {
		if !ipv4HeaderValid(f) || binary.BigEndian.Uint16(f[4:6]) != id || fragOffset(f) != len(udp) ||
			moreFragments(f) != (i < len(frags)-1) || ipDst(f) != group.Addr() || len(f) > 1500 {
			t.Fatalf("fragment %d (id %#x, offset %d, MF %v, %d bytes) does not follow fragment %d",
				i, binary.BigEndian.Uint16(f[4:6]), fragOffset(f), moreFragments(f), len(f), i-1)
		}
		udp = append(udp, f[ihl(f):]...)
	}
	whole := append(bytes.Clone(frags[0][:20]), udp...)
	binary.BigEndian.PutUint16(whole[2:], uint16(len(whole)))
	whole[6], whole[7] = 0, 0
	if !bytes.Equal(udpPayload(whole), payload) {
		t.Fatalf("reassembled payload differs from the %d bytes sent", len(payload))
	}
	if !transportChecksumValid(whole) {
		t.Errorf("reassembled datagram's UDP checksum %#04x does not verify", whole[26:28])
	}
}

// TestAFPacketIgnoresOtherTraffic: unicast, broadcast, the host's own IGMP reports and
// multicast arriving from the peer all cross capIf, as the witness shows, and none is
// captured: the first packet the capture returns is a multicast datagram sent after them.
func TestAFPacketIgnoresOtherTraffic(t *testing.T) {
	n := newTestNet(t)
	a := n.open(t, Options{})
	w := n.witness(t)
	sender := n.udp(t, netip.AddrPortFrom(capAddr, 0))

	send(t, sender, []byte("unicast"), netip.AddrPortFrom(ghostAddr, 5000))
	w.waitFor(t, "outgoing unicast", udpTo(pkttypeOutgoing, netip.AddrPortFrom(ghostAddr, 5000)))

	setsockopt(t, sender, func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1) })
	send(t, sender, []byte("broadcast"), netip.AddrPortFrom(bcastAddr, 5000))
	w.waitFor(t, "outgoing broadcast", udpTo(pkttypeOutgoing, netip.AddrPortFrom(bcastAddr, 5000)))

	// Joining a group on capIf makes the host report its membership.
	member := n.udp(t, netip.AddrPortFrom(netip.IPv4Unspecified(), 5001))
	capIndex := n.ifindex(t, capIf)
	setsockopt(t, member, func(fd int) error {
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, &unix.IPMreqn{
			Multiaddr: [4]byte{224, 9, 9, 9}, Ifindex: int32(capIndex)})
	})
	w.waitFor(t, "outgoing IGMP report", func(s seen) bool {
		return s.pkttype == pkttypeOutgoing && len(s.pkt) >= 20 && s.pkt[9] == encap.ProtoIGMP && ipDst(s.pkt).IsMulticast()
	})

	// The peer sends to the group out of its end; it arrives on capIf as received multicast.
	peer := n.udp(t, netip.AddrPortFrom(peerAddr, 0))
	peerIndex := n.ifindex(t, peerIf)
	setsockopt(t, peer, func(fd int) error {
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(peerIndex)})
	})
	send(t, peer, []byte("incoming multicast"), group)
	in := w.waitFor(t, "incoming multicast", udpTo(pkttypeMulticast, group))
	if ipSrc(in.pkt) != peerAddr {
		t.Fatalf("incoming multicast from %v, want %v", ipSrc(in.pkt), peerAddr)
	}

	marker := []byte("mctun capture test: marker")
	send(t, sender, marker, group)
	got := readPackets(t, a, 1)[0]
	if !bytes.Equal(udpPayload(got), marker) {
		t.Fatalf("first packet captured is %v -> %v, protocol %d, %x; want the marker datagram",
			ipSrc(got), ipDst(got), got[9], got)
	}
	if s := a.Stats(); s.Packets != 1 {
		t.Errorf("Stats().Packets = %d, want 1", s.Packets)
	}
}

// TestAFPacketCloseUnblocksRead: Close wakes a Read blocked on a quiet interface, which
// returns net.ErrClosed, as do later Reads.
func TestAFPacketCloseUnblocksRead(t *testing.T) {
	n := newTestNet(t)
	var a *AFPacket
	var err error
	n.do(t, func() { a, err = OpenAFPacket(capIf, Options{}) }) // closed below, not in Cleanup: a Close that hangs must fail the test, not hang it
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		bufs, sizes := testBufs(a.BatchSize(), 2048)
		_, err := a.Read(bufs, sizes, 0)
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("Read returned %v on a quiet interface", err)
	case <-time.After(100 * time.Millisecond): // Read is, in all likelihood, parked by now
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(readTimeout):
		t.Fatal("Read still blocked after Close")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(readTimeout):
		t.Fatal("Close has not returned")
	}
	bufs, sizes := testBufs(1, 2048)
	if _, err := a.Read(bufs, sizes, 0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Read after Close = %v, want net.ErrClosed", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	_ = a.Stats() // still safe
}

// TestAFPacketStats: packets beyond a full ring are counted as drops, cumulatively; a packet
// too long for the caller's buffer or for a ring frame is skipped and counted as truncated.
func TestAFPacketStats(t *testing.T) {
	n := newTestNet(t)
	a := n.open(t, Options{RingBytes: 1}) // the smallest ring: minRingFrames frames
	sender := n.udp(t, netip.AddrPortFrom(capAddr, 0))

	// veth sends synchronously, so every datagram has reached the ring, or been dropped
	// at it, when the send returns.
	const sent = 3 * minRingFrames
	for i := range sent {
		send(t, sender, []byte(fmt.Sprintf("datagram %d", i)), group)
	}
	if s := a.Stats(); s.Drops != sent-minRingFrames {
		t.Fatalf("Stats().Drops = %d after %d datagrams into %d frames, want %d", s.Drops, sent, minRingFrames, sent-minRingFrames)
	}
	got := readPackets(t, a, minRingFrames)
	for i, p := range got {
		if want := fmt.Sprintf("datagram %d", i); string(udpPayload(p)) != want {
			t.Fatalf("packet %d = %q, want %q", i, udpPayload(p), want)
		}
	}
	if s := a.Stats(); s.Packets != minRingFrames || s.Drops != sent-minRingFrames {
		t.Fatalf("Stats = %+v, want %d packets and %d drops", s, minRingFrames, sent-minRingFrames)
	}

	// Longer than the caller's buffer.
	send(t, sender, testPayload(1000), group)
	send(t, sender, []byte("short"), group)
	bufs, sizes := testBufs(2, 100)
	k, err := a.Read(bufs, sizes, 0)
	if err != nil || k != 1 || !bytes.Equal(udpPayload(bufs[0][:sizes[0]]), []byte("short")) {
		t.Fatalf("Read with 100-byte buffers = %d, %v; want only the short datagram", k, err)
	}
	if s := a.Stats(); s.Truncated != 1 {
		t.Fatalf("Stats().Truncated = %d after a packet longer than the buffer, want 1", s.Truncated)
	}

	// Longer than a ring frame: the MTU grew after the ring was sized for 1500 bytes.
	n.ip(t, "link", "set", capIf, "mtu", "9000")
	n.ip(t, "link", "set", peerIf, "mtu", "9000")
	send(t, sender, testPayload(4000), group)
	send(t, sender, []byte("short"), group)
	if got := readPackets(t, a, 1)[0]; !bytes.Equal(udpPayload(got), []byte("short")) {
		t.Fatalf("captured %d bytes, want only the short datagram", len(got))
	}
	if s := a.Stats(); s.Truncated != 2 || s.ChecksumSkipped != 0 || s.Drops != sent-minRingFrames || s.Packets != minRingFrames+2 {
		t.Fatalf("Stats = %+v, want 2 truncated", s)
	}
}

// TestAFPacketTUN: on a TUN device, which has no link header, packets start at their IPv4
// header too, and are what the TUN's reader gets, byte for byte.
func TestAFPacketTUN(t *testing.T) {
	n := newTestNet(t)
	const tunIf = "mtcaptun0"
	var tun *os.File
	n.do(t, func() {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatalf("open /dev/net/tun: %v", err)
		}
		ifr, _ := unix.NewIfreq(tunIf)
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			t.Fatalf("TUNSETIFF %s: %v", tunIf, err)
		}
		tun = os.NewFile(uintptr(fd), tunIf)
	})
	t.Cleanup(func() { tun.Close() })
	n.ip(t, "addr", "add", "198.18.201.1/24", "dev", tunIf)
	n.ip(t, "link", "set", tunIf, "up")
	n.ip(t, "route", "add", "239.1.0.0/16", "dev", tunIf)

	var a *AFPacket
	var err error
	n.do(t, func() { a, err = OpenAFPacket(tunIf, Options{}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	sender := n.udp(t, netip.MustParseAddrPort("198.18.201.1:0"))
	to := netip.MustParseAddrPort("239.1.2.3:5000")

	// The host may send other things into the fresh TUN (IPv6 router solicitations, for
	// one); what the TUN's reader gets is matched to the datagram.
	payload := []byte("mctun capture test: through a TUN")
	send(t, sender, payload, to)
	got := readPackets(t, a, 1)[0]
	if !bytes.Equal(udpPayload(got), payload) || ipDst(got) != to.Addr() || !transportChecksumValid(got) {
		t.Fatalf("captured %x, want the datagram to %v with a valid checksum", got, to)
	}
	buf := make([]byte, 65536)
	if err := tun.SetReadDeadline(time.Now().Add(readTimeout)); err != nil {
		t.Fatal(err)
	}
	for {
		k, err := tun.Read(buf)
		if err != nil {
			t.Fatalf("TUN read: %v", err)
		}
		if p := buf[:k]; k >= 20 && p[0]>>4 == 4 && ipDst(p) == to.Addr() {
			if !bytes.Equal(p, got) {
				t.Fatalf("captured packet differs from what the TUN's reader got:\n got %x\n tun %x", got, p)
			}
			return
		}
	}
}

// TestAFPacketReadDoesNotAllocate: with packets waiting, Read takes them without allocating.
func TestAFPacketReadDoesNotAllocate(t *testing.T) {
	n := newTestNet(t)
	a := n.open(t, Options{})
	sender := n.udp(t, netip.AddrPortFrom(capAddr, 0))
	const runs = 50
	for range runs + 1 { // AllocsPerRun calls once more to warm up
		send(t, sender, []byte("mctun capture test: allocations"), group)
	}
	bufs, sizes := testBufs(1, 2048)
	allocs := testing.AllocsPerRun(runs, func() {
		if k, err := a.Read(bufs, sizes, 16); k != 1 || err != nil {
			t.Fatalf("Read = %d, %v", k, err)
		}
	})
	if allocs != 0 {
		t.Errorf("Read allocates %v times per call", allocs)
	}
}

// TestAFPacketWakesNoThreadWhileNotWaiting: frames written into the ring while no Read waits
// wake no thread. A thread waits in epoll_wait while any goroutine waits in the netpoller
// (wakeups.During parks one); with the socket in the netpoller, every frame woke it, thousands of
// times a second at saturation while Read was busy copying. Counted in the process's
// voluntary context switches; the sender is a send-only socket, which wakes none itself.
func TestAFPacketWakesNoThreadWhileNotWaiting(t *testing.T) {
	n := newTestNet(t)
	a := n.open(t, Options{RingBytes: 16 << 20})
	var sender *encap.UDPConn
	var err error
	n.do(t, func() {
		sender, err = encap.ListenUDP(netip.AddrPortFrom(capAddr, 0), encap.UDPOptions{SendOnly: true})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()

	// One Read first, so that the capture has waited and woken once, as it does at work.
	pkt := make([]byte, 64)
	if err := sender.WriteBatch([][]byte{pkt}, []netip.AddrPort{group}, make([]error, 1)); err != nil {
		t.Fatal(err)
	}
	readPackets(t, a, 1)

	const batches, perBatch = 80, 50
	bufs, addrs, errs := make([][]byte, perBatch), make([]netip.AddrPort, perBatch), make([]error, perBatch)
	for i := range bufs {
		bufs[i], addrs[i] = pkt, group
	}
	woken := wakeups.During(t, func() {
		for range batches {
			if err := sender.WriteBatch(bufs, addrs, errs); err != nil || errs[0] != nil {
				t.Fatal(err, errs[0])
			}
		}
	})
	t.Logf("threads woken while %d frames were captured with no Read waiting: %d", batches*perBatch, woken)
	// With the socket in the netpoller they woke threads 1,100 to 1,600 times.
	if woken > batches*perBatch/40 {
		t.Errorf("%d frames woke threads %d times, want at most %d", batches*perBatch, woken, batches*perBatch/40)
	}
	if got := len(readPackets(t, a, batches*perBatch)); got != batches*perBatch {
		t.Errorf("captured %d frames, want %d", got, batches*perBatch)
	}
}

// TestOpenAFPacketUnprivileged: without CAP_NET_RAW the error says so, naming the interface.
func TestOpenAFPacketUnprivileged(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("skipping: checks the error of an unprivileged user, and this is root")
	}
	_, err := OpenAFPacket("lo", Options{})
	if want := "capture: open lo: operation not permitted"; err == nil || err.Error() != want || !errors.Is(err, os.ErrPermission) {
		t.Errorf("OpenAFPacket(lo) = %v, want %q", err, want)
	}
}

func TestOpenAFPacketErrors(t *testing.T) {
	n := newTestNet(t)
	var err error
	n.do(t, func() { _, err = OpenAFPacket("mtcap9", Options{}) })
	if want := "capture: open mtcap9: no such network interface"; err == nil || err.Error() != want || !errors.Is(err, ErrNoInterface) {
		t.Errorf("OpenAFPacket(mtcap9) = %v, want %q", err, want)
	}
	n.do(t, func() { _, err = OpenAFPacket(strings.Repeat("x", 20), Options{}) })
	if !errors.Is(err, ErrNoInterface) {
		t.Errorf("OpenAFPacket(20-character name) = %v, want ErrNoInterface", err)
	}
	n.do(t, func() { _, err = OpenAFPacket(capIf, Options{RingBytes: -1}) })
	if err == nil || !strings.HasPrefix(err.Error(), "capture: open "+capIf+": ") {
		t.Errorf("OpenAFPacket with RingBytes -1 = %v, want an error naming %s", err, capIf)
	}
}
