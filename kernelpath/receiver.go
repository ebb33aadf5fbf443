package kernelpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"mctun/config"
	"mctun/datapath"
	"mctun/internal/nlevents"
)

// Receiver is the receiver side in the kernel: the ingress program on the interfaces the
// tunnel arrives on, and what keeps its maps: the member's sources and groups, and this
// host's addresses. It also keeps the flows' accounts for the user-space receiver, which
// delivers what the program leaves to the stack (see Observe).
//
// Each map has one owner on each side. The program (and mctun_account) update flows,
// receiver_drops and receiver_paths; Receiver writes config, sources, allowed_groups and
// local_addrs, and reads the counters when asked.
type Receiver struct {
	objs  receiverObjects
	log   *slog.Logger
	nl    *netlink.Handle
	dump  dumper
	hooks Hooks

	attachedMu sync.Mutex
	attached   []Attachment

	done    chan struct{}
	stopped sync.WaitGroup
	ns      netns.NsHandle // the network namespace Start ran in, which follow attaches in

	mu     sync.Mutex // guards what follows
	conf   receiverReceiverConfig
	via    map[netip.Addr]uint32 // the sources as published in sources: where each one's route leaves
	groups []netip.Addr          // as published in allowed_groups
	joins  []netip.Prefix        // as published in join_from
	links  map[int]link.Link     // by ifindex; nil where tc holds the program

	batch accountBatch // the user-space receiver's, unguarded: see Observe
}

// ReceiverOptions are the Receiver's edges on the host.
type ReceiverOptions struct {
	TUN    string // the TUN the program delivers into
	Port   uint16 // the tunnel's UDP port
	Key    uint32
	Member config.Member
	// Reports: this host is a source too, whose report flow takes membership reports from
	// the hosts in JoinFrom (see DivertReports).
	Reports  bool
	JoinFrom []netip.Prefix
	Hooks    Hooks
	Log      *slog.Logger
}

// LoadReceiver loads the receiver side's programs and maps into the kernel, attaching
// nothing: its error says why the kernel refuses them.
func LoadReceiver() (*Receiver, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	r := &Receiver{links: make(map[int]link.Link), done: make(chan struct{}), ns: netns.None()}
	if err := loadReceiverObjects(&r.objs, nil); err != nil {
		return nil, loadError("receiver", err)
	}
	return r, nil
}

// Start fills the maps and attaches the program to the interfaces the routes to the sources
// leave by; from then on the kernel delivers what it can. On error the caller calls Close.
func (r *Receiver) Start(o ReceiverOptions) error {
	r.log, r.hooks = o.Log, o.Hooks
	nl, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("kernel path: netlink: %w", err)
	}
	r.nl = nl
	if r.ns, err = netns.Get(); err != nil {
		return fmt.Errorf("kernel path: network namespace: %w", err)
	}
	tun, err := nl.LinkByName(o.TUN)
	if err != nil {
		return fmt.Errorf("kernel path: %s: %w", o.TUN, err)
	}
	// The overflow flow takes the packets of the flows beyond the table's capacity.
	var blank receiverFlow
	if err := r.objs.Flows.Update(receiverFlowKey{}, &blank, ebpf.UpdateNoExist); err != nil {
		return fmt.Errorf("kernel path: %w", err)
	}
	// Followed from before the tables are read, so that no change falls between.
	ev, err := r.subscribe()
	if err != nil {
		return err
	}
	if err := r.loadAddrs(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conf = receiverReceiverConfig{Port: be16(o.Port), TunIfindex: uint32(tun.Attrs().Index), TunDown: tunDown(tun)}
	if err := r.configure(o.Key, o.Member); err != nil {
		return err
	}
	if o.Reports {
		if err := r.divertReports(o.JoinFrom); err != nil {
			return err
		}
	}
	if err := r.attachTo(r.objs.MctunDeliver, tun.Attrs().Index, o.TUN); err != nil {
		return err
	}
	if err := r.attach(); err != nil {
		return err
	}
	r.follow(ev)
	return nil
}

// Configure replaces what the program accepts, as datapath.Receiver.Configure does, and
// attaches it to the interface of a new source's route if that is a new one. What it cannot
// do it logs: a tunnel packet the program does not take still reaches user space.
func (r *Receiver) Configure(key uint32, m config.Member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.configure(key, m)
	if err == nil {
		err = r.attach()
	}
	if err != nil {
		r.log.Error("kernel path: cannot apply the member's config", "err", err)
	}
}

