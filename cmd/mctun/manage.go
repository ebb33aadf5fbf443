package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mctun/control"
	"mctun/daemon"
	"mctun/internal/words"
)

// The group, member and source commands: the command line side. The running instance does
// the work (daemon.EditArgs).

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
	sub.SetOutput(fs.Output())
	lastSubFlags = sub
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
	return call("group add", daemon.EditArgs{Verb: "group add", Group: fs.Arg(0), Port: *port, Members: splitList(*members)})
}

// editCmd runs a management command whose positional arguments are GROUP and/or addresses.
func editCmd(fs *flag.FlagSet, args []string, verb string, minArgs, maxArgs int) int {
	if code, ok := parseN(fs, args, minArgs, maxArgs); !ok {
		return code
	}
	a := daemon.EditArgs{Verb: verb}
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
func call(verb string, a daemon.EditArgs) int {
	var res daemon.EditResult
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
	fmt.Fprintln(tw, "GROUP\tMEMBERS\tJOINED\tDEFINED IN")
	for _, g := range l.Groups {
		origin := g.Origin
		if origin == daemon.JoinedOrigin {
			origin = "(joined: declared nowhere)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", g.Group, len(g.Members), len(g.Joined), origin)
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
	addr, port, err := daemon.ParseGroupArg(fs.Arg(0), "")
	if err != nil {
		return usagef("mctun group show: %v", err)
	}
	l, code := getListing("group show")
	if code != exitOK {
		return code
	}
	var found []daemon.GroupInfo
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
	now := time.Now()
	for _, g := range found {
		if g.Origin == daemon.JoinedOrigin {
			fmt.Printf("group %s (declared nowhere: there for the members that joined it)\n", g.Group)
		} else {
			fmt.Printf("group %s (%s), %s:\n", g.Group, g.Origin, words.Plural(len(g.Members), "member"))
			for _, m := range g.Members {
				fmt.Printf("  %s\n", m)
			}
		}
		if len(g.Joined) == 0 {
			continue
		}
		fmt.Printf("  and %s that joined it themselves:\n", words.Plural(len(g.Joined), "member"))
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  MEMBER\tJOINED\tEXPIRES\tFILTER\t")
		for _, j := range g.Joined {
			note := ""
			switch {
			case j.Excluded:
				note = "its filter leaves this source out: not sent to"
			case j.Static:
				note = "a static member too: sent each packet once"
			}
			fmt.Fprintf(tw, "  %s\t%s (%s ago)\t%s (in %s)\t%s\t%s\n", j.Address, j.Joined.Format(time.DateTime),
				now.Sub(j.Joined).Round(time.Second), j.Expires.Format(time.DateTime), j.Expires.Sub(now).Round(time.Second),
				filterText(j.Mode, j.Sources), note)
		}
		tw.Flush()
	}
	return exitOK
}

// filterText writes a source filter: "any source", "only 198.18.1.2", "all but 198.18.7.7".
func filterText(mode string, sources []string) string {
	switch {
	case mode == "include":
		return "only " + strings.Join(sources, ", ")
	case len(sources) == 0:
		return "any source"
	}
	return "all but " + strings.Join(sources, ", ")
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

func getListing(cmd string) (daemon.Listing, int) {
	var l daemon.Listing
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
