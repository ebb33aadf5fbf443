package kernelpath

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"mctun/encap"
	"mctun/encap/encaptest"
	routehost "mctun/route" // the package; route is the sender's type
)

// A test run's bpf_clone_redirect really sends, so the sender side's program runs in a
// network namespace of the test's own, with a veth pair: the clones leave by mct0, and an
// AF_PACKET socket on its peer mct1 reads them back. The namespace goes with the test.
type txHarness struct {
	t       *testing.T
	s       *Sender
	ifindex int
	mac     [6]byte
	peer    int // AF_PACKET socket on mct1
}

var (
	txSource  = netip.MustParseAddr("198.18.1.2")
	txGroup   = netip.MustParseAddr("224.1.2.3")
	txAll     = netip.MustParseAddr("224.7.7.7") // a group without a port
	txMembers = []struct {
		addr netip.AddrPort
		mac  [6]byte
	}{
		{netip.MustParseAddrPort("198.18.2.2:4754"), [6]byte{2, 0, 0, 0, 2, 2}},
		{netip.MustParseAddrPort("198.18.3.2:4754"), [6]byte{2, 0, 0, 0, 3, 2}},
		{netip.MustParseAddrPort("198.18.4.2:5000"), [6]byte{2, 0, 0, 0, 4, 2}},
	}
)

const (
	txKey   = 7
	txSport = 5555
)

// inNetns runs f on a thread of its own in a new network namespace with the veth pair
// mct0-mct1 up; the thread, and with it the namespace, ends with f. f must run the programs
// itself, never in a subtest (t.Run), which runs on another thread, in the host's namespace:
// there a test run's clone would leave by whichever of the host's interfaces has the index.
func inNetns(t *testing.T, f func()) {
	needRoot(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with its namespace
		ns, err := netns.New()
		if err != nil {
			t.Errorf("new network namespace: %v", err)
			return
		}
		defer ns.Close()
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "mct0"}, PeerName: "mct1"}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Errorf("veth: %v", err)
			return
		}
		for _, name := range []string{"lo", "mct0", "mct1"} {
			l, err := netlink.LinkByName(name)
			if err == nil {
				err = netlink.LinkSetUp(l)
			}
			if err != nil {
				t.Errorf("%s up: %v", name, err)
				return
			}
		}
		f()
	}()
	<-done
}

// newTx loads the sender side and fills its tables by hand: group 224.1.2.3:65535 with the
// three members of txMembers, as user space would publish it.
func newTx(t *testing.T) *txHarness {
	s, err := LoadSender("mct0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	l, err := netlink.LinkByName("mct0")
	if err != nil {
		t.Fatal(err)
	}
	h := &txHarness{t: t, s: s, ifindex: l.Attrs().Index, mac: [6]byte(l.Attrs().HardwareAddr)}
	conf := senderSenderConfig{Key: txKey, Saddr: be32(txSource), Sport: be16(txSport), Mtu: 1500,
		Ifindex: uint32(h.ifindex), Smac: h.mac}
	if err := s.objs.Config.Put(uint32(0), &conf); err != nil {
		t.Fatal(err)
	}
	for i, m := range txMembers {
		e := senderFanoutEntry{Daddr: be32(m.addr.Addr()), Dport: be16(m.addr.Port()), Dmac: m.mac, Counter: uint32(i)}
		if err := s.objs.Fanout.Put(uint32(i), &e); err != nil {
			t.Fatal(err)
		}
	}
	h.route(txGroup, 65535, senderGroupRoute{Slot: 0, First: 0, Count: 3, Ready: 1})
	peer, err := net.InterfaceByName("mct1")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(be16(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: be16(unix.ETH_P_ALL), Ifindex: peer.Index}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	h.peer = fd
	return h
}

// fanOut publishes txGroup, port 65535, with m members: member i is fanMember(i), counted in
// member_stats[i].
func (h *txHarness) fanOut(m int) {
	h.t.Helper()
	for i := range m {
		addr, mac := fanMember(i)
		e := senderFanoutEntry{Daddr: be32(addr.Addr()), Dport: be16(addr.Port()), Dmac: mac, Counter: uint32(i)}
		if err := h.s.objs.Fanout.Put(uint32(i), &e); err != nil {
			h.t.Fatal(err)
		}
	}
	h.route(txGroup, 65535, senderGroupRoute{Slot: 0, First: 0, Count: uint32(m), Ready: uint8(senderRouteStateREADY)})
}

// fanMember is fanOut's member i: 198.18.2+i/250.2+i%250, port 4754, behind MAC
// 02:00:00:00:ii:ii.
func fanMember(i int) (netip.AddrPort, [6]byte) {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(2 + i/250), byte(2 + i%250)}), 4754),
		[6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)}
}

