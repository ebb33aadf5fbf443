// Command perfsplit says where a machine's busy time went while a benchmark's applications
// ran: in the packet path, in waking the applications, in the applications themselves, or
// elsewhere. It reads the output of `perf script -F comm,time,ip,sym` for a system-wide
// profile with call stacks, as
//
//	perf record -a -g -F 4999 -o kernel.data -- go run ./test/bench -systems mctun-kernel \
//	    -members 16 -sizes 1200 -big=false -rounds 1 -start 1300 -cpu-rate 1300 -latency-rate 1300 -max-trials 1 \
//	    -ceiling=false
//	perf script -i kernel.data -F comm,time,ip,sym | go run ./test/cmd/perfsplit
//
// and does the same for another system (-systems vxlan), so that the two can be set side by
// side: with every run at one rate, the samples per second of each part compare the
// systems' costs per delivered datagram.
//
// It counts only the steady seconds: whole seconds within the runs, in which the receiving
// application (-recv) has at least -steady of its busiest second's samples and the seconds
// either side some. That leaves out the set-up of each topology, the sender's unpaced run,
// and the seconds a run only partly fills. A sample is idle when its innermost function is one
// the idle loop waits in, and otherwise, by its call stack, the first of:
//   - wake-ups: under try_to_wake_up or sock_def_readable, waking a process or a socket's
//     waiters (in a virtual machine the interrupt it sends is costly, and the profile's
//     timer counts the time interrupts were off at the point they come back on);
//   - packet path: under net_rx_action, __dev_queue_xmit or ip_finish_output2, the kernel's
//     work on a packet below the sockets: the tunnel, the simulated network, the delivery;
//     and the body of a BPF program whose callers perf could not walk back to (a program
//     of the packet path, on a benchmark's machine);
//   - applications: in a process named by -apps, what is left: system calls, copies, the
//     runtime;
//   - other: everything else (mctun's daemons, the benchmark, kernel threads).
//
// It prints each part's samples per steady second and share of the busy ones, and the
// functions the packet path's samples were in, most first.
package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// sample is one profile sample: its process, when, and its call stack, innermost first.
type sample struct {
	comm   string
	second int64
	stack  []string
}

// The parts of busy time (part tries wake-ups before the packet path: a wake-up in a
// packet's delivery is counted as a wake-up).
const (
	wakeups     = "wake-ups"
	packetPath  = "packet path"
	apps        = "applications"
	other       = "other"
	idleSamples = "idle"
)

var (
	idleFuncs   = set("pv_native_safe_halt", "native_safe_halt", "default_idle", "poll_idle", "intel_idle", "acpi_idle_do_entry", "mwait_idle_with_hints")
	wakeupFuncs = set("try_to_wake_up", "sock_def_readable")
	pathFuncs   = set("net_rx_action", "__dev_queue_xmit", "ip_finish_output2")
)

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// parse reads perf script's output: a header line per sample ("comm time:" and perhaps
// more), then one indented line per stack frame ("address symbol+offset (dso)"), then a
// blank line.
func parse(r io.Reader) ([]sample, error) {
	var out []sample
	var cur *sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case strings.TrimSpace(text) == "":
			cur = nil
		case text[0] == ' ' || text[0] == '\t':
			f := strings.Fields(text)
			if cur == nil || len(f) < 2 {
				continue
			}
			sym, _, _ := strings.Cut(f[1], "+")
			cur.stack = append(cur.stack, sym)
		default:
			s, err := header(text)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			out = append(out, s)
			cur = &out[len(out)-1]
		}
	}
	return out, sc.Err()
}

// header reads a sample's first line: "comm time:", where comm may hold spaces.
func header(text string) (sample, error) {
	f := strings.Fields(text)
	for i := len(f) - 1; i > 0; i-- {
		t, ok := strings.CutSuffix(f[i], ":")
		if !ok {
			continue
		}
		sec, _, _ := strings.Cut(t, ".")
		if n, err := strconv.ParseInt(sec, 10, 64); err == nil {
			return sample{comm: strings.Join(f[:i], " "), second: n}, nil
		}
	}
	return sample{}, fmt.Errorf("%q: not a sample's header (comm time:); run perf script -F comm,time,ip,sym", text)
}

// part says which part of busy time a sample is in, or idleSamples.
func part(s sample, appNames map[string]bool) string {
	if len(s.stack) > 0 && idleFuncs[s.stack[0]] {
		return idleSamples
	}
	if slices.ContainsFunc(s.stack, func(f string) bool { return wakeupFuncs[f] }) {
		return wakeups
	}
	if slices.ContainsFunc(s.stack, func(f string) bool { return pathFuncs[f] }) || inProgram(s.stack) {
		return packetPath
	}
	if appNames[s.comm] {
		return apps
	}
	return other
}

