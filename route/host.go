package route

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Multicast is the IPv4 multicast range, 224.0.0.0/4.
var Multicast = netip.MustParsePrefix("224.0.0.0/4")

// Protocol marks the routes mctun installs (ip route show proto 147 lists them).
const Protocol = 147

// TUNAddr is the address mctun gives its TUN. With reverse-path filtering on, the kernel drops
// every packet that arrives on an interface without an IPv4 address, whatever the route to its
// source; a link-local /32 satisfies that check and routes nothing anywhere.
var TUNAddr = netip.MustParsePrefix("169.254.47.54/32")

// Spec is a route in a form the journal can store.
type Spec struct {
	Dst      netip.Prefix `json:"dst"`
	Dev      string       `json:"dev"`
	Gw       netip.Addr   `json:"gw,omitzero"`
	Src      netip.Addr   `json:"src,omitzero"`
	Scope    uint8        `json:"scope"`
	Protocol int          `json:"protocol"`
	Metric   int          `json:"metric"`
	Table    int          `json:"table"`
	Type     int          `json:"type"`
}

func (s Spec) String() string {
	out := s.Dst.String()
	if s.Gw.IsValid() {
		out += " via " + s.Gw.String()
	}
	out += " dev " + s.Dev
	if s.Src.IsValid() {
		out += " src " + s.Src.String()
	}
	if s.Metric != 0 {
		out += " metric " + strconv.Itoa(s.Metric)
	}
	return out
}

// Host applies mctun's kernel changes in one network namespace and journals them.
type Host struct {
	nl      *netlink.Handle
	journal *Journal
	// SysctlRoot is where sysctls are read and written; /proc/sys acts on the network
	// namespace of the process that opens it.
	SysctlRoot string
}

// NewHost acts through nl and records into j.
func NewHost(nl *netlink.Handle, j *Journal) *Host {
	return &Host{nl: nl, journal: j, SysctlRoot: "/proc/sys"}
}

// CreatedLink records that the caller created link name, so that Undo deletes it if it is
// still there. Recorded after the fact, so that a failed create (the name was taken) never
// makes Undo delete someone else's link; a non-persistent TUN created but not yet recorded
// dies with its process anyway.
func (h *Host) CreatedLink(name string) error {
	return h.journal.record(Change{Op: "link", Dev: name})
}

// link is the link named name, or an error that names it.
func (h *Host) link(name string) (netlink.Link, error) {
	link, err := h.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("host: %s: %w", name, err)
	}
	return link, nil
}

// ConfigureTUN readies a TUN that mctun created for receiving:
//
//	ip link set NAME mtu MTU up
//	ip addr add 169.254.47.54/32 dev NAME
//	sysctl -w net.ipv4.conf.NAME.rp_filter=0 (or 2: see below)
//	sysctl -w net.ipv6.conf.NAME.disable_ipv6=1
//
// The kernel filters reverse paths with max(conf.all.rp_filter, conf.NAME.rp_filter), so a
// per-link 0 does nothing once all is 1 (strict, where the route back to a source never points
// into the TUN). The TUN gets 0 where all is 0 and 2 (loose: the source need only be routable)
// otherwise, plus the address that a loose check requires. IPv6 is off (upWithoutIPv6). All
// of this belongs to the link and goes with it, so none of it is journaled.
func (h *Host) ConfigureTUN(name string, mtu int) error {
	link, err := h.link(name)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("host: set %s mtu %d: %w", name, mtu, err)
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(TUNAddr), Scope: unix.RT_SCOPE_LINK}
	if err := h.nl.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("host: add address %v to %s: %w", TUNAddr, name, err)
	}
	all, err := h.ReadSysctl("net/ipv4/conf/all/rp_filter")
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	rpf := "2"
	if all == "0" {
		rpf = "0"
	}
	if err := h.writeSysctl("net/ipv4/conf/"+name+"/rp_filter", rpf); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	return h.upWithoutIPv6(link)
}

// ConfigureHandoff readies the kernel path's hand-off, a TUN that mctun created and that only
// the program's copies enter:
//
//	ip link set NAME txqueuelen QUEUE up
//	sysctl -w net.ipv6.conf.NAME.disable_ipv6=1
//
// with no address and no route, and returns its ifindex. Like ConfigureTUN's, the settings go
// with the link.
func (h *Host) ConfigureHandoff(name string, queue int) (int, error) {
	link, err := h.link(name)
	if err != nil {
		return 0, err
	}
	if err := h.nl.LinkSetTxQLen(link, queue); err != nil {
		return 0, fmt.Errorf("host: set %s txqueuelen %d: %w", name, queue, err)
	}
	if err := h.upWithoutIPv6(link); err != nil {
		return 0, err
	}
	return link.Attrs().Index, nil
}

