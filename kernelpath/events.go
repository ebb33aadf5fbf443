package kernelpath

import (
	"fmt"
	"log/slog"
	"time"
)

// subscription is one netlink subscription a routine reads: neighbour, route or address
// events. The library closes its channel when the socket fails, above all when the kernel had
// more events for it than the socket held (ENOBUFS): events were lost, so the routine opens
// it again and reads the table afresh. Only that routine uses it.
type subscription[T any] struct {
	what string // "neighbour", for the log
	open func(ch chan T, done <-chan struct{}, onErr func(error)) error
	done <-chan struct{}
	log  *slog.Logger

	C       chan T // nil while it is not open
	lastErr *error // the library's last error on C, set before it closes C
}

// Sizes of what events may queue before the kernel drops them: in the channel, and in the
// socket (SO_RCVBUFFORCE: the kernel counts each event's buffer, about 1 KiB).
const (
	eventQueue  = 256
	eventSocket = 1 << 20
)

// start opens the subscription (if it cannot, C stays nil).
func (s *subscription[T]) start() error {
	ch := make(chan T, eventQueue)
	lastErr := new(error)
	if err := s.open(ch, s.done, func(err error) { *lastErr = err }); err != nil {
		return fmt.Errorf("kernel path: follow %s events: %w", s.what, err)
	}
	s.C, s.lastErr = ch, lastErr
	return nil
}

// reopen is for when C was found closed. Unless the routine is stopping, the events since
// the last one read are lost: it opens the subscription again and reports true if it could,
// when the routine must read the table afresh. If it could not, C is nil until retry.
func (s *subscription[T]) reopen() bool {
	s.C = nil
	select {
	case <-s.done:
		return false
	default:
	}
	s.log.Warn("kernel path: lost "+s.what+" events: following them again, from a fresh read", "err", *s.lastErr)
	if err := s.start(); err != nil {
		s.log.Error("kernel path: cannot follow "+s.what+" events: trying again", "every", retryEvery, "err", err)
		return false
	}
	return true
}

// retry opens a subscription that reopen could not, and reports true if it now is: the
// routine must then read the table afresh.
func (s *subscription[T]) retry() bool {
	return s.C == nil && s.start() == nil
}

// retryEvery is how often a routine tries again to open a subscription reopen could not.
const retryEvery = 2 * time.Second
