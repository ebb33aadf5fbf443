package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"mctun/datapath"
	"mctun/kernelpath"
)

// Status is what mctun status shows, as the running instance reports it.
type Status struct {
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	Config  string    `json:"config"`
	Managed string    `json:"managed"` // the managed file, written by the group/member/source commands
	Log     string    `json:"log"`     // where the daemon logs: a file, or "stderr"
	Netns   string    `json:"netns"`
	Port    uint16    `json:"port"`
	Key     uint32    `json:"key"`
	Tunnel  string    `json:"tunnel"` // what protects it: "not authenticated", "authenticated (...)", ...
	// Datapath is where packets are forwarded: "kernel" (the plain tunnel's fast path, with
	// user space for what it hands up) or "user". DatapathReason says why auto chose user.
	Datapath       string `json:"datapath"`
	DatapathReason string `json:"datapath_reason,omitempty"`
	// Metrics is the URL of the Prometheus endpoint ([metrics]), or empty when it is off.
	Metrics string `json:"metrics,omitempty"`
	// Reloads counts reloads (mctun reload, SIGHUP); Commands the management commands that
	// change the instance (group, member and source add, del, ...).
	Reloads  Outcomes      `json:"reloads"`
	Commands Outcomes      `json:"commands"`
	Source   *SourceStatus `json:"source,omitempty"`
	Member   *MemberStatus `json:"member,omitempty"`
}

// Outcomes counts requests to change the running instance: those applied, and those refused,
// which changed nothing.
type Outcomes struct {
	Applied uint64 `json:"applied"`
	Refused uint64 `json:"refused"`
}

// SourceStatus is the sender side's part of Status.
type SourceStatus struct {
	Interface string               `json:"interface"`
	Captures  []CaptureStatus      `json:"captures"`
	Skipped   []netip.AddrPort     `json:"skipped_members,omitempty"` // this host's own addresses
	Stats     datapath.SenderStats `json:"stats"`                     // both paths' counters, added up
	Kernel    *KernelStatus        `json:"kernel,omitempty"`          // the kernel path's part
	Joins     *JoinStatus          `json:"joins"`                     // dynamic membership
}

// KernelStatus is what the kernel path does on one side.
type KernelStatus struct {
	Attached []kernelpath.Attachment `json:"attached"` // its programs, and where they are attached
	// Paths counts packets by the path they took: "kernel", or "user_..." with why the kernel
	// path left them to user space.
	Paths    map[string]uint64 `json:"paths"`
	MapBytes uint64            `json:"map_bytes"` // kernel memory its maps hold
}

// CaptureStatus counts one capture source: what user space took of the packets leaving
// the interface Name, from an AF_PACKET capture on it, or on the kernel path from what the
// kernel handed it through the TUN Via.
type CaptureStatus struct {
	Name       string `json:"name"`
	Via        string `json:"via,omitempty"` // the kernel path's hand-off TUN
	Packets    uint64 `json:"packets"`
	KernelDrop uint64 `json:"kernel_drops"` // the AF_PACKET ring, or the hand-off's queue, full
	// Truncated counts the packets longer than the capture's ring frames, which hold one
	// packet of the interface's MTU at start: a send of several datagrams at once (GSO,
	// UDP_SEGMENT), which the kernel path hands over whole, or an MTU raised since. Not
	// forwarded.
	Truncated uint64 `json:"truncated"`
}

// MemberStatus is the receiver side's part of Status.
type MemberStatus struct {
	TUN         string                 `json:"tun"`
	MTU         int                    `json:"mtu"`
	Sources     []netip.Addr           `json:"sources"`
	Groups      []netip.Addr           `json:"groups"`           // empty: any
	SocketDrops uint64                 `json:"socket_drops"`     // receive buffer full
	Stats       datapath.ReceiverStats `json:"stats"`            // both paths' counters, added up
	Kernel      *KernelStatus          `json:"kernel,omitempty"` // the kernel path's part
	Reporting   *ReportingStatus       `json:"reporting"`        // the groups joined on the TUN, as reported to the sources
}

// status is what status shows, and what stats shows but for each member's counters.
func (d *daemon) status() Status {
	return d.statusOf(d.sender.View())
}

// statusOf is status with the sender side's counters of view.
func (d *daemon) statusOf(view datapath.SenderView) Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statusLocked(view)
}

