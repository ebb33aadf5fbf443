package kernelpath

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"mctun/config"
	"mctun/datapath"
	"mctun/internal/nlevents"
)

// Capacities, as the programs declare them (bpf/sender.c). A group that finds no room is
// forwarded by user space for as long as it exists.
const (
	maxGroups       = 8192
	maxFanout       = 1 << 18
	maxMembers      = 1 << 17
	maxGroupMembers = 1 << 16
)

// grace is how long a fan-out run, group slot or member counter that was given up stays
// unused, so that no program that read the route before it changed still reads it.
const grace = time.Second

// Sender is the sender side in the kernel: the egress programs on the source interface (and
// on the TUN of a host that is a member too), and what keeps their maps: the groups and
// members of Configure, and the next hops their tunnel packets go to.
//
// Each map has one owner on each side. The programs update group_seq (with user space),
// group_stats, member_stats and sender_paths; Sender writes config, groups and fanout, and
// reads the counters when asked.
type Sender struct {
	objs     senderObjects
	seq      *mapped // group_seq, shared with the user-space sender
	gstats   *mapped // group_stats
	links    []link.Link
	attached []Attachment
	hooks    Hooks  // what Attach attaches with
	tun      string // and to, besides the source interface
	handoff  *Handoff
	log      *slog.Logger
	nl       *netlink.Handle
	dump     dumper

	done    chan struct{}
	stopped sync.WaitGroup

	mu       sync.Mutex // guards what follows
	conf     senderSenderConfig
	iface    string
	groups   []config.Group
	routes   map[groupKey]*route
	refused  map[groupKey]bool // found no room: user space forwards them while they exist
	slots    *regions          // of group_seq and group_stats
	cnts     *regions          // of member_stats
	cntsUsed uint32            // member_stats from here on were never used

	reached      []reach             // update's scratch
	sent, failed []senderFanoutEntry // update's scratch
	keys         []uint32
	fan          *regions // of fanout
	hops         *nexthops
	lastUse      time.Time // when neighbours were last marked in use
	report       MemberReport
}

type groupKey struct {
	addr netip.Addr
	port uint16
}

// route is one group in the kernel, as published in groups.
type route struct {
	slot        uint32
	first       uint32           // its members' run of fanout...
	published   uint32           // ...of this many entries; 0 while not ready
	members     []netip.AddrPort // as configured
	counters    []uint32         // the members' counters' indexes in member_stats, or noCounter
	hops        uint64           // a fingerprint of how its members were reached when published
	used        uint64           // its packets when its members' neighbours were last marked in use
	ready       bool
	set         bool                     // groups holds it
	unreachable map[netip.AddrPort]error // members with no route, and why
}

// SenderOptions are the Sender's edges on the host.
type SenderOptions struct {
	Interface string     // the source interface
	Addr      netip.Addr // its address: the tunnel packets' source
	Port      uint16     // the user-space sender's UDP port: the tunnel packets' source port
	TUN       string     // on a host that is a member too, its TUN; else ""
	Key       uint32
	Groups    []config.Group // as datapath.Sender.Configure takes them
	Hooks     Hooks
	Host      Host // readies the hand-off
	Log       *slog.Logger
}

// MemberReport learns that sends to a member of a group fail with err, because no route
// leads to it, or with a nil err that they no longer do (datapath.Sender.MemberFailing).
type MemberReport func(addr netip.Addr, port uint16, member netip.AddrPort, err error)

