package datapath

/* Inbound flow: the receiver side, in routineReceive.

	receive -> decapsulate -> validate -> write to TUN

1. receive: read a batch of tunnel packets (encap.Conn.ReadBatch, recvmmsg).
2. decapsulate: accept a tunnel packet only from a configured source; with a secret, only
   in the authenticated form, with a valid tag, a counter not seen before, from the newest
   run of its sender (encap.Opener: the tag is checked before anything after the headers is
   looked at, and an encrypted inner packet is decrypted in place); then a GRE header of the
   form mctun sends and our key.
3. validate: the inner packet must be a whole, well-formed IPv4 packet to a multicast group
   (encap.CheckInner), to an allowed group, and fit the TUN's MTU. Its sequence number is
   accounted for its flow (source and group): lost, reordered, duplicated.
4. write to TUN: the batch's valid inner packets, unchanged, in one tun.Device.Write. The host
   then delivers each to the sockets that joined its group on the TUN. A tap (mctun dump)
   gets a copy of each.

Every packet that fails a step is dropped and counted by reason; none is an error.

On a source that accepts joins (DivertReports), what is a membership report goes to the
report flow instead (reports.go): a tunnel packet from an address that is not one of the
sources but may join, before step 2, and one from a source whose inner packet is IGMP,
between steps 2 and 3.

The TUN also carries the other way what the host itself sends to multicast groups. On a host
that is also a source the sender side reads it; otherwise routineDrainTUN reads and counts it,
so it does not sit in the TUN's queue.
*/

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"mctun/capture"
	"mctun/config"
	"mctun/encap"
	"mctun/igmp"
	"mctun/internal/loglimit"
	"mctun/tun"
)

// maxFlows bounds the flow table; packets of further flows are delivered but accounted
// together in one overflow flow.
const maxFlows = 65536

// Receiver is the receiver side. Its policy can be replaced while it runs (Configure).
type Receiver struct {
	conn   encap.Conn
	dev    tun.Device
	open   *encap.Opener // nil: the plain form; routineReceive's own
	log    *slog.Logger
	policy atomic.Pointer[policy]
	drops  Drops
	taps   Taps

	flows    map[flowKey]*flow // routineReceive's own
	overflow *flow
	flowsMu  sync.Mutex // guards flowList, which Snapshot reads
	flowList []*flow

	drained     atomic.Uint64    // host packets read from the TUN and not forwarded
	tunLogs     loglimit.Limiter // of TUN write failures
	accountLogs loglimit.Limiter // of failures to account in a FlowAccount
	onEpoch     func(src netip.Addr, epoch uint64)
	account     FlowAccount // nil: the flows above are the accounts

	reports *Reports        // nil: this host takes no reports
	resync  chan netip.Addr // groups whose flows start their accounting afresh
}

// A FlowAccount keeps the flows' accounts when another packet path delivers into the same
// TUN (the kernel path): each flow has one account, whichever path delivered its packets.
// Only the receive loop calls it.
type FlowAccount interface {
	// Observe accounts a packet from source to group with sequence number seq, delivered
	// (its length) or not (0).
	Observe(source, group [4]byte, seq uint32, delivered int) error
	// Flush makes what Observe took count.
	Flush() error
	// Flows returns the flows' counters, in order of first packet.
	Flows() []FlowStats
	// Resync makes the group's flows start their accounting afresh at their next packet (see
	// Receiver.Resync). Unlike Observe, anyone may call it.
	Resync(group netip.Addr) error
}

// ShareFlows makes the receiver side account its flows in a, from now on. Call it before
// Run.
func (r *Receiver) ShareFlows(a FlowAccount) { r.account = a }

// delivery is an accepted packet on its way into the TUN: its flow, or, with a FlowAccount,
// what to account it by.
type delivery struct {
	f             *flow
	source, group [4]byte
	seq           uint32
}

// policy is what the receiver side accepts, from config.
type policy struct {
	key     uint32
	sources map[[4]byte]bool
	groups  map[[4]byte]bool // nil: any multicast group
	mtu     int
}

type flowKey struct {
	source, group [4]byte
}

// flow is the traffic from one source to one group.
type flow struct {
	source, group netip.Addr
	seq           seqTracker // routineReceive's own

	packets, bytes                 atomic.Uint64
	lost                           atomic.Int64
	reordered, duplicates, restart atomic.Uint64
}

// NewReceiver returns a receiver side reading from conn and writing into dev; with an
// Opener, it accepts the authenticated form only. onEpoch, if not nil, learns each sending
// instance it authenticates first (to keep the newest epochs across a restart: see
// encap.Opener.SetEpoch).
func NewReceiver(conn encap.Conn, dev tun.Device, key uint32, m config.Member, open *encap.Opener,
	onEpoch func(src netip.Addr, epoch uint64), log *slog.Logger) *Receiver {
	r := &Receiver{
		conn:     conn,
		dev:      dev,
		open:     open,
		onEpoch:  onEpoch,
		log:      log,
		flows:    make(map[flowKey]*flow),
		overflow: &flow{},
		resync:   make(chan netip.Addr, 256),
	}
	r.Configure(key, m)
	return r
}

