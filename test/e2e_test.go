//go:build e2e

package test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mctun/encap"
	"mctun/encap/encaptest"
	"mctun/test/mcapp"
	"mctun/test/stream"
	"mctun/test/topo"
)

var group = netip.MustParseAddr("224.1.2.3")

// checkStream asserts that a receiver got every one of n datagrams exactly once, byte for
// byte, from the source host. On failure it logs every host's mctun status, which says where
// packets went missing.
func (w *world) checkStream(who string, rep stream.RecvReport, n int, from string) {
	w.t.Helper()
	if rep.Unique != uint64(n) || rep.Duplicates != 0 || rep.Bad != 0 || rep.Senders[from] != uint64(n) || len(rep.Senders) != 1 {
		w.t.Errorf("%s received %d unique of %d, %d duplicates, %d bad, senders %v, %d kernel drops; want all %d from %s once, intact",
			who, rep.Unique, n, rep.Duplicates, rep.Bad, rep.Senders, rep.KernelDrops, n, from)
		for _, h := range w.hosts {
			w.t.Logf("%s: mctun stats: %v", h, w.mctun(h, "stats"))
		}
	}
}

// maxReordered is how many packets of a flow a receiver may count as reordered when the
// source sends on datapath dp. The kernel path leaves some packets to user space (a member's
// next hop not yet resolved, a datagram too big, ...) and forwards the next ones itself: a
// packet user space has numbered can be overtaken by the kernel's next, which leaves at once.
// It still arrives, late. User space alone sends from one thread, in order.
func maxReordered(dp string) uint64 {
	if dp == "kernel" {
		return 10
	}
	return 0
}

// 1. Without mctun the topology drops multicast: the problem mctun exists to solve.
func TestWithoutMctunNothingArrives(t *testing.T) {
	w := newWorld(t, 4)
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Idle: time.Second, Timeout: 3 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: 200, Rate: 1000})
	for i, rep := range w.reports(rs) {
		if rep.Received != 0 {
			t.Errorf("%s received %d datagrams without mctun: the router forwards multicast, the test world is wrong", w.mbrs[i], rep.Received)
		}
	}
}

// 2. With mctun up everywhere every member receives a stream of 10,000 datagrams, byte for
// byte, with the source host as sender; tcpdump on the TUN shows them as native multicast.
func TestWorkedExample(t *testing.T) { onEachDatapath(t, testWorkedExample) }

func testWorkedExample(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	w.upWorkedExample()
	const n = 10000
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
	dump := startTcpdump(t, w, w.mbrs[0], "mctun0", 5)
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 1000, Rate: 5000})
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
	}
	for _, m := range w.mbrs {
		if f := w.status(m).flow("198.18.1.2", "224.1.2.3"); f.Packets != n || f.Lost != 0 || f.Duplicates != 0 {
			t.Errorf("%s mctun status: flow %+v, want %d packets, none lost", m, f, n)
		}
	}
	st := w.status(w.src)
	g := st.Source.Stats.Groups[0]
	if g.Packets != n || len(g.Members) != 3 {
		t.Errorf("source mctun status: group %+v, want %d packets to 3 members", g, n)
	}
	// All but the first few, sent before the router's address was resolved.
	for _, h := range w.hosts[:4] {
		w.checkInKernel(h, n-100)
	}
	for _, m := range g.Members {
		if m.Packets != n || m.Errors != 0 {
			t.Errorf("source mctun status: member %+v, want %d packets, no errors", m, n)
		}
	}
	for _, line := range dump() {
		if !strings.Contains(line, "198.18.1.2.") || !strings.Contains(line, "> 224.1.2.3.65535: UDP, length 1000") {
			t.Errorf("tcpdump -i mctun0: %q, want the stream as native multicast from 198.18.1.2", line)
		}
	}
}

