package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"testing"
	"time"

	"mctun/capture/capturetest"
	"mctun/config"
	"mctun/encap"
	"mctun/encap/encaptest"
	"mctun/tun/tuntest"
)

var (
	sourceAddr = netip.MustParseAddr("198.18.1.2")
	group      = netip.MustParseAddrPort("224.1.2.3:65535")
	quiet      = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// world is one source and some members wired through the in-memory twins of every edge.
type world struct {
	t       *testing.T
	net     *encaptest.Network
	capture *capturetest.Source
	sender  *Sender
	members map[netip.AddrPort]*memberHost
	auth    *encap.Auth
	encrypt bool
}

type memberHost struct {
	conn     *encaptest.Conn
	dev      *tuntest.Device
	receiver *Receiver
}

func newWorld(t *testing.T, groups []config.Group, members ...string) *world {
	t.Helper()
	return newAuthWorld(t, nil, false, groups, members...)
}

// newAuthWorld is newWorld with the authenticated tunnel when auth is not nil.
func newAuthWorld(t *testing.T, auth *encap.Auth, encrypt bool, groups []config.Group, members ...string) *world {
	t.Helper()
	w := &world{t: t, net: encaptest.NewNetwork(), capture: capturetest.New(64),
		members: make(map[netip.AddrPort]*memberHost), auth: auth, encrypt: encrypt}
	for _, m := range members {
		w.addMember(netip.MustParseAddrPort(m), config.Member{MTU: 1500, Sources: []netip.Addr{sourceAddr}})
	}
	conn := w.net.Listen(netip.AddrPortFrom(sourceAddr, 40000))
	var seal *encap.Sealer
	if auth != nil {
		var err error
		if seal, err = auth.NewSealer(1000, encrypt); err != nil {
			t.Fatal(err)
		}
	}
	w.sender = NewSender(conn, 7, groups, seal, quiet)
	done := make(chan error, 1)
	go func() { done <- w.sender.Run(w.capture) }()
	t.Cleanup(func() {
		w.capture.Close()
		conn.Close()
		if err := <-done; err != nil {
			t.Errorf("sender: %v", err)
		}
	})
	return w
}

func (w *world) addMember(addr netip.AddrPort, m config.Member) *memberHost {
	h := &memberHost{conn: w.net.Listen(addr), dev: tuntest.New(256)}
	var open *encap.Opener
	if w.auth != nil {
		open = w.auth.NewOpener(w.encrypt)
	}
	h.receiver = NewReceiver(h.conn, h.dev, 7, m, open, nil, quiet)
	done := make(chan error, 1)
	go func() { done <- h.receiver.Run(true) }()
	w.t.Cleanup(func() {
		h.conn.Close()
		h.dev.Close()
		if err := <-done; err != nil {
			w.t.Errorf("receiver %v: %v", addr, err)
		}
	})
	w.members[addr] = h
	return h
}

// expect waits for the next packet the member injects into its TUN.
func (h *memberHost) expect(t *testing.T) []byte {
	t.Helper()
	select {
	case p := <-h.dev.Injected:
		return p
	case <-time.After(2 * time.Second):
		t.Fatal("no packet injected")
		return nil
	}
}

// flow returns the member's first flow once it has counted packets delivered: the receiver
// side counts a packet after the TUN took it, so a test that saw the packet arrive waits
// for the count.
func (h *memberHost) flow(t *testing.T, packets uint64) FlowStats {
	t.Helper()
	var f FlowStats
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if flows := h.receiver.Stats().Flows; len(flows) > 0 {
			if f = flows[0]; f.Packets >= packets {
				break
			}
		}
	}
	return f
}

// expectNothing checks the member injected nothing more.
func (h *memberHost) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case p := <-h.dev.Injected:
		t.Fatalf("unexpected packet injected: % x", p[:min(len(p), 40)])
	case <-time.After(50 * time.Millisecond):
	}
}

func groupsOf(members ...string) []config.Group {
	g := config.Group{Address: group.Addr(), Port: group.Port()}
	for _, m := range members {
		g.Members = append(g.Members, netip.MustParseAddrPort(m))
	}
	return []config.Group{g}
}

