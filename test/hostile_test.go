//go:build e2e

package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"mctun/encap"
	"mctun/encap/encaptest"
	"mctun/test/mcapp"
	"mctun/test/topo"
)

// The hostile-input test's world: h0 the legitimate source, h1 the member under attack, h2 an
// insider (a configured source; with the secret in the authenticated form), h3 an outsider
// who forges h0's address, h4 a stranger who sends from its own.
const (
	hostileSecret = "9d1f0c7e4b2a6385f0e1d2c3b4a59687"
	// The member accepts h0 and h2, and two groups: the stream's, and one the outsider's
	// forgeries aim at (so that what the plain form lets through is seen apart).
	hostileMember = `
[member]
sources = ["198.18.1.2", "198.18.3.2"]
groups  = ["224.1.2.3", "224.1.2.5"]
`
	hostileSource = `
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2"]
`
	// The legitimate stream, and how long the attack may last (it starts once the stream
	// flows and must end before it does).
	legitCount, legitRate = 24000, 2500
	attackRounds          = 3000 // every kind once per round, twice over: see testHostile
	attackRoundRate       = 750  // rounds per second
	attackLimit           = 6 * time.Second
)

// TestHostileInput floods a member with every kind of tunnel packet it must refuse, from an
// outsider, an insider and a replayer, at tens of thousands of packets per second alongside
// a legitimate stream of 24,000 datagrams. None is delivered, each drop counter moves by
// exactly the packets of its kinds, the stream loses nothing, and the member's memory stays
// flat. It runs in the authenticated form and in the plain one, where what the README says
// the plain form cannot refuse (forged packets from a source's address) is shown, not hidden.
func TestHostileInput(t *testing.T) {
	inEachForm(t, testHostile)
}

// attacker sends tunnel packets to the member from one place.
type attacker struct {
	name string
	send func(pkt []byte) error
}

// hostileKind is one kind of hostile tunnel packet.
type hostileKind struct {
	name    string
	by      *attacker
	counter string             // the drop reason it must move on h1; "" for delivered (the plain form's weakness)
	packet  func(i int) []byte // its i-th packet: the UDP payload
	sent    int
	errs    int
	firstEr error
}

