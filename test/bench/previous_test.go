package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oldReport is the head of a report as the benchmark wrote it before it measured the kernel
// path: one "mctun" column, which was the user-space path.
const oldReport = `# mctun benchmarks

|  |  |
|---|---|
| machine | AMD EPYC, 2 cores |
| mctun | mctun 6b32e4c-dirty go1.26.8 linux/amd64 |
| date | 2026-11-25 20:56 UTC |

## Results

### Throughput and CPU

| members | payload B | rate mctun | rate VXLAN | × VXLAN | CPU run pps | CPU s/M mctun | CPU s/M VXLAN | × VXLAN |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| 1 | 64 | 32.2k | 116.1k s | 0.28x | 16.0k | 90.963 | 67.258 | 1.35x |
| 4 | 1200 | 5.7k ? | 18.6k s | 0.31x | 2.8k | - | 65.584 | - |
| 16 | 1200 | 840 | 2.7k s | 0.31x | 420 | 108.441 | 71.371 | 1.52x |
| 16 | 64 | 0 | 3.4k s | - | - | - | - | - |

### Latency at 10.0k pps

| members | payload B | mean µs mctun | mean µs VXLAN | × VXLAN | added µs | p99 µs mctun | p99 µs VXLAN | × VXLAN | added µs |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| 1 | 64 | 70.4 | 31.2 | 2.25x | +39.2 | 172.5 | 68.9 | 2.51x | +103.7 |

## Method

- **Highest loss-free rate**: a trial sends 3s of datagrams at a rate (bounded in count and in
  time) and passes when every member's application received all but less than 0.1% of what
`

