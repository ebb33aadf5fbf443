package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"mctun/config"
	"mctun/control"
	"mctun/daemon"
	"mctun/internal/pcap"
)

func cmdDump(fs *flag.FlagSet, args []string) int {
	out := fs.String("w", "", "write a pcap `FILE` (- for standard output); without -w, print one line per packet")
	count := fs.Int("c", 0, "stop after `COUNT` packets (0: no limit)")
	group := fs.String("group", "", "only this `GROUP`")
	duration := fs.Duration("duration", 0, "stop after `D` (0: no limit)")
	side := fs.String("side", "both", "`SIDE`: sender (inner packets as sent), receiver (as delivered) or both")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	var a daemon.DumpArgs
	if *group != "" {
		g, err := config.ParseGroup(*group)
		if err != nil {
			return usagef("mctun dump: --group %v", err)
		}
		a.Group = g
	}
	a.Side = *side
	if *count < 0 || *duration < 0 {
		return usagef("mctun dump: -c and --duration cannot be negative")
	}

	stream, err := control.CallStream(control.SocketName, "dump", a)
	if err != nil {
		return failf("mctun dump: %v", err)
	}
	defer stream.Close()
	// Ending the dump is hanging up: on a signal, after the duration, or at the count.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	go func() { <-sigs; stream.Close() }()
	if *duration > 0 {
		time.AfterFunc(*duration, func() { stream.Close() })
	}

	r, err := pcap.NewReader(stream)
	if err != nil {
		return failf("mctun dump: %v", err)
	}
	var write func(time.Time, []byte) error
	var flush func() error
	switch *out {
	case "":
		write = func(t time.Time, data []byte) error {
			_, err := fmt.Println(describePacket(t, data))
			return err
		}
		flush = func() error { return nil }
	default:
		w := io.Writer(os.Stdout)
		if *out != "-" {
			f, err := os.Create(*out)
			if err != nil {
				return failf("mctun dump: %v", err)
			}
			defer f.Close()
			w = f
		}
		bw := bufio.NewWriter(w)
		pw, err := pcap.NewWriter(bw, pcap.LinkTypeRaw)
		if err != nil {
			return failf("mctun dump: %v", err)
		}
		write = pw.WritePacket
		flush = bw.Flush
	}
	n := 0
	for *count == 0 || n < *count {
		t, data, err := r.ReadPacket()
		if err != nil {
			break // the stream ended: hung up, or the daemon stopped
		}
		if err := write(t, data); err != nil {
			return failf("mctun dump: %v", err)
		}
		n++
		if *out == "-" { // a pipe reader (tcpdump -r -) sees each packet at once
			if err := flush(); err != nil {
				return failf("mctun dump: %v", err)
			}
		}
	}
	if err := flush(); err != nil {
		return failf("mctun dump: %v", err)
	}
	fmt.Fprintf(os.Stderr, "mctun dump: %d packets\n", n)
	return exitOK
}

// describePacket is a one-line summary of an inner packet, in tcpdump's manner.
func describePacket(t time.Time, b []byte) string {
	ts := t.Format("15:04:05.000000")
	if len(b) < 20 || b[0]>>4 != 4 {
		return fmt.Sprintf("%s (not IPv4, %d bytes)", ts, len(b))
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	ihl := int(b[0]&0x0f) * 4
	frag := binary.BigEndian.Uint16(b[6:]) & 0x3fff
	if b[9] == 17 && frag&0x1fff == 0 && len(b) >= ihl+8 {
		return fmt.Sprintf("%s IP %s.%d > %s.%d: UDP, length %d", ts, src, binary.BigEndian.Uint16(b[ihl:]),
			dst, binary.BigEndian.Uint16(b[ihl+2:]), int(binary.BigEndian.Uint16(b[ihl+4:]))-8)
	}
	desc := fmt.Sprintf("%s IP %s > %s: ip-proto-%d, length %d", ts, src, dst, b[9], len(b)-ihl)
	if frag != 0 {
		desc += fmt.Sprintf(" (fragment at %d)", int(frag&0x1fff)*8)
	}
	return desc
}

func usagef(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return exitUsage
}
