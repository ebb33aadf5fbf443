// Package tun is the receiver side's way into the host's network stack: a layer-3 TUN device.
//
// A packet written to the device arrives in the host as if received on the interface, so a
// multicast inner packet is delivered to every local socket that joined its group on the TUN.
// A packet the host routes out of the device (its own multicast, once 224.0.0.0/4 points into
// the TUN) can be read from it.
package tun

// Device is a TUN device carrying raw IPv4 packets, without any packet-information prefix.
type Device interface {
	// Name is the interface name, as ip link shows it.
	Name() string

	// Read reads up to len(bufs) packets that the host sent out of the device. Packet i is
	// copied to bufs[i][offset:] and its length stored in sizes[i]. Single reader. After
	// Close it returns an error that wraps net.ErrClosed.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)

	// Write injects bufs[i][offset:] for every i into the host, in order, and returns how many
	// packets it wrote. Single writer. A packet the kernel refuses stops the batch with an
	// error; the caller counts it and carries on with the rest.
	Write(bufs [][]byte, offset int) (n int, err error)

	// BatchSize is the most packets one Read returns and the batch Write takes best.
	BatchSize() int

	// MaxPacketSize is the longest packet Read returns.
	MaxPacketSize() int

	// Close lets go of the device, which the kernel removes unless it is persistent, and
	// unblocks pending calls.
	Close() error
}