func payload(i int) []byte { return []byte(fmt.Sprintf("datagram %05d", i)) }

func TestStreamReachesEveryMember(t *testing.T) {
	members := []string{"198.18.2.2:4754", "198.18.3.2:4754", "198.18.4.2:4754"}
	w := newWorld(t, groupsOf(members...), members...)
	const n = 200
	for i := range n {
		w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, payload(i))
	}
	for _, m := range members {
		h := w.members[netip.MustParseAddrPort(m)]
		for i := range n {
			if got, want := h.expect(t), encaptest.UDPPacket(sourceAddr, group, payload(i)); !bytes.Equal(got, want) {
				t.Fatalf("%s packet %d = % x, want % x", m, i, got, want)
			}
		}
		st := h.receiver.Stats()
		if len(st.Flows) != 1 || st.Flows[0].Packets != n || st.Flows[0].Lost != 0 || st.Flows[0].Source != sourceAddr {
			t.Errorf("%s flows = %+v, want one flow of %d packets from %v, none lost", m, st.Flows, n, sourceAddr)
		}
	}
	st := senderStats(w.sender)
	if g := st.Groups[0]; g.Packets != n || len(g.Members) != 3 || g.Members[2].Packets != n {
		t.Errorf("sender stats = %+v", st)
	}
}

// TestSequencePerGroup checks the wire: key, and a sequence number per group from 0.
func TestSequencePerGroup(t *testing.T) {
	other := netip.MustParseAddrPort("224.9.9.9:5000")
	groups := append(groupsOf("198.18.2.2:4754"), config.Group{Address: other.Addr(), Port: other.Port(),
		Members: []netip.AddrPort{netip.MustParseAddrPort("198.18.2.2:4754")}})
	w := newWorld(t, groups)
	tap := w.net.Listen(netip.MustParseAddrPort("198.18.2.2:4754"))
	defer tap.Close()
	for _, dst := range []netip.AddrPort{group, group, other, group, other} {
		w.capture.Packets <- encaptest.UDPPacket(sourceAddr, dst, nil)
	}
	wantSeq := []uint32{0, 1, 0, 2, 1}
	bufs, sizes, from := [][]byte{make([]byte, 2000)}, []int{0}, []netip.AddrPort{{}}
	for i, want := range wantSeq {
		if _, err := tap.ReadBatch(bufs, sizes, from); err != nil {
			t.Fatal(err)
		}
		h, _, err := encap.ParseHeader(bufs[0][:sizes[0]])
		if err != nil || h.Key != 7 || h.Seq != want {
			t.Fatalf("tunnel packet %d header = %+v, %v; want key 7 seq %d", i, h, err, want)
		}
	}
}

func TestOnlyConfiguredGroupAndPortForwarded(t *testing.T) {
	w := newWorld(t, groupsOf("198.18.2.2:4754"), "198.18.2.2:4754")
	h := w.members[netip.MustParseAddrPort("198.18.2.2:4754")]
	w.capture.Packets <- encaptest.UDPPacket(sourceAddr, netip.MustParseAddrPort("224.1.2.3:5000"), nil)  // other port
	w.capture.Packets <- encaptest.UDPPacket(sourceAddr, netip.MustParseAddrPort("224.1.2.4:65535"), nil) // other group
	w.capture.Packets <- encaptest.IPv4Packet(sourceAddr, group.Addr(), 112, make([]byte, 20))            // not UDP
	w.capture.Packets <- encaptest.IPv4Packet(sourceAddr, group.Addr(), encap.ProtoIGMP, make([]byte, 8))
	w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, []byte("the one"))
	if got := h.expect(t); !bytes.Equal(got, encaptest.UDPPacket(sourceAddr, group, []byte("the one"))) {
		t.Fatalf("injected % x", got)
	}
	h.expectNothing(t)
	if d := senderStats(w.sender).Drops; d["no_group"] != 3 || d["igmp"] != 1 {
		t.Errorf("sender drops = %v, want no_group 3, igmp 1", d)
	}
}

