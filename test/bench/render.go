package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
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
	blockRate  block = iota
	blockShare       // the kernel path's share of the packets it forwarded itself
	blockCPU
	blockMean
	blockP99
	blockMeanLow // latency at the CPU runs' rate
	blockP99Low
	blockRSS
)

// systems are the systems of the report, in the canonical order: those the settings name,
// or, without settings, those of the rows.
func (rep *report) systems() []string {
	var out []string
	for _, s := range allSystems {
		in := slices.Contains(rep.Settings.Systems, s)
		if len(rep.Settings.Systems) == 0 {
			in = slices.ContainsFunc(rep.Rows, func(r *row) bool { return r.Systems[s] != nil })
		}
		if in {
			out = append(out, s)
		}
	}
	return out
}

// hasBase reports whether the report measured the base binary, the reference of "must not
// get slower" when it did.
func (rep *report) hasBase() bool { return slices.Contains(rep.systems(), sysBase) }

// mctunOf is the systems of the report that run mctun.
func (rep *report) mctunOf() []string {
	var out []string
	for _, s := range rep.systems() {
		if slices.Contains(mctunSystems, s) {
			out = append(out, s)
		}
	}
	return out
}

// resultsTable is the results, one row per (members, size), with the given blocks of
// columns: in each, VXLAN's figure, then each mctun path's with its ratio to VXLAN's.
func resultsTable(rep *report, blocks ...block) table {
	mctuns := rep.mctunOf()
	withV := slices.Contains(rep.systems(), sysVXLAN)
	withK := slices.Contains(mctuns, sysKernel)
	t := table{head: []string{"members", "payload B"}}
	// cols adds, for one figure, VXLAN's column and each mctun path's with its ratio (and,
	// for latency, the difference).
	cols := func(what string, added bool) {
		if withV {
			t.head = append(t.head, what+" VXLAN")
		}
		for _, m := range mctuns {
			t.head = append(t.head, what+" "+systemName(m), "× VXLAN")
			if added {
				t.head = append(t.head, "added µs")
			}
		}
	}
	for _, bl := range blocks {
		switch bl {
		case blockRate:
			cols("rate", false)
		case blockShare:
			if withK {
				t.head = append(t.head, "kernel path's share")
			}
		case blockCPU:
			t.head = append(t.head, "CPU run pps")
			cols("CPU s/M", false)
		case blockMean, blockMeanLow:
			if bl == blockMeanLow {
				t.head = append(t.head, "CPU run pps")
			}
			cols("mean µs", true)
		case blockP99, blockP99Low:
			cols("p99 µs", true)
		case blockRSS:
			for _, m := range mctuns {
				t.head = append(t.head, "source MiB "+systemName(m), "member MiB "+systemName(m))
			}
		}
	}
	for _, r := range rep.Rows {
		v := r.Systems[sysVXLAN]
		cells := []string{fmt.Sprint(r.Members), fmt.Sprint(r.Size)}
		// figures adds VXLAN's figure and each mctun path's with its ratio (and difference).
		figures := func(get func(*sysResult) (float64, bool), show func(s *sysResult, x float64, ok bool) string, added bool) {
			vx, vok := get(v)
			if withV {
				cells = append(cells, show(v, vx, vok))
			}
			for _, m := range mctuns {
				s := r.Systems[m]
				mx, mok := get(s)
				cells = append(cells, show(s, mx, mok)+r.mark(m), fmtRatio(mx, vx, mok && vok))
				if added {
					cells = append(cells, fmtAdded(mx-vx, mok && vok))
				}
			}
		}
		cpuRate := "-"
		if c := r.firstCPU(); c != nil {
			cpuRate = fmtPPS(c.Rate)
		}
		for _, bl := range blocks {
			switch bl {
			case blockRate:
				figures(sweepRate, func(s *sysResult, _ float64, _ bool) string { return fmtSweep(s) }, false)
			case blockShare:
				if withK {
					cells = append(cells, fmtShare(r.Systems[sysKernel]))
				}
			case blockCPU:
				cells = append(cells, cpuRate)
				figures(cpuPerM, func(_ *sysResult, x float64, ok bool) string { return fmtNum(x, 3, ok) }, false)
			case blockMean, blockP99, blockMeanLow, blockP99Low:
				low, p99 := bl == blockMeanLow || bl == blockP99Low, bl == blockP99 || bl == blockP99Low
				if bl == blockMeanLow {
					cells = append(cells, cpuRate)
				}
				figures(func(s *sysResult) (float64, bool) { return latencyOf(s, low, p99) },
					func(_ *sysResult, x float64, ok bool) string { return fmtNum(x, 1, ok) }, true)
			case blockRSS:
				for _, m := range mctuns {
					src, mem := "-", "-"
					if s := r.Systems[m]; s != nil && s.RSS != nil {
						src, mem = fmt.Sprintf("%.1f", mib(s.RSS.SourceHWM)), fmt.Sprintf("%.1f", mib(s.RSS.MemberHWM))
					}
					cells = append(cells, src, mem)
				}
			}
		}
		t.rows = append(t.rows, cells)
	}
	return t
}

