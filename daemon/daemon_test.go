package daemon

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"mctun/igmp"
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

// TestMembershipNotAppliedOnceStopping: once stop has begun, routineMembership hands the
// sender side no more groups, as stop closes it and unloads the kernel path meanwhile. It
// used to apply a change it found signalled beside stopping, one time in two or three.
func TestMembershipNotAppliedOnceStopping(t *testing.T) {
	d, _ := joiningSource(t)
	close(d.stopping)
	for i := range 20 {
		member := netip.AddrFrom4([4]byte{198, 18, 3, byte(i + 1)})
		d.joins.Report(member, []igmp.Record{{Type: igmp.ChangeToExclude, Group: netip.MustParseAddr("224.1.2.3")}})
		d.routineMembership() // returns: stop has begun
		if n := d.sender.View().Stats().Groups[0].MemberCount; n != 1 {
			t.Fatalf("after stop began, routineMembership gave the sender side %d members; want the static one only", n)
		}
	}
}
