// Command mcsend sends a bounded stream of datagrams to an IPv4 multicast group, the way an
// unmodified multicast application does, and prints a JSON summary line when it stops:
//
//	{"sent":N,"errors":E,"bytes":B,"elapsed_ns":T,"pps":R,"stop":"count"}
//
// Every payload is a stream payload (mctun/test/stream): a sequence number from 0, the send
// time, and a pattern the receiver (mcrecv) checks byte for byte.
//
// By default it sends UDP from an ephemeral port to -group:-port, lets the routing table
// pick the outgoing interface (as an application that never sets IP_MULTICAST_IF does),
// keeps the kernel's default multicast loopback, and uses TTL 8: enough to cross the
// routers of a test topology when a multicast router or proxy forwards it, where a real
// application's default of 1 would stop at the first hop. With -proto other than 17 it
// sends raw IPv4 packets of that protocol instead (112 to 224.0.0.18 looks like VRRP).
//
// It sends in batches of -batch datagrams per sendmmsg(2). With -rate it paces against a
// schedule computed from the start time (packet k is due at start + k/rate), sleeping with
// nanosleep(2) and a 1µs timer slack in between, so the average rate is exact and bursts
// are short. It stops after -count datagrams or -duration, whichever comes first, or on
// SIGINT/SIGTERM. It exits 1 if it could not start or sent nothing.
//
// A unicast -group address works too: it is then simply the destination.
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
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// config is what the flags say.
type config struct {
	group    netip.Addr
	port     int
	srcPort  int
	count    uint64
	size     int
	rate     float64
	duration time.Duration
	ttl      int
	iface    string
	proto    int
	batch    int
	sndbuf   int
	loop     bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcsend:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The send loop stays on this thread, whose timer slack makes short sleeps precise.
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)

	s, err := newSender(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcsend:", err)
		os.Exit(1)
	}
	defer s.close()
	rep := s.run(ctx)
	json.NewEncoder(os.Stdout).Encode(rep)
	if rep.Sent == 0 {
		fmt.Fprintln(os.Stderr, "mcsend: nothing sent:", rep.FirstError)
		os.Exit(1)
	}
}

// parseFlags reads the command line into a config and checks it.
func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("mcsend", flag.ContinueOnError)
	group := fs.String("group", "224.1.2.3", "destination: an IPv4 multicast group (or a unicast address)")
	fs.IntVar(&cfg.port, "port", 65535, "UDP destination port")
	fs.IntVar(&cfg.srcPort, "src-port", 0, "UDP source port; 0 picks an ephemeral one")
	fs.Uint64Var(&cfg.count, "count", 1000, "datagrams to send, at least 1")
	fs.IntVar(&cfg.size, "size", 1472, "payload bytes per datagram, at least 16; larger than the MTU is IP-fragmented")
	fs.Float64Var(&cfg.rate, "rate", 0, "datagrams per second; 0 sends as fast as possible")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "hard bound on the sending time")
	fs.IntVar(&cfg.ttl, "ttl", 8, "multicast TTL (IP_MULTICAST_TTL); unicast uses the kernel default")
	fs.StringVar(&cfg.iface, "iface", "", "outgoing interface (IP_MULTICAST_IF); empty lets the routing table choose")
	fs.IntVar(&cfg.proto, "proto", 17, "IP protocol: 17 sends UDP, anything else raw IPv4 packets of that protocol")
	fs.IntVar(&cfg.batch, "batch", 64, "datagrams per sendmmsg call")
	fs.IntVar(&cfg.sndbuf, "sndbuf", 0, "socket send buffer in bytes (SO_SNDBUFFORCE); 0 keeps the kernel default, as an unmodified application does")
	fs.BoolVar(&cfg.loop, "loop", true, "IP_MULTICAST_LOOP: also deliver to receivers on this host (the kernel default)")
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
	maxSize := 65535 - 20 // raw: all but the IPv4 header
	if c.proto == 17 {
		maxSize -= 8
	}
	switch {
	case c.port < 1 || c.port > 65535:
		return fmt.Errorf("-port %d: want 1 to 65535", c.port)
	case c.srcPort < 0 || c.srcPort > 65535:
		return fmt.Errorf("-src-port %d: want 0 to 65535", c.srcPort)
	case c.count < 1:
		return errors.New("-count: want at least 1")
	case c.size < 16 || c.size > maxSize:
		return fmt.Errorf("-size %d: want 16 to %d", c.size, maxSize)
	case c.rate < 0:
		return fmt.Errorf("-rate %g: want 0 or more", c.rate)
	case c.duration <= 0:
		return fmt.Errorf("-duration %v: want more than 0", c.duration)
	case c.ttl < 0 || c.ttl > 255:
		return fmt.Errorf("-ttl %d: want 0 to 255", c.ttl)
	case c.proto < 1 || c.proto > 255:
		return fmt.Errorf("-proto %d: want 1 to 255", c.proto)
	case c.batch < 1 || c.batch > 1024:
		return fmt.Errorf("-batch %d: want 1 to 1024", c.batch)
	case c.sndbuf < 0:
		return fmt.Errorf("-sndbuf %d: want 0 or more", c.sndbuf)
	}
	return nil
}
