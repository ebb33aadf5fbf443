package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// goals are what one of mctun's packet paths is held to, against VXLAN measured in the
// same run.
type goals struct {
	system string
	rate   float64 // loss-free rate, at least this times VXLAN's
	cpu    float64 // CPU per million delivered, at most this times VXLAN's
	meanUs float64 // added mean latency, at most, µs
	p99Us  float64 // added p99 latency, at most, µs
	// lowFirst: the latency goals hold at the CPU runs' rate, which every system carries
	// without loss, and at the latency rate only where both carry that without loss (the
	// kernel path). Otherwise they hold at the latency rate whatever was lost there, and
	// the CPU runs' rate is supplementary (the user-space path's goals, as they were).
	lowFirst bool
}

var (
	// kernelGoals are issue 8's targets for the kernel path.
	kernelGoals = goals{system: sysKernel, rate: 1.0, cpu: 1.0, meanUs: 5, p99Us: 20, lowFirst: true}
	// userGoals are the user-space path's targets, as they were before the kernel path.
	userGoals = goals{system: sysMctun, rate: 1.0, cpu: 1.2, meanUs: 20, p99Us: 100}
)

const (
	targetBigRSSMiB = 30.0 // VmHWM with each big config, on either path
	// slowerSlack is how much worse than the base binary's, or the earlier runs' median, a
	// figure of the user-space path may be before it counts as slower: two measurements of one
	// binary differ by about that much (a shared 2-core machine, 5% sweep precision).
	slowerSlack = 0.10
)

// verdict is how one of mctun's paths fares against one target.
type verdict struct {
	System  string // sysKernel or sysMctun
	Name    string
	Verdict string // "meets", "misses" or "not measured"
	Detail  string
}

// evaluate holds the results against the targets: the kernel path's, then the user-space
// path's, each if it was measured. A comparison needs both systems at the same (members,
// size); rows without both are left out.
func evaluate(rep *report) []verdict {
	var vs []verdict
	for _, g := range []goals{kernelGoals, userGoals} {
		if !slices.Contains(rep.systems(), g.system) {
			continue
		}
		vs = append(vs, g.evaluate(rep)...)
		if g.system == sysMctun {
			vs = append(vs, notSlower(rep)...)
		}
	}
	return vs
}

// evaluate holds one path's results against its goals.
func (g goals) evaluate(rep *report) []verdict {
	sys := g.system
	var vs []verdict
	vs = append(vs,
		compareRows(rep, rateCheck(rep, sys, sysVXLAN, g.rate, fmt.Sprintf("loss-free rate >= %.1fx VXLAN at every N and size", g.rate))),
		compareRows(rep, cpuCheck(rep, sys, sysVXLAN, g.cpu, fmt.Sprintf("CPU per million delivered <= %.1fx VXLAN", g.cpu))))
	lows := []bool{false, true}
	if g.lowFirst {
		lows = []bool{true, false}
	}
	for _, low := range lows {
		for _, p99 := range []bool{false, true} {
			name, limit := fmt.Sprintf("added mean latency <= %.0f µs", g.meanUs), g.meanUs
			if p99 {
				name, limit = fmt.Sprintf("added p99 latency <= %.0f µs", g.p99Us), g.p99Us
			}
			switch {
			case low && g.lowFirst:
				name += ", at the CPU runs' rate (which every system carries without loss)"
			case low:
				name += ", at the CPU runs' rate (both loss-free; supplementary)"
			case g.lowFirst:
				name += fmt.Sprintf(", at %s pps where both carry it without loss", fmtPPS(rep.Settings.LatencyRate))
			default:
				name += fmt.Sprintf(", at %s pps", fmtPPS(rep.Settings.LatencyRate))
			}
			use := func(*latencyResult) bool { return true }
			if g.lowFirst {
				use = func(l *latencyResult) bool { return carried(rep, l) }
			}
			c := rowCheck{
				name: name,
				value: func(r *row) (float64, string, bool) {
					return addedLatency(r.Systems[sys], r.Systems[sysVXLAN], low, p99, use)
				},
				ok: func(x float64) bool { return x <= limit }, higherIsWorse: true,
			}
			if g.lowFirst {
				c.skip = func(r *row) bool {
					_, mok := latencyOf(r.Systems[sys], low, p99)
					_, vok := latencyOf(r.Systems[sysVXLAN], low, p99)
					return mok && vok
				}
				c.skipWhy = "where one of them lost packets or fell short of the rate"
			}
			vs = append(vs, compareRows(rep, c))
		}
	}
	for i := range vs {
		vs[i].System = sys
	}
	return append(vs, bigVerdict(rep, sys))
}

