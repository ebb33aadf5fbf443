package datapath

import (
	"testing"
	"time"
)

func TestLogLimiter(t *testing.T) {
	var l logLimiter
	if ok, n := l.allow(); !ok || n != 0 {
		t.Fatalf("first allow = %v, %d; want true, 0", ok, n)
	}
	for range 3 {
		if ok, _ := l.allow(); ok {
			t.Fatal("allowed again within logEvery")
		}
	}
	l.last = l.last.Add(-logEvery - time.Second)
	if ok, n := l.allow(); !ok || n != 3 {
		t.Fatalf("allow after logEvery = %v, %d; want true and the 3 held back", ok, n)
	}
}
