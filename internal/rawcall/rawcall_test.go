package rawcall

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestDueOncePerEvery(t *testing.T) {
	due.Store(0)
	if !Due() {
		t.Fatal("Due() = false on the first call")
	}
	n := 0
	start := time.Now()
	for time.Since(start) < 5*Every/2 {
		if Due() {
			n++
		}
	}
	// Due at Every and 2*Every after the first, give or take one.
	if n < 1 || n > 3 {
		t.Errorf("Due() true %d times in %v after the first, want 2 (one per %v)", n, 5*Every/2, Every)
	}
}

// TestParkedPutsOffTheRegularCall checks that a call returning EAGAIN, after which its caller
// parks, and Parked itself put the next regular call off to Every from then, and that a call
// that does not park leaves it.
func TestParkedPutsOffTheRegularCall(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	var b [1]byte
	read := func() syscall.Errno {
		_, e := Call(unix.SYS_READ, uintptr(p[0]), unsafe.Pointer(&b[0]), 1, 0)
		return e
	}

	soon := int64(time.Since(epoch) + Every/2)
	due.Store(soon)
	if e := read(); e != unix.EAGAIN {
		t.Fatalf("read of an empty pipe: %v, want EAGAIN", e)
	}
	if d := due.Load(); d <= soon {
		t.Errorf("after EAGAIN the regular call is due at %v, not put off from %v", time.Duration(d), time.Duration(soon))
	}

	due.Store(soon)
	if _, err := unix.Write(p[1], []byte{1}); err != nil {
		t.Fatal(err)
	}
	if e := read(); e != 0 {
		t.Fatalf("read of a byte: %v", e)
	}
	if d := due.Load(); d != soon {
		t.Errorf("a call that did not park moved the regular call from %v to %v", time.Duration(soon), time.Duration(d))
	}

	due.Store(0)
	Parked()
	if Due() {
		t.Error("Due() right after Parked")
	}
}

// TestBusyGoroutineLetsOthersPoll reproduces what the package is for. The process goes idle,
// so that the runtime's sysmon sleeps; a goroutine woken through the netpoller then runs
// without parking, making its calls with Call (raw but for one in Every); meanwhile another
// goroutine's descriptor becomes readable. The events come from a child process, as a packet
// from the network would: a write from this process would itself be a regular call and wake
// sysmon.
// The other goroutine must be woken within a few Every, not when the busy one stops (or a
// timer happens to be due).
func TestBusyGoroutineLetsOthersPoll(t *testing.T) {
	wakeBusy, busyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	other, otherW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer wakeBusy.Close()
	defer other.Close()
	// fd 3 wakes the busy goroutine; 100 ms later fd 4 gets the time it was written at.
	child := exec.Command("sh", "-c", "sleep 0.3; printf x >&3; sleep 0.1; date +%s%N >&4; sleep 0.5")
	child.ExtraFiles = []*os.File{busyW, otherW}
	if err := child.Start(); err != nil {
		t.Skipf("cannot run sh: %v", err)
	}
	busyW.Close()
	otherW.Close()
	defer child.Wait()

	const busyFor = 2 * time.Second // bounds the spinning loop; much longer than the wait allowed
	var stop atomic.Bool
	spun := make(chan time.Duration, 1)
	go func() {
		// Woken the way the packet paths are: by the netpoller, then a raw read. (File.Read's
		// read after the wake-up is a regular call, which would wake sysmon itself.)
		rc, err := wakeBusy.SyscallConn()
		if err != nil {
			spun <- 0
			return
		}
		var b [1]byte
		err = rc.Read(func(fd uintptr) bool {
			_, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), 1)
			return e != unix.EAGAIN
		})
		if err != nil {
			spun <- 0
			return
		}
		start := time.Now()
		for !stop.Load() && time.Since(start) < busyFor {
			Call(unix.SYS_GETPID, 0, nil, 0, 0)
		}
		spun <- time.Since(start)
	}()

	line, err := bufio.NewReader(other).ReadString('\n')
	woke := time.Now()
	stop.Store(true)
	if err != nil {
		t.Fatalf("reading the child's time: %v", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		t.Fatalf("the child's time %q: %v", line, err)
	}
	late := woke.Sub(time.Unix(0, ns))
	busy := <-spun
	t.Logf("woken %v after the child wrote, the busy goroutine having run %v", late.Round(time.Microsecond), busy.Round(time.Millisecond))
	if busy == 0 {
		t.Fatal("the busy goroutine never ran")
	}
	if late > 25*Every {
		t.Errorf("a goroutine whose descriptor became readable was woken %v late, while another made raw calls; want within a few times %v", late, Every)
	}
}