// startTcpdump starts tcpdump -c count on iface in h and returns a function that waits for
// the lines it printed.
func startTcpdump(t *testing.T, w *world, h *topo.Host, iface string, count int) func() []string {
	t.Helper()
	cmd := h.Command(w.ctx, "tcpdump", "-i", iface, "-n", "-l", "-c", fmt.Sprint(count), "udp")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	listening := bufio.NewScanner(errs)
	for listening.Scan() && !strings.Contains(listening.Text(), "listening on") {
	}
	go func() {
		for listening.Scan() {
		}
	}()
	return func() []string {
		var lines []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		cmd.Wait()
		if len(lines) != count {
			t.Errorf("tcpdump -i %s printed %d packets, want %d", iface, len(lines), count)
		}
		return lines
	}
}

// 3. A full-size datagram and one the sender's kernel fragments arrive whole.
func TestLargeDatagrams(t *testing.T) { onEachDatapath(t, testLargeDatagrams) }

func testLargeDatagrams(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	w.upWorkedExample()
	for _, size := range []int{1472, 8000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			const n = 300
			rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Size: size, Idle: 3 * time.Second, Timeout: time.Minute})
			w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: size, Rate: 1000})
			for i, rep := range w.reports(rs) {
				w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
			}
		})
	}
}

// 3b. What an application hands the kernel as one send of several datagrams (UDP_SEGMENT,
// GSO) arrives as those datagrams, each whole, on the kernel path, where user space gets them
// from the hand-off one by one. The user-space path's capture cannot take them (its frames
// hold one packet of the MTU): it counts them as too long, and forwards none.
func TestSegmentedSends(t *testing.T) { onEachDatapath(t, testSegmentedSends) }

func testSegmentedSends(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	w.upWorkedExample()
	const sends, segs, size = 50, 4, 1000
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: sends * segs, Size: size, Idle: 3 * time.Second, Timeout: 8 * time.Second})
	err := w.src.Do(func() error {
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		if cerr := raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, size) }); cerr != nil {
			return cerr
		}
		if err != nil {
			return fmt.Errorf("UDP_SEGMENT: %w", err)
		}
		buf := make([]byte, segs*size)
		for i := range sends {
			for j := range segs {
				stream.Encode(buf[j*size:(j+1)*size], uint64(i*segs+j), time.Now().UnixNano())
			}
			if _, err := c.WriteToUDPAddrPort(buf, netip.AddrPortFrom(group, 65535)); err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("h0: segmented sends: %v", err)
	}
	src := w.status(w.src).Source
	if dp == "user" { // the capture's frames hold one packet of the MTU: it counts them, lost
		for _, rep := range w.reports(rs) {
			if rep.Received != 0 {
				t.Errorf("received %d datagrams of segmented sends on the user-space path, which cannot take them whole", rep.Received)
			}
		}
		if c := src.Captures[0]; c.Truncated != sends {
			t.Errorf("h0: capture %+v, want the %d segmented sends counted as too long", c, sends)
		}
		return
	}
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name, rep, sends*segs, "198.18.1.2")
	}
	if n := src.Kernel.Paths["user_gso"]; n != sends {
		t.Errorf("h0: %d GSO packets left to user space, want %d", n, sends)
	}
}

// 4. Any IP protocol: VRRP (protocol 112 to 224.0.0.18) as keepalived sends it.
func TestVRRP(t *testing.T) { onEachDatapath(t, testVRRP) }

func testVRRP(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	w.upAll(memberConfig, `
[source]
[[source.group]]
address = "224.0.0.18"
members = ["198.18.2.2", "198.18.3.2", "198.18.4.2"]
`)
	vrrp := netip.MustParseAddr("224.0.0.18")
	const n = 100
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: vrrp, Proto: 112, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: vrrp, Proto: 112, Count: n, Size: 40, Rate: 500, TTL: 255})
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
	}
}

// 5. Only configured groups and ports are forwarded; the source counts the rest, which user
// space takes from the capture or, on the kernel path, from the hand-off.
func TestUnconfiguredNotForwarded(t *testing.T) { onEachDatapath(t, testUnconfiguredNotForwarded) }

