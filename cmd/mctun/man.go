package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"mctun/config"
)

// The man pages, mctun(8) and mctun.toml(5), are written by the binary itself (mctun __doc;
// make package installs them) from the tables --help prints (commands, subcommands and each
// one's flag set) and from config.Reference, which the README's configuration reference is
// checked against: they cannot drift from either. The roff is written here rather than
// converted from Markdown, so that building the packages needs nothing but Go.

// cmdDoc is the hidden command "mctun __doc FILE", which prints the file the packages install
// under that name: the man pages mctun.8 and mctun.toml.5 (roff), and mctun.toml, the
// commented example config.
func cmdDoc(args []string) int {
	if len(args) != 1 {
		return usagef("usage: mctun __doc mctun.8|mctun.toml.5|mctun.toml")
	}
	m := &roff{w: os.Stdout}
	switch args[0] {
	case "mctun.8":
		writeMan8(m)
	case "mctun.toml.5":
		writeMan5(m)
	case "mctun.toml":
		fmt.Print(config.Example())
	default:
		return usagef("usage: mctun __doc mctun.8|mctun.toml.5|mctun.toml")
	}
	return exitOK
}

// cmdline is one command line mctun documents and completes: a command, or a subcommand of
// group, member or source ("group add").
type cmdline struct {
	name, args, summary string
	flags               []*flag.Flag // without the internal ones
	sub                 bool         // a subcommand
}

// cmdlines lists every command and subcommand, each command followed by its subcommands, as
// usage and the man page show them.
func cmdlines() []cmdline {
	var out []cmdline
	for _, c := range commands {
		out = append(out, cmdline{name: c.name, args: c.args, summary: c.summary, flags: flagsOf(c.name)})
		for _, s := range subcommandsOf(c.name) {
			out = append(out, cmdline{name: s.name, args: s.args, summary: s.summary, flags: flagsOf(s.name), sub: true})
		}
	}
	return out
}

// subcommandsOf returns the subcommands of command name, in usage's order.
func subcommandsOf(name string) []struct{ name, args, summary string } {
	var out []struct{ name, args, summary string }
	for _, s := range subcommands {
		if strings.HasPrefix(s.name, name+" ") {
			out = append(out, s)
		}
	}
	return out
}

// lastSubFlags is the flag set subcommand made last: flagsOf reads a subcommand's flags there.
var lastSubFlags *flag.FlagSet

// flagsOf returns the flags of "mctun NAME" ("up", "group add"), leaving out the internal
// ones, by running the command with --help and its output discarded: every command defines
// its flags and parses them before it does anything else, and --help stops it there.
func flagsOf(name string) []*flag.Flag {
	words := strings.Fields(name)
	for _, c := range commands {
		if c.name != words[0] {
			continue
		}
		fs := flag.NewFlagSet("mctun "+c.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Usage = func() {}
		lastSubFlags = nil
		c.run(fs, append(words[1:], "--help"))
		if len(words) > 1 {
			if lastSubFlags == nil || lastSubFlags.Name() != "mctun "+name {
				return nil
			}
			fs = lastSubFlags
		}
		var flags []*flag.Flag
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.HasPrefix(f.Usage, "(internal)") {
				flags = append(flags, f)
			}
		})
		return flags
	}
	return nil
}

// flagName is how the documentation and completion write a flag: -c, --json.
func flagName(f *flag.Flag) string {
	if len(f.Name) == 1 {
		return "-" + f.Name
	}
	return "--" + f.Name
}

// roff writes man page source. Text given to it is escaped; its methods emit the requests.
type roff struct{ w io.Writer }

// esc escapes text for roff: backslashes, minus signs (so that options copy and paste), and a
// line that would start with a control character.
func esc(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	return s
}

// line writes one line of text, already escaped or made of escapes.
func (m *roff) line(s string) {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	fmt.Fprintln(m.w, s)
}

func (m *roff) req(format string, args ...any) { fmt.Fprintf(m.w, "."+format+"\n", args...) }

// text writes a paragraph's text.
func (m *roff) text(s string) { m.line(esc(s)) }

// markdown writes a Doc of config.Reference: `code` in bold.
func (m *roff) markdown(s string) {
	var b strings.Builder
	for i, span := range config.MarkdownSpans(s) {
		if i%2 == 1 {
			b.WriteString(`\fB` + esc(span) + `\fR`)
		} else {
			b.WriteString(esc(span))
		}
	}
	m.line(b.String())
}