// TestFragmentsFollowTheirFirst sends a datagram in three fragments to a group with a port:
// only the first carries the port, all three must be forwarded.
func TestFragmentsFollowTheirFirst(t *testing.T) {
	w := newWorld(t, groupsOf("198.18.2.2:4754"), "198.18.2.2:4754")
	h := w.members[netip.MustParseAddrPort("198.18.2.2:4754")]
	frags := fragments(encaptest.UDPPacket(sourceAddr, group, make([]byte, 3000)), 1480)
	for _, f := range frags {
		w.capture.Packets <- f
	}
	for i, f := range frags {
		if got := h.expect(t); !bytes.Equal(got, f) {
			t.Fatalf("fragment %d differs", i)
		}
	}
	// A fragment of another datagram, whose first was never seen, has no port to match.
	stray := append([]byte(nil), frags[1]...)
	binary.BigEndian.PutUint16(stray[4:], 0x9999)
	encaptest.SetHeaderChecksum(stray)
	w.capture.Packets <- stray
	h.expectNothing(t)
	if d := senderStats(w.sender).Drops["no_group"]; d != 1 {
		t.Errorf("no_group drops = %d, want 1", d)
	}
}

// fragments splits an unfragmented IPv4 packet as a host's stack would.
func fragments(pkt []byte, size int) [][]byte {
	hdr, data := pkt[:20], pkt[20:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append(append([]byte{}, hdr...), data[off:end]...)
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		word := uint16(off / 8)
		if end < len(data) {
			word |= 0x2000
		}
		binary.BigEndian.PutUint16(f[6:], word)
		encaptest.SetHeaderChecksum(f)
		out = append(out, f)
	}
	return out
}

func TestFailingMemberCostsOthersNothing(t *testing.T) {
	// 198.18.9.9 has no Conn on the network: every send to it fails.
	w := newWorld(t, groupsOf("198.18.2.2:4754", "198.18.9.9:4754", "198.18.3.2:4754"),
		"198.18.2.2:4754", "198.18.3.2:4754")
	const n = 50
	for i := range n {
		w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, payload(i))
	}
	for _, m := range []string{"198.18.2.2:4754", "198.18.3.2:4754"} {
		for range n {
			w.members[netip.MustParseAddrPort(m)].expect(t)
		}
	}
	st := senderStats(w.sender)
	bad := st.Groups[0].Members[1]
	if bad.Errors != n || bad.Packets != 0 || bad.LastError == "" || st.Drops["send_failed"] != n {
		t.Errorf("failing member stats = %+v, drops %v", bad, st.Drops)
	}
}

// TestSameAddressTwoGroups: one group takes every packet to an address, another only one port;
// a packet to that port reaches both groups' members, each with its own sequence.
func TestSameAddressTwoGroups(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testSameAddressTwoGroups(t, nil, false) })
	t.Run("authenticated", func(t *testing.T) { testSameAddressTwoGroups(t, testAuth(t), false) })
	// Sealing encrypts the inner packet in place: the second group's copy must be of the
	// clear text.
	t.Run("encrypted", func(t *testing.T) { testSameAddressTwoGroups(t, testAuth(t), true) })
}

func testSameAddressTwoGroups(t *testing.T, auth *encap.Auth, encrypt bool) {
	groups := []config.Group{
		{Address: group.Addr(), Members: []netip.AddrPort{netip.MustParseAddrPort("198.18.2.2:4754")}},
		{Address: group.Addr(), Port: group.Port(), Members: []netip.AddrPort{netip.MustParseAddrPort("198.18.3.2:4754")}},
	}
	w := newAuthWorld(t, auth, encrypt, groups, "198.18.2.2:4754", "198.18.3.2:4754")
	all, port := w.members[netip.MustParseAddrPort("198.18.2.2:4754")], w.members[netip.MustParseAddrPort("198.18.3.2:4754")]
	vrrp := encaptest.IPv4Packet(sourceAddr, group.Addr(), 112, make([]byte, 20))
	w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, []byte("to the port"))
	w.capture.Packets <- vrrp
	for _, h := range []*memberHost{all, port} {
		if got := h.expect(t); !bytes.Equal(got, encaptest.UDPPacket(sourceAddr, group, []byte("to the port"))) {
			t.Fatalf("injected % x", got)
		}
	}
	if got := all.expect(t); !bytes.Equal(got, vrrp) {
		t.Fatalf("injected % x, want the VRRP packet", got)
	}
	port.expectNothing(t)
	for _, h := range []*memberHost{all, port} {
		if f := h.receiver.Stats().Flows; f[0].Lost != 0 {
			t.Errorf("flows %+v: a member sees one sequence space per group address, with no gap", f)
		}
	}
}

