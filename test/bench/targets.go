package main

import (
	"fmt"
	"strings"
)

// The goals mctun is held to, against VXLAN measured in the same run.
const (
	targetRate      = 1.0  // loss-free rate, at least this times VXLAN's
	targetCPU       = 1.2  // CPU per million delivered, at most this times VXLAN's
	targetMeanUs    = 20.0 // added mean latency, at most, µs
	targetP99Us     = 100.0
	targetBigRSSMiB = 30.0 // VmHWM with each big config
)

// verdict is how mctun fares against one target.
type verdict struct {
	Name    string
	Verdict string // "meets", "misses" or "not measured"
	Detail  string
}

// evaluate holds the results against the targets. A comparison needs both systems at the
// same (members, size); rows without both are left out.
func evaluate(rep *report) []verdict {
	var vs []verdict
	vs = append(vs, compareRows(rep, fmt.Sprintf("loss-free rate >= %.1fx VXLAN at every N and size", targetRate),
		func(r *row) (float64, string, bool) {
			m, v := r.Systems[sysMctun], r.Systems[sysVXLAN]
			if m == nil || v == nil || m.Sweep == nil || v.Sweep == nil || !v.Sweep.Found ||
				m.Sweep.Limit == LimitIncomplete || v.Sweep.Limit == LimitIncomplete {
				return 0, "", false
			}
			mr, _ := sweepRate(m)
			vr, _ := sweepRate(v)
			ratio := mr / vr
			if m.Sweep.Limit == LimitCap && v.Sweep.Limit == LimitCap {
				return max(ratio, targetRate), fmt.Sprintf("%.2fx, both at the mcsend ceiling", ratio), true
			}
			return ratio, fmt.Sprintf("%.2fx", ratio), true
		}, func(x float64) bool { return x >= targetRate }, false))
	vs = append(vs, compareRows(rep, fmt.Sprintf("CPU per million delivered <= %.1fx VXLAN", targetCPU),
		func(r *row) (float64, string, bool) {
			mc, mok := cpuPerM(r.Systems[sysMctun])
			vc, vok := cpuPerM(r.Systems[sysVXLAN])
			if !mok || !vok || !(vc > 0) {
				return 0, "", false
			}
			return mc / vc, fmt.Sprintf("%.2fx", mc/vc), true
		}, func(x float64) bool { return x <= targetCPU }, true))
	for _, low := range []bool{false, true} {
		for _, p99 := range []bool{false, true} {
			name, limit := fmt.Sprintf("added mean latency <= %.0f µs", targetMeanUs), targetMeanUs
			if p99 {
				name, limit = fmt.Sprintf("added p99 latency <= %.0f µs", targetP99Us), targetP99Us
			}
			if low {
				name += ", at the CPU runs' rate (both loss-free; supplementary)"
			} else {
				name += fmt.Sprintf(", at %s pps", fmtPPS(rep.Settings.LatencyRate))
			}
			vs = append(vs, compareRows(rep, name,
				func(r *row) (float64, string, bool) {
					ml, mok := latencyOf(r.Systems[sysMctun], low, p99)
					vl, vok := latencyOf(r.Systems[sysVXLAN], low, p99)
					if !mok || !vok {
						return 0, "", false
					}
					return ml - vl, fmt.Sprintf("%+.1f µs", ml-vl), true
				}, func(x float64) bool { return x <= limit }, true))
		}
	}
	big := verdict{Name: fmt.Sprintf("RSS <= %.0f MiB with both big configs", targetBigRSSMiB), Verdict: "not measured"}
	if len(rep.Big) > 0 {
		big.Verdict = "meets"
		var parts []string
		for _, b := range rep.Big {
			hwm := mib(b.After.HWM)
			if hwm > targetBigRSSMiB {
				big.Verdict = "misses"
			}
			parts = append(parts, fmt.Sprintf("%s: VmHWM %.1f MiB", b.Name, hwm))
		}
		if len(rep.Big) < 2 {
			big.Verdict = "not measured"
		}
		big.Detail = strings.Join(parts, "; ")
	}
	return append(vs, big)
}

// compareRows applies one target to every row that has both systems: value gives the row's
// figure and how to show it, ok says whether it holds. The detail names the worst row (the
// highest figure when higherIsWorse, else the lowest) and every row that misses.
func compareRows(rep *report, name string, value func(*row) (float64, string, bool), ok func(float64) bool, higherIsWorse bool) verdict {
	v := verdict{Name: name, Verdict: "not measured"}
	var worst *row
	var worstVal float64
	var worstShow string
	var misses []string
	n := 0
	for _, r := range rep.Rows {
		x, show, have := value(r)
		if !have {
			continue
		}
		n++
		if worst == nil || (higherIsWorse && x > worstVal) || (!higherIsWorse && x < worstVal) {
			worst, worstVal, worstShow = r, x, show
		}
		if !ok(x) {
			misses = append(misses, fmt.Sprintf("%s %d B (%s)", members(r.Members), r.Size, show))
		}
	}
	if n == 0 {
		return v
	}
	v.Verdict = "meets"
	v.Detail = fmt.Sprintf("worst %s at %s, %d B, of %d", worstShow, members(worst.Members), worst.Size, n)
	if len(misses) > 0 {
		v.Verdict = "misses"
		v.Detail = fmt.Sprintf("misses at %d of %d: %s", len(misses), n, strings.Join(misses, ", "))
	}
	return v
}

// notes are the remarks a reader needs to read the numbers right: where the cap or the
// sender, not the forwarder, bounds a rate, and fixed-rate runs that lost packets.
func notes(rep *report) []string {
	var ns []string
	for _, r := range rep.Rows {
		for _, system := range []string{sysMctun, sysVXLAN} {
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
					if system == sysVXLAN {
						why = "the sending path is the limit: the kernel encapsulates and replicates in the sender's own sendmmsg call"
					} else {
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
		}
	}
	return append(ns, rep.Notes...)
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
	if system == sysVXLAN {
		return "VXLAN"
	}
	return system
}
