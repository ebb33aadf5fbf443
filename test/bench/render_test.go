package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"mctun/test/stream"
)

// fixture is a report of two rows: at 1 member both mctun paths reach the cap like VXLAN;
// at 16 members the user-space path reaches half of VXLAN, which the sender limits, and the
// kernel path 0.9x, having left 5% of one member's packets to user space.
func fixture() *report {
	rep := &report{
		Machine:  machine{CPU: "Test CPU", Cores: 2, Kernel: "6.18.0", Go: "go1.26.8", Mctun: "mctun abc"},
		Start:    time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Elapsed:  17*time.Minute + 3*time.Second,
		Command:  "go run ./test/bench -mctun bin/mctun",
		Settings: settings{Systems: []string{sysMctun, sysKernel, sysVXLAN}, Trial: 3 * time.Second, Attempts: 2, Rounds: 3, MaxLoss: 0.001, Precision: 0.05, Start: 5000, Shortfall: 0.95, LatencyRate: 10000, CPUShare: 0.5, BigCount: 200, BigRate: 200},
		Ceilings: []ceiling{{Size: 64, PPS: 100000}},
	}
	r1 := &row{Members: 1, Size: 64}
	*r1.sys(sysMctun) = sysResult{System: sysMctun,
		Sweep:      &SweepResult{Found: true, Limit: LimitCap, Best: Outcome{Requested: 100000, Achieved: 99500}, Trials: []Outcome{{Requested: 5000, Achieved: 5000}, {Requested: 100000, Achieved: 99500}}},
		CPU:        &cpuResult{Rate: 49000, BusySeconds: 3, OthersSeconds: 0.5, Delivered: 147000},
		Latency:    &latencyResult{Rate: 10000, Achieved: 10000, MeanNs: 45000, P99Ns: 120000},
		RSS:        &rssResult{SourceHWM: 12 * 1024, MemberHWM: 9 * 1024},
		LatencyLow: &latencyResult{Rate: 49000, Achieved: 49000, MeanNs: 60000, P99Ns: 100000},
	}
	*r1.sys(sysKernel) = sysResult{System: sysKernel,
		Sweep:      &SweepResult{Found: true, Limit: LimitCap, Best: Outcome{Requested: 100000, Achieved: 99700}},
		CPU:        &cpuResult{Rate: 49000, BusySeconds: 1.9, Delivered: 147000},
		Latency:    &latencyResult{Rate: 10000, Achieved: 10000, MeanNs: 42000, P99Ns: 70000},
		LatencyLow: &latencyResult{Rate: 49000, Achieved: 49000, MeanNs: 33000, P99Ns: 65000},
		RSS:        &rssResult{SourceHWM: 15 * 1024, MemberHWM: 10 * 1024},
		Paths: &pathsResult{
			Source:  map[string]uint64{"kernel": 300000, "user_next_hop_unknown": 0},
			Members: []map[string]uint64{{"kernel": 300000, "user_fragment": 0}},
		},
	}
	*r1.sys(sysVXLAN) = sysResult{System: sysVXLAN,
		Sweep:      &SweepResult{Found: true, Limit: LimitCap, Best: Outcome{Requested: 100000, Achieved: 99900}},
		CPU:        &cpuResult{Rate: 49000, BusySeconds: 2, Delivered: 147000},
		Latency:    &latencyResult{Rate: 10000, Achieved: 9990, MeanNs: 40000, P99Ns: 60000},
		LatencyLow: &latencyResult{Rate: 49000, Achieved: 49000, MeanNs: 30000, P99Ns: 50000},
	}
	r16 := &row{Members: 16, Size: 64}
	*r16.sys(sysMctun) = sysResult{System: sysMctun,
		Sweep:   &SweepResult{Found: true, Limit: LimitLoss, Best: Outcome{Requested: 10000, Achieved: 10000}},
		CPU:     &cpuResult{Rate: 5000, BusySeconds: 6, Delivered: 240000, Loss: 0.01},
		Latency: &latencyResult{Rate: 10000, Achieved: 10000, MeanNs: 70000, P99Ns: 400000, Loss: 0.2},
		RSS:     &rssResult{SourceHWM: 14 * 1024, MemberHWM: 9 * 1024},
	}
	*r16.sys(sysKernel) = sysResult{System: sysKernel,
		Sweep:      &SweepResult{Found: true, Limit: LimitLoss, Best: Outcome{Requested: 18000, Achieved: 18000}},
		CPU:        &cpuResult{Rate: 5000, BusySeconds: 3.6, Delivered: 240000},
		Latency:    &latencyResult{Rate: 10000, Achieved: 10000, MeanNs: 60000, P99Ns: 100000},
		LatencyLow: &latencyResult{Rate: 5000, Achieved: 5000, MeanNs: 50000, P99Ns: 80000},
		RSS:        &rssResult{SourceHWM: 16 * 1024, MemberHWM: 11 * 1024},
		Paths: &pathsResult{
			Source:  map[string]uint64{"kernel": 97000, "user_next_hop_unknown": 3000},
			Members: []map[string]uint64{{"kernel": 100000}, {"kernel": 95000, "user_gso": 5000}},
		},
	}
	*r16.sys(sysVXLAN) = sysResult{System: sysVXLAN,
		Sweep:      &SweepResult{Found: true, Limit: LimitSender, Best: Outcome{Requested: 40000, Achieved: 20000}},
		CPU:        &cpuResult{Rate: 5000, BusySeconds: 4, Delivered: 240000},
		Latency:    &latencyResult{Rate: 10000, Achieved: 6000, MeanNs: 50000, P99Ns: 90000},
		LatencyLow: &latencyResult{Rate: 5000, Achieved: 5000, MeanNs: 40000, P99Ns: 70000},
	}
	rep.Rows = []*row{r1, r16}
	rep.Big = []bigResult{
		{System: sysMctun, Name: "1024 groups x 64 members", Groups: 1024, PerGroup: 64, Up: 1500 * time.Millisecond, AfterUp: memStatus{HWM: 20480, RSS: 20000}, After: memStatus{HWM: 25600, RSS: 24000}, Sent: 200, Delivered: 200},
		{System: sysMctun, Name: "16 groups x 4096 members", Groups: 16, PerGroup: 4096, Up: time.Second, After: memStatus{HWM: 40960, RSS: 30000}, Sent: 200, Delivered: 200},
		{System: sysKernel, Name: "1024 groups x 64 members", Groups: 1024, PerGroup: 64, Up: 1500 * time.Millisecond, AfterUp: memStatus{HWM: 20000, RSS: 19968}, After: memStatus{HWM: 26 * 1024, RSS: 24000}, Sent: 200, Delivered: 200,
			MapBytes: 12 << 20, Paths: map[string]uint64{"kernel": 0, "user_next_hop_unknown": 200}},
		{System: sysKernel, Name: "16 groups x 4096 members", Groups: 16, PerGroup: 4096, Up: time.Second, After: memStatus{HWM: 20 * 1024, RSS: 20000}, Sent: 200, Delivered: 200,
			MapBytes: 5 << 20, Paths: map[string]uint64{"kernel": 200}},
	}
	rep.Previous = &previousRun{File: "BENCHMARKS.md", Date: "2025-12-01 10:00 UTC", Mctun: "mctun old", Apps: appsVersion, Rows: []previousRow{
		{Members: 1, Size: 64, Rate: 99000, HaveRate: true, CPU: 17, HaveCPU: true, CPURate: 49000,
			VXLANRate: 99000, HaveVXLANRate: true, VXLANCPU: 13.6, HaveVXLANCPU: true},
		{Members: 16, Size: 64, Rate: 12000, HaveRate: true, CPU: 20, HaveCPU: true, CPURate: 5000,
			VXLANRate: 20000, HaveVXLANRate: true, VXLANCPU: 16.667, HaveVXLANCPU: true},
	}}
	return rep
}

