package kernelpath

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nexthops knows, for each member address, the MAC its tunnel packets go to: its own, or
// its gateway's, as the routes and the neighbour table say. The program sends with
// bpf_clone_redirect, which resolves nothing; a member whose next hop is not in the
// neighbour table yet (or whose route leaves by another interface) is not ready, and its
// group's packets go to user space, whose sending resolves it.
//
// Routes are looked up in a copy of the main table, longest prefix first, as the kernel
// does where the rules are the default ones (ip rule: local, main, default); otherwise, or
// for a route with several next hops, the kernel is asked (ip route get), member by member.
// The copy is taken again after any route change. Neighbours are read once and then followed
// by their netlink events. Not safe for concurrent use: the Sender's lock guards it.
type nexthops struct {
	nl      *netlink.Handle
	ifindex int

	fib       []fibRoute          // the main table, longest prefix first; nil: ask the kernel
	broadcast map[[4]byte]bool    // the local table's broadcast addresses
	via       map[[4]byte]hop     // routes the kernel was asked for
	neigh     map[[4]byte][6]byte // next hop -> its MAC, while valid
}

// hop is how a member is reached: by next hop via ifindex (ok), by another interface (not
// ok, no err), or not at all (err: what a send would meet too).
type hop struct {
	via [4]byte
	ok  bool
	err syscall.Errno
}

// reach is how one member is reached, as nexthops.reach says.
type reach struct {
	mac   [6]byte
	known bool
	err   syscall.Errno
}

// fibRoute is a route of the main table, as far as a member's next hop needs it.
type fibRoute struct {
	dst     netip.Prefix
	gw      netip.Addr
	ifindex int
	metric  int
	typ     int
	ask     bool // several next hops: the kernel chooses
}

func newNexthops(nl *netlink.Handle, ifindex int) (*nexthops, error) {
	n := &nexthops{nl: nl, ifindex: ifindex, via: make(map[[4]byte]hop)}
	if err := n.load(); err != nil {
		return nil, err
	}
	n.routesChanged()
	return n, nil
}

// load reads the neighbour table afresh: at the start, and when its events were lost.
func (n *nexthops) load() error {
	list, err := n.nl.NeighList(n.ifindex, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("neighbours of interface %d: %w", n.ifindex, err)
	}
	n.neigh = make(map[[4]byte][6]byte, len(list))
	for _, e := range list {
		n.update(e)
	}
	return nil
}

// apply applies a neighbour event, and reports whether what the sender knows changed.
func (n *nexthops) apply(u netlink.NeighUpdate) bool {
	if u.Type == unix.RTM_DELNEIGH {
		return n.forget(u.Neigh)
	}
	return n.update(u.Neigh)
}

// valid are the neighbour states whose MAC can be used (ip neigh's REACHABLE, STALE, DELAY,
// PROBE, PERMANENT, NOARP).
const valid = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT | unix.NUD_NOARP

// update applies one neighbour entry, from the table or an event, and reports whether what
// the sender knows changed.
func (n *nexthops) update(e netlink.Neigh) bool {
	if e.LinkIndex != n.ifindex || e.Family != netlink.FAMILY_V4 {
		return false
	}
	ip, ok := netip.AddrFromSlice(e.IP.To4())
	if !ok {
		return false
	}
	k := ip.As4()
	old, had := n.neigh[k]
	if e.State&valid == 0 || len(e.HardwareAddr) != 6 {
		delete(n.neigh, k)
		return had
	}
	mac := [6]byte(e.HardwareAddr)
	n.neigh[k] = mac
	return !had || old != mac
}

// forget drops a neighbour that was deleted.
func (n *nexthops) forget(e netlink.Neigh) bool {
	ip, ok := netip.AddrFromSlice(e.IP.To4())
	if !ok || e.LinkIndex != n.ifindex {
		return false
	}
	_, had := n.neigh[ip.As4()]
	delete(n.neigh, ip.As4())
	return had
}

// routesChanged forgets every member's route, and takes the main table again.
func (n *nexthops) routesChanged() {
	clear(n.via)
	n.fib = n.loadFIB()
	n.broadcast = make(map[[4]byte]bool)
	local, err := n.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_LOCAL}, netlink.RT_FILTER_TABLE)
	if err == nil {
		for _, r := range local {
			if ip, ok := netip.AddrFromSlice(r.Dst.IP.To4()); ok && r.Type == unix.RTN_BROADCAST {
				n.broadcast[ip.As4()] = true
			}
		}
	}
}

// retry forgets the members that had no route by ifindex, to look them up again.
func (n *nexthops) retry() {
	for k, h := range n.via {
		if !h.ok {
			delete(n.via, k)
		}
	}
}

