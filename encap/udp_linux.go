package encap

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"mctun/internal/rawcall"
)

// UDPOptions tunes a UDPConn.
type UDPOptions struct {
	BatchSize  int // messages per recvmmsg/sendmmsg; default 64
	RecvBuffer int // SO_RCVBUF bytes; default 4 MiB, so bursts are absorbed
	SendBuffer int // SO_SNDBUF bytes; default 4 MiB

	// SendOnly opens a socket that is never read, kept out of Go's netpoller (ReadBatch
	// fails). A socket in the netpoller wakes whichever thread waits there each time a
	// datagram it sent leaves the host (the kernel signals room to write per datagram),
	// whether or not anyone waits to write: at tens of thousands of copies a second, a thread
	// woken for nothing thousands of times a second, CPU the packet path needs. A send-only
	// socket waits for room, when its buffer is full, in poll(2).
	SendOnly bool
}

// MaxPacket is the largest tunnel packet a UDP datagram can carry; ReadBatch buffers of this
// size are never truncated.
const MaxPacket = 65535 - 20 - 8

// UDPConn is the Linux Conn: an IPv4 UDP socket driven by recvmmsg and sendmmsg through Go's
// netpoller, so a batch costs one system call and a blocked call ends when the socket closes;
// or, send-only (UDPOptions.SendOnly), sendmmsg outside it.
//
// The calls are made with RawSyscall: with MSG_DONTWAIT on a non-blocking socket they never
// block (EAGAIN sends the goroutine back to the netpoller), so they need none of the
// scheduler's system-call bookkeeping, whose cost per call (waking the idle sysmon thread)
// was about a fifth of mctun's CPU at 20k packets/s. One call in rawcall.Every is a regular
// one, so that a goroutine busy with them does not keep the process's other sockets unpolled.
type UDPConn struct {
	conn     io.Closer // the *net.UDPConn, or a send-only socket's *os.File
	local    netip.AddrPort
	raw      syscall.RawConn
	sendOnly bool // outside the netpoller: WriteBatch waits in poll(2), ReadBatch fails
	batch    int

	r *mmsgs // the single reader's

	wmu sync.Mutex
	w   *mmsgs // the writers', one at a time
}

// mmsgs is the kernel-facing scratch for one batch, allocated once: a message header, an
// iovec and a socket address per message, and the system call (recvmmsg or sendmmsg) with
// what it returned. call is made once too, so that handing it to the poller allocates
// nothing.
type mmsgs struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4

	trap  uintptr // SYS_RECVMMSG or SYS_SENDMMSG
	n     int     // messages in this call
	done  int     // messages the kernel took
	errno syscall.Errno
	call  func(fd uintptr) bool

	// A send-only socket's: its call, whether it is to be made again, and what it polls.
	callWaiting func(fd uintptr)
	again       bool
	pollFds     [1]unix.PollFd
}

func newMmsgs(n int, trap uintptr) *mmsgs {
	m := &mmsgs{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n),
		trap:  trap,
	}
	for i := range m.hdrs {
		m.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		m.hdrs[i].Hdr.Iov = &m.iovs[i]
		m.hdrs[i].Hdr.SetIovlen(1)
	}
	m.call = m.syscall
	m.callWaiting = m.syscallWaiting
	return m
}

// syscall makes the call for the first n messages; false (EAGAIN) sends the caller back to
// the poller to wait.
func (m *mmsgs) syscall(fd uintptr) bool {
	r, e := rawcall.Call(m.trap, fd, unsafe.Pointer(&m.hdrs[0]), uintptr(m.n), unix.MSG_DONTWAIT)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	m.done, m.errno = int(r), e
	return true
}

// syscallWaiting is syscall for a socket outside the poller: where syscall would send its
// caller to the poller, it waits for room in poll(2) itself, for a tenth of a second at most
// (so that a Close ends the wait), and sets again.
func (m *mmsgs) syscallWaiting(fd uintptr) {
	if m.again = !m.syscall(fd); m.again {
		m.pollFds[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
		unix.Poll(m.pollFds[:], 100)
	}
}

// ListenUDP opens the tunnel socket on addr; port 0 picks an ephemeral port (for a sender,
// which only sends). The socket never sets DF on what it sends (IP_PMTUDISC_DONT) and never
// sends to a broadcast address.
func ListenUDP(addr netip.AddrPort, opts UDPOptions) (*UDPConn, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 64
	}
	if opts.RecvBuffer <= 0 {
		opts.RecvBuffer = 4 << 20
	}
	if opts.SendBuffer <= 0 {
		opts.SendBuffer = 4 << 20
	}
	var c *UDPConn
	var err error
	if opts.SendOnly {
		c, err = openSendOnly(addr)
	} else {
		c, err = listenPolled(addr)
	}
	if err != nil {
		return nil, fmt.Errorf("tunnel: listen on udp %v: %w", addr, err)
	}
	var serr error
	err = c.raw.Control(func(fd uintptr) { serr = setOptions(int(fd), opts) })
	if err == nil {
		err = serr
	}
	if err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("tunnel: udp %v: %w", addr, err)
	}
	c.batch = opts.BatchSize
	c.r = newMmsgs(opts.BatchSize, unix.SYS_RECVMMSG)
	c.w = newMmsgs(opts.BatchSize, unix.SYS_SENDMMSG)
	return c, nil
}

// listenPolled opens a UDP socket in Go's netpoller.
func listenPolled(addr netip.AddrPort) (*UDPConn, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &UDPConn{conn: conn, local: conn.LocalAddr().(*net.UDPAddr).AddrPort(), raw: raw}, nil
}