func TestSetGroupsKeepsSequence(t *testing.T) {
	w := newWorld(t, groupsOf("198.18.2.2:4754"))
	tap := w.net.Listen(netip.MustParseAddrPort("198.18.2.2:4754"))
	defer tap.Close()
	read := func() encap.Header {
		bufs, sizes, from := [][]byte{make([]byte, 2000)}, []int{0}, []netip.AddrPort{{}}
		if _, err := tap.ReadBatch(bufs, sizes, from); err != nil {
			t.Fatal(err)
		}
		h, _, _ := encap.ParseHeader(bufs[0][:sizes[0]])
		return h
	}
	w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, nil)
	read()
	w.sender.Configure(7, append(groupsOf("198.18.2.2:4754"), config.Group{Address: netip.MustParseAddr("224.5.5.5"),
		Members: []netip.AddrPort{netip.MustParseAddrPort("198.18.3.2:4754")}}))
	w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, nil)
	if h := read(); h.Seq != 1 {
		t.Fatalf("seq after SetGroups = %d, want 1: an unchanged group keeps its numbering", h.Seq)
	}
	if p := senderStats(w.sender).Groups[0].Members[0].Packets; p != 2 {
		t.Fatalf("member packets after SetGroups = %d, want 2", p)
	}
}

// TestReceiverDrops sends one bad tunnel packet of each kind and checks that each is dropped,
// counted under its reason, and that a good one still gets through.
func TestReceiverDrops(t *testing.T) {
	w := newWorld(t, nil)
	member := netip.MustParseAddrPort("198.18.2.2:4754")
	h := w.addMember(member, config.Member{MTU: 1500, Sources: []netip.Addr{sourceAddr},
		Groups: []netip.Addr{group.Addr(), netip.MustParseAddr("224.0.0.18")}})
	from := netip.AddrPortFrom(sourceAddr, 40000)
	tunnel := func(key uint32, inner []byte) []byte {
		var hdr [encap.HeaderLen]byte
		encap.PutHeader(hdr[:], encap.Header{Key: key, Seq: 0})
		return append(hdr[:], inner...)
	}
	good := encaptest.UDPPacket(sourceAddr, group, []byte("good"))
	tests := []struct {
		reason string
		from   netip.AddrPort
		pkt    []byte
	}{
		{"unknown_source", netip.MustParseAddrPort("198.18.66.6:40000"), tunnel(7, good)},
		{"wrong_key", from, tunnel(8, good)},
		{"bad_tunnel_header", from, tunnel(7, good)[:encap.HeaderLen-2]},
		{"bad_tunnel_header", from, append([]byte{0x20, 0, 8, 0, 0, 0, 0, 7}, good...)},
		{"malformed", from, tunnel(7, good[:len(good)-1])},
		{"not_ipv4", from, tunnel(7, append([]byte{0x60}, make([]byte, 39)...))},
		{"not_multicast", from, tunnel(7, encaptest.UDPPacket(sourceAddr, netip.MustParseAddrPort("198.18.2.2:65535"), nil))},
		{"group_not_allowed", from, tunnel(7, encaptest.UDPPacket(sourceAddr, netip.MustParseAddrPort("224.1.2.4:65535"), nil))},
		{"too_big", from, tunnel(7, encaptest.UDPPacket(sourceAddr, group, make([]byte, 1500)))},
		{"igmp", from, tunnel(7, encaptest.IPv4Packet(sourceAddr, group.Addr(), encap.ProtoIGMP, make([]byte, 8)))},
	}
	// One at a time, each followed by a good packet that shows the bad one was handled: its
	// counter, and only its counter, moves by one.
	want := h.receiver.Stats().Drops
	for _, tt := range tests {
		if err := w.net.Inject(tt.from, member, tt.pkt); err != nil {
			t.Fatal(err)
		}
		w.net.Inject(from, member, tunnel(7, good))
		if got := h.expect(t); !bytes.Equal(got, good) {
			t.Fatalf("%s: injected % x, want the good packet", tt.reason, got)
		}
		want[tt.reason]++
		if got := h.receiver.Stats().Drops; !maps.Equal(got, want) {
			t.Errorf("after one %s packet, drops = %v, want %v", tt.reason, got, want)
		}
	}
	h.expectNothing(t)
}

