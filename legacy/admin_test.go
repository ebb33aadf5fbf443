package legacy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestTranslate(t *testing.T) {
	tests := []struct {
		prog string
		args string
		want string // mctun's arguments, "help" for -H
		note string // in a note, when there must be one
	}{
		// The server, multis_admin.
		{ServerAdmin, "-A -m 224.1.2.3 -j 192.168.1.1,192.168.1.2,192.168.1.3 -p 65535", "group add 224.1.2.3 --port 65535 --member 192.168.1.1,192.168.1.2,192.168.1.3", ""},
		{ServerAdmin, "-A -m 224.1.2.3 -p 65535 -j 192.168.1.4", "group add 224.1.2.3 --port 65535 --member 192.168.1.4", ""},
		{ServerAdmin, "-Am224.1.2.3 -j192.168.1.4 -p65535", "group add 224.1.2.3 --port 65535 --member 192.168.1.4", ""},
		{ServerAdmin, "-A -m 224.1.2.3 -j 192.168.1.4", "member join 224.1.2.3 192.168.1.4", "give its port"},
		{ServerAdmin, "-A -m 224.1.2.3 -q 192.168.1.1,192.168.1.2", "member quit 224.1.2.3 192.168.1.1,192.168.1.2", ""},
		{ServerAdmin, "-A -m 224.1.2.3 -q 192.168.1.1 -p 65535", "member quit 224.1.2.3:65535 192.168.1.1", ""},
		{ServerAdmin, "-D -m 224.1.2.3", "group del 224.1.2.3", ""},
		{ServerAdmin, "-D -m 224.1.2.3 -p 6000", "group del 224.1.2.3:6000", ""},
		{ServerAdmin, "-C", "group clear", "config file stay"},
		{ServerAdmin, "-P", "stats", ""},
		{ServerAdmin, "-P -m 224.1.2.3", "stats", "no group filter"},
		{ServerAdmin, "-S", "group list", ""},
		{ServerAdmin, "-L -m 224.1.2.3", "group show 224.1.2.3", ""},
		{ServerAdmin, "-R", "run", "systemd"},
		{ServerAdmin, "-H", "help", ""},
		{ServerAdmin, "-H -m 224.1.2.3", "help", ""},
		// A client, multic_admin.
		{ClientAdmin, "-A -i 192.168.1.10 -g 65535 -s 65535 -m 224.1.2.3", "source add 192.168.1.10", "tunnel port is one per host"},
		{ClientAdmin, "-A -i 192.168.1.10", "source add 192.168.1.10", ""},
		{ClientAdmin, "-A -i 192.168.1.10 -m 224.1.2.3", "source add 192.168.1.10", "member.groups"},
		{ClientAdmin, "-D -i 192.168.1.10 -g 65535", "source del 192.168.1.10", "stops every group from 192.168.1.10"},
		{ClientAdmin, "-C", "source clear", "config file stay"},
		{ClientAdmin, "-P", "stats", ""},
		{ClientAdmin, "-L", "source list", ""},
		{ClientAdmin, "-R", "run", "systemd"},
		{ClientAdmin, "-H", "help", ""},
	}
	for _, tt := range tests {
		t.Run(tt.prog+" "+tt.args, func(t *testing.T) {
			tr, err := Translate(tt.prog, strings.Fields(tt.args))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(tr.Args, " ")
			if tr.Help {
				got = "help"
			}
			if got != tt.want {
				t.Errorf("mctun %s, want mctun %s", got, tt.want)
			}
			notes := strings.Join(tr.Notes, "\n")
			if tt.note != "" && !strings.Contains(notes, tt.note) {
				t.Errorf("notes %q, want one saying %q", notes, tt.note)
			}
			if tt.note == "" && notes != "" {
				t.Errorf("notes %q, want none", notes)
			}
		})
	}
}

func TestTranslateBadFlags(t *testing.T) {
	tests := []struct{ prog, args, want string }{
		{ServerAdmin, "", "say what to do: one of -A -D -C -P -S -L -R -H"},
		{ClientAdmin, "", "say what to do: one of -A -D -C -P -L -R -H"},
		{ServerAdmin, "-X", "unknown flag -X"},
		{ServerAdmin, "-S -Y", "unknown flag -Y"},
		{ClientAdmin, "-S", "unknown flag -S"},
		{ServerAdmin, "-A -D -m 224.1.2.3", "-A and -D: give one action"},
		{ServerAdmin, "-A -m", "-m needs a value"},
		{ServerAdmin, "-A -j 192.168.1.1 -p 5", "-A needs -m GROUP"},
		{ServerAdmin, "-A -m 224.1.2.3", "needs -j IP[,IP...]"},
		{ServerAdmin, "-A -m 224.1.2.3 -j 192.168.1.1 -q 192.168.1.2", "not both"},
		{ServerAdmin, "-D", "-D needs -m GROUP"},
		{ServerAdmin, "-L", "-L needs -m GROUP"},
		{ServerAdmin, "-D -m 224.1.2.3 -j 192.168.1.1", "-j does not go with -D"},
		{ServerAdmin, "-C -m 224.1.2.3", "-m does not go with -C"},
		{ServerAdmin, "-A -m 224.1.2.3 -m 224.1.2.4 -j 192.168.1.1", "-m is given twice"},
		{ServerAdmin, "-S extra", `unexpected argument "extra"`},
		{ServerAdmin, "--help", `unexpected argument "--help"`},
		{ServerAdmin, "-S -- extra", `unexpected argument "extra"`},
		{ClientAdmin, "-A -g 65535", "-A needs -i SERVER_IP"},
		{ClientAdmin, "-D -i 192.168.1.10 -s 5", "-s does not go with -D"},
		{ClientAdmin, "-L -i 192.168.1.10", "-i does not go with -L"},
		{"mctun", "-S", "not one of the original's admin commands"},
	}
	for _, tt := range tests {
		t.Run(tt.prog+" "+tt.args, func(t *testing.T) {
			tr, err := Translate(tt.prog, strings.Fields(tt.args))
			var uerr *UsageError
			if !errors.As(err, &uerr) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Translate = %+v, %v; want a UsageError saying %q", tr, err, tt.want)
			}
		})
	}
}

// Usage names every action of the original and the mctun command it runs.
func TestUsage(t *testing.T) {
	for prog, actions := range map[string][]action{ServerAdmin: serverActions, ClientAdmin: clientActions} {
		u := Usage(prog)
		for _, a := range actions {
			if !strings.Contains(u, prog+" "+a.original) || !strings.Contains(u, a.mctun) {
				t.Errorf("%s usage lacks %q or %q:\n%s", prog, a.original, a.mctun, u)
			}
		}
		if !slices.ContainsFunc(actions, func(a action) bool { return a.flag == 'H' }) {
			t.Errorf("%s has no -H", prog)
		}
	}
}
