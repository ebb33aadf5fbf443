package wakeups

import (
	"testing"
	"time"
)

// A goroutine that sleeps and wakes a hundred times makes its thread sleep and wake too.
func TestCountGrowsWithSleeps(t *testing.T) {
	before, err := Count()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		time.Sleep(100 * time.Microsecond)
	}
	after, err := Count()
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50 {
		t.Errorf("Count grew by %d over 100 sleeps, want at least 50", after-before)
	}
}
