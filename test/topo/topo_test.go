//go:build e2e

package topo_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

var (
	tools mcapp.Tools
	group = netip.MustParseAddr("224.1.2.3")
)

// crashEnv makes the test binary a helper that builds a topology with the prefix it names,
// says "built" and waits to be killed: a crashed run.
const crashEnv = "TOPO_TEST_CRASH_PREFIX"

func TestMain(m *testing.M) {
	if prefix := os.Getenv(crashEnv); prefix != "" {
		if _, err := topo.Build(topo.Options{Prefix: prefix, Hosts: 1}); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("built")
		time.Sleep(time.Minute)
		os.Exit(1)
	}
	if topo.Available() != nil {
		os.Exit(m.Run()) // every test skips with the reason
	}
	dir, err := os.MkdirTemp("", "topo-test-")
	if err == nil {
		tools, err = mcapp.Build(context.Background(), dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestRoutedTopology(t *testing.T) {
	rootBefore := rootState(t)
	start := time.Now()
	tp := topo.ForTest(t, topo.Options{Hosts: 4})
	t.Logf("Build of 4 hosts took %v", time.Since(start))

	t.Run("unicast between every pair of hosts", func(t *testing.T) {
		exchangeUnicast(t, tp.Hosts)
	})
	t.Run("multicast does not cross the router", func(t *testing.T) {
		ctx := context.Background()
		opts := mcapp.RecvOptions{Group: group, Port: 65535, Idle: 500 * time.Millisecond, Timeout: 3 * time.Second}
		local := startRecv(t, tp.Hosts[0], opts) // the positive control: looped back on the source
		var remote []*mcapp.Receiver
		for _, h := range tp.Hosts[1:] {
			remote = append(remote, startRecv(t, h, opts))
		}
		sent, err := tools.Send(ctx, tp.Hosts[0], mcapp.SendOptions{Group: group, Port: 65535, Count: 200, Rate: 2000, TTL: 8})
		if err != nil || sent.Sent != 200 {
			t.Fatalf("mcsend: %+v, %v", sent, err)
		}
		if rep, err := local.Wait(); err != nil || rep.Unique != 200 {
			t.Fatalf("receiver on the source h0 got %d of 200 (%v): the sender or receiver is broken, so the check below would prove nothing", rep.Unique, err)
		}
		for i, r := range remote {
			rep, err := r.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if rep.Received != 0 {
				t.Errorf("h%d received %d multicast datagrams from h0 through the router, want 0", i+1, rep.Received)
			}
		}
	})
	t.Run("snapshot is stable and sees what changes", func(t *testing.T) {
		checkSnapshot(t, tp.Hosts[1])
	})
	t.Run("sysctl changes only the host", func(t *testing.T) {
		h := tp.Hosts[2]
		if err := h.Sysctl("net.ipv4.conf.all.rp_filter", "1"); err != nil {
			t.Fatal(err)
		}
		if v, err := h.ReadSysctl("net.ipv4.conf.all.rp_filter"); err != nil || v != "1" {
			t.Fatalf("ReadSysctl after setting 1 = %q, %v", v, err)
		}
		if v, _ := tp.Hosts[3].ReadSysctl("net.ipv4.conf.all.rp_filter"); v != "0" {
			t.Errorf("h3 rp_filter = %q, want 0: the sysctl leaked to another namespace", v)
		}
		if v, _ := tp.Hosts[2].ReadSysctl("net.ipv4.ip_forward"); v != "0" {
			t.Errorf("host ip_forward = %q, want 0", v)
		}
		if v, _ := tp.Router.ReadSysctl("net.ipv4.ip_forward"); v != "1" {
			t.Errorf("router ip_forward = %q, want 1", v)
		}
	})
	t.Run("Close kills processes and removes every namespace", func(t *testing.T) {
		sleeper := tp.Hosts[3].Command(context.Background(), "sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		waitInNetns(t, sleeper.Process.Pid, tp.Hosts[3])
		start := time.Now()
		if err := tp.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("Close of 4 hosts, one process running, took %v", time.Since(start))
		if err := sleeper.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("process in h3 after Close: %v, want killed", err)
		}
		for _, ns := range tp.Namespaces() {
			if nsExists(ns) {
				t.Errorf("namespace %s still exists after Close", ns)
			}
		}
		if err := tp.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	if after := rootState(t); after != rootBefore {
		t.Errorf("the root namespace changed:\nbefore:\n%s\nafter:\n%s", rootBefore, after)
	}
}

func TestBridgedTopologyCarriesMulticast(t *testing.T) {
	tp := topo.ForTest(t, topo.Options{Hosts: 3, Bridged: true, MTU: 1400})
	exchangeUnicast(t, tp.Hosts)
	opts := mcapp.RecvOptions{Group: group, Port: 65535, Count: 300, Idle: time.Second, Timeout: 10 * time.Second}
	r1, r2 := startRecv(t, tp.Hosts[1], opts), startRecv(t, tp.Hosts[2], opts)
	// 2000-byte payloads exceed the 1400-byte MTU: they cross as IP fragments.
	if _, err := tools.Send(context.Background(), tp.Hosts[0], mcapp.SendOptions{Group: group, Port: 65535, Count: 300, Size: 2000}); err != nil {
		t.Fatal(err)
	}
	for i, r := range []*mcapp.Receiver{r1, r2} {
		rep, err := r.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if rep.Unique != 300 || rep.Bad != 0 || rep.Senders["198.18.1.2"] != 300 {
			t.Errorf("h%d: unique %d, bad %d, senders %v; want 300 good datagrams from 198.18.1.2", i+1, rep.Unique, rep.Bad, rep.Senders)
		}
	}
}

func TestBuildFailureRemovesWhatItCreated(t *testing.T) {
	skipUnlessAvailable(t)
	prefix := topo.RandomPrefix()
	blocker := prefix + "-h1"
	if out, err := exec.Command("ip", "netns", "add", blocker).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", blocker, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", blocker).Run() })

	_, err := topo.Build(topo.Options{Prefix: prefix, Hosts: 3})
	if err == nil || !strings.Contains(err.Error(), blocker) {
		t.Fatalf("Build with %s already there: err = %v, want one naming it", blocker, err)
	}
	for _, ns := range []string{prefix + "-r", prefix + "-h0", prefix + "-h2"} {
		if nsExists(ns) {
			t.Errorf("namespace %s left behind by the failed Build", ns)
		}
	}
	if !nsExists(blocker) {
		t.Errorf("the failed Build deleted %s, which it did not create", blocker)
	}
	exec.Command("ip", "netns", "delete", blocker).Run()
	tp, err := topo.Build(topo.Options{Prefix: prefix, Hosts: 3})
	if err != nil {
		t.Fatalf("Build with the same prefix after the failure: %v", err)
	}
	tp.Close()
}

func TestRemoveStale(t *testing.T) {
	skipUnlessAvailable(t)
	base := topo.RandomPrefix()
	live := topo.ForTest(t, topo.Options{Prefix: base + "a", Hosts: 1})
	crashed := crashAfterBuild(t, base+"b")
	foreign := base + "c-r" // named like a topology's, but no topology made it
	if out, err := exec.Command("ip", "netns", "add", foreign).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", foreign, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", foreign).Run() })
	sleeper := crashed[1].Command(context.Background(), "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waitInNetns(t, sleeper.Process.Pid, crashed[1])

	if err := topo.RemoveStale(base); err != nil {
		t.Fatal(err)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("the process in a stale namespace survived RemoveStale")
	}
	for _, h := range crashed {
		if nsExists(h.Netns) {
			t.Errorf("stale namespace %s survived RemoveStale", h.Netns)
		}
	}
	for _, ns := range append(live.Namespaces(), foreign) {
		if !nsExists(ns) {
			t.Errorf("RemoveStale removed %s, which is live or not a topology's", ns)
		}
	}
	again, err := topo.Build(topo.Options{Prefix: base + "b", Hosts: 1})
	if err != nil {
		t.Fatalf("the crashed run's prefix is not free again: %v", err)
	}
	again.Close()
}

