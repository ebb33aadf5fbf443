package topo

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

func TestOptionsFill(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{name: "defaults", opts: Options{Hosts: 4}},
		{name: "max hosts", opts: Options{Hosts: MaxHosts, Prefix: "x"}},
		{name: "no hosts", opts: Options{}, wantErr: "Hosts 0"},
		{name: "too many hosts", opts: Options{Hosts: MaxHosts + 1}, wantErr: "Hosts 251"},
		{name: "small MTU", opts: Options{Hosts: 1, MTU: 67}, wantErr: "MTU 67"},
		{name: "bad prefix", opts: Options{Hosts: 1, Prefix: "a/b"}, wantErr: `Prefix "a/b"`},
		{name: "dot prefix", opts: Options{Hosts: 1, Prefix: ".."}, wantErr: `Prefix ".."`},
		{name: "long prefix", opts: Options{Hosts: 1, Prefix: strings.Repeat("a", 33)}, wantErr: "Prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.fill()
			if tt.wantErr == "" {
				if err != nil || tt.opts.Prefix == "" {
					t.Fatalf("fill() = %v, prefix %q", err, tt.opts.Prefix)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("fill() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRandomPrefix(t *testing.T) {
	p := RandomPrefix()
	if !regexp.MustCompile(`^mt[0-9a-f]{6}$`).MatchString(p) {
		t.Fatalf("RandomPrefix() = %q, want mt and 6 hex digits", p)
	}
	if p == RandomPrefix() {
		t.Fatal("two RandomPrefix calls returned the same prefix")
	}
}

func TestNewHostAddressing(t *testing.T) {
	h := newHost("mtabc", 2)
	want := Host{
		Name:    "h2",
		Netns:   "mtabc-h2",
		Addr:    netip.MustParseAddr("198.18.3.2"),
		Prefix:  netip.MustParsePrefix("198.18.3.0/24"),
		Gateway: netip.MustParseAddr("198.18.3.1"),
		Iface:   "eth0",
		Peer:    "h2",
	}
	if *h != want {
		t.Fatalf("newHost = %+v, want %+v", *h, want)
	}
	last := newHost("p", MaxHosts-1)
	if !netip.MustParsePrefix("198.18.0.0/15").Contains(last.Addr) {
		t.Fatalf("host %d address %s is outside 198.18.0.0/15", MaxHosts-1, last.Addr)
	}
}

func TestNameRE(t *testing.T) {
	tests := map[string]string{
		"mtabc-r":     "mtabc",
		"mtabc-h0":    "mtabc",
		"mtabc-h12":   "mtabc",
		"mt-x-y-h3":   "mt-x-y",
		"mtabc-hx":    "",
		"mtabc":       "",
		"mtabc-r-old": "",
	}
	for name, want := range tests {
		got := ""
		if m := nameRE.FindStringSubmatch(name); m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("prefix of %q = %q, want %q", name, got, want)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	tests := map[string]string{
		"net.ipv4.conf.all.rp_filter":        "/proc/sys/net/ipv4/conf/all/rp_filter",
		"net/ipv4/conf/eth0.100/rp_filter":   "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
		"net.ipv4.igmp_max_memberships":      "/proc/sys/net/ipv4/igmp_max_memberships",
		"net.ipv6.conf.default.disable_ipv6": "/proc/sys/net/ipv6/conf/default/disable_ipv6",
	}
	for key, want := range tests {
		if got := sysctlPath(key); got != want {
			t.Errorf("sysctlPath(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestNormalize(t *testing.T) {
	in := "a  \n\n  b\t\nc"
	if got, want := normalize(in), "a\n  b\nc\n"; got != want {
		t.Fatalf("normalize(%q) = %q, want %q", in, got, want)
	}
}

func TestRemoveStaleNeedsPrefix(t *testing.T) {
	if err := RemoveStale(""); err == nil {
		t.Fatal("RemoveStale(\"\") would remove every topology's namespaces; want an error")
	}
}
