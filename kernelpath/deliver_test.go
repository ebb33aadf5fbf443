package kernelpath

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mctun/config"
	"mctun/encap/encaptest"
	"mctun/tun"
)

// What the TUN delivers to a group is marked multicast once the receiver side runs, whether
// the kernel path redirected it there or user space wrote it, as a link's driver marks it;
// what it delivers to a unicast address stays PACKET_HOST. Without mctun_deliver the
// multicast is PACKET_HOST too, which the first check shows.
func TestDeliverMarksMulticast(t *testing.T) {
	inNetns(t, func() {
		dev, l := upTUN(t)
		defer dev.Close()
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 5, 1), Mask: net.CIDRMask(24, 32)}}); err != nil {
			t.Fatal(err)
		}
		// A packet socket for IPv4 alone gets each packet after the TUN's ingress programs
		// (tcpdump's, for every protocol, before them).
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(be16(unix.ETH_P_IP)))
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: be16(unix.ETH_P_IP), Ifindex: l.Attrs().Index}); err != nil {
			t.Fatal(err)
		}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2}); err != nil {
			t.Fatal(err)
		}
		src := netip.MustParseAddr("198.18.5.2")
		group := encaptest.UDPPacket(src, netip.MustParseAddrPort("224.1.2.3:65535"), []byte("to the group"))
		unicast := encaptest.UDPPacket(src, netip.MustParseAddrPort("198.18.5.1:65535"), []byte("to the host"))
		pktType := func(pkt []byte) uint8 {
			t.Helper()
			if _, err := dev.Write([][]byte{pkt}, 0); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				n, from, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					t.Fatalf("packet socket: %v", err)
				}
				if ll, ok := from.(*unix.SockaddrLinklayer); ok && string(buf[:n]) == string(pkt) {
					return ll.Pkttype
				}
			}
			t.Fatalf("the packet written into the TUN did not arrive")
			return 0
		}
		if got := pktType(group); got != unix.PACKET_HOST {
			t.Fatalf("without the receiver side, the TUN's multicast arrives as type %d, want PACKET_HOST", got)
		}

		r := startReceiver(t, src)
		defer r.Close()
		if got := pktType(group); got != unix.PACKET_MULTICAST {
			t.Errorf("multicast through the TUN arrives as type %d, want PACKET_MULTICAST (%d)", got, unix.PACKET_MULTICAST)
		}
		if got := pktType(unicast); got != unix.PACKET_HOST {
			t.Errorf("unicast through the TUN arrives as type %d, want PACKET_HOST", got)
		}
	})
}

// TestReceiverFollowsRoutes: each source's tunnel packets are taken in the kernel only on the
// interface the route to the source leaves by (elsewhere the stack's rp_filter judges them),
// and when that route moves to another interface the program follows it there.
func TestReceiverFollowsRoutes(t *testing.T) {
	inNetns(t, func() {
		dev, _ := upTUN(t)
		defer dev.Close()
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "mct2"}, PeerName: "mct3"}); err != nil {
			t.Fatal(err)
		}
		link := func(name string) netlink.Link {
			t.Helper()
			l, err := netlink.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		mct0, mct2 := link("mct0"), link("mct2")
		for _, err := range []error{
			netlink.LinkSetUp(mct2), netlink.LinkSetUp(link("mct3")),
			netlink.AddrAdd(mct0, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 1, 1), Mask: net.CIDRMask(24, 32)}}),
			netlink.AddrAdd(mct2, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 2, 1), Mask: net.CIDRMask(24, 32)}}),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		sources := &net.IPNet{IP: net.IPv4(198, 18, 7, 0), Mask: net.CIDRMask(24, 32)}
		if err := netlink.RouteAdd(&netlink.Route{Dst: sources, Gw: net.IPv4(198, 18, 1, 2), LinkIndex: mct0.Attrs().Index}); err != nil {
			t.Fatal(err)
		}
		src := netip.MustParseAddr("198.18.7.2")

		r := startReceiver(t, src)
		defer r.Close()
		// on says whether the program expects src's packets on name, and is attached there.
		on := func(name string) (expected, attached bool) {
			var got uint32
			if err := r.objs.Sources.Lookup(be32(src), &got); err != nil {
				t.Fatal(err)
			}
			for _, a := range r.Attached() {
				attached = attached || a.Interface == name && a.Hook == "ingress"
			}
			return int(got) == link(name).Attrs().Index, attached
		}
		if expected, attached := on("mct0"); !expected || !attached {
			t.Fatalf("at start: the source expected on mct0 %v, the program on mct0 %v; want both", expected, attached)
		}
		if err := netlink.RouteReplace(&netlink.Route{Dst: sources, Gw: net.IPv4(198, 18, 2, 2), LinkIndex: mct2.Attrs().Index}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			expected, attached := on("mct2")
			if expected && attached {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("2 s after the route moved to mct2: the source expected there %v, the program there %v; want both", expected, attached)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// The receiver side follows the TUN's state into tun_down: down by hand, the program drops
// what it would deliver (TestIngressTUNDown); up again, it delivers.
func TestReceiverFollowsTUN(t *testing.T) {
	inNetns(t, func() {
		dev, l := upTUN(t)
		defer dev.Close()
		r := startReceiver(t, netip.MustParseAddr("198.18.7.2"))
		defer r.Close()
		down := func() uint8 {
			var c receiverReceiverConfig
			if err := r.objs.Config.Lookup(uint32(0), &c); err != nil {
				t.Fatal(err)
			}
			return c.TunDown
		}
		if got := down(); got != 0 {
			t.Fatalf("at start, the TUN up: tun_down %d", got)
		}
		for _, step := range []struct {
			set  func(netlink.Link) error
			want uint8
		}{{netlink.LinkSetDown, 1}, {netlink.LinkSetUp, 0}} {
			if err := step.set(l); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(2 * time.Second)
			for down() != step.want {
				if time.Now().After(deadline) {
					t.Fatalf("2 s after the TUN was set %s: tun_down %d", map[uint8]string{0: "up", 1: "down"}[step.want], down())
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
}

// upTUN creates the TUN mctt0, in the calling thread's network namespace, and sets it up.
// The caller closes it.
func upTUN(t *testing.T) (*tun.Native, netlink.Link) {
	t.Helper()
	dev, err := tun.Create("mctt0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName("mctt0")
	if err == nil {
		err = netlink.LinkSetUp(l)
	}
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	return dev, l
}

// startReceiver loads the receiver side and starts it on the TUN mctt0, with source src.
func startReceiver(t *testing.T, src netip.Addr) *Receiver {
	t.Helper()
	r, err := LoadReceiver()
	if err != nil {
		t.Fatal(err)
	}
	err = r.Start(ReceiverOptions{TUN: "mctt0", Port: 4754, Key: 1,
		Member: config.Member{Sources: []netip.Addr{src}, MTU: 1500},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	return r
}
