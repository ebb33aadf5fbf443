// Package control is how mctun commands talk to a running mctun: one JSON request and one JSON
// response per connection over a Unix socket in the abstract namespace.
//
// Abstract Unix sockets belong to a network namespace, so every namespace has its own
// "@mctun" and instances in different namespaces never meet. Anyone in the namespace may
// connect; the server learns the caller's credentials from the kernel (SO_PEERCRED) and lets
// only root or a holder of CAP_NET_ADMIN (in mctun's user namespace: HasNetAdmin) change
// anything.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SocketName is the abstract socket address of the running instance in this namespace.
const SocketName = "@mctun"

// ErrNotRunning is what Call returns when no instance listens in this namespace.
var ErrNotRunning = errors.New("mctun is not running in this network namespace")

// ErrNotPermitted is the error a handler returns to a caller that may only look.
var ErrNotPermitted = errors.New("operation not permitted: changing a running mctun needs root or CAP_NET_ADMIN")

// Request is one command to the running instance.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is the first line of the running instance's answer. Unless it carries an error,
// the answer's data follows as one JSON value, or its stream follows.
type Response struct {
	Error string `json:"error,omitempty"`
}

// Peer is who sent a request, as the kernel vouches.
type Peer struct {
	PID, UID int
	// Privileged is true for root or a process with CAP_NET_ADMIN in its effective set, in
	// this user namespace (HasNetAdmin).
	Privileged bool
}

// Handler answers one request. If what it returns is a Streamer, the answer is followed by
// the stream.
type Handler func(peer Peer, req Request) (any, error)

// Streamer is an answer that goes on after the JSON response: Stream writes to the caller
// until it is done or ctx ends, which happens when the caller hangs up.
type Streamer interface {
	Stream(ctx context.Context, w io.Writer) error
}

// Server accepts requests for a Handler.
type Server struct {
	ln  *net.UnixListener
	log *slog.Logger

	mu     sync.Mutex
	open   map[int]int     // unprivileged uid -> its connections open now
	limit  int             // the most one unprivileged uid may have open at once
	closed bool            // Close began: no connection is answered any more
	active sync.WaitGroup  // the connections being answered
	ended  context.Context // done at Close: the streams end with it
	end    context.CancelFunc
	wait   time.Duration // the longest Close waits for the answers under way
}

// MaxOpenPerUser is how many connections one unprivileged user may have open at once: a
// stats or dump stream lasts as long as its caller wants, and without a bound a user who
// opened thousands of them and never read would use up the daemon's file descriptors.
const MaxOpenPerUser = 16

// Listen claims the control socket name (SocketName; tests use others). It fails if another
// instance holds it.
func Listen(name string, log *slog.Logger) (*Server, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", name, errors.Unwrap(err))
	}
	ended, end := context.WithCancel(context.Background())
	return &Server{ln: ln, log: log, open: map[int]int{}, limit: MaxOpenPerUser, ended: ended, end: end, wait: CloseWait}, nil
}

// CloseWait is the longest Close waits for the answers under way: long enough for a status
// of thousands of members, short enough that a caller who stopped reading cannot hold up
// mctun down.
const CloseWait = 5 * time.Second

// Serve answers requests until Close. Each connection gets its own goroutine and a deadline,
// so a stuck client cannot hold the server. An accept that fails for want of resources (file
// descriptors, memory) is tried again after a pause, as net/http does: the control socket
// must outlive a moment of exhaustion, or mctun could no longer be stopped.
func (s *Server) Serve(h Handler) error {
	var pause time.Duration
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !transient(err) {
				return fmt.Errorf("control: accept: %w", err)
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.log.Warn("control: accept failed; trying again", "err", err, "in", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		if !s.track() {
			conn.Close()
			continue
		}
		go func() {
			defer s.active.Done()
			s.serveConn(conn, h)
		}()
	}
}

// track counts a connection as under way until its answer ends, and reports whether it may
// be answered: not once Close began.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.active.Add(1)
	return true
}

// transient reports whether an accept error is a shortage that passes.
func transient(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM, unix.ECONNABORTED, unix.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// admit counts a connection of an unprivileged peer against its user's limit, and reports
// whether it is within it; done releases it.
func (s *Server) admit(p Peer) (ok bool, done func()) {
	if p.Privileged {
		return true, func() {}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[p.UID] >= s.limit {
		return false, nil
	}
	s.open[p.UID]++
	return true, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.open[p.UID]--; s.open[p.UID] == 0 {
			delete(s.open, p.UID)
		}
	}
}

// Close stops Serve, ends the streams and waits for the answers under way, at most
// CloseWait, so that the caller may then close what the Handler reads. An answer that
// outlasts the wait (to a caller that reads slowly) goes on; Close logs it.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.ln.Close()
	s.end()
	done := make(chan struct{})
	go func() {
		s.active.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(s.wait):
		s.log.Warn("control: answers still under way after " + s.wait.String() + "; closing all the same")
	}
	return err
}

