// Package route makes, records and undoes mctun's changes to the host's kernel state: links,
// routes and sysctls.
//
// Every change is written to a Journal on disk before it is made. Undo walks the journal
// backwards, so `mctun down` leaves the host as mctun found it, and so does the next
// `mctun up` after a crash (kill -9, power loss) that left the journal behind, but for the
// TUN device, which it takes over. All netlink work goes through an injected
// *netlink.Handle, never the package-level calls, so the namespace acted on is explicit.
package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"mctun/internal/atomicfile"
)

// Change is one change to the kernel, with what is needed to undo it. Op says which:
//
//   - "link": mctun created link Dev (ip link del DEV undoes it; the TUN, persistent while
//     mctun runs, outlives a crash: see Host.UndoKeeping);
//   - "route": mctun installed Route (ip route del ...), and Displaced, if set, is the route of
//     the same destination and metric it replaced (ip route add ... puts it back);
//   - "sysctl": mctun set Key from Old to New (sysctl -w KEY=OLD undoes it);
//   - "qdisc": mctun added a clsact qdisc to Dev (tc qdisc del dev DEV clsact undoes it,
//     with every filter on it);
//   - "filter": mctun attached a BPF program to Dev's Hook, ingress or egress, with a
//     direct-action filter of handle Handle (1 when not given; tc filter del dev DEV HOOK
//     prio 19779 handle HANDLE bpf undoes it). Unlike a tcx link, a filter outlives the
//     process that attached it.
type Change struct {
	Op        string `json:"op"`
	Dev       string `json:"dev,omitempty"`
	Hook      string `json:"hook,omitempty"`
	Handle    uint32 `json:"handle,omitempty"`
	Route     *Spec  `json:"route,omitempty"`
	Displaced *Spec  `json:"displaced,omitempty"`
	Key       string `json:"key,omitempty"`
	Old       string `json:"old,omitempty"`
	New       string `json:"new,omitempty"`
}

// Journal is the on-disk list of changes one mctun instance made, in order.
type Journal struct {
	path    string
	Changes []Change `json:"changes"`
}

// OpenJournal reads the journal at path; a missing file is an empty journal.
func OpenJournal(path string) (*Journal, error) {
	j := &Journal{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := json.Unmarshal(data, j); err != nil {
		return nil, fmt.Errorf("journal: %s: %w", path, err)
	}
	return j, nil
}

// Empty reports whether the journal records nothing to undo.
func (j *Journal) Empty() bool { return len(j.Changes) == 0 }

// record appends c and makes it durable before the caller applies it. The file is written
// aside and renamed over, so a crash never leaves half a journal.
func (j *Journal) record(c Change) error {
	j.Changes = append(j.Changes, c)
	if err := j.save(); err != nil {
		j.Changes = j.Changes[:len(j.Changes)-1]
		return err
	}
	return nil
}

// forget drops the newest change once it has been undone.
func (j *Journal) forget() error {
	j.Changes = j.Changes[:len(j.Changes)-1]
	if len(j.Changes) == 0 {
		return j.Remove()
	}
	return j.save()
}

func (j *Journal) save() error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := atomicfile.WriteFile(j.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Remove deletes the journal file.
func (j *Journal) Remove() error {
	if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}
