package datapath

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A Tap receives copies of inner packets for mctun dump: on the sender side each inner
// packet as it is sent to its group's members, on the receiver side each one as it is
// delivered into the TUN. Forwarding never waits for a tap: when its queue is full the copy
// is dropped and counted.
type Tap struct {
	Packets chan TapPacket
	group   netip.Addr // only this group; the zero Addr takes every group
	dropped atomic.Uint64
}

// TapPacket is one copied inner packet.
type TapPacket struct {
	Time time.Time
	Data []byte
}

// NewTap returns a tap for group (the zero Addr: every group) that queues up to queue
// packets.
func NewTap(group netip.Addr, queue int) *Tap {
	return &Tap{Packets: make(chan TapPacket, queue), group: group}
}

// Dropped is how many packets the tap missed because its reader fell behind.
func (t *Tap) Dropped() uint64 { return t.dropped.Load() }

// Taps is the set of taps on one side, copy-on-write: the packet path loads it with one
// atomic read, which finds nil while nobody dumps, and takes no lock.
type Taps struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*Tap]
}

// Add starts offering to t.
func (ts *Taps) Add(t *Tap) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var list []*Tap
	if cur := ts.list.Load(); cur != nil {
		list = slices.Clone(*cur)
	}
	list = append(list, t)
	ts.list.Store(&list)
}

// Remove stops offering to t, and returns how many taps are left.
func (ts *Taps) Remove(t *Tap) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	cur := ts.list.Load()
	if cur == nil {
		return 0
	}
	list := slices.DeleteFunc(slices.Clone(*cur), func(x *Tap) bool { return x == t })
	if len(list) == 0 {
		ts.list.Store(nil)
		return 0
	}
	ts.list.Store(&list)
	return len(list)
}

// Offer hands a copy of pkt, an inner packet to group, to every interested tap.
func (ts *Taps) Offer(pkt []byte, group netip.Addr) {
	list := ts.list.Load()
	if list == nil {
		return
	}
	now := time.Now()
	for _, t := range *list {
		t.Offer(now, pkt, group)
	}
}

// Offer hands the tap a copy of pkt, an inner packet to group seen at now, if the tap takes
// that group; a tap whose queue is full misses it, and counts it. The packet paths offer
// what they forward; so does the kernel path, from what its programs copy.
func (t *Tap) Offer(now time.Time, pkt []byte, group netip.Addr) {
	if t.group.IsValid() && t.group != group {
		return
	}
	select {
	case t.Packets <- TapPacket{Time: now, Data: slices.Clone(pkt)}:
	default:
		t.dropped.Add(1)
	}
}

// AddTap starts copying the inner packets the sender side sends to t.
func (s *Sender) AddTap(t *Tap) { s.taps.Add(t) }

// RemoveTap stops copying to t.
func (s *Sender) RemoveTap(t *Tap) { s.taps.Remove(t) }

// AddTap starts copying the inner packets the receiver side delivers to t.
func (r *Receiver) AddTap(t *Tap) { r.taps.Add(t) }

// RemoveTap stops copying to t.
func (r *Receiver) RemoveTap(t *Tap) { r.taps.Remove(t) }
