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

// The systems the benchmark compares.
const (
	sysMctun = "mctun"
	sysVXLAN = "vxlan"
	sysNone  = "none" // nothing: the routed VPC alone, for mcsend's own ceiling
)

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
	case sysMctun:
		var addrs []netip.Addr
		for _, m := range w.members {
			addrs = append(addrs, m.Addr)
		}
		return w.mctunUp(ctx, []mctunGroup{{Address: group, Port: groupPort, Members: addrs}})
	case sysVXLAN:
		return w.vxlanUp(ctx)
	}
	return fmt.Errorf("unknown system %q", w.system)
}

// mctunUp runs `mctun up` on every member, then on the source with groups.
func (w *world) mctunUp(ctx context.Context, groups []mctunGroup) error {
	for _, m := range w.members {
		if err := w.mctunUpOn(ctx, m, memberConfig(w.src.Addr)); err != nil {
			return err
		}
	}
	return w.mctunUpOn(ctx, w.src, sourceConfig(groups))
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
	if _, err := h.Run(ctx, w.b.opt.mctun, "up", "-c", path); err != nil {
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
		tr, err = w.run(ctx, 2000, count, 64)
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

// mctunStatus is the part of `mctun status --json` the benchmark reads: nothing but the pid.
type mctunStatus struct {
	PID int `json:"pid"`
}

// mctunMem reads the memory of the mctun daemon running on h, whose pid `mctun status
// --json` gives.
func (w *world) mctunMem(ctx context.Context, h *topo.Host) (memStatus, error) {
	out, err := h.Command(ctx, w.b.opt.mctun, "status", "--json").Output()
	if err != nil {
		return memStatus{}, fmt.Errorf("%s: mctun status --json: %w", h.Name, err)
	}
	var st mctunStatus
	if err := json.Unmarshal(out, &st); err != nil || st.PID <= 0 {
		return memStatus{}, fmt.Errorf("%s: mctun status --json: no pid in %q (%v)", h.Name, out, err)
	}
	return readMem(st.PID)
}

// mctunRSS reads the peak RSS of the source's daemon and the highest of the members'.
func (w *world) mctunRSS(ctx context.Context) (*rssResult, error) {
	src, err := w.mctunMem(ctx, w.src)
	if err != nil {
		return nil, err
	}
	r := &rssResult{SourceHWM: src.HWM}
	for _, m := range w.members {
		mem, err := w.mctunMem(ctx, m)
		if err != nil {
			return nil, err
		}
		r.MemberHWM = max(r.MemberHWM, mem.HWM)
	}
	return r, nil
}

// closeKeepingRSS closes w after a phase of system, first adding mctun's peak RSS to sr.
func (w *world) closeKeepingRSS(ctx context.Context, system string, sr *sysResult) error {
	if system == sysMctun {
		rss, err := w.mctunRSS(ctx)
		if err != nil {
			return err
		}
		sr.RSS = sr.RSS.merge(rss)
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
		if _, derr := h.Run(ctx, w.b.opt.mctun, "down"); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	err = errors.Join(err, w.tp.Close())
	w.b.untrack(w)
	return err
}

// run is one attempt at a rate: once the machine is quiet, a receiver on every member,
// then mcsend on the source for count datagrams of size bytes at rate pps (bounded in time
// too), then each receiver's report once it has all of them or heard nothing for a while.
// From just before the sender starts until the last receiver stops it measures the whole
// machine's busy CPU time and the CPU time of the processes that are not the benchmark's.
func (w *world) run(ctx context.Context, rate float64, count, size int) (trialResult, error) {
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
	tr.OthersSeconds = scanOthers(ours).secondsSince(othersBefore)
	// Let whatever is still queued anywhere drain before the next attempt's receivers
	// start, so that they never count a late datagram of this one.
	select {
	case <-ctx.Done():
		return tr, ctx.Err()
	case <-time.After(200 * time.Millisecond):
	}
	return tr, nil
}

// recvIdle is how long a receiver waits after the last datagram before it stops: well
// above any stall a working forwarder has, well below the length of a trial.
const recvIdle = 500 * time.Millisecond
