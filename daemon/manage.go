package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"mctun/config"
	"mctun/internal/atomicfile"
	"mctun/internal/words"
	"mctun/membership"
)

// The group, member and source commands change a running instance and persist the change in
// the managed file next to the config (config.ManagedPath), never in the operator's own file.
// They may change only what the managed file holds; a group or source of the operator's file
// is changed there, then mctun reload.

// EditArgs is one management command as the daemon receives it. Addresses travel as the
// operator wrote them, so the daemon validates them exactly as it validates the files.
type EditArgs struct {
	Verb    string   `json:"verb"`            // "group add", "group del", "group clear", "member join", "member quit", "source add", "source del", "source clear"
	Group   string   `json:"group,omitempty"` // "ADDR" or "ADDR:PORT"
	Port    string   `json:"port,omitempty"`  // group add --port
	Members []string `json:"members,omitempty"`
	Sources []string `json:"sources,omitempty"`
}

// EditResult is what a management command did.
type EditResult struct {
	Done    string   `json:"done"`    // one line for the operator
	Changes []string `json:"changes"` // as reload reports them
}

// edit is the daemon's side of a management command: edit the managed part, validate the
// result with the config file, write the managed file aside and rename it into place, then
// apply it like a reload. Any failure before the rename changes nothing; if apply fails, the
// managed file is put back as it was, so that the next start does not apply what was refused.
func (d *daemon) edit(a EditArgs) (_ any, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		if err != nil {
			d.commands.Refused++
		} else {
			d.commands.Applied++
		}
	}()
	managed, done, err := editManaged(d.cfg, d.cfg.Managed(), a)
	if err != nil {
		return nil, err
	}
	data := []byte(managed.Format())
	next, _, err := config.Merge(d.cfg.Path, d.mainData, data)
	if err != nil {
		return nil, err
	}
	putBack, err := keepFile(d.cfg.ManagedPath)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(d.cfg.ManagedPath, data, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", d.cfg.ManagedPath, err)
	}
	changes, err := d.apply(next)
	if err != nil {
		if perr := putBack(); perr != nil {
			d.log.Error("cannot put the managed file back: it has the change refused, which the next start applies", "file", d.cfg.ManagedPath, "err", perr)
			return nil, fmt.Errorf("%w; and %s keeps the change, not put back: %w", err, d.cfg.ManagedPath, perr)
		}
		return nil, err
	}
	d.log.Info(a.Verb, "done", done, "diff", strings.Join(changes, "; "))
	d.notifySystemd(d.statusLine())
	return EditResult{Done: done, Changes: changes}, nil
}

// keepFile reads the file at path as it is, and returns what writes it back atomically, with
// its permissions, or removes it if there was none.
func keepFile(path string) (putBack func() error, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return func() error { return os.Remove(path) }, nil
	}
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return func() error { return atomicfile.WriteFile(path, data, fi.Mode().Perm()) }, nil
}

