package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// roundTrip checks that cfg.Format() parses back, without problems, to a Config equal to cfg
// but for where things come from: the one file Format writes.
func roundTrip(t *testing.T, cfg *Config) {
	t.Helper()
	out := cfg.Format()
	again, warns, err := Parse(cfg.Path, []byte(out))
	if err != nil {
		t.Fatalf("Format output does not parse: %v\n%s", err, out)
	}
	if len(warns) > 0 {
		t.Errorf("Format output warns: %v\n%s", warns, out)
	}
	if !reflect.DeepEqual(withoutOrigins(again), withoutOrigins(cfg)) {
		t.Errorf("round trip changed the config:\n%s\nwant\n%s", dump(again), dump(cfg))
	}
}

// withoutOrigins returns a copy of c, a valid Config, with no origins.
func withoutOrigins(c *Config) *Config {
	out := *c
	if c.Source != nil {
		s := *c.Source
		s.Groups = slices.Clone(s.Groups)
		for i := range s.Groups {
			s.Groups[i].Origin = Origin{}
		}
		out.Source = &s
	}
	if c.Member != nil {
		m := *c.Member
		m.SourceOrigins = nil
		out.Member = &m
	}
	return &out
}

// dump shows a Config in full, for a failed comparison.
func dump(c *Config) string {
	if c == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("%+v", *c)
	if c.Source != nil {
		s += fmt.Sprintf("\nsource: %+v", *c.Source)
	}
	if c.Member != nil {
		s += fmt.Sprintf("\nmember: %+v", *c.Member)
	}
	return s
}

func TestFormatRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		file string
	}{
		{"member only", member},
		{"source only", group},
		{"example", ""}, // testdata/mctun.toml
		{"joins", `
[source]
join_from = ["192.168.0.0/16", "198.18.2.2/32"]
[[source.group]]
address = "224.1.2.3"
port = 5000
`},
		{"everything set", `
key = 4294967295
port = 1
[source]
interface = "e\"th\\0é"
[[source.group]]
address = "239.255.255.250"
port = 1900
members = ["198.18.1.1", "198.18.1.1:1900", "198.18.1.2:1", "198.18.1.3:65535"]
[[source.group]]
address = "224.0.0.251"
members = ["198.18.1.1:1", "198.18.1.9"]
[member]
tun = "tun-é"
mtu = 65535
sources = ["198.18.0.1", "198.18.0.2"]
groups = ["239.255.255.250", "224.0.0.251"]
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.file
			if file == "" {
				data, err := os.ReadFile(filepath.Join("testdata", "mctun.toml"))
				if err != nil {
					t.Fatal(err)
				}
				file = string(data)
			}
			roundTrip(t, mustParse(t, file))
		})
	}
}

func TestFormat(t *testing.T) {
	cfg := mustParse(t, `
port = 5000
[source]
[[source.group]]
address = "224.1.2.3"
port = 65535
members = ["198.18.1.1", "198.18.1.2:4754", "198.18.1.3:5000"]
[member]
sources = ["198.18.0.1"]
`)
	want := `key  = 0
port = 5000
secret_file = "" # the tunnel is not authenticated
encrypt     = false
datapath    = "auto"

[log]
format = "text"
file   = "" # stderr
level  = "info"

[metrics]
listen     = "" # off
per_member = false

[source]
interface = "" # chosen when mctun starts
join_from = [] # no host joins groups by itself

[[source.group]]
address = "224.1.2.3"
port    = 65535
members = [
  "198.18.1.1",
  "198.18.1.2:4754",
  "198.18.1.3",
]

[member]
tun     = "mctun0"
mtu     = 1500
sources = ["198.18.0.1"]
groups  = [] # any multicast group
`
	if got := cfg.Format(); got != want {
		t.Errorf("Format() =\n%s\nwant\n%s", got, want)
	}
}
