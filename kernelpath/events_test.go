package kernelpath

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// lockedLog is a log a test reads while the code under test writes it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A subscription whose channel the library closed is opened again, the loss logged with the
// library's error, and the routine told to read afresh; one that cannot be opened is retried;
// one closed because the routine stops is left closed, and nothing logged.
func TestSubscriptionReopens(t *testing.T) {
	var log lockedLog
	done := make(chan struct{})
	var opened []chan int
	var onErrs []func(error)
	fail := false
	s := &subscription[int]{what: "test", done: done, log: slog.New(slog.NewTextHandler(&log, nil)),
		open: func(ch chan int, _ <-chan struct{}, onErr func(error)) error {
			if fail {
				return errors.New("no socket")
			}
			opened, onErrs = append(opened, ch), append(onErrs, onErr)
			return nil
		}}
	if err := s.start(); err != nil || s.C != opened[0] {
		t.Fatal("start did not open the subscription")
	}
	// The library reports the error, then closes the channel.
	onErrs[0](unix.ENOBUFS)
	close(opened[0])
	if _, ok := <-s.C; ok {
		t.Fatal("the closed channel gave a value")
	}
	if !s.reopen() || len(opened) != 2 || s.C != opened[1] {
		t.Fatalf("reopen: opened %d times, C is the new channel: %v; want 2, true", len(opened), s.C == opened[1])
	}
	if got := log.String(); !strings.Contains(got, "lost test events") || !strings.Contains(got, "no buffer space available") {
		t.Errorf("the log says %q, want the loss and ENOBUFS", got)
	}
	before := log.String()

	fail = true
	close(opened[1])
	if s.reopen() || s.C != nil {
		t.Fatal("reopen reported success where open failed")
	}
	if got := strings.TrimPrefix(log.String(), before); !strings.Contains(got, "cannot follow test events: trying again") || !strings.Contains(got, "no socket") {
		t.Errorf("the log says %q, want that it cannot and will try again", got)
	}
	if s.retry() {
		t.Fatal("retry reported success where open failed")
	}
	fail = false
	if !s.retry() || s.C != opened[2] {
		t.Fatal("retry did not open the subscription")
	}
	if s.retry() {
		t.Fatal("retry of an open subscription opened it again")
	}

	close(done)
	before = log.String()
	close(opened[2])
	if s.reopen() || s.C != nil || len(opened) != 3 {
		t.Errorf("stopping: reopen opened the subscription again")
	}
	if log.String() != before {
		t.Errorf("stopping: the log says %q", strings.TrimPrefix(log.String(), before))
	}
}

// Neighbour events more than the sender's socket holds are lost, and the library closes its
// channel: the sender follows them again and reads the table afresh, so that a group whose
// member's neighbour came among the lost events is ready all the same.
func TestSenderRecoversLostEvents(t *testing.T) {
	inNetns(t, func() {
		l, err := netlink.LinkByName("mct0")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 1, 2), Mask: net.CIDRMask(24, 32)}}); err != nil {
			t.Fatal(err)
		}
		var log lockedLog
		m := netip.MustParseAddrPort("198.18.1.3:4754")
		s := startSender(t, &log, m)
		defer s.Close()
		ready := func() bool {
			var r senderGroupRoute
			if err := s.objs.Groups.Lookup(groupKey{txGroup, 65535}.key(), &r); err != nil {
				t.Fatalf("groups: %v", err)
			}
			return r.Ready == uint8(senderRouteStateREADY)
		}
		if ready() {
			t.Fatal("ready before the member's neighbour is known")
		}
		// With the sender's lock held, its routine stops at its next event: its channel fills,
		// then its socket, and the kernel drops the rest, the member's among them.
		const flood = 5000
		s.mu.Lock()
		for i := range flood {
			n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
				IP: net.IPv4(198, 18, byte(100+i/250), byte(1+i%250)), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}}
			if err := netlink.NeighAdd(n); err != nil {
				s.mu.Unlock()
				t.Fatalf("neighbour %d: %v", i, err)
			}
		}
		err = netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: m.Addr().AsSlice(), HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 1, 3}})
		s.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !ready() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !ready() {
			t.Errorf("the member's neighbour is known, after %d others: the group is not ready\nlog:\n%s", flood, log.String())
		}
		if !strings.Contains(log.String(), "lost neighbour events") {
			t.Errorf("the log does not say neighbour events were lost (%d events, %d KiB socket): the test did not overflow it\n%s",
				flood+1, eventSocket>>10, log.String())
		}
	})
}

// Reading the host's addresses afresh, as after lost events, adds those the receiver missed
// and forgets those gone.
func TestReceiverReloadsAddrs(t *testing.T) {
	inNetns(t, func() {
		r, err := LoadReceiver()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		nl, err := netlink.NewHandle() // in this namespace: Start makes the receiver's
		if err != nil {
			t.Fatal(err)
		}
		r.nl = nl
		l, err := netlink.LinkByName("mct0")
		if err != nil {
			t.Fatal(err)
		}
		added, gone := netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("198.18.9.9")
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: added.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			t.Fatal(err)
		}
		if err := r.objs.LocalAddrs.Put(be32(gone), uint8(1)); err != nil {
			t.Fatal(err)
		}
		if err := r.loadAddrs(); err != nil {
			t.Fatal(err)
		}
		var got []netip.Addr
		var k uint32
		var v uint8
		for it := r.objs.LocalAddrs.Iterate(); it.Next(&k, &v); {
			got = append(got, netip.AddrFrom4([4]byte(binary.NativeEndian.AppendUint32(nil, k))))
		}
		slices.SortFunc(got, netip.Addr.Compare)
		if want := []netip.Addr{added}; !slices.Equal(got, want) { // not 127.0.0.1: a martian from the wire
			t.Errorf("local_addrs holds %v, want %v", got, want)
		}

		// More addresses than the map has room for (kube-proxy's IPVS mode puts thousands
		// on a host): those are left to the stack, and the receiver still starts.
		var log strings.Builder
		r.log = slog.New(slog.NewTextHandler(&log, nil))
		localAddrsMax := int(r.objs.LocalAddrs.MaxEntries())
		for i := range localAddrsMax + 10 {
			a := net.IPv4(198, 19, byte(i>>8), byte(i))
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: a, Mask: net.CIDRMask(32, 32)}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.loadAddrs(); err != nil {
			t.Fatalf("loadAddrs with %d addresses: %v", localAddrsMax+11, err)
		}
		n := 0
		for it := r.objs.LocalAddrs.Iterate(); it.Next(&k, &v); {
			n++
		}
		if n != localAddrsMax || !strings.Contains(log.String(), "left_out=11") {
			t.Errorf("local_addrs holds %d of %d addresses, want %d, and the log to say 11 are left out:\n%s", n, localAddrsMax+11, localAddrsMax, log.String())
		}
	})
}
