package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"mctun/test/mcapp"
)

// benchPrefix starts the name of every namespace the benchmark makes, so the leftovers of
// a crashed run can be found (topo.RemoveStale) without touching the tests' topologies.
const benchPrefix = "mtbench"

// bench is one run of the benchmark.
type bench struct {
	opt   options
	dir   string // configs and the built applications
	tools mcapp.Tools
	log   io.Writer
	start time.Time

	mu   sync.Mutex
	live map[*world]struct{} // worlds not yet closed, for closeAll

	quietWaited  time.Duration // spent waiting for others' load to pass
	redone       int           // attempts made again because something else took CPU from them
	busyAttempts int           // attempts kept although still disturbed after maxRedo more
	stolen       float64       // CPU seconds a hypervisor took during all the attempts
}

// track and untrack keep the set of live worlds.
func (b *bench) track(w *world) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live == nil {
		b.live = map[*world]struct{}{}
	}
	b.live[w] = struct{}{}
}

func (b *bench) untrack(w *world) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.live, w)
}

// closeAll closes every world still open. It is safe to call from a signal handler's
// goroutine while the benchmark closes its own: closing twice is harmless.
func (b *bench) closeAll() error {
	b.mu.Lock()
	ws := make([]*world, 0, len(b.live))
	for w := range b.live {
		ws = append(ws, w)
	}
	b.mu.Unlock()
	var err error
	for _, w := range ws {
		err = errors.Join(err, w.close())
	}
	return err
}

// logf prints a progress line on the log, with the time since the start.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%6s] %s\n", time.Since(b.start).Round(time.Second), fmt.Sprintf(format, args...))
}

// run measures everything the options ask for into rep, which holds what was measured
// even when run fails halfway.
func (b *bench) run(ctx context.Context, rep *report) error {
	for _, size := range b.opt.sizes {
		c, err := b.ceiling(ctx, size)
		if err != nil {
			return err
		}
		rep.Ceilings = append(rep.Ceilings, ceiling{Size: size, PPS: c})
	}
	k := 0
	for _, n := range b.opt.members {
		for _, size := range b.opt.sizes {
			r := &row{Members: n, Size: size}
			rep.Rows = append(rep.Rows, r)
			// Rotate which system goes first, so that drift over the run (background
			// load, temperature) does not always favour the same one.
			order := rotate(b.opt.systems, k)
			k++
			if err := b.measureRow(ctx, rep, r, order); err != nil {
				return err
			}
		}
	}
	if !b.opt.big {
		return nil
	}
	for _, system := range b.opt.systems {
		if !slices.Contains(mctunSystems, system) || system == sysBase {
			continue // the targets for memory are the binary's own, not the base's
		}
		for _, c := range bigConfigs {
			res, err := b.bigConfig(ctx, system, c.name, c.groups, c.perGroup)
			if err != nil {
				return err
			}
			rep.Big = append(rep.Big, res)
		}
	}
	return nil
}

// bigConfigs are the big configs whose memory the benchmark measures.
var bigConfigs = []struct {
	name             string
	groups, perGroup int
}{{"1024 groups x 64 members", 1024, 64}, {"16 groups x 4096 members", 16, 4096}}

// rotate is systems turned left by k: systems[k%n], ..., systems[k%n-1]. With two systems
// that alternates which goes first; with three each goes first, second and third in turn.
func rotate(systems []string, k int) []string {
	if len(systems) == 0 {
		return nil
	}
	k %= len(systems)
	return append(slices.Clone(systems[k:]), systems[:k]...)
}

// ceiling measures what mcsend alone reaches at size, unpaced, on a source whose multicast
// the router drops (no system is set up): the better of the attempts.
func (b *bench) ceiling(ctx context.Context, size int) (float64, error) {
	w, err := b.open(ctx, sysNone, 1)
	if err != nil {
		return 0, err
	}
	defer w.close()
	best := 0.0
	for range b.opt.attempts {
		if _, err := b.waitQuiet(ctx); err != nil {
			return 0, err
		}
		sent, err := b.tools.Send(ctx, w.src, mcapp.SendOptions{
			Group: group, Port: groupPort, Size: size, Count: 10_000_000, Duration: b.opt.trial,
		})
		if err != nil {
			return 0, err
		}
		best = max(best, sent.PPS)
	}
	b.logf("mcsend alone, %d B, unpaced: %.0f pps (the cap of every sweep at this size)", size, best)
	return best, nil
}

