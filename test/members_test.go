//go:build e2e

package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mctun/daemon"
	"mctun/test/mcapp"
	"mctun/test/topo"
)

// Dynamic membership: a source with join_from and no member lists; members that only name
// their sources; applications that join and leave.
const (
	joinSource = `
[source]
join_from = ["198.18.0.0/15"]
`
	// joinBound is the bound on join-to-first-datagram and leave-to-stop.
	joinBound = time.Second
)

// linkWatch records when tunnel packets from one host arrive on another's link, as tcpdump
// sees them on the wire: what the issue means by "the link sees no tunnel packet".
type linkWatch struct {
	mu    sync.Mutex
	times []time.Time
	done  chan struct{}
}

// watchLink starts tcpdump on h's eth0 for tunnel packets (UDP to port 4754) from from.
func (w *world) watchLink(h *topo.Host, from netip.Addr) *linkWatch {
	w.t.Helper()
	cmd := h.Command(w.ctx, "tcpdump", "-i", "eth0", "-Q", "in", "-n", "-l", "-tt", "-q",
		fmt.Sprintf("udp dst port 4754 and src host %s", from))
	out, err := cmd.StdoutPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("tcpdump: %v", err)
	}
	lw := &linkWatch{done: make(chan struct{})}
	w.t.Cleanup(func() { cmd.Process.Kill(); <-lw.done; cmd.Wait() })
	go func() {
		defer close(lw.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 {
				continue
			}
			sec, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				continue
			}
			lw.mu.Lock()
			lw.times = append(lw.times, time.Unix(0, int64(sec*1e9)))
			lw.mu.Unlock()
		}
	}()
	if !poll(5*time.Second, func() bool { return strings.Contains(stderr.String(), "listening on") }) {
		w.t.Fatalf("%s: tcpdump did not start: %s", h, stderr.String())
	}
	return lw
}

// count is how many tunnel packets arrived; last when the last one did.
func (lw *linkWatch) count() (n int, last time.Time) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.times) > 0 {
		last = lw.times[len(lw.times)-1]
	}
	return len(lw.times), last
}

