package datapath

import (
	"sync"
	"time"
)

// logEvery is how often one logLimiter lets a line through.
const logEvery = 10 * time.Second

// logLimiter keeps a repeated event from flooding the log: one line per logEvery at most,
// the next one saying how many were held back in between.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now and, if so, how many lines were held back since the last.
func (l *logLimiter) allow() (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < logEvery {
		l.suppressed++
		return false, 0
	}
	l.last, suppressed, l.suppressed = now, l.suppressed, 0
	return true, suppressed
}
