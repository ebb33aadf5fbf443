package topo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Host is one network namespace of a Topology.
type Host struct {
	Name    string       // display name: "h0", "h1", ... or "router"
	Netns   string       // namespace name, for `ip netns exec` and `ip -n`
	Addr    netip.Addr   // address of Iface, 198.18.<i+1>.2
	Prefix  netip.Prefix // subnet of Iface, 198.18.<i+1>.0/24
	Gateway netip.Addr   // the router's address on that subnet and the default route
	Iface   string       // the host's interface, "eth0"
	Peer    string       // the router's end of the veth pair, "h<i>", in the router's namespace
}

// String returns the display name.
func (h *Host) String() string { return h.Name }

// Cookie returns the namespace's cookie (SO_NETNS_COOKIE), which, unlike its inode number, is
// never reused until reboot; mctun names its state directory after it.
func (h *Host) Cookie() (uint64, error) {
	const soNetnsCookie = 71 // Linux 5.14; golang.org/x/sys does not name it yet
	var cookie uint64
	err := h.Do(func() error {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, soNetnsCookie)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("topo: %s: network namespace cookie: %w", h.Netns, err)
	}
	return cookie, nil
}

// NetnsPath is the file that names the namespace, /run/netns/<Netns>, for setns(2) or
// netlink.NewHandleAt via netns.GetFromPath.
func (h *Host) NetnsPath() string { return filepath.Join(netnsDir, h.Netns) }

// Command returns a command that runs name with args inside the host's namespace:
// `ip netns exec <Netns> name args...`. ip execs the program in place, so the command's
// process is the program itself and signals sent to cmd.Process reach it.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Netns, name}, args...)...)
}

// Run runs name with args inside the host's namespace and returns what it printed, stdout
// and stderr together. The error of a failed run includes that output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs fn on an OS thread that is inside the host's namespace, then moves the thread
// back. Sockets and netlink handles that fn opens stay in the host's namespace after Do
// returns. fn must not start goroutines that expect to be in the namespace. If the thread
// cannot be moved back it is never reused: it exits with the goroutine that ran fn.
func (h *Host) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // unlocked only once the thread is back home
		back, err := enterNetns(h.NetnsPath())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("topo: enter %s: %w", h.Netns, err)
			return
		}
		ferr := fn()
		if err := back(); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("topo: leave %s: %w", h.Netns, err))
			return // the locked thread exits with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// enterNetns moves the calling thread into the namespace named by path and returns the
// function that moves it back.
func enterNetns(path string) (back func() error, err error) {
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	target, err := os.Open(path)
	if err != nil {
		home.Close()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		home.Close()
		return nil, fmt.Errorf("setns: %w", err)
	}
	return func() error {
		defer home.Close()
		return unix.Setns(int(home.Fd()), unix.CLONE_NEWNET)
	}, nil
}

// Sysctl sets a sysctl inside the host's namespace, like `ip netns exec <Netns> sysctl -w
// key=value`. key is dotted (net.ipv4.conf.all.rp_filter) or a path below /proc/sys
// (net/ipv4/conf/eth0.100/rp_filter, for names with dots).
func (h *Host) Sysctl(key, value string) error {
	return h.Do(func() error {
		if err := os.WriteFile(sysctlPath(key), []byte(value), 0); err != nil {
			return fmt.Errorf("topo: %s: sysctl %s=%s: %w", h.Name, key, value, err)
		}
		return nil
	})
}

// ReadSysctl reads a sysctl inside the host's namespace, like `ip netns exec <Netns> sysctl
// -n key`, without the trailing newline.
func (h *Host) ReadSysctl(key string) (string, error) {
	var v string
	err := h.Do(func() error {
		b, err := os.ReadFile(sysctlPath(key))
		if err != nil {
			return fmt.Errorf("topo: %s: sysctl %s: %w", h.Name, key, err)
		}
		v = strings.TrimRight(string(b), "\n")
		return nil
	})
	return v, err
}

// setSysctls sets each key/value pair in order inside the namespace.
func (h *Host) setSysctls(kvs [][2]string) error {
	for _, kv := range kvs {
		if err := h.Sysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// sysctlPath turns a sysctl key into its file under /proc/sys.
func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}

// snapshotCommands are the ip commands whose output makes up a Snapshot, in order.
var snapshotCommands = [][]string{
	{"-d", "address", "show"},
	{"-4", "rule", "show"},
	{"-6", "rule", "show"},
	{"-4", "route", "show", "table", "all"},
	{"-6", "route", "show", "table", "all"},
}

// Snapshot describes the host's network state in stable text: links with their details and
// addresses, policy rules, the routes of every table, and the sysctls mctun may change
// (net.ipv4.igmp_max_memberships, net.ipv4.ipfrag_max_dist, net.ipv4.ip_forward and
// net.ipv4.conf.*.rp_filter).
// It holds no counters and no times, so two snapshots are equal exactly when that state is
// the same: a test compares one taken before `mctun up` with one taken after `mctun down`.
func (h *Host) Snapshot(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, args := range snapshotCommands {
		out, err := runIP(ctx, "", append([]string{"-n", h.Netns}, args...)...)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "# ip %s\n%s", strings.Join(args, " "), normalize(out))
	}
	sysctls, err := h.snapshotSysctls()
	if err != nil {
		return "", err
	}
	b.WriteString("# sysctl\n")
	b.WriteString(sysctls)
	return b.String(), nil
}

// snapshotSysctls returns "key = value" lines, sorted, for the sysctls Snapshot covers.
func (h *Host) snapshotSysctls() (string, error) {
	var lines []string
	err := h.Do(func() error {
		keys := []string{"net/ipv4/igmp_max_memberships", "net/ipv4/ipfrag_max_dist", "net/ipv4/ip_forward"}
		confs, err := os.ReadDir("/proc/sys/net/ipv4/conf")
		if err != nil {
			return err
		}
		for _, c := range confs {
			keys = append(keys, "net/ipv4/conf/"+c.Name()+"/rp_filter")
		}
		for _, k := range keys {
			v, err := os.ReadFile(filepath.Join("/proc/sys", k))
			if err != nil {
				return fmt.Errorf("topo: %s: sysctl %s: %w", h.Name, k, err)
			}
			lines = append(lines, fmt.Sprintf("%s = %s", strings.ReplaceAll(k, "/", "."), strings.TrimSpace(string(v))))
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n", err
}

// normalize drops trailing blanks and empty lines, so formatting noise never makes two
// snapshots differ.
func normalize(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, " \t\n")
		if line != "" {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
