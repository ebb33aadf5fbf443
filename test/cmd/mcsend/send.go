package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"mctun/test/stream"
)

// maxSleep bounds one pacing sleep, so a signal is noticed quickly even at low rates.
const maxSleep = 50 * time.Millisecond

// sender owns the socket and one buffer per message of a batch.
type sender struct {
	cfg  config
	conn net.PacketConn
	pc   *ipv4.PacketConn
	msgs []ipv4.Message
}

// newSender opens a UDP socket (or, with a -proto other than 17, a raw one) and sets the
// multicast options the flags ask for.
func newSender(cfg config) (*sender, error) {
	network, laddr := "udp4", ":"+strconv.Itoa(cfg.srcPort)
	var dst net.Addr = &net.UDPAddr{IP: cfg.group.AsSlice(), Port: cfg.port}
	if cfg.proto != 17 {
		network, laddr = "ip4:"+strconv.Itoa(cfg.proto), "0.0.0.0"
		dst = &net.IPAddr{IP: cfg.group.AsSlice()}
	}
	conn, err := net.ListenPacket(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("open %s socket: %w", network, err)
	}
	s := &sender{cfg: cfg, conn: conn, pc: ipv4.NewPacketConn(conn)}
	if err := s.setOptions(); err != nil {
		conn.Close()
		return nil, err
	}
	s.msgs = make([]ipv4.Message, cfg.batch)
	for i := range s.msgs {
		s.msgs[i] = ipv4.Message{Buffers: [][]byte{make([]byte, cfg.size)}, Addr: dst}
	}
	return s, nil
}

// setOptions sizes the send buffer and applies TTL, interface and loopback for a
// multicast destination.
func (s *sender) setOptions() error {
	if err := s.setSndbuf(); err != nil {
		return err
	}
	if !s.cfg.group.IsMulticast() {
		return nil
	}
	if err := s.pc.SetMulticastTTL(s.cfg.ttl); err != nil {
		return fmt.Errorf("set IP_MULTICAST_TTL %d: %w", s.cfg.ttl, err)
	}
	if err := s.pc.SetMulticastLoopback(s.cfg.loop); err != nil {
		return fmt.Errorf("set IP_MULTICAST_LOOP: %w", err)
	}
	if s.cfg.iface != "" {
		ifi, err := net.InterfaceByName(s.cfg.iface)
		if err != nil {
			return fmt.Errorf("-iface: %w", err)
		}
		if err := s.pc.SetMulticastInterface(ifi); err != nil {
			return fmt.Errorf("set IP_MULTICAST_IF %s: %w", s.cfg.iface, err)
		}
	}
	return nil
}

// setSndbuf asks for cfg.sndbuf bytes with SO_SNDBUFFORCE, which root may use beyond
// net.core.wmem_max, else with SO_SNDBUF. A larger buffer keeps a batch from blocking
// while the kernel still holds the previous ones.
func (s *sender) setSndbuf() error {
	if s.cfg.sndbuf == 0 {
		return nil
	}
	rc, err := s.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, s.cfg.sndbuf) != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, s.cfg.sndbuf)
		}
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("set send buffer: %w", err)
	}
	return nil
}

func (s *sender) close() { s.conn.Close() }

// run sends until the count is reached, the duration is over or ctx is cancelled, and
// reports what it did. Sequence numbers run from 0; a datagram the kernel refuses keeps
// its number, so the receiver sees a gap where it is missing.
func (s *sender) run(ctx context.Context) stream.SendReport {
	var rep stream.SendReport
	start := time.Now()
	deadline := start.Add(s.cfg.duration)
	var seq uint64
	rep.Stop = "count"
	for seq < s.cfg.count {
		now := time.Now()
		if ctx.Err() != nil {
			rep.Stop = "signal"
			break
		}
		if !now.Before(deadline) {
			rep.Stop = "duration"
			break
		}
		n := s.due(start, now, seq)
		if n == 0 {
			s.sleepUntil(start.Add(s.at(seq)), deadline)
			continue
		}
		s.fill(seq, n, now.UnixNano())
		s.write(s.msgs[:n], &rep)
		seq += uint64(n)
	}
	rep.ElapsedNs = int64(time.Since(start))
	rep.Bytes = rep.Sent * uint64(s.cfg.size)
	if rep.ElapsedNs > 0 {
		rep.PPS = float64(rep.Sent) / time.Duration(rep.ElapsedNs).Seconds()
	}
	return rep
}

// due returns how many datagrams may go now: those whose scheduled time has come, at most
// one batch and never past the count.
func (s *sender) due(start, now time.Time, seq uint64) int {
	n := min(uint64(len(s.msgs)), s.cfg.count-seq)
	if s.cfg.rate > 0 {
		scheduled := uint64(now.Sub(start).Seconds()*s.cfg.rate) + 1 // packets 0..k are due at k/rate
		if scheduled <= seq {
			return 0
		}
		n = min(n, scheduled-seq)
	}
	return int(n)
}

// at is the time after the start when datagram seq is due.
func (s *sender) at(seq uint64) time.Duration {
	return time.Duration(float64(seq) / s.cfg.rate * float64(time.Second))
}

// sleepUntil sleeps with nanosleep(2) until t, but not past deadline nor longer than
// maxSleep. Go's own timers wake up to a millisecond late, too coarse for 100k pps.
//
// The sleep is a raw system call, which Go's scheduler does not see: the thread just sleeps,
// as a C application's does. Through unix.Nanosleep, the scheduler's
// monitor took the processor from each sleep longer than 20 µs and handed it back after:
// measured in the benchmark, nearly six context switches per datagram at 2,800 pps where
// this takes under two, in work the same for every system measured and so only noise to their
// comparison. The cost: a garbage collection waits for the sleep to end, at most maxSleep.
func (s *sender) sleepUntil(t, deadline time.Time) {
	if deadline.Before(t) {
		t = deadline
	}
	d := min(time.Until(t), maxSleep)
	if d <= 0 {
		return
	}
	ts := unix.NsecToTimespec(int64(d))
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0) // EINTR just ends the sleep early
}

// fill writes the payloads of datagrams seq..seq+n-1 into the first n messages.
func (s *sender) fill(seq uint64, n int, nowNs int64) {
	for i := range n {
		stream.Encode(s.msgs[i].Buffers[0], seq+uint64(i), nowNs)
	}
}

// write sends msgs with as few sendmmsg calls as it takes. A message the kernel refuses is
// counted, remembered if it is the first, and skipped.
func (s *sender) write(msgs []ipv4.Message, rep *stream.SendReport) {
	for len(msgs) > 0 {
		n, err := s.pc.WriteBatch(msgs, 0)
		n = max(n, 0) // a failed sendmmsg reports -1
		rep.Sent += uint64(n)
		msgs = msgs[n:]
		if err != nil {
			rep.Errors++
			if rep.FirstError == "" {
				rep.FirstError = err.Error()
			}
			if len(msgs) > 0 {
				msgs = msgs[1:]
			}
		}
	}
}