// LoadSender loads the sender side's programs and maps into the kernel, attaching nothing:
// its error says why the kernel, or the source interface iface, does not take them.
func LoadSender(iface string) (*Sender, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	if l, err := netlink.LinkByName(iface); err != nil {
		return nil, fmt.Errorf("the source interface %s: %w", iface, err)
	} else if a := l.Attrs(); a.EncapType != "ether" || len(a.HardwareAddr) != 6 {
		return nil, fmt.Errorf("the source interface %s is not an Ethernet interface (%s)", iface, a.EncapType)
	}
	s := &Sender{
		routes:  make(map[groupKey]*route),
		refused: make(map[groupKey]bool),
		slots:   newRegions(maxGroups, grace),
		cnts:    newRegions(maxMembers, grace),
		fan:     newRegions(maxFanout, grace),
		done:    make(chan struct{}),
	}
	if err := loadSenderObjects(&s.objs, nil); err != nil {
		return nil, loadError("sender", err)
	}
	var err error
	for _, m := range []struct {
		to **mapped
		m  *ebpf.Map
	}{{&s.seq, s.objs.GroupSeq}, {&s.gstats, s.objs.GroupStats}} {
		if *m.to, err = mapArray(m.m); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Start fills the maps and follows the host's routes and neighbours, attaching nothing yet:
// the groups' sequence counters are ready for user space to share. On error the caller calls
// Close.
func (s *Sender) Start(o SenderOptions) error {
	s.log = o.Log
	nl, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("kernel path: netlink: %w", err)
	}
	s.nl = nl
	l, err := nl.LinkByName(o.Interface)
	if err != nil {
		return fmt.Errorf("kernel path: %s: %w", o.Interface, err)
	}
	a := l.Attrs()
	if len(a.HardwareAddr) != 6 {
		return fmt.Errorf("kernel path: %s is not an Ethernet interface", o.Interface)
	}
	if !o.Addr.Is4() { // the tunnel packets' outer source
		return fmt.Errorf("kernel path: %s has no IPv4 address to send the tunnel packets from", o.Interface)
	}
	// Followed from before the tables are read, so that no change falls between.
	neighs, routes, err := s.subscribe()
	if err != nil {
		return err
	}
	if s.hops, err = newNexthops(nl, a.Index); err != nil {
		return fmt.Errorf("kernel path: %w", err)
	}
	if s.handoff, err = openHandoff(o.Host, s.handoffDrops); err != nil {
		return err
	}
	s.mu.Lock()
	s.iface = o.Interface
	s.conf = senderSenderConfig{Key: o.Key, Saddr: be32(o.Addr), Sport: be16(o.Port), Mtu: uint16(min(a.MTU, 0xffff)),
		Ifindex: uint32(a.Index), Smac: [6]byte(a.HardwareAddr), Pass: uint32(passCopies()), Handoff: s.handoff.index}
	err = s.objs.Config.Put(uint32(0), &s.conf)
	s.groups = o.Groups
	if err == nil {
		s.publish(time.Now())
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("kernel path: %w", err)
	}
	s.hooks, s.tun = o.Hooks, o.TUN
	s.follow(neighs, routes)
	return nil
}

// Handoff is where user space reads the packets the kernel leaves it (see Handoff), once
// Start has returned. The caller closes it before Close, to end its reader.
func (s *Sender) Handoff() *Handoff { return s.handoff }

// handoffDrops counts the copies for user space that the program could not send into the
// hand-off.
func (s *Sender) handoffDrops() uint64 {
	return percpuCount(s.objs.SenderPaths, uint32(senderSenderPathHANDOFF_DROPPED))
}

// Attach puts the programs on the source interface's egress and ingress (where a large group's
// packets come round for their next pass), and the TUN's egress: from then on the kernel
// forwards what it can, and hands user space the rest. Until then the host's multicast
// leaves the source interface natively, not forwarded (the window of up), and on a host that
// is a member too, user space forwards what leaves by the TUN: the caller starts the
// user-space sender first, so that it has forwarded what it read before the kernel's first
// packet takes the next number.
func (s *Sender) Attach() error {
	s.mu.Lock()
	iface, ifindex := s.iface, int(s.conf.Ifindex)
	s.mu.Unlock()
	if err := s.attach(ifindex, iface, "ingress", secondFilter, s.objs.MctunFanOn); err != nil {
		return err
	}
	if err := s.attach(ifindex, iface, "egress", firstFilter, s.objs.MctunEgress); err != nil {
		return err
	}
	if s.tun == "" {
		return nil
	}
	tl, err := s.nl.LinkByName(s.tun)
	if err != nil {
		return fmt.Errorf("kernel path: %s: %w", s.tun, err)
	}
	return s.attach(tl.Attrs().Index, s.tun, "egress", firstFilter, s.objs.MctunTunEgress)
}

// attach puts prog first on ifindex's hook (with tc, as filter). A tcx link is not pinned: it
// goes when mctun goes, however it goes.
func (s *Sender) attach(ifindex int, name, hook string, filter uint32, prog *ebpf.Program) error {
	l, a, err := s.hooks.attach(prog, ifindex, name, hook, filter)
	if err != nil {
		return err
	}
	if l != nil {
		s.links = append(s.links, l)
	}
	s.attached = append(s.attached, a)
	return nil
}

// Attached lists the programs attached, and where.
func (s *Sender) Attached() []Attachment { return slices.Clone(s.attached) }

// subscribe opens the neighbour and route events that follow reads.
func (s *Sender) subscribe() (*nlevents.Sub[netlink.NeighUpdate], *nlevents.Sub[netlink.RouteUpdate], error) {
	neighs, routes := nlevents.Neighs(who, s.done, s.log), nlevents.Routes(who, s.done, s.log)
	if err := neighs.Start(); err != nil {
		return nil, nil, err
	}
	if err := routes.Start(); err != nil {
		return nil, nil, err
	}
	return neighs, routes, nil
}

// follow keeps the next hops current: neighbour and route events as they come, each burst of
// them published once, and every 2 s the interface's MTU, the runs given up, and the groups
// not ready yet. Events lost (nlevents.Sub) make it read the tables afresh.
func (s *Sender) follow(neighs *nlevents.Sub[netlink.NeighUpdate], routes *nlevents.Sub[netlink.RouteUpdate]) {
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			var burst []netlink.NeighUpdate
			routed := false
			select {
			case <-s.done:
				return
			case u, ok := <-neighs.C:
				if !ok {
					s.resync(neighs.Reopen(), false)
					continue
				}
				burst = append(burst, u)
			case _, ok := <-routes.C:
				if !ok {
					s.resync(false, routes.Reopen())
					continue
				}
				routed = true
			case now := <-tick.C:
				s.refresh(now, neighs.Retry(), routes.Retry())
				continue
			}
			// What has come meanwhile is published with it: a link going down, or many
			// members resolved at once, would otherwise publish every group once an event.
			for more := true; more && len(burst) < maxBurst; {
				select {
				case u, ok := <-neighs.C:
					if more = ok; ok {
						burst = append(burst, u)
					}
				case _, ok := <-routes.C:
					more = ok
					routed = routed || ok
				default:
					more = false
				}
			}
			s.mu.Lock()
			changed := routed
			if routed {
				s.hops.routesChanged()
			}
			for _, u := range burst {
				changed = s.hops.apply(u) || changed
			}
			if changed {
				s.publish(time.Now())
			}
			s.mu.Unlock()
		}
	}()
}

