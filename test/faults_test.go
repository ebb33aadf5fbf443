//go:build e2e

package test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"mctun/datapath"
	"mctun/test/mcapp"
	"mctun/test/stream"
	"mctun/test/topo"
)

const (
	// Each fault happens during a stream of its own, at a moderate rate, once every member
	// received faultWarmup datagrams (so that a sender restart sends its sequence numbers
	// back by more than the 1024 the plain form needs to tell a restart from reordering).
	faultCount, faultRate, faultWarmup = 8000, 1000, 2000
)

// TestFaults injects the faults a deployment meets while a stream runs: a member's link goes
// down and comes back, a member's namespace disappears, mctun restarts or is killed with
// SIGKILL on a member and on the source. The members a fault does not touch lose nothing;
// the member it touches receives again within a second of the fault's end with no operator
// action (after its own mctun down and up, once its application rejoined, as the README
// says; after a kill -9 and up, without), loses only what was sent during the fault, and its
// counters say what happened; mctun down leaves the host as it was.
func TestFaults(t *testing.T) {
	inEachForm(t, testFaults)
}

// faultSource is the worked example's source, with a fourth member h4 that will vanish.
const faultSource = `
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2", "198.18.3.2", "198.18.4.2", "198.18.5.2"]
`

func testFaults(t *testing.T, authenticated bool, dp string) {
	w := newWorldOn(t, 5, dp)
	h0, h1, h2, h3, h4 := w.hosts[0], w.hosts[1], w.hosts[2], w.hosts[3], w.hosts[4]
	before := w.keepRestored()
	secretLine := ""
	if authenticated {
		secretLine = fmt.Sprintf("secret_file = %q\n", w.writeSecret("secret", hostileSecret, 0o600))
	}
	for _, m := range []*topo.Host{h1, h2, h3} {
		w.up(m, secretLine+memberConfig)
	}
	// h4 is removed by the test, so its mctun down is arranged only while it exists.
	if r := w.mctun(h4, "up", "-c", w.writeConfig(h4, secretLine+memberConfig)); r.code != 0 {
		t.Fatalf("h4: mctun up: %v", r)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(h4.NetnsPath()); err == nil {
			w.mctun(h4, "down")
		}
	})
	w.up(h0, secretLine+faultSource)
	live := []*topo.Host{h1, h2, h3, h4}

	var log strings.Builder
	tw := tabwriter.NewWriter(&log, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "FAULT\tMEMBER\tOUTAGE\tRESUMED AFTER\tLOST (sent during the fault)\tCOUNTERS\n")
	defer func() {
		tw.Flush()
		t.Logf("faults survived, each during a stream of %d datagrams at %d/s:\n%s", faultCount, faultRate, log.String())
	}()
	row := func(fault string, r resumed, counters string) {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%d\t%s\n", fault, r.host, r.outage.Round(time.Millisecond), r.after.Round(time.Microsecond), r.lost, counters)
	}

	t.Run("member link down", func(t *testing.T) {
		w := w.sub(t)
		flow0 := w.status(h1).flow("198.18.1.2", "224.1.2.3")
		src0 := memberStats(w.status(h0), h1.Addr)
		ph := w.startPhase(live)
		o := ph.outage(h1)
		w.linkDown(h1)
		time.Sleep(2 * time.Second)
		back := w.linkUp(h1)
		o.end = time.Now()
		ph.finish()
		r := ph.check(o)[0]
		flow := w.status(h1).flow("198.18.1.2", "224.1.2.3")
		src := memberStats(w.status(h0), h1.Addr)
		// The gap in the tunnel's sequence numbers is exactly the datagrams lost.
		if lost := flow.Lost - flow0.Lost; lost != int64(r.lost) || flow.Duplicates != flow0.Duplicates || flow.Restarts != flow0.Restarts {
			t.Errorf("h1's flow counted %d lost (want %d, as the application missed), duplicates %d -> %d, restarts %d -> %d",
				lost, r.lost, flow0.Duplicates, flow.Duplicates, flow0.Restarts, flow.Restarts)
		}
		row("link down 2s (router side)", r, fmt.Sprintf("h1 flow: lost +%d; source to h1: %d sent, %d send errors; after ip link set up, link operational in %v, router's ARP resolved in %v",
			flow.Lost-flow0.Lost, src.Packets-src0.Packets, src.Errors-src0.Errors, back.operational.Round(time.Millisecond), back.resolved.Round(time.Millisecond)))
	})

	// A member's mctun restarts: its flow starts afresh and loses nothing after the restart.
	// After down and up its application must rejoin the group on the new TUN; after kill -9
	// and up it need not: the TUN outlived the daemon with the group joined on it, and the
	// new one took it over.
	memberFault := func(name, fault string, h *topo.Host, stop func(w *world), rejoin bool) {
		t.Run(name, func(t *testing.T) {
			w := w.sub(t)
			ph := w.startPhase(live)
			o := ph.outage(h)
			stop(w)
			if r := w.mctun(h, "up", "-c", filepath.Join(w.dir, h.Name+".toml")); r.code != 0 {
				t.Fatalf("%s: mctun up after %s: %v", h, fault, r)
			}
			o.end = time.Now()
			if rejoin {
				ph.recs[h].restart()
			}
			ph.finish()
			r := ph.check(o)[0]
			f := w.status(h).flow("198.18.1.2", "224.1.2.3")
			if f.Lost != 0 || f.Duplicates != 0 || f.Restarts != 0 || f.Packets == 0 {
				t.Errorf("%s's flow after %s: %+v; want packets, none lost, duplicated or restarted", h, fault, f)
			}
			row(fault, r, fmt.Sprintf("%s flow (new run): %d packets, lost %d, restarts %d", h, f.Packets, f.Lost, f.Restarts))
		})
	}
	memberFault("member restart", "mctun down; up", h2, func(w *world) {
		if r := w.mctun(h2, "down"); r.code != 0 {
			w.t.Fatalf("h2: mctun down: %v", r)
		}
		if after := w.snapshot(h2); after != before[h2.Name] {
			w.t.Errorf("h2 not as it was after mctun down:\nbefore:\n%s\nafter:\n%s", before[h2.Name], after)
		}
	}, true)
	memberFault("member kill -9", "kill -9; up", h3, func(w *world) { w.kill9(h3, true) }, false)

	// The source restarts: every member misses what was sent meanwhile, and counts a sender
	// restart, not a loss: its sequence numbers start again at 0 (plain form), its run is a
	// new epoch (authenticated form).
	senderFault := func(name string, stop func(w *world)) {
		t.Run(name, func(t *testing.T) {
			w := w.sub(t)
			flows0 := map[*topo.Host]datapath.FlowStats{}
			for _, m := range live {
				flows0[m] = w.status(m).flow("198.18.1.2", "224.1.2.3")
			}
			ph := w.startPhase(live)
			o := ph.outage(live...)
			stop(w)
			if r := w.mctun(h0, "up", "-c", filepath.Join(w.dir, "h0.toml")); r.code != 0 {
				t.Fatalf("h0: mctun up: %v", r)
			}
			o.end = time.Now()
			ph.finish()
			for _, r := range ph.check(o) {
				f, f0 := w.status(r.host).flow("198.18.1.2", "224.1.2.3"), flows0[r.host]
				if f.Restarts != f0.Restarts+1 || f.Lost != f0.Lost || f.Duplicates != f0.Duplicates || f.Reordered-f0.Reordered > maxReordered(w.datapath) {
					t.Errorf("%s's flow: %+v, was %+v; want one sender restart more and nothing lost, duplicated or reordered", r.host, f, f0)
					t.Logf("%s: mctun stats: %v", h0, w.mctun(h0, "stats"))
					t.Logf("%s: mctun stats: %v", r.host, w.mctun(r.host, "stats"))
				}
				row(name, r, fmt.Sprintf("%s flow: sender_restarts +%d, lost +%d, reordered +%d", r.host, f.Restarts-f0.Restarts, f.Lost-f0.Lost, f.Reordered-f0.Reordered))
			}
		})
	}
	senderFault("sender restart", func(w *world) {
		if r := w.mctun(h0, "down"); r.code != 0 {
			w.t.Fatalf("h0: mctun down: %v", r)
		}
		if after := w.snapshot(h0); after != before[h0.Name] {
			w.t.Errorf("h0 not as it was after mctun down:\nbefore:\n%s\nafter:\n%s", before[h0.Name], after)
		}
	})
	// The source's route of its multicast (routeMulticast: 224.0.0.0/4 dev eth0, in place of
	// the default route) outlives a kill, and status says so; the next up undoes it first.
	senderFault("sender kill -9", func(w *world) { w.kill9(h0, true) })

	// h4 vanishes: its processes are killed and its namespace deleted, which takes its link
	// away. The others lose nothing; h4 is gone for good.
	t.Run("member namespace removed", func(t *testing.T) {
		w := w.sub(t)
		src0 := memberStats(w.status(h0), h4.Addr)
		ph := w.startPhase(live)
		o := ph.outage(h4)
		ph.recs[h4].close()
		pids, _ := rootRun(w, "ip", "netns", "pids", h4.Netns)
		for _, p := range strings.Fields(pids) {
			if pid, err := strconv.Atoi(p); err == nil && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if !poll(5*time.Second, func() bool { s, _ := rootRun(w, "ip", "netns", "pids", h4.Netns); return strings.TrimSpace(s) == "" }) {
			t.Fatalf("processes still in %s after SIGKILL", h4.Netns)
		}
		if out, err := rootRun(w, "ip", "netns", "delete", h4.Netns); err != nil {
			t.Fatalf("ip netns delete %s: %v: %s", h4.Netns, err, out)
		}
		if !poll(5*time.Second, func() bool {
			_, err := rootRun(w, "ip", "-n", w.topo.Router.Netns, "link", "show", h4.Peer)
			return err != nil
		}) {
			t.Fatalf("the router's link to h4 is still there after its namespace was deleted")
		}
		o.end = time.Now()
		ph.finish()
		ph.check(o) // h4 has no recorder any more: the others must be complete
		src := memberStats(w.status(h0), h4.Addr)
		t.Logf("after h4 vanished the source sent it %d more tunnel packets, with %d send errors (last error %q)",
			src.Packets-src0.Packets, src.Errors-src0.Errors, src.LastError)
		fmt.Fprintf(tw, "namespace deleted\th4\t(for good)\t-\t-\tothers lost nothing; source to h4: %d sent, %d send errors\n",
			src.Packets-src0.Packets, src.Errors-src0.Errors)
	})
}