func (h *txHarness) route(group netip.Addr, port uint16, r senderGroupRoute) {
	h.t.Helper()
	if err := h.s.objs.Groups.Put(groupKey{group, port}.key(), &r); err != nil {
		h.t.Fatal(err)
	}
}

// run runs mctun_egress on one frame (with ctx, an __sk_buff, if not nil) and returns its
// verdict, the frame as it left, and the clones that reached mct1.
func (h *txHarness) run(pkt []byte, ctx []byte) (int32, []byte, [][]byte) {
	h.t.Helper()
	verdict, out, _ := h.runProg(h.s.objs.MctunEgress, pkt, ctx, ENCAPLEN)
	return verdict, out, h.clones(2)
}

// runProg runs prog on one frame with ctx (an __sk_buff; a zeroed one if nil), and returns
// its verdict, the frame as it left, grown by grow bytes, and its mark then.
func (h *txHarness) runProg(prog *ebpf.Program, pkt, ctx []byte, grow int) (int32, []byte, uint32) {
	h.t.Helper()
	if ctx == nil {
		ctx = make([]byte, skbCtxLen)
	}
	out := make([]byte, len(pkt)+256)
	ctxOut := make([]byte, len(ctx))
	ret, err := prog.Run(&ebpf.RunOptions{Data: pkt, DataOut: out, Context: ctx, ContextOut: ctxOut})
	if err != nil {
		h.t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return int32(ret), out[:len(pkt)+grow], binary.NativeEndian.Uint32(ctxOut[skbMark:])
}

// clones reads the tunnel packets that reach mct1, up to max of them, until none comes for
// 300 ms.
func (h *txHarness) clones(max int) [][]byte {
	var clones [][]byte
	for len(clones) < max {
		buf := make([]byte, 4096)
		n, _, err := unix.Recvfrom(h.peer, buf, 0)
		if err != nil {
			break
		}
		if n >= 14 && binary.BigEndian.Uint16(buf[12:]) == unix.ETH_P_IP && buf[14+9] == encap.ProtoUDP {
			clones = append(clones, buf[:n])
		}
	}
	return clones
}

// passOn runs mctun_fan_on on a frame mctun_egress (or the pass before) sent round, with its
// mark, as the source interface's ingress would, and returns its verdict, the frame as it
// left, and its mark then.
func (h *txHarness) passOn(pkt []byte, mark uint32) (int32, []byte, uint32) {
	h.t.Helper()
	ctx := make([]byte, skbCtxLen)
	binary.NativeEndian.PutUint32(ctx[skbMark:], mark)
	return h.runProg(h.s.objs.MctunFanOn, pkt, ctx, 0)
}

// send runs mctun_egress on one frame, and then mctun_fan_on on it for
// as long as it goes round, and returns the last verdict, the frame as it left, and how many
// passes it took.
func (h *txHarness) send(pkt []byte) (int32, []byte, int) {
	h.t.Helper()
	verdict, frame, mark := h.runProg(h.s.objs.MctunEgress, pkt, nil, ENCAPLEN)
	passes := 1
	for ; verdict == actRedirect && mark == fanOnMark && passes <= maxGroupMembers; passes++ {
		verdict, frame, mark = h.passOn(frame, mark)
	}
	return verdict, frame, passes
}

// setPass makes one pass send at most n copies.
func (h *txHarness) setPass(n uint32) {
	h.setConfig(func(c *senderSenderConfig) { c.Pass = n })
}

// setConfig changes the program's config as edit does.
func (h *txHarness) setConfig(edit func(*senderSenderConfig)) {
	h.t.Helper()
	var conf senderSenderConfig
	if err := h.s.objs.Config.Lookup(uint32(0), &conf); err != nil {
		h.t.Fatal(err)
	}
	edit(&conf)
	if err := h.s.objs.Config.Put(uint32(0), &conf); err != nil {
		h.t.Fatal(err)
	}
}

const (
	skbCtxLen = 192        // sizeof(struct __sk_buff)
	skbMark   = 8          // offsetof(struct __sk_buff, mark)
	fanOnMark = 0x6d63746e // bpf/sender.c's FAN_ON_MARK
)

// ENCAPLEN is what a tunnel packet adds in front of its inner packet: IPv4, UDP, GRE.
const ENCAPLEN = 20 + 8 + encap.HeaderLen

// multicastFrame is what an application's datagram looks like on the source interface.
func multicastFrame(src [6]byte, inner []byte) []byte {
	dst := inner[16:20]
	f := []byte{0x01, 0x00, 0x5e, dst[1] & 0x7f, dst[2], dst[3]}
	f = append(f, src[:]...)
	f = append(f, 0x08, 0x00)
	return append(f, inner...)
}

// wantTunnel is the frame that carries inner to member m of txMembers with sequence number
// seq, as both paths send it, but for the outer IPv4 identification, which the frame's own is
// copied into.
func (h *txHarness) wantTunnel(got []byte, m int, seq uint32, inner []byte) []byte {
	return h.wantTunnelTo(got, txMembers[m].addr, txMembers[m].mac, seq, inner)
}

// wantTunnelTo is wantTunnel's frame to the member at to, behind the next hop mac.
func (h *txHarness) wantTunnelTo(got []byte, to netip.AddrPort, mac [6]byte, seq uint32, inner []byte) []byte {
	f := append(mac[:], h.mac[:]...)
	f = append(f, 0x08, 0x00)
	buf := make([]byte, encap.Headroom+len(inner))
	copy(buf[encap.Headroom:], inner)
	ip := encaptest.IPv4Packet(txSource, to.Addr(), encap.ProtoUDP,
		udp(txSport, to.Port(), encap.Encapsulate(buf, len(inner), encap.Header{Key: txKey, Seq: seq})))
	ip[8] = 64 // a TTL of 64, as the kernel's sockets send
	if len(got) >= 20 {
		copy(ip[4:6], got[18:20])
	}
	encaptest.SetHeaderChecksum(ip)
	return append(f, ip...)
}

// member returns member counter c's counts.
func (h *txHarness) member(c uint32) senderMemberCount {
	h.t.Helper()
	var v senderMemberCount
	if err := h.s.objs.MemberStats.Lookup(c, &v); err != nil {
		h.t.Fatal(err)
	}
	return v
}

// testHost readies links as the daemon's does, in the test's namespace: the caller runs on
// its thread.
func testHost(t *testing.T) Host {
	nl, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	return routehost.NewHost(nl, nil)
}

// handoffReader reads a hand-off TUN in the background.
type handoffReader struct {
	*Handoff
	read chan []byte
}

// openHandoff opens the hand-off TUN, as Start does, points the program at it, and reads it.
func (h *txHarness) openHandoff() *handoffReader {
	return h.readHandoff(h.newHandoff())
}

// newHandoff opens the hand-off TUN, as Start does, and points the program at it.
func (h *txHarness) newHandoff() *Handoff {
	h.t.Helper()
	ho, err := openHandoff(testHost(h.t), h.s.handoffDrops)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { ho.Close() })
	h.setConfig(func(c *senderSenderConfig) { c.Handoff = ho.index })
	return ho
}

