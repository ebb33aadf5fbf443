//go:build e2e || soak

package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"mctun/test/stream"
	"mctun/test/topo"
)

const (
	// resumeBound is how soon after a fault ends a member must receive again.
	resumeBound = time.Second
	// lossMargin: a datagram lost to a fault was sent after the fault began, less this much
	// for what was in flight (mctun's batch, the veths); well above the microseconds it takes.
	lossMargin = 100 * time.Millisecond
)

// recorder is a multicast application inside a host, run by the test itself: it joins a group
// the way mcrecv does (the route picks the interface) and records, for every sequence number
// of an mcsend stream, when that datagram was sent and when its first copy arrived. The fault
// and soak tests need exactly that, which mcrecv's summary does not say: which datagrams were
// lost, when they had been sent, and how long after a fault a member received again.
//
// Restart stands for restarting the application, which a member needs after its mctun
// restarted (the group was joined on the old TUN, which went away with it).
type recorder struct {
	t     testing.TB
	host  *topo.Host
	group netip.AddrPort
	from  netip.Addr // the stream's sender; datagrams from anyone else count as foreign

	mu       sync.Mutex
	conn     *net.UDPConn
	done     chan struct{} // closed when the current reader returns
	sent     []int64       // by sequence number: the send time its payload carries, 0 if not arrived
	arrived  []int64       // by sequence number: when its first copy arrived
	unique   int
	dups     int
	bad      int // not a stream payload, or a sequence number out of range
	foreign  int // a stream payload from another sender than from
	sockDrop uint64
}

// startRecorder joins group on h and records a stream of at most max datagrams from from.
func startRecorder(t testing.TB, h *topo.Host, group netip.AddrPort, from netip.Addr, max int) *recorder {
	t.Helper()
	r := &recorder{t: t, host: h, group: group, from: from, sent: make([]int64, max), arrived: make([]int64, max)}
	if err := r.open(); err != nil {
		t.Fatalf("%s: recorder: %v", h, err)
	}
	t.Cleanup(r.close)
	return r
}

// open binds a socket to the group's address and port in the host's namespace, joins the
// group on the interface the routing table names for it, and starts reading.
func (r *recorder) open() error {
	var conn *net.UDPConn
	err := r.host.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20))
			})
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp4", r.group.String())
		if err != nil {
			return err
		}
		conn = pc.(*net.UDPConn)
		if err := ipv4.NewPacketConn(conn).JoinGroup(nil, &net.UDPAddr{IP: r.group.Addr().AsSlice()}); err != nil {
			conn.Close()
			return fmt.Errorf("join %v: %w", r.group.Addr(), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.conn, r.done = conn, done
	r.mu.Unlock()
	go r.read(conn, done)
	return nil
}

// read records what arrives on conn until it is closed.
func (r *recorder) read(conn *net.UDPConn, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 65536)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		h, cerr := stream.Check(buf[:n])
		r.mu.Lock()
		switch {
		case cerr != nil || h.Seq >= uint64(len(r.sent)):
			r.bad++
		case from.Addr().Unmap() != r.from:
			r.foreign++
		case r.arrived[h.Seq] != 0:
			r.dups++
		default:
			r.sent[h.Seq], r.arrived[h.Seq] = h.SentNs, now
			r.unique++
		}
		r.mu.Unlock()
	}
}

// close stops the application; it keeps what it recorded.
func (r *recorder) close() {
	r.mu.Lock()
	conn, done := r.conn, r.done
	r.conn = nil
	r.mu.Unlock()
	if conn == nil {
		return
	}
	r.sockDrop += socketDrops(conn)
	conn.Close()
	<-done
}

// restart stops the application and starts it again, as an operator does after restarting
// mctun on a member.
func (r *recorder) restart() {
	r.t.Helper()
	r.close()
	if err := r.open(); err != nil {
		r.t.Fatalf("%s: recorder restart: %v", r.host, err)
	}
}

// count is how many distinct datagrams of the stream arrived.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unique
}

// waitCount waits until at least n distinct datagrams arrived, or timeout.
func (r *recorder) waitCount(n int, timeout time.Duration) bool {
	return poll(timeout, func() bool { return r.count() >= n })
}

