package stream

import "testing"

func TestTracker(t *testing.T) {
	tests := []struct {
		name                         string
		arrivals                     []uint64
		unique, dups, reordered, oor uint64
		first, last, missing         uint64
	}{
		{name: "in order", arrivals: []uint64{0, 1, 2, 3}, unique: 4, first: 0, last: 3},
		{name: "duplicates", arrivals: []uint64{0, 1, 1, 2, 0}, unique: 3, dups: 2, first: 0, last: 2},
		{name: "reordered", arrivals: []uint64{0, 2, 1, 3}, unique: 4, reordered: 1, first: 0, last: 3},
		{name: "gap", arrivals: []uint64{10, 11, 15}, unique: 3, first: 10, last: 15, missing: 3},
		{name: "late start lower", arrivals: []uint64{5, 3}, unique: 2, reordered: 1, first: 3, last: 5, missing: 1},
		{name: "out of range", arrivals: []uint64{1, 1 << 20, 2}, unique: 2, oor: 1, first: 1, last: 2},
		{name: "grows past first bitmap", arrivals: []uint64{0, 70000, 1000, 70000}, unique: 3, dups: 1, reordered: 1, first: 0, last: 70000, missing: 69998},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(1 << 20)
			for _, s := range tt.arrivals {
				tr.Add(s)
			}
			if tr.Unique != tt.unique || tr.Duplicates != tt.dups || tr.Reordered != tt.reordered || tr.OutOfRange != tt.oor {
				t.Errorf("unique/dups/reordered/oor = %d/%d/%d/%d, want %d/%d/%d/%d",
					tr.Unique, tr.Duplicates, tr.Reordered, tr.OutOfRange, tt.unique, tt.dups, tt.reordered, tt.oor)
			}
			if tr.First != tt.first || tr.Last != tt.last || tr.Missing() != tt.missing {
				t.Errorf("first/last/missing = %d/%d/%d, want %d/%d/%d",
					tr.First, tr.Last, tr.Missing(), tt.first, tt.last, tt.missing)
			}
			for _, s := range tt.arrivals {
				if s < 1<<20 && !tr.Seen(s) {
					t.Errorf("Seen(%d) = false after it arrived", s)
				}
			}
		})
	}
}

func TestTrackerAddReportsNew(t *testing.T) {
	tr := NewTracker(100)
	if !tr.Add(7) || tr.Add(7) || tr.Add(100) {
		t.Fatal("Add(7), Add(7), Add(100) should report true, false, false")
	}
	if tr.Seen(8) || tr.Seen(1<<30) {
		t.Fatal("Seen reports a sequence number that never arrived")
	}
}

func TestTrackerLimitCapsMemory(t *testing.T) {
	tr := NewTracker(130)
	tr.Add(129)
	if len(tr.seen) != 3 {
		t.Fatalf("bitmap has %d words, want 3 for limit 130", len(tr.seen))
	}
}
