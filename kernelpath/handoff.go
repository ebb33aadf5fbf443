package kernelpath

import (
	"fmt"
	"sync/atomic"

	"github.com/vishvananda/netlink"

	"mctun/capture"
	"mctun/tun"
)

// HandoffName is the TUN device through which the sender side in the kernel hands user space
// the packets it does not forward itself.
const HandoffName = "mctun-handoff"

// handoffQueue is the hand-off TUN's queue, in packets: as many as the user-space path's
// capture ring holds (capture.DefaultRingBytes of 2 KiB frames), for the same bursts.
const handoffQueue = 1024

// Handoff is the sender side's hand-off TUN, as the user-space sender reads it (a
// capture.Source): on the kernel path it takes the place of the AF_PACKET capture. The
// program on the source interface sends it a copy of each outgoing multicast packet that it
// does not forward itself (hand_off in bpf/sender.c): the slow cases, to forward, and the
// packets of no group, to count. A capture on the interface would see every tunnel packet
// the kernel sends as well, and the kernel would copy each one to it in the sending
// application's own call (a fifth of its top rate at 64 bytes, measured); the hand-off
// sees only what user space is to take.
//
// It is not persistent: the kernel removes it when mctun closes it or dies, so that it is
// never left behind. It is up, with no address and IPv6 off: nothing but the program's
// copies enters it.
type Handoff struct {
	*tun.Native
	index   uint32
	packets atomic.Uint64
	drops   func() uint64
}

// openHandoff creates the hand-off TUN, which host readies; drops counts the copies it did
// not take.
func openHandoff(host Host, drops func() uint64) (*Handoff, error) {
	dev, err := tun.Create(HandoffName)
	if err != nil {
		return nil, fmt.Errorf("kernel path: the hand-off: %w", err)
	}
	index, err := host.ConfigureHandoff(HandoffName, handoffQueue)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("kernel path: the hand-off %s: %w", HandoffName, err)
	}
	return &Handoff{Native: dev, index: uint32(index), drops: drops}, nil
}

// Read implements capture.Source.
func (h *Handoff) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := h.Native.Read(bufs, sizes, offset)
	h.packets.Add(uint64(n))
	return n, err
}

// Stats counts the packets read, and as Drops the copies the hand-off did not take because
// user space fell behind and its queue was full, what a capture's full ring would drop: those
// the program could not send into it, and those its driver dropped, having no room.
func (h *Handoff) Stats() capture.Stats {
	st := capture.Stats{Packets: h.packets.Load(), Drops: h.drops()}
	if l, err := netlink.LinkByIndex(int(h.index)); err == nil && l.Attrs().Statistics != nil {
		st.Drops += l.Attrs().Statistics.TxDropped
	}
	return st
}