// synopsis writes "mctun NAME ARGS" with the command in bold and the arguments in roman, the
// words in capitals (what the user supplies) in italics.
func synopsis(name, args string) string {
	var b strings.Builder
	b.WriteString(`\fBmctun ` + esc(name) + `\fR`)
	if args != "" {
		b.WriteString(" " + italicizeMetavars(args))
	}
	return b.String()
}

// italicizeMetavars escapes s and sets its words in capitals (FILE, GROUP, IP) in italics.
func italicizeMetavars(s string) string {
	var b strings.Builder
	word := func(w string) {
		if w != "" && strings.ToUpper(w) == w && strings.ContainsAny(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			b.WriteString(`\fI` + esc(w) + `\fR`)
		} else {
			b.WriteString(esc(w))
		}
	}
	start := 0
	for i, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '_') {
			word(s[start:i])
			b.WriteString(esc(string(r)))
			start = i + len(string(r))
		}
	}
	word(s[start:])
	return b.String()
}

// header writes .TH with the version and, for a reproducible page, the date of
// SOURCE_DATE_EPOCH (make package sets it to the commit's); without it, no date.
func (m *roff) header(title, section string) {
	date := ""
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			date = time.Unix(sec, 0).UTC().Format("2006-01-02")
		}
	}
	manual := "System Manager's Manual"
	if section == "5" {
		manual = "File Formats Manual"
	}
	m.req(`TH %s %s "%s" "mctun %s" "%s"`, title, section, date, esc(version), manual)
}

func writeMan8(m *roff) {
	m.header("MCTUN", "8")
	m.req("SH NAME")
	m.line(`mctun, multis_admin, multic_admin \- carry IPv4 multicast across networks that drop it`)
	m.req("SH SYNOPSIS")
	m.line(`\fBmctun\fR \fIcommand\fR [\fIflags\fR] [\fIarguments\fR]`)
	m.req("SH DESCRIPTION")
	m.text("mctun carries IPv4 multicast between hosts of a network that does not (a cloud VPC). " +
		"On a source host it captures each multicast packet the applications send and unicasts it, " +
		"GRE-in-UDP (RFC 8086), to every member host; on each member it checks what arrives and writes it " +
		"into a TUN device (mctun0) whose route for 224.0.0.0/4 lets unmodified applications receive it as " +
		"native multicast.")
	m.req("PP")
	m.text("A host's role, groups, members and sources are in its config file, " + config.DefaultPath +
		" (see mctun.toml(5)); the group, member and source commands change a running instance and keep " +
		"their changes in the managed file next to it. Each network namespace runs its own instance, " +
		"reached through the abstract Unix socket @mctun of that namespace. Anyone may look (status, stats, " +
		"group list and show, source list); changing a running instance or dumping its traffic needs root " +
		"or CAP_NET_ADMIN.")
	m.req("PP")
	m.text("Under systemd, mctun.service runs mctun run: systemctl start, stop and reload mctun; " +
		"journalctl -u mctun shows the log.")
	m.req("PP")
	m.line(`Invoked as \fBmultis_admin\fR or \fBmultic_admin\fR (the packages install both names as symbolic ` +
		`links to mctun), mctun takes the flags of the cloud multicast proxy it replaces, runs the mctun ` +
		`command that means the same, and prints that command.`)

	m.req("SH COMMANDS")
	m.text("Every command takes --help. A flag may be written with one dash or two (-c, --json), " +
		"before or after the arguments of a group, member or source command. GROUP is ADDR or ADDR:PORT; " +
		"the address alone names the group when only one group has it.")
	for _, c := range cmdlines() {
		if c.sub {
			m.req("RS")
		}
		m.req("TP")
		m.line(synopsis(c.name, c.args))
		m.text(capitalize(c.summary) + ".")
		for _, f := range c.flags {
			m.req("RS")
			m.req("TP")
			meta, usage := flag.UnquoteUsage(f)
			l := `\fB` + esc(flagName(f)) + `\fR`
			if meta != "" {
				l += ` \fI` + esc(meta) + `\fR`
			}
			m.line(l)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
				usage += " (default " + f.DefValue + ")"
			}
			m.text(capitalize(usage) + ".")
			m.req("RE")
		}
		if c.sub {
			m.req("RE")
		}
	}

	m.req("SH EXIT STATUS")
	for _, s := range [][2]string{
		{"0", "Done."},
		{"1", "Failed, with the reason on standard error; also: mctun is not running in this network namespace, for the commands that need a running instance."},
		{"2", "Bad command line or config; nothing was changed."},
		{"3", "Not running (status, stats)."},
		{"4", "Imported, but not exactly (import): the config is printed or written all the same, with what could not be carried over."},
	} {
		m.req("TP")
		m.line(`\fB` + s[0] + `\fR`)
		m.text(s[1])
	}

	m.req("SH ENVIRONMENT")
	m.req("TP")
	m.line(`\fBNOTIFY_SOCKET\fR`)
	m.text("Set by systemd for mctun run (Type=notify): mctun reports READY=1 once packets are being " +
		"forwarded, RELOADING=1 during a reload, STOPPING=1 when it stops, and a STATUS line with its " +
		"roles, groups and members.")

	m.req("SH FILES")
	for _, f := range [][2]string{
		{config.DefaultPath, "The config file (mctun.toml(5)); mctun never writes it."},
		{config.ManagedPath(config.DefaultPath), "The groups and sources the group, member and source commands manage."},
		{"/run/mctun/netns-COOKIE/", "The state of the instance of a network namespace: lock (held by the running instance), journal.json (the host changes to undo), mctun.log (the log of an instance started by mctun up)."},
		{"/usr/lib/systemd/system/mctun.service", "The systemd unit."},
	} {
		m.req("TP")
		m.line(`\fI` + esc(f[0]) + `\fR`)
		m.text(f[1])
	}

	m.req("SH EXAMPLES")
	m.text("A source whose members are 192.168.1.1 to 192.168.1.3, and then a look at what it does:")
	m.req("PP")
	m.req("nf")
	m.req("RS 4")
	for _, l := range []string{
		"mctun check",
		"systemctl enable --now mctun",
		"mctun status",
		"mctun group add 224.5.5.5 --port 6000 --member 192.168.1.1,192.168.1.2",
		"mctun dump -w - | tcpdump -n -r -",
	} {
		m.text(l)
	}
	m.req("RE")
	m.req("fi")

	m.req("SH SEE ALSO")
	m.line(`\fBmctun.toml\fR(5), \fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBtcpdump\fR(8), \fBip\fR(8)`)
}

