package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

func TestCallAndPeer(t *testing.T) {
	name := fmt.Sprintf("@mctun-test-%d", rand.Uint64())
	srv, err := Listen(name, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve(func(peer Peer, req Request) (any, error) {
		switch req.Op {
		case "whoami":
			return peer, nil
		case "fail":
			return nil, ErrNotPermitted
		}
		return nil, fmt.Errorf("unknown operation %q", req.Op)
	})

	var peer Peer
	if err := Call(name, "whoami", nil, &peer); err != nil {
		t.Fatal(err)
	}
	if peer.PID != os.Getpid() || peer.UID != os.Getuid() || (peer.UID == 0 && !peer.Privileged) {
		t.Fatalf("peer = %+v, want this process (pid %d uid %d)", peer, os.Getpid(), os.Getuid())
	}
	if err := Call(name, "fail", nil, nil); err == nil || err.Error() != ErrNotPermitted.Error() {
		t.Fatalf("Call(fail) = %v, want the handler's error", err)
	}
	if err := Call(name+"-absent", "whoami", nil, nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Call to nobody = %v, want ErrNotRunning", err)
	}
	if _, err := Listen(name, nil); err == nil {
		t.Fatal("a second Listen on the same name succeeded")
	}
}

type countdown int

// Stream writes its number, then one line a millisecond until the caller hangs up.
func (c countdown) Stream(ctx context.Context, w io.Writer) error {
	fmt.Fprintf(w, "%d\n", int(c))
	for {
		select {
		case <-ctx.Done():
			close(hungUp)
			return nil
		case <-time.After(time.Millisecond):
			if _, err := io.WriteString(w, "tick\n"); err != nil {
				return err
			}
		}
	}
}

var hungUp = make(chan struct{})

func TestCallStream(t *testing.T) {
	name := fmt.Sprintf("@mctun-test-%d", rand.Uint64())
	srv, err := Listen(name, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve(func(peer Peer, req Request) (any, error) { return countdown(42), nil })
	r, err := CallStream(name, "stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(r)
	if !sc.Scan() || sc.Text() != "42" || !sc.Scan() || sc.Text() != "tick" {
		t.Fatalf("stream began %q, want 42 then tick", sc.Text())
	}
	r.Close()
	select {
	case <-hungUp:
	case <-time.After(2 * time.Second):
		t.Fatal("the stream did not end when the caller hung up")
	}
}
