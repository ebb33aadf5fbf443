package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"mctun/test/stream"
)

// memberReport is what one member's application received.
type memberReport struct {
	Host   string
	Report stream.RecvReport
}

// trialResult is one run of mcsend against every member's mcrecv.
type trialResult struct {
	Requested     float64
	Sent          stream.SendReport
	Recv          []memberReport
	Window        time.Duration // from just before the sender started until the last receiver stopped
	BusySeconds   float64       // whole-machine busy CPU seconds over Window: elapsed × CPUs − idle − iowait − steal
	BusyTicks     float64       // the same from the tick-sampled fields: their sum − idle − iowait − steal
	OthersSeconds float64       // of which processes not the benchmark's used (scanOthers)
	StolenSeconds float64       // CPU time a hypervisor took from the machine over Window (steal)
	Background    float64       // cores the machine kept busy just before the attempt
	SettleLoad    float64       // cores it kept busy between the receivers' joins and the sender's start
}

// othersLoad is the average number of cores processes that are not the benchmark's kept
// busy during the attempt.
func (t trialResult) othersLoad() float64 { return t.cores(t.OthersSeconds) }

// stolenLoad is the average number of cores a hypervisor took from the machine during the
// attempt: on a virtual machine whose host is busy, the benchmark's work waits for it,
// which shows in its latency and rate as much as other processes' work does.
func (t trialResult) stolenLoad() float64 { return t.cores(t.StolenSeconds) }

// cores is seconds of CPU time over the attempt's window, as an average number of cores.
func (t trialResult) cores(seconds float64) float64 {
	if t.Window <= 0 {
		return 0
	}
	return seconds / t.Window.Seconds()
}

// disturbed reports whether other processes or a hypervisor took enough CPU during the
// attempt to skew it.
func (t trialResult) disturbed() bool {
	return t.othersLoad() >= disturbedCores || t.stolenLoad() >= disturbedCores
}

// disturbance says what took CPU from the attempt: "others used 0.12 cores, the hypervisor
// took 0.30".
func (t trialResult) disturbance() string {
	return fmt.Sprintf("others used %.2f cores, the hypervisor took %.2f", t.othersLoad(), t.stolenLoad())
}

// disturbedCores is the average load of other processes, or of a hypervisor's steal, above
// which an attempt counts as disturbed.
const disturbedCores = 0.05

// uniqueOf is the number of distinct good datagrams host received.
func (t trialResult) uniqueOf(host string) uint64 {
	for _, m := range t.Recv {
		if m.Host == host {
			return m.Report.Unique
		}
	}
	return 0
}

// worstLoss is the highest fraction of the sent datagrams a member did not receive, and
// that member. Datagrams that fail the byte-for-byte check are not received.
func (t trialResult) worstLoss() (float64, string) {
	worst, who := 0.0, ""
	for _, m := range t.Recv {
		l := lossOf(t.Sent.Sent, m.Report.Unique)
		if l > worst || who == "" {
			worst, who = l, m.Host
		}
	}
	return worst, who
}

// lossOf is the fraction of sent not received, 1 when nothing was sent.
func lossOf(sent, received uint64) float64 {
	if sent == 0 {
		return 1
	}
	if received >= sent {
		return 0
	}
	return float64(sent-received) / float64(sent)
}

// delivered is the number of datagrams delivered, summed over members.
func (t trialResult) delivered() uint64 {
	var n uint64
	for _, m := range t.Recv {
		n += min(m.Report.Unique, t.Sent.Sent)
	}
	return n
}

// latency combines the members' one-way latencies: the mean of their means (each member
// receives the same stream, so this is the mean over all deliveries) and the highest of
// their p99s.
func (t trialResult) latency() (mean float64, p99 int64) {
	if len(t.Recv) == 0 {
		return math.NaN(), 0
	}
	for _, m := range t.Recv {
		mean += float64(m.Report.LatencyNs.Mean)
		p99 = max(p99, m.Report.LatencyNs.P99)
	}
	return mean / float64(len(t.Recv)), p99
}

// memberLatencies lists each member's mean and p99 in µs, " mean/p99" each, in the order of
// t.Recv: the members' order in the source's config, and in VXLAN's list of peers. With many
// members on few cores, where a member's copy comes in the source's sending order decides much
// of its latency (README, Performance).
func (t trialResult) memberLatencies() string {
	var b strings.Builder
	for _, m := range t.Recv {
		fmt.Fprintf(&b, " %.0f/%.0f", float64(m.Report.LatencyNs.Mean)/1e3, float64(m.Report.LatencyNs.P99)/1e3)
	}
	return b.String()
}

