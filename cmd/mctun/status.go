package main

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"mctun/datapath"
)

// Status is what mctun status shows, as the running instance reports it.
type Status struct {
	PID     int           `json:"pid"`
	Version string        `json:"version"`
	Started time.Time     `json:"started"`
	Config  string        `json:"config"`
	Netns   string        `json:"netns"`
	Port    uint16        `json:"port"`
	Key     uint32        `json:"key"`
	Source  *SourceStatus `json:"source,omitempty"`
	Member  *MemberStatus `json:"member,omitempty"`
}

// SourceStatus is the sender side's part of Status.
type SourceStatus struct {
	Interface string               `json:"interface"`
	Captures  []CaptureStatus      `json:"captures"`
	Skipped   []netip.AddrPort     `json:"skipped_members,omitempty"` // this host's own addresses
	Stats     datapath.SenderStats `json:"stats"`
}

// CaptureStatus counts one capture source.
type CaptureStatus struct {
	Name       string `json:"name"`
	Packets    uint64 `json:"packets"`
	KernelDrop uint64 `json:"kernel_drops"` // AF_PACKET ring full
}

// MemberStatus is the receiver side's part of Status.
type MemberStatus struct {
	TUN         string                 `json:"tun"`
	MTU         int                    `json:"mtu"`
	Sources     []netip.Addr           `json:"sources"`
	Groups      []netip.Addr           `json:"groups"`       // empty: any
	SocketDrops uint64                 `json:"socket_drops"` // receive buffer full
	Stats       datapath.ReceiverStats `json:"stats"`
}

func (d *daemon) status() Status {
	st := Status{PID: os.Getpid(), Version: version, Started: d.started, Config: d.cfg.Path,
		Netns: d.state.ns, Port: d.cfg.Port, Key: d.cfg.Key}
	if d.sender != nil {
		cs := d.capture.Stats()
		st.Source = &SourceStatus{
			Interface: d.iface,
			Captures:  []CaptureStatus{{Name: d.iface, Packets: cs.Packets, KernelDrop: cs.Drops}},
			Skipped:   d.skipped,
			Stats:     d.sender.Stats(),
		}
	}
	if m := d.cfg.Member; m != nil {
		drops, _ := d.recvConn.ReceiveDrops()
		st.Member = &MemberStatus{TUN: m.TUN, MTU: m.MTU, Sources: m.Sources, Groups: m.Groups,
			SocketDrops: drops, Stats: d.receiver.Stats()}
	}
	return st
}

// printStatus writes Status for a person.
func printStatus(w io.Writer, st Status) {
	fmt.Fprintf(w, "mctun %s: running, pid %d, up %s\n", st.Version, st.PID, time.Since(st.Started).Round(time.Second))
	fmt.Fprintf(w, "config:  %s\n", st.Config)
	fmt.Fprintf(w, "tunnel:  udp port %d, key %d, not authenticated\n", st.Port, st.Key)
	if s := st.Source; s != nil {
		fmt.Fprintf(w, "\nsource: capturing on %s", s.Interface)
		for _, c := range s.Captures {
			fmt.Fprintf(w, " (%d packets, %d dropped by the kernel)", c.Packets, c.KernelDrop)
		}
		fmt.Fprintf(w, ", %s\n", plural(len(s.Stats.Groups), "group"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  GROUP\tPORT\tMEMBER\tPACKETS\tBYTES\tERRORS")
		for _, g := range s.Stats.Groups {
			port := "any"
			if g.Port != 0 {
				port = fmt.Sprint(g.Port)
			}
			fmt.Fprintf(tw, "  %s\t%s\t(captured)\t%d\t%d\t\n", g.Address, port, g.Packets, g.Bytes)
			for _, m := range g.Members {
				errs := fmt.Sprint(m.Errors)
				if m.LastError != "" {
					errs += " (failing: " + m.LastError + ")"
				}
				fmt.Fprintf(tw, "  \t\t%s\t%d\t%d\t%s\n", m.Address, m.Packets, m.Bytes, errs)
			}
		}
		tw.Flush()
		for _, m := range s.Skipped {
			fmt.Fprintf(w, "  member %s is this host: not sent to\n", m)
		}
		fmt.Fprintf(w, "  drops: %s\n", formatCounts(s.Stats.Drops))
	}
	if m := st.Member; m != nil {
		groups := "any group"
		if len(m.Groups) > 0 {
			groups = joinAddrs(m.Groups)
		}
		fmt.Fprintf(w, "\nmember: delivering into %s (mtu %d), accepting from %s, for %s\n", m.TUN, m.MTU, joinAddrs(m.Sources), groups)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SOURCE\tGROUP\tPACKETS\tBYTES\tLOST\tREORDERED\tDUPLICATES")
		for _, f := range m.Stats.Flows {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\n", f.Source, f.Group, f.Packets, f.Bytes, f.Lost, f.Reordered, f.Duplicates)
		}
		tw.Flush()
		if len(m.Stats.Flows) == 0 {
			fmt.Fprintln(w, "  (nothing received yet)")
		}
		fmt.Fprintf(w, "  drops: %s, socket buffer full %d\n", formatCounts(m.Stats.Drops), m.SocketDrops)
	}
}

// formatCounts prints non-zero counters as "name N, ...", or "none".
func formatCounts(counts map[string]uint64) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		if counts[name] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.ReplaceAll(name, "_", " "), counts[name]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