// statusLocked is statusOf for a caller that holds d.mu.
func (d *daemon) statusLocked(view datapath.SenderView) Status {
	st := Status{PID: os.Getpid(), Version: d.version, Started: d.started, Config: d.cfg.Path,
		Managed: d.cfg.ManagedPath, Log: d.logTo(), Netns: d.state.ns, Port: d.cfg.Port, Key: d.cfg.Key,
		Tunnel: tunnelProtection(d.cfg), Datapath: d.datapath, DatapathReason: d.datapathReason,
		Metrics: d.metricsURL(), Reloads: d.reloads, Commands: d.commands}
	if d.sender != nil {
		cs := d.capture.Stats()
		capt := CaptureStatus{Name: d.iface, Packets: cs.Packets, KernelDrop: cs.Drops, Truncated: cs.Truncated}
		if d.kSender != nil {
			capt.Via = kernelpath.HandoffName
		}
		st.Source = &SourceStatus{
			Interface: d.iface,
			Captures:  []CaptureStatus{capt},
			Skipped:   d.skipped,
			Stats:     view.Stats(),
			Joins:     d.joinStatus(),
		}
		if k := d.kSender; k != nil {
			k.AddStats(&st.Source.Stats)
			st.Source.Kernel = &KernelStatus{Attached: k.Attached(), Paths: k.Paths(), MapBytes: k.MapBytes()}
		}
	}
	if m := d.cfg.Member; m != nil {
		drops, _ := d.recvConn.ReceiveDrops()
		st.Member = &MemberStatus{TUN: m.TUN, MTU: m.MTU, Sources: m.Sources, Groups: m.Groups,
			SocketDrops: drops, Stats: d.receiver.Stats(), Reporting: d.reporter.status()}
		if k := d.kReceiver; k != nil {
			k.AddDrops(st.Member.Stats.Drops)
			st.Member.Kernel = &KernelStatus{Attached: k.Attached(), Paths: k.Paths(), MapBytes: k.MapBytes()}
		}
	}
	return st
}

// statsStream is mctun stats as the daemon sends it: the Status, then one JSON line per group
// with its members' counters, so that thousands of members are never copied at once.
type statsStream struct{ d *daemon }

// GroupMembers is one line of a statsStream after the Status.
type GroupMembers struct {
	Group   int                    `json:"group"`
	Members []datapath.MemberStats `json:"members"`
}

func (s statsStream) Stream(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	// One view of the sender side's groups for both parts: a member joining in between
	// must not make the second part name groups the first does not have.
	view := s.d.sender.View()
	st := s.d.statusOf(view)
	if err := enc.Encode(st); err != nil {
		return err
	}
	if s.d.sender != nil {
		// d.mu for each group's kernel counters only: the stream may wait for its caller,
		// and must not hold up a reload meanwhile.
		groups := st.Source.Stats.Groups
		err := view.Members(func(i int, ms []datapath.MemberStats) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			s.d.mu.Lock()
			s.d.addKernelMembers(groups, i, ms)
			s.d.mu.Unlock()
			return enc.Encode(GroupMembers{Group: i, Members: ms})
		})
		if err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadStats reads a statsStream back into one Status.
func ReadStats(r io.Reader) (Status, error) {
	dec := json.NewDecoder(r)
	var st Status
	if err := dec.Decode(&st); err != nil {
		return st, err
	}
	for {
		var gm GroupMembers
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
		return d.state.LogPath()
	}
	return "stderr"
}

// memberStats calls f with each group's members' counters in turn, both paths' added up,
// groups in the order of view's, whose status gave groups. The caller holds d.mu.
func (d *daemon) memberStats(view datapath.SenderView, groups []datapath.GroupStats, f func(group int, members []datapath.MemberStats) error) error {
	return view.Members(func(i int, ms []datapath.MemberStats) error {
		d.addKernelMembers(groups, i, ms)
		return f(i, ms)
	})
}

// addKernelMembers adds the kernel path's counters of group i's members to ms, the
// user-space sender's; groups is the status's. The caller holds d.mu, under which stop
// unloads the kernel path.
func (d *daemon) addKernelMembers(groups []datapath.GroupStats, i int, ms []datapath.MemberStats) {
	if d.kSender != nil && i < len(groups) {
		d.kSender.AddMemberStats(groups[i].Address, groups[i].Port, ms)
	}
}
