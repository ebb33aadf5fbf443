package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"mctun/encap"
	"mctun/internal/atomicfile"
	"mctun/membership"
	"mctun/route"
)

// stateRoot holds one directory per network namespace an instance runs in. It is on tmpfs, so
// a reboot, which also resets every change mctun made, empties it.
const stateRoot = "/run/mctun"

// State is one namespace's directory:
//
//	lock          held (flock) by the running instance for its whole life; holds its pid
//	journal.json  the kernel changes to undo (route.Journal)
//	mctun.log     the log of an instance started by mctun up
type State struct {
	path string
	ns   string // the namespace, as net:[inode]
}

// soNetnsCookie is SO_NETNS_COOKIE (Linux 5.14), which golang.org/x/sys does not name yet.
const soNetnsCookie = 71

// CurrentState is the directory of the network namespace this process is in, so that
// instances started with ip netns exec in different namespaces never share one. It is named
// by the namespace's cookie, which unlike its inode number is never reused until reboot: a
// journal left by a crash in a namespace since deleted can never be replayed in a new one.
func CurrentState() (State, error) {
	link, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return State{}, fmt.Errorf("state: which network namespace: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return State{}, fmt.Errorf("state: which network namespace: %w", err)
	}
	defer unix.Close(fd)
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, soNetnsCookie)
	if err != nil {
		return State{}, fmt.Errorf("state: network namespace cookie (needs Linux 5.14): %w", err)
	}
	return State{path: filepath.Join(stateRoot, "netns-"+strconv.FormatUint(cookie, 10)), ns: link}, nil
}

func (d State) lockPath() string    { return filepath.Join(d.path, "lock") }
func (d State) journalPath() string { return filepath.Join(d.path, "journal.json") }

// LogPath is the log of an instance started by mctun up.
func (d State) LogPath() string { return filepath.Join(d.path, "mctun.log") }

// OpenLog opens the log of an instance started by mctun up for appending, making the
// directory if it is not there yet.
func (d State) OpenLog() (*os.File, error) {
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return os.OpenFile(d.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// Leftover reports whether the journal still lists changes to undo: an instance did not stop
// cleanly, or could not undo everything.
func (d State) Leftover() bool {
	j, err := route.OpenJournal(d.journalPath())
	return err != nil || !j.Empty()
}

// LockedError is what UndoLeftovers returns when an instance holds the namespace.
type LockedError struct{ PID int }

func (e *LockedError) Error() string {
	return fmt.Sprintf("mctun (pid %d) holds this network namespace", e.PID)
}

// UndoLeftovers undoes what an instance that did not stop cleanly left on the host, holding
// the lock so that no new instance starts meanwhile. It reports whether there was anything
// to undo.
func (d State) UndoLeftovers() (undone bool, err error) {
	lk, err := d.acquire()
	if errors.Is(err, errLocked) {
		pid, _ := d.Holder()
		return false, &LockedError{PID: pid}
	}
	if err != nil {
		return false, err
	}
	defer lk.release()
	journal, err := route.OpenJournal(d.journalPath())
	if err != nil {
		return false, err
	}
	if journal.Empty() {
		return false, nil
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		return false, fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	return true, route.NewHost(nl, journal).Undo()
}

// With a secret, the sending instance's epoch, the newest epoch of every source this host
// received from and that of every member that reported to it outlive the daemon here (see
// encap.NextEpoch and encap.Opener.SetEpoch). The sources' and the members' are kept apart,
// as their Openers are (datapath.NewReports).
func (d State) senderEpochPath() string  { return filepath.Join(d.path, "sender-epoch") }
func (d State) sourceEpochsPath() string { return filepath.Join(d.path, "source-epochs.json") }
func (d State) memberEpochsPath() string { return filepath.Join(d.path, "member-epochs.json") }

// nextSenderEpoch is the epoch of the sending instance starting now, recorded for the next.
func (d State) nextSenderEpoch() (uint64, error) {
	var prev uint64
	if b, err := os.ReadFile(d.senderEpochPath()); err == nil {
		prev, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	epoch := encap.NextEpoch(time.Now().UnixNano(), prev)
	if err := atomicfile.WriteFile(d.senderEpochPath(), []byte(strconv.FormatUint(epoch, 10)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("state: %w", err)
	}
	return epoch, nil
}

// epochs are the newest epochs seen per peer, as kept in the state directory.
type epochs map[netip.Addr]uint64

// loadEpochs reads the epochs kept at path; none if there are none.
func loadEpochs(path string) epochs {
	e := epochs{}
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &e) // a damaged file only costs the protection it gave
	}
	return e
}

func saveEpochs(path string, e epochs) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

// membersPath keeps a source's dynamic members from a clean stop to the next start, so that
// a restart (an upgrade, a change only a restart applies) costs them nothing: the next
// instance sends to them at once rather than after their next report, up to 10 s later.
func (d State) membersPath() string { return filepath.Join(d.path, "members.json") }

func (d State) saveMembers(entries []membership.Entry) error {
	b, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(d.membersPath(), b, 0o600)
}

// takeMembers returns the members the previous instance kept, and forgets them.
func (d State) takeMembers() []membership.Entry {
	var entries []membership.Entry
	if b, err := os.ReadFile(d.membersPath()); err == nil {
		json.Unmarshal(b, &entries) // a damaged file only costs the members their next report
	}
	os.Remove(d.membersPath())
	return entries
}

// lock is the running instance's claim on its namespace.
type lock struct{ f *os.File }

// errLocked is returned by acquire when another instance holds the namespace.
var errLocked = errors.New("locked")

// acquire takes the namespace's lock and writes our pid into it. The kernel releases a flock
// when its holder dies, however it dies, so a stale lock file never blocks a new instance.
func (d State) acquire() (*lock, error) {
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	f, err := os.OpenFile(d.lockPath(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("state: lock %s: %w", d.lockPath(), err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &lock{f: f}, nil
}

// release drops the claim. The file stays: removing it would race with a new instance that
// opened it already.
func (l *lock) release() {
	l.f.Truncate(0)
	l.f.Close()
}

// Holder reports whether an instance holds the lock, and its pid if it has written it yet.
func (d State) Holder() (pid int, held bool) {
	f, err := os.Open(d.lockPath())
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0, false
	}
	b := make([]byte, 32)
	n, _ := f.Read(b)
	pid, _ = strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid, true
}
