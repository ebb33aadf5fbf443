package membership

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mctun/config"
	"mctun/igmp"
)

// Defaults for Limits.
const (
	// Interval is how often a member reports its groups.
	Interval = 10 * time.Second
	// Missed is how many intervals without a report a member is kept: 30 s.
	Missed = 3
	// MaxGroupsPerMember: a member host reporting more is refused the rest. Linux keeps an
	// interface to igmp_max_memberships per socket (mctun raises it to 256), and one
	// thousand groups per host is far beyond any application we know of, yet a member's whole
	// state is then still a few kilobytes and six report packets.
	MaxGroupsPerMember = 1024
	// MaxMembersPerGroup: the fan-out of one group, as large as the static configs mctun is
	// measured with.
	MaxMembersPerGroup = 4096
	// MaxMemberships bounds the memberships in the table, whatever the reports claim.
	MaxMemberships = 65536
	// MaxTableSources bounds the sources in the filters of all memberships together (3 MiB
	// of addresses): each membership may hold MaxSources, and MaxMemberships of them that many
	// took 527 MiB of heap. Most memberships hold none (a join of any source) or a few (an
	// SSM receiver's), and this is still 2 for each membership of a full table. With both
	// bounds the table at its limits takes at most about 40 MiB (measured with Go 1.26: 65,536
	// members of one group each, 2 sources each, 39 MiB; 4096 members of 16 groups, 18 MiB).
	MaxTableSources = 131072
)

// Limits bound the table. The zero value of a field means its default.
type Limits struct {
	Interval           time.Duration
	Missed             int
	MaxGroupsPerMember int
	MaxMembersPerGroup int
	MaxMemberships     int
	MaxSources         int // in one membership's filter; default igmp.MaxSources
	MaxTableSources    int // in all memberships' filters together
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.Interval <= 0 {
		l.Interval = Interval
	}
	def(&l.Missed, Missed)
	def(&l.MaxGroupsPerMember, MaxGroupsPerMember)
	def(&l.MaxMembersPerGroup, MaxMembersPerGroup)
	def(&l.MaxMemberships, MaxMemberships)
	def(&l.MaxSources, igmp.MaxSources)
	def(&l.MaxTableSources, MaxTableSources)
	return l
}

// Hold is how long a membership lasts after the member's last report of it.
func (l Limits) Hold() time.Duration {
	l = l.withDefaults()
	return time.Duration(l.Missed) * l.Interval
}

// Entry is one member's membership of one group.
type Entry struct {
	Member    netip.Addr
	Group     netip.Addr
	Mode      igmp.Mode
	Sources   []netip.Addr // sorted; the filter's
	Joined    time.Time
	Refreshed time.Time // the last report that named the group
	Expires   time.Time
}

// Wants reports whether the member wants the group's packets from source src.
func (e *Entry) Wants(src netip.Addr) bool {
	return igmp.Membership{Mode: e.Mode, Sources: e.Sources}.Wants(src)
}

// Event is a change of the table worth a line in the log.
type Event struct {
	Kind   EventKind
	Member netip.Addr
	Group  netip.Addr
}

// EventKind says what happened to a membership.
type EventKind uint8

const (
	Joined EventKind = iota
	Left
	Expired
	FilterChanged
	OverLimit // a join refused: a limit was reached
)

func (k EventKind) String() string {
	return [...]string{"joined", "left", "expired", "filter changed", "refused over a limit"}[k]
}

// Counters count what the table did since it was made.
type Counters struct {
	Joins     uint64 `json:"joins"`
	Leaves    uint64 `json:"leaves"`
	Expiries  uint64 `json:"expiries"`
	OverLimit uint64 `json:"refused_over_limit"` // group records refused by a limit
}

// Table is the dynamic members of one source. It is safe for concurrent use.
type Table struct {
	lim Limits
	now func() time.Time

	mu      sync.Mutex
	members map[netip.Addr]map[netip.Addr]*Entry // member -> group -> entry
	count   map[netip.Addr]int                   // group -> members
	total   int
	sources int // in all filters

	joins, leaves, expiries, overLimit atomic.Uint64
	changed                            chan struct{}
}