// rateCheck holds sys's highest loss-free rate to at least limit times ref's, at every row
// where both swept to an end: where both stopped at the sender, round by round at mcsend's
// ceiling (pairedCeiling); where both passed the cap, it holds whatever the ratio.
func rateCheck(rep *report, sys, ref string, limit float64, name string) rowCheck {
	return rowCheck{
		name: name,
		value: func(r *row) (float64, string, bool) {
			m, v := r.Systems[sys], r.Systems[ref]
			if m == nil || v == nil || m.Sweep == nil || v.Sweep == nil || !v.Sweep.Found ||
				m.Sweep.Limit == LimitIncomplete || v.Sweep.Limit == LimitIncomplete {
				return 0, "", false
			}
			mr, _ := sweepRate(m)
			vr, _ := sweepRate(v)
			ratio := mr / vr
			if m.Sweep.Limit == LimitCap && v.Sweep.Limit == LimitCap {
				return max(ratio, limit), fmt.Sprintf("%.2fx, both at the mcsend ceiling", ratio), true
			}
			if m.Sweep.Limit == LimitSender && v.Sweep.Limit == LimitSender {
				if ratios, med, ok := pairedCeiling(m, v, rep.Settings.MaxLoss); ok {
					return med, fmt.Sprintf("%s: both stopped by the sender, so %s (%s; the sweeps' %.2fx)",
						fmtVerdictRatio(med, limit), sideBySide(len(ratios)), fmtRatios(ratios), ratio), true
				}
			}
			return ratio, fmtVerdictRatio(ratio, limit), true
		},
		ok: func(x float64) bool { return x >= limit },
	}
}

// cpuCheck holds sys's CPU per million delivered to at most limit times ref's, at every row:
// the median of the rounds' ratios where both have loss-free runs in the same rounds
// (pairedCPU), else the ratio of their medians.
func cpuCheck(rep *report, sys, ref string, limit float64, name string) rowCheck {
	return rowCheck{
		name: name,
		value: func(r *row) (float64, string, bool) {
			m, v := r.Systems[sys], r.Systems[ref]
			mc, mok := cpuPerM(m)
			vc, vok := cpuPerM(v)
			if !mok || !vok || !(vc > 0) {
				return 0, "", false
			}
			if ratios, med, ok := pairedCPU(m, v, rep.Settings.MaxLoss); ok {
				return med, fmt.Sprintf("%s: %s (%s; the medians' %.2fx)",
					fmtVerdictRatio(med, limit), sideBySide(len(ratios)), fmtRatios(ratios), mc/vc), true
			}
			return mc / vc, fmtVerdictRatio(mc/vc, limit), true
		},
		ok: func(x float64) bool { return x <= limit }, higherIsWorse: true,
	}
}

// carried reports whether latency run l was loss-free at the rate asked.
func carried(rep *report, l *latencyResult) bool {
	return carriedRate(l.Rate, l.Achieved, l.Loss, rep.Settings.MaxLoss, rep.Settings.Shortfall)
}

// addedLatency is the mean (or p99) latency system m adds to v's, µs, at the latency rate
// or (low) at the CPU runs' rate, with how to show it: where both have their runs of each
// round, the median of the rounds' differences (pairedLatency), counting the rounds whose
// runs both pass use; else the difference of the runs they kept, if both pass use.
func addedLatency(m, v *sysResult, low, p99 bool, use func(*latencyResult) bool) (float64, string, bool) {
	if m == nil || v == nil {
		return 0, "", false
	}
	if len(m.latencyRuns(low)) > 0 && len(v.latencyRuns(low)) > 0 {
		added, med, ok := pairedLatency(m, v, low, p99, use)
		if !ok {
			return 0, "", false
		}
		return med, fmt.Sprintf("%s µs: %s (%s)", fmtAdded(med, true), sideBySide(len(added)), fmtAddeds(added)), true
	}
	ml, vl := m.keptLatency(low), v.keptLatency(low)
	if ml == nil || vl == nil || !use(ml) || !use(vl) {
		return 0, "", false
	}
	d := ml.us(p99) - vl.us(p99)
	return d, fmtAdded(d, true) + " µs", true
}

