package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"mctun/control"
	"mctun/daemon"
)

// Completion: "mctun completion bash|zsh|fish" prints a small script for the shell, which
// asks the binary what may come next with the hidden "mctun __complete WORD...": the words
// after mctun up to the cursor, the last one the word being completed (maybe empty). The
// answer is one candidate per line, then a line that is ":files" when file names should be
// completed instead, else ":". Commands, subcommands and flags come from the same tables as
// --help; groups and sources from the running instance of this network namespace (the
// listing call, which anyone may make).

func cmdCompletion(fs *flag.FlagSet, args []string) int {
	if code, ok := parseN(fs, args, 1, 1); !ok {
		return code
	}
	script, ok := completionScripts[fs.Arg(0)]
	if !ok {
		return usagef("mctun completion: %q is not bash, zsh or fish", fs.Arg(0))
	}
	fmt.Print(script)
	return exitOK
}

func cmdComplete(args []string) int {
	if len(args) == 0 {
		args = []string{""}
	}
	cands, files := complete(args, runningListing)
	for _, c := range cands {
		fmt.Println(c)
	}
	if files {
		fmt.Println(":files")
	} else {
		fmt.Println(":")
	}
	return exitOK
}

// runningListing asks the running instance for its groups and sources.
func runningListing() (daemon.Listing, bool) {
	var l daemon.Listing
	err := control.Call(control.SocketName, "listing", nil, &l)
	return l, err == nil
}

// complete returns the candidates for the last of words (the words after "mctun"), those that
// start with it, and whether file names are wanted instead.
func complete(words []string, listing func() (daemon.Listing, bool)) (cands []string, files bool) {
	cur, before := words[len(words)-1], words[:len(words)-1]
	matching := func(all ...string) []string {
		var out []string
		for _, a := range all {
			if strings.HasPrefix(a, cur) && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
		return out
	}
	if len(before) == 0 {
		var names []string
		for _, c := range commands {
			names = append(names, c.name)
		}
		return matching(append(names, "--help")...), false
	}
	name := before[0]
	if !slices.ContainsFunc(commands, func(c command) bool { return c.name == name }) {
		return nil, false
	}
	rest := before[1:]
	if subs := subcommandsOf(name); len(subs) > 0 {
		if len(rest) == 0 {
			var verbs []string
			for _, s := range subs {
				verbs = append(verbs, strings.TrimPrefix(s.name, name+" "))
			}
			return matching(append(verbs, "--help")...), false
		}
		name += " " + rest[0]
		rest = rest[1:]
	}
	// What the running instance lists, picked and matched.
	listed := func(pick func(daemon.Listing) []string) []string {
		l, ok := listing()
		if !ok {
			return nil
		}
		return matching(pick(l)...)
	}
	groups := func() []string {
		return listed(func(l daemon.Listing) []string {
			var out []string
			for _, g := range l.Groups {
				out = append(out, g.Group)
			}
			return out
		})
	}
	flags := flagsOf(name)
	lookup := func(arg string) *flag.Flag {
		n := strings.TrimLeft(arg, "-")
		for _, f := range flags {
			if f.Name == n {
				return f
			}
		}
		return nil
	}

	// The positional arguments so far, and whether the word is a flag's value.
	var args []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			args = append(args, a)
			continue
		}
		if f := lookup(a); f != nil && !isBool(f) && !strings.Contains(a, "=") {
			if i == len(rest)-1 {
				return flagValues(name, f, matching, groups)
			}
			i++ // its value
		}
	}
	if strings.HasPrefix(cur, "-") {
		var names []string
		for _, f := range flags {
			if strings.HasPrefix("-"+f.Name, cur) || strings.HasPrefix("--"+f.Name, cur) {
				names = append(names, flagName(f))
			}
		}
		return append(names, matching("--help")...), false
	}

	switch {
	case name == "import": // the original tool's JSON files
		return nil, true
	case name == "completion" && len(args) == 0:
		return matching("bash", "zsh", "fish"), false
	case takesGroup(name) && len(args) == 0:
		return groups(), false
	case name == "member quit" && len(args) > 0:
		return listed(func(l daemon.Listing) []string {
			var members []string
			for _, g := range l.Groups {
				if g.Group == args[0] || g.Address == args[0] {
					members = append(members, g.Members...)
				}
			}
			return members
		}), false
	case name == "source del" && len(args) == 0:
		return listed(func(l daemon.Listing) []string {
			var sources []string
			for _, s := range l.Sources {
				sources = append(sources, s.Address)
			}
			return sources
		}), false
	}
	return nil, false
}

// flagValues completes the value of flag f of command name: a file for a FILE, a group for
// a GROUP, the choices of dump's --side.
func flagValues(name string, f *flag.Flag, matching func(...string) []string, groups func() []string) ([]string, bool) {
	meta, _ := flag.UnquoteUsage(f)
	switch {
	case meta == "FILE":
		return nil, true
	case meta == "GROUP":
		return groups(), false
	case name == "dump" && f.Name == "side":
		return matching("sender", "receiver", "both"), false
	}
	return nil, false
}

// takesGroup reports whether subcommand name's first argument is a GROUP, as its usage says.
func takesGroup(name string) bool {
	for _, s := range subcommands {
		if s.name == name {
			return strings.HasPrefix(s.args, "GROUP")
		}
	}
	return false
}

// completionScripts are what mctun completion prints. Each asks mctun __complete; the packages
// install them where each shell finds them: bash
// /usr/share/bash-completion/completions/mctun, zsh .../vendor-completions/_mctun (Debian) or
// .../site-functions/_mctun, fish /usr/share/fish/vendor_completions.d/mctun.fish.
var completionScripts = map[string]string{
	"bash": `# bash completion for mctun; mctun completion bash prints it.
_mctun() {
    local cur words cword
    if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
        # bash-completion: keep ADDR:PORT one word
        _get_comp_words_by_ref -n =: cur words cword
    else
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]}
    fi
    local -a out
    mapfile -t out < <(command "${words[0]}" __complete "${words[@]:1:cword}" 2>/dev/null)
    local n=${#out[@]}
    [ "$n" -gt 0 ] || return
    if [ "${out[n-1]}" = ":files" ]; then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
    fi
    COMPREPLY=("${out[@]:0:n-1}")
    if declare -F __ltrim_colon_completions >/dev/null 2>&1; then
        __ltrim_colon_completions "$cur"
    fi
}
complete -F _mctun mctun
`,
	"zsh": `#compdef mctun
# zsh completion for mctun; mctun completion zsh prints it.
_mctun() {
    local -a out
    out=("${(@f)$(command ${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if [[ ${out[-1]} == :files ]]; then
        _files
        return
    fi
    out=("${(@)out[1,-2]}")
    (( ${#out} )) && compadd -Q -- "${out[@]}"
}
if [[ $funcstack[1] == _mctun ]]; then
    _mctun "$@"
else
    compdef _mctun mctun
fi
`,
	"fish": `# fish completion for mctun; mctun completion fish prints it.
function __mctun_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l out (command $words[1] __complete $words[2..] "$cur" 2>/dev/null)
    if test "$out[-1]" = ":files"
        __fish_complete_path "$cur"
        return
    end
    set -e out[-1]
    printf '%s\n' $out
end
complete -c mctun -f -a '(__mctun_complete)'
`,
}
