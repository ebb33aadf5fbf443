package membership

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"mctun/config"
	"mctun/igmp"
)

// clock is a fake clock the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

var (
	m1, m2, m3 = netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("198.18.3.2"), netip.MustParseAddr("198.18.4.2")
	g1, g2     = netip.MustParseAddr("224.1.2.3"), netip.MustParseAddr("232.1.1.1")
	self       = netip.MustParseAddr("198.18.1.2")
	other      = netip.MustParseAddr("198.18.5.2")
)

func newTable(lim Limits) (*Table, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(lim, c.now), c
}

func join(g netip.Addr) igmp.Record  { return igmp.Record{Type: igmp.ChangeToExclude, Group: g} }
func leave(g netip.Addr) igmp.Record { return igmp.Record{Type: igmp.ChangeToInclude, Group: g} }
func current(g netip.Addr) igmp.Record {
	return igmp.Record{Type: igmp.ModeIsExclude, Group: g}
}

func kinds(evs []Event) []EventKind {
	var out []EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func changed(t *Table) bool {
	select {
	case <-t.Changed():
		return true
	default:
		return false
	}
}

func TestJoinRefreshLeave(t *testing.T) {
	tb, c := newTable(Limits{})
	if ev := tb.Report(m1, []igmp.Record{join(g1)}); !reflect.DeepEqual(ev, []Event{{Joined, m1, g1}}) {
		t.Fatalf("join: %v", ev)
	}
	if !changed(tb) {
		t.Fatal("a join did not signal a change")
	}
	e := tb.Entries()
	if len(e) != 1 || e[0].Joined != c.t || e[0].Expires != c.t.Add(30*time.Second) || e[0].Mode != igmp.Exclude {
		t.Fatalf("after the join: %+v", e)
	}
	joined := c.t
	c.advance(10 * time.Second)
	if ev := tb.Report(m1, []igmp.Record{current(g1)}); len(ev) != 0 {
		t.Fatalf("a refresh is no event: %v", ev)
	}
	if changed(tb) {
		t.Fatal("a refresh signalled a change")
	}
	e = tb.Entries()
	if e[0].Joined != joined || e[0].Refreshed != c.t || e[0].Expires != c.t.Add(30*time.Second) {
		t.Fatalf("after the refresh: %+v", e)
	}
	if ev := tb.Report(m1, []igmp.Record{leave(g1)}); !reflect.DeepEqual(kinds(ev), []EventKind{Left}) || tb.Len() != 0 || !changed(tb) {
		t.Fatalf("leave: %v, %d left", ev, tb.Len())
	}
	if ev := tb.Report(m1, []igmp.Record{leave(g1)}); len(ev) != 0 || changed(tb) {
		t.Fatalf("a leave of a group not joined: %v", ev)
	}
	if got := tb.Counters(); got != (Counters{Joins: 1, Leaves: 1}) {
		t.Fatalf("counters %+v", got)
	}
}

// TestExpiry: a member that stops reporting is dropped once 3 intervals (30 s) have passed
// since its last report, and not a moment before; a member that keeps reporting never is.
func TestExpiry(t *testing.T) {
	tb, c := newTable(Limits{})
	start := c.t
	if ev, next := tb.Expire(); len(ev) != 0 || !next.IsZero() {
		t.Fatalf("empty table: %v, next at %v", ev, next)
	}
	tb.Report(m1, []igmp.Record{join(g1)})
	tb.Report(m2, []igmp.Record{join(g1)})
	changed(tb)
	for i := range 3 {
		c.advance(10 * time.Second)
		if i < 2 {
			tb.Report(m2, []igmp.Record{current(g1)}) // m2 keeps reporting; m1 is gone
		}
		if i < 2 {
			// The next to expire is m1, 30 s after its only report.
			if ev, next := tb.Expire(); len(ev) != 0 || !next.Equal(start.Add(30*time.Second)) {
				t.Fatalf("after %d intervals: %v, next at %v", i+1, ev, next.Sub(start))
			}
		}
	}
	// 30 s after m1's last report, and 10 after m2's.
	c.advance(-time.Nanosecond)
	if ev, _ := tb.Expire(); len(ev) != 0 || changed(tb) {
		t.Fatalf("1 ns before 30 s: %v", ev)
	}
	c.advance(time.Nanosecond)
	// m1 goes; the next to expire is m2, 30 s after its last report, at 20 s.
	if ev, next := tb.Expire(); !reflect.DeepEqual(ev, []Event{{Expired, m1, g1}}) || !changed(tb) ||
		!next.Equal(start.Add(50*time.Second)) {
		t.Fatalf("at 30 s: %v, next at %v", ev, next.Sub(start))
	}
	if e := tb.Entries(); len(e) != 1 || e[0].Member != m2 {
		t.Fatalf("left: %+v", e)
	}
	// m1 comes back: a join again, with a new joined time.
	tb.Report(m1, []igmp.Record{current(g1)})
	if e := tb.Entries(); len(e) != 2 || e[0].Joined != c.t {
		t.Fatalf("back: %+v", e)
	}
	if got := tb.Counters(); got.Joins != 3 || got.Expiries != 1 {
		t.Fatalf("counters %+v", got)
	}
}

func TestLimits(t *testing.T) {
	tb, _ := newTable(Limits{MaxGroupsPerMember: 2, MaxMembersPerGroup: 2, MaxMemberships: 5, MaxSources: 2})
	g := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{239, 0, 0, byte(i)}) }
	ev := tb.Report(m1, []igmp.Record{join(g(1)), join(g(2)), join(g(3))})
	if !reflect.DeepEqual(kinds(ev), []EventKind{Joined, Joined, OverLimit}) {
		t.Fatalf("groups per member: %v", ev)
	}
	tb.Report(m2, []igmp.Record{join(g(1))})
	if ev := tb.Report(m3, []igmp.Record{join(g(1))}); !reflect.DeepEqual(kinds(ev), []EventKind{OverLimit}) {
		t.Fatalf("members per group: %v", ev)
	}
	tb.Report(m2, []igmp.Record{join(g(2))})
	tb.Report(m3, []igmp.Record{join(g(4))})
	if ev := tb.Report(m3, []igmp.Record{join(g(5))}); !reflect.DeepEqual(kinds(ev), []EventKind{OverLimit}) {
		t.Fatalf("memberships: %v (%d)", ev, tb.Len())
	}
	three := []netip.Addr{self, other, m3}
	if ev := tb.Report(m3, []igmp.Record{{Type: igmp.ModeIsInclude, Group: g(4), Sources: three}}); !reflect.DeepEqual(kinds(ev), []EventKind{OverLimit}) {
		t.Fatalf("sources: %v", ev)
	}
	// Refreshing a membership at a limit is no join: allowed.
	if ev := tb.Report(m1, []igmp.Record{current(g(1)), current(g(2))}); len(ev) != 0 {
		t.Fatalf("refresh at the limit: %v", ev)
	}
	if got := tb.Counters(); got.OverLimit != 4 || got.Joins != 5 || tb.Len() != 5 {
		t.Fatalf("counters %+v, %d memberships", got, tb.Len())
	}
}