// configure writes the key, the TUN's MTU, the sources and the groups. New sources and
// groups go in before their absence is noticed by anyone, and old ones go after: a change to
// "any group" takes effect before the groups of before go, and from it, after the groups
// come. The caller holds r.mu.
func (r *Receiver) configure(key uint32, m config.Member) error {
	if err := r.publishSources(r.routesTo(m.Sources)); err != nil {
		return err
	}
	r.conf.Key = key
	r.conf.Mtu = uint16(min(m.MTU, 0xffff))
	r.conf.AnyGroup = 0
	if len(m.Groups) == 0 {
		r.conf.AnyGroup = 1
		if err := r.objs.Config.Put(uint32(0), &r.conf); err != nil {
			return fmt.Errorf("kernel path: %w", err)
		}
	}
	if err := syncSet(r.objs.AllowedGroups, r.groups, m.Groups, be32); err != nil {
		return fmt.Errorf("kernel path: groups: %w", err)
	}
	r.groups = slices.Clone(m.Groups)
	if err := r.objs.Config.Put(uint32(0), &r.conf); err != nil {
		return fmt.Errorf("kernel path: %w", err)
	}
	return nil
}

// maxJoinFrom is how many prefixes the program's join_from holds (MAX_JOIN_FROM).
const maxJoinFrom = 1024

// DivertReports makes the program leave to user space what a host inside joinFrom that is
// no source sends, and IGMP from a source whatever its key, as datapath.Receiver.DivertReports
// does: the report flow judges them. What any other host that is no source sends it drops as
// unknown_source, as user space would. On a daemon that is a source too, Start does it first
// (ReceiverOptions.Reports), and the daemon again with each new source.join_from. With more
// prefixes than the program holds, it leaves what every host that is no source sends to user
// space, to judge.
func (r *Receiver) DivertReports(joinFrom []netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.divertReports(joinFrom)
}

// divertReports is DivertReports; the caller holds r.mu.
func (r *Receiver) divertReports(joinFrom []netip.Prefix) error {
	want := joinFrom
	mode := uint8(receiverReportsREPORTS_JOIN_FROM)
	if len(joinFrom) > maxJoinFrom {
		want, mode = nil, uint8(receiverReportsREPORTS_ANY)
	}
	// A mode that takes more goes in before the prefixes change, one that takes fewer after:
	// what user space takes as a report is never dropped in between.
	if mode >= r.conf.Reports {
		if err := r.putReports(mode); err != nil {
			return err
		}
	}
	if err := syncSet(r.objs.JoinFrom, r.joins, want, joinKey); err != nil {
		return fmt.Errorf("kernel path: join_from: %w", err)
	}
	r.joins = slices.Clone(want)
	return r.putReports(mode)
}

// putReports writes the program's reports mode. The caller holds r.mu.
func (r *Receiver) putReports(mode uint8) error {
	r.conf.Reports = mode
	if err := r.objs.Config.Put(uint32(0), &r.conf); err != nil {
		return fmt.Errorf("kernel path: %w", err)
	}
	return nil
}

// joinKey is a prefix's key in join_from.
func joinKey(p netip.Prefix) receiverJoinPrefix {
	return receiverJoinPrefix{Prefixlen: uint32(p.Bits()), Addr: be32(p.Masked().Addr())}
}

// routesTo finds the interface the route to each source leaves by: 0 for a source with no
// route.
func (r *Receiver) routesTo(sources []netip.Addr) map[netip.Addr]uint32 {
	via := make(map[netip.Addr]uint32, len(sources))
	for _, src := range sources {
		via[src] = 0
		if routes, err := r.nl.RouteGet(net.IP(src.AsSlice())); err == nil && len(routes) > 0 {
			via[src] = uint32(routes[0].LinkIndex)
		}
	}
	return via
}

// publishSources makes the sources map hold exactly the sources of via, each with the
// interface its tunnel packets should arrive on: new and changed ones first, then gone ones
// out. The caller holds r.mu.
func (r *Receiver) publishSources(via map[netip.Addr]uint32) error {
	for src, ifindex := range via {
		if was, ok := r.via[src]; !ok || was != ifindex {
			if err := r.objs.Sources.Put(be32(src), ifindex); err != nil {
				return fmt.Errorf("kernel path: sources: %w", err)
			}
		}
	}
	for src := range r.via {
		if _, ok := via[src]; !ok {
			if err := r.objs.Sources.Delete(be32(src)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("kernel path: sources: %w", err)
			}
		}
	}
	r.via = via
	return nil
}

