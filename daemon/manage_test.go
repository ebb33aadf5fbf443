package daemon

import (
	"errors"
	"os"
	"strings"
	"testing"

	"mctun/config"
)

func TestEditManaged(t *testing.T) {
	const main = `[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.2.2"]
[member]
sources = ["198.18.1.2"]
`
	const managed = `[[source.group]]
address = "224.5.5.5"
port    = 6000
members = ["198.18.2.2", "198.18.3.2"]
[[source.group]]
address = "224.5.5.5"
port    = 7000
members = ["198.18.4.2"]
`
	cfg, _, err := config.Merge("mctun.toml", []byte(main), []byte(managed))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args      EditArgs
		done, err string
		groups    int // managed groups after
	}{
		{EditArgs{Verb: "group add", Group: "224.6.6.6", Members: []string{"198.18.2.2"}}, "added group 224.6.6.6 with 1 member", "", 3},
		{EditArgs{Verb: "group add", Group: "224.5.5.5", Port: "6000", Members: []string{"198.18.4.2"}}, "group 224.5.5.5:6000: added 198.18.4.2:4754", "", 2},
		{EditArgs{Verb: "group add", Group: "224.5.5.5:6000", Members: []string{"198.18.2.2"}}, "", "already has these members", 2},
		{EditArgs{Verb: "group add", Group: "224.6.6.6"}, "", "needs at least one member: --member IP[,IP...] (or source.join_from", 2},
		{EditArgs{Verb: "group add", Group: "10.1.1.1", Members: []string{"198.18.2.2"}}, "", "10.1.1.1 is not a multicast address", 2},
		{EditArgs{Verb: "group add", Group: "224.6.6.6:1", Port: "2", Members: []string{"198.18.2.2"}}, "", "give the port once", 2},
		{EditArgs{Verb: "group add", Group: "224.1.2.3", Port: "65535", Members: []string{"198.18.9.9"}}, "", "is in mctun.toml:2: edit it there", 2},
		{EditArgs{Verb: "member join", Group: "224.5.5.5", Members: []string{"198.18.9.9"}}, "", "names several groups (224.5.5.5:6000, 224.5.5.5:7000)", 2},
		{EditArgs{Verb: "member join", Group: "224.5.5.5:7000", Members: []string{"198.18.9.9:5000"}}, "group 224.5.5.5:7000: added 198.18.9.9:5000", "", 2},
		{EditArgs{Verb: "member join", Group: "224.5.5.5:7000", Members: []string{"255.255.255.255"}}, "", "broadcast", 2},
		{EditArgs{Verb: "member quit", Group: "224.5.5.5:6000", Members: []string{"198.18.3.2"}}, "group 224.5.5.5:6000: removed 1 member", "", 2},
		{EditArgs{Verb: "member quit", Group: "224.5.5.5:7000", Members: []string{"198.18.4.2"}}, "", "without members: mctun group del 224.5.5.5:7000", 2},
		{EditArgs{Verb: "member quit", Group: "224.5.5.5:6000", Members: []string{"198.18.9.9"}}, "", "not a member", 2},
		{EditArgs{Verb: "group del", Group: "224.5.5.5:6000"}, "deleted group 224.5.5.5:6000", "", 1},
		{EditArgs{Verb: "group del", Group: "224.1.2.3"}, "", "is in mctun.toml:2", 2},
		{EditArgs{Verb: "group del", Group: "224.8.8.8"}, "", "no group 224.8.8.8", 2},
		{EditArgs{Verb: "group clear"}, "deleted 2 groups; kept 1 group from mctun.toml (edit it there, then mctun reload)", "", 0},
		{EditArgs{Verb: "source add", Sources: []string{"198.18.5.2"}}, "added source 198.18.5.2", "", 2},
		{EditArgs{Verb: "source add", Sources: []string{"198.18.5.2:99"}}, "", "has a port", 2},
		{EditArgs{Verb: "source del", Sources: []string{"198.18.1.2"}}, "", "source 198.18.1.2 is in mctun.toml:7", 2},
		{EditArgs{Verb: "source del", Sources: []string{"198.18.5.2"}}, "", "is not a source", 2},
	}
	for _, tt := range tests {
		t.Run(tt.args.Verb+" "+tt.args.Group, func(t *testing.T) {
			m, done, err := editManaged(cfg, cfg.Managed(), tt.args)
			switch {
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one saying %q", err, tt.err)
			case tt.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case done != tt.done:
				t.Errorf("done %q, want %q", done, tt.done)
			}
			if tt.err == "" && len(m.Groups) != tt.groups {
				t.Errorf("%d managed groups after, want %d", len(m.Groups), tt.groups)
			}
		})
	}
	if len(cfg.Managed().Groups) != 2 {
		t.Error("editManaged changed the running config's managed groups")
	}
}