// editManaged applies one command to m, the managed groups and sources of cfg, and says what
// it did. Groups and sources of the operator's file are refused, with where they are.
func editManaged(cfg *config.Config, m config.Managed, a EditArgs) (config.Managed, string, error) {
	switch a.Verb {
	case "group add", "group del", "member join", "member quit", "group clear":
		if cfg.Source == nil {
			return m, "", fmt.Errorf("%s has no [source]: groups need one (add it, then mctun down and up)", cfg.Path)
		}
	case "source add", "source del", "source clear":
		if cfg.Member == nil {
			return m, "", fmt.Errorf("%s has no [member]: sources need one (add it, then mctun down and up)", cfg.Path)
		}
	}
	m.Groups = slices.Clone(m.Groups)
	m.Sources = slices.Clone(m.Sources)

	switch a.Verb {
	case "group add":
		addr, port, err := ParseGroupArg(a.Group, a.Port)
		if err != nil {
			return m, "", err
		}
		members, err := parseMembers(a.Members, cfg.Port)
		if err != nil {
			return m, "", err
		}
		p := uint16(max(port, 0)) // no port: the group that takes every packet to addr
		i, err := findGroup(cfg, m, addr, int(p), true)
		if err != nil {
			return m, "", err
		}
		if i < 0 {
			joins := len(cfg.Source.JoinFrom) > 0
			if len(members) == 0 && !joins {
				return m, "", fmt.Errorf("group %s needs at least one member: --member IP[,IP...] (or source.join_from, from where members join it themselves)", GroupName(addr, p))
			}
			m.Groups = append(m.Groups, config.Group{Address: addr, Port: p, Members: members})
			if len(members) == 0 {
				return m, fmt.Sprintf("added group %s with no members yet: hosts in source.join_from may join it", GroupName(addr, p)), nil
			}
			return m, fmt.Sprintf("added group %s with %s", GroupName(addr, p), words.Plural(len(members), "member")), nil
		}
		return join(m, i, members)
	case "member join", "member quit":
		addr, port, err := ParseGroupArg(a.Group, "")
		if err != nil {
			return m, "", err
		}
		members, err := parseMembers(a.Members, cfg.Port)
		if err != nil {
			return m, "", err
		}
		if len(members) == 0 {
			return m, "", errors.New("name at least one member: IP[,IP...]")
		}
		i, err := findGroup(cfg, m, addr, port, false)
		if err != nil {
			return m, "", err
		}
		if a.Verb == "member join" {
			return join(m, i, members)
		}
		return quit(m, i, members, len(cfg.Source.JoinFrom) > 0)
	case "group del":
		addr, port, err := ParseGroupArg(a.Group, "")
		if err != nil {
			return m, "", err
		}
		i, err := findGroup(cfg, m, addr, port, false)
		if err != nil {
			return m, "", err
		}
		g := m.Groups[i]
		m.Groups = slices.Delete(m.Groups, i, i+1)
		return m, "deleted group " + GroupName(g.Address, g.Port), nil
	case "group clear":
		n := len(m.Groups)
		m.Groups = nil
		done := "deleted " + words.Plural(n, "group")
		if kept := len(cfg.Source.Groups) - n; kept > 0 {
			done += fmt.Sprintf("; kept %s from %s (edit it there, then mctun reload)", words.Plural(kept, "group"), cfg.Path)
		}
		return m, done, nil
	case "source add", "source del":
		if len(a.Sources) != 1 {
			return m, "", errors.New("name one source: IP")
		}
		src, err := config.ParseSource(a.Sources[0])
		if err != nil {
			return m, "", fmt.Errorf("source %s", err)
		}
		i := slices.Index(cfg.Member.Sources, src)
		if i >= 0 && !cfg.Member.SourceOrigins[i].Managed {
			return m, "", fmt.Errorf("source %s is in %s: edit it there, then mctun reload", src, cfg.Member.SourceOrigins[i])
		}
		j := slices.Index(m.Sources, src)
		if a.Verb == "source add" {
			if j >= 0 {
				return m, "", fmt.Errorf("source %s is already there", src)
			}
			m.Sources = append(m.Sources, src)
			return m, "added source " + src.String(), nil
		}
		if j < 0 {
			return m, "", fmt.Errorf("source %s is not a source", src)
		}
		m.Sources = slices.Delete(m.Sources, j, j+1)
		return m, "deleted source " + src.String(), nil
	case "source clear":
		n := len(m.Sources)
		m.Sources = nil
		done := "deleted " + words.Plural(n, "source")
		if kept := len(cfg.Member.Sources) - n; kept > 0 {
			done += fmt.Sprintf("; kept %s from %s (edit it there, then mctun reload)", words.Plural(kept, "source"), cfg.Path)
		}
		return m, done, nil
	}
	return m, "", fmt.Errorf("unknown command %q", a.Verb)
}

func join(m config.Managed, i int, members []netip.AddrPort) (config.Managed, string, error) {
	g := &m.Groups[i]
	var added []string
	g.Members = slices.Clone(g.Members)
	for _, mb := range members {
		if !slices.Contains(g.Members, mb) {
			g.Members = append(g.Members, mb)
			added = append(added, mb.String())
		}
	}
	if len(added) == 0 {
		return m, "", fmt.Errorf("group %s already has these members", GroupName(g.Address, g.Port))
	}
	return m, fmt.Sprintf("group %s: added %s", GroupName(g.Address, g.Port), strings.Join(added, ", ")), nil
}

