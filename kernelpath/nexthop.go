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

	via   map[netip.Addr]netip.Addr // member -> next hop; invalid: not by ifindex
	neigh map[netip.Addr][6]byte    // next hop -> its MAC, while valid
}

func newNexthops(nl *netlink.Handle, ifindex int) (*nexthops, error) {
	n := &nexthops{nl: nl, ifindex: ifindex, via: make(map[netip.Addr]netip.Addr), neigh: make(map[netip.Addr][6]byte)}
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

// mac returns the MAC a member's tunnel packets go to, or false when it is not known.
func (n *nexthops) mac(member netip.Addr) ([6]byte, bool) {
	hop, ok := n.via[member]
	if !ok {
		hop = n.route(member)
		n.via[member] = hop
	}
	if !hop.IsValid() {
		return [6]byte{}, false
	}
	mac, ok := n.neigh[hop]
	return mac, ok
}

// route returns the next hop to member by ifindex (ip route get), or the invalid Addr when
// the route leaves by another interface, or there is none.
func (n *nexthops) route(member netip.Addr) netip.Addr {
	routes, err := n.nl.RouteGet(net.IP(member.AsSlice()))
	if err != nil || len(routes) == 0 || routes[0].LinkIndex != n.ifindex {
		return netip.Addr{}
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw.To4()); ok {
		return gw
	}
	return member
}
