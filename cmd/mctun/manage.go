package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"mctun/config"
	"mctun/control"
	"mctun/internal/atomicfile"
)

// The group, member and source commands change a running instance and persist the change in
// the managed file next to the config (config.ManagedPath), never in the operator's own file.
// They may change only what the managed file holds; a group or source of the operator's file
// is changed there, then mctun reload.

// editArgs is one management command as the daemon receives it. Addresses travel as the
// operator wrote them, so the daemon validates them exactly as it validates the files.
type editArgs struct {
	Verb    string   `json:"verb"`            // "group add", "group del", "group clear", "member join", "member quit", "source add", "source del", "source clear"
	Group   string   `json:"group,omitempty"` // "ADDR" or "ADDR:PORT"
	Port    string   `json:"port,omitempty"`  // group add --port
	Members []string `json:"members,omitempty"`
	Sources []string `json:"sources,omitempty"`
}

// editResult is what a management command did.
type editResult struct {
	Done    string   `json:"done"`    // one line for the operator
	Changes []string `json:"changes"` // as reload reports them
}

// edit is the daemon's side of a management command: edit the managed part, validate the
// result with the config file, write the managed file aside and rename it into place, then
// apply it like a reload. Any failure before the rename changes nothing.
func (d *daemon) edit(a editArgs) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	managed, done, err := editManaged(d.cfg, d.cfg.Managed(), a)
	if err != nil {
		return nil, err
	}
	data := []byte(managed.Format())
	next, _, err := config.Merge(d.cfg.Path, d.mainData, data)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(d.cfg.ManagedPath, data, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", d.cfg.ManagedPath, err)
	}
	changes, err := d.apply(next)
	if err != nil {
		return nil, err
	}
	d.log.Info(a.Verb, "done", done, "diff", strings.Join(changes, "; "))
	return editResult{Done: done, Changes: changes}, nil
}

// editManaged applies one command to m, the managed groups and sources of cfg, and says what
// it did. Groups and sources of the operator's file are refused, with where they are.
func editManaged(cfg *config.Config, m config.Managed, a editArgs) (config.Managed, string, error) {
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
		addr, port, err := parseGroupArg(a.Group, a.Port)
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
			if len(members) == 0 {
				return m, "", fmt.Errorf("group %s needs at least one member: --member IP[,IP...]", groupName(addr, p))
			}
			m.Groups = append(m.Groups, config.Group{Address: addr, Port: p, Members: members})
			return m, fmt.Sprintf("added group %s with %s", groupName(addr, p), plural(len(members), "member")), nil
		}
		return join(m, i, members)
	case "member join", "member quit":
		addr, port, err := parseGroupArg(a.Group, "")
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
		return quit(m, i, members)
	case "group del":
		addr, port, err := parseGroupArg(a.Group, "")
		if err != nil {
			return m, "", err
		}
		i, err := findGroup(cfg, m, addr, port, false)
		if err != nil {
			return m, "", err
		}
		g := m.Groups[i]
		m.Groups = slices.Delete(m.Groups, i, i+1)
		return m, "deleted group " + groupName(g.Address, g.Port), nil
	case "group clear":
		n := len(m.Groups)
		m.Groups = nil
		done := "deleted " + plural(n, "group")
		if kept := len(cfg.Source.Groups) - n; kept > 0 {
			done += fmt.Sprintf("; kept %s from %s (edit it there, then mctun reload)", plural(kept, "group"), cfg.Path)
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
		done := "deleted " + plural(n, "source")
		if kept := len(cfg.Member.Sources) - n; kept > 0 {
			done += fmt.Sprintf("; kept %s from %s (edit it there, then mctun reload)", plural(kept, "source"), cfg.Path)
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
		return m, "", fmt.Errorf("group %s already has these members", groupName(g.Address, g.Port))
	}
	return m, fmt.Sprintf("group %s: added %s", groupName(g.Address, g.Port), strings.Join(added, ", ")), nil
}

func quit(m config.Managed, i int, members []netip.AddrPort) (config.Managed, string, error) {
	g := &m.Groups[i]
	name := groupName(g.Address, g.Port)
	for _, mb := range members {
		if !slices.Contains(g.Members, mb) {
			return m, "", fmt.Errorf("%s is not a member of group %s", mb, name)
		}
	}
	g.Members = slices.DeleteFunc(slices.Clone(g.Members), func(mb netip.AddrPort) bool { return slices.Contains(members, mb) })
	if len(g.Members) == 0 {
		return m, "", fmt.Errorf("that would leave group %s without members: mctun group del %s", name, name)
	}
	return m, fmt.Sprintf("group %s: removed %s", name, plural(len(members), "member")), nil
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
		return -1, fmt.Errorf("no group %s", groupName(addr, uint16(max(port, 0))))
	case len(found) > 1:
		var names []string
		for _, g := range found {
			names = append(names, groupName(g.Address, g.Port))
		}
		return -1, fmt.Errorf("%s names several groups (%s): give the port, as ADDR:PORT", addr, strings.Join(names, ", "))
	}
	g := found[0]
	if !g.Origin.Managed {
		return -1, fmt.Errorf("group %s is in %s: edit it there, then mctun reload", groupName(g.Address, g.Port), g.Origin)
	}
	return slices.IndexFunc(m.Groups, func(x config.Group) bool { return x.Address == g.Address && x.Port == g.Port }), nil
}