// phase is one fault's stream: mcsend on the source, a recorder on each live member.
type phase struct {
	w    *world
	recs map[*topo.Host]*recorder
	live []*topo.Host
	done chan sendResult
	sent int
}

type sendResult struct {
	rep stream.SendReport
	err error
}

// outage is a fault: the members it cuts off, when it began, and when the last step of its
// repair (a link up, mctun up) returned.
type outage struct {
	hosts      []*topo.Host
	start, end time.Time
}

// resumed is how one member came through an outage.
type resumed struct {
	host   *topo.Host
	outage time.Duration // from the fault to the end of its repair
	after  time.Duration // from the end of the repair to the first datagram received
	lost   int
}

// sub is the world for a subtest: the same topology, failing the subtest.
func (w *world) sub(t *testing.T) *world {
	c := *w
	c.t = t
	return &c
}

// startPhase starts a recorder on each live member and the stream, and returns once every
// member received faultWarmup datagrams.
func (w *world) startPhase(live []*topo.Host) *phase {
	w.t.Helper()
	p := &phase{w: w, recs: map[*topo.Host]*recorder{}, live: live, done: make(chan sendResult, 1)}
	for _, m := range live {
		p.recs[m] = startRecorder(w.t, m, netip.AddrPortFrom(group, 65535), w.src.Addr, faultCount)
	}
	ctx, cancel := context.WithCancel(w.ctx)
	go func() {
		rep, err := tools.Send(ctx, w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: faultCount, Size: 200, Rate: faultRate, Duration: 30 * time.Second})
		p.done <- sendResult{rep, err}
	}()
	w.t.Cleanup(cancel) // a phase that fails half way stops its stream with it
	for _, m := range live {
		if !p.recs[m].waitCount(faultWarmup, 10*time.Second) {
			w.t.Fatalf("before the fault: %s", p.recs[m].summary(faultCount))
		}
	}
	return p
}