// maxBurst is the most neighbour events follow publishes at once.
const maxBurst = 4 * nlevents.Queue

// resync reads the neighbour table, or the routes, afresh, and publishes what changed.
func (s *Sender) resync(neighs, routes bool) {
	if !neighs && !routes {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reload(neighs, routes)
	s.publish(time.Now())
}

// reload reads the neighbour table, or the routes, afresh. The caller holds s.mu, and
// publishes.
func (s *Sender) reload(neighs, routes bool) {
	if neighs {
		if err := s.hops.load(); err != nil {
			s.log.Error("kernel path: cannot read the neighbour table", "err", err)
		}
	}
	if routes {
		s.hops.routesChanged()
	}
}

// SetAddr makes a the tunnel packets' outer source from the next packet on: the source
// interface's address changed (the daemon reads it again, as refresh reads the MTU).
func (s *Sender) SetAddr(a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("kernel path: %v is not an IPv4 address to send the tunnel packets from", a)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.conf.Saddr
	s.conf.Saddr = be32(a)
	if err := s.objs.Config.Put(uint32(0), &s.conf); err != nil {
		s.conf.Saddr = was
		return fmt.Errorf("kernel path: %w", err)
	}
	return nil
}

// refresh rereads the interface's MTU (and the tables whose subscriptions were opened again:
// reload) and publishes again: runs given up are reclaimed, and a group waiting for a route
// gets another look.
func (s *Sender) refresh(now time.Time, neighs, routes bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reload(neighs, routes)
	if l, err := s.nl.LinkByIndex(int(s.conf.Ifindex)); err == nil {
		if mtu := uint16(min(l.Attrs().MTU, 0xffff)); mtu != s.conf.Mtu {
			s.conf.Mtu = mtu
			s.objs.Config.Put(uint32(0), &s.conf)
		}
	}
	s.hops.retry()
	s.publish(now)
	if now.Sub(s.lastUse) >= useEvery(s.iface) {
		s.lastUse = now
		s.useHops()
	}
}

// useHops marks as in use the neighbours of the members of every group the kernel sent
// packets for since the last time (nexthops.use), each neighbour once.
func (s *Sender) useHops() {
	marked := make(map[[4]byte]bool)
	for _, r := range s.routes {
		n := s.gstats.word(r.slot, 0).Load()
		if !r.ready || n == r.used {
			continue
		}
		r.used = n
		for _, m := range r.members {
			s.hops.use(m.Addr(), marked)
		}
	}
}

// useEvery is how often refresh marks neighbours in use: three times in the interface's
// gc_stale_time, or every 20 s if that is less often. Refresh runs every 2 s, no faster.
func useEvery(iface string) time.Duration {
	every := 20 * time.Second
	if b, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv4/neigh", iface, "gc_stale_time")); err == nil {
		if sec, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			every = min(every, time.Duration(sec)*time.Second/3)
		}
	}
	return every
}

