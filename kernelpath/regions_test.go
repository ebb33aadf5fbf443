package kernelpath

import (
	"testing"
	"time"
)

func TestRegions(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRegions(10, time.Second)
	a, ok := r.alloc(4, now)
	b, ok2 := r.alloc(4, now)
	if !ok || !ok2 || a != 0 || b != 4 {
		t.Fatalf("alloc 4, 4 = %d %v, %d %v; want 0, 4", a, ok, b, ok2)
	}
	if _, ok := r.alloc(3, now); ok {
		t.Fatal("allocated 3 of the 2 left")
	}
	r.release(a, 4, now)
	if _, ok := r.alloc(3, now.Add(time.Second/2)); ok {
		t.Fatal("a run released half a grace ago was handed out again")
	}
	c, ok := r.alloc(3, now.Add(time.Second))
	if !ok || c != 0 {
		t.Fatalf("after the grace, alloc 3 = %d %v, want 0", c, ok)
	}
	// Released runs join their neighbours again: 3..4 free, 4..8 released, 8..10 free.
	r.release(b, 4, now)
	r.release(c, 3, now)
	if got, ok := r.alloc(10, now.Add(2*time.Second)); !ok || got != 0 {
		t.Fatalf("after everything came back, alloc 10 = %d %v, want 0 (free runs %v)", got, ok, r.free)
	}
}