// lowShareMark follows the kernel path's figures at a point where it forwarded less than
// minKernelShare of the packets itself.
const lowShareMark = " †"

// mark is lowShareMark for the kernel path's figures at r when its share there is low.
func (r *row) mark(system string) string {
	if system != sysKernel {
		return ""
	}
	if share, _, ok := r.Systems[sysKernel].paths().lowest(); ok && share < minKernelShare {
		return lowShareMark
	}
	return ""
}

// paths is s's count of packets by path, nil if there is none.
func (s *sysResult) paths() *pathsResult {
	if s == nil {
		return nil
	}
	return s.Paths
}

// fmtShare shows the lowest share of the packets the kernel path forwarded itself, on the
// source or a member, with who when it is low: "100%", "99.97%", "87.20% at h2 (< 99%)".
func fmtShare(s *sysResult) string {
	share, who, ok := s.paths().lowest()
	if !ok {
		return "-"
	}
	out := fmtPercent(share)
	if share < minKernelShare {
		out += fmt.Sprintf(" at %s (< %s)", who, fmtPercent(minKernelShare))
	}
	return out
}

// fmtPercent shows a fraction as a percentage rounded down to two decimals, "100%" only
// when it is exactly 1.
func fmtPercent(x float64) string {
	if x >= 1 {
		return "100%"
	}
	s := fmt.Sprintf("%.2f", math.Floor(x*10000+1e-6)/100) // 1e-6: 0.95*10000 is 9499.999...
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".") + "%"
}

// bigTable is the big-config RSS results, on each datapath measured.
func bigTable(rep *report) table {
	t := table{head: []string{"config", "datapath", "members in all", "mctun up", "VmRSS after up MiB", "VmHWM MiB", "VmRSS MiB", "kernel maps MiB", "stream to group 0", "kernel path's share on the source"}}
	for _, b := range rep.Big {
		mapMiB, share := "-", "-"
		if b.System == sysKernel {
			mapMiB = fmt.Sprintf("%.1f", float64(b.MapBytes)/(1<<20))
			if x, ok := kernelShare(b.Paths); ok {
				share = fmtPercent(x) + " " + userPaths(b.Paths)
				share = strings.TrimSpace(share)
			}
		}
		t.rows = append(t.rows, []string{
			b.Name, datapathOf(b.System), fmt.Sprint(b.Groups * b.PerGroup), b.Up.Round(time.Millisecond).String(),
			fmt.Sprintf("%.1f", mib(b.AfterUp.RSS)), fmt.Sprintf("%.1f", mib(b.After.HWM)), fmt.Sprintf("%.1f", mib(b.After.RSS)),
			mapMiB, fmt.Sprintf("%d sent, %d at the real member", b.Sent, b.Delivered), share,
		})
	}
	return t
}

// userPaths lists the packets a side left to user space, by why, in parentheses: "(user_gso
// 3, user_next_hop_unknown 200)"; "" when there are none.
func userPaths(paths map[string]uint64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(paths)) {
		if k != "kernel" && paths[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, paths[k]))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// sharesTable is, for each (members, size), the packets of the kernel path's runs by the
