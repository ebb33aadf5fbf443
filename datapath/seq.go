package datapath

// seqWindow is how far behind the newest sequence number a late packet is still recognised as
// reordered or duplicated; anything further back means the sender started again from 0.
const seqWindow = 1024

// seqTracker accounts one flow's sequence numbers (one source, one group): packets lost,
// reordered and duplicated. It is owned by the receive loop; only its results are shared.
//
// A gap counts its missing numbers as lost at once; a missing number that turns up later
// within the window is taken back from lost and counted as reordered. The window is a bitmap
// of the seqWindow numbers below next.
type seqTracker struct {
	started bool
	next    uint32 // one past the newest number seen
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
		if d >= seqWindow {
			t.seen = [seqWindow / 64]uint64{}
		} else {
			for n := t.next; n != seq; n++ {
				t.clear(n)
			}
		}
		t.mark(seq)
		t.next = seq + 1
		return seqResult{lost: int64(d)}
	case d >= -seqWindow: // late
		if t.isMarked(seq) {
			return seqResult{duplicate: true}
		}
		t.mark(seq)
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
}

func (t *seqTracker) mark(n uint32)          { t.seen[n/64%(seqWindow/64)] |= 1 << (n % 64) }
func (t *seqTracker) clear(n uint32)         { t.seen[n/64%(seqWindow/64)] &^= 1 << (n % 64) }
func (t *seqTracker) isMarked(n uint32) bool { return t.seen[n/64%(seqWindow/64)]&(1<<(n%64)) != 0 }
