//go:build e2e

package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

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
		w.upAll(memberConfig, joinSource)
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
		if log := w.log(h0); !strings.Contains(log, `msg="member joined" member=198.18.2.2 group=224.1.2.3`) ||
			!strings.Contains(log, `msg="member left" member=198.18.2.2 group=224.1.2.3`) {
			t.Errorf("h0's log does not record h1's joins and leaves:\n%s", log)
		}

		// A restart of the source (an upgrade) keeps its dynamic members: it sends to them at
		// once, not after their next report.
		if r := w.mctun(h0, "down"); r.code != 0 {
			t.Fatalf("h0: mctun down: %v", r)
		}
		if r := w.mctun(h0, "up", "-c", w.writeConfig(h0, joinSource)); r.code != 0 {
			t.Fatalf("h0: mctun up: %v", r)
		}
		w.waitJoinedWithin(h0, group, time.Second, h1, h2)

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
		if log := w.log(h0); strings.Count(log, `msg="member expired" member=198.18.2.2 group=224.1.2.3`) != 2 {
			t.Errorf("h0's log does not record h1's two expiries:\n%s", log)
		}
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

// TestDynamicManyToMany: three hosts, each a source that accepts joins and a member of the
// other two, each application sending to one group and receiving it: every application
// receives every other's datagrams once, and its own once (its host's loopback), never twice.
func TestDynamicManyToMany(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		hosts := w.hosts[:3]
		for i, h := range hosts {
			var others []string
			for j, o := range hosts {
				if j != i {
					others = append(others, fmt.Sprintf("%q", o.Addr))
				}
			}
			w.up(h, joinSource+fmt.Sprintf("\n[member]\nsources = [%s]\n", strings.Join(others, ", ")))
		}
		const n = 3000
		g := netip.AddrPortFrom(netip.MustParseAddr("224.7.7.7"), 7000)
		// On each host, one recorder per sender: the same socket options and port, each
		// counting one sender's stream and the other two's as foreign.
		recs := map[[2]int]*recorder{}
		for i, h := range hosts {
			for j, from := range hosts {
				recs[[2]int{i, j}] = startRecorder(t, h, g, from.Addr, n)
			}
		}
		for i, h := range hosts {
			var others []*topo.Host
			for j, o := range hosts {
				if j != i {
					others = append(others, o)
				}
			}
			w.waitJoined(h, g.Addr(), others...)
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(hosts))
		for _, h := range hosts {
			wg.Go(func() {
				_, err := tools.Send(w.ctx, h, mcapp.SendOptions{Group: g.Addr(), Port: int(g.Port()), Count: n, Size: 300, Rate: 1500})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range recs {
			r.settle(n, time.Second, 10*time.Second)
		}
		// Each recorder counts the other two streams as its own socket gets them: once every
		// stream has arrived whole on a host, the foreign counts there follow within moments.
		complete := func(r *recorder) bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.unique == n && r.dups == 0 && r.bad == 0 && r.foreign == 2*n
		}
		poll(5*time.Second, func() bool {
			for _, r := range recs {
				if !complete(r) {
					return false
				}
			}
			return true
		})
		for i, h := range hosts {
			for j, from := range hosts {
				r := recs[[2]int{i, j}]
				if !complete(r) {
					t.Errorf("%s, the application counting %s's stream: %s; want all %d once, and the other two's %d once each",
						h, from, r.summary(n), n, n)
				}
			}
		}
		for _, h := range hosts {
			st := w.status(h).Source.Stats
			for _, gs := range st.Groups {
				if gs.MemberCount != 2 || gs.Packets != n {
					t.Errorf("%s sends %v: %d packets to %d members; want %d to the other two", h, gs.Address, gs.Packets, gs.MemberCount, n)
				}
			}
		}
	})
}

