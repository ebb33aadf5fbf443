// Package rawcall makes the packet paths' system calls: raw as a rule, a regular one when
// one is due.
//
// The packet paths' reads and writes (recvmmsg and sendmmsg on the tunnel socket, read and
// write on the TUN) never block: their descriptors are non-blocking and EAGAIN sends the
// goroutine to the netpoller. So they are made with RawSyscall, without the scheduler's
// bookkeeping, whose cost was a fifth of mctun's CPU at 20k packets/s: entering a regular call
// wakes the runtime's sysmon thread when it sleeps, and it sleeps whenever the process is idle
// a moment, between every batch at such rates.
//
// But once the process has been idle, nothing else wakes sysmon until a timer is due. A
// goroutine that then runs without parking (a sender fanning each packet out to thousands of
// members, a receiver under a flood) makes only raw calls, and takes the one thread that polls
// the network: while it runs, no other goroutine's socket is polled (the neighbour and route
// events the kernel path waits for, the control socket, membership reports), and nothing is
// preempted, for as long as the next timer is away. That was 2 s for the neighbour event that
// lets a 4096-member group into the kernel path.
//
// So a goroutine that has run for Every without parking makes its next call the regular way.
// At most that often it wakes a sleeping sysmon, which stays awake while any goroutine runs.
// A goroutine that parks needs none: on its way to the netpoller the scheduler polls the
// network itself. Counting Every from the last park, not from the last regular call, matters
// at low rates, where every batch ends in a park: a regular call every 10 ms whatever the rate
// woke sysmon a hundred times a second, and each time it polled for a millisecond or more in
// 20 µs naps, some 1,100 nanosleep calls a second in each of a member's daemons at 5k packets/s
// (strace -f), where the daemons from before this package made none.
//
// What the regular call buys is a thread waiting in the netpoller while a goroutine is busy.
// The busy goroutine's own sockets must then not wake that thread for events nobody waits
// for, or it is woken for every packet: the sender's socket is send-only and the capture's
// socket is armed only while it waits (encap.UDPOptions.SendOnly, capture.AFPacket).
package rawcall

import (
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Every is the longest a busy process makes only raw calls: how late, at worst, the other
// goroutines' sockets are polled. sysmon polls them every 10 ms once awake.
const Every = 10 * time.Millisecond

var (
	epoch = time.Now()
	due   atomic.Int64 // when the next regular call is due, in nanoseconds since epoch
)

// Parked tells the package that the caller is about to park in the netpoller: the next
// regular call is due Every from now. Call says it itself when a call returns EAGAIN; a
// caller that parks without one (waiting for a ring to fill) says it before it parks.
func Parked() { parkedAt(now()) }

func parkedAt(now int64) { due.Store(now + int64(Every)) }

// now is the time since epoch, in nanoseconds.
func now() int64 { return int64(time.Since(epoch)) }

// Due reports whether the caller's next system call must be a regular one (unix.Syscall)
// instead of a raw one (unix.RawSyscall). It is true for one caller at most once per Every.
func Due() bool { return dueAt(now()) }

func dueAt(now int64) bool {
	d := due.Load()
	return now >= d && due.CompareAndSwap(d, now+int64(Every))
}

// Call makes the system call trap(fd, p, n, flags) on a non-blocking descriptor: raw, or
// regular when Due says so. p points to the buffer or the message headers; the caller keeps
// it alive. EAGAIN, after which the caller parks, counts as Parked.
func Call(trap, fd uintptr, p unsafe.Pointer, n, flags uintptr) (uintptr, syscall.Errno) {
	var r uintptr
	var e syscall.Errno
	t := now() // one clock read a call, for Due and Parked both
	if dueAt(t) {
		r, _, e = unix.Syscall6(trap, fd, uintptr(p), n, flags, 0, 0)
	} else {
		r, _, e = unix.RawSyscall6(trap, fd, uintptr(p), n, flags, 0, 0)
	}
	if e == unix.EAGAIN {
		parkedAt(t)
	}
	return r, e
}
