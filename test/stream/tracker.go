package stream

// Tracker counts the sequence numbers of one stream: which arrived, which arrived twice and
// which arrived after a higher one. It keeps one bit per sequence number, grown on demand up
// to a limit. A Tracker is not safe for concurrent use.
type Tracker struct {
	seen  []uint64 // bit seq%64 of word seq/64 is set once seq arrived
	limit uint64   // sequence numbers >= limit are counted in OutOfRange, not tracked

	Unique     uint64 // sequence numbers seen at least once
	Duplicates uint64 // arrivals of a sequence number already seen
	Reordered  uint64 // first arrivals of a sequence number lower than the highest seen
	OutOfRange uint64 // arrivals with a sequence number >= the limit
	First      uint64 // lowest sequence number seen; valid when Unique > 0
	Last       uint64 // highest sequence number seen; valid when Unique > 0
}

// NewTracker returns a Tracker for sequence numbers below limit. Its memory grows with the
// highest sequence number seen, to at most limit/8 bytes.
func NewTracker(limit uint64) *Tracker {
	return &Tracker{limit: limit}
}

// Add records one arrival of seq and reports whether it is new, that is neither a duplicate
// nor out of range.
func (t *Tracker) Add(seq uint64) bool {
	if seq >= t.limit {
		t.OutOfRange++
		return false
	}
	word, bit := seq/64, uint64(1)<<(seq%64)
	t.grow(word)
	if t.seen[word]&bit != 0 {
		t.Duplicates++
		return false
	}
	t.seen[word] |= bit
	switch {
	case t.Unique == 0:
		t.First, t.Last = seq, seq
	case seq > t.Last:
		t.Last = seq
	default:
		t.Reordered++
		t.First = min(t.First, seq)
	}
	t.Unique++
	return true
}

// Seen reports whether seq has arrived.
func (t *Tracker) Seen(seq uint64) bool {
	word := seq / 64
	return word < uint64(len(t.seen)) && t.seen[word]&(1<<(seq%64)) != 0
}

// Missing is the number of sequence numbers between First and Last that never arrived.
func (t *Tracker) Missing() uint64 {
	if t.Unique == 0 {
		return 0
	}
	return t.Last - t.First + 1 - t.Unique
}

// grow makes word a valid index of t.seen, at least doubling the bitmap when it grows.
func (t *Tracker) grow(word uint64) {
	if word < uint64(len(t.seen)) {
		return
	}
	n := max(word+1, 2*uint64(len(t.seen)), 1024)
	n = min(n, (t.limit+63)/64)
	seen := make([]uint64, n)
	copy(seen, t.seen)
	t.seen = seen
}
