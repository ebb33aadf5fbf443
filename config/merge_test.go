package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestMergeProblems checks each rule of the managed file and of the union, with its exact
// message and line. Each file is its lines joined, so the line of a problem is the 1-based
// index of the line that causes it. A nil managed means there is no managed file.
func TestMergeProblems(t *testing.T) {
	tests := []struct {
		name          string
		main, managed []string
		errs, warns   []string
	}{
		{
			name: "no managed file",
			main: []string{member},
		},
		{
			name:    "empty managed file",
			main:    []string{member},
			managed: []string{""},
		},
		{
			name:    "managed file of comments only",
			main:    []string{member},
			managed: []string{"# nothing yet"},
		},

		// What the managed file may hold.
		{
			name: "keys only the config file may have",
			main: []string{group, member},
			managed: []string{
				/* 1 */ "key = 1",
				/* 2 */ "port = 5000",
				/* 3 */ "[log]",
				/* 4 */ `level = "debug"`,
				/* 5 */ "[source]",
				/* 6 */ `interface = "eth0"`,
				/* 7 */ "[[source.group]]",
				/* 8 */ `address = "224.1.2.4"`,
				/* 9 */ `members = ["198.18.1.1"]`,
				/* 10 */ "[member]",
				/* 11 */ `tun = "mctun1"`,
				/* 12 */ "mtu = 1400",
				/* 13 */ `groups = ["224.1.2.3"]`,
				/* 14 */ `sources = ["198.18.0.2"]`,
			},
			errs: []string{
				"mctun.managed.toml:1: key: not allowed in the managed file; put it in mctun.toml",
				"mctun.managed.toml:2: port: not allowed in the managed file; put it in mctun.toml",
				"mctun.managed.toml:3: log: not allowed in the managed file; put it in mctun.toml",
				"mctun.managed.toml:6: source.interface: not allowed in the managed file; put it in mctun.toml",
				"mctun.managed.toml:11: member.tun: not allowed in the managed file; put it in mctun.toml",
				"mctun.managed.toml:12: member.mtu: not allowed in the managed file; put it in mctun.toml",
				"mctun.managed.toml:13: member.groups: not allowed in the managed file; put it in mctun.toml",
			},
		},
		{
			name:    "metrics only in the config file",
			main:    []string{member},
			managed: []string{"[metrics]", `listen = "127.0.0.1:9477"`},
			errs:    []string{"mctun.managed.toml:1: metrics: not allowed in the managed file; put it in mctun.toml"},
		},
		{
			name:    "a key no file may have",
			main:    []string{group},
			managed: []string{"[[source.group]]", `address = "224.1.2.4"`, `members = ["198.18.1.1"]`, "membres = []", "[sorce]"},
			errs: []string{
				"mctun.managed.toml:4: source.group[0].membres: unknown key",
				"mctun.managed.toml:5: sorce: unknown key",
			},
		},
		{
			name:    "syntax error in the managed file",
			main:    []string{group},
			managed: []string{"[[source.group]]", "address = = 1"},
			errs:    []string{"mctun.managed.toml:2: expected value but found '=' instead"},
		},
		{
			name:    "managed source is not a table",
			main:    []string{group},
			managed: []string{"source = 5"},
			errs:    []string{"mctun.managed.toml:1: source: want a table, got an integer; write it as [source]"},
		},
		{
			name:    "bad values in the managed file",
			main:    []string{group, member},
			managed: []string{"[[source.group]]", `address = "10.1.1.1"`, "port = 0", `members = ["127.0.0.1", "198.18.1.1:0"]`, "[member]", `sources = ["198.18.0.2:4754"]`},
			errs: []string{
				"mctun.managed.toml:2: source.group[0].address: 10.1.1.1 is not a multicast address",
				"mctun.managed.toml:3: source.group[0].port: 0 is out of range 1..65535",
				"mctun.managed.toml:4: source.group[0].members[0]: 127.0.0.1 is a loopback address, not a remote host",
				"mctun.managed.toml:4: source.group[0].members[1]: 198.18.1.1:0 has port 0, out of range 1..65535",
				"mctun.managed.toml:6: member.sources[0]: 198.18.0.2:4754 has a port; a source is an address only",
			},
		},
		{
			name:    "managed group without members",
			main:    []string{group},
			managed: []string{"[[source.group]]", `address = "224.1.2.4"`, "members = []"},
			errs:    []string{"mctun.managed.toml:3: source.group[0].members: no members; a group without members needs source.join_from, from where members join it themselves"},
		},

		// Groups across the two files.
		{
			name: "group in both files",
			main: []string{"key = 1", "", "[source]", "", "# the group", "[[source.group]]", `address = "224.1.2.3"`, "port = 65535", `members = ["198.18.1.1"]`},
			managed: []string{
				"# managed", "",
				"[[source.group]]", `address = "224.1.2.4"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.3"`, "port = 65535", `members = ["198.18.1.2"]`,
			},
			errs: []string{"mctun.managed.toml:6: source.group[1]: 224.1.2.3 port 65535 is already defined at mctun.toml:6"},
		},
		{
			name: "group in both files, no port",
			main: []string{group},
			managed: []string{
				"[[source.group]]", `address = "224.1.2.3"`, "port = 1", `members = ["198.18.1.2"]`,
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.2"]`,
			},
			errs: []string{"mctun.managed.toml:5: source.group[1]: 224.1.2.3 with no port is already defined at mctun.toml:2"},
		},
		{
			name: "group twice in the managed file",
			main: []string{"[source]"},
			managed: []string{
				"[[source.group]]", `address = "224.1.2.3"`, "port = 9", `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.3"`, "port = 9", `members = ["198.18.1.2"]`,
			},
			errs: []string{"mctun.managed.toml:5: source.group[1]: 224.1.2.3 port 9 is already defined at mctun.managed.toml:1"},
		},
		{
			name: "member in groups with one address, across the files",
			main: []string{"[source]", "[[source.group]]", `address = "224.1.2.3"`, "port = 5000", `members = ["198.18.1.1", "198.18.1.3:9"]`},
			managed: []string{
				"[[source.group]]", `address = "224.1.2.3"`, "port = 5001", "members = [",
				`  "198.18.1.2",`,
				`  "198.18.1.1",`,
				`  "198.18.1.3:9",`,
				"]",
			},
			errs: []string{
				"mctun.managed.toml:6: source.group[0].members[1]: 198.18.1.1:4754 is also a member of 224.1.2.3 port 5000, defined at mctun.toml:2; a member may be in one group per address",
				"mctun.managed.toml:7: source.group[0].members[2]: 198.18.1.3:9 is also a member of 224.1.2.3 port 5000, defined at mctun.toml:2; a member may be in one group per address",
			},
		},
		{
			name: "member in groups with one address, within the managed file",
			main: []string{"[source]"},
			managed: []string{
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.3"`, "port = 7", `members = ["198.18.1.2", "198.18.1.1"]`,
			},
			errs: []string{
				"mctun.managed.toml:7: source.group[1].members[1]: 198.18.1.1:4754 is also a member of 224.1.2.3 with no port, defined at mctun.managed.toml:1; a member may be in one group per address",
			},
		},
		{
			name:    "a member listed twice in a managed group",
			main:    []string{"[source]"},
			managed: []string{"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1", "198.18.1.1:4754"]`},
			warns:   []string{"mctun.managed.toml:3: source.group[0].members[1]: 198.18.1.1:4754 is listed twice; using it once"},
		},

		// Sources across the two files.
		{
			name:    "source in both files",
			main:    []string{"[member]", `sources = ["198.18.0.1", "198.18.0.2"]`},
			managed: []string{"[member]", "sources = [", `  "198.18.0.3",`, `  "198.18.0.2",`, "]"},
			warns:   []string{"mctun.managed.toml:4: member.sources[1]: 198.18.0.2 is already listed at mctun.toml:2; using it once"},
		},
		{
			name:    "source twice in the managed file",
			main:    []string{"[member]"},
			managed: []string{"[member]", `sources = ["198.18.0.3", "198.18.0.3"]`},
			warns:   []string{"mctun.managed.toml:2: member.sources[1]: 198.18.0.3 is listed twice; using it once"},
		},

		// The managed file cannot give the host a role.
		{
			name: "groups need [source] in the config file",
			main: []string{member},
			managed: []string{
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.4"`, `members = ["198.18.1.1"]`,
			},
			errs: []string{"mctun.managed.toml:1: source.group: groups need a [source] table in mctun.toml; add it there (the managed file cannot make this host a source)"},
		},
		{
			name:    "sources need [member] in the config file",
			main:    []string{group},
			managed: []string{"", "[member]", `sources = ["198.18.0.1"]`},
			errs:    []string{"mctun.managed.toml:3: member.sources: sources need a [member] table in mctun.toml; add it there (the managed file cannot make this host a member)"},
		},
		{
			name:    "empty tables need no role",
			main:    []string{member},
			managed: []string{"[source]", "[member]", "sources = []"},
		},

		// The rules the commands relax.
		{
			name:    "groups only in the managed file",
			main:    []string{"[source]"},
			managed: []string{"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`},
		},
		{
			name:    "no groups in either file",
			main:    []string{"[source]", member},
			managed: []string{"[member]", `sources = ["198.18.0.2"]`},
			warns:   []string{"mctun.toml:1: source.group: no groups yet: nothing is forwarded until a group is added"},
		},
		{
			name:    "sources only in the managed file",
			main:    []string{"[member]", "sources = []"},
			managed: []string{"[member]", `sources = ["198.18.0.2"]`},
		},
		{
			name:    "no sources in either file",
			main:    []string{"[member]", "sources = []"},
			managed: []string{"[member]", "sources = []"},
			warns:   []string{"mctun.toml:2: member.sources: no sources yet: no tunnel packet is accepted until a source is added"},
		},

		// Every problem at once, the config file's first.
		{
			name:    "problems in both files",
			main:    []string{"port = 0", "[source]", "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1", "198.18.1.1"]`},
			managed: []string{"[[source.group]]", `address = "10.1.1.1"`, `members = ["127.0.0.1", "198.18.1.2", "198.18.1.2"]`},
			errs: []string{
				"mctun.toml:1: port: 0 is out of range 1..65535",
				"mctun.managed.toml:2: source.group[0].address: 10.1.1.1 is not a multicast address",
				"mctun.managed.toml:3: source.group[0].members[0]: 127.0.0.1 is a loopback address, not a remote host",
			},
			warns: []string{
				"mctun.toml:5: source.group[0].members[1]: 198.18.1.1 is listed twice; using it once",
				"mctun.managed.toml:3: source.group[0].members[2]: 198.18.1.2 is listed twice; using it once",
			},
		},
		{
			name:    "a config that does not decode, and a bad managed file",
			main:    []string{member, "mtu = = 1"},
			managed: []string{"[[source.group]]", `address = "10.1.1.1"`, `members = ["198.18.1.1"]`},
			errs: []string{
				"mctun.toml:3: expected value but found '=' instead",
				"mctun.managed.toml:2: source.group[0].address: 10.1.1.1 is not a multicast address",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var managed []byte
			if tt.managed != nil {
				managed = []byte(strings.Join(tt.managed, "\n"))
			}
			cfg, warns, err := Merge("mctun.toml", []byte(strings.Join(tt.main, "\n")), managed)
			checkProblems(t, cfg, warns, err, tt.errs, tt.warns)
		})
	}
}

// mustMerge merges a config file and a managed file that must be valid and free of warnings.
func mustMerge(t testing.TB, main, managed string) *Config {
	t.Helper()
	cfg, warns, err := Merge("mctun.toml", []byte(main), []byte(managed))
	if err != nil {
		t.Fatalf("Merge: %v\n%s\n--\n%s", err, main, managed)
	}
	if len(warns) > 0 {
		t.Fatalf("Merge warned: %v", warns)
	}
	return cfg
}

const (
	// mergeMain is a config file with both roles, for the managed file to add to.
	mergeMain = `port = 5000
[source]
[[source.group]]
address = "224.1.2.3"
members = ["198.18.1.1"]
[member]
sources = ["198.18.0.1"]
`
	// mergeManaged adds a group and a source to mergeMain.
	mergeManaged = `# written by mctun
[[source.group]]
address = "239.1.1.1"
port = 9000
members = [
  "198.18.1.1",
  "198.18.1.2:4754",
]
[member]
sources = [
  "198.18.0.2",
]
`
)

func TestMerge(t *testing.T) {
	cfg := mustMerge(t, mergeMain, mergeManaged)
	main := Origin{File: "mctun.toml"}
	managed := Origin{File: "mctun.managed.toml", Managed: true}
	at := func(o Origin, line int) Origin { o.Line = line; return o }
	want := &Config{
		Path:        "mctun.toml",
		ManagedPath: "mctun.managed.toml",
		Port:        5000,
		Datapath:    DatapathAuto,
		Log:         Log{Format: "text", Level: "info"},
		Source: &Source{Groups: []Group{
			{Address: netip.MustParseAddr("224.1.2.3"), Members: addrPorts("198.18.1.1:5000"), Origin: at(main, 3)},
			{Address: netip.MustParseAddr("239.1.1.1"), Port: 9000, Members: addrPorts("198.18.1.1:5000", "198.18.1.2:4754"), Origin: at(managed, 2)},
		}},
		Member: &Member{
			TUN: DefaultTUN, MTU: DefaultMTU,
			Sources:       addrs("198.18.0.1", "198.18.0.2"),
			SourceOrigins: []Origin{at(main, 7), at(managed, 11)},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%s\nwant\n%s", dump(cfg), dump(want))
	}
}

// TestMergeSourceInBothFiles checks that a source listed in both files is the config file's.
func TestMergeSourceInBothFiles(t *testing.T) {
	cfg, warns, err := Merge("mctun.toml",
		[]byte("[member]\nsources = [\"198.18.0.1\", \"198.18.0.2\"]"),
		[]byte("[member]\nsources = [\"198.18.0.2\", \"198.18.0.3\"]"))
	if err != nil || len(warns) != 1 {
		t.Fatalf("Merge: %v, %v; want one warning", warns, err)
	}
	m := cfg.Member
	if want := addrs("198.18.0.1", "198.18.0.2", "198.18.0.3"); !slices.Equal(m.Sources, want) {
		t.Errorf("sources %v, want %v", m.Sources, want)
	}
	if o := m.SourceOrigins[1]; o.Managed || o.File != "mctun.toml" {
		t.Errorf("198.18.0.2 comes from %+v, want the config file", o)
	}
	if got := cfg.Managed().Sources; !slices.Equal(got, addrs("198.18.0.3")) {
		t.Errorf("Managed().Sources = %v, want only 198.18.0.3", got)
	}
}

func TestOriginString(t *testing.T) {
	tests := []struct {
		o    Origin
		want string
	}{
		{Origin{File: "mctun.toml", Line: 6}, "mctun.toml:6"},
		{Origin{File: "/etc/mctun/mctun.managed.toml", Line: 1, Managed: true}, "/etc/mctun/mctun.managed.toml:1"},
		{Origin{File: "mctun.toml"}, "mctun.toml"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.o, got, tt.want)
		}
	}
}

func TestManagedPath(t *testing.T) {
	tests := []struct{ config, want string }{
		{"/etc/mctun/mctun.toml", "/etc/mctun/mctun.managed.toml"},
		{"mctun.toml", "mctun.managed.toml"},
		{"./site-a.toml", "./site-a.managed.toml"},
		{"/etc/mctun/mctun.conf", "/etc/mctun/mctun.conf.managed.toml"},
		{"/etc/mctun/mctun", "/etc/mctun/mctun.managed.toml"},
		{"/etc/mctun.d/mctun.TOML", "/etc/mctun.d/mctun.TOML.managed.toml"},
	}
	for _, tt := range tests {
		if got := ManagedPath(tt.config); got != tt.want {
			t.Errorf("ManagedPath(%q) = %q, want %q", tt.config, got, tt.want)
		}
	}
}

// TestLoadManaged checks that Load reads the managed file next to the config file, and names
// each file in the problems and origins.
func TestLoadManaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mctun.toml")
	managedPath := filepath.Join(dir, "mctun.managed.toml")
	write := func(path, data string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(path, mergeMain)

	t.Run("missing", func(t *testing.T) {
		cfg, warns, err := Load(path)
		if err != nil || len(warns) > 0 {
			t.Fatalf("Load = %v, %v", warns, err)
		}
		if cfg.ManagedPath != managedPath || len(cfg.Source.Groups) != 1 || len(cfg.Managed().Groups) != 0 {
			t.Errorf("Load without a managed file:\n%s", dump(cfg))
		}
	})

	write(managedPath, mergeManaged)
	t.Run("present", func(t *testing.T) {
		cfg, warns, err := Load(path)
		if err != nil || len(warns) > 0 {
			t.Fatalf("Load = %v, %v", warns, err)
		}
		if cfg.Path != path || cfg.ManagedPath != managedPath {
			t.Errorf("Path %q, ManagedPath %q", cfg.Path, cfg.ManagedPath)
		}
		want := Origin{File: managedPath, Line: 2, Managed: true}
		if len(cfg.Source.Groups) != 2 || cfg.Source.Groups[1].Origin != want {
			t.Errorf("groups %+v; want the second from %+v", cfg.Source.Groups, want)
		}
	})

	write(managedPath, "[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.9\"]\n")
	t.Run("conflict", func(t *testing.T) {
		_, _, err := Load(path)
		want := managedPath + ":1: source.group[0]: 224.1.2.3 with no port is already defined at " + path + ":3"
		if err == nil || err.Error() != want {
			t.Errorf("Load: %v\nwant %s", err, want)
		}
	})

	if err := os.Remove(managedPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(managedPath, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Run("unreadable", func(t *testing.T) {
		cfg, _, err := Load(path)
		if cfg != nil || err == nil || !strings.Contains(err.Error(), managedPath) {
			t.Errorf("Load = %v, %v; want an error naming %s", cfg, err, managedPath)
		}
	})
}

func TestManaged(t *testing.T) {
	cfg := mustMerge(t, mergeMain, mergeManaged)
	m := cfg.Managed()
	want := Managed{
		Config: "mctun.toml",
		Port:   5000,
		Groups: []Group{{
			Address: netip.MustParseAddr("239.1.1.1"), Port: 9000,
			Members: addrPorts("198.18.1.1:5000", "198.18.1.2:4754"),
			Origin:  Origin{File: "mctun.managed.toml", Line: 2, Managed: true},
		}},
		Sources: addrs("198.18.0.2"),
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("Managed() =\n%+v\nwant\n%+v", m, want)
	}

	// The daemon edits what Managed returns; the running config must not change under it.
	m.Groups[0].Members[0] = netip.MustParseAddrPort("198.18.9.9:1")
	m.Groups[0].Members = append(m.Groups[0].Members, netip.MustParseAddrPort("198.18.9.9:2"))
	m.Sources[0] = netip.MustParseAddr("198.18.9.9")
	if again := mustMerge(t, mergeMain, mergeManaged); !reflect.DeepEqual(cfg, again) {
		t.Errorf("editing Managed() changed the Config:\n%s\nwant\n%s", dump(cfg), dump(again))
	}

	if got := mustParse(t, mergeMain).Managed(); got.Groups != nil || got.Sources != nil {
		t.Errorf("Managed() of a config without a managed file = %+v", got)
	}
}

func TestManagedFormat(t *testing.T) {
	m := Managed{
		Config: "/etc/mctun/mctun.toml",
		Port:   5000,
		Groups: []Group{
			{Address: netip.MustParseAddr("239.1.1.1"), Port: 9000, Members: addrPorts("198.18.1.1:5000", "198.18.1.2:4754")},
			{Address: netip.MustParseAddr("224.0.0.18"), Members: addrPorts("198.18.1.3:5000")},
		},
		Sources: addrs("198.18.0.2", "198.18.0.3"),
	}
	want := `# mctun's group, member and source commands write this file: the groups and
# sources they manage. mctun runs with it and with the operator's config file,
# /etc/mctun/mctun.toml,
# which mctun never writes. Do not edit this file by hand while mctun runs:
# the next command would overwrite your edit.

[[source.group]]
address = "239.1.1.1"
port    = 9000
members = [
  "198.18.1.1",
  "198.18.1.2:4754",
]

[[source.group]]
address = "224.0.0.18"
members = [
  "198.18.1.3",
]

[member]
sources = [
  "198.18.0.2",
  "198.18.0.3",
]
`
	if got := m.Format(); got != want {
		t.Errorf("Format() =\n%s\nwant\n%s", got, want)
	}
	if got, again := m.Format(), m.Format(); got != again {
		t.Errorf("Format is not deterministic")
	}

	empty := Managed{Config: "mctun.toml", Port: DefaultPort}.Format()
	if strings.Contains(empty, "[") {
		t.Errorf("Format of nothing has tables:\n%s", empty)
	}
	mustMerge(t, member, empty)

	// A path that would break the comment is quoted.
	odd := Managed{Config: "/tmp/a\nport = 1/mctun.toml"}.Format()
	if !strings.Contains(odd, `"/tmp/a\nport = 1/mctun.toml"`) {
		t.Errorf("Format did not quote a config path with a newline:\n%s", odd)
	}
	mustMerge(t, member, odd)
}

// withoutManagedLines returns a copy of c, a valid Config, with the lines of what comes from
// the managed file left out: writing the managed file again moves them.
func withoutManagedLines(c *Config) *Config {
	out := *c
	if c.Source != nil {
		s := *c.Source
		s.Groups = slices.Clone(s.Groups)
		for i := range s.Groups {
			if s.Groups[i].Origin.Managed {
				s.Groups[i].Origin.Line = 0
			}
		}
		out.Source = &s
	}
	if c.Member != nil {
		m := *c.Member
		m.SourceOrigins = slices.Clone(m.SourceOrigins)
		for i := range m.SourceOrigins {
			if m.SourceOrigins[i].Managed {
				m.SourceOrigins[i].Line = 0
			}
		}
		out.Member = &m
	}
	return &out
}

// managedRoundTrip checks that Merge reads cfg.Managed().Format() back, next to main, to the
// effective config cfg, and that writing that again gives the same text.
func managedRoundTrip(t testing.TB, cfg *Config, main []byte) {
	t.Helper()
	text := cfg.Managed().Format()
	again, _, err := Merge(cfg.Path, main, []byte(text))
	if err != nil {
		t.Fatalf("Managed().Format() does not merge: %v\n%s", err, text)
	}
	if !reflect.DeepEqual(withoutManagedLines(again), withoutManagedLines(cfg)) {
		t.Fatalf("managed round trip changed the config:\n%s\nwant\n%s\nmanaged file:\n%s", dump(again), dump(cfg), text)
	}
	if text2 := again.Managed().Format(); text2 != text {
		t.Fatalf("the managed file changed when written again:\n%s\nwas\n%s", text2, text)
	}
}

func TestManagedRoundTrip(t *testing.T) {
	tests := []struct {
		name, main, managed string
	}{
		{"nothing managed", mergeMain, ""},
		{"groups and sources", mergeMain, mergeManaged},
		{"only sources", "[member]\nsources = []", "[member]\nsources = [\"198.18.0.9\", \"198.18.0.8\"]"},
		{"only groups, one address", "port = 1\n[source]",
			"[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1\", \"198.18.1.2:1\", \"198.18.1.3:65535\"]\n" +
				"[[source.group]]\naddress = \"224.1.2.3\"\nport = 80\nmembers = [\"198.18.1.4\"]"},
		{"inline tables and duplicates", mergeMain,
			`source = { group = [{ address = "224.0.0.251", members = ["198.18.1.1", "198.18.1.1:5000"] }] }` + "\n" +
				`member = { sources = ["198.18.0.1", "198.18.0.5", "198.18.0.5"] }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := Merge("mctun.toml", []byte(tt.main), []byte(tt.managed))
			if err != nil {
				t.Fatal(err)
			}
			managedRoundTrip(t, cfg, []byte(tt.main))
			roundTrip(t, cfg)
		})
	}
}