// fmtVerdictRatio shows ratio x, held to limit, to two decimals, or to three where two would
// put it on the limit from either side: 0.998x against 1.0 misses, and "1.00x" would not say so.
func fmtVerdictRatio(x, limit float64) string {
	if x != limit && math.Round(x*100) == math.Round(limit*100) {
		return fmt.Sprintf("%.3fx", x)
	}
	return fmt.Sprintf("%.2fx", x)
}

// sideBySide names the median of n rounds' paired figures.
func sideBySide(n int) string {
	if n == 1 {
		return "the median of 1 round side by side"
	}
	return fmt.Sprintf("the median of %d rounds side by side", n)
}

// bigVerdict holds system's RSS with the big configs to targetBigRSSMiB, and for the kernel
// path reports the memory of its maps.
func bigVerdict(rep *report, system string) verdict {
	v := verdict{System: system, Name: fmt.Sprintf("RSS <= %.0f MiB with both big configs", targetBigRSSMiB), Verdict: "not measured"}
	var parts []string
	n := 0
	for _, b := range rep.Big {
		if b.System != system {
			continue
		}
		n++
		if v.Verdict == "not measured" {
			v.Verdict = "meets"
		}
		hwm := mib(b.After.HWM)
		if hwm > targetBigRSSMiB {
			v.Verdict = "misses"
		}
		part := fmt.Sprintf("%s: VmHWM %.2f MiB", b.Name, hwm)
		if system == sysKernel {
			part += fmt.Sprintf(", kernel maps %.1f MiB", float64(b.MapBytes)/(1<<20))
		}
		parts = append(parts, part)
	}
	if n > 0 && n < len(bigConfigs) {
		v.Verdict = "not measured"
	}
	v.Detail = strings.Join(parts, "; ")
	return v
}

// notSlower holds the user-space path to "must not get slower": against the base binary's
// user-space path side by side in this run where it was measured (-base-mctun), else against
// the earlier runs' figures.
func notSlower(rep *report) []verdict {
	if !rep.hasBase() {
		return notSlowerThanEarlier(rep)
	}
	vs := []verdict{
		compareRows(rep, notSlowerRateCheck(rep)),
		compareRows(rep, cpuCheck(rep, sysMctun, sysBase, 1+slowerSlack, notSlowerBaseCPU)),
	}
	for i := range vs {
		vs[i].System = sysMctun
	}
	return vs
}

// notSlowerRateCheck holds the user-space path's loss-free rate to at least 1-slowerSlack of
// the base's. Where both made their attempts at that share of the base's rate, one per round
// (row.NotSlowerRate), those decide: it holds if the user-space path carried the rate in most
// rounds, or in as many as the base did. Its sweep cannot decide it: each sweep is a bisection
// in 4.5% steps of single attempts, and near a system's loss cliff one attempt at a rate
// loses and the next does not, which moved the ratio of the two sweeps by one to three steps
// from run to run with nothing changed (0.92x, 1.14x and 0.88x at 4 x 64 B). Where there are
// no such attempts, or the base carried the rate in none of its own (its sweep's figure was
// a lucky attempt), the sweeps' ratio, as rateCheck gives it. Figures are in units of the
// limit: at least 1 holds.
func notSlowerRateCheck(rep *report) rowCheck {
	limit := 1 - slowerSlack
	c := rateCheck(rep, sysMctun, sysBase, limit, notSlowerBaseRate)
	sweeps := c.value
	c.value = func(r *row) (float64, string, bool) {
		x, show, ok := sweeps(r)
		if !ok {
			return 0, "", false
		}
		mk, bk, n := carriedAt(r.Systems[sysMctun], r.Systems[sysBase], r.NotSlowerRate, rep.Settings.MaxLoss, rep.Settings.Shortfall)
		need := min(n/2+1, bk)
		if need == 0 {
			return x / limit, show, true
		}
		return float64(mk) / float64(need), fmt.Sprintf("carried %s pps, %.0f%% of the base's loss-free rate, in %d of %d rounds, the base in %d; the sweeps' %s",
			fmtPPS(r.NotSlowerRate), 100*limit, mk, n, bk, show), true
	}
	c.ok = func(x float64) bool { return x >= 1 }
	return c
}