// reroute follows a change of the routes: each source's interface again, and the program on
// any new one.
func (r *Receiver) reroute() {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.publishSources(r.routesTo(slices.Collect(maps.Keys(r.via))))
	if err == nil {
		err = r.attach()
	}
	if err != nil {
		r.log.Error("kernel path: cannot follow the routes to the sources", "err", err)
	}
}

// syncSet makes the set map m hold exactly want, where it held had, adding before it
// deletes; key is an element's key in m.
func syncSet[T comparable, K any](m *ebpf.Map, had, want []T, key func(T) K) error {
	one := uint8(1)
	for _, a := range want {
		if !slices.Contains(had, a) {
			if err := m.Put(key(a), one); err != nil {
				return err
			}
		}
	}
	for _, a := range had {
		if !slices.Contains(want, a) {
			if err := m.Delete(key(a)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return err
			}
		}
	}
	return nil
}

// attach puts the program first on the ingress of each interface a route to a source leaves
// by (and the default route's), where it is not yet. A tunnel packet that arrives elsewhere
// still reaches the user-space receiver, and so does one on an interface that is not
// Ethernet (a WireGuard or other tunnel link): the program reads the frame's fixed Ethernet
// header. The caller holds r.mu.
func (r *Receiver) attach() error {
	var ifindexes []int
	if routes, err := r.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE); err == nil {
		for _, rt := range routes {
			if rt.Dst == nil || rt.Dst.IP.IsUnspecified() && rt.Dst.Mask != nil && net.IP(rt.Dst.Mask).IsUnspecified() {
				ifindexes = append(ifindexes, rt.LinkIndex) // the default route
			}
		}
	}
	for _, ifindex := range r.via {
		if ifindex != 0 { // no route: nothing arrives from there yet
			ifindexes = append(ifindexes, int(ifindex))
		}
	}
	for _, ifindex := range ifindexes {
		if _, ok := r.links[ifindex]; ok || ifindex == int(r.conf.TunIfindex) {
			continue
		}
		l, err := r.nl.LinkByIndex(ifindex)
		if err != nil || l.Attrs().Flags&net.FlagLoopback != 0 || len(l.Attrs().HardwareAddr) != 6 {
			continue
		}
		if err := r.attachTo(r.objs.MctunIngress, ifindex, l.Attrs().Name); err != nil {
			return err
		}
	}
	return nil
}

// attachTo puts prog first on the ingress of ifindex (named name). The caller holds r.mu.
func (r *Receiver) attachTo(prog *ebpf.Program, ifindex int, name string) error {
	l, a, err := r.hooks.attach(prog, ifindex, name, "ingress", firstFilter)
	if err != nil {
		return err
	}
	r.links[ifindex] = l
	r.attachedMu.Lock()
	r.attached = append(r.attached, a)
	r.attachedMu.Unlock()
	return nil
}

// Attached lists the programs attached, and where.
func (r *Receiver) Attached() []Attachment {
	r.attachedMu.Lock()
	defer r.attachedMu.Unlock()
	return slices.Clone(r.attached)
}

// events are the host's changes follow reads.
type events struct {
	addrs  *nlevents.Sub[netlink.AddrUpdate]
	routes *nlevents.Sub[netlink.RouteUpdate]
	links  *nlevents.Sub[netlink.LinkUpdate]
}

// subscribe opens the address, route and link events follow reads.
func (r *Receiver) subscribe() (events, error) {
	ev := events{nlevents.Addrs(who, r.done, r.log), nlevents.Routes(who, r.done, r.log), nlevents.Links(who, r.done, r.log)}
	for _, err := range []error{ev.addrs.Start(), ev.routes.Start(), ev.links.Start()} {
		if err != nil {
			return events{}, err
		}
	}
	return ev, nil
}

