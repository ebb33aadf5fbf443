package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"mctun/test/stream"
)

// receiver owns the socket, the read batch and the statistics of one run.
type receiver struct {
	cfg   config
	conn  net.PacketConn
	raw   syscall.RawConn
	pc    *ipv4.PacketConn
	batch *batch

	stopping atomic.Bool // set by a signal; ends the loop at its next deadline check

	rep       stream.RecvReport
	tracker   *stream.Tracker
	latency   stream.Histogram
	senders   map[netip.Addr]uint64
	firstNs   int64 // arrival of the first good datagram
	lastNs    int64 // arrival of the latest good datagram
	anyGood   bool
	lastAnyNs int64 // arrival of the latest datagram of any kind, for -idle
}

// newReceiver opens the socket, sizes its buffer and joins the group.
func newReceiver(cfg config) (*receiver, error) {
	conn, err := listen(cfg)
	if err != nil {
		return nil, err
	}
	r := &receiver{
		cfg:     cfg,
		conn:    conn,
		pc:      ipv4.NewPacketConn(conn),
		tracker: stream.NewTracker(cfg.maxSeq),
		senders: map[netip.Addr]uint64{},
	}
	r.raw, err = conn.(syscall.Conn).SyscallConn()
	if err == nil {
		err = r.setup()
	}
	if err == nil {
		err = blocking(r.raw)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	r.batch = newBatch(cfg.batch, 65536)
	return r, nil
}

// listen opens the UDP socket bound to group:port with SO_REUSEADDR, or the raw socket.
func listen(cfg config) (net.PacketConn, error) {
	if cfg.proto != 17 {
		network := "ip4:" + strconv.Itoa(cfg.proto)
		conn, err := net.ListenPacket(network, "0.0.0.0")
		if err != nil {
			return nil, fmt.Errorf("open %s socket: %w", network, err)
		}
		return conn, nil
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	addr := netip.AddrPortFrom(cfg.group, uint16(cfg.port)).String()
	conn, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", addr, err)
	}
	return conn, nil
}

// setup sizes the receive buffer and joins the group.
func (r *receiver) setup() error {
	if err := r.setRcvbuf(); err != nil {
		return err
	}
	if !r.cfg.group.IsMulticast() {
		return nil
	}
	var ifi *net.Interface // nil: the kernel picks by route, as with INADDR_ANY
	if r.cfg.iface != "" {
		var err error
		if ifi, err = net.InterfaceByName(r.cfg.iface); err != nil {
			return fmt.Errorf("-iface: %w", err)
		}
	}
	if err := r.pc.JoinGroup(ifi, &net.IPAddr{IP: r.cfg.group.AsSlice()}); err != nil {
		return fmt.Errorf("join %s: %w", r.cfg.group, err)
	}
	return nil
}

// setRcvbuf asks for cfg.rcvbuf bytes with SO_RCVBUFFORCE, which root may use beyond
// net.core.rmem_max, else with SO_RCVBUF, and records what the kernel granted.
func (r *receiver) setRcvbuf() error {
	var serr error
	err := r.raw.Control(func(fd uintptr) {
		if r.cfg.rcvbuf > 0 {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, r.cfg.rcvbuf) != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, r.cfg.rcvbuf)
			}
		}
		r.rep.RcvBuf, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	return nil
}

func (r *receiver) close() { r.conn.Close() }

// run reads batches until a stop condition, then returns the report. ctx ending (a signal)
// stops it too.
func (r *receiver) run(ctx context.Context) (stream.RecvReport, error) {
	stopWatch := context.AfterFunc(ctx, func() { r.stopping.Store(true) }) // seen within pollInterval
	defer stopWatch()
	end := time.Now().Add(r.cfg.timeout)
	var err error
	for r.rep.Stop == "" {
		err = r.readBatch(end)
	}
	return r.report(), err
}