// Configure replaces the key and the groups, as datapath.Sender.Configure does; call it
// first, so that a new group's sequence number is the kernel's before user space takes one.
// Groups and members that stay keep their slots, counters and sequence numbers, and packets
// in flight are not disturbed: a group's new members are written beside the old ones and
// take over with one update of its route.
func (s *Sender) Configure(key uint32, groups []config.Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key != s.conf.Key {
		s.conf.Key = key
		if err := s.objs.Config.Put(uint32(0), &s.conf); err != nil {
			s.log.Error("kernel path: cannot change the key", "err", err)
		}
	}
	s.groups = groups
	s.publish(time.Now())
}

// Sequence returns the group's sequence counter, which the programs and the user-space
// sender share, or nil when the kernel does not forward the group. It stays valid while the
// group is configured.
func (s *Sender) Sequence(addr netip.Addr, port uint16) *atomic.Uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.routes[groupKey{addr, port}]
	if r == nil {
		return nil
	}
	return s.seq.uint32At(r.slot)
}

// publish brings the maps in line with s.groups and the next hops. The caller holds s.mu.
func (s *Sender) publish(now time.Time) {
	s.slots.reclaim(now)
	s.cnts.reclaim(now)
	s.fan.reclaim(now)
	seen := make(map[groupKey]bool, len(s.groups))
	for _, g := range s.groups {
		k := groupKey{g.Address, g.Port}
		seen[k] = true
		if s.refused[k] || s.routes[k] != nil {
			continue
		}
		slot, ok := s.slots.alloc(1, now)
		if !ok {
			s.refused[k] = true
			s.log.Warn("kernel path: no room for the group: user space forwards it, and the other groups of its address", "group", k, "groups", maxGroups)
			continue
		}
		s.seq.uint32At(slot).Store(0)
		for i := range 3 {
			s.gstats.word(slot, i).Store(0)
		}
		s.routes[k] = &route{slot: slot}
	}
	for k := range s.refused {
		if !seen[k] {
			delete(s.refused, k)
		}
	}
	// A group the kernel has no room for is not in its table, so a packet both it and another
	// group of its address take would find that other group alone there, and its own members
	// would miss it: the address's other groups go to user space too, which sends each packet
	// to every group that takes it.
	refusedAddrs := make(map[netip.Addr]bool, len(s.refused))
	for k := range s.refused {
		refusedAddrs[k.addr] = true
	}
	for _, g := range s.groups {
		k := groupKey{g.Address, g.Port}
		if r := s.routes[k]; r != nil {
			s.update(k, r, g.Members, refusedAddrs[k.addr], now)
		}
	}
	for k, r := range s.routes {
		if seen[k] {
			continue
		}
		if err := s.objs.Groups.Delete(k.key()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			s.log.Error("kernel path: cannot remove a group", "group", k, "err", err)
		}
		s.fan.release(r.first, r.published, now)
		s.slots.release(r.slot, 1, now)
		s.remember(k, r, nil, now)
		delete(s.routes, k)
	}
}

