package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"mctun/daemon"
	"mctun/datapath"
)

// A source's refused reports: status names those that happened, stats lists every reason
// once, zeros included, with the reports the kernel dropped.
func TestJoinsPrintedOnce(t *testing.T) {
	st := daemon.Status{Source: &daemon.SourceStatus{Interface: "eth0", Joins: &daemon.JoinStatus{
		JoinFrom: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")},
		Reports: datapath.ReportStats{Accepted: 3,
			Refused: map[string]uint64{"not_in_join_from": 2, "malformed": 0}},
		SocketDrops: 5,
	}}}

	var status bytes.Buffer
	printStatus(&status, st)
	if got := status.String(); !strings.Contains(got, "reports: 3 accepted, refused: not in join from 2\n") {
		t.Errorf("status:\n%s", got)
	}

	var stats bytes.Buffer
	printStats(&stats, st)
	got := stats.String()
	for _, want := range []string{"reports: 3 accepted; dropped by the kernel: 5", "not in join from 2", "malformed 0"} {
		if n := strings.Count(got, want); n != 1 {
			t.Errorf("stats has %q %d times, want once:\n%s", want, n, got)
		}
	}
}

// What user space took of the source interface's multicast: from its capture, or on the
// kernel path from the hand-off, each named for what it is.
func TestCapturePrinted(t *testing.T) {
	for _, tt := range []struct {
		capture daemon.CaptureStatus
		want    string
	}{
		{daemon.CaptureStatus{Name: "eth0", Packets: 7, KernelDrop: 1, Truncated: 2},
			"  capture eth0: 7 packets, 1 dropped by the kernel (ring full), 2 too long for its frames (not forwarded)\n"},
		{daemon.CaptureStatus{Name: "eth0", Via: "mctun-handoff", Packets: 7, KernelDrop: 1},
			"  handed over by the kernel path on eth0 (through mctun-handoff): 7 packets, 1 dropped by the kernel (queue full)\n"},
	} {
		var stats bytes.Buffer
		printStats(&stats, daemon.Status{Source: &daemon.SourceStatus{Interface: "eth0", Captures: []daemon.CaptureStatus{tt.capture}}})
		if got := stats.String(); !strings.Contains(got, tt.want) {
			t.Errorf("stats of %+v:\n%s\nwant the line %q", tt.capture, got, tt.want)
		}
	}
}
