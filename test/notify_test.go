//go:build e2e

package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

// mctun run as systemd runs it (mctun.service is Type=notify, and leaves mctun only the
// capabilities its CapabilityBoundingSet= names), with a socket of the test's standing in for
// systemd's: READY=1 comes once packets are being forwarded (a datagram sent
// the moment it arrives reaches the member's application), with a STATUS line of the roles,
// groups and members; a reload is bracketed by RELOADING=1 and READY=1, whether or not it
// applies, and a management command updates STATUS; SIGTERM brings STOPPING=1 and a host
// restored. A daemon that cannot start sends no READY=1 and exits non-zero.
func TestSystemdNotify(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		h0, h1 := w.src, w.mbrs[0]
		where := "in user space"
		if dp == "kernel" {
			where = "in the kernel"
		}
		clean := w.snapshot(h0)

		// The member, with systemd's socket in the abstract namespace (as it is in
		// containers), which belongs to the member's network namespace.
		memberSock := listenNotify(t, h1, fmt.Sprintf("@mctun-test-notify-%d", os.Getpid()))
		member := w.startRun(h1, memberSock, memberConfig)
		ready := memberSock.expect(t, "READY=1")
		if !strings.Contains(ready, "STATUS=forwarding "+where+"; member on mctun0: 1 source, any group") {
			t.Errorf("h1's READY message: %q", ready)
		}
		checkCapabilities(t, member, unitCapabilities(t))
		rs := w.receive([]*topo.Host{h1}, mcapp.RecvOptions{Group: group, Port: 65535, Idle: time.Second, Timeout: 10 * time.Second})

		// The source, with systemd's socket a file. Nothing before READY=1; the moment it
		// comes, the application sends.
		sourceSock := listenNotify(t, nil, filepath.Join(w.dir, "notify"))
		cfg := `
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2"]
`
		source := w.startRun(h0, sourceSock, cfg)
		ready = sourceSock.expect(t, "READY=1")
		// Also dumped, by the daemon with the unit's capabilities (the kernel path reads
		// its dump through a perf event buffer).
		dump := h1.Command(w.ctx, mctunBin, "dump", "-c", "5")
		var dumped bytes.Buffer
		dump.Stdout, dump.Stderr = &dumped, &dumped
		if err := dump.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the dump begins
		w.send(h0, mcapp.SendOptions{Group: group, Port: 65535, Count: 5, Rate: 1000})
		if want := "STATUS=forwarding " + where + "; source on eth0: 1 group, 1 member"; !strings.Contains(ready, want) {
			t.Errorf("h0's READY message: %q, want %q", ready, want)
		}
		if rep := w.reports(rs)[0]; rep.Unique != 5 {
			t.Errorf("h1 received %d of the 5 datagrams sent the moment h0 was READY: %+v", rep.Unique, rep)
		}
		if err := waitTimeout(dump, 10*time.Second); err != nil || !strings.Contains(dumped.String(), "mctun dump: 5 packets") {
			t.Errorf("mctun dump -c 5 on h1: %v\n%s", err, dumped.String())
		}

		// A reload (what systemctl reload runs), one that applies and one that is refused.
		w.writeConfig(h0, cfg+`
[[source.group]]
address = "224.5.5.5"
port    = 6000
members = ["198.18.2.2", "198.18.3.2"]
`)
		reload := func(wantOK bool, wantStatus string) {
			t.Helper()
			var before unix.Timespec
			unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
			if r := w.mctun(h0, "reload"); (r.code == 0) != wantOK {
				t.Errorf("mctun reload: %v", r)
			}
			msg := sourceSock.next(t)
			m := strings.Split(strings.TrimSpace(msg), "\n")
			if len(m) != 2 || m[0] != "RELOADING=1" || !strings.HasPrefix(m[1], "MONOTONIC_USEC=") {
				t.Fatalf("reload: first message %q, want RELOADING=1 and MONOTONIC_USEC", msg)
			}
			usec, err := strconv.ParseInt(strings.TrimPrefix(m[1], "MONOTONIC_USEC="), 10, 64)
			if now := before.Nano() / 1000; err != nil || usec < now || usec > now+10e6 {
				t.Errorf("reload: MONOTONIC_USEC=%d, the clock read %d just before", usec, now)
			}
			if msg := sourceSock.next(t); !strings.HasPrefix(msg, "READY=1\n") || !strings.Contains(msg, wantStatus) {
				t.Errorf("reload: second message %q, want READY=1 and %q", msg, wantStatus)
			}
		}
		reload(true, "source on eth0: 2 groups, 3 members")
		w.writeConfig(h0, cfg+"\n[[source.group]]\naddress = \"10.1.1.1\"\nmembers = [\"198.18.2.2\"]\n")
		reload(false, "source on eth0: 2 groups, 3 members")

		// A management command: the groups change, and so does STATUS.
		if r := w.mctun(h0, "group", "add", "224.6.6.6", "--member", "198.18.4.2"); r.code != 0 {
			t.Fatalf("mctun group add: %v", r)
		}
		if msg := sourceSock.next(t); msg != "STATUS=forwarding "+where+"; source on eth0: 3 groups, 4 members\n" {
			t.Errorf("after group add: %q", msg)
		}

		// Stopping (systemctl stop sends SIGTERM).
		for _, p := range []struct {
			h    *topo.Host
			sock *notifySocket
			run  *runningDaemon
		}{{h0, sourceSock, source}, {h1, memberSock, member}} {
			p.run.cmd.Process.Signal(syscall.SIGTERM)
			if msg := p.sock.next(t); !strings.HasPrefix(msg, "STOPPING=1\n") {
				t.Errorf("%s: on SIGTERM: %q, want STOPPING=1", p.h, msg)
			}
			if err := p.run.wait(); err != nil {
				t.Errorf("%s: mctun run: %v\n%s", p.h, err, p.run.out.String())
			}
		}
		if got := w.snapshot(h0); got != clean {
			t.Errorf("h0 not restored after SIGTERM:\n%s\nwant:\n%s", got, clean)
		}

		// Daemons that cannot start: a config that is not valid (exit 2), one that is but
		// names an interface the host lacks (exit 1), and, showing that the unit needs each
		// of these capabilities, a member without CAP_NET_ADMIN (it creates the TUN) and a
		// source in user space without CAP_NET_RAW (it captures; on the kernel path the
		// kernel hands it what it forwards), and on the kernel path a member without
		// CAP_BPF or CAP_PERFMON (its programs). None sends READY=1.
		without := func(cap string) []string {
			return slices.DeleteFunc(unitCapabilities(t), func(c string) bool { return c == cap })
		}
		bads := []struct {
			config, status string
			caps           []string
		}{
			{"[source]\n[[source.group]]\naddress = \"10.1.1.1\"\nmembers = [\"198.18.2.2\"]\n", "exit status 2", unitCapabilities(t)},
			{"[source]\ninterface = \"nosuch0\"\n[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.2.2\"]\n", "exit status 1", unitCapabilities(t)},
			{memberConfig, "exit status 1", without("net_admin")},
		}
		if dp == "kernel" { // datapath = "kernel": mctun starts only if it can load the programs
			bads = append(bads,
				struct {
					config, status string
					caps           []string
				}{memberConfig, "exit status 1", without("bpf")},
				struct {
					config, status string
					caps           []string
				}{memberConfig, "exit status 1", without("perfmon")})
		} else {
			bads = append(bads, struct {
				config, status string
				caps           []string
			}{cfg, "exit status 1", without("net_raw")})
		}
		for _, bad := range bads {
			h2 := w.mbrs[1]
			sock := listenNotify(t, nil, filepath.Join(w.dir, "notify-bad"))
			run := w.startRunWith(h2, sock, bad.config, bad.caps)
			err := run.wait()
			if err == nil || err.Error() != bad.status {
				t.Errorf("mctun run with a bad config: %v, want %s\n%s", err, bad.status, run.out.String())
			}
			for _, msg := range sock.drain() {
				t.Logf("%s, capabilities %v: %q", bad.status, bad.caps, msg)
				if strings.Contains(msg, "READY=1") {
					t.Errorf("a daemon that did not start sent %q", msg)
				} else if !strings.HasPrefix(msg, "STATUS=mctun did not start: ") {
					t.Errorf("a daemon that did not start sent %q", msg)
				}
			}
			sock.close()
			os.Remove(filepath.Join(w.dir, "notify-bad"))
		}
	})
}

