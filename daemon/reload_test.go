package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"mctun/config"
	"mctun/datapath"
	"mctun/encap/encaptest"
	"mctun/igmp"
	"mctun/membership"
	"mctun/route"
	"mctun/tun/tuntest"
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

// loadedDaemon writes the config file main, and the managed file managed unless it is "",
// into a directory of the test's and loads them as Run does: a daemon for reloads and
// commands, without packet paths or a host. It returns the config file's path.
func loadedDaemon(t *testing.T, main, managed string) (*daemon, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mctun.toml")
	writeFile(t, path, main)
	if managed != "" {
		writeFile(t, config.ManagedPath(path), managed)
	}
	cfg, data, _, err := loadFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogOutput(io.Discard)
	if err := logs.configure(cfg.Log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	return &daemon{cfg: cfg, mainData: data, log: slog.New(logs), logs: logs, iface: "eth0", stopping: make(chan struct{})}, path
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostInNetns is a route.Host that acts in a network namespace of its own, where a veth
// named tun stands for the TUN, at mtu 1500, and reads and writes sysctls under
// sysctlRoot: a reload's host changes, where they touch nothing of the machine's. The
// returned handle looks into the namespace.
func hostInNetns(t *testing.T, tun, sysctlRoot string) (*route.Host, *netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	var nl *netlink.Handle
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies in the namespace
		ns, nerr := netns.New()
		if nerr != nil {
			err = nerr
			return
		}
		defer ns.Close() // the handle's socket keeps the namespace
		nl, err = netlink.NewHandleAt(ns)
	}()
	<-done
	if err != nil {
		t.Fatalf("new network namespace: %v", err)
	}
	t.Cleanup(nl.Close)
	if err := nl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tun, MTU: 1500}, PeerName: tun + "p"}); err != nil {
		t.Fatalf("veth %s: %v", tun, err)
	}
	journal, err := route.OpenJournal(filepath.Join(t.TempDir(), "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	host := route.NewHost(nl, journal)
	host.SysctlRoot = sysctlRoot
	return host, nl
}

func linkMTU(t *testing.T, nl *netlink.Handle, name string) int {
	t.Helper()
	link, err := nl.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return link.Attrs().MTU
}

// A reload refused leaves the TUN's MTU as it was: when a log.file that cannot be opened
// refuses it, and when a step after the MTU's fails (the sysctl cannot be read). One that
// applies changes it.
func TestReloadRefusedKeepsMTU(t *testing.T) {
	const main = "[member]\nmtu = 1500\nsources = [\"198.18.1.2\"]\n"
	for _, tt := range []struct {
		name    string
		log     bool // the reload sets a log.file that cannot be opened
		sysctls bool // igmp_max_memberships is there to read
		mtu     int  // after
	}{
		{"applied", false, true, 9000},
		{"log.file", true, true, 1500},
		{"sysctl", false, false, 1500},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, path := loadedDaemon(t, main, "")
			sysctls := t.TempDir()
			if tt.sysctls {
				os.MkdirAll(filepath.Join(sysctls, "net/ipv4"), 0o755)
				writeFile(t, filepath.Join(sysctls, "net/ipv4/igmp_max_memberships"), "256\n")
			}
			var nl *netlink.Handle
			d.host, nl = hostInNetns(t, "mctun0", sysctls)
			m := *d.cfg.Member
			d.receiver = datapath.NewReceiver(encaptest.NewNetwork().Listen(netip.MustParseAddrPort("198.18.0.1:4754")), tuntest.New(8), 0, m, nil, nil, quiet)
			d.reporter = &reporter{sources: m.Sources}
			next := strings.Replace(main, "1500", "9000", 1)
			if tt.log {
				next += fmt.Sprintf("[log]\nfile = %q\n", filepath.Join(filepath.Dir(path), "missing", "mctun.log"))
			}
			writeFile(t, path, next)
			_, err := d.reload()
			switch {
			case tt.mtu == 9000 && err != nil:
				t.Fatalf("reload: %v", err)
			case tt.mtu == 1500 && err == nil:
				t.Fatal("reload applied")
			case errors.Is(err, errNotUndone):
				t.Errorf("reload: %v", err)
			}
			if mtu := linkMTU(t, nl, "mctun0"); mtu != tt.mtu || d.cfg.Member.MTU != tt.mtu {
				t.Errorf("after the reload, the TUN has mtu %d and the running config %d; want %d", mtu, d.cfg.Member.MTU, tt.mtu)
			}
		})
	}
}

