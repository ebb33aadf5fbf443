package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

// The systems the benchmark compares: mctun on each of its packet paths, an earlier mctun
// binary's user-space path, and VXLAN.
const (
	sysMctun  = "mctun"        // mctun's user-space path: datapath = "user"
	sysBase   = "mctun-base"   // the -base-mctun binary, from before the datapath key: its user-space path
	sysKernel = "mctun-kernel" // mctun's kernel path: datapath = "kernel"
	sysVXLAN  = "vxlan"
	sysNone   = "none" // nothing: the routed VPC alone, for mcsend's own ceiling
)

// allSystems are the systems in their canonical order, which the tables follow.
var allSystems = []string{sysMctun, sysBase, sysKernel, sysVXLAN}

// mctunSystems are the systems that run mctun.
var mctunSystems = []string{sysMctun, sysBase, sysKernel}

// datapathOf is the value of mctun's datapath key for system: "" for a system that is not
// mctun, and for the base binary, which has only the user-space path and rejects the key.
func datapathOf(system string) string {
	switch system {
	case sysMctun:
		return "user"
	case sysKernel:
		return "kernel"
	}
	return ""
}

// mctunBinary is the mctun binary that system runs: -base-mctun's for the base, else -mctun's
// (also for the worlds of no system, which the big configs set up by hand).
func (b *bench) mctunBinary(system string) string {
	if system == sysBase {
		return b.opt.baseMctun
	}
	return b.opt.mctun
}

// world is one topology with one system set up in it: the router, the source h0 and the
// members h1..hN. close removes all of it.
type world struct {
	b       *bench
	system  string
	tp      *topo.Topology
	src     *topo.Host
	members []*topo.Host

	mu      sync.Mutex   // guards mctunOn: close may run from the interrupt's goroutine
	mctunOn []*topo.Host // hosts where mctun is up, in the order it came up

	pathsAtStart *pathsResult // the kernel path's packets by path when the phase started
}

// open builds a topology of a router, h0 and n members and sets up system in it. On error
// it removes what it made.
func (b *bench) open(ctx context.Context, system string, n int) (*world, error) {
	tp, err := topo.Build(topo.Options{Hosts: n + 1, Prefix: benchPrefix + topo.RandomPrefix()[2:]})
	if err != nil {
		return nil, err
	}
	w := &world{b: b, system: system, tp: tp, src: tp.Hosts[0], members: tp.Hosts[1:]}
	b.track(w)
	if err := w.setUp(ctx); err != nil {
		return nil, errors.Join(err, w.close())
	}
	return w, nil
}

// setUp sets up w's system.
func (w *world) setUp(ctx context.Context) error {
	switch w.system {
	case sysNone:
		return nil
	case sysMctun, sysBase, sysKernel:
		var addrs []netip.Addr
		for _, m := range w.members {
			addrs = append(addrs, m.Addr)
		}
		return w.mctunUp(ctx, datapathOf(w.system), []mctunGroup{{Address: group, Port: groupPort, Members: addrs}})
	case sysVXLAN:
		return w.vxlanUp(ctx)
	}
	return fmt.Errorf("unknown system %q", w.system)
}

// mctunUp runs `mctun up` on every member, then on the source with groups, all on datapath.
func (w *world) mctunUp(ctx context.Context, datapath string, groups []mctunGroup) error {
	err := func() error {
		for _, m := range w.members {
			if err := w.mctunUpOn(ctx, m, memberConfig(datapath, w.src.Addr)); err != nil {
				return err
			}
		}
		return w.mctunUpOn(ctx, w.src, sourceConfig(datapath, groups))
	}()
	if err != nil && datapath == "kernel" {
		return fmt.Errorf("%w (to measure without the kernel path: -systems mctun,vxlan)", err)
	}
	return err
}

// mctunUpOn writes config to a file and runs `mctun up -c FILE` on h.
func (w *world) mctunUpOn(ctx context.Context, h *topo.Host, config string) error {
	path := filepath.Join(w.b.dir, fmt.Sprintf("%s-%s.toml", w.tp.Prefix, h.Name))
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return err
	}
	w.mu.Lock()
	w.mctunOn = append(w.mctunOn, h) // before up: a failed up may still leave something to undo
	w.mu.Unlock()
	if _, err := h.Run(ctx, w.b.mctunBinary(w.system), "up", "-c", path); err != nil {
		return fmt.Errorf("mctun up: %w", err)
	}
	return nil
}

// vxlanUp makes every host an end of the VXLAN reference: the source replicates to every
// member, each member sends back to the source only.
func (w *world) vxlanUp(ctx context.Context) error {
	var addrs []netip.Addr
	for _, m := range w.members {
		addrs = append(addrs, m.Addr)
	}
	for i, h := range w.tp.Hosts {
		peers := addrs
		if i > 0 {
			peers = []netip.Addr{w.src.Addr}
		}
		for _, c := range vxlanCommands(i, h.Addr, peers) {
			if _, err := h.Run(ctx, c[0], c[1:]...); err != nil {
				return fmt.Errorf("vxlan: %w", err)
			}
		}
	}
	return nil
}

