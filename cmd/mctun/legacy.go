package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"mctun/config"
	"mctun/control"
	"mctun/daemon"
	"mctun/internal/atomicfile"
	"mctun/internal/words"
	"mctun/legacy"
)

// Moving from the original multicast proxy: mctun import converts its JSON files, and mctun
// invoked as multis_admin or multic_admin runs the mctun command each of its admin commands
// means.

// exitInexact is mctun import's status when it imported the files but could not carry
// everything over exactly: the config was printed or written, and stderr lists the rest.
const exitInexact = 4

const importHelp = `
Reads the original multicast proxy's server file (multi_group_array) and client files
(multi_server_info_array) of one host, recognising each by its content, and prints the
mctun config that does what they did. A header names the files; every group and source
says where it came from. Nothing is written unless -w names a file.

Everything that cannot be carried over exactly (a member address the original accepted
but is not a host, a member listed twice, port 0, a server_port that differs from its
group_port, fields mctun has no equivalent for, ...) is listed on stderr with the reason.

Exit status: 0 imported exactly; 4 imported, but not exactly: read the list on stderr
(the config is printed or written all the same); 1 failed (a file cannot be read or
written, or -w FILE exists without --force), nothing written; 2 bad command line, or a
file that is not one of the original's, nothing printed.
`

func cmdImport(fs *flag.FlagSet, args []string) int {
	out := fs.String("w", "", "write the config to `FILE` (aside, then renamed into place) instead of printing it")
	force := fs.Bool("force", false, "with -w: replace FILE if it exists")
	base := fs.Usage
	fs.Usage = func() { base(); fmt.Fprint(fs.Output(), importHelp) }
	if code, ok := parseN(fs, reorder(fs, args), 1, -1); !ok {
		return code
	}
	if *force && *out == "" {
		fmt.Fprintln(os.Stderr, "mctun import: --force goes with -w FILE")
		return exitUsage
	}
	return importFiles(fs.Args(), *out, *force, os.Stdout, os.Stderr)
}

// importFiles is mctun import: it reads the files, and prints the config to stdout or writes
// it to out.
func importFiles(names []string, out string, force bool, stdout, stderr io.Writer) int {
	var files []legacy.File
	for _, name := range names {
		data, err := readFile(name)
		if err != nil {
			fmt.Fprintf(stderr, "mctun import: %v\n", err)
			return exitFailed
		}
		files = append(files, legacy.File{Name: name, Data: data})
	}
	res, err := legacy.Import(files)
	var cerr *config.Error
	switch {
	case errors.As(err, &cerr):
		fmt.Fprintln(stderr, "mctun import: not the original tool's config, nothing was imported:")
		for _, p := range cerr.Problems {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "mctun import: %v\n", err)
		return exitFailed
	}
	text := res.TOML()
	if out == "" {
		fmt.Fprint(stdout, text)
	} else if code := writeImported(out, text, force, stdout, stderr); code != exitOK {
		return code
	}
	if len(res.Problems) == 0 {
		return exitOK
	}
	fmt.Fprintf(stderr, "mctun import: not carried over exactly (%s):\n", words.Plural(len(res.Problems), "problem"))
	for _, p := range res.Problems {
		fmt.Fprintf(stderr, "  %s\n", p)
	}
	return exitInexact
}

// readFile reads one of the original's files, refusing one too large to be one.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, legacy.MaxFileSize+1)) // Import says it is too large
}

// writeImported writes the imported config to path, which must not exist unless force, once
// it is valid together with the managed file next to path, if there is one.
func writeImported(path, text string, force bool, stdout, stderr io.Writer) int {
	if _, err := os.Lstat(path); err == nil && !force {
		fmt.Fprintf(stderr, "mctun import: %s exists; nothing was written (--force replaces it)\n", path)
		return exitFailed
	}
	managed, err := os.ReadFile(config.ManagedPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		managed = nil
	} else if err != nil {
		fmt.Fprintf(stderr, "mctun import: %v\n", err)
		return exitFailed
	}
	if _, _, err := config.Merge(path, []byte(text), managed); err != nil {
		fmt.Fprintf(stderr, "mctun import: %s would not be valid with %s next to it; nothing was written:\n%s\n",
			path, config.ManagedPath(path), indent(err.Error()))
		return exitFailed
	}
	if err := atomicfile.WriteFile(path, []byte(text), 0o644); err != nil {
		fmt.Fprintf(stderr, "mctun import: write %s: %v\n", path, err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "mctun: wrote %s (mctun check -c %s shows it with every default)\n", path, path)
	return exitOK
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// adminName returns the original's admin command that argv0 names, or "".
func adminName(argv0 string) string {
	switch name := filepath.Base(argv0); name {
	case legacy.ServerAdmin, legacy.ClientAdmin:
		return name
	}
	return ""
}

// runAdmin is mctun invoked as multis_admin or multic_admin: it runs the mctun command that
// means what args mean to the original, and says on stderr which, so that operators learn
// mctun's commands.
func runAdmin(prog string, args []string) int {
	t, err := legacy.Translate(prog, args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n(%s -H lists the commands and what mctun runs for each)\n", prog, err, prog)
		return exitUsage
	}
	if t.Help {
		fmt.Print(legacy.Usage(prog))
		return exitOK
	}
	original := shellJoin(append([]string{prog}, args...))
	if len(t.Args) == 3 && t.Args[0] == "source" && t.Args[1] == "add" && isSource(t.Args[2]) {
		// The original added a server once per group; mctun accepts a source for all of them.
		fmt.Fprintf(os.Stderr, "%s: %s is a source already (mctun source list); nothing to run\n", original, t.Args[2])
		printNotes(prog, t.Notes)
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "%s: running: mctun %s\n", original, shellJoin(t.Args))
	printNotes(prog, t.Notes)
	return dispatch(t.Args)
}

func printNotes(prog string, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(os.Stderr, "%s: note: %s\n", prog, n)
	}
}

// isSource reports whether the running instance accepts tunnel packets from addr already.
func isSource(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false // source add says what is wrong with it
	}
	var l daemon.Listing
	if control.Call(control.SocketName, "listing", nil, &l) != nil {
		return false
	}
	for _, s := range l.Sources {
		if s.Address == a.String() {
			return true
		}
	}
	return false
}

// shellJoin writes args as a shell would need them typed.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "" || strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.,:/=@%+", r))
		}) {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
