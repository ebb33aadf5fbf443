package encap

import "net/netip"

// Conn carries tunnel packets between mctun instances: a UDP socket that sends and receives
// in batches. Outer packets are sent without DF, so the kernel fragments a full-size inner
// packet and the peer reassembles it.
//
// ReadBatch has a single caller at a time; WriteBatch may be called from several goroutines.
type Conn interface {
	// ReadBatch reads up to len(bufs) tunnel packets: packet i is bufs[i][:sizes[i]] and came
	// from addrs[i]. It blocks until at least one arrives. After Close it returns an error
	// that wraps net.ErrClosed.
	ReadBatch(bufs [][]byte, sizes []int, addrs []netip.AddrPort) (n int, err error)

	// WriteBatch sends bufs[i] to addrs[i] for every i; bufs may share backing arrays (one
	// tunnel packet fanned out to many members). A message that fails does not hold back
	// the others: errs[i] is its error, nil once sent. The returned error is for the whole
	// batch (the Conn closed) and wraps net.ErrClosed.
	WriteBatch(bufs [][]byte, addrs []netip.AddrPort, errs []error) error

	// BatchSize is the most messages one call takes best.
	BatchSize() int

	// Close releases the socket and unblocks a pending ReadBatch.
	Close() error
}