// readHandoff reads ho from now on, in the background.
func (h *txHarness) readHandoff(ho *Handoff) *handoffReader {
	r := &handoffReader{Handoff: ho, read: make(chan []byte, 16)}
	go func() {
		bufs, sizes := [][]byte{make([]byte, ho.MaxPacketSize())}, []int{0}
		for {
			if _, err := ho.Read(bufs, sizes, 0); err != nil {
				return
			}
			r.read <- slices.Clone(bufs[0][:sizes[0]])
		}
	}()
	return r
}

// take returns the packets the hand-off read, until none comes for 100 ms.
func (r *handoffReader) take() [][]byte {
	var got [][]byte
	for {
		select {
		case p := <-r.read:
			got = append(got, p)
		case <-time.After(100 * time.Millisecond):
			return got
		}
	}
}

// paths returns the sender side's path counters.
func (h *txHarness) paths() map[string]uint64 { return h.s.Paths() }

func TestEgressFansOut(t *testing.T) {
	inNetns(t, func() {
		h := newTx(t)
		inner := innerUDP(txSource, txGroup, 65535, 100)
		for seq := range uint32(2) {
			verdict, out, clones := h.run(multicastFrame(h.mac, inner), nil)
			if verdict != actUnspec {
				t.Fatalf("verdict %d, want the packet to go on (%d)", verdict, actUnspec)
			}
			// The packet itself goes to the last member, a clone to each of the others.
			if want := h.wantTunnel(out, 2, seq, inner); !bytes.Equal(out, want) {
				t.Errorf("packet %d, to the last member:\n% x\nwant\n% x", seq, out, want)
			}
			if len(clones) != 2 {
				t.Fatalf("packet %d: %d clones reached mct1, want 2", seq, len(clones))
			}
			for i, c := range clones {
				if want := h.wantTunnel(c, i, seq, inner); !bytes.Equal(c, want) {
					t.Errorf("packet %d, clone to member %d:\n% x\nwant\n% x", seq, i, c, want)
				}
				if encap.Checksum(0, c[14:34]) != 0 {
					t.Errorf("clone to member %d: outer IPv4 checksum wrong", i)
				}
			}
		}
		if p := h.paths(); p["kernel"] != 2 {
			t.Errorf("paths %v, want 2 in the kernel", p)
		}
		if n, b := h.s.gstats.word(0, 0).Load(), h.s.gstats.word(0, 1).Load(); n != 2 || b != 2*uint64(len(inner)) {
			t.Errorf("group counted %d packets, %d bytes; want 2, %d", n, b, 2*len(inner))
		}
		for i := range txMembers {
			c := h.member(uint32(i))
			n, b, e := c.Packets, c.Bytes, c.Errors
			if want := 2 * uint64(encap.HeaderLen+len(inner)); n != 2 || b != want || e != 0 {
				t.Errorf("member %d counted %d packets, %d bytes, %d errors; want 2, %d, 0", i, n, b, e, want)
			}
		}
	})
}

