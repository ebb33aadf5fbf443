package encap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mctun/internal/wakeups"
)

func listenLoopback(t *testing.T) *UDPConn {
	t.Helper()
	return listenLoopbackWith(t, UDPOptions{BatchSize: 4})
}

func listenLoopbackWith(t *testing.T, opts UDPOptions) *UDPConn {
	t.Helper()
	c, err := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestUDPBatchSkipsFailingMember sends one shared tunnel packet to six destinations, two of
// them refused by the kernel at once, and checks the others still get it, from a socket in
// the netpoller and from a send-only one.
func TestUDPBatchSkipsFailingMember(t *testing.T) {
	for _, sendOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("send-only=%v", sendOnly), func(t *testing.T) {
			testBatchSkipsFailingMember(t, listenLoopback(t), listenLoopbackWith(t, UDPOptions{BatchSize: 4, SendOnly: sendOnly}))
		})
	}
}

func testBatchSkipsFailingMember(t *testing.T, rx, tx *UDPConn) {
	pkt := []byte("one tunnel packet, shared")
	bufs := [][]byte{pkt, pkt, pkt, pkt, pkt, pkt}
	bad := netip.MustParseAddrPort("255.255.255.255:4754") // EACCES: SO_BROADCAST is off
	addrs := []netip.AddrPort{rx.LocalAddr(), bad, rx.LocalAddr(), rx.LocalAddr(), bad, rx.LocalAddr()}
	errs := make([]error, len(bufs))
	if err := tx.WriteBatch(bufs, addrs, errs); err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if (addrs[i] == bad) != (err != nil) {
			t.Errorf("errs[%d] = %v for %v", i, err, addrs[i])
		}
	}
	if !errors.Is(errs[1], unix.EACCES) {
		t.Errorf("errs[1] = %v, want EACCES", errs[1])
	}

	got := 0
	rbufs := [][]byte{make([]byte, MaxPacket), make([]byte, MaxPacket), make([]byte, MaxPacket), make([]byte, MaxPacket)}
	sizes := make([]int, 4)
	from := make([]netip.AddrPort, 4)
	for got < 4 {
		n, err := rx.ReadBatch(rbufs, sizes, from)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if string(rbufs[i][:sizes[i]]) != string(pkt) || from[i] != tx.LocalAddr() {
				t.Fatalf("got %q from %v", rbufs[i][:sizes[i]], from[i])
			}
		}
		got += n
	}
}

func TestUDPDontFragment(t *testing.T) {
	c := listenLoopback(t)
	var v int
	var err error
	c.raw.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER) })
	if err != nil || v != unix.IP_PMTUDISC_DONT {
		t.Fatalf("IP_MTU_DISCOVER = %d, %v; want IP_PMTUDISC_DONT so outer packets never carry DF", v, err)
	}
	if _, err := c.ReceiveDrops(); err != nil {
		t.Fatalf("ReceiveDrops: %v", err)
	}
}

func TestUDPCloseUnblocksRead(t *testing.T) {
	c := listenLoopback(t)
	done := make(chan error)
	go func() {
		_, err := c.ReadBatch([][]byte{make([]byte, 100)}, make([]int, 1), make([]netip.AddrPort, 1))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadBatch after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ReadBatch still blocked after Close")
	}
}

// TestUDPBatchAllocatesNothing: a batch's recvmmsg and sendmmsg allocate nothing, not even the
// callback the poller runs (at low rates every packet is a batch of its own).
func TestUDPBatchAllocatesNothing(t *testing.T) {
	c := listenLoopback(t)
	bufs, addrs, errs := [][]byte{make([]byte, 100)}, []netip.AddrPort{c.LocalAddr()}, []error{nil}
	rbufs, sizes, from := [][]byte{make([]byte, 2000)}, []int{0}, []netip.AddrPort{{}}
	for _, tt := range []struct {
		what string
		tx   *UDPConn
	}{
		{"a write and a read allocate", c},
		{"a send-only write allocates", listenLoopbackWith(t, UDPOptions{BatchSize: 4, SendOnly: true})},
	} {
		allocs := testing.AllocsPerRun(1000, func() {
			if err := tt.tx.WriteBatch(bufs, addrs, errs); err != nil || errs[0] != nil {
				t.Fatal(err, errs[0])
			}
			if n, err := c.ReadBatch(rbufs, sizes, from); n != 1 || err != nil {
				t.Fatal(n, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s %v times, want 0", tt.what, allocs)
		}
	}
}

// TestUDPSendOnly: a send-only socket says so when read, and Close ends it like any other.
func TestUDPSendOnly(t *testing.T) {
	c := listenLoopbackWith(t, UDPOptions{SendOnly: true})
	if !c.LocalAddr().Addr().IsLoopback() || c.LocalAddr().Port() == 0 {
		t.Errorf("LocalAddr = %v, want 127.0.0.1 and the port the kernel picked", c.LocalAddr())
	}
	_, err := c.ReadBatch([][]byte{make([]byte, 100)}, make([]int, 1), make([]netip.AddrPort, 1))
	if err == nil || !strings.Contains(err.Error(), "send-only") {
		t.Errorf("ReadBatch = %v, want an error that says the socket is send-only", err)
	}
	c.Close()
	err = c.WriteBatch([][]byte{[]byte("x")}, []netip.AddrPort{c.LocalAddr()}, make([]error, 1))
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteBatch after Close = %v, want net.ErrClosed", err)
	}
}

// TestUDPSendOnlyWakesNoThread is what SendOnly is for. While a goroutine waits in the
// netpoller, a thread waits in epoll_wait for it; a socket in the netpoller wakes that
// thread for the datagrams it sends (the kernel signals room to write as each one leaves),
// and a send-only socket does not. Counted in the process's voluntary context switches.
func TestUDPSendOnlyWakesNoThread(t *testing.T) {
	// Where the datagrams go: a socket outside the poller that nobody reads, which drops
	// them once its buffer is full.
	sink, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sink)
	if err := unix.Bind(sink, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(sink)
	if err != nil {
		t.Fatal(err)
	}
	to := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))

	pkt := make([]byte, 64)
	bufs, addrs, errs := [][]byte{pkt, pkt, pkt, pkt}, []netip.AddrPort{to, to, to, to}, make([]error, 4)
	const batches = 2000
	woken := func(c *UDPConn) int {
		return wakeups.During(t, func() {
			for range batches {
				if err := c.WriteBatch(bufs, addrs, errs); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	polled := woken(listenLoopbackWith(t, UDPOptions{BatchSize: 4}))
	sendOnly := woken(listenLoopbackWith(t, UDPOptions{BatchSize: 4, SendOnly: true}))
	t.Logf("threads woken while sending %d datagrams: %d from a socket in the netpoller, %d from a send-only one", 4*batches, polled, sendOnly)
	if polled < batches/10 {
		t.Fatalf("a socket in the netpoller woke threads only %d times: the test no longer sees what it checks", polled)
	}
	if sendOnly > polled/10 {
		t.Errorf("a send-only socket woke threads %d times, a polled one %d: want at most a tenth", sendOnly, polled)
	}
}
