//go:build e2e

package mcapp_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"mctun/test/mcapp"
	"mctun/test/stream"
	"mctun/test/topo"
)

var (
	tools mcapp.Tools
	group = netip.MustParseAddr("224.1.2.3")
)

func TestMain(m *testing.M) {
	if topo.Available() != nil {
		os.Exit(m.Run()) // every test skips with the reason
	}
	dir, err := os.MkdirTemp("", "mcapp-test-")
	if err == nil {
		tools, err = mcapp.Build(context.Background(), dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lan is two hosts on one bridge: h0 sends, h1 receives native multicast.
func lan(t *testing.T) *topo.Topology {
	return topo.ForTest(t, topo.Options{Hosts: 2, Bridged: true})
}

func TestStreamAcrossLAN(t *testing.T) {
	tp := lan(t)
	tests := []struct {
		name  string
		size  int
		count int
		rate  float64
		proto int
		group netip.Addr
	}{
		{name: "UDP 1472 bytes unpaced", size: 1472, count: 2000},
		{name: "UDP 8000 bytes, IP-fragmented", size: 8000, count: 500, rate: 5000},
		{name: "UDP minimum 16 bytes", size: 16, count: 1000},
		{name: "raw IP protocol 112 like VRRP", size: 40, count: 100, proto: 112, group: netip.MustParseAddr("224.0.0.18")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := group
			if tt.group.IsValid() {
				g = tt.group
			}
			r := startRecv(t, tp.Hosts[1], mcapp.RecvOptions{Group: g, Proto: tt.proto, Count: tt.count, Size: tt.size, Idle: time.Second, Timeout: 10 * time.Second})
			sent, err := tools.Send(context.Background(), tp.Hosts[0], mcapp.SendOptions{Group: g, Proto: tt.proto, Count: tt.count, Size: tt.size, Rate: tt.rate})
			if err != nil {
				t.Fatal(err)
			}
			if sent.Sent != uint64(tt.count) || sent.Errors != 0 || sent.Stop != "count" {
				t.Fatalf("mcsend report %+v, want %d sent without errors", sent, tt.count)
			}
			rep, err := r.Wait()
			if err != nil {
				t.Fatal(err)
			}
			checkComplete(t, rep, tt.count, tp.Hosts[0].Addr)
		})
	}
}

// checkComplete asserts that rep shows every one of count datagrams, good and once, from
// the one sender.
func checkComplete(t *testing.T, rep stream.RecvReport, count int, from netip.Addr) {
	t.Helper()
	n := uint64(count)
	if rep.Unique != n || rep.Received != n || rep.Bad != 0 || rep.Duplicates != 0 || rep.Missing != 0 {
		t.Errorf("received %d, unique %d, bad %d, duplicates %d, missing %d; want all %d once and good (kernel drops %d)",
			rep.Received, rep.Unique, rep.Bad, rep.Duplicates, rep.Missing, n, rep.KernelDrops)
	}
	if len(rep.Senders) != 1 || rep.Senders[from.String()] != n {
		t.Errorf("senders %v, want {%s: %d}", rep.Senders, from, n)
	}
	if rep.FirstSeq == nil || *rep.FirstSeq != 0 || rep.LastSeq == nil || *rep.LastSeq != n-1 {
		t.Errorf("first/last seq %v/%v, want 0/%d", rep.FirstSeq, rep.LastSeq, n-1)
	}
	if rep.LatencyNs.Max <= 0 || rep.LatencyNs.P50 > rep.LatencyNs.Max {
		t.Errorf("latency %+v is not a plausible summary", rep.LatencyNs)
	}
}

func TestLoopbackInOneNamespace(t *testing.T) {
	tp := topo.ForTest(t, topo.Options{Hosts: 1})
	h := tp.Hosts[0]
	r := startRecv(t, h, mcapp.RecvOptions{Group: group, Count: 300, Idle: time.Second, Timeout: 10 * time.Second})
	if _, err := tools.Send(context.Background(), h, mcapp.SendOptions{Group: group, Count: 300}); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Wait()
	if err != nil {
		t.Fatal(err)
	}
	checkComplete(t, rep, 300, h.Addr)

	// -loop=false turns IP_MULTICAST_LOOP off: the same receiver now gets nothing.
	r = startRecv(t, h, mcapp.RecvOptions{Group: group, Timeout: time.Second})
	if _, err := tools.Send(context.Background(), h, mcapp.SendOptions{Group: group, Count: 50, NoLoop: true}); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Wait(); err != nil || rep.Received != 0 || rep.Stop != "timeout" {
		t.Errorf("with -loop=false: %+v, %v; want nothing received", rep, err)
	}
}

func TestReceiverJudgesEveryDatagram(t *testing.T) {
	tp := lan(t)
	r := startRecv(t, tp.Hosts[1], mcapp.RecvOptions{Group: group, Idle: 500 * time.Millisecond, Timeout: 10 * time.Second})
	corrupt := payload(3, 64)
	corrupt[40] ^= 1
	datagrams := [][]byte{
		payload(0, 64),
		payload(2, 64),
		payload(1, 64), // after 2: reordered
		payload(1, 64), // again: duplicate
		corrupt,        // one bit flipped: bad
		[]byte("short"),
	}
	sendRaw(t, tp.Hosts[0], datagrams)
	rep, err := r.Wait()
	if err != nil {
		t.Fatal(err)
	}
	type counts struct{ Received, Unique, Duplicates, Reordered, Bad uint64 }
	want := counts{Received: 6, Unique: 3, Duplicates: 1, Reordered: 1, Bad: 2}
	if got := (counts{rep.Received, rep.Unique, rep.Duplicates, rep.Reordered, rep.Bad}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	if rep.Senders["198.18.1.2"] != 4 || rep.Stop != "idle" {
		t.Errorf("senders %v (want 4 good from 198.18.1.2), stop %q (want idle)", rep.Senders, rep.Stop)
	}
}

func TestReceiverSizeCheck(t *testing.T) {
	tp := lan(t)
	r := startRecv(t, tp.Hosts[1], mcapp.RecvOptions{Group: group, Size: 100, Idle: 500 * time.Millisecond, Timeout: 10 * time.Second})
	sendRaw(t, tp.Hosts[0], [][]byte{payload(0, 100), payload(1, 99)})
	if rep, err := r.Wait(); err != nil || rep.Unique != 1 || rep.Bad != 1 {
		t.Errorf("report %+v, %v; want the 99-byte datagram counted bad", rep, err)
	}
}

func TestSenderPacing(t *testing.T) {
	tp := topo.ForTest(t, topo.Options{Hosts: 1})
	// Datagram k is due k/rate after the start, so 400 at 2000/s take at least 199.5ms.
	rep, err := tools.Send(context.Background(), tp.Hosts[0], mcapp.SendOptions{Group: group, Count: 400, Rate: 2000, NoLoop: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 400 || time.Duration(rep.ElapsedNs) < 199500*time.Microsecond {
		t.Errorf("sent %d in %v, want 400 in at least 199.5ms", rep.Sent, time.Duration(rep.ElapsedNs))
	}
}

func TestSenderDurationBound(t *testing.T) {
	tp := topo.ForTest(t, topo.Options{Hosts: 1})
	rep, err := tools.Send(context.Background(), tp.Hosts[0], mcapp.SendOptions{Group: group, Count: 1e6, Rate: 1000, Duration: 300 * time.Millisecond, NoLoop: true})
	if err != nil {
		t.Fatal(err)
	}
	// Before the 300ms deadline at most datagrams 0..300 can be due.
	if rep.Stop != "duration" || rep.Sent == 0 || rep.Sent > 301 {
		t.Errorf("report %+v, want a stop by duration after 1 to 301 datagrams", rep)
	}
}

func TestReceiverStopsOnSignal(t *testing.T) {
	tp := topo.ForTest(t, topo.Options{Hosts: 1})
	r := startRecv(t, tp.Hosts[0], mcapp.RecvOptions{Group: group, Timeout: time.Minute})
	start := time.Now()
	rep, err := r.Stop()
	if err != nil || rep.Stop != "signal" || time.Since(start) > 5*time.Second {
		t.Errorf("Stop: %+v, %v after %v; want a report that says signal", rep, err, time.Since(start))
	}
}

// payload returns a stream payload of size bytes with sequence number seq, sent now.
func payload(seq uint64, size int) []byte {
	b := make([]byte, size)
	stream.Encode(b, seq, time.Now().UnixNano())
	return b
}

// sendRaw sends each datagram to group:65535 from a socket opened inside h.
func sendRaw(t *testing.T, h *topo.Host, datagrams [][]byte) {
	t.Helper()
	var conn *net.UDPConn
	if err := h.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range datagrams {
		if _, err := conn.WriteToUDPAddrPort(d, netip.AddrPortFrom(group, 65535)); err != nil {
			t.Fatal(err)
		}
	}
}

func startRecv(t *testing.T, h *topo.Host, o mcapp.RecvOptions) *mcapp.Receiver {
	t.Helper()
	r, err := tools.StartRecv(context.Background(), h, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return r
}