// New returns an empty table with the given limits, reading the time from now.
func New(lim Limits, now func() time.Time) *Table {
	return &Table{lim: lim.withDefaults(), now: now, members: map[netip.Addr]map[netip.Addr]*Entry{},
		count: map[netip.Addr]int{}, changed: make(chan struct{}, 1)}
}

// Changed is signalled (without blocking: several changes may be signalled once) whenever
// what is sent where changes: a join, a leave, an expiry, a changed filter.
func (t *Table) Changed() <-chan struct{} { return t.changed }

func (t *Table) signal() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Counters returns the table's counters.
func (t *Table) Counters() Counters {
	return Counters{Joins: t.joins.Load(), Leaves: t.leaves.Load(), Expiries: t.expiries.Load(), OverLimit: t.overLimit.Load()}
}

// Report applies a report's records from member, in order, and returns the events. Per
// record, the member's state for the group becomes (RFC 3376 section 6.4, for one host):
//
//	MODE_IS_INCLUDE(S), CHANGE_TO_INCLUDE(S)   INCLUDE(S)
//	MODE_IS_EXCLUDE(S), CHANGE_TO_EXCLUDE(S)   EXCLUDE(S)
//	ALLOW(S)    INCLUDE(A) -> INCLUDE(A+S)     EXCLUDE(X) -> EXCLUDE(X-S)
//	BLOCK(S)    INCLUDE(A) -> INCLUDE(A-S)     EXCLUDE(X) -> EXCLUDE(X+S)
//
// and INCLUDE() is no membership: a leave. A membership a record keeps is refreshed: it
// expires Hold after the report. A new membership over a limit, a filter of more than
// MaxSources sources, or one that would take the table's filters over MaxTableSources, is
// refused and counted.
func (t *Table) Report(member netip.Addr, recs []igmp.Record) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var events []Event
	changed := false
	for _, r := range recs {
		groups := t.members[member]
		cur := groups[r.Group] // nil: INCLUDE()
		mode, srcs := next(cur, r)
		if mode == igmp.Include && len(srcs) == 0 {
			if cur != nil {
				events = append(events, t.remove(member, r.Group, Left))
				changed = true
			}
			continue
		}
		if len(srcs) > t.lim.MaxSources || !t.holds(cur, srcs) {
			t.overLimit.Add(1)
			events = append(events, Event{OverLimit, member, r.Group})
			continue
		}
		if cur == nil {
			if !t.admits(member, r.Group) {
				t.overLimit.Add(1)
				events = append(events, Event{OverLimit, member, r.Group})
				continue
			}
			cur = &Entry{Member: member, Group: r.Group, Mode: mode, Sources: srcs, Joined: now}
			t.insert(cur)
			t.joins.Add(1)
			events = append(events, Event{Joined, member, r.Group})
			changed = true
		} else if cur.Mode != mode || !slices.Equal(cur.Sources, srcs) {
			t.sources += len(srcs) - len(cur.Sources)
			cur.Mode, cur.Sources = mode, srcs
			events = append(events, Event{FilterChanged, member, r.Group})
			changed = true
		}
		cur.Refreshed, cur.Expires = now, now.Add(t.lim.Hold())
	}
	if changed {
		t.signal()
	}
	return events
}

// next is the state a record leaves a membership in (see Report).
func next(cur *Entry, r igmp.Record) (igmp.Mode, []netip.Addr) {
	curMode, cur_ := igmp.Include, []netip.Addr(nil)
	if cur != nil {
		curMode, cur_ = cur.Mode, cur.Sources
	}
	set := sorted(r.Sources)
	switch r.Type {
	case igmp.ModeIsInclude, igmp.ChangeToInclude:
		return igmp.Include, set
	case igmp.ModeIsExclude, igmp.ChangeToExclude:
		return igmp.Exclude, set
	case igmp.AllowNew:
		if curMode == igmp.Include {
			return igmp.Include, union(cur_, set)
		}
		return igmp.Exclude, minus(cur_, set)
	case igmp.BlockOld:
		if curMode == igmp.Include {
			return igmp.Include, minus(cur_, set)
		}
		return igmp.Exclude, union(cur_, set)
	}
	return curMode, cur_
}