// TestFlowCounters: lost, reordered and duplicated come from the sequence numbers, and each
// moves on its event only.
func TestFlowCounters(t *testing.T) {
	w := newWorld(t, nil)
	member := netip.MustParseAddrPort("198.18.2.2:4754")
	h := w.addMember(member, config.Member{MTU: 1500, Sources: []netip.Addr{sourceAddr}})
	from := netip.AddrPortFrom(sourceAddr, 40000)
	type counts struct{ packets, lost, reordered, duplicates uint64 }
	for i, step := range []struct {
		seq  uint32
		want counts
	}{
		{0, counts{1, 0, 0, 0}},
		{1, counts{2, 0, 0, 0}},
		{4, counts{3, 2, 0, 0}}, // 2 and 3 missing
		{2, counts{4, 1, 1, 0}}, // 2 was late, not lost
		{2, counts{5, 1, 1, 1}},
		{5, counts{6, 1, 1, 1}},
	} {
		var hdr [encap.HeaderLen]byte
		encap.PutHeader(hdr[:], encap.Header{Key: 7, Seq: step.seq})
		w.net.Inject(from, member, append(hdr[:], encaptest.UDPPacket(sourceAddr, group, payload(i))...))
		h.expect(t)
		f := h.flow(t, step.want.packets)
		if got := (counts{f.Packets, uint64(f.Lost), f.Reordered, f.Duplicates}); got != step.want {
			t.Errorf("after seq %d: %+v, want %+v", step.seq, got, step.want)
		}
	}
}

// TestSenderDrops: a packet too big to tunnel, and one that is not a valid inner packet, are
// counted as such; only their counters move.
func TestSenderDrops(t *testing.T) {
	w := newWorld(t, groupsOf("198.18.2.2:4754"), "198.18.2.2:4754")
	h := w.members[netip.MustParseAddrPort("198.18.2.2:4754")]
	good := encaptest.UDPPacket(sourceAddr, group, []byte("good"))
	want := senderStats(w.sender).Drops
	for _, tt := range []struct {
		reason string
		pkt    []byte
	}{
		{"too_big", encaptest.UDPPacket(sourceAddr, group, make([]byte, 65500))},
		{"malformed", good[:len(good)-1]},
		{"ip_options", func() []byte {
			b := encaptest.IPv4Packet(sourceAddr, group.Addr(), 17, make([]byte, 12))
			b[0] = 0x46
			encaptest.SetHeaderChecksum(b)
			return b
		}()},
	} {
		w.capture.Packets <- tt.pkt
		w.capture.Packets <- good
		h.expect(t)
		want[tt.reason]++
		if got := senderStats(w.sender).Drops; !maps.Equal(got, want) {
			t.Errorf("after one %s packet, sender drops = %v, want %v", tt.reason, got, want)
		}
	}
}

