package tun

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Native is a Linux TUN device opened through /dev/net/tun, one packet per system call.
type Native struct {
	name string
	file *os.File
}

// Create creates the TUN device name (ip tuntap add mode tun name NAME, without persistence:
// the kernel removes the device, with its routes and addresses, when mctun closes it or dies).
// It refuses a name that already exists: mctun never takes over an interface it did not make.
func Create(name string) (*Native, error) {
	if _, err := net.InterfaceByName(name); err == nil {
		return nil, fmt.Errorf("tun: create %s: an interface of that name already exists", name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("tun: create %s: open /dev/net/tun: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: create %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun: create %s: %w", name, err)
	}
	// A non-blocking descriptor handed to os.NewFile joins Go's netpoller: a blocked Read
	// parks its goroutine, not a thread, and Close wakes it.
	return &Native{name: ifr.Name(), file: os.NewFile(uintptr(fd), "/dev/net/tun:"+name)}, nil
}

// Name implements Device.
func (t *Native) Name() string { return t.name }

// BatchSize implements Device.
func (t *Native) BatchSize() int { return 1 }

// Read implements Device.
func (t *Native) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.file.Read(bufs[0][offset:])
	if err != nil {
		return 0, t.wrap("read", err)
	}
	sizes[0] = n
	return 1, nil
}

// Write implements Device.
func (t *Native) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := t.file.Write(b[offset:]); err != nil {
			return i, t.wrap("write", err)
		}
	}
	return len(bufs), nil
}

// Close implements Device.
func (t *Native) Close() error { return t.file.Close() }

func (t *Native) wrap(op string, err error) error {
	if errors.Is(err, os.ErrClosed) {
		err = net.ErrClosed
	} else if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	return fmt.Errorf("tun: %s %s: %w", op, t.name, err)
}