// verify sends a short stream and checks that every member's application receives all of
// it, trying a few times (the first packets wait for ARP).
func (w *world) verify(ctx context.Context) error {
	const count = 200
	var err error
	for range 3 {
		var tr trialResult
		tr, err = w.run(ctx, 2000, count, 64, 0)
		if err != nil {
			return err
		}
		if worst, who := tr.worstLoss(); worst > 0 {
			err = fmt.Errorf("%s does not deliver: %s's application received %d of %d datagrams",
				w.system, who, tr.uniqueOf(who), tr.Sent.Sent)
			continue
		}
		return nil
	}
	return err
}

// mctunStatus is the part of `mctun status --json` and `mctun stats --json` the benchmark
// reads: the pid, the packet path that runs, and on each side the kernel path's packets by
// path and the memory of its maps.
type mctunStatus struct {
	PID      int        `json:"pid"`
	Datapath string     `json:"datapath"`
	Source   *mctunSide `json:"source"`
	Member   *mctunSide `json:"member"`
}

// mctunSide is the sender or the receiver side of mctunStatus.
type mctunSide struct {
	Kernel *kernelStatus `json:"kernel"` // nil on the user-space path
}

// sideKernel is the kernel path's part of a side, nil if the host has no such side or it
// runs in user space.
func sideKernel(s *mctunSide) *kernelStatus {
	if s == nil {
		return nil
	}
	return s.Kernel
}

// kernelStatus is the kernel path's part of one side of mctunStatus.
type kernelStatus struct {
	Paths    map[string]uint64 `json:"paths"`     // packets by path: "kernel", or "user_..." with why
	MapBytes uint64            `json:"map_bytes"` // the kernel memory its maps hold
}

// readMctunStatus runs `mctun <op> --json` (op "status" or "stats") on h and decodes it.
func (w *world) readMctunStatus(ctx context.Context, h *topo.Host, op string) (mctunStatus, error) {
	var st mctunStatus
	out, err := h.Command(ctx, w.b.mctunBinary(w.system), op, "--json").Output()
	if err != nil {
		return st, fmt.Errorf("%s: mctun %s --json: %w", h.Name, op, err)
	}
	if err := json.Unmarshal(out, &st); err != nil || st.PID <= 0 {
		return st, fmt.Errorf("%s: mctun %s --json: no pid in %.200q (%v)", h.Name, op, out, err)
	}
	return st, nil
}

// mctunMem reads the memory of the mctun daemon running on h, whose pid `mctun status
// --json` gives, and checks that it runs datapath.
func (w *world) mctunMem(ctx context.Context, h *topo.Host, datapath string) (memStatus, error) {
	st, err := w.readMctunStatus(ctx, h, "status")
	if err != nil {
		return memStatus{}, err
	}
	if st.Datapath != datapath {
		return memStatus{}, fmt.Errorf("%s: mctun runs the %q datapath, not %q as configured", h.Name, st.Datapath, datapath)
	}
	return readMem(st.PID)
}

// mctunRSS reads the peak RSS of the source's daemon and the highest of the members'.
func (w *world) mctunRSS(ctx context.Context) (*rssResult, error) {
	dp := datapathOf(w.system)
	src, err := w.mctunMem(ctx, w.src, dp)
	if err != nil {
		return nil, err
	}
	r := &rssResult{SourceHWM: src.HWM}
	for _, m := range w.members {
		mem, err := w.mctunMem(ctx, m, dp)
		if err != nil {
			return nil, err
		}
		r.MemberHWM = max(r.MemberHWM, mem.HWM)
	}
	return r, nil
}

// kernelPaths reads, from `mctun stats --json` on every host, the packets the kernel path
// forwarded itself and those it left to user space: the source's sender side and each
// member's receiver side. A host whose mctun does not run the kernel path is an error.
func (w *world) kernelPaths(ctx context.Context) (*pathsResult, error) {
	p := &pathsResult{}
	st, err := w.readMctunStatus(ctx, w.src, "stats")
	if err != nil {
		return nil, err
	}
	k := sideKernel(st.Source)
	if k == nil {
		return nil, fmt.Errorf("%s: mctun stats --json: no kernel path on the source (datapath %q)", w.src.Name, st.Datapath)
	}
	p.Source = k.Paths
	for _, m := range w.members {
		st, err := w.readMctunStatus(ctx, m, "stats")
		if err != nil {
			return nil, err
		}
		k := sideKernel(st.Member)
		if k == nil {
			return nil, fmt.Errorf("%s: mctun stats --json: no kernel path on the member (datapath %q)", m.Name, st.Datapath)
		}
		p.Members = append(p.Members, k.Paths)
	}
	return p, nil
}

