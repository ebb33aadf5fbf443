package daemon

/* Source side of dynamic membership: the reports the tunnel port receives (datapath.Reports)
fill the membership table (package membership); routineMembership expires what the table
holds and, on every change, hands the sender side the effective groups through applyGroups,
the one place that sets them after start, as a reload does. */

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"mctun/config"
	"mctun/datapath"
	"mctun/encap"
	"mctun/igmp"
	"mctun/internal/loglimit"
	"mctun/membership"
)

const (
	// applyEvery is the least time between two applies of the table: joins and leaves that
	// come closer together are applied together, so that a burst of reports (a thousand
	// members starting at once) costs one Configure per 20 ms, not one per report.
	applyEvery = 20 * time.Millisecond
)

// startJoins readies the source to take membership reports: the table, the report flow and,
// on a host that is not a member too and accepts joins, a socket on the tunnel port. On a
// host that is a member too, the receiver side diverts reports to it (it reads the port).
func (d *daemon) startJoins(auth *encap.Auth) error {
	cfg := d.cfg
	d.joins = membership.New(membership.Limits{}, time.Now)
	var open *encap.Opener // not the receiver side's: see NewReports
	var onEpoch func(netip.Addr, uint64)
	if auth != nil { // after a restart too, reports of a member's earlier run stay refused
		open, onEpoch = d.keptEpochsOpener(auth, d.state.memberEpochsPath(), "members")
	}
	d.reports = datapath.NewReports(cfg.Key, cfg.Source.JoinFrom, open, onEpoch, d.onReport, d.log)
	if n := d.joins.Restore(d.state.takeMembers(), func(m netip.Addr) bool { return config.MayJoin(cfg.Source.JoinFrom, m) }); n > 0 {
		d.log.Info("kept the dynamic members of the previous run until they report again", "memberships", n)
		if err := d.applyGroups(cfg); err != nil {
			return err
		}
	}
	if d.receiver != nil {
		d.receiver.DivertReports(d.reports)
		return nil
	}
	if len(cfg.Source.JoinFrom) == 0 {
		return nil
	}
	var err error
	d.reportConn, err = encap.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), cfg.Port), encap.UDPOptions{})
	if err != nil {
		return fmt.Errorf("source.join_from: %w", err)
	}
	d.closers = append(d.closers, d.reportConn)
	return nil
}

// onReport is the report flow's sink: the records go into the table, the changes into the
// log.
func (d *daemon) onReport(member netip.Addr, recs []igmp.Record) {
	d.logEvents(d.joins.Report(member, recs))
}

// routineMembership applies the table to the sender side when it changes, at most once per
// applyEvery, and expires members that stopped reporting, until stop. It looks for expiries
// only when the table says the next one is due (Table.Expire), not on a tick: a scan of a
// full table takes milliseconds under its lock, and an empty one needs none.
func (d *daemon) routineMembership() {
	expire := time.NewTimer(0) // first, what Restore put back
	defer expire.Stop()
	armed := true
	var last time.Time
	for {
		select {
		case <-d.stopping:
			return
		case <-expire.C:
			evs, next := d.joins.Expire()
			d.logEvents(evs)
			if armed = !next.IsZero(); armed {
				expire.Reset(time.Until(next))
			}
		case <-d.joins.Changed():
			if !armed { // the first membership since the table was empty
				armed = true
				expire.Reset(0)
			}
			if wait := applyEvery - time.Since(last); wait > 0 {
				select {
				case <-time.After(wait):
				case <-d.stopping:
					return
				}
			}
			last = time.Now()
			if !d.applyTable() {
				return
			}
		}
	}
}

// readSelf reads the source interface's address, self, which it must have: members know the
// source by it (their source filters name it), and without one (mctun started before DHCP
// gave it) a member that includes only this source would never be sent to.
func (d *daemon) readSelf() error {
	self, err := d.host.PrimaryAddr(d.iface)
	if err != nil {
		return err
	}
	if !self.IsValid() {
		return fmt.Errorf("source.interface %s has no IPv4 address", d.iface)
	}
	d.self = self
	return nil
}

// refreshSelf reads the source interface's address again and, when it changed (setSelf),
// uses the new one.
func (d *daemon) refreshSelf() error {
	self, err := d.host.PrimaryAddr(d.iface)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.isStopping() { // as applyTable
		return nil
	}
	return d.setSelf(self)
}