// upWithoutIPv6 turns IPv6 off on a link mctun created, so that the host sends it no router
// and listener solicitations, and sets it up.
func (h *Host) upWithoutIPv6(link netlink.Link) error {
	name := link.Attrs().Name
	if err := h.writeSysctl("net/ipv6/conf/"+name+"/disable_ipv6", "1"); err != nil &&
		!errors.Is(err, os.ErrNotExist) { // a kernel without IPv6
		return fmt.Errorf("host: %w", err)
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("host: set %s up: %w", name, err)
	}
	return nil
}

// SetMTU changes the MTU of a link mctun created (ip link set DEV mtu MTU); the link takes
// the setting with it, so it is not journaled.
func (h *Host) SetMTU(dev string, mtu int) error {
	link, err := h.link(dev)
	if err != nil {
		return err
	}
	if err := h.nl.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("host: set %s mtu %d: %w", dev, mtu, err)
	}
	return nil
}

// ReplaceRoute installs dst dev DEV (ip route replace DST dev DEV proto 147 [src SRC]), unless
// it is there already, and reports whether it did. A valid src is the source address the host
// gives what it sends by this route. A route of the same destination and metric that it
// replaces is journaled and put back by Undo, unless it is mctun's own on dev (with another
// src: the address changed), which the journal has already.
func (h *Host) ReplaceRoute(dst netip.Prefix, dev string, src netip.Addr) (added bool, err error) {
	link, err := h.nl.LinkByName(dev)
	if err != nil {
		return false, fmt.Errorf("host: route %v dev %s: %w", dst, dev, err)
	}
	spec := Spec{Dst: dst, Dev: dev, Src: src, Scope: unix.RT_SCOPE_LINK, Protocol: Protocol,
		Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNICAST}
	existing, err := h.routes(dst)
	if err != nil {
		return false, err
	}
	change := Change{Op: "route", Route: &spec}
	for _, r := range existing {
		if r.Metric == spec.Metric {
			if r.Dev == dev && r.Protocol == Protocol {
				if r.Src == src {
					return false, nil // ours already (or from an up that did not finish undoing)
				}
				continue
			}
			change.Displaced = &r
		}
	}
	if err := h.journal.record(change); err != nil {
		return false, err
	}
	if err := h.nl.RouteReplace(spec.toNetlink(link.Attrs().Index)); err != nil {
		return false, fmt.Errorf("host: ip route replace %v: %w", spec, err)
	}
	return true, nil
}

// LinkUp reports whether link dev is up (ip link set DEV up), as a route by it needs.
func (h *Host) LinkUp(dev string) (bool, error) {
	link, err := h.link(dev)
	if err != nil {
		return false, err
	}
	return link.Attrs().Flags&net.FlagUp != 0, nil
}

// PrimaryAddr is the first IPv4 address of link dev (ip -4 addr show dev DEV), or the zero
// Addr if it has none.
func (h *Host) PrimaryAddr(dev string) (netip.Addr, error) {
	link, err := h.link(dev)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := h.nl.AddrList(link, unix.AF_INET)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host: ip addr show %s: %w", dev, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			return ip, nil
		}
	}
	return netip.Addr{}, nil
}

// MulticastPath is how the host's multicast leaves: by Dev ("" when no route carries it),
// from Src, and whether by a route of its own to 224.0.0.0/4 on Dev (Own) rather than by a
// wider one, such as the default route.
type MulticastPath struct {
	Dev string
	Src netip.Addr
	Own bool
}

// Multicast says how the host's multicast leaves: by whatever route carries 224.0.0.1 (ip
// route get 224.0.0.1), and whether the main table has a route to 224.0.0.0/4 by the same
// interface (ip route show 224.0.0.0/4).
func (h *Host) Multicast() (MulticastPath, error) {
	routes, err := h.nl.RouteGet(net.IPv4(224, 0, 0, 1))
	if errors.Is(err, unix.ENETUNREACH) || (err == nil && len(routes) == 0) {
		return MulticastPath{}, nil
	}
	if err != nil {
		return MulticastPath{}, fmt.Errorf("host: ip route get 224.0.0.1: %w", err)
	}
	link, err := h.nl.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return MulticastPath{}, fmt.Errorf("host: ip route get 224.0.0.1: %w", err)
	}
	p := MulticastPath{Dev: link.Attrs().Name}
	p.Src, _ = netip.AddrFromSlice(routes[0].Src.To4())
	own, err := h.routes(Multicast)
	if err != nil {
		return MulticastPath{}, err
	}
	p.Own = slices.ContainsFunc(own, func(r Spec) bool { return r.Dev == p.Dev })
	return p, nil
}

