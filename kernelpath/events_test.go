package kernelpath

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"mctun/internal/nlevents"
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
				flood+1, nlevents.Socket>>10, log.String())
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
