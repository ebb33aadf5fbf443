package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"mctun/config"
)

// capture returns what f writes to standard output and standard error.
func capture(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	defer func() {
		os.Stdout, os.Stderr = stdout, stderr
	}()
	f()
	w.Close()
	os.Stdout, os.Stderr = stdout, stderr
	return string(<-done)
}

func manPage(t *testing.T, section string) string {
	t.Helper()
	var b bytes.Buffer
	m := &roff{w: &b}
	if section == "8" {
		writeMan8(m)
	} else {
		writeMan5(m)
	}
	return b.String()
}

// Every command, subcommand and flag is in mctun(8), under its command, and in the --help it
// belongs to: mctun --help lists every command, mctun NOUN --help every subcommand, and each
// command's --help its flags.
func TestManPageAndHelpListEveryCommandAndFlag(t *testing.T) {
	man := manPage(t, "8")
	top := capture(t, func() { dispatch([]string{"--help"}) })

	lines := cmdlines()
	if len(lines) != len(commands)+len(subcommands) {
		t.Errorf("cmdlines lists %d command lines, want %d commands and %d subcommands", len(lines), len(commands), len(subcommands))
	}
	// The man page's entries, in order: each starts at its synopsis.
	pos := 0
	for i, c := range lines {
		syn := "\n" + synopsis(c.name, c.args) + "\n"
		at := strings.Index(man[pos:], syn)
		if at < 0 {
			t.Errorf("mctun(8) has no entry %q (in order)", syn)
			continue
		}
		pos += at
		entry := man[pos+len(syn):]
		if i+1 < len(lines) {
			if next := strings.Index(entry, "\n"+synopsis(lines[i+1].name, lines[i+1].args)+"\n"); next >= 0 {
				entry = entry[:next]
			}
		} else {
			entry, _, _ = strings.Cut(entry, ".SH ")
		}
		if !strings.Contains(entry, esc(capitalize(c.summary))) {
			t.Errorf("mctun(8), %s: lacks the summary %q", c.name, c.summary)
		}

		help := capture(t, func() { dispatch(append(strings.Fields(c.name), "--help")) })
		if !strings.Contains(help, c.summary) && !strings.Contains(help, capitalize(c.summary)) {
			t.Errorf("mctun %s --help lacks its summary %q:\n%s", c.name, c.summary, help)
		}
		for _, f := range c.flags {
			if !strings.Contains(entry, `\fB`+esc(flagName(f))+`\fR`) {
				t.Errorf("mctun(8), %s: lacks flag %s", c.name, flagName(f))
			}
			if !strings.Contains(help, "  -"+f.Name+" ") && !strings.Contains(help, "  -"+f.Name+"\n") {
				t.Errorf("mctun %s --help lacks flag -%s:\n%s", c.name, f.Name, help)
			}
		}
		if c.sub {
			noun := strings.Fields(c.name)[0]
			nounHelp := capture(t, func() { dispatch([]string{noun, "--help"}) })
			if !strings.Contains(nounHelp, "mctun "+c.name) {
				t.Errorf("mctun %s --help lacks %q:\n%s", noun, c.name, nounHelp)
			}
		} else if !strings.Contains(top, "  "+c.name+" ") {
			t.Errorf("mctun --help lacks command %s:\n%s", c.name, top)
		}
	}
	// flagsOf really finds flags, of commands and subcommands both.
	for name, flag := range map[string]string{"up": "c", "dump": "side", "group add": "port", "source list": "json"} {
		found := false
		for _, f := range flagsOf(name) {
			found = found || f.Name == flag
		}
		if !found {
			t.Errorf("flagsOf(%q) lacks -%s", name, flag)
		}
	}
	for _, f := range flagsOf("run") {
		if f.Name == "notify-fd" {
			t.Error("flagsOf(run) lists the internal -notify-fd")
		}
	}
}

// Every config key is in mctun.toml(5), with its meaning.
func TestManPageListsEveryConfigKey(t *testing.T) {
	man := manPage(t, "5")
	if len(config.Reference) != len(config.Keys()) {
		t.Errorf("config.Reference documents %d keys, the schema has %d (see config's TestReferenceCoversSchema)", len(config.Reference), len(config.Keys()))
	}
	for _, k := range config.Reference {
		entry := ".TP\n" + `\fB` + esc(k.Name()) + `\fR` + "\n"
		i := strings.Index(man, entry)
		if i < 0 {
			t.Errorf("mctun.toml(5) lacks %s", k.Name())
			continue
		}
		first := strings.Fields(config.MarkdownSpans(k.Doc)[0])
		if len(first) > 0 && !strings.Contains(man[i:], esc(first[0])) {
			t.Errorf("mctun.toml(5), %s: lacks its meaning", k.Name())
		}
	}
}

// The pages are roff that man reads without a warning (lintian runs the same check on the
// package).
func TestManPagesFormatCleanly(t *testing.T) {
	if _, err := exec.LookPath("groff"); err != nil {
		t.Skip("groff is not installed")
	}
	for _, section := range []string{"8", "5"} {
		cmd := exec.Command("groff", "-man", "-ww", "-Tutf8", "-z")
		cmd.Stdin = strings.NewReader(manPage(t, section))
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff on the page of section %s: %v\n%s", section, err, out)
		}
	}
}

// esc keeps minus signs minus signs and backslashes backslashes, and a line never starts
// with a request by accident.
func TestRoffEscapes(t *testing.T) {
	if got := esc(`-c \n`); got != `\-c \en` {
		t.Errorf("esc = %q", got)
	}
	var b bytes.Buffer
	(&roff{w: &b}).text(".not a request")
	if b.String() != `\&.not a request`+"\n" {
		t.Errorf("text = %q", b.String())
	}
	if got := italicizeMetavars("GROUP [--port P]"); got != `\fIGROUP\fR [\-\-port \fIP\fR]` {
		t.Errorf("italicizeMetavars = %q", got)
	}
}