func (s *Server) serveConn(conn *net.UnixConn, h Handler) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	peer, err := peerOf(conn)
	if err != nil {
		s.log.Warn("control: cannot identify caller", "err", err)
		return
	}
	ok, done := s.admit(peer)
	if !ok {
		json.NewEncoder(conn).Encode(Response{Error: fmt.Sprintf("too many connections to mctun from uid %d at once (at most %d)", peer.UID, s.limit)})
		return
	}
	defer done()
	var req Request
	var resp Response
	var data any
	if err := json.NewDecoder(io.LimitReader(conn, 1<<20)).Decode(&req); err != nil {
		resp.Error = "bad request: " + err.Error()
	} else if data, err = h(peer, req); err != nil {
		resp.Error = err.Error()
	}
	// The data is encoded once, straight onto the connection: a status of 65,536 members
	// is megabytes, and copies of it would be the daemon's peak memory.
	w := bufio.NewWriter(conn)
	enc := json.NewEncoder(w)
	if err := enc.Encode(resp); err != nil || resp.Error != "" {
		w.Flush()
		return
	}
	stream, ok := data.(Streamer)
	if !ok {
		if err := enc.Encode(data); err != nil {
			s.log.Warn("control: answer", "op", req.Op, "err", err)
		}
		w.Flush()
		return
	}
	if err := w.Flush(); err != nil {
		return
	}
	// A stream lasts as long as the caller wants it; it ends when the caller hangs up, which
	// a read then sees, or at Close, which also makes a write that waits for a caller who
	// does not read fail at once.
	conn.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(s.ended)
	defer cancel()
	context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Now()) })
	go func() {
		io.Copy(io.Discard, conn)
		cancel()
	}()
	if err := stream.Stream(ctx, conn); err != nil && ctx.Err() == nil {
		s.log.Warn("control: stream ended", "op", req.Op, "err", err)
	}
}

// peerOf asks the kernel who is on the other end.
func peerOf(conn *net.UnixConn) (Peer, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return Peer{}, err
	}
	p := Peer{PID: int(cred.Pid), UID: int(cred.Uid)}
	p.Privileged = p.UID == 0 || HasNetAdmin(p.PID, p.UID)
	return p, nil
}

// HasNetAdmin reports whether process pid, which connected as uid, has CAP_NET_ADMIN over
// this process's network: in its effective set, in this process's user namespace, and still
// with the effective uid it connected with. Capabilities a process holds in a user namespace
// of its own (unshare -U -r, open to any user) give it no power here, though /proc shows
// them; and a process that became another user since it connected (a setuid program it
// executed, with the connection held by its child) is not who connected.
func HasNetAdmin(pid, uid int) bool {
	if !sameUserNS(pid) {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	capEff, euid := false, -1
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			capEff = err == nil && caps&(1<<unix.CAP_NET_ADMIN) != 0
		}
		if ids, ok := strings.CutPrefix(line, "Uid:"); ok { // real, effective, saved, fs
			if f := strings.Fields(ids); len(f) > 1 {
				euid, _ = strconv.Atoi(f[1])
			}
		}
	}
	return capEff && euid == uid
}

// sameUserNS reports whether process pid is in this process's user namespace.
func sameUserNS(pid int) bool {
	var self, peer unix.Stat_t
	if unix.Stat("/proc/self/ns/user", &self) != nil || unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/user", &peer) != nil {
		return false
	}
	return self.Dev == peer.Dev && self.Ino == peer.Ino
}

// Call sends one request to the instance listening on the control socket name and decodes the
// answer's data into out (unless out is nil).
func Call(name, op string, args, out any) error {
	conn, r, err := call(name, op, args)
	if err != nil {
		return err
	}
	defer conn.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(r).Decode(out); err != nil {
		return fmt.Errorf("control: %s: bad answer from mctun: %w", op, err)
	}
	return nil
}

// CallStream sends a request whose answer is a stream and returns the stream; closing it
// hangs up, which ends the stream at the other end too.
func CallStream(name, op string, args any) (io.ReadCloser, error) {
	conn, r, err := call(name, op, args)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return struct {
		io.Reader
		io.Closer
	}{r, conn}, nil
}

// call sends a request and reads the answer's first line. It returns the connection and a
// reader positioned after that line, where the data or the stream follows.
func call(name, op string, args any) (net.Conn, *bufio.Reader, error) {
	var resp Response
	conn, err := net.DialTimeout("unix", name, 5*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, nil, ErrNotRunning
		}
		return nil, nil, fmt.Errorf("control: %w", err)
	}
	fail := func(err error) (net.Conn, *bufio.Reader, error) {
		conn.Close()
		return nil, nil, err
	}
	// Anyone may bind an abstract name: what answers must be mctun's daemon, which runs as
	// root or with CAP_NET_ADMIN, before anything is sent to it or believed of it.
	server, err := peerOf(conn.(*net.UnixConn))
	if err != nil {
		return fail(fmt.Errorf("control: cannot identify the process on %s: %w", name, err))
	}
	if !server.Privileged {
		return fail(fmt.Errorf("control: %s is held by process %d of uid %d, which is not mctun (neither root nor CAP_NET_ADMIN): not talking to it", name, server.PID, server.UID))
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := Request{Op: op}
	if args != nil {
		if req.Args, err = json.Marshal(args); err != nil {
			return fail(err)
		}
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fail(fmt.Errorf("control: send %s: %w", op, err))
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &resp)
	}
	if err != nil {
		return fail(fmt.Errorf("control: %s: no answer from mctun: %w", op, err))
	}
	if resp.Error != "" {
		return fail(errors.New(resp.Error))
	}
	return conn, r, nil
}
