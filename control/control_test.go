package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen claims a control socket name of the test's own.
func listen(t *testing.T) (*Server, string) {
	t.Helper()
	name := fmt.Sprintf("@mctun-test-%d", rand.Uint64())
	srv, err := Listen(name, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return srv, name
}

func TestCallAndPeer(t *testing.T) {
	srv, name := listen(t)
	defer srv.Close()
	go srv.Serve(func(peer Peer, req Request) (any, error) {
		switch req.Op {
		case "whoami":
			return peer, nil
		case "fail":
			return nil, ErrNotPermitted
		}
		return nil, fmt.Errorf("unknown operation %q", req.Op)
	})

	var peer Peer
	if err := Call(name, "whoami", nil, &peer); err != nil {
		t.Fatal(err)
	}
	if peer.PID != os.Getpid() || peer.UID != os.Getuid() || (peer.UID == 0 && !peer.Privileged) {
		t.Fatalf("peer = %+v, want this process (pid %d uid %d)", peer, os.Getpid(), os.Getuid())
	}
	if err := Call(name, "fail", nil, nil); err == nil || err.Error() != ErrNotPermitted.Error() {
		t.Fatalf("Call(fail) = %v, want the handler's error", err)
	}
	if err := Call(name+"-absent", "whoami", nil, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Call to nobody = %v, want ErrNotRunning", err)
	}
	if _, err := Listen(name, nil); err == nil {
		t.Fatal("a second Listen on the same name succeeded")
	}
}

// countdown streams n, then closes hungUp once the caller hangs up.
type countdown struct {
	n      int
	hungUp chan struct{}
}

// Stream writes its number, then one line a millisecond until the caller hangs up.
func (c countdown) Stream(ctx context.Context, w io.Writer) error {
	fmt.Fprintf(w, "%d\n", c.n)
	for {
		select {
		case <-ctx.Done():
			close(c.hungUp)
			return nil
		case <-time.After(time.Millisecond):
			if _, err := io.WriteString(w, "tick\n"); err != nil {
				return err
			}
		}
	}
}

func TestCallStream(t *testing.T) {
	srv, name := listen(t)
	defer srv.Close()
	hungUp := make(chan struct{})
	go srv.Serve(func(peer Peer, req Request) (any, error) { return countdown{42, hungUp}, nil })
	r, err := CallStream(name, "stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(r)
	if !sc.Scan() || sc.Text() != "42" || !sc.Scan() || sc.Text() != "tick" {
		t.Fatalf("stream began %q, want 42 then tick", sc.Text())
	}
	r.Close()
	select {
	case <-hungUp:
	case <-time.After(2 * time.Second):
		t.Fatal("the stream did not end when the caller hung up")
	}
}

// TestHasNetAdmin: root has CAP_NET_ADMIN here; a process in a user namespace of its own,
// where /proc shows it every capability, has none here; and nor has a process that is not
// the user the connection came from.
func TestHasNetAdmin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test compares root's capabilities with a user namespace's")
	}
	if !HasNetAdmin(os.Getpid(), 0) {
		t.Fatal("HasNetAdmin(this root process) = false")
	}
	if HasNetAdmin(os.Getpid(), 65534) {
		t.Fatal("HasNetAdmin(this process, connected as uid 65534) = true; its effective uid is 0")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1) to make a user namespace with")
	}
	cmd := exec.Command(unshare, "--user", "--map-root-user", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); sameUserNS(pid); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("unshare did not enter a user namespace of its own within 5 s")
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var capEff uint64
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			capEff, _ = strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		}
	}
	if capEff&(1<<unix.CAP_NET_ADMIN) == 0 {
		t.Fatalf("the namespaced process does not show CAP_NET_ADMIN, which this test is about:\n%s", status)
	}
	if HasNetAdmin(pid, 0) {
		t.Fatalf("HasNetAdmin(a process root only in its own user namespace) = true; its status:\n%s", status)
	}
}

// TestAdmit: an unprivileged user may have MaxOpenPerUser connections open at once, each
// user apart; a privileged one any number.
func TestAdmit(t *testing.T) {
	s := &Server{open: map[int]int{}, limit: 2}
	var dones []func()
	for range 2 {
		ok, done := s.admit(Peer{UID: 1000})
		if !ok {
			t.Fatal("admit refused a connection within the limit")
		}
		dones = append(dones, done)
	}
	if ok, _ := s.admit(Peer{UID: 1000}); ok {
		t.Fatal("admit let in a third connection of uid 1000, over the limit of 2")
	}
	if ok, _ := s.admit(Peer{UID: 1001}); !ok {
		t.Fatal("admit refused uid 1001 for uid 1000's connections")
	}
	for range 5 {
		if ok, _ := s.admit(Peer{UID: 1002, Privileged: true}); !ok {
			t.Fatal("admit refused a privileged caller")
		}
	}
	dones[0]()
	if ok, _ := s.admit(Peer{UID: 1000}); !ok {
		t.Fatal("admit refused uid 1000 after one of its connections closed")
	}
}

