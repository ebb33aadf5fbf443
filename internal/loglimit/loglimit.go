// Package loglimit keeps a repeated event from flooding the log: a Limiter lets lines
// through at up to a burst at once and then at a steady rate, and the next line it lets
// through says how many it held back meanwhile.
package loglimit

import (
	"sync"
	"time"
)

// Limiter is a token bucket of log lines. Its zero value lets one line through per 10 s.
// It is safe for concurrent use.
type Limiter struct {
	Burst int           // lines let through at once after a quiet spell; 0 means 1
	Every time.Duration // one more line is allowed per Every; 0 means 10 s

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// Allow reports whether to log now and, if so, how many lines were held back since the
// last one let through.
func (l *Limiter) Allow() (ok bool, suppressed int) { return l.allowAt(time.Now()) }

func (l *Limiter) allowAt(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	burst, every := float64(max(l.Burst, 1)), l.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	if l.last.IsZero() {
		l.tokens = burst
	} else {
		l.tokens = min(burst, l.tokens+float64(now.Sub(l.last))/float64(every))
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