func testHostile(t *testing.T, authenticated bool, dp string) {
	w := newWorldOn(t, 5, dp)
	h0, h1, h2, h3, h4 := w.hosts[0], w.hosts[1], w.hosts[2], w.hosts[3], w.hosts[4]
	checkRouterForwardsSpoofed(t, w, h3)

	secretLine := ""
	var auth *encap.Auth
	if authenticated {
		secretLine = fmt.Sprintf("secret_file = %q\n", w.writeSecret("secret", hostileSecret+"\n", 0o600))
		var err error
		if auth, err = encap.NewAuth([]byte(hostileSecret), 0); err != nil {
			t.Fatal(err)
		}
	}
	w.up(h1, secretLine+hostileMember)
	w.up(h0, secretLine+hostileSource)

	// What applications on h1 would see: the stream's receiver (mcrecv, on 224.1.2.3:65535),
	// and two that note the destination of whatever they get: one bound to the stream's port
	// on every address (unicast, broadcast) and joined to a group h1 does not allow, and one
	// joined to the group the outsider forges. (On this kernel a socket bound to one group
	// gets the datagrams of every group joined on the host to its port, so only the
	// destination address tells them apart.)
	forgedGroup, notAllowed := netip.MustParseAddrPort("224.1.2.5:65533"), netip.MustParseAddr("224.9.9.9")
	legit := w.receive([]*topo.Host{h1}, mcapp.RecvOptions{Group: group, Port: 65535, Count: legitCount, Idle: 3 * time.Second, Timeout: time.Minute})[0]
	onPort := listenWatcher(t, h1, 65535, notAllowed)
	onForged := listenWatcher(t, h1, int(forgedGroup.Port()), forgedGroup.Addr())

	// The stream, and a capture of its first tunnel packets on h1's wire: the replayer's
	// material, and the outsider's templates.
	wire := w.captureTunnel(h1, 200)
	sendDone := make(chan sendResult, 1)
	streamStart := time.Now()
	go func() {
		rep, err := tools.Send(w.ctx, h0, mcapp.SendOptions{Group: group, Port: 65535, Count: legitCount, Size: 500, Rate: legitRate, Duration: time.Minute})
		sendDone <- sendResult{rep, err}
	}()
	t.Cleanup(func() { <-sendDone }) // never outlive the test, even one that failed half way
	captured := tunnelPayloads(t, wire())

	pid := w.status(h1).PID
	rssIdle := rss(t, pid)
	st0 := w.status(h1)
	drops0, sock0 := st0.Member.Stats.Drops, st0.Member.SocketDrops

	// The attack, twice over: the first takes the daemon from its idle working set to its
	// working set under a flood (its Go heap, sized by the collector to the rate at which
	// the packet path makes garbage: 2-4 MiB more, measured, reached within about 8 s of
	// flood, and no more over further attacks of the same size); memory is compared over
	// the second.
	kinds := hostileKinds(t, authenticated, auth, captured, hostileAttackers(t, h0, h1, h2, h3, h4))
	start := time.Now()
	attack(kinds, 0, attackRounds)
	warmup := 0
	for _, k := range kinds {
		warmup += k.sent
	}
	rssBefore := rss(t, pid)
	attack(kinds, attackRounds, 2*attackRounds)
	attackTime := time.Since(start)

	attackEnd := time.Now()
	res := <-sendDone
	sendDone <- res
	if res.err != nil {
		t.Fatalf("legitimate mcsend: %v", res.err)
	}
	sent := res.rep
	if streamEnd := streamStart.Add(time.Duration(sent.ElapsedNs)); attackEnd.After(streamEnd) {
		t.Errorf("the attack went on %v after the legitimate stream ended: not all of it was alongside", attackEnd.Sub(streamEnd))
	}
	legitRep := w.reports([]*mcapp.Receiver{legit})[0]

	// Everything the attack sent has reached h1 once the counters stop moving.
	want := map[string]uint64{}
	total := 0
	for _, k := range kinds {
		if k.counter != "" {
			want[k.counter] += uint64(k.sent)
		}
		total += k.sent
	}
	var st status
	poll(10*time.Second, func() bool {
		st = w.status(h1)
		for c, n := range want {
			if st.Member.Stats.Drops[c]-drops0[c] < n {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // for anything wrongly delivered to reach the watchers
	onPort.stop()
	onForged.stop()
	forged := onForged.got[forgedGroup.Addr()]
	st = w.status(h1)
	rssAfter := rss(t, pid)

	// The table: each kind, how many were sent, the counter it must move and how far that
	// counter moved (kinds sharing a counter share the figure).
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "KIND\tFROM\tSENT\tCOUNTER\tCOUNTED (all kinds of that counter)\n")
	for _, k := range kinds {
		counter, counted := k.counter, ""
		if counter == "" {
			counter, counted = "(delivered: the plain form's weakness)", fmt.Sprint(forged)
		} else {
			counted = fmt.Sprintf("%d of %d", st.Member.Stats.Drops[counter]-drops0[counter], want[counter])
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", k.name, k.by.name, k.sent, counter, counted)
	}
	tw.Flush()
	t.Logf("%d hostile packets of %d kinds in %v (%.0f/s), alongside %d legitimate datagrams at %d/s:\n%s",
		total, len(kinds), attackTime.Round(time.Millisecond), float64(total)/attackTime.Seconds(), sent.Sent, legitRate, b.String())

	// Every packet of every kind was sent: a kind that could not be sent tests nothing.
	for _, k := range kinds {
		if k.errs > 0 || k.sent == 0 {
			t.Errorf("%s (%s): %d sent, %d send errors, first: %v", k.name, k.by.name, k.sent, k.errs, k.firstEr)
		}
	}
	// Each drop counter moved by exactly the packets of its kinds, and no other moved.
	if d := st.Member.SocketDrops - sock0; d != 0 {
		t.Errorf("h1's tunnel socket overflowed: %d datagrams dropped by the kernel, so neither the counts nor the stream can be exact", d)
	}
	for c, n := range st.Member.Stats.Drops {
		if got := n - drops0[c]; got != want[c] {
			t.Errorf("drop counter %s moved by %d, want %d (the packets of its kinds)", c, got, want[c])
		}
	}
	if k := st.Member.Kernel; k != nil {
		t.Logf("h1's kernel path: %v", k.Paths)
	}
	w.checkJudgedInKernel(h1)
	// Nothing hostile was delivered to an application.
	wrong := int(legitRep.Bad) + int(legitRep.Duplicates)
	for from, n := range legitRep.Senders {
		if from != h0.Addr.String() {
			wrong += int(n)
		}
	}
	for dst, n := range onPort.got {
		wrong += n
		t.Errorf("an application on h1 bound to port 65535 on every address received %d datagrams to %v (first from %v: %q)", n, dst, onPort.from[dst], onPort.first[dst])
	}
	for dst, n := range onForged.got {
		if dst != forgedGroup.Addr() || authenticated {
			wrong += n
			t.Errorf("an application on h1 joined to %v received %d datagrams to %v (first from %v: %q)", forgedGroup, n, dst, onForged.from[dst], onForged.first[dst])
		}
	}
	if !authenticated {
		t.Logf("plain form, documented weakness: %d of %d packets forged with h0's address around a well-formed inner packet were delivered to %v",
			forged, kindSent(kinds, ""), forgedGroup)
	}
	// The legitimate stream lost nothing and got nothing extra.
	w.checkStream("h1 (the legitimate stream, under attack)", legitRep, legitCount, h0.Addr.String())
	if f := st.flow(h0.Addr.String(), group.String()); f.Packets != legitCount || f.Lost != 0 || f.Duplicates != 0 || f.Restarts != 0 {
		t.Errorf("h1's flow of the stream: %+v; want %d packets, none lost, duplicated or restarted", f, legitCount)
	}
	// The member's memory stayed flat. The bound: once at its working set the daemon (GOGC
	// 50, a live heap of a few MiB) moves by a few hundred KiB between two moments; 2 MiB
	// over the second attack is a leak of some 15-20 bytes per hostile packet.
	const rssBound = 2 << 20
	measured := total - warmup
	t.Logf("h1's mctun: VmRSS %s idle, %s after the first attack, %s after the second (%+d KiB over its %d hostile packets; the bound, %s, is %.0f bytes a packet); %d wrongly delivered; %d of %d legitimate datagrams lost",
		mib(rssIdle), mib(rssBefore), mib(rssAfter), (rssAfter-rssBefore)>>10, measured, mib(rssBound), float64(rssBound)/float64(measured), wrong, legitCount-int(legitRep.Unique), legitCount)
	if rssAfter-rssBefore > rssBound {
		t.Errorf("h1's mctun grew from %s to %s under the attack", mib(rssBefore), mib(rssAfter))
	}
}

// checkRouterForwardsSpoofed fails the test if the router would drop the outsider's packets
// with h0's address (strict reverse-path filtering), which would make them test nothing.
func checkRouterForwardsSpoofed(t *testing.T, w *world, outsider *topo.Host) {
	t.Helper()
	for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net/ipv4/conf/" + outsider.Peer + "/rp_filter"} {
		v, err := w.topo.Router.ReadSysctl(key)
		if err != nil {
			t.Fatal(err)
		}
		if v == "1" {
			t.Fatalf("the router filters reverse paths strictly (%s = 1): it would drop the outsider's spoofed packets", key)
		}
	}
}

// hostileAttackers opens the attackers' sockets: the outsider h3 forges h0's address with a
// raw IP_HDRINCL socket; the insider h2, the stranger h4 and the replayer (in h0's namespace,
// so with h0's address) use ordinary UDP sockets. All send to h1's tunnel port.
func hostileAttackers(t *testing.T, h0, h1, h2, h3, h4 *topo.Host) map[string]*attacker {
	t.Helper()
	dst := netip.AddrPortFrom(h1.Addr, 4754)
	// Each sends as a tunnel does, with a UDP checksum of 0 (see tunnelSocket): so the
	// kernel path's receiver judges what they send itself.
	udpFrom := func(name string, h *topo.Host) *attacker {
		c := tunnelSocket(t, h)
		t.Cleanup(func() { c.Close() })
		return &attacker{name: name, send: func(pkt []byte) error {
			_, err := c.WriteToUDPAddrPort(pkt, dst)
			return err
		}}
	}
	var raw int
	if err := h3.Do(func() (err error) {
		raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW) // IP_HDRINCL implied
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(raw) })
	to := &unix.SockaddrInet4{Addr: h1.Addr.As4()}
	spoofed := &attacker{name: "h3 as h0 (forged)", send: func(pkt []byte) error {
		p := encaptest.UDPPacket(h0.Addr, dst, pkt)
		p[26], p[27] = 0, 0 // the UDP checksum
		return unix.Sendto(raw, p, 0, to)
	}}
	return map[string]*attacker{
		"insider":  udpFrom("h2 (insider)", h2),
		"stranger": udpFrom("h4 (own address)", h4),
		"replayer": udpFrom("h0's address (replay)", h0),
		"outsider": spoofed,
	}
}

// hostileKinds lists the kinds of hostile packets for one form of the tunnel, with the drop
// counter each must move on h1. captured are h0's real tunnel packets.
func hostileKinds(t *testing.T, authenticated bool, auth *encap.Auth, captured [][]byte, a map[string]*attacker) []*hostileKind {
	t.Helper()
	if len(captured) == 0 {
		t.Fatal("no tunnel packets captured")
	}
	h0Addr, h1Addr, h2Addr := netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("198.18.3.2")
	plain := func(key uint32, inner []byte) func(int) []byte {
		return func(i int) []byte {
			p := make([]byte, encap.HeaderLen, encap.HeaderLen+len(inner))
			encap.PutHeader(p, encap.Header{Key: key, Seq: uint32(i)})
			return append(p, inner...)
		}
	}
	var kinds []*hostileKind
	add := func(name string, by *attacker, counter string, packet func(int) []byte) {
		kinds = append(kinds, &hostileKind{name: name, by: by, counter: counter, packet: packet})
	}
	either := func(authCounter, plainCounter string) string {
		if authenticated {
			return authCounter
		}
		return plainCounter
	}
	valid := encaptest.UDPPacket(h0Addr, netip.AddrPortFrom(group, 65535), hostilePayload(64))

	// The tunnel header and the source check: the outsider forging h0's address, and a
	// stranger with a copy of h0's real packets.
	add("h0's real packets, from another address", a["stranger"], "unknown_source", func(i int) []byte { return captured[i%len(captured)] })
	add("random bytes", a["outsider"], "bad_tunnel_header", func(i int) []byte {
		p := make([]byte, 1+i%1400)
		rand.Read(p)
		p[0] &^= 0x30 // never the valid flags word (0x3000): random, but surely not a header
		return p
	})
	add("truncated GRE header (0-11 bytes)", a["outsider"], "bad_tunnel_header", func(i int) []byte { return plain(0, nil)(i)[:i%encap.HeaderLen] })
	add("GRE flags other than key and sequence", a["outsider"], "bad_tunnel_header", func(i int) []byte {
		p := plain(0, valid)(i)
		switch i % 4 {
		case 0:
			p[0] |= 0x80 // checksum present
		case 1:
			p[0] |= 0x40 // routing present
		case 2:
			p[0] &^= 0x10 // no sequence number
		case 3:
			p[1] |= 0x01 // version 1
		}
		return p
	})
	add("truncated auth header (12-55 bytes)", a["outsider"], "bad_tunnel_header", func(i int) []byte {
		p := forgedAuth(uint64(time.Now().UnixNano()), valid)
		return p[:encap.HeaderLen+i%(encap.AuthHeaderLen+encap.TagLen)]
	})
	add("authenticated form, random epoch, instance and tag", a["outsider"], either("auth_failed", "bad_tunnel_header"), func(i int) []byte {
		return forgedAuth(uint64(time.Now().UnixNano())+uint64(i), valid) // newer than h0's run: a candidate, never a replay
	})
	add("wrong key, plain form", a["outsider"], either("not_authenticated", "wrong_key"), plain(99, valid))
	// A forged plain-form packet with a well-formed inner packet to an allowed group: the
	// authenticated form refuses it; the plain form cannot tell it from h0's (README).
	add("well-formed multicast, plain form", a["outsider"], either("not_authenticated", ""),
		plain(0, encaptest.UDPPacket(h0Addr, netip.MustParseAddrPort("224.1.2.5:65533"), hostilePayload(64))))
	if authenticated {
		add("h0's packets, counter moved on, tag bits flipped", a["outsider"], "auth_failed", func(i int) []byte {
			p := bytes.Clone(captured[i%len(captured)])
			binary.BigEndian.PutUint64(p[encap.HeaderLen+20:], 1<<40+uint64(i)) // a counter never used: not a replay
			p[len(p)-1-i%encap.TagLen] ^= 1 << (i % 8)
			return p
		})
		add("h0's packets replayed", a["replayer"], "replayed", func(i int) []byte { return captured[i%len(captured)] })
	}

	// The inner packet, behind a valid tunnel header: from the insider, whose packets are
	// authentic in the authenticated form (its own sending instance, which is legitimate
	// for a configured source that holds the secret), and, in the plain form, from the
	// outsider forging h0's address too.
	var seal func(inner []byte, h encap.Header) []byte
	if authenticated {
		insider, err := auth.NewSealer(encap.NextEpoch(time.Now().UnixNano(), 0), false)
		if err != nil {
			t.Fatal(err)
		}
		seal = func(inner []byte, h encap.Header) []byte { return sealWith(insider, inner, h) }
	} else {
		seal = func(inner []byte, h encap.Header) []byte { return plain(h.Key, inner)(int(h.Seq)) }
	}
	for _, in := range hostileInners(h2Addr, h1Addr) {
		add(in.name, a["insider"], in.counter, func(i int) []byte { return seal(in.pkt, encap.Header{Seq: uint32(i)}) })
	}
	add("wrong key, valid tunnel packet", a["insider"], "wrong_key", func(i int) []byte { return seal(valid, encap.Header{Key: 99, Seq: uint32(i)}) })
	if authenticated {
		add("valid packet, tag bits flipped", a["insider"], "auth_failed", func(i int) []byte {
			p := seal(valid, encap.Header{Seq: uint32(i)})
			p[len(p)-1-i%encap.TagLen] ^= 1 << (i % 8)
			return p
		})
		// Last: the insider's current run is known by now, so an earlier one is a replay.
		earlier, err := auth.NewSealer(encap.NextEpoch(time.Now().UnixNano(), 0)-uint64(time.Hour), false)
		if err != nil {
			t.Fatal(err)
		}
		add("an earlier run of the insider (older epoch)", a["insider"], "replayed", func(i int) []byte {
			return sealWith(earlier, valid, encap.Header{Seq: uint32(i)})
		})
	} else {
		for _, in := range hostileInners(h0Addr, h1Addr) {
			if in.counter != "too_big" { // a raw socket cannot send more than the link's MTU
				add(in.name, a["outsider"], in.counter, plain(0, in.pkt))
			}
		}
	}
	return kinds
}

// innerKind is an inner packet the member must refuse, and the drop reason.
type innerKind struct {
	name, counter string
	pkt           []byte
}

// hostileInners are the inner packets a member must never inject, each otherwise valid so
// that exactly one check refuses it. src is the inner source address; member the member's.
func hostileInners(src, member netip.Addr) []innerKind {
	payload := hostilePayload(64)
	to := netip.AddrPortFrom(group, 65535)
	udp := func(src netip.Addr, dst netip.AddrPort, n int) []byte {
		return encaptest.UDPPacket(src, dst, hostilePayload(n))
	}
	fix := func(b []byte, f func(b []byte)) []byte {
		f(b)
		encaptest.SetHeaderChecksum(b)
		return b
	}
	frag := func(b []byte, word uint16) []byte {
		return fix(b, func(b []byte) { binary.BigEndian.PutUint16(b[6:], word) })
	}
	ipv6 := make([]byte, 40+8+len(payload))
	ipv6[0] = 0x60
	binary.BigEndian.PutUint16(ipv6[4:], uint16(8+len(payload)))
	ipv6[6], ipv6[7] = 17, 8
	copy(ipv6[8:], netip.MustParseAddr("fe80::1").AsSlice())
	copy(ipv6[24:], netip.MustParseAddr("ff02::1").AsSlice())
	binary.BigEndian.PutUint16(ipv6[42:], 65535)
	binary.BigEndian.PutUint16(ipv6[44:], uint16(8+len(payload)))
	copy(ipv6[48:], payload)

	options := encaptest.UDPPacket(src, to, payload)
	options = append(append(append([]byte{}, options[:20]...), 0x94, 0x04, 0, 0), options[20:]...) // router alert
	options = fix(options, func(b []byte) {
		b[0] = 0x46
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	})
	igmp := []byte{0x16, 0, 0, 0, 224, 1, 2, 3} // IGMPv2 membership report for the group
	binary.BigEndian.PutUint16(igmp[2:], encap.Checksum(0, igmp))

	return []innerKind{
		{"unicast to the member's own address", "not_multicast", udp(src, netip.AddrPortFrom(member, 65535), 64)},
		{"broadcast 255.255.255.255", "not_multicast", udp(src, netip.MustParseAddrPort("255.255.255.255:65535"), 64)},
		{"the member's subnet broadcast", "not_multicast", udp(src, netip.AddrPortFrom(netip.MustParseAddr("198.18.2.255"), 65535), 64)},
		{"IPv6", "not_ipv4", ipv6},
		{"empty inner packet", "not_ipv4", nil},
		{"lying length: longer than the packet", "malformed", fix(udp(src, to, 64), func(b []byte) { binary.BigEndian.PutUint16(b[2:], uint16(len(b)+100)) })},
		{"lying length: shorter than the packet", "malformed", fix(udp(src, to, 64), func(b []byte) { binary.BigEndian.PutUint16(b[2:], uint16(len(b)-30)) })},
		{"bad header checksum", "malformed", func() []byte { b := udp(src, to, 64); b[10] ^= 0xff; return b }()},
		{"IP options (router alert)", "ip_options", options},
		{"fragment with more to come, not a multiple of 8", "bad_fragment", frag(udp(src, to, 61), 0x2000)},
		{"fragment past 64 KiB", "bad_fragment", frag(udp(src, to, 64), 0x2000|8190)},
		{"first fragment too short for its UDP header", "bad_fragment", frag(encaptest.IPv4Packet(src, group, 17, nil), 0x2000)},
		{"larger than the TUN MTU (1501 bytes)", "too_big", udp(src, to, 1501-28)},
		{"larger than the TUN MTU (4000 bytes)", "too_big", udp(src, to, 4000-28)},
		{"IGMP report", "igmp", encaptest.IPv4Packet(src, group, encap.ProtoIGMP, igmp)},
		{"a group the member does not allow", "group_not_allowed", udp(src, netip.MustParseAddrPort("224.9.9.9:65535"), 64)},
		{"source a multicast address", "bad_source", udp(netip.MustParseAddr("224.0.0.1"), to, 64)},
		{"source 0.0.0.0", "bad_source", udp(netip.IPv4Unspecified(), to, 64)},
		{"source loopback", "bad_source", udp(netip.MustParseAddr("127.0.0.1"), to, 64)},
		{"source 255.255.255.255", "bad_source", udp(netip.MustParseAddr("255.255.255.255"), to, 64)},
	}
}

// hostilePayload is n bytes that are no stream payload: an application that got one would
// count it bad.
func hostilePayload(n int) []byte {
	return bytes.Repeat([]byte("hostile!"), n/8+1)[:n]
}

// sealWith seals inner as an authenticated tunnel packet in a fresh buffer.
func sealWith(s *encap.Sealer, inner []byte, h encap.Header) []byte {
	buf := make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
	copy(buf[encap.Headroom:], inner)
	return s.Seal(buf, len(inner), h)
}

// forgedAuth is a packet in the authenticated form with the given epoch, a random instance
// and counter, and a random tag: what an outsider without the secret can make.
func forgedAuth(epoch uint64, inner []byte) []byte {
	p := make([]byte, encap.HeaderLen+encap.AuthHeaderLen, encap.HeaderLen+encap.AuthHeaderLen+len(inner)+encap.TagLen)
	encap.PutHeader(p, encap.Header{})
	binary.BigEndian.PutUint16(p[2:], 0x88b5)
	p[encap.HeaderLen] = 1 // version
	binary.BigEndian.PutUint64(p[encap.HeaderLen+4:], epoch)
	rand.Read(p[encap.HeaderLen+12 : encap.HeaderLen+28]) // instance, counter
	p = append(p, inner...)
	tag := make([]byte, encap.TagLen)
	rand.Read(tag)
	return append(p, tag...)
}

// attack sends every kind's packets, each attacker in its own goroutine, one packet of each
// of its kinds per round, at attackRoundRate rounds a second, for rounds from to to, or
// attackLimit, whichever ends first.
func attack(kinds []*hostileKind, from, to int) {
	byAttacker := map[*attacker][]*hostileKind{}
	for _, k := range kinds {
		byAttacker[k.by] = append(byAttacker[k.by], k)
	}
	start := time.Now()
	deadline := start.Add(attackLimit)
	var wg sync.WaitGroup
	for _, ks := range byAttacker {
		wg.Go(func() {
			for r := from; r < to && time.Now().Before(deadline); r++ {
				for _, k := range ks {
					if err := k.by.send(k.packet(r)); err != nil {
						k.errs++
						if k.firstEr == nil {
							k.firstEr = err
						}
						continue
					}
					k.sent++
				}
				if d := time.Until(start.Add(time.Duration(r+1-from) * time.Second / attackRoundRate)); d > 0 {
					time.Sleep(d)
				}
			}
		})
	}
	wg.Wait()
}

// kindSent is how many packets were sent of the kinds with the given counter.
func kindSent(kinds []*hostileKind, counter string) int {
	n := 0
	for _, k := range kinds {
		if k.counter == counter {
			n += k.sent
		}
	}
	return n
}

// watcher is an application on a host that binds a port on every address, joins some
// groups, and notes the destination of whatever it receives (IP_PKTINFO): unicast to the
// host, broadcast, and the multicast of the groups it joined (IP_MULTICAST_ALL off: no
// other group).
type watcher struct {
	conn  *net.UDPConn
	done  chan struct{}
	got   map[netip.Addr]int // datagrams by destination
	from  map[netip.Addr]netip.Addr
	first map[netip.Addr][]byte
}

func listenWatcher(t *testing.T, h *topo.Host, port int, groups ...netip.Addr) *watcher {
	t.Helper()
	wt := &watcher{done: make(chan struct{}), got: map[netip.Addr]int{}, from: map[netip.Addr]netip.Addr{}, first: map[netip.Addr][]byte{}}
	var pc *ipv4.PacketConn
	err := h.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
					unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0))
			})
			return errors.Join(err, serr)
		}}
		c, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			return err
		}
		wt.conn = c.(*net.UDPConn)
		pc = ipv4.NewPacketConn(wt.conn)
		for _, g := range groups {
			if err := pc.JoinGroup(nil, &net.UDPAddr{IP: g.AsSlice()}); err != nil {
				return fmt.Errorf("join %v: %w", g, err)
			}
		}
		return pc.SetControlMessage(ipv4.FlagDst, true)
	})
	if err != nil {
		t.Fatalf("%s: watcher on port %d: %v", h, port, err)
	}
	go func() {
		defer close(wt.done)
		buf := make([]byte, 65536)
		for {
			n, cm, src, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var dst netip.Addr
			if cm != nil {
				dst, _ = netip.AddrFromSlice(cm.Dst.To4())
			}
			if wt.got[dst] == 0 {
				from, _ := netip.AddrFromSlice(src.(*net.UDPAddr).IP.To4())
				wt.from[dst], wt.first[dst] = from, slices.Clone(buf[:min(n, 32)])
			}
			wt.got[dst]++
		}
	}()
	t.Cleanup(wt.stop)
	return wt
}

// stop closes the socket; got, from and first are then complete.
func (wt *watcher) stop() {
	wt.conn.Close()
	<-wt.done
}
