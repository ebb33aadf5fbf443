package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
	Managed string        `json:"managed"` // the managed file, written by the group/member/source commands
	Log     string        `json:"log"`     // where the daemon logs: a file, or "stderr"
	Netns   string        `json:"netns"`
	Port    uint16        `json:"port"`
	Key     uint32        `json:"key"`
	Tunnel  string        `json:"tunnel"` // what protects it: "not authenticated", "authenticated (...)", ...
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

// status is what status shows, and what stats shows but for each member's counters.
func (d *daemon) status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{PID: os.Getpid(), Version: version, Started: d.started, Config: d.cfg.Path,
		Managed: d.cfg.ManagedPath, Log: d.logTo(), Netns: d.state.ns, Port: d.cfg.Port, Key: d.cfg.Key,
		Tunnel: tunnelProtection(d.cfg)}
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

// statsStream is mctun stats as the daemon sends it: the Status, then one JSON line per group
// with its members' counters, so that thousands of members are never copied at once.
type statsStream struct{ d *daemon }

// groupMembers is one line of a statsStream after the Status.
type groupMembers struct {
	Group   int                    `json:"group"`
	Members []datapath.MemberStats `json:"members"`
}

func (s statsStream) Stream(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(s.d.status()); err != nil {
		return err
	}
	if s.d.sender != nil {
		err := s.d.sender.Members(func(i int, ms []datapath.MemberStats) error {
			return enc.Encode(groupMembers{Group: i, Members: ms})
		})
		if err != nil {
			return err
		}
	}
	return bw.Flush()
}

// readStats reads a statsStream back into one Status.
func readStats(r io.Reader) (Status, error) {
	dec := json.NewDecoder(r)
	var st Status
	if err := dec.Decode(&st); err != nil {
		return st, err
	}
	for {
		var gm groupMembers
		err := dec.Decode(&gm)
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, err
		}
		if st.Source == nil || gm.Group < 0 || gm.Group >= len(st.Source.Stats.Groups) {
			return st, fmt.Errorf("stats: members of group %d, which is not there", gm.Group)
		}
		st.Source.Stats.Groups[gm.Group].Members = gm.Members
	}
}

// logTo says where the daemon logs. The caller holds d.mu.
func (d *daemon) logTo() string {
	switch {
	case d.cfg.Log.File != "":
		return d.cfg.Log.File
	case d.byUp:
		return d.state.logPath()
	}
	return "stderr"
}

// printStatus writes a summary of Status for a person: what runs, and a line per group and per
// flow. mctun stats has every counter.
func printStatus(w io.Writer, st Status) {
	printHeader(w, st)
	if s := st.Source; s != nil {
		members := 0
		for _, g := range s.Stats.Groups {
			members += g.MemberCount
		}
		fmt.Fprintf(w, "\nsource: capturing on %s, %s, %s\n", s.Interface, plural(len(s.Stats.Groups), "group"), plural(members, "member"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, g := range s.Stats.Groups {
			failing := ""
			if g.Failing > 0 {
				failing = fmt.Sprintf(" (%s failing: mctun stats)", plural(g.Failing, "member"))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d packets\t%d send errors%s\n", groupName(g.Address, g.Port), plural(g.MemberCount, "member"), g.Packets, g.SendErrors, failing)
		}
		tw.Flush()
		for _, m := range s.Skipped {
			fmt.Fprintf(w, "  member %s is this host: not sent to\n", m)
		}
		fmt.Fprintf(w, "  not forwarded: %s\n", formatCounts(s.Stats.Drops))
	}
	if m := st.Member; m != nil {
		fmt.Fprintf(w, "\nmember: delivering into %s (mtu %d), from %s, for %s\n", m.TUN, m.MTU, joinAddrs(m.Sources), groupsOrAnyGroup(m.Groups))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range m.Stats.Flows {
			fmt.Fprintf(tw, "  %s -> %s\t%d packets\t%d lost\t%d reordered\t%d duplicates\n", f.Source, f.Group, f.Packets, f.Lost, f.Reordered, f.Duplicates)
		}
		tw.Flush()
		if len(m.Stats.Flows) == 0 {
			fmt.Fprintln(w, "  nothing received yet")
		}
		fmt.Fprintf(w, "  dropped: %s\n", formatCounts(m.Stats.Drops))
	}
}

func printHeader(w io.Writer, st Status) {
	fmt.Fprintf(w, "mctun %s: running, pid %d, up %s\n", st.Version, st.PID, time.Since(st.Started).Round(time.Second))
	fmt.Fprintf(w, "config:  %s, managed groups and sources in %s\n", st.Config, st.Managed)
	fmt.Fprintf(w, "log:     %s\n", st.Log)
	fmt.Fprintf(w, "tunnel:  udp port %d, key %d, %s\n", st.Port, st.Key, st.Tunnel)
}

// printStats writes every counter of Status for a person, zeros included.
func printStats(w io.Writer, st Status) {
	printHeader(w, st)
	if s := st.Source; s != nil {
		fmt.Fprintf(w, "\nsource: capturing on %s\n", s.Interface)
		for _, c := range s.Captures {
			fmt.Fprintf(w, "  capture %s: %d packets, %d dropped by the kernel (ring full)\n", c.Name, c.Packets, c.KernelDrop)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  GROUP\tMEMBER\tPACKETS\tBYTES\tSEND ERRORS")
		for _, g := range s.Stats.Groups {
			fmt.Fprintf(tw, "  %s\t(captured)\t%d\t%d\t\n", groupName(g.Address, g.Port), g.Packets, g.Bytes)
			for _, m := range g.Members {
				errs := fmt.Sprint(m.Errors)
				if m.LastError != "" {
					errs += " (failing: " + m.LastError + ")"
				}
				fmt.Fprintf(tw, "  \t%s\t%d\t%d\t%s\n", m.Address, m.Packets, m.Bytes, errs)
			}
		}
		tw.Flush()
		printCounts(w, "not forwarded", s.Stats.Drops)
	}
	if m := st.Member; m != nil {
		fmt.Fprintf(w, "\nmember: delivering into %s\n", m.TUN)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SOURCE\tGROUP\tPACKETS\tBYTES\tLOST\tREORDERED\tDUPLICATES\tSENDER RESTARTS")
		for _, f := range m.Stats.Flows {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", f.Source, f.Group, f.Packets, f.Bytes, f.Lost, f.Reordered, f.Duplicates, f.Restarts)
		}
		tw.Flush()
		printCounts(w, "dropped", m.Stats.Drops)
		fmt.Fprintf(w, "  dropped by the kernel: %d (socket receive buffer full)\n", m.SocketDrops)
		fmt.Fprintf(w, "  host multicast into %s, not forwarded (no [source]): %d\n", m.TUN, m.Stats.HostPackets)
	}
}

// printCounts prints every counter of a set, three to a line, in name order.
func printCounts(w io.Writer, title string, counts map[string]uint64) {
	fmt.Fprintf(w, "  %s:\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for i, name := range slices.Sorted(maps.Keys(counts)) {
		sep := "\t"
		if i%3 == 2 {
			sep = "\n"
		}
		fmt.Fprintf(tw, "    %s %d%s", strings.ReplaceAll(name, "_", " "), counts[name], sep)
	}
	fmt.Fprintln(tw)
	tw.Flush()
}

// formatCounts prints the non-zero counters as "name N, ..." in name order, or "none".
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

func groupsOrAnyGroup(gs []netip.Addr) string {
	if len(gs) == 0 {
		return "any group"
	}
	return joinAddrs(gs)
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
