package daemon

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"mctun/datapath"
	"mctun/encap/encaptest"
	"mctun/igmp"
	"mctun/membership"
)

// TestSelfChanged: when the source interface's address changes (DHCP), a member whose filter
// includes only the new address is sent to, one that excludes it no longer; an interface
// without an address for a moment changes nothing.
func TestSelfChanged(t *testing.T) {
	d, _ := loadedDaemon(t, "[source]\njoin_from = [\"198.18.0.0/15\"]\n", "")
	was, now := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.1.9")
	includes, excludes := netip.MustParseAddr("198.18.3.2"), netip.MustParseAddr("198.18.3.3")
	d.self = was
	d.joins = membership.New(membership.Limits{}, time.Now)
	d.sender = datapath.NewSender(encaptest.NewNetwork().Listen(netip.AddrPortFrom(was, 4754)), 0, nil, nil, quiet)
	group := netip.MustParseAddr("224.1.2.3")
	d.joins.Report(includes, []igmp.Record{{Type: igmp.ModeIsInclude, Group: group, Sources: []netip.Addr{now}}})
	d.joins.Report(excludes, []igmp.Record{{Type: igmp.ModeIsExclude, Group: group, Sources: []netip.Addr{now}}})
	if err := d.applyGroups(d.cfg); err != nil {
		t.Fatal(err)
	}
	sendsTo := func() []netip.Addr {
		var got []netip.Addr
		d.sender.Members(func(_ int, ms []datapath.MemberStats) error {
			for _, m := range ms {
				got = append(got, m.Address.Addr())
			}
			return nil
		})
		return got
	}
	if got := sendsTo(); !slices.Equal(got, []netip.Addr{excludes}) {
		t.Fatalf("from %v, the sender side sends to %v; want %v", was, got, excludes)
	}
	for _, self := range []netip.Addr{now, {}} {
		if err := d.setSelf(self); err != nil {
			t.Fatal(err)
		}
		if got := sendsTo(); d.self != now || !slices.Equal(got, []netip.Addr{includes}) {
			t.Fatalf("after setSelf(%v), self %v and the sender side sends to %v; want %v and %v", self, d.self, got, now, includes)
		}
	}
}

