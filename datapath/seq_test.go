package datapath

import "testing"

func TestSeqTracker(t *testing.T) {
	type totals struct{ lost, reordered, duplicates, restarts int64 }
	tests := []struct {
		name string
		seqs []uint32
		want totals
	}{
		{"in order", []uint32{0, 1, 2, 3}, totals{}},
		{"joined late", []uint32{5000, 5001}, totals{}},
		{"gap", []uint32{0, 1, 4, 5}, totals{lost: 2}},
		{"reordered", []uint32{0, 2, 1, 3}, totals{reordered: 1}},
		{"duplicate", []uint32{0, 1, 1, 2, 0}, totals{duplicates: 2}},
		{"late after gap then duplicate", []uint32{0, 3, 1, 1, 2}, totals{reordered: 2, duplicates: 1}},
		{"wraps", []uint32{0xfffffffe, 0xffffffff, 0, 1}, totals{}},
		{"gap across wrap", []uint32{0xfffffffe, 1}, totals{lost: 2}},
		{"big gap", []uint32{0, 10000, 10001}, totals{lost: 9999}},
		{"duplicate after big gap is new", []uint32{0, 5000, 3990, 3990}, totals{lost: 4999 - 1, reordered: 1, duplicates: 1}},
		{"sender restart", []uint32{70000, 70001, 0, 1, 2}, totals{restarts: 1}},
		{"overtaken first", []uint32{5001, 5000, 5002}, totals{reordered: 1}},
		{"overtaken first, then a gap", []uint32{5001, 5000, 5003, 5002}, totals{reordered: 2}},
		{"from before the start, restarted", []uint32{70000, 0, 2, 1, 0xffffffff}, totals{restarts: 1, reordered: 2}},
		{"late within the window, long after the start", []uint32{0, 2000, 1500}, totals{lost: 1999 - 1, reordered: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr seqTracker
			var got totals
			for _, s := range tt.seqs {
				r := tr.observe(s)
				got.lost += r.lost
				if r.reordered {
					got.reordered++
				}
				if r.duplicate {
					got.duplicates++
				}
				if r.restarted {
					got.restarts++
				}
			}
			if got != tt.want {
				t.Fatalf("observe(%v) totals %+v, want %+v", tt.seqs, got, tt.want)
			}
		})
	}
}
