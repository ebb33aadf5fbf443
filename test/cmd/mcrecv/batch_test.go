package main

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// A batch reads what waits in one call, says which datagram was cut short, and returns
// EAGAIN when none comes: at once with nowait, after pollInterval without (or EINTR). (A
// datagram socket pair, so that the test sends nothing on any network.)
func TestBatchRead(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "receiver")
	defer f.Close()
	defer unix.Close(fds[1])
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := blocking(raw); err != nil {
		t.Fatal(err)
	}
	sent := [][]byte{[]byte("one"), []byte("two"), bytes.Repeat([]byte("x"), 40)}
	for _, d := range sent {
		if _, err := unix.Write(fds[1], d); err != nil {
			t.Fatal(err)
		}
	}
	b := newBatch(4, 16)
	n, err := b.read(raw, false)
	if err != nil || n != len(sent) {
		t.Fatalf("read = %d, %v; want %d datagrams", n, err, len(sent))
	}
	for i, d := range sent {
		got, _, trunc := b.message(i)
		want, wantTrunc := d, false
		if len(d) > 16 {
			want, wantTrunc = d[:16], true
		}
		if !bytes.Equal(got, want) || trunc != wantTrunc {
			t.Errorf("message %d = %q, cut short %v; want %q, %v", i, got, trunc, want, wantTrunc)
		}
	}
	if n, err := b.read(raw, true); n != 0 || !errors.Is(err, unix.EAGAIN) {
		t.Errorf("nowait, nothing waiting: read = %d, %v; want EAGAIN", n, err)
	}
	// Waiting, it may also end early for a signal: Go's runtime sends its threads some.
	if n, err := b.read(raw, false); n != 0 || !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
		t.Errorf("nothing waiting: read = %d, %v; want EAGAIN or EINTR", n, err)
	}
}