// startPaths notes, for the kernel path, the packets by path so far (the check stream's), so
// that closeKeepingRSS counts those of the phase's own runs.
func (w *world) startPaths(ctx context.Context) error {
	if w.system != sysKernel {
		return nil
	}
	var err error
	w.pathsAtStart, err = w.kernelPaths(ctx)
	return err
}

// closeKeepingRSS closes w after a phase of system, first adding mctun's peak RSS to sr and,
// for the kernel path, the packets the phase's runs sent by each path.
func (w *world) closeKeepingRSS(ctx context.Context, system string, sr *sysResult) error {
	if slices.Contains(mctunSystems, system) {
		rss, err := w.mctunRSS(ctx)
		if err != nil {
			return err
		}
		sr.RSS = sr.RSS.merge(rss)
	}
	if system == sysKernel && w.pathsAtStart != nil {
		now, err := w.kernelPaths(ctx)
		if err != nil {
			return err
		}
		sr.Paths = sr.Paths.add(now.since(w.pathsAtStart))
	}
	return w.close()
}

// namespaces are the identities of w's network namespaces.
func (w *world) namespaces() map[nsIdent]bool {
	ids := map[nsIdent]bool{}
	for _, h := range append([]*topo.Host{w.tp.Router}, w.tp.Hosts...) {
		if id, ok := netnsOf(h.NetnsPath()); ok {
			ids[id] = true
		}
	}
	return ids
}

// close runs `mctun down` where mctun is up (source first), then removes the topology. It
// does not use the benchmark's context, which an interrupt has cancelled: it must run then.
func (w *world) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.mu.Lock()
	on := w.mctunOn
	w.mctunOn = nil
	w.mu.Unlock()
	var err error
	for _, h := range slices.Backward(on) {
		if _, derr := h.Run(ctx, w.b.mctunBinary(w.system), "down"); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	err = errors.Join(err, w.tp.Close())
	w.b.untrack(w)
	return err
}

// run is one attempt at a rate: once the machine is quiet, a receiver on every member,
// then, settle later (measuring the machine's load meanwhile), mcsend on the source for
// count datagrams of size bytes at rate pps (bounded in time too), then each receiver's
// report once it has all of them or heard nothing for a while.
// From just before the sender starts until the last receiver stops it measures the whole
// machine's busy CPU time and the CPU time of the processes that are not the benchmark's.
func (w *world) run(ctx context.Context, rate float64, count, size int, settle time.Duration) (trialResult, error) {
	tools := w.b.tools
	tr := trialResult{Requested: rate}
	var err error
	if tr.Background, err = w.b.waitQuiet(ctx); err != nil {
		return tr, err
	}
	dur := time.Duration(float64(count) / rate * float64(time.Second))
	var rs []*mcapp.Receiver
	stopAll := func() {
		for _, r := range rs {
			r.Stop()
		}
	}
	for _, m := range w.members {
		r, err := tools.StartRecv(ctx, m, mcapp.RecvOptions{
			Group: group, Port: groupPort, Size: size, Count: count, MaxSeq: count,
			Idle: recvIdle, Timeout: dur + dur/2 + 10*time.Second,
		})
		if err != nil {
			stopAll()
			return tr, err
		}
		rs = append(rs, r)
	}
	if settle > 0 {
		if tr.SettleLoad, err = loadOver(ctx, settle); err != nil {
			stopAll()
			return tr, err
		}
	}
	ours := w.namespaces()
	othersBefore := scanOthers(ours)
	t0 := time.Now()
	before, err := readCPU()
	if err != nil {
		stopAll()
		return tr, err
	}
	sent, err := tools.Send(ctx, w.src, mcapp.SendOptions{
		Group: group, Port: groupPort, Count: count, Size: size, Rate: rate,
		Duration: dur + dur/4 + 500*time.Millisecond,
	})
	if err != nil {
		stopAll()
		return tr, err
	}
	tr.Sent = sent
	for i, r := range rs {
		rep, err := r.Wait()
		if err != nil {
			stopAll()
			return tr, err
		}
		tr.Recv = append(tr.Recv, memberReport{Host: w.members[i].Name, Report: rep})
	}
	after, err := readCPU()
	if err != nil {
		return tr, err
	}
	tr.Window = time.Since(t0)
	tr.BusySeconds = after.busyElapsedSince(before)
	tr.BusyTicks = after.busySecondsSince(before)
	tr.StolenSeconds = after.stolenSince(before)
	tr.OthersSeconds = scanOthers(ours).secondsSince(othersBefore)
	// Let whatever is still queued anywhere drain before the next attempt's receivers
	// start, so that they never count a late datagram of this one.
	return tr, sleepCtx(ctx, 200*time.Millisecond)
}

// sleepCtx waits for d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// recvIdle is how long a receiver waits after the last datagram before it stops: well
// above any stall a working forwarder has, well below the length of a trial.
const recvIdle = 500 * time.Millisecond