func TestResultsTable(t *testing.T) {
	tb := resultsTable(fixture(), blockRate, blockShare, blockCPU, blockMean, blockP99, blockRSS)
	wantHead := []string{"members", "payload B",
		"rate VXLAN", "rate mctun user", "× VXLAN", "rate mctun kernel", "× VXLAN", "kernel path's share",
		"CPU run pps", "CPU s/M VXLAN", "CPU s/M mctun user", "× VXLAN", "CPU s/M mctun kernel", "× VXLAN",
		"mean µs VXLAN", "mean µs mctun user", "× VXLAN", "added µs", "mean µs mctun kernel", "× VXLAN", "added µs",
		"p99 µs VXLAN", "p99 µs mctun user", "× VXLAN", "added µs", "p99 µs mctun kernel", "× VXLAN", "added µs",
		"source MiB mctun user", "member MiB mctun user", "source MiB mctun kernel", "member MiB mctun kernel"}
	if strings.Join(tb.head, "|") != strings.Join(wantHead, "|") {
		t.Errorf("header:\n got %q\nwant %q", tb.head, wantHead)
	}
	want := [][]string{
		{"1", "64", "≥99.9k", "≥99.5k", "1.00x", "≥99.7k", "1.00x", "100%",
			"49.0k", "13.605", "17.007", "1.25x", "12.925", "0.95x",
			"40.0", "45.0", "1.12x", "+5.0", "42.0", "1.05x", "+2.0",
			"60.0", "120.0", "2.00x", "+60.0", "70.0", "1.17x", "+10.0",
			"12.0", "9.0", "15.0", "10.0"},
		{"16", "64", "20.0k s", "10.0k", "0.50x", "18.0k †", "0.90x", "95% at h2 (< 99%)",
			"5.0k", "16.667", "25.000", "1.50x", "15.000 †", "0.90x",
			"50.0", "70.0", "1.40x", "+20.0", "60.0 †", "1.20x", "+10.0",
			"90.0", "400.0", "4.44x", "+310.0", "100.0 †", "1.11x", "+10.0",
			"14.0", "9.0", "16.0", "11.0"},
	}
	for i, w := range want {
		if strings.Join(tb.rows[i], "|") != strings.Join(w, "|") {
			t.Errorf("row %d:\n got %q\nwant %q", i, tb.rows[i], w)
		}
		if len(tb.rows[i]) != len(tb.head) {
			t.Errorf("row %d has %d cells, the header %d", i, len(tb.rows[i]), len(tb.head))
		}
	}
}

func TestResultsTableOneSystem(t *testing.T) {
	rep := fixture()
	for _, r := range rep.Rows {
		delete(r.Systems, sysVXLAN)
	}
	tb := resultsTable(rep, blockRate, blockCPU)
	if got := strings.Join(tb.rows[1], "|"); got != "16|64|-|10.0k|-|18.0k †|-|5.0k|-|25.000|-|15.000 †|-" {
		t.Errorf("VXLAN not measured: got %s", got)
	}
	rep.Settings.Systems = []string{sysMctun}
	tb = resultsTable(rep, blockRate, blockShare, blockCPU, blockRSS)
	if got := strings.Join(tb.head, "|"); got != "members|payload B|rate mctun user|× VXLAN|CPU run pps|CPU s/M mctun user|× VXLAN|source MiB mctun user|member MiB mctun user" {
		t.Errorf("the user-space path alone: header %s", got)
	}
	if got := strings.Join(tb.rows[1], "|"); got != "16|64|10.0k|-|5.0k|25.000|-|14.0|9.0" {
		t.Errorf("the user-space path alone: got %s", got)
	}
}

func TestReportSystems(t *testing.T) {
	rep := fixture()
	if got := rep.systems(); !slices.Equal(got, []string{sysMctun, sysKernel, sysVXLAN}) {
		t.Errorf("systems %v", got)
	}
	rep.Settings.Systems = []string{sysVXLAN, sysKernel}
	if got := rep.systems(); !slices.Equal(got, []string{sysKernel, sysVXLAN}) {
		t.Errorf("systems %v, want the canonical order", got)
	}
	rep.Settings.Systems = nil
	delete(rep.Rows[0].Systems, sysKernel)
	delete(rep.Rows[1].Systems, sysKernel)
	if got := rep.mctunOf(); !slices.Equal(got, []string{sysMctun}) {
		t.Errorf("without settings, the systems of the rows: %v", got)
	}
}