// update publishes one group's members: a new run of fanout when they or their next hops
// changed, or not ready when a next hop is not known, or when another group of its address
// is refused (beside). A member with no route at all is sent nothing and counted a send error
// per packet, as the user-space sender's sends to it fail; it does not keep its group from
// the kernel. Unchanged, it allocates nothing.
func (s *Sender) update(k groupKey, r *route, members []netip.AddrPort, beside bool, now time.Time) {
	if !slices.Equal(members, r.members) {
		s.remember(k, r, members, now)
	}
	reached := s.reached[:0] // scratch, one route lookup per member
	for _, m := range members {
		var h reach
		h.mac, h.known, h.err = s.hops.reach(m.Addr())
		reached = append(reached, h)
	}
	s.reached = reached
	fp := hopsPrint(reached)
	if r.ready && fp == r.hops && !beside {
		return
	}
	ready := !beside
	sent, failed := s.sent[:0], s.failed[:0] // scratch: the kernel copies them
	var unreachable map[netip.AddrPort]error
	for i, m := range members {
		h := reached[i]
		e := senderFanoutEntry{Daddr: be32(m.Addr()), Dport: be16(m.Port()), Dmac: h.mac, Counter: r.counters[i]}
		switch {
		case r.counters[i] == noCounter:
			ready = false
		case h.err != 0:
			if unreachable == nil {
				unreachable = make(map[netip.AddrPort]error)
			}
			unreachable[m] = h.err
			failed = append(failed, e)
		case !h.known:
			ready = false
			sent = append(sent, e)
		default:
			sent = append(sent, e)
		}
	}
	s.reportReach(k, r, unreachable)
	if len(sent) == 0 {
		ready = false
	}
	entries := append(sent, failed...)
	s.sent, s.failed = entries, failed
	v := senderGroupRoute{Slot: r.slot}
	var first uint32
	if ready && len(sent) > maxGroupMembers {
		ready = false
		if !r.set || r.ready {
			s.log.Warn("kernel path: more members than the kernel sends a packet to: user space forwards the group",
				"group", k, "members", len(members), "most", maxGroupMembers)
		}
	}
	if ready {
		var ok bool
		if first, ok = s.fan.alloc(uint32(len(entries)), now); !ok {
			ready = false
			s.log.Warn("kernel path: no room for the group's members: user space forwards it", "group", k, "members", len(members))
		}
	}
	if ready {
		keys := s.keys[:0]
		for i := range entries {
			keys = append(keys, first+uint32(i))
		}
		s.keys = keys
		if _, err := s.objs.Fanout.BatchUpdate(keys, entries, nil); err != nil {
			s.log.Error("kernel path: cannot write the group's members", "group", k, "err", err)
			s.fan.release(first, uint32(len(entries)), now)
			ready = false
		} else {
			v = senderGroupRoute{Slot: r.slot, First: first, Count: uint32(len(sent)), Unreachable: uint16(len(failed)), Ready: uint8(senderRouteStateREADY)}
		}
	}
	if !ready && r.set && !r.ready {
		return // not ready before either
	}
	if err := s.objs.Groups.Put(k.key(), &v); err != nil {
		s.log.Error("kernel path: cannot publish the group", "group", k, "err", err)
		if ready {
			s.fan.release(first, uint32(len(entries)), now)
		}
		return
	}
	s.fan.release(r.first, r.published, now)
	r.set, r.ready, r.first, r.published, r.hops = true, ready, first, 0, fp
	if ready {
		r.published = uint32(len(entries))
	}
}