// between counts the tunnel packets that arrived in [from, to).
func (lw *linkWatch) between(from, to time.Time) int {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	n := 0
	for _, t := range lw.times {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// joined returns the dynamic members of the group of address g on h, by address, as mctun
// group show --json lists them (nil when there is no such group).
func (w *world) joined(h *topo.Host, g netip.Addr) map[string]daemon.JoinedMember {
	w.t.Helper()
	r := w.mctun(h, "group", "show", g.String(), "--json")
	if r.code != 0 {
		return nil
	}
	var gs []daemon.GroupInfo
	if err := json.Unmarshal([]byte(r.stdout), &gs); err != nil {
		w.t.Fatalf("%s: mctun group show --json: %v\n%s", h, err, r.stdout)
	}
	out := map[string]daemon.JoinedMember{}
	for _, gi := range gs {
		for _, j := range gi.Joined {
			out[j.Address] = j
		}
	}
	return out
}

// waitJoined waits until exactly the given hosts are dynamic members of g on src, and the
// sender side sends to them: its group of address g (the first) has them as members.
func (w *world) waitJoined(src *topo.Host, g netip.Addr, hosts ...*topo.Host) {
	w.t.Helper()
	w.waitJoinedWithin(src, g, 5*time.Second, hosts...)
}

// waitJoinedWithin is waitJoined with a timeout.
func (w *world) waitJoinedWithin(src *topo.Host, g netip.Addr, timeout time.Duration, hosts ...*topo.Host) {
	w.t.Helper()
	var got map[string]daemon.JoinedMember
	var sending []string
	ok := poll(timeout, func() bool {
		got = w.joined(src, g)
		sending = w.sendingTo(src, g)
		if len(got) != len(hosts) {
			return false
		}
		for _, h := range hosts {
			if _, ok := got[h.Addr.String()]; !ok || !contains(sending, h.Addr.String()) {
				return false
			}
		}
		return true
	})
	if !ok {
		w.t.Fatalf("%s: the dynamic members of %s are %v, sent to %v; want %v", src, g, keys(got), sending, hostNames(hosts))
	}
}

// sendingTo lists the members src's sender side sends group g to, as mctun stats shows them.
func (w *world) sendingTo(src *topo.Host, g netip.Addr) []string {
	w.t.Helper()
	var out []string
	if st := w.status(src).Source; st != nil {
		for _, gs := range st.Stats.Groups {
			if gs.Address == g {
				for _, m := range gs.Members {
					out = append(out, m.Address.Addr().String())
				}
			}
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDynamicMembership: a source with join_from and no member lists, three members. The two
// whose applications join receive a stream of 10,000 datagrams, every one; the third, whose
// applications joined nothing, gets no tunnel packet at all. Then, during a stream, an
// application leaves and joins again: the source stops sending to its host within a second
// of the leave, and the first datagram arrives within a second of the join; the other member
// loses nothing meanwhile.
func TestDynamicMembership(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		h0, h1, h2, h3 := w.hosts[0], w.hosts[1], w.hosts[2], w.hosts[3]
		for _, m := range w.mbrs {
			w.up(m, memberConfig)
		}
		w.up(h0, joinSource)
		onH3 := w.watchLink(h3, h0.Addr)

		const n = 10000
		rs := w.receive([]*topo.Host{h1, h2}, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
		w.waitJoined(h0, group, h1, h2)
		for _, h := range []*topo.Host{h1, h2} {
			j := w.joined(h0, group)[h.Addr.String()]
			if j.Mode != "exclude" || len(j.Sources) != 0 || j.Static || j.Excluded || time.Until(j.Expires) <= 0 || j.Expires.Sub(j.Refreshed) != 30*time.Second {
				t.Errorf("group show: %s joined as %+v; want any source, expiring 30 s after its last report", h, j)
			}
		}
		w.send(h0, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 500, Rate: 5000})
		for i, rep := range w.reports(rs) {
			w.checkStream([]string{"h1", "h2"}[i], rep, n, h0.Addr.String())
		}

		// Leave and join again during a stream: h1's application leaves, then a new one
		// joins; h2's receives the whole stream.
		const m = 12000
		onH1 := w.watchLink(h1, h0.Addr)
		h2rec := startRecorder(t, h2, netip.AddrPortFrom(group, 65535), h0.Addr, m)
		h1rec := startRecorder(t, h1, netip.AddrPortFrom(group, 65535), h0.Addr, m)
		w.waitJoined(h0, group, h1, h2)
		done := make(chan error, 1)
		go func() {
			_, err := tools.Send(w.ctx, h0, mcapp.SendOptions{Group: group, Port: 65535, Count: m, Size: 200, Rate: 2000})
			done <- err
		}()
		if !h1rec.waitCount(1000, 5*time.Second) {
			t.Fatalf("h1 receives nothing: %s", h1rec.summary(m))
		}
		leave := time.Now()
		h1rec.close()
		time.Sleep(1500 * time.Millisecond)
		_, last := onH1.count()
		leaveToStop := last.Sub(leave)
		if after := onH1.between(leave.Add(joinBound), time.Now()); after != 0 || leaveToStop > joinBound {
			t.Errorf("h1's application left: the last tunnel packet reached h1 %v later, and %d more came after %v; want none after %v",
				leaveToStop.Round(time.Millisecond), after, joinBound, joinBound)
		}
		if j := w.joined(h0, group); len(j) != 1 {
			t.Errorf("after h1's leave the dynamic members are %v; want h2 alone", keys(j))
		}
		join := time.Now()
		h1rec.restart()
		at, _, ok := h1rec.firstAfter(join)
		if !ok && poll(joinBound, func() bool { _, _, ok = h1rec.firstAfter(join); return ok }) {
			at, _, _ = h1rec.firstAfter(join)
		}
		joinToFirst := at.Sub(join)
		if !ok || joinToFirst > joinBound {
			t.Errorf("h1's application joined again: first datagram after %v (arrived: %v); want within %v", joinToFirst, ok, joinBound)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		h2rec.settle(m, time.Second, 10*time.Second)
		h2rec.checkComplete("h2 (through h1's leave and join)", m)
		t.Logf("leave to the last tunnel packet on h1's link: %v; join to the first datagram: %v", leaveToStop.Round(100*time.Microsecond), joinToFirst.Round(100*time.Microsecond))

		// h3's applications joined nothing: not one tunnel packet reached its link.
		if got, _ := onH3.count(); got != 0 {
			t.Errorf("h3 joined nothing, yet %d tunnel packets from h0 reached its link", got)
		}
		st := w.status(h0)
		t.Logf("h0: %s", w.mctun(h0, "status").stdout)
		if st.Source == nil {
			t.Fatal("no source status")
		}
	})
}

// TestDynamicMemberExpiry: a member host whose mctun is killed (kill -9), then one whose link
// is cut, stops reporting; the source keeps sending to it for 3 report intervals after its
// last report (30 s) and not a moment less, then stops; when the host comes back it is added
// again without an operator. The other member loses nothing throughout.
func TestDynamicMemberExpiry(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		h0, h1, h2 := w.hosts[0], w.hosts[1], w.hosts[2]
		w.up(h1, memberConfig)
		w.up(h2, memberConfig)
		w.up(h0, joinSource)
		const n, rate = 22000, 200 // 110 s of stream: longer than the two outages and the returns
		rec1 := startRecorder(t, h1, netip.AddrPortFrom(group, 65535), h0.Addr, n)
		rec2 := startRecorder(t, h2, netip.AddrPortFrom(group, 65535), h0.Addr, n)
		w.waitJoined(h0, group, h1, h2)
		onH1 := w.watchLink(h1, h0.Addr)
		done := make(chan error, 1)
		go func() {
			_, err := tools.Send(w.ctx, h0, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 100, Rate: rate, Duration: 3 * time.Minute})
			done <- err
		}()
		if !rec1.waitCount(100, 5*time.Second) {
			t.Fatalf("h1 receives nothing: %s", rec1.summary(n))
		}
		hold := 30 * time.Second

		// kill -9: no leave is sent; the last report the source had is where the 30 s start.
		killed := time.Now()
		w.kill9(h1, true)
		refreshed := w.joined(h0, group)[h1.Addr.String()].Refreshed
		var gone time.Time
		if !poll(hold+5*time.Second, func() bool {
			_, ok := w.joined(h0, group)[h1.Addr.String()]
			gone = time.Now()
			return !ok
		}) {
			t.Fatalf("h1 still a member of %s 35 s after its mctun was killed", group)
		}
		time.Sleep(200 * time.Millisecond) // for the last tunnel packets in flight
		_, last := onH1.count()
		kept := last.Sub(refreshed)
		t.Logf("kill -9: h1's last report %v before the kill; the source sent to h1 until %v after that report, and dropped it %v after it",
			killed.Sub(refreshed).Round(time.Millisecond), kept.Round(time.Millisecond), gone.Sub(refreshed).Round(time.Millisecond))
		if kept < hold-time.Second/rate || kept > hold+time.Second {
			t.Errorf("kill -9: the source sent to h1 until %v after its last report; want %v, and no more than a second over", kept, hold)
		}
		if after := onH1.between(refreshed.Add(hold+time.Second), time.Now()); after != 0 {
			t.Errorf("kill -9: %d tunnel packets reached h1 more than %v after its last report", after, hold+time.Second)
		}
		// Back: mctun up takes over the TUN, where h1's application is still joined, and
		// reports it; no operator adds anything.
		if r := w.mctun(h1, "up", "-c", w.writeConfig(h1, memberConfig)); r.code != 0 {
			t.Fatalf("h1: mctun up again: %v", r)
		}
		back := time.Now()
		w.waitJoined(h0, group, h1, h2)
		t.Logf("kill -9: h1 a member again %v after mctun up", time.Since(back).Round(time.Millisecond))
		if !rec1.waitCount(rec1.count()+50, 5*time.Second) {
			t.Errorf("h1 does not receive again after mctun up: %s", rec1.summary(n))
		}

		// The link cut: the host goes on reporting, into nothing.
		w.linkDown(h1)
		time.Sleep(100 * time.Millisecond)
		refreshed = w.joined(h0, group)[h1.Addr.String()].Refreshed
		if !poll(hold+5*time.Second, func() bool {
			_, ok := w.joined(h0, group)[h1.Addr.String()]
			gone = time.Now()
			return !ok
		}) {
			t.Fatalf("h1 still a member of %s 35 s after its link was cut", group)
		}
		t.Logf("link cut: h1 dropped %v after its last report", gone.Sub(refreshed).Round(time.Millisecond))
		if d := gone.Sub(refreshed); d < hold || d > hold+time.Second {
			t.Errorf("link cut: h1 dropped %v after its last report; want %v, and no more than a second over", d, hold)
		}
		if contains(w.sendingTo(h0, group), h1.Addr.String()) {
			t.Errorf("link cut: h1 expired from the table, yet still sent to")
		}
		w.linkUp(h1)
		back = time.Now()
		w.waitJoinedWithin(h0, group, 12*time.Second, h1, h2) // its next report, at most 10 s on
		t.Logf("link cut: h1 a member again %v after its link came back", time.Since(back).Round(time.Millisecond))

		if err := <-done; err != nil {
			t.Fatal(err)
		}
		rec2.settle(n, time.Second, 10*time.Second)
		rec2.checkComplete("h2 (through h1's outages)", n)
	})
}
