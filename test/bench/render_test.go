package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"mctun/test/stream"
)

// fixture is a report of two rows: at 1 member mctun reaches the cap like VXLAN; at 16
// members mctun reaches half of VXLAN, which the sender limits.
func fixture() *report {
	rep := &report{
		Machine:  machine{CPU: "Test CPU", Cores: 2, Kernel: "6.18.0", Go: "go1.26.8", Mctun: "mctun abc"},
		Start:    time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Elapsed:  17*time.Minute + 3*time.Second,
		Command:  "go run ./test/bench -mctun bin/mctun",
		Settings: settings{Systems: []string{sysMctun, sysVXLAN}, Trial: 3 * time.Second, Attempts: 2, CPUAttempts: 3, MaxLoss: 0.001, Precision: 0.05, Start: 5000, Shortfall: 0.95, LatencyRate: 10000, CPUShare: 0.5, BigCount: 200, BigRate: 200},
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
	*r16.sys(sysVXLAN) = sysResult{System: sysVXLAN,
		Sweep:   &SweepResult{Found: true, Limit: LimitSender, Best: Outcome{Requested: 40000, Achieved: 20000}},
		CPU:     &cpuResult{Rate: 5000, BusySeconds: 4, Delivered: 240000},
		Latency: &latencyResult{Rate: 10000, Achieved: 6000, MeanNs: 50000, P99Ns: 90000},
	}
	rep.Rows = []*row{r1, r16}
	rep.Big = []bigResult{
		{Name: "1024 groups x 64 members", Groups: 1024, PerGroup: 64, Up: 1500 * time.Millisecond, AfterUp: memStatus{HWM: 20480, RSS: 20000}, After: memStatus{HWM: 25600, RSS: 24000}, Sent: 200, Delivered: 200},
		{Name: "16 groups x 4096 members", Groups: 16, PerGroup: 4096, Up: time.Second, After: memStatus{HWM: 40960, RSS: 30000}, Sent: 200, Delivered: 200},
	}
	return rep
}

func TestResultsTable(t *testing.T) {
	tb := resultsTable(fixture(), blockRate, blockCPU, blockMean, blockP99, blockRSS)
	want := [][]string{
		{"1", "64", "≥99.5k", "≥99.9k", "1.00x", "49.0k", "17.007", "13.605", "1.25x", "45.0", "40.0", "1.12x", "+5.0", "120.0", "60.0", "2.00x", "+60.0", "12.0", "9.0"},
		{"16", "64", "10.0k", "20.0k s", "0.50x", "5.0k", "25.000", "16.667", "1.50x", "70.0", "50.0", "1.40x", "+20.0", "400.0", "90.0", "4.44x", "+310.0", "14.0", "9.0"},
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
	if got := strings.Join(tb.rows[1], "|"); got != "16|64|10.0k|-|-|5.0k|25.000|-|-" {
		t.Fatalf("got %s", got)
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
	want := []struct{ verdict, detail string }{
		{"misses", "misses at 1 of 2: 16 members 64 B (0.50x)"},
		{"misses", "misses at 2 of 2: 1 member 64 B (1.25x), 16 members 64 B (1.50x)"},
		{"meets", "worst +20.0 µs at 16 members, 64 B, of 2"},
		{"misses", "misses at 1 of 2: 16 members 64 B (+310.0 µs)"},
		{"misses", "misses at 1 of 1: 1 member 64 B (+30.0 µs)"},
		{"meets", "worst +50.0 µs at 1 member, 64 B, of 1"},
		{"misses", "1024 groups x 64 members: VmHWM 25.0 MiB; 16 groups x 4096 members: VmHWM 40.0 MiB"},
	}
	if len(vs) != len(want) {
		t.Fatalf("%d verdicts, want %d", len(vs), len(want))
	}
	for i, w := range want {
		if vs[i].Verdict != w.verdict || vs[i].Detail != w.detail {
			t.Errorf("%s: got %s (%s), want %s (%s)", vs[i].Name, vs[i].Verdict, vs[i].Detail, w.verdict, w.detail)
		}
	}
}

func TestEvaluateBothCappedMeets(t *testing.T) {
	rep := fixture()
	rep.Rows = rep.Rows[:1] // 99.5k against 99.9k, both at the cap: a tie at the ceiling
	if v := evaluate(rep)[0]; v.Verdict != "meets" || !strings.Contains(v.Detail, "both at the mcsend ceiling") {
		t.Fatalf("got %+v", v)
	}
}

func TestEvaluateNotMeasured(t *testing.T) {
	rep := fixture()
	rep.Big = nil
	for _, r := range rep.Rows {
		delete(r.Systems, sysVXLAN)
	}
	for _, v := range evaluate(rep) {
		if v.Verdict != "not measured" {
			t.Errorf("%s: %s, want not measured without VXLAN and big configs", v.Name, v.Verdict)
		}
	}
}

func TestNotes(t *testing.T) {
	all := notes(fixture())
	if len(all) != 6 {
		t.Errorf("%d notes, want 6:\n%s", len(all), strings.Join(all, "\n"))
	}
	ns := strings.Join(all, "\n")
	for _, want := range []string{
		"mctun at 1 member, 64 B carried mcsend's own ceiling (99.5k pps) without loss",
		"VXLAN at 16 members, 64 B: mcsend reached only 20.0k of the 40.0k pps",
		"in the sender's own sendmmsg call",
		"mctun at 16 members, 64 B lost 1.00% in the CPU run at 5.0k pps",
		"mctun at 16 members, 64 B lost 20.00% in the latency run at 10.0k pps",
		"VXLAN at 16 members, 64 B: in the latency run mcsend reached only 6.0k of the 10.0k pps asked.",
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
		"| machine | Test CPU, 2 cores |",
		"| kernel | Linux 6.18.0 |",
		"| date | 2026-01-02 03:04 UTC |",
		"`make bench`, which runs `go run ./test/bench -mctun bin/mctun`",
		"| took | 17m3s |",
		"100.0k pps at 64 B",
		"### Throughput and CPU",
		"| 16 | 64 | 10.0k | 20.0k s | 0.50x |",
		"### Latency at 10.0k pps",
		"### Latency at the CPU runs' rate",
		"| 1 | 64 | 49.0k | 60.0 | 30.0 | 2.00x | +30.0 | 100.0 | 50.0 | 2.00x | +50.0 |",
		"| 16 | 64 | 5.0k | - | - | - | - | - | - | - | - |",
		"### mctun's memory",
		"CPU runs are 3 attempts: the table shows the median",
		"Latency runs are 2 attempts",
		"## mctun against its targets",
		"| CPU per million delivered <= 1.2x VXLAN | **misses** |",
		"![highest loss-free rate against members, mctun and VXLAN, per payload size](BENCHMARKS-rate.png)",
		"## RSS with big configs",
		"| 16 groups x 4096 members | 65536 | 1s |",
		"200 datagrams of 1200 B at 200 pps",
		"## Method",
		"a trial sends 3s of datagrams",
		"less than 0.1% of what",
		"starts at 5.0k pps",
		"within\n  5%",
		"A trial is 2 attempts",
		"50% of the lower of the two systems' loss-free rates",
		"- mctun, 1 member, 64 B (limit: cap): 5.0k→5.0k 0.00%, 100.0k→99.5k 0.00%",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if strings.Contains(md, "%!") {
		t.Errorf("a bad format verb:\n%s", md)
	}
}

func TestTextReport(t *testing.T) {
	out := textReport(fixture())
	for _, want := range []string{"Test CPU, 2 cores, Linux 6.18.0, 2026-01-02", "mcsend alone, 64 B: 100.0k pps", "≥99.5k", "mctun source with big configs", "targets", "took 17m3s"} {
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
		"$vxlan64 << EOD\n1 99900 \"≥99.9k\"\n16 20000 \"20.0k s\"\nEOD\n",
		"set yrange [1000:160000]",
		"$vxlan64 using 1:2:3 with labels offset -3,-1",
		"100000 with lines dt 3",
		"$capped << EOD\n1 99500\n1 99900\nEOD\n",
		"title \"mctun, 64 B\"",
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
	if o.Achieved != 990 || o.Requested != 1000 || !strings.Contains(o.Note, "worst h2; receive-socket drops 3") {
		t.Errorf("outcome %+v", o)
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
	b := &bench{opt: options{systems: []string{sysMctun, sysVXLAN}, maxLoss: 0.001}}
	r := fixture().Rows[1] // mctun 10.0k, VXLAN 20.0k
	if got := b.cpuRate(r); got != 5000 {
		t.Errorf("cpu rate %v, want half the lower, 5000", got)
	}
	r.Systems[sysMctun].Sweep.Best.Achieved = 37456
	if got := b.cpuRate(r); got != 10000 {
		t.Errorf("cpu rate %v, want half of 20000", got)
	}
	r.Systems[sysMctun].Sweep.Found = false
	if got := b.cpuRate(r); got != 0 {
		t.Errorf("cpu rate %v, want 0 when a system passed nothing", got)
	}
	b.opt.cpuRate = 3000
	if got := b.cpuRate(r); got != 3000 {
		t.Errorf("cpu rate %v, want -cpu-rate's 3000", got)
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