// notSlowerThanEarlier compares the user-space path's figures with those of the earlier runs
// (see previousRun.runs), each as a ratio to VXLAN's in its own run: the loss-free rate must not be
// lower, nor the CPU per million delivered higher, than their median by more than
// slowerSlack. Ratios, because the runs are on hosts of different speed (one host's sender
// alone reached a fifth of another's rate), and a ratio measured side by side in one run
// keeps what the host gives out of the comparison. Of the earlier runs it takes those whose
// trials were as long, and for the CPU those whose CPU runs' rate was within cpuRateNear of
// this run's: the user-space path pays per batch, and its batches shrink with the rate. And
// only those measured with the same applications (appsVersion), whose costs are in every CPU
// figure, VXLAN's too.
func notSlowerThanEarlier(rep *report) []verdict {
	p := rep.Previous
	trial := rep.Settings.Trial.String()
	var runs []previousRun
	for _, run := range p.runs() {
		if (run.Trial == "" || run.Trial == trial) && run.apps() == appsVersion {
			runs = append(runs, run)
		}
	}
	if why := notComparable(p, runs, trial); why != "" {
		return []verdict{
			{System: sysMctun, Name: notSlowerRate, Verdict: "not measured", Detail: why},
			{System: sysMctun, Name: notSlowerCPU, Verdict: "not measured", Detail: why},
		}
	}
	// earlier is the figure the runs have at r, and how many had one.
	earlier := func(r *row, figure func(*previousRow) (float64, bool)) (float64, int) {
		var xs []float64
		for i := range runs {
			if x, ok := figure(runs[i].row(r.Members, r.Size)); ok {
				xs = append(xs, x)
			}
		}
		if len(xs) == 0 {
			return 0, 0
		}
		return median(xs), len(xs)
	}
	earlierRate := func(r *row) (float64, int) {
		return earlier(r, func(pr *previousRow) (float64, bool) {
			if pr == nil || !pr.HaveRate || !pr.HaveVXLANRate {
				return 0, false
			}
			return ratio(pr.Rate, pr.VXLANRate)
		})
	}
	earlierCPU := func(r *row) (float64, int) {
		c := r.firstCPU()
		return earlier(r, func(pr *previousRow) (float64, bool) {
			if pr == nil || !pr.HaveCPU || !pr.HaveVXLANCPU {
				return 0, false
			}
			if c != nil && pr.CPURate > 0 && math.Abs(pr.CPURate/c.Rate-1) > cpuRateNear {
				return 0, false
			}
			return ratio(pr.CPU, pr.VXLANCPU)
		})
	}
	// nowVsVXLAN is this run's figure of the user-space path over VXLAN's at r.
	nowVsVXLAN := func(r *row, figure func(*sysResult) (float64, bool)) (float64, bool) {
		x, ok := figure(r.Systems[sysMctun])
		v, vok := figure(r.Systems[sysVXLAN])
		if !ok || !vok {
			return 0, false
		}
		return ratio(x, v)
	}
	showRatio := func(x float64) string { return fmt.Sprintf("%.2fx VXLAN", x) }
	rate := compareRows(rep, againstEarlier(notSlowerRate, "where no earlier run has a figure",
		func(r *row) (float64, bool, bool) {
			x, ok := nowVsVXLAN(r, sweepRate)
			return x, ok, ok && r.Systems[sysMctun].Sweep.Limit != LimitIncomplete && r.Systems[sysVXLAN].Sweep.Limit != LimitIncomplete
		}, earlierRate, showRatio, func(x float64) bool { return x >= 1-slowerSlack }, false))
	cpu := compareRows(rep, againstEarlier(notSlowerCPU,
		fmt.Sprintf("where no earlier run has a figure at a CPU runs' rate within %.0f%% of this run's", 100*cpuRateNear),
		func(r *row) (float64, bool, bool) {
			x, ok := nowVsVXLAN(r, cpuPerM)
			return x, ok, ok
		}, earlierCPU, showRatio, func(x float64) bool { return x <= 1+slowerSlack }, true))
	vs := []verdict{rate, cpu}
	for i := range vs {
		vs[i].System = sysMctun
		if vs[i].Verdict == "not measured" && vs[i].Detail == "" {
			vs[i].Detail = p.File + " has no figure of the user-space path and VXLAN at the same N and size"
		}
	}
	return vs
}