// follow keeps local_addrs, the addresses a tunnel packet may be for, in line with the
// host's (the program leaves a datagram to any other address to the stack), the sources'
// interfaces with the routes (each burst of route events rereads them once), and tun_down
// with the TUN's state. Events lost (nlevents.Sub) make it read afresh.
func (r *Receiver) follow(ev events) {
	tun := int(r.conf.TunIfindex) // the caller holds r.mu
	r.stopped.Add(1)
	go func() {
		defer r.stopped.Done()
		// Attaching goes by interface index, in the calling thread's network namespace: this
		// goroutine keeps a thread of its own in Start's (the daemon's threads all are; a
		// test's are not), and the thread ends with it.
		runtime.LockOSThread()
		if err := netns.Set(r.ns); err != nil {
			r.log.Error("kernel path: cannot follow the routes and addresses", "err", err)
			return
		}
		for {
			var retry <-chan time.Time
			if ev.addrs.C == nil || ev.routes.C == nil || ev.links.C == nil {
				retry = time.After(nlevents.RetryEvery)
			}
			select {
			case <-r.done:
				return
			case u, ok := <-ev.addrs.C:
				if !ok {
					if ev.addrs.Reopen() {
						r.reloadAddrs()
					}
					continue
				}
				ip, ok := netip.AddrFromSlice(u.LinkAddress.IP.To4())
				if !ok || ip.IsLoopback() {
					continue
				}
				if u.NewAddr {
					r.objs.LocalAddrs.Put(be32(ip), uint8(1)) // full: left to the stack
				} else {
					r.objs.LocalAddrs.Delete(be32(ip))
				}
			case _, ok := <-ev.routes.C:
				if !ok && !ev.routes.Reopen() {
					continue
				}
				for more := true; more; { // the rest of the burst, with it
					select {
					case _, more = <-ev.routes.C:
					default:
						more = false
					}
				}
				r.reroute()
			case u, ok := <-ev.links.C:
				switch {
				case !ok:
					if ev.links.Reopen() {
						r.rereadTUN(tun)
					}
				case u.Attrs().Index == tun:
					r.setTUNDown(tunDown(u.Link))
				}
			case <-retry:
				if ev.addrs.Retry() {
					r.reloadAddrs()
				}
				if ev.routes.Retry() {
					r.reroute()
				}
				if ev.links.Retry() {
					r.rereadTUN(tun)
				}
			}
		}
	}()
}

// tunDown is tun_down for the TUN link l: 1 when it is down, and what is redirected into it
// is dropped.
func tunDown(l netlink.Link) uint8 {
	if l.Attrs().Flags&net.FlagUp == 0 {
		return 1
	}
	return 0
}

// setTUNDown tells the program whether the TUN is down: then it drops what it would deliver,
// as tun_write_failed, as the user-space receiver's writes fail.
func (r *Receiver) setTUNDown(down uint8) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if down == r.conf.TunDown {
		return
	}
	r.conf.TunDown = down
	if err := r.objs.Config.Put(uint32(0), &r.conf); err != nil {
		r.log.Error("kernel path: cannot tell the program the TUN's state", "err", err)
	}
}

// rereadTUN reads the state of the TUN, tun, afresh (setTUNDown), after link events were lost.
func (r *Receiver) rereadTUN(tun int) {
	l, err := r.nl.LinkByIndex(tun)
	if err != nil {
		r.log.Error("kernel path: cannot read the TUN's state", "err", err)
		return
	}
	r.setTUNDown(tunDown(l))
}

// loadAddrs makes local_addrs the host's IPv4 addresses, but loopback's: a tunnel packet to
// 127.0.0.1 from the wire is a martian, for the stack to drop. Addresses beyond the map's
// room (a host with thousands, as kube-proxy's IPVS mode makes) are left out, and what
// comes to them goes to the stack and the user-space receiver.
func (r *Receiver) loadAddrs() error {
	list, err := r.nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("kernel path: addresses: %w", err)
	}
	now := make(map[uint32]bool, len(list))
	var order []uint32 // the kernel's: by interface, the older ones (the physical) first
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && !ip.IsLoopback() && !now[be32(ip)] {
			now[be32(ip)] = true
			order = append(order, be32(ip))
		}
	}
	var k uint32
	var v uint8
	var gone []uint32
	for it := r.objs.LocalAddrs.Iterate(); it.Next(&k, &v); {
		if !now[k] {
			gone = append(gone, k)
		}
	}
	for _, k := range gone { // first, to make room
		r.objs.LocalAddrs.Delete(k)
	}
	left := 0
	for _, k := range order {
		if err := r.objs.LocalAddrs.Put(k, uint8(1)); err != nil {
			left++
		}
	}
	if left > 0 {
		r.log.Warn("kernel path: more addresses on the host than it follows: tunnel packets to those go through user space", "left_out", left, "followed", len(now)-left)
	}
	return nil
}

