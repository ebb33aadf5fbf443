package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mctun/config"
)

// The notifier writes one datagram per message to $NOTIFY_SOCKET, a path or an abstract
// name, and takes the variable out of the environment.
func TestSystemdNotifier(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		fmt.Sprintf("@mctun-test-notify-%d", os.Getpid()),
	} {
		ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", name)
		n := newSystemdNotifier()
		if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
			t.Errorf("NOTIFY_SOCKET is still %q", v)
		}
		if err := n.send("READY=1", "STATUS=forwarding"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := ln.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:k]); got != "READY=1\nSTATUS=forwarding\n" {
			t.Errorf("%s: got %q", name, got)
		}
		ln.Close()
	}

	t.Setenv("NOTIFY_SOCKET", "")
	if err := newSystemdNotifier().send("READY=1"); err != nil {
		t.Errorf("without systemd: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	if err := newSystemdNotifier().send("READY=1"); err == nil {
		t.Error("a socket nobody listens on: no error")
	}
}

func TestMonotonicUsec(t *testing.T) {
	a, err := strconv.ParseInt(monotonicUsec(), 10, 64)
	if err != nil || a <= 0 {
		t.Fatalf("monotonicUsec = %d, %v", a, err)
	}
	time.Sleep(2 * time.Millisecond)
	if b, _ := strconv.ParseInt(monotonicUsec(), 10, 64); b-a < 2000 {
		t.Errorf("2ms later: %d -> %d", a, b)
	}
}

// The STATUS line counts what the sender side sends to: not this host, and with the members
// that joined.
func TestStatusLine(t *testing.T) {
	self := netip.MustParseAddrPort("127.0.0.1:4754") // an address of every host
	d := &daemon{datapath: config.DatapathUser, iface: "eth0",
		cfg: &config.Config{
			Source: &config.Source{Groups: []config.Group{
				{Members: []netip.AddrPort{self, netip.MustParseAddrPort("198.18.2.2:4754")}},
			}},
			Member: &config.Member{TUN: "mctun0", Sources: []netip.Addr{netip.MustParseAddr("198.18.1.2")}},
		}}
	joined := append(d.cfg.Source.Groups, config.Group{Members: []netip.AddrPort{netip.MustParseAddrPort("198.18.3.2:4754")}})
	local, err := localAddrs()
	if err != nil {
		t.Fatal(err)
	}
	d.sendingTo(joined, local)
	want := "STATUS=forwarding in user space; source on eth0: 2 groups, 2 members; member on mctun0: 1 source, any group"
	if got := d.statusLine(); got != want {
		t.Errorf("statusLine =\n%q, want\n%q", got, want)
	}
	if strings.Contains(d.statusLine(), "\n") {
		t.Error("a STATUS line has a newline")
	}
}
