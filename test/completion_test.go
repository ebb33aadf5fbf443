//go:build e2e

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The completion scripts, in the real shells, against a running mctun: mctun gr<TAB> gives
// group, and mctun group show <TAB> the groups of the instance running in the namespace (of
// its config file and of the managed file both), as do source del <TAB> its sources.
func TestShellCompletion(t *testing.T) {
	w := newWorld(t, 4)
	w.up(w.src, sourceConfig)
	if r := w.mctun(w.src, "group", "add", "224.5.5.5", "--port", "6000", "--member", "198.18.3.2"); r.code != 0 {
		t.Fatalf("mctun group add: %v", r)
	}
	w.up(w.mbrs[0], memberConfig)
	groups := []string{"224.1.2.3:65535", "224.5.5.5:6000"}
	bin := filepath.Dir(mctunBin) // the scripts run "mctun", as an operator's shell does

	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Skipf("%s is not installed (.ci/run installs it)", shell)
			}
			script := filepath.Join(w.dir, "completion."+shell)
			r := w.mctun(w.src, "completion", shell)
			if r.code != 0 {
				t.Fatalf("mctun completion %s: %v", shell, r)
			}
			if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
				t.Fatal(err)
			}
			// complete runs the shell in host h's namespace, with the script loaded, and
			// returns the candidates it offers for line (the cursor at its end).
			complete := func(host int, line string) []string {
				t.Helper()
				var prog string
				switch shell {
				case "bash":
					prog = fmt.Sprintf(`source %q
line=%q
read -ra COMP_WORDS <<<"$line"
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) COMP_LINE=$line COMP_POINT=${#line}
_mctun
printf '%%s\n' "${COMPREPLY[@]}"`, script, line)
				case "zsh":
					// compdef and compadd belong to zsh's completion system, which needs a
					// terminal; these stand-ins record what the script offers.
					prog = fmt.Sprintf(`compdef() { :; }
compadd() { while [[ $1 == -* ]]; do [[ $1 == -- ]] && { shift; break }; shift; done; print -l -- "$@" }
source %q
words=(${=:-%s})
[[ %q == *" " ]] && words+=("")
CURRENT=${#words}
_mctun || true # no match`, script, line, line)
				case "fish":
					prog = fmt.Sprintf("source %q; complete -C %q", script, line)
				}
				h := w.hosts[host]
				r := w.run(h, "env", "PATH="+bin+":"+os.Getenv("PATH"), shell, "-c", prog)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("%s: %s completing %q: %v", h, shell, line, r)
				}
				var out []string
				for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
					if l != "" {
						out = append(out, strings.SplitN(l, "\t", 2)[0]) // fish: candidate<TAB>description
					}
				}
				slices.Sort(out)
				return out
			}
			for _, tc := range []struct {
				host int
				line string
				want []string
			}{
				{0, "mctun gr", []string{"group"}},
				{0, "mctun group sh", []string{"show"}},
				{0, "mctun group show ", groups},
				{0, "mctun group show 224.5", groups[1:]},
				{0, "mctun group list --j", []string{"--json"}},
				{1, "mctun source del ", []string{"198.18.1.2"}},
				{1, "mctun group show ", nil}, // h1 has no groups
			} {
				if got := complete(tc.host, tc.line); !slices.Equal(got, tc.want) {
					t.Errorf("%s on h%d: %q<TAB> offers %q, want %q", shell, tc.host, tc.line, got, tc.want)
				}
			}
		})
	}

	// With bash-completion loaded, as in an interactive shell, ADDR:PORT stays one word:
	// bash splits the line at the colon, and the script completes the port.
	t.Run("bash-completion", func(t *testing.T) {
		const lib = "/usr/share/bash-completion/bash_completion"
		if _, err := os.Stat(lib); err != nil {
			t.Skipf("bash-completion is not installed (.ci/run installs it): %v", err)
		}
		r := w.mctun(w.src, "completion", "bash")
		script := filepath.Join(w.dir, "completion-lib.bash")
		if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		prog := fmt.Sprintf(`source %q; source %q
COMP_WORDS=(mctun group show 224.1.2.3 : 6) COMP_CWORD=5
COMP_LINE="mctun group show 224.1.2.3:6" COMP_POINT=${#COMP_LINE}
_mctun
printf '%%s\n' "${COMPREPLY[@]}"`, lib, script)
		r = w.run(w.src, "env", "PATH="+bin+":"+os.Getenv("PATH"), "bash", "-c", prog)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "65535" {
			t.Errorf("mctun group show 224.1.2.3:6<TAB>: %v, want 65535", r)
		}
	})
}
