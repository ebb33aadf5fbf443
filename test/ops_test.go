//go:build e2e

package test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mctun/test/mcapp"
	"mctun/test/stream"
	"mctun/test/topo"
)

// The operator's own config for the source in these tests, comments and all: mctun must never
// rewrite it.
const commentedSource = `# ECS1, the source. Maintained by hand; mctun must keep these comments.
[source]
interface = "eth0" # the VPC-facing NIC

[[source.group]]   # market data
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2", "198.18.3.2", "198.18.4.2"]
`

// The management commands change a running source and member live, refuse what the
// operator's file defines, persist across a restart in the managed file, and never touch the
// operator's file.
func TestManagementCommands(t *testing.T) {
	w := newWorld(t, 4)
	w.upAll(memberConfig, commentedSource)
	cfgPath := filepath.Join(w.dir, "h0.toml")
	mustOK := func(h *topo.Host, args ...string) string {
		t.Helper()
		r := w.mctun(h, args...)
		if r.code != 0 {
			t.Fatalf("%s: mctun %s: %v", h, strings.Join(args, " "), r)
		}
		return r.stdout
	}
	mustFail := func(h *topo.Host, want string, args ...string) {
		t.Helper()
		r := w.mctun(h, args...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: mctun %s: %v\nwant a failure saying %q", h, strings.Join(args, " "), r, want)
		}
	}
	g2 := netip.MustParseAddr("224.5.5.5")
	streamTo := func(group netip.Addr, port int, receivers []*topo.Host, n int) []stream.RecvReport {
		rs := w.receive(receivers, mcapp.RecvOptions{Group: group, Port: port, Idle: time.Second, Timeout: 4 * time.Second})
		w.send(w.src, mcapp.SendOptions{Group: group, Port: port, Count: n, Rate: 2000})
		return w.reports(rs)
	}

	mustOK(w.src, "group", "add", "224.5.5.5", "--port", "6000", "--member", "198.18.2.2")
	mustOK(w.src, "member", "join", "224.5.5.5", "198.18.3.2,198.18.4.2")
	for i, rep := range streamTo(g2, 6000, w.mbrs, 200) {
		w.checkStream(w.mbrs[i].Name+" (managed group)", rep, 200, "198.18.1.2")
	}
	out := mustOK(w.src, "group", "show", "224.5.5.5")
	for _, m := range []string{"198.18.2.2", "198.18.3.2", "198.18.4.2", "h0.managed.toml"} {
		if !strings.Contains(out, m) {
			t.Errorf("group show lacks %s:\n%s", m, out)
		}
	}
	mustOK(w.src, "member", "quit", "224.5.5.5:6000", "198.18.4.2")
	if reps := streamTo(g2, 6000, w.mbrs[2:], 50); reps[0].Received != 0 {
		t.Errorf("h3 received %d datagrams after member quit", reps[0].Received)
	}

	var groups []struct {
		Group   string   `json:"group"`
		Members []string `json:"members"`
		Origin  string   `json:"origin"`
		Managed bool     `json:"managed"`
	}
	if err := json.Unmarshal([]byte(mustOK(w.src, "group", "list", "--json")), &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Managed || groups[0].Origin != cfgPath+":5" || !groups[1].Managed || len(groups[1].Members) != 2 {
		t.Errorf("group list --json = %+v", groups)
	}

	// What the operator's file defines is theirs; bad arguments are refused as the file's
	// validation refuses them; nothing changes either way.
	mustFail(w.src, "is in "+cfgPath+":5: edit it there, then mctun reload", "group", "del", "224.1.2.3")
	mustFail(w.src, "is in "+cfgPath+":5", "member", "join", "224.1.2.3:65535", "198.18.9.9")
	mustFail(w.src, "10.1.1.1 is not a multicast address", "group", "add", "10.1.1.1", "--member", "198.18.2.2")
	mustFail(w.src, "224.9.9.9 is a multicast address, not a host", "member", "join", "224.5.5.5", "224.9.9.9")
	mustFail(w.src, "out of range", "group", "add", "224.6.6.6", "--port", "70000", "--member", "198.18.2.2")
	mustFail(w.src, "would leave group 224.5.5.5:6000 without members", "member", "quit", "224.5.5.5", "198.18.2.2,198.18.3.2")
	mustFail(w.src, "no [member]", "source", "add", "198.18.9.9")
	mustFail(w.mbrs[0], "source 198.18.1.2 is in", "source", "del", "198.18.1.2")
	mustOK(w.mbrs[0], "source", "add", "198.18.5.2")
	if out := mustOK(w.mbrs[0], "source", "list"); !strings.Contains(out, "198.18.5.2") || !strings.Contains(out, "h1.managed.toml") {
		t.Errorf("source list after source add:\n%s", out)
	}

	// The managed groups and sources survive a restart; the operator's file is untouched.
	mustOK(w.src, "down")
	mustOK(w.src, "up", "-c", cfgPath)
	mustOK(w.mbrs[0], "down")
	mustOK(w.mbrs[0], "up", "-c", filepath.Join(w.dir, "h1.toml"))
	if out := mustOK(w.src, "group", "show", "224.5.5.5:6000"); !strings.Contains(out, "2 members") {
		t.Errorf("after a restart, group show 224.5.5.5:6000:\n%s", out)
	}
	if out := mustOK(w.mbrs[0], "source", "list"); !strings.Contains(out, "198.18.5.2") {
		t.Errorf("after a restart, source list:\n%s", out)
	}
	if data, _ := os.ReadFile(cfgPath); string(data) != commentedSource {
		t.Errorf("the operator's config changed:\n%s", data)
	}
	if r := w.mctun(w.src, "check", "-c", cfgPath); r.code != 0 || !strings.Contains(r.stdout, "# from h0.managed.toml") {
		t.Errorf("mctun check with the managed file: %v", r)
	}

	// Deleting a group changes nothing about the others.
	mustOK(w.src, "group", "del", "224.5.5.5")
	mustOK(w.src, "group", "clear")
	for i, rep := range streamTo(group, 65535, w.mbrs, 200) {
		w.checkStream(w.mbrs[i].Name+" (the file's group, after group del and clear)", rep, 200, "198.18.1.2")
	}
	mustOK(w.src, "down")
	mustFail(w.src, "not running", "group", "list")
	mustFail(w.src, "not running", "member", "join", "224.1.2.3", "198.18.9.9")
}

// 20,000 sequenced datagrams stream through reloads that add one group and remove another
// (by mctun reload and by SIGHUP): the unchanged group loses none and duplicates none.
// An invalid file, or a change only a restart can apply, changes nothing and says why.
func TestReloadLossless(t *testing.T) { onEachDatapath(t, testReloadLossless) }

func testReloadLossless(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	for _, m := range w.mbrs {
		w.up(m, memberConfig)
	}
	v1 := sourceConfig + `
[[source.group]]
address = "224.9.9.9"
port    = 5000
members = ["198.18.2.2"]
`
	v2 := sourceConfig + `
[[source.group]]
address = "224.7.7.7"
members = ["198.18.2.2", "198.18.3.2"]
`
	w.up(w.src, v1)
	pid := w.status(w.src).PID

	const n = 20000
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
	done := make(chan stream.SendReport)
	go func() {
		rep, _ := tools.Send(w.ctx, w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 200, Rate: 4000})
		done <- rep
	}()
	time.Sleep(time.Second)
	w.writeConfig(w.src, v2)
	r := w.mctun(w.src, "reload")
	if r.code != 0 || !strings.Contains(r.stdout, "+ group 224.7.7.7 (2 members)") || !strings.Contains(r.stdout, "- group 224.9.9.9:5000") {
		t.Errorf("mctun reload: %v", r)
	}
	time.Sleep(time.Second)
	w.writeConfig(w.src, v1)
	syscall.Kill(pid, syscall.SIGHUP)
	time.Sleep(time.Second)
	w.writeConfig(w.src, v2)
	r = w.mctun(w.src, "reload")
	if r.code != 0 {
		t.Errorf("second mctun reload: %v", r)
	}
	if sent := <-done; sent.Sent != n {
		t.Fatalf("mcsend sent %d of %d", sent.Sent, n)
	}
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name+" (group unchanged by the reloads)", rep, n, "198.18.1.2")
	}
	for _, m := range w.mbrs {
		if f := w.status(m).flow("198.18.1.2", "224.1.2.3"); f.Packets != n || f.Lost != 0 || f.Duplicates != 0 {
			t.Errorf("%s: flow through the reloads %+v, want %d packets, none lost or duplicated", m, f, n)
		}
	}
	log := w.log(w.src)
	if !strings.Contains(log, "msg=reloaded") || !strings.Contains(log, "+ group 224.7.7.7") {
		t.Errorf("the log does not record the reloads with their difference:\n%s", log)
	}

	// The added group works, the removed one is gone.
	added := w.receive(w.mbrs[:2], mcapp.RecvOptions{Group: netip.MustParseAddr("224.7.7.7"), Port: 7, Count: 100, Idle: time.Second, Timeout: 5 * time.Second})
	removed := w.receive(w.mbrs[:1], mcapp.RecvOptions{Group: netip.MustParseAddr("224.9.9.9"), Port: 5000, Idle: time.Second, Timeout: 3 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: netip.MustParseAddr("224.7.7.7"), Port: 7, Count: 100, Rate: 1000})
	w.send(w.src, mcapp.SendOptions{Group: netip.MustParseAddr("224.9.9.9"), Port: 5000, Count: 100, Rate: 1000})
	for i, rep := range w.reports(added) {
		w.checkStream(w.mbrs[i].Name+" (added group)", rep, 100, "198.18.1.2")
	}
	if rep := w.reports(removed)[0]; rep.Received != 0 {
		t.Errorf("the removed group still arrives: %d datagrams", rep.Received)
	}

	before := w.mctun(w.src, "group", "list").stdout
	for _, tt := range []struct{ config, want string }{
		{v2 + "\n[[source.group]]\naddress = \"10.0.0.1\"\nmembers = [\"198.18.2.2\"]\n", "10.0.0.1 is not a multicast address"},
		{"port = 4800\n" + v2, "port 4754 -> 4800: only a restart applies that"},
	} {
		w.writeConfig(w.src, tt.config)
		if r := w.mctun(w.src, "reload"); r.code == 0 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("mctun reload of a file it must refuse: %v\nwant %q", r, tt.want)
		}
		if after := w.mctun(w.src, "group", "list").stdout; after != before {
			t.Errorf("a refused reload changed the groups:\n%s\nthen:\n%s", before, after)
		}
	}
}

