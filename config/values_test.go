package config

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// addressInputs are the strings the value parsers and the file's rules are compared on.
var addressInputs = []string{
	"224.1.2.3", "224.0.0.0", "239.255.255.255", "224.0.0.251",
	"10.1.1.1", "198.18.1.1", "0.0.0.0", "255.255.255.255", "127.0.0.1", "127.1.2.3",
	"224.1.2.3:5000", "198.18.1.1:5000", "198.18.1.1:1", "198.18.1.1:65535", "198.18.1.1:4754",
	"198.18.1.1:0", "198.18.1.1:65536", "198.18.1.1:99999999999", "198.18.1.1:x", "198.18.1.1:",
	"198.18.1.1:+80", "198.18.1.1:-1", ":5000", "127.0.0.1:5000", "0.0.0.0:1",
	"ff02::1", "::ffff:224.1.2.3", "::ffff:198.18.1.1", "2001:db8::1", "[2001:db8::1]:80",
	"fe80::1%eth0", "::", "[::1]:1",
	"224.1.2", "198.18.1", "01.2.3.4", " 198.18.1.1", "198.18.1.1 ", "host", "", "\x00", "é",
}

// fileProblem parses file and returns its one error's message, or "" if it is valid. Any
// other outcome fails the test.
func fileProblem(t *testing.T, file string) (*Config, string) {
	t.Helper()
	cfg, _, err := Parse("mctun.toml", []byte(file))
	if err == nil {
		return cfg, ""
	}
	e, ok := err.(*Error)
	if !ok || len(e.Problems) != 1 {
		t.Fatalf("want one problem, got %v\n%s", err, file)
	}
	return nil, e.Problems[0].Msg
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestParseGroupMatchesFile checks ParseGroup against source.group.address and member.groups.
func TestParseGroupMatchesFile(t *testing.T) {
	for _, s := range addressInputs {
		a, err := ParseGroup(s)
		cfg, msg := fileProblem(t, fmt.Sprintf("[source]\n[[source.group]]\naddress = %s\nmembers = [\"198.18.1.1\"]", quote(s)))
		if errText(err) != msg {
			t.Errorf("ParseGroup(%q): %q; source.group.address: %q", s, errText(err), msg)
		} else if err == nil && cfg.Source.Groups[0].Address != a {
			t.Errorf("ParseGroup(%q) = %v; the file has %v", s, a, cfg.Source.Groups[0].Address)
		}
		cfg, msg = fileProblem(t, fmt.Sprintf("%s\ngroups = [%s]", member, quote(s)))
		if errText(err) != msg {
			t.Errorf("ParseGroup(%q): %q; member.groups: %q", s, errText(err), msg)
		} else if err == nil && cfg.Member.Groups[0] != a {
			t.Errorf("ParseGroup(%q) = %v; the file has %v", s, a, cfg.Member.Groups[0])
		}
	}
}

// TestParseMemberMatchesFile checks ParseMember against source.group.members.
func TestParseMemberMatchesFile(t *testing.T) {
	for _, tunnelPort := range []uint16{DefaultPort, 5000} {
		for _, s := range addressInputs {
			m, err := ParseMember(s, tunnelPort)
			cfg, msg := fileProblem(t, fmt.Sprintf("port = %d\n[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [%s]", tunnelPort, quote(s)))
			if errText(err) != msg {
				t.Errorf("ParseMember(%q, %d): %q; the file: %q", s, tunnelPort, errText(err), msg)
			} else if err == nil && cfg.Source.Groups[0].Members[0] != m {
				t.Errorf("ParseMember(%q, %d) = %v; the file has %v", s, tunnelPort, m, cfg.Source.Groups[0].Members[0])
			}
		}
	}
}

// TestParseSourceMatchesFile checks ParseSource against member.sources.
func TestParseSourceMatchesFile(t *testing.T) {
	for _, s := range addressInputs {
		a, err := ParseSource(s)
		cfg, msg := fileProblem(t, fmt.Sprintf("[member]\nsources = [%s]", quote(s)))
		if errText(err) != msg {
			t.Errorf("ParseSource(%q): %q; the file: %q", s, errText(err), msg)
		} else if err == nil && cfg.Member.Sources[0] != a {
			t.Errorf("ParseSource(%q) = %v; the file has %v", s, a, cfg.Member.Sources[0])
		}
	}
}

// TestParseGroupPortMatchesFile checks ParseGroupPort against source.group.port, for the
// integers both can hold.
func TestParseGroupPortMatchesFile(t *testing.T) {
	for _, s := range []string{"1", "80", "65535", "0", "-1", "65536", "70000", "9223372036854775807", "-9223372036854775808"} {
		p, err := ParseGroupPort(s)
		cfg, msg := fileProblem(t, fmt.Sprintf("%s\nport = %s", group, s))
		if errText(err) != msg {
			t.Errorf("ParseGroupPort(%q): %q; the file: %q", s, errText(err), msg)
		} else if err == nil && cfg.Source.Groups[0].Port != p {
			t.Errorf("ParseGroupPort(%q) = %d; the file has %d", s, p, cfg.Source.Groups[0].Port)
		}
	}
}

// TestValueParsers checks the exact messages, as the command line shows them, including those
// for what a file cannot hold: a port that is not an integer.
func TestValueParsers(t *testing.T) {
	tests := []struct {
		name string
		f    func() (any, error)
		want string // the value, or the error
	}{
		{"group", func() (any, error) { return ParseGroup("239.1.1.1") }, "239.1.1.1"},
		{"group not multicast", func() (any, error) { return ParseGroup("10.1.1.1") }, "10.1.1.1 is not a multicast address"},
		{"group not an address", func() (any, error) { return ParseGroup("224.1.2") }, `"224.1.2" is not an IP address`},
		{"group with port", func() (any, error) { return ParseGroup("224.1.2.3:80") }, `"224.1.2.3:80" is not an IP address`},
		{"group IPv6", func() (any, error) { return ParseGroup("ff02::1") }, "ff02::1 is an IPv6 address; IPv6 is not supported"},
		{"port", func() (any, error) { return ParseGroupPort("65535") }, "65535"},
		{"port 0", func() (any, error) { return ParseGroupPort("0") }, "0 is out of range 1..65535"},
		{"port too large", func() (any, error) { return ParseGroupPort("65536") }, "65536 is out of range 1..65535"},
		{"port beyond int64", func() (any, error) { return ParseGroupPort("99999999999999999999") }, "99999999999999999999 is out of range 1..65535"},
		{"port not a number", func() (any, error) { return ParseGroupPort("http") }, `"http" is not an integer`},
		{"port hexadecimal", func() (any, error) { return ParseGroupPort("0x50") }, `"0x50" is not an integer`},
		{"port empty", func() (any, error) { return ParseGroupPort("") }, `"" is not an integer`},
		{"member", func() (any, error) { return ParseMember("198.18.1.1", 4754) }, "198.18.1.1:4754"},
		{"member with port", func() (any, error) { return ParseMember("198.18.1.1:5000", 4754) }, "198.18.1.1:5000"},
		{"member loopback", func() (any, error) { return ParseMember("127.0.0.1", 4754) }, "127.0.0.1 is a loopback address, not a remote host"},
		{"member multicast", func() (any, error) { return ParseMember("224.1.1.1", 4754) }, "224.1.1.1 is a multicast address, not a host"},
		{"member port 0", func() (any, error) { return ParseMember("198.18.1.1:0", 4754) }, "198.18.1.1:0 has port 0, out of range 1..65535"},
		{"member not ip:port", func() (any, error) { return ParseMember("host:80", 4754) }, `"host:80" is not "ip" or "ip:port"`},
		{"source", func() (any, error) { return ParseSource("198.18.0.1") }, "198.18.0.1"},
		{"source with port", func() (any, error) { return ParseSource("198.18.0.1:4754") }, "198.18.0.1:4754 has a port; a source is an address only"},
		{"source broadcast", func() (any, error) { return ParseSource("255.255.255.255") }, "255.255.255.255 is the broadcast address, not a host"},
		{"source unspecified", func() (any, error) { return ParseSource("0.0.0.0") }, "0.0.0.0 is the unspecified address, not a host"},
	}
	for _, tt := range tests {
		v, err := tt.f()
		got := errText(err)
		if err == nil {
			got = fmt.Sprint(v)
		}
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// FuzzParseEndpoint checks the shortcut that spares "ip:port" a failed netip.ParseAddr: no
// string with exactly one colon is an address.
func FuzzParseEndpoint(f *testing.F) {
	for _, s := range addressInputs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Count(s, ":") != 1 {
			return
		}
		if a, err := netip.ParseAddr(s); err == nil {
			t.Fatalf("netip.ParseAddr(%q) = %v: parseEndpoint would not try it", s, a)
		}
	})
}
