//go:build soak

package test

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"mctun/test/mcapp"
	"mctun/test/stream"
	"mctun/test/topo"
)

// The soak: `make soak` (go test -tags soak -run TestSoak -timeout 30m -v ./test/). Its length
// is MCTUN_SOAK_DURATION (a Go duration), 10 minutes unless set.
const (
	soakRate, soakSize = 2000, 1000
	soakReloadEvery    = 30 * time.Second
	soakFlapEvery      = 60 * time.Second // h3's link goes down at 20 s past each minute...
	soakFlapAt         = 20 * time.Second
	soakFlapFor        = 5 * time.Second // ...for 5 s
	soakRSSBound       = 2 << 20
)

var soakGroup = netip.MustParseAddr("224.1.2.3")

// TestSoak streams 2,000 datagrams a second of 1,000 bytes through the worked example for
// MCTUN_SOAK_DURATION (10 minutes by default), while the source reloads every 30 s, adding
// and removing a group, and one member, h3, flaps: its link goes down for 5 s every minute,
// and once its mctun is stopped and started again. h1 and h2 must deliver every datagram
// exactly once; h3 every datagram sent while it was up; no daemon's memory may grow.
func TestSoak(t *testing.T) {
	duration := 10 * time.Minute
	if s := os.Getenv("MCTUN_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 2*time.Minute {
			t.Fatalf("MCTUN_SOAK_DURATION=%q: want a duration of at least 2m", s)
		}
		duration = d
	}
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < duration+3*time.Minute {
		t.Fatalf("the test's -timeout leaves %v, the soak needs %v and 3 minutes more", time.Until(deadline).Round(time.Second), duration)
	}
	w := newWorld(t, 4)
	// The world's commands may run as long as the soak, and its cleanup after it.
	ctx, cancel := context.WithTimeout(context.Background(), duration+3*time.Minute)
	t.Cleanup(cancel) // registered before any mctun up, so it runs after their mctun down
	w.ctx = ctx
	h0, h1, h2, h3 := w.hosts[0], w.hosts[1], w.hosts[2], w.hosts[3]
	w.keepRestored()
	w.upWorkedExample()
	daemons := []*topo.Host{h0, h1, h2, h3}
	pids := map[*topo.Host]int{}
	for _, h := range daemons {
		pids[h] = w.status(h).PID
	}

	n := int(duration.Seconds() * soakRate)
	recs := map[*topo.Host]*recorder{}
	for _, m := range w.mbrs {
		recs[m] = startRecorder(t, m, netip.AddrPortFrom(soakGroup, 65535), h0.Addr, n)
	}
	done := make(chan stream.SendReport, 1)
	start := time.Now()
	go func() {
		rep, err := tools.Send(w.ctx, h0, mcapp.SendOptions{Group: soakGroup, Port: 65535, Count: n, Size: soakSize, Rate: soakRate, Duration: duration + 30*time.Second})
		if err != nil {
			t.Errorf("mcsend: %v", err)
		}
		done <- rep
	}()

	// What happens along the way, in time order.
	type window struct {
		what       string
		start, end time.Time // the fault, and the end of its repair (mctun up returned; the link back and the router's ARP resolved)
		back       linkBack
	}
	var downs []window
	var rssSamples []map[*topo.Host]int64
	var rssAt []time.Duration
	reloads := 0
	extra := `
[[source.group]]
address = "224.7.7.7"
port    = 7000
members = ["198.18.2.2", "198.18.3.2"]
`
	type event struct {
		at time.Duration
		do func()
	}
	var events []event
	for at := time.Duration(0); at < duration-5*time.Second; at += soakReloadEvery {
		events = append(events, event{at, func() { // sample, then reload
			sample := map[*topo.Host]int64{}
			for _, h := range daemons {
				sample[h] = rss(t, pids[h])
			}
			rssSamples, rssAt = append(rssSamples, sample), append(rssAt, time.Since(start).Round(time.Second))
			if at == 0 {
				return
			}
			cfg, want := sourceConfig+extra, "+ group 224.7.7.7:7000"
			if reloads%2 == 1 {
				cfg, want = sourceConfig, "- group 224.7.7.7:7000"
			}
			w.writeConfig(h0, cfg)
			if r := w.mctun(h0, "reload"); r.code != 0 || !strings.Contains(r.stdout, want) {
				t.Errorf("reload %d: %v; want %q", reloads+1, r, want)
			}
			reloads++
			t.Logf("%v: %d of %d datagrams at h1, %d reloads, %d outages of h3 so far", time.Since(start).Round(time.Second), recs[h1].count(), n, reloads, len(downs))
		}})
	}
	for at := soakFlapAt; at+soakFlapFor < duration-10*time.Second; at += soakFlapEvery {
		events = append(events, event{at, func() {
			win := window{what: "link down", start: time.Now()}
			w.linkDown(h3)
			time.Sleep(soakFlapFor)
			win.back = w.linkUp(h3)
			win.end = time.Now()
			downs = append(downs, win)
		}})
	}
	// Once, halfway, at 50 s past a minute (between two flaps and away from the reloads):
	// mctun down and up on h3, and its application restarted, as the README says.
	restartAt := soakFlapEvery*time.Duration(duration/soakFlapEvery/2) + 50*time.Second
	events = append(events, event{restartAt, func() {
		win := window{what: "mctun down; up", start: time.Now()}
		if r := w.mctun(h3, "down"); r.code != 0 {
			t.Fatalf("h3: mctun down: %v", r)
		}
		if r := w.mctun(h3, "up", "-c", filepath.Join(w.dir, "h3.toml")); r.code != 0 {
			t.Fatalf("h3: mctun up: %v", r)
		}
		win.end = time.Now()
		recs[h3].restart()
		pids[h3] = w.status(h3).PID
		downs = append(downs, win)
	}})
	slices.SortStableFunc(events, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	for _, e := range events {
		time.Sleep(time.Until(start.Add(e.at)))
		e.do()
	}

	sent := <-done
	var wg sync.WaitGroup
	for _, m := range w.mbrs {
		wg.Go(func() {
			recs[m].settle(int(sent.Sent), 3*time.Second, 30*time.Second)
			recs[m].close()
		})
	}
	wg.Wait()
	final := map[*topo.Host]int64{}
	for _, h := range daemons {
		final[h] = rss(t, pids[h])
	}
	rssSamples, rssAt = append(rssSamples, final), append(rssAt, time.Since(start).Round(time.Second))
	if int(sent.Sent) != n {
		t.Errorf("mcsend sent %d of %d: %+v", sent.Sent, n, sent)
	}

	// h1 and h2 never flapped: everything, once.
	for _, m := range []*topo.Host{h1, h2} {
		recs[m].checkComplete(m.Name, int(sent.Sent))
		if f := w.status(m).flow("198.18.1.2", "224.1.2.3"); f.Packets != sent.Sent || f.Lost != 0 || f.Duplicates != 0 {
			t.Errorf("%s's flow: %+v; want %d packets, none lost or duplicated", m, f, sent.Sent)
		}
	}
	// h3: every datagram sent while it was up. A datagram counts as sent during an outage if
	// it went no earlier than lossMargin (100 ms) before the outage began, for what was in
	// flight, and before the first datagram h3 received after it ended (at most resumeBound
	// later).
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "OUTAGE OF h3\tAT\tLASTED\tLINK UP: OPERATIONAL, ROUTER'S ARP RESOLVED\tRECEIVED AGAIN AFTER\tLOST\n")
	gaps := recs[h3].gaps(int(sent.Sent))
	explained := make([]bool, len(gaps))
	for _, win := range downs {
		at, _, ok := recs[h3].firstAfter(win.end)
		if !ok || at.Sub(win.end) > resumeBound {
			t.Errorf("h3 did not receive within %v after its %s at %v", resumeBound, win.what, win.start.Sub(start).Round(time.Second))
		}
		lost := 0
		for i, g := range gaps {
			if !g.after.Before(win.start.Add(-lossMargin)) && !g.before.IsZero() && !g.before.After(at) {
				explained[i] = true
				lost += g.n()
			}
		}
		linkUp := "-"
		if win.back != (linkBack{}) {
			linkUp = fmt.Sprintf("%v, %v", win.back.operational.Round(time.Millisecond), win.back.resolved.Round(time.Millisecond))
		}
		fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%v\t%d\n", win.what, win.start.Sub(start).Round(time.Second), win.end.Sub(win.start).Round(time.Millisecond),
			linkUp, at.Sub(win.end).Round(time.Microsecond), lost)
	}
	tw.Flush()
	for i, g := range gaps {
		if !explained[i] {
			t.Errorf("h3 lost datagrams %v while it was up", g)
		}
	}
	recs[h3].mu.Lock()
	if recs[h3].dups != 0 || recs[h3].bad != 0 || recs[h3].foreign != 0 {
		t.Errorf("h3: %d duplicates, %d bad, %d foreign", recs[h3].dups, recs[h3].bad, recs[h3].foreign)
	}
	recs[h3].mu.Unlock()

	// Memory: the daemons that ran throughout, last sample against the one at 1 minute.
	fmt.Fprintf(&b, "\nVmRSS (MiB)\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "AT\th0 (source)\th1\th2\th3\n")
	for i, s := range rssSamples {
		fmt.Fprintf(tw, "%v", rssAt[i])
		for _, h := range daemons {
			fmt.Fprintf(tw, "\t%.2f", float64(s[h])/(1<<20))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	base := rssSamples[min(2, len(rssSamples)-1)] // at 60 s
	for _, h := range []*topo.Host{h0, h1, h2} {
		if grew := final[h] - base[h]; grew > soakRSSBound {
			t.Errorf("%s's mctun grew from %s at 1 minute to %s at the end", h, mib(base[h]), mib(final[h]))
		}
	}
	fmt.Fprintf(&b, "(h3's mctun restarted at %v: its samples after that are of the new run)\n", restartAt)

	t.Logf("soak of %v: %d datagrams sent at %d/s of %d bytes; %d reloads; delivered: h1 %d, h2 %d, h3 %d (%d lost in %d outages, all while it was down)\n%s",
		duration, sent.Sent, soakRate, soakSize, reloads, recs[h1].count(), recs[h2].count(), recs[h3].count(), missing(gaps), len(downs), b.String())
}
