package daemon

/* Member side of dynamic membership: the reporter, in routineReport.

	kernel's table -> diff -> reports -> each source

1. trigger: the host's own IGMP reports into the TUN (seen by whichever packet path reads
   the TUN: igmpWatch), or the report interval (10 s).
2. read the groups joined on the TUN, with their source filters, from the kernel
   (igmp.Joined: /proc/net/igmp and /proc/net/mcfilter), all-hosts left out.
3. diff against what was last reported: a group joined or whose filter changed is a
   CHANGE_TO_EXCLUDE/INCLUDE record with the whole filter, a group left a CHANGE_TO_INCLUDE
   with no sources (the leave); every interval the whole state as MODE_IS_* records. A
   change goes out once more half a second later, in case the first was lost.
4. send: the records as IGMPv3 reports (igmp.BuildReports), each the inner packet of a
   tunnel packet to each of member.sources on the tunnel port, sealed when there is a
   secret, from the receiver side's socket.

On a clean stop every group is left at once; a member that dies is expired by its sources.
*/

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"mctun/encap"
	"mctun/igmp"
	"mctun/internal/loglimit"
	"mctun/membership"
	"mctun/tun"
)

// Timings of the reporter.
const (
	// settle is how long the reporter waits after a trigger before it reads the kernel's
	// table: a source-specific join adds its source just after the group.
	settle = 5 * time.Millisecond
	// retransmit is when a change is sent again (RFC 3376 repeats state changes too).
	retransmit = 500 * time.Millisecond
)

// reporter tells a member's sources which groups its applications joined on the TUN.
type reporter struct {
	conn    encap.Conn
	seal    *encap.Sealer // nil: the plain form
	ifindex int           // the TUN's
	log     *slog.Logger
	resync  func(group netip.Addr) // the receiver side's, for a group joined anew
	read    func() ([]igmp.Membership, error)

	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	running bool // start was called

	mu       sync.Mutex // guards what follows; routineReport holds it while it sends
	key      uint32
	port     uint16
	sources  []netip.Addr
	gone     []netip.Addr // sources removed by a reload, told to forget us at the next round
	reported []igmp.Membership
	seq      uint32
	lastSent time.Time
	sent     map[netip.Addr]*SourceReports
	failLog  loglimit.Limiter // of failed sends, one line per 10 s
}

// SourceReports counts the reports sent to one source.
type SourceReports struct {
	Packets   uint64 `json:"packets"`
	Errors    uint64 `json:"errors"`
	LastError string `json:"last_error,omitempty"`
}

func newReporter(conn encap.Conn, seal *encap.Sealer, tunName string, key uint32, port uint16, sources []netip.Addr,
	resync func(netip.Addr), log *slog.Logger) (*reporter, error) {
	ifi, err := net.InterfaceByName(tunName)
	if err != nil {
		return nil, fmt.Errorf("member: %s: %w", tunName, err)
	}
	r := &reporter{conn: conn, seal: seal, ifindex: ifi.Index, log: log, resync: resync,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		key: key, port: port, sources: slices.Clone(sources), sent: map[netip.Addr]*SourceReports{}}
	r.read = r.readKernel
	return r, nil
}

// readKernel reads the groups joined on the TUN from the kernel.
func (r *reporter) readKernel() ([]igmp.Membership, error) {
	groups, err := os.Open("/proc/net/igmp")
	if err != nil {
		return nil, err
	}
	defer groups.Close()
	filters, err := os.Open("/proc/net/mcfilter")
	if err != nil {
		return nil, err
	}
	defer filters.Close()
	return igmp.Joined(groups, filters, r.ifindex)
}

// Kick asks for the kernel's table to be read again soon. It never blocks: the packet paths
// call it when they see the host's IGMP.
func (r *reporter) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// configure takes a reload's key and sources: sources added are told everything at once,
// sources removed that we left.
func (r *reporter) configure(key uint32, sources []netip.Addr) {
	r.mu.Lock()
	r.key = key
	r.gone = append(r.gone, added(sources, r.sources)...) // removed: what the old has and the new not
	added := len(added(r.sources, sources)) > 0
	r.sources = slices.Clone(sources)
	if added {
		r.reported = nil // so the next round sends every group to everyone as a change
	}
	r.mu.Unlock()
	r.Kick()
}

