package control

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
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
