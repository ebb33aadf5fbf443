package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func addrPorts(ss ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

// mustParse parses a config that must be valid and free of warnings.
func mustParse(t testing.TB, file string) *Config {
	t.Helper()
	cfg, warns, err := Parse("mctun.toml", []byte(file))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, file)
	}
	if len(warns) > 0 {
		t.Fatalf("Parse warned: %v", warns)
	}
	return cfg
}

func TestLoadExample(t *testing.T) {
	path := filepath.Join("testdata", "mctun.toml")
	cfg, warns, err := Load(path)
	if err != nil || len(warns) > 0 {
		t.Fatalf("Load(%s) = %v, %v", path, warns, err)
	}
	want := &Config{
		Path:        path,
		ManagedPath: filepath.Join("testdata", "mctun.managed.toml"),
		Key:         0,
		Port:        4754,
		Datapath:    DatapathAuto,
		Log:         Log{Format: "text", Level: "info"},
		Metrics:     Metrics{Listen: netip.MustParseAddrPort("127.0.0.1:9477")},
		Source: &Source{
			Interface: "eth0",
			Groups: []Group{{
				Address: netip.MustParseAddr("224.1.2.3"),
				Port:    65535,
				Members: addrPorts("192.168.1.1:4754", "192.168.1.2:5000", "192.168.1.3:4754"),
				Origin:  Origin{File: path, Line: 10},
			}},
		},
		Member: &Member{
			TUN:           "mctun0",
			MTU:           1500,
			Sources:       addrs("192.168.1.10"),
			SourceOrigins: []Origin{{File: path, Line: 18}},
			Groups:        addrs("224.1.2.3"),
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(%s) =\n%#v\nwant\n%#v", path, cfg, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.toml")
	cfg, _, err := Load(path)
	if cfg != nil || err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load(%s) = %v, %v; want an error naming the path", path, cfg, err)
	}
}

func TestLoadProblemsNameTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[member]\nsources = [\"127.0.0.1\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(path)
	want := path + `:2: member.sources[0]: 127.0.0.1 is a loopback address, not a remote host`
	if err == nil || err.Error() != want {
		t.Fatalf("Load: %v; want %s", err, want)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg := mustParse(t, "[member]\nsources = [\"198.18.0.1\"]\n"+
		"[source]\n[[source.group]]\naddress = \"239.1.1.1\"\nmembers = [\"198.18.1.1\"]\n")
	want := &Config{
		Path:        "mctun.toml",
		ManagedPath: "mctun.managed.toml",
		Port:        DefaultPort,
		Datapath:    DatapathAuto,
		Log:         Log{Format: DefaultLogFormat, Level: DefaultLogLevel},
		Source: &Source{Groups: []Group{{
			Address: netip.MustParseAddr("239.1.1.1"),
			Members: addrPorts("198.18.1.1:4754"),
			Origin:  Origin{File: "mctun.toml", Line: 4},
		}}},
		Member: &Member{TUN: DefaultTUN, MTU: DefaultMTU, Sources: addrs("198.18.0.1"),
			SourceOrigins: []Origin{{File: "mctun.toml", Line: 2}}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%#v\nwant\n%#v", cfg, want)
	}
}

// TestParseAccepts checks the edges of every range, and layouts TOML allows, are accepted.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		check func(*Config) bool
	}{
		{"largest key", "key = 4294967295\n" + member,
			func(c *Config) bool { return c.Key == 4294967295 }},
		{"port 1", "port = 1\n" + member,
			func(c *Config) bool { return c.Port == 1 }},
		{"port 65535", "port = 65535\n" + member,
			func(c *Config) bool { return c.Port == 65535 }},
		{"hexadecimal port", "port = 0x1292\n" + member,
			func(c *Config) bool { return c.Port == 4754 }},
		{"group port 1 and 65535",
			"[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nport = 1\nmembers = [\"198.18.1.1\"]\n" +
				"[[source.group]]\naddress = \"224.1.2.3\"\nport = 65535\nmembers = [\"198.18.1.2\"]\n",
			func(c *Config) bool { return c.Source.Groups[0].Port == 1 && c.Source.Groups[1].Port == 65535 }},
		{"member port 1 and 65535",
			"[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1:1\", \"198.18.1.1:65535\"]\n",
			func(c *Config) bool {
				return slices2(c.Source.Groups[0].Members, addrPorts("198.18.1.1:1", "198.18.1.1:65535"))
			}},
		{"members take the tunnel port", "port = 5000\n[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1\"]\n",
			func(c *Config) bool { return slices2(c.Source.Groups[0].Members, addrPorts("198.18.1.1:5000")) }},
		{"one member in groups with different addresses",
			"[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1\"]\n" +
				"[[source.group]]\naddress = \"239.255.255.250\"\nport = 1900\nmembers = [\"198.18.1.1\"]\n",
			func(c *Config) bool { return len(c.Source.Groups) == 2 }},
		{"one address, different ports and members",
			"[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1\"]\n" +
				"[[source.group]]\naddress = \"224.1.2.3\"\nport = 5000\nmembers = [\"198.18.1.1:5000\"]\n",
			func(c *Config) bool { return len(c.Source.Groups) == 2 }},
		{"group addresses at the edges of 224.0.0.0/4",
			"[source]\n[[source.group]]\naddress = \"224.0.0.0\"\nmembers = [\"198.18.1.1\"]\n" +
				"[[source.group]]\naddress = \"239.255.255.255\"\nmembers = [\"198.18.1.1\"]\n",
			func(c *Config) bool { return len(c.Source.Groups) == 2 }},
		{"interface 15 bytes", "[source]\ninterface = \"abcdefghijklmno\"\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1\"]\n",
			func(c *Config) bool { return c.Source.Interface == "abcdefghijklmno" }},
		{"interface empty", "[source]\ninterface = \"\"\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1\"]\n",
			func(c *Config) bool { return c.Source.Interface == "" }},
		{"tun 15 bytes", member + "\ntun = \"mctun0123456789\"",
			func(c *Config) bool { return c.Member.TUN == "mctun0123456789" }},
		{"mtu 576", member + "\nmtu = 576",
			func(c *Config) bool { return c.Member.MTU == 576 }},
		{"mtu 65535", member + "\nmtu = 65535",
			func(c *Config) bool { return c.Member.MTU == 65535 }},
		{"empty member groups", member + "\ngroups = []",
			func(c *Config) bool { return c.Member.Groups == nil }},
		{"inline tables", `source = { group = [{ address = "224.1.2.3", members = ["198.18.1.1"] }] }` + "\n" +
			`member = { sources = ["198.18.0.1"] }`,
			func(c *Config) bool { return len(c.Source.Groups) == 1 && len(c.Member.Sources) == 1 }},
		{"dotted keys", `source.group = [{ address = "224.1.2.3", members = ["198.18.1.1"] }]` + "\n" +
			`member.sources = ["198.18.0.1"]` + "\n" + `member.mtu = 9000`,
			func(c *Config) bool { return c.Member.MTU == 9000 }},
		{"source only", group,
			func(c *Config) bool { return c.Member == nil && c.Source != nil }},
		{"member only", member,
			func(c *Config) bool { return c.Source == nil && c.Member != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if cfg := mustParse(t, tt.file); !tt.check(cfg) {
				t.Errorf("unexpected Config:\n%s", cfg.Format())
			}
		})
	}
}

func slices2(a, b []netip.AddrPort) bool { return reflect.DeepEqual(a, b) }

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{"mctun.toml", 9, "source.group[0].address", "10.1.1.1 is not a multicast address"},
			"mctun.toml:9: source.group[0].address: 10.1.1.1 is not a multicast address"},
		{Problem{"mctun.toml", 0, "member.tun", "empty"}, "mctun.toml: member.tun: empty"},
		{Problem{"mctun.toml", 3, "", "syntax"}, "mctun.toml:3: syntax"},
		{Problem{"mctun.toml", 0, "", "no tables"}, "mctun.toml: no tables"},
		{Problem{"", 0, "port", "bad"}, "port: bad"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

// largeConfig writes a config of groups groups of members members each.
func largeConfig(groups, members int) string {
	b := []byte("[source]\n")
	for g := range groups {
		b = fmt.Appendf(b, "[[source.group]]\naddress = \"239.1.%d.%d\"\nmembers = [\n", g/256, g%256)
		for m := range members {
			// 198.18.0.0/15 holds 131072 addresses, so every member is distinct.
			b = append(b, `  "198.`...)
			b = strconv.AppendInt(b, int64(18+m/65536), 10)
			b = append(b, '.')
			b = strconv.AppendInt(b, int64(m/256%256), 10)
			b = append(b, '.')
			b = strconv.AppendInt(b, int64(m%256), 10)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(5000+g), 10)
			b = append(b, "\",\n"...)
		}
		b = append(b, "]\n"...)
	}
	return string(b)
}

