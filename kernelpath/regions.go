package kernelpath

import (
	"sort"
	"time"
)

// regions hands out runs of consecutive indices of an array: each group's members are one
// run of the fanout array, so that the program walks them with one index. A run is written
// while no group points at it, then published by the group's route; one that is given up is
// free again only after grace, when no program that read the old route can still be reading
// it. The zero value is not ready: use newRegions.
type regions struct {
	free    []span // sorted by start, never adjacent
	pending []released
	grace   time.Duration
}

type span struct{ start, n uint32 }

type released struct {
	span
	at time.Time
}

func newRegions(size uint32, grace time.Duration) *regions {
	return &regions{free: []span{{0, size}}, grace: grace}
}

// alloc returns the start of a run of n indices (n > 0), first fit, or false when no run is
// long enough.
func (r *regions) alloc(n uint32, now time.Time) (uint32, bool) {
	r.reclaim(now)
	for i, s := range r.free {
		if s.n < n {
			continue
		}
		start := s.start
		if s.n == n {
			r.free = append(r.free[:i], r.free[i+1:]...)
		} else {
			r.free[i] = span{s.start + n, s.n - n}
		}
		return start, true
	}
	return 0, false
}

// release gives a run back; it can be handed out again once grace has passed.
func (r *regions) release(start, n uint32, now time.Time) {
	if n > 0 {
		r.pending = append(r.pending, released{span{start, n}, now})
	}
}

// reclaim frees what was released at least grace ago.
func (r *regions) reclaim(now time.Time) {
	kept := r.pending[:0]
	for _, p := range r.pending {
		if now.Sub(p.at) < r.grace {
			kept = append(kept, p)
			continue
		}
		r.insert(p.span)
	}
	r.pending = kept
}

// insert puts s back among the free runs, joining it with its neighbours.
func (r *regions) insert(s span) {
	i := sort.Search(len(r.free), func(i int) bool { return r.free[i].start > s.start })
	r.free = append(r.free, span{})
	copy(r.free[i+1:], r.free[i:])
	r.free[i] = s
	if i+1 < len(r.free) && r.free[i].start+r.free[i].n == r.free[i+1].start {
		r.free[i].n += r.free[i+1].n
		r.free = append(r.free[:i+1], r.free[i+2:]...)
	}
	if i > 0 && r.free[i-1].start+r.free[i-1].n == r.free[i].start {
		r.free[i-1].n += r.free[i].n
		r.free = append(r.free[:i], r.free[i+1:]...)
	}
}