// latencyResult is t's latency, as a run at rate: the members' combined latency and the
// worst member's loss.
func (t trialResult) latencyResult(rate float64) *latencyResult {
	loss, _ := t.worstLoss()
	mean, p99 := t.latency()
	return &latencyResult{Rate: rate, Achieved: t.Sent.PPS, MeanNs: mean, P99Ns: p99, Loss: loss}
}

// outcome summarizes t for the sweep, with a note on where the loss was.
func (t trialResult) outcome() Outcome {
	loss, who := t.worstLoss()
	o := Outcome{Requested: t.Requested, Achieved: t.Sent.PPS, Loss: loss}
	var drops uint64
	for _, m := range t.Recv {
		drops += m.Report.KernelDrops
	}
	if loss > 0 {
		o.Note = fmt.Sprintf("worst %s; receive-socket drops %d", who, drops)
	}
	if t.disturbed() {
		o.Note += "; " + t.disturbance() + " meanwhile"
	}
	if t.Sent.Errors > 0 {
		o.Note += fmt.Sprintf("; mcsend errors %d (%s)", t.Sent.Errors, t.Sent.FirstError)
	}
	return o
}

// cpuResult is the CPU cost of a fixed-rate run.
type cpuResult struct {
	Rate          float64 `json:"rate_pps"`           // asked for
	Achieved      float64 `json:"achieved_pps"`       // reached
	BusySeconds   float64 `json:"busy_seconds"`       // whole machine, all CPUs: elapsed × CPUs − idle − iowait − steal
	BusyTicks     float64 `json:"busy_ticks_seconds"` // the tick-sampled estimate, for comparison
	OthersSeconds float64 `json:"others_seconds"`     // of which processes not the benchmark's used
	StolenSeconds float64 `json:"stolen_seconds"`     // CPU time a hypervisor took meanwhile, not in busy
	Delivered     uint64  `json:"delivered"`          // summed over members
	Loss          float64 `json:"loss"`               // worst member
	Background    float64 `json:"background"`         // cores others kept busy just before
}

// Seconds is the busy CPU time the run cost: the whole machine's, less what processes
// that are not the benchmark's used meanwhile (nothing, on a machine of its own).
func (c cpuResult) Seconds() float64 {
	return max(0, c.BusySeconds-c.OthersSeconds)
}

// PerMillion is the busy CPU seconds per million datagrams delivered.
func (c cpuResult) PerMillion() float64 {
	if c.Delivered == 0 {
		return math.NaN()
	}
	return c.Seconds() / (float64(c.Delivered) / 1e6)
}

// latencyResult is the one-way latency of a fixed-rate run.
type latencyResult struct {
	Rate     float64 `json:"rate_pps"`
	Achieved float64 `json:"achieved_pps"`
	MeanNs   float64 `json:"mean_ns"` // mean of the members' means
	P99Ns    int64   `json:"p99_ns"`  // highest of the members' p99
	Loss     float64 `json:"loss"`
}

// us is l's mean, or its p99, in µs.
func (l *latencyResult) us(p99 bool) float64 {
	if p99 {
		return float64(l.P99Ns) / 1e3
	}
	return l.MeanNs / 1e3
}

// rssResult is the peak RSS of the mctun daemons of a world.
type rssResult struct {
	SourceHWM uint64 `json:"source_vm_hwm_kib"`
	MemberHWM uint64 `json:"member_vm_hwm_kib"` // the highest member's
}

// merge keeps the higher of each peak.
func (r *rssResult) merge(o *rssResult) *rssResult {
	switch {
	case r == nil:
		return o
	case o == nil:
		return r
	}
	return &rssResult{SourceHWM: max(r.SourceHWM, o.SourceHWM), MemberHWM: max(r.MemberHWM, o.MemberHWM)}
}