// TestReadSelf: a source refuses to start on an interface without an IPv4 address, naming
// the interface; when its addresses change after start, refreshSelf takes the one it has now.
func TestReadSelf(t *testing.T) {
	host, nl := hostInNetns(t, "eth0", t.TempDir())
	d, _ := loadedDaemon(t, "[source]\njoin_from = [\"198.18.0.0/15\"]\n", "")
	d.host = host
	err := d.readSelf()
	if want := "source.interface eth0 has no IPv4 address"; err == nil || err.Error() != want {
		t.Fatalf("start on an interface without an address: %v, want %q", err, want)
	}
	link, err := nl.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addr := func(a string) *netlink.Addr { return parseAddr(t, a) }
	if err := nl.AddrAdd(link, addr("198.18.1.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := d.readSelf(); err != nil || d.self != netip.MustParseAddr("198.18.1.1") {
		t.Fatalf("start: %v, self %v; want 198.18.1.1", err, d.self)
	}
	d.joins = membership.New(membership.Limits{}, time.Now)
	d.sender = datapath.NewSender(encaptest.NewNetwork().Listen(netip.MustParseAddrPort("198.18.1.1:4754")), 0, nil, nil, quiet)
	if err := nl.AddrDel(link, addr("198.18.1.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := d.refreshSelf(); err != nil || d.self != netip.MustParseAddr("198.18.1.1") {
		t.Fatalf("the address gone for a moment: %v, self %v; want 198.18.1.1 kept", err, d.self)
	}
	if err := nl.AddrAdd(link, addr("198.18.1.9/24")); err != nil {
		t.Fatal(err)
	}
	if err := d.refreshSelf(); err != nil || d.self != netip.MustParseAddr("198.18.1.9") {
		t.Fatalf("a new address: %v, self %v; want 198.18.1.9", err, d.self)
	}
}

func parseAddr(t *testing.T, a string) *netlink.Addr {
	t.Helper()
	ip, err := netlink.ParseAddr(a)
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// TestTUNRoute: the route 224.0.0.0/4 dev TUN of a host that is a source and a member names
// the source's address; the kernel removes it with that address, and with the TUN when that
// goes down, and routineHost puts it back (keepTUN), with the address that returned (a DHCP
// client that took it down and up) or a new one (setSelf); down leaves no route of mctun's
// behind. (eth0p, eth0's peer, stands for the TUN.)
func TestTUNRoute(t *testing.T) {
	host, nl := hostInNetns(t, "eth0", t.TempDir())
	d, _ := loadedDaemon(t, "[source]\njoin_from = [\"198.18.0.0/15\"]\n[member]\ntun = \"eth0p\"\nsources = [\"198.18.2.2\"]\n", "")
	d.host = host
	eth0, err := nl.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"eth0", "eth0p"} {
		if err := nl.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: l}}); err != nil {
			t.Fatal(err)
		}
	}
	routes := func() string {
		t.Helper()
		rs, err := nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: parseAddr(t, "224.0.0.0/4").IPNet}, netlink.RT_FILTER_DST)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			l, err := nl.LinkByIndex(r.LinkIndex)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("dev %s src %v", l.Attrs().Name, r.Src))
		}
		return strings.Join(got, "; ")
	}
	step := func(what string, change func() error, want string) {
		t.Helper()
		if err := change(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := routes(); got != want {
			t.Fatalf("%s: the routes to 224.0.0.0/4 are %q, want %q", what, got, want)
		}
	}
	// a change to eth0's addresses, then refreshSelf and keepTUN, as routineHost calls them
	refreshAfter := func(change func(netlink.Link, *netlink.Addr) error, a string) func() error {
		return func() error {
			if err := change(eth0, parseAddr(t, a)); err != nil {
				return err
			}
			if err := d.refreshSelf(); err != nil {
				return err
			}
			return d.keepTUN()
		}
	}
	tunSet := func(up func(netlink.Link) error) func() error {
		return func() error {
			l, err := nl.LinkByName("eth0p")
			if err == nil {
				err = up(l)
			}
			if err == nil {
				err = d.keepTUN()
			}
			return err
		}
	}
	if err := nl.AddrAdd(eth0, parseAddr(t, "198.18.1.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := d.readSelf(); err != nil {
		t.Fatal(err)
	}
	d.joins = membership.New(membership.Limits{}, time.Now)
	d.sender = datapath.NewSender(encaptest.NewNetwork().Listen(netip.MustParseAddrPort("198.18.1.1:4754")), 0, nil, nil, quiet)
	step("start", func() error { _, err := d.routeTUN(); return err }, "dev eth0p src 198.18.1.1")
	step("the TUN down", tunSet(nl.LinkSetDown), "")
	if !d.tunDown {
		t.Errorf("the TUN down: keepTUN did not notice")
	}
	step("the TUN up", tunSet(nl.LinkSetUp), "dev eth0p src 198.18.1.1")
	step("the address gone", refreshAfter(nl.AddrDel, "198.18.1.1/24"), "")
	step("the address back", refreshAfter(nl.AddrAdd, "198.18.1.1/24"), "dev eth0p src 198.18.1.1")
	step("a second address", refreshAfter(nl.AddrAdd, "198.18.1.9/24"), "dev eth0p src 198.18.1.1")
	// The route of the first address is still there: the new one replaces it, and down must
	// not put it back as a route mctun displaced.
	step("self the second address", func() error {
		if err := d.setSelf(netip.MustParseAddr("198.18.1.9")); err != nil {
			return err
		}
		_, err := d.routeTUN()
		return err
	}, "dev eth0p src 198.18.1.9")
	step("the first gone, the second with it", refreshAfter(nl.AddrDel, "198.18.1.1/24"), "")
	step("the second back", refreshAfter(nl.AddrAdd, "198.18.1.9/24"), "dev eth0p src 198.18.1.9")
	if d.self != netip.MustParseAddr("198.18.1.9") {
		t.Fatalf("self %v, want 198.18.1.9", d.self)
	}
	if err := host.Undo(); err != nil {
		t.Fatal(err)
	}
	if got := routes(); got != "" {
		t.Fatalf("after down, the routes to 224.0.0.0/4 are %q; want none", got)
	}
}
