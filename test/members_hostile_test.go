//go:build e2e

package test

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"mctun/daemon"
	"mctun/encap"
	"mctun/encap/encaptest"
	"mctun/igmp"
	"mctun/test/mcapp"
	"mctun/test/topo"
)

// The hostile-reports test's world: h0 the source, accepting joins from h1's and h2's
// subnets and from 198.19.0.0/16; h1 a legitimate member; h2 an insider (inside join_from,
// with the secret in the authenticated form, but no mctun: it sends what it likes); h3 an
// outsider forging source addresses; h4 a stranger outside join_from.
const (
	hostileJoinSource = `
[source]
join_from = ["198.18.2.0/24", "198.18.3.0/24", "198.19.0.0/16"]
`
	floodReports = 100000 // forged, in two halves: the first takes the daemon to its working set
	floodRate    = 12500  // a second
)

// reportKind is one kind of hostile report, with the counter it must move on h0.
type reportKind struct {
	name, counter string
	send          func(i int) error
	n             int
}

// TestHostileReports sends a source that accepts joins every kind of report it must refuse:
// from outside join_from, with the wrong key, malformed, not a report at all, and with a
// secret unauthenticated, forged or replayed; then 100,000 reports forged from tens of
// thousands of addresses. Each is refused and counted by reason, no member is added and
// nothing is sent anywhere because of them, the legitimate member loses nothing of a stream
// meanwhile, and the source's memory stays flat.
func TestHostileReports(t *testing.T) {
	inEachForm(t, testHostileReports)
}