// crashAfterBuild runs this test binary as a helper that builds a one-host topology with
// prefix and kills it with SIGKILL, leaving the namespaces behind as a crash would. It
// returns the router and the host, whose namespaces it checks are there.
func crashAfterBuild(t *testing.T, prefix string) []*topo.Host {
	t.Helper()
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), crashEnv+"="+prefix)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 64)
	n, _ := out.Read(line)
	helper.Process.Kill()
	helper.Wait()
	if string(line[:n]) != "built\n" {
		t.Fatalf("crash helper said %q, want \"built\"", line[:n])
	}
	hosts := []*topo.Host{{Netns: prefix + "-r"}, {Netns: prefix + "-h0"}}
	t.Cleanup(func() {
		for _, h := range hosts {
			exec.Command("ip", "netns", "delete", h.Netns).Run()
		}
	})
	for _, h := range hosts {
		if !nsExists(h.Netns) {
			t.Fatalf("the crashed helper left no namespace %s", h.Netns)
		}
	}
	return hosts
}

func TestConcurrentClose(t *testing.T) {
	tp := topo.ForTest(t, topo.Options{Hosts: 2})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = tp.Close() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, ns := range tp.Namespaces() {
		if nsExists(ns) {
			t.Errorf("namespace %s still exists", ns)
		}
	}
}

