package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// member is a valid [member] table, for cases about something else.
const member = "[member]\nsources = [\"198.18.0.1\"]"

// group is a valid [source] with one group, for cases about something else.
const group = "[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1\"]"

// TestParseProblems checks each rule's exact message and line. Each case's file is its lines
// joined, so the line of a problem is the 1-based index of the line that causes it.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name  string
		file  []string
		errs  []string
		warns []string
	}{
		// The authenticated tunnel.
		{
			name: "encrypt without a secret",
			file: []string{"encrypt = true", member},
			errs: []string{"mctun.toml:1: encrypt: encryption needs a secret: set secret_file"},
		},
		{
			name: "secret_file not absolute",
			file: []string{`secret_file = "etc/secret"`, member},
			errs: []string{`mctun.toml:1: secret_file: "etc/secret" is not an absolute path`},
		},
		{
			name: "encrypt not a boolean",
			file: []string{`secret_file = "/etc/mctun/secret"`, `encrypt = "yes"`, member},
			errs: []string{`mctun.toml:2: encrypt: want true or false, got a string ("yes")`},
		},
		// The datapath.
		{
			name: "datapath unknown",
			file: []string{`datapath = "xdp"`, member},
			errs: []string{`mctun.toml:1: datapath: "xdp" is not "auto", "kernel" or "user"`},
		},
		{
			name: "datapath kernel with a secret",
			file: []string{`secret_file = "/etc/mctun/secret"`, `datapath = "kernel"`, member},
			errs: []string{`mctun.toml:2: datapath: "kernel" forwards the plain tunnel only; with secret_file the tunnel runs in user space: use "auto" or "user"`},
		},
		{
			name: "datapath not a string",
			file: []string{`datapath = 1`, member},
			errs: []string{`mctun.toml:1: datapath: want a string, got an integer (1)`},
		},
		// Unknown keys.
		{
			name: "unknown top-level key",
			file: []string{"prot = 1", member},
			errs: []string{"mctun.toml:1: prot: unknown key"},
		},
		{
			name: "unknown key in source",
			file: []string{"port = 4754", "", "[source]", "grup = 1", "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`},
			errs: []string{"mctun.toml:4: source.grup: unknown key"},
		},
		{
			name: "misspelled table is one problem",
			file: []string{member, "[sorce]", `interface = "eth0"`, "[[sorce.group]]", `address = "224.1.2.3"`},
			errs: []string{"mctun.toml:3: sorce: unknown key"},
		},
		{
			name:  "misspelled array of tables",
			file:  []string{"[source]", "[[source.grup]]", `address = "224.1.2.3"`},
			errs:  []string{"mctun.toml:2: source.grup: unknown key"},
			warns: []string{"mctun.toml:1: source.group: no groups yet: nothing is forwarded until a group is added"},
		},
		{
			name: "unknown key in the second group",
			file: []string{group, "[[source.group]]", `address = "224.1.2.4"`, `members = ["198.18.1.1"]`, "membres = []"},
			errs: []string{"mctun.toml:8: source.group[1].membres: unknown key"},
		},
		{
			name: "unknown sub-table of a group",
			file: []string{group, "[source.group.extra]", "x = 1"},
			errs: []string{"mctun.toml:5: source.group[0].extra: unknown key"},
		},
		{
			name: "unknown key in member",
			file: []string{member, "mut = 1400"},
			errs: []string{"mctun.toml:3: member.mut: unknown key"},
		},
		{
			name: "table where a value belongs",
			file: []string{member, "tun.name = \"x\""},
			errs: []string{"mctun.toml:3: member.tun: want a string, got a table"},
		},
		{
			name: "key names are case-sensitive",
			file: []string{"Port = 4754", member},
			errs: []string{"mctun.toml:1: Port: unknown key"},
		},
		{
			name: "unknown quoted key",
			file: []string{member, `"mt.u" = 1`},
			errs: []string{`mctun.toml:3: member."mt.u": unknown key`},
		},

		// The file as a whole.
		{
			name: "empty file",
			file: []string{""},
			errs: []string{"mctun.toml: no [source] or [member] table; a host needs at least one"},
		},
		{
			name: "neither source nor member",
			file: []string{"key = 1", "port = 4754"},
			errs: []string{"mctun.toml: no [source] or [member] table; a host needs at least one"},
		},
		{
			name: "syntax error",
			file: []string{member, "mtu = = 1"},
			errs: []string{"mctun.toml:3: expected value but found '=' instead"},
		},
		{
			name: "key defined twice",
			file: []string{"port = 1", "port = 2", member},
			errs: []string{"mctun.toml:2: Key 'port' has already been defined."},
		},
		{
			name: "integer too large for TOML",
			file: []string{"key = 99999999999999999999", member},
			errs: []string{"mctun.toml:1: 99999999999999999999 is out of range for int64"},
		},
		{
			name: "source is not a table",
			file: []string{"source = 5", member},
			errs: []string{"mctun.toml:1: source: want a table, got an integer; write it as [source]"},
		},
		{
			name: "member is not a table",
			file: []string{`member = "x"`, group},
			errs: []string{"mctun.toml:1: member: want a table, got a string; write it as [member]"},
		},
		{
			name: "group is not an array of tables",
			file: []string{"[source]", "group = [1]"},
			errs: []string{"mctun.toml:2: source.group: want an array of tables; write each group as [[source.group]]"},
		},

		// key and port.
		{
			name: "key below range",
			file: []string{"key = -1", member},
			errs: []string{"mctun.toml:1: key: -1 is out of range 0..4294967295"},
		},
		{
			name: "key above range",
			file: []string{"key = 4294967296", member},
			errs: []string{"mctun.toml:1: key: 4294967296 is out of range 0..4294967295"},
		},
		{
			name: "key of the wrong type",
			file: []string{"key = 1.5", member},
			errs: []string{"mctun.toml:1: key: want an integer, got a float (1.5)"},
		},
		{
			name: "port 0",
			file: []string{"port = 0", member},
			errs: []string{"mctun.toml:1: port: 0 is out of range 1..65535"},
		},
		{
			name: "port above range",
			file: []string{"port = 70000", member},
			errs: []string{"mctun.toml:1: port: 70000 is out of range 1..65535"},
		},
		{
			name: "port as a string",
			file: []string{`port = "4754"`, member},
			errs: []string{`mctun.toml:1: port: want an integer, got a string ("4754")`},
		},
		{
			name: "port as an inline table",
			file: []string{`port = { number = 4754 }`, member},
			errs: []string{`mctun.toml:1: port: want an integer, got a table`},
		},

		// [source] and its groups.
		{
			name:  "source without groups",
			file:  []string{member, "[source]", `interface = "eth0"`},
			warns: []string{"mctun.toml:3: source.group: no groups yet: nothing is forwarded until a group is added"},
		},
		{
			name: "group address missing",
			file: []string{"[source]", "[[source.group]]", `members = ["198.18.1.1"]`},
			errs: []string{"mctun.toml:2: source.group[0].address: missing; each group needs a multicast address"},
		},
		{
			name: "group address not an IP",
			file: []string{"[source]", "[[source.group]]", `address = "224.1.2"`, `members = ["198.18.1.1"]`},
			errs: []string{`mctun.toml:3: source.group[0].address: "224.1.2" is not an IP address`},
		},
		{
			name: "group address IPv6",
			file: []string{"[source]", "[[source.group]]", `address = "ff02::1"`, `members = ["198.18.1.1"]`},
			errs: []string{"mctun.toml:3: source.group[0].address: ff02::1 is an IPv6 address; IPv6 is not supported"},
		},
		{
			name: "group address IPv4-mapped IPv6",
			file: []string{"[source]", "[[source.group]]", `address = "::ffff:224.1.2.3"`, `members = ["198.18.1.1"]`},
			errs: []string{"mctun.toml:3: source.group[0].address: ::ffff:224.1.2.3 is an IPv6 address; IPv6 is not supported"},
		},
		{
			name: "group address not multicast",
			file: []string{
				"key  = 0", "port = 4754", "", "[source]", `interface = "eth0"`, "",
				"[[source.group]]", "# the group", `address = "10.1.1.1"`, `members = ["198.18.1.1"]`,
			},
			errs: []string{"mctun.toml:9: source.group[0].address: 10.1.1.1 is not a multicast address"},
		},
		{
			name: "group address of the wrong type",
			file: []string{"[source]", "[[source.group]]", `address = 224`, `members = ["198.18.1.1"]`},
			errs: []string{"mctun.toml:3: source.group[0].address: want a string, got an integer (224)"},
		},
		{
			name: "group port 0",
			file: []string{group, "port = 0"},
			errs: []string{"mctun.toml:5: source.group[0].port: 0 is out of range 1..65535"},
		},
		{
			name: "group port above range",
			file: []string{group, "port = 65536"},
			errs: []string{"mctun.toml:5: source.group[0].port: 65536 is out of range 1..65535"},
		},
		{
			name: "members missing",
			file: []string{"[source]", "[[source.group]]", `address = "224.1.2.3"`},
			errs: []string{"mctun.toml:2: source.group[0].members: no members; a group without members needs source.join_from, from where members join it themselves"},
		},
		{
			name: "members empty",
			file: []string{
				group,
				"[[source.group]]", `address = "224.1.2.4"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.5"`, `members = []`,
			},
			errs: []string{"mctun.toml:10: source.group[2].members: no members; a group without members needs source.join_from, from where members join it themselves"},
		},
		{
			name: "members not an array",
			file: []string{"[source]", "[[source.group]]", `address = "224.1.2.3"`, `members = "198.18.1.1"`},
			errs: []string{`mctun.toml:4: source.group[0].members: want an array of strings, got a string ("198.18.1.1")`},
		},
		{
			name: "bad members, one a line",
			file: []string{
				"[source]", "[[source.group]]", `address = "224.1.2.3"`, "members = [",
				`  "198.18.1.1",       # 0`,
				`  "198.18.1",         # 1`,
				`  "198.18.1.1:x",     # 2`,
				`  "2001:db8::1",      # 3`,
				`  "[2001:db8::1]:80", # 4`,
				`  "224.1.1.1",        # 5`,
				`  "0.0.0.0",          # 6`,
				`  "255.255.255.255",  # 7`,
				`  "127.0.0.1",        # 8`,
				`  "127.1.2.3:5000",   # 9`,
				`  "198.18.1.2:0",     # 10`,
				`  "198.18.1.2:65536", # 11`,
				`  4754,               # 12`,
				`  "",                 # 13`,
				"]",
			},
			errs: []string{
				`mctun.toml:6: source.group[0].members[1]: "198.18.1" is not "ip" or "ip:port"`,
				`mctun.toml:7: source.group[0].members[2]: "198.18.1.1:x" is not "ip" or "ip:port"`,
				"mctun.toml:8: source.group[0].members[3]: 2001:db8::1 is an IPv6 address; IPv6 is not supported",
				"mctun.toml:9: source.group[0].members[4]: [2001:db8::1]:80 is an IPv6 address; IPv6 is not supported",
				"mctun.toml:10: source.group[0].members[5]: 224.1.1.1 is a multicast address, not a host",
				"mctun.toml:11: source.group[0].members[6]: 0.0.0.0 is the unspecified address, not a host",
				"mctun.toml:12: source.group[0].members[7]: 255.255.255.255 is the broadcast address, not a host",
				"mctun.toml:13: source.group[0].members[8]: 127.0.0.1 is a loopback address, not a remote host",
				"mctun.toml:14: source.group[0].members[9]: 127.1.2.3:5000 is a loopback address, not a remote host",
				"mctun.toml:15: source.group[0].members[10]: 198.18.1.2:0 has port 0, out of range 1..65535",
				"mctun.toml:16: source.group[0].members[11]: 198.18.1.2:65536 has port 65536, out of range 1..65535",
				"mctun.toml:17: source.group[0].members[12]: want a string, got an integer (4754)",
				`mctun.toml:18: source.group[0].members[13]: "" is not "ip" or "ip:port"`,
			},
		},
		{
			name: "bad member on one line",
			file: []string{"[source]", "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1", "127.0.0.1"]`},
			errs: []string{"mctun.toml:4: source.group[0].members[1]: 127.0.0.1 is a loopback address, not a remote host"},
		},
		{
			name: "same group and port twice",
			file: []string{
				member,
				"[source]",
				"[[source.group]]", `address = "224.1.2.3"`, "port = 65535", `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.2"]`,
				"[[source.group]]", `address = "224.1.2.4"`, "port = 65535", `members = ["198.18.1.3"]`,
				"[[source.group]]", `address = "224.1.2.3"`, "port = 65535", `members = ["198.18.1.4"]`,
			},
			errs: []string{"mctun.toml:15: source.group[3]: 224.1.2.3 port 65535 is already defined at mctun.toml:4"},
		},
		{
			name: "same group without port twice",
			file: []string{
				"[source]",
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.2"]`,
			},
			errs: []string{"mctun.toml:5: source.group[1]: 224.1.2.3 with no port is already defined at mctun.toml:2"},
		},
		{
			name: "a repeated group is one problem",
			file: []string{
				"[source]",
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.3"`, "port = 5000", `members = ["198.18.1.2"]`,
			},
			errs: []string{"mctun.toml:5: source.group[1]: 224.1.2.3 with no port is already defined at mctun.toml:2"},
		},
		{
			name: "member in two groups with one address, different ports",
			file: []string{
				"[source]",
				"[[source.group]]", `address = "224.1.2.3"`, "port = 5000", `members = ["198.18.1.1", "198.18.1.2"]`,
				"[[source.group]]", `address = "224.1.2.3"`, "port = 5001", `members = ["198.18.1.3", "198.18.1.2:4754"]`,
			},
			errs: []string{"mctun.toml:9: source.group[1].members[1]: 198.18.1.2:4754 is also a member of 224.1.2.3 port 5000, defined at mctun.toml:2; a member may be in one group per address"},
		},
		{
			name: "member in two groups with one address, with and without port",
			file: []string{
				"[source]",
				"[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.4"`, `members = ["198.18.1.1"]`,
				"[[source.group]]", `address = "224.1.2.3"`, "port = 5000", "members = [",
				`  "198.18.1.2",`,
				`  "198.18.1.1",`,
				"]",
			},
			errs: []string{"mctun.toml:13: source.group[2].members[1]: 198.18.1.1:4754 is also a member of 224.1.2.3 with no port, defined at mctun.toml:2; a member may be in one group per address"},
		},

		// Interface and TUN names.
		{
			name: "interface too long",
			file: []string{"[source]", `interface = "abcdefghijklmnop"`, "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`},
			errs: []string{`mctun.toml:2: source.interface: "abcdefghijklmnop" is longer than 15 bytes`},
		},
		{
			name: "interface dot",
			file: []string{"[source]", `interface = "."`, "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`},
			errs: []string{`mctun.toml:2: source.interface: "." is not a valid interface name`},
		},
		{
			name: "interface with slash",
			file: []string{"[source]", `interface = "eth/0"`, "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`},
			errs: []string{`mctun.toml:2: source.interface: "eth/0" contains '/'`},
		},
		{
			name: "interface of the wrong type",
			file: []string{"[source]", `interface = 0`, "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`},
			errs: []string{`mctun.toml:2: source.interface: want a string, got an integer (0)`},
		},
		{
			name: "tun empty",
			file: []string{member, `tun = ""`},
			errs: []string{"mctun.toml:3: member.tun: empty; leave it out for the default mctun0"},
		},
		{
			name: "tun too long",
			file: []string{member, `tun = "mctun0123456789ab"`},
			errs: []string{`mctun.toml:3: member.tun: "mctun0123456789ab" is longer than 15 bytes`},
		},
		{
			name: "tun too long in bytes",
			file: []string{member, `tun = "tunnel-ééééé"`},
			errs: []string{`mctun.toml:3: member.tun: "tunnel-ééééé" is longer than 15 bytes`},
		},
		{
			name: "tun dot dot",
			file: []string{member, `tun = ".."`},
			errs: []string{`mctun.toml:3: member.tun: ".." is not a valid interface name`},
		},
		{
			name: "tun with colon",
			file: []string{member, `tun = "mctun:0"`},
			errs: []string{`mctun.toml:3: member.tun: "mctun:0" contains ':'`},
		},
		{
			name: "tun with space",
			file: []string{member, `tun = "mc tun"`},
			errs: []string{`mctun.toml:3: member.tun: "mc tun" contains whitespace`},
		},
		{
			name: "tun with tab",
			file: []string{member, `tun = "mc\ttun"`},
			errs: []string{`mctun.toml:3: member.tun: "mc\ttun" contains whitespace`},
		},
		{
			name: "tun with NUL",
			file: []string{member, `tun = "mc\u0000tun"`},
			errs: []string{`mctun.toml:3: member.tun: "mc\x00tun" contains a control character`},
		},

		// [member].
		{
			name: "mtu below range",
			file: []string{member, "mtu = 575"},
			errs: []string{"mctun.toml:3: member.mtu: 575 is out of range 576..65535"},
		},
		{
			name: "mtu above range",
			file: []string{member, "mtu = 65536"},
			errs: []string{"mctun.toml:3: member.mtu: 65536 is out of range 576..65535"},
		},
		{
			name:  "sources missing",
			file:  []string{"[member]", `tun = "mctun1"`},
			warns: []string{"mctun.toml:1: member.sources: no sources yet: no tunnel packet is accepted until a source is added"},
		},
		{
			name:  "sources empty",
			file:  []string{"[member]", "sources = []"},
			warns: []string{"mctun.toml:2: member.sources: no sources yet: no tunnel packet is accepted until a source is added"},
		},
		{
			name: "bad sources",
			file: []string{
				"[member]",
				`sources = ["198.18.0.1:4754", "fe80::1", "224.0.0.1", "127.0.0.1", "0.0.0.0", "255.255.255.255", "host", 1]`,
			},
			errs: []string{
				"mctun.toml:2: member.sources[0]: 198.18.0.1:4754 has a port; a source is an address only",
				"mctun.toml:2: member.sources[1]: fe80::1 is an IPv6 address; IPv6 is not supported",
				"mctun.toml:2: member.sources[2]: 224.0.0.1 is a multicast address, not a host",
				"mctun.toml:2: member.sources[3]: 127.0.0.1 is a loopback address, not a remote host",
				"mctun.toml:2: member.sources[4]: 0.0.0.0 is the unspecified address, not a host",
				"mctun.toml:2: member.sources[5]: 255.255.255.255 is the broadcast address, not a host",
				`mctun.toml:2: member.sources[6]: "host" is not "ip" or "ip:port"`,
				"mctun.toml:2: member.sources[7]: want a string, got an integer (1)",
			},
		},
		{
			name: "bad member groups",
			file: []string{member, "groups = [", `  "10.0.0.1",`, `  "ff02::1",`, `  "224.1.2",`, "]"},
			errs: []string{
				"mctun.toml:4: member.groups[0]: 10.0.0.1 is not a multicast address",
				"mctun.toml:5: member.groups[1]: ff02::1 is an IPv6 address; IPv6 is not supported",
				`mctun.toml:6: member.groups[2]: "224.1.2" is not an IP address`,
			},
		},
		{
			name: "member groups not an array",
			file: []string{member, `groups = "224.1.2.3"`},
			errs: []string{`mctun.toml:3: member.groups: want an array of strings, got a string ("224.1.2.3")`},
		},

		// [log].
		{
			name: "log set",
			file: []string{member, "[log]", `format = "json"`, `file = "/var/log/mctun.log"`, `level = "debug"`},
		},
		{
			name: "log format unknown",
			file: []string{member, "[log]", `format = "xml"`},
			errs: []string{`mctun.toml:4: log.format: "xml" is not "text" or "json"`},
		},
		{
			name: "log format is case-sensitive",
			file: []string{member, "[log]", `format = "JSON"`},
			errs: []string{`mctun.toml:4: log.format: "JSON" is not "text" or "json"`},
		},
		{
			name: "log level unknown",
			file: []string{member, "[log]", `level = "verbose"`},
			errs: []string{`mctun.toml:4: log.level: "verbose" is not "debug", "info", "warn" or "error"`},
		},
		{
			name: "log level of the wrong type",
			file: []string{member, "[log]", `level = 1`},
			errs: []string{`mctun.toml:4: log.level: want a string, got an integer (1)`},
		},
		{
			name: "log file relative",
			file: []string{member, "[log]", `file = "mctun.log"`},
			errs: []string{`mctun.toml:4: log.file: "mctun.log" is not an absolute path`},
		},
		{
			name: "log file with NUL",
			file: []string{member, "[log]", `file = "/var/log/mctun\u0000.log"`},
			errs: []string{`mctun.toml:4: log.file: "/var/log/mctun\x00.log" contains a NUL byte`},
		},
		{
			name: "unknown key in log",
			file: []string{member, "[log]", `colour = true`},
			errs: []string{`mctun.toml:4: log.colour: unknown key`},
		},
		{
			name: "log is not a table",
			file: []string{`log = "debug"`, member},
			errs: []string{`mctun.toml:1: log: want a table, got a string; write it as [log]`},
		},
		{
			name: "log alone is not a role",
			file: []string{"[log]", `level = "debug"`},
			errs: []string{"mctun.toml: no [source] or [member] table; a host needs at least one"},
		},

		// [metrics].
		{
			name: "metrics set",
			file: []string{member, "[metrics]", `listen = "127.0.0.1:9477"`, "per_member = true"},
		},
		{
			name: "metrics on an IPv6 address, every address, or off",
			file: []string{member, "[metrics]", `listen = "[::1]:9477"`, "[source]", "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.1.1"]`},
		},
		{
			name: "metrics off",
			file: []string{member, "[metrics]", `listen = ""`, "per_member = false"},
		},
		{
			name: "metrics listen without an address",
			file: []string{member, "[metrics]", `listen = ":9477"`},
			errs: []string{`mctun.toml:4: metrics.listen: ":9477" has no address: write "127.0.0.1:9477" for this host alone, or "0.0.0.0:9477" for every address`},
		},
		{
			name: "metrics listen without a port",
			file: []string{member, "[metrics]", `listen = "127.0.0.1"`},
			errs: []string{`mctun.toml:4: metrics.listen: 127.0.0.1 has no port; write "ip:port"`},
		},
		{
			name: "metrics listen on a name",
			file: []string{member, "[metrics]", `listen = "localhost:9477"`},
			errs: []string{`mctun.toml:4: metrics.listen: "localhost:9477" is not "ip:port"`},
		},
		{
			name: "metrics listen port out of range",
			file: []string{member, "[metrics]", `listen = "127.0.0.1:0"`, "[log]", "[metrics.x]"},
			errs: []string{
				"mctun.toml:4: metrics.listen: 127.0.0.1:0 has port 0, out of range 1..65535",
				"mctun.toml:6: metrics.x: unknown key",
			},
		},
		{
			name: "metrics listen port too large",
			file: []string{member, "[metrics]", `listen = "127.0.0.1:65536"`},
			errs: []string{"mctun.toml:4: metrics.listen: 127.0.0.1:65536 has port 65536, out of range 1..65535"},
		},
		{
			name: "metrics listen on a multicast address",
			file: []string{member, "[metrics]", `listen = "224.1.2.3:9477"`},
			errs: []string{"mctun.toml:4: metrics.listen: 224.1.2.3:9477 is a multicast address; listen on an address of this host"},
		},
		{
			name: "metrics listen on the broadcast address",
			file: []string{member, "[metrics]", `listen = "255.255.255.255:9477"`},
			errs: []string{"mctun.toml:4: metrics.listen: 255.255.255.255:9477 is the broadcast address; listen on an address of this host"},
		},
		{
			name: "metrics listen of the wrong type",
			file: []string{member, "[metrics]", `listen = 9477`},
			errs: []string{"mctun.toml:4: metrics.listen: want a string, got an integer (9477)"},
		},
		{
			name: "metrics per_member not a boolean",
			file: []string{member, "[metrics]", `listen = "127.0.0.1:9477"`, `per_member = "yes"`},
			errs: []string{`mctun.toml:5: metrics.per_member: want true or false, got a string ("yes")`},
		},
		{
			name: "unknown key in metrics",
			file: []string{member, "[metrics]", `port = 9477`},
			errs: []string{"mctun.toml:4: metrics.port: unknown key"},
		},
		{
			name: "metrics is not a table",
			file: []string{`metrics = "127.0.0.1:9477"`, member},
			errs: []string{`mctun.toml:1: metrics: want a table, got a string; write it as [metrics]`},
		},
		{
			name: "metrics alone is not a role",
			file: []string{"[metrics]", `listen = "127.0.0.1:9477"`},
			errs: []string{"mctun.toml: no [source] or [member] table; a host needs at least one"},
		},

		// Warnings.
		{
			name: "member listed twice",
			file: []string{
				"[source]", "[[source.group]]", `address = "224.1.2.3"`, "members = [",
				`  "198.18.2.1",`,
				`  "198.18.2.2",`,
				`  "198.18.2.3:5000",`,
				`  "198.18.2.2",`,
				`  "198.18.2.3:5000",`,
				`  "198.18.2.1:4754",`,
				"]",
			},
			warns: []string{
				"mctun.toml:8: source.group[0].members[3]: 198.18.2.2 is listed twice; using it once",
				"mctun.toml:9: source.group[0].members[4]: 198.18.2.3:5000 is listed twice; using it once",
				"mctun.toml:10: source.group[0].members[5]: 198.18.2.1:4754 is listed twice; using it once",
			},
		},
		{
			name: "member listed twice with the tunnel port",
			file: []string{"port = 5000", "[source]", "[[source.group]]", `address = "224.1.2.3"`, `members = ["198.18.2.1:5000", "198.18.2.1"]`},
			warns: []string{
				"mctun.toml:5: source.group[0].members[1]: 198.18.2.1 is listed twice; using it once",
			},
		},
		{
			name:  "source listed twice",
			file:  []string{"[member]", `sources = ["198.18.0.1", "198.18.0.2", "198.18.0.1"]`},
			warns: []string{"mctun.toml:2: member.sources[2]: 198.18.0.1 is listed twice; using it once"},
		},
		{
			name:  "member group listed twice",
			file:  []string{member, `groups = ["224.1.2.3", "224.1.2.3"]`},
			warns: []string{"mctun.toml:3: member.groups[1]: 224.1.2.3 is listed twice; using it once"},
		},
		{
			name: "warnings come with errors",
			file: []string{"[member]", `sources = ["198.18.0.1", "198.18.0.1"]`, "mtu = 1"},
			errs: []string{"mctun.toml:3: member.mtu: 1 is out of range 576..65535"},
			warns: []string{
				"mctun.toml:2: member.sources[1]: 198.18.0.1 is listed twice; using it once",
			},
		},

		// Dynamic membership.
		{
			name: "join_from without groups: no warning",
			file: []string{"[source]", `join_from = ["192.168.0.0/16", "198.18.2.2"]`},
		},
		{
			name: "join_from lets a group have no members",
			file: []string{"[source]", `join_from = ["192.168.0.0/16"]`, "[[source.group]]", `address = "224.1.2.3"`, "port = 5000"},
		},
		{
			name: "join_from problems",
			file: []string{"[source]", `join_from = ["192.168.1.5/16", "fd00::/8", "224.0.0.0/4", "10.0.0.0/33", "x", 7, "127.0.0.1", "10.0.0.0/8", "10.0.0.0/8"]`},
			errs: []string{
				"mctun.toml:2: source.join_from[0]: 192.168.1.5/16 has bits set past its length; write 192.168.0.0/16",
				"mctun.toml:2: source.join_from[1]: fd00::/8 is IPv6; IPv6 is not supported",
				"mctun.toml:2: source.join_from[2]: 224.0.0.0/4 holds no host that could join: members are unicast host addresses",
				`mctun.toml:2: source.join_from[3]: "10.0.0.0/33" is not an IPv4 prefix (such as 192.168.0.0/16) or address`,
				`mctun.toml:2: source.join_from[4]: "x" is not an IPv4 prefix (such as 192.168.0.0/16) or address`,
				"mctun.toml:2: source.join_from[5]: want a string, got an integer (7)",
				"mctun.toml:2: source.join_from[6]: 127.0.0.1 holds no host that could join: members are unicast host addresses",
			},
			warns: []string{"mctun.toml:2: source.join_from[8]: 10.0.0.0/8 is listed twice; using it once"},
		},
		{
			name:  "join_from not a list",
			file:  []string{"[source]", `join_from = "10.0.0.0/8"`},
			errs:  []string{`mctun.toml:2: source.join_from: want an array of strings, got a string ("10.0.0.0/8")`},
			warns: []string{"mctun.toml:1: source.group: no groups yet: nothing is forwarded until a group is added"},
		},

		// Every problem at once.
		{
			name: "every problem at once",
			file: []string{
				"port = 0",
				"[source]",
				`interface = "a b"`,
				"[[source.group]]",
				`address = "10.1.1.1"`,
				`members = ["127.0.0.1"]`,
				"[member]",
				"mtu = 100",
				`sources = []`,
				`groups = ["1.1.1.1"]`,
				"color = 1",
			},
			errs: []string{
				"mctun.toml:1: port: 0 is out of range 1..65535",
				`mctun.toml:3: source.interface: "a b" contains whitespace`,
				"mctun.toml:5: source.group[0].address: 10.1.1.1 is not a multicast address",
				"mctun.toml:6: source.group[0].members[0]: 127.0.0.1 is a loopback address, not a remote host",
				"mctun.toml:8: member.mtu: 100 is out of range 576..65535",
				"mctun.toml:10: member.groups[0]: 1.1.1.1 is not a multicast address",
				"mctun.toml:11: member.color: unknown key",
			},
			warns: []string{"mctun.toml:9: member.sources: no sources yet: no tunnel packet is accepted until a source is added"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warns, err := Parse("mctun.toml", []byte(strings.Join(tt.file, "\n")))
			checkProblems(t, cfg, warns, err, tt.errs, tt.warns)
		})
	}
}

// checkProblems checks what Parse or Merge returned against the errors and warnings wanted,
// each as Problem.String gives it, in order.
func checkProblems(t *testing.T, cfg *Config, warns []Problem, err error, wantErrs, wantWarns []string) {
	t.Helper()
	var errs []string
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error is %T, want *Error: %v", err, err)
		}
		if cfg != nil {
			t.Errorf("got a Config with an error")
		}
		for _, p := range e.Problems {
			errs = append(errs, p.String())
		}
		if err.Error() != strings.Join(errs, "\n") {
			t.Errorf("Error() = %q, want the problems one per line", err.Error())
		}
	} else if cfg == nil {
		t.Fatalf("no Config and no error")
	}
	if !slices.Equal(errs, wantErrs) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(wantErrs, "\n"))
	}
	var ws []string
	for _, p := range warns {
		ws = append(ws, p.String())
	}
	if !slices.Equal(ws, wantWarns) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(ws, "\n"), strings.Join(wantWarns, "\n"))
	}
}