// sysResult is everything measured of one system at one (members, size).
type sysResult struct {
	System  string         `json:"system"`
	Sweep   *SweepResult   `json:"sweep,omitempty"`
	CPU     *cpuResult     `json:"cpu,omitempty"` // the median of CPURuns
	CPURuns []*cpuResult   `json:"cpu_runs,omitempty"`
	Latency *latencyResult `json:"latency,omitempty"` // the best of LatencyRuns
	// LatencyLow is the latency in the CPU runs, at a rate both systems carry without loss:
	// the best of LatencyLowRuns.
	LatencyLow *latencyResult `json:"latency_at_cpu_rate,omitempty"`
	// The fixed-rate runs' latencies, one per round, as CPURuns.
	LatencyRuns    []*latencyResult `json:"latency_runs,omitempty"`
	LatencyLowRuns []*latencyResult `json:"latency_at_cpu_rate_runs,omitempty"`
	RSS            *rssResult       `json:"rss,omitempty"`   // mctun only
	Paths          *pathsResult     `json:"paths,omitempty"` // the kernel path only
	// Ceiling is the attempts at mcsend's ceiling, one per round of the fixed-rate runs.
	Ceiling []*rateRun `json:"ceiling_runs,omitempty"`
	// NotSlowerRuns is the attempts at the row's NotSlowerRate, one per round; the
	// user-space path and the base only.
	NotSlowerRuns []*rateRun `json:"not_slower_runs,omitempty"`
}

// latencyRuns is s's latency runs of each round at the latency rate or (low) at the CPU
// runs' rate.
func (s *sysResult) latencyRuns(low bool) []*latencyResult {
	if low {
		return s.LatencyLowRuns
	}
	return s.LatencyRuns
}

// keptLatency is the latency run s kept (the best) at the latency rate or (low) at the CPU
// runs' rate; nil if none.
func (s *sysResult) keptLatency(low bool) *latencyResult {
	if low {
		return s.LatencyLow
	}
	return s.Latency
}

// rateRun is one attempt at a fixed rate (mcsend's ceiling, a row's NotSlowerRate): the rate
// mcsend reached through the system, and the worst loss.
type rateRun struct {
	Achieved float64 `json:"achieved_pps"`
	Loss     float64 `json:"loss"`
}

// pathsResult counts the packets of the kernel path's runs (the sweep's and the fixed-rate
// runs', not the check streams') by the path they took, from `mctun stats --json`: on the
// source's sender side and on each member's receiver side, "kernel" when the kernel path
// forwarded the packet itself, "user_..." with why when it left it to user space.
type pathsResult struct {
	Source  map[string]uint64   `json:"source"`
	Members []map[string]uint64 `json:"members"` // h1..hN
}

// since is what p counted after before, a reading of the same daemons.
func (p *pathsResult) since(before *pathsResult) *pathsResult {
	diff := func(now, was map[string]uint64) map[string]uint64 {
		d := map[string]uint64{}
		for k, n := range now {
			if n > was[k] {
				d[k] = n - was[k]
			} else {
				d[k] = 0
			}
		}
		return d
	}
	out := &pathsResult{Source: diff(p.Source, before.Source)}
	for i, m := range p.Members {
		var was map[string]uint64
		if i < len(before.Members) {
			was = before.Members[i]
		}
		out.Members = append(out.Members, diff(m, was))
	}
	return out
}

// add is the sum of p and o, either of which may be nil.
func (p *pathsResult) add(o *pathsResult) *pathsResult {
	if p == nil || o == nil {
		if p == nil {
			return o
		}
		return p
	}
	sum := func(a, b map[string]uint64) map[string]uint64 {
		s := map[string]uint64{}
		for k, n := range a {
			s[k] += n
		}
		for k, n := range b {
			s[k] += n
		}
		return s
	}
	out := &pathsResult{Source: sum(p.Source, o.Source)}
	for i := range max(len(p.Members), len(o.Members)) {
		var a, b map[string]uint64
		if i < len(p.Members) {
			a = p.Members[i]
		}
		if i < len(o.Members) {
			b = o.Members[i]
		}
		out.Members = append(out.Members, sum(a, b))
	}
	return out
}

// kernelShare is the fraction of the packets counted in paths that the kernel path
// forwarded itself; ok is false when none were counted.
func kernelShare(paths map[string]uint64) (share float64, ok bool) {
	var all uint64
	for _, n := range paths {
		all += n
	}
	if all == 0 {
		return 0, false
	}
	return float64(paths["kernel"]) / float64(all), true
}

// lowest is the lowest kernel share of the source and the members, and whose it is
// ("source", "h2"); ok is false when nothing was counted.
func (p *pathsResult) lowest() (share float64, who string, ok bool) {
	if p == nil {
		return 0, "", false
	}
	if s, have := kernelShare(p.Source); have {
		share, who, ok = s, "source", true
	}
	for i, m := range p.Members {
		if s, have := kernelShare(m); have && (!ok || s < share) {
			share, who, ok = s, fmt.Sprintf("h%d", i+1), true
		}
	}
	return share, who, ok
}