// Configure replaces what the receiver side accepts; routineReceive applies it from its next
// batch on.
func (r *Receiver) Configure(key uint32, m config.Member) {
	p := &policy{key: key, sources: make(map[[4]byte]bool), mtu: m.MTU}
	for _, s := range m.Sources {
		p.sources[s.As4()] = true
	}
	if len(m.Groups) > 0 {
		p.groups = make(map[[4]byte]bool)
		for _, g := range m.Groups {
			p.groups[g.As4()] = true
		}
	}
	r.policy.Store(p)
}

// DivertReports hands the membership reports that reach the tunnel port to reports (see the
// top of this file). It must be called before Run.
func (r *Receiver) DivertReports(reports *Reports) { r.reports = reports }

// Resync makes the flows of group start their sequence accounting afresh with their next
// packet, as on their first: the member (re)joined the group, and what its sources sent
// while it was not a member is no loss. Safe to call while Run runs; a burst of more than
// 256 groups between two batches loses the rest, which then count that gap as loss.
func (r *Receiver) Resync(group netip.Addr) {
	if r.account != nil {
		if err := r.account.Resync(group); err != nil {
			r.log.Warn("cannot restart the group's accounting in the kernel path's flows", "group", group, "err", err)
		}
		return
	}
	select {
	case r.resync <- group:
	default:
	}
}

// applyResync resets the flows of the groups Resync named; routineReceive's own.
func (r *Receiver) applyResync() {
	for {
		select {
		case g := <-r.resync:
			for k, f := range r.flows {
				if k.group == g.As4() {
					f.seq = seqTracker{}
				}
			}
		default:
			return
		}
	}
}

// Run runs routineReceive, and routineDrainTUN when drainTUN is set, until the Conn is closed.
func (r *Receiver) Run(drainTUN bool) error {
	if drainTUN {
		go r.routineDrainTUN()
	}
	return r.routineReceive()
}

// routineReceive is the inbound flow described at the top of this file.
func (r *Receiver) routineReceive() error {
	batch := r.conn.BatchSize()
	var bufs [][]byte
	mtu := 0
	sizes := make([]int, batch)
	from := make([]netip.AddrPort, batch)
	out := make([][]byte, 0, batch)
	outs := make([]delivery, 0, batch)
	for {
		if p := r.policy.Load(); p.mtu != mtu {
			// Each buffer holds the largest tunnel packet whose inner packet fits the TUN,
			// or the largest membership report if that is larger (on a host that is a
			// source too, with a small MTU), and one byte more: a datagram that fills it is
			// too big, whatever its length.
			mtu = p.mtu
			bufs = makeBufs(batch, max(encap.HeaderLen+encap.AuthHeaderLen+mtu+encap.TagLen, reportBufSize-1)+1)
		}
		n, err := r.conn.ReadBatch(bufs, sizes, from)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if len(r.resync) > 0 {
			r.applyResync()
		}
		p := r.policy.Load()
		out, outs = out[:0], outs[:0]
		for i := range n {
			if sizes[i] == len(bufs[i]) { // filled: longer than any packet the TUN takes
				r.drops.Add(TooBig)
				continue
			}
			if inner, d, ok := r.accept(p, from[i].Addr().As4(), bufs[i][:sizes[i]]); ok {
				out = append(out, inner)
				outs = append(outs, d)
			}
		}
		if err := r.write(out, outs); err != nil {
			return err
		}
	}
}

// accept takes one tunnel packet from src through steps 2 and 3 of the flow: it returns the
// inner packet to write and how to account it, or false when the packet was dropped (and
// counted).
func (r *Receiver) accept(p *policy, src [4]byte, pkt []byte) ([]byte, delivery, bool) {
	if !p.sources[src] {
		if r.reports != nil && r.reports.Take(src, pkt) {
			return nil, delivery{}, false
		}
		r.drops.Add(UnknownSource)
		return nil, delivery{}, false
	}
	h, inner, err := r.decapsulate(src, pkt)
	if err != nil {
		return nil, delivery{}, false // counted
	}
	if r.reports != nil && igmp.IsReport(inner) {
		r.reports.AcceptInner(src, h, inner)
		return nil, delivery{}, false
	}
	if h.Key != p.key {
		r.drops.Add(WrongKey)
		return nil, delivery{}, false
	}
	in, err := encap.CheckInner(inner)
	if err != nil {
		r.drops.Add(InnerReason(err))
		return nil, delivery{}, false
	}
	if p.groups != nil && !p.groups[in.Dst.As4()] {
		r.drops.Add(GroupNotAllowed)
		return nil, delivery{}, false
	}
	if len(inner) > p.mtu {
		r.drops.Add(TooBig)
		return nil, delivery{}, false
	}
	if r.open == nil && in.HasPort && !in.Fragment && capture.ChecksumUnfinished(inner) {
		capture.CompleteChecksum(inner) // a kernel-path source's offload: see ChecksumUnfinished
	}
	d := delivery{source: src, group: in.Dst.As4(), seq: h.Seq}
	if r.account == nil {
		d.f = r.flow(src, in.Dst)
		d.f.account(d.f.seq.observe(h.Seq))
	}
	return inner, d, true
}

