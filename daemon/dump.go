package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"mctun/datapath"
	"mctun/internal/pcap"
)

// DumpArgs is what mctun dump asks the running instance for.
type DumpArgs struct {
	Group netip.Addr `json:"group,omitzero"` // zero: every group
	Side  string     `json:"side"`           // "sender", "receiver" or "both"
}

// dumpStream is the running instance's side of mctun dump: a pcap stream (LINKTYPE_RAW, each
// record an inner IPv4 packet) of what the packet paths hand a tap, until the caller hangs up
// or the daemon stops.
type dumpStream struct {
	d    *daemon
	args DumpArgs
}

// dumpQueue is how many packets a dump may fall behind before it misses some; forwarding
// never waits for it.
const dumpQueue = 4096

func (s dumpStream) Stream(ctx context.Context, w io.Writer) error {
	tap := datapath.NewTap(s.args.Group, dumpQueue)
	sender := s.d.sender != nil && s.args.Side != "receiver"
	receiver := s.d.receiver != nil && s.args.Side != "sender"
	s.d.mu.Lock() // stop unloads the kernel path under it
	kSender, kReceiver := s.d.kSender, s.d.kReceiver
	s.d.mu.Unlock()
	if sender {
		s.d.sender.AddTap(tap)
		defer s.d.sender.RemoveTap(tap)
		if k := kSender; k != nil {
			if err := k.AddTap(tap); err != nil {
				return fmt.Errorf("dump the kernel path's sender side: %w", err)
			}
			defer k.RemoveTap(tap)
		}
	}
	if receiver {
		s.d.receiver.AddTap(tap)
		defer s.d.receiver.RemoveTap(tap)
		if k := kReceiver; k != nil {
			if err := k.AddTap(tap); err != nil {
				return fmt.Errorf("dump the kernel path's receiver side: %w", err)
			}
			defer k.RemoveTap(tap)
		}
	}
	s.d.log.Info("dump started", "group", s.args.Group, "side", s.args.Side)
	written := 0
	defer func() { s.d.log.Info("dump ended", "packets", written, "missed", tap.Dropped()) }()

	bw := bufio.NewWriterSize(w, 64<<10)
	pw, err := pcap.NewWriter(bw, pcap.LinkTypeRaw)
	if err != nil {
		return err
	}
	for {
		if err := bw.Flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.d.stopping:
			return nil
		case p := <-tap.Packets:
			for more := true; more; {
				if err := pw.WritePacket(p.Time, p.Data); err != nil {
					return err
				}
				written++
				select { // drain what is queued before flushing
				case p = <-tap.Packets:
				default:
					more = false
				}
			}
		}
	}
}

// dumpRequest checks mctun dump's arguments in the daemon.
func (d *daemon) dumpRequest(args DumpArgs) (any, error) {
	switch args.Side {
	case "sender":
		if d.sender == nil {
			return nil, errors.New("this host has no [source]: there is no sender side to dump")
		}
	case "receiver":
		if d.receiver == nil {
			return nil, errors.New("this host has no [member]: there is no receiver side to dump")
		}
	case "both":
	default:
		return nil, fmt.Errorf("side %q: want sender, receiver or both", args.Side)
	}
	return dumpStream{d: d, args: args}, nil
}
