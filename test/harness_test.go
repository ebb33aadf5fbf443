//go:build e2e || soak

// The end-to-end tests run the real mctun binary, as an operator would, in a VPC-like world of
// network namespaces that each test builds and removes (test/topo): a router that routes
// unicast and drops multicast, host h0 the source, h1..h3 the members. The applications are
// mcsend and mcrecv, ordinary multicast programs that know nothing of mctun.
package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mctun/daemon"
	"mctun/datapath"
	"mctun/test/mcapp"
	"mctun/test/stream"
	"mctun/test/topo"
)

var (
	mctunBin string
	tools    mcapp.Tools
)

func TestMain(m *testing.M) {
	if err := topo.Available(); err != nil {
		fmt.Println("skipping the end-to-end tests:", err)
		os.Exit(0)
	}
	code, err := runTests(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runTests(m *testing.M) (int, error) {
	// World-readable, so the test for an unprivileged operator can run the binary too.
	dir, err := os.MkdirTemp("", "mctun-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mctunBin = filepath.Join(dir, "mctun")
	build := exec.CommandContext(ctx, "go", "build", "-o", mctunBin, "mctun/cmd/mctun")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build mctun: %v: %s", err, out)
	}
	if tools, err = mcapp.Build(ctx, dir); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// world is one test's topology with its config files.
type world struct {
	t     *testing.T
	topo  *topo.Topology
	dir   string
	ctx   context.Context
	src   *topo.Host   // h0
	mbrs  []*topo.Host // h1..h3
	hosts []*topo.Host

	// datapath, when set, is written as the datapath key of every config the test writes.
	datapath string
}

// datapaths are the packet paths the tests that exercise one run against (see
// onEachDatapath).
var datapaths = []string{"user", "kernel"}

// onEachDatapath runs f as one subtest per packet path, named after it. f builds its world
// with newWorldOn(t, n, datapath), so every mctun it starts forwards on that path.
func onEachDatapath(t *testing.T, f func(t *testing.T, datapath string)) {
	for _, dp := range datapaths {
		t.Run(dp, func(t *testing.T) { f(t, dp) })
	}
}

// inEachForm runs f as a subtest for the tunnel with a secret ("authenticated", which runs
// in user space) and one without ("plain") on each datapath.
func inEachForm(t *testing.T, f func(t *testing.T, authenticated bool, datapath string)) {
	t.Run("authenticated", func(t *testing.T) { f(t, true, "user") })
	t.Run("plain", func(t *testing.T) {
		onEachDatapath(t, func(t *testing.T, dp string) { f(t, false, dp) })
	})
}

// newWorld builds a topology of n hosts (at least 4: h0 and three members).
func newWorld(t *testing.T, n int) *world {
	t.Helper()
	tp := topo.ForTest(t, topo.Options{Hosts: n})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return &world{t: t, topo: tp, dir: t.TempDir(), ctx: ctx,
		src: tp.Hosts[0], mbrs: tp.Hosts[1:4], hosts: tp.Hosts}
}

// The worked example of the original tool, in this world's addresses.
const (
	sourceConfig = `
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2", "198.18.3.2", "198.18.4.2"]
`
	memberConfig = `
[member]
sources = ["198.18.1.2"]
`
)

// newWorldOn builds a topology of n hosts whose mctun forwards on the given datapath.
func newWorldOn(t *testing.T, n int, datapath string) *world {
	w := newWorld(t, n)
	w.datapath = datapath
	return w
}

// writeConfig writes a config file for host h and returns its path. With a datapath set, it
// is the file's first key.
func (w *world) writeConfig(h *topo.Host, text string) string {
	w.t.Helper()
	if w.datapath != "" {
		text = fmt.Sprintf("datapath = %q\n", w.datapath) + text
	}
	path := filepath.Join(w.dir, h.Name+".toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// result is what one mctun command did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// mctun runs the mctun binary in h's namespace.
func (w *world) mctun(h *topo.Host, args ...string) result {
	w.t.Helper()
	return w.run(h, mctunBin, args...)
}

// run runs a program in h's namespace.
func (w *world) run(h *topo.Host, name string, args ...string) result {
	w.t.Helper()
	cmd := h.Command(w.ctx, name, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		w.t.Fatalf("%s: %s %v: %v", h, name, args, err)
	}
	return r
}

// up writes config for h, runs mctun up, and arranges mctun down at the end of the test.
func (w *world) up(h *topo.Host, config string) {
	w.t.Helper()
	path := w.writeConfig(h, config)
	if r := w.mctun(h, "up", "-c", path); r.code != 0 {
		w.t.Fatalf("%s: mctun up: %v", h, r)
	}
	w.t.Cleanup(func() {
		if r := w.mctun(h, "down"); r.code != 0 {
			w.t.Errorf("%s: mctun down: %v", h, r)
		}
	})
}

// upWorkedExample starts mctun on the source and the three members.
func (w *world) upWorkedExample() {
	w.t.Helper()
	w.upAll(memberConfig, sourceConfig)
}

// upAll starts mctun on the three members with one config, then on the source with another.
func (w *world) upAll(member, source string) {
	w.t.Helper()
	for _, m := range w.mbrs {
		w.up(m, member)
	}
	w.up(w.src, source)
}

// log returns the log of h's running mctun, as its status names it.
func (w *world) log(h *topo.Host) string {
	var st struct{ Log string }
	r := w.mctun(h, "status", "--json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
		return "(mctun not running: " + r.stdout + r.stderr + ")"
	}
	data, err := os.ReadFile(st.Log)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// status is the part of mctun status --json the tests read.
type status struct {
	PID    int `json:"pid"`
	Source *struct {
		Interface string `json:"interface"`
		Captures  []struct {
			Via        string `json:"via"`
			Packets    uint64 `json:"packets"`
			KernelDrop uint64 `json:"kernel_drops"`
			Truncated  uint64 `json:"truncated"`
		} `json:"captures"`
		Stats  datapath.SenderStats `json:"stats"`
		Kernel *kernelStatus        `json:"kernel"`
		Joins  *daemon.JoinStatus   `json:"joins"`
	} `json:"source"`
	Member *struct {
		SocketDrops uint64                 `json:"socket_drops"`
		Stats       datapath.ReceiverStats `json:"stats"`
		Kernel      *kernelStatus          `json:"kernel"`
	} `json:"member"`
	Datapath string `json:"datapath"`
}

// kernelStatus is the part of a side's status the kernel path adds.
type kernelStatus struct {
	Attached []struct {
		Program, Interface, Hook, With string
		ID                             uint32
	} `json:"attached"`
	Paths map[string]uint64 `json:"paths"`
}

// inKernel returns how many packets h's kernel path forwarded itself: sent on its sender
// side plus delivered on its receiver side; 0 without a kernel path.
func (st status) inKernel() uint64 {
	var n uint64
	if st.Source != nil && st.Source.Kernel != nil {
		n += st.Source.Kernel.Paths["kernel"]
	}
	if st.Member != nil && st.Member.Kernel != nil {
		n += st.Member.Kernel.Paths["kernel"]
	}
	return n
}

// checkInKernel asserts that on the kernel datapath, h's kernel path itself forwarded at
// least want packets: what a test sends took the fast path, not the fallback.
func (w *world) checkInKernel(h *topo.Host, want uint64) {
	w.t.Helper()
	if w.datapath != "kernel" {
		return
	}
	if got := w.status(h).inKernel(); got < want {
		w.t.Errorf("%s: its kernel path forwarded %d packets itself, want at least %d", h, got, want)
	}
}

// checkJudgedInKernel asserts that on the kernel datapath, h's receiver side judged the
// tunnel packets that reached it itself, and left none to the stack for their UDP checksum:
// a test's crafted packets test the kernel path's checks only when sent as tunnelSocket sends.
func (w *world) checkJudgedInKernel(h *topo.Host) {
	w.t.Helper()
	if w.datapath != "kernel" {
		return
	}
	if p := w.status(h).Member.Kernel.Paths; p["user_checksum"] != 0 {
		w.t.Errorf("%s: its kernel path left %d packets to the stack for their checksum, which did not test its checks (paths: %v)", h, p["user_checksum"], p)
	}
}

// status is h's mctun stats --json: every counter.
func (w *world) status(h *topo.Host) status {
	w.t.Helper()
	r := w.mctun(h, "stats", "--json")
	if r.code != 0 {
		w.t.Fatalf("%s: mctun status: %v", h, r)
	}
	var st status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		w.t.Fatalf("%s: mctun status --json: %v\n%s", h, err, r.stdout)
	}
	return st
}

// flow returns h's receiver-side counters for one source and group.
func (st status) flow(source, group string) datapath.FlowStats {
	if st.Member != nil {
		for _, f := range st.Member.Stats.Flows {
			if f.Source.String() == source && f.Group.String() == group {
				return f
			}
		}
	}
	return datapath.FlowStats{}
}

// receive starts an mcrecv on each host, all with the same options, joined before return.
func (w *world) receive(hosts []*topo.Host, o mcapp.RecvOptions) []*mcapp.Receiver {
	w.t.Helper()
	var rs []*mcapp.Receiver
	for _, h := range hosts {
		r, err := tools.StartRecv(w.ctx, h, o)
		if err != nil {
			w.t.Fatalf("%s: %v", h, err)
		}
		w.t.Cleanup(func() { r.Stop() })
		rs = append(rs, r)
	}
	return rs
}

// send runs mcsend on h to completion.
func (w *world) send(h *topo.Host, o mcapp.SendOptions) stream.SendReport {
	w.t.Helper()
	rep, err := tools.Send(w.ctx, h, o)
	if err != nil {
		w.t.Fatalf("%s: %v", h, err)
	}
	if rep.Errors != 0 {
		w.t.Fatalf("%s: mcsend: %d send errors, first %s", h, rep.Errors, rep.FirstError)
	}
	return rep
}

// reports waits for every receiver to stop and returns their reports.
func (w *world) reports(rs []*mcapp.Receiver) []stream.RecvReport {
	w.t.Helper()
	var out []stream.RecvReport
	for _, r := range rs {
		rep, err := r.Wait()
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, rep)
	}
	return out
}

// snapshot records h's links, addresses, routes and the sysctls mctun may touch.
func (w *world) snapshot(h *topo.Host) string {
	w.t.Helper()
	s, err := h.Snapshot(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}
