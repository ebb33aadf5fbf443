package main

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    string
		wantErr string
	}{
		{args: ""},
		{args: "-group 224.0.0.18 -proto 112 -size 65515"},
		{args: "-group 198.18.2.2 -rate 100000 -size 16"},
		{args: "-group ff02::1", wantErr: "not an IPv4 address"},
		{args: "-size 15", wantErr: "-size 15"},
		{args: "-size 65508", wantErr: "-size 65508"},
		{args: "-count 0", wantErr: "-count"},
		{args: "-duration 0s", wantErr: "-duration"},
		{args: "-rate -1", wantErr: "-rate"},
		{args: "-ttl 256", wantErr: "-ttl"},
		{args: "-port 0", wantErr: "-port 0"},
		{args: "-proto 0", wantErr: "-proto 0"},
		{args: "-batch 0", wantErr: "-batch 0"},
		{args: "extra", wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		_, err := parseFlags(strings.Fields(tt.args))
		if tt.wantErr == "" && err != nil {
			t.Errorf("%q: %v", tt.args, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%q: err = %v, want one containing %q", tt.args, err, tt.wantErr)
		}
	}
}

func TestDue(t *testing.T) {
	start := time.Unix(100, 0)
	tests := []struct {
		name    string
		rate    float64
		count   uint64
		elapsed time.Duration
		seq     uint64
		want    int
	}{
		{name: "unpaced: a batch", rate: 0, count: 1000, seq: 10, want: 64},
		{name: "unpaced: the rest", rate: 0, count: 1000, seq: 990, want: 10},
		{name: "first packet at once", rate: 1000, count: 1000, elapsed: 0, seq: 0, want: 1},
		{name: "not yet due", rate: 1000, count: 1000, elapsed: 4500 * time.Microsecond, seq: 5, want: 0},
		{name: "due now", rate: 1000, count: 1000, elapsed: 5 * time.Millisecond, seq: 5, want: 1},
		{name: "catch up after a late wake-up", rate: 1000, count: 1000, elapsed: 30 * time.Millisecond, seq: 5, want: 26},
		{name: "catch up at most a batch", rate: 100000, count: 1e6, elapsed: 10 * time.Millisecond, seq: 0, want: 64},
	}
	for _, tt := range tests {
		s := &sender{cfg: config{rate: tt.rate, count: tt.count}, msgs: make([]ipv4.Message, 64)}
		if got := s.due(start, start.Add(tt.elapsed), tt.seq); got != tt.want {
			t.Errorf("%s: due = %d, want %d", tt.name, got, tt.want)
		}
	}
}