// hopsPrint is a fingerprint of how a group's members are reached, so that a group that
// stays as it was is found so without keeping each member's next hop (FNV-1a, 64 bits).
func hopsPrint(reached []reach) uint64 {
	h := uint64(14695981039346656037)
	add := func(b byte) { h = (h ^ uint64(b)) * 1099511628211 }
	for _, r := range reached {
		for _, b := range r.mac {
			add(b)
		}
		if r.known {
			add(1)
		}
		add(byte(r.err))
		add(byte(r.err >> 8))
	}
	return h
}

// remember makes members the group's, keeping the counters of those that stay, taking fresh
// ones for the new and giving back those of the gone.
func (s *Sender) remember(k groupKey, r *route, members []netip.AddrPort, now time.Time) {
	old := make(map[netip.AddrPort]uint32, len(r.members))
	for i, m := range r.members {
		old[m] = r.counters[i]
	}
	counters := make([]uint32, len(members))
	for i, m := range members {
		c, ok := old[m]
		if ok {
			delete(old, m)
		} else {
			c = s.counter(now)
		}
		counters[i] = c
	}
	for m, c := range old {
		if c != noCounter {
			s.cnts.release(c, 1, now)
		}
		delete(r.unreachable, m)
	}
	r.members, r.counters, r.hops = members, counters, 0
}

// passCopies is the most copies of a packet the kernel sends in one pass. They are sent while
// the kernel holds back its softirqs, so a device without a queue (a veth, as containers and
// this project's tests have) takes all of them into the CPU's backlog at once, and the backlog
// holds net.core.netdev_max_backlog packets (1000 by default): beyond that, copies would be
// lost. (VXLAN's head-end replication meets the same limit.) A larger group's packet goes
// round again, through the source interface's ingress, for the next pass, once the backlog
// has taken this one's in. A quarter of the backlog leaves room for the copies of the pass
// before, where a member is on this host and its delivery queues again, and for the rest of
// the host's traffic. The sysctl is the initial namespace's; elsewhere it cannot be read, and
// the default is assumed.
func passCopies() int {
	backlog := 1000
	if b, err := os.ReadFile("/proc/sys/net/core/netdev_max_backlog"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 1 {
			backlog = n
		}
	}
	return max(backlog/4, 1)
}

// reportReach tells the user-space sender which of a group's members have no route, and
// which have one again.
func (s *Sender) reportReach(k groupKey, r *route, unreachable map[netip.AddrPort]error) {
	if s.report != nil {
		for m, err := range unreachable {
			if old, ok := r.unreachable[m]; !ok || old.Error() != err.Error() {
				s.report(k.addr, k.port, m, err)
			}
		}
		for m := range r.unreachable {
			if _, ok := unreachable[m]; !ok {
				s.report(k.addr, k.port, m, nil)
			}
		}
	}
	r.unreachable = unreachable
}

// ReportMembers makes the Sender tell f about members with no route, starting with those it
// knows of now.
func (s *Sender) ReportMembers(f MemberReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report = f
	for k, r := range s.routes {
		for m, err := range r.unreachable {
			f(k.addr, k.port, m, err)
		}
	}
}

// noCounter is a member's counter's index when member_stats had no room left: its group
// stays in user space.
const noCounter = ^uint32(0)

// counter takes a fresh counter for a new member. One that was never used is zero already;
// one that was is cleared.
func (s *Sender) counter(now time.Time) uint32 {
	c, ok := s.cnts.alloc(1, now)
	switch {
	case !ok:
		return noCounter
	case c >= s.cntsUsed:
		s.cntsUsed = c + 1
	default:
		if err := s.objs.MemberStats.Put(c, &senderMemberCount{}); err != nil {
			s.log.Error("kernel path: cannot clear a member's counters", "err", err)
		}
	}
	return c
}