// start runs routineReport.
func (r *reporter) start() {
	r.running = true
	go r.routineReport()
}

// Stop leaves every group at every source and stops the reporter. It waits at most a
// second.
func (r *reporter) Stop() {
	if !r.running {
		return
	}
	close(r.stop)
	select {
	case <-r.done:
	case <-time.After(time.Second):
		r.log.Warn("the member's reporter did not stop within 1s")
	}
}

// routineReport is the flow at the top of this file.
func (r *reporter) routineReport() {
	defer close(r.done)
	tick := time.NewTicker(membership.Interval)
	defer tick.Stop()
	resend := time.NewTimer(time.Hour)
	resend.Stop()
	var left []netip.Addr // groups left since the last full round, for the retransmission
	r.round(false, nil)   // at once: a member that starts with groups joined (a kept TUN)
	for {
		full := false
		select {
		case <-r.stop:
			r.leaveAll()
			return
		case <-r.kick:
			time.Sleep(settle)
		case <-tick.C:
			full = true
		case <-resend.C:
			full = true
		}
		if changedLeft, changed := r.round(full, left); changed {
			if !full { // a change before the retransmission: the earlier leaves still wait for it
				changedLeft = union(left, changedLeft)
			}
			left = changedLeft
			resend.Reset(retransmit)
		} else if full {
			left = nil
		}
	}
}

// round reads the kernel's table and sends what changed, or with full the whole state (and
// the leaves of alsoLeft once more). It reports whether anything changed, and the groups
// left.
func (r *reporter) round(full bool, alsoLeft []netip.Addr) (left []netip.Addr, changed bool) {
	cur, err := r.read()
	if err != nil {
		r.log.Error("cannot read the groups joined on the TUN", "err", err)
		return nil, false
	}
	for i := range cur {
		cur[i] = reportable(cur[i])
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var recs []igmp.Record
	was := map[netip.Addr]igmp.Membership{}
	for _, m := range r.reported {
		was[m.Group] = m
	}
	for _, m := range cur {
		old, ok := was[m.Group]
		delete(was, m.Group)
		switch {
		case !ok:
			r.resync(m.Group) // before the source hears of it: what came before is not loss
			fallthrough
		case !old.Equal(m):
			recs = append(recs, igmp.Record{Type: changeType(m.Mode), Group: m.Group, Sources: m.Sources})
			changed = true
		case full:
			recs = append(recs, igmp.Record{Type: currentType(m.Mode), Group: m.Group, Sources: m.Sources})
		}
	}
	for g := range was {
		left = append(left, g)
		changed = true
	}
	if full {
		for _, g := range alsoLeft {
			if !slices.ContainsFunc(cur, func(m igmp.Membership) bool { return m.Group == g }) && !slices.Contains(left, g) {
				left = append(left, g)
			}
		}
	}
	slices.SortFunc(left, netip.Addr.Compare)
	for _, g := range left {
		recs = append(recs, igmp.Record{Type: igmp.ChangeToInclude, Group: g})
	}
	r.reported = cur
	if len(r.gone) > 0 {
		r.sendTo(r.gone, leaves(cur, left))
		r.gone = nil
	}
	if len(recs) > 0 {
		r.sendTo(r.sources, recs)
	}
	return left, changed
}

// union returns the groups of a and b, sorted, each once.
func union(a, b []netip.Addr) []netip.Addr {
	u := append(slices.Clone(a), b...)
	slices.SortFunc(u, netip.Addr.Compare)
	return slices.Compact(u)
}

// leaveAll leaves every group reported, at every source.
func (r *reporter) leaveAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reported) > 0 {
		r.sendTo(r.sources, leaves(r.reported, nil))
	}
	r.reported = nil
}

// leaves are the records that leave the groups of cur and the groups gs.
func leaves(cur []igmp.Membership, gs []netip.Addr) []igmp.Record {
	var recs []igmp.Record
	for _, m := range cur {
		recs = append(recs, igmp.Record{Type: igmp.ChangeToInclude, Group: m.Group})
	}
	for _, g := range gs {
		recs = append(recs, igmp.Record{Type: igmp.ChangeToInclude, Group: g})
	}
	return recs
}