// With source.join_from a group may have no members, for hosts to join: group add needs none,
// and member quit may take the last one. The managed file that results is valid.
func TestEditManagedWithJoins(t *testing.T) {
	const main = `[source]
join_from = ["198.18.0.0/15"]
`
	const managed = `[[source.group]]
address = "224.5.5.5"
port    = 6000
members = ["198.18.2.2"]
`
	cfg, _, err := config.Merge("mctun.toml", []byte(main), []byte(managed))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args            EditArgs
		done            string
		groups, members int // in the config that results
	}{
		{EditArgs{Verb: "group add", Group: "224.6.6.6", Port: "5000"}, "added group 224.6.6.6:5000 with no members yet: hosts in source.join_from may join it", 2, 1},
		{EditArgs{Verb: "member quit", Group: "224.5.5.5:6000", Members: []string{"198.18.2.2"}}, "group 224.5.5.5:6000: removed 1 member", 1, 0},
	} {
		m, done, err := editManaged(cfg, cfg.Managed(), tt.args)
		if err != nil || done != tt.done {
			t.Fatalf("%s %s: %q, %v; want %q", tt.args.Verb, tt.args.Group, done, err, tt.done)
		}
		next, _, err := config.Merge("mctun.toml", []byte(main), []byte(m.Format()))
		if err != nil {
			t.Fatalf("%s %s: the managed file it writes:\n%s\n%v", tt.args.Verb, tt.args.Group, m.Format(), err)
		}
		members := 0
		for _, g := range next.Source.Groups {
			members += len(g.Members)
		}
		if len(next.Source.Groups) != tt.groups || members != tt.members {
			t.Errorf("%s %s: %d groups and %d members after, want %d and %d", tt.args.Verb, tt.args.Group, len(next.Source.Groups), members, tt.groups, tt.members)
		}
	}
}

// A command that apply refuses (here, as mctun is stopping) leaves the managed file as it
// was, or absent, so that the next start does not apply it.
func TestEditRefusedKeepsManagedFile(t *testing.T) {
	const main = "[member]\nsources = [\"198.18.1.2\"]\n"
	for _, managed := range []string{"", "[member]\nsources = [\"198.18.5.2\"]\n"} {
		d, path := loadedDaemon(t, main, managed)
		mpath := config.ManagedPath(path)
		if managed != "" {
			os.Chmod(mpath, 0o600)
		}
		close(d.stopping)
		if _, err := d.edit(EditArgs{Verb: "source add", Sources: []string{"198.18.6.2"}}); err == nil || !strings.Contains(err.Error(), "stopping") {
			t.Errorf("source add while mctun stops: %v, want refused", err)
		}
		got, err := os.ReadFile(mpath)
		switch {
		case managed == "" && !errors.Is(err, os.ErrNotExist):
			t.Errorf("after source add refused, %s has %q, %v; want no file", mpath, got, err)
		case managed != "" && string(got) != managed:
			t.Errorf("after source add refused, %s has %q, %v; want %q", mpath, got, err, managed)
		case managed != "":
			if fi, err := os.Stat(mpath); err != nil {
				t.Error(err)
			} else if fi.Mode().Perm() != 0o600 {
				t.Errorf("after source add refused, %s has mode %v, want 0600", mpath, fi.Mode())
			}
		}
		want := 1 // the config file's
		if managed != "" {
			want = 2
		}
		if len(d.cfg.Member.Sources) != want || d.commands.Refused != 1 {
			t.Errorf("after source add refused: sources %v, %d commands refused; want %d sources, 1 refused", d.cfg.Member.Sources, d.commands.Refused, want)
		}
	}
}