// reloadAddrs is loadAddrs, its failure logged: the events that follow mend what it missed.
func (r *Receiver) reloadAddrs() {
	if err := r.loadAddrs(); err != nil {
		r.log.Error("kernel path: cannot read the host's addresses", "err", err)
	}
}

// accountBatch collects what the user-space receiver delivered, for one run of
// mctun_account: struct account_args.
type accountBatch struct {
	buf [8 + accountMax*16]byte
	n   int
}

// add adds a record to the batch and reports whether that filled it.
func (b *accountBatch) add(source, group [4]byte, seq, bytes uint32) (full bool) {
	rec := b.buf[8+b.n*16:]
	copy(rec[0:4], source[:])
	copy(rec[4:8], group[:])
	binary.NativeEndian.PutUint32(rec[8:], seq)
	binary.NativeEndian.PutUint32(rec[12:], bytes)
	b.n++
	return b.n == accountMax
}

// run runs mctun_account on the batch's records, and empties it.
func (b *accountBatch) run(account *ebpf.Program) error {
	if b.n == 0 {
		return nil
	}
	binary.NativeEndian.PutUint32(b.buf[0:], uint32(b.n))
	b.n = 0
	// The whole struct, whatever n: the kernel refuses a context shorter than what the
	// program reads.
	ret, err := account.Run(&ebpf.RunOptions{Context: b.buf[:]})
	if err == nil && ret != 0 {
		err = fmt.Errorf("mctun_account returned %d", ret)
	}
	return err
}

const accountMax = 16 // ACCOUNT_MAX

// Observe accounts one packet the user-space receiver took from source for group, with its
// sequence number, delivered (its length) or not (0), in the flow's one account that the
// program keeps too. It is the user-space receiver's own (datapath.FlowAccount): only its
// receive loop calls it, and Flush.
func (r *Receiver) Observe(source, group [4]byte, seq uint32, delivered int) error {
	if r.batch.add(source, group, seq, uint32(delivered)) {
		return r.Flush()
	}
	return nil
}

// Flush makes what Observe collected count.
func (r *Receiver) Flush() error {
	if err := r.batch.run(r.objs.MctunAccount); err != nil {
		return fmt.Errorf("kernel path: account: %w", err)
	}
	return nil
}

// Resync makes the flows of group start their accounting afresh at their next packet, from
// whichever path it comes.
func (r *Receiver) Resync(group netip.Addr) error {
	var batch accountBatch
	var k, next receiverFlowKey
	for err := r.objs.Flows.NextKey(nil, &next); err == nil; err = r.objs.Flows.NextKey(&k, &next) {
		k = next
		if k.Group != be32(group) {
			continue
		}
		if batch.add(addrOf(k.Source).As4(), group.As4(), 0, resync) {
			if err := batch.run(r.objs.MctunAccount); err != nil {
				return fmt.Errorf("kernel path: resync: %w", err)
			}
		}
	}
	if err := batch.run(r.objs.MctunAccount); err != nil {
		return fmt.Errorf("kernel path: resync: %w", err)
	}
	return nil
}

// resync is RESYNC: an account record's bytes that restart the flow's accounting.
const resync = 0xffffffff

// Flows returns every flow's counters, in order of first packet: the flows' one account.
func (r *Receiver) Flows() []datapath.FlowStats {
	type flow struct {
		datapath.FlowStats
		first uint64
	}
	var flows []flow
	var k, next receiverFlowKey
	var v receiverFlow
	for err := r.objs.Flows.NextKey(nil, &next); err == nil; err = r.objs.Flows.NextKey(&k, &next) {
		k = next
		if r.objs.Flows.LookupWithFlags(&k, &v, ebpf.LookupLock) != nil {
			continue
		}
		f := flow{FlowStats: datapath.FlowStats{Packets: v.Packets, Bytes: v.Bytes, Lost: v.Lost,
			Reordered: v.Reordered, Duplicates: v.Duplicates, Restarts: v.Restarts}, first: v.FirstNs}
		if k == (receiverFlowKey{}) { // the overflow flow
			if v.Packets == 0 {
				continue
			}
			f.first = ^uint64(0)
		} else {
			f.Source, f.Group = addrOf(k.Source), addrOf(k.Group)
		}
		flows = append(flows, f)
	}
	sort.SliceStable(flows, func(i, j int) bool { return flows[i].first < flows[j].first })
	out := make([]datapath.FlowStats, len(flows))
	for i, f := range flows {
		out[i] = f.FlowStats
	}
	return out
}