// TestServeOutlivesEMFILE: when accept fails for want of file descriptors, Serve tries again
// and answers once there are some, instead of returning and leaving the instance unreachable.
func TestServeOutlivesEMFILE(t *testing.T) {
	srv, name := listen(t)
	defer srv.Close()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(func(Peer, Request) (any, error) { return "ok", nil }) }()

	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// Fill the table up to a low limit, so that the server's accept finds none free.
	low := lim
	low.Cur = 64
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fds []int
	for {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			break
		}
		fds = append(fds, fd)
	}
	// A raw connect, which needs no new descriptor: the last free one is given back for it.
	unix.Close(fds[len(fds)-1])
	fds = fds[:len(fds)-1]
	client, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(client, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the server's accept fails now, over and over
	unix.Close(client)
	for _, fd := range fds {
		unix.Close(fd)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while file descriptors were short", err)
	default:
	}
	var answer string
	if err := Call(name, "anything", nil, &answer); err != nil || answer != "ok" {
		t.Fatalf("Call after the shortage = %q, %v; want the server to answer", answer, err)
	}
}

// streamFunc is a Streamer made of a function.
type streamFunc func(ctx context.Context, w io.Writer) error

func (f streamFunc) Stream(ctx context.Context, w io.Writer) error { return f(ctx, w) }

// TestCloseWaitsForAnswers: Close returns only once an answer under way has ended, so that
// the daemon's stop closes nothing a handler still reads; and it ends the streams, both one
// that waits for its ctx and one stuck writing to a caller who does not read, instead of
// waiting for them.
func TestCloseWaitsForAnswers(t *testing.T) {
	srv, name := listen(t)
	srv.wait = 3 * time.Second
	started, release := make(chan struct{}), make(chan struct{})
	var answered atomic.Bool
	ended := make(chan string, 2)
	go srv.Serve(func(peer Peer, req Request) (any, error) {
		switch req.Op {
		case "slow":
			close(started)
			<-release
			answered.Store(true)
			return "done", nil
		case "waiting":
			return streamFunc(func(ctx context.Context, w io.Writer) error {
				defer func() { ended <- req.Op }()
				io.WriteString(w, "first\n")
				<-ctx.Done()
				return nil
			}), nil
		}
		return streamFunc(func(ctx context.Context, w io.Writer) error {
			defer func() { ended <- req.Op }()
			buf := make([]byte, 64<<10)
			for {
				if _, err := w.Write(buf); err != nil {
					return err
				}
			}
		}), nil
	})
	go Call(name, "slow", nil, nil)
	waiting, err := CallStream(name, "waiting", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	if line, err := bufio.NewReader(waiting).ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("the stream began %q, %v", line, err)
	}
	writing, err := CallStream(name, "writing", nil) // never read
	if err != nil {
		t.Fatal(err)
	}
	defer writing.Close()
	<-started
	time.AfterFunc(200*time.Millisecond, func() { close(release) })

	begin := time.Now()
	srv.Close()
	took := time.Since(begin)
	if !answered.Load() {
		t.Fatalf("Close returned after %v, while a handler was still answering", took)
	}
	if took >= srv.wait {
		t.Fatalf("Close took %v: it waited for the streams instead of ending them", took)
	}
	for range 2 {
		select {
		case <-ended:
		case <-time.After(time.Second):
			t.Fatal("a stream went on after Close")
		}
	}
}

// TestCloseWaitIsBounded: an answer that never ends holds Close up for the server's wait
// only, not for ever.
func TestCloseWaitIsBounded(t *testing.T) {
	srv, name := listen(t)
	srv.wait = 100 * time.Millisecond
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	go srv.Serve(func(Peer, Request) (any, error) {
		close(started)
		<-release
		return nil, nil
	})
	go Call(name, "stuck", nil, nil)
	<-started
	begin := time.Now()
	srv.Close()
	if took := time.Since(begin); took < srv.wait || took > 2*time.Second {
		t.Fatalf("Close took %v with an answer that never ends; want about %v", took, srv.wait)
	}
}

// TestCallRefusesSquatter: anyone may bind the abstract name before mctun does; Call talks
// only to a process that is root or holds CAP_NET_ADMIN, and says who holds the name.
func TestCallRefusesSquatter(t *testing.T) {
	if name := os.Getenv("MCTUN_CONTROL_SQUAT"); name != "" { // the squatter, run below
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		fmt.Println("listening")
		for range 10 {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(0)
			}
			io.WriteString(c, "{}\n\"all is well\"\n")
			c.Close()
		}
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the squatter runs as nobody")
	}
	// nobody must be able to run the test binary: a copy in a directory it may enter.
	dir, err := os.MkdirTemp("", "mctun-squat-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "squat"), bin, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("@mctun-test-%d", rand.Uint64())
	cmd := exec.Command(filepath.Join(dir, "squat"), "-test.run=^TestCallRefusesSquatter$")
	cmd.Env = append(os.Environ(), "MCTUN_CONTROL_SQUAT="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "listening\n" {
		t.Fatalf("the squatter did not start: %q, %v", line, err)
	}
	var answer string
	err = Call(name, "status", nil, &answer)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("held by process %d of uid 65534", cmd.Process.Pid)) {
		t.Fatalf("Call to a squatter = %q, %v; want an error that names it", answer, err)
	}
}
