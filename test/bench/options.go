package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options are the command line.
type options struct {
	mctun       string
	baseMctun   string // "": no base system
	members     []int
	sizes       []int
	systems     []string
	trial       time.Duration
	start       float64
	precision   float64
	maxLoss     float64
	attempts    int
	rounds      int
	maxTrials   int
	latencyRate float64
	cpuRate     float64
	ceiling     bool
	big         bool
	bigCount    int
	bigRate     float64
	out         string
	plot        string
	jsonOut     string
	previous    string // the markdown report of an earlier run; "" takes out's
}

// maxMembers keeps the members' subnets 198.18.<i+1>.0/24 below the overlay's 198.18.200.0/24.
const maxMembers = 198

// parseOptions reads the command line.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mctun, "mctun", "bin/mctun", "the mctun `binary` to measure (make build)")
	fs.StringVar(&o.baseMctun, "base-mctun", "", "also measure this earlier mctun `binary`'s user-space path (system mctun-base; make bench builds bin/mctun-base from BENCH_BASE), side by side: the user-space path \"must not get slower\" than it")
	members := fs.String("members", "1,4,16", "numbers of members, comma-separated")
	sizes := fs.String("sizes", "64,1200", "UDP payload sizes in bytes, comma-separated")
	systems := fs.String("systems", "mctun,mctun-kernel,vxlan", "systems to measure, comma-separated: mctun (the user-space path, datapath = \"user\"), mctun-kernel (the kernel path, datapath = \"kernel\"), vxlan; -base-mctun adds mctun-base")
	fs.DurationVar(&o.trial, "trial", 3*time.Second, "length of each trial (sweep step, CPU run, latency run)")
	fs.Float64Var(&o.start, "start", 5000, "first rate of each sweep, pps")
	fs.Float64Var(&o.precision, "precision", 0.05, "stop bisecting once the failing rate is within this fraction of the passing one")
	fs.Float64Var(&o.maxLoss, "loss", 0.001, "a trial is loss-free when every member loses less than this fraction")
	fs.IntVar(&o.attempts, "attempts", 2, "attempts per sweep trial (a trial fails only if every attempt does)")
	fs.IntVar(&o.rounds, "rounds", 9, fmt.Sprintf("rounds of fixed-rate runs at each point: in each, every system gets a topology of its own for a CPU run, a latency run, an attempt at mcsend's ceiling and, for the user-space path and mctun-base, one at %.0f%% of the base's loss-free rate (the median CPU run and the best latency run are kept)", 100*(1-slowerSlack)))
	fs.IntVar(&o.maxTrials, "max-trials", 14, "most trials per sweep")
	fs.Float64Var(&o.latencyRate, "latency-rate", 10000, "rate of the latency run, pps")
	fs.Float64Var(&o.cpuRate, "cpu-rate", 0, "rate of the CPU run, pps; 0 takes half the lowest of the systems' loss-free rates")
	fs.BoolVar(&o.ceiling, "ceiling", true, "end each round with an attempt at mcsend's ceiling in every system's topology, which compares the systems where the sender stops both sweeps (false: for a profile of the fixed-rate runs alone)")
	fs.BoolVar(&o.big, "big", true, "also measure mctun's RSS with big configs (1024 groups x 64 members, 16 x 4096), on each datapath measured")
	fs.IntVar(&o.bigCount, "big-count", 200, "datagrams sent to one group of a big config")
	fs.Float64Var(&o.bigRate, "big-rate", 200, "their rate, pps")
	fs.StringVar(&o.out, "out", "", "write the markdown report to this `file` (make bench: BENCHMARKS.md)")
	fs.StringVar(&o.plot, "plot", "", "draw the rate plot into this PNG `file` with gnuplot (make bench: BENCHMARKS-rate.png)")
	fs.StringVar(&o.jsonOut, "json", "", "write every measurement, every sweep step included, as JSON to this `file`")
	fs.StringVar(&o.previous, "previous", "", "compare the user-space path with the figures of an earlier run's markdown report in this `file`, and of the runs it kept (default: the -out file, read before it is written over)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `bench measures mctun, on its user-space and on its kernel path, against kernel VXLAN head-end
replication in network namespaces (root).

  sudo go run ./test/bench -mctun bin/mctun                                   # the full run (make bench)
  sudo go run ./test/bench -members 1 -sizes 64 -trial 1s -big=false          # a few minutes

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.members, err = parseInts("-members", *members, 1, maxMembers); err != nil {
		return o, err
	}
	if o.sizes, err = parseInts("-sizes", *sizes, 16, 1472); err != nil {
		return o, err
	}
	if o.systems, err = parseSystems(*systems); err != nil {
		return o, err
	}
	if o.baseMctun != "" {
		o.systems = sortSystems(append(o.systems, sysBase))
	}
	return o, o.check()
}