// TestTableSources: the sources of all filters together stay within MaxTableSources; a join
// or a filter that grows over it is refused, and a leave, an expiry or a filter that shrinks
// gives its sources back.
func TestTableSources(t *testing.T) {
	tb, c := newTable(Limits{MaxTableSources: 4})
	a := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 9, byte(i)}) }
	include := func(g netip.Addr, srcs ...netip.Addr) igmp.Record {
		return igmp.Record{Type: igmp.ModeIsInclude, Group: g, Sources: srcs}
	}
	step := func(what string, m netip.Addr, r igmp.Record, want ...EventKind) {
		t.Helper()
		if got := kinds(tb.Report(m, []igmp.Record{r})); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
	step("3 of 4", m1, include(g1, a(1), a(2), a(3)), Joined)
	step("a join over the budget", m2, include(g1, a(1), a(2)), OverLimit)
	step("the last one", m2, include(g1, a(1)), Joined)
	step("a filter that grows over it", m1, igmp.Record{Type: igmp.AllowNew, Group: g1, Sources: []netip.Addr{a(4)}}, OverLimit)
	step("a filter that shrinks", m1, igmp.Record{Type: igmp.BlockOld, Group: g1, Sources: []netip.Addr{a(3)}}, FilterChanged)
	step("what it gave back", m3, include(g2, a(5)), Joined)
	step("full again", m3, include(g1, a(5)), OverLimit)
	step("a leave", m1, leave(g1), Left)
	step("what it gave back", m3, include(g1, a(5), a(6)), Joined)
	c.advance(10 * time.Second)
	tb.Report(m3, []igmp.Record{include(g1, a(5), a(6)), include(g2, a(5))}) // m2 alone stops reporting
	c.advance(25 * time.Second)
	if evs, _ := tb.Expire(); !reflect.DeepEqual(evs, []Event{{Expired, m2, g1}}) {
		t.Fatalf("expiry: %v", evs)
	}
	step("what the expiry gave back", m1, include(g2, a(7)), Joined)
	if got := tb.Counters().OverLimit; got != 3 {
		t.Errorf("refused over a limit %d, want 3", got)
	}

	// Restore holds a previous run's memberships to the budget too.
	again := New(Limits{MaxTableSources: 3}, c.now)
	if n := again.Restore(tb.Entries(), func(netip.Addr) bool { return true }); n != 2 {
		t.Errorf("restored %d of %v within 3 sources, want 2", n, tb.Entries())
	}
}

