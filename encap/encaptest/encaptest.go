// Package encaptest is an in-memory twin of encap.Conn: a Network of Conns that hand tunnel
// packets to each other through channels, so the sender and receiver sides can be tested
// together without sockets or privileges.
package encaptest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrUnreachable is what WriteBatch reports for a destination with no Conn on the Network.
var ErrUnreachable = errors.New("encaptest: no such address")

// Network connects Conns by address.
type Network struct {
	mu    sync.Mutex
	conns map[netip.AddrPort]*Conn
}

// NewNetwork returns an empty Network.
func NewNetwork() *Network {
	return &Network{conns: make(map[netip.AddrPort]*Conn)}
}

// Conn is one endpoint. It copies what it sends, like a socket.
type Conn struct {
	net   *Network
	addr  netip.AddrPort
	queue chan datagram
	done  chan struct{}
	once  sync.Once
}

type datagram struct {
	from netip.AddrPort
	data []byte
}

// Listen attaches a Conn at addr; it queues up to 4096 packets, then drops like a full socket.
func (n *Network) Listen(addr netip.AddrPort) *Conn {
	c := &Conn{net: n, addr: addr, queue: make(chan datagram, 4096), done: make(chan struct{})}
	n.mu.Lock()
	n.conns[addr] = c
	n.mu.Unlock()
	return c
}

// Inject delivers a tunnel packet to the Conn at to as if sent from from.
func (n *Network) Inject(from, to netip.AddrPort, data []byte) error {
	n.mu.Lock()
	c := n.conns[to]
	n.mu.Unlock()
	if c == nil {
		return ErrUnreachable
	}
	select {
	case c.queue <- datagram{from, append([]byte(nil), data...)}:
	case <-c.done:
	default: // full: dropped, as a real socket would
	}
	return nil
}

// Addr is the Conn's address.
func (c *Conn) Addr() netip.AddrPort { return c.addr }

// BatchSize implements encap.Conn.
func (c *Conn) BatchSize() int { return 8 }

// ReadBatch implements encap.Conn.
func (c *Conn) ReadBatch(bufs [][]byte, sizes []int, addrs []netip.AddrPort) (int, error) {
	var n int
	select {
	case d := <-c.queue:
		sizes[0], addrs[0] = copy(bufs[0], d.data), d.from
		n = 1
	case <-c.done:
		return 0, fmt.Errorf("encaptest: %w", net.ErrClosed)
	}
	for n < len(bufs) {
		select {
		case d := <-c.queue:
			sizes[n], addrs[n] = copy(bufs[n], d.data), d.from
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// WriteBatch implements encap.Conn.
func (c *Conn) WriteBatch(bufs [][]byte, addrs []netip.AddrPort, errs []error) error {
	select {
	case <-c.done:
		return fmt.Errorf("encaptest: %w", net.ErrClosed)
	default:
	}
	for i := range bufs {
		errs[i] = c.net.Inject(c.addr, addrs[i], bufs[i])
	}
	return nil
}

// Close implements encap.Conn.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.net.mu.Lock()
		delete(c.net.conns, c.addr)
		c.net.mu.Unlock()
	})
	return nil
}
