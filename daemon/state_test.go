package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"mctun/config"
	"mctun/encap"
)

// TestKeptEpochs: the members' epochs, kept by one instance's report Opener, make the next
// instance's refuse a report of a member's earlier run; the sources' file is not touched.
func TestKeptEpochs(t *testing.T) {
	auth, err := encap.NewAuth(make([]byte, encap.MinSecret), 7)
	if err != nil {
		t.Fatal(err)
	}
	member := netip.MustParseAddr("198.18.2.2")
	seal := func(epoch uint64) []byte {
		s, err := auth.NewSealer(epoch, false)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, encap.Headroom+1+encap.Tailroom)
		return s.Seal(buf, 1, encap.Header{Key: 7})
	}
	d := &daemon{cfg: &config.Config{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), state: State{path: t.TempDir()}}
	earlier := seal(1000)
	open, onEpoch := d.keptEpochsOpener(auth, d.state.memberEpochsPath(), "members")
	res, _, err := open.Open(member.As4(), seal(2000))
	if err != nil || !res.New {
		t.Fatalf("the member's current run: %+v, %v", res, err)
	}
	onEpoch(member, res.Epoch) // as datapath.Reports calls it

	next, _ := d.keptEpochsOpener(auth, d.state.memberEpochsPath(), "members")
	if _, _, err := next.Open(member.As4(), earlier); err != encap.ErrReplay {
		t.Fatalf("the next instance opened a report of the member's earlier run: %v, want %v", err, encap.ErrReplay)
	}
	if got := loadEpochs(d.state.sourceEpochsPath()); len(got) != 0 {
		t.Errorf("the sources' epochs = %v, want none", got)
	}
}