// settle waits until n datagrams arrived, or until nothing new arrived for quiet, or timeout:
// the stream is over and whatever was coming has come.
func (r *recorder) settle(n int, quiet, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		c := r.count()
		if c >= n {
			return
		}
		if c != last {
			last, since = c, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstAfter returns the arrival time of the first datagram that arrived after t, and its
// sequence number; ok is false if none did.
func (r *recorder) firstAfter(t time.Time) (at time.Time, seq int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	best := int64(0)
	for s, a := range r.arrived {
		if a > t.UnixNano() && (best == 0 || a < best) {
			best, seq = a, s
		}
	}
	return time.Unix(0, best), seq, best != 0
}

// gap is a run of consecutive sequence numbers that never arrived, with the send times it
// spans: from the send time of the datagram before it to that of the datagram after it.
type gap struct {
	first, last int       // sequence numbers
	after       time.Time // the last datagram that arrived before the gap was sent then
	before      time.Time // the first that arrived after it was sent then (zero: none did)
}

func (g gap) n() int { return g.last - g.first + 1 }

func (g gap) String() string {
	end := "the end"
	if !g.before.IsZero() {
		end = g.before.Format("15:04:05.000")
	}
	return fmt.Sprintf("%d-%d (%d datagrams, sent between %s and %s)", g.first, g.last, g.n(), g.after.Format("15:04:05.000"), end)
}

// gaps returns the runs of sequence numbers below n that never arrived.
func (r *recorder) gaps(n int) []gap {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []gap
	var prevSent int64
	for s := 0; s < n && s < len(r.arrived); s++ {
		if r.arrived[s] != 0 {
			if len(out) > 0 && out[len(out)-1].before.IsZero() && out[len(out)-1].last == s-1 {
				out[len(out)-1].before = time.Unix(0, r.sent[s])
			}
			prevSent = r.sent[s]
			continue
		}
		if len(out) > 0 && out[len(out)-1].last == s-1 {
			out[len(out)-1].last = s
			continue
		}
		out = append(out, gap{first: s, last: s, after: time.Unix(0, prevSent)})
	}
	return out
}

// missing is how many of the sequence numbers below n never arrived.
func missing(gaps []gap) int {
	m := 0
	for _, g := range gaps {
		m += g.n()
	}
	return m
}

// summary is the recorder's counts, for failure messages.
func (r *recorder) summary(n int) string {
	gaps := r.gaps(n)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf("%s: %d of %d arrived, %d missing in %d gaps, %d duplicates, %d bad, %d foreign, %d dropped at its socket",
		r.host, r.unique, n, missing(gaps), len(gaps), r.dups, r.bad, r.foreign, r.sockDrop)
	for i, g := range gaps {
		if i == 5 {
			s += fmt.Sprintf("\n  ... %d more gaps", len(gaps)-5)
			break
		}
		s += "\n  gap " + g.String()
	}
	return s
}

// checkComplete asserts that every one of n datagrams arrived exactly once, intact, from the
// stream's sender.
func (r *recorder) checkComplete(who string, n int) {
	r.t.Helper()
	r.mu.Lock()
	ok := r.unique == n && r.dups == 0 && r.bad == 0 && r.foreign == 0
	r.mu.Unlock()
	if !ok {
		r.t.Errorf("%s lost or garbled datagrams: %s", who, r.summary(n))
	}
}

// socketDrops is what the kernel dropped at conn because its buffer was full (SO_MEMINFO),
// so that a loss of the test's own application is never blamed on mctun.
func socketDrops(conn *net.UDPConn) uint64 {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0
	}
	var info [9]uint32 // SK_MEMINFO_VARS entries; SK_MEMINFO_DROPS is the last
	size := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if errno != 0 || size < uint32(unsafe.Sizeof(info)) {
		return 0
	}
	return uint64(info[8])
}

// poll calls cond every 10 ms until it is true or timeout passes, and reports whether it
// became true.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rss is the resident memory of a process in bytes (VmRSS in /proc/PID/status).
func rss(t testing.TB, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("rss of pid %d: %v", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				break
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// mib formats bytes in MiB.
func mib(b int64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }

// keepRestored takes a snapshot of every host now, before mctun runs anywhere, and checks at
// the very end of the test, after every mctun down the test arranged, that each host that
// still exists is as it was. Call it before the first w.up.
func (w *world) keepRestored() map[string]string {
	w.t.Helper()
	before := map[string]string{}
	for _, h := range w.hosts {
		before[h.Name] = w.snapshot(h)
	}
	w.t.Cleanup(func() {
		for _, h := range w.hosts {
			if _, err := os.Stat(h.NetnsPath()); err != nil {
				continue // removed by the test
			}
			s, err := h.Snapshot(context.Background())
			if err != nil {
				w.t.Errorf("%s: snapshot: %v", h, err)
			} else if s != before[h.Name] {
				w.t.Errorf("%s: not as it was before mctun up, after mctun down:\nbefore:\n%s\nafter:\n%s", h, before[h.Name], s)
			}
		}
	})
	return before
}

// linkDown takes the router's end of h's link down, like a member host that drops off the
// network: ip link set h<i> down, in the router's namespace.
func (w *world) linkDown(h *topo.Host) {
	w.t.Helper()
	if out, err := w.topo.Router.Run(w.ctx, "ip", "link", "set", h.Peer, "down"); err != nil {
		w.t.Fatalf("router: %v: %s", err, out)
	}
}

// linkBack is how a link came back after linkUp: when it was operational on both ends (the
// kernel applies a carrier change up to a second late: linkwatch), and when the router had
// resolved the host's address again (ARP: a request sent while the link was still coming up
// is lost, and the router asks again only after net.ipv4.neigh.<dev>.retrans_time_ms, 1 s).
// Only then can anything reach the host.
type linkBack struct {
	operational, resolved time.Duration // after ip link set ... up returned
}

// linkUp brings the router's end of h's link up again and returns once packets can reach h
// again: the link operational and the router's neighbour entry for h resolved.
func (w *world) linkUp(h *topo.Host) linkBack {
	w.t.Helper()
	if out, err := w.topo.Router.Run(w.ctx, "ip", "link", "set", h.Peer, "up"); err != nil {
		w.t.Fatalf("router: %v: %s", err, out)
	}
	start := time.Now()
	var b linkBack
	up := func(on *topo.Host, dev string) bool {
		out, err := on.Run(w.ctx, "ip", "-o", "link", "show", "dev", dev)
		return err == nil && strings.Contains(out, " state UP ")
	}
	if !poll(5*time.Second, func() bool { return up(w.topo.Router, h.Peer) && up(h, h.Iface) }) {
		w.t.Fatalf("the link to %s is not up 5s after ip link set %s up", h, h.Peer)
	}
	b.operational = time.Since(start)
	resolved := func() bool {
		out, err := w.topo.Router.Run(w.ctx, "ip", "neigh", "show", h.Addr.String(), "dev", h.Peer)
		return err == nil && strings.Contains(out, "lladdr")
	}
	if !poll(5*time.Second, resolved) {
		w.t.Fatalf("the router has not resolved %s's address 5s after its link came up", h)
	}
	b.resolved = time.Since(start)
	return b
}
