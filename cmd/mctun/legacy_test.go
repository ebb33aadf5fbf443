package main

import (
	"slices"
	"strings"
	"testing"

	"mctun/legacy"
)

// Every command an admin command of the original translates to is one of mctun's.
func TestAdminRunsMctunCommands(t *testing.T) {
	for _, c := range []struct{ prog, args string }{
		{legacy.ServerAdmin, "-A -m 224.1.2.3 -j 192.168.1.1 -p 65535"},
		{legacy.ServerAdmin, "-A -m 224.1.2.3 -j 192.168.1.1"},
		{legacy.ServerAdmin, "-A -m 224.1.2.3 -q 192.168.1.1"},
		{legacy.ServerAdmin, "-D -m 224.1.2.3"},
		{legacy.ServerAdmin, "-C"},
		{legacy.ServerAdmin, "-P -m 224.1.2.3"},
		{legacy.ServerAdmin, "-S"},
		{legacy.ServerAdmin, "-L -m 224.1.2.3"},
		{legacy.ServerAdmin, "-R"},
		{legacy.ClientAdmin, "-A -i 192.168.1.10 -g 1 -s 1 -m 224.1.2.3"},
		{legacy.ClientAdmin, "-D -i 192.168.1.10 -g 1"},
		{legacy.ClientAdmin, "-C"},
		{legacy.ClientAdmin, "-P"},
		{legacy.ClientAdmin, "-L"},
		{legacy.ClientAdmin, "-R"},
	} {
		tr, err := legacy.Translate(c.prog, strings.Fields(c.args))
		if err != nil {
			t.Fatalf("%s %s: %v", c.prog, c.args, err)
		}
		a := tr.Args
		if !slices.ContainsFunc(commands, func(cmd command) bool { return cmd.name == a[0] }) {
			t.Errorf("%s %s runs mctun %s: no such command", c.prog, c.args, a[0])
		}
		if !slices.Contains([]string{"group", "member", "source"}, a[0]) {
			continue
		}
		if !slices.ContainsFunc(subcommands, func(s struct{ name, args, summary string }) bool { return s.name == a[0]+" "+a[1] }) {
			t.Errorf("%s %s runs mctun %s %s: no such command", c.prog, c.args, a[0], a[1])
		}
	}
}

func TestAdminName(t *testing.T) {
	for argv0, want := range map[string]string{
		"/usr/sbin/multis_admin": "multis_admin", "multic_admin": "multic_admin", "./multis_admin": "multis_admin",
		"/usr/sbin/mctun": "", "multis": "", "multis_admin.sh": "",
	} {
		if got := adminName(argv0); got != want {
			t.Errorf("adminName(%q) = %q, want %q", argv0, got, want)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"multis_admin", "-A", "-m", "224.1.2.3", "-j", "1.1.1.1,1.1.1.2", "", "a b", "it's"})
	want := `multis_admin -A -m 224.1.2.3 -j 1.1.1.1,1.1.1.2 '' 'a b' 'it'\''s'`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}
