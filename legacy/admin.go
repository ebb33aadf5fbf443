package legacy

import (
	"fmt"
	"strings"
)

// The original's admin commands, multis_admin on the server and multic_admin on a client,
// and the mctun command that means the same for each. A packaged mctun installs both names
// as links to itself; invoked by one of them, it runs Translate's mctun command.

// The names the original's admin commands are invoked by.
const (
	ServerAdmin = "multis_admin"
	ClientAdmin = "multic_admin"
)

// Translation is one of the original's admin commands as mctun runs it.
type Translation struct {
	// Args are mctun's arguments, without "mctun": {"group", "add", "224.1.2.3", ...}.
	// Empty when Help is set.
	Args []string
	// Help is set for -H: print Usage, run nothing.
	Help bool
	// Notes say what of the command has no exact equivalent in mctun, and what to use
	// instead. Each is one sentence, without the program's name.
	Notes []string
}

// UsageError is a command line Translate cannot read: an unknown flag, a missing value, no
// action or two. Its message says which.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{fmt.Sprintf(format, args...)} }

// action is one of the original's action flags, with the value flags it takes and the mctun
// command it becomes.
type action struct {
	flag     byte
	needs    string // value flags it must have
	allows   string // value flags it may have
	original string // its usage in the original's words
	mctun    string // the mctun command it runs, for Usage
	what     string
}

var serverActions = []action{
	{'A', "m", "jpq", "-A -m GROUP -j IP[,IP...] -p PORT", "mctun group add GROUP --port PORT --member IP[,IP...]", "add a group with members, or members to a group"},
	{'A', "m", "jpq", "-A -m GROUP -q IP[,IP...] [-p PORT]", "mctun member quit GROUP[:PORT] IP[,IP...]", "remove members from a group"},
	{'D', "m", "p", "-D -m GROUP [-p PORT]", "mctun group del GROUP[:PORT]", "delete a group"},
	{'C', "", "", "-C", "mctun group clear", "delete every group"},
	{'P', "", "mp", "-P [-m GROUP]", "mctun stats", "packet statistics"},
	{'S', "", "", "-S", "mctun group list", "show the groups"},
	{'L', "m", "p", "-L -m GROUP [-p PORT]", "mctun group show GROUP[:PORT]", "list a group's members"},
	{'R', "", "", "-R", "mctun run", "run the forwarding service in the foreground"},
	{'H', "", "", "-H", "mctun --help", "help"},
}

var clientActions = []action{
	{'A', "i", "gsm", "-A -i SERVER_IP -g GROUP_PORT -s SERVER_PORT -m GROUP", "mctun source add SERVER_IP", "accept a server's groups"},
	{'D', "i", "g", "-D -i SERVER_IP -g GROUP_PORT", "mctun source del SERVER_IP", "stop accepting a server"},
	{'C', "", "", "-C", "mctun source clear", "delete every server"},
	{'P', "", "", "-P", "mctun stats", "receive statistics"},
	{'L', "", "", "-L", "mctun source list", "list the servers"},
	{'R', "", "", "-R", "mctun run", "run the client in the foreground"},
	{'H', "", "", "-H", "mctun --help", "help"},
}

// valueFlags are the flags that take a value, per program.
var valueFlags = map[string]string{ServerAdmin: "mjpq", ClientAdmin: "igsm"}

// Translate reads the original admin command prog (ServerAdmin or ClientAdmin) with args,
// as the original's getopt did ("-A -m 224.1.2.3", "-Am224.1.2.3"), and returns the mctun
// command that means the same. A command line the original would not have taken is a
// *UsageError.
func Translate(prog string, args []string) (Translation, error) {
	actions := serverActions
	if prog == ClientAdmin {
		actions = clientActions
	}
	values := valueFlags[prog]
	if values == "" {
		return Translation{}, usagef("%s is not one of the original's admin commands (%s, %s)", prog, ServerAdmin, ClientAdmin)
	}
	var acts []byte
	val := map[byte]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return Translation{}, usagef("unexpected argument %q", args[i+1])
			}
			break
		}
		if len(a) < 2 || a[0] != '-' || a[1] == '-' {
			return Translation{}, usagef("unexpected argument %q", a)
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			switch {
			case strings.IndexByte(values, c) >= 0:
				v := a[j+1:]
				if v == "" {
					if i+1 >= len(args) {
						return Translation{}, usagef("-%c needs a value", c)
					}
					i++
					v = args[i]
				}
				if _, twice := val[c]; twice {
					return Translation{}, usagef("-%c is given twice", c)
				}
				val[c] = v
				j = len(a)
			case hasAction(actions, c):
				if strings.IndexByte(string(acts), c) < 0 {
					acts = append(acts, c)
				}
			default:
				return Translation{}, usagef("unknown flag -%c", c)
			}
		}
	}
	switch len(acts) {
	case 0:
		return Translation{}, usagef("say what to do: one of %s", actionList(actions))
	case 1:
	default:
		return Translation{}, usagef("-%c and -%c: give one action", acts[0], acts[1])
	}
	act := acts[0]
	if act == 'H' {
		return Translation{Help: true}, nil
	}
	needs, allows := "", ""
	for _, a := range actions {
		if a.flag == act {
			needs, allows = a.needs, a.allows
		}
	}
	for _, c := range needs {
		if _, ok := val[byte(c)]; !ok {
			return Translation{}, usagef("-%c needs -%c %s", act, c, valueName(byte(c)))
		}
	}
	for _, c := range []byte(values) {
		if _, ok := val[c]; ok && !strings.ContainsRune(needs+allows, rune(c)) {
			return Translation{}, usagef("-%c does not go with -%c", c, act)
		}
	}
	if prog == ServerAdmin {
		return translateServer(act, val)
	}
	return translateClient(act, val)
}