// measureRow measures every system at one (members, size): first each system's sweep, then,
// at a rate picked from all the sweeps, the fixed-rate runs, in rounds. A round gives each
// system a fresh topology in turn, in an order turned from round to round, for one CPU run
// and one latency run: what one topology happens to get (where the scheduler puts its
// processes) and the machine's drift over the minutes of a row then fall on every system
// alike, instead of on whichever system's runs were made together.
func (b *bench) measureRow(ctx context.Context, rep *report, r *row, order []string) error {
	for _, system := range order {
		if err := b.sweep(ctx, rep, r, system); err != nil {
			return err
		}
	}
	rate, ceiling := b.cpuRate(r, rep.Previous.row(r.Members, r.Size)), 0.0
	r.NotSlowerRate = b.notSlowerRate(r)
	if b.opt.ceiling {
		ceiling = rep.ceilingOf(r.Size)
	}
	for round := range b.opt.rounds {
		for _, system := range rotate(order, round) {
			if err := b.fixedRuns(ctx, r, system, rate, ceiling); err != nil {
				return err
			}
		}
	}
	for _, system := range order {
		sr := r.sys(system)
		sr.CPU = medianCPU(sr.CPURuns, b.opt.maxLoss)
	}
	return nil
}

// cpuRate is the rate of the CPU runs at r: -cpu-rate; or else the previous run's at r (prev,
// nil if none) while it lies within cpuShare ± cpuShareKept of the lowest of the systems'
// loss-free rates, so that one run's figures and the next's are taken at the same rate (the
// user-space path pays per batch, and its batches shrink with the rate); or else cpuShare of
// that lowest, rounded down to two digits. Either way every system carries it without loss
// and none saturates the machine. 0 means some system passed nothing.
func (b *bench) cpuRate(r *row, prev *previousRow) float64 {
	if b.opt.cpuRate > 0 {
		return b.opt.cpuRate
	}
	lowest := math.Inf(1)
	for _, s := range b.opt.systems {
		pps, _, ok := r.rate(s)
		if !ok {
			return 0
		}
		lowest = min(lowest, pps)
	}
	if prev != nil && prev.CPURate >= (cpuShare-cpuShareKept)*lowest && prev.CPURate <= (cpuShare+cpuShareKept)*lowest {
		return prev.CPURate
	}
	return niceRate(cpuShare * lowest)
}

// notSlowerRate is the rate at which the user-space path and the base make one attempt each
// in every round (see notSlowerRateCheck): 1-slowerSlack of the base's loss-free rate, where
// both are measured and the base's sweep ended at loss; else 0, none.
func (b *bench) notSlowerRate(r *row) float64 {
	if !slices.Contains(b.opt.systems, sysMctun) {
		return 0
	}
	base := r.Systems[sysBase]
	if base == nil || base.Sweep == nil || !base.Sweep.Found || base.Sweep.Limit != LimitLoss {
		return 0
	}
	return math.Floor((1 - slowerSlack) * base.Sweep.Best.Achieved)
}

// cpuShare is the fraction of the lowest loss-free rate the CPU runs use, and cpuShareKept how
// far from it the previous run's rate may be and still be used again.
const (
	cpuShare     = 0.5
	cpuShareKept = 0.1
)

// sweep finds system's highest loss-free rate at r, and for mctun its daemons' peak RSS
// and, on the kernel path, which path the packets took.
func (b *bench) sweep(ctx context.Context, rep *report, r *row, system string) error {
	label := fmt.Sprintf("%s N=%d %dB", system, r.Members, r.Size)
	b.logf("%s: sweep", label)
	w, err := b.openVerified(ctx, system, r.Members)
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.startPaths(ctx); err != nil {
		return err
	}
	s := Sweep{
		Start: b.opt.start, Cap: rep.ceilingOf(r.Size), MinRate: 100,
		Factor: 2, Precision: b.opt.precision, MaxLoss: b.opt.maxLoss, Shortfall: shortfall,
		Attempts: b.opt.attempts, MaxTrials: b.opt.maxTrials,
	}
	res, err := s.Run(func(rate float64) (Outcome, error) {
		tr, err := b.attempt(ctx, w, label, rate, r.Size, 0, b.carries(rate))
		if err != nil {
			return Outcome{}, err
		}
		o := tr.outcome()
		verdict := "ok"
		if o.Loss >= b.opt.maxLoss {
			verdict = "LOSS"
		}
		b.logf("%s: asked %7.0f pps, sent %7.0f pps, worst loss %6.3f%% %s %s", label, o.Requested, o.Achieved, 100*o.Loss, verdict, o.Note)
		return o, nil
	})
	sr := r.sys(system)
	sr.Sweep = &res
	if err != nil {
		return err
	}
	b.logf("%s: highest loss-free %.0f pps (limit: %s)", label, res.Best.Achieved, res.Limit)
	return w.closeKeepingRSS(ctx, system, sr)
}