func sorted(s []netip.Addr) []netip.Addr {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.SortFunc(s, netip.Addr.Compare)
	return fit(slices.Compact(s))
}

// fit returns s in an array of its own length: a filter kept in the table costs the sources
// it counts (MaxTableSources), not those of the record it came from, duplicates and all.
func fit(s []netip.Addr) []netip.Addr {
	if len(s) == 0 {
		return nil
	}
	if cap(s) > len(s) {
		return slices.Clone(s)
	}
	return s
}

func union(a, b []netip.Addr) []netip.Addr { return sorted(append(slices.Clone(a), b...)) }

func minus(a, b []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, x := range a {
		if _, found := slices.BinarySearchFunc(b, x, netip.Addr.Compare); !found {
			out = append(out, x)
		}
	}
	return fit(out)
}

// admits reports whether a new membership of member in group stays within the limits; the
// caller holds t.mu.
func (t *Table) admits(member, group netip.Addr) bool {
	return len(t.members[member]) < t.lim.MaxGroupsPerMember && t.count[group] < t.lim.MaxMembersPerGroup &&
		t.total < t.lim.MaxMemberships
}

// holds reports whether the table's filters stay within MaxTableSources with cur's (nil: a
// new membership) replaced by srcs; the caller holds t.mu.
func (t *Table) holds(cur *Entry, srcs []netip.Addr) bool {
	n := t.sources + len(srcs)
	if cur != nil {
		n -= len(cur.Sources)
	}
	return n <= t.lim.MaxTableSources
}

// insert adds a new membership that admits and holds let in; the caller holds t.mu.
func (t *Table) insert(e *Entry) {
	groups := t.members[e.Member]
	if groups == nil {
		groups = map[netip.Addr]*Entry{}
		t.members[e.Member] = groups
	}
	groups[e.Group] = e
	t.count[e.Group]++
	t.total++
	t.sources += len(e.Sources)
}

// remove deletes a membership, counts it as kind (Left or Expired) and returns its event;
// the caller holds t.mu.
func (t *Table) remove(member, group netip.Addr, kind EventKind) Event {
	groups := t.members[member]
	t.sources -= len(groups[group].Sources)
	delete(groups, group)
	if len(groups) == 0 {
		delete(t.members, member)
	}
	if t.count[group]--; t.count[group] <= 0 {
		delete(t.count, group)
	}
	t.total--
	if kind == Expired {
		t.expiries.Add(1)
	} else {
		t.leaves.Add(1)
	}
	return Event{kind, member, group}
}

// Expire removes the memberships whose member missed Missed intervals, as of now, and
// returns the events, and when the first of the memberships left expires (zero when none is
// left). Nothing makes a membership expire sooner than that but a new one: a report adds or
// refreshes a membership a whole Hold after now, later than every membership already there,
// and Restore comes before the first Expire. So a caller that calls Expire again at next, or
// at the first change after it returned zero, misses no expiry.
func (t *Table) Expire() (events []Event, next time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for m, groups := range t.members {
		for g, e := range groups {
			switch {
			case !now.Before(e.Expires):
				events = append(events, t.remove(m, g, Expired))
			case next.IsZero() || e.Expires.Before(next):
				next = e.Expires
			}
		}
	}
	if len(events) > 0 {
		t.signal()
	}
	return events, next
}

// Keep removes every member for which keep is false (after a reload narrowed join_from),
// counting them as leaves, and returns the events.
func (t *Table) Keep(keep func(member netip.Addr) bool) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	var events []Event
	for m, groups := range t.members {
		if keep(m) {
			continue
		}
		for g := range groups {
			events = append(events, t.remove(m, g, Left))
		}
	}
	if len(events) > 0 {
		t.signal()
	}
	return events
}