// TestManagedEdit follows a command as the daemon runs it: take the managed part, change it,
// check the would-be managed file with Merge, and only then write it.
func TestManagedEdit(t *testing.T) {
	cfg := mustMerge(t, mergeMain, mergeManaged)
	m := cfg.Managed()

	// mctun group add 224.5.5.5 --port 80 --member 198.18.1.7
	addr, err := ParseGroup("224.5.5.5")
	if err != nil {
		t.Fatal(err)
	}
	port, err := ParseGroupPort("80")
	if err != nil {
		t.Fatal(err)
	}
	member, err := ParseMember("198.18.1.7", cfg.Port)
	if err != nil {
		t.Fatal(err)
	}
	m.Groups = append(m.Groups, Group{Address: addr, Port: port, Members: []netip.AddrPort{member}})
	// mctun source add 198.18.0.7
	src, err := ParseSource("198.18.0.7")
	if err != nil {
		t.Fatal(err)
	}
	m.Sources = append(m.Sources, src)

	next := mustMerge(t, mergeMain, m.Format())
	g := next.Source.Groups[2]
	if g.Address != addr || g.Port != 80 || !slices.Equal(g.Members, addrPorts("198.18.1.7:5000")) || !g.Origin.Managed {
		t.Errorf("added group is %+v", g)
	}
	if i := slices.Index(next.Member.Sources, src); i < 0 || !next.Member.SourceOrigins[i].Managed {
		t.Errorf("added source missing: %v %v", next.Member.Sources, next.Member.SourceOrigins)
	}

	// mctun group add 224.1.2.3: the config file's group; the check refuses it with its place.
	m.Groups = append(m.Groups, Group{Address: netip.MustParseAddr("224.1.2.3"), Members: addrPorts("198.18.1.8:5000")})
	_, _, err = Merge("mctun.toml", []byte(mergeMain), []byte(m.Format()))
	if err == nil || !strings.HasSuffix(err.Error(), "source.group[2]: 224.1.2.3 with no port is already defined at mctun.toml:3") {
		t.Errorf("adding the config file's group: %v", err)
	}
}

