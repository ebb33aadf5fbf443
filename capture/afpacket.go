package capture

import "errors"

// ErrNoInterface is returned by OpenAFPacket for an interface name the socket's network
// namespace does not have.
var ErrNoInterface = errors.New("no such network interface")

// Defaults for Options.
const (
	DefaultRingBytes = 2 << 20
	DefaultBatchSize = 64
)

// Options tunes an AFPacket. The zero value gives the defaults.
type Options struct {
	// RingBytes is the size of the receive ring shared with the kernel; 0 means
	// DefaultRingBytes. It is rounded up to whole blocks and to at least 16 frames;
	// a frame holds one packet of up to the interface's MTU (2 KiB for an MTU of 1500). A full ring drops packets, which Stats reports as Drops.
	RingBytes int

	// BatchSize is the most packets one Read returns; 0 means DefaultBatchSize.
	BatchSize int
}

// Stats are cumulative counters of an AFPacket since it was opened.
type Stats struct {
	Packets         uint64 // packets returned by Read
	Drops           uint64 // packets the kernel dropped because the ring was full
	Truncated       uint64 // packets skipped: cut short by the ring frame, or longer than the caller's buffer
	ChecksumSkipped uint64 // packets skipped: checksum left to the NIC, and not completable (see CompleteChecksum)
}
