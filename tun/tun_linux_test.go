package tun

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"mctun/encap/encaptest"
)

// inNamespace runs f on a thread inside a new network namespace that the test removes.
func inNamespace(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace and a TUN")
	}
	name := fmt.Sprintf("mttun-%08x", rand.Uint32())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.GetFromName(name)
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		f()
	}()
	<-done
}

// TestNativeDevice writes a multicast packet into a TUN and sees a socket joined to its group
// on the TUN receive it; and reads what the host sends out of the TUN.
func TestNativeDevice(t *testing.T) {
	inNamespace(t, func() {
		dev, err := Create("mctuntest0")
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		if _, err := Create("mctuntest0"); err == nil {
			t.Error("a second Create of the same name succeeded")
		}
		link, err := netlink.LinkByName("mctuntest0")
		if err == nil {
			err = netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(198, 18, 250, 1), Mask: net.CIDRMask(32, 32)}})
		}
		if err == nil {
			err = netlink.LinkSetUp(link)
		}
		if err == nil {
			err = netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4(224, 0, 0, 0), Mask: net.CIDRMask(4, 32)}})
		}
		if err != nil {
			t.Error(err)
			return
		}
		group := netip.MustParseAddrPort("224.9.8.7:5000")
		sock, err := net.ListenMulticastUDP("udp4", &net.Interface{Index: link.Attrs().Index, Name: "mctuntest0"}, net.UDPAddrFromAddrPort(group))
		if err != nil {
			t.Error(err)
			return
		}
		defer sock.Close()

		// Into the host.
		pkt := encaptest.UDPPacket(netip.MustParseAddr("198.18.250.9"), group, []byte("through the TUN"))
		if n, err := dev.Write([][]byte{append(make([]byte, 8), pkt...)}, 8); n != 1 || err != nil {
			t.Errorf("Write = %d, %v", n, err)
		}
		sock.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 100)
		n, from, err := sock.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "through the TUN" || from.Addr().String() != "198.18.250.9" {
			t.Errorf("socket got %q from %v, %v", buf[:n], from, err)
		}

		// Writing allocates nothing, not even the callback the poller runs.
		wbufs := [][]byte{pkt}
		if allocs := testing.AllocsPerRun(100, func() { dev.Write(wbufs, 0) }); allocs != 0 {
			t.Errorf("Write allocates %v times, want 0", allocs)
		}

		// Out of the host: the kernel's own traffic into the TUN (its IGMP report for the
		// join, and what we send to a group).
		out, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(group))
		if err != nil {
			t.Error(err)
			return
		}
		defer out.Close()
		out.Write([]byte("from the host"))
		bufs, sizes := [][]byte{make([]byte, 16+dev.MaxPacketSize())}, []int{0}
		for range 10 {
			if _, err := dev.Read(bufs, sizes, 16); err != nil {
				t.Error(err)
				return
			}
			if p := bufs[0][16 : 16+sizes[0]]; p[9] == 17 && bytes.HasSuffix(p, []byte("from the host")) {
				break
			}
		}
		if p := bufs[0][16 : 16+sizes[0]]; !bytes.HasSuffix(p, []byte("from the host")) {
			t.Errorf("Read did not return the host's datagram; last read % x", p)
		}

		// Close wakes a blocked Read with net.ErrClosed, and removes the device.
		errc := make(chan error)
		go func() { // reading past whatever the kernel still queued
			for {
				if _, err := dev.Read(bufs, sizes, 0); err != nil {
					errc <- err
					return
				}
			}
		}()
		time.Sleep(50 * time.Millisecond)
		dev.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close = %v, want net.ErrClosed", err)
			}
		case <-time.After(2 * time.Second):
			t.Error("Read still blocked after Close")
		}
		if _, err := netlink.LinkByName("mctuntest0"); err == nil {
			t.Error("the TUN is still there after Close")
		}
	})
}

// TestPersistAndAttach is a daemon killed and started again: a persistent TUN outlives the
// process that made it, with a socket's membership of a group on it, and Attach takes it over
// so that the socket receives again without joining anew. Attach refuses a device that is
// missing or held.
func TestPersistAndAttach(t *testing.T) {
	inNamespace(t, func() {
		const name = "mctuntest1"
		dev, err := Create(name)
		if err == nil {
			err = dev.Persist()
		}
		if err != nil {
			t.Error(err)
			return
		}
		link, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetUp(link)
		}
		if err != nil {
			t.Error(err)
			return
		}
		defer netlink.LinkDel(link)
		if _, err := Attach(name); err == nil {
			t.Error("Attach took a device that another descriptor holds")
		}
		group := netip.MustParseAddrPort("224.9.8.6:5000")
		sock, err := net.ListenMulticastUDP("udp4", &net.Interface{Index: link.Attrs().Index, Name: name}, net.UDPAddrFromAddrPort(group))
		if err != nil {
			t.Error(err)
			return
		}
		defer sock.Close()
		dev.Close() // the daemon dies

		if _, err := netlink.LinkByName(name); err != nil {
			t.Errorf("the persistent TUN is gone after Close: %v", err)
			return
		}
		dev, err = Attach(name)
		if err != nil {
			t.Error(err)
			return
		}
		defer dev.Close()
		pkt := encaptest.UDPPacket(netip.MustParseAddr("198.18.250.9"), group, []byte("after the restart"))
		if n, err := dev.Write([][]byte{pkt}, 0); n != 1 || err != nil {
			t.Errorf("Write = %d, %v", n, err)
		}
		sock.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 100)
		if n, _, err := sock.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "after the restart" {
			t.Errorf("the socket joined before the restart got %q, %v", buf[:n], err)
		}
		if _, err := Attach("mctunnone0"); err == nil {
			t.Error("Attach of a device that does not exist succeeded")
		}
	})
}
