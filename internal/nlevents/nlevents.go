// Package nlevents follows the host's netlink events (addresses, links, routes, neighbours)
// for a routine that keeps something in line with them, and tells it when events were lost,
// so that it reads the tables afresh instead.
package nlevents

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/vishvananda/netlink"
)

// Sub is one netlink subscription a routine reads. The library closes its channel when the
// socket fails, above all when the kernel had more events for it than the socket held
// (ENOBUFS): events were lost, so the routine opens it again (Reopen) and reads the table
// afresh. Only that routine uses it.
type Sub[T any] struct {
	what string // "neighbour", for the log
	who  string // "kernel path", the log's prefix; "" for none
	open func(ch chan T, done <-chan struct{}, onErr func(error)) error
	done <-chan struct{}
	log  *slog.Logger

	C       chan T // nil while it is not open
	lastErr *error // the library's last error on C, set before it closes C
}

// Sizes of what events may queue before the kernel drops them: in the channel, and in the
// socket (SO_RCVBUFFORCE: the kernel counts each event's buffer, about 1 KiB).
const (
	Queue  = 256
	Socket = 1 << 20
)

// RetryEvery is how often a routine tries again to open a subscription Reopen could not.
const RetryEvery = 2 * time.Second

// New is a subscription of what (for the log) that open opens, until done is closed; who
// prefixes what it logs. Nothing is open until Start.
func New[T any](what, who string, done <-chan struct{}, log *slog.Logger, open func(ch chan T, done <-chan struct{}, onErr func(error)) error) *Sub[T] {
	return &Sub[T]{what: what, who: who, open: open, done: done, log: log}
}

// Addrs is a subscription of the host's address events.
func Addrs(who string, done <-chan struct{}, log *slog.Logger) *Sub[netlink.AddrUpdate] {
	return New("address", who, done, log, func(ch chan netlink.AddrUpdate, done <-chan struct{}, onErr func(error)) error {
		return netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr})
	})
}

// Links is a subscription of the host's link events.
func Links(who string, done <-chan struct{}, log *slog.Logger) *Sub[netlink.LinkUpdate] {
	return New("link", who, done, log, func(ch chan netlink.LinkUpdate, done <-chan struct{}, onErr func(error)) error {
		return netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr})
	})
}

// Routes is a subscription of the host's route events, with a socket of Socket bytes.
func Routes(who string, done <-chan struct{}, log *slog.Logger) *Sub[netlink.RouteUpdate] {
	return New("route", who, done, log, func(ch chan netlink.RouteUpdate, done <-chan struct{}, onErr func(error)) error {
		return netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{
			ErrorCallback: onErr, ReceiveBufferSize: Socket, ReceiveBufferForceSize: true})
	})
}

// Neighs is a subscription of the host's neighbour events, with a socket of Socket bytes.
func Neighs(who string, done <-chan struct{}, log *slog.Logger) *Sub[netlink.NeighUpdate] {
	return New("neighbour", who, done, log, func(ch chan netlink.NeighUpdate, done <-chan struct{}, onErr func(error)) error {
		return netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{
			ErrorCallback: onErr, ReceiveBufferSize: Socket, ReceiveBufferForceSize: true})
	})
}

// prefix is s's log prefix.
func (s *Sub[T]) prefix() string {
	if s.who == "" {
		return ""
	}
	return s.who + ": "
}

// Start opens the subscription (if it cannot, C stays nil).
func (s *Sub[T]) Start() error {
	ch := make(chan T, Queue)
	lastErr := new(error)
	if err := s.open(ch, s.done, func(err error) { *lastErr = err }); err != nil {
		return fmt.Errorf("%sfollow %s events: %w", s.prefix(), s.what, err)
	}
	s.C, s.lastErr = ch, lastErr
	return nil
}

// Reopen is for when C was found closed. Unless the routine is stopping, the events since
// the last one read are lost: it opens the subscription again and reports true if it could,
// when the routine must read the table afresh. If it could not, C is nil until Retry.
func (s *Sub[T]) Reopen() bool {
	s.C = nil
	select {
	case <-s.done:
		return false
	default:
	}
	s.log.Warn(s.prefix()+"lost "+s.what+" events: following them again, from a fresh read", "err", *s.lastErr)
	if err := s.Start(); err != nil {
		s.log.Error(s.prefix()+"cannot follow "+s.what+" events: trying again", "every", RetryEvery, "err", err)
		return false
	}
	return true
}

// Retry opens a subscription that Reopen could not, and reports true if it now is: the
// routine must then read the table afresh.
func (s *Sub[T]) Retry() bool {
	return s.C == nil && s.Start() == nil
}