// routes lists the main table's routes to exactly dst.
func (h *Host) routes(dst netip.Prefix) ([]Spec, error) {
	filter := &netlink.Route{Dst: prefixToIPNet(dst), Table: unix.RT_TABLE_MAIN}
	rs, err := h.nl.RouteListFiltered(unix.AF_INET, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("host: ip route show %v: %w", dst, err)
	}
	specs := make([]Spec, 0, len(rs))
	for _, r := range rs {
		s := Spec{Dst: dst, Scope: uint8(r.Scope), Protocol: int(r.Protocol), Metric: r.Priority,
			Table: r.Table, Type: r.Type}
		s.Gw, _ = netip.AddrFromSlice(r.Gw.To4())
		s.Src, _ = netip.AddrFromSlice(r.Src.To4())
		if link, err := h.nl.LinkByIndex(r.LinkIndex); err == nil {
			s.Dev = link.Attrs().Name
		}
		specs = append(specs, s)
	}
	return specs, nil
}

func (s Spec) toNetlink(linkIndex int) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: linkIndex,
		Dst:       prefixToIPNet(s.Dst),
		Scope:     netlink.Scope(s.Scope),
		Protocol:  netlink.RouteProtocol(s.Protocol),
		Priority:  s.Metric,
		Table:     s.Table,
		Type:      s.Type,
	}
	if s.Gw.IsValid() {
		r.Gw = s.Gw.AsSlice()
	}
	if s.Src.IsValid() {
		r.Src = s.Src.AsSlice()
	}
	return r
}

// RaiseSysctl sets key to at least min (sysctl -w), journaling the old value.
func (h *Host) RaiseSysctl(key string, min int) error {
	cur, err := h.ReadSysctl(key)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	if n, err := strconv.Atoi(cur); err == nil && n >= min {
		return nil
	}
	return h.setSysctl(key, cur, strconv.Itoa(min))
}

// SetSysctl sets key to val (sysctl -w), journaling the old value.
func (h *Host) SetSysctl(key, val string) error {
	cur, err := h.ReadSysctl(key)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	if cur == val {
		return nil
	}
	return h.setSysctl(key, cur, val)
}

func (h *Host) setSysctl(key, old, val string) error {
	if err := h.journal.record(Change{Op: "sysctl", Key: key, Old: old, New: val}); err != nil {
		return err
	}
	if err := h.writeSysctl(key, val); err != nil {
		return fmt.Errorf("host: %w", err)
	}
	return nil
}

// ReadSysctl reads key, given as a path under /proc/sys (net/ipv4/igmp_max_memberships).
func (h *Host) ReadSysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join(h.SysctlRoot, key))
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", sysctlName(key), unwrapPath(err))
	}
	return strings.TrimSpace(string(b)), nil
}

func (h *Host) writeSysctl(key, val string) error {
	if err := os.WriteFile(filepath.Join(h.SysctlRoot, key), []byte(val), 0o644); err != nil {
		return fmt.Errorf("sysctl -w %s=%s: %w", sysctlName(key), val, unwrapPath(err))
	}
	return nil
}

// Undo reverts every journaled change, newest first, and removes the journal once all are
// undone. It keeps going past a change it cannot undo and reports all failures together;
// those changes stay in the journal for the next attempt.
func (h *Host) Undo() error {
	_, err := h.UndoKeeping("")
	return err
}

// UndoKeeping is Undo after a crash, but for the TUN device tun that mctun created, if it is
// still there: the next instance takes it over (tun.Attach), so that the groups applications
// joined on it stay joined. It stays in the journal, to be deleted by the next Undo. It
// reports whether the device was kept.
func (h *Host) UndoKeeping(tun string) (kept bool, err error) {
	var errs []error
	for i := len(h.journal.Changes) - 1; i >= 0; i-- {
		c := h.journal.Changes[i]
		if tun != "" && c.Op == "link" && c.Dev == tun && !kept {
			if link, err := h.nl.LinkByName(tun); err == nil && link.Type() == "tuntap" {
				kept = true
				continue
			}
		}
		if err := h.undo(c); err != nil {
			errs = append(errs, err)
			continue
		}
		h.journal.Changes = append(h.journal.Changes[:i], h.journal.Changes[i+1:]...)
	}
	if len(h.journal.Changes) == 0 {
		errs = append(errs, h.journal.Remove())
	} else {
		errs = append(errs, h.journal.save())
	}
	return kept, errors.Join(errs...)
}