func testHostileReports(t *testing.T, authenticated bool, dp string) {
	w := newWorldOn(t, 5, dp)
	h0, h1, h2, h3, h4 := w.hosts[0], w.hosts[1], w.hosts[2], w.hosts[3], w.hosts[4]
	checkRouterForwardsSpoofed(t, w, h3)
	secretLine := ""
	var auth, otherAuth *encap.Auth
	if authenticated {
		secretLine = fmt.Sprintf("secret_file = %q\n", w.writeSecret("secret", hostileSecret+"\n", 0o600))
		var err error
		if auth, err = encap.NewAuth([]byte(hostileSecret), 0); err != nil {
			t.Fatal(err)
		}
		if otherAuth, err = encap.NewAuth([]byte("not the secret, but as long as it"), 0); err != nil {
			t.Fatal(err)
		}
	}
	w.up(h1, secretLine+memberConfig)
	w.up(h0, secretLine+hostileJoinSource)

	const n, rate = 24000, 2500
	legit := startRecorder(t, h1, netip.AddrPortFrom(group, 65535), h0.Addr, n)
	w.waitJoined(h0, group, h1)

	// The tunnel packets around a report: plain, or sealed as the insider (who has the
	// secret) or a forger (who has another) would.
	var insiderSeal, forgerSeal *encap.Sealer
	if authenticated {
		var err error
		if insiderSeal, err = auth.NewSealer(encap.NextEpoch(time.Now().UnixNano(), 0), false); err != nil {
			t.Fatal(err)
		}
		if forgerSeal, err = otherAuth.NewSealer(1, false); err != nil {
			t.Fatal(err)
		}
	}
	plain := func(key uint32, inner []byte) []byte {
		p := make([]byte, encap.HeaderLen, encap.HeaderLen+len(inner))
		encap.PutHeader(p, encap.Header{Key: key})
		return append(p, inner...)
	}
	tunnel := func(s *encap.Sealer, key uint32, inner []byte) []byte {
		if s == nil {
			return plain(key, inner)
		}
		return sealWith(s, inner, encap.Header{Key: key})
	}
	other := netip.MustParseAddr("224.9.9.9") // a group the attackers try to make h0 send
	report := func(src netip.Addr) []byte {
		return igmp.BuildReports(src, []igmp.Record{{Type: igmp.ChangeToExclude, Group: other}})[0]
	}
	badSum := func(src netip.Addr) []byte {
		b := report(src)
		b[len(b)-1] ^= 0xff
		return b
	}
	dst := netip.AddrPortFrom(h0.Addr, 4754)
	udpFrom := func(h *topo.Host) func(pkt []byte) error {
		var c *net.UDPConn
		if err := h.Do(func() (err error) { c, err = net.ListenUDP("udp4", nil); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return func(pkt []byte) error { _, err := c.WriteToUDPAddrPort(pkt, dst); return err }
	}
	insider, stranger := udpFrom(h2), udpFrom(h4)
	var raw int
	if err := h3.Do(func() (err error) {
		raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(raw) })
	forged := func(src netip.Addr, pkt []byte) error {
		return unix.Sendto(raw, encaptest.UDPPacket(src, dst, pkt), 0, &unix.SockaddrInet4{Addr: h0.Addr.As4()})
	}
	// Forged sources: 198.19.0.0/16 is inside join_from, 198.18.200.0/24 is not.
	inside := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}) }
	outside := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 200, byte(i%250 + 2)}) }

	insiderSealOrNil := insiderSeal
	kinds := []*reportKind{
		{name: "h4, outside join_from", counter: "not_in_join_from", send: func(int) error { return stranger(tunnel(insiderSealOrNil, 0, report(h4.Addr))) }},
		{name: "h2, wrong key", counter: "wrong_key", send: func(int) error { return insider(tunnel(insiderSealOrNil, 99, report(h2.Addr))) }},
		{name: "h2, IGMP checksum wrong", counter: "malformed", send: func(int) error { return insider(tunnel(insiderSealOrNil, 0, badSum(h2.Addr))) }},
		{name: "h2, IGMPv2 report", counter: "malformed", send: func(int) error {
			v2 := []byte{0x16, 0, 0, 0, 224, 9, 9, 9}
			return insider(tunnel(insiderSealOrNil, 0, encaptest.IPv4Packet(h2.Addr, other, encap.ProtoIGMP, v2)))
		}},
		{name: "h2, a report for a unicast address", counter: "malformed", send: func(int) error {
			b := report(h2.Addr)
			b[len(b)-4] = 10 // the record's group: 10.9.9.9
			b[26], b[27] = 0, 0
			binary.BigEndian.PutUint16(b[26:], encap.Checksum(0, b[24:]))
			return insider(tunnel(insiderSealOrNil, 0, b))
		}},
		{name: "h2, truncated GRE header", counter: "bad_tunnel_header", send: func(int) error { return insider(plain(0, nil)[:6]) }},
		{name: "h2, data, not a report", counter: "not_a_report", send: func(int) error {
			return insider(tunnel(insiderSealOrNil, 0, encaptest.UDPPacket(h2.Addr, netip.AddrPortFrom(other, 9), hostilePayload(64))))
		}},
	}
	if authenticated {
		var replay []byte
		kinds = append(kinds,
			&reportKind{name: "h2, plain form", counter: "not_authenticated", send: func(int) error { return insider(plain(0, report(h2.Addr))) }},
			&reportKind{name: "h2, tag flipped", counter: "auth_failed", send: func(i int) error {
				p := tunnel(insiderSeal, 0, report(h2.Addr))
				p[len(p)-1-i%encap.TagLen] ^= 1
				return insider(p)
			}},
			&reportKind{name: "h2, a leave replayed", counter: "replayed", send: func(int) error {
				if replay == nil { // sent once validly (a leave of a group it never joined: no member)
					leave := igmp.BuildReports(h2.Addr, []igmp.Record{{Type: igmp.ChangeToInclude, Group: other}})[0]
					replay = tunnel(insiderSeal, 0, leave)
					if err := insider(replay); err != nil {
						return err
					}
					time.Sleep(50 * time.Millisecond)
				}
				return insider(replay)
			}},
		)
	}
	// The flood: forged from many addresses, each kind in turn.
	var flood []*reportKind
	if authenticated {
		flood = []*reportKind{
			{name: "forged inside join_from, another secret", counter: "auth_failed", send: func(i int) error { return forged(inside(i), tunnel(forgerSeal, 0, report(inside(i)))) }},
			{name: "forged inside join_from, plain form", counter: "not_authenticated", send: func(i int) error { return forged(inside(i), plain(0, report(inside(i)))) }},
			{name: "forged outside join_from", counter: "not_in_join_from", send: func(i int) error { return forged(outside(i), plain(0, report(outside(i)))) }},
		}
	} else {
		flood = []*reportKind{
			{name: "forged inside join_from, malformed", counter: "malformed", send: func(i int) error { return forged(inside(i), plain(0, badSum(inside(i)))) }},
			{name: "forged inside join_from, wrong key", counter: "wrong_key", send: func(i int) error { return forged(inside(i), plain(99, report(inside(i)))) }},
			{name: "forged outside join_from", counter: "not_in_join_from", send: func(i int) error { return forged(outside(i), plain(0, report(outside(i)))) }},
		}
	}

	pid := w.status(h0).PID
	before := w.status(h0).Source.Joins
	var streamErr error
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		_, streamErr = tools.Send(w.ctx, h0, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 200, Rate: rate, Duration: time.Minute})
	}()
	t.Cleanup(func() { <-streamDone }) // never outlive the test
	for _, k := range kinds {
		for i := range 50 {
			if err := k.send(i); err != nil {
				t.Fatalf("%s: %v", k.name, err)
			}
			k.n++
		}
	}
	sendFlood := func(from, to int) time.Duration {
		start := time.Now()
		for i := from; i < to; i++ {
			k := flood[i%len(flood)]
			if err := k.send(i); err != nil {
				t.Fatalf("%s: %v", k.name, err)
			}
			k.n++
			if d := time.Until(start.Add(time.Duration(i+1-from) * time.Second / floodRate)); d > 0 {
				time.Sleep(d)
			}
		}
		return time.Since(start)
	}
	sendFlood(0, floodReports/2)
	rssBefore := rss(t, pid)
	took := sendFlood(floodReports/2, floodReports)
	<-streamDone
	if streamErr != nil {
		t.Fatalf("legitimate stream: %v", streamErr)
	}

	want := map[string]uint64{}
	for _, k := range append(kinds, flood...) {
		want[k.counter] += uint64(k.n)
	}
	var j *daemon.JoinStatus
	poll(10*time.Second, func() bool {
		j = w.status(h0).Source.Joins
		for c, v := range want {
			if j.Reports.Refused[c]-before.Reports.Refused[c] < v {
				return false
			}
		}
		return true
	})
	rssAfter := rss(t, pid)

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tSENT\tCOUNTER\tCOUNTED (all kinds of that counter)")
	for _, k := range append(kinds, flood...) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d of %d\n", k.name, k.n, k.counter, j.Reports.Refused[k.counter]-before.Reports.Refused[k.counter], want[k.counter])
	}
	tw.Flush()
	t.Logf("hostile reports, the last %d in %v:\n%s", floodReports/2, took.Round(time.Millisecond), b.String())

	if j.SocketDrops != 0 {
		t.Errorf("h0's tunnel port overflowed: %d reports dropped by the kernel; the counts cannot be exact", j.SocketDrops)
	}
	for c, v := range j.Reports.Refused {
		if got := v - before.Reports.Refused[c]; got != want[c] {
			t.Errorf("reports refused as %s: %d, want %d", c, got, want[c])
		}
	}
	wantAccepted := before.Reports.Accepted
	if authenticated {
		wantAccepted++ // the insider's one valid leave, replayed afterwards
	}
	// h1's own reports go on, every 10 s: accepted, and no more than those.
	if extra := j.Reports.Accepted - wantAccepted; extra > 3 {
		t.Errorf("%d reports accepted during the attack; want only h1's own refreshes", extra)
	}
	if j.Memberships != 1 || j.Joins != before.Joins || j.OverLimit != 0 {
		t.Errorf("the table after the attack: %+v; want h1 alone, no join", j)
	}
	st := w.status(h0).Source.Stats
	if len(st.Groups) != 1 || st.Groups[0].Address != group || st.Groups[0].MemberCount != 1 || st.Drops["send_failed"] != 0 {
		t.Errorf("h0 sends %+v; want %v to h1 alone", st.Groups, group)
	}
	legit.settle(n, time.Second, 10*time.Second)
	legit.checkComplete("h1 (during the hostile reports)", n)
	const rssBound = 2 << 20
	t.Logf("h0's mctun: VmRSS %s after the first %d forged reports, %s after the next (%+d KiB)", mib(rssBefore), floodReports/2, mib(rssAfter), (rssAfter-rssBefore)>>10)
	if rssAfter-rssBefore > rssBound {
		t.Errorf("h0's mctun grew from %s to %s under the forged reports", mib(rssBefore), mib(rssAfter))
	}
}