// path they took: on the source's sender side and on the members' receiver sides.
func sharesTable(rep *report) table {
	t := table{head: []string{"members", "payload B", "source: by the kernel", "of all", "share", "members: by the kernel", "of all", "lowest share", "left to user space"}}
	for _, r := range rep.Rows {
		p := r.Systems[sysKernel].paths()
		if p == nil {
			continue
		}
		cells := []string{fmt.Sprint(r.Members), fmt.Sprint(r.Size)}
		k, all := kernelOfAll(p.Source)
		share := "-"
		if x, ok := kernelShare(p.Source); ok {
			share = fmtPercent(x)
		}
		cells = append(cells, fmt.Sprint(k), fmt.Sprint(all), share)
		var mk, mall uint64
		lowest, low, who := "-", 2.0, ""
		for i, m := range p.Members {
			k, all := kernelOfAll(m)
			mk, mall = mk+k, mall+all
			if x, ok := kernelShare(m); ok && x < low {
				low, who = x, fmt.Sprintf("h%d", i+1)
			}
		}
		if who != "" {
			lowest = fmtPercent(low) + " (" + who + ")"
		}
		left := leftToUser(p)
		if left == "" {
			left = "none"
		}
		cells = append(cells, fmt.Sprint(mk), fmt.Sprint(mall), lowest, left)
		t.rows = append(t.rows, cells)
	}
	return t
}

// kernelOfAll is the packets the kernel path forwarded itself and all it counted.
func kernelOfAll(paths map[string]uint64) (kernel, all uint64) {
	for _, n := range paths {
		all += n
	}
	return paths["kernel"], all
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

// fmtRatios shows ratios as "0.93, 1.07, 1.00".
func fmtRatios(rs []float64) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(out, ", ")
}

// fmtAddeds shows added latencies, µs, as fmtAdded does.
func fmtAddeds(ds []float64) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmtAdded(d, true)
	}
	return strings.Join(out, ", ")
}

// ceilingTable is, per (members, size), the median rate mcsend reached through each system
// at its attempts at the ceiling (one per round), and each mctun path's ratio to VXLAN's
// paired by round (pairedCeiling), for the mctun paths that made them. Nil without such
// attempts or without VXLAN.
func ceilingTable(rep *report) *table {
	var mctuns []string // those with attempts
	for _, m := range rep.mctunOf() {
		if slices.ContainsFunc(rep.Rows, func(r *row) bool { return r.Systems[m] != nil && len(r.Systems[m].Ceiling) > 0 }) {
			mctuns = append(mctuns, m)
		}
	}
	if len(mctuns) == 0 || !slices.Contains(rep.systems(), sysVXLAN) {
		return nil
	}
	maxLoss := rep.Settings.MaxLoss
	t := &table{head: []string{"members", "payload B", "VXLAN"}}
	for _, m := range mctuns {
		t.head = append(t.head, systemName(m), "× VXLAN paired", "rounds")
	}
	for _, r := range rep.Rows {
		cells := []string{fmt.Sprint(r.Members), fmt.Sprint(r.Size)}
		median := func(system string) string {
			pps, ok := medianCeiling(r.Systems[system], maxLoss)
			if !ok {
				return "-"
			}
			return fmtPPS(pps)
		}
		cells = append(cells, median(sysVXLAN))
		for _, m := range mctuns {
			cells = append(cells, median(m))
			if ratios, med, ok := pairedCeiling(r.Systems[m], r.Systems[sysVXLAN], maxLoss); ok {
				cells = append(cells, fmt.Sprintf("%.2fx", med), fmtRatios(ratios))
			} else {
				cells = append(cells, "-", "-")
			}
		}
		t.rows = append(t.rows, cells)
	}
	return t
}