// readBatch reads and handles one batch, setting r.rep.Stop when the run is over. Once its
// deadline has passed it takes only what already waits, so that a deadline that passed
// while this process was not running is not taken for an idle or finished stream.
func (r *receiver) readBatch(end time.Time) error {
	deadline, why := end, "timeout"
	if r.lastAnyNs != 0 {
		if idleEnd := time.Unix(0, r.lastAnyNs).Add(r.cfg.idle); idleEnd.Before(end) {
			deadline, why = idleEnd, "idle"
		}
	}
	if r.stopping.Load() {
		r.rep.Stop = "signal"
		return nil
	}
	over := !time.Now().Before(deadline)
	n, err := r.batch.read(r.raw, over)
	now := time.Now().UnixNano()
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR): // nothing within pollInterval
		if over {
			r.rep.Stop = why
		}
		return nil
	case err != nil:
		r.rep.Stop = "error"
		return fmt.Errorf("read: %w", err)
	}
	for i := range n {
		b, from, trunc := r.batch.message(i)
		r.handle(b, from, trunc, now)
	}
	if r.cfg.count > 0 && r.tracker.Unique >= r.cfg.count {
		r.rep.Stop = "count"
	}
	return nil
}

// handle checks one datagram, b from the address from (trunc: cut short to fit the
// buffer), and counts it.
func (r *receiver) handle(b []byte, from netip.Addr, trunc bool, now int64) {
	if r.cfg.proto != 17 {
		var ok bool
		if b, ok = r.rawPayload(b); !ok {
			return // another destination's packet of the same protocol
		}
	}
	r.rep.Received++
	r.lastAnyNs = now
	if trunc || (r.cfg.size > 0 && len(b) != r.cfg.size) {
		r.rep.Bad++
		return
	}
	h, err := stream.Check(b)
	if err != nil {
		r.rep.Bad++
		return
	}
	r.senders[from]++
	if !r.tracker.Add(h.Seq) {
		return
	}
	r.latency.Record(now - h.SentNs)
	if !r.anyGood {
		r.anyGood, r.firstNs = true, now
	}
	r.lastNs = now
}

// rawPayload strips the IPv4 header a raw socket delivers and reports whether the packet
// was addressed to the group.
func (r *receiver) rawPayload(b []byte) ([]byte, bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl || netip.AddrFrom4([4]byte(b[16:20])) != r.cfg.group {
		return nil, false
	}
	return b[ihl:], true
}

// report fills in the summary fields of the report from the run's statistics.
func (r *receiver) report() stream.RecvReport {
	rep := r.rep
	t := r.tracker
	rep.Unique, rep.Duplicates, rep.Reordered = t.Unique, t.Duplicates, t.Reordered
	rep.OutOfRange, rep.Missing = t.OutOfRange, t.Missing()
	if t.Unique > 0 {
		first, last := t.First, t.Last
		rep.FirstSeq, rep.LastSeq = &first, &last
	}
	rep.Senders = map[string]uint64{}
	for a, n := range r.senders {
		rep.Senders[a.String()] = n
	}
	rep.LatencyNs = r.latency.Summary()
	rep.SpanNs = r.lastNs - r.firstNs
	if rep.SpanNs > 0 {
		rep.PPS = float64(rep.Unique-1) / time.Duration(rep.SpanNs).Seconds()
	}
	rep.KernelDrops = r.kernelDrops()
	return rep
}

// skMeminfoDrops is the index of the drop counter in the SO_MEMINFO array
// (SK_MEMINFO_DROPS in linux/sock_diag.h), which has skMeminfoVars entries.
const (
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

// kernelDrops returns the datagrams the kernel dropped at this socket, from SO_MEMINFO,
// or 0 if the kernel does not say.
func (r *receiver) kernelDrops() uint64 {
	var info [skMeminfoVars]uint32
	size := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	r.raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if errno != 0 || size < (skMeminfoDrops+1)*4 {
		fmt.Fprintln(os.Stderr, "mcrecv: SO_MEMINFO:", errno)
		return 0
	}
	return uint64(info[skMeminfoDrops])
}
