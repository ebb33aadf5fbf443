package main

import (
	"fmt"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// table is a header and rows of cells, rendered as aligned text or as markdown.
type table struct {
	head []string
	rows [][]string
}

// text renders t with columns right-aligned, two spaces apart.
func (t table) text() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range append([][]string{t.head}, t.rows...) {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
	// AlignRight pads the last column too; drop the trailing blanks.
	var out strings.Builder
	for line := range strings.Lines(b.String()) {
		out.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	return out.String()
}

// markdown renders t as a GitHub table, numbers right-aligned.
func (t table) markdown() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.head, " | ") + " |\n|")
	for range t.head {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// block is a group of columns of the results table.
type block int

const (
	blockRate block = iota
	blockCPU
	blockMean
	blockP99
	blockMeanLow // latency at the CPU runs' rate
	blockP99Low
	blockRSS
)

// resultsTable is the results, one row per (members, size), with the given blocks of
// columns; every mctun figure next to VXLAN's and the ratio of the two.
func resultsTable(rep *report, blocks ...block) table {
	t := table{head: []string{"members", "payload B"}}
	for _, bl := range blocks {
		switch bl {
		case blockRate:
			t.head = append(t.head, "rate mctun", "rate VXLAN", "× VXLAN")
		case blockCPU:
			t.head = append(t.head, "CPU run pps", "CPU s/M mctun", "CPU s/M VXLAN", "× VXLAN")
		case blockMean:
			t.head = append(t.head, "mean µs mctun", "mean µs VXLAN", "× VXLAN", "added µs")
		case blockP99:
			t.head = append(t.head, "p99 µs mctun", "p99 µs VXLAN", "× VXLAN", "added µs")
		case blockMeanLow:
			t.head = append(t.head, "CPU run pps", "mean µs mctun", "mean µs VXLAN", "× VXLAN", "added µs")
		case blockP99Low:
			t.head = append(t.head, "p99 µs mctun", "p99 µs VXLAN", "× VXLAN", "added µs")
		case blockRSS:
			t.head = append(t.head, "RSS MiB source", "RSS MiB member")
		}
	}
	for _, r := range rep.Rows {
		m, v := r.Systems[sysMctun], r.Systems[sysVXLAN]
		cells := []string{fmt.Sprint(r.Members), fmt.Sprint(r.Size)}
		for _, bl := range blocks {
			switch bl {
			case blockRate:
				mr, mok := sweepRate(m)
				vr, vok := sweepRate(v)
				cells = append(cells, fmtSweep(m), fmtSweep(v), fmtRatio(mr, vr, mok && vok))
			case blockCPU:
				mc, mok := cpuPerM(m)
				vc, vok := cpuPerM(v)
				rate := "-"
				if c := firstCPU(m, v); c != nil {
					rate = fmtPPS(c.Rate)
				}
				cells = append(cells, rate, fmtNum(mc, 3, mok), fmtNum(vc, 3, vok), fmtRatio(mc, vc, mok && vok))
			case blockMean, blockP99, blockMeanLow, blockP99Low:
				low, p99 := bl == blockMeanLow || bl == blockP99Low, bl == blockP99 || bl == blockP99Low
				ml, mok := latencyOf(m, low, p99)
				vl, vok := latencyOf(v, low, p99)
				if bl == blockMeanLow {
					rate := "-"
					if c := firstCPU(m, v); c != nil {
						rate = fmtPPS(c.Rate)
					}
					cells = append(cells, rate)
				}
				cells = append(cells, fmtNum(ml, 1, mok), fmtNum(vl, 1, vok), fmtRatio(ml, vl, mok && vok), fmtAdded(ml-vl, mok && vok))
			case blockRSS:
				src, mem := "-", "-"
				if m != nil && m.RSS != nil {
					src, mem = fmt.Sprintf("%.1f", mib(m.RSS.SourceHWM)), fmt.Sprintf("%.1f", mib(m.RSS.MemberHWM))
				}
				cells = append(cells, src, mem)
			}
		}
		t.rows = append(t.rows, cells)
	}
	return t
}

// bigTable is the big-config RSS results.
func bigTable(rep *report) table {
	t := table{head: []string{"config", "members in all", "mctun up", "VmRSS after up MiB", "VmHWM MiB", "VmRSS MiB", "stream to group 0"}}
	for _, b := range rep.Big {
		t.rows = append(t.rows, []string{
			b.Name, fmt.Sprint(b.Groups * b.PerGroup), b.Up.Round(time.Millisecond).String(),
			fmt.Sprintf("%.1f", mib(b.AfterUp.RSS)), fmt.Sprintf("%.1f", mib(b.After.HWM)), fmt.Sprintf("%.1f", mib(b.After.RSS)),
			fmt.Sprintf("%d sent, %d at the real member", b.Sent, b.Delivered),
		})
	}
	return t
}

// sweepRate is a system's highest loss-free rate.
func sweepRate(s *sysResult) (float64, bool) {
	if s == nil || s.Sweep == nil || !s.Sweep.Found {
		return 0, false
	}
	return s.Sweep.Best.Achieved, true
}

// fmtSweep shows a sweep's result: "≥98.1k" when the cap was reached without loss (the
// system can do more), "41.2k s" when the sender could not reach the rate asked for,
// "42.0k" when loss bounds it, "0" when nothing passed and "-" when not measured.
func fmtSweep(s *sysResult) string {
	if s == nil || s.Sweep == nil {
		return "-"
	}
	if !s.Sweep.Found {
		return "0"
	}
	r := fmtPPS(s.Sweep.Best.Achieved)
	switch s.Sweep.Limit {
	case LimitCap:
		return "≥" + r
	case LimitSender:
		return r + " s"
	case LimitSteps, LimitIncomplete:
		return r + " ?"
	}
	return r
}

// fmtPPS shows a rate in thousands: "98.1k".
func fmtPPS(pps float64) string {
	if pps < 1000 {
		return fmt.Sprintf("%.0f", pps)
	}
	return fmt.Sprintf("%.1fk", pps/1000)
}

// fmtNum shows x with digits decimals, or "-".
func fmtNum(x float64, digits int, ok bool) string {
	if !ok || math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.*f", digits, x)
}

// fmtRatio shows a/b as "1.02x", or "-".
func fmtRatio(a, b float64, ok bool) string {
	if !ok || !(b > 0) || math.IsNaN(a) {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// fmtAdded shows a difference with its sign: "+3.2", "-0.4".
func fmtAdded(d float64, ok bool) string {
	if !ok || math.IsNaN(d) {
		return "-"
	}
	return fmt.Sprintf("%+.1f", d)
}

// cpuPerM is a system's CPU seconds per million delivered.
func cpuPerM(s *sysResult) (float64, bool) {
	if s == nil || s.CPU == nil || s.CPU.Delivered == 0 {
		return 0, false
	}
	return s.CPU.PerMillion(), true
}

// firstCPU is the CPU run of m, else of v.
func firstCPU(m, v *sysResult) *cpuResult {
	if m != nil && m.CPU != nil {
		return m.CPU
	}
	if v != nil && v.CPU != nil {
		return v.CPU
	}
	return nil
}

// latencyOf is a system's mean (or p99) latency in µs, at the latency rate or (low) at the
// CPU runs' rate.
func latencyOf(s *sysResult, low, p99 bool) (float64, bool) {
	if s == nil {
		return 0, false
	}
	l := s.Latency
	if low {
		l = s.LatencyLow
	}
	if l == nil || math.IsNaN(l.MeanNs) {
		return 0, false
	}
	if p99 {
		return float64(l.P99Ns) / 1e3, true
	}
	return l.MeanNs / 1e3, true
}

// legend explains the marks of the rate columns.
const legend = `rate: the highest rate the source's application offered (pps, as mcsend reached it) that
every member received with less than the loss limit. "≥": the cap, what mcsend alone can do,
passed: the forwarder is not the limit. "s": mcsend could not reach the rate it was asked for:
the sending path is the limit. "?": the sweep ran out of trials or was cut short.
CPU s/M: busy CPU seconds of the whole machine (less other processes') per million datagrams
delivered, summed over members, at the CPU run's rate (the median run). Latency: one-way, at
the latency rate; mean of the members' means, highest of their p99s. RSS: mctun's VmHWM, of
the source and of the highest member.
`

// textReport is what the benchmark prints on stdout: the results table and the big configs.
func textReport(rep *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmctun against kernel VXLAN head-end replication (%s, %d cores, Linux %s, %s)\n\n",
		rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Kernel, rep.Start.Format("2006-01-02"))
	for _, c := range rep.Ceilings {
		fmt.Fprintf(&b, "mcsend alone, %d B: %s pps\n", c.Size, fmtPPS(c.PPS))
	}
	b.WriteString("\n")
	b.WriteString(resultsTable(rep, blockRate, blockCPU, blockMean, blockP99, blockRSS).text())
	b.WriteString("\n" + legend)
	if len(rep.Big) > 0 {
		b.WriteString("\nmctun source with big configs\n\n")
		b.WriteString(bigTable(rep).text())
	}
	if ts := evaluate(rep); len(ts) > 0 {
		b.WriteString("\ntargets\n\n")
		tt := table{head: []string{"target", "verdict", "detail"}}
		for _, t := range ts {
			tt.rows = append(tt.rows, []string{t.Name, t.Verdict, t.Detail})
		}
		b.WriteString(tt.textLeft())
	}
	if rep.Elapsed > 0 {
		fmt.Fprintf(&b, "\ntook %v\n", rep.Elapsed.Round(time.Second))
	}
	return b.String()
}

// textLeft renders t with columns left-aligned, for prose.
func (t table) textLeft() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range append([][]string{t.head}, t.rows...) {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	return b.String()
}
