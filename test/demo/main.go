// Command demo runs the original tool's worked example with mctun, in network namespaces on
// this machine: source h0 sends a stream to group 224.1.2.3 port 65535, members h1..h3 receive
// it through mctun, across a router that drops multicast as a cloud VPC does. It prints what
// each member's application received and each mctun's status, then removes everything.
//
//	sudo go run ./test/demo -mctun bin/mctun
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

const (
	sourceConfig = `# h0, the source: its applications send to 224.1.2.3:65535
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2", "198.18.3.2", "198.18.4.2"]
`
	memberConfig = `# h1..h3, the members: accept tunnel packets from h0 only
[member]
sources = ["198.18.1.2"]
`
)

func main() {
	mctun := flag.String("mctun", "bin/mctun", "the mctun `binary` to run")
	count := flag.Int("count", 10000, "datagrams to send")
	rate := flag.Float64("rate", 5000, "datagrams per second")
	flag.Parse()
	if err := run(*mctun, *count, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(mctun string, count int, rate float64) error {
	if err := topo.Available(); err != nil {
		return err
	}
	mctun, err := filepath.Abs(mctun)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "mctun-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	step("Building the stand-in applications (mcsend, mcrecv: plain multicast sockets)")
	tools, err := mcapp.Build(ctx, dir)
	if err != nil {
		return err
	}

	step("Building the network: router + h0 (source, 198.18.1.2) + h1..h3 (members, 198.18.2-4.2)")
	tp, err := topo.Build(topo.Options{Hosts: 4})
	if err != nil {
		return err
	}
	defer func() {
		step("Cleaning up: mctun down everywhere, namespaces removed")
		for _, h := range tp.Hosts {
			out, _ := h.Run(ctx, mctun, "down")
			fmt.Printf("  %s: %s", h.Name, out)
		}
		tp.Close()
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() { <-sigs; cancel() }()
	src, members := tp.Hosts[0], tp.Hosts[1:]
	group := netip.MustParseAddr("224.1.2.3")

	step("Without mctun: the router drops multicast, as a VPC does")
	if err := stream(ctx, tools, src, members, group, 100, 1000, 3*time.Second); err != nil {
		return err
	}

	step("mctun up on every host")
	configs := map[*topo.Host]string{src: sourceConfig}
	for _, m := range members {
		configs[m] = memberConfig
	}
	for _, h := range tp.Hosts {
		path := filepath.Join(dir, h.Name+".toml")
		if err := os.WriteFile(path, []byte(configs[h]), 0o644); err != nil {
			return err
		}
		out, err := h.Run(ctx, mctun, "up", "-c", path)
		fmt.Printf("  %s: %s", h.Name, out)
		if err != nil {
			return err
		}
	}
	out, _ := members[0].Run(ctx, "ip", "route", "show", "224.0.0.0/4")
	fmt.Printf("  h1's route for multicast now: %s", out)

	step(fmt.Sprintf("With mctun: h0 sends %d datagrams of 1000 bytes at %.0f/s", count, rate))
	if err := stream(ctx, tools, src, members, group, count, rate, time.Minute); err != nil {
		return err
	}

	step("What tcpdump sees on h1's TUN: native multicast from h0")
	dump := members[0].Command(ctx, "tcpdump", "-i", "mctun0", "-n", "-c", "3", "-l", "udp")
	dump.Stdout = os.Stdout
	if err := dump.Start(); err == nil {
		time.Sleep(500 * time.Millisecond)
		tools.Send(ctx, src, mcapp.SendOptions{Group: group, Port: 65535, Count: 3, Size: 1000, Rate: 100})
		dump.Wait()
	}

	for _, h := range []*topo.Host{src, members[0]} {
		step("mctun status on " + h.Name)
		out, _ := h.Run(ctx, mctun, "status")
		fmt.Print(indent(out))
	}
	return nil
}

// stream has h0 send n datagrams and reports what each member's application received within
// timeout.
func stream(ctx context.Context, tools mcapp.Tools, src *topo.Host, members []*topo.Host, group netip.Addr, n int, rate float64, timeout time.Duration) error {
	var rs []*mcapp.Receiver
	for _, m := range members {
		r, err := tools.StartRecv(ctx, m, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: timeout})
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}
	sent, err := tools.Send(ctx, src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 1000, Rate: rate})
	if err != nil {
		return err
	}
	fmt.Printf("  h0 sent %d datagrams in %v\n", sent.Sent, time.Duration(sent.ElapsedNs).Round(time.Millisecond))
	for i, r := range rs {
		rep, err := r.Wait()
		if err != nil {
			return err
		}
		from := "nothing"
		for addr, k := range rep.Senders {
			from = fmt.Sprintf("%d from %s", k, addr)
		}
		fmt.Printf("  %s's application received %5d of %d (%s), %d corrupted, %d duplicated, latency mean %v p99 %v\n",
			members[i].Name, rep.Unique, n, from, rep.Bad, rep.Duplicates,
			time.Duration(rep.LatencyNs.Mean).Round(time.Microsecond), time.Duration(rep.LatencyNs.P99).Round(time.Microsecond))
	}
	return nil
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