// againstEarlier is the rowCheck of a figure of the user-space path against the earlier runs'
// median of it: now is this run's figure at a row, whether it has one and whether it may be
// compared; was is the median and how many runs had a figure; show writes a figure. A row
// with a figure that no earlier run has is named as left out.
func againstEarlier(name, skipWhy string, now func(*row) (x float64, have, usable bool), was func(*row) (float64, int),
	show func(float64) string, ok func(float64) bool, higherIsWorse bool) rowCheck {
	return rowCheck{
		name: name,
		value: func(r *row) (float64, string, bool) {
			x, _, usable := now(r)
			w, n := was(r)
			if n == 0 || !usable {
				return 0, "", false
			}
			return x / w, fmt.Sprintf("%.2fx: %s, median %s of %s", x/w, show(x), show(w), runsOf(n)), true
		},
		skip: func(r *row) bool {
			_, have, _ := now(r)
			_, n := was(r)
			return have && n == 0
		},
		skipWhy:       skipWhy,
		ok:            ok,
		higherIsWorse: higherIsWorse,
	}
}

// notComparable says why the user-space path has no earlier runs to compare with, given the
// previous report p and the runs of it that compare; "" when it has some.
func notComparable(p *previousRun, runs []previousRun, trial string) string {
	switch {
	case p == nil:
		return "no previous report to compare with"
	case p.Problem != "":
		return p.File + ": " + p.Problem
	case len(runs) > 0:
		return ""
	case p.Trial != "" && p.Trial != trial:
		// Shorter trials pass higher rates: figures of different trial lengths do not compare.
		return fmt.Sprintf("%s's trials were %s, this run's %s: their figures do not compare", p.File, p.Trial, trial)
	}
	return fmt.Sprintf("%s's runs measured with applications %s, this run with %s: their figures do not compare", p.File, p.apps(), appsText)
}

// The user-space path's targets against the base binary's, and against the earlier runs.
var (
	notSlowerBaseRate = fmt.Sprintf("must not get slower: loss-free rate at least %.0f%% of mctun base's, side by side", 100*(1-slowerSlack))
	notSlowerBaseCPU  = fmt.Sprintf("must not get slower: CPU per million delivered at most %.0f%% of mctun base's, round by round", 100*(1+slowerSlack))

	notSlowerRate = fmt.Sprintf("must not get slower: loss-free rate × VXLAN at least %.0f%% of the earlier runs' median", 100*(1-slowerSlack))
	notSlowerCPU  = fmt.Sprintf("must not get slower: CPU per million delivered × VXLAN at most %.0f%% of the earlier runs' median", 100*(1+slowerSlack))
)

// ratio is x over y, when both are figures.
func ratio(x, y float64) (float64, bool) {
	if !(x > 0) || !(y > 0) {
		return 0, false
	}
	return x / y, true
}

// cpuRateNear is how far from this run's CPU runs' rate an earlier run's may be for their CPU
// figures of the user-space path to compare.
const cpuRateNear = 0.2

// runsOf says "1 run", "5 runs".
func runsOf(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}

// rowCheck is one target applied to every row.
type rowCheck struct {
	name string
	// value is a row's figure and how to show it; ok false leaves the row out silently
	// (a system not measured there).
	value func(*row) (x float64, show string, ok bool)
	// skip, if set, says of a row for which value has no figure whether it was measured and
	// left out, to be named in the detail with skipWhy.
	skip    func(*row) bool
	skipWhy string
	// ok says whether a figure holds; the worst figure is the highest when higherIsWorse,
	// else the lowest.
	ok            func(float64) bool
	higherIsWorse bool
}

// compareRows applies c to every row that has both systems. The detail names the worst row
// and every row that misses, and those c.skip left out.
func compareRows(rep *report, c rowCheck) verdict {
	v := verdict{Name: c.name, Verdict: "not measured"}
	var worst *row
	var worstVal float64
	var worstShow string
	var misses, skipped []string
	n := 0
	for _, r := range rep.Rows {
		x, show, have := c.value(r)
		if !have {
			if c.skip != nil && c.skip(r) {
				skipped = append(skipped, fmt.Sprintf("%s %d B", members(r.Members), r.Size))
			}
			continue
		}
		n++
		if worst == nil || (c.higherIsWorse && x > worstVal) || (!c.higherIsWorse && x < worstVal) {
			worst, worstVal, worstShow = r, x, show
		}
		if !c.ok(x) {
			misses = append(misses, fmt.Sprintf("%s %d B (%s)", members(r.Members), r.Size, show))
		}
	}
	var skipNote string
	if len(skipped) > 0 {
		skipNote = fmt.Sprintf("left out %s: %s", c.skipWhy, strings.Join(skipped, ", "))
	}
	if n == 0 {
		v.Detail = skipNote
		return v
	}
	v.Verdict = "meets"
	v.Detail = fmt.Sprintf("worst %s at %s, %d B, of %d", worstShow, members(worst.Members), worst.Size, n)
	if len(misses) > 0 {
		v.Verdict = "misses"
		v.Detail = fmt.Sprintf("misses at %d of %d: %s", len(misses), n, strings.Join(misses, ", "))
	}
	if skipNote != "" {
		v.Detail += "; " + skipNote
	}
	return v
}

