package nlevents

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A subscription whose channel the library closed is opened again, the loss logged with the
// library's error, and the routine told to read afresh; one that cannot be opened is retried;
// one closed because the routine stops is left closed, and nothing logged.
func TestReopens(t *testing.T) {
	var log strings.Builder // Reopen logs in the caller's goroutine
	done := make(chan struct{})
	var opened []chan int
	var onErrs []func(error)
	fail := false
	s := New("test", "", done, slog.New(slog.NewTextHandler(&log, nil)),
		func(ch chan int, _ <-chan struct{}, onErr func(error)) error {
			if fail {
				return errors.New("no socket")
			}
			opened, onErrs = append(opened, ch), append(onErrs, onErr)
			return nil
		})
	if err := s.Start(); err != nil || s.C != opened[0] {
		t.Fatal("start did not open the subscription")
	}
	// The library reports the error, then closes the channel.
	onErrs[0](unix.ENOBUFS)
	close(opened[0])
	if _, ok := <-s.C; ok {
		t.Fatal("the closed channel gave a value")
	}
	if !s.Reopen() || len(opened) != 2 || s.C != opened[1] {
		t.Fatalf("reopen: opened %d times, C is the new channel: %v; want 2, true", len(opened), s.C == opened[1])
	}
	if got := log.String(); !strings.Contains(got, "lost test events") || !strings.Contains(got, "no buffer space available") {
		t.Errorf("the log says %q, want the loss and ENOBUFS", got)
	}
	before := log.String()

	fail = true
	close(opened[1])
	if s.Reopen() || s.C != nil {
		t.Fatal("reopen reported success where open failed")
	}
	if got := strings.TrimPrefix(log.String(), before); !strings.Contains(got, "cannot follow test events: trying again") || !strings.Contains(got, "no socket") {
		t.Errorf("the log says %q, want that it cannot and will try again", got)
	}
	if s.Retry() {
		t.Fatal("retry reported success where open failed")
	}
	fail = false
	if !s.Retry() || s.C != opened[2] {
		t.Fatal("retry did not open the subscription")
	}
	if s.Retry() {
		t.Fatal("retry of an open subscription opened it again")
	}

	close(done)
	before = log.String()
	close(opened[2])
	if s.Reopen() || s.C != nil || len(opened) != 3 {
		t.Errorf("stopping: reopen opened the subscription again")
	}
	if log.String() != before {
		t.Errorf("stopping: the log says %q", strings.TrimPrefix(log.String(), before))
	}
}