// quit removes members from group i of m. Only with joins allowed may that leave the group
// without members, for hosts to join.
func quit(m config.Managed, i int, members []netip.AddrPort, joins bool) (config.Managed, string, error) {
	g := &m.Groups[i]
	name := GroupName(g.Address, g.Port)
	for _, mb := range members {
		if !slices.Contains(g.Members, mb) {
			return m, "", fmt.Errorf("%s is not a member of group %s", mb, name)
		}
	}
	g.Members = slices.DeleteFunc(slices.Clone(g.Members), func(mb netip.AddrPort) bool { return slices.Contains(members, mb) })
	if len(g.Members) == 0 && !joins {
		return m, "", fmt.Errorf("that would leave group %s without members: mctun group del %s", name, name)
	}
	return m, fmt.Sprintf("group %s: removed %s", name, words.Plural(len(members), "member")), nil
}

// findGroup finds the managed group addr (and port, if the operator gave one) and returns its
// index in m, or -1 when creating is allowed and there is none. A group of the operator's
// file is refused with where it is.
func findGroup(cfg *config.Config, m config.Managed, addr netip.Addr, port int, create bool) (int, error) {
	var found []config.Group
	for _, g := range cfg.Source.Groups {
		if g.Address == addr && (port < 0 || int(g.Port) == port) {
			found = append(found, g)
		}
	}
	switch {
	case len(found) == 0 && create:
		return -1, nil
	case len(found) == 0:
		return -1, fmt.Errorf("no group %s", GroupName(addr, uint16(max(port, 0))))
	case len(found) > 1:
		var names []string
		for _, g := range found {
			names = append(names, GroupName(g.Address, g.Port))
		}
		return -1, fmt.Errorf("%s names several groups (%s): give the port, as ADDR:PORT", addr, strings.Join(names, ", "))
	}
	g := found[0]
	if !g.Origin.Managed {
		return -1, fmt.Errorf("group %s is in %s: edit it there, then mctun reload", GroupName(g.Address, g.Port), g.Origin)
	}
	return slices.IndexFunc(m.Groups, func(x config.Group) bool { return x.Address == g.Address && x.Port == g.Port }), nil
}

// ParseGroupArg reads GROUP as "ADDR" or "ADDR:PORT", or ADDR with --port. port is -1 when
// none was given; for group add that means a group that takes every packet to ADDR.
func ParseGroupArg(s, portFlag string) (netip.Addr, int, error) {
	addrPart, portPart, hasPort := strings.Cut(s, ":")
	addr, err := config.ParseGroup(addrPart)
	if err != nil {
		return addr, 0, fmt.Errorf("group %s", err)
	}
	switch {
	case hasPort && portFlag != "":
		return addr, 0, errors.New("give the port once: ADDR:PORT or --port")
	case portFlag != "":
		portPart, hasPort = portFlag, true
	}
	if !hasPort {
		return addr, -1, nil
	}
	p, err := config.ParseGroupPort(portPart)
	if err != nil {
		return addr, 0, fmt.Errorf("group port %s", err)
	}
	return addr, int(p), nil
}

