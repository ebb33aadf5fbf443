package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"mctun/config"
	"mctun/datapath"
	"mctun/internal/words"
)

// loadConfig reads the config file and its managed file and validates them together. The
// daemon keeps the config file's bytes: a management command validates a new managed file
// against the config file as it was last loaded, not as it may have been edited since.
func loadFiles(path string) (*config.Config, []byte, []config.Problem, error) {
	main, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config: %w", err)
	}
	managed, err := os.ReadFile(config.ManagedPath(path))
	if errors.Is(err, os.ErrNotExist) {
		managed, err = nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("config: %w", err)
	}
	cfg, warnings, err := config.Merge(path, main, managed)
	return cfg, main, warnings, err
}

// reload is mctun reload and SIGHUP: load both files again, validate, and apply the
// difference. An invalid file, or a change that needs a restart, changes nothing.
func (d *daemon) reload() ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// systemd shows the unit reloading until READY=1, which follows whether or not the
	// reload applied: either way the daemon forwards.
	d.notifySystemd("RELOADING=1", "MONOTONIC_USEC="+monotonicUsec())
	defer func() { d.notifySystemd("READY=1", d.statusLine()) }()
	next, main, warnings, err := loadFiles(d.cfg.Path)
	for _, w := range warnings {
		d.log.Warn("config: " + w.String())
	}
	if err != nil {
		d.reloads.Refused++
		d.log.Error("reload refused: the config is not valid; nothing changed", "err", err)
		return nil, err
	}
	changes, err := d.apply(next)
	if err != nil {
		d.reloads.Refused++
		msg := "reload refused; nothing changed"
		if errors.Is(err, errNotUndone) {
			msg = "reload refused, but not all it changed was undone"
		}
		d.log.Error(msg, "err", err)
		return nil, err
	}
	d.reloads.Applied++
	d.mainData = main
	d.log.Info("reloaded", "changes", len(changes), "diff", strings.Join(changes, "; "))
	return changes, nil
}

// apply makes next the running config. What only a restart can change is refused first.
// Then come the steps that can fail, each changing nothing, or nothing that is not undone
// if a later one fails: the new metrics listener and log destination are opened beside the
// old, this host's addresses are read, and the host is changed. Last, the log destination,
// join_from and the packet paths' tables are swapped, which cannot fail. Groups, members and
// sources that stay keep their state: none of their packets is lost. The caller holds d.mu.
func (d *daemon) apply(next *config.Config) (_ []string, err error) {
	changes, restart := diffConfig(d.cfg, next, d.iface)
	if len(restart) > 0 {
		return nil, fmt.Errorf("%s: only a restart applies that (mctun down, then mctun up)", strings.Join(restart, "; "))
	}
	if len(changes) == 0 {
		// Nothing to apply, but where each group and source is defined may have moved (a
		// group from the managed file into the config file), and the management commands
		// go by that: next is the running config.
		d.cfg = next
		return nil, nil
	}
	if d.isStopping() { // stop is closing the metrics endpoint: do not open another
		return nil, errors.New("mctun is stopping")
	}
	var undo []func() error // what to take back if a later step fails, in order done
	applied := false
	defer func() {
		if applied {
			return
		}
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil {
				err = fmt.Errorf("%w; %w: %w", err, errNotUndone, uerr)
			}
		}
	}()
	// Binding a new metrics.listen can fail, so it comes first; it changes nothing until
	// commitMetrics, and abortMetrics undoes it if anything after it fails.
	commitMetrics, abortMetrics, err := d.rebindMetrics(next.Metrics)
	if err != nil {
		return nil, err
	}
	undo = append(undo, abortMetrics)
	// Likewise the log: a log.file that cannot be opened refuses the reload.
	commitLog := func() {}
	if next.Log != d.cfg.Log {
		commit, abort, err := d.logs.prepare(next.Log)
		if err != nil {
			return nil, err
		}
		commitLog = commit
		undo = append(undo, func() error { abort(); return nil })
	}
	var local map[netip.Addr]bool
	if next.Source != nil {
		if local, err = localAddrs(); err != nil {
			return nil, err
		}
	}
	if m := next.Member; m != nil {
		if old := d.cfg.Member.MTU; m.MTU != old {
			if err := d.host.SetMTU(m.TUN, m.MTU); err != nil {
				return nil, err
			}
			undo = append(undo, func() error { return d.host.SetMTU(m.TUN, old) })
		}
		// Last of what can fail: a raised sysctl is journaled, and stays until mctun down.
		if err := d.host.RaiseSysctl("net/ipv4/igmp_max_memberships", max(256, len(m.Groups))); err != nil {
			return nil, err
		}
	}

	commitLog()
	if s := next.Source; s != nil {
		// The new join_from before the dynamic members it leaves out go, so that none of
		// them is let in again by a report in between; the groups after, without them.
		d.reports.Configure(next.Key, s.JoinFrom)
		if d.kReceiver != nil {
			if err := d.kReceiver.DivertReports(s.JoinFrom); err != nil {
				d.log.Error("kernel path: cannot apply source.join_from", "err", err)
			}
		}
		d.logEvents(d.joins.Keep(func(m netip.Addr) bool { return config.MayJoin(s.JoinFrom, m) }))
		d.setGroups(next, local)
	}
	if m := next.Member; m != nil {
		if d.kReceiver != nil {
			d.kReceiver.Configure(next.Key, *m)
		}
		d.receiver.Configure(next.Key, *m)
		d.reporter.configure(next.Key, m.Sources)
	}
	d.cfg = next
	commitMetrics()
	applied = true
	return changes, nil
}

