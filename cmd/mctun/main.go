// Command mctun carries IPv4 multicast across networks that drop it.
//
// On a source host it captures outgoing multicast and sends each packet, GRE-in-UDP, to every
// member; on a member it turns what arrives back into native multicast through a TUN device.
// See mctun --help.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"mctun/config"
	"mctun/control"
	"mctun/daemon"
	"mctun/encap"
	"mctun/internal/words"
)

// version is stamped at build time: -ldflags "-X main.version=$(git describe --always --dirty)".
var version = "dev"

// Exit statuses.
const (
	exitOK         = 0
	exitFailed     = 1
	exitUsage      = 2 // bad command line or config
	exitNotRunning = 3 // status: no instance (as LSB init scripts say)
)

type command struct {
	name, args, summary string
	run                 func(fs *flag.FlagSet, args []string) int
}

var commands []command

func init() {
	commands = []command{
		{"up", "[-c FILE]", "check the config, set up the host and start forwarding in the background", cmdUp},
		{"down", "", "stop forwarding and undo every change up made to the host", cmdDown},
		{"run", "[-c FILE]", "forward in the foreground (for systemd); SIGINT/SIGTERM stop and undo, SIGHUP reloads", cmdRun},
		{"reload", "", "load the config again and apply what changed, without losing a packet", cmdReload},
		{"status", "[--json]", "show whether mctun runs here, its groups, members, sources and counters", cmdStatus},
		{"stats", "[--json]", "show every counter: per group and member, per source and group, drops by reason", cmdStats},
		{"group", "add|del|clear|list|show ...", "manage the groups this source sends (mctun group --help)", cmdGroup},
		{"member", "join|quit GROUP IP[,IP...]", "add members to a group or remove them", cmdMember},
		{"source", "add|del|clear|list ...", "manage the sources this member accepts (mctun source --help)", cmdSource},
		{"dump", "[-w FILE|-] [-c COUNT] [--group G] [--duration D]", "write the tunnelled traffic as pcap, while forwarding goes on", cmdDump},
		{"check", "[-c FILE]", "validate the config and print it with every default filled in", cmdCheck},
		{"import", "[-w FILE [--force]] FILE...", "convert the original multicast proxy's server and client JSON files into an mctun config", cmdImport},
		{"version", "", "print the version", cmdVersion},
		{"completion", "bash|zsh|fish", "print the shell completion script for bash, zsh or fish", cmdCompletion},
	}
}

// subcommands are the verbs of group, member and source, as usage lists them.
var subcommands = []struct{ name, args, summary string }{
	{"group add", "GROUP [--port P] [--member IP[,IP...]]", "create a group, or add members to it"},
	{"group del", "GROUP", "delete a group"},
	{"group clear", "", "delete every group the commands added"},
	{"group list", "[--json]", "list the groups with their member counts and where each is defined"},
	{"group show", "GROUP [--json]", "list a group's members"},
	{"member join", "GROUP IP[,IP...]", "add members to a group"},
	{"member quit", "GROUP IP[,IP...]", "remove members from a group"},
	{"source add", "IP", "accept tunnel packets from IP"},
	{"source del", "IP", "stop accepting tunnel packets from IP"},
	{"source clear", "", "delete every source the commands added"},
	{"source list", "[--json]", "list the sources and where each is defined"},
}

// usageOf is the usage line of a subcommand.
func usageOf(name string) string {
	for _, c := range subcommands {
		if c.name == name {
			return fmt.Sprintf("mctun %s %s\n\n%s.", c.name, c.args, capitalize(c.summary))
		}
	}
	return "mctun " + name
}