// inProgram reports whether a sample is in the body of a BPF program whose callers perf
// could not unwind (its JIT-compiled frames end the walk): on a benchmark's machine, mostly a
// program of the packet path (a tracing program's body would count here too).
func inProgram(stack []string) bool {
	return len(stack) > 0 && strings.HasPrefix(stack[0], "bpf_prog_") &&
		!slices.ContainsFunc(stack[1:], func(f string) bool { return f != "[unknown]" })
}

// steadySeconds returns the whole seconds of the runs: those in which the receiving
// application recv had at least frac of its busiest second's samples, and which are inside a
// run: the seconds before and after had some too (a twentieth of the busiest's), where a
// run's first and last seconds, partly before or after it, can pass the first test.
func steadySeconds(samples []sample, recv string, frac float64) map[int64]bool {
	per := map[int64]int{}
	most := 0
	for _, s := range samples {
		if s.comm == recv {
			per[s.second]++
			most = max(most, per[s.second])
		}
	}
	active := func(sec int64) bool { return per[sec]*20 >= most && per[sec] > 0 }
	steady := map[int64]bool{}
	for sec, n := range per {
		if float64(n) >= frac*float64(most) && active(sec-1) && active(sec+1) {
			steady[sec] = true
		}
	}
	return steady
}

// split is the busy samples of the steady seconds by part, and the packet path's by function.
type split struct {
	seconds int
	parts   map[string]int
	path    map[string]int
}

func splitSamples(samples []sample, steady map[int64]bool, appNames map[string]bool) split {
	sp := split{seconds: len(steady), parts: map[string]int{}, path: map[string]int{}}
	for _, s := range samples {
		if !steady[s.second] {
			continue
		}
		p := part(s, appNames)
		if p == idleSamples {
			continue
		}
		sp.parts[p]++
		if p == packetPath && len(s.stack) > 0 {
			sp.path[s.stack[0]]++
		}
	}
	return sp
}

func (sp split) print(w io.Writer, top int) {
	per := func(n int) float64 { return float64(n) / float64(sp.seconds) }
	parts := []string{packetPath, wakeups, apps, other}
	busy := 0
	for _, p := range parts {
		busy += sp.parts[p]
	}
	fmt.Fprintf(w, "%d steady seconds, %.1f busy samples per second\n\n", sp.seconds, per(busy))
	for _, p := range parts {
		fmt.Fprintf(w, "%-13s %9.1f /s %6.1f%%\n", p, per(sp.parts[p]), 100*float64(sp.parts[p])/float64(busy))
	}
	funcs := make([]string, 0, len(sp.path))
	for f := range sp.path {
		funcs = append(funcs, f)
	}
	slices.SortFunc(funcs, func(a, b string) int {
		return cmp.Or(cmp.Compare(sp.path[b], sp.path[a]), strings.Compare(a, b))
	})
	fmt.Fprintf(w, "\npacket path by function:\n")
	for _, f := range funcs[:min(top, len(funcs))] {
		fmt.Fprintf(w, "%9.1f /s  %s\n", per(sp.path[f]), f)
	}
}

func main() {
	fs := flag.NewFlagSet("perfsplit", flag.ContinueOnError)
	recv := fs.String("recv", "mcrecv", "the receiving application's process name, which marks the steady seconds")
	appList := fs.String("apps", "mcsend,mcrecv", "the applications' process names, comma-separated")
	frac := fs.Float64("steady", 0.8, "a steady second has at least this fraction of the receiver's busiest second's samples")
	top := fs.Int("top", 25, "functions of the packet path to list")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if err := run(os.Stdin, os.Stdout, *recv, strings.Split(*appList, ","), *frac, *top); err != nil {
		fmt.Fprintln(os.Stderr, "perfsplit:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer, recv string, appNames []string, frac float64, top int) error {
	if frac <= 0 || frac > 1 {
		return fmt.Errorf("-steady %g: want more than 0, at most 1", frac)
	}
	samples, err := parse(in)
	if err != nil {
		return err
	}
	steady := steadySeconds(samples, recv, frac)
	if len(steady) == 0 {
		return errors.New("no sample of " + recv + " (-recv): no steady second to count")
	}
	splitSamples(samples, steady, set(appNames...)).print(out, top)
	return nil
}