// What the kernel path cannot forward in place goes on unchanged, counted by why, and user
// space gets a copy through the hand-off, byte for byte; so does the multicast no group
// takes, which goes on uncounted. IGMP and unicast go on, and user space gets nothing.
func TestEgressLeavesToUserSpace(t *testing.T) {
	inNetns(t, func() {
		h := newTx(t)
		handoff := h.openHandoff()
		h.route(txAll, 0, senderGroupRoute{Slot: 1, First: 0, Count: 3, Ready: 1})
		h.route(netip.MustParseAddr("224.8.8.8"), 0, senderGroupRoute{Slot: 2, First: 0, Count: 3, Ready: 0})
		h.route(txGroup, 0, senderGroupRoute{Slot: 3, First: 0, Count: 3, Ready: 1}) // 224.1.2.3 also without a port
		fragment := innerUDP(txSource, txAll, 1, 16)
		fragment[6] = 0x20 // MF
		fixIPChecksum(fragment)
		broken := innerUDP(txSource, txAll, 1, 16)
		broken[10] ^= 0xff
		gso := make([]byte, skbCtxLen)
		binary.NativeEndian.PutUint32(gso[164:], 2) // __sk_buff.gso_segs
		for _, tt := range []struct {
			name   string
			inner  []byte
			ctx    []byte
			path   string
			handed bool // to user space
		}{
			{"no group", innerUDP(txSource, netip.MustParseAddr("224.9.9.9"), 1, 16), nil, "", true},
			{"two groups take it", innerUDP(txSource, txGroup, 65535, 16), nil, "user_two_groups", true},
			{"a fragment", fragment, nil, "user_fragment", true},
			{"too big to tunnel whole", innerUDP(txSource, txAll, 1, 1500-20-8-ENCAPLEN+1), nil, "user_too_big", true},
			{"a next hop not known", innerUDP(txSource, netip.MustParseAddr("224.8.8.8"), 1, 16), nil, "user_next_hop_unknown", true},
			{"a broken inner packet", broken, nil, "user_check", true},
			{"GSO", innerUDP(txSource, txAll, 1, 16), gso, "user_gso", true},
			{"IGMP", encaptest.IPv4Packet(txSource, netip.MustParseAddr("224.0.0.22"), encap.ProtoIGMP, make([]byte, 8)), nil, "", false},
			{"unicast", innerUDP(txSource, netip.MustParseAddr("198.18.9.9"), 1, 16), nil, "", false},
		} {
			before := h.paths()
			pkt := multicastFrame(h.mac, tt.inner)
			verdict, out, clones := h.run(pkt, tt.ctx)
			after := h.paths()
			if verdict != actUnspec || !bytes.Equal(out[:len(pkt)], pkt) || len(clones) != 0 {
				t.Errorf("%s: verdict %d, %d clones, out\n% x\nwant the packet on, unchanged", tt.name, verdict, len(clones), out[:len(pkt)])
			}
			var want [][]byte
			if tt.handed {
				want = [][]byte{tt.inner}
			}
			if got := handoff.take(); !slices.EqualFunc(got, want, bytes.Equal) {
				t.Errorf("%s: the hand-off read\n% x\nwant\n% x", tt.name, got, want)
			}
			for name, n := range after {
				want := uint64(0)
				if name == tt.path {
					want = 1
				}
				if n-before[name] != want {
					t.Errorf("%s: path %s moved by %d, want %d", tt.name, name, n-before[name], want)
				}
			}
		}
	})
}

