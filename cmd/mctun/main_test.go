package main

import (
	"bufio"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestStopUnready: up stops a daemon that was not ready in time with SIGTERM, so that its
// own stop undoes the host changes, and kills it only when it does not end; either way it
// undoes what is left once the daemon has ended, and says what came of it.
func TestStopUnready(t *testing.T) {
	const wait = 200 * time.Millisecond
	for _, tt := range []struct {
		name   string
		trap   string // what the daemon's stand-in, sh, runs before it says it is ready
		undo   error
		signal syscall.Signal // that ended it
		want   string
	}{
		{"stops on SIGTERM", "", nil, syscall.SIGTERM,
			"stopped it; the host is restored"},
		{"ignores SIGTERM", "trap '' TERM;", nil, syscall.SIGKILL,
			"it did not stop within 200ms of SIGTERM and was killed; the host is restored"},
		{"undo fails", "", errors.New("host: ip link del mctun0: device or resource busy"), syscall.SIGTERM,
			"stopped it, but not every change to the host could be undone (host: ip link del mctun0: device or resource busy): mctun down tries again"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tt.trap+" echo ready; exec sleep 30")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill() })
			if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			endedFirst := false
			got := stopUnready(cmd, wait, func() (bool, error) {
				endedFirst = cmd.ProcessState != nil
				return tt.undo == nil, tt.undo
			})
			if got != tt.want {
				t.Errorf("stopUnready says %q, want %q", got, tt.want)
			}
			if !endedFirst {
				t.Error("undo ran before the daemon had ended")
			}
			if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !st.Signaled() || st.Signal() != tt.signal {
				t.Errorf("the daemon ended with %v, want %v", cmd.ProcessState, tt.signal)
			}
		})
	}
}
