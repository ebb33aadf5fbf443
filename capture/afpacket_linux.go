package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"mctun/internal/rawcall"
)

// AFPacket is a Source that captures the outgoing IPv4 multicast of one interface with an
// AF_PACKET socket and a memory-mapped TPACKET_V2 receive ring.
//
// A classic BPF filter in the kernel passes only outgoing IPv4 packets to 224.0.0.0/4 other
// than IGMP; everything else on the interface, received traffic included, never reaches the
// ring. The socket is SOCK_DGRAM, so each packet starts at its IPv4 header whatever the link
// type. Packets whose checksum was left to the NIC are completed on the way out (see
// CompleteChecksum). It is the equivalent of
//
//	tcpdump -i IFNAME -Q out 'ip and ip multicast and not igmp'
//
// The socket is not in Go's netpoller, which would wake a thread for every frame the kernel
// writes into the ring, also while Read is busy copying frames out and waits for none: at
// saturation thousands of wake-ups a second for nothing. Read waits instead in a private
// epoll instance that is in the netpoller, and arms the socket in it only while it waits.
//
// Concurrency: Read has a single caller at a time (concurrent calls are serialized).
// Close and Stats may be called from any goroutine, also while Read blocks. Close wakes a
// blocked Read through Go's netpoller, so shutdown needs no poll timeout, and waits for it to
// return before it unmaps the ring; packets are copied out of the ring, so no slice into it
// outlives a Read.
type AFPacket struct {
	name      string
	batch     int
	maxPacket int
	fd        int             // the socket's, owned by file
	file      *os.File        // the socket, blocking, so that the netpoller leaves it out
	conn      syscall.RawConn // file's
	epoll     *os.File        // the epoll instance Read waits in, in the netpoller
	epollConn syscall.RawConn // epoll's, kept so that Read does not allocate
	wait      func(epfd uintptr) bool

	readMu sync.Mutex // held by Read throughout; Close holds it to unmap the ring
	ring   ring       // guarded by readMu
	armed  bool       // whether the socket wakes the epoll instance; guarded by readMu

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	packets, drops, truncated, checksumSkipped atomic.Uint64
}

var _ Source = (*AFPacket)(nil)

// OpenAFPacket opens a capture of the outgoing IPv4 multicast of interface ifname, in the
// network namespace of the calling thread. It needs CAP_NET_RAW.
//
// The ring's frames fit a packet of the interface's MTU at the time of the call; if the MTU
// grows later, longer packets are counted as Truncated and skipped.
func OpenAFPacket(ifname string, opts Options) (*AFPacket, error) {
	if opts.RingBytes < 0 || opts.BatchSize < 0 {
		return nil, fmt.Errorf("capture: open %s: negative ring size or batch size", ifname)
	}
	if opts.RingBytes == 0 {
		opts.RingBytes = DefaultRingBytes
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}

	// Protocol 0: the socket receives nothing until bind, so nothing is queued before the
	// filter is attached.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, opError("open", ifname, err)
	}
	epfd := -1
	var mem []byte
	ok := false
	defer func() {
		if !ok {
			if mem != nil {
				unix.Munmap(mem)
			}
			if epfd >= 0 {
				unix.Close(epfd)
			}
			unix.Close(fd)
		}
	}()

	ifindex, mtu, err := interfaceOf(fd, ifname)
	if err != nil {
		return nil, opError("open", ifname, err)
	}
	if err := attachFilter(fd); err != nil {
		return nil, opError("attach filter", ifname, err)
	}
	layout := newRingLayout(mtu, opts.RingBytes, os.Getpagesize())
	if err := setupRing(fd, layout); err != nil {
		return nil, opError("set up ring", ifname, err)
	}
	mem, err = unix.Mmap(fd, 0, layout.size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, opError("map ring", ifname, err)
	}
	// ETH_P_ALL, not ETH_P_IP: the kernel shows outgoing packets only to ETH_P_ALL taps
	// (dev_queue_xmit_nit walks ptype_all alone). The filter checks the protocol instead.
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, opError("bind", ifname, err)
	}

	// The socket is in the epoll instance from the start, disarmed (no events).
	if epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, opError("open", ifname, err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Fd: int32(fd)}); err != nil {
		return nil, opError("open", ifname, err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		return nil, opError("open", ifname, err)
	}
	file := os.NewFile(uintptr(fd), "afpacket:"+ifname)         // blocking: Go leaves it out
	epoll := os.NewFile(uintptr(epfd), "afpacket-wait:"+ifname) // non-blocking: Go polls it
	ok = true                                                   // the files own the fds now
	a := &AFPacket{
		name:      ifname,
		batch:     opts.BatchSize,
		maxPacket: layout.frameSize - frameNetOffset,
		fd:        fd,
		file:      file,
		epoll:     epoll,
		ring:      ring{mem: mem, frameSize: layout.frameSize, frameNr: layout.frameNr},
	}
	// SyscallConn fails only for a nil *os.File.
	a.conn, _ = file.SyscallConn()
	a.epollConn, _ = epoll.SyscallConn()
	a.wait = a.frameReady
	return a, nil
}