// A copy for user space that the hand-off does not take is counted as its drop: when the
// hand-off is not there, and when user space falls behind and its queue fills.
func TestHandoffDrops(t *testing.T) {
	inNetns(t, func() {
		h := newTx(t)
		pkt := multicastFrame(h.mac, innerUDP(txSource, netip.MustParseAddr("224.9.9.9"), 1, 16))
		handoff := h.newHandoff()
		const n = 3 * handoffQueue
		for range n {
			if verdict, out, _ := h.runProg(h.s.objs.MctunEgress, pkt, nil, 0); verdict != actUnspec || !bytes.Equal(out, pkt) {
				t.Fatalf("verdict %d, out\n% x\nwant the packet on, unchanged", verdict, out)
			}
		}
		r := h.readHandoff(handoff)
		read := len(r.take())
		if st := handoff.Stats(); st.Drops == 0 || uint64(read) != st.Packets || st.Packets+st.Drops != n {
			t.Errorf("%d copies, none read while they came: %d read, stats %+v; want read and dropped = %d, some dropped", n, read, st, n)
		} else {
			t.Logf("%d copies, none read while they came: %d read, %d dropped", n, read, st.Drops)
		}

		handoff.Close() // the kernel removes it: the program's copies have nowhere to go
		before := handoff.Stats().Drops
		if verdict, out, _ := h.runProg(h.s.objs.MctunEgress, pkt, nil, 0); verdict != actUnspec || !bytes.Equal(out, pkt) {
			t.Errorf("with no hand-off: verdict %d, out\n% x\nwant the packet on, unchanged", verdict, out)
		}
		if st := handoff.Stats(); st.Drops != before+1 {
			t.Errorf("with no hand-off: stats %+v, want one more drop than %d", st, before)
		}
	})
}

