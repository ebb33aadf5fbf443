package kernelpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// be32 is an address as the programs hold it: its bytes in network order, in a native word.
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// be16 is a port in network order, in a native half-word.
func be16(p uint16) uint16 {
	return binary.NativeEndian.Uint16([]byte{byte(p >> 8), byte(p)})
}

// addrOf is the inverse of be32.
func addrOf(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// loadError says why the kernel refused a side's programs, with the verifier's last words
// when it was the verifier.
func loadError(side string, err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) && len(ve.Log) > 0 {
		return fmt.Errorf("the kernel refused the %s side's programs: %w: %s", side, ve.Cause, ve.Log[len(ve.Log)-1])
	}
	return fmt.Errorf("the kernel refused the %s side's programs: %w", side, err)
}

// percpuCounts reads a per-CPU array of counters, summed over the CPUs, by name.
func percpuCounts(m *ebpf.Map, names []string) map[string]uint64 {
	out := make(map[string]uint64, len(names))
	for i, name := range names {
		out[name] = percpuCount(m, uint32(i))
	}
	return out
}

// percpuCount is counter i of a per-CPU array of counters, all CPUs together.
func percpuCount(m *ebpf.Map, i uint32) uint64 {
	var per []uint64
	var sum uint64
	if m.Lookup(i, &per) == nil {
		for _, n := range per {
			sum += n
		}
	}
	return sum
}

// mapBytes is the memory the kernel accounts to maps.
func mapBytes(maps ...*ebpf.Map) uint64 {
	var total uint64
	for _, m := range maps {
		if info, err := m.Info(); err == nil {
			if n, ok := info.Memlock(); ok {
				total += n
			}
		}
	}
	return total
}

// supported says what the kernel lacks that the programs need, if anything, in words.
func supported() error {
	err := features.HaveProgramHelper(ebpf.SchedCLS, asm.FnLoop)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return errors.New("the kernel lacks bpf_loop (Linux 5.17 and later have it)")
	case errors.Is(err, unix.EPERM):
		return errors.New("loading BPF programs is not permitted: it needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (or root)")
	}
	return fmt.Errorf("probing the kernel for BPF: %w", err)
}

// haveTCX tries to attach prog to an interface that cannot exist: a kernel with tcx says
// there is no such device, one without says it does not support it.
func haveTCX(prog *ebpf.Program) bool {
	l, err := link.AttachTCX(link.TCXOptions{Interface: math.MaxInt32, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		l.Close()
	}
	return !errors.Is(err, ebpf.ErrNotSupported)
}

// Hooks says how the programs are attached: with tcx, whose links go with mctun whatever way
// it ends (Linux 6.6 and later), or, on a kernel without it, with tc: a clsact qdisc and a
// direct-action filter, which ClsAct attaches and journals, since a filter outlives mctun.
type Hooks struct {
	ClsAct ClsAct
	// ForceClsAct attaches with tc where tcx is there too: the older kernels' way, tested on
	// a new one.
	ForceClsAct bool
}

// ClsAct attaches a program to dev's hook ("ingress" or "egress") with tc, as the filter of
// the given handle. route.Host does.
type ClsAct interface {
	AttachBPF(dev, hook string, handle uint32, fd int, name string) error
}

// Host readies the links the kernel path creates: its hand-off (see Handoff), given the
// length of its queue, returning its ifindex. route.Host does.
type Host interface {
	ConfigureHandoff(name string, queue int) (int, error)
}

// The handles of the programs' filters when tc attaches them: the sender side's on the source
// interface's ingress, beside the receiver side's where the tunnel arrives on it too, runs
// second, since it takes only the packets its egress program sent round.
const (
	firstFilter  = 1
	secondFilter = 2
)

// attach attaches prog to ifindex (named ifname) at hook, and returns the tcx link to close,
// or nil when tc holds it.
func (h Hooks) attach(prog *ebpf.Program, ifindex int, ifname, hook string, filter uint32) (link.Link, Attachment, error) {
	a := attachment(prog, ifname, hook)
	if !h.ForceClsAct && haveTCX(prog) {
		at := ebpf.AttachTCXEgress
		if hook == "ingress" {
			at = ebpf.AttachTCXIngress
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at, Anchor: link.Head()})
		if err != nil {
			return nil, a, fmt.Errorf("kernel path: attach to %s's %s: %w", ifname, hook, err)
		}
		a.With = "tcx"
		return l, a, nil
	}
	if h.ClsAct == nil {
		return nil, a, errors.New("kernel path: the kernel cannot attach programs with tcx (Linux 6.6 and later can), and tc is not at hand")
	}
	if err := h.ClsAct.AttachBPF(ifname, hook, filter, prog.FD(), a.Program); err != nil {
		return nil, a, fmt.Errorf("kernel path: %w", err)
	}
	a.With = "tc"
	return nil, a, nil
}

// Attachment is one of the kernel path's programs attached to an interface.
type Attachment struct {
	Program   string `json:"program"`
	ID        uint32 `json:"id"` // the kernel's program id, as bpftool prog show lists it
	Interface string `json:"interface"`
	Hook      string `json:"hook"` // "ingress" or "egress"
	With      string `json:"with"` // "tcx", or "tc" (a clsact filter)
}

// attachment describes prog attached to ifname's hook.
func attachment(prog *ebpf.Program, ifname, hook string) Attachment {
	a := Attachment{Interface: ifname, Hook: hook}
	if info, err := prog.Info(); err == nil {
		a.Program = info.Name
		if id, ok := info.ID(); ok {
			a.ID = uint32(id)
		}
	}
	return a
}
