//go:build e2e

package test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

// writeSecret writes a secret file readable by root alone and returns its path.
func (w *world) writeSecret(name, secret string, mode os.FileMode) string {
	w.t.Helper()
	path := filepath.Join(w.dir, name)
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// captureTunnel records up to n tunnel packets arriving on h's eth0 into a pcap file and
// returns a function that waits for them and returns the file's path.
func (w *world) captureTunnel(h *topo.Host, n int) func() string {
	w.t.Helper()
	path := filepath.Join(w.dir, h.Name+"-wire.pcap")
	cmd := h.Command(w.ctx, "tcpdump", "-i", "eth0", "-Q", "in", "-n", "-U", "-c", fmt.Sprint(n), "-w", path, "udp port 4754")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { cmd.Process.Kill() })
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "listening on"); {
		if time.Now().After(deadline) {
			w.t.Fatalf("tcpdump did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() string {
		done := make(chan error)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			w.t.Fatalf("tcpdump captured fewer than %d tunnel packets", n)
		}
		return path
	}
}

// tunnelPayloads reads the UDP payloads, the tunnel packets, of a capture of eth0.
func tunnelPayloads(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return out
		}
		ihl := int(data[14]&0x0f) * 4 // Ethernet, then IPv4
		out = append(out, data[14+ihl+8:])
	}
}

func TestAuthenticatedTunnel(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypt=%v", encrypt), func(t *testing.T) {
			w := newWorld(t, 5)
			secret := w.writeSecret("secret", "9d1f0c7e4b2a6385f0e1d2c3b4a59687\n", 0o600)
			auth := fmt.Sprintf("secret_file = %q\nencrypt = %v\n", secret, encrypt)
			w.upAll(auth+memberConfig, auth+sourceConfig)
			if r := w.mctun(w.src, "status"); !strings.Contains(r.stdout, "authenticated") || strings.Contains(r.stdout, "not authenticated") {
				t.Errorf("status does not say the tunnel is authenticated:\n%s", r.stdout)
			}

			const n = 2000
			wire := w.captureTunnel(w.mbrs[0], 20)
			rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 30 * time.Second})
			w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 600, Rate: 2000})
			for i, rep := range w.reports(rs) {
				w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
			}

			// On the wire: GRE with protocol 0x88B5; encrypted, nothing of the inner packet
			// (its source address, its payload's pattern) shows.
			pkts := tunnelPayloads(t, wire())
			out, _ := exec.Command("tshark", "-r", filepath.Join(w.dir, w.mbrs[0].Name+"-wire.pcap"), "-T", "fields", "-e", "gre.proto").Output()
			if got := strings.Fields(string(out)); len(got) != 20 || got[0] != "0x88b5" {
				t.Errorf("tshark reads GRE protocol types %q, want 0x88b5", got)
			}
			for _, p := range pkts {
				body := p[12+28 : len(p)-16]
				inClear := bytes.Equal(body[12:16], []byte{198, 18, 1, 2}) // the inner source address
				if inClear == encrypt {
					t.Fatalf("inner packet in the clear = %v with encrypt = %v: % x", inClear, encrypt, body[:24])
				}
			}

			// Replayed from the source's own address: refused, nothing delivered.
			replay := w.receive(w.mbrs[:1], mcapp.RecvOptions{Group: group, Port: 65535, Idle: time.Second, Timeout: 3 * time.Second})
			for _, p := range pkts {
				sendFrom(t, w.src, netip.AddrPortFrom(w.mbrs[0].Addr, 4754), p)
			}
			if rep := w.reports(replay)[0]; rep.Received != 0 {
				t.Errorf("replayed tunnel packets delivered %d datagrams", rep.Received)
			}
			if d := w.status(w.mbrs[0]).Member.Stats.Drops; d["replayed"] != uint64(len(pkts)) {
				t.Errorf("drops after replaying %d packets: %v", len(pkts), d)
			}

			// kill -9 the source and start it again: its new run is accepted at once.
			exec.Command("kill", "-9", fmt.Sprint(w.status(w.src).PID)).Run()
			time.Sleep(100 * time.Millisecond)
			if r := w.mctun(w.src, "up", "-c", filepath.Join(w.dir, "h0.toml")); r.code != 0 {
				t.Fatalf("up after kill -9: %v", r)
			}
			again := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: 200, Idle: 2 * time.Second, Timeout: 10 * time.Second})
			w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: 200, Rate: 1000})
			for i, rep := range w.reports(again) {
				w.checkStream(w.mbrs[i].Name+" (after the sender's restart)", rep, 200, "198.18.1.2")
			}
			if f := w.status(w.mbrs[0]).flow("198.18.1.2", "224.1.2.3"); f.Restarts != 1 || f.Lost != 0 {
				t.Errorf("after the sender's restart: flow %+v, want 1 restart and nothing lost", f)
			}
		})
	}
}

