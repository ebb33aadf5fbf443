package kernelpath

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mctun/config"
)

// startSender loads the sender side and starts it on mct0 with one group of members, logging
// into log.
func startSender(t *testing.T, log io.Writer, members ...netip.AddrPort) *Sender {
	t.Helper()
	s, err := LoadSender("mct0")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(SenderOptions{Interface: "mct0", Addr: txSource, Port: txSport, Key: txKey,
		Groups: []config.Group{{Address: txGroup, Port: 65535, Members: members}},
		Host:   testHost(t), Log: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s
}

// Sender keeps the programs' tables in line with the groups it is given and the next hops
// the host knows: a group is ready only when every member's MAC is known, a member with no
// route is set apart and reported, and a neighbour that appears makes its group ready.
func TestSenderPublishes(t *testing.T) {
	inNetns(t, func() {
		l, err := netlink.LinkByName("mct0")
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{
			netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 1, 2), Mask: net.CIDRMask(24, 32)}}),
			netlink.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(198, 18, 77, 0), Mask: net.CIDRMask(24, 32)}, Type: unix.RTN_UNREACHABLE}),
			netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, IP: net.IPv4(198, 18, 1, 3), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 1, 3}, State: netlink.NUD_PERMANENT, Family: netlink.FAMILY_V4}),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		m3, m4, m77 := netip.MustParseAddrPort("198.18.1.3:4754"), netip.MustParseAddrPort("198.18.1.4:4754"), netip.MustParseAddrPort("198.18.77.7:4754")
		group := func(members ...netip.AddrPort) []config.Group {
			return []config.Group{{Address: txGroup, Port: 65535, Members: members}}
		}
		s := startSender(t, io.Discard, m3)
		defer s.Close()
		reports := map[netip.AddrPort]error{}
		s.ReportMembers(func(_ netip.Addr, _ uint16, m netip.AddrPort, err error) { reports[m] = err })
		route := func() senderGroupRoute {
			var r senderGroupRoute
			if err := s.objs.Groups.Lookup(groupKey{txGroup, 65535}.key(), &r); err != nil {
				t.Fatalf("groups: %v", err)
			}
			return r
		}
		entry := func(i uint32) senderFanoutEntry {
			var e senderFanoutEntry
			if err := s.objs.Fanout.Lookup(i, &e); err != nil {
				t.Fatal(err)
			}
			return e
		}

		r := route()
		if r.Ready != 1 || r.Count != 1 || r.Unreachable != 0 {
			t.Fatalf("one member, neighbour known: route %+v, want ready with 1 member", r)
		}
		if e := entry(r.First); addrOf(e.Daddr) != m3.Addr() || e.Dport != be16(4754) || e.Dmac != [6]byte{2, 0, 0, 0, 1, 3} {
			t.Errorf("fan-out entry %+v, want 198.18.1.3:4754 at 02:00:00:00:01:03", e)
		}
		first := r.First

		// Unchanged, the group keeps its run; with a member that has no route, it gets a new
		// one with that member set apart, and the member is reported failing.
		s.Configure(txKey, group(m3))
		if r := route(); r.First != first {
			t.Errorf("an unchanged group moved from run %d to %d", first, r.First)
		}
		s.Configure(txKey, group(m3, m77))
		if r := route(); r.Ready != 1 || r.Count != 1 || r.Unreachable != 1 || r.First == first || addrOf(entry(r.First+1).Daddr) != m77.Addr() {
			t.Errorf("with 198.18.77.7 (no route): route %+v, want ready, 1 member and 1 unreachable after it, in a new run", r)
		}
		if err := reports[m77]; err == nil || !errors.Is(err, unix.EHOSTUNREACH) {
			t.Errorf("198.18.77.7 reported with %v, want no route to host", err)
		}

		// A member whose neighbour is not known yet holds the group back until it is.
		s.Configure(txKey, group(m3, m4))
		if r := route(); r.Ready != 0 {
			t.Errorf("198.18.1.4 has no neighbour entry: route %+v, want not ready", r)
		}
		err = netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, IP: net.IPv4(198, 18, 1, 4), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 1, 4}, State: netlink.NUD_REACHABLE, Family: netlink.FAMILY_V4})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for route().Ready != 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if r := route(); r.Ready != 1 || r.Count != 2 {
			t.Errorf("after 198.18.1.4's neighbour appeared: route %+v, want ready with 2 members", r)
		}

		// The sequence counter user space takes numbers from is the program's.
		seq := s.Sequence(txGroup, 65535)
		seq.Store(41)
		var v uint32
		if err := s.objs.GroupSeq.Lookup(route().Slot, &v); err != nil || v != 41 {
			t.Errorf("group_seq holds %d (%v), want 41", v, err)
		}

		// The largest group is the kernel's too.
		many := make([]netip.AddrPort, 4096)
		for i := range many {
			many[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, 4}), uint16(5000+i))
		}
		s.Configure(txKey, group(many...))
		if r := route(); r.Ready != uint8(senderRouteStateREADY) || r.Count != uint32(len(many)) {
			t.Errorf("%d members: route %+v, want ready with all of them", len(many), r)
		}
		// One more than the kernel sends a packet to goes to user space.
		more := make([]netip.AddrPort, maxGroupMembers+1)
		for i := range more {
			more[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(3 + i%2)}), uint16(1+i/2))
		}
		s.Configure(txKey, group(more...))
		if r := route(); r.Ready == uint8(senderRouteStateREADY) {
			t.Errorf("%d members: route %+v, want not ready: user space forwards it", len(more), r)
		}

		s.Configure(txKey, nil)
		var gone senderGroupRoute
		if err := s.objs.Groups.Lookup(groupKey{txGroup, 65535}.key(), &gone); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("a removed group is still in groups: %+v, %v", gone, err)
		}
	})
}