// Read copies up to min(len(bufs), BatchSize()) packets out of the ring; see Source.
// It blocks, in Go's netpoller, until the ring holds at least one packet it can deliver.
func (a *AFPacket) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	a.readMu.Lock()
	defer a.readMu.Unlock()
	if len(bufs) > a.batch {
		bufs = bufs[:a.batch]
	}
	for {
		if a.closed.Load() {
			return 0, a.errClosed()
		}
		if len(bufs) == 0 {
			return 0, nil
		}
		if !a.ring.ready() {
			// RawConn.Read calls wait, and parks until the epoll instance polls readable
			// whenever wait says there is nothing yet.
			if err := a.epollConn.Read(a.wait); err != nil {
				if a.closed.Load() {
					return 0, a.errClosed()
				}
				return 0, fmt.Errorf("capture: read %s: %w", a.name, err)
			}
		}
		n, c := a.ring.read(bufs, sizes, offset)
		a.packets.Add(c.packets)
		if c.truncated != 0 {
			a.truncated.Add(c.truncated)
		}
		if c.checksumSkipped != 0 {
			a.checksumSkipped.Add(c.checksumSkipped)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// frameReady is the RawConn.Read callback, which parks when it returns false. The caller
// holds readMu and the epoll instance is open, so the ring is mapped and the socket open.
//
// Before it parks it arms the socket: tpacket_rcv wakes the socket for every frame, and the
// socket, armed, wakes the epoll instance, which wakes the netpoller. Once a frame is there
// it disarms it, so that frames written while Read copies wake no one. A frame written
// between the check and the arming is seen by the check after it.
func (a *AFPacket) frameReady(epfd uintptr) bool {
	if !a.ring.ready() {
		if !a.armed {
			a.armed = true
			a.arm(epfd, unix.EPOLLIN)
		}
		if !a.ring.ready() {
			rawcall.Parked()
			return false
		}
	}
	if a.armed {
		a.armed = false
		a.arm(epfd, 0)
	}
	return true
}

// arm sets the events the socket wakes the epoll instance for: EPOLLIN, or none. Raw, as
// the packet paths' calls are (see rawcall); it cannot fail, the socket being in the
// instance and both open.
func (a *AFPacket) arm(epfd uintptr, events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: int32(a.fd)}
	unix.RawSyscall6(unix.SYS_EPOLL_CTL, epfd, unix.EPOLL_CTL_MOD, uintptr(a.fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
}

func (a *AFPacket) errClosed() error {
	return fmt.Errorf("capture: read %s: %w", a.name, net.ErrClosed)
}

// BatchSize is the most packets one Read returns.
func (a *AFPacket) BatchSize() int { return a.batch }

// MaxPacketSize is the longest packet a ring frame holds; longer ones are counted as
// Truncated, never returned.
func (a *AFPacket) MaxPacketSize() int { return a.maxPacket }

// Close closes the socket, which wakes a Read blocked in it, waits for that Read to return,
// and then unmaps the ring. Read then returns an error wrapping net.ErrClosed. Closing again
// returns the first Close's result.
func (a *AFPacket) Close() error {
	a.closeOnce.Do(func() {
		a.collectDrops() // the socket's last statistics
		a.closed.Store(true)
		errEpoll := a.epoll.Close() // wakes Read
		a.readMu.Lock()
		errMap := unix.Munmap(a.ring.mem)
		a.ring = ring{}
		errFile := a.file.Close()
		a.readMu.Unlock()
		if err := errors.Join(errEpoll, errMap, errFile); err != nil {
			a.closeErr = fmt.Errorf("capture: close %s: %w", a.name, err)
		}
	})
	return a.closeErr
}

// Stats returns the counters since the capture was opened.
func (a *AFPacket) Stats() Stats {
	a.collectDrops()
	return Stats{
		Packets:         a.packets.Load(),
		Drops:           a.drops.Load(),
		Truncated:       a.truncated.Load(),
		ChecksumSkipped: a.checksumSkipped.Load(),
	}
}

// collectDrops adds the kernel's drop count to drops. Reading PACKET_STATISTICS resets the
// kernel's counters, so each reading is a difference. A closed socket has nothing to add.
func (a *AFPacket) collectDrops() {
	_ = a.conn.Control(func(fd uintptr) {
		st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if err == nil {
			a.drops.Add(uint64(st.Drops))
		}
	})
}

// interfaceOf returns the index and MTU of the interface named ifname in the namespace of
// the socket fd.
func interfaceOf(fd int, ifname string) (ifindex, mtu int, err error) {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil { // a name that does not fit IFNAMSIZ cannot exist
		return 0, 0, ErrNoInterface
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			err = ErrNoInterface
		}
		return 0, 0, err
	}
	ifindex = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, 0, err
	}
	return ifindex, int(ifr.Uint32()), nil
}

// attachFilter attaches the program of filter.go and locks it, so that it cannot be detached
// or replaced for the life of the socket.
func attachFilter(fd int) error {
	raw, err := bpf.Assemble(filter())
	if err != nil {
		return err
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		prog[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return err
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_LOCK_FILTER, 1)
}

// setupRing switches the socket to TPACKET_V2 and creates its receive ring.
func setupRing(fd int, l ringLayout) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return err
	}
	return unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &unix.TpacketReq{
		Block_size: uint32(l.blockSize),
		Block_nr:   uint32(l.blockNr),
		Frame_size: uint32(l.frameSize),
		Frame_nr:   uint32(l.frameNr),
	})
}

// opError names the failed operation and the interface: "capture: bind eth0: operation not
// permitted".
func opError(op, ifname string, err error) error {
	return fmt.Errorf("capture: %s %s: %w", op, ifname, err)
}

// htons converts a protocol number to network byte order, as sockaddr_ll stores it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