// setSelf makes self the address members know the source by and, if that changes it, uses
// it everywhere the source's address counts: the sender side gets the groups anew (a member
// whose filter includes only the new address is sent to from now on, one that excludes it no
// longer) and the kernel path sends its tunnel packets from it; on a host that is a member
// too, keepTUN then gives the TUN's route the new address. An interface that has no address
// for a moment (a DHCP lease renewed) keeps the one it had. The caller holds d.mu.
func (d *daemon) setSelf(self netip.Addr) error {
	if !self.IsValid() || self == d.self {
		return nil
	}
	was := d.self
	d.self = self
	err := d.applyGroups(d.cfg)
	if err == nil && d.kSender != nil {
		err = d.kSender.SetAddr(self)
	}
	if err != nil {
		d.self = was // for the next refresh to try again
		return err
	}
	d.log.Info("source address changed", "interface", d.iface, "was", was, "now", self)
	return nil
}

// isStopping reports whether stop has begun.
func (d *daemon) isStopping() bool {
	select {
	case <-d.stopping:
		return true
	default:
		return false
	}
}

// applyTable applies the membership table to the sender side, unless stop has begun, and
// reports whether it did: stop closes the sender side and unloads the kernel path, and
// routineMembership, which it does not wait for, must not hand them groups meanwhile.
func (d *daemon) applyTable() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.isStopping() {
		return false
	}
	if err := d.applyGroups(d.cfg); err != nil {
		d.log.Error("cannot apply the membership table", "err", err)
	}
	d.notifySystemd(d.statusLine())
	return true
}

// applyGroups hands the sender side the effective groups: cfg's static groups with the
// dynamic members added (membership.Table.Effective), less this host's own addresses. It is
// the one place where the sender side's groups change after start: reload, the management
// commands and the membership table all come here, so whatever packet path runs gets
// dynamic members the way it gets static ones. The caller holds d.mu.
func (d *daemon) applyGroups(cfg *config.Config) error {
	local, err := localAddrs()
	if err != nil {
		return err
	}
	d.setGroups(cfg, local)
	return nil
}

// setGroups is applyGroups once this host's addresses, local, are read (localAddrs): from
// there on nothing can fail. The caller holds d.mu.
func (d *daemon) setGroups(cfg *config.Config, local map[netip.Addr]bool) {
	groups := cfg.Source.Groups
	if d.joins != nil {
		groups = d.joins.Effective(groups, cfg.Port, d.self)
	}
	groups = d.sendingTo(groups, local)
	if d.kSender != nil { // first: a new group's sequence is the kernel's
		d.kSender.Configure(cfg.Key, groups)
	}
	d.sender.Configure(cfg.Key, groups)
	if d.kSender != nil {
		// What the kernel path found of the new members' routes it told the user-space
		// sender before that knew them: again, now that it does (failing is said once).
		d.kSender.ReportMembers(d.sender.MemberFailing)
	}
}

// logEvents logs the table's changes as state changes, rate-limited (newEventLog).
func (d *daemon) logEvents(evs []membership.Event) {
	for _, e := range evs {
		ok, suppressed := d.eventLog.Allow()
		if !ok {
			continue
		}
		attrs := []any{"member", e.Member, "group", e.Group}
		if suppressed > 0 {
			attrs = append(attrs, "not_logged", suppressed)
		}
		level := slog.LevelInfo
		if e.Kind == membership.OverLimit {
			level = slog.LevelWarn
		}
		d.log.Log(context.Background(), level, "member "+e.Kind.String(), attrs...)
	}
}

// newEventLog is the limiter of membership changes in the log: up to 50 lines at once and
// 5 a second after that, the next line let through saying how many were held back. A
// thousand members starting together, or a flood of reports, cannot flood the log (mctun
// group show has every member).
func newEventLog() loglimit.Limiter {
	return loglimit.Limiter{Burst: 50, Every: 200 * time.Millisecond}
}

// JoinStatus is a source's dynamic membership in Status.
type JoinStatus struct {
	JoinFrom    []netip.Prefix       `json:"join_from"`
	Memberships int                  `json:"memberships"` // dynamic members, counted once per group
	Reports     datapath.ReportStats `json:"reports"`
	// SocketDrops counts reports the kernel dropped, its tunnel port's socket full, on a
	// source that is not a member (on one that is, see MemberStatus.SocketDrops).
	SocketDrops uint64 `json:"socket_drops"`
	membership.Counters
}

func (d *daemon) joinStatus() *JoinStatus {
	if d.joins == nil {
		return nil
	}
	st := &JoinStatus{JoinFrom: d.cfg.Source.JoinFrom, Memberships: d.joins.Len(), Reports: d.reports.Stats(), Counters: d.joins.Counters()}
	if d.reportConn != nil {
		st.SocketDrops, _ = d.reportConn.ReceiveDrops()
	}
	return st
}
