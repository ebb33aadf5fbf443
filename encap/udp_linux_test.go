package encap

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func listenLoopback(t *testing.T) *UDPConn {
	t.Helper()
	c, err := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"), UDPOptions{BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestUDPBatchSkipsFailingMember sends one shared tunnel packet to six destinations, two of
// them refused by the kernel at once, and checks the others still get it.
func TestUDPBatchSkipsFailingMember(t *testing.T) {
	rx, tx := listenLoopback(t), listenLoopback(t)
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
	allocs := testing.AllocsPerRun(1000, func() {
		if err := c.WriteBatch(bufs, addrs, errs); err != nil || errs[0] != nil {
			t.Fatal(err, errs[0])
		}
		if n, err := c.ReadBatch(rbufs, sizes, from); n != 1 || err != nil {
			t.Fatal(n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("a write and a read allocate %v times, want 0", allocs)
	}
}