// minKernelShare is the kernel path's share below which the report says that its figures
// are partly the user-space path's.
const minKernelShare = 0.99

// row is one (members, size) of the table.
type row struct {
	Members int                   `json:"members"`
	Size    int                   `json:"size"`
	Systems map[string]*sysResult `json:"systems"`
	// NotSlowerRate is the rate at which the user-space path and the base make one attempt
	// each in every round of the fixed-rate runs: 1-slowerSlack of the base's loss-free
	// rate (see notSlowerRateCheck); 0 if they make none.
	NotSlowerRate float64 `json:"not_slower_rate_pps,omitempty"`
}

// sys returns the result of system, creating it.
func (r *row) sys(system string) *sysResult {
	if r.Systems == nil {
		r.Systems = map[string]*sysResult{}
	}
	s := r.Systems[system]
	if s == nil {
		s = &sysResult{System: system}
		r.Systems[system] = s
	}
	return s
}

// rate is the highest loss-free rate of system and whether it stopped at the cap; ok is
// false when it was not measured or nothing passed.
func (r *row) rate(system string) (pps float64, capped, ok bool) {
	s := r.Systems[system]
	if s == nil || s.Sweep == nil || !s.Sweep.Found {
		return 0, false, false
	}
	return s.Sweep.Best.Achieved, s.Sweep.Limit == LimitCap, true
}

// bigResult is the memory of the source's mctun with a big config.
type bigResult struct {
	System    string        `json:"system"` // sysMctun or sysKernel
	Name      string        `json:"name"`
	Groups    int           `json:"groups"`
	PerGroup  int           `json:"members_per_group"`
	Up        time.Duration `json:"up_ns"`          // how long `mctun up` took
	AfterUp   memStatus     `json:"after_up"`       // right after up
	After     memStatus     `json:"after_stream"`   // after the stream
	Sent      uint64        `json:"sent"`           // datagrams the application sent to group 0
	Delivered uint64        `json:"delivered_real"` // of which the one real member received
	// MapBytes is the kernel memory the kernel path's maps hold on the source (both sides'
	// map_bytes of `mctun stats --json`), and Paths the source's packets by path; the
	// kernel path only.
	MapBytes uint64            `json:"kernel_map_bytes,omitempty"`
	Paths    map[string]uint64 `json:"kernel_paths,omitempty"`
}

// machine describes where the benchmark ran.
type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Mctun  string `json:"mctun"`          // `mctun version`
	Base   string `json:"base,omitempty"` // -base-mctun's `mctun version`
}

// ceiling is what mcsend alone reaches at one size.
type ceiling struct {
	Size int     `json:"size"`
	PPS  float64 `json:"pps"`
}