func parseMembers(list []string, tunnelPort uint16) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, s := range list {
		m, err := config.ParseMember(s, tunnelPort)
		if err != nil {
			return nil, fmt.Errorf("member %s", err)
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

// GroupInfo and SourceInfo are what list and show print.
type GroupInfo struct {
	Group   string   `json:"group"`
	Address string   `json:"address"`
	Port    uint16   `json:"port,omitempty"`
	Members []string `json:"members"` // the static members, as the config lists them
	// Joined are the dynamic members: the hosts that joined the group's address themselves.
	Joined []JoinedMember `json:"joined"`
	// Origin is where the group is defined, or "joined" for a group no config declares,
	// there for its dynamic members alone.
	Origin  string `json:"origin"`
	Managed bool   `json:"managed"`
}

// JoinedMember is a dynamic member of a group.
type JoinedMember struct {
	Address   string    `json:"address"`
	Joined    time.Time `json:"joined"`
	Refreshed time.Time `json:"refreshed"` // its last report of the group
	Expires   time.Time `json:"expires"`   // unless it reports again
	Mode      string    `json:"mode"`      // its source filter: "exclude" (all but Sources) or "include" (only Sources)
	Sources   []string  `json:"sources,omitempty"`
	// Static is set when the host is a static member of the group too: it gets each packet once.
	Static bool `json:"static,omitempty"`
	// Excluded is set when its source filter leaves this source out: nothing is sent to it.
	Excluded bool `json:"excluded,omitempty"`
}

// JoinedOrigin is GroupInfo.Origin of a group that exists for its dynamic members alone.
const JoinedOrigin = "joined"

type SourceInfo struct {
	Address string `json:"address"`
	Origin  string `json:"origin"`
	Managed bool   `json:"managed"`
}

// Listing is the running instance's groups and sources, with where each comes from.
type Listing struct {
	Source  bool         `json:"source"` // the host has [source]
	Member  bool         `json:"member"` // the host has [member]
	Groups  []GroupInfo  `json:"groups"`
	Sources []SourceInfo `json:"sources"`
}

// joinedMember describes a dynamic member of a group whose static members are static.
func (d *daemon) joinedMember(e membership.Entry, static []netip.AddrPort) JoinedMember {
	j := JoinedMember{Address: e.Member.String(), Joined: e.Joined, Refreshed: e.Refreshed, Expires: e.Expires,
		Mode: e.Mode.String(), Static: slices.ContainsFunc(static, func(m netip.AddrPort) bool { return m.Addr() == e.Member }),
		Excluded: !e.Wants(d.self)}
	for _, s := range e.Sources {
		j.Sources = append(j.Sources, s.String())
	}
	return j
}

func (d *daemon) listing() Listing {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := Listing{Source: d.cfg.Source != nil, Member: d.cfg.Member != nil, Groups: []GroupInfo{}, Sources: []SourceInfo{}}
	if s := d.cfg.Source; s != nil {
		var entries []membership.Entry
		if d.joins != nil {
			entries = d.joins.Entries()
		}
		byGroup := map[netip.Addr][]membership.Entry{}
		for _, e := range entries {
			byGroup[e.Group] = append(byGroup[e.Group], e)
		}
		for i, g := range s.Groups {
			gi := GroupInfo{Group: GroupName(g.Address, g.Port), Address: g.Address.String(), Port: g.Port,
				Members: []string{}, Joined: []JoinedMember{}, Origin: g.Origin.String(), Managed: g.Origin.Managed}
			for _, m := range g.Members {
				gi.Members = append(gi.Members, m.String())
			}
			if slices.Contains(membership.Placement(s.Groups, g.Address), i) {
				for _, e := range byGroup[g.Address] {
					gi.Joined = append(gi.Joined, d.joinedMember(e, g.Members))
				}
			}
			l.Groups = append(l.Groups, gi)
		}
		for _, e := range entries { // the groups no config declares, by address
			if len(membership.Placement(s.Groups, e.Group)) > 0 {
				continue
			}
			if n := len(l.Groups); n == 0 || l.Groups[n-1].Origin != JoinedOrigin || l.Groups[n-1].Address != e.Group.String() {
				l.Groups = append(l.Groups, GroupInfo{Group: e.Group.String(), Address: e.Group.String(),
					Members: []string{}, Origin: JoinedOrigin})
			}
			gi := &l.Groups[len(l.Groups)-1]
			gi.Joined = append(gi.Joined, d.joinedMember(e, nil))
		}
	}
	if m := d.cfg.Member; m != nil {
		for i, a := range m.Sources {
			l.Sources = append(l.Sources, SourceInfo{Address: a.String(), Origin: m.SourceOrigins[i].String(), Managed: m.SourceOrigins[i].Managed})
		}
	}
	return l
}