// TestStaticAndDynamicMembers: a group with a static member, which its application also
// joins, and a dynamic one; reloads that change the static list keep the dynamic members
// and lose nothing, and no member gets a datagram twice.
func TestStaticAndDynamicMembers(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		h0, h1, h2, h3 := w.hosts[0], w.hosts[1], w.hosts[2], w.hosts[3]
		for _, m := range w.mbrs {
			w.up(m, memberConfig)
		}
		static := func(members ...*topo.Host) string {
			var ms []string
			for _, m := range members {
				ms = append(ms, fmt.Sprintf("%q", m.Addr))
			}
			return joinSource + fmt.Sprintf("[[source.group]]\naddress = \"224.1.2.3\"\nport = 65535\nmembers = [%s]\n", strings.Join(ms, ", "))
		}
		w.up(h0, static(h1))
		const n = 20000
		rec1 := startRecorder(t, h1, netip.AddrPortFrom(group, 65535), h0.Addr, n)
		rec2 := startRecorder(t, h2, netip.AddrPortFrom(group, 65535), h0.Addr, n)
		w.waitJoined(h0, group, h1, h2)
		if j := w.joined(h0, group); !j[h1.Addr.String()].Static || j[h2.Addr.String()].Static {
			t.Errorf("group show: %+v; want h1 marked a static member too, h2 not", j)
		}
		if s := w.sendingTo(h0, group); len(s) != 2 {
			t.Errorf("h0 sends %v to %v; want h1 once and h2", group, s)
		}
		list, show := w.mctun(h0, "group", "list"), w.mctun(h0, "group", "show", group.String())
		if !strings.Contains(list.stdout, "224.1.2.3:65535  1        2") || !strings.Contains(show.stdout, "a static member too: sent each packet once") {
			t.Errorf("group list and show do not show the static and the dynamic members apart:\n%s\n%s", list, show)
		}
		t.Logf("mctun group list:\n%s\nmctun group show %v:\n%s\nmctun status:\n%s", list.stdout, group, show.stdout, w.mctun(h0, "status").stdout)
		done := make(chan error, 1)
		go func() {
			_, err := tools.Send(w.ctx, h0, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 200, Rate: 4000})
			done <- err
		}()
		for _, v := range [][]*topo.Host{{h1, h3}, {h3}, {h1}} {
			time.Sleep(time.Second)
			w.writeConfig(h0, static(v...))
			if r := w.mctun(h0, "reload"); r.code != 0 {
				t.Errorf("mctun reload: %v", r)
			}
			if j := w.joined(h0, group); len(j) != 2 {
				t.Errorf("after a reload to static members %v, the dynamic members are %v; want h1 and h2", hostNames(v), keys(j))
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for i, r := range []*recorder{rec1, rec2} {
			r.settle(n, time.Second, 10*time.Second)
			r.checkComplete([]string{"h1 (static and joined)", "h2 (joined)"}[i]+" through reloads of the static list", n)
		}
		for _, h := range []*topo.Host{h1, h2} {
			if f := w.status(h).flow(h0.Addr.String(), group.String()); f.Packets != n || f.Lost != 0 || f.Duplicates != 0 {
				t.Errorf("%s: flow %+v, want %d packets, none lost or duplicated", h, f, n)
			}
		}
	})
}

// TestReportOnTheWire: tshark, with no options, decodes a member's report on the wire as
// IGMPv3 inside GRE inside UDP: the join of 224.1.2.3 by h1's application.
func TestReportOnTheWire(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		h0, h1 := w.hosts[0], w.hosts[1]
		w.up(h0, joinSource)
		w.up(h1, memberConfig)
		wire := w.captureTunnel(h0, 1)
		startRecorder(t, h1, netip.AddrPortFrom(group, 65535), h0.Addr, 1)
		path := wire()
		out, err := rootRun(w, "tshark", "-r", path, "-T", "fields", "-E", "separator=;",
			"-e", "ip.src", "-e", "gre.key", "-e", "ip.ttl", "-e", "ip.opt.ra", "-e", "igmp.version", "-e", "igmp.type",
			"-e", "igmp.num_grp_recs", "-e", "igmp.record_type", "-e", "igmp.maddr", "-e", "igmp.num_src")
		if err != nil {
			t.Fatalf("tshark: %v: %s", err, out)
		}
		// Outer and inner IPv4 source both h1; the key; the inner TTL 1 (after the outer's
		// 64, less the router's hop) and Router Alert; IGMPv3, a v3 report (0x22), one
		// record CHANGE_TO_EXCLUDE_MODE (4) for 224.1.2.3 with no sources.
		want := "198.18.2.2,198.18.2.2;0x00000000;63,1;0;3;0x22;1;4;224.1.2.3;0"
		lines := strings.Split(strings.TrimSpace(out), "\n") // after what tshark says of running as root
		if got := lines[len(lines)-1]; got != want {
			full, _ := rootRun(w, "tshark", "-r", path, "-V")
			t.Errorf("tshark decodes the report as\n%s\nwant\n%s\nin full:\n%s", got, want, full)
		}
	})
}

// ssmApp is an application on h that binds g's port and joins g with a source filter, as
// SSM receivers do, and counts what arrives.
type ssmApp struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  int
}