// report is everything one run of the benchmark found.
type report struct {
	Machine  machine       `json:"machine"`
	Start    time.Time     `json:"start"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Command  string        `json:"command"`
	Settings settings      `json:"settings"`
	Ceilings []ceiling     `json:"ceilings"`
	Rows     []*row        `json:"rows"`
	Big      []bigResult   `json:"big,omitempty"`
	Notes    []string      `json:"notes,omitempty"`
	Plot     string        `json:"plot,omitempty"` // the PNG, relative to the markdown
	// Previous is the user-space path's figures of the run before, for "must not get slower".
	Previous *previousRun `json:"previous,omitempty"`
}

// settings are the parameters a reader needs to interpret the numbers.
type settings struct {
	Systems     []string      `json:"systems"`
	Trial       time.Duration `json:"trial_ns"`
	Attempts    int           `json:"attempts"`
	Rounds      int           `json:"rounds"`
	MaxLoss     float64       `json:"max_loss"`
	Precision   float64       `json:"precision"`
	Start       float64       `json:"start_pps"`
	Shortfall   float64       `json:"shortfall"`
	LatencyRate float64       `json:"latency_rate_pps"`
	CPURate     float64       `json:"cpu_rate_pps"` // 0: half the lowest loss-free rate
	CPUShare    float64       `json:"cpu_share"`
	BigCount    int           `json:"big_count"`
	BigRate     float64       `json:"big_rate_pps"`
}

// ceilingOf is mcsend's ceiling at size, 0 if unknown.
func (r *report) ceilingOf(size int) float64 {
	for _, c := range r.Ceilings {
		if c.Size == size {
			return c.PPS
		}
	}
	return 0
}

// paired compares m's runs with v's round by round, run i of each being round i's: f of
// every round whose two runs both pass use, and the median of those; ok is false when no
// round does. A round gives every system a fresh topology in turn, minutes apart at most,
// so what the machine's drift does to a round falls on both of its runs; what one system's
// runs do from round to round here moves by more than the systems differ.
func paired[T any](m, v []T, use func(T) bool, f func(m, v T) float64) (xs []float64, med float64, ok bool) {
	for i := range min(len(m), len(v)) {
		if use(m[i]) && use(v[i]) {
			xs = append(xs, f(m[i], v[i]))
		}
	}
	if len(xs) == 0 {
		return nil, 0, false
	}
	return xs, median(xs), true
}

// pairedCeiling compares what mcsend reached through system m and through v at their
// attempts at its ceiling, paired by round, the loss-free ones: each round's ratio and
// their median. Where both sweeps stopped because the sender could go no faster, the sweeps
// cannot tell the two systems apart: each is one system's attempts, minutes from the
// other's, and what the sender reaches moves by more than the systems differ (up to 40%
// between two attempts of one system, measured).
func pairedCeiling(m, v *sysResult, maxLoss float64) (ratios []float64, med float64, ok bool) {
	if m == nil || v == nil {
		return nil, 0, false
	}
	return paired(m.Ceiling, v.Ceiling,
		func(c *rateRun) bool { return c.Loss < maxLoss && c.Achieved > 0 },
		func(m, v *rateRun) float64 { return m.Achieved / v.Achieved })
}

// pairedCPU compares the CPU per million delivered of system m and of v, paired by round,
// the loss-free runs: each round's ratio and their median.
func pairedCPU(m, v *sysResult, maxLoss float64) (ratios []float64, med float64, ok bool) {
	if m == nil || v == nil {
		return nil, 0, false
	}
	return paired(m.CPURuns, v.CPURuns,
		func(c *cpuResult) bool { return c.Loss < maxLoss && c.Delivered > 0 },
		func(m, v *cpuResult) float64 { return m.PerMillion() / v.PerMillion() })
}

// pairedLatency is the mean (or p99) latency system m adds to v's, µs, paired by round,
// the rounds whose runs both pass use: each round's difference and their median. At the
// latency rate or (low) at the CPU runs' rate.
func pairedLatency(m, v *sysResult, low, p99 bool, use func(*latencyResult) bool) (added []float64, med float64, ok bool) {
	if m == nil || v == nil {
		return nil, 0, false
	}
	return paired(m.latencyRuns(low), v.latencyRuns(low), use, func(m, v *latencyResult) float64 { return m.us(p99) - v.us(p99) })
}

// carriedRate reports whether an attempt at rate carried it: it lost less than maxLoss (the
// worst member's loss) and reached at least shortfall of the rate.
func carriedRate(rate, achieved, loss, maxLoss, shortfall float64) bool {
	return loss < maxLoss && achieved >= shortfall*rate
}

// carriedAt counts the rounds in which both m and b made their attempt at rate (their
// NotSlowerRuns), n, and of those the ones each carried: loss-free, and reaching at least
// shortfall of the rate.
func carriedAt(m, b *sysResult, rate, maxLoss, shortfall float64) (mk, bk, n int) {
	if m == nil || b == nil {
		return 0, 0, 0
	}
	carried := func(a *rateRun) bool { return carriedRate(rate, a.Achieved, a.Loss, maxLoss, shortfall) }
	n = min(len(m.NotSlowerRuns), len(b.NotSlowerRuns))
	for i := range n {
		if carried(m.NotSlowerRuns[i]) {
			mk++
		}
		if carried(b.NotSlowerRuns[i]) {
			bk++
		}
	}
	return mk, bk, n
}

// medianCeiling is the median of the rates s's loss-free attempts at mcsend's ceiling reached.
func medianCeiling(s *sysResult, maxLoss float64) (float64, bool) {
	if s == nil {
		return 0, false
	}
	var pps []float64
	for _, c := range s.Ceiling {
		if c.Loss < maxLoss {
			pps = append(pps, c.Achieved)
		}
	}
	if len(pps) == 0 {
		return 0, false
	}
	return median(pps), true
}

// median is the middle of xs, or the mean of the two middle ones; xs is not empty.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