// outage marks the start of a fault that cuts off hosts.
func (p *phase) outage(hosts ...*topo.Host) *outage {
	return &outage{hosts: hosts, start: time.Now()}
}

// finish waits for the stream to end and for what it sent to arrive, then stops the
// recorders.
func (p *phase) finish() {
	p.w.t.Helper()
	res := <-p.done
	p.sent = int(res.rep.Sent)
	if res.err != nil || res.rep.Sent != faultCount {
		p.w.t.Errorf("mcsend sent %d of %d: %+v, %v", res.rep.Sent, faultCount, res.rep, res.err)
	}
	var wg sync.WaitGroup
	for _, m := range p.live {
		wg.Go(func() {
			p.recs[m].settle(p.sent, time.Second, 10*time.Second)
			p.recs[m].close()
		})
	}
	wg.Wait()
}

// check asserts that the members the outage did not cut off received everything, and that
// those it did received again within resumeBound of its end and lost only datagrams sent
// during it. It returns how each of those came through.
func (p *phase) check(o *outage) []resumed {
	p.w.t.Helper()
	var out []resumed
	for _, m := range p.live {
		rec := p.recs[m]
		if !contains(hostNames(o.hosts), m.Name) {
			rec.checkComplete(m.Name+" (not touched by the fault)", p.sent)
			continue
		}
		if _, err := os.Stat(m.NetnsPath()); err != nil {
			continue // gone for good
		}
		at, _, ok := rec.firstAfter(o.end)
		r := resumed{host: m, outage: o.end.Sub(o.start), after: at.Sub(o.end)}
		if !ok || r.after > resumeBound {
			p.w.t.Errorf("%s received nothing within %v of the fault's end (first after it: %v, ok %v): %s", m, resumeBound, r.after, ok, rec.summary(p.sent))
		}
		gaps := rec.gaps(p.sent)
		r.lost = missing(gaps)
		for _, g := range gaps {
			if g.after.Before(o.start.Add(-lossMargin)) || g.before.IsZero() || g.before.After(at) {
				p.w.t.Errorf("%s lost datagrams %v outside the fault (%s to %s, received again at %s)", m, g,
					o.start.Format("15:04:05.000"), o.end.Format("15:04:05.000"), at.Format("15:04:05.000"))
			}
		}
		rec.mu.Lock()
		if rec.dups != 0 || rec.bad != 0 || rec.foreign != 0 {
			p.w.t.Errorf("%s: %d duplicates, %d bad, %d foreign", m, rec.dups, rec.bad, rec.foreign)
		}
		rec.mu.Unlock()
		out = append(out, r)
	}
	return out
}

