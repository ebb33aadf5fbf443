package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"mctun/config"
)

func TestDiffConfig(t *testing.T) {
	ap := netip.MustParseAddrPort
	base := func() *config.Config {
		return &config.Config{
			Port: 4754,
			Source: &config.Source{Groups: []config.Group{
				{Address: netip.MustParseAddr("224.1.2.3"), Port: 65535, Members: []netip.AddrPort{ap("198.18.2.2:4754"), ap("198.18.3.2:4754")}},
				{Address: netip.MustParseAddr("224.9.9.9"), Members: []netip.AddrPort{ap("198.18.2.2:4754")}},
			}},
			Member: &config.Member{TUN: "mctun0", MTU: 1500, Sources: []netip.Addr{netip.MustParseAddr("198.18.1.2")}},
		}
	}
	tests := []struct {
		name             string
		edit             func(c *config.Config)
		changes, restart []string
	}{
		{"nothing", func(c *config.Config) {}, nil, nil},
		{"groups and members", func(c *config.Config) {
			c.Source.Groups[0].Members = []netip.AddrPort{ap("198.18.3.2:4754"), ap("198.18.4.2:4754")}
			c.Source.Groups = append(c.Source.Groups[:1], config.Group{Address: netip.MustParseAddr("224.7.7.7"), Port: 7, Members: []netip.AddrPort{ap("198.18.2.2:4754")}})
		}, []string{
			"group 224.1.2.3:65535: + member 198.18.4.2:4754",
			"group 224.1.2.3:65535: - member 198.18.2.2:4754",
			"+ group 224.7.7.7:7 (1 member)",
			"- group 224.9.9.9",
		}, nil},
		{"key, sources, mtu, allowed groups", func(c *config.Config) {
			c.Key = 9
			c.Member.MTU = 9000
			c.Member.Sources = []netip.Addr{netip.MustParseAddr("198.18.5.2")}
			c.Member.Groups = []netip.Addr{netip.MustParseAddr("224.1.2.3")}
		}, []string{"key 0 -> 9", "member.mtu 1500 -> 9000", "+ source 198.18.5.2", "- source 198.18.1.2", "member.groups any -> 224.1.2.3"}, nil},
		{"what needs a restart", func(c *config.Config) {
			c.Port = 4800
			c.Source.Interface = "eth1"
			c.Member.TUN = "mctun1"
		}, nil, []string{"port 4754 -> 4800", "source.interface eth0 -> eth1", "member.tun mctun0 -> mctun1"}},
		{"a role added or removed", func(c *config.Config) { c.Member = nil }, nil, []string{"[member] removed"}},
		{"a secret", func(c *config.Config) { c.SecretFile = "/etc/mctun/secret" }, nil, []string{`secret_file "" -> "/etc/mctun/secret"`}},
		{"metrics on", func(c *config.Config) {
			c.Metrics = config.Metrics{Listen: ap("127.0.0.1:9477"), PerMember: true}
		}, []string{"metrics.listen off -> 127.0.0.1:9477", "metrics.per_member false -> true"}, nil},
		{"the interface chosen at start, still unset", func(c *config.Config) { c.Source.Interface = "" }, nil, nil},
		{"the interface in use, now named", func(c *config.Config) { c.Source.Interface = "eth0" }, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			tt.edit(next)
			changes, restart := diffConfig(base(), next, "eth0")
			if !slices.Equal(changes, tt.changes) || !slices.Equal(restart, tt.restart) {
				t.Errorf("diffConfig = %q, restart %q; want %q, restart %q", changes, restart, tt.changes, tt.restart)
			}
		})
	}
}

// A reload applies metrics changes (they need no restart): moved, turned off.
func TestDiffConfigMetrics(t *testing.T) {
	ap := netip.MustParseAddrPort
	base := func() *config.Config {
		return &config.Config{Port: 4754, Metrics: config.Metrics{Listen: ap("127.0.0.1:9477"), PerMember: true},
			Member: &config.Member{TUN: "mctun0", MTU: 1500}}
	}
	for _, tt := range []struct {
		name    string
		edit    func(c *config.Config)
		changes []string
	}{
		{"moved", func(c *config.Config) { c.Metrics.Listen = ap("198.18.2.2:9477") }, []string{"metrics.listen 127.0.0.1:9477 -> 198.18.2.2:9477"}},
		{"off", func(c *config.Config) { c.Metrics = config.Metrics{} }, []string{"metrics.listen 127.0.0.1:9477 -> off", "metrics.per_member true -> false"}},
	} {
		next := base()
		tt.edit(next)
		changes, restart := diffConfig(base(), next, "")
		if !slices.Equal(changes, tt.changes) || restart != nil {
			t.Errorf("%s: diffConfig = %q, restart %q; want %q", tt.name, changes, restart, tt.changes)
		}
	}
}

// TestDiffJoinFrom: join_from changes on a reload, but a source that is not a member opens
// the tunnel port at start only, so adding join_from there needs a restart.
func TestDiffJoinFrom(t *testing.T) {
	pf := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}
	cfg := func(joinFrom []netip.Prefix, member bool) *config.Config {
		c := &config.Config{Port: 4754, Source: &config.Source{JoinFrom: joinFrom}}
		if member {
			c.Member = &config.Member{TUN: "mctun0", MTU: 1500}
		}
		return c
	}
	changes, restart := diffConfig(cfg(nil, true), cfg(pf, true), "eth0")
	if !slices.Equal(changes, []string{"source.join_from none -> 198.18.0.0/15"}) || len(restart) != 0 {
		t.Errorf("member too: %q, restart %q", changes, restart)
	}
	changes, restart = diffConfig(cfg(pf, false), cfg(nil, false), "eth0")
	if !slices.Equal(changes, []string{"source.join_from 198.18.0.0/15 -> none"}) || len(restart) != 0 {
		t.Errorf("removed: %q, restart %q", changes, restart)
	}
	_, restart = diffConfig(cfg(nil, false), cfg(pf, false), "eth0")
	if len(restart) != 1 {
		t.Errorf("added on a source that is no member: restart %q, want one", restart)
	}
}