func TestParsePreviousOldFormat(t *testing.T) {
	p, err := parsePrevious([]byte(oldReport))
	if err != nil {
		t.Fatal(err)
	}
	if p.Date != "2026-11-25 20:56 UTC" || p.Mctun != "mctun 6b32e4c-dirty go1.26.8 linux/amd64" || p.Trial != "3s" {
		t.Errorf("date %q, mctun %q, trial %q", p.Date, p.Mctun, p.Trial)
	}
	want := []previousRow{
		{Members: 1, Size: 64, Rate: 32200, HaveRate: true, CPU: 90.963, HaveCPU: true, CPURate: 16000,
			VXLANRate: 116100, HaveVXLANRate: true, VXLANCPU: 67.258, HaveVXLANCPU: true},
		{Members: 4, Size: 1200, Rate: 5700, HaveRate: true, CPURate: 2800,
			VXLANRate: 18600, HaveVXLANRate: true, VXLANCPU: 65.584, HaveVXLANCPU: true},
		{Members: 16, Size: 1200, Rate: 840, HaveRate: true, CPU: 108.441, HaveCPU: true, CPURate: 420,
			VXLANRate: 2700, HaveVXLANRate: true, VXLANCPU: 71.371, HaveVXLANCPU: true},
		{Members: 16, Size: 64, VXLANRate: 3400, HaveVXLANRate: true},
	}
	if len(p.Rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(p.Rows), len(want), p.Rows)
	}
	for i, w := range want {
		g := p.Rows[i]
		if g.Members != w.Members || g.Size != w.Size || g.HaveRate != w.HaveRate || g.HaveCPU != w.HaveCPU ||
			!near(g.Rate, w.Rate) || !near(g.CPU, w.CPU) ||
			g.HaveVXLANRate != w.HaveVXLANRate || g.HaveVXLANCPU != w.HaveVXLANCPU || !near(g.VXLANRate, w.VXLANRate) || !near(g.VXLANCPU, w.VXLANCPU) {
			t.Errorf("row %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestParsePreviousRoundTrip reads back what markdownReport writes: the user-space path's
// figures, not the kernel path's nor VXLAN's.
func TestParsePreviousRoundTrip(t *testing.T) {
	p, err := parsePrevious([]byte(markdownReport(fixture())))
	if err != nil {
		t.Fatal(err)
	}
	if p.Date != "2026-01-02 03:04 UTC" || p.Mctun != "mctun abc" || p.Trial != "3s" || len(p.Rows) != 2 {
		t.Fatalf("got %+v", p)
	}
	r1, r16 := p.Rows[0], p.Rows[1]
	if r1.Members != 1 || !near(r1.Rate, 99500) || !near(r1.CPU, 17.007) || r16.Members != 16 || !near(r16.Rate, 10000) || !near(r16.CPU, 25) {
		t.Errorf("got %+v and %+v", r1, r16)
	}
}

func TestParsePreviousProblems(t *testing.T) {
	for name, text := range map[string]string{
		"no table":   "# mctun benchmarks\n\nnothing\n",
		"no rows":    "### Throughput and CPU\n\n| members | payload B | rate mctun |\n|---:|---:|---:|\n\n### Latency\n",
		"bad row":    "### Throughput and CPU\n\n| members | payload B | rate mctun |\n|---:|---:|---:|\n| 1 | 64 |\n",
		"bad number": "### Throughput and CPU\n\n| members | payload B | rate mctun |\n|---:|---:|---:|\n| one | 64 | 3.0k |\n",
		"no members": "### Throughput and CPU\n\n| N | payload B | rate mctun |\n|---:|---:|---:|\n| 1 | 64 | 3.0k |\n",
	} {
		if _, err := parsePrevious([]byte(text)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReadPrevious(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "BENCHMARKS.md")
	if p := readPrevious(options{out: out}); p != nil {
		t.Errorf("no report yet: got %+v, want nothing to compare with", p)
	}
	if p := readPrevious(options{}); p != nil {
		t.Errorf("no -out, no -previous: got %+v", p)
	}
	if err := os.WriteFile(out, []byte(oldReport), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := readPrevious(options{out: out}); p == nil || p.Problem != "" || p.File != out || len(p.Rows) != 4 {
		t.Errorf("the -out file: got %+v", p)
	}
	other := filepath.Join(dir, "other.md")
	if p := readPrevious(options{out: out, previous: other}); p == nil || p.File != other || !strings.Contains(p.Problem, "no such file") {
		t.Errorf("a -previous that is not there: got %+v", p)
	}
	if err := os.WriteFile(other, []byte("# not a report\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := readPrevious(options{out: out, previous: other}); p == nil || p.Problem == "" {
		t.Errorf("a -previous that is no report: got %+v", p)
	}
}

func TestParsePPS(t *testing.T) {
	for cell, want := range map[string]float64{"32.2k": 32200, "≥99.5k": 99500, "116.1k s": 116100, "840 ?": 840, "12.0k †": 12000, "-": 0, "0": 0, "k": 0} {
		got, ok := parsePPS(cell)
		if ok != (want > 0) || !near(got, want) {
			t.Errorf("%q: got %v %v, want %v", cell, got, ok, want)
		}
	}
}

// near reports whether a and b agree to a part in a million.
func near(a, b float64) bool {
	d := a - b
	return d < 1e-6*max(1, b) && -d < 1e-6*max(1, b)
}

// TestEarlierRunsRoundTrip reads back the earlier runs a report keeps: the next run finds the
// runs this one compared with, and this one, the oldest dropped beyond earlierKept.
func TestEarlierRunsRoundTrip(t *testing.T) {
	rep := fixture()
	rep.Previous.Trial = "3s"
	for i := range earlierKept { // with the previous run, one more than it keeps
		rep.Previous.Earlier = append(rep.Previous.Earlier, previousRun{
			Date: fmt.Sprintf("2025-11-%02d 10:00 UTC", i+1), Mctun: fmt.Sprintf("v%d", i), Trial: "3s",
			Rows: []previousRow{{Members: 16, Size: 64, Rate: float64(11000 + 100*i), HaveRate: true, CPURate: 5000}},
		})
	}
	md := markdownReport(rep)
	p, err := parsePrevious([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, run := range p.Earlier {
		for _, r := range run.Rows {
			got = append(got, fmt.Sprintf("%s %s %s %s %dx%d %.0f %v %.3f %.0f; VXLAN %v %.0f %v %.3f", run.Date, run.Mctun, run.Trial, run.apps(), r.Members, r.Size, r.Rate, r.HaveCPU, r.CPU, r.CPURate,
				r.HaveVXLANRate, r.VXLANRate, r.HaveVXLANCPU, r.VXLANCPU))
		}
	}
	want := []string{ // v0, the oldest, is left out; the runs' rows come back together
		"2025-11-02 10:00 UTC v1 3s 1 16x64 11100 false 0.000 5000; VXLAN false 0 false 0.000",
		"2025-11-03 10:00 UTC v2 3s 1 16x64 11200 false 0.000 5000; VXLAN false 0 false 0.000",
		"2025-11-04 10:00 UTC v3 3s 1 16x64 11300 false 0.000 5000; VXLAN false 0 false 0.000",
		"2025-11-05 10:00 UTC v4 3s 1 16x64 11400 false 0.000 5000; VXLAN false 0 false 0.000",
		"2025-12-01 10:00 UTC old 3s 2 1x64 99000 true 17.000 49000; VXLAN true 99000 true 13.600",
		"2025-12-01 10:00 UTC old 3s 2 16x64 12000 true 20.000 5000; VXLAN true 20000 true 16.667",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("earlier runs:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	runs := p.runs()
	if len(runs) != earlierKept || runs[0].Mctun != "v2" || runs[len(runs)-1].Date != "2026-01-02 03:04 UTC" || runs[len(runs)-1].apps() != appsVersion || !strings.Contains(md, "| 16 | 64 | 2025-11-02 10:00 UTC | v1 | 3s | 1 | 11.1k | - | 5.0k | - | - |") {
		t.Errorf("the next run compares with %+v", runs)
	}
	bad := strings.Replace(md, "| 16 | 64 | 2025-11-02 10:00 UTC | v1 | 3s | 1 | 11.1k | - | 5.0k | - | - |", "| sixteen | 64 | 2025-11-02 10:00 UTC | v1 | 3s | 1 | 11.1k | - | 5.0k | - | - |", 1)
	if _, err := parsePrevious([]byte(bad)); err == nil || !strings.Contains(err.Error(), `"The user-space path in earlier runs": members "sixteen": not a number`) {
		t.Errorf("a bad row among the earlier runs: %v", err)
	}
}
