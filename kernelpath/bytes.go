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
	var per []uint64
	for i, name := range names {
		out[name] = 0
		if m.Lookup(uint32(i), &per) == nil {
			for _, n := range per {
				out[name] += n
			}
		}
	}
	return out
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
		return errors.New("loading BPF programs is not permitted: it needs CAP_BPF and CAP_NET_ADMIN (or root)")
	}
	return fmt.Errorf("probing the kernel for BPF: %w", err)
}

// probeTCX tries to attach prog to an interface that cannot exist: a kernel with tcx says
// there is no such device, one without says it does not support it.
func probeTCX(prog *ebpf.Program) error {
	l, err := link.AttachTCX(link.TCXOptions{Interface: math.MaxInt32, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err == nil {
		l.Close()
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return errors.New("the kernel cannot attach programs with tcx (Linux 6.6 and later can)")
	}
	return nil
}

// Attachment is one of the kernel path's programs attached to an interface.
type Attachment struct {
	Program   string `json:"program"`
	ID        uint32 `json:"id"` // the kernel's program id, as bpftool prog show lists it
	Interface string `json:"interface"`
	Hook      string `json:"hook"` // "ingress" or "egress" (tcx)
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