// TestReportsOnSourceAndMember: on a host that is a source that accepts joins and a member
// too, one socket takes both the tunnel packets it delivers and the membership reports; what
// hosts that are no source send, and IGMP from a source, is judged as a report. Both
// datapaths count each bad packet under the same name: the report flow's for a host inside
// join_from, the receiver side's for one outside it or for data from a source; and after a
// reload widens join_from, by the new one.
func TestReportsOnSourceAndMember(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		h0, h1, h2, h3 := w.hosts[0], w.hosts[1], w.hosts[2], w.hosts[3]
		config := func(joinFrom string) string {
			return fmt.Sprintf("[source]\njoin_from = [%s]\n[member]\nsources = [%q]\n", joinFrom, h1.Addr)
		}
		// h1 is a source of h0's and inside join_from; h2 inside it and no source; h3
		// outside it, until the reload.
		w.up(h0, config(`"198.18.2.0/24", "198.18.3.0/24"`))
		if dp == "kernel" {
			if k := w.status(h0).Member.Kernel; k == nil || len(k.Attached) == 0 {
				t.Fatalf("h0's receiver side is not in the kernel: %+v", k)
			}
		}
		dst := netip.AddrPortFrom(h0.Addr, 4754)
		tunnel := func(key uint32, inner []byte) []byte {
			p := make([]byte, encap.HeaderLen, encap.HeaderLen+len(inner))
			encap.PutHeader(p, encap.Header{Key: key})
			return append(p, inner...)
		}
		report := func(h *topo.Host) []byte {
			return igmp.BuildReports(h.Addr, []igmp.Record{{Type: igmp.ChangeToExclude, Group: netip.MustParseAddr("224.9.9.9")}})[0]
		}
		data := func(h *topo.Host) []byte {
			return encaptest.UDPPacket(h.Addr, netip.AddrPortFrom(group, 65535), make([]byte, 64))
		}
		type counts struct{ refused, drops map[string]uint64 }
		read := func() counts {
			st := w.status(h0)
			return counts{st.Source.Joins.Reports.Refused, st.Member.Stats.Drops}
		}
		// expect sends each packet five times and waits until exactly the counters named
		// have moved, by five each.
		expect := func(stage string, sends []func(), refused, drops []string) {
			t.Helper()
			before := read()
			for _, send := range sends {
				for range 5 {
					send()
				}
			}
			want := counts{map[string]uint64{}, map[string]uint64{}}
			for _, c := range refused {
				want.refused[c] += 5
			}
			for _, c := range drops {
				want.drops[c] += 5
			}
			moved := func(now, was map[string]uint64) map[string]uint64 {
				d := map[string]uint64{}
				for c, n := range now {
					if n != was[c] {
						d[c] = n - was[c]
					}
				}
				return d
			}
			var got counts
			poll(5*time.Second, func() bool {
				now := read()
				got = counts{moved(now.refused, before.refused), moved(now.drops, before.drops)}
				return maps.Equal(got.refused, want.refused) && maps.Equal(got.drops, want.drops)
			})
			if !maps.Equal(got.refused, want.refused) || !maps.Equal(got.drops, want.drops) {
				t.Errorf("%s: reports refused %v, receiver drops %v; want %v and %v", stage, got.refused, got.drops, want.refused, want.drops)
			}
		}
		send := func(h *topo.Host, pkt []byte) func() { return func() { sendFrom(t, h, dst, pkt) } }

		expect("join_from h1's and h2's subnets", []func(){
			send(h2, tunnel(0, data(h2))),    // not_a_report: h2 may join, and this is no report
			send(h2, tunnel(99, report(h2))), // wrong_key, of the report flow
			send(h1, tunnel(99, report(h1))), // wrong_key, of the report flow: IGMP from a source
			send(h1, tunnel(99, data(h1))),   // wrong_key, of the receiver side: data from a source
			send(h3, tunnel(0, report(h3))),  // unknown_source: h3 may not join
			send(h3, tunnel(0, data(h3))),    // unknown_source
		}, []string{"not_a_report", "wrong_key", "wrong_key"}, []string{"wrong_key", "unknown_source", "unknown_source"})

		w.writeConfig(h0, config(`"198.18.2.0/24", "198.18.3.0/24", "198.18.4.0/24"`))
		if r := w.mctun(h0, "reload"); r.code != 0 {
			t.Fatalf("h0: mctun reload: %v", r)
		}
		expect("join_from with h3's subnet too", []func(){
			send(h3, tunnel(0, data(h3))),    // not_a_report: h3 may join now
			send(h3, tunnel(99, report(h3))), // wrong_key, of the report flow
		}, []string{"not_a_report", "wrong_key"}, nil)
		if dp == "kernel" { // the program judged them, not the stack for it
			want := map[string]uint64{"user_join_from": 20, "user_igmp": 5}
			p := w.status(h0).Member.Kernel.Paths
			for path, n := range p {
				if n != want[path] {
					t.Errorf("h0's kernel path: %v; want %v, the rest 0", p, want)
					break
				}
			}
		}
	})
}