// parseGroupArg reads GROUP as "ADDR" or "ADDR:PORT", or ADDR with --port. port is -1 when
// none was given; for group add that means a group that takes every packet to ADDR.
func parseGroupArg(s, portFlag string) (netip.Addr, int, error) {
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

// splitList reads "a,b,c" (also with spaces) from the command line.
func splitList(args ...string) []string {
	var out []string
	for _, a := range args {
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// groupInfo and sourceInfo are what list and show print.
type groupInfo struct {
	Group   string   `json:"group"`
	Address string   `json:"address"`
	Port    uint16   `json:"port,omitempty"`
	Members []string `json:"members"`
	Origin  string   `json:"origin"`
	Managed bool     `json:"managed"`
}

type sourceInfo struct {
	Address string `json:"address"`
	Origin  string `json:"origin"`
	Managed bool   `json:"managed"`
}

// listing is the running instance's groups and sources, with where each comes from.
type listing struct {
	Source  bool         `json:"source"` // the host has [source]
	Member  bool         `json:"member"` // the host has [member]
	Groups  []groupInfo  `json:"groups"`
	Sources []sourceInfo `json:"sources"`
}

func (d *daemon) listing() listing {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := listing{Source: d.cfg.Source != nil, Member: d.cfg.Member != nil, Groups: []groupInfo{}, Sources: []sourceInfo{}}
	if s := d.cfg.Source; s != nil {
		for _, g := range s.Groups {
			gi := groupInfo{Group: groupName(g.Address, g.Port), Address: g.Address.String(), Port: g.Port,
				Origin: g.Origin.String(), Managed: g.Origin.Managed}
			for _, m := range g.Members {
				gi.Members = append(gi.Members, m.String())
			}
			l.Groups = append(l.Groups, gi)
		}
	}
	if m := d.cfg.Member; m != nil {
		for i, a := range m.Sources {
			l.Sources = append(l.Sources, sourceInfo{Address: a.String(), Origin: m.SourceOrigins[i].String(), Managed: m.SourceOrigins[i].Managed})
		}
	}
	return l
}

// The command line side.

func cmdGroup(fs *flag.FlagSet, args []string) int {
	return subcommand(fs, args, "group", map[string]func(*flag.FlagSet, []string) int{
		"add":   cmdGroupAdd,
		"del":   func(fs *flag.FlagSet, a []string) int { return editCmd(fs, a, "group del", 1, 1) },
		"clear": func(fs *flag.FlagSet, a []string) int { return editCmd(fs, a, "group clear", 0, 0) },
		"list":  cmdGroupList,
		"show":  cmdGroupShow,
	})
}

func cmdMember(fs *flag.FlagSet, args []string) int {
	return subcommand(fs, args, "member", map[string]func(*flag.FlagSet, []string) int{
		"join": func(fs *flag.FlagSet, a []string) int { return editCmd(fs, a, "member join", 2, -1) },
		"quit": func(fs *flag.FlagSet, a []string) int { return editCmd(fs, a, "member quit", 2, -1) },
	})
}

func cmdSource(fs *flag.FlagSet, args []string) int {
	return subcommand(fs, args, "source", map[string]func(*flag.FlagSet, []string) int{
		"add":   func(fs *flag.FlagSet, a []string) int { return editCmd(fs, a, "source add", 1, 1) },
		"del":   func(fs *flag.FlagSet, a []string) int { return editCmd(fs, a, "source del", 1, 1) },
		"clear": func(fs *flag.FlagSet, a []string) int { return editCmd(fs, a, "source clear", 0, 0) },
		"list":  cmdSourceList,
	})
}

// subcommand dispatches "mctun group add ..." and the like.
func subcommand(fs *flag.FlagSet, args []string, noun string, verbs map[string]func(*flag.FlagSet, []string) int) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fs.Usage()
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	run, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "mctun %s: unknown command %q\n", noun, args[0])
		fs.Usage()
		return exitUsage
	}
	sub := flag.NewFlagSet("mctun "+noun+" "+args[0], flag.ContinueOnError)
	sub.Usage = func() { fmt.Fprintf(sub.Output(), "usage: %s\n", usageOf(noun+" "+args[0])); printFlags(sub) }
	return run(sub, args[1:])
}