// fmtAdded shows a difference with its sign: "+3.2", "-0.4".
func fmtAdded(d float64, ok bool) string {
	if !ok || math.IsNaN(d) {
		return "-"
	}
	if math.Abs(d) < 0.05 {
		d = 0 // not "-0.0"
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

// firstCPU is the CPU run of the first system at r that has one: they share its rate.
func (r *row) firstCPU() *cpuResult {
	for _, s := range allSystems {
		if sr := r.Systems[s]; sr != nil && sr.CPU != nil {
			return sr.CPU
		}
	}
	return nil
}

// latencyOf is a system's mean (or p99) latency in µs, at the latency rate or (low) at the
// CPU runs' rate.
func latencyOf(s *sysResult, low, p99 bool) (float64, bool) {
	if s == nil {
		return 0, false
	}
	l := s.keptLatency(low)
	if l == nil || math.IsNaN(l.MeanNs) {
		return 0, false
	}
	return l.us(p99), true
}

// legend explains the systems and the marks of the tables.
const legend = `mctun user: mctun's user-space path (datapath = "user"); mctun kernel: its kernel path
(datapath = "kernel"); VXLAN: kernel VXLAN head-end replication, the reference.
rate: the highest rate the source's application offered (pps, as mcsend reached it) that
every member received with less than the loss limit. "≥": the cap, what mcsend alone can do,
passed: the forwarder is not the limit. "s": mcsend could not reach the rate it was asked for:
the sending path is the limit. "?": the sweep ran out of trials or was cut short.
kernel path's share: of the packets of the kernel path's runs, the fraction it forwarded
itself rather than leaving them to user space, on the source or the member where it is
lowest; "†" marks the kernel path's figures where that is below 99%: they are then partly
the user-space path's.
CPU s/M: busy CPU seconds of the whole machine (less other processes') per million datagrams
delivered, summed over members, at the CPU run's rate (the median run). Latency: one-way, at
the latency rate; mean of the members' means, highest of their p99s. RSS: mctun's VmHWM, of
the source and of the highest member.
`

// baseLegend explains the base system, after the legend, when the run measured it.
const baseLegend = `mctun base: the user-space path of an earlier mctun binary (-base-mctun; make bench
builds it from BENCH_BASE, the last commit before the kernel path), measured side by side as
the baseline of "must not get slower".
`

// legendOf is the legend of rep's tables.
func legendOf(rep *report) string {
	if rep.hasBase() {
		return legend + baseLegend
	}
	return legend
}

// textReport is what the benchmark prints on stdout: the results tables, the big configs
// and the targets.
func textReport(rep *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmctun (user-space and kernel path) against kernel VXLAN head-end replication (%s, %d cores, Linux %s, %s)\n\n",
		rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Kernel, rep.Start.Format("2006-01-02"))
	for _, c := range rep.Ceilings {
		fmt.Fprintf(&b, "mcsend alone, %d B: %s pps\n", c.Size, fmtPPS(c.PPS))
	}
	b.WriteString("\nthroughput and CPU\n\n")
	b.WriteString(resultsTable(rep, blockRate, blockShare, blockCPU).text())
	if t := ceilingTable(rep); t != nil {
		b.WriteString("\nat mcsend's ceiling, one attempt per round\n\n")
		b.WriteString(t.text())
	}
	fmt.Fprintf(&b, "\nlatency at %s pps\n\n", fmtPPS(rep.Settings.LatencyRate))
	b.WriteString(resultsTable(rep, blockMean, blockP99).text())
	b.WriteString("\nlatency at the CPU runs' rate\n\n")
	b.WriteString(resultsTable(rep, blockMeanLow, blockP99Low).text())
	if len(rep.mctunOf()) > 0 {
		b.WriteString("\nmctun's memory\n\n")
		b.WriteString(resultsTable(rep, blockRSS).text())
	}
	b.WriteString("\n" + legendOf(rep))
	if len(rep.Big) > 0 {
		b.WriteString("\nmctun source with big configs\n\n")
		b.WriteString(bigTable(rep).text())
	}
	if ts := evaluate(rep); len(ts) > 0 {
		b.WriteString("\ntargets\n\n")
		tt := table{head: []string{"path", "target", "verdict", "detail"}}
		for _, t := range ts {
			tt.rows = append(tt.rows, []string{datapathOf(t.System), t.Name, t.Verdict, t.Detail})
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