// Each counter moves when, and only when, its event happens: a normal stream moves no drop
// counter; a stalled member daemon's socket overflows (kernel drops, which the tunnel's
// sequence numbers see as the same loss); a stalled source daemon's ring overflows; a member
// the source cannot reach costs send errors to it alone.
func TestCountersMoveOnlyOnTheirEvent(t *testing.T) {
	onEachDatapath(t, testCountersMoveOnlyOnTheirEvent)
}

func testCountersMoveOnlyOnTheirEvent(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	w.upAll(memberConfig, strings.Replace(sourceConfig, `"198.18.4.2"]`, `"198.18.4.2", "198.18.77.7"]`, 1))
	if _, err := w.src.Run(w.ctx, "ip", "route", "add", "unreachable", "198.18.77.0/24"); err != nil {
		t.Fatal(err)
	}
	allZero := func(what string, counts map[string]uint64, except ...string) {
		t.Helper()
		for k, v := range counts {
			if v != 0 && !contains(except, k) {
				t.Errorf("%s: %s = %d, want 0", what, k, v)
			}
		}
	}

	const n = 1000
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Rate: 2000})
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
	}
	st := w.status(w.src)
	allZero("source drops", st.Source.Stats.Drops, "send_failed")
	for _, m := range st.Source.Stats.Groups[0].Members {
		unreachable := m.Address.Addr().String() == "198.18.77.7"
		if unreachable && (m.Errors != n || m.Packets != 0 || m.LastError == "") ||
			!unreachable && (m.Errors != 0 || m.Packets != n) {
			t.Errorf("source member counters %+v after %d packets", m, n)
		}
	}
	if d := st.Source.Stats.Drops["send_failed"]; d != n {
		t.Errorf("send_failed = %d, want %d (the unreachable member's)", d, n)
	}
	for _, m := range w.mbrs {
		st := w.status(m)
		allZero(m.Name+" drops", st.Member.Stats.Drops)
		if st.Member.SocketDrops != 0 {
			t.Errorf("%s: socket drops %d on an unhurried stream", m, st.Member.SocketDrops)
		}
	}
	if log := w.log(w.src); strings.Count(log, "member failing") != 1 {
		t.Errorf("the log should say once that 198.18.77.7 is failing, not per packet:\n%s", log)
	}

	// Stall h1's daemon. In user space its socket buffer overflows and the kernel counts the
	// drops; the tunnel's sequence numbers see the gap once a later packet arrives (the
	// tail): every packet the source sent h1 is then delivered or counted lost, and the
	// kernel's drops are among the lost. (What the source sent, not what mcsend did: on a
	// busy host the source's own capture ring can overflow at 10k packets/s, and a packet
	// dropped there never had a sequence number.) On the kernel path a stalled daemon costs
	// nothing: the kernel delivers.
	stall := func(h *topo.Host, send int) {
		t.Helper()
		pid := w.status(h).PID
		syscall.Kill(pid, syscall.SIGSTOP)
		w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: send, Size: 64, Rate: 10000})
		time.Sleep(300 * time.Millisecond) // for the last packets to reach h
		syscall.Kill(pid, syscall.SIGCONT)
		time.Sleep(500 * time.Millisecond) // for h to catch up
	}
	const burst, tail = 30000, 10
	stall(w.mbrs[0], burst)
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: tail, Rate: 100})
	time.Sleep(200 * time.Millisecond)
	st1 := w.status(w.mbrs[0])
	f := st1.flow("198.18.1.2", "224.1.2.3")
	drops := st1.Member.SocketDrops
	sentH1 := memberStats(w.status(w.src), w.mbrs[0].Addr).Packets
	switch {
	case dp == "kernel" && (f.Packets != n+burst+tail || f.Lost != 0 || drops != 0):
		t.Errorf("h1 stalled on the kernel path: %d delivered, %d lost, %d dropped by its socket; want all %d delivered", f.Packets, f.Lost, drops, n+burst+tail)
	case dp != "kernel" && (drops == 0 || f.Packets+uint64(f.Lost) != sentH1 || uint64(f.Lost) < drops):
		t.Errorf("h1 stalled: %d delivered, %d lost by sequence, %d dropped by its socket; want delivered + lost = %d (what the source sent it), and the drops among the lost",
			f.Packets, f.Lost, drops, sentH1)
	}
	if f.Reordered > maxReordered(dp) || f.Duplicates != 0 {
		t.Errorf("h1 stalled: %d reordered, %d duplicates, want none duplicated and at most %d reordered", f.Reordered, f.Duplicates, maxReordered(dp))
	}
	t.Logf("h1 stalled for %d packets: %d delivered, %d lost, of them %d in its socket", burst, f.Packets-n, f.Lost, drops)
	allZero("h1 drops after its stall", st1.Member.Stats.Drops)

	// Stall the source's daemon. In user space its capture ring overflows: every packet it
	// sent passed the ring's filter, so each was captured or dropped there. On the kernel
	// path the kernel sends them all.
	const stalled = 5000
	stall(w.src, stalled)
	src := w.status(w.src)
	capt, sent := src.Source.Captures[0], src.Source.Stats.Groups[0].Packets
	switch {
	case dp == "kernel" && (sent != n+burst+tail+stalled || capt.KernelDrop != 0):
		t.Errorf("source stalled on the kernel path: %d packets of the group sent, capture %+v; want all %d sent", sent, capt, n+burst+tail+stalled)
	case dp != "kernel" && (capt.KernelDrop == 0 || capt.Packets+capt.KernelDrop != n+burst+tail+stalled):
		t.Errorf("source stalled: capture %+v; want packets + kernel drops = %d, with drops", capt, n+burst+tail+stalled)
	}

	// A member added while mctun runs, with no route either, is said to fail too, and shows
	// as failing: the kernel path finds it has no route before the user-space sender knows it.
	if r := w.mctun(w.src, "group", "add", "224.5.5.5", "--port", "6000", "--member", "198.18.77.8"); r.code != 0 {
		t.Fatalf("group add: %s%s", r.stdout, r.stderr)
	}
	w.send(w.src, mcapp.SendOptions{Group: netip.MustParseAddr("224.5.5.5"), Port: 6000, Count: 10, Rate: 100})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		log := w.log(w.src)
		if slices.ContainsFunc(strings.Split(log, "\n"), func(l string) bool {
			return strings.Contains(l, "member failing") && strings.Contains(l, "198.18.77.8")
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after a member with no route was added: the log does not say it is failing:\n%s", log)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mctun dump writes pcap that tcpdump and tshark read, on a member (inner packets as
// delivered) and on the source (as sent), while forwarding goes on; unprivileged users may not.
func TestDump(t *testing.T) { onEachDatapath(t, testDump) }

func testDump(t *testing.T, dp string) {
	w := newWorldOn(t, 4, dp)
	w.upWorkedExample()
	h := w.mbrs[0]
	const n = 100
	pcap := filepath.Join(w.dir, "h1.pcap")
	dump := h.Command(w.ctx, mctunBin, "dump", "-w", pcap, "-c", fmt.Sprint(n), "--group", "224.1.2.3")
	var dumpErr strings.Builder
	dump.Stderr = &dumpErr
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	pipe := w.src.Command(w.ctx, "sh", "-c", fmt.Sprintf("%s dump -w - -c 5 | tcpdump -n -r - 2>/dev/null", mctunBin))
	var piped strings.Builder
	pipe.Stdout = &piped
	if err := pipe.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 300, Rate: 500})
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name+" (while dumping)", rep, n, "198.18.1.2")
	}
	if err := dump.Wait(); err != nil {
		t.Fatalf("mctun dump: %v: %s", err, dumpErr.String())
	}
	pipe.Wait()

	// An independent reader: tshark decodes the file; every packet is the stream's, in order,
	// byte for byte.
	out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport", "-e", "data.data").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != n {
		t.Fatalf("tshark reads %d packets from the dump, want %d", len(lines), n)
	}
	for i, line := range lines {
		f := strings.Split(line, "\t")
		payload, _ := hex.DecodeString(strings.ReplaceAll(f[len(f)-1], ":", ""))
		hdr, err := stream.Check(payload)
		if len(f) != 4 || f[0] != "198.18.1.2" || f[1] != "224.1.2.3" || f[2] != "65535" || err != nil || hdr.Seq != uint64(i) {
			t.Fatalf("dump packet %d: %q (%v)", i, line, err)
		}
	}
	tcpdumpLines := strings.Split(strings.TrimSpace(piped.String()), "\n")
	if len(tcpdumpLines) != 5 || !strings.Contains(tcpdumpLines[0], "198.18.1.2.") || !strings.Contains(tcpdumpLines[0], "> 224.1.2.3.65535: UDP, length 300") {
		t.Errorf("mctun dump -w - | tcpdump -r - printed:\n%s", piped.String())
	}
	r := w.run(h, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", mctunBin, "dump", "-c", "1")
	if r.code == 0 || !strings.Contains(r.stderr, "not permitted") {
		t.Errorf("mctun dump as nobody: %v", r)
	}
}

// The log is structured: JSON on request, state changes only, never a line per packet.
func TestJSONLog(t *testing.T) {
	w := newWorld(t, 4)
	logFile := filepath.Join(w.dir, "member.log")
	w.up(w.mbrs[0], memberConfig+fmt.Sprintf("\n[log]\nformat = \"json\"\nfile = %q\n", logFile))
	w.up(w.src, sourceConfig)
	rs := w.receive(w.mbrs[:1], mcapp.RecvOptions{Group: group, Port: 65535, Count: 500, Idle: 2 * time.Second, Timeout: 30 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: 500, Rate: 2000})
	w.reports(rs)
	if r := w.mctun(w.mbrs[0], "down"); r.code != 0 {
		t.Fatal(r)
	}
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var msgs []string
	for _, l := range lines {
		var rec struct{ Msg string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		msgs = append(msgs, rec.Msg)
	}
	if len(lines) > 10 || !contains(msgs, "forwarding") || !contains(msgs, "stopped; host restored") {
		t.Errorf("log after 500 packets: %d lines %q; want start and stop, and no line per packet", len(lines), msgs)
	}
	w.up(w.mbrs[0], memberConfig) // for the cleanup's down
}
