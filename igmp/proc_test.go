package igmp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// Captured from a namespace where, on d0 (index 3), one socket joined 224.1.2.3, one
// 232.1.1.1 from 198.18.1.2 only, and one 224.5.5.5 blocking 198.18.7.7.
const (
	procIGMP = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n" +
		"1\tlo        :     1      V3\n" +
		"\t\t\t\t010000E0     1 0:00000000\t\t0\n" +
		"2\td1        :     1      V3\n" +
		"\t\t\t\t010000E0     1 0:00000000\t\t0\n" +
		"3\td0        :     4      V3\n" +
		"\t\t\t\t050505E0     1 0:00000000\t\t0\n" +
		"\t\t\t\t010101E8     1 0:00000000\t\t0\n" +
		"\t\t\t\t030201E0     1 0:00000000\t\t0\n" +
		"\t\t\t\t010000E0     1 0:00000000\t\t0\n"
	procMcfilter = "Idx Device        MCA        SRC    INC    EXC\n" +
		"  3     d0 0xe0050505 0xc6120707      0      1\n" +
		"  3     d0 0xe8010101 0xc6120102      1      0\n"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestJoined(t *testing.T) {
	got, err := Joined(strings.NewReader(procIGMP), strings.NewReader(procMcfilter), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []Membership{
		{Group: netip.MustParseAddr("224.1.2.3"), Mode: Exclude},
		{Group: netip.MustParseAddr("224.5.5.5"), Mode: Exclude, Sources: addrs("198.18.7.7")},
		{Group: netip.MustParseAddr("232.1.1.1"), Mode: Include, Sources: addrs("198.18.1.2")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Joined = %+v\nwant %+v", got, want)
	}
	if !got[2].Wants(netip.MustParseAddr("198.18.1.2")) || got[2].Wants(netip.MustParseAddr("198.18.1.3")) ||
		got[1].Wants(netip.MustParseAddr("198.18.7.7")) || !got[1].Wants(netip.MustParseAddr("198.18.1.2")) ||
		!got[0].Wants(netip.MustParseAddr("198.18.1.2")) {
		t.Fatal("Wants does not follow the filters")
	}
	other, err := Joined(strings.NewReader(procIGMP), strings.NewReader(procMcfilter), 2)
	if err != nil || len(other) != 0 {
		t.Fatalf("an interface with only all-hosts: %v, %v; want nothing (224.0.0.1 is never reported)", other, err)
	}
	if _, err := Joined(strings.NewReader("Idx\nx\td0: 1\n"), strings.NewReader(""), 3); err == nil {
		t.Fatal("a broken /proc/net/igmp was read")
	}
	if _, err := Joined(strings.NewReader(procIGMP), strings.NewReader("Idx\n 3 d0 0xzz 0x1 1 0\n"), 3); err == nil {
		t.Fatal("a broken /proc/net/mcfilter was read")
	}
}

// TestDerive covers the ways sockets combine into a group's filter (RFC 3376 section 3.2),
// where the counts tell them apart, and the widest reading where they do not.
func TestDerive(t *testing.T) {
	g := netip.MustParseAddr("232.1.1.1")
	a, b := netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("198.18.3.2")
	for _, tc := range []struct {
		name  string
		users int
		srcs  []sourceCount
		want  Membership
	}{
		{"one ordinary join", 1, nil, Membership{Group: g}},
		{"two ordinary joins", 2, nil, Membership{Group: g}},
		{"include a", 1, []sourceCount{{a, 1, 0}}, Membership{Group: g, Mode: Include, Sources: []netip.Addr{a}}},
		{"include a and b, one socket", 1, []sourceCount{{b, 1, 0}, {a, 1, 0}}, Membership{Group: g, Mode: Include, Sources: []netip.Addr{a, b}}},
		{"include a, include a and b", 2, []sourceCount{{a, 2, 0}, {b, 1, 0}}, Membership{Group: g, Mode: Include, Sources: []netip.Addr{a, b}}},
		{"exclude a", 1, []sourceCount{{a, 0, 1}}, Membership{Group: g, Sources: []netip.Addr{a}}},
		{"exclude a twice", 2, []sourceCount{{a, 0, 2}}, Membership{Group: g, Sources: []netip.Addr{a}}},
		{"exclude a, ordinary join", 2, []sourceCount{{a, 0, 1}}, Membership{Group: g}},
		{"exclude a, include a", 2, []sourceCount{{a, 1, 1}}, Membership{Group: g}},
		{"exclude a and b, include b", 2, []sourceCount{{a, 0, 1}, {b, 1, 1}}, Membership{Group: g, Sources: []netip.Addr{a}}},
		{"include a, ordinary join", 2, []sourceCount{{a, 1, 0}}, Membership{Group: g}},
		// Ambiguous: include a + include b, or include a and b + an ordinary join. The
		// widest reading is taken.
		{"include a, include b", 2, []sourceCount{{a, 1, 0}, {b, 1, 0}}, Membership{Group: g}},
	} {
		if got := derive(g, tc.users, tc.srcs); !got.Equal(tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