// notes are the remarks a reader needs to read the numbers right: where the cap or the
// sender, not the forwarder, bounds a rate, fixed-rate runs that lost packets, and where the
// kernel path left more than 1% of the packets to user space.
func notes(rep *report) []string {
	var ns []string
	for _, r := range rep.Rows {
		for _, system := range allSystems {
			s := r.Systems[system]
			if s == nil {
				continue
			}
			where := fmt.Sprintf("%s at %s, %d B", systemName(system), members(r.Members), r.Size)
			if sw := s.Sweep; sw != nil {
				switch {
				case !sw.Found:
					ns = append(ns, fmt.Sprintf("%s lost packets even at the lowest rate tried.", where))
				case sw.Limit == LimitCap:
					ns = append(ns, fmt.Sprintf("%s carried mcsend's own ceiling (%s pps) without loss: the cap, not the forwarder, is the limit, and the figure is a lower bound.",
						where, fmtPPS(sw.Best.Achieved)))
				case sw.Limit == LimitSender:
					why := "the sending path is the limit"
					switch system {
					case sysVXLAN:
						why += ": the kernel encapsulates and replicates in the sender's own sendmmsg call"
					case sysKernel:
						why += ": the kernel path's program encapsulates and replicates in the sender's own sendmmsg call"
					default:
						why += ": mcsend shares the two CPUs with mctun, the receivers and the kernel's softirq work"
					}
					ns = append(ns, fmt.Sprintf("%s: mcsend reached only %s of the %s pps it was asked for, without loss; %s.",
						where, fmtPPS(sw.Best.Achieved), fmtPPS(sw.Best.Requested), why))
				case sw.Limit == LimitSteps:
					ns = append(ns, fmt.Sprintf("%s: the sweep ran out of trials before converging.", where))
				}
			}
			if c := s.CPU; c != nil && c.Loss >= rep.Settings.MaxLoss {
				ns = append(ns, fmt.Sprintf("%s lost %.2f%% in the CPU run at %s pps (CPU is per datagram delivered).", where, 100*c.Loss, fmtPPS(c.Rate)))
			}
			if l := s.Latency; l != nil && l.Loss >= rep.Settings.MaxLoss {
				ns = append(ns, fmt.Sprintf("%s lost %.2f%% in the latency run at %s pps: its latency includes queueing in front of the loss.", where, 100*l.Loss, fmtPPS(l.Rate)))
			}
			if l := s.Latency; l != nil && l.Achieved < rep.Settings.Shortfall*l.Rate {
				ns = append(ns, fmt.Sprintf("%s: in the latency run mcsend reached only %s of the %s pps asked.", where, fmtPPS(l.Achieved), fmtPPS(l.Rate)))
			}
			if share, who, ok := s.paths().lowest(); ok && share < minKernelShare {
				ns = append(ns, fmt.Sprintf("%s: the kernel path forwarded only %s of the packets itself (at %s; the rest went to user space: %s), so its figures there (marked †) are partly the user-space path's.",
					where, fmtPercent(share), who, leftToUser(s.Paths)))
			}
		}
	}
	if p := rep.Previous; p != nil && p.Problem != "" && !rep.hasBase() {
		ns = append(ns, fmt.Sprintf("The user-space path is not compared with an earlier run: %s: %s.", p.File, p.Problem))
	}
	return append(ns, rep.Notes...)
}

// leftToUser lists what the kernel path left to user space, on the source and each member.
func leftToUser(p *pathsResult) string {
	var parts []string
	if u := userPaths(p.Source); u != "" {
		parts = append(parts, "source "+u)
	}
	for i, m := range p.Members {
		if u := userPaths(m); u != "" {
			parts = append(parts, fmt.Sprintf("h%d %s", i+1, u))
		}
	}
	return strings.Join(parts, "; ")
}

// members says "1 member", "4 members".
func members(n int) string {
	if n == 1 {
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
}

// systemName is how the report names a system.
func systemName(system string) string {
	switch system {
	case sysVXLAN:
		return "VXLAN"
	case sysMctun:
		return "mctun user"
	case sysBase:
		return "mctun base"
	case sysKernel:
		return "mctun kernel"
	}
	return system
}
