// Package mcapp builds and runs mcsend and mcrecv, the stand-ins for unmodified multicast
// applications, inside test hosts, and decodes the JSON line each prints when it stops.
//
// It only starts processes: where they run is up to the Runner, usually a *topo.Host,
// whose Command wraps them in `ip netns exec`.
package mcapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mctun/test/stream"
)

// Runner makes the command that runs a program somewhere, such as inside a network
// namespace. *topo.Host is one.
type Runner interface {
	Command(ctx context.Context, name string, args ...string) *exec.Cmd
}

// Tools are the paths of the built programs.
type Tools struct {
	Mcsend string // path of mcsend
	Mcrecv string // path of mcrecv
}

// Build compiles mcsend and mcrecv into dir with `go build`, which must run inside the
// mctun module (a test's working directory is). It finds go on PATH, else in $GOROOT/bin.
func Build(ctx context.Context, dir string) (Tools, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(filepath.Separator),
		"mctun/test/cmd/mcsend", "mctun/test/cmd/mcrecv")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Tools{}, fmt.Errorf("mcapp: go build: %w: %s", err, out)
	}
	return Tools{Mcsend: filepath.Join(dir, "mcsend"), Mcrecv: filepath.Join(dir, "mcrecv")}, nil
}

// SendOptions are mcsend's flags; a zero field leaves mcsend's default.
type SendOptions struct {
	Group    netip.Addr
	Port     int
	SrcPort  int
	Count    int
	Size     int
	Rate     float64
	Duration time.Duration
	TTL      int
	Iface    string
	Proto    int
	Batch    int
	SndBuf   int
	NoLoop   bool     // -loop=false
	Extra    []string // more flags, appended as given
}

// Args returns the command-line flags for o.
func (o SendOptions) Args() []string {
	var a args
	a.addr("group", o.Group)
	a.int("port", o.Port)
	a.int("src-port", o.SrcPort)
	a.int("count", o.Count)
	a.int("size", o.Size)
	a.float("rate", o.Rate)
	a.dur("duration", o.Duration)
	a.int("ttl", o.TTL)
	a.str("iface", o.Iface)
	a.int("proto", o.Proto)
	a.int("batch", o.Batch)
	a.int("sndbuf", o.SndBuf)
	if o.NoLoop {
		a = append(a, "-loop=false")
	}
	return append(a, o.Extra...)
}

// RecvOptions are mcrecv's flags; a zero field leaves mcrecv's default. Ready is set by
// StartRecv.
type RecvOptions struct {
	Group   netip.Addr
	Port    int
	Iface   string
	Proto   int
	Count   int
	Idle    time.Duration
	Timeout time.Duration
	Size    int
	MaxSeq  int
	Batch   int
	RcvBuf  int
	Extra   []string // more flags, appended as given
}

// Args returns the command-line flags for o.
func (o RecvOptions) Args() []string {
	var a args
	a.addr("group", o.Group)
	a.int("port", o.Port)
	a.str("iface", o.Iface)
	a.int("proto", o.Proto)
	a.int("count", o.Count)
	a.dur("idle", o.Idle)
	a.dur("timeout", o.Timeout)
	a.int("size", o.Size)
	a.int("max-seq", o.MaxSeq)
	a.int("batch", o.Batch)
	a.int("rcvbuf", o.RcvBuf)
	return append(a, o.Extra...)
}

// Send runs mcsend on r until it stops and returns its report.
func (t Tools) Send(ctx context.Context, r Runner, o SendOptions) (stream.SendReport, error) {
	var rep stream.SendReport
	cmd := r.Command(ctx, t.Mcsend, o.Args()...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if derr := decodeLast(stdout.Bytes(), &rep); err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return rep, fmt.Errorf("mcapp: mcsend %s: %w: %s", strings.Join(o.Args(), " "), err, strings.TrimSpace(stderr.String()))
	}
	return rep, nil
}

