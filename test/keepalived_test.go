//go:build e2e

package test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mctun/test/topo"
)

// keepalived's VRRP through mctun, as the README's recipe sets it up: on each of two hosts
// keepalived runs VRRP on mctun0 with the host's own address as the advertisements' source
// (mcast_src_ip), and mctun carries 224.0.0.18 (IP protocol 112, so no port) to the other
// host, which is also its source.

// vip is the address keepalived moves: on the MASTER's eth0.
const vip = "198.18.200.1"

// vrrpConfig is the mctun config of a keepalived host whose peer is the other one.
func vrrpConfig(peer netip.Addr) string {
	return fmt.Sprintf(`[source]
[[source.group]]
address = "224.0.0.18"   # VRRP: IP protocol 112, no port
members = ["%s"]

[member]
sources = ["%s"]
`, peer, peer)
}

// keepalived is one keepalived in a test host, with files of its own: config, pid files, log
// and the states its notify script records.
type keepalived struct {
	t    *testing.T
	w    *world
	h    *topo.Host
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// transition is a state keepalived entered, and when its notify script ran.
type transition struct {
	state string
	at    time.Time
}

// startKeepalived starts keepalived in h in the foreground (-n), VRRP only, logging to its
// file, with the VRRP instance on mctun0 at the given priority. The test's end stops it,
// also when the test failed.
func (w *world) startKeepalived(h *topo.Host, priority int) *keepalived {
	t := w.t
	t.Helper()
	k := &keepalived{t: t, w: w, h: h, dir: filepath.Join(w.dir, "keepalived-"+h.Name), done: make(chan struct{})}
	if err := os.MkdirAll(k.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	notify := k.path("notify.sh")
	script := fmt.Sprintf("#!/bin/sh\n# keepalived runs this with: INSTANCE name state priority\necho \"$3 $(date +%%s.%%N)\" >> %s\n", k.path("states"))
	if err := os.WriteFile(notify, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global_defs {
    router_id %s
    script_user root
    enable_script_security
}

vrrp_instance mctun {
    state BACKUP
    interface mctun0          # VRRP through mctun
    mcast_src_ip %s   # the host's own address, which the other host knows it by
    virtual_router_id 51
    priority %d
    advert_int 1
    virtual_ipaddress {
        %s/32 dev eth0
    }
    notify %s
}
`, h.Name, h.Addr, priority, vip, notify)
	if err := os.WriteFile(k.path("keepalived.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(k.path("states"))
	logf, err := os.OpenFile(k.path("log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// Pid files of its own, not /run's: two instances run on this machine.
	k.cmd = h.Command(w.ctx, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--dont-respawn", "-f", k.path("keepalived.conf"),
		"-p", k.path("keepalived.pid"), "-r", k.path("vrrp.pid"), "-c", k.path("checkers.pid"))
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its VRRP child too, for kill
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("%s: keepalived: %v", h, err)
	}
	go func() { k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() { k.kill() })
	return k
}

func (k *keepalived) path(name string) string { return filepath.Join(k.dir, name) }

// stop sends SIGTERM, as systemctl stop does, and waits until keepalived has ended: it tells
// the other host it is going (an advertisement of priority 0) and drops the VIP.
func (k *keepalived) stop() {
	k.t.Helper()
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		k.t.Fatalf("%s: keepalived did not stop within 10s of SIGTERM:\n%s", k.h, k.log())
	}
}

// kill ends keepalived and its VRRP child at once with SIGKILL, as a crash would: it says
// nothing to the other host. The child is in keepalived's process group, which is only
// signalled while keepalived is not yet waited for, so that the group's id is still its own.
func (k *keepalived) kill() {
	select {
	case <-k.done:
		return
	default:
	}
	syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-k.done:
	case <-time.After(10 * time.Second):
		k.t.Errorf("%s: keepalived did not end within 10s of SIGKILL", k.h)
	}
}

func (k *keepalived) log() string {
	data, _ := os.ReadFile(k.path("log"))
	return string(data)
}

// transitions are the states keepalived entered, as its notify script recorded them.
func (k *keepalived) transitions() []transition {
	data, _ := os.ReadFile(k.path("states"))
	var out []transition
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		state, at, ok := strings.Cut(line, " ")
		sec, err := strconv.ParseFloat(at, 64)
		if !ok || err != nil {
			continue
		}
		out = append(out, transition{state, time.Unix(0, int64(sec*1e9))})
	}
	return out
}

// state is the state keepalived entered last, or "".
func (k *keepalived) state() string {
	tr := k.transitions()
	if len(tr) == 0 {
		return ""
	}
	return tr[len(tr)-1].state
}

// waitState waits up to timeout for keepalived to enter state after since, and returns when
// it did.
func (k *keepalived) waitState(state string, since time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		for _, tr := range k.transitions() {
			if tr.state == state && !tr.at.Before(since) {
				return tr.at, true
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasVIP reports whether h's eth0 carries the virtual address.
func (w *world) hasVIP(h *topo.Host) bool {
	out, err := h.Run(w.ctx, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		w.t.Fatal(err)
	}
	return strings.Contains(out, " "+vip+"/32 ")
}

// waitVIP waits up to 2 s for the VIP to be on h's eth0 (want) or gone from it.
func (w *world) waitVIP(h *topo.Host, want bool) bool {
	deadline := time.Now().Add(2 * time.Second)
	for w.hasVIP(h) != want {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// keepalived's VRRP through mctun, on hosts that filter reverse paths strictly: one MASTER
// (the higher priority) and one BACKUP while both run; the BACKUP takes over within 5 s of
// the MASTER stopping, whether it stops cleanly (SIGTERM) or crashes (SIGKILL);
// advertisements flow both ways; and VRRP keeps working when mctun is killed and started
// again, or stopped and started with keepalived restarted after it, as the README says.
func TestKeepalived(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("keepalived is not installed (apt-get install keepalived)")
	}
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		a, b := w.hosts[0], w.hosts[1]
		// Strict reverse-path filtering, as RHEL has it: the advertisements arrive on mctun0
		// from an address routed out of eth0.
		for _, h := range []*topo.Host{a, b} {
			for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"} {
				if err := h.Sysctl(key, "1"); err != nil {
					t.Fatal(err)
				}
			}
		}
		w.up(a, vrrpConfig(b.Addr))
		w.up(b, vrrpConfig(a.Addr))
		report := func() {
			for _, h := range []*topo.Host{a, b} {
				t.Logf("%s: mctun stats:\n%s", h, w.mctun(h, "stats").stdout)
			}
		}
		// takeover stops from's keepalived with stop and asserts that to's becomes MASTER
		// within 5 s.
		takeover := func(from, to *keepalived, stop func(), what string) {
			t.Helper()
			stopped := time.Now()
			stop()
			at, ok := to.waitState("MASTER", stopped, 10*time.Second)
			if !ok || at.Sub(stopped) > 5*time.Second {
				report()
				t.Fatalf("%s: %s became MASTER %v after %s's keepalived stopped (states %v); want within 5s\n%s",
					what, to.h, at.Sub(stopped), from.h, to.transitions(), to.log())
			}
			t.Logf("takeover %s: %v", what, at.Sub(stopped).Round(time.Millisecond))
		}

		// 1. a, priority 150, alone: it becomes MASTER. Then b, priority 100, starts: it must
		// stay BACKUP for longer than its master-down interval (3 x advert_int + skew, 3.6 s),
		// which it does only if a's advertisements reach it.
		start := time.Now()
		ka := w.startKeepalived(a, 150)
		if _, ok := ka.waitState("MASTER", start, 10*time.Second); !ok {
			report()
			t.Fatalf("%s did not become MASTER alone within 10s: states %v\n%s", a, ka.transitions(), ka.log())
		}
		kb := w.startKeepalived(b, 100)
		if _, ok := kb.waitState("BACKUP", start, 10*time.Second); !ok {
			t.Fatalf("%s did not start as BACKUP: states %v\n%s", b, kb.transitions(), kb.log())
		}
		time.Sleep(5 * time.Second)
		if ka.state() != "MASTER" || kb.state() != "BACKUP" || slices.ContainsFunc(kb.transitions(), func(tr transition) bool { return tr.state == "MASTER" }) {
			report()
			t.Fatalf("while both run: %s %v, %s %v; want %s MASTER and %s BACKUP throughout\n%s log:\n%s",
				a, ka.transitions(), b, kb.transitions(), a, b, b, kb.log())
		}
		if !w.hasVIP(a) || w.hasVIP(b) {
			t.Errorf("while both run: VIP %s on %s: %t, on %s: %t; want on %s only", vip, a, w.hasVIP(a), b, w.hasVIP(b), a)
		}

		// 2. The MASTER stops cleanly: the BACKUP takes over, and the VIP moves.
		takeover(ka, kb, ka.stop, "after the MASTER's keepalived stopped (SIGTERM)")
		if !w.waitVIP(b, true) || !w.waitVIP(a, false) {
			t.Errorf("after the takeover: VIP on %s: %t, on %s: %t; want on %s only", a, w.hasVIP(a), b, w.hasVIP(b), b)
		}

		// 3. a comes back with its higher priority and takes over again (preemption); b
		// goes back to BACKUP.
		again := time.Now()
		ka = w.startKeepalived(a, 150)
		if _, ok := ka.waitState("MASTER", again, 10*time.Second); !ok {
			t.Fatalf("%s did not become MASTER again: %v\n%s", a, ka.transitions(), ka.log())
		}
		if _, ok := kb.waitState("BACKUP", again, 5*time.Second); !ok {
			report()
			t.Fatalf("%s did not go back to BACKUP once %s was MASTER again: %v", b, a, kb.transitions())
		}

		// 4. The MASTER crashes (SIGKILL, no goodbye): the BACKUP takes over once a's
		// advertisements stop, after its master-down interval.
		takeover(ka, kb, ka.kill, "after the MASTER's keepalived was killed (SIGKILL)")

		// 5. The other way round: a comes back at a lower priority, 50. It stays BACKUP for
		// longer than its master-down interval only if b's advertisements reach it.
		low := time.Now()
		ka = w.startKeepalived(a, 50)
		if _, ok := ka.waitState("BACKUP", low, 10*time.Second); !ok {
			t.Fatalf("%s did not start as BACKUP: %v\n%s", a, ka.transitions(), ka.log())
		}
		time.Sleep(5 * time.Second)
		if ka.state() != "BACKUP" || kb.state() != "MASTER" {
			report()
			t.Fatalf("with %s at priority 50: %s %v, %s %v; want %s BACKUP, %s MASTER", a, a, ka.transitions(), b, kb.transitions(), a, b)
		}

		// mctun carried the advertisements of both, each into the other's mctun0.
		for _, h := range [][2]*topo.Host{{a, b}, {b, a}} {
			if f := w.status(h[0]).flow(h[1].Addr.String(), "224.0.0.18"); f.Packets == 0 {
				t.Errorf("%s's mctun delivered no VRRP from %s", h[0], h[1])
			}
		}

		// 6. mctun dies on a (kill -9) and is started again: mctun0 outlives the crash, so
		// keepalived carries on untouched. a takes over when b stops.
		pid := w.status(a).PID
		if err := exec.Command("kill", "-9", strconv.Itoa(pid)).Run(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: mctun (pid %d) still there 10s after kill -9", a, pid)
			}
		}
		w.mustSucceed(a, "mctun up after kill -9", w.mctun(a, "up", "-c", filepath.Join(w.dir, a.Name+".toml")))
		takeover(kb, ka, kb.stop, "after mctun was killed and started again under keepalived")
		back := time.Now()
		kb = w.startKeepalived(b, 100)
		if _, ok := kb.waitState("MASTER", back, 10*time.Second); !ok {
			t.Fatalf("%s did not take over again at its higher priority: %v", b, kb.transitions())
		}

		// 7. mctun stopped and started on a (down, up): that makes mctun0 anew, and Debian 12's
		// keepalived (2.2.7) does not open its VRRP sockets again on an interface made anew
		// (fixed upstream in 2.3.3). As the README says, keepalived is restarted after
		// mctun, as any application must be: then a takes over when b stops.
		w.mustSucceed(a, "mctun down", w.mctun(a, "down"))
		w.mustSucceed(a, "mctun up", w.mctun(a, "up", "-c", filepath.Join(w.dir, a.Name+".toml")))
		ka.stop()
		restarted := time.Now()
		ka = w.startKeepalived(a, 50)
		if _, ok := ka.waitState("BACKUP", restarted, 10*time.Second); !ok {
			t.Fatalf("%s did not start as BACKUP: %v\n%s", a, ka.transitions(), ka.log())
		}
		takeover(kb, ka, kb.stop, "after mctun down and up, and keepalived restarted")
	})
}
