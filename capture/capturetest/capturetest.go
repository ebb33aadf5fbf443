// Package capturetest is an in-memory twin of capture.Source: a test puts packets into
// Packets as if the host had sent them, and Read returns them.
package capturetest

import (
	"fmt"
	"net"
	"sync"
)

// Source implements capture.Source in memory.
type Source struct {
	Packets chan []byte

	done chan struct{}
	once sync.Once
}

// New returns a Source that holds up to queue packets.
func New(queue int) *Source {
	return &Source{Packets: make(chan []byte, queue), done: make(chan struct{})}
}

// BatchSize implements capture.Source.
func (s *Source) BatchSize() int { return 8 }

// MaxPacketSize implements capture.Source.
func (s *Source) MaxPacketSize() int { return 65535 }

// Read implements capture.Source.
func (s *Source) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case p := <-s.Packets:
		sizes[0] = copy(bufs[0][offset:], p)
	case <-s.done:
		return 0, fmt.Errorf("capturetest: %w", net.ErrClosed)
	}
	n := 1
	for ; n < len(bufs); n++ {
		select {
		case p := <-s.Packets:
			sizes[n] = copy(bufs[n][offset:], p)
		default:
			return n, nil
		}
	}
	return n, nil
}

// Done is closed once the Source is.
func (s *Source) Done() <-chan struct{} { return s.done }

// Close implements capture.Source.
func (s *Source) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}