// TestFormatMarksManaged checks that mctun check shows what comes from the managed file.
func TestFormatMarksManaged(t *testing.T) {
	cfg := mustMerge(t, mergeMain, mergeManaged)
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
members = [
  "198.18.1.1",
]

[[source.group]] # from mctun.managed.toml
address = "239.1.1.1"
port    = 9000
members = [
  "198.18.1.1",
  "198.18.1.2:4754",
]

[member]
tun     = "mctun0"
mtu     = 1500
sources = [
  "198.18.0.1",
  "198.18.0.2", # from mctun.managed.toml
]
groups  = [] # any multicast group
`
	if got := cfg.Format(); got != want {
		t.Errorf("Format() =\n%s\nwant\n%s", got, want)
	}
	roundTrip(t, cfg)

	// The base name, whatever the directory.
	cfg, _, err := Merge("/etc/mctun/site.toml", []byte(mergeMain), []byte(mergeManaged))
	if err != nil {
		t.Fatal(err)
	}
	if out := cfg.Format(); !strings.Contains(out, "[[source.group]] # from site.managed.toml\n") {
		t.Errorf("Format() does not name site.managed.toml:\n%s", out)
	}
}

// TestFormatLog checks [log] in mctun check's output when it is set.
func TestFormatLog(t *testing.T) {
	cfg := mustParse(t, member+"\n[log]\nformat = \"json\"\nfile = \"/var/log/mctun.log\"\nlevel = \"warn\"")
	want := "\n[log]\nformat = \"json\"\nfile   = \"/var/log/mctun.log\"\nlevel  = \"warn\"\n"
	if out := cfg.Format(); !strings.Contains(out, want) {
		t.Errorf("Format() =\n%s\nwant it to contain\n%s", out, want)
	}
	roundTrip(t, cfg)
}

// TestFormatMetrics checks [metrics] in mctun check's output when it is set.
func TestFormatMetrics(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"listen = \"127.0.0.1:9477\"\nper_member = true", "\n[metrics]\nlisten     = \"127.0.0.1:9477\"\nper_member = true\n"},
		{"listen = \"[::1]:9477\"", "\n[metrics]\nlisten     = \"[::1]:9477\"\nper_member = false\n"},
		{"listen = \"[fe80::1%eth0]:9477\"", "\n[metrics]\nlisten     = \"[fe80::1%eth0]:9477\"\nper_member = false\n"},
		{"per_member = true", "\n[metrics]\nlisten     = \"\" # off\nper_member = true\n"},
	} {
		cfg := mustParse(t, member+"\n[metrics]\n"+tt.file)
		if out := cfg.Format(); !strings.Contains(out, tt.want) {
			t.Errorf("Format() =\n%s\nwant it to contain\n%s", out, tt.want)
		}
		roundTrip(t, cfg)
	}
}

// TestParseLargeManaged parses the large config as the managed file, as commands may grow it.
func TestParseLargeManaged(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the large config in -short mode")
	}
	groups, members := 256, 512
	managed := strings.TrimPrefix(largeConfig(groups, members), "[source]\n")
	cfg := mustMerge(t, "[source]\n", managed)
	if len(cfg.Source.Groups) != groups {
		t.Fatalf("%d groups, want %d", len(cfg.Source.Groups), groups)
	}
	for i, g := range cfg.Source.Groups {
		if !g.Origin.Managed || len(g.Members) != members {
			t.Fatalf("group %d: %d members, origin %+v", i, len(g.Members), g.Origin)
		}
	}
	if o := cfg.Source.Groups[groups-1].Origin; o.Line != (groups-1)*(members+4)+1 {
		t.Errorf("last group at line %d, want %d", o.Line, (groups-1)*(members+4)+1)
	}
	managedRoundTrip(t, cfg, []byte("[source]\n"))
}
