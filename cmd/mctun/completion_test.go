package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mctun/daemon"
)

func TestComplete(t *testing.T) {
	running := func() (daemon.Listing, bool) {
		return daemon.Listing{
			Source: true, Member: true,
			Groups: []daemon.GroupInfo{
				{Group: "224.1.2.3:65535", Address: "224.1.2.3", Port: 65535, Members: []string{"198.18.2.2:4754", "198.18.3.2:4754"}},
				{Group: "224.0.0.18", Address: "224.0.0.18", Members: []string{"198.18.9.9:4754"}},
			},
			Sources: []daemon.SourceInfo{{Address: "198.18.1.2"}, {Address: "198.18.1.3"}},
		}, true
	}
	notRunning := func() (daemon.Listing, bool) { return daemon.Listing{}, false }
	groups := []string{"224.1.2.3:65535", "224.0.0.18"}

	for _, tc := range []struct {
		words   string // split at |; the last is the word being completed
		listing func() (daemon.Listing, bool)
		want    []string
		files   bool
	}{
		{words: "gr", want: []string{"group"}},
		{words: "s", want: []string{"status", "stats", "source"}},
		{words: "", want: append(commandNames(), "--help")},
		{words: "group|", want: []string{"add", "del", "clear", "list", "show", "--help"}},
		{words: "source|d", want: []string{"del"}},
		{words: "group|show|", listing: running, want: groups},
		{words: "group|show|224.1", listing: running, want: groups[:1]},
		{words: "group|show|", listing: notRunning},
		{words: "group|show|-", want: []string{"--json", "--help"}},
		{words: "group|show|224.1.2.3:65535|", listing: running},
		{words: "group|add|224.5.5.5|--p", want: []string{"--port"}},
		{words: "group|add|--port|", listing: running},
		{words: "member|quit|224.1.2.3:65535|", listing: running, want: []string{"198.18.2.2:4754", "198.18.3.2:4754"}},
		{words: "member|join|", listing: running, want: groups},
		{words: "source|del|", listing: running, want: []string{"198.18.1.2", "198.18.1.3"}},
		{words: "up|-c|", files: true},
		{words: "up|-c=x|-", want: []string{"-c", "--help"}},
		{words: "run|-", want: []string{"-c", "--help"}},
		{words: "dump|--side|", want: []string{"sender", "receiver", "both"}},
		{words: "dump|--group|", listing: running, want: groups},
		{words: "dump|-w|", files: true},
		{words: "dump|-c|"},
		{words: "stats|--j", want: []string{"--json"}},
		{words: "stats|-j", want: []string{"--json"}},
		{words: "completion|", want: []string{"bash", "zsh", "fish"}},
		{words: "import|", files: true},
		{words: "import|-w|", files: true},
		{words: "nosuch|"},
	} {
		listing := tc.listing
		if listing == nil {
			listing = func() (daemon.Listing, bool) {
				t.Errorf("%q: asked the running instance", tc.words)
				return daemon.Listing{}, false
			}
		}
		got, files := complete(strings.Split(tc.words, "|"), listing)
		if !slices.Equal(got, tc.want) || files != tc.files {
			t.Errorf("complete %q = %q, files %t; want %q, files %t", tc.words, got, files, tc.want, tc.files)
		}
	}
}

func commandNames() []string {
	var out []string
	for _, c := range commands {
		out = append(out, c.name)
	}
	return out
}

// Each shell accepts its script (those shells that are installed; CI installs all three).
// test/completion_test.go runs them against a running instance.
func TestCompletionScriptsParse(t *testing.T) {
	dir := t.TempDir()
	for shell, check := range map[string][]string{
		"bash": {"-n"},
		"zsh":  {"-n"},
		"fish": {"--no-execute"},
	} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Skipf("%s is not installed", shell)
			}
			script := filepath.Join(dir, shell)
			out := capture(t, func() { dispatch([]string{"completion", shell}) })
			if !strings.Contains(out, "__complete") {
				t.Fatalf("mctun completion %s:\n%s", shell, out)
			}
			if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(shell, append(check, script)...).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("%s %v: %v\n%s", shell, check, err, out)
			}
		})
	}
	var code int
	capture(t, func() { code = dispatch([]string{"completion", "tcsh"}) })
	if code != exitUsage {
		t.Errorf("mctun completion tcsh: exit %d, want %d", code, exitUsage)
	}
}