// openSendOnly opens a UDP socket outside Go's netpoller: a blocking one, which os.NewFile
// leaves out, sending with MSG_DONTWAIT all the same.
func openSendOnly(addr netip.AddrPort) (*UDPConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "udp:"+addr.String())
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	sa4 := sa.(*unix.SockaddrInet4)
	return &UDPConn{conn: f, local: netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port)), raw: raw, sendOnly: true}, nil
}

// writeWaiting makes m's call on a send-only socket.
func (c *UDPConn) writeWaiting(m *mmsgs) error {
	for {
		if err := c.raw.Control(m.callWaiting); err != nil {
			return net.ErrClosed // Control fails only once the file is closed
		}
		if !m.again {
			return nil
		}
	}
}

// setOptions sets what every tunnel socket needs on fd.
func setOptions(s int, opts UDPOptions) error {
	if err := unix.SetsockoptInt(s, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT); err != nil {
		return fmt.Errorf("clear DF (IP_MTU_DISCOVER): %w", err)
	}
	// Go turns SO_BROADCAST on for every UDP socket. A member address that turns out to
	// be a subnet's broadcast address must fail, not reach every host on that subnet.
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 0); err != nil {
		return fmt.Errorf("clear SO_BROADCAST: %w", err)
	}
	// Tunnel packets carry UDP checksum 0, as RFC 8086 allows over IPv4 and as the
	// kernel path sends them: the inner packet carries its own checksums (and the
	// authenticated form a tag), and a zero checksum is one a receiver's kernel path can
	// take without computing it.
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
		return fmt.Errorf("UDP checksum off (SO_NO_CHECK): %w", err)
	}
	// The FORCE variants exceed net.core.[rw]mem_max for a privileged process; the
	// plain ones are the fallback, capped by the kernel.
	if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.RecvBuffer) != nil {
		unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, opts.RecvBuffer)
	}
	if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, opts.SendBuffer) != nil {
		unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, opts.SendBuffer)
	}
	return nil
}

// LocalAddr is the address the socket is bound to.
func (c *UDPConn) LocalAddr() netip.AddrPort {
	return c.local
}

// BatchSize implements Conn.
func (c *UDPConn) BatchSize() int { return c.batch }

// Close implements Conn.
func (c *UDPConn) Close() error { return c.conn.Close() }

// ReadBatch implements Conn. Buffers of MaxPacket bytes or more are never truncated; a
// datagram longer than its buffer is returned cut to the buffer's length.
func (c *UDPConn) ReadBatch(bufs [][]byte, sizes []int, addrs []netip.AddrPort) (int, error) {
	if c.sendOnly {
		return 0, fmt.Errorf("tunnel: udp %v: read from a send-only socket", c.local)
	}
	n := min(len(bufs), c.batch)
	for i := range n {
		c.r.iovs[i].Base = unsafe.SliceData(bufs[i])
		c.r.iovs[i].SetLen(len(bufs[i]))
		c.r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		c.r.hdrs[i].Hdr.Flags = 0
	}
	c.r.n = n
	if err := c.raw.Read(c.r.call); err != nil {
		return 0, closedError(err)
	}
	if c.r.errno != 0 {
		return 0, fmt.Errorf("tunnel: recvmmsg: %w", c.r.errno)
	}
	got := c.r.done
	for i := range got {
		sizes[i] = int(c.r.hdrs[i].Len)
		addrs[i] = sockaddrToAddrPort(&c.r.names[i])
	}
	return got, nil
}

// WriteBatch implements Conn: one sendmmsg per BatchSize messages. sendmmsg stops at the first
// message that fails; that message gets its error and the rest go out in the next call, so a
// member that errors costs the others nothing. A full socket buffer waits for room
// (backpressure) rather than dropping.
func (c *UDPConn) WriteBatch(bufs [][]byte, addrs []netip.AddrPort, errs []error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for start := 0; start < len(bufs); {
		n := min(len(bufs)-start, c.batch)
		for i := range n {
			b := bufs[start+i]
			c.w.iovs[i].Base = unsafe.SliceData(b)
			c.w.iovs[i].SetLen(len(b))
			putSockaddr(&c.w.names[i], addrs[start+i])
			c.w.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		}
		c.w.n = n
		var err error
		if c.sendOnly {
			err = c.writeWaiting(c.w)
		} else {
			err = c.raw.Write(c.w.call)
		}
		if err != nil {
			return closedError(err)
		}
		if c.w.errno != 0 {
			errs[start] = c.w.errno
			start++
			continue
		}
		for i := range c.w.done {
			errs[start+i] = nil
		}
		start += c.w.done
	}
	return nil
}

// ReceiveDrops is how many datagrams the kernel dropped for this socket so far because its
// receive buffer was full (SO_MEMINFO's SK_MEMINFO_DROPS).
func (c *UDPConn) ReceiveDrops() (uint64, error) {
	var drops uint64
	var serr error
	err := c.raw.Control(func(fd uintptr) {
		var info [unix.SK_MEMINFO_VARS]uint32
		size := uint32(unsafe.Sizeof(info))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			serr = e
			return
		}
		drops = uint64(info[unix.SK_MEMINFO_DROPS])
	})
	if err == nil {
		err = serr
	}
	return drops, err
}

func putSockaddr(sa *unix.RawSockaddrInet4, ap netip.AddrPort) {
	sa.Family = unix.AF_INET
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(ap.Port()>>8), byte(ap.Port())
	sa.Addr = ap.Addr().As4()
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet4) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
}

// closedError makes the poller's "file already closed" recognisable as net.ErrClosed, the
// clean end of a read loop.
func closedError(err error) error {
	if errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("tunnel: %w", net.ErrClosed)
	}
	return fmt.Errorf("tunnel: %w", err)
}