func hostNames(hs []*topo.Host) []string {
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
	}
	return names
}

// kill9 kills h's mctun daemon with SIGKILL and waits until it is dead: all its threads
// gone, so its files are closed. (Not only until status says it is not running: for a few
// milliseconds after that, while its last threads exit, up still finds the lock held and
// refuses, "already running". See the report.) Status must then say it is not running, and,
// where it changed the host (leftovers), that it did not stop cleanly.
func (w *world) kill9(h *topo.Host, leftovers bool) {
	w.t.Helper()
	pid := w.status(h).PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		w.t.Fatalf("%s: kill -9 %d: %v", h, pid, err)
	}
	if !poll(5*time.Second, func() bool { return dead(pid) }) {
		w.t.Fatalf("%s: mctun (pid %d) still alive 5s after kill -9", h, pid)
	}
	r := w.mctun(h, "status")
	if r.code != 3 || strings.Contains(r.stdout, "did not stop cleanly") != leftovers {
		w.t.Errorf("%s: mctun status after kill -9: %v; want exit 3, and a word on the leftovers: %v", h, r, leftovers)
	}
}

// dead reports whether process pid is gone, or a zombie whose threads have all exited.
func dead(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && strings.HasPrefix(string(stat[i:]), ") Z") && len(tasks) <= 1
}

// memberStats returns the source's counters for one member of its first group.
func memberStats(st status, member netip.Addr) datapath.MemberStats {
	if st.Source != nil {
		for _, g := range st.Source.Stats.Groups {
			for _, m := range g.Members {
				if m.Address.Addr() == member {
					return m
				}
			}
		}
	}
	return datapath.MemberStats{}
}

// rootRun runs a command in the root namespace (ip netns ..., ip -n ...: naming namespaces, never
// changing the root one) and returns its combined output.
func rootRun(w *world, name string, args ...string) (string, error) {
	out, err := osexec.CommandContext(w.ctx, name, args...).CombinedOutput()
	return string(out), err
}