// TestParseLarge parses 1024 groups of 4096 members, well past the 256 x 256 at which the tool
// mctun replaces overflowed. It asserts the result, not the time taken; BenchmarkParseLarge
// measures that.
func TestParseLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the large config in -short mode")
	}
	groups, members := 1024, 4096
	if raceEnabled {
		members = 512
		t.Logf("race detector: %d groups of %d members; run without -race for 4096", groups, members)
	}
	cfg := mustParse(t, largeConfig(groups, members))
	if len(cfg.Source.Groups) != groups {
		t.Fatalf("%d groups, want %d", len(cfg.Source.Groups), groups)
	}
	for i, g := range cfg.Source.Groups {
		if len(g.Members) != members {
			t.Fatalf("group %d has %d members, want %d", i, len(g.Members), members)
		}
	}
	last := cfg.Source.Groups[groups-1]
	if want := netip.MustParseAddr("239.1.3.255"); last.Address != want {
		t.Errorf("last group %v, want %v", last.Address, want)
	}
	if want := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte((members - 1) / 256), 255}), 6023); last.Members[members-1] != want {
		t.Errorf("last member %v, want %v", last.Members[members-1], want)
	}
}

func BenchmarkParseLarge(b *testing.B) {
	data := []byte(largeConfig(1024, 4096))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := Parse("mctun.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}
