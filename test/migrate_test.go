//go:build e2e

package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

// Moving from the original multicast proxy: its files imported, and its admin commands run
// through mctun's links.

// The original's worked example, in this world's addresses: h0 the server, h1..h3 clients.
const (
	originalServerJSON = `{
  "multi_group_array": [
    {
      "group_ip": "224.1.2.3",
      "server_port": 65535,
      "group_port": 65535,
      "member_array": ["198.18.2.2", "198.18.3.2", "198.18.4.2"]
    }
  ]
}
`
	originalClientJSON = `{
  "multi_server_info_array": [
    {"server_ip": "198.18.1.2", "server_port": 65535, "group_ip": "224.1.2.3", "group_port": 65535}
  ]
}
`
)

// mustSucceed fails the test unless r is exit 0.
func (w *world) mustSucceed(h *topo.Host, what string, r result) result {
	w.t.Helper()
	if r.code != 0 {
		w.t.Fatalf("%s: %s: %v", h, what, r)
	}
	return r
}

// The source's and the members' files of the original, imported by mctun import, carry a
// stream end to end; mctun check accepts what it printed, and what it wrote.
func TestImportedConfigsCarryAStream(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		write := func(name, text string) string {
			path := filepath.Join(w.dir, name)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}
		server := write("multis.json", originalServerJSON)
		client := write("multic.json", originalClientJSON)

		srcCfg := w.mustSucceed(w.src, "mctun import (the server's file)", w.mctun(w.src, "import", server)).stdout
		if !strings.Contains(srcCfg, "# from "+server+":3") || !strings.Contains(srcCfg, `"198.18.4.2"`) {
			t.Errorf("mctun import %s printed:\n%s", server, srcCfg)
		}
		// Written with -w, then checked, as an operator would.
		mbrPath := filepath.Join(w.dir, "member-imported.toml")
		w.mustSucceed(w.mbrs[0], "mctun import -w", w.mctun(w.mbrs[0], "import", "-w", mbrPath, client))
		check := w.mustSucceed(w.mbrs[0], "mctun check of the imported file", w.mctun(w.mbrs[0], "check", "-c", mbrPath))
		if !strings.Contains(check.stdout, `sources = ["198.18.1.2"]`) || !strings.Contains(check.stdout, `groups  = ["224.1.2.3"]`) {
			t.Errorf("mctun check -c %s:\n%s", mbrPath, check.stdout)
		}
		if r := w.mctun(w.mbrs[0], "import", "-w", mbrPath, client); r.code != 1 || !strings.Contains(r.stderr, "exists") {
			t.Errorf("mctun import -w over the file it wrote: %v; want refused", r)
		}
		mbrCfg, err := os.ReadFile(mbrPath)
		if err != nil {
			t.Fatal(err)
		}

		w.upAll(string(mbrCfg), srcCfg)
		const n = 2000
		rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
		w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 500, Rate: 2000})
		for i, rep := range w.reports(rs) {
			w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
		}
	})
}