// reportable fits a membership into one record of at most igmp.MaxSources sources, by
// asking for more, never less: an include list too long becomes every source, an exclude
// list too long excludes fewer.
func reportable(m igmp.Membership) igmp.Membership {
	if len(m.Sources) <= igmp.MaxSources {
		return m
	}
	if m.Mode == igmp.Include {
		return igmp.Membership{Group: m.Group, Mode: igmp.Exclude}
	}
	m.Sources = m.Sources[:igmp.MaxSources]
	return m
}

func changeType(m igmp.Mode) igmp.RecordType {
	if m == igmp.Include {
		return igmp.ChangeToInclude
	}
	return igmp.ChangeToExclude
}

func currentType(m igmp.Mode) igmp.RecordType {
	if m == igmp.Include {
		return igmp.ModeIsInclude
	}
	return igmp.ModeIsExclude
}

// sendTo sends recs to each source as tunnel packets. The caller holds r.mu.
func (r *reporter) sendTo(sources []netip.Addr, recs []igmp.Record) {
	var bufs [][]byte
	var addrs []netip.AddrPort
	for _, src := range sources {
		for _, inner := range igmp.BuildReports(localAddrFor(src), recs) {
			buf := make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
			copy(buf[encap.Headroom:], inner)
			h := encap.Header{Key: r.key, Seq: r.seq}
			r.seq++
			if r.seal != nil {
				bufs = append(bufs, r.seal.Seal(buf, len(inner), h))
			} else {
				bufs = append(bufs, encap.Encapsulate(buf, len(inner), h))
			}
			addrs = append(addrs, netip.AddrPortFrom(src, r.port))
		}
	}
	errs := make([]error, len(bufs))
	if err := r.conn.WriteBatch(bufs, addrs, errs); err != nil {
		if !errors.Is(err, net.ErrClosed) {
			r.log.Error("cannot send membership reports", "err", err)
		}
		return
	}
	r.lastSent = time.Now()
	for i, a := range addrs {
		st := r.sent[a.Addr()]
		if st == nil {
			st = &SourceReports{}
			r.sent[a.Addr()] = st
		}
		if errs[i] != nil {
			st.Errors++
			st.LastError = errs[i].Error()
			if ok, suppressed := r.failLog.Allow(); ok {
				r.log.Warn("cannot send a membership report", "source", a.Addr(), "err", errs[i], "not_logged", suppressed)
			}
			continue
		}
		st.Packets++
		st.LastError = ""
	}
}

// localAddrFor is the address this host sends to dst from, which the report carries as its
// source. The source takes the tunnel packet's outer address as the member; with a secret, it
// refuses a report whose own address is not that one (datapath.Reports).
func localAddrFor(dst netip.Addr) netip.Addr {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.IPv4Unspecified()
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// ReportingStatus is what a member reports, to which sources: part of MemberStatus.
type ReportingStatus struct {
	Groups   []ReportedGroup               `json:"groups"`
	To       []netip.Addr                  `json:"to"`
	LastSent time.Time                     `json:"last_sent,omitzero"`
	Sent     map[netip.Addr]*SourceReports `json:"sent"`
}

// ReportedGroup is one group a member reports, with its source filter.
type ReportedGroup struct {
	Group   netip.Addr   `json:"group"`
	Mode    string       `json:"mode"` // "exclude" (every source but Sources) or "include" (only Sources)
	Sources []netip.Addr `json:"sources,omitempty"`
}

func (r *reporter) status() *ReportingStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &ReportingStatus{Groups: []ReportedGroup{}, To: slices.Clone(r.sources), LastSent: r.lastSent, Sent: map[netip.Addr]*SourceReports{}}
	for _, m := range r.reported {
		st.Groups = append(st.Groups, ReportedGroup{Group: m.Group, Mode: m.Mode.String(), Sources: m.Sources})
	}
	for a, s := range r.sent {
		c := *s
		st.Sent[a] = &c
	}
	return st
}

// igmpWatch is the TUN as the packet paths see it, watched for the host's own IGMP: each
// report the kernel sends into the TUN when an application joins or leaves a group kicks
// the reporter. One byte compared per packet read.
type igmpWatch struct {
	*tun.Native
	kick func()
}

// Read implements tun.Device and capture.Source.
func (w igmpWatch) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := w.Native.Read(bufs, sizes, offset)
	for i := range n {
		if p := bufs[i][offset:]; sizes[i] > 9 && p[0]>>4 == 4 && p[9] == encap.ProtoIGMP {
			w.kick()
			break
		}
	}
	return n, err
}