// carries says of an attempt at rate whether it passed: loss-free, and reaching at least
// shortfall of the rate.
func (b *bench) carries(rate float64) func(trialResult) bool {
	return func(tr trialResult) bool {
		o := tr.outcome()
		return carriedRate(rate, o.Achieved, o.Loss, b.opt.maxLoss, shortfall)
	}
}

// shortfall: an attempt that reaches less than this fraction of the rate it asked for is
// limited by the sending path, not by loss.
const shortfall = 0.95

// attempt runs one attempt at rate, the sender starting settle after the receivers (run),
// again (at most maxRedo times) while other processes or a hypervisor disturb it, unless
// good accepts it anyway: a sweep step that passes while others load the machine would pass
// without them too.
func (b *bench) attempt(ctx context.Context, w *world, label string, rate float64, size int, settle time.Duration, good func(trialResult) bool) (trialResult, error) {
	for redo := 0; ; redo++ {
		tr, err := w.run(ctx, rate, b.count(rate), size, settle)
		b.stolen += tr.StolenSeconds
		if err != nil || !tr.disturbed() || (good != nil && good(tr)) {
			return tr, err
		}
		if redo == maxRedo {
			b.busyAttempts++
			b.logf("%s: %s during the attempt at %.0f pps, still after %d tries: keeping it", label, tr.disturbance(), rate, maxRedo+1)
			return tr, nil
		}
		b.redone++
		b.logf("%s: %s during the attempt at %.0f pps: again", label, tr.disturbance(), rate)
	}
}

// joinSettle is how long a fixed-rate run waits, once every member's application has
// joined the group, before the source's application starts. A join is signalled for about
// a second after it: the kernel repeats its IGMPv3 report once within
// igmpv3_unsolicited_report_interval (1 s), VXLAN floods each report to every peer, and
// mctun's members report to the source and repeat it 500 ms later (daemon/reporter.go).
// On the kernel path at 16 members that was some 1,000 thread wake-ups and 30 ms of CPU in
// the daemons within the first second of each run, and none after (/proc/PID/schedstat). A
// fixed-rate run measures what each datagram costs, in CPU and in latency, as it would in
// steady state; it does not count the joins, which a deployment makes once.
const joinSettle = 1200 * time.Millisecond

// maxRedo is how many times an attempt that other processes or a hypervisor disturbed is
// made again.
const maxRedo = 2

// count is the number of datagrams of one trial at rate.
func (b *bench) count(rate float64) int {
	return max(100, int(rate*b.opt.trial.Seconds()))
}