func main() {
	// Invoked as the original's admin commands (links the packages install): run what
	// their flags mean.
	if prog := adminName(os.Args[0]); prog != "" {
		os.Exit(runAdmin(prog, os.Args[1:]))
	}
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] { // hidden: for the packages and the completion scripts
	case "__doc":
		return cmdDoc(args[1:])
	case "__complete":
		return cmdComplete(args[1:])
	}
	for _, c := range commands {
		if c.name == args[0] {
			fs := flag.NewFlagSet("mctun "+c.name, flag.ContinueOnError)
			fs.Usage = func() {
				fmt.Fprintf(fs.Output(), "usage: mctun %s %s\n\n%s.\n", c.name, c.args, capitalize(c.summary))
				for _, sub := range subcommands {
					if strings.HasPrefix(sub.name, c.name+" ") {
						fmt.Fprintf(fs.Output(), "  mctun %-12s %-40s %s\n", sub.name, sub.args, sub.summary)
					}
				}
				printFlags(fs)
			}
			return c.run(fs, args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "mctun: unknown command %q\n\n", args[0])
	usage(os.Stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "mctun carries IPv4 multicast across networks that drop it, as GRE-in-UDP unicast.")
	fmt.Fprintln(w, "\nusage: mctun COMMAND [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nThe config is %s unless -c names another. The group, member and source commands\n", config.DefaultPath)
	fmt.Fprintln(w, "write their changes to the managed file next to it, never to the config itself.")
	fmt.Fprintln(w, "mctun COMMAND --help tells more.")
}

// parse parses a command's flags; it returns false with the exit status when the command
// should stop (--help, a bad flag, stray arguments).
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, false
	}
	return 0, true
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", config.DefaultPath, "config `FILE`")
}

func cmdVersion(fs *flag.FlagSet, args []string) int {
	if code, ok := parse(fs, args); !ok {
		return code
	}
	fmt.Printf("mctun %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

func cmdCheck(fs *flag.FlagSet, args []string) int {
	path := configFlag(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	cfg, ok := loadConfig("mctun check", *path)
	if !ok {
		return exitUsage
	}
	if cfg.SecretFile != "" {
		secret, err := config.ReadSecret(cfg.SecretFile)
		if err == nil {
			_, err = encap.NewAuth(secret, cfg.Key)
		}
		if err != nil {
			return usagef("mctun check: %v", err)
		}
	}
	fmt.Printf("# %s: valid; with every default filled in:\n%s", cfg.Path, cfg.Format())
	return exitOK
}

// loadConfig loads and validates the config, printing warnings and every problem.
func loadConfig(cmd, path string) (*config.Config, bool) {
	cfg, warnings, err := config.Load(path)
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "%s: warning: %s\n", cmd, w)
	}
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fmt.Fprintf(os.Stderr, "%s: %s is not valid, nothing was changed:\n", cmd, path)
			for _, p := range cerr.Problems {
				fmt.Fprintf(os.Stderr, "  %s\n", p)
			}
		} else {
			fmt.Fprintf(os.Stderr, "%s: %v\n", cmd, err)
		}
		return nil, false
	}
	return cfg, true
}

func cmdRun(fs *flag.FlagSet, args []string) int {
	path := configFlag(fs)
	notifyFD := fs.Int("notify-fd", -1, "(internal) report readiness to mctun up on this `fd`")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	opts := daemon.Options{Version: version}
	if *notifyFD >= 0 {
		opts.Notify = os.NewFile(uintptr(*notifyFD), "notify")
	}
	if !privileged() {
		daemon.NotifyUp(opts.Notify, errNotPrivileged)
		return failf("mctun run: %s", errNotPrivileged)
	}
	return daemon.Run(*path, opts)
}

