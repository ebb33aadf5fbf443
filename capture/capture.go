// Package capture takes outgoing IPv4 multicast packets from the host for the sender side.
//
// Two implementations exist: AFPacket, an AF_PACKET socket with a memory-mapped ring on the
// source interface, and the TUN device itself (tun.Device satisfies Source), which carries the
// host's own multicast once a member's 224.0.0.0/4 route points into it.
package capture

// Source yields inner packets: outgoing IPv4 multicast, whole, with complete checksums.
//
// Read has a single caller at a time. Implementations filter what they can in the kernel;
// callers still validate every packet.
type Source interface {
	// Read reads up to len(bufs) packets. Packet i is copied to bufs[i][offset:] and its
	// length stored in sizes[i]; the offset bytes in front of it are headroom for the tunnel
	// header. Read blocks until at least one packet is available. After Close it returns an
	// error that wraps net.ErrClosed.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)

	// BatchSize is the most packets one Read returns; callers size bufs to it.
	BatchSize() int

	// MaxPacketSize is the longest packet Read returns; callers size each buffer to it,
	// plus their headroom.
	MaxPacketSize() int

	// Close releases the source and unblocks a pending Read.
	Close() error
}