// errNotUndone is in the error of an apply that failed after changing the host, and could
// not undo that change: then not nothing changed.
var errNotUndone = errors.New("and could not undo what it had changed")

// diffConfig lists what differs from old to new, in words for the log and the operator, and
// separately what of that only a restart can apply. iface is the source interface in use.
func diffConfig(old, new *config.Config, iface string) (changes, restart []string) {
	if old.Port != new.Port {
		restart = append(restart, fmt.Sprintf("port %d -> %d", old.Port, new.Port))
	}
	if (old.Source == nil) != (new.Source == nil) {
		restart = append(restart, "[source] "+addedOrRemoved(new.Source != nil))
	}
	if (old.Member == nil) != (new.Member == nil) {
		restart = append(restart, "[member] "+addedOrRemoved(new.Member != nil))
	}
	switch {
	case old.SecretFile != new.SecretFile:
		restart = append(restart, fmt.Sprintf("secret_file %q -> %q", old.SecretFile, new.SecretFile))
	case old.Encrypt != new.Encrypt:
		restart = append(restart, fmt.Sprintf("encrypt %t -> %t", old.Encrypt, new.Encrypt))
	case old.Key != new.Key && new.SecretFile != "": // the key is in the tunnel's keys
		restart = append(restart, fmt.Sprintf("key %d -> %d (with a secret)", old.Key, new.Key))
	case old.Key != new.Key:
		changes = append(changes, fmt.Sprintf("key %d -> %d", old.Key, new.Key))
	}
	if old.Datapath != new.Datapath {
		restart = append(restart, fmt.Sprintf("datapath %q -> %q", old.Datapath, new.Datapath))
	}
	if old.Log != new.Log {
		changes = append(changes, fmt.Sprintf("log %+v -> %+v", old.Log, new.Log))
	}
	if o, n := old.Metrics, new.Metrics; o.Listen != n.Listen {
		changes = append(changes, fmt.Sprintf("metrics.listen %s -> %s", listenOrOff(o), listenOrOff(n)))
	}
	if o, n := old.Metrics, new.Metrics; o.PerMember != n.PerMember {
		changes = append(changes, fmt.Sprintf("metrics.per_member %t -> %t", o.PerMember, n.PerMember))
	}
	if old.Source != nil && new.Source != nil {
		if i := new.Source.Interface; i != "" && i != iface {
			restart = append(restart, fmt.Sprintf("source.interface %s -> %s", iface, i))
		}
		if o, n := old.Source.JoinFrom, new.Source.JoinFrom; !slices.Equal(o, n) {
			if len(o) == 0 && new.Member == nil {
				restart = append(restart, "source.join_from added on a host without [member]: the tunnel port opens at start")
			} else {
				changes = append(changes, fmt.Sprintf("source.join_from %s -> %s", prefixesOrNone(o), prefixesOrNone(n)))
			}
		}
		changes = append(changes, diffGroups(old.Source.Groups, new.Source.Groups)...)
	}
	if o, n := old.Member, new.Member; o != nil && n != nil {
		if o.TUN != n.TUN {
			restart = append(restart, fmt.Sprintf("member.tun %s -> %s", o.TUN, n.TUN))
		}
		if o.MTU != n.MTU {
			changes = append(changes, fmt.Sprintf("member.mtu %d -> %d", o.MTU, n.MTU))
		}
		changes = append(changes, diffAddrs("source", o.Sources, n.Sources)...)
		if !slices.Equal(o.Groups, n.Groups) {
			changes = append(changes, fmt.Sprintf("member.groups %s -> %s", groupsOrAny(o.Groups), groupsOrAny(n.Groups)))
		}
	}
	return changes, restart
}