// exchangeUnicast sends one UDP datagram from every host to every other and checks that
// each arrives, from the sender's own address, through the router.
func exchangeUnicast(t *testing.T, hosts []*topo.Host) {
	t.Helper()
	const port = 7000
	conns := make([]*net.UDPConn, len(hosts))
	for i, h := range hosts {
		err := h.Do(func() (err error) {
			conns[i], err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.Addr, port)))
			return err
		})
		if err != nil {
			t.Fatalf("%s: listen: %v", h, err)
		}
		defer conns[i].Close()
	}
	for i := range hosts {
		for j, to := range hosts {
			if i != j {
				msg := fmt.Appendf(nil, "%d->%d", i, j)
				if _, err := conns[i].WriteToUDPAddrPort(msg, netip.AddrPortFrom(to.Addr, port)); err != nil {
					t.Fatalf("%s -> %s: %v", hosts[i], to, err)
				}
			}
		}
	}
	buf := make([]byte, 64)
	for j, h := range hosts {
		got := map[string]bool{}
		conns[j].SetReadDeadline(time.Now().Add(5 * time.Second))
		for range len(hosts) - 1 {
			n, from, err := conns[j].ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("%s: got %v of %d datagrams: %v", h, got, len(hosts)-1, err)
			}
			var i, to int
			fmt.Sscanf(string(buf[:n]), "%d->%d", &i, &to)
			if to != j || from != netip.AddrPortFrom(hosts[i].Addr, port) {
				t.Errorf("%s: %q from %v, want it from %s", h, buf[:n], from, hosts[i].Addr)
			}
			got[string(buf[:n])] = true
		}
	}
}

// checkSnapshot proves a Snapshot is stable, sees a sysctl and a route change, and returns
// to the first one once they are undone.
func checkSnapshot(t *testing.T, h *topo.Host) {
	t.Helper()
	ctx := context.Background()
	before := snapshot(t, h)
	for _, want := range []string{"inet " + h.Addr.String() + "/24", "default via " + h.Gateway.String(), "net.ipv4.conf.all.rp_filter = 0", "net.ipv4.igmp_max_memberships = 20"} {
		if !strings.Contains(before, want) {
			t.Errorf("snapshot lacks %q:\n%s", want, before)
		}
	}
	if again := snapshot(t, h); again != before {
		t.Fatalf("two snapshots of an unchanged host differ:\n%s\n---\n%s", before, again)
	}
	changes := []struct{ do, undo func() error }{
		{do: func() error { return h.Sysctl("net.ipv4.igmp_max_memberships", "256") },
			undo: func() error { return h.Sysctl("net.ipv4.igmp_max_memberships", "20") }},
		{do: func() error {
			_, err := h.Run(ctx, "ip", "route", "add", "224.0.0.0/4", "dev", "eth0", "table", "100")
			return err
		},
			undo: func() error {
				_, err := h.Run(ctx, "ip", "route", "del", "224.0.0.0/4", "dev", "eth0", "table", "100")
				return err
			}},
		{do: func() error { _, err := h.Run(ctx, "ip", "tuntap", "add", "mctun0", "mode", "tun"); return err },
			undo: func() error { _, err := h.Run(ctx, "ip", "link", "del", "mctun0"); return err }},
	}
	for i, c := range changes {
		if err := c.do(); err != nil {
			t.Fatal(err)
		}
		if snapshot(t, h) == before {
			t.Errorf("change %d did not change the snapshot", i)
		}
		if err := c.undo(); err != nil {
			t.Fatal(err)
		}
		if after := snapshot(t, h); after != before {
			t.Errorf("after undoing change %d the snapshot differs:\n%s\n---\n%s", i, before, after)
		}
	}
}

func snapshot(t *testing.T, h *topo.Host) string {
	t.Helper()
	s, err := h.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startRecv(t *testing.T, h *topo.Host, o mcapp.RecvOptions) *mcapp.Receiver {
	t.Helper()
	r, err := tools.StartRecv(context.Background(), h, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return r
}

// rootState is what the hard rules say a test never changes: the root namespace's links,
// routes and the sysctls mctun cares about.
func rootState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"-d", "link", "show"}, {"-4", "route", "show", "table", "all"}, {"-4", "rule", "show"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatalf("ip %v: %v", args, err)
		}
		b.Write(out)
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter", "net/ipv4/igmp_max_memberships"} {
		v, _ := os.ReadFile("/proc/sys/" + k)
		fmt.Fprintf(&b, "%s = %s", k, v)
	}
	return b.String()
}

// waitInNetns waits until process pid has entered h's namespace.
func waitInNetns(t *testing.T, pid int, h *topo.Host) {
	t.Helper()
	want, err := os.Stat(h.NetnsPath())
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if got, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && os.SameFile(got, want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("process %d did not enter %s within 5s", pid, h.Netns)
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return !errors.Is(err, fs.ErrNotExist)
}

func skipUnlessAvailable(t *testing.T) {
	t.Helper()
	if err := topo.Available(); err != nil {
		t.Skip(err)
	}
}