// joiningSource is a loaded daemon that is a source of 224.1.2.3 (static member 198.18.2.2)
// to which hosts in 198.18.0.0/15 may join, with its membership table and a sender side on
// an in-memory network. It returns the config file's path.
func joiningSource(t *testing.T) (*daemon, string) {
	t.Helper()
	const main = `[source]
join_from = ["198.18.0.0/15"]
[[source.group]]
address = "224.1.2.3"
members = ["198.18.2.2"]
`
	d, path := loadedDaemon(t, main, "")
	d.self = netip.MustParseAddr("198.18.1.1")
	d.joins = membership.New(membership.Limits{}, time.Now)
	d.sender = datapath.NewSender(encaptest.NewNetwork().Listen(netip.MustParseAddrPort("198.18.1.1:4754")), 0, d.cfg.Source.Groups, nil, quiet)
	return d, path
}

// A reload that narrows join_from takes out the dynamic members it leaves out, and hands the
// sender side the groups without them.
func TestReloadNarrowsJoinFrom(t *testing.T) {
	d, path := joiningSource(t)
	d.reports = datapath.NewReports(0, d.cfg.Source.JoinFrom, nil, nil, d.onReport, quiet)
	for _, m := range []string{"198.18.3.2", "198.19.3.2"} {
		d.joins.Report(netip.MustParseAddr(m), []igmp.Record{{Type: igmp.ChangeToExclude, Group: netip.MustParseAddr("224.1.2.3")}})
	}
	if err := d.applyGroups(d.cfg); err != nil {
		t.Fatal(err)
	}
	members := func() int { return d.sender.View().Stats().Groups[0].MemberCount }
	if n := members(); n != 3 {
		t.Fatalf("the sender side sends to %d members, want 3: the static one and two that joined", n)
	}
	writeFile(t, path, strings.Replace(string(d.mainData), "198.18.0.0/15", "198.18.0.0/16", 1))
	if _, err := d.reload(); err != nil {
		t.Fatal(err)
	}
	if n := members(); n != 2 || d.joins.Len() != 1 {
		t.Errorf("after join_from narrowed, the sender side sends to %d members and %d dynamic ones are left; want 2 and 1", n, d.joins.Len())
	}
}

// A reload with nothing to apply still takes where each group and source is defined: a
// group moved by hand from the managed file into the config file is the config file's, so
// group del refuses it instead of answering that it deleted a group that stays.
func TestReloadTakesOrigins(t *testing.T) {
	const main = `[source]
[[source.group]]
address = "224.1.2.3"
members = ["198.18.2.2"]
`
	const moved = `[[source.group]]
address = "224.5.5.5"
port    = 6000
members = ["198.18.3.2"]
`
	d, path := loadedDaemon(t, main, moved)
	writeFile(t, path, main+moved)
	if err := os.Remove(config.ManagedPath(path)); err != nil {
		t.Fatal(err)
	}
	if changes, err := d.reload(); err != nil || len(changes) != 0 {
		t.Fatalf("reload: %q, %v; want nothing to apply", changes, err)
	}
	if g := d.cfg.Source.Groups[1]; g.Origin.Managed || g.Origin.String() != path+":5" {
		t.Errorf("group %s is defined at %s (managed %t), want %s:5", GroupName(g.Address, g.Port), g.Origin, g.Origin.Managed, path)
	}
	if _, err := d.edit(EditArgs{Verb: "group del", Group: "224.5.5.5:6000"}); err == nil || !strings.Contains(err.Error(), "edit it there") {
		t.Errorf("group del of a group of the config file: %v, want refused", err)
	}
}