// The original's worked example, as its documentation gives it (members 192.168.1.1-3,
// the server 192.168.1.10), imports exactly into configs the real mctun check accepts; a
// file with problems imports with exit 4, every problem on stderr.
func TestImportWorkedExampleChecks(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(mctunBin, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			r.code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	files := map[string]string{
		"multis.json": `{"multi_group_array":[{"group_ip":"224.1.2.3","server_port":65535,"group_port":65535,` +
			`"member_array":["192.168.1.1","192.168.1.2","192.168.1.3"]}]}`,
		"multic.json": `{"multi_server_info_array":[{"server_ip":"192.168.1.10","server_port":65535,` +
			`"group_ip":"224.1.2.3","group_port":65535}]}`,
		"bad.json": `{"multi_group_array":[{"group_ip":"224.1.2.3","server_port":65535,"group_port":65535,` +
			`"member_array":["192.168.1.1","192.168.1.1","224.1.1.1","192.168.1.300"]}]}`,
	}
	for name, text := range files {
		in := filepath.Join(dir, name)
		if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, strings.TrimSuffix(name, ".json")+".toml")
		r := run("import", "-w", out, in)
		switch {
		case name != "bad.json" && (r.code != 0 || r.stderr != ""):
			t.Errorf("mctun import %s: %v; want exit 0, nothing on stderr", name, r)
		case name == "bad.json" && (r.code != 4 || strings.Count(r.stderr, "\n") != 4 || !strings.Contains(r.stderr, "listed twice") ||
			!strings.Contains(r.stderr, "224.1.1.1 is a multicast address") || !strings.Contains(r.stderr, `"192.168.1.300" is not an IP address`)):
			t.Errorf("mctun import %s: %v; want exit 4 and the three problems", name, r)
		}
		if r := run("check", "-c", out); r.code != 0 {
			t.Errorf("mctun check -c %s (imported from %s): %v", out, name, r)
		}
	}
}