// TestFilterFits: a filter kept costs the sources it counts, not the record's duplicates.
func TestFilterFits(t *testing.T) {
	tb, _ := newTable(Limits{})
	dup := make([]netip.Addr, igmp.MaxSources)
	for i := range dup {
		dup[i] = self
	}
	tb.Report(m1, []igmp.Record{{Type: igmp.ModeIsInclude, Group: g2, Sources: dup}})
	if s := tb.Entries()[0].Sources; len(s) != 1 || cap(s) != 1 {
		t.Fatalf("kept %d sources in an array of %d", len(s), cap(s))
	}
}

// TestFilters: each record type moves one member's filter as RFC 3376's table says, and
// Effective sends to a member only when it wants this source.
func TestFilters(t *testing.T) {
	tb, _ := newTable(Limits{})
	state := func() (igmp.Mode, []netip.Addr) {
		e := tb.Entries()
		if len(e) != 1 {
			t.Fatalf("%d entries", len(e))
		}
		return e[0].Mode, e[0].Sources
	}
	rec := func(typ igmp.RecordType, srcs ...netip.Addr) {
		tb.Report(m1, []igmp.Record{{Type: typ, Group: g2, Sources: srcs}})
	}
	sends := func() bool { return len(tb.Effective(nil, 4754, self)) == 1 }
	for _, step := range []struct {
		typ   igmp.RecordType
		srcs  []netip.Addr
		mode  igmp.Mode
		want  []netip.Addr
		sends bool
	}{
		{igmp.AllowNew, []netip.Addr{other}, igmp.Include, []netip.Addr{other}, false},
		{igmp.AllowNew, []netip.Addr{self}, igmp.Include, []netip.Addr{self, other}, true},
		{igmp.BlockOld, []netip.Addr{other}, igmp.Include, []netip.Addr{self}, true},
		{igmp.ChangeToExclude, []netip.Addr{self}, igmp.Exclude, []netip.Addr{self}, false},
		{igmp.AllowNew, []netip.Addr{self}, igmp.Exclude, nil, true},
		{igmp.BlockOld, []netip.Addr{other}, igmp.Exclude, []netip.Addr{other}, true},
		{igmp.ModeIsInclude, []netip.Addr{other, self, other}, igmp.Include, []netip.Addr{self, other}, true},
		{igmp.ModeIsExclude, nil, igmp.Exclude, nil, true},
	} {
		rec(step.typ, step.srcs...)
		mode, srcs := state()
		if mode != step.mode || !reflect.DeepEqual(srcs, step.want) || sends() != step.sends {
			t.Fatalf("after %v%v: %v%v, sends %v; want %v%v, sends %v", step.typ, step.srcs, mode, srcs, sends(), step.mode, step.want, step.sends)
		}
	}
	rec(igmp.BlockOld, self) // EXCLUDE(self)
	rec(igmp.ChangeToInclude)
	if tb.Len() != 0 {
		t.Fatal("TO_IN() is a leave")
	}
	if rec(igmp.BlockOld, self); tb.Len() != 0 {
		t.Fatal("BLOCK on no membership made one")
	}
}