// reasons names the program's drop reasons (enum reason) as datapath does.
var reasons = [...]datapath.Reason{
	receiverReasonREASON_UNKNOWN_SOURCE:    datapath.UnknownSource,
	receiverReasonREASON_BAD_TUNNEL_HEADER: datapath.BadTunnelHeader,
	receiverReasonREASON_WRONG_KEY:         datapath.WrongKey,
	receiverReasonREASON_NOT_IPV4:          datapath.NotIPv4,
	receiverReasonREASON_MALFORMED:         datapath.Malformed,
	receiverReasonREASON_IP_OPTIONS:        datapath.IPOptions,
	receiverReasonREASON_BAD_FRAGMENT:      datapath.BadFragment,
	receiverReasonREASON_NOT_MULTICAST:     datapath.NotMulticast,
	receiverReasonREASON_BAD_SOURCE:        datapath.BadSource,
	receiverReasonREASON_IGMP:              datapath.IGMP,
	receiverReasonREASON_GROUP_NOT_ALLOWED: datapath.GroupNotAllowed,
	receiverReasonREASON_TOO_BIG:           datapath.TooBig,
	receiverReasonREASON_TUN_WRITE_FAILED:  datapath.TUNWriteFailed,
}

// AddDrops adds the program's drops to a snapshot of the user-space receiver's, by reason.
func (r *Receiver) AddDrops(drops map[string]uint64) {
	names := make([]string, len(reasons))
	for i, reason := range reasons {
		names[i] = reason.String()
	}
	for name, n := range percpuCounts(r.objs.ReceiverDrops, names) {
		drops[name] += n
	}
}

// receiverPaths names the paths a tunnel packet for this host takes (enum receiver_path).
var receiverPaths = [...]string{
	receiverReceiverPathDELIVERED_KERNEL: "kernel",
	receiverReceiverPathPASS_FRAGMENT:    "user_fragment",
	receiverReceiverPathPASS_GSO:         "user_gso",
	receiverReceiverPathPASS_CHECKSUM:    "user_checksum",
	receiverReceiverPathPASS_OUTER:       "user_outer_header",
	receiverReceiverPathPASS_IGMP:        "user_igmp",
	receiverReceiverPathPASS_ROUTE:       "user_route",
	receiverReceiverPathPASS_JOIN_FROM:   "user_join_from",
}

// Paths counts the tunnel packets by the path they took: delivered by the kernel, or left
// to the stack and the user-space receiver, by why.
func (r *Receiver) Paths() map[string]uint64 {
	return percpuCounts(r.objs.ReceiverPaths, receiverPaths[:])
}

// MapBytes is the memory the kernel holds for the receiver side's maps.
func (r *Receiver) MapBytes() uint64 {
	o := &r.objs.receiverMaps
	return mapBytes(o.Config, o.Sources, o.AllowedGroups, o.JoinFrom, o.LocalAddrs, o.Flows, o.NewFlow, o.ReceiverDrops, o.ReceiverPaths, o.DumpEvents)
}

// AddTap starts copying the inner packets the kernel delivers to t (mctun dump).
func (r *Receiver) AddTap(t *datapath.Tap) error {
	return r.dump.add(t, r.objs.DumpEvents, r.dumpFlag)
}

// RemoveTap stops copying to t.
func (r *Receiver) RemoveTap(t *datapath.Tap) { r.dump.remove(t, r.dumpFlag) }

func (r *Receiver) dumpFlag(on bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conf.Dump = 0
	if on {
		r.conf.Dump = 1
	}
	return r.objs.Config.Put(uint32(0), &r.conf)
}

// Close detaches the program and unloads it with its maps. Nothing of them stays in the
// kernel.
func (r *Receiver) Close() error {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	r.stopped.Wait()
	var errs []error
	for i, l := range r.links {
		if l != nil {
			errs = append(errs, l.Close())
		}
		delete(r.links, i)
	}
	errs = append(errs, r.dump.close(), r.objs.Close())
	if r.nl != nil {
		r.nl.Close()
	}
	if r.ns.IsOpen() {
		r.ns.Close()
	}
	return errors.Join(errs...)
}
