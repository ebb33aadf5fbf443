package main

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"mctun/config"
)

func TestSourceConfig(t *testing.T) {
	got := sourceConfig("kernel", []mctunGroup{
		{Address: group, Port: groupPort, Members: []netip.Addr{netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("198.18.3.2")}},
		{Address: netip.MustParseAddr("224.2.0.1"), Members: []netip.Addr{netip.MustParseAddr("198.19.0.1")}},
	})
	want := `# the source: its applications send; mctun unicasts each packet to every member
datapath = "kernel"

[source]

[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2", "198.18.3.2"]

[[source.group]]
address = "224.2.0.1"
members = ["198.19.0.1"]
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMemberConfig(t *testing.T) {
	got := memberConfig("user", netip.MustParseAddr("198.18.1.2"))
	want := "# a member: its applications receive what mctun writes into its TUN\ndatapath = \"user\"\n\n[member]\nsources = [\"198.18.1.2\"]\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestVXLANCommands(t *testing.T) {
	h0 := netip.MustParseAddr("198.18.1.2")
	members := []netip.Addr{netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("198.18.3.2")}
	var lines []string
	for _, c := range vxlanCommands(0, h0, members) {
		lines = append(lines, strings.Join(c, " "))
	}
	want := []string{
		"ip link add vx0 type vxlan id 42 dstport 4789 local 198.18.1.2 nolearning",
		"bridge fdb append 00:00:00:00:00:00 dev vx0 dst 198.18.2.2",
		"bridge fdb append 00:00:00:00:00:00 dev vx0 dst 198.18.3.2",
		"ip address add 198.18.200.1/24 dev vx0",
		"ip link set vx0 up",
		"ip route add 224.0.0.0/4 dev vx0",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("source:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	m := vxlanCommands(2, members[1], []netip.Addr{h0})
	if got := strings.Join(m[1], " "); got != "bridge fdb append 00:00:00:00:00:00 dev vx0 dst 198.18.1.2" {
		t.Errorf("member's FDB entry: %s", got)
	}
	if got := strings.Join(m[2], " "); got != "ip address add 198.18.200.3/24 dev vx0" {
		t.Errorf("member's overlay address: %s", got)
	}
}

func TestBigMember(t *testing.T) {
	for _, c := range []struct {
		k    int
		want string
	}{
		{0, "198.19.0.1"}, {254, "198.19.0.255"}, {255, "198.19.1.0"}, {65534, "198.19.255.255"},
		{65535, "198.18.128.0"}, {bigMemberMax - 1, "198.18.255.255"},
	} {
		if got := bigMember(c.k).String(); got != c.want {
			t.Errorf("bigMember(%d) = %s, want %s", c.k, got, c.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("bigMember(bigMemberMax) did not panic")
		}
	}()
	bigMember(bigMemberMax)
}

func TestBigGroups(t *testing.T) {
	real := netip.MustParseAddr("198.18.2.2")
	lab := netip.MustParsePrefix("198.18.0.0/15")
	topology := netip.MustParsePrefix("198.18.0.0/17") // hosts 198.18.<i+1>.0/24 and the overlay
	for _, c := range []struct{ groups, per int }{{1024, 64}, {16, 4096}} {
		gs, err := bigGroups(c.groups, c.per, real)
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) != c.groups {
			t.Fatalf("%d groups, want %d", len(gs), c.groups)
		}
		seenGroup := map[netip.Addr]bool{}
		seen := map[netip.Addr]bool{}
		for i, g := range gs {
			if !g.Address.IsMulticast() || g.Address.IsLinkLocalMulticast() || seenGroup[g.Address] || g.Port != groupPort {
				t.Fatalf("group %d: %v port %d", i, g.Address, g.Port)
			}
			seenGroup[g.Address] = true
			if len(g.Members) != c.per {
				t.Fatalf("group %d has %d members, want %d", i, len(g.Members), c.per)
			}
			for j, m := range g.Members {
				if seen[m] || !lab.Contains(m) {
					t.Fatalf("group %d member %d: %v twice or outside %v", i, j, m, lab)
				}
				seen[m] = true
				if (i == 0 && j == 0) != (m == real) {
					t.Fatalf("group %d member %d is %v; only the first of group 0 is the real one", i, j, m)
				}
				if m != real && topology.Contains(m) {
					t.Fatalf("made-up member %v inside the topology's %v", m, topology)
				}
			}
		}
	}
	if _, err := bigGroups(2, bigMemberMax, real); err == nil {
		t.Error("more members than made-up addresses: no error")
	}
}

func TestOverlayAddr(t *testing.T) {
	if got := overlayAddr(0).String(); got != "198.18.200.1/24" {
		t.Errorf("overlayAddr(0) = %s", got)
	}
	if got := overlayAddr(16).String(); got != "198.18.200.17/24" {
		t.Errorf("overlayAddr(16) = %s", got)
	}
}

// TestConfigsAreMctuns checks the generated configs with mctun's own config parser: they are
// valid, and pick the datapath asked for; the base binary's leave the key out, which it does
// not know.
func TestConfigsAreMctuns(t *testing.T) {
	gs, err := bigGroups(16, 4096, netip.MustParseAddr("198.18.2.2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, system := range mctunSystems {
		dp := datapathOf(system)
		for name, text := range map[string]string{
			"source": sourceConfig(dp, []mctunGroup{{Address: group, Port: groupPort, Members: []netip.Addr{netip.MustParseAddr("198.18.2.2")}}}),
			"member": memberConfig(dp, netip.MustParseAddr("198.18.1.2")),
			"big":    sourceConfig(dp, gs),
		} {
			cfg, _, err := config.Parse(name+".toml", []byte(text))
			if err != nil {
				t.Fatalf("%s, %s: %v", system, name, err)
			}
			want := dp
			if system == sysBase {
				want = "auto"
				if strings.Contains(text, "datapath") {
					t.Errorf("%s, %s: the base binary's config names the datapath:\n%s", system, name, text)
				}
			}
			if cfg.Datapath != want {
				t.Errorf("%s, %s: datapath %q, want %q", system, name, cfg.Datapath, want)
			}
		}
	}
	if datapathOf(sysVXLAN) != "" || datapathOf(sysNone) != "" {
		t.Error("VXLAN or nothing has a datapath")
	}
}