// A group with more members than one pass sends gets them pass after pass: the packet comes
// round through mctun_fan_on, each pass sends its clones, the last member gets the packet
// itself, and every copy is the one tunnel packet, but for where it goes.
func TestEgressFansOutInPasses(t *testing.T) {
	inNetns(t, func() {
		h := newTx(t)
		const m = 10
		h.fanOut(m)
		h.setPass(4)
		inner := innerUDP(txSource, txGroup, 65535, 100)
		for seq := range uint32(2) {
			verdict, out, passes := h.send(multicastFrame(h.mac, inner))
			if verdict != actRedirect || passes != 3 {
				t.Fatalf("packet %d: verdict %d after %d passes, want it redirected (%d) after 3 (4 + 4 + 2 members)", seq, verdict, passes, actRedirect)
			}
			to, mac := fanMember(m - 1)
			if want := h.wantTunnelTo(out, to, mac, seq, inner); !bytes.Equal(out, want) {
				t.Errorf("packet %d, to the last member:\n% x\nwant\n% x", seq, out, want)
			}
			clones := h.clones(m)
			if len(clones) != m-1 {
				t.Fatalf("packet %d: %d clones reached mct1, want %d", seq, len(clones), m-1)
			}
			for i, c := range clones {
				to, mac := fanMember(i)
				if want := h.wantTunnelTo(c, to, mac, seq, inner); !bytes.Equal(c, want) {
					t.Errorf("packet %d, clone to member %d:\n% x\nwant\n% x", seq, i, c, want)
				}
			}
		}
		for i := range m {
			if c := h.member(uint32(i)); c.Packets != 2 || c.Errors != 0 {
				t.Errorf("member %d counted %d packets, %d errors; want 2, 0", i, c.Packets, c.Errors)
			}
		}
		if p := h.paths(); p["kernel"] != 2 {
			t.Errorf("paths %v, want 2 in the kernel", p)
		}
		if n := h.s.gstats.word(0, 0).Load(); n != 2 {
			t.Errorf("group counted %d packets, want 2", n)
		}
	})
}

// mctun_fan_on takes only what mctun_egress sent round: a frame without its mark, or with
// it but not this host's tunnel packet, goes on unchanged and sends nothing.
func TestFanOnTakesOnlyItsOwn(t *testing.T) {
	inNetns(t, func() {
		h := newTx(t)
		h.fanOut(10)
		h.setPass(4)
		verdict, round, mark := h.runProg(h.s.objs.MctunEgress, multicastFrame(h.mac, innerUDP(txSource, txGroup, 65535, 100)), nil, ENCAPLEN)
		if verdict != actRedirect || mark != fanOnMark {
			t.Fatalf("verdict %d, mark %#x: want the packet sent round (%d) with the mark", verdict, mark, actRedirect)
		}
		if n := len(h.clones(10)); n != 4 {
			t.Fatalf("the first pass sent %d clones, want 4", n)
		}
		otherSource := slices.Clone(round)
		copy(otherSource[14+12:], []byte{198, 18, 1, 9})
		fixIPChecksum(otherSource[14:])
		for _, tt := range []struct {
			name  string
			frame []byte
			mark  uint32
		}{
			{"without the mark", round, 0},
			{"another mark", round, fanOnMark + 1},
			{"another source", otherSource, fanOnMark},
			{"a tunnel packet from the network", h.wantTunnel(nil, 0, 0, innerUDP(txSource, txGroup, 65535, 100)), fanOnMark},
		} {
			verdict, out, _ := h.passOn(tt.frame, tt.mark)
			if verdict != actUnspec || !bytes.Equal(out, tt.frame) {
				t.Errorf("%s: verdict %d, out\n% x\nwant it on (%d), unchanged", tt.name, verdict, out, actUnspec)
			}
			if n := len(h.clones(1)); n != 0 {
				t.Errorf("%s: %d clones sent", tt.name, n)
			}
		}
	})
}

