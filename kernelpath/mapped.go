package kernelpath

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// mapped is an array map (created BPF_F_MMAPABLE) mapped into this process, so that user
// space reads its counters, and takes sequence numbers, with plain atomic operations on the
// memory the programs update, and no system call. The kernel lays out an array's values at a
// stride of their size rounded up to 8 bytes.
type mapped struct {
	mem    []byte
	stride uintptr
}

func mapArray(m *ebpf.Map) (*mapped, error) {
	stride := (uintptr(m.ValueSize()) + 7) &^ 7
	size := int(stride) * int(m.MaxEntries())
	size = (size + unix.Getpagesize() - 1) &^ (unix.Getpagesize() - 1)
	mem, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s into memory: %w", m, err)
	}
	return &mapped{mem: mem, stride: stride}, nil
}

// word returns the i-th 64-bit word of value n. The programs change the words with atomic
// adds; so must everyone else.
func (m *mapped) word(n uint32, i int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&m.mem[uintptr(n)*m.stride+uintptr(i)*8]))
}

// uint32At returns value n as a 32-bit word.
func (m *mapped) uint32At(n uint32) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&m.mem[uintptr(n)*m.stride]))
}

// unmap releases the memory; no pointer from word or uint32At may be used after it.
func (m *mapped) unmap() error {
	if m == nil || m.mem == nil {
		return nil
	}
	err := unix.Munmap(m.mem)
	m.mem = nil
	return err
}
