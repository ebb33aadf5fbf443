package datapath

import "net/netip"

// SenderStats is a snapshot of the sender side's counters.
type SenderStats struct {
	Groups []GroupStats      `json:"groups"`
	Drops  map[string]uint64 `json:"drops"`
}

// GroupStats counts one group's packets: captured and sent on, and per member.
type GroupStats struct {
	Address     netip.Addr    `json:"address"`
	Port        uint16        `json:"port,omitempty"`
	Packets     uint64        `json:"packets"`
	Bytes       uint64        `json:"bytes"`
	MemberCount int           `json:"member_count"`
	SendErrors  uint64        `json:"send_errors"`     // all members'
	Failing     int           `json:"failing_members"` // members whose last send failed
	Members     []MemberStats `json:"members,omitempty"`
}

// MemberStats counts what was sent to one member of a group.
type MemberStats struct {
	Address   netip.AddrPort `json:"address"`
	Packets   uint64         `json:"packets"`
	Bytes     uint64         `json:"bytes"`
	Errors    uint64         `json:"errors"`
	LastError string         `json:"last_error,omitempty"` // set while the member is failing
}

// ReceiverStats is a snapshot of the receiver side's counters.
type ReceiverStats struct {
	Flows []FlowStats       `json:"flows"`
	Drops map[string]uint64 `json:"drops"`
	// HostPackets counts packets the host sent into the TUN that no sender side took.
	HostPackets uint64 `json:"host_packets_not_forwarded"`
}

// FlowStats counts one source's traffic to one group, as delivered into the TUN. Lost,
// Reordered and Duplicates come from the tunnel's sequence numbers.
type FlowStats struct {
	Source     netip.Addr `json:"source"`
	Group      netip.Addr `json:"group"`
	Packets    uint64     `json:"packets"`
	Bytes      uint64     `json:"bytes"`
	Lost       int64      `json:"lost"`
	Reordered  uint64     `json:"reordered"`
	Duplicates uint64     `json:"duplicates"`
	Restarts   uint64     `json:"sender_restarts"`
}

// SenderView is the sender side's groups as one Configure left them: its Stats and Members
// describe the same groups, in the same order, however often Configure is called meanwhile
// (as it is whenever a dynamic member joins or leaves).
type SenderView struct {
	s *Sender
	t *groupTable
}

// View returns the current groups' view.
// A nil Sender (a host that is no source) has the empty view.
func (s *Sender) View() SenderView {
	if s == nil {
		return SenderView{}
	}
	return SenderView{s, s.table.Load()}
}

// Stats returns a snapshot of the sender side's counters, groups in config order, without
// each member's own counters: a group may have thousands (see Members).
func (s *Sender) Stats() SenderStats { return s.View().Stats() }

// Members calls f with each group's members' counters in turn; see SenderView.Members.
func (s *Sender) Members(f func(group int, members []MemberStats) error) error {
	return s.View().Members(f)
}

// Stats is Sender.Stats for the view's groups.
func (v SenderView) Stats() SenderStats {
	s := v.s
	st := SenderStats{Drops: s.drops.Snapshot(senderReasons...)}
	var failed uint64
	for _, g := range v.t.groups {
		gs := GroupStats{Address: g.addr, Port: g.port, Packets: g.packets.Load(), Bytes: g.bytes.Load(),
			MemberCount: len(g.members)}
		for _, m := range g.members {
			gs.SendErrors += m.errors.Load()
			if m.lastErr.Load() != nil {
				gs.Failing++
			}
		}
		failed += gs.SendErrors
		st.Groups = append(st.Groups, gs)
	}
	st.Drops["send_failed"] = failed
	return st
}

// Members calls f with each group's members' counters in turn, groups in config order. The
// slice is reused from one group to the next, so that a config of thousands of members never
// has all their counters copied at once.
func (v SenderView) Members(f func(group int, members []MemberStats) error) error {
	var ms []MemberStats
	for i, g := range v.t.groups {
		ms = ms[:0]
		for _, m := range g.members {
			st := MemberStats{Address: m.addr(), Packets: m.packets.Load(), Bytes: m.bytes.Load(), Errors: m.errors.Load()}
			if e := m.lastErr.Load(); e != nil {
				st.LastError = *e
			}
			ms = append(ms, st)
		}
		if err := f(i, ms); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns a snapshot of the receiver side's counters, flows in order of first packet.
func (r *Receiver) Stats() ReceiverStats {
	st := ReceiverStats{
		Drops:       r.drops.Snapshot(receiverReasons...),
		HostPackets: r.drained.Load(),
	}
	if r.account != nil {
		st.Flows = r.account.Flows()
		return st
	}
	r.flowsMu.Lock()
	flows := append(r.flowList[:len(r.flowList):len(r.flowList)], r.overflow)
	r.flowsMu.Unlock()
	for _, f := range flows {
		if f == r.overflow && f.packets.Load() == 0 {
			continue
		}
		st.Flows = append(st.Flows, FlowStats{
			Source: f.source, Group: f.group,
			Packets: f.packets.Load(), Bytes: f.bytes.Load(), Lost: f.lost.Load(),
			Reordered: f.reordered.Load(), Duplicates: f.duplicates.Load(), Restarts: f.restart.Load(),
		})
	}
	return st
}

// GroupName is how commands and messages write a group: 224.1.2.3:65535, or the bare address
// for a group that takes every packet to it.
func GroupName(addr netip.Addr, port uint16) string {
	if port == 0 {
		return addr.String()
	}
	return netip.AddrPortFrom(addr, port).String()
}