// mctun invoked through links named multis_admin and multic_admin, as the packages install
// them, runs the original's commands against the running instances: a group added with its
// members by multis_admin and a source by multic_admin carries a stream; each says on
// stderr which mctun command it ran.
func TestOriginalAdminCommands(t *testing.T) {
	onEachDatapath(t, func(t *testing.T, dp string) {
		w := newWorldOn(t, 4, dp)
		multis, multic := filepath.Join(w.dir, "multis_admin"), filepath.Join(w.dir, "multic_admin")
		for _, link := range []string{multis, multic} {
			if err := os.Symlink(mctunBin, link); err != nil {
				t.Fatal(err)
			}
		}
		admin := func(h *topo.Host, prog string, args ...string) result {
			t.Helper()
			return w.run(h, prog, args...)
		}
		ok := func(h *topo.Host, prog string, args ...string) result {
			t.Helper()
			return w.mustSucceed(h, filepath.Base(prog)+" "+strings.Join(args, " "), admin(h, prog, args...))
		}
		said := func(r result, want ...string) {
			t.Helper()
			for _, s := range want {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q: %v", s, r)
				}
			}
		}
		stream := func(receivers []*topo.Host, n int) []int {
			t.Helper()
			rs := w.receive(receivers, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 2 * time.Second, Timeout: 6 * time.Second})
			w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Rate: 2000})
			var got []int
			for _, rep := range w.reports(rs) {
				got = append(got, int(rep.Unique))
			}
			return got
		}

		// Nothing configured but the roles: the original's commands do the rest.
		for _, m := range w.mbrs {
			w.up(m, "[member]\nsources = []\n")
			r := ok(m, multic, "-A", "-i", "198.18.1.2", "-g", "65535", "-s", "65535", "-m", "224.1.2.3")
			said(r, "multic_admin -A -i 198.18.1.2 -g 65535 -s 65535 -m 224.1.2.3: running: mctun source add 198.18.1.2",
				"tunnel port is one per host")
		}
		// The original added a server once per group; mctun has it already.
		said(ok(w.mbrs[0], multic, "-A", "-i", "198.18.1.2", "-g", "6000", "-s", "6000", "-m", "224.5.5.5"),
			"198.18.1.2 is a source already")
		w.up(w.src, "[source]\n")
		said(ok(w.src, multis, "-A", "-m", "224.1.2.3", "-j", "198.18.2.2,198.18.3.2,198.18.4.2", "-p", "65535"),
			"multis_admin -A -m 224.1.2.3 -j 198.18.2.2,198.18.3.2,198.18.4.2 -p 65535: running: mctun group add 224.1.2.3 --port 65535 --member 198.18.2.2,198.18.3.2,198.18.4.2")
		const n = 1000
		rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
		w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Rate: 2000})
		for i, rep := range w.reports(rs) {
			w.checkStream(w.mbrs[i].Name+" (group added by multis_admin)", rep, n, "198.18.1.2")
		}

		// Looking: -L, -S, -P on the server; -L, -P on a client.
		r := ok(w.src, multis, "-L", "-m", "224.1.2.3")
		said(r, "running: mctun group show 224.1.2.3")
		for _, m := range []string{"198.18.2.2:4754", "198.18.3.2:4754", "198.18.4.2:4754"} {
			if !strings.Contains(r.stdout, m) {
				t.Errorf("multis_admin -L lacks %s:\n%s", m, r.stdout)
			}
		}
		if r := ok(w.src, multis, "-S"); !strings.Contains(r.stdout, "224.1.2.3:65535") {
			t.Errorf("multis_admin -S:\n%v", r)
		}
		r = ok(w.src, multis, "-P", "-m", "224.1.2.3")
		said(r, "running: mctun stats", "no group filter")
		if !strings.Contains(r.stdout, fmt.Sprintf("224.1.2.3:65535  (captured)       %d", n)) {
			t.Errorf("multis_admin -P:\n%s", r.stdout)
		}
		if r := ok(w.mbrs[0], multic, "-L"); !strings.Contains(r.stdout, "198.18.1.2") {
			t.Errorf("multic_admin -L:\n%v", r)
		}
		if r := ok(w.mbrs[0], multic, "-P"); !strings.Contains(r.stdout, fmt.Sprintf("198.18.1.2  224.1.2.3  %d", n)) {
			t.Errorf("multic_admin -P:\n%v", r)
		}

		// -A -q removes a member: h3 receives nothing more, the others everything.
		said(ok(w.src, multis, "-A", "-m", "224.1.2.3", "-q", "198.18.4.2"), "running: mctun member quit 224.1.2.3 198.18.4.2")
		if got := stream(w.mbrs, 300); got[0] != 300 || got[1] != 300 || got[2] != 0 {
			t.Errorf("after multis_admin -A -q 198.18.4.2, h1..h3 received %v of 300; want 300 300 0", got)
		}

		// Bad command lines: exit 2, saying what is wrong; a value mctun refuses: its message.
		for _, bad := range [][]string{{"-A", "-m", "224.1.2.3"}, {"-Z"}, {"-S", "-C"}, {}} {
			if r := admin(w.src, multis, bad...); r.code != 2 || !strings.Contains(r.stderr, "multis_admin: ") || r.stdout != "" {
				t.Errorf("multis_admin %v: %v; want exit 2 and a message", bad, r)
			}
		}
		if r := admin(w.src, multis, "-A", "-m", "10.1.1.1", "-j", "198.18.2.2", "-p", "5000"); r.code != 1 || !strings.Contains(r.stderr, "10.1.1.1 is not a multicast address") {
			t.Errorf("multis_admin -A -m 10.1.1.1: %v; want mctun group add's refusal", r)
		}
		if r := ok(w.src, multis, "-H"); !strings.Contains(r.stdout, "mctun group add GROUP --port PORT --member") {
			t.Errorf("multis_admin -H:\n%v", r)
		}

		// Deleting: -D and -C on each side.
		said(ok(w.src, multis, "-D", "-m", "224.1.2.3"), "running: mctun group del 224.1.2.3")
		if r := ok(w.src, multis, "-S"); strings.Contains(r.stdout, "224.1.2.3") {
			t.Errorf("multis_admin -S after -D:\n%v", r)
		}
		said(ok(w.src, multis, "-C"), "running: mctun group clear")
		said(ok(w.mbrs[0], multic, "-D", "-i", "198.18.1.2", "-g", "65535"), "running: mctun source del 198.18.1.2", "stops every group")
		said(ok(w.mbrs[1], multic, "-C"), "running: mctun source clear")
		for _, m := range w.mbrs[:2] {
			if r := ok(m, multic, "-L"); strings.Contains(r.stdout, "198.18.1.2") {
				t.Errorf("%s: multic_admin -L after -D/-C:\n%v", m, r)
			}
		}
	})
}