func startSSMApp(t *testing.T, h *topo.Host, g netip.AddrPort, join func(pc *ipv4.PacketConn, grp *net.UDPAddr) error) *ssmApp {
	t.Helper()
	a := &ssmApp{}
	err := h.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", g.String())
		if err != nil {
			return err
		}
		a.conn = pc.(*net.UDPConn)
		return join(ipv4.NewPacketConn(a.conn), &net.UDPAddr{IP: g.Addr().AsSlice()})
	})
	if err != nil {
		t.Fatalf("%s: %v", h, err)
	}
	t.Cleanup(func() { a.conn.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := a.conn.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			a.mu.Lock()
			a.got++
			a.mu.Unlock()
		}
	}()
	return a
}

func (a *ssmApp) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got
}

// TestSourceSpecificJoins: the source filters of the members' applications decide where the
// source sends. h1's application joins 232.1.1.1 from h0 only (IGMPv3 INCLUDE, as SSM does),
// h2's from another host only, h3's from every host but h0 (EXCLUDE): h0 sends to h1 alone.
func TestSourceSpecificJoins(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		h0, h1, h2, h3 := w.hosts[0], w.hosts[1], w.hosts[2], w.hosts[3]
		w.upAll(memberConfig, joinSource)
		ssm := netip.AddrPortFrom(netip.MustParseAddr("232.1.1.1"), 5000)
		h0Addr := &net.UDPAddr{IP: h0.Addr.AsSlice()}
		elsewhere := &net.UDPAddr{IP: net.IPv4(198, 18, 9, 9)}
		apps := []*ssmApp{
			startSSMApp(t, h1, ssm, func(pc *ipv4.PacketConn, g *net.UDPAddr) error { return pc.JoinSourceSpecificGroup(nil, g, h0Addr) }),
			startSSMApp(t, h2, ssm, func(pc *ipv4.PacketConn, g *net.UDPAddr) error { return pc.JoinSourceSpecificGroup(nil, g, elsewhere) }),
			startSSMApp(t, h3, ssm, func(pc *ipv4.PacketConn, g *net.UDPAddr) error {
				if err := pc.JoinGroup(nil, g); err != nil {
					return err
				}
				return pc.ExcludeSourceSpecificGroup(nil, g, h0Addr)
			}),
		}
		var j map[string]daemon.JoinedMember
		if !poll(5*time.Second, func() bool { j = w.joined(h0, ssm.Addr()); return len(j) == 3 }) {
			t.Fatalf("the members of %v: %v; want all three, with their filters", ssm.Addr(), j)
		}
		for h, want := range map[*topo.Host]daemon.JoinedMember{
			h1: {Mode: "include", Sources: []string{h0.Addr.String()}},
			h2: {Mode: "include", Sources: []string{"198.18.9.9"}, Excluded: true},
			h3: {Mode: "exclude", Sources: []string{h0.Addr.String()}, Excluded: true},
		} {
			got := j[h.Addr.String()]
			if got.Mode != want.Mode || !slices.Equal(got.Sources, want.Sources) || got.Excluded != want.Excluded {
				t.Errorf("group show: %s joined as %+v; want %s %v, excluded %v", h, got, want.Mode, want.Sources, want.Excluded)
			}
		}
		if !poll(2*time.Second, func() bool { s := w.sendingTo(h0, ssm.Addr()); return len(s) == 1 && s[0] == h1.Addr.String() }) {
			t.Errorf("h0 sends %v to %v; want h1 alone", ssm.Addr(), w.sendingTo(h0, ssm.Addr()))
		}
		onH2, onH3 := w.watchLink(h2, h0.Addr), w.watchLink(h3, h0.Addr)
		const n = 500
		w.send(h0, mcapp.SendOptions{Group: ssm.Addr(), Port: int(ssm.Port()), Count: n, Rate: 1000})
		if !poll(3*time.Second, func() bool { return apps[0].count() == n }) {
			t.Errorf("h1's application (from h0 only) received %d of %d", apps[0].count(), n)
		}
		time.Sleep(200 * time.Millisecond)
		for i, lw := range []*linkWatch{onH2, onH3} {
			if got, _ := lw.count(); got != 0 || apps[i+1].count() != 0 {
				t.Errorf("%s, whose application's filter leaves h0 out: %d tunnel packets on its link, %d datagrams delivered; want none",
					w.mbrs[i+1], got, apps[i+1].count())
			}
		}
		if out := w.mctun(h1, "status").stdout; !strings.Contains(out, "reports 232.1.1.1 (only from 198.18.1.2) to 198.18.1.2") {
			t.Errorf("h1's mctun status does not say what it reports to whom:\n%s", out)
		}
	})
}
