package tun

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"mctun/internal/rawcall"
)

// Native is a Linux TUN device opened through /dev/net/tun, one packet per system call.
//
// Reads and writes are RawSyscalls on the non-blocking descriptor, with Go's netpoller for
// the waiting: they never block, so they skip the scheduler's system-call bookkeeping (see
// encap.UDPConn), but for one in rawcall.Every.
type Native struct {
	name   string
	file   *os.File
	raw    syscall.RawConn
	closed atomic.Bool // what the poller says after Close ("use of closed file") matches no ErrClosed
	rd     readOp
	wr     writeOp
}

// Create creates the TUN device name (ip tuntap add mode tun name NAME), not persistent: the
// kernel removes the device, with its routes and addresses, when mctun closes it or dies, until
// the caller says otherwise with Persist. It refuses a name that already exists: mctun never
// takes over an interface it did not make.
func Create(name string) (*Native, error) {
	if _, err := net.InterfaceByName(name); err == nil {
		return nil, fmt.Errorf("tun: create %s: an interface of that name already exists", name)
	}
	return open("create", name)
}

// Attach takes over the persistent TUN device name that an earlier mctun created and left
// behind when it died, with what the kernel keeps on it: above all the applications'
// multicast memberships. The kernel refuses a device that is not a TUN of that kind, or
// that another process holds.
func Attach(name string) (*Native, error) {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil, fmt.Errorf("tun: attach %s: %w", name, err)
	}
	return open("attach", name)
}

// open opens /dev/net/tun and binds it to the TUN device name, creating it if need be.
func open(op, name string) (*Native, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("tun: %s %s: open /dev/net/tun: %w", op, name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: %s %s: %w", op, name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: %s %s: %w", op, name, err)
	}
	// A non-blocking descriptor handed to os.NewFile joins Go's netpoller: a blocked Read
	// parks its goroutine, not a thread, and Close wakes it.
	file := os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("tun: %s %s: %w", op, name, err)
	}
	t := &Native{name: ifr.Name(), file: file, raw: raw}
	t.rd.call, t.wr.call = t.rd.read, t.wr.write
	return t, nil
}

// Persist makes the device outlive mctun (ip tuntap's persist flag): if mctun dies, the
// device stays, with the groups applications joined on it, for the next mctun to Attach;
// deleting the link removes it.
func (t *Native) Persist() error {
	var errno syscall.Errno
	err := t.raw.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.TUNSETPERSIST, 1)
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return t.wrap("persist", err)
	}
	return nil
}

// Name implements Device.
func (t *Native) Name() string { return t.name }

// BatchSize implements Device.
func (t *Native) BatchSize() int { return 1 }

// MaxPacketSize implements Device: the largest IPv4 packet, whatever the MTU is set to now or
// later. With one packet per Read, that is one 64 KiB buffer.
func (t *Native) MaxPacketSize() int { return 65535 }

// Read implements Device.
func (t *Native) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	t.rd.buf = bufs[0][offset:]
	err := t.raw.Read(t.rd.call)
	t.rd.buf = nil
	if err == nil && t.rd.errno != 0 {
		err = t.rd.errno
	}
	if err != nil {
		return 0, t.wrap("read", err)
	}
	sizes[0] = t.rd.n
	return 1, nil
}

// Write implements Device.
func (t *Native) Write(bufs [][]byte, offset int) (int, error) {
	t.wr.bufs, t.wr.offset, t.wr.i, t.wr.errno = bufs, offset, 0, 0
	err := t.raw.Write(t.wr.call)
	t.wr.bufs = nil
	if err == nil && t.wr.errno != 0 {
		err = t.wr.errno
	}
	if err != nil {
		return t.wr.i, t.wrap("write", err)
	}
	return len(bufs), nil
}

// readOp is the single reader's system call, and writeOp the single writer's: each made once,
// so that handing it to the poller allocates nothing.
type readOp struct {
	buf   []byte
	n     int
	errno syscall.Errno
	call  func(fd uintptr) bool
}

// read returns false (EAGAIN) to wait in the poller.
func (o *readOp) read(fd uintptr) bool {
	r, e := rawcall.Call(unix.SYS_READ, fd, unsafe.Pointer(unsafe.SliceData(o.buf)), uintptr(len(o.buf)), 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	o.n, o.errno = int(r), e
	return true
}

type writeOp struct {
	bufs   [][]byte
	offset int
	i      int // packets written
	errno  syscall.Errno
	call   func(fd uintptr) bool
}

// write writes the packets from i on; it returns false (EAGAIN) to wait in the poller and
// go on from there.
func (o *writeOp) write(fd uintptr) bool {
	for ; o.i < len(o.bufs); o.i++ {
		b := o.bufs[o.i][o.offset:]
		_, e := rawcall.Call(unix.SYS_WRITE, fd, unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)), 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		if e != 0 {
			o.errno = e
			return true
		}
	}
	return true
}

// Close implements Device.
func (t *Native) Close() error {
	t.closed.Store(true)
	return t.file.Close()
}

func (t *Native) wrap(op string, err error) error {
	if t.closed.Load() || errors.Is(err, os.ErrClosed) {
		err = net.ErrClosed
	}
	return fmt.Errorf("tun: %s %s: %w", op, t.name, err)
}