// loadFIB copies the main table, or returns nil when the rules are not the default ones.
func (n *nexthops) loadFIB() []fibRoute {
	rules, err := n.nl.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	for _, r := range rules {
		if r.Table != unix.RT_TABLE_LOCAL && r.Table != unix.RT_TABLE_MAIN && r.Table != unix.RT_TABLE_DEFAULT {
			return nil
		}
	}
	routes, err := n.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil
	}
	fib := make([]fibRoute, 0, len(routes))
	for _, r := range routes {
		f := fibRoute{dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), ifindex: r.LinkIndex, metric: r.Priority, typ: r.Type, ask: len(r.MultiPath) > 0}
		if r.Dst != nil {
			ip, ok := netip.AddrFromSlice(r.Dst.IP.To4())
			bits, _ := r.Dst.Mask.Size()
			if !ok {
				continue
			}
			f.dst = netip.PrefixFrom(ip, bits).Masked()
		}
		f.gw, _ = netip.AddrFromSlice(r.Gw.To4())
		fib = append(fib, f)
	}
	slices.SortStableFunc(fib, func(a, b fibRoute) int {
		return cmp.Or(cmp.Compare(b.dst.Bits(), a.dst.Bits()), cmp.Compare(a.metric, b.metric))
	})
	return fib
}

// reach says how member is reached: its next hop's MAC when that is known; not yet known (or
// by another interface: ok false, err 0); or not at all (err: what a send would meet).
// Routes the kernel was asked for are kept; the copy of the table answers at once.
func (n *nexthops) reach(member netip.Addr) (mac [6]byte, ok bool, err syscall.Errno) {
	h := n.hop(member)
	if h.err != 0 || !h.ok {
		return mac, false, h.err
	}
	mac, ok = n.neigh[h.via]
	return mac, ok, 0
}

// hop finds member's route: in the copy of the table, or from the kernel, once.
func (n *nexthops) hop(member netip.Addr) hop {
	if n.fib != nil {
		return n.route(member)
	}
	k := member.As4()
	h, cached := n.via[k]
	if !cached {
		h = n.ask(member)
		n.via[k] = h
	}
	return h
}

// use marks member's neighbour as in use, as the kernel's own sending does with every
// packet (ip neigh replace ADDRESS dev IF use): a neighbour in use stays in the table, and a
// stale one is checked with a probe. Sending with bpf_clone_redirect uses none, and the table
// drops an entry unused for gc_stale_time once it holds gc_thresh1 entries: the members
// behind it would go to user space until it is resolved again. Only a known neighbour is
// marked, and only if not in marked yet; it is added there.
func (n *nexthops) use(member netip.Addr, marked map[[4]byte]bool) {
	h := n.hop(member)
	if _, known := n.neigh[h.via]; !h.ok || !known || marked[h.via] {
		return
	}
	marked[h.via] = true
	// NeighSet asks with NLM_F_CREATE: an entry the table dropped meanwhile is made and
	// resolved again, as a send would. A refusal leaves the entry to the table, as before: at
	// worst, its members go to user space until it is resolved again.
	n.nl.NeighSet(&netlink.Neigh{LinkIndex: n.ifindex, Family: netlink.FAMILY_V4, IP: net.IP(h.via[:]), Flags: netlink.NTF_USE})
}

// route finds the route to member in the copy of the main table (reach's when there is one),
// asking the kernel where the copy cannot tell. A subnet's broadcast address is refused, as
// the user-space sender's socket refuses it.
func (n *nexthops) route(member netip.Addr) hop {
	if n.broadcast[member.As4()] {
		return hop{err: unix.EACCES}
	}
	for _, r := range n.fib {
		if !r.dst.Contains(member) {
			continue
		}
		switch {
		case r.ask:
			return n.ask(member)
		case r.typ == unix.RTN_UNREACHABLE:
			return hop{err: unix.EHOSTUNREACH}
		case r.typ == unix.RTN_PROHIBIT:
			return hop{err: unix.EACCES}
		case r.typ == unix.RTN_BLACKHOLE:
			return hop{err: unix.EINVAL}
		case r.typ != unix.RTN_UNICAST || r.ifindex != n.ifindex:
			return hop{}
		case r.gw.IsValid():
			return hop{via: r.gw.As4(), ok: true}
		}
		return hop{via: member.As4(), ok: true}
	}
	return hop{err: unix.ENETUNREACH}
}

// ask asks the kernel for the route to member (ip route get).
func (n *nexthops) ask(member netip.Addr) hop {
	routes, err := n.nl.RouteGet(net.IP(member.AsSlice()))
	switch {
	case err != nil:
		errno, _ := err.(syscall.Errno)
		if errno == 0 {
			errno = unix.ENETUNREACH
		}
		return hop{err: errno}
	case len(routes) == 0 || routes[0].LinkIndex != n.ifindex:
		return hop{}
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw.To4()); ok {
		return hop{via: gw.As4(), ok: true}
	}
	return hop{via: member.As4(), ok: true}
}