// The sender marks the neighbours its groups' packets went to as in use, as the kernel's own
// sending does, so that the table keeps them; a group that sent nothing since marks none.
func TestSenderMarksNeighboursInUse(t *testing.T) {
	inNetns(t, func() {
		l, err := netlink.LinkByName("mct0")
		if err != nil {
			t.Fatal(err)
		}
		m3 := netip.MustParseAddrPort("198.18.1.3:4754")
		for _, err := range []error{
			netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 1, 2), Mask: net.CIDRMask(24, 32)}}),
			netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, IP: m3.Addr().AsSlice(), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 1, 3}, State: netlink.NUD_STALE, Family: netlink.FAMILY_V4}),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		s := startSender(t, io.Discard, m3)
		defer s.Close()
		state := func() string {
			list, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range list {
				if n.IP.Equal(m3.Addr().AsSlice()) {
					return neighState(n.State)
				}
			}
			return "gone"
		}
		s.mu.Lock()
		r := s.routes[groupKey{txGroup, 65535}]
		if r == nil || !r.ready {
			s.mu.Unlock()
			t.Fatalf("the group is not ready: %+v", r)
		}
		s.useHops() // the group sent nothing yet
		s.mu.Unlock()
		if got := state(); got != "STALE" {
			t.Errorf("no packet sent: 198.18.1.3 is %s, want STALE, not marked in use", got)
		}
		s.gstats.word(r.slot, 0).Add(1) // as the program counts a packet
		s.mu.Lock()
		s.useHops()
		s.mu.Unlock()
		if got := state(); got != "DELAY" {
			t.Errorf("after a packet: 198.18.1.3 is %s, want DELAY: in use, a stale entry is checked", got)
		}
	})
}

// neighState names a neighbour state as ip neigh does.
func neighState(s int) string {
	switch s {
	case netlink.NUD_STALE:
		return "STALE"
	case netlink.NUD_DELAY:
		return "DELAY"
	case netlink.NUD_PROBE:
		return "PROBE"
	case netlink.NUD_REACHABLE:
		return "REACHABLE"
	}
	return fmt.Sprintf("state %#x", s)
}

// TestSenderNeedsAnAddress: a source interface with no IPv4 address yet (DHCP still at work)
// is an error that says so, not a crash of the daemon halfway through its start.
func TestSenderNeedsAnAddress(t *testing.T) {
	inNetns(t, func() {
		s, err := LoadSender("mct0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		err = s.Start(SenderOptions{Interface: "mct0", Port: txSport, Key: txKey, Host: testHost(t), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || err.Error() != "kernel path: mct0 has no IPv4 address to send the tunnel packets from" {
			t.Fatalf("Start with no address = %v, want the error that says so", err)
		}
	})
}

// TestSenderRefusedGroupShadows: a group the kernel has no room for (the 8193rd) is not in
// its table, so a packet it and its address's other group both take would find the other
// alone there, and the refused group's members would miss it. The other groups of its
// address go to user space with it, and come back once it is gone.
func TestSenderRefusedGroupShadows(t *testing.T) {
	inNetns(t, func() {
		l, err := netlink.LinkByName("mct0")
		if err == nil {
			err = netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 1, 2), Mask: net.CIDRMask(24, 32)}})
		}
		if err == nil {
			err = netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, IP: net.IPv4(198, 18, 1, 3), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 1, 3}, State: netlink.NUD_PERMANENT, Family: netlink.FAMILY_V4})
		}
		if err != nil {
			t.Fatal(err)
		}
		member := []netip.AddrPort{netip.MustParseAddrPort("198.18.1.3:4754")}
		groups := []config.Group{{Address: txGroup, Members: member}} // every packet to txGroup
		for i := range maxGroups - 1 {
			groups = append(groups, config.Group{Address: netip.AddrFrom4([4]byte{225, 0, byte(i >> 8), byte(i)}), Port: 65535, Members: member})
		}
		refused := config.Group{Address: txGroup, Port: 6000, Members: []netip.AddrPort{netip.MustParseAddrPort("198.18.1.4:4754")}}
		s, err := LoadSender("mct0")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var log strings.Builder
		err = s.Start(SenderOptions{Interface: "mct0", Addr: txSource, Port: txSport, Key: txKey,
			Groups: append(slices.Clone(groups), refused), Host: testHost(t), Log: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ready := func() bool {
			var r senderGroupRoute
			if err := s.objs.Groups.Lookup(groupKey{txGroup, 0}.key(), &r); err != nil {
				t.Fatalf("groups: %v", err)
			}
			return r.Ready == uint8(senderRouteStateREADY)
		}
		if ready() || !strings.Contains(log.String(), "no room for the group") {
			t.Fatalf("with 224.1.2.3:6000 refused, 224.1.2.3's group is ready %v (want false); log:\n%s", ready(), log.String())
		}
		s.Configure(txKey, groups)
		if !ready() {
			t.Error("with the refused group gone, 224.1.2.3's group is not ready")
		}
	})
}