func (h *Host) undo(c Change) error {
	switch c.Op {
	case "link":
		link, err := h.nl.LinkByName(c.Dev)
		if err != nil || link.Type() != "tuntap" {
			return nil // gone with the process that held it, or not ours
		}
		if err := h.nl.LinkDel(link); err != nil {
			return fmt.Errorf("host: ip link del %s: %w", c.Dev, err)
		}
	case "route":
		if link, err := h.nl.LinkByName(c.Route.Dev); err == nil {
			err := h.nl.RouteDel(c.Route.toNetlink(link.Attrs().Index))
			if err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("host: ip route del %v: %w", c.Route, err)
			}
		}
		if d := c.Displaced; d != nil {
			link, err := h.nl.LinkByName(d.Dev)
			if err != nil {
				return nil // its interface is gone, and the route with it
			}
			if err := h.nl.RouteReplace(d.toNetlink(link.Attrs().Index)); err != nil {
				return fmt.Errorf("host: restore route %v: %w", d, err)
			}
		}
	case "sysctl":
		cur, err := h.ReadSysctl(c.Key)
		if err != nil || cur != c.New {
			return nil // gone, or changed by someone since: theirs now
		}
		if err := h.writeSysctl(c.Key, c.Old); err != nil {
			return fmt.Errorf("host: %w", err)
		}
	case "qdisc":
		link, err := h.nl.LinkByName(c.Dev)
		if err != nil {
			return nil // gone, and its qdiscs with it
		}
		if err := h.nl.QdiscDel(clsact(link.Attrs().Index)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("host: tc qdisc del dev %s clsact: %w", c.Dev, err)
		}
	case "filter":
		link, err := h.nl.LinkByName(c.Dev)
		if err != nil {
			return nil
		}
		f := bpfFilter(link.Attrs().Index, c.Hook, max(c.Handle, 1))
		if err := h.nl.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("host: tc filter del dev %s %s pref %d handle %d: %w", c.Dev, c.Hook, FilterPriority, f.Handle, err)
		}
	default:
		return fmt.Errorf("host: journal holds an unknown change %q", c.Op)
	}
	return nil
}

// FilterPriority is the priority of the filters mctun attaches (tc filter show lists it as
// pref 19779), apart from other tools' filters on the same clsact qdisc.
const FilterPriority = 19779

// AttachBPF attaches the BPF program fd, named name, to dev's ingress or egress (hook) with
// tc, for a kernel without tcx, as the filter of the given handle (from 1: mctun's filters on
// one hook run in its order):
//
//	tc qdisc add dev DEV clsact
//	tc filter add dev DEV HOOK pref 19779 handle HANDLE bpf direct-action fd FD name NAME
//
// A clsact qdisc that is there already (another tool's) is used and left alone; one it adds
// is journaled, and so is the filter, which Undo removes even after a crash.
func (h *Host) AttachBPF(dev, hook string, handle uint32, fd int, name string) error {
	link, err := h.link(dev)
	if err != nil {
		return err
	}
	qdiscs, err := h.nl.QdiscList(link)
	if err != nil {
		return fmt.Errorf("host: tc qdisc show dev %s: %w", dev, err)
	}
	if !slices.ContainsFunc(qdiscs, func(q netlink.Qdisc) bool { return q.Type() == "clsact" }) {
		if err := h.journal.record(Change{Op: "qdisc", Dev: dev}); err != nil {
			return err
		}
		if err := h.nl.QdiscAdd(clsact(link.Attrs().Index)); err != nil {
			return fmt.Errorf("host: tc qdisc add dev %s clsact: %w", dev, err)
		}
	}
	if err := h.journal.record(Change{Op: "filter", Dev: dev, Hook: hook, Handle: handle}); err != nil {
		return err
	}
	f := bpfFilter(link.Attrs().Index, hook, handle)
	f.Fd, f.Name, f.DirectAction = fd, name, true
	if err := h.nl.FilterReplace(f); err != nil {
		return fmt.Errorf("host: tc filter add dev %s %s bpf %s: %w", dev, hook, name, err)
	}
	return nil
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex,
		Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
}

// bpfFilter is mctun's filter of handle on ifindex's hook, as far as it names it.
func bpfFilter(ifindex int, hook string, handle uint32) *netlink.BpfFilter {
	parent := uint32(netlink.HANDLE_MIN_EGRESS)
	if hook == "ingress" {
		parent = netlink.HANDLE_MIN_INGRESS
	}
	return &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: parent,
		Handle: handle, Priority: FilterPriority, Protocol: unix.ETH_P_ALL}}
}

func sysctlName(key string) string { return strings.ReplaceAll(key, "/", ".") }

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