// diffGroups lists groups added and removed, and members added to and removed from the
// groups that stay.
func diffGroups(old, new []config.Group) []string {
	type key struct {
		addr netip.Addr
		port uint16
	}
	index := func(gs []config.Group) map[key]config.Group {
		m := make(map[key]config.Group, len(gs))
		for _, g := range gs {
			m[key{g.Address, g.Port}] = g
		}
		return m
	}
	was, is := index(old), index(new)
	var out []string
	for _, g := range new {
		o, ok := was[key{g.Address, g.Port}]
		if !ok {
			out = append(out, fmt.Sprintf("+ group %s (%s)", GroupName(g.Address, g.Port), words.Plural(len(g.Members), "member")))
			continue
		}
		for _, m := range added(o.Members, g.Members) {
			out = append(out, fmt.Sprintf("group %s: + member %s", GroupName(g.Address, g.Port), m))
		}
		for _, m := range added(g.Members, o.Members) {
			out = append(out, fmt.Sprintf("group %s: - member %s", GroupName(g.Address, g.Port), m))
		}
	}
	for _, g := range old {
		if _, ok := is[key{g.Address, g.Port}]; !ok {
			out = append(out, "- group "+GroupName(g.Address, g.Port))
		}
	}
	return out
}

func diffAddrs(what string, old, new []netip.Addr) []string {
	var out []string
	for _, a := range added(old, new) {
		out = append(out, fmt.Sprintf("+ %s %s", what, a))
	}
	for _, a := range added(new, old) {
		out = append(out, fmt.Sprintf("- %s %s", what, a))
	}
	return out
}

// added returns what is in new and not in old, in new's order.
func added[T comparable](old, new []T) []T {
	had := make(map[T]bool, len(old))
	for _, x := range old {
		had[x] = true
	}
	var out []T
	for _, x := range new {
		if !had[x] {
			out = append(out, x)
		}
	}
	return out
}

// GroupName is datapath.GroupName.
func GroupName(addr netip.Addr, port uint16) string { return datapath.GroupName(addr, port) }

func groupsOrAny(gs []netip.Addr) string {
	if len(gs) == 0 {
		return "any"
	}
	return words.JoinAddrs(gs)
}

func listenOrOff(m config.Metrics) string {
	if !m.Enabled() {
		return "off"
	}
	return m.Listen.String()
}

func prefixesOrNone(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	return words.JoinAddrs(ps)
}

func addedOrRemoved(added bool) string {
	if added {
		return "added"
	}
	return "removed"
}
