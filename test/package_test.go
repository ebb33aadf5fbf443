//go:build e2e

package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mctun/config"
	"mctun/test/topo"
)

// The packages, as an operator gets them: make package builds the .deb and .rpm of both
// architectures with nothing but Go; lintian and rpmlint find nothing; the .deb installs on
// this machine with dpkg, its files in place and nothing started or enabled; an edited
// /etc/mctun/mctun.toml survives an upgrade to a newer build and a removal, which stops a
// running mctun and so undoes what it did to its host; purge removes the rest. The machine is
// left as the test found it, also when it fails.
func TestPackages(t *testing.T) {
	for _, tool := range []string{"dpkg", "dpkg-deb", "dpkg-query", "lintian", "rpmlint", "rpm", "systemd-analyze", "make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the package test needs %s (.ci/run installs it): %v", tool, err)
		}
	}
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("the packages are for amd64 and arm64, not %s", runtime.GOARCH)
	}
	unlock := lockPackageTest(t)
	defer unlock()
	for _, p := range []string{"/usr/sbin/mctun", "/etc/mctun", "/usr/lib/systemd/system/mctun.service"} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists: mctun is installed on this machine, and the package test would replace it", p)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "mctun").Output(); err == nil && len(out) > 0 && !strings.Contains(string(out), "not-installed") {
		t.Skipf("dpkg knows a mctun package (%s): the package test would replace it", out)
	}

	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v1 := strings.TrimSpace(mustRun(t, exec.Command(filepath.Join(repo, "packaging/version.sh"))))
	v2 := v1 + "+test2" // a newer build of the same commit, as dpkg sorts it
	if err := exec.Command("dpkg", "--compare-versions", v2, "gt", v1).Run(); err != nil {
		t.Fatalf("version %s does not sort after %s", v2, v1)
	}
	build := func(name, version, archs string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command("make", "-C", repo, "package", "DIST="+out, "PKG_VERSION="+version, "PKG_ARCHS="+archs)
		mustRun(t, cmd)
		return out
	}
	dist1 := build("v1", v1, "amd64 arm64")
	dist2 := build("v2", v2, runtime.GOARCH)
	debs, _ := filepath.Glob(filepath.Join(dist1, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist1, "*.rpm"))
	wantDebs := []string{"mctun_" + v1 + "_amd64.deb", "mctun_" + v1 + "_arm64.deb"}
	rpmVersion, rpmRelease, _ := strings.Cut(v1, "+")
	if rpmRelease == "" {
		rpmRelease = "1"
	} else {
		rpmRelease = "1." + rpmRelease
	}
	wantRPMs := []string{"mctun-" + rpmVersion + "-" + rpmRelease + ".aarch64.rpm", "mctun-" + rpmVersion + "-" + rpmRelease + ".x86_64.rpm"}
	if got := baseNames(debs); !slices.Equal(got, wantDebs) {
		t.Fatalf("make package built the debs %q, want %q", got, wantDebs)
	}
	if got := baseNames(rpms); !slices.Equal(got, wantRPMs) {
		t.Fatalf("make package built the rpms %q, want %q", got, wantRPMs)
	}

	t.Run("lintian", func(t *testing.T) {
		for _, deb := range debs {
			// Every tag, down to the pedantic and experimental ones; overrides (each with its
			// reason) are in packaging/deb/lintian-overrides.
			out, _ := exec.Command("lintian", "--pedantic", "--display-info", "--display-experimental", deb).CombinedOutput()
			if tags := regexp.MustCompile(`(?m)^[EWIPX]: .*$`).FindAllString(string(out), -1); len(tags) > 0 {
				t.Errorf("lintian %s:\n%s", filepath.Base(deb), strings.Join(tags, "\n"))
			}
		}
	})
	t.Run("rpmlint", func(t *testing.T) {
		for _, rpm := range rpms {
			out, err := exec.Command("rpmlint", "-c", filepath.Join(repo, "packaging/rpmlint.toml"), rpm).CombinedOutput()
			if err != nil || !strings.Contains(string(out), " 0 errors, 0 warnings") {
				t.Errorf("rpmlint %s: %v\n%s", filepath.Base(rpm), err, out)
			}
		}
	})
	t.Run("rpm", func(t *testing.T) { checkRPM(t, rpms[1], debs[0]) })
	t.Run("unit", func(t *testing.T) {
		// Offline, the unit file alone: its exposure must stay what the hardening made it.
		out, err := exec.Command("systemd-analyze", "security", "--offline=yes", filepath.Join(repo, "packaging/mctun.service")).CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for mctun.service: ([0-9.]+)`).FindSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("systemd-analyze security: %v\n%s", err, out)
		}
		if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.9 {
			t.Errorf("systemd-analyze security: exposure %.1f, was 2.9 when the unit was hardened (9.6 without hardening)", level)
		}
	})

	deb1 := filepath.Join(dist1, "mctun_"+v1+"_"+runtime.GOARCH+".deb")
	deb2 := filepath.Join(dist2, "mctun_"+v2+"_"+runtime.GOARCH+".deb")
	t.Run("install, upgrade, remove, purge", func(t *testing.T) { installUpgradeRemovePurge(t, repo, deb1, deb2, v1, v2) })
}

func installUpgradeRemovePurge(t *testing.T, repo, deb1, deb2, v1, v2 string) {
	before := machineState(t)
	t.Cleanup(func() {
		if packageInstalled() {
			if out, err := exec.Command("dpkg", "--purge", "mctun").CombinedOutput(); err != nil {
				t.Errorf("cleaning up: dpkg --purge mctun: %v\n%s", err, out)
			}
		}
		if after := machineState(t); after != before {
			t.Errorf("the machine is not as the test found it:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	dpkg := func(args ...string) {
		t.Helper()
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		mustRun(t, cmd)
	}

	// Install: every file in place, the config a conffile, the service neither enabled nor
	// started.
	dpkg("--install", deb1)
	unit, err := os.ReadFile(filepath.Join(repo, "packaging/mctun.service"))
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, "/usr/sbin/mctun", 0o755, nil)
	checkFile(t, "/usr/lib/systemd/system/mctun.service", 0o644, unit)
	checkFile(t, "/etc/mctun/mctun.toml", 0o644, []byte(config.Example()))
	excluded := dpkgExcluded()
	for _, f := range []string{
		"/usr/share/man/man8/mctun.8.gz", "/usr/share/man/man5/mctun.toml.5.gz",
		"/usr/share/bash-completion/completions/mctun", "/usr/share/zsh/vendor-completions/_mctun",
		"/usr/share/fish/vendor_completions.d/mctun.fish",
		"/usr/share/doc/mctun/README.md.gz", "/usr/share/doc/mctun/copyright", "/usr/share/doc/mctun/changelog.gz",
	} {
		if excluded(f) {
			t.Logf("%s: not installed, as this machine's dpkg excludes it (path-exclude)", f)
			continue
		}
		checkFile(t, f, 0o644, nil)
	}
	for link, target := range map[string]string{
		"/usr/sbin/multis_admin": "mctun", "/usr/sbin/multic_admin": "mctun",
		"/usr/share/man/man8/multis_admin.8.gz": "mctun.8.gz", "/usr/share/man/man8/multic_admin.8.gz": "mctun.8.gz",
	} {
		if excluded(link) {
			continue
		}
		if got, err := os.Readlink(link); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want -> %s", link, got, err, target)
		}
	}
	if out := mustRun(t, exec.Command("dpkg-query", "-W", "-f=${Conffiles}", "mctun")); !strings.Contains(out, "/etc/mctun/mctun.toml ") {
		t.Errorf("/etc/mctun/mctun.toml is not a conffile: %q", out)
	}
	if out := mustRun(t, exec.Command("/usr/sbin/mctun", "version")); !strings.HasPrefix(out, "mctun "+v1+" ") {
		t.Errorf("/usr/sbin/mctun version: %q, want mctun %s", out, v1)
	}
	if links, _ := filepath.Glob("/etc/systemd/system/*/mctun.service"); len(links) > 0 {
		t.Errorf("installing enabled the service: %q", links)
	}
	// With the binary and the man pages in place, systemd finds nothing to say of the unit.
	if excluded("/usr/share/man/man8/mctun.8.gz") {
		t.Log("systemd-analyze verify not run: this machine's dpkg does not install man pages, whose absence it reports")
	} else if out, err := exec.Command("systemd-analyze", "verify", "/usr/lib/systemd/system/mctun.service").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify mctun.service: %v\n%s", err, out)
	}

	// The operator's config: the commented example made a member's.
	edited := config.Example() + "\n# edited by the package test\n[member]\nsources = [\"198.18.1.2\"]\n"
	if err := os.WriteFile("/etc/mctun/mctun.toml", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}

	// Upgrade: the new binary, the edited config untouched.
	dpkg("--install", deb2)
	if out := mustRun(t, exec.Command("/usr/sbin/mctun", "version")); !strings.HasPrefix(out, "mctun "+v2+" ") {
		t.Errorf("after the upgrade, /usr/sbin/mctun version: %q, want mctun %s", out, v2)
	}
	checkFile(t, "/etc/mctun/mctun.toml", 0o644, []byte(edited))

	// The installed mctun runs with the default config in a namespace of its own, and a
	// management command writes the managed file next to the config.
	tp := topo.ForTest(t, topo.Options{Hosts: 2})
	h := tp.Hosts[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	clean, err := h.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, h.Command(ctx, "/usr/sbin/mctun", "up"))
	t.Cleanup(func() { h.Command(context.Background(), "mctun", "down").Run() }) // if removal did not stop it
	mustRun(t, h.Command(ctx, "/usr/sbin/mctun", "source", "add", "198.18.1.3"))
	checkFile(t, "/etc/mctun/mctun.managed.toml", 0o644, nil)

	// Remove: it stops the running mctun, which undoes what it did to its host, and keeps
	// the config and the managed file.
	remove := h.Command(ctx, "dpkg", "--remove", "mctun")
	remove.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	mustRun(t, remove)
	if after, err := h.Snapshot(ctx); err != nil || after != clean {
		t.Errorf("removing the package left the host changed (%v):\nbefore up:\n%s\nafter remove:\n%s", err, clean, after)
	}
	for _, gone := range []string{"/usr/sbin/mctun", "/usr/sbin/multis_admin", "/usr/lib/systemd/system/mctun.service", "/usr/share/man/man8/mctun.8.gz"} {
		if _, err := os.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after remove, %s: %v", gone, err)
		}
	}
	checkFile(t, "/etc/mctun/mctun.toml", 0o644, []byte(edited))
	checkFile(t, "/etc/mctun/mctun.managed.toml", 0o644, nil)
	if out := mustRun(t, exec.Command("dpkg-query", "-W", "-f=${Status}", "mctun")); out != "deinstall ok config-files" {
		t.Errorf("after remove, dpkg says %q", out)
	}

	// Purge: nothing of mctun is left.
	dpkg("--purge", "mctun")
	if _, err := os.Lstat("/etc/mctun"); !errors.Is(err, fs.ErrNotExist) {
		entries, _ := os.ReadDir("/etc/mctun")
		t.Errorf("after purge, /etc/mctun is still there (%v): %v", err, entries)
	}
	if packageInstalled() {
		t.Error("after purge, dpkg still knows mctun")
	}
}

// checkRPM checks what the rpm holds against the deb: the same files (but for where each
// distribution wants documentation and zsh's completion), the config kept on upgrade
// (%config(noreplace)), and scriptlets that leave enabling to the preset policy and start
// nothing.
func checkRPM(t *testing.T, rpm, deb string) {
	rpmFiles := strings.Fields(mustRun(t, exec.Command("rpm", "-qpl", rpm)))
	var debFiles []string
	tar := mustRun(t, exec.Command("sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -t", "sh", deb))
	for _, f := range strings.Fields(tar) {
		f = strings.TrimPrefix(f, ".")
		if f != "" && !strings.HasSuffix(f, "/") {
			debFiles = append(debFiles, f)
		}
	}
	own := func(files []string) []string {
		var out []string
		for _, f := range files {
			switch {
			case slices.ContainsFunc(files, func(g string) bool { return strings.HasPrefix(g, f+"/") }):
				continue // a directory
			case strings.HasPrefix(f, "/usr/share/doc/"), strings.HasPrefix(f, "/usr/share/licenses/"),
				strings.HasPrefix(f, "/usr/share/lintian/"), strings.HasPrefix(f, "/usr/share/zsh/"):
				continue
			}
			out = append(out, f)
		}
		slices.Sort(out)
		return out
	}
	if r, d := own(rpmFiles), own(debFiles); !slices.Equal(r, d) {
		t.Errorf("the rpm and the deb ship different files:\nrpm: %q\ndeb: %q", r, d)
	}
	if !slices.Contains(rpmFiles, "/usr/share/zsh/site-functions/_mctun") {
		t.Errorf("the rpm lacks zsh's completion in site-functions: %q", rpmFiles)
	}
	// rpm --dump: path size mtime digest mode owner group isconfig isdoc ...
	for _, l := range strings.Split(mustRun(t, exec.Command("rpm", "-qp", "--dump", rpm)), "\n") {
		if f := strings.Fields(l); len(f) > 8 && f[0] == "/etc/mctun/mctun.toml" && f[7] != "1" {
			t.Errorf("/etc/mctun/mctun.toml is not %%config in the rpm: %s", l)
		}
	}
	if flags := mustRun(t, exec.Command("rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", rpm)); !strings.Contains(flags, "/etc/mctun/mctun.toml cn") {
		t.Errorf("/etc/mctun/mctun.toml is not %%config(noreplace) in the rpm:\n%s", flags)
	}
	scripts := mustRun(t, exec.Command("rpm", "-qp", "--scripts", rpm))
	_, post, _ := strings.Cut(scripts, "postinstall scriptlet")
	post, _, _ = strings.Cut(post, "preuninstall scriptlet")
	code := regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(post, "")
	if !strings.Contains(code, "preset mctun.service") || strings.Contains(code, "start") || strings.Contains(code, " enable") {
		t.Errorf("the rpm's %%post must apply the preset and start nothing:\n%s", post)
	}
	if !strings.Contains(scripts, "disable --now mctun.service") {
		t.Errorf("the rpm's %%preun does not stop mctun:\n%s", scripts)
	}
}

// machineState describes what installing mctun touches, so that the test can leave the
// machine as it found it: the package's paths and dpkg's and deb-systemd-helper's records of
// it.
func machineState(t *testing.T) string {
	var b strings.Builder
	for _, root := range []string{
		"/usr/sbin/mctun", "/usr/sbin/multis_admin", "/usr/sbin/multic_admin", "/etc/mctun",
		"/usr/lib/systemd/system/mctun.service", "/usr/share/doc/mctun", "/usr/share/man/man8/mctun.8.gz",
		"/usr/share/man/man5/mctun.toml.5.gz", "/usr/share/bash-completion/completions/mctun",
		"/usr/share/zsh/vendor-completions/_mctun", "/usr/share/fish/vendor_completions.d/mctun.fish",
		"/usr/share/lintian/overrides/mctun",
	} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			fmt.Fprintf(&b, "%s\n", p)
			return nil
		})
	}
	for _, dir := range []string{"/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked", "/etc/systemd/system"} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), "mctun") {
				fmt.Fprintf(&b, "%s\n", p)
			}
			return nil
		})
	}
	out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "mctun").CombinedOutput()
	fmt.Fprintf(&b, "dpkg: %s\n", bytes.TrimSpace(out))
	return b.String()
}

// dpkgExcluded reports which paths this machine's dpkg does not install: container images
// often exclude documentation (path-exclude in /etc/dpkg/dpkg.cfg.d), copyright files aside.
func dpkgExcluded() func(path string) bool {
	var exclude, include []string
	files, _ := filepath.Glob("/etc/dpkg/dpkg.cfg.d/*")
	for _, f := range append(files, "/etc/dpkg/dpkg.cfg") {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if p, ok := strings.CutPrefix(strings.TrimSpace(l), "path-exclude"); ok {
				exclude = append(exclude, strings.TrimSpace(strings.TrimLeft(p, "= ")))
			} else if p, ok := strings.CutPrefix(strings.TrimSpace(l), "path-include"); ok {
				include = append(include, strings.TrimSpace(strings.TrimLeft(p, "= ")))
			}
		}
	}
	// dpkg's globs let * cross slashes, as fnmatch without FNM_PATHNAME does.
	match := func(patterns []string, path string) bool {
		for _, p := range patterns {
			re := "^" + strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, ".*") + "$"
			if regexp.MustCompile(re).MatchString(path) {
				return true
			}
		}
		return false
	}
	return func(path string) bool { return match(exclude, path) && !match(include, path) }
}

func packageInstalled() bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "mctun").Output()
	return err == nil && len(out) > 0 && !strings.Contains(string(out), "not-installed")
}

// lockPackageTest keeps two package tests (of two worktrees on one machine) from installing
// at once.
func lockPackageTest(t *testing.T) func() {
	dir := "/run/lock"
	if _, err := os.Stat(dir); err != nil {
		dir = os.TempDir()
	}
	f, err := os.OpenFile(filepath.Join(dir, "mctun-package-test.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// checkFile checks that path is a regular file with mode perm and, unless want is nil, that
// content.
func checkFile(t *testing.T, path string, perm fs.FileMode, want []byte) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != perm {
		t.Errorf("%s: mode %v, want a file of mode %v", path, fi.Mode(), perm)
	}
	if want != nil {
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from what it should hold (%v):\n%s", path, err, got)
		}
	}
}

// mustRun runs cmd and returns its standard output; on failure it fails the test with both.
func mustRun(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(cmd.Args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func baseNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	slices.Sort(out)
	return out
}

// packaging/version.sh turns git describe into versions that dpkg and rpm both sort in the
// order the commits were made: untagged commits, a tag, commits after it, a release
// candidate of the next, the next, a commit after it and a point release.
func TestPackageVersions(t *testing.T) {
	for _, tool := range []string{"git", "dpkg", "/usr/bin/python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import rpm").Run(); err != nil {
		t.Skip("needs python3-rpm (rpmlint depends on it) to compare rpm versions")
	}
	repo := t.TempDir()
	script, err := os.ReadFile("../packaging/version.sh")
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(repo, "packaging"), 0o755)
	if err := os.WriteFile(filepath.Join(repo, "packaging/version.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(date string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.org"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE="+date, "GIT_AUTHOR_DATE="+date)
		return strings.TrimSpace(mustRun(t, cmd))
	}
	version := func() string {
		t.Helper()
		return strings.TrimSpace(mustRun(t, exec.Command(filepath.Join(repo, "packaging/version.sh"))))
	}
	commit := func(date string) string {
		git(date, "commit", "-q", "--allow-empty", "-m", "c")
		return git(date, "rev-parse", "--short", "HEAD")
	}
	git("2026-03-01T12:34:56Z", "init", "-q")
	git("2026-03-01T12:34:56Z", "add", ".")
	var versions []string
	h := commit("2026-03-01T12:34:56Z")
	check := func(want string) {
		t.Helper()
		if got := version(); got != want {
			t.Errorf("version.sh = %q, want %q", got, want)
		}
		versions = append(versions, want)
	}
	check("0.0.0~git20260301123456." + h)
	h = commit("2026-03-02T00:00:00Z")
	check("0.0.0~git20260302000000." + h)
	git("", "tag", "v0.1")
	check("0.1")
	h = commit("2026-03-03T00:00:00Z")
	check("0.1+1.g" + h)
	h = commit("2026-03-04T00:00:00Z")
	check("0.1+2.g" + h)
	git("", "tag", "v0.2-rc1")
	check("0.2~rc1")
	commit("2026-03-05T00:00:00Z")
	git("", "tag", "v0.2")
	check("0.2")
	h = commit("2026-03-06T00:00:00Z")
	check("0.2+1.g" + h) // rpm would sort 0.2+1 after 0.2.1: hence the release
	commit("2026-03-07T00:00:00Z")
	git("", "tag", "v0.2.1")
	check("0.2.1")
	os.WriteFile(filepath.Join(repo, "packaging/version.sh"), append(script, '\n'), 0o755)
	if got := version(); got != "0.2.1.dirty" {
		t.Errorf("with uncommitted changes: %q, want 0.2.1.dirty", got)
	}

	// As the Makefile gives them to rpm: what follows + is the release.
	rpmEVR := func(v string) (string, string) {
		ver, rel, _ := strings.Cut(v, "+")
		if rel == "" {
			return ver, "1"
		}
		return ver, "1." + rel
	}
	for i := 1; i < len(versions); i++ {
		a, b := versions[i-1], versions[i]
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg sorts %s before %s", b, a)
		}
		av, ar := rpmEVR(a)
		bv, br := rpmEVR(b)
		out := mustRun(t, exec.Command("/usr/bin/python3", "-c", "import rpm, sys; print(rpm.labelCompare(('0', sys.argv[1], sys.argv[2]), ('0', sys.argv[3], sys.argv[4])))", av, ar, bv, br))
		if strings.TrimSpace(out) != "-1" {
			t.Errorf("rpm sorts %s-%s before %s-%s", bv, br, av, ar)
		}
	}
}