// check reports the first value out of range.
func (o options) check() error {
	switch {
	case o.trial < 100*time.Millisecond || o.trial > 5*time.Minute:
		return fmt.Errorf("-trial %v: want 100ms to 5m", o.trial)
	case !(o.start >= 100):
		return fmt.Errorf("-start %g: want at least 100", o.start)
	case !(o.precision > 0 && o.precision < 1):
		return fmt.Errorf("-precision %g: want more than 0 and less than 1", o.precision)
	case !(o.maxLoss > 0 && o.maxLoss < 1):
		return fmt.Errorf("-loss %g: want more than 0 and less than 1", o.maxLoss)
	case o.attempts < 1 || o.attempts > 10:
		return fmt.Errorf("-attempts %d: want 1 to 10", o.attempts)
	case o.rounds < 1 || o.rounds > 10:
		return fmt.Errorf("-rounds %d: want 1 to 10", o.rounds)
	case o.maxTrials < 1 || o.maxTrials > 50:
		return fmt.Errorf("-max-trials %d: want 1 to 50", o.maxTrials)
	case !(o.latencyRate >= 100):
		return fmt.Errorf("-latency-rate %g: want at least 100", o.latencyRate)
	case o.cpuRate != 0 && !(o.cpuRate >= 100):
		return fmt.Errorf("-cpu-rate %g: want 0 or at least 100", o.cpuRate)
	case o.bigCount < 1 || o.bigCount > 100000:
		return fmt.Errorf("-big-count %d: want 1 to 100000", o.bigCount)
	case !(o.bigRate >= 1):
		return fmt.Errorf("-big-rate %g: want at least 1", o.bigRate)
	}
	return nil
}

// parseInts reads a comma-separated list of distinct integers in [lo, hi], sorted.
func parseInts(flagName, s string, lo, hi int) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.Atoi(f)
		if err != nil || n < lo || n > hi {
			return nil, fmt.Errorf("%s: %q is not an integer from %d to %d", flagName, f, lo, hi)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%s: %d twice", flagName, n)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// parseSystems reads the -systems list, in the canonical order of allSystems. "user" is
// another name for mctun, "kernel" for mctun-kernel. The base system is not named there: it
// comes with -base-mctun.
func parseSystems(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch f {
		case "user":
			f = sysMctun
		case "kernel":
			f = sysKernel
		}
		if f == sysBase || !slices.Contains(allSystems, f) {
			return nil, fmt.Errorf("-systems: %q: want mctun (or user), mctun-kernel (or kernel) or vxlan (-base-mctun adds mctun-base)", f)
		}
		out = append(out, f)
	}
	return sortSystems(out), nil
}

// sortSystems puts systems in the canonical order of allSystems, each once.
func sortSystems(systems []string) []string {
	slices.SortFunc(systems, func(a, b string) int { return slices.Index(allSystems, a) - slices.Index(allSystems, b) })
	return slices.Compact(systems)
}