// Receiver is a running mcrecv.
type Receiver struct {
	cmd    *exec.Cmd
	args   []string
	dir    string // holds the ready file
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{} // closed once the process has exited
	err    error         // cmd.Wait's error, valid after done
}

// StartRecv starts mcrecv on r and returns once it has joined the group and listens, as
// its ready file says. It fails if mcrecv exits first or is not ready within 10 seconds.
func (t Tools) StartRecv(ctx context.Context, r Runner, o RecvOptions) (*Receiver, error) {
	dir, err := os.MkdirTemp("", "mcrecv-")
	if err != nil {
		return nil, fmt.Errorf("mcapp: %w", err)
	}
	rc := &Receiver{dir: dir, done: make(chan struct{})}
	rc.args = append(o.Args(), "-ready", filepath.Join(dir, "ready"))
	rc.cmd = r.Command(ctx, t.Mcrecv, rc.args...)
	rc.cmd.Stdout, rc.cmd.Stderr = &rc.stdout, &rc.stderr
	if err := rc.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mcapp: start mcrecv: %w", err)
	}
	go func() {
		rc.err = rc.cmd.Wait()
		close(rc.done)
	}()
	if err := rc.waitReady(10 * time.Second); err != nil {
		rc.cmd.Process.Kill()
		<-rc.done
		os.RemoveAll(dir)
		return nil, err
	}
	return rc, nil
}

// waitReady polls for the ready file until it exists, mcrecv exits or timeout passes.
func (rc *Receiver) waitReady(timeout time.Duration) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(timeout)
	for {
		if _, err := os.Stat(filepath.Join(rc.dir, "ready")); err == nil {
			return nil
		}
		select {
		case <-rc.done:
			return fmt.Errorf("mcapp: mcrecv %s exited before it was ready: %v: %s",
				strings.Join(rc.args, " "), rc.err, strings.TrimSpace(rc.stderr.String()))
		case <-limit:
			return fmt.Errorf("mcapp: mcrecv %s not ready after %v", strings.Join(rc.args, " "), timeout)
		case <-tick.C:
		}
	}
}

// Wait waits until mcrecv stops by itself (count, idle or timeout) and returns its report.
func (rc *Receiver) Wait() (stream.RecvReport, error) {
	<-rc.done
	os.RemoveAll(rc.dir)
	var rep stream.RecvReport
	err := rc.err
	if derr := decodeLast(rc.stdout.Bytes(), &rep); err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return rep, fmt.Errorf("mcapp: mcrecv %s: %w: %s", strings.Join(rc.args, " "), err, strings.TrimSpace(rc.stderr.String()))
	}
	return rep, nil
}

// Stop asks mcrecv to stop now (SIGTERM) and returns its report.
func (rc *Receiver) Stop() (stream.RecvReport, error) {
	select {
	case <-rc.done:
	default:
		rc.cmd.Process.Signal(syscall.SIGTERM)
	}
	return rc.Wait()
}

// decodeLast decodes the last line of out as JSON into v.
func decodeLast(out []byte, v any) error {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	last := lines[len(lines)-1]
	if len(last) == 0 {
		return errors.New("no JSON report on stdout")
	}
	if err := json.Unmarshal(last, v); err != nil {
		return fmt.Errorf("report %q: %w", last, err)
	}
	return nil
}

// args accumulates flags, skipping zero values.
type args []string

func (a *args) int(name string, v int) {
	if v != 0 {
		*a = append(*a, "-"+name, strconv.Itoa(v))
	}
}

func (a *args) float(name string, v float64) {
	if v != 0 {
		*a = append(*a, "-"+name, strconv.FormatFloat(v, 'g', -1, 64))
	}
}

func (a *args) dur(name string, v time.Duration) {
	if v != 0 {
		*a = append(*a, "-"+name, v.String())
	}
}

func (a *args) str(name, v string) {
	if v != "" {
		*a = append(*a, "-"+name, v)
	}
}

func (a *args) addr(name string, v netip.Addr) {
	if v.IsValid() {
		*a = append(*a, "-"+name, v.String())
	}
}