// Every member of the largest group gets its copy, pass after pass: none is skipped.
func TestEgressFansOutToEveryMember(t *testing.T) {
	inNetns(t, func() {
		h := newTx(t)
		const m = 4096
		h.fanOut(m)
		h.setPass(uint32(passCopies()))
		unix.SetsockoptInt(h.peer, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		verdict, _, passes := h.send(multicastFrame(h.mac, innerUDP(txSource, txGroup, 65535, 64)))
		if verdict != actRedirect {
			t.Fatalf("verdict %d, want the packet redirected to the last member", verdict)
		}
		var missed []int
		for i := range m {
			if c := h.member(uint32(i)); c.Packets != 1 || c.Errors != 0 {
				missed = append(missed, i)
			}
		}
		if len(missed) > 0 {
			t.Errorf("%d of %d members got no copy, the first %d", len(missed), m, missed[0])
		}
		if n := len(h.clones(m)); n != m-1 {
			t.Errorf("%d clones reached mct1, want %d", n, m-1)
		}
		t.Logf("%d members in %d passes of %d, every one sent its copy", m, passes, passCopies())
	})
}

// A member with no route is sent nothing and counted a send error per packet; the others
// get theirs.
func TestEgressUnreachableMember(t *testing.T) {
	inNetns(t, func() {
		h := newTx(t)
		h.route(txGroup, 65535, senderGroupRoute{Slot: 0, First: 0, Count: 2, Unreachable: 1, Ready: 1})
		inner := innerUDP(txSource, txGroup, 65535, 100)
		_, out, clones := h.run(multicastFrame(h.mac, inner), nil)
		if want := h.wantTunnel(out, 1, 0, inner); !bytes.Equal(out, want) || len(clones) != 1 {
			t.Errorf("%d clones, packet\n% x\nwant one clone and the packet to member 1\n% x", len(clones), out, want)
		}
		if e := h.member(2).Errors; e != 1 {
			t.Errorf("the unreachable member counted %d errors, want 1", e)
		}
		if e := h.s.gstats.word(0, 2).Load(); e != 1 {
			t.Errorf("its group counted %d errors, want 1", e)
		}
	})
}

// The largest group's copies all leave, as an application sends: the programs attached to
// mct0, a datagram sent to the group from a socket, and the copies counted on mct1. All of
// one pass go into the backlog at once, the next pass's after the backlog took them in.
// (In one pass, most would be lost: logged, for comparison.)
func TestLargestGroupLeavesWhole(t *testing.T) {
	inNetns(t, func() {
		h := newTx(t)
		const m, datagrams = 4096, 3
		h.fanOut(m)
		l, err := netlink.LinkByIndex(h.ifindex)
		if err == nil {
			err = netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: txSource.AsSlice(), Mask: net.CIDRMask(24, 32)}})
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := h.s.attach(h.ifindex, "mct0", "ingress", secondFilter, h.s.objs.MctunFanOn); err != nil {
			t.Fatal(err)
		}
		if err := h.s.attach(h.ifindex, "mct0", "egress", firstFilter, h.s.objs.MctunEgress); err != nil {
			t.Fatal(err)
		}
		unix.SetsockoptInt(h.peer, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(h.ifindex)}); err != nil {
			t.Fatal(err)
		}
		to := &unix.SockaddrInet4{Port: 65535, Addr: txGroup.As4()}

		// sent sends one datagram and returns to how many members its copies came.
		sent := func() int {
			if err := unix.Sendto(fd, make([]byte, 64), 0, to); err != nil {
				t.Fatalf("send: %v", err)
			}
			seen := make(map[netip.AddrPort]bool, m)
			for _, c := range h.clones(m) {
				if len(c) >= 14+28 && c[14+9] == encap.ProtoUDP {
					seen[netip.AddrPortFrom(netip.AddrFrom4([4]byte(c[14+16:14+20])), binary.BigEndian.Uint16(c[14+22:]))] = true
				}
			}
			return len(seen)
		}
		h.setPass(0)
		t.Logf("in one pass: the copies of a datagram came to %d of %d members", sent(), m)
		h.setPass(uint32(passCopies()))
		for i := range datagrams {
			if n := sent(); n != m {
				t.Errorf("datagram %d: its copies came to %d of %d members", i, n, m)
			}
		}
		if c := h.member(0); c.Packets != datagrams+1 {
			t.Errorf("member 0 counted %d packets, want %d", c.Packets, datagrams+1)
		}
	})
}