func TestEffective(t *testing.T) {
	tb, _ := newTable(Limits{})
	g3, g4 := netip.MustParseAddr("224.3.3.3"), netip.MustParseAddr("224.4.4.4")
	ap := func(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }
	static := []config.Group{
		{Address: g1, Port: 5000, Members: []netip.AddrPort{ap(m2, 4754)}},
		{Address: g1, Port: 6000, Members: []netip.AddrPort{ap(m3, 4754)}},
		{Address: g3, Port: 7000, Members: []netip.AddrPort{ap(m3, 4754)}},
		{Address: g3, Members: []netip.AddrPort{ap(m2, 9999)}},
	}
	kept := config.Group{Address: g3, Members: []netip.AddrPort{ap(m2, 9999)}}
	tb.Report(m1, []igmp.Record{join(g1), join(g3), join(g4)})
	tb.Report(m2, []igmp.Record{join(g1), join(g3), join(g4)})
	tb.Report(m3, []igmp.Record{{Type: igmp.ChangeToInclude, Group: g4, Sources: []netip.Addr{other}}}) // not from us
	got := tb.Effective(static, 4754, self)
	want := []config.Group{
		// each port group of g1, without m2 twice
		{Address: g1, Port: 5000, Members: []netip.AddrPort{ap(m2, 4754), ap(m1, 4754)}},
		{Address: g1, Port: 6000, Members: []netip.AddrPort{ap(m3, 4754), ap(m1, 4754), ap(m2, 4754)}},
		// g3 has a group without a port: only that one, and m2 is there already (on another port)
		{Address: g3, Port: 7000, Members: []netip.AddrPort{ap(m3, 4754)}},
		{Address: g3, Members: []netip.AddrPort{ap(m2, 9999), ap(m1, 4754)}},
		// g4 is declared nowhere: a group of its own; m3 wants only another source
		{Address: g4, Members: []netip.AddrPort{ap(m1, 4754), ap(m2, 4754)}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Effective:\n%+v\nwant\n%+v", got, want)
	}
	if !reflect.DeepEqual(static[3], kept) {
		t.Fatalf("Effective changed the static groups it was given: %+v", static[3])
	}
	if got := (&Table{}).Effective(static, 4754, self); !reflect.DeepEqual(got, static) {
		t.Fatalf("no dynamic members: %+v", got)
	}
}

func TestKeep(t *testing.T) {
	tb, _ := newTable(Limits{})
	tb.Report(m1, []igmp.Record{join(g1), join(g2)})
	tb.Report(m2, []igmp.Record{join(g1)})
	changed(tb)
	ev := tb.Keep(func(m netip.Addr) bool { return m == m2 })
	if len(ev) != 2 || tb.Len() != 1 || !changed(tb) || tb.Counters().Leaves != 2 {
		t.Fatalf("Keep: %v, %d left", ev, tb.Len())
	}
}

// BenchmarkEffective: the effective groups with the table full (65,536 memberships: 16
// groups of 4,096 members), which the daemon computes before each Configure.
func BenchmarkEffective(b *testing.B) {
	tb, _ := newTable(Limits{})
	for i := range 4096 {
		m := netip.AddrFrom4([4]byte{198, 18, byte(2 + i/250), byte(2 + i%250)})
		var recs []igmp.Record
		for g := range 16 {
			recs = append(recs, join(netip.AddrFrom4([4]byte{224, 1, 2, byte(g)})))
		}
		tb.Report(m, recs)
	}
	if tb.Len() != 65536 {
		b.Fatalf("%d memberships", tb.Len())
	}
	static := []config.Group{{Address: netip.MustParseAddr("224.1.2.0"), Port: 5000}}
	b.ResetTimer()
	for range b.N {
		tb.Effective(static, 4754, self)
	}
}

func TestRestore(t *testing.T) {
	tb, c := newTable(Limits{})
	tb.Report(m1, []igmp.Record{join(g1), {Type: igmp.ModeIsInclude, Group: g2, Sources: []netip.Addr{self}}})
	c.advance(20 * time.Second)
	tb.Report(m2, []igmp.Record{join(g1)})
	kept := tb.Entries()
	c.advance(5 * time.Second)
	again := New(Limits{}, c.now)
	if n := again.Restore(kept, func(m netip.Addr) bool { return true }); n != 3 {
		t.Fatalf("restored %d, want 3", n)
	}
	if !reflect.DeepEqual(again.Entries(), kept) || again.Counters() != (Counters{}) || !changed(again) {
		t.Fatalf("restored %+v, counters %+v", again.Entries(), again.Counters())
	}
	c.advance(6 * time.Second) // m1's are 31 s old now
	third := New(Limits{}, c.now)
	if n := third.Restore(kept, func(m netip.Addr) bool { return m != m2 }); n != 0 {
		t.Fatalf("restored %d: expired ones, or ones keep refuses", n)
	}
}

// BenchmarkExpireFullTable: one look for expiries in a full table (4096 members of 16
// groups each: MaxMemberships), of which none is due.
func BenchmarkExpireFullTable(b *testing.B) {
	tb, _ := newTable(Limits{})
	for i := range 4096 {
		var recs []igmp.Record
		for g := range 16 {
			recs = append(recs, join(netip.AddrFrom4([4]byte{239, 1, 0, byte(g)})))
		}
		tb.Report(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), recs)
	}
	if n := tb.Len(); n != MaxMemberships {
		b.Fatalf("%d memberships, want %d", n, MaxMemberships)
	}
	for b.Loop() {
		tb.Expire()
	}
}