// fixedRuns is system's part of a round of the fixed-rate runs, in a topology of its own: a
// CPU run at rate (unless rate is 0), which gives a latency at that rate too, a latency run
// at the latency rate, where its sweep stopped at the sender an attempt at mcsend's ceiling
// (unless ceiling is 0), which gives what the sender reaches through the system (see
// pairedCeiling), and for the user-space path and the base an attempt at the row's
// NotSlowerRate (unless it is 0). It adds them to the runs so far, keeping the better
// latency of each kind too, and for mctun its daemons' peak RSS and, on the kernel path,
// which path the packets took.
func (b *bench) fixedRuns(ctx context.Context, r *row, system string, rate, ceiling float64) error {
	label := fmt.Sprintf("%s N=%d %dB", system, r.Members, r.Size)
	w, err := b.openVerified(ctx, system, r.Members)
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.startPaths(ctx); err != nil {
		return err
	}
	sr := r.sys(system)
	if rate > 0 {
		tr, err := b.attempt(ctx, w, label, rate, r.Size, joinSettle, nil)
		if err != nil {
			return err
		}
		l := tr.latencyResult(rate)
		c := &cpuResult{Rate: rate, Achieved: tr.Sent.PPS, BusySeconds: tr.BusySeconds, BusyTicks: tr.BusyTicks, Delivered: tr.delivered(),
			Loss: l.Loss, Background: tr.Background, OthersSeconds: tr.OthersSeconds, StolenSeconds: tr.StolenSeconds}
		b.logf("%s: CPU at %.0f pps: %.2f s busy (tick-sampled %.2f; others' %.2f; stolen %.2f) for %d delivered: %.1f s per million (loss %.3f%%); latency mean %.1f µs, p99 %.1f µs; while the joins settled %.3f cores busy",
			label, rate, c.BusySeconds, c.BusyTicks, c.OthersSeconds, c.StolenSeconds, c.Delivered, c.PerMillion(), 100*l.Loss, l.MeanNs/1e3, float64(l.P99Ns)/1e3, tr.SettleLoad)
		sr.CPURuns = append(sr.CPURuns, c)
		sr.LatencyLowRuns = append(sr.LatencyLowRuns, l)
		b.keepBetter(&sr.LatencyLow, l)
	}
	lr := b.opt.latencyRate
	tr, err := b.attempt(ctx, w, label, lr, r.Size, joinSettle, nil)
	if err != nil {
		return err
	}
	l := tr.latencyResult(lr)
	b.logf("%s: latency at %.0f pps: mean %.1f µs, p99 %.1f µs (loss %.3f%%; stolen %.2f s; while the joins settled %.3f cores busy); members' mean/p99 µs in the source's order:%s",
		label, lr, l.MeanNs/1e3, float64(l.P99Ns)/1e3, 100*l.Loss, tr.StolenSeconds, tr.SettleLoad, tr.memberLatencies())
	sr.LatencyRuns = append(sr.LatencyRuns, l)
	b.keepBetter(&sr.Latency, l)
	if ceiling > 0 && sr.Sweep != nil && sr.Sweep.Limit == LimitSender {
		tr, err := b.attempt(ctx, w, label, ceiling, r.Size, joinSettle, nil)
		if err != nil {
			return err
		}
		o := tr.outcome()
		b.logf("%s: at mcsend's ceiling, %.0f pps: sent %.0f pps, worst loss %.3f%% (stolen %.2f s)", label, ceiling, o.Achieved, 100*o.Loss, tr.StolenSeconds)
		sr.Ceiling = append(sr.Ceiling, &rateRun{Achieved: o.Achieved, Loss: o.Loss})
	}
	if nr := r.NotSlowerRate; nr > 0 && (system == sysMctun || system == sysBase) {
		// As a sweep's step: at once, and made again only if it failed while disturbed.
		tr, err := b.attempt(ctx, w, label, nr, r.Size, 0, b.carries(nr))
		if err != nil {
			return err
		}
		o := tr.outcome()
		b.logf("%s: at %.0f pps, %.0f%% of the base's loss-free rate: sent %.0f pps, worst loss %.3f%% %s",
			label, nr, 100*(1-slowerSlack), o.Achieved, 100*o.Loss, o.Note)
		sr.NotSlowerRuns = append(sr.NotSlowerRuns, &rateRun{Achieved: o.Achieved, Loss: o.Loss})
	}
	return w.closeKeepingRSS(ctx, system, sr)
}

// medianCPU is the CPU run the table shows: the median by CPU per million (the lower of the
// two middle ones) of the loss-free runs, or of all of them if none was loss-free. Single
// runs are noisy both ways here (a shared machine, tick-based accounting), so neither the
// lowest nor the highest is trusted.
func medianCPU(runs []*cpuResult, maxLoss float64) *cpuResult {
	var pick []*cpuResult
	for _, c := range runs {
		if c.Loss < maxLoss {
			pick = append(pick, c)
		}
	}
	if len(pick) == 0 {
		pick = slices.Clone(runs)
	}
	if len(pick) == 0 {
		return nil
	}
	slices.SortStableFunc(pick, func(a, b *cpuResult) int { return cmp.Compare(a.PerMillion(), b.PerMillion()) })
	return pick[(len(pick)-1)/2]
}

// keepBetter makes *kept l when there was none or l is better (betterLatency).
func (b *bench) keepBetter(kept **latencyResult, l *latencyResult) {
	if *kept == nil || b.betterLatency(l, *kept) {
		*kept = l
	}
}

// betterLatency reports whether latency run x is better than y: loss-free first, then the
// lower p99.
func (b *bench) betterLatency(x, y *latencyResult) bool {
	xOK, yOK := x.Loss < b.opt.maxLoss, y.Loss < b.opt.maxLoss
	if xOK != yOK {
		return xOK
	}
	return x.P99Ns < y.P99Ns
}

// openVerified opens a world and checks that it delivers.
func (b *bench) openVerified(ctx context.Context, system string, n int) (*world, error) {
	w, err := b.open(ctx, system, n)
	if err != nil {
		return nil, err
	}
	if err := w.verify(ctx); err != nil {
		return nil, errors.Join(err, w.close())
	}
	return w, nil
}