// checkCapabilities checks that the daemon runs with exactly caps in its effective set.
func checkCapabilities(t *testing.T, d *runningDaemon, caps []string) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapEff:\s*([0-9a-f]+)$`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no CapEff in /proc/%d/status", d.cmd.Process.Pid)
	}
	eff, _ := strconv.ParseUint(string(m[1]), 16, 64)
	numbers := map[string]uint{"net_admin": unix.CAP_NET_ADMIN, "net_raw": unix.CAP_NET_RAW, "bpf": unix.CAP_BPF, "perfmon": unix.CAP_PERFMON, "sys_admin": unix.CAP_SYS_ADMIN}
	var want uint64
	for _, c := range caps {
		n, ok := numbers[c]
		if !ok {
			t.Fatalf("capability %s: add its number here", c)
		}
		want |= 1 << n
	}
	if eff != want {
		t.Errorf("mctun runs with the capabilities %#x, want %#x (%v)", eff, want, caps)
	}
}

// waitTimeout waits for cmd, killing it after d.
func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	t := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer t.Stop()
	return cmd.Wait()
}

// notifySocket is the test's stand-in for systemd's notification socket.
type notifySocket struct {
	name string
	conn *net.UnixConn
	msgs chan string
}

// listenNotify binds a unix datagram socket: a path, or an abstract name (@...) in h's
// network namespace.
func listenNotify(t *testing.T, h *topo.Host, name string) *notifySocket {
	t.Helper()
	s := &notifySocket{name: name, msgs: make(chan string, 64)}
	listen := func() (err error) {
		s.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		return err
	}
	var err error
	if h != nil {
		err = h.Do(listen)
	} else {
		err = listen()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := s.conn.Read(buf)
			if err != nil {
				close(s.msgs)
				return
			}
			s.msgs <- string(buf[:n])
		}
	}()
	return s
}

func (s *notifySocket) close() { s.conn.Close() }

// next returns the next message, failing the test if none comes within 30s.
func (s *notifySocket) next(t *testing.T) string {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			t.Fatalf("%s: closed", s.name)
		}
		t.Logf("%s: %q", s.name, m)
		return m
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no message within 30s", s.name)
	}
	return ""
}

// expect returns the next message, which must start with prefix.
func (s *notifySocket) expect(t *testing.T, prefix string) string {
	t.Helper()
	m := s.next(t)
	if !strings.HasPrefix(m, prefix) {
		t.Fatalf("%s: got %q, want %s", s.name, m, prefix)
	}
	return m
}

// drain returns the messages already received.
func (s *notifySocket) drain() []string {
	var out []string
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				return out
			}
			out = append(out, m)
		case <-time.After(200 * time.Millisecond):
			return out
		}
	}
}

// runningDaemon is a mctun run in the foreground.
type runningDaemon struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{} // closed when it has exited, with err
	err    error
}

// wait waits up to 30s for the daemon to exit and returns how it did.
func (r *runningDaemon) wait() error {
	select {
	case <-r.exited:
		return r.err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("mctun run did not exit within 30s")
	}
}

// unitCapabilities returns the capabilities mctun.service leaves mctun
// (CapabilityBoundingSet=), as setpriv writes them: "net_admin", ...
func unitCapabilities(t *testing.T) []string {
	data, err := os.ReadFile("../packaging/mctun.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("mctun.service has no CapabilityBoundingSet=")
	}
	var caps []string
	for _, c := range strings.Fields(string(m[1])) {
		caps = append(caps, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return caps
}

// startRun writes config for h and starts mctun run with it as mctun.service does: with only
// the unit's capabilities and no new privileges, telling it of sock as systemd would. The
// test's end stops it if it still runs.
func (w *world) startRun(h *topo.Host, sock *notifySocket, config string) *runningDaemon {
	w.t.Helper()
	return w.startRunWith(h, sock, config, unitCapabilities(w.t))
}

// startRunWith is startRun with the capabilities caps.
func (w *world) startRunWith(h *topo.Host, sock *notifySocket, config string, caps []string) *runningDaemon {
	w.t.Helper()
	path := w.writeConfig(h, config)
	bset := "-all"
	for _, c := range caps {
		bset += ",+" + c
	}
	cmd := h.Command(context.Background(), "setpriv", "--bounding-set", bset, "--inh-caps", "-all", "--no-new-privs",
		"--", mctunBin, "run", "-c", path)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.name)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	r := &runningDaemon{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()
	w.t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			r.wait()
		}
	})
	return r
}