func hasAction(actions []action, c byte) bool {
	for _, a := range actions {
		if a.flag == c {
			return true
		}
	}
	return false
}

func actionList(actions []action) string {
	var fl []string
	for _, a := range actions {
		s := "-" + string(a.flag)
		if len(fl) == 0 || fl[len(fl)-1] != s {
			fl = append(fl, s)
		}
	}
	return strings.Join(fl, " ")
}

// valueName is what a value flag's value is, in the original's usage.
func valueName(c byte) string {
	switch c {
	case 'm':
		return "GROUP"
	case 'j', 'q':
		return "IP[,IP...]"
	case 'i':
		return "SERVER_IP"
	case 'g':
		return "GROUP_PORT"
	case 's':
		return "SERVER_PORT"
	}
	return "PORT"
}

// withPort writes GROUP, or GROUP:PORT when a port was given.
func withPort(val map[byte]string) string {
	if p, ok := val['p']; ok {
		return val['m'] + ":" + p
	}
	return val['m']
}

const (
	noteRun = "under systemd the service runs mctun (systemctl start mctun); mctun up starts it in the background"
)

func translateServer(act byte, val map[byte]string) (Translation, error) {
	switch act {
	case 'A':
		join, hasJoin := val['j']
		quit, hasQuit := val['q']
		switch {
		case hasJoin && hasQuit:
			return Translation{}, usagef("-A takes -j (members to add) or -q (members to remove), not both")
		case hasQuit:
			return Translation{Args: []string{"member", "quit", withPort(val), quit}}, nil
		case !hasJoin:
			return Translation{}, usagef("-A -m GROUP needs -j IP[,IP...] (members to add, with -p PORT) or -q IP[,IP...] (members to remove)")
		}
		if p, ok := val['p']; ok {
			return Translation{Args: []string{"group", "add", val['m'], "--port", p, "--member", join}}, nil
		}
		return Translation{Args: []string{"member", "join", val['m'], join},
			Notes: []string{"without -p, this adds members to the group " + val['m'] + " mctun has; to create a group, give its port (-p PORT)"}}, nil
	case 'D':
		return Translation{Args: []string{"group", "del", withPort(val)}}, nil
	case 'C':
		return Translation{Args: []string{"group", "clear"},
			Notes: []string{"mctun group clear deletes the groups mctun's commands added; those in the config file stay (edit it, then mctun reload)"}}, nil
	case 'P':
		t := Translation{Args: []string{"stats"}}
		if g, ok := val['m']; ok {
			t.Notes = append(t.Notes, "mctun stats has no group filter: it shows every group; "+g+"'s lines start with "+g+" (mctun stats --json for a program)")
		}
		return t, nil
	case 'S':
		return Translation{Args: []string{"group", "list"}}, nil
	case 'L':
		return Translation{Args: []string{"group", "show", withPort(val)}}, nil
	case 'R':
		return Translation{Args: []string{"run"}, Notes: []string{noteRun}}, nil
	}
	return Translation{Help: true}, nil // -H
}

func translateClient(act byte, val map[byte]string) (Translation, error) {
	switch act {
	case 'A':
		t := Translation{Args: []string{"source", "add", val['i']}}
		_, g := val['g']
		_, s := val['s']
		if g || s {
			t.Notes = append(t.Notes, fmt.Sprintf("%s: no equivalent: mctun's tunnel port is one per host (port in mctun.toml, 4754 unless set), "+
				"and a group arrives on the port the source's application sent it to", portFlags(val)))
		}
		if m, ok := val['m']; ok {
			t.Notes = append(t.Notes, "-m "+m+": mctun delivers every group its sources send; if member.groups in mctun.toml lists groups, add "+m+" there, then mctun reload")
		}
		return t, nil
	case 'D':
		t := Translation{Args: []string{"source", "del", val['i']}}
		if g, ok := val['g']; ok {
			t.Notes = append(t.Notes, "-g "+g+": mctun accepts a source for all its groups at once: this stops every group from "+val['i'])
		}
		return t, nil
	case 'C':
		return Translation{Args: []string{"source", "clear"},
			Notes: []string{"mctun source clear deletes the sources mctun's commands added; those in the config file stay (edit it, then mctun reload)"}}, nil
	case 'P':
		return Translation{Args: []string{"stats"}}, nil
	case 'L':
		return Translation{Args: []string{"source", "list"}}, nil
	case 'R':
		return Translation{Args: []string{"run"}, Notes: []string{noteRun}}, nil
	}
	return Translation{Help: true}, nil // -H
}

// portFlags writes the client's -g and -s as given.
func portFlags(val map[byte]string) string {
	var s []string
	for _, c := range []byte("gs") {
		if v, ok := val[c]; ok {
			s = append(s, "-"+string(c)+" "+v)
		}
	}
	return strings.Join(s, " ")
}

// Usage is prog's help: each of the original's commands, and the mctun command it runs.
func Usage(prog string) string {
	actions, role := serverActions, "server (source host)"
	if prog == ClientAdmin {
		actions, role = clientActions, "client (member host)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the original multicast proxy's %s admin command, run by mctun.\n", prog, role)
	b.WriteString("Each command runs the mctun command that means the same, and prints it on stderr.\n\n")
	for _, a := range actions {
		fmt.Fprintf(&b, "  %s %s\n      %s: %s\n", prog, a.original, a.what, a.mctun)
	}
	b.WriteString("\nmctun --help tells more; mctun import converts the original's JSON config files.\n")
	return b.String()
}