// decapsulate returns a tunnel packet's header and inner packet, checking the tag first
// when there is a secret. A packet it refuses is counted, by reason.
func (r *Receiver) decapsulate(src [4]byte, pkt []byte) (encap.Header, []byte, error) {
	if r.open == nil {
		h, inner, err := encap.ParseHeader(pkt)
		if err != nil {
			r.drops.Add(BadTunnelHeader)
		}
		return h, inner, err
	}
	res, inner, err := r.open.Open(src, pkt)
	if res.New { // also when refused as not encrypted: the tag was good
		r.newInstance(src, res)
	}
	if err != nil {
		r.drops.Add(openReason(err))
		return encap.Header{}, nil, err
	}
	return res.Header, inner, nil
}

// newInstance learns of a sending instance the Opener authenticated for the first time. If
// the source restarted, its flows start their sequence accounting afresh: the new run counts
// from 0, and that is no loss.
func (r *Receiver) newInstance(src [4]byte, res encap.Opened) {
	if r.onEpoch != nil {
		r.onEpoch(netip.AddrFrom4(src), res.Epoch)
	}
	if !res.Restarted {
		return
	}
	r.log.Info("sender restarted", "source", netip.AddrFrom4(src))
	for k, f := range r.flows {
		if k.source == src {
			f.seq = seqTracker{}
			f.restart.Add(1)
		}
	}
}

// write injects the batch into the TUN and accounts each packet for its flow. A packet the
// kernel refuses is counted and skipped.
func (r *Receiver) write(out [][]byte, ds []delivery) error {
	for len(out) > 0 {
		n, err := r.dev.Write(out, 0)
		for i := range n {
			r.delivered(ds[i], len(out[i]))
			r.taps.Offer(out[i], netip.AddrFrom4(ds[i].group))
		}
		if err != nil && errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err == nil {
			break
		}
		r.drops.Add(TUNWriteFailed)
		if ok, suppressed := r.tunLogs.Allow(); ok {
			r.log.Warn("the kernel refused a packet written to the TUN", "err", err, "not_logged", suppressed)
		}
		r.delivered(ds[n], 0)
		out, ds = out[n+1:], ds[n+1:]
	}
	if r.account != nil {
		if err := r.account.Flush(); err != nil {
			if ok, suppressed := r.accountLogs.Allow(); ok {
				r.log.Warn("cannot account delivered packets in the kernel path's flows", "err", err, "not_logged", suppressed)
			}
		}
	}
	return nil
}

// delivered accounts a packet written into the TUN (n bytes), or refused there (0).
func (r *Receiver) delivered(d delivery, n int) {
	switch {
	case d.f != nil && n > 0:
		d.f.packets.Add(1)
		d.f.bytes.Add(uint64(n))
	case r.account != nil:
		if err := r.account.Observe(d.source, d.group, d.seq, n); err != nil {
			if ok, suppressed := r.accountLogs.Allow(); ok {
				r.log.Warn("cannot account delivered packets in the kernel path's flows", "err", err, "not_logged", suppressed)
			}
		}
	}
}

// flow returns the flow of a source and group, creating it on first sight.
func (r *Receiver) flow(src [4]byte, group netip.Addr) *flow {
	k := flowKey{src, group.As4()}
	if f := r.flows[k]; f != nil {
		return f
	}
	if len(r.flows) >= maxFlows {
		return r.overflow
	}
	f := &flow{source: netip.AddrFrom4(src), group: group}
	r.flows[k] = f
	r.flowsMu.Lock()
	r.flowList = append(r.flowList, f)
	r.flowsMu.Unlock()
	return f
}

func (f *flow) account(res seqResult) {
	if res.lost != 0 {
		f.lost.Add(res.lost)
	}
	switch {
	case res.reordered:
		f.reordered.Add(1)
	case res.duplicate:
		f.duplicates.Add(1)
	case res.restarted:
		f.restart.Add(1)
	}
}

// routineDrainTUN reads and counts what the host sends into the TUN when no sender side takes
// it (a member that is not also a source).
func (r *Receiver) routineDrainTUN() {
	bufs := makeBufs(r.dev.BatchSize(), r.dev.MaxPacketSize())
	sizes := make([]int, len(bufs))
	for {
		n, err := r.dev.Read(bufs, sizes, 0)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.log.Error("reading the TUN stopped", "err", err)
			}
			return
		}
		r.drained.Add(uint64(n))
	}
}
