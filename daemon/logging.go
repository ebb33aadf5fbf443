package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"mctun/config"
)

// logOutput is the daemon's slog.Handler: text or JSON, to stderr (where journald or mctun up's
// log file takes it) or to a file, from a level up, as [log] says; a reload may change all
// three. The packet paths never log per packet; they log state changes, rate-limited.
type logOutput struct {
	stderr io.Writer
	inner  atomic.Pointer[slog.Handler]

	mu   sync.Mutex // serializes commits and Close
	file *os.File
}

func newLogOutput(stderr io.Writer) *logOutput {
	o := &logOutput{stderr: stderr}
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	o.inner.Store(&h)
	return o
}

// configure switches to what c says.
func (o *logOutput) configure(c config.Log) error {
	commit, _, err := o.prepare(c)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// prepare opens what c says to log to, which can fail, and changes nothing: commit switches
// to it and closes the log file of before, if any; abort closes what prepare opened. One of
// the two must be called.
func (o *logOutput) prepare(c config.Log) (commit, abort func(), err error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	w, file := o.stderr, (*os.File)(nil)
	if c.File != "" {
		f, err := os.OpenFile(c.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log.file: %w", err)
		}
		w, file = f, f
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	commit = func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.inner.Store(&h)
		if o.file != nil {
			o.file.Close()
		}
		o.file = file
	}
	abort = func() {
		if file != nil {
			file.Close()
		}
	}
	return commit, abort, nil
}

// Close closes the log file, if there is one.
func (o *logOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file == nil {
		return nil
	}
	return o.file.Close()
}

func (o *logOutput) Enabled(ctx context.Context, l slog.Level) bool {
	return (*o.inner.Load()).Enabled(ctx, l)
}

func (o *logOutput) Handle(ctx context.Context, r slog.Record) error {
	return (*o.inner.Load()).Handle(ctx, r)
}

// WithAttrs and WithGroup bind to the handler of the moment: mctun derives no loggers, so
// nothing outlives a reconfiguration that way.
func (o *logOutput) WithAttrs(attrs []slog.Attr) slog.Handler {
	return (*o.inner.Load()).WithAttrs(attrs)
}

func (o *logOutput) WithGroup(name string) slog.Handler { return (*o.inner.Load()).WithGroup(name) }