// A secret others can read is refused and changes nothing; a member with another secret
// delivers nothing and says why in its counters; the plain form says at start and in status
// that it is not authenticated.
func TestSecretRefusals(t *testing.T) {
	w := newWorld(t, 4)
	h := w.mbrs[0]
	before := w.snapshot(h)
	open := w.writeSecret("open", "9d1f0c7e4b2a6385f0e1d2c3b4a59687", 0o644)
	r := w.mctun(h, "up", "-c", w.writeConfig(h, fmt.Sprintf("secret_file = %q\n", open)+memberConfig))
	if r.code != 1 || !strings.Contains(r.stderr, "readable by others than its owner (mode 0644)") {
		t.Errorf("up with a world-readable secret: %v", r)
	}
	if after := w.snapshot(h); after != before {
		t.Errorf("a refused up changed the host:\n%s", after)
	}
	short := w.writeSecret("short", "tiny", 0o600)
	if r := w.mctun(h, "check", "-c", w.writeConfig(h, fmt.Sprintf("secret_file = %q\n", short)+memberConfig)); r.code == 0 || !strings.Contains(r.stderr, "at least 16") {
		t.Errorf("check with a 4-byte secret: %v", r)
	}

	ours := w.writeSecret("ours", "9d1f0c7e4b2a6385f0e1d2c3b4a59687", 0o600)
	theirs := w.writeSecret("theirs", "0000000000000000ffffffffffffffff", 0o600)
	w.up(h, fmt.Sprintf("secret_file = %q\n", ours)+memberConfig)
	w.up(w.src, fmt.Sprintf("secret_file = %q\n", theirs)+sourceConfig)
	rs := w.receive([]*topo.Host{h}, mcapp.RecvOptions{Group: group, Port: 65535, Idle: time.Second, Timeout: 3 * time.Second})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: 100, Rate: 1000})
	if rep := w.reports(rs)[0]; rep.Received != 0 {
		t.Errorf("a member with another secret delivered %d datagrams", rep.Received)
	}
	if d := w.status(h).Member.Stats.Drops; d["auth_failed"] != 100 {
		t.Errorf("drops with another secret: %v, want 100 auth_failed", d)
	}

	// The plain form, sent to an authenticating member from a configured source.
	var c *net.UDPConn
	w.src.Do(func() (err error) { c, err = net.ListenUDP("udp4", nil); return err })
	defer c.Close()
	c.WriteToUDPAddrPort([]byte{0x30, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x45}, netip.AddrPortFrom(h.Addr, 4754))
	time.Sleep(200 * time.Millisecond)
	if d := w.status(h).Member.Stats.Drops; d["not_authenticated"] != 1 {
		t.Errorf("drops after one plain packet: %v, want not_authenticated 1", d)
	}

	w2 := w.mbrs[1]
	w.up(w2, memberConfig)
	if log := w.log(w2); !strings.Contains(log, "the tunnel is not authenticated") {
		t.Errorf("the log of a member without a secret does not say so:\n%s", log)
	}
	if r := w.mctun(w2, "status"); !strings.Contains(r.stdout, "not authenticated") {
		t.Errorf("status of a member without a secret:\n%s", r.stdout)
	}
}