func writeMan5(m *roff) {
	m.header("MCTUN.TOML", "5")
	m.req("SH NAME")
	m.line(`mctun.toml \- configuration of mctun, the IPv4 multicast tunnel`)
	m.req("SH SYNOPSIS")
	m.line(`\fI` + esc(config.DefaultPath) + `\fR`)
	m.req("SH DESCRIPTION")
	m.text("mctun(8) reads one TOML file, " + config.DefaultPath + " unless -c names another. " +
		"Decoding is strict: an unknown key is an error. A file is validated as a whole and refused with " +
		"every problem at once, each with its line; mctun check validates a file and prints it with every " +
		"default filled in. mctun reload (systemctl reload mctun) applies a changed file to the running " +
		"instance; a change only a restart can apply (port, source.interface, member.tun, a role added or " +
		"removed, the secret) is refused and changes nothing.")
	m.req("PP")
	m.text("A host has a [source] table (its applications send multicast), a [member] table (they receive " +
		"it), or both. mctun never writes this file: its group, member and source commands keep their groups " +
		"and sources in the managed file next to it, " + config.ManagedPath(config.DefaultPath) +
		", and mctun runs with the union of both.")

	m.req("SH KEYS")
	for _, k := range config.Reference {
		m.req("TP")
		m.line(`\fB` + esc(k.Name()) + `\fR`)
		m.markdown(strings.TrimSpace(k.Doc + " " + k.DefaultSentence()))
	}

	m.req("SH EXAMPLE")
	m.text("The source host, whose applications send to group 224.1.2.3, port 65535:")
	m.req("PP")
	m.req("nf")
	m.req("RS 4")
	for _, l := range strings.Split(strings.TrimSpace(`
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["192.168.1.1", "192.168.1.2", "192.168.1.3"]`), "\n") {
		m.text(l)
	}
	m.req("RE")
	m.req("fi")
	m.req("PP")
	m.text("Each member host, which accepts tunnel packets from the source, 192.168.1.10:")
	m.req("PP")
	m.req("nf")
	m.req("RS 4")
	m.text("[member]")
	m.text(`sources = ["192.168.1.10"]`)
	m.req("RE")
	m.req("fi")

	m.req("SH FILES")
	m.req("TP")
	m.line(`\fI` + esc(config.DefaultPath) + `\fR`)
	m.text("The config file. The packages install it with every key commented out.")
	m.req("TP")
	m.line(`\fI` + esc(config.ManagedPath(config.DefaultPath)) + `\fR`)
	m.text("The managed file: only [[source.group]] tables and member.sources, written by mctun's commands.")

	m.req("SH SEE ALSO")
	m.line(`\fBmctun\fR(8)`)
}
