package daemon

import (
	"net/netip"
	"slices"
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
// the interface; every selfEvery after start, refreshSelf takes the address it has now.
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
	addr := func(a string) *netlink.Addr {
		ip, err := netlink.ParseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		return ip
	}
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