func cmdUp(fs *flag.FlagSet, args []string) int {
	path := configFlag(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !privileged() {
		return failf("mctun up: %s", errNotPrivileged)
	}
	if _, ok := loadConfig("mctun up", *path); !ok {
		return exitUsage
	}
	state, err := daemon.CurrentState()
	if err != nil {
		return failf("mctun up: %v", err)
	}
	if pid, held := state.Holder(); held {
		return failf("mctun up: mctun is already running in this network namespace (pid %d): mctun down first", pid)
	}
	abs, err := filepath.Abs(*path)
	if err != nil {
		return failf("mctun up: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		return failf("mctun up: %v", err)
	}
	logf, err := state.OpenLog()
	if err != nil {
		return failf("mctun up: %v", err)
	}
	defer logf.Close()
	ready, notify, err := os.Pipe()
	if err != nil {
		return failf("mctun up: %v", err)
	}
	defer ready.Close()

	cmd := exec.Command(self, "run", "-c", abs, "-notify-fd", "3")
	cmd.ExtraFiles = []*os.File{notify}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlive this shell
	// The daemon up starts answers up, not systemd: a unit whose ExecStart runs mctun up
	// would otherwise have it report READY for a process systemd does not know.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "NOTIFY_SOCKET=") })
	if err := cmd.Start(); err != nil {
		return failf("mctun up: start the daemon: %v", err)
	}
	notify.Close()

	// The daemon answers once it forwards, or says why it cannot.
	ready.SetReadDeadline(time.Now().Add(30 * time.Second))
	var msg daemon.UpNotice
	line, rerr := bufio.NewReader(ready).ReadBytes('\n')
	if rerr == nil {
		rerr = json.Unmarshal(line, &msg)
	}
	switch {
	case rerr == nil && msg.Status == "ready":
		fmt.Printf("mctun: up, forwarding (pid %d, log %s)\n", cmd.Process.Pid, state.LogPath())
		cmd.Process.Release()
		return exitOK
	case rerr == nil && msg.Leftover:
		cmd.Wait()
		return failf("mctun up: %s\n(not every change to the host could be undone: mctun down tries again; log: %s)", msg.Error, state.LogPath())
	case rerr == nil:
		cmd.Wait()
		return failf("mctun up: %s\n(the host is unchanged; log: %s)", msg.Error, state.LogPath())
	case errors.Is(rerr, os.ErrDeadlineExceeded):
		how := stopUnready(cmd, unreadyStopWait, state.UndoLeftovers)
		return failf("mctun up: the daemon was not ready within 30s: %s; log: %s", how, state.LogPath())
	default:
		err := cmd.Wait()
		left := "the host is unchanged"
		if state.Leftover() { // undone by the next up or down, which can tell a TUN to keep
			left = "it left changes to the host: mctun down undoes them"
		}
		return failf("mctun up: the daemon ended before it was ready (%v); %s; log: %s", err, left, state.LogPath())
	}
}

// unreadyStopWait is how long up gives a daemon that was not ready in time to stop on
// SIGTERM: the time its start may still take, and then its stop, as for mctun down.
const unreadyStopWait = 20 * time.Second

// stopUnready stops the daemon cmd runs, which was not ready in time, and says how that
// ended. SIGTERM first: the daemon's start finishes or fails, and its stop undoes the host
// changes. SIGKILL only when it has not ended within wait; what it changed is then in the
// journal, and undo (State.UndoLeftovers) undoes it, as it does anything the stop could not.
func stopUnready(cmd *exec.Cmd, wait time.Duration, undo func() (bool, error)) string {
	ended := make(chan struct{})
	go func() {
		cmd.Wait()
		close(ended)
	}()
	how := "stopped it"
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ended:
	case <-time.After(wait):
		cmd.Process.Kill()
		<-ended
		how = fmt.Sprintf("it did not stop within %v of SIGTERM and was killed", wait)
	}
	_, err := undo()
	var locked *daemon.LockedError
	switch {
	case errors.As(err, &locked):
		return fmt.Sprintf("%s; %v", how, err)
	case err != nil:
		return fmt.Sprintf("%s, but not every change to the host could be undone (%v): mctun down tries again", how, err)
	}
	return how + "; the host is restored"
}

func cmdDown(fs *flag.FlagSet, args []string) int {
	configFlag(fs) // accepted for symmetry with up; down undoes what the running instance did
	if code, ok := parse(fs, args); !ok {
		return code
	}
	state, err := daemon.CurrentState()
	if err != nil {
		return failf("mctun down: %v", err)
	}
	err = control.Call(control.SocketName, "shutdown", nil, nil)
	switch {
	case err == nil:
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, held := state.Holder(); !held {
				break
			}
			if time.Now().After(deadline) {
				return failf("mctun down: mctun did not stop within 20s; see %s", state.LogPath())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if state.Leftover() {
			return failf("mctun down: mctun stopped but could not undo every change; see %s and run mctun down again", state.LogPath())
		}
		fmt.Println("mctun: down, host restored")
		return exitOK
	case !errors.Is(err, control.ErrNotRunning):
		return failf("mctun down: %v", err)
	}
	// Nothing answers. A crashed instance may have left changes behind: undo them.
	undone, err := state.UndoLeftovers()
	var locked *daemon.LockedError
	switch {
	case errors.As(err, &locked):
		return failf("mctun down: mctun (pid %d) holds this namespace but does not answer", locked.PID)
	case err != nil:
		return failf("mctun down: %v", err)
	case !undone:
		fmt.Println("mctun: not running, nothing to undo")
	default:
		fmt.Println("mctun: not running; undid the changes an instance that did not stop cleanly left behind")
	}
	return exitOK
}

func cmdReload(fs *flag.FlagSet, args []string) int {
	configFlag(fs) // the running instance reloads the files it was started with
	if code, ok := parse(fs, args); !ok {
		return code
	}
	var changes []string
	if err := control.Call(control.SocketName, "reload", nil, &changes); err != nil {
		return failf("mctun reload: %v", err)
	}
	if len(changes) == 0 {
		fmt.Println("mctun: reloaded, nothing changed")
		return exitOK
	}
	fmt.Printf("mctun: reloaded, %s:\n", words.Plural(len(changes), "change"))
	for _, c := range changes {
		fmt.Printf("  %s\n", c)
	}
	return exitOK
}

// fetchStatus asks the running instance for its status, or with op "stats" for every counter.
func fetchStatus(op string) (daemon.Status, error) {
	var st daemon.Status
	if op == "status" {
		return st, control.Call(control.SocketName, op, nil, &st)
	}
	r, err := control.CallStream(control.SocketName, op, nil)
	if err != nil {
		return st, err
	}
	defer r.Close()
	return daemon.ReadStats(r)
}

func cmdStats(fs *flag.FlagSet, args []string) int {
	return showStatus(fs, args, "stats", printStats)
}

func cmdStatus(fs *flag.FlagSet, args []string) int {
	return showStatus(fs, args, "status", printStatus)
}

// showStatus fetches the running instance's daemon.Status (op "status": the summary; "stats": every
// counter) and prints it as JSON or with print.
func showStatus(fs *flag.FlagSet, args []string, op string, print func(io.Writer, daemon.Status)) int {
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	st, err := fetchStatus(op)
	if errors.Is(err, control.ErrNotRunning) {
		fmt.Println("mctun: not running in this network namespace")
		if state, err := daemon.CurrentState(); err == nil && state.Leftover() {
			fmt.Println("a previous instance did not stop cleanly; mctun down (or up) undoes what it left")
		}
		return exitNotRunning
	}
	if err != nil {
		return failf("%s: %v", fs.Name(), err)
	}
	if *asJSON {
		return printJSON(st)
	}
	print(os.Stdout, st)
	return exitOK
}

var errNotPrivileged = errors.New("needs root (or CAP_NET_ADMIN and CAP_NET_RAW): it creates a TUN device, routes and a packet capture")

// privileged reports whether this process may set up the host.
func privileged() bool { return os.Geteuid() == 0 || control.HasNetAdmin(os.Getpid(), os.Geteuid()) }

func failf(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	return exitFailed
}

// printFlags lists a command's flags, leaving out the internal ones (marked "(internal)").
func printFlags(fs *flag.FlagSet) {
	header := "\nflags:"
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, "(internal)") {
			return
		}
		if header != "" {
			fmt.Fprintln(fs.Output(), header)
			header = ""
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(fs.Output(), "  -%s %s\n    \t%s", f.Name, name, usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(fs.Output(), " (default %s)", f.DefValue)
		}
		fmt.Fprintln(fs.Output())
	})
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