// TestHostMulticastIntoTUN: on a member that is not a source, what the host sends into the TUN
// is read and counted, never forwarded.
func TestHostMulticastIntoTUN(t *testing.T) {
	w := newWorld(t, nil)
	h := w.addMember(netip.MustParseAddrPort("198.18.2.2:4754"), config.Member{MTU: 1500, Sources: []netip.Addr{sourceAddr}})
	h.dev.Outbound <- encaptest.IPv4Packet(netip.MustParseAddr("169.254.47.54"), netip.MustParseAddr("224.0.0.22"), 2, make([]byte, 8))
	deadline := time.Now().Add(2 * time.Second)
	for h.receiver.Stats().HostPackets != 1 {
		if time.Now().After(deadline) {
			t.Fatal("host packet not drained from the TUN")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTaps checks that a tap sees the inner packets each side handles, filtered by group, and
// that the path does not wait for a tap that is not read.
func TestTaps(t *testing.T) {
	w := newWorld(t, groupsOf("198.18.2.2:4754"), "198.18.2.2:4754")
	h := w.members[netip.MustParseAddrPort("198.18.2.2:4754")]
	sent, delivered := NewTap(netip.Addr{}, 16), NewTap(group.Addr(), 16)
	other := NewTap(netip.MustParseAddr("224.9.9.9"), 16)
	full := NewTap(netip.Addr{}, 1)
	w.sender.AddTap(sent)
	w.sender.AddTap(full)
	h.receiver.AddTap(delivered)
	h.receiver.AddTap(other)
	pkts := [][]byte{
		encaptest.UDPPacket(sourceAddr, group, []byte("one")),
		encaptest.UDPPacket(sourceAddr, netip.MustParseAddrPort("224.1.2.4:65535"), nil), // no group: not sent
		encaptest.UDPPacket(sourceAddr, group, []byte("two")),
	}
	for _, p := range pkts {
		w.capture.Packets <- p
	}
	h.expect(t)
	h.expect(t)
	for _, tap := range []*Tap{sent, delivered} {
		for _, want := range [][]byte{pkts[0], pkts[2]} {
			select {
			case got := <-tap.Packets:
				if !bytes.Equal(got.Data, want) || got.Time.IsZero() {
					t.Fatalf("tap got % x at %v, want % x", got.Data, got.Time, want)
				}
			case <-time.After(time.Second):
				t.Fatal("tap missed a packet")
			}
		}
	}
	if len(other.Packets) != 0 {
		t.Errorf("a tap for another group got %d packets", len(other.Packets))
	}
	if full.Dropped() != 1 || len(full.Packets) != 1 {
		t.Errorf("a tap of one slot kept %d and dropped %d of 2, want 1 and 1", len(full.Packets), full.Dropped())
	}
	w.sender.RemoveTap(sent)
	w.capture.Packets <- pkts[0]
	h.expect(t)
	if len(sent.Packets) != 0 {
		t.Error("a removed tap still gets packets")
	}
}

var testSecret = []byte("a secret of thirty-two bytes....")

func testAuth(t *testing.T) *encap.Auth {
	a, err := encap.NewAuth(testSecret, 7)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAuthenticatedStream runs a stream through the authenticated tunnel, with and without
// encryption: delivered byte for byte, sequence accounting intact.
func TestAuthenticatedStream(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		members := []string{"198.18.2.2:4754", "198.18.3.2:4754"}
		w := newAuthWorld(t, testAuth(t), encrypt, groupsOf(members...), members...)
		const n = 100
		for i := range n {
			w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, payload(i))
		}
		for _, m := range members {
			h := w.members[netip.MustParseAddrPort(m)]
			for i := range n {
				if got := h.expect(t); !bytes.Equal(got, encaptest.UDPPacket(sourceAddr, group, payload(i))) {
					t.Fatalf("encrypt=%v: %s packet %d differs", encrypt, m, i)
				}
			}
			if f := h.flow(t, n); f.Packets != n || f.Lost != 0 {
				t.Errorf("encrypt=%v: %s flow %+v", encrypt, m, f)
			}
		}
	}
}

// TestAuthenticatedDrops: with a secret, the plain form, a forged tag, a replay and (where
// encryption is required) an unencrypted packet are each dropped under their reason, and a
// good packet still gets through after each.
func TestAuthenticatedDrops(t *testing.T) {
	a := testAuth(t)
	w := newAuthWorld(t, a, true, nil)
	member := netip.MustParseAddrPort("198.18.2.2:4754")
	h := w.addMember(member, config.Member{MTU: 1500, Sources: []netip.Addr{sourceAddr}})
	from := netip.AddrPortFrom(sourceAddr, 40000)
	inner := encaptest.UDPPacket(sourceAddr, group, []byte("payload"))
	sealer := func(epoch uint64, encrypt bool) *encap.Sealer {
		s, err := a.NewSealer(epoch, encrypt)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	seal := func(s *encap.Sealer) []byte {
		buf := make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
		copy(buf[encap.Headroom:], inner)
		return bytes.Clone(s.Seal(buf, len(inner), encap.Header{Key: 7}))
	}
	good := sealer(1000, true)
	replayed := seal(good)
	forged := seal(good)
	forged[len(forged)-3] ^= 0x40
	var plain [encap.HeaderLen]byte
	encap.PutHeader(plain[:], encap.Header{Key: 7})
	want := h.receiver.Stats().Drops
	for _, tt := range []struct {
		reason string
		pkt    []byte
	}{
		{"", replayed},
		{"replayed", replayed},
		{"auth_failed", forged},
		{"not_authenticated", append(plain[:], inner...)},
	} {
		w.net.Inject(from, member, tt.pkt)
		w.net.Inject(from, member, seal(good))
		if tt.reason == "" {
			h.expect(t) // the first sight of replayed is good
		}
		if got := h.expect(t); !bytes.Equal(got, inner) {
			t.Fatalf("after %s: injected % x", tt.reason, got)
		}
		if tt.reason != "" {
			want[tt.reason]++
		}
		if got := h.receiver.Stats().Drops; !maps.Equal(got, want) {
			t.Errorf("after one %s packet, drops = %v, want %v", tt.reason, got, want)
		}
	}
	// A sender that restarted without encryption: authentic, so it is its newest run, but
	// refused, and so is what its previous run still sends.
	w.net.Inject(from, member, seal(sealer(2000, false)))
	w.net.Inject(from, member, seal(good))
	w.net.Inject(from, member, seal(sealer(3000, true)))
	if got := h.expect(t); !bytes.Equal(got, inner) {
		t.Fatalf("the encrypting run after them: injected % x", got)
	}
	want["not_encrypted"]++
	want["replayed"]++
	if got := h.receiver.Stats().Drops; !maps.Equal(got, want) {
		t.Errorf("after an unencrypted run, drops = %v, want %v", got, want)
	}
}

// TestAuthenticatedSenderRestart: a restarted sender is accepted at once, its flows start
// over without counting loss, and the old run's packets are refused as replays.
func TestAuthenticatedSenderRestart(t *testing.T) {
	a := testAuth(t)
	w := newAuthWorld(t, a, false, nil)
	member := netip.MustParseAddrPort("198.18.2.2:4754")
	h := w.addMember(member, config.Member{MTU: 1500, Sources: []netip.Addr{sourceAddr}})
	from := netip.AddrPortFrom(sourceAddr, 40000)
	inner := encaptest.UDPPacket(sourceAddr, group, []byte("payload"))
	seal := func(s *encap.Sealer, seq uint32) []byte {
		buf := make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
		copy(buf[encap.Headroom:], inner)
		return bytes.Clone(s.Seal(buf, len(inner), encap.Header{Key: 7, Seq: seq}))
	}
	first, _ := a.NewSealer(1000, false)
	for seq := range uint32(50) {
		w.net.Inject(from, member, seal(first, seq))
		h.expect(t)
	}
	old := seal(first, 50)
	second, _ := a.NewSealer(2000, false)
	w.net.Inject(from, member, seal(second, 0))
	h.expect(t)
	w.net.Inject(from, member, old)
	h.expectNothing(t)
	st := h.receiver.Stats()
	if f := st.Flows[0]; f.Packets != 51 || f.Lost != 0 || f.Restarts != 1 || st.Drops["replayed"] != 1 {
		t.Errorf("after a sender restart: flow %+v, replayed %d; want 51 packets, none lost, 1 restart, 1 replay", f, st.Drops["replayed"])
	}
}

// senderStats is Sender.Stats with each group's members filled in.
func senderStats(s *Sender) SenderStats {
	st := s.Stats()
	s.Members(func(i int, ms []MemberStats) error {
		st.Groups[i].Members = append([]MemberStats(nil), ms...)
		return nil
	})
	return st
}