// Close detaches the programs and unloads them with their maps. Nothing of them stays in
// the kernel.
func (s *Sender) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	if s.handoff != nil {
		s.handoff.Close() // the caller closed it already, but for a failed start
	}
	s.stopped.Wait()
	errs = append(errs, s.dump.close())
	errs = append(errs, s.seq.unmap(), s.gstats.unmap(), s.objs.Close())
	if s.nl != nil {
		s.nl.Close()
	}
	return errors.Join(errs...)
}

func (k groupKey) key() senderGroupKey { return senderGroupKey{Addr: be32(k.addr), Port: be16(k.port)} }

func (k groupKey) String() string { return datapath.GroupName(k.addr, k.port) }

// AddTap starts copying the inner packets the kernel sends to t (mctun dump).
func (s *Sender) AddTap(t *datapath.Tap) error { return s.dump.add(t, s.objs.DumpEvents, s.dumpFlag) }

// RemoveTap stops copying to t.
func (s *Sender) RemoveTap(t *datapath.Tap) { s.dump.remove(t, s.dumpFlag) }

func (s *Sender) dumpFlag(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conf.Dump = 0
	if on {
		s.conf.Dump = 1
	}
	return s.objs.Config.Put(uint32(0), &s.conf)
}

// AddStats adds what the kernel sent to a snapshot of the user-space sender's counters: each
// group's packets and bytes, and its members' send errors.
func (s *Sender) AddStats(st *datapath.SenderStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var failed uint64
	for i := range st.Groups {
		g := &st.Groups[i]
		k := groupKey{g.Address, g.Port}
		r := s.routes[k]
		if r == nil {
			continue
		}
		g.Packets += s.gstats.word(r.slot, 0).Load()
		g.Bytes += s.gstats.word(r.slot, 1).Load()
		e := s.gstats.word(r.slot, 2).Load()
		g.SendErrors += e
		failed += e
	}
	st.Drops["send_failed"] += failed
}

// AddMemberStats adds the kernel's counters of a group's members to ms, the user-space
// sender's.
func (s *Sender) AddMemberStats(addr netip.Addr, port uint16, ms []datapath.MemberStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.routes[groupKey{addr, port}]
	if r == nil {
		return
	}
	var k uint32 // by pointer, as c: a lookup then allocates nothing
	var c senderMemberCount
	for i := range ms {
		j := i // the same order, as a rule
		if j >= len(r.members) || r.members[j] != ms[i].Address {
			j = slices.Index(r.members, ms[i].Address)
		}
		if j < 0 || r.counters[j] == noCounter {
			continue
		}
		if k = r.counters[j]; s.objs.MemberStats.Lookup(&k, &c) == nil {
			ms[i].Packets += c.Packets
			ms[i].Bytes += c.Bytes
			ms[i].Errors += c.Errors
		}
	}
}

// senderPaths names the paths a packet of a group takes (enum sender_path).
var senderPaths = [...]string{
	senderSenderPathSENT_KERNEL:     "kernel",
	senderSenderPathPUNT_NOT_READY:  "user_next_hop_unknown",
	senderSenderPathPUNT_TOO_BIG:    "user_too_big",
	senderSenderPathPUNT_FRAGMENT:   "user_fragment",
	senderSenderPathPUNT_GSO:        "user_gso",
	senderSenderPathPUNT_TWO_GROUPS: "user_two_groups",
	senderSenderPathPUNT_CHECK:      "user_check",
}

// Paths counts the packets of the groups by the path they took: sent by the kernel, or left
// to user space, by why.
func (s *Sender) Paths() map[string]uint64 {
	return percpuCounts(s.objs.SenderPaths, senderPaths[:])
}

// MapBytes is the memory the kernel holds for the sender side's maps.
func (s *Sender) MapBytes() uint64 {
	o := &s.objs.senderMaps
	return mapBytes(o.Config, o.Groups, o.GroupSeq, o.GroupStats, o.Fanout, o.MemberStats, o.SenderPaths, o.DumpEvents)
}