// bigConfig starts mctun on system's datapath on h0 with groups groups of perGroup members
// each (h1, a real member with its own mctun, first in group 0; the rest made up), sends a
// short stream to group 0 and reads the source daemon's memory and, on the kernel path,
// the memory of its maps.
func (b *bench) bigConfig(ctx context.Context, system, name string, groups, perGroup int) (bigResult, error) {
	res := bigResult{System: system, Name: name, Groups: groups, PerGroup: perGroup}
	dp := datapathOf(system)
	b.logf("big config %s, %s", name, systemName(system))
	w, err := b.open(ctx, sysNone, 1)
	if err != nil {
		return res, err
	}
	defer w.close()
	real := w.members[0]
	gs, err := bigGroups(groups, perGroup, real.Addr)
	if err != nil {
		return res, err
	}
	if err := w.mctunUpOn(ctx, real, memberConfig(dp, w.src.Addr)); err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := w.mctunUpOn(ctx, w.src, sourceConfig(dp, gs)); err != nil {
		return res, err
	}
	res.Up = time.Since(t0)
	if res.AfterUp, err = w.mctunMem(ctx, w.src, dp); err != nil {
		return res, err
	}
	dur := time.Duration(float64(b.opt.bigCount) / b.opt.bigRate * float64(time.Second))
	rcv, err := b.tools.StartRecv(ctx, real, mcapp.RecvOptions{
		Group: gs[0].Address, Port: groupPort, Count: b.opt.bigCount, Idle: 2 * time.Second,
		Timeout: dur + 30*time.Second,
	})
	if err != nil {
		return res, err
	}
	sent, err := b.tools.Send(ctx, w.src, mcapp.SendOptions{
		Group: gs[0].Address, Port: groupPort, Count: b.opt.bigCount, Size: 1200, Rate: b.opt.bigRate,
		Duration: dur + 5*time.Second,
	})
	if err != nil {
		rcv.Stop()
		return res, err
	}
	got, err := rcv.Wait()
	if err != nil {
		return res, err
	}
	res.Sent, res.Delivered = sent.Sent, got.Unique
	// Give the source time to finish the fan-out to the made-up members.
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return res, err
	}
	if res.After, err = w.mctunMem(ctx, w.src, dp); err != nil {
		return res, err
	}
	// The maps' memory is read after the daemon's, since listing every member's counters
	// makes the daemon allocate.
	if system == sysKernel {
		st, err := w.readMctunStatus(ctx, w.src, "stats")
		if err != nil {
			return res, err
		}
		for _, k := range []*kernelStatus{sideKernel(st.Source), sideKernel(st.Member)} {
			if k != nil {
				res.MapBytes += k.MapBytes
			}
		}
		if k := sideKernel(st.Source); k != nil {
			res.Paths = k.Paths
		}
	}
	b.logf("big config %s, %s: up in %v, VmRSS %.1f MiB after up; after %d datagrams (real member got %d): VmHWM %.1f MiB, VmRSS %.1f MiB; kernel maps %.1f MiB",
		name, systemName(system), res.Up.Round(time.Millisecond), mib(res.AfterUp.RSS), res.Sent, res.Delivered, mib(res.After.HWM), mib(res.After.RSS), float64(res.MapBytes)/(1<<20))
	return res, w.close()
}

// The machine is shared (other people's builds and tests may run on it), and every figure
// here is whole-machine. Before each attempt the benchmark therefore waits, for at most
// quietWait, until the CPU time others use over quietSample is below quietCores.
const (
	quietSample = 250 * time.Millisecond
	quietCores  = 0.10
	quietWait   = 20 * time.Second
)

// loadOver waits for d and returns the machine's load meanwhile, in cores busy.
func loadOver(ctx context.Context, d time.Duration) (float64, error) {
	before, err := readCPU()
	if err != nil {
		return 0, err
	}
	if err := sleepCtx(ctx, d); err != nil {
		return 0, err
	}
	after, err := readCPU()
	if err != nil {
		return 0, err
	}
	return after.busyElapsedSince(before) / after.At.Sub(before.At).Seconds(), nil
}

// waitQuiet waits until the machine is quiet, or quietWait has passed, and returns the
// load it last saw, in cores busy. Nothing of the benchmark runs while it samples.
func (b *bench) waitQuiet(ctx context.Context) (float64, error) {
	deadline := time.Now().Add(quietWait)
	logged := false
	for {
		load, err := loadOver(ctx, quietSample)
		if err != nil {
			return 0, err
		}
		if load < quietCores {
			return load, nil
		}
		if time.Now().After(deadline) {
			b.logf("the machine is still busy (%.2f cores) after %v: measuring anyway", load, quietWait)
			return load, nil
		}
		if !logged {
			b.logf("waiting for the machine to be quiet (%.2f cores busy)", load)
			logged = true
		}
		b.quietWaited += quietSample
	}
}