func testUnconfiguredNotForwarded(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	w.upWorkedExample()
	m := w.mbrs[:1]
	configured := w.receive(m, mcapp.RecvOptions{Group: group, Port: 65535, Count: 100, Size: 500, Idle: time.Second, Timeout: 4 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: 100, Size: 500, Rate: 1000})
	w.checkStream(m[0].Name, w.reports(configured)[0], 100, "198.18.1.2")
	other := w.receive(m, mcapp.RecvOptions{Group: netip.MustParseAddr("224.1.2.4"), Port: 65535, Idle: time.Second, Timeout: 4 * time.Second})
	otherPort := w.receive(m, mcapp.RecvOptions{Group: group, Port: 5000, Idle: time.Second, Timeout: 4 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: netip.MustParseAddr("224.1.2.4"), Port: 65535, Count: 100, Rate: 1000})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 5000, Count: 100, Rate: 1000})
	for _, rep := range w.reports(append(other, otherPort...)) {
		if rep.Received != 0 {
			t.Errorf("received %d datagrams of an unconfigured group or port", rep.Received)
		}
	}
	src := w.status(w.src).Source
	if d := src.Stats.Drops["no_group"]; d != 200 {
		t.Errorf("source drops no_group = %d, want 200", d)
	}
	// User space took them: the capture all 300, the hand-off only the 200 and what the
	// kernel path left it of the group's (its first packet, while a next hop was unknown).
	wantPackets, wantVia := uint64(300), ""
	if dp == "kernel" {
		wantPackets, wantVia = 200, "mctun-handoff"
		for path, n := range src.Kernel.Paths {
			if strings.HasPrefix(path, "user_") {
				wantPackets += n
			}
		}
		t.Logf("h0's kernel path: %v", src.Kernel.Paths)
	}
	if c := src.Captures[0]; c.Packets != wantPackets || c.KernelDrop != 0 || c.Via != wantVia {
		t.Errorf("source capture %+v, want %d packets, none dropped, via %q (kernel paths %v)", c, wantPackets, wantVia, src.Kernel)
	}
	if f := w.status(w.mbrs[0]).Member.Stats.Flows; len(f) != 1 || f[0].Group != group || f[0].Packets != 100 {
		t.Errorf("member flows = %+v, want the configured group's alone", f)
	}
}

// 6. Tunnel packets that must not be delivered: from an address not in sources, with a wrong
// key, carrying a unicast inner packet, truncated. None reaches the application (which,
// bound to the port on every address, would see even a unicast one), and each drop counter
// moves by exactly one.
func TestBadTunnelPacketsDropped(t *testing.T) { onEachDatapath(t, testBadTunnelPacketsDropped) }

func testBadTunnelPacketsDropped(t *testing.T, dp string) {
	w := newWorldOn(t, 5, dp)
	member, attacker := w.mbrs[0], w.hosts[4]
	w.up(member, memberConfig)
	rs := w.receive([]*topo.Host{member}, mcapp.RecvOptions{Group: group, Port: 65535, Idle: 2 * time.Second, Timeout: 5 * time.Second})

	good := encaptest.UDPPacket(w.src.Addr, netip.AddrPortFrom(group, 65535), make([]byte, 100))
	tunnel := func(key uint32, inner []byte) []byte {
		var hdr [encap.HeaderLen]byte
		encap.PutHeader(hdr[:], encap.Header{Key: key})
		return append(hdr[:], inner...)
	}
	unicast := encaptest.UDPPacket(w.src.Addr, netip.AddrPortFrom(member.Addr, 65535), make([]byte, 100))
	dst := netip.AddrPortFrom(member.Addr, 4754)
	sendFrom(t, attacker, dst, tunnel(0, good))                   // unknown_source
	sendFrom(t, w.src, dst, tunnel(99, good))                     // wrong_key
	sendFrom(t, w.src, dst, tunnel(0, unicast))                   // not_multicast
	sendFrom(t, w.src, dst, tunnel(0, good)[:6])                  // bad_tunnel_header
	sendFrom(t, w.src, dst, tunnel(0, good)[:encap.HeaderLen+40]) // malformed: total length says more

	rep := w.reports(rs)[0]
	if rep.Received != 0 {
		t.Errorf("the application received %d datagrams from bad tunnel packets", rep.Received)
	}
	drops := w.status(member).Member.Stats.Drops
	for _, reason := range []string{"unknown_source", "wrong_key", "not_multicast", "bad_tunnel_header", "malformed"} {
		if drops[reason] != 1 {
			t.Errorf("drops[%s] = %d, want 1 (all drops: %v)", reason, drops[reason], drops)
		}
	}
	w.checkJudgedInKernel(member)
}

