package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"mctun/encap"
	"mctun/encap/encaptest"
	"mctun/igmp"
)

// reporterWorld is a reporter whose kernel table the test sets, sending to two sources on an
// in-memory network.
type reporterWorld struct {
	t       *testing.T
	r       *reporter
	sources []*encaptest.Conn
	mu      sync.Mutex
	joined  []igmp.Membership
	resyncs []netip.Addr
}

func newReporterWorld(t *testing.T) *reporterWorld {
	n := encaptest.NewNetwork()
	conn := n.Listen(netip.MustParseAddrPort("198.18.2.2:4754"))
	w := &reporterWorld{t: t}
	var srcs []netip.Addr
	for _, a := range []string{"198.18.1.2", "198.18.3.2"} {
		srcs = append(srcs, netip.MustParseAddr(a))
		w.sources = append(w.sources, n.Listen(netip.AddrPortFrom(netip.MustParseAddr(a), 4754)))
	}
	w.r = &reporter{conn: conn, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		key: 7, port: 4754, sources: srcs, sent: map[netip.Addr]*SourceReports{},
		resync: func(g netip.Addr) { w.mu.Lock(); w.resyncs = append(w.resyncs, g); w.mu.Unlock() },
		read: func() ([]igmp.Membership, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return append([]igmp.Membership(nil), w.joined...), nil
		}}
	t.Cleanup(func() {
		conn.Close()
		for _, c := range w.sources {
			c.Close()
		}
	})
	return w
}

func (w *reporterWorld) set(ms ...igmp.Membership) {
	w.mu.Lock()
	w.joined = ms
	w.mu.Unlock()
}

// expect reads the next report at each source and checks its records.
func (w *reporterWorld) expect(want ...igmp.Record) {
	w.t.Helper()
	for _, c := range w.sources {
		bufs, sizes, from := [][]byte{make([]byte, 2048)}, []int{0}, []netip.AddrPort{{}}
		got := make(chan error, 1)
		go func() { _, err := c.ReadBatch(bufs, sizes, from); got <- err }()
		select {
		case err := <-got:
			if err != nil {
				w.t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			w.t.Fatalf("%v: no report; want %v", c.Addr(), want)
		}
		h, inner, err := encap.ParseHeader(bufs[0][:sizes[0]])
		if err != nil || h.Key != 7 {
			w.t.Fatalf("%v: tunnel packet %v, key %d", c.Addr(), err, h.Key)
		}
		rep, err := igmp.ParseReport(inner)
		if err != nil {
			w.t.Fatalf("%v: %v", c.Addr(), err)
		}
		if !reflect.DeepEqual(rep.Records, want) {
			w.t.Fatalf("%v: records %v, want %v", c.Addr(), rep.Records, want)
		}
	}
}

func TestReporterRounds(t *testing.T) {
	w := newReporterWorld(t)
	g1, g2 := netip.MustParseAddr("224.1.2.3"), netip.MustParseAddr("232.1.1.1")
	s := netip.MustParseAddr("198.18.1.2")
	asm := igmp.Membership{Group: g1}
	ssm := igmp.Membership{Group: g2, Mode: igmp.Include, Sources: []netip.Addr{s}}

	if _, changed := w.r.round(false, nil); changed {
		t.Fatal("nothing joined: a change")
	}
	w.set(asm)
	w.r.round(false, nil)
	w.expect(igmp.Record{Type: igmp.ChangeToExclude, Group: g1})
	w.set(asm, ssm)
	w.r.round(false, nil)
	w.expect(igmp.Record{Type: igmp.ChangeToInclude, Group: g2, Sources: []netip.Addr{s}})
	if !reflect.DeepEqual(w.resyncs, []netip.Addr{g1, g2}) {
		t.Errorf("resyncs %v, want each group as it was joined", w.resyncs)
	}
	w.r.round(true, nil) // the interval: the whole state
	w.expect(igmp.Record{Type: igmp.ModeIsExclude, Group: g1}, igmp.Record{Type: igmp.ModeIsInclude, Group: g2, Sources: []netip.Addr{s}})
	w.set(ssm)
	left, _ := w.r.round(false, nil)
	w.expect(igmp.Record{Type: igmp.ChangeToInclude, Group: g1}) // the leave
	w.r.round(true, left)                                        // the retransmission says it again
	w.expect(igmp.Record{Type: igmp.ModeIsInclude, Group: g2, Sources: []netip.Addr{s}}, igmp.Record{Type: igmp.ChangeToInclude, Group: g1})
	w.r.leaveAll() // mctun down
	w.expect(igmp.Record{Type: igmp.ChangeToInclude, Group: g2})
	if st := w.r.status(); len(st.Groups) != 0 || st.Sent[s].Packets != 6 {
		t.Errorf("status after the leave: %+v", st)
	}
}

// TestReporterRetransmitsEveryLeave: a group left, then another joined before the leave's
// retransmission, is left again in that retransmission: the join's change does not make the
// reporter forget the earlier leave.
func TestReporterRetransmitsEveryLeave(t *testing.T) {
	w := newReporterWorld(t)
	g, h := netip.MustParseAddr("224.1.2.3"), netip.MustParseAddr("224.4.5.6")
	w.set(igmp.Membership{Group: g})
	w.r.start()
	defer w.r.Stop()
	w.expect(igmp.Record{Type: igmp.ChangeToExclude, Group: g})
	w.set()
	w.r.Kick()
	w.expect(igmp.Record{Type: igmp.ChangeToInclude, Group: g}) // the leave
	w.set(igmp.Membership{Group: h})
	w.r.Kick() // within the retransmission delay
	w.expect(igmp.Record{Type: igmp.ChangeToExclude, Group: h})
	w.expect(igmp.Record{Type: igmp.ModeIsExclude, Group: h}, igmp.Record{Type: igmp.ChangeToInclude, Group: g}) // the retransmission
}

func TestReportable(t *testing.T) {
	g := netip.MustParseAddr("232.1.1.1")
	many := make([]netip.Addr, igmp.MaxSources+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	if m := reportable(igmp.Membership{Group: g, Mode: igmp.Include, Sources: many}); m.Mode != igmp.Exclude || len(m.Sources) != 0 {
		t.Errorf("too long an include list: %v; want every source", m)
	}
	if m := reportable(igmp.Membership{Group: g, Mode: igmp.Exclude, Sources: many}); m.Mode != igmp.Exclude || len(m.Sources) != igmp.MaxSources {
		t.Errorf("too long an exclude list: %d sources; want %d", len(m.Sources), igmp.MaxSources)
	}
}
