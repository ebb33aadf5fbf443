package topo

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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	netnsDir = "/run/netns"      // where `ip netns add` names namespaces
	lockDir  = "/run/mctun-topo" // where each live Topology holds <prefix>.lock

	mctunStateRoot = "/run/mctun" // where mctun keeps a namespace's state, in netns-<cookie>
)

// nameRE matches the namespaces a Topology creates and captures their prefix.
var nameRE = regexp.MustCompile(`^(.+)-(r|h[0-9]+)$`)

// Available reports why this process cannot build a Topology, or nil if it can: it must
// be root (CAP_NET_ADMIN and CAP_SYS_ADMIN, for namespaces) and have iproute2's ip.
// Privileged tests skip with its message.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("topo: needs root to create network namespaces (run the privileged tests as root: sudo go test -tags e2e ./test/...)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("topo: needs iproute2's ip command: %w", err)
	}
	return nil
}

// TB is the part of testing.TB that ForTest uses, so this package need not import testing.
type TB interface {
	Helper()
	Cleanup(func())
	Skip(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// ForTest builds a Topology for a test: it skips the test when Available reports a reason,
// fails it when Build fails, and closes the Topology when the test ends.
func ForTest(t TB, opts Options) *Topology {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	topo, err := Build(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Logf("closing topology %s: %v", topo.Prefix, err)
		}
	})
	return topo
}

// runIP runs the ip command with args, feeding it stdin when not empty, and returns its
// standard output. Its error names the command and carries ip's message.
func runIP(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if stdin != "" {
			msg += "\nbatch:\n" + stdin
		}
		return "", fmt.Errorf("topo: ip %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// removeNamespaces kills the processes in the named namespaces, deletes the namespaces
// with `ip netns delete`, then kills any process that entered one in the meantime (an
// `ip netns exec` that opened the namespace just before it was deleted). It holds each
// namespace open throughout, so its identity cannot pass to a new namespace while it is
// being scanned for. A namespace already gone is not an error.
func removeNamespaces(names []string) error {
	var ids []nsID
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for _, ns := range names {
		f, err := os.Open(filepath.Join(netnsDir, ns))
		if err != nil {
			continue // gone already
		}
		held = append(held, f)
		if id, ok := statNS(f.Name()); ok {
			ids = append(ids, id)
		}
	}
	err := killProcesses(ids, 5*time.Second)
	for _, f := range held {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, derr := runIP(ctx, "", "netns", "delete", filepath.Base(f.Name()))
		cancel()
		err = errors.Join(err, derr)
	}
	return errors.Join(err, killProcesses(ids, 5*time.Second))
}

// killProcesses sends SIGKILL to every process in the given namespaces, as `ip netns pids`
// lists them, until none is left or the timeout passes. It never signals this process.
func killProcesses(ids []nsID, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := pidsIn(ids)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topo: processes %v still in the namespaces after SIGKILL", pids)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nsID identifies a network namespace by the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

// statNS returns the identity of the namespace a path (a /run/netns file or a
// /proc/PID/ns/net link) refers to.
func statNS(path string) (nsID, bool) {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return nsID{}, false
	}
	return nsID{st.Dev, st.Ino}, true
}

// pidsIn lists the processes, other than this one, whose network namespace is one of ids,
// like `ip netns pids`. A zombie has no namespace and is not listed.
func pidsIn(ids []nsID) []int {
	if len(ids) == 0 {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if id, ok := statNS(fmt.Sprintf("/proc/%d/ns/net", pid)); ok && slices.Contains(ids, id) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// acquireLock creates and flocks /run/mctun-topo/<prefix>.lock, failing if another live
// Topology holds it.
func acquireLock(prefix string) (*os.File, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("topo: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(lockDir, prefix+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("topo: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("topo: prefix %q is in use by a live topology: %w", prefix, err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

// tryLock flocks the existing lock file of prefix. It fails when the file does not exist
// or a live Topology holds the lock.
func tryLock(prefix string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(lockDir, prefix+".lock"), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// releaseLock removes the lock file while still holding it, then lets it go.
func releaseLock(f *os.File) {
	os.Remove(f.Name())
	f.Close()
}

// RemoveStale deletes what crashed runs left behind: for every topology whose prefix starts
// with prefix and whose lock file no live process holds (see the package doc), it kills the
// processes in its namespaces <p>-r and <p>-h<N>, deletes them and removes the lock file.
// A Topology in use, in this process or another, is left alone, and so is every namespace
// without a lock file: this package did not make it. prefix must not be empty.
func RemoveStale(prefix string) error {
	if prefix == "" {
		return errors.New("topo: RemoveStale needs a prefix")
	}
	locks, err := os.ReadDir(lockDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("topo: %w", err)
	}
	var errs error
	for _, e := range locks {
		if p, ok := strings.CutSuffix(e.Name(), ".lock"); ok && strings.HasPrefix(p, prefix) {
			errs = errors.Join(errs, removeIfStale(p))
		}
	}
	return errs
}

// removeIfStale removes the namespaces and the lock file of topology p unless a live
// process holds its lock.
func removeIfStale(p string) error {
	lock, err := tryLock(p)
	if err != nil {
		return nil // held by a live topology, or removed by its Close just now
	}
	defer releaseLock(lock)
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("topo: %w", err)
	}
	var names []string
	for _, e := range entries {
		if m := nameRE.FindStringSubmatch(e.Name()); m != nil && m[1] == p {
			names = append(names, e.Name())
		}
	}
	return removeNamespaces(names)
}