func TestTableText(t *testing.T) {
	tb := table{head: []string{"members", "rate"}, rows: [][]string{{"1", "99.5k"}, {"16", "≥100.0k"}}}
	want := "  members     rate\n        1    99.5k\n       16  ≥100.0k\n"
	if got := tb.text(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestTableMarkdown(t *testing.T) {
	tb := table{head: []string{"a", "b"}, rows: [][]string{{"1", "2"}}}
	if got, want := tb.markdown(), "| a | b |\n|---:|---:|\n| 1 | 2 |\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, want := leftMarkdown(tb), "| a | b |\n|---|---|\n| 1 | 2 |\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestEvaluate(t *testing.T) {
	vs := evaluate(fixture())
	const leftOut = "; left out where one of them lost packets or fell short of the rate: 16 members 64 B"
	want := []struct{ system, name, verdict, detail string }{
		{sysKernel, "loss-free rate >= 1.0x VXLAN at every N and size", "misses", "misses at 1 of 2: 16 members 64 B (0.90x)"},
		{sysKernel, "CPU per million delivered <= 1.0x VXLAN", "meets", "worst 0.95x at 1 member, 64 B, of 2"},
		{sysKernel, "added mean latency <= 5 µs, at the CPU runs' rate (which every system carries without loss)", "misses", "misses at 1 of 2: 16 members 64 B (+10.0 µs)"},
		{sysKernel, "added p99 latency <= 20 µs, at the CPU runs' rate (which every system carries without loss)", "meets", "worst +15.0 µs at 1 member, 64 B, of 2"},
		{sysKernel, "added mean latency <= 5 µs, at 10.0k pps where both carry it without loss", "meets", "worst +2.0 µs at 1 member, 64 B, of 1" + leftOut},
		{sysKernel, "added p99 latency <= 20 µs, at 10.0k pps where both carry it without loss", "meets", "worst +10.0 µs at 1 member, 64 B, of 1" + leftOut},
		{sysKernel, "RSS <= 30 MiB with both big configs", "meets", "1024 groups x 64 members: VmHWM 26.00 MiB, kernel maps 12.0 MiB; 16 groups x 4096 members: VmHWM 20.00 MiB, kernel maps 5.0 MiB"},
		{sysMctun, "loss-free rate >= 1.0x VXLAN at every N and size", "misses", "misses at 1 of 2: 16 members 64 B (0.50x)"},
		{sysMctun, "CPU per million delivered <= 1.2x VXLAN", "misses", "misses at 2 of 2: 1 member 64 B (1.25x), 16 members 64 B (1.50x)"},
		{sysMctun, "added mean latency <= 20 µs, at 10.0k pps", "meets", "worst +20.0 µs at 16 members, 64 B, of 2"},
		{sysMctun, "added p99 latency <= 100 µs, at 10.0k pps", "misses", "misses at 1 of 2: 16 members 64 B (+310.0 µs)"},
		{sysMctun, "added mean latency <= 20 µs, at the CPU runs' rate (both loss-free; supplementary)", "misses", "misses at 1 of 1: 1 member 64 B (+30.0 µs)"},
		{sysMctun, "added p99 latency <= 100 µs, at the CPU runs' rate (both loss-free; supplementary)", "meets", "worst +50.0 µs at 1 member, 64 B, of 1"},
		{sysMctun, "RSS <= 30 MiB with both big configs", "misses", "1024 groups x 64 members: VmHWM 25.00 MiB; 16 groups x 4096 members: VmHWM 40.00 MiB"},
		{sysMctun, "must not get slower: loss-free rate × VXLAN at least 90% of the earlier runs' median", "misses", "misses at 1 of 2: 16 members 64 B (0.83x: 0.50x VXLAN, median 0.60x VXLAN of 1 run)"},
		{sysMctun, "must not get slower: CPU per million delivered × VXLAN at most 110% of the earlier runs' median", "misses", "misses at 1 of 2: 16 members 64 B (1.25x: 1.50x VXLAN, median 1.20x VXLAN of 1 run)"},
	}
	if len(vs) != len(want) {
		t.Fatalf("%d verdicts, want %d", len(vs), len(want))
	}
	for i, w := range want {
		v := vs[i]
		if v.System != w.system || v.Name != w.name || v.Verdict != w.verdict || v.Detail != w.detail {
			t.Errorf("verdict %d:\n got %s: %s: %s (%s)\nwant %s: %s: %s (%s)", i, v.System, v.Name, v.Verdict, v.Detail, w.system, w.name, w.verdict, w.detail)
		}
	}
}

func TestEvaluateBothCappedMeets(t *testing.T) {
	rep := fixture()
	rep.Rows = rep.Rows[:1] // 99.5k and 99.7k against 99.9k, all at the cap: a tie at the ceiling
	for _, v := range evaluate(rep) {
		if strings.HasPrefix(v.Name, "loss-free rate") && (v.Verdict != "meets" || !strings.Contains(v.Detail, "both at the mcsend ceiling")) {
			t.Errorf("%s: got %+v", v.System, v)
		}
	}
}

// Where both sweeps stopped at the sender, the rate verdict is the median of the rounds'
// paired ratios at mcsend's ceiling, leaving out a round in which either lost packets;
// where only one did, the sweeps' ratio stands.
func TestEvaluateBothStoppedBySender(t *testing.T) {
	rep := fixture()
	rep.Rows = rep.Rows[1:]
	k, v := rep.Rows[0].Systems[sysKernel], rep.Rows[0].Systems[sysVXLAN]
	k.Ceiling = []*rateRun{{Achieved: 21000}, {Achieved: 19000}, {Achieved: 30000, Loss: 0.01}, {Achieved: 22000}}
	v.Ceiling = []*rateRun{{Achieved: 20000}, {Achieved: 20000}, {Achieved: 20000}, {Achieved: 20000}}
	rate := func() verdict {
		for _, v := range evaluate(rep) {
			if v.System == sysKernel && strings.HasPrefix(v.Name, "loss-free rate") {
				return v
			}
		}
		t.Fatal("no rate verdict for the kernel path")
		return verdict{}
	}
	// The kernel path's sweep stopped at loss: 18k against 20k.
	if got := rate(); got.Verdict != "misses" || got.Detail != "misses at 1 of 1: 16 members 64 B (0.90x)" {
		t.Errorf("kernel path stopped by loss: got %+v", got)
	}
	k.Sweep.Limit = LimitSender
	want := "1.05x: both stopped by the sender, so the median of 3 rounds side by side (1.05, 0.95, 1.10; the sweeps' 0.90x)"
	if got := rate(); got.Verdict != "meets" || !strings.Contains(got.Detail, want) {
		t.Errorf("both stopped by the sender: got %+v, want it to meet with %q", got, want)
	}
	k.Ceiling[3].Achieved = 19500 // 1.05, 0.95, 0.975
	if got := rate(); got.Verdict != "misses" || !strings.Contains(got.Detail, "0.97x: both stopped by the sender, so the median of 3 rounds") {
		t.Errorf("both stopped by the sender, the kernel path slower: got %+v", got)
	}
	k.Ceiling[3].Achieved = 19960 // 1.05, 0.95, 0.998: a miss that two decimals would show as 1.00x
	if got := rate(); got.Verdict != "misses" || !strings.Contains(got.Detail, "(0.998x: both stopped by the sender") {
		t.Errorf("both stopped by the sender, just below: got %+v", got)
	}
	for _, c := range k.Ceiling {
		c.Loss = 0.5
	}
	if got := rate(); got.Verdict != "misses" || got.Detail != "misses at 1 of 1: 16 members 64 B (0.90x)" {
		t.Errorf("no round loss-free: got %+v, want the sweeps' ratio", got)
	}
}

// Where both systems have their fixed-rate runs of each round, the CPU and latency verdicts
// are the medians of the rounds' paired figures, leaving out a round in which either lost
// packets (or, for the kernel path's latency, fell short of the rate).
func TestEvaluatePairedByRound(t *testing.T) {
	rep := fixture()
	rep.Rows = rep.Rows[1:] // 16 members, 64 B: CPU runs at 5k pps
	k, v := rep.Rows[0].Systems[sysKernel], rep.Rows[0].Systems[sysVXLAN]
	cpu := func(busy, loss float64) *cpuResult {
		return &cpuResult{Rate: 5000, BusySeconds: busy, Delivered: 240000, Loss: loss}
	}
	k.CPURuns = []*cpuResult{cpu(3.3, 0), cpu(4.4, 0), cpu(1, 0.01), cpu(3.6, 0)}
	v.CPURuns = []*cpuResult{cpu(3, 0), cpu(4, 0), cpu(4, 0), cpu(4, 0)}
	lat := func(rate, meanUs, p99Us, loss float64) *latencyResult {
		return &latencyResult{Rate: rate, Achieved: rate, MeanNs: meanUs * 1e3, P99Ns: int64(p99Us * 1e3), Loss: loss}
	}
	k.LatencyLowRuns = []*latencyResult{lat(5000, 52, 90, 0), lat(5000, 44, 70, 0), lat(5000, 30, 60, 0.01)}
	v.LatencyLowRuns = []*latencyResult{lat(5000, 50, 60, 0), lat(5000, 40, 80, 0), lat(5000, 40, 70, 0)}
	k.LatencyRuns = []*latencyResult{lat(10000, 60, 100, 0), lat(10000, 60, 100, 0)}
	v.LatencyRuns = []*latencyResult{lat(10000, 50, 90, 0), lat(10000, 50, 90, 0.01)}
	for _, s := range []*sysResult{k, v} {
		s.LatencyLow, s.Latency = s.LatencyLowRuns[0], s.LatencyRuns[0]
	}
	of := func(name string) verdict {
		for _, v := range evaluate(rep) {
			if v.System == sysKernel && strings.HasPrefix(v.Name, name) {
				return v
			}
		}
		t.Fatalf("no verdict %q for the kernel path", name)
		return verdict{}
	}
	// 1.10, 1.10, 0.90 (the third round lost packets); the medians' 0.90x.
	if got := of("CPU per million"); got.Verdict != "misses" ||
		got.Detail != "misses at 1 of 1: 16 members 64 B (1.10x: the median of 3 rounds side by side (1.10, 1.10, 0.90; the medians' 0.90x))" {
		t.Errorf("CPU: got %+v", got)
	}
	if got := of("added mean latency <= 5 µs, at the CPU runs' rate"); got.Verdict != "meets" ||
		got.Detail != "worst +3.0 µs: the median of 2 rounds side by side (+2.0, +4.0) at 16 members, 64 B, of 1" {
		t.Errorf("mean at the CPU runs' rate: got %+v", got)
	}
	if got := of("added p99 latency <= 20 µs, at the CPU runs' rate"); got.Verdict != "meets" ||
		!strings.Contains(got.Detail, "+10.0 µs: the median of 2 rounds side by side (+30.0, -10.0)") {
		t.Errorf("p99 at the CPU runs' rate: got %+v", got)
	}
	if got := of("added mean latency <= 5 µs, at 10.0k pps"); got.Verdict != "misses" ||
		!strings.Contains(got.Detail, "+10.0 µs: the median of 1 round side by side (+10.0)") {
		t.Errorf("mean at 10k pps: got %+v", got)
	}
	v.LatencyRuns[0].Achieved = 5000 // no round both carried
	if got := of("added mean latency <= 5 µs, at 10.0k pps"); got.Verdict != "not measured" ||
		got.Detail != "left out where one of them lost packets or fell short of the rate: 16 members 64 B" {
		t.Errorf("mean at 10k pps, no round carried by both: got %+v", got)
	}
}

func TestCeilingTable(t *testing.T) {
	rep := fixture()
	if ceilingTable(rep) != nil {
		t.Error("a table without attempts at the ceiling")
	}
	r16 := rep.Rows[1]
	r16.Systems[sysKernel].Ceiling = []*rateRun{{Achieved: 21000}, {Achieved: 19000}, {Achieved: 30000, Loss: 0.01}}
	r16.Systems[sysVXLAN].Ceiling = []*rateRun{{Achieved: 20000}, {Achieved: 20000}, {Achieved: 25000}}
	got := ceilingTable(rep).text()
	want := `  members  payload B  VXLAN  mctun kernel  × VXLAN paired      rounds
        1         64      -             -               -           -
       16         64  20.0k         20.0k           1.00x  1.05, 0.95
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(markdownReport(rep), "### At mcsend's ceiling, side by side") {
		t.Error("the report leaves the table out")
	}
}

func TestEvaluateNotMeasured(t *testing.T) {
	rep := fixture()
	rep.Big = nil
	rep.Previous = nil
	for _, r := range rep.Rows {
		delete(r.Systems, sysVXLAN)
	}
	vs := evaluate(rep)
	for _, v := range vs {
		if v.Verdict != "not measured" {
			t.Errorf("%s: %s, want not measured without VXLAN, big configs and a previous run", v.Name, v.Verdict)
		}
	}
	if d := vs[len(vs)-1].Detail; d != "no previous report to compare with" {
		t.Errorf("no previous run: %q", d)
	}
	rep.Settings.Systems = []string{sysKernel, sysVXLAN}
	for _, v := range evaluate(rep) {
		if v.System != sysKernel {
			t.Errorf("the user-space path not measured, yet judged: %+v", v)
		}
	}
}

func TestEvaluateBigOnOnePath(t *testing.T) {
	rep := fixture()
	rep.Big = rep.Big[:3] // the kernel path's 16 x 4096 is missing
	for _, v := range evaluate(rep) {
		if v.Name != "RSS <= 30 MiB with both big configs" {
			continue
		}
		want := map[string]string{sysMctun: "misses", sysKernel: "not measured"}[v.System]
		if v.Verdict != want {
			t.Errorf("%s: %s, want %s", v.System, v.Verdict, want)
		}
	}
}

func TestNotSlowerProblems(t *testing.T) {
	rep := fixture()
	rep.Previous = &previousRun{File: "old.md", Problem: "no \"Throughput and CPU\" table"}
	vs := notSlower(rep)
	for _, v := range vs {
		if v.Verdict != "not measured" || v.Detail != "old.md: no \"Throughput and CPU\" table" {
			t.Errorf("%+v", v)
		}
	}
	if ns := strings.Join(notes(rep), "\n"); !strings.Contains(ns, "The user-space path is not compared with an earlier run: old.md: no") {
		t.Errorf("notes do not say why:\n%s", ns)
	}
	rep.Previous = &previousRun{File: "old.md", Apps: appsVersion, Rows: []previousRow{{Members: 4, Size: 64, Rate: 1, HaveRate: true}}}
	if v := notSlower(rep)[0]; v.Verdict != "not measured" || v.Detail != "left out where no earlier run has a figure: 1 member 64 B, 16 members 64 B" {
		t.Errorf("no common row: %+v", v)
	}
	rep.Previous = fixture().Previous
	rep.Previous.Trial = "3s"
	if v := notSlower(rep)[0]; v.Verdict != "misses" {
		t.Errorf("the same trial length: %+v", v)
	}
	rep.Previous.Apps = ""
	for _, v := range notSlower(rep) {
		if v.Verdict != "not measured" || v.Detail != "BENCHMARKS.md's runs measured with applications 1, this run with "+appsText+": their figures do not compare" {
			t.Errorf("other applications: %+v", v)
		}
	}
	rep.Previous.Apps = appsVersion
	rep.Settings.Trial = time.Second
	for _, v := range notSlower(rep) {
		if v.Verdict != "not measured" || v.Detail != "BENCHMARKS.md's trials were 3s, this run's 1s: their figures do not compare" {
			t.Errorf("another trial length: %+v", v)
		}
	}
}

// TestNotSlowerMedian: the user-space path is held to the median of the earlier runs that
// compare (trials as long; for the CPU, a CPU runs' rate within 20%), not to the previous
// run alone, so one run that was high by chance does not make the next one miss; each
// figure as a ratio to VXLAN's in its run.
func TestNotSlowerMedian(t *testing.T) {
	rep := fixture() // this run: 16 members 64 B at 10.0k pps, 25.0 s/M at 5.0k pps; VXLAN 20.0k, 16.7 s/M
	at16 := func(date, trial string, rate, cpu, cpuRate float64) previousRun {
		return previousRun{Date: date, Trial: trial, Apps: appsVersion, Rows: []previousRow{
			{Members: 16, Size: 64, Rate: rate, HaveRate: true, CPU: cpu, HaveCPU: true, CPURate: cpuRate,
				VXLANRate: 20000, HaveVXLANRate: true, VXLANCPU: 4 / 0.24, HaveVXLANCPU: true}}}
	}
	prev := at16("6", "3s", 14000, 30, 3900) // high, and its CPU at a rate 22% below this run's
	prev.File = "BENCHMARKS.md"
	prev.Earlier = []previousRun{
		at16("1", "3s", 99000, 10, 5000), // beyond the five kept
		at16("2", "3s", 10500, 24, 5000),
		at16("3", "1s", 20000, 5, 5000), // shorter trials
		at16("4", "", 9500, 23, 5100),   // an old report: its trial length unknown
		at16("5", "3s", 10000, 26, 6500),
	}
	rep.Previous = &prev
	vs := notSlower(rep)
	if v := vs[0]; v.Verdict != "meets" || v.Detail != "worst 0.98x: 0.50x VXLAN, median 0.51x VXLAN of 4 runs at 16 members, 64 B, of 1; left out where no earlier run has a figure: 1 member 64 B" {
		t.Errorf("rate: %+v", v)
	}
	// at 3900 and 6500 pps, 22% and 30% from 5000, left out: the median of 24 and 23
	if v := vs[1]; v.Verdict != "meets" || !strings.HasPrefix(v.Detail, "worst 1.06x: 1.50x VXLAN, median 1.41x VXLAN of 2 runs at 16 members, 64 B, of 1; left out") {
		t.Errorf("CPU: %+v", v)
	}
	// A host five times slower: the same ratios, the same verdicts.
	for i := range rep.Rows {
		for _, sys := range []string{sysMctun, sysVXLAN} {
			sr := rep.Rows[i].Systems[sys]
			sr.Sweep.Best.Achieved /= 5
			sr.CPU.BusySeconds *= 5
		}
	}
	if slower := notSlower(rep); slower[0].Detail != vs[0].Detail || slower[1].Detail != vs[1].Detail {
		t.Errorf("on a host five times slower:\n%+v\nwant\n%+v", slower, vs)
	}
	prev.Earlier = nil
	prev.Rows[0].CPURate = 3000
	if v := notSlower(rep)[1]; v.Verdict != "not measured" || v.Detail != "left out where no earlier run has a figure at a CPU runs' rate within 20% of this run's: 1 member 64 B, 16 members 64 B" {
		t.Errorf("no earlier CPU at a rate near: %+v", v)
	}
}

// TestNotSlowerThanBase checks that with the base binary in the run, "must not get slower"
// holds the user-space path to it side by side: the rate by the sweeps, the CPU round by
// round, and no longer to the earlier runs.
func TestNotSlowerThanBase(t *testing.T) {
	rep := fixture()
	rep.Settings.Systems = append(rep.Settings.Systems, sysBase)
	rep.Machine.Base = "mctun abc base"
	cpu := func(rate, busy float64) *cpuResult {
		return &cpuResult{Rate: rate, BusySeconds: busy, Delivered: 240000}
	}
	// 1 member: both at the cap; CPU 1.05, 1.20, 0.95 of the base's: median 1.05.
	u1, b1 := rep.Rows[0].Systems[sysMctun], rep.Rows[0].sys(sysBase)
	*b1 = sysResult{System: sysBase, Sweep: &SweepResult{Found: true, Limit: LimitCap, Best: Outcome{Requested: 100000, Achieved: 99000}}}
	u1.CPURuns = []*cpuResult{cpu(49000, 2.1), cpu(49000, 2.4), cpu(49000, 1.9)}
	b1.CPURuns = []*cpuResult{cpu(49000, 2), cpu(49000, 2), cpu(49000, 2)}
	u1.CPU, b1.CPU = u1.CPURuns[0], b1.CPURuns[0]
	// 16 members: the user-space path's 10k against the base's 11.5k: 0.87x; CPU 1.25, 1.30.
	u16, b16 := rep.Rows[1].Systems[sysMctun], rep.Rows[1].sys(sysBase)
	*b16 = sysResult{System: sysBase, Sweep: &SweepResult{Found: true, Limit: LimitLoss, Best: Outcome{Requested: 11500, Achieved: 11500}}}
	u16.CPURuns = []*cpuResult{cpu(5000, 5), cpu(5000, 5.2)}
	b16.CPURuns = []*cpuResult{cpu(5000, 4), cpu(5000, 4)}
	u16.CPU, b16.CPU = u16.CPURuns[0], b16.CPURuns[0]

	vs := notSlower(rep)
	want := []verdict{
		{sysMctun, "must not get slower: loss-free rate at least 90% of mctun base's, side by side", "misses",
			"misses at 1 of 2: 16 members 64 B (0.87x)"},
		{sysMctun, "must not get slower: CPU per million delivered at most 110% of mctun base's, round by round", "misses",
			"misses at 1 of 2: 16 members 64 B (1.27x: the median of 2 rounds side by side (1.25, 1.30; the medians' 1.25x))"},
	}
	if !slices.Equal(vs, want) {
		t.Errorf("got\n%+v\nwant\n%+v", vs, want)
	}
	// The attempts at 90% of the base's rate decide where both made them: most rounds carried
	// meets, whatever the sweeps' ratio; fewer misses.
	rep.Rows[1].NotSlowerRate = 10350
	run := func(pps, loss float64) *rateRun { return &rateRun{Achieved: pps, Loss: loss} }
	u16.NotSlowerRuns = []*rateRun{run(10350, 0), run(10350, 0.02), run(10350, 0), run(9000, 0), run(10350, 0)}
	b16.NotSlowerRuns = []*rateRun{run(10350, 0), run(10350, 0), run(10350, 0), run(10350, 0), run(10350, 0)}
	rate := func() verdict { return notSlower(rep)[0] }
	if got := rate(); got.Verdict != "meets" ||
		got.Detail != "worst carried 10.3k pps, 90% of the base's loss-free rate, in 3 of 5 rounds, the base in 5; the sweeps' 0.87x at 16 members, 64 B, of 2" {
		t.Errorf("carried in 3 of 5 rounds: %+v", got)
	}
	u16.NotSlowerRuns[0].Loss = 0.01 // 2 of 5: loss, and one round short of the rate
	if got := rate(); got.Verdict != "misses" || !strings.Contains(got.Detail, "in 2 of 5 rounds, the base in 5") {
		t.Errorf("carried in 2 of 5 rounds: %+v", got)
	}
	for _, r := range b16.NotSlowerRuns[1:] {
		r.Loss = 0.5 // the base carried it once: as many rounds holds
	}
	if got := rate(); got.Verdict != "meets" {
		t.Errorf("carried in more rounds than the base: %+v", got)
	}
	b16.NotSlowerRuns[0].Loss = 0.5 // the base carried it in none: the sweeps decide
	if got := rate(); got.Verdict != "misses" || got.Detail != "misses at 1 of 2: 16 members 64 B (0.87x)" {
		t.Errorf("the base carried it in no round: %+v", got)
	}
	// Faster than the base everywhere meets, whatever the earlier runs say.
	b16.Sweep.Best.Achieved = 10000
	b16.CPURuns = []*cpuResult{cpu(5000, 5.2), cpu(5000, 5.2)}
	for _, v := range notSlower(rep) {
		if v.Verdict != "meets" {
			t.Errorf("no slower than the base: %+v", v)
		}
	}
	md := markdownReport(rep)
	if !strings.Contains(md, "| mctun base | mctun abc base |") {
		t.Error("the report does not name the base binary")
	}
	// The next run reads the user-space path's figures back, not the base's.
	p, err := parsePrevious([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 2 || !near(p.Rows[0].Rate, 99500) || !near(p.Rows[1].Rate, 10000) || !near(p.Rows[1].CPU, 20.833) {
		t.Errorf("read back %+v", p.Rows)
	}
}

func TestFmtAdded(t *testing.T) {
	for d, want := range map[float64]string{-0.04: "+0.0", 0.04: "+0.0", -1.5: "-1.5", 2: "+2.0"} {
		if got := fmtAdded(d, true); got != want {
			t.Errorf("fmtAdded(%v) = %s, want %s", d, got, want)
		}
	}
	if fmtAdded(math.NaN(), true) != "-" || fmtAdded(1, false) != "-" {
		t.Error("no difference: want -")
	}
}

func TestNotes(t *testing.T) {
	all := notes(fixture())
	if len(all) != 8 {
		t.Errorf("%d notes, want 8:\n%s", len(all), strings.Join(all, "\n"))
	}
	ns := strings.Join(all, "\n")
	for _, want := range []string{
		"mctun user at 1 member, 64 B carried mcsend's own ceiling (99.5k pps) without loss",
		"mctun kernel at 1 member, 64 B carried mcsend's own ceiling (99.7k pps) without loss",
		"VXLAN at 16 members, 64 B: mcsend reached only 20.0k of the 40.0k pps",
		"in the sender's own sendmmsg call",
		"mctun user at 16 members, 64 B lost 1.00% in the CPU run at 5.0k pps",
		"mctun user at 16 members, 64 B lost 20.00% in the latency run at 10.0k pps",
		"VXLAN at 16 members, 64 B: in the latency run mcsend reached only 6.0k of the 10.0k pps asked.",
		"mctun kernel at 16 members, 64 B: the kernel path forwarded only 95% of the packets itself (at h2; the rest went to user space: source (user_next_hop_unknown 3000); h2 (user_gso 5000)), so its figures there (marked †) are partly the user-space path's.",
	} {
		if !strings.Contains(ns, want) {
			t.Errorf("notes lack %q:\n%s", want, ns)
		}
	}
}

func TestMarkdownReport(t *testing.T) {
	rep := fixture()
	rep.Plot = "BENCHMARKS-rate.png"
	md := markdownReport(rep)
	for _, want := range []string{
		"# mctun benchmarks",
		"the user-space path (`datapath = \"user\"`, \"mctun\nuser\") and the kernel path (`datapath = \"kernel\"`, \"mctun kernel\")",
		"| machine | Test CPU, 2 cores |",
		"| kernel | Linux 6.18.0 |",
		"| date | 2026-01-02 03:04 UTC |",
		"`make bench`, which runs `go run ./test/bench -mctun bin/mctun`",
		"| took | 17m3s |",
		"100.0k pps at 64 B",
		"### Throughput and CPU",
		"| members | payload B | rate VXLAN | rate mctun user | × VXLAN | rate mctun kernel | × VXLAN | kernel path's share | CPU run pps |",
		"| 16 | 64 | 20.0k s | 10.0k | 0.50x | 18.0k † | 0.90x | 95% at h2 (< 99%) | 5.0k | 16.667 | 25.000 | 1.50x | 15.000 † | 0.90x |",
		"### Latency at 10.0k pps",
		"### Latency at the CPU runs' rate",
		"| 1 | 64 | 49.0k | 30.0 | 60.0 | 2.00x | +30.0 | 33.0 | 1.10x | +3.0 | 50.0 | 100.0 | 2.00x | +50.0 | 65.0 | 1.30x | +15.0 |",
		"| 16 | 64 | 5.0k | 40.0 | - | - | - | 50.0 † | 1.25x | +10.0 | 70.0 | - | - | - | 80.0 † | 1.14x | +10.0 |",
		"### mctun's memory",
		"| members | payload B | source MiB mctun user | member MiB mctun user | source MiB mctun kernel | member MiB mctun kernel |",
		"| 16 | 64 | 14.0 | 9.0 | 16.0 | 11.0 |",
		"\"†\" marks the kernel path's figures where that is below 99%",
		"### The kernel path's share",
		"| 1 | 64 | 300000 | 300000 | 100% | 300000 | 300000 | 100% (h1) | none |",
		"| 16 | 64 | 97000 | 100000 | 97% | 195000 | 200000 | 95% (h2) | source (user_next_hop_unknown 3000); h2 (user_gso 5000) |",
		"CPU runs and latency runs are 3 each per system, in as many rounds",
		"For latency it keeps the best run",
		"## mctun against its targets",
		"### The kernel path (`datapath = \"kernel\"`): issue 8's targets",
		"| CPU per million delivered <= 1.0x VXLAN | **meets** | worst 0.95x at 1 member, 64 B, of 2 |",
		"| added mean latency <= 5 µs, at the CPU runs' rate (which every system carries without loss) | **misses** |",
		"### The user-space path (`datapath = \"user\"`)",
		"| CPU per million delivered <= 1.2x VXLAN | **misses** |",
		"| must not get slower: loss-free rate × VXLAN at least 90% of the earlier runs' median | **misses** |",
		"## The user-space path in earlier runs",
		"at most 5, oldest first: the previous run's, and the runs\nits report kept (read from BENCHMARKS.md). This run's",
		"| members | payload B | date | mctun | trial | apps | rate | rate VXLAN | CPU run pps | CPU s/M | CPU s/M VXLAN |",
		"| 16 | 64 | 2025-12-01 10:00 UTC | old | - | 2 | 12.0k | 20.0k | 5.0k | 20.000 | 16.667 |",
		"![highest loss-free rate against members, mctun's user-space path, its kernel path and VXLAN, per payload size](BENCHMARKS-rate.png)",
		"## RSS with big configs",
		"| 16 groups x 4096 members | user | 65536 | 1s |",
		"| 1024 groups x 64 members | kernel | 65536 | 1.5s | 19.5 | 26.0 | 23.4 | 12.0 | 200 sent, 200 at the real member | 0% (user_next_hop_unknown 200) |",
		"| 16 groups x 4096 members | kernel | 65536 | 1s | 0.0 | 20.0 | 19.5 | 5.0 | 200 sent, 200 at the real member | 100% |",
		"200 datagrams of 1200 B at 200 pps",
		"## Method",
		"**mctun kernel**: the same configs with `datapath = \"kernel\"`",
		"a trial sends 3s of datagrams",
		"less than 0.1% of what",
		"starts at 5.0k pps",
		"within\n  5%",
		"A trial is 2 attempts",
		"50% of the lowest of the systems' loss-free rates",
		"at most\n  5 runs in all",
		"within 20% of this run's",
		"may be worse by at most 10%",
		"- mctun user, 1 member, 64 B (limit: cap): 5.0k→5.0k 0.00%, 100.0k→99.5k 0.00%",
		"- mctun kernel, 16 members, 64 B (limit: loss):\n",
		"- VXLAN, 16 members, 64 B (limit: sender):\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if strings.Contains(md, "%!") {
		t.Errorf("a bad format verb:\n%s", md)
	}
}

// TestMarkdownReportWithoutKernel: a run of the user-space path and VXLAN alone says
// nothing of the kernel path.
func TestMarkdownReportWithoutKernel(t *testing.T) {
	rep := fixture()
	rep.Settings.Systems = []string{sysMctun, sysVXLAN}
	for _, r := range rep.Rows {
		delete(r.Systems, sysKernel)
	}
	rep.Big = rep.Big[:2]
	md := markdownReport(rep)
	for _, unwanted := range []string{"mctun kernel", "kernel path's share", "issue 8's targets", "†"} {
		if strings.Contains(md, unwanted) && !strings.Contains(methodText, unwanted) && !strings.Contains(legend, unwanted) {
			t.Errorf("markdown has %q", unwanted)
		}
	}
	if !strings.Contains(md, "| 16 | 64 | 20.0k s | 10.0k | 0.50x | 5.0k |") {
		t.Errorf("markdown lacks the two-system row:\n%s", md)
	}
}

func TestTextReport(t *testing.T) {
	out := textReport(fixture())
	for _, want := range []string{"Test CPU, 2 cores, Linux 6.18.0, 2026-01-02", "mcsend alone, 64 B: 100.0k pps", "≥99.5k", "≥99.7k",
		"rate mctun kernel", "95% at h2 (< 99%)", "latency at 10.0k pps", "latency at the CPU runs' rate", "mctun's memory",
		"mctun source with big configs", "targets", "kernel  loss-free rate >= 1.0x VXLAN", "user    CPU per million delivered <= 1.2x VXLAN", "took 17m3s"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}

func TestGnuplotScript(t *testing.T) {
	s, ok := gnuplotScript(fixture(), "out.png")
	if !ok {
		t.Fatal("nothing to plot")
	}
	for _, want := range []string{
		"set output \"out.png\"",
		"set xtics (1, 16)",
		"$mctun64 << EOD\n1 99500 \"≥99.5k\"\n16 10000 \"10.0k\"\nEOD\n",
		"$mctun_kernel64 << EOD\n1 99700 \"≥99.7k\"\n16 18000 \"18.0k †\"\nEOD\n",
		"$vxlan64 << EOD\n1 99900 \"≥99.9k\"\n16 20000 \"20.0k s\"\nEOD\n",
		"set yrange [1000:160000]",
		"$mctun64 using 1:2:3 with labels offset -3,-1",
		"$mctun_kernel64 using 1:2:3 with labels offset -3,1",
		"$vxlan64 using 1:2:3 with labels offset -3,-1",
		"$mctun_kernel64 using 1:2 with linespoints lw 2 ps 1.2 dt 4 pt 9",
		"100000 with lines dt 3",
		"set rmargin at screen 0.70",
		"†  the kernel path forwarded less than 99%",
		"$capped << EOD\n1 99500\n1 99700\n1 99900\nEOD\n",
		"title \"mctun user, 64 B\"",
		"title \"mctun kernel, 64 B\"",
		"title \"VXLAN, 64 B\"",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if _, ok := gnuplotScript(&report{}, "x.png"); ok {
		t.Error("an empty report has something to plot")
	}
}

func TestTrialResult(t *testing.T) {
	tr := trialResult{
		Requested: 1000,
		Sent:      stream.SendReport{Sent: 1000, PPS: 990},
		Recv: []memberReport{
			{Host: "h1", Report: stream.RecvReport{Unique: 1000, KernelDrops: 0, LatencyNs: stream.Latency{Mean: 10000, P99: 50000}}},
			{Host: "h2", Report: stream.RecvReport{Unique: 990, KernelDrops: 3, LatencyNs: stream.Latency{Mean: 30000, P99: 20000}}},
		},
		Window: 2 * time.Second, OthersSeconds: 0.2,
	}
	if loss, who := tr.worstLoss(); who != "h2" || math.Abs(loss-0.01) > 1e-12 {
		t.Errorf("worst loss %v at %s, want 0.01 at h2", loss, who)
	}
	if tr.delivered() != 1990 || tr.uniqueOf("h2") != 990 || tr.uniqueOf("h9") != 0 {
		t.Errorf("delivered %d", tr.delivered())
	}
	if mean, p99 := tr.latency(); mean != 20000 || p99 != 50000 {
		t.Errorf("latency mean %v p99 %v, want 20000 and 50000", mean, p99)
	}
	if !tr.disturbed() || tr.othersLoad() != 0.1 {
		t.Errorf("others' load %v: want 0.1, disturbed", tr.othersLoad())
	}
	o := tr.outcome()
	if o.Achieved != 990 || o.Requested != 1000 || !strings.Contains(o.Note, "worst h2; receive-socket drops 3; others used 0.10 cores, the hypervisor took 0.00 meanwhile") {
		t.Errorf("outcome %+v", o)
	}
	// A hypervisor's steal disturbs an attempt as other processes do; a little of it does not.
	tr.OthersSeconds, tr.StolenSeconds = 0, 0.08
	if tr.disturbed() || tr.stolenLoad() != 0.04 {
		t.Errorf("stolen %v cores: want 0.04, not disturbed", tr.stolenLoad())
	}
	tr.StolenSeconds = 0.3
	if !tr.disturbed() || tr.disturbance() != "others used 0.00 cores, the hypervisor took 0.15" {
		t.Errorf("stolen %v cores: want disturbed, got %q", tr.stolenLoad(), tr.disturbance())
	}
	if lossOf(0, 0) != 1 || lossOf(10, 12) != 0 {
		t.Error("lossOf")
	}
}

func TestCPUResult(t *testing.T) {
	c := cpuResult{BusySeconds: 3, OthersSeconds: 1, Delivered: 500000}
	if got := c.PerMillion(); got != 4 {
		t.Fatalf("per million %v, want 4 ((3-1) s / 0.5 M)", got)
	}
	if !math.IsNaN((cpuResult{}).PerMillion()) {
		t.Fatal("nothing delivered: want NaN")
	}
}

func TestRSSMerge(t *testing.T) {
	var r *rssResult
	r = r.merge(&rssResult{SourceHWM: 5, MemberHWM: 9})
	r = r.merge(&rssResult{SourceHWM: 7, MemberHWM: 3})
	r = r.merge(nil)
	if r.SourceHWM != 7 || r.MemberHWM != 9 {
		t.Fatalf("got %+v", r)
	}
}

func TestCPURate(t *testing.T) {
	b := &bench{opt: options{systems: []string{sysMctun, sysKernel, sysVXLAN}, maxLoss: 0.001}}
	r := fixture().Rows[1] // user-space path 10.0k, kernel path 18.0k, VXLAN 20.0k
	if got := b.cpuRate(r, nil); got != 5000 {
		t.Errorf("cpu rate %v, want half the lowest, 5000", got)
	}
	r.Systems[sysMctun].Sweep.Best.Achieved = 37456
	if got := b.cpuRate(r, nil); got != 9000 {
		t.Errorf("cpu rate %v, want half of the kernel path's 18000", got)
	}
	r.Systems[sysKernel].Sweep.Best.Achieved = 41000
	if got := b.cpuRate(r, nil); got != 10000 {
		t.Errorf("cpu rate %v, want half of VXLAN's 20000", got)
	}
	r.Systems[sysMctun].Sweep.Found = false
	if got := b.cpuRate(r, nil); got != 0 {
		t.Errorf("cpu rate %v, want 0 when a system passed nothing", got)
	}
	b.opt.cpuRate = 3000
	if got := b.cpuRate(r, nil); got != 3000 {
		t.Errorf("cpu rate %v, want -cpu-rate's 3000", got)
	}
}

// The previous run's rate is taken again while it is close to half the lowest loss-free
// rate, so that the user-space path's CPU compares with it at one rate.
func TestCPURateKeepsThePrevious(t *testing.T) {
	b := &bench{opt: options{systems: []string{sysMctun, sysKernel, sysVXLAN}, maxLoss: 0.001}}
	r := fixture().Rows[1] // lowest loss-free rate: the user-space path's 10.0k
	for _, c := range []struct {
		prev, want float64
	}{
		{5500, 5500}, // 55% of the lowest: kept
		{4000, 4000}, // 40%: kept
		{6000, 6000}, // 60%: kept
		{6100, 5000}, // 61%: half the lowest
		{3900, 5000}, // 39%: half the lowest
		{0, 5000},    // the previous run gave no rate
	} {
		if got := b.cpuRate(r, &previousRow{CPURate: c.prev}); got != c.want {
			t.Errorf("previous rate %v: cpu rate %v, want %v", c.prev, got, c.want)
		}
	}
	r.Systems[sysMctun].Sweep.Found = false
	if got := b.cpuRate(r, &previousRow{CPURate: 5000}); got != 0 {
		t.Errorf("cpu rate %v, want 0 when a system passed nothing", got)
	}
}

func TestBestRuns(t *testing.T) {
	b := &bench{opt: options{maxLoss: 0.001}}
	l1 := &latencyResult{P99Ns: 100, Loss: 0.5}
	l2 := &latencyResult{P99Ns: 200}
	l3 := &latencyResult{P99Ns: 150}
	if b.betterLatency(l1, l2) || !b.betterLatency(l2, l1) || !b.betterLatency(l3, l2) {
		t.Error("betterLatency: want loss-free first, then the lower p99")
	}
}

func TestMedianCPU(t *testing.T) {
	run := func(busy, loss float64) *cpuResult { return &cpuResult{BusySeconds: busy, Delivered: 1e6, Loss: loss} }
	lossy, low, mid, high := run(0.1, 0.01), run(1, 0), run(2, 0), run(3, 0)
	for _, c := range []struct {
		runs []*cpuResult
		want *cpuResult
	}{
		{[]*cpuResult{high, low, mid}, mid},
		{[]*cpuResult{high, lossy, low, mid}, mid}, // the lossy one is left out
		{[]*cpuResult{high, low}, low},             // the lower of the two middle ones
		{[]*cpuResult{lossy}, lossy},               // nothing loss-free: all of them
		{nil, nil},
	} {
		if got := medianCPU(c.runs, 0.001); got != c.want {
			t.Errorf("medianCPU: got %+v, want %+v", got, c.want)
		}
	}
}

func TestPathsResult(t *testing.T) {
	before := &pathsResult{
		Source:  map[string]uint64{"kernel": 10, "user_next_hop_unknown": 5},
		Members: []map[string]uint64{{"kernel": 10}, {"kernel": 10}},
	}
	now := &pathsResult{
		Source:  map[string]uint64{"kernel": 1010, "user_next_hop_unknown": 5, "user_gso": 0},
		Members: []map[string]uint64{{"kernel": 1010}, {"kernel": 1000, "user_fragment": 10}},
	}
	d := now.since(before)
	if d.Source["kernel"] != 1000 || d.Source["user_next_hop_unknown"] != 0 || d.Members[1]["kernel"] != 990 || d.Members[1]["user_fragment"] != 10 {
		t.Errorf("since: %+v", d)
	}
	share, who, ok := d.lowest()
	if !ok || who != "h2" || !near(share, 0.99) {
		t.Errorf("lowest: %v at %s (%v), want 0.99 at h2", share, who, ok)
	}
	sum := d.add(d)
	if sum.Source["kernel"] != 2000 || sum.Members[1]["user_fragment"] != 20 || d.Source["kernel"] != 1000 {
		t.Errorf("add: %+v (and d %+v)", sum, d)
	}
	var none *pathsResult
	if none.add(d) != d || d.add(nil) != d {
		t.Error("add with nil")
	}
	if _, _, ok := none.lowest(); ok {
		t.Error("nil has a share")
	}
	if _, ok := kernelShare(map[string]uint64{"kernel": 0}); ok {
		t.Error("nothing counted has a share")
	}
	if got := leftToUser(d); got != "h2 (user_fragment 10)" {
		t.Errorf("leftToUser: %q", got)
	}
}

func TestFmtPercent(t *testing.T) {
	for x, want := range map[float64]string{1: "100%", 0.99999: "99.99%", 0.95: "95%", 0.9: "90%", 0.987: "98.7%", 0: "0%"} {
		if got := fmtPercent(x); got != want {
			t.Errorf("fmtPercent(%v) = %s, want %s", x, got, want)
		}
	}
}

func TestRotate(t *testing.T) {
	three := []string{"a", "b", "c"}
	for k, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		if got := rotate(three, k); !slices.Equal(got, want) {
			t.Errorf("rotate(%d) = %v, want %v", k, got, want)
		}
	}
	if got := rotate([]string{"a", "b"}, 1); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("two systems alternate: %v", got)
	}
	if !slices.Equal(three, []string{"a", "b", "c"}) {
		t.Error("rotate changed its argument")
	}
}