func cmdGroupAdd(fs *flag.FlagSet, args []string) int {
	port := fs.String("port", "", "the applications' UDP destination `PORT`; without it the group takes every packet to GROUP")
	members := fs.String("member", "", "members to add, `IP[,IP...]`")
	args = reorder(fs, args)
	if code, ok := parseN(fs, args, 1, 1); !ok {
		return code
	}
	return call("group add", editArgs{Verb: "group add", Group: fs.Arg(0), Port: *port, Members: splitList(*members)})
}

// editCmd runs a management command whose positional arguments are GROUP and/or addresses.
func editCmd(fs *flag.FlagSet, args []string, verb string, minArgs, maxArgs int) int {
	if code, ok := parseN(fs, args, minArgs, maxArgs); !ok {
		return code
	}
	a := editArgs{Verb: verb}
	switch verb {
	case "group del":
		a.Group = fs.Arg(0)
	case "member join", "member quit":
		a.Group, a.Members = fs.Arg(0), splitList(fs.Args()[1:]...)
	case "source add", "source del":
		a.Sources = fs.Args()
	}
	return call(verb, a)
}

// call sends a management command and prints what it did.
func call(verb string, a editArgs) int {
	var res editResult
	if err := control.Call(control.SocketName, "edit", a, &res); err != nil {
		return failf("mctun %s: %v", verb, err)
	}
	fmt.Printf("mctun: %s\n", res.Done)
	return exitOK
}

func cmdGroupList(fs *flag.FlagSet, args []string) int {
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseN(fs, reorder(fs, args), 0, 0); !ok {
		return code
	}
	l, code := getListing("group list")
	if code != exitOK {
		return code
	}
	if *asJSON {
		return printJSON(l.Groups)
	}
	if !l.Source {
		fmt.Println("no [source]: this host sends no multicast")
		return exitOK
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tMEMBERS\tDEFINED IN")
	for _, g := range l.Groups {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", g.Group, len(g.Members), g.Origin)
	}
	tw.Flush()
	return exitOK
}

func cmdGroupShow(fs *flag.FlagSet, args []string) int {
	asJSON := fs.Bool("json", false, "print JSON")
	args = reorder(fs, args)
	if code, ok := parseN(fs, args, 1, 1); !ok {
		return code
	}
	addr, port, err := parseGroupArg(fs.Arg(0), "")
	if err != nil {
		return usagef("mctun group show: %v", err)
	}
	l, code := getListing("group show")
	if code != exitOK {
		return code
	}
	var found []groupInfo
	for _, g := range l.Groups {
		if g.Address == addr.String() && (port < 0 || int(g.Port) == port) {
			found = append(found, g)
		}
	}
	if len(found) == 0 {
		return failf("mctun group show: no group %s", fs.Arg(0))
	}
	if *asJSON {
		return printJSON(found)
	}
	for _, g := range found {
		fmt.Printf("group %s (%s), %d members:\n", g.Group, g.Origin, len(g.Members))
		for _, m := range g.Members {
			fmt.Printf("  %s\n", m)
		}
	}
	return exitOK
}

func cmdSourceList(fs *flag.FlagSet, args []string) int {
	asJSON := fs.Bool("json", false, "print JSON")
	if code, ok := parseN(fs, reorder(fs, args), 0, 0); !ok {
		return code
	}
	l, code := getListing("source list")
	if code != exitOK {
		return code
	}
	if *asJSON {
		return printJSON(l.Sources)
	}
	if !l.Member {
		fmt.Println("no [member]: this host receives no multicast")
		return exitOK
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tDEFINED IN")
	for _, s := range l.Sources {
		fmt.Fprintf(tw, "%s\t%s\n", s.Address, s.Origin)
	}
	tw.Flush()
	return exitOK
}

func getListing(cmd string) (listing, int) {
	var l listing
	if err := control.Call(control.SocketName, "listing", nil, &l); err != nil {
		return l, failf("mctun %s: %v", cmd, err)
	}
	return l, exitOK
}

func printJSON(v any) int {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return failf("mctun: %v", err)
	}
	return exitOK
}

// parseN parses flags and checks that between minArgs and maxArgs (-1: any) arguments remain.
func parseN(fs *flag.FlagSet, args []string, minArgs, maxArgs int) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if n := fs.NArg(); n < minArgs || (maxArgs >= 0 && n > maxArgs) {
		fmt.Fprintf(os.Stderr, "%s: want %s, got %d\n", fs.Name(), argCount(minArgs, maxArgs), n)
		fs.Usage()
		return exitUsage, false
	}
	return 0, true
}

func argCount(lo, hi int) string {
	switch {
	case lo == hi:
		return strconv.Itoa(lo) + " arguments"
	case hi < 0:
		return "at least " + strconv.Itoa(lo) + " arguments"
	}
	return fmt.Sprintf("%d to %d arguments", lo, hi)
}

// reorder moves flags after the positional arguments to the front, so that both
// "group add 224.1.2.3 --port 5" and "group add --port 5 224.1.2.3" work.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && !isBool(f) && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, pos...)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