// sendFrom sends one UDP datagram from host h to dst, as a tunnel socket does.
func sendFrom(t *testing.T, h *topo.Host, dst netip.AddrPort, payload []byte) {
	t.Helper()
	c := tunnelSocket(t, h)
	defer c.Close()
	if _, err := c.WriteToUDPAddrPort(payload, dst); err != nil {
		t.Fatalf("%s: send to %v: %v", h, dst, err)
	}
}

// tunnelSocket opens a UDP socket in h's namespace that sends as mctun's tunnel does: with a
// UDP checksum of 0 (SO_NO_CHECK). The kernel path's receiver judges such a packet itself;
// one with a checksum that no device verified, as a socket's packets through a veth are, it
// leaves to the stack and user space (user_checksum), so a test sending those would not
// test the kernel path's checks.
func tunnelSocket(t *testing.T, h *topo.Host) *net.UDPConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) }); cerr != nil {
			return cerr
		}
		return err
	}}
	var c *net.UDPConn
	if err := h.Do(func() error {
		pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:0")
		if err == nil {
			c = pc.(*net.UDPConn)
		}
		return err
	}); err != nil {
		t.Fatalf("%s: %v", h, err)
	}
	return c
}

// 7. down leaves every host as it was, also on a source host that had no multicast route;
// up after kill -9 of the daemon cleans up and works.
func TestDownRestoresHost(t *testing.T) { onEachDatapath(t, testDownRestoresHost) }

