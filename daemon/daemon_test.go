package daemon

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestWaitPathsAfterFailure: when one packet path failed and Run took its end, stop waits for
// the others only, and finds them all ended, so that it unloads the kernel path: it used to
// wait for the one already taken too, 5 s in vain, and then leave the kernel path loaded.
func TestWaitPathsAfterFailure(t *testing.T) {
	d := &daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), failed: make(chan error, 2)}
	release := make(chan struct{})
	d.run("receiver side", func() error { return errors.New("the TUN is gone") })
	d.run("report flow", func() error { <-release; return nil })
	d.pathFailed(<-d.failed) // as Run takes it
	close(release)           // as stop's closers end the other
	start := time.Now()
	if !d.waitPaths(2 * time.Second) {
		t.Fatalf("waitPaths = false after %v; want every path seen to end", time.Since(start))
	}
	if d.routines != 0 {
		t.Fatalf("routines = %d after waitPaths, want 0", d.routines)
	}
}
