package kernelpath

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"mctun/datapath"
	"mctun/encap"
	"mctun/encap/encaptest"
	"mctun/internal/bitring"
)

var (
	rxSource = netip.MustParseAddr("198.18.1.2")
	rxLocal  = netip.MustParseAddr("198.18.2.2")
	rxGroup  = netip.MustParseAddr("224.1.2.3")
	rxOther  = netip.MustParseAddr("198.18.9.9")
	// rxElsewhere is a source whose route leaves by another interface than lo.
	rxElsewhere = netip.MustParseAddr("198.18.5.2")
)

const (
	rxKey  = 7
	rxPort = 4754
	rxMTU  = 1500
)

// rxHarness is mctun_ingress loaded with a member's tables: source 198.18.1.2, this host
// 198.18.2.2, key 7, port 4754, any group unless allowed is set.
type rxHarness struct {
	t *testing.T
	r *Receiver
}

func newRx(t *testing.T, allowed ...netip.Addr) *rxHarness {
	needRoot(t)
	r, err := LoadReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	conf := receiverReceiverConfig{Key: rxKey, Port: be16(rxPort), Mtu: rxMTU, TunIfindex: 1, AnyGroup: 1}
	if len(allowed) > 0 {
		conf.AnyGroup = 0
	}
	r.conf = conf // what dumpFlag writes back
	one := uint8(1)
	var blank receiverFlow
	for _, err := range []error{
		r.objs.Config.Put(uint32(0), &conf),
		r.objs.Sources.Put(be32(rxSource), uint32(rxIfindex)),
		r.objs.LocalAddrs.Put(be32(rxLocal), one),
		r.objs.Flows.Update(receiverFlowKey{}, &blank, ebpf.UpdateNoExist),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range allowed {
		if err := r.objs.AllowedGroups.Put(be32(g), one); err != nil {
			t.Fatal(err)
		}
	}
	return &rxHarness{t: t, r: r}
}

// counters are every drop reason and path of the receiver side, by name.
func (h *rxHarness) counters() map[string]uint64 {
	m := percpuCounts(h.r.objs.ReceiverPaths, receiverPaths[:])
	h.r.AddDrops(m)
	return m
}

// run runs the program on one frame and returns its verdict, the frame as it left, and the
// one counter that moved ("" when none did).
func (h *rxHarness) run(pkt []byte) (verdict int32, out []byte, moved string) {
	h.t.Helper()
	before := h.counters()
	out = make([]byte, len(pkt)+256)
	ret, err := h.r.objs.MctunIngress.Run(&ebpf.RunOptions{Data: pkt, DataOut: out})
	if err != nil {
		h.t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	after := h.counters()
	for name, n := range after {
		switch d := n - before[name]; {
		case d == 1 && moved == "":
			moved = name
		case d != 0:
			h.t.Fatalf("counter %s moved by %d (and %q moved)", name, d, moved)
		}
	}
	return int32(ret), out, moved
}

const (
	actUnspec   = -1 // TC_ACT_UNSPEC: on to the stack
	actShot     = 2  // TC_ACT_SHOT: dropped
	actRedirect = 7  // TC_ACT_REDIRECT: into the TUN
)

// rxIfindex is where BPF_PROG_TEST_RUN's packets arrive: lo, whose MAC address is all
// zeros.
const rxIfindex = 1

// tunnel is a frame carrying a tunnel packet from src to this host: to lo's MAC address, so
// that the kernel takes it as this host's (PACKET_HOST).
func tunnel(src netip.Addr, payload []byte) []byte {
	f := frame(src, rxLocal, 50000, rxPort, payload)
	copy(f[0:6], make([]byte, 6))
	return f
}

// userOutcome is what the user-space receiver does with a tunnel packet (its UDP payload)
// from a configured source, by the same rules: the drop reason, or "kernel" when it delivers
// it. The kernel path hands IGMP up for user space to judge, which drops what is not a
// membership report as "igmp".
func userOutcome(payload []byte, allowed func(netip.Addr) bool) string {
	h, inner, err := encap.ParseHeader(payload)
	switch {
	case err != nil:
		return datapath.BadTunnelHeader.String()
	case h.Key != rxKey:
		return datapath.WrongKey.String()
	}
	in, err := encap.CheckInner(inner)
	switch {
	case err != nil:
		return datapath.InnerReason(err).String()
	case !allowed(in.Dst):
		return datapath.GroupNotAllowed.String()
	case len(inner) > rxMTU:
		return datapath.TooBig.String()
	}
	return "kernel"
}

// mutate sets b[i] = v and returns b.
func mutate(b []byte, edits ...int) []byte {
	for i := 0; i+1 < len(edits); i += 2 {
		b[edits[i]] = byte(edits[i+1])
	}
	return b
}

func TestIngressVerdicts(t *testing.T) {
	h := newRx(t)
	if err := h.r.objs.Sources.Put(be32(rxElsewhere), uint32(rxIfindex+1)); err != nil {
		t.Fatal(err)
	}
	good := innerUDP(netip.MustParseAddr("198.18.1.2"), rxGroup, 65535, 100)
	withOptions := func(badSum bool) []byte {
		in := encaptest.IPv4Packet(rxSource, rxGroup, encap.ProtoUDP, make([]byte, 4+8))
		copy(in[20:], []byte{1, 1, 1, 0})
		in[0] = 0x46
		fixIPChecksum(in)
		if badSum {
			in[10] ^= 0xff
		}
		copy(in[24:], udp(1, 2, nil))
		return in
	}
	igmp := encaptest.IPv4Packet(rxSource, netip.MustParseAddr("224.0.0.22"), encap.ProtoIGMP, make([]byte, 8))
	bigIGMP := encaptest.IPv4Packet(rxSource, netip.MustParseAddr("224.0.0.22"), encap.ProtoIGMP, make([]byte, rxMTU+100))
	hugeIGMP := encaptest.IPv4Packet(rxSource, netip.MustParseAddr("224.0.0.22"), encap.ProtoIGMP, make([]byte, 2100))
	// A membership report as the kernel sends it, with the Router Alert option (RFC 3376).
	report := encaptest.IPv4Packet(rxSource, netip.MustParseAddr("224.0.0.22"), encap.ProtoIGMP, make([]byte, 4+8))
	report[0] = 0x46
	copy(report[20:], []byte{0x94, 0x04, 0, 0})
	fixIPChecksum(report)
	fixInner := func(in []byte) []byte { fixIPChecksum(in); return in }
	tests := []struct {
		name    string
		pkt     []byte
		verdict int32
		moved   string
	}{
		{"delivered", tunnel(rxSource, gre(rxKey, 0, good)), actRedirect, "kernel"},
		{"unknown source", tunnel(rxOther, gre(rxKey, 0, good)), actShot, "unknown_source"},
		// A host that is no source takes no reports (TestIngressTakesReports has one that does).
		{"a membership report from a host not a source", tunnel(rxOther, gre(rxKey, 0, igmp)), actShot, "unknown_source"},
		{"a large membership report from a host not a source", tunnel(rxOther, gre(rxKey, 0, bigIGMP)), actShot, "unknown_source"},
		{"larger than any report", tunnel(rxOther, gre(rxKey, 0, hugeIGMP)), actShot, "too_big"},
		{"truncated GRE", tunnel(rxSource, gre(rxKey, 0, nil)[:8]), actShot, "bad_tunnel_header"},
		{"GRE with a checksum", tunnel(rxSource, mutate(gre(rxKey, 0, good), 0, 0xb0)), actShot, "bad_tunnel_header"},
		{"GRE version 1", tunnel(rxSource, mutate(gre(rxKey, 0, good), 1, 1)), actShot, "bad_tunnel_header"},
		{"GRE protocol not IPv4", tunnel(rxSource, mutate(gre(rxKey, 0, good), 2, 0x86, 3, 0xdd)), actShot, "bad_tunnel_header"},
		{"the authenticated form", tunnel(rxSource, mutate(gre(rxKey, 0, good), 2, 0x88, 3, 0xb5)), actShot, "bad_tunnel_header"},
		{"wrong key", tunnel(rxSource, gre(rxKey+1, 0, good)), actShot, "wrong_key"},
		{"empty inner packet", tunnel(rxSource, gre(rxKey, 0, nil)), actShot, "not_ipv4"},
		{"IPv6 inner packet", tunnel(rxSource, gre(rxKey, 0, mutate(append([]byte(nil), good...), 0, 0x60))), actShot, "not_ipv4"},
		{"inner shorter than a header", tunnel(rxSource, gre(rxKey, 0, good[:19])), actShot, "malformed"},
		{"inner checksum broken", tunnel(rxSource, gre(rxKey, 0, mutate(append([]byte(nil), good...), 10, 0))), actShot, "malformed"},
		{"inner length lies", tunnel(rxSource, gre(rxKey, 0, fixInner(mutate(append([]byte(nil), good...), 3, 100)))), actShot, "malformed"},
		{"inner header longer than the packet", tunnel(rxSource, gre(rxKey, 0, mutate(append([]byte(nil), good[:24]...), 0, 0x4f))), actShot, "malformed"},
		{"IP options", tunnel(rxSource, gre(rxKey, 0, withOptions(false))), actShot, "ip_options"},
		{"IP options, checksum broken", tunnel(rxSource, gre(rxKey, 0, withOptions(true))), actShot, "malformed"},
		{"unicast inner", tunnel(rxSource, gre(rxKey, 0, innerUDP(rxSource, rxLocal, 65535, 10))), actShot, "not_multicast"},
		{"broadcast inner", tunnel(rxSource, gre(rxKey, 0, innerUDP(rxSource, netip.MustParseAddr("255.255.255.255"), 65535, 10))), actShot, "not_multicast"},
		{"source 0.0.0.0", tunnel(rxSource, gre(rxKey, 0, innerUDP(netip.IPv4Unspecified(), rxGroup, 65535, 10))), actShot, "bad_source"},
		{"loopback source", tunnel(rxSource, gre(rxKey, 0, innerUDP(netip.MustParseAddr("127.0.0.1"), rxGroup, 65535, 10))), actShot, "bad_source"},
		{"IGMP", tunnel(rxSource, gre(rxKey, 0, igmp)), actUnspec, "user_igmp"},
		{"IGMP, wrong key", tunnel(rxSource, gre(rxKey+1, 0, igmp)), actShot, "wrong_key"},
		{"a membership report, with Router Alert", tunnel(rxSource, gre(rxKey, 0, report)), actUnspec, "user_igmp"},
		{"fragment not a multiple of 8", tunnel(rxSource, gre(rxKey, 0, fixInner(mutate(innerUDP(rxSource, rxGroup, 65535, 13), 6, 0x20)))), actShot, "bad_fragment"},
		{"fragment beyond 64 KiB", tunnel(rxSource, gre(rxKey, 0, fixInner(mutate(innerUDP(rxSource, rxGroup, 65535, 16), 6, 0x1f, 7, 0xff)))), actShot, "bad_fragment"},
		{"too big for the TUN", tunnel(rxSource, gre(rxKey, 0, innerUDP(rxSource, rxGroup, 65535, rxMTU))), actShot, "too_big"},
		{"outer fragment", mutate(tunnel(rxSource, gre(rxKey, 0, good)), 20, 0x20), actUnspec, "user_fragment"},
		{"outer header broken", mutate(tunnel(rxSource, gre(rxKey, 0, good)), 24, 0), actUnspec, "user_outer_header"},
		{"outer checksum not verified", mutate(tunnel(rxSource, gre(rxKey, 0, good)), 40, 0x12), actUnspec, "user_checksum"},
		{"another port", frame(rxSource, rxLocal, 50000, rxPort+1, gre(rxKey, 0, good)), actUnspec, ""},
		{"not for this host", frame(rxSource, rxOther, 50000, rxPort, gre(rxKey, 0, good)), actUnspec, ""},
		// Seen only because the interface is promiscuous: the stack drops it, and so must
		// the kernel path leave it.
		{"in a frame to another host's MAC address", frame(rxSource, rxLocal, 50000, rxPort, gre(rxKey, 0, good)), actUnspec, ""},
		// The stack's reverse-path check (rp_filter) judges it, as it would for user space.
		{"from a source, on another interface than its route's", tunnel(rxElsewhere, gre(rxKey, 0, good)), actUnspec, "user_route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The outer header of the broken-header case keeps its bad sum; the others are
			// whole but for what they break.
			verdict, out, moved := h.run(tt.pkt)
			if verdict != tt.verdict || moved != tt.moved {
				t.Errorf("verdict %d, counted %q; want %d, %q", verdict, moved, tt.verdict, tt.moved)
			}
			if verdict == actRedirect {
				want := append(append([]byte(nil), tt.pkt[:14]...), good...)
				if !bytes.Equal(out[:len(want)], want) {
					t.Errorf("delivered\n% x\nwant the Ethernet header and the inner packet\n% x", out[:len(want)], want)
				}
			}
		})
	}
}

// On a host that is a source too, the kernel path leaves to user space what the report flow
// judges there (datapath.Receiver.accept, datapath.Reports.Take): what a host inside
// join_from that is no source sends, whatever it is, and IGMP from a source whatever its
// key. What a host outside join_from sends it drops as unknown_source, as user space counts
// it; and so it does again once join_from leaves a host out.
func TestIngressTakesReports(t *testing.T) {
	h := newRx(t)
	inside, outside := rxOther, netip.MustParseAddr("198.18.7.7")
	data := innerUDP(rxSource, rxGroup, 65535, 10)
	igmp := encaptest.IPv4Packet(rxSource, netip.MustParseAddr("224.0.0.22"), encap.ProtoIGMP, make([]byte, 8))
	type verdict struct {
		name    string
		pkt     []byte
		verdict int32
		moved   string
	}
	check := func(stage string, tests []verdict) {
		t.Helper()
		for _, tt := range tests {
			if v, _, moved := h.run(tt.pkt); v != tt.verdict || moved != tt.moved {
				t.Errorf("%s, %s: verdict %d, counted %q; want %d, %q", stage, tt.name, v, moved, tt.verdict, tt.moved)
			}
		}
	}
	divert := func(joinFrom ...netip.Prefix) {
		t.Helper()
		if err := h.r.DivertReports(joinFrom); err != nil {
			t.Fatal(err)
		}
	}
	fromSources := []verdict{
		{"IGMP from a source", tunnel(rxSource, gre(rxKey, 0, igmp)), actUnspec, "user_igmp"},
		{"IGMP from a source, wrong key", tunnel(rxSource, gre(rxKey+1, 0, igmp)), actUnspec, "user_igmp"},
		{"data from a source, wrong key", tunnel(rxSource, gre(rxKey+1, 0, data)), actShot, "wrong_key"},
		{"data from a source", tunnel(rxSource, gre(rxKey, 0, data)), actRedirect, "kernel"},
	}
	stranger := verdict{"a report from outside join_from", tunnel(outside, gre(rxKey, 0, igmp)), actShot, "unknown_source"}

	divert(netip.MustParsePrefix("198.18.9.0/24"), netip.MustParsePrefix("198.19.0.0/16"))
	check("join_from 198.18.9.0/24, 198.19.0.0/16", append(fromSources,
		verdict{"data from inside join_from", tunnel(inside, gre(rxKey, 0, data)), actUnspec, "user_join_from"},
		verdict{"a report from inside join_from, wrong key", tunnel(inside, gre(rxKey+1, 0, igmp)), actUnspec, "user_join_from"},
		verdict{"a bad GRE header from inside join_from", tunnel(inside, gre(rxKey, 0, nil)[:6]), actUnspec, "user_join_from"},
		verdict{"data from the second prefix", tunnel(netip.MustParseAddr("198.19.200.1"), gre(rxKey, 0, data)), actUnspec, "user_join_from"},
		stranger,
		verdict{"data from outside join_from", tunnel(outside, gre(rxKey, 0, data)), actShot, "unknown_source"},
	))

	many := make([]netip.Prefix, maxJoinFrom+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	divert(many...)
	check("more prefixes than the program holds", []verdict{
		{"a report from a host in none of them", tunnel(outside, gre(rxKey, 0, igmp)), actUnspec, "user_join_from"},
	})

	divert(netip.MustParsePrefix("198.18.9.9/32"))
	check("join_from 198.18.9.9/32", []verdict{
		{"data from inside join_from", tunnel(inside, gre(rxKey, 0, data)), actUnspec, "user_join_from"},
		stranger,
		{"data from the prefix taken away", tunnel(netip.MustParseAddr("198.19.200.1"), gre(rxKey, 0, data)), actShot, "unknown_source"},
	})
	var key receiverJoinPrefix
	var n int
	for it := h.r.objs.JoinFrom.Iterate(); it.Next(&key, new(uint8)); {
		n++
	}
	if n != 1 {
		t.Errorf("join_from holds %d prefixes, want 1", n)
	}

	divert()
	check("join_from empty", append(fromSources,
		verdict{"data from a host that is no source", tunnel(inside, gre(rxKey, 0, data)), actShot, "unknown_source"},
	))
}

// With the TUN down, the redirect would drop what the program delivers: it drops it itself,
// as tun_write_failed, as the user-space receiver's write fails, its number seen but the
// packet not counted delivered.
func TestIngressTUNDown(t *testing.T) {
	h := newRx(t)
	setDown := func(down uint8) {
		h.r.conf.TunDown = down
		if err := h.r.objs.Config.Put(uint32(0), &h.r.conf); err != nil {
			t.Fatal(err)
		}
	}
	in := innerUDP(rxSource, rxGroup, 65535, 10)
	setDown(1)
	if v, _, moved := h.run(tunnel(rxSource, gre(rxKey, 7, in))); v != actShot || moved != "tun_write_failed" {
		t.Errorf("with the TUN down: verdict %d, counted %q; want %d, tun_write_failed", v, moved, actShot)
	}
	setDown(0)
	if v, _, moved := h.run(tunnel(rxSource, gre(rxKey, 8, in))); v != actRedirect || moved != "kernel" {
		t.Errorf("with the TUN up again: verdict %d, counted %q; want %d, kernel", v, moved, actRedirect)
	}
	want := datapath.FlowStats{Source: rxSource, Group: rxGroup, Packets: 1, Bytes: uint64(len(in))}
	if flows := h.r.Flows(); len(flows) != 1 || flows[0] != want {
		t.Errorf("flows %+v\nwant [%+v]: the first seen, not delivered, the second delivered", flows, want)
	}
}

func TestIngressGroupNotAllowed(t *testing.T) {
	h := newRx(t, netip.MustParseAddr("224.9.9.9"))
	for _, tt := range []struct {
		group string
		moved string
	}{{"224.9.9.9", "kernel"}, {"224.1.2.3", "group_not_allowed"}} {
		pkt := tunnel(rxSource, gre(rxKey, 0, innerUDP(rxSource, netip.MustParseAddr(tt.group), 1, 10)))
		if _, _, moved := h.run(pkt); moved != tt.moved {
			t.Errorf("a packet to %s: counted %q, want %q", tt.group, moved, tt.moved)
		}
	}
}

// The kernel path judges a tunnel packet as the user-space receiver does, whatever its
// headers hold: packets from a known source with random bytes of their GRE header and
// inner header changed get the same drop reason on both paths, or are delivered by both.
func TestIngressAgreesWithUserSpace(t *testing.T) {
	h := newRx(t)
	rng := rand.New(rand.NewPCG(1, 2))
	agreed := map[string]int{}
	for i := range 20000 {
		payload := gre(rxKey, uint32(i), innerUDP(rxSource, rxGroup, 65535, 8+rng.IntN(64)))
		for range 1 + rng.IntN(3) {
			at := rng.IntN(min(len(payload), encap.HeaderLen+28))
			payload[at] = byte(rng.Uint32())
		}
		if rng.IntN(2) == 0 && len(payload) > encap.HeaderLen+20 {
			fixIPChecksum(payload[encap.HeaderLen:]) // reach the checks behind the checksum
		}
		want := userOutcome(payload, func(netip.Addr) bool { return true })
		_, _, moved := h.run(tunnel(rxSource, payload))
		if moved == "user_igmp" { // up to user space, which judges IGMP whole
			if in := payload[encap.HeaderLen:]; len(in) > 9 && in[0]>>4 == 4 && in[9] == encap.ProtoIGMP {
				agreed["handed up: IGMP"]++
				continue
			}
		}
		if moved != want {
			t.Fatalf("packet %d:\n% x\nkernel path: %q, user space: %q", i, payload, moved, want)
		}
		agreed[want]++
	}
	t.Logf("20000 mutated tunnel packets, judged alike: %v", agreed)
}

// A flow's loss, reordering and duplicates, counted by the kernel path and by user space
// (mctun_account) in one account.
func TestIngressFlowAccount(t *testing.T) {
	h := newRx(t)
	in := innerUDP(rxSource, rxGroup, 65535, 10)
	kernel := func(seq uint32) {
		if v, _, _ := h.run(tunnel(rxSource, gre(rxKey, seq, in))); v != actRedirect {
			t.Fatalf("seq %d not delivered: %d", seq, v)
		}
	}
	user := func(seq uint32) {
		if err := h.r.Observe(rxSource.As4(), rxGroup.As4(), seq, len(in)); err != nil {
			t.Fatal(err)
		}
		if err := h.r.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	user(5000)   // the first packet a member sees starts its account...
	kernel(4999) // ...and one from before it, overtaken, was never counted lost
	user(5001)
	kernel(5004) // 5002 and 5003 lost...
	user(5002)   // ...until 5002 comes late
	kernel(5002) // a duplicate
	user(5005)
	kernel(1) // more than the window (1024) behind: the sender started again
	flows := h.r.Flows()
	want := datapath.FlowStats{Source: rxSource, Group: rxGroup, Packets: 8, Bytes: 8 * uint64(len(in)),
		Lost: 1, Reordered: 2, Duplicates: 1, Restarts: 1}
	if len(flows) != 1 || flows[0] != want {
		t.Errorf("flows %+v\nwant [%+v]", flows, want)
	}
}

// A gap slides a flow's window as bitring.Clear does, word for word: from every offset in a
// word, across the ring's end, across 2^32, by every length up to the whole window and more.
func TestFlowWindowSlides(t *testing.T) {
	h := newRx(t)
	key := receiverFlowKey{Source: be32(rxSource), Group: be32(rxGroup)}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(next, gap uint32) {
		t.Helper()
		f := receiverFlow{Started: 1, Next: next}
		for i := range f.Seen {
			f.Seen[i] = rng.Uint64()
		}
		want := f.Seen
		bitring.Clear(want[:], uint64(next), uint64(gap))
		bitring.Set(want[:], uint64(next+gap))
		if err := h.r.objs.Flows.Put(key, &f); err != nil {
			t.Fatal(err)
		}
		if err := h.r.Observe(rxSource.As4(), rxGroup.As4(), next+gap, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.r.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := h.r.objs.Flows.Lookup(key, &f); err != nil {
			t.Fatal(err)
		}
		if f.Seen != want || f.Next != next+gap+1 || f.Lost != int64(gap) {
			t.Fatalf("next %d, gap %d: window %x, next %d, lost %d\nwant %x, next %d, lost %d", next, gap, f.Seen, f.Next, f.Lost, want, next+gap+1, gap)
		}
	}
	for _, next := range []uint32{0, 1, 63, 64, 65, 1000, 1023, 1024, 1 << 31, ^uint32(0) - 1100, ^uint32(0) - 64, ^uint32(0)} {
		for _, gap := range []uint32{0, 1, 2, 62, 63, 64, 65, 127, 128, 129, 960, 961, 1000, 1022, 1023, 1024, 1025, 5000, 1<<31 - 1} {
			check(next, gap)
		}
	}
	for range 5000 {
		check(rng.Uint32(), rng.Uint32N(1100))
	}
}

// TestDumpEndsWithCopiesUnread: a dump ends (RemoveTap) while the program's copies are still
// waiting to be read. Ending it closes the reader and waits for the goroutine that reads it,
// which must not need the lock the ending holds: it did, and ending a dump during traffic
// hung the dump, every later one, and the daemon's stop.
func TestDumpEndsWithCopiesUnread(t *testing.T) {
	h := newRx(t)
	pkt := tunnel(rxSource, gre(rxKey, 0, innerUDP(rxSource, rxGroup, 5000, 64)))
	out := make([]byte, len(pkt)+256)
	for round := range 50 {
		tap := datapath.NewTap(netip.Addr{}, 1)
		if err := h.r.AddTap(tap); err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			if _, err := h.r.objs.MctunIngress.Run(&ebpf.RunOptions{Data: pkt, DataOut: out}); err != nil {
				t.Fatal(err)
			}
		}
		select { // the reader is at work
		case <-tap.Packets:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the tap got no copy of 1000 packets delivered", round)
		}
		ended := make(chan struct{})
		go func() { h.r.RemoveTap(tap); close(ended) }()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			// Neither t.Fatal nor panic: both run the cleanups first, and the receiver's
			// Close there would wait on the same lock for ever.
			fmt.Fprintf(os.Stderr, "--- FAIL: %s: round %d: RemoveTap did not return within 5 s of the dump's end\n", t.Name(), round)
			os.Exit(1)
		}
	}
}
