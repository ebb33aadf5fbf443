package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

func main() {
	opt, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(opt); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run checks the machine, measures, removes everything it made, and writes the results.
func run(opt options) (err error) {
	if err := checkTools(opt); err != nil {
		return err
	}
	if opt.mctun, err = filepath.Abs(opt.mctun); err != nil {
		return err
	}
	if opt.baseMctun != "" {
		if opt.baseMctun, err = filepath.Abs(opt.baseMctun); err != nil {
			return err
		}
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "mctun-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{opt: opt, dir: dir, log: os.Stderr, start: start}
	defer func() {
		if cerr := b.closeAll(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		}
	}()

	// The first SIGINT/SIGTERM cancels: every process the benchmark runs is killed, and the
	// deferred closes run `mctun down` and remove the namespaces. A second one does that
	// at once and exits.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	defer func() { signal.Stop(sigs); close(done) }()
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		fmt.Fprintln(os.Stderr, "bench: interrupted: stopping and removing everything (again to hurry)")
		cancel()
		select {
		case <-sigs:
			b.closeAll()
			os.Exit(130)
		case <-done:
		}
	}()

	if err := topo.RemoveStale(benchPrefix); err != nil {
		fmt.Fprintln(os.Stderr, "bench: removing what a crashed run left:", err)
	}
	b.logf("building mcsend and mcrecv")
	if b.tools, err = mcapp.Build(ctx, dir); err != nil {
		return err
	}
	rep := &report{
		Machine: describeMachine(ctx, opt), Start: start.UTC(), Command: commandLine(os.Args[1:]),
		Settings: settings{
			Systems: opt.systems, Trial: opt.trial, Attempts: opt.attempts, Rounds: opt.rounds, MaxLoss: opt.maxLoss,
			Precision: opt.precision, Start: opt.start, Shortfall: shortfall,
			LatencyRate: opt.latencyRate, CPURate: opt.cpuRate, CPUShare: cpuShare,
			BigCount: opt.bigCount, BigRate: opt.bigRate,
		},
	}
	rep.Previous = readPrevious(opt)
	runErr := b.run(ctx, rep)
	rep.Elapsed = time.Since(start)
	if b.quietWaited > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("The machine was shared: the benchmark waited %v in all for other processes' load to pass before its attempts.",
			b.quietWaited.Round(time.Second)))
	}
	if b.redone > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("Other processes or the hypervisor disturbed attempts: %d were made again; kept although still disturbed after %d tries: %d.",
			b.redone, maxRedo+1, b.busyAttempts))
	}
	if b.stolen > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("The machine is virtual and its hypervisor took %.1f s of CPU time from it during the attempts (steal, /proc/stat), kept out of the busy time.", b.stolen))
	}
	if cerr := b.closeAll(); cerr != nil {
		runErr = errors.Join(runErr, fmt.Errorf("cleaning up: %w", cerr))
	}
	fmt.Print(textReport(rep))
	if runErr != nil {
		if ctx.Err() != nil {
			runErr = errors.New("interrupted; everything it made is removed, nothing written")
		}
		return runErr // a partial run never overwrites the report files
	}
	return writeOutputs(ctx, opt, rep)
}

// writeOutputs writes the plot, the markdown report and the JSON, as asked.
func writeOutputs(ctx context.Context, opt options, rep *report) error {
	if opt.plot != "" {
		if err := drawPlot(ctx, rep, opt.plot); err != nil {
			fmt.Fprintln(os.Stderr, "bench: no plot:", err)
			rep.Notes = append(rep.Notes, "The rate plot was not drawn: "+err.Error()+".")
		} else if opt.out != "" {
			rel, err := filepath.Rel(filepath.Dir(opt.out), opt.plot)
			if err != nil {
				rel = opt.plot
			}
			rep.Plot = filepath.ToSlash(rel)
		}
	}
	if opt.out != "" {
		if err := os.WriteFile(opt.out, []byte(markdownReport(rep)), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", opt.out)
	}
	if opt.jsonOut != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(opt.jsonOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", opt.jsonOut)
	}
	return nil
}

// checkTools says what the benchmark needs and does not find.
func checkTools(opt options) error {
	if err := topo.Available(); err != nil {
		return err
	}
	if slices.Contains(opt.systems, sysVXLAN) {
		if _, err := exec.LookPath("bridge"); err != nil {
			return fmt.Errorf("the VXLAN reference needs iproute2's bridge command: %w", err)
		}
	}
	if runsMctun(opt.systems) {
		if !executable(opt.mctun) {
			return fmt.Errorf("-mctun %s: not an executable (make build makes bin/mctun)", opt.mctun)
		}
	}
	if opt.baseMctun != "" && !executable(opt.baseMctun) {
		return fmt.Errorf("-base-mctun %s: not an executable (make bench-base makes bin/mctun-base)", opt.baseMctun)
	}
	if opt.plot != "" {
		if _, err := exec.LookPath("gnuplot"); err != nil {
			fmt.Fprintln(os.Stderr, "bench: gnuplot is missing, so the plot will not be drawn (apt-get install -y gnuplot-nox)")
		}
	}
	return nil
}

// executable reports whether path is a file that may be run.
func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// describeMachine says where the benchmark runs.
func describeMachine(ctx context.Context, opt options) machine {
	m := machine{CPU: "unknown", Cores: runtime.NumCPU(), Kernel: "unknown", Go: runtime.Version(), Mctun: "not measured"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	version := func(binary string) string {
		out, err := exec.CommandContext(ctx, binary, "version").Output()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(out))
	}
	if runsMctun(opt.systems) {
		m.Mctun = version(opt.mctun)
	}
	if opt.baseMctun != "" {
		m.Base = version(opt.baseMctun)
	}
	return m
}

// runsMctun reports whether systems holds a system that runs mctun.
func runsMctun(systems []string) bool {
	return slices.ContainsFunc(systems, func(s string) bool { return slices.Contains(mctunSystems, s) })
}

// commandLine is the command that reproduces this run, as a developer types it.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./test/bench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
