package main

import (
	"errors"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollInterval is the longest one read waits for a datagram, and so how late the loop may
// notice its deadline or a signal.
const pollInterval = 50 * time.Millisecond

// blocking puts the socket in blocking mode, each read waiting at most pollInterval, to be
// read as a C application reads: the thread sleeps in recvmmsg(2) and the kernel wakes it
// when a datagram comes. Go's netpoller hands the waiting between its threads, and Go's
// scheduler takes the processor from a regular system call that blocks and hands it back
// after: measured in the benchmark, three context switches per datagram where a raw
// blocking read (batch.read) takes one, in work the same for every system measured and so
// only noise to their comparison.
//
// (mctun's own socket, encap.UDPConn, has the same message headers and raw calls
// (internal/rawcall), but waits in the netpoller, which is the cost here; and an application
// of the benchmark uses nothing of the system it measures.)
func blocking(raw syscall.RawConn) error {
	tv := unix.NsecToTimeval(int64(pollInterval))
	var serr error
	err := raw.Control(func(fd uintptr) {
		serr = errors.Join(unix.SetNonblock(int(fd), false),
			unix.SetsockoptTimeval(int(fd), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	})
	return errors.Join(err, serr)
}

// batch is recvmmsg(2)'s array of messages, each with a buffer and room for its sender's
// address.
type batch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	bufs  [][]byte
}

func newBatch(n, size int) *batch {
	b := &batch{hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n), bufs: make([][]byte, n)}
	for i := range n {
		b.bufs[i] = make([]byte, size)
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// read reads a batch: waiting for the first datagram up to pollInterval, or not at all with
// nowait, then taking what else waits. It returns how many came, or EAGAIN if none did (EINTR
// if a signal ended the wait first).
//
// The call is raw (see blocking): a garbage collection waits for it to end, at most
// pollInterval.
func (b *batch) read(raw syscall.RawConn, nowait bool) (int, error) {
	flags := unix.MSG_WAITFORONE
	if nowait {
		flags |= unix.MSG_DONTWAIT
	}
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		b.hdrs[i].Hdr.Flags = 0
	}
	var n uintptr
	var errno syscall.Errno
	err := raw.Control(func(fd uintptr) {
		n, _, errno = unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(len(b.hdrs)), uintptr(flags), 0, 0)
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// message returns message i of the last read: its bytes, its sender and whether it was cut
// short to fit the buffer.
func (b *batch) message(i int) ([]byte, netip.Addr, bool) {
	h := &b.hdrs[i]
	return b.bufs[i][:h.Len], netip.AddrFrom4(b.names[i].Addr), h.Hdr.Flags&unix.MSG_TRUNC != 0
}
