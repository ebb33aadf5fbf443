package datapath

import "mctun/internal/bitring"

// seqWindow is how far behind the newest sequence number a late packet is still recognised as
// reordered or duplicated; anything further back means the sender started again from 0.
const seqWindow = 1024

// seqTracker accounts one flow's sequence numbers (one source, one group): packets lost,
// reordered and duplicated. It is owned by the receive loop; only its results are shared.
//
// A gap counts its missing numbers as lost at once; a missing number that turns up later
// within the window is taken back from lost and counted as reordered. The window is a bitmap
// of the seqWindow numbers below next. A late number from before the one the accounting
// started at was never counted lost: it is only reordered.
type seqTracker struct {
	started bool
	next    uint32 // one past the newest number seen
	first   uint32 // the number the accounting (re)started at
	seen    [seqWindow / 64]uint64
}

// seqResult is what one packet's number says about the flow.
type seqResult struct {
	lost      int64 // numbers newly found missing (negative: a late packet filled a gap)
	reordered bool
	duplicate bool
	restarted bool // the sender started again
}

func (t *seqTracker) observe(seq uint32) seqResult {
	if !t.started { // whatever came before this member listened is not its loss
		t.started = true
		t.reset(seq)
		return seqResult{}
	}
	d := int32(seq - t.next)
	switch {
	case d >= 0: // new: in order (d == 0) or after a gap
		bitring.Clear(t.seen[:], uint64(t.next), uint64(d))
		t.mark(seq)
		t.next = seq + 1
		return seqResult{lost: int64(d)}
	case d >= -seqWindow: // late
		if t.isMarked(seq) {
			return seqResult{duplicate: true}
		}
		t.mark(seq)
		if t.beforeStart(seq) {
			return seqResult{reordered: true}
		}
		return seqResult{lost: -1, reordered: true}
	default: // far behind: the sender restarted its numbering
		t.reset(seq)
		return seqResult{restarted: true}
	}
}

func (t *seqTracker) reset(seq uint32) {
	t.seen = [seqWindow / 64]uint64{}
	t.mark(seq)
	t.next = seq + 1
	t.first = seq
}

// beforeStart reports whether a late number is below the one the accounting started at,
// while that is still within the window.
func (t *seqTracker) beforeStart(seq uint32) bool {
	return t.next-t.first <= seqWindow && int32(seq-t.first) < 0
}

// The numbers wrap at 2^32, a multiple of the window: a number's bit stays its bit across it.
func (t *seqTracker) mark(n uint32)          { bitring.Set(t.seen[:], uint64(n)) }
func (t *seqTracker) isMarked(n uint32) bool { return bitring.Has(t.seen[:], uint64(n)) }
