package datapath

/* Outbound flow: the sender side, in routineCapture, one per capture source.

	capture -> encapsulate -> fan out to members

1. capture: read a batch of outgoing multicast packets from the capture.Source, each copied in
   behind encap.Headroom bytes of headroom.
2. classify: check the inner packet (encap.CheckInner), then find its group by destination
   address and, for UDP, destination port. A fragment after the first carries no port: it
   follows the group its first fragment matched.
3. encapsulate: write the GRE header (key, and the group's next sequence number) into the
   headroom; with a secret, seal the packet instead (auth header, tag, and encryption if
   asked for: encap.Sealer). The inner packet is not copied again, and all members of the
   group get the same bytes.
4. fan out: queue that one tunnel packet once per member of the group, and send the queue with
   one encap.Conn.WriteBatch (sendmmsg) per batch. A member whose send fails is counted and
   skipped; the others are not held up.

A tap (mctun dump) gets a copy of each inner packet that has a group, at step 2.
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
	"mctun/internal/loglimit"
)

// fanoutQueue is how many tunnel-packet copies the fan-out queues before it sends.
const fanoutQueue = 1024

// Sender is the sender side. Its key and groups can be replaced while it runs (Configure).
type Sender struct {
	conn  encap.Conn
	seal  *encap.Sealer // nil: the plain form
	log   *slog.Logger
	table atomic.Pointer[groupTable]
	drops Drops
	taps  Taps
	seqs  Sequences // nil: every group keeps its own

	setMu sync.Mutex // serializes Configure
}

// groupTable is an immutable snapshot of the key and the groups, swapped whole by Configure.
type groupTable struct {
	key    uint32
	byAddr map[[4]byte]*addrGroups
	groups []*groupRoute // in config order
}

// addrGroups are the groups of one multicast address: at most one without a port, which
// takes every packet to the address, and any number with one.
type addrGroups struct {
	all    *groupRoute
	byPort map[uint16]*groupRoute
}

// groupRoute is one group in one table: its long-lived state and its current members.
type groupRoute struct {
	*groupState
	members []*memberState
}

// groupState outlives table swaps, so a group that stays configured keeps its sequence
// numbers and counters.
type groupState struct {
	addr    netip.Addr
	port    uint16
	seq     *atomic.Uint32 // next sequence number: own, or shared with the kernel path
	own     atomic.Uint32
	packets atomic.Uint64 // captured and sent on
	bytes   atomic.Uint64
	logs    loglimit.Limiter // of its members' failing and recovering, all of them together
}

// memberState is one member of one group, also long-lived.
type memberState struct {
	ip      [4]byte // its address, compact: a sender may have tens of thousands
	port    uint16
	packets atomic.Uint64
	bytes   atomic.Uint64
	errors  atomic.Uint64
	lastErr atomic.Pointer[string] // set while failing
	group   *groupState
}

type groupKey struct {
	addr netip.Addr
	port uint16
}

type memberKey struct {
	group  groupKey
	member netip.AddrPort
}

// NewSender returns a sender side that sends through conn with the given GRE key; with a
// Sealer, in the authenticated form.
func NewSender(conn encap.Conn, key uint32, groups []config.Group, seal *encap.Sealer, log *slog.Logger) *Sender {
	s := &Sender{conn: conn, seal: seal, log: log}
	s.Configure(key, groups)
	return s
}

// Configure replaces the key and the groups. Groups and members that stay keep their sequence
// numbers and counters, and packets in flight are not disturbed: the capture loops pick up
// the new table at their next batch.
func (s *Sender) Configure(key uint32, groups []config.Group) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	oldGroups := make(map[groupKey]*groupState)
	oldMembers := make(map[memberKey]*memberState)
	if old := s.table.Load(); old != nil {
		for _, g := range old.groups {
			gk := groupKey{g.addr, g.port}
			oldGroups[gk] = g.groupState
			for _, m := range g.members {
				oldMembers[memberKey{gk, m.addr()}] = m
			}
		}
	}
	t := &groupTable{key: key, byAddr: make(map[[4]byte]*addrGroups)}
	for _, g := range groups {
		gk := groupKey{g.Address, g.Port}
		state := oldGroups[gk]
		if state == nil {
			state = s.newGroupState(g.Address, g.Port)
		}
		r := &groupRoute{groupState: state, members: make([]*memberState, len(g.Members))}
		for i, addr := range g.Members {
			m := oldMembers[memberKey{gk, addr}]
			if m == nil {
				m = &memberState{ip: addr.Addr().As4(), port: addr.Port(), group: state}
			}
			r.members[i] = m
		}
		t.groups = append(t.groups, r)
		ag := t.byAddr[g.Address.As4()]
		if ag == nil {
			ag = &addrGroups{byPort: make(map[uint16]*groupRoute)}
			t.byAddr[g.Address.As4()] = ag
		}
		if g.Port == 0 {
			ag.all = r
		} else {
			ag.byPort[g.Port] = r
		}
	}
	s.table.Store(t)
}

// Sequences gives the sender side a group's sequence counter when another packet path
// forwards the group's packets too (the kernel path), so that the group has one sequence;
// nil means the sender side keeps the group's own.
type Sequences func(addr netip.Addr, port uint16) *atomic.Uint32

// ShareSequences makes the groups take their sequence numbers from seqs, from now on and
// after every Configure. Call it before Run.
func (s *Sender) ShareSequences(seqs Sequences) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	s.seqs = seqs
	for _, g := range s.table.Load().groups {
		if seq := seqs(g.addr, g.port); seq != nil {
			g.seq = seq
		}
	}
}

func (s *Sender) newGroupState(addr netip.Addr, port uint16) *groupState {
	g := &groupState{addr: addr, port: port}
	g.seq = &g.own
	if s.seqs != nil {
		if seq := s.seqs(addr, port); seq != nil {
			g.seq = seq
		}
	}
	return g
}

// Run runs routineCapture for every source until all of them are closed. It returns the first
// error other than a source being closed.
func (s *Sender) Run(sources ...capture.Source) error {
	errs := make(chan error, len(sources))
	for _, src := range sources {
		go func() { errs <- s.routineCapture(src) }()
	}
	var first error
	for range sources {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// routineCapture is the outbound flow described at the top of this file, for one source.
func (s *Sender) routineCapture(src capture.Source) error {
	b := s.newBatch(src.BatchSize(), src.MaxPacketSize())
	for {
		n, err := src.Read(b.bufs, b.sizes, encap.Headroom)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if err := s.forward(b, n); err != nil {
			return err
		}
	}
}

// batch is one capture loop's buffers and scratch, reused from batch to batch.
type batch struct {
	bufs     [][]byte
	sizes    []int
	bufSize  int
	maxInner int      // the largest inner packet a tunnel packet carries
	spare    [][]byte // second copies, for a packet that two groups of one address take
	frags    fragmentTracker
	out      *fanout
}

func (s *Sender) newBatch(n, maxPacket int) *batch {
	b := &batch{
		bufSize:  encap.Headroom + maxPacket + encap.Tailroom,
		sizes:    make([]int, n),
		maxInner: encap.MaxPacket - encap.HeaderLen,
		out:      newFanout(fanoutQueue),
	}
	b.bufs = makeBufs(n, b.bufSize)
	if s.seal != nil {
		b.maxInner -= encap.AuthHeaderLen + encap.TagLen
	}
	return b
}

// forward takes the n captured packets in b from step 2 of the flow on: classify,
// encapsulate, fan out.
func (s *Sender) forward(b *batch, n int) error {
	t := s.table.Load()
	spares := 0
	for i := range n {
		inner := b.bufs[i][encap.Headroom : encap.Headroom+b.sizes[i]]
		in, err := encap.CheckInner(inner)
		if err != nil {
			s.drops.Add(InnerReason(err))
			continue
		}
		if len(inner) > b.maxInner {
			s.drops.Add(TooBig)
			continue
		}
		all, byPort := t.lookup(in, &b.frags)
		if all == nil && byPort == nil {
			s.drops.Add(NoGroup)
			continue
		}
		s.taps.Offer(inner, in.Dst)
		// A packet of both its port's group and its address's goes out under two headers,
		// the second from a copy of its own, taken before the first Seal, which encrypts in
		// place.
		buf, second := b.bufs[i], []byte(nil)
		if byPort != nil && all != nil {
			if spares == len(b.spare) {
				b.spare = append(b.spare, make([]byte, b.bufSize))
			}
			second = b.spare[spares]
			spares++
			copy(second[encap.Headroom:], inner)
		}
		for _, g := range [2]*groupRoute{byPort, all} {
			if g == nil {
				continue
			}
			h := encap.Header{Key: t.key, Seq: g.seq.Add(1) - 1}
			var pkt []byte
			if s.seal != nil {
				pkt = s.seal.Seal(buf, len(inner), h)
			} else {
				pkt = encap.Encapsulate(buf, len(inner), h)
			}
			buf = second
			g.packets.Add(1)
			g.bytes.Add(uint64(len(inner)))
			for _, m := range g.members {
				if b.out.full() {
					if err := s.flush(b.out); err != nil {
						return err
					}
				}
				b.out.add(pkt, m)
			}
		}
	}
	return s.flush(b.out)
}

// lookup finds the groups an inner packet belongs to: the one without a port for its address,
// and the one for its UDP port. A first fragment's port match is remembered for the rest of
// its datagram.
func (t *groupTable) lookup(in encap.Inner, frags *fragmentTracker) (all, byPort *groupRoute) {
	ag := t.byAddr[in.Dst.As4()]
	if ag == nil {
		return nil, nil
	}
	if len(ag.byPort) > 0 {
		switch {
		case in.HasPort:
			byPort = ag.byPort[in.Port]
			if in.Fragment {
				frags.remember(in, byPort)
			}
		case in.Fragment && !in.First:
			byPort = frags.recall(in)
		}
	}
	return ag.all, byPort
}

// fanout queues the copies of tunnel packets to send, one per member.
type fanout struct {
	bufs    [][]byte
	addrs   []netip.AddrPort
	members []*memberState
	errs    []error
}

func newFanout(n int) *fanout {
	return &fanout{
		bufs:    make([][]byte, 0, n),
		addrs:   make([]netip.AddrPort, 0, n),
		members: make([]*memberState, 0, n),
		errs:    make([]error, n),
	}
}

func (f *fanout) full() bool { return len(f.bufs) == cap(f.bufs) }

func (f *fanout) add(pkt []byte, m *memberState) {
	f.bufs = append(f.bufs, pkt)
	f.addrs = append(f.addrs, m.addr())
	f.members = append(f.members, m)
}

// flush sends the queue and counts each copy against its member.
func (s *Sender) flush(f *fanout) error {
	if len(f.bufs) == 0 {
		return nil
	}
	defer f.reset() // sent or not, the queue starts again empty
	errs := f.errs[:len(f.bufs)]
	if err := s.conn.WriteBatch(f.bufs, f.addrs, errs); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
	for i, m := range f.members {
		if errs[i] != nil {
			m.fail(errs[i], s.log)
			continue
		}
		m.packets.Add(1)
		m.bytes.Add(uint64(len(f.bufs[i])))
		if m.lastErr.Load() != nil {
			m.recovered(s.log)
		}
	}
	return nil
}

func (f *fanout) reset() { f.bufs, f.addrs, f.members = f.bufs[:0], f.addrs[:0], f.members[:0] }

func (m *memberState) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(m.ip), m.port)
}

// fail counts a failed send and logs when the member starts failing, not at every packet.
// Its group's log limiter lets one such line through per 10 s, saying how many were held back:
// a member that flaps, or thousands that fail at once, cannot flood the log (mctun stats has
// every member's state).
func (m *memberState) fail(err error, log *slog.Logger) {
	m.errors.Add(1)
	m.failing(err, log)
}

// failing marks the member failing with err, logging it if it was not already.
func (m *memberState) failing(err error, log *slog.Logger) {
	if m.lastErr.Load() == nil {
		msg := err.Error()
		m.lastErr.Store(&msg)
		if ok, suppressed := m.group.logs.Allow(); ok {
			log.Warn("member failing", "group", m.group.addr, "member", m.addr(), "err", msg, "not_logged", suppressed)
		}
	}
}

// recovered marks the member no longer failing, and logs it.
func (m *memberState) recovered(log *slog.Logger) {
	m.lastErr.Store(nil)
	if ok, suppressed := m.group.logs.Allow(); ok {
		log.Info("member reachable again", "group", m.group.addr, "member", m.addr(), "not_logged", suppressed)
	}
}

// MemberFailing tells the sender side what another packet path sending to a member of a
// group found: that sends to it fail with err, or, with a nil err, that they no longer do.
// The member shows as failing, and the log says so once, as when the sender side's own
// sends fail.
func (s *Sender) MemberFailing(addr netip.Addr, port uint16, member netip.AddrPort, err error) {
	ag := s.table.Load().byAddr[addr.As4()]
	if ag == nil {
		return
	}
	g := ag.all
	if port != 0 {
		g = ag.byPort[port]
	}
	if g == nil {
		return
	}
	for _, m := range g.members {
		switch {
		case m.addr() != member:
		case err != nil:
			m.failing(err, s.log)
		case m.lastErr.Load() != nil:
			m.recovered(s.log)
		}
	}
}

// fragmentTracker remembers which port group the first fragment of a recent datagram matched,
// keyed by what ties fragments together (source, group, IP id, protocol). A small direct-mapped
// table is enough: a host's stack emits a datagram's fragments back to back.
type fragmentTracker struct {
	slots [256]fragmentSlot
}

type fragmentSlot struct {
	src, dst netip.Addr
	id       uint16
	proto    uint8
	group    *groupRoute
}

func (ft *fragmentTracker) slot(in encap.Inner) *fragmentSlot {
	return &ft.slots[uint8(in.ID)^in.Src.As4()[3]]
}

func (ft *fragmentTracker) remember(in encap.Inner, g *groupRoute) {
	*ft.slot(in) = fragmentSlot{src: in.Src, dst: in.Dst, id: in.ID, proto: in.Proto, group: g}
}

func (ft *fragmentTracker) recall(in encap.Inner) *groupRoute {
	s := ft.slot(in)
	if s.src == in.Src && s.dst == in.Dst && s.id == in.ID && s.proto == in.Proto {
		return s.group
	}
	return nil
}

func makeBufs(n, size int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs
}