func testDownRestoresHost(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	// h0 reaches the members by a route to 198.18.0.0/15 instead of a default route, so
	// nothing carries 224.0.0.0/4 there: mctun must add the route, and take it away again.
	if _, err := w.src.Run(w.ctx, "sh", "-c", "ip route del default && ip route add 198.18.0.0/15 via 198.18.1.1"); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, h := range w.hosts {
		before[h.Name] = w.snapshot(h)
	}
	srcCfg := w.writeConfig(w.src, strings.Replace(sourceConfig, "[source]", "[source]\ninterface = \"eth0\"", 1))
	mbrCfg := w.writeConfig(w.mbrs[0], memberConfig)
	upAll := func() {
		for _, m := range w.mbrs {
			if r := w.mctun(m, "up", "-c", mbrCfg); r.code != 0 {
				t.Fatalf("%s: mctun up: %v", m, r)
			}
		}
		if r := w.mctun(w.src, "up", "-c", srcCfg); r.code != 0 {
			t.Fatalf("h0: mctun up: %v", r)
		}
	}
	downAll := func() {
		for _, h := range w.hosts {
			if r := w.mctun(h, "down"); r.code != 0 {
				t.Fatalf("%s: mctun down: %v", h, r)
			}
		}
	}
	killAll := func() { // kill -9 every daemon
		for _, h := range w.hosts[:4] {
			if err := exec.Command("kill", "-9", fmt.Sprint(w.status(h).PID)).Run(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	stream := func(n int) {
		rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
		w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Rate: 2000})
		for i, rep := range w.reports(rs) {
			w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
		}
	}
	checkRestored := func(when string) {
		for _, h := range w.hosts {
			if after := w.snapshot(h); after != before[h.Name] {
				t.Errorf("%s: host changed %s:\nbefore:\n%s\nafter:\n%s", h, when, before[h.Name], after)
			}
		}
	}

	upAll()
	if out, _ := w.src.Run(w.ctx, "ip", "route", "show", "224.0.0.0/4"); !strings.Contains(out, "dev eth0") {
		t.Errorf("source without a multicast route: ip route show 224.0.0.0/4 = %q, want mctun's route out of eth0", out)
	}
	if dp == "kernel" { // what the kernel leaves user space comes through the hand-off, not a capture
		if out, err := w.src.Run(w.ctx, "ip", "-d", "link", "show", "mctun-handoff"); err != nil || !strings.Contains(out, "tun type tun") {
			t.Errorf("h0: ip -d link show mctun-handoff: %v %q, want the hand-off TUN", err, out)
		}
		if out, _ := w.src.Run(w.ctx, "cat", "/proc/net/packet"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("h0 has packet sockets open on the kernel path:\n%s", out)
		}
	}
	stream(500)
	downAll()
	checkRestored("after up, traffic, down")

	// kill -9 every daemon, then up again: it cleans up after the dead instance and forwards.
	upAll()
	killAll()
	for _, h := range w.hosts[:4] {
		if r := w.mctun(h, "status"); r.code != 3 || !strings.Contains(r.stdout, "did not stop cleanly") {
			t.Errorf("%s: mctun status after kill -9: %v; want exit 3 and a word on the leftovers", h, r)
		}
	}
	upAll()
	stream(500)
	downAll()
	checkRestored("after kill -9, up, down")

	// The TUN outlives a killed daemon (for the next one to take over); down alone removes it
	// with the rest.
	upAll()
	killAll()
	downAll()
	checkRestored("after kill -9, down")
}

// 7b. On a source host whose multicast leaves by the default route, as on most hosts with one
// interface, mctun routes it out of the source interface by a route of its own, with the
// source address it had: the kernel caches the output route of a multicast destination only
// under such a route, and by the default route builds and frees one for every datagram.
// Removed by hand (or by a network manager), it comes back; down takes it away.
func TestSourceMulticastRoute(t *testing.T) { onEachDatapath(t, testSourceMulticastRoute) }

func testSourceMulticastRoute(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	before := w.snapshot(w.src)
	for _, m := range w.mbrs {
		w.up(m, memberConfig)
	}
	if r := w.mctun(w.src, "up", "-c", w.writeConfig(w.src, sourceConfig)); r.code != 0 {
		t.Fatalf("h0: mctun up: %v", r)
	}
	const want = "224.0.0.0/4 dev eth0 proto 147 scope link src 198.18.1.2"
	show := func() string { return strings.TrimSpace(w.run(w.src, "ip", "route", "show", "224.0.0.0/4").stdout) }
	if got := show(); got != want {
		t.Errorf("h0, its multicast by the default route: ip route show 224.0.0.0/4: %q, want %q", got, want)
	}
	if r := w.run(w.src, "ip", "route", "del", "224.0.0.0/4"); r.code != 0 {
		t.Fatalf("h0: ip route del 224.0.0.0/4: %v", r)
	}
	if !poll(10*time.Second, func() bool { return show() == want }) {
		t.Errorf("h0: its route removed by hand: ip route show 224.0.0.0/4: %q 10s later, want %q back", show(), want)
	}
	const n = 500
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 1000, Rate: 2000})
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
	}
	if r := w.mctun(w.src, "down"); r.code != 0 {
		t.Fatalf("h0: mctun down: %v", r)
	}
	if after := w.snapshot(w.src); after != before {
		t.Errorf("h0: host changed after up, traffic, down:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// 8. Each bad config is refused with a message naming what is wrong, and the host is left
// unchanged; so are a start that fails on the host itself.
func TestBadConfigRefused(t *testing.T) {
	w := newWorld(t, 4)
	h := w.mbrs[0]
	// A TUN that someone else made: mctun must refuse its name and leave it alone.
	if _, err := h.Run(w.ctx, "ip", "tuntap", "add", "mode", "tun", "name", "theirs0"); err != nil {
		t.Fatal(err)
	}
	before := w.snapshot(h)
	tests := []struct {
		name, config, want string
		code               int
	}{
		{"not multicast", "[source]\n[[source.group]]\naddress = \"10.1.1.1\"\nmembers = [\"198.18.2.2\"]\n",
			"h1.toml:3: source.group[0].address: 10.1.1.1 is not a multicast address", 2},
		{"bad member", "[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.2\"]\n",
			"source.group[0].members[0]", 2},
		{"multicast member", "[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"224.1.1.1\"]\n",
			"source.group[0].members[0]: 224.1.1.1", 2},
		{"port 0", "port = 0\n[member]\nsources = [\"198.18.1.2\"]\n", "h1.toml:1: port", 2},
		{"port too big", "[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nport = 70000\nmembers = [\"198.18.2.2\"]\n",
			"h1.toml:4: source.group[0].port", 2},
		{"empty members", "[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = []\n",
			"source.group[0].members", 2},
		{"unknown key", "[member]\nsources = [\"198.18.1.2\"]\nsoruces = [\"198.18.1.3\"]\n", "h1.toml:3: member.soruces", 2},
		{"no role", "key = 1\n", "no [source] or [member] table", 2},
		{"tun name too long", "[member]\ntun = \"mctun-much-too-long\"\nsources = [\"198.18.1.2\"]\n", "h1.toml:2: member.tun", 2},
		{"duplicate group and port", "[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nport = 5\nmembers = [\"198.18.2.2\"]\n" +
			"[[source.group]]\naddress = \"224.1.2.3\"\nport = 5\nmembers = [\"198.18.3.2\"]\n", "source.group[1]", 2},
		// Valid files that the host cannot take: refused just as cleanly.
		{"no such interface", "[source]\ninterface = \"eth9\"\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.2.2\"]\n",
			"eth9", 1},
		{"tun name taken", "[member]\ntun = \"theirs0\"\nsources = [\"198.18.1.2\"]\n", "tun: create theirs0: an interface of that name already exists", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := w.mctun(h, "up", "-c", w.writeConfig(h, tt.config))
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("mctun up: %v\nwant exit %d and a message containing %q", r, tt.code, tt.want)
			}
			if r := w.mctun(h, "status"); r.code != 3 {
				t.Errorf("mctun status after a refused up: %v; want exit 3", r)
			}
			if after := w.snapshot(h); after != before {
				t.Errorf("host changed by a refused up:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}

	// A member whose tunnel port is taken fails after it made the TUN and its route: it
	// must take them away again.
	t.Run("port in use", func(t *testing.T) {
		var blocker *net.UDPConn
		if err := h.Do(func() (err error) {
			blocker, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 4754})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer blocker.Close()
		r := w.mctun(h, "up", "-c", w.writeConfig(h, memberConfig))
		if r.code != 1 || !strings.Contains(r.stderr, "4754") || !strings.Contains(r.stderr, "address already in use") {
			t.Errorf("mctun up with the port taken: %v", r)
		}
		if after := w.snapshot(h); after != before {
			t.Errorf("host changed by a failed up:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// 9. Hosts that are source and member at once: h0 sends group A to h1 and h2 (and lists
// itself, as a config shared by all hosts would), h1 sends group B to h0. Every datagram is
// delivered exactly once and nothing loops.
func TestSourceAndMember(t *testing.T) { onEachDatapath(t, testSourceAndMember) }

func testSourceAndMember(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	h0, h1, h2 := w.hosts[0], w.hosts[1], w.hosts[2]
	groupB := netip.MustParseAddr("224.5.6.7")
	w.up(h0, `
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.1.2", "198.18.2.2", "198.18.3.2"]
[member]
sources = ["198.18.2.2"]
`)
	w.up(h1, `
[source]
[[source.group]]
address = "224.5.6.7"
port    = 6000
members = ["198.18.1.2"]
[member]
sources = ["198.18.1.2"]
`)
	w.up(h2, memberConfig)
	const n = 2000
	recvA := w.receive([]*topo.Host{h0, h1, h2}, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
	recvB := w.receive([]*topo.Host{h0}, mcapp.RecvOptions{Group: groupB, Port: 6000, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.send(h1, mcapp.SendOptions{Group: groupB, Port: 6000, Count: n, Size: 1000, Rate: 2000})
	}()
	w.send(h0, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 1000, Rate: 2000})
	<-done
	for i, rep := range w.reports(recvA) {
		w.checkStream([]string{"h0 (its own group)", "h1", "h2"}[i], rep, n, "198.18.1.2")
	}
	w.checkStream("h0 (group B)", w.reports(recvB)[0], n, "198.18.2.2")

	// No loop: each source sent each of its datagrams once, and captured nothing it had
	// injected.
	for _, h := range []*topo.Host{h0, h1} {
		st := w.status(h).Source.Stats
		if g := st.Groups[0]; g.Packets != n {
			t.Errorf("%s sent %d packets of %v, want %d", h, g.Packets, g.Address, n)
		}
		if st.Drops["no_group"] != 0 {
			t.Errorf("%s captured %d packets of no group: something it injected came back", h, st.Drops["no_group"])
		}
	}
	if m := w.status(h0).Source.Stats.Groups[0].Members; len(m) != 2 {
		t.Errorf("h0 sends group A to %v; want h1 and h2 only (not itself)", m)
	}
	// h0 sent its own group from its TUN's egress, and received group B, in the kernel.
	w.checkInKernel(h0, 2*n-200)
}

// 9b. The address of a host that is source and member changes (DHCP): its own multicast goes
// on leaving by the TUN, with the new address, which the kernel removed with the old one,
// and its tunnel packets come from the new address, as members see it, on both datapaths.
func TestSourceAddressChanges(t *testing.T) { onEachDatapath(t, testSourceAddressChanges) }

func testSourceAddressChanges(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	h0, h1 := w.hosts[0], w.hosts[1]
	w.up(h0, `
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2"]
[member]
sources = ["198.18.2.2"]
`)
	w.up(h1, `
[member]
sources = ["198.18.1.2", "198.18.1.9"]
`)
	// The new address first, promoted when the old one goes: the routes via eth0 stay.
	if err := h0.Sysctl("net.ipv4.conf.eth0.promote_secondaries", "1"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"addr", "add", "198.18.1.9/24", "dev", "eth0"}, {"addr", "del", "198.18.1.2/24", "dev", "eth0"}} {
		if r := w.run(h0, "ip", args...); r.code != 0 {
			t.Fatalf("%s: ip %v: %v", h0, args, r)
		}
	}
	want := "224.0.0.0/4 dev mctun0 proto 147 scope link src 198.18.1.9"
	var got string
	for deadline := time.Now().Add(10 * time.Second); got != want && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = strings.TrimSpace(w.run(h0, "ip", "route", "show", "224.0.0.0/4").stdout)
	}
	if got != want {
		t.Fatalf("%s: ip route show 224.0.0.0/4: %q, want %q", h0, got, want)
	}
	const n = 1000
	rs := w.receive([]*topo.Host{h1}, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(h0, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 1000, Rate: 2000})
	w.checkStream(h1.Name, w.reports(rs)[0], n, "198.18.1.9")
	st := w.status(h1)
	if f := st.flow("198.18.1.9", group.String()); f.Packets != n {
		t.Errorf("%s received %d tunnel packets from 198.18.1.9, want %d; flows %+v", h1, f.Packets, n, st.Member.Stats.Flows)
	}
	w.checkInKernel(h0, n-100)
}

// 9c. A member's TUN set down by hand (or by a network manager) and up again: while it is
// down, what arrives is dropped and counted as tun_write_failed on both datapaths, and the
// other members lose nothing; once it is up, mctun puts back the route the kernel removed
// with it, and an application that joins then receives again.
func TestTUNDownAndUp(t *testing.T) { onEachDatapath(t, testTUNDownAndUp) }

func testTUNDownAndUp(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	w.upWorkedExample()
	m0 := w.mbrs[0]
	ip := func(args ...string) string {
		t.Helper()
		r := w.run(m0, "ip", args...)
		if r.code != 0 {
			t.Fatalf("%s: ip %v: %v", m0, args, r)
		}
		return strings.TrimSpace(r.stdout)
	}
	ip("link", "set", "mctun0", "down")
	time.Sleep(200 * time.Millisecond) // for the kernel path to hear of it
	const n = 300
	rs := w.receive(w.mbrs[1:], mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 1000, Rate: 1000})
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[1+i].Name, rep, n, "198.18.1.2")
	}
	st := w.status(m0).Member
	if d := st.Stats.Drops["tun_write_failed"]; d != n {
		t.Errorf("%s, its TUN down: %d dropped as tun_write_failed, want %d; drops %v", m0, d, n, st.Stats.Drops)
	}
	if f := w.status(m0).flow("198.18.1.2", group.String()); f.Packets != 0 {
		t.Errorf("%s, its TUN down: %d counted delivered, want 0", m0, f.Packets)
	}

	ip("link", "set", "mctun0", "up")
	want := "224.0.0.0/4 dev mctun0 proto 147 scope link"
	var got string
	for deadline := time.Now().Add(10 * time.Second); got != want && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = ip("route", "show", "224.0.0.0/4")
	}
	if got != want {
		t.Fatalf("%s: the TUN up again: ip route show 224.0.0.0/4: %q, want %q", m0, got, want)
	}
	rs = w.receive([]*topo.Host{m0}, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 1000, Rate: 1000})
	w.checkStream(m0.Name+" (its TUN up again)", w.reports(rs)[0], n, "198.18.1.2")
	w.checkInKernel(m0, n-100)
}

// 10. Members whose kernel filters reverse paths strictly (1, the RHEL default) or loosely
// (2, the Ubuntu default) deliver too.
func TestReversePathFilter(t *testing.T) { onEachDatapath(t, testReversePathFilter) }

func testReversePathFilter(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	for i, mode := range []string{"1", "2", "0"} {
		for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"} {
			if err := w.mbrs[i].Sysctl(key, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.upWorkedExample()
	const n = 1000
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Rate: 2000})
	for i, rep := range w.reports(rs) {
		w.checkStream(fmt.Sprintf("%s (rp_filter=%d)", w.mbrs[i], []int{1, 2, 0}[i]), rep, n, "198.18.1.2")
	}
}

// mctun run is the daemon in the foreground, for systemd: SIGTERM stops it and undoes.
func TestRunForegroundSIGTERM(t *testing.T) {
	w := newWorld(t, 4)
	h := w.mbrs[0]
	before := w.snapshot(h)
	run := h.Command(w.ctx, mctunBin, "run", "-c", w.writeConfig(h, memberConfig))
	var logs strings.Builder
	run.Stderr = &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.mctun(h, "status").code != 0 {
		if time.Now().After(deadline) {
			run.Process.Kill()
			t.Fatalf("mctun run not up after 10s:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, _ := h.Run(w.ctx, "ip", "route", "show", "224.0.0.0/4"); !strings.Contains(out, "dev mctun0") {
		t.Errorf("mctun run: route 224.0.0.0/4 = %q, want dev mctun0", out)
	}
	run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Errorf("mctun run after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "stopped; host restored") {
		t.Errorf("mctun run's log does not say it restored the host:\n%s", logs.String())
	}
	if after := w.snapshot(h); after != before {
		t.Errorf("host changed by run + SIGTERM:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Only root (or CAP_NET_ADMIN) may change a running instance; anyone may look.
func TestUnprivilegedCannotChange(t *testing.T) {
	w := newWorld(t, 4)
	w.up(w.mbrs[0], memberConfig)
	asNobody := func(args ...string) result {
		return w.run(w.mbrs[0], "setpriv", append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all", mctunBin}, args...)...)
	}
	if r := asNobody("status"); r.code != 0 || !strings.Contains(r.stdout, "running") {
		t.Errorf("mctun status as nobody: %v; want the status", r)
	}
	if r := asNobody("down"); r.code == 0 || !strings.Contains(r.stderr, "not permitted") {
		t.Errorf("mctun down as nobody: %v; want refused", r)
	}
	if r := asNobody("up", "-c", w.writeConfig(w.mbrs[1], memberConfig)); r.code != 1 || !strings.Contains(r.stderr, "needs root") {
		t.Errorf("mctun up as nobody: %v; want refused, saying why", r)
	}
	if r := w.mctun(w.mbrs[0], "status"); r.code != 0 {
		t.Errorf("mctun no longer running after nobody's down: %v", r)
	}
}
