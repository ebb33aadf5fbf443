package kernelpath

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nexthops knows, for each member address, the MAC its tunnel packets go to: its own, or
// its gateway's, as the route to it and the neighbour table say. The program sends with
// bpf_clone_redirect, which resolves nothing; a member whose next hop is not in the
// neighbour table yet (or whose route leaves by another interface) is not ready, and its
// group's packets go to user space, whose sending resolves it.
//
// Routes are looked up once per member and again after any route change; neighbours are
// read once and then followed by their netlink events. Not safe for concurrent use: the
// Sender's lock guards it.
type nexthops struct {
	nl      *netlink.Handle
	ifindex int

	via   map[netip.Addr]hop     // member -> how to reach it
	neigh map[netip.Addr][6]byte // next hop -> its MAC, while valid
}

// hop is how a member is reached: by next hop via ifindex, not by ifindex (elsewhere), or
// not at all (err: the route lookup's error, which a send would meet too).
type hop struct {
	via netip.Addr
	err error
}

func newNexthops(nl *netlink.Handle, ifindex int) (*nexthops, error) {
	n := &nexthops{nl: nl, ifindex: ifindex, via: make(map[netip.Addr]hop), neigh: make(map[netip.Addr][6]byte)}
	list, err := nl.NeighList(ifindex, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("neighbours of interface %d: %w", ifindex, err)
	}
	for _, e := range list {
		n.update(e)
	}
	return n, nil
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
	old, had := n.neigh[ip]
	if e.State&valid == 0 || len(e.HardwareAddr) != 6 {
		delete(n.neigh, ip)
		return had
	}
	mac := [6]byte(e.HardwareAddr)
	n.neigh[ip] = mac
	return !had || old != mac
}

// forget drops a neighbour that was deleted.
func (n *nexthops) forget(e netlink.Neigh) bool {
	ip, ok := netip.AddrFromSlice(e.IP.To4())
	if !ok || e.LinkIndex != n.ifindex {
		return false
	}
	_, had := n.neigh[ip]
	delete(n.neigh, ip)
	return had
}

// routesChanged forgets every member's route: they are looked up again when next needed.
func (n *nexthops) routesChanged() { clear(n.via) }

// reach says how member is reached: its next hop's MAC when that is known; not yet known (or
// by another interface: ok false, err nil); or not at all (err).
func (n *nexthops) reach(member netip.Addr) (mac [6]byte, ok bool, err error) {
	h, cached := n.via[member]
	if !cached {
		h = n.route(member)
		n.via[member] = h
	}
	if h.err != nil || !h.via.IsValid() {
		return mac, false, h.err
	}
	mac, ok = n.neigh[h.via]
	return mac, ok, nil
}

// route looks up the route to member (ip route get): its next hop by ifindex, or an invalid
// one by another interface, or the error that says there is none.
func (n *nexthops) route(member netip.Addr) hop {
	routes, err := n.nl.RouteGet(net.IP(member.AsSlice()))
	switch {
	case err != nil:
		return hop{err: err}
	case len(routes) == 0 || routes[0].LinkIndex != n.ifindex:
		return hop{}
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw.To4()); ok {
		return hop{via: gw}
	}
	return hop{via: member}
}
