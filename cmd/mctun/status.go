package main

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"mctun/daemon"
	"mctun/internal/words"
)

// printStatus writes a summary of daemon.Status for a person: what runs, and a line per group and per
// flow. mctun stats has every counter.
func printStatus(w io.Writer, st daemon.Status) {
	printHeader(w, st)
	if s := st.Source; s != nil {
		members := 0
		for _, g := range s.Stats.Groups {
			members += g.MemberCount
		}
		fmt.Fprintf(w, "\nsource: capturing on %s, %s, %s\n", s.Interface, words.Plural(len(s.Stats.Groups), "group"), words.Plural(members, "member"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, g := range s.Stats.Groups {
			failing := ""
			if g.Failing > 0 {
				failing = fmt.Sprintf(" (%s failing: mctun stats)", words.Plural(g.Failing, "member"))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d packets\t%d send errors%s\n", daemon.GroupName(g.Address, g.Port), words.Plural(g.MemberCount, "member"), g.Packets, g.SendErrors, failing)
		}
		tw.Flush()
		for _, m := range s.Skipped {
			fmt.Fprintf(w, "  member %s is this host: not sent to\n", m)
		}
		fmt.Fprintf(w, "  not forwarded: %s\n", formatCounts(s.Stats.Drops))
		printKernelSummary(w, s.Kernel)
		printJoins(w, s.Joins, false)
	}
	if m := st.Member; m != nil {
		fmt.Fprintf(w, "\nmember: delivering into %s (mtu %d), from %s, for %s\n", m.TUN, m.MTU, words.JoinAddrs(m.Sources), groupsOrAnyGroup(m.Groups))
		printReporting(w, m.Reporting)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range m.Stats.Flows {
			fmt.Fprintf(tw, "  %s -> %s\t%d packets\t%d lost\t%d reordered\t%d duplicates\n", f.Source, f.Group, f.Packets, f.Lost, f.Reordered, f.Duplicates)
		}
		tw.Flush()
		if len(m.Stats.Flows) == 0 {
			fmt.Fprintln(w, "  nothing received yet")
		}
		fmt.Fprintf(w, "  dropped: %s\n", formatCounts(m.Stats.Drops))
		printKernelSummary(w, m.Kernel)
	}
}

// printKernelSummary says in a line where the kernel path runs and how many packets it
// forwarded itself.
func printKernelSummary(w io.Writer, k *daemon.KernelStatus) {
	if k == nil {
		return
	}
	var user uint64
	for name, n := range k.Paths {
		if name != "kernel" {
			user += n
		}
	}
	fmt.Fprintf(w, "  kernel path on %s: %d packets in the kernel, %d left to user space\n", attachedTo(k), k.Paths["kernel"], user)
}

// attachedTo says where the kernel path's programs are: "eth0 egress, mctun0 egress".
func attachedTo(k *daemon.KernelStatus) string {
	var where []string
	for _, a := range k.Attached {
		where = append(where, a.Interface+" "+a.Hook)
	}
	return strings.Join(where, ", ")
}

// printKernelStats writes every counter of the kernel path's part of a side.
func printKernelStats(w io.Writer, k *daemon.KernelStatus) {
	if k == nil {
		return
	}
	fmt.Fprintf(w, "  kernel path on %s (maps: %d KiB of kernel memory):\n", attachedTo(k), (k.MapBytes+1023)/1024)
	for _, a := range k.Attached {
		fmt.Fprintf(w, "    program %s (id %d) on %s %s, with %s\n", a.Program, a.ID, a.Interface, a.Hook, a.With)
	}
	printCounts(w, "by path", k.Paths)
}

func printHeader(w io.Writer, st daemon.Status) {
	fmt.Fprintf(w, "mctun %s: running, pid %d, up %s\n", st.Version, st.PID, time.Since(st.Started).Round(time.Second))
	fmt.Fprintf(w, "config:  %s, managed groups and sources in %s\n", st.Config, st.Managed)
	fmt.Fprintf(w, "log:     %s\n", st.Log)
	fmt.Fprintf(w, "tunnel:  udp port %d, key %d, %s\n", st.Port, st.Key, st.Tunnel)
	fmt.Fprintf(w, "path:    %s", st.Datapath)
	if st.DatapathReason != "" {
		fmt.Fprintf(w, " (not the kernel: %s)", st.DatapathReason)
	}
	fmt.Fprintln(w)
	if st.Metrics != "" {
		fmt.Fprintf(w, "metrics: %s\n", st.Metrics)
	}
}

// printStats writes every counter of daemon.Status for a person, zeros included.
func printStats(w io.Writer, st daemon.Status) {
	printHeader(w, st)
	if s := st.Source; s != nil {
		fmt.Fprintf(w, "\nsource: capturing on %s\n", s.Interface)
		for _, c := range s.Captures {
			if c.Via != "" {
				fmt.Fprintf(w, "  handed over by the kernel path on %s (through %s): %d packets, %d dropped by the kernel (queue full)\n", c.Name, c.Via, c.Packets, c.KernelDrop)
			} else {
				fmt.Fprintf(w, "  capture %s: %d packets, %d dropped by the kernel (ring full), %d too long for its frames (not forwarded)\n", c.Name, c.Packets, c.KernelDrop, c.Truncated)
			}
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  GROUP\tMEMBER\tPACKETS\tBYTES\tSEND ERRORS")
		for _, g := range s.Stats.Groups {
			fmt.Fprintf(tw, "  %s\t(captured)\t%d\t%d\t\n", daemon.GroupName(g.Address, g.Port), g.Packets, g.Bytes)
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
		printKernelStats(w, s.Kernel)
		printJoins(w, s.Joins, true)
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
		printKernelStats(w, m.Kernel)
		printReporting(w, m.Reporting)
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

func groupsOrAnyGroup(gs []netip.Addr) string {
	if len(gs) == 0 {
		return "any group"
	}
	return words.JoinAddrs(gs)
}

// printJoins writes a source's dynamic membership: two lines, and with every (stats) the
// reports refused by reason, zeros included, instead of only those that happened.
func printJoins(w io.Writer, j *daemon.JoinStatus, every bool) {
	if j == nil {
		return
	}
	if len(j.JoinFrom) == 0 {
		fmt.Fprintf(w, "  joins: none accepted (no source.join_from)")
	} else {
		fmt.Fprintf(w, "  joins: from %s, %s now (mctun group show)", words.JoinAddrs(j.JoinFrom), words.Plural(j.Memberships, "membership"))
	}
	fmt.Fprintf(w, "; %d joins, %d leaves, %d expiries, %d refused over a limit\n", j.Joins, j.Leaves, j.Expiries, j.OverLimit)
	if every {
		fmt.Fprintf(w, "  reports: %d accepted; dropped by the kernel: %d (socket receive buffer full)\n", j.Reports.Accepted, j.SocketDrops)
		printCounts(w, "reports refused", j.Reports.Refused)
		return
	}
	fmt.Fprintf(w, "  reports: %d accepted, refused: %s\n", j.Reports.Accepted, formatCounts(j.Reports.Refused))
}

// printReporting writes which groups a member reports to which sources.
func printReporting(w io.Writer, r *daemon.ReportingStatus) {
	if r == nil {
		return
	}
	var gs []string
	for _, g := range r.Groups {
		switch {
		case g.Mode == "include":
			gs = append(gs, fmt.Sprintf("%s (only from %s)", g.Group, words.JoinAddrs(g.Sources)))
		case len(g.Sources) > 0:
			gs = append(gs, fmt.Sprintf("%s (not from %s)", g.Group, words.JoinAddrs(g.Sources)))
		default:
			gs = append(gs, g.Group.String())
		}
	}
	joined := "no group joined on the TUN"
	if len(gs) > 0 {
		joined = strings.Join(gs, ", ")
	}
	last := "nothing sent yet"
	if !r.LastSent.IsZero() {
		last = fmt.Sprintf("last sent %s ago", time.Since(r.LastSent).Round(time.Second))
	}
	fmt.Fprintf(w, "  reports %s to %s; %s\n", joined, words.JoinAddrs(r.To), last)
	for _, a := range slices.SortedFunc(maps.Keys(r.Sent), netip.Addr.Compare) {
		if s := r.Sent[a]; s.Errors > 0 {
			fmt.Fprintf(w, "  reports to %s: %d sent, %d failed (last: %s)\n", a, s.Packets, s.Errors, s.LastError)
		}
	}
}
