// Command mcrecv joins an IPv4 multicast group and receives a stream of datagrams from
// mcsend, the way an unmodified multicast application does, checks every byte of each,
// and prints one JSON line when it stops:
//
//	{"received":N,"unique":U,"duplicates":D,"bad":B,"reordered":R,"missing":M,
//	 "senders":{"198.18.1.2":N},"latency_ns":{"mean":..,"p50":..,"p99":..,"max":..},
//	 "first_seq":F,"last_seq":L,"kernel_drops":K,"rcvbuf":..,"span_ns":..,"pps":..,"stop":"idle"}
//
// It binds a UDP socket to -group:-port (SO_REUSEADDR, so several receivers can share a
// host) and joins the group on -iface, or, without -iface, on the interface the routing
// table picks for the group, exactly as an application that passes INADDR_ANY does. With
// -proto other than 17 it opens a raw socket of that IP protocol and keeps the packets
// addressed to the group.
//
// It reads batches with recvmmsg(2), blocking as a C application does, into a large
// receive buffer (SO_RCVBUFFORCE, falling back to SO_RCVBUF). Each datagram is checked
// against the stream format (mctun/test/stream); a good one counts for its sender and its
// sequence number, and its one-way latency (arrival minus the send time it carries; all
// namespaces of one machine share a clock) goes into a histogram. kernel_drops is the
// socket's drop counter from SO_MEMINFO: datagrams the kernel discarded because the buffer
// was full.
//
// It stops after -count unique datagrams, after -idle without any once one has arrived,
// after -timeout in all, or on SIGINT/SIGTERM. With -ready it writes that file once it has
// joined and is listening, so a test knows when to start the sender. It exits 1 if it
// could not start, 0 otherwise: the JSON line says what arrived.
//
// A unicast -group address works too: it is then bound to, and no group is joined.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

// config is what the flags say.
type config struct {
	group   netip.Addr
	port    int
	iface   string
	proto   int
	count   uint64
	idle    time.Duration
	timeout time.Duration
	size    int
	ready   string
	maxSeq  uint64
	batch   int
	rcvbuf  int
	profile string
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcrecv:", err)
		os.Exit(2)
	}
	r, err := newReceiver(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcrecv:", err)
		os.Exit(1)
	}
	defer r.close()
	// Catch signals before saying ready: whoever waits for the file may signal at once.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := writeReady(cfg.ready); err != nil {
		fmt.Fprintln(os.Stderr, "mcrecv:", err)
		os.Exit(1)
	}
	stopProfile := startProfile(cfg.profile)
	rep, err := r.run(ctx)
	stopProfile()
	json.NewEncoder(os.Stdout).Encode(rep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcrecv:", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config and checks it.
func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("mcrecv", flag.ContinueOnError)
	group := fs.String("group", "224.1.2.3", "IPv4 multicast group to join (or a local unicast address to bind)")
	fs.IntVar(&cfg.port, "port", 65535, "UDP port")
	fs.StringVar(&cfg.iface, "iface", "", "interface to join on; empty lets the routing table choose (INADDR_ANY)")
	fs.IntVar(&cfg.proto, "proto", 17, "IP protocol: 17 receives UDP, anything else raw IPv4 packets of that protocol")
	fs.Uint64Var(&cfg.count, "count", 0, "stop after this many unique datagrams; 0 for no limit")
	fs.DurationVar(&cfg.idle, "idle", 2*time.Second, "stop after this long without datagrams, once one has arrived")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "stop after this long in all")
	fs.IntVar(&cfg.size, "size", 0, "expected payload size; others count as bad. 0 accepts any")
	fs.StringVar(&cfg.ready, "ready", "", "file to write once joined and listening")
	fs.Uint64Var(&cfg.maxSeq, "max-seq", 1<<30, "highest sequence number tracked (the bitmap grows up to max-seq/8 bytes)")
	fs.IntVar(&cfg.batch, "batch", 64, "datagrams per recvmmsg call")
	fs.IntVar(&cfg.rcvbuf, "rcvbuf", 32<<20, "socket receive buffer in bytes (SO_RCVBUFFORCE)")
	fs.StringVar(&cfg.profile, "cpuprofile", "", "write a Go CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.group, err = netip.ParseAddr(*group); err != nil || !cfg.group.Is4() {
		return cfg, fmt.Errorf("-group %q: not an IPv4 address", *group)
	}
	return cfg, cfg.check()
}

// check reports the first flag value that is out of range.
func (c config) check() error {
	switch {
	case c.port < 1 || c.port > 65535:
		return fmt.Errorf("-port %d: want 1 to 65535", c.port)
	case c.proto < 1 || c.proto > 255:
		return fmt.Errorf("-proto %d: want 1 to 255", c.proto)
	case c.idle <= 0 || c.timeout <= 0:
		return errors.New("-idle and -timeout: want more than 0")
	case c.size != 0 && (c.size < 16 || c.size > 65535):
		return fmt.Errorf("-size %d: want 0, or 16 to 65535", c.size)
	case c.maxSeq < 1:
		return errors.New("-max-seq: want at least 1")
	case c.batch < 1 || c.batch > 1024:
		return fmt.Errorf("-batch %d: want 1 to 1024", c.batch)
	case c.rcvbuf < 0:
		return fmt.Errorf("-rcvbuf %d: want 0 or more", c.rcvbuf)
	}
	return nil
}

// startProfile starts a CPU profile into path, if one was asked for, and returns the
// function that ends it.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcrecv: -cpuprofile:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// writeReady creates the ready file, if one was asked for, by renaming a complete
// temporary file into place, so a watcher never sees it half written.
func writeReady(path string) error {
	if path == "" {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}
