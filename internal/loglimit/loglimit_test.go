package loglimit

import (
	"testing"
	"time"
)

func TestOnePerEvery(t *testing.T) {
	var l Limiter // one per 10 s
	t0 := time.Unix(1000, 0)
	if ok, n := l.allowAt(t0); !ok || n != 0 {
		t.Fatalf("first: %v, %d; want true, 0", ok, n)
	}
	for i := range 3 {
		if ok, _ := l.allowAt(t0.Add(time.Duration(i+1) * time.Second)); ok {
			t.Fatal("let through again within 10 s")
		}
	}
	if ok, n := l.allowAt(t0.Add(10 * time.Second)); !ok || n != 3 {
		t.Fatalf("after 10 s: %v, %d; want true and the 3 held back", ok, n)
	}
	if ok, _ := l.allowAt(t0.Add(11 * time.Second)); ok {
		t.Fatal("let through 1 s after the last")
	}
}

func TestBurstThenRate(t *testing.T) {
	l := Limiter{Burst: 3, Every: time.Second}
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.allowAt(t0); !ok {
			t.Fatalf("line %d of the burst held back", i+1)
		}
	}
	if ok, _ := l.allowAt(t0); ok {
		t.Fatal("a fourth line at once let through")
	}
	if ok, n := l.allowAt(t0.Add(time.Second)); !ok || n != 1 {
		t.Fatalf("a second later: %v, %d; want true and the 1 held back", ok, n)
	}
	// A long quiet spell refills the burst, no more.
	for i := range 4 {
		ok, _ := l.allowAt(t0.Add(time.Hour))
		if want := i < 3; ok != want {
			t.Fatalf("after an hour, line %d: %v, want %v", i+1, ok, want)
		}
	}
}