// Restore puts back memberships a previous run of the source kept (see Entries), those that
// have not expired yet and for which keep is true, within the limits (MaxTableSources too).
// They are not counted as joins: the members joined before. It returns how many it restored.
func (t *Table) Restore(entries []Entry, keep func(member netip.Addr) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	n := 0
	for _, e := range entries {
		if !now.Before(e.Expires) || !keep(e.Member) || !e.Group.IsMulticast() || t.members[e.Member][e.Group] != nil ||
			!t.admits(e.Member, e.Group) {
			continue
		}
		if e.Sources = sorted(e.Sources); len(e.Sources) > t.lim.MaxSources || !t.holds(nil, e.Sources) {
			continue
		}
		t.insert(&e)
		n++
	}
	if n > 0 {
		t.signal()
	}
	return n
}

// Entries returns a copy of every membership, by group, then member.
func (t *Table) Entries() []Entry {
	t.mu.Lock()
	out := make([]Entry, 0, t.total)
	for _, groups := range t.members {
		for _, e := range groups {
			out = append(out, *e)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int {
		if c := a.Group.Compare(b.Group); c != 0 {
			return c
		}
		return a.Member.Compare(b.Member)
	})
	return out
}

// Len is the number of memberships.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// Effective returns the groups to hand the sender side: the config's static groups, in
// their order, with the dynamic members that want packets from self (this source's address,
// as members know it) added, each on tunnelPort. A dynamic member of an address joins the
// [[source.group]] of that address without a port if there is one (it takes every packet
// to the address), else each group of the address (so a declared port still filters);
// with none declared, it is in a group of its own for the address, without a port, after
// the static ones. A member listed in a group already, on any port, is not added again: it
// gets each packet once.
func (t *Table) Effective(static []config.Group, tunnelPort uint16, self netip.Addr) []config.Group {
	// The members of each group that want self, as numbers, so that sorting them (for an
	// order that does not change from one call to the next) is cheap: at the table's
	// limit this runs in tens of milliseconds, before each Configure.
	t.mu.Lock()
	byGroup := make(map[netip.Addr][]uint32, len(t.count))
	for m, groups := range t.members {
		a := m.As4()
		n := binary.BigEndian.Uint32(a[:])
		for g, e := range groups {
			if e.Wants(self) {
				byGroup[g] = append(byGroup[g], n)
			}
		}
	}
	t.mu.Unlock()
	addrs := make([]netip.Addr, 0, len(byGroup))
	for g := range byGroup {
		addrs = append(addrs, g)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)

	out := slices.Clone(static)
	byAddr := map[netip.Addr][]int{}
	for i, g := range static {
		byAddr[g.Address] = append(byAddr[g.Address], i)
	}
	for _, g := range addrs {
		nums := byGroup[g]
		slices.Sort(nums)
		dyn := make([]netip.AddrPort, len(nums))
		for i, n := range nums {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], n)
			dyn[i] = netip.AddrPortFrom(netip.AddrFrom4(a), tunnelPort)
		}
		targets := placement(static, byAddr[g])
		if len(targets) == 0 {
			out = append(out, config.Group{Address: g, Members: dyn})
			continue
		}
		for _, i := range targets {
			listed := make(map[netip.Addr]bool, len(out[i].Members))
			for _, m := range out[i].Members {
				listed[m.Addr()] = true
			}
			members := slices.Clip(out[i].Members)
			for _, m := range dyn {
				if !listed[m.Addr()] {
					members = append(members, m)
				}
			}
			out[i].Members = members
		}
	}
	return out
}

// Placement returns the indices in static of the groups a dynamic member of addr joins (see
// Effective): the one of addr without a port if there is one, else every one of addr; none
// when no group has that address.
func Placement(static []config.Group, addr netip.Addr) []int {
	var of []int
	for i, g := range static {
		if g.Address == addr {
			of = append(of, i)
		}
	}
	return placement(static, of)
}

func placement(static []config.Group, of []int) []int {
	for _, i := range of {
		if static[i].Port == 0 {
			return []int{i}
		}
	}
	return of
}
