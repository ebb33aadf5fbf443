package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestFormatMinimalRoundTrip(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "mctun.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{
		"member only": member,
		"source only": group,
		"example":     string(data),
		"everything set": `
key = 4294967295
port = 1
secret_file = "/etc/mctun/secret"
encrypt = true
datapath = "user"
[log]
format = "json"
file = "/var/log/mctun.log"
level = "debug"
[source]
interface = "e\"th\\0é"
[[source.group]]
address = "239.255.255.250"
port = 1900
members = ["198.18.1.1", "198.18.1.1:1900", "198.18.1.2:1", "198.18.1.3:65535"]
[member]
tun = "tun-é"
mtu = 65535
sources = ["198.18.0.1", "198.18.0.2"]
groups = ["239.255.255.250", "224.0.0.251"]
`,
		"defaults written out": "key = 0\nport = 4754\ndatapath = \"auto\"\n[log]\nlevel = \"info\"\n[member]\ntun = \"mctun0\"\nmtu = 1500\nsources = [\"198.18.0.1\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := mustParse(t, file)
			out := cfg.FormatMinimal()
			again, _, err := Parse(cfg.Path, []byte(out))
			if err != nil {
				t.Fatalf("FormatMinimal output does not parse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(withoutOrigins(again), withoutOrigins(cfg)) {
				t.Errorf("round trip changed the config:\n%s\nwant\n%s\nfrom\n%s", dump(again), dump(cfg), out)
			}
		})
	}
}

func TestFormatMinimal(t *testing.T) {
	g := netip.MustParseAddr("224.1.2.3")
	m := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	cfg := &Config{
		Path: "out.toml",
		Source: &Source{Groups: []Group{
			{Address: g, Port: 65535, Members: []netip.AddrPort{m("192.168.1.1:4754"), m("192.168.1.2:5000")},
				Origin: Origin{File: "server.json", Line: 3}},
			{Address: netip.MustParseAddr("224.0.0.18"), Members: []netip.AddrPort{m("192.168.1.3:4754")},
				Origin: Origin{File: "out.toml", Line: 9}},
		}},
		Member: &Member{
			Sources:       []netip.Addr{netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.11")},
			SourceOrigins: []Origin{{File: "client.json", Line: 2}, {}},
			Groups:        []netip.Addr{g},
		},
	}
	want := `[source]

[[source.group]] # from server.json:3
address = "224.1.2.3"
port    = 65535
members = [
  "192.168.1.1",
  "192.168.1.2:5000",
]

[[source.group]]
address = "224.0.0.18"
members = [
  "192.168.1.3",
]

[member]
sources = [
  "192.168.1.10", # from client.json:2
  "192.168.1.11",
]
groups  = ["224.1.2.3"]
`
	if got := cfg.FormatMinimal(); got != want {
		t.Errorf("FormatMinimal() =\n%s\nwant\n%s", got, want)
	}
	if _, _, err := Parse("out.toml", []byte(want)); err != nil {
		t.Errorf("does not parse: %v", err)
	}
	empty := &Config{Member: &Member{}}
	if got, want := empty.FormatMinimal(), "[member]\nsources = []\n"; got != want {
		t.Errorf("FormatMinimal() of a member with nothing set = %q, want %q", got, want)
	}
}
