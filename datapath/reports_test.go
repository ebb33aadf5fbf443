package datapath

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"mctun/config"
	"mctun/encap"
	"mctun/encap/encaptest"
	"mctun/igmp"
	"mctun/tun/tuntest"
)

// sinkRecorder is a ReportSink that keeps what it was given.
type sinkRecorder struct {
	mu  sync.Mutex
	got map[netip.Addr][]igmp.Record
}

func (s *sinkRecorder) sink(m netip.Addr, recs []igmp.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[netip.Addr][]igmp.Record{}
	}
	s.got[m] = append(s.got[m], recs...)
}

func (s *sinkRecorder) records(m netip.Addr) []igmp.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[m]
}

var (
	joiner   = netip.MustParseAddr("198.18.2.2")
	stranger = netip.MustParseAddr("203.0.113.9")
	joinFrom = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}
	joinRecs = []igmp.Record{{Type: igmp.ChangeToExclude, Group: netip.MustParseAddr("224.1.2.3")}}
)

func reportFrom(src netip.Addr) []byte { return igmp.BuildReports(src, joinRecs)[0] }

func plainTunnel(key uint32, inner []byte) []byte {
	buf := make([]byte, encap.Headroom+len(inner))
	copy(buf[encap.Headroom:], inner)
	return encap.Encapsulate(buf, len(inner), encap.Header{Key: key})
}

func sealedTunnel(s *encap.Sealer, key uint32, inner []byte) []byte {
	buf := make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
	copy(buf[encap.Headroom:], inner)
	return s.Seal(buf, len(inner), encap.Header{Key: key})
}

func TestReportsPlain(t *testing.T) {
	var s sinkRecorder
	r := NewReports(7, joinFrom, nil, nil, s.sink, quiet)
	good := plainTunnel(7, reportFrom(joiner))
	r.Accept(joiner.As4(), good)
	r.Accept(stranger.As4(), good)
	r.Accept(joiner.As4(), plainTunnel(9, reportFrom(joiner)))
	r.Accept(joiner.As4(), good[:5])
	bad := reportFrom(joiner)
	bad[len(bad)-1] ^= 1 // the IGMP checksum no longer matches
	r.Accept(joiner.As4(), plainTunnel(7, bad))
	r.Accept(joiner.As4(), plainTunnel(7, encaptest.UDPPacket(joiner, group, payload(1))))
	if got := s.records(joiner); !reflect.DeepEqual(got, joinRecs) {
		t.Fatalf("sink got %v, want %v", got, joinRecs)
	}
	if got := s.records(stranger); got != nil {
		t.Fatalf("a stranger's report reached the table: %v", got)
	}
	want := map[string]uint64{"not_in_join_from": 1, "wrong_key": 1, "bad_tunnel_header": 1, "malformed": 1, "not_a_report": 1}
	st := r.Stats()
	for k, v := range st.Refused {
		if v != want[k] {
			t.Errorf("refused %s = %d, want %d", k, v, want[k])
		}
	}
	if st.Accepted != 1 {
		t.Errorf("accepted %d, want 1", st.Accepted)
	}
	r.Configure(7, nil) // join_from removed by a reload
	r.Accept(joiner.As4(), good)
	if st := r.Stats(); st.Accepted != 1 || st.Refused["not_in_join_from"] != 2 {
		t.Errorf("after join_from went: %+v", st)
	}
}

// sealedReports is the receiving end of reports with a secret, into s, and a member's sealer.
func sealedReports(t *testing.T, s *sinkRecorder) (*Reports, *encap.Sealer) {
	t.Helper()
	auth := testAuth(t)
	member, err := auth.NewSealer(1, false)
	if err != nil {
		t.Fatal(err)
	}
	return NewReports(7, joinFrom, auth.NewOpener(false), nil, s.sink, quiet), member
}

// wantRefused checks the refused counters: want's, every other reason 0.
func wantRefused(t *testing.T, refused, want map[string]uint64) {
	t.Helper()
	for k, v := range refused {
		if v != want[k] {
			t.Errorf("refused %s = %d, want %d", k, v, want[k])
		}
	}
}

func TestReportsAuthenticated(t *testing.T) {
	var s sinkRecorder
	r, member := sealedReports(t, &s)
	good := sealedTunnel(member, 7, reportFrom(joiner))
	r.Accept(joiner.As4(), good)
	r.Accept(joiner.As4(), good) // replayed
	r.Accept(joiner.As4(), plainTunnel(7, reportFrom(joiner)))
	forged := sealedTunnel(member, 7, reportFrom(joiner))
	forged[len(forged)-1] ^= 1
	r.Accept(joiner.As4(), forged)
	if got := s.records(joiner); !reflect.DeepEqual(got, joinRecs) {
		t.Fatalf("sink got %v, want one report", got)
	}
	wantRefused(t, r.Stats().Refused, map[string]uint64{"replayed": 1, "not_authenticated": 1, "auth_failed": 1})
}

// TestReportsEpochs: the hook learns each new instance of a member, once; an Opener given the
// newest epoch, as a restarted source's is, refuses a report of an earlier run of the member
// that one without it would take.
func TestReportsEpochs(t *testing.T) {
	auth := testAuth(t)
	var s sinkRecorder
	var learnt []uint64
	onEpoch := func(m netip.Addr, epoch uint64) {
		if m != joiner {
			t.Errorf("epoch of %v, want %v", m, joiner)
		}
		learnt = append(learnt, epoch)
	}
	r := NewReports(7, joinFrom, auth.NewOpener(false), onEpoch, s.sink, quiet)
	first, _ := auth.NewSealer(1000, false)
	second, _ := auth.NewSealer(2000, false)
	r.Accept(joiner.As4(), sealedTunnel(first, 7, reportFrom(joiner)))
	captured := sealedTunnel(first, 7, reportFrom(joiner)) // a report of the first run, never delivered
	r.Accept(joiner.As4(), sealedTunnel(first, 7, reportFrom(joiner)))
	r.Accept(joiner.As4(), sealedTunnel(second, 7, reportFrom(joiner))) // the member restarted
	r.Accept(joiner.As4(), sealedTunnel(second, 7, reportFrom(joiner)))
	if want := []uint64{1000, 2000}; !slices.Equal(learnt, want) {
		t.Fatalf("learnt epochs %v, want %v", learnt, want)
	}

	forgetful := NewReports(7, joinFrom, auth.NewOpener(false), nil, s.sink, quiet)
	forgetful.Accept(joiner.As4(), slices.Clone(captured))
	if st := forgetful.Stats(); st.Accepted != 1 {
		t.Fatalf("an Opener that knows no epoch: %+v, want the report taken", st)
	}
	open := auth.NewOpener(false)
	open.SetEpoch(joiner.As4(), learnt[len(learnt)-1])
	restarted := NewReports(7, joinFrom, open, nil, s.sink, quiet)
	restarted.Accept(joiner.As4(), slices.Clone(captured))
	if st := restarted.Stats(); st.Accepted != 0 || st.Refused["replayed"] != 1 {
		t.Fatalf("an Opener given the newest epoch: %+v, want the report refused as replayed", st)
	}
}

// TestReportsRelayed: with a secret, a member's sealed report sent again, byte for byte,
// from another host inside join_from is refused: the tag covers the report's own address,
// which is not the relaying host's. The report of a source, taken through the receiver side,
// is held to its address the same way.
func TestReportsRelayed(t *testing.T) {
	var s sinkRecorder
	r, member := sealedReports(t, &s)
	insider := netip.MustParseAddr("198.18.2.3")
	captured := sealedTunnel(member, 7, reportFrom(joiner))
	r.Accept(joiner.As4(), slices.Clone(captured))
	r.Accept(insider.As4(), slices.Clone(captured))
	r.AcceptInner(sourceAddr.As4(), encap.Header{Key: 7}, reportFrom(joiner))
	r.AcceptInner(sourceAddr.As4(), encap.Header{Key: 7}, reportFrom(sourceAddr))
	if got := s.records(insider); got != nil {
		t.Fatalf("the relaying host joined: %v", got)
	}
	if s.records(joiner) == nil || s.records(sourceAddr) == nil {
		t.Fatalf("sink got %v, want the member's and the source's own reports", s.got)
	}
	st := r.Stats()
	wantRefused(t, st.Refused, map[string]uint64{"wrong_member": 2})
	if st.Accepted != 2 {
		t.Errorf("accepted %d, want 2", st.Accepted)
	}

	// Without a secret the member is the outer address, whatever the report says (a member
	// behind NAT): there is no tag that could hold a relaying host to anything.
	plain := NewReports(7, joinFrom, nil, nil, s.sink, quiet)
	plain.Accept(insider.As4(), plainTunnel(7, reportFrom(joiner)))
	if st := plain.Stats(); st.Accepted != 1 || s.records(insider) == nil {
		t.Errorf("without a secret: %+v", st)
	}
}

// TestReceiverDivertsReports: on a host that is a member and accepts joins, a report from a
// host that may join, and one from a source, reach the table; neither is a drop, and the
// stream goes on.
func TestReceiverDivertsReports(t *testing.T) {
	var s sinkRecorder
	net := encaptest.NewNetwork()
	conn := net.Listen(netip.MustParseAddrPort("198.18.9.2:4754"))
	dev := tuntest.New(16)
	rcv := NewReceiver(conn, dev, 7, config.Member{MTU: 1500, Sources: []netip.Addr{sourceAddr}}, nil, nil, quiet)
	reports := NewReports(7, joinFrom, nil, nil, s.sink, quiet)
	rcv.DivertReports(reports)
	done := make(chan error, 1)
	go func() { done <- rcv.Run(true) }()
	defer func() { conn.Close(); dev.Close(); <-done }()
	from := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 4754) }
	net.Inject(from(joiner), conn.Addr(), plainTunnel(7, reportFrom(joiner)))
	net.Inject(from(sourceAddr), conn.Addr(), plainTunnel(7, reportFrom(sourceAddr)))
	net.Inject(from(stranger), conn.Addr(), plainTunnel(7, reportFrom(stranger)))
	net.Inject(from(sourceAddr), conn.Addr(), plainTunnel(7, encaptest.UDPPacket(sourceAddr, group, payload(1))))
	select {
	case <-dev.Injected:
	case <-time.After(2 * time.Second):
		t.Fatal("the stream stopped")
	}
	if s.records(joiner) == nil || s.records(sourceAddr) == nil || s.records(stranger) != nil {
		t.Fatalf("sink got %v", s.got)
	}
	drops := rcv.Stats().Drops
	for k, v := range drops {
		if want := map[string]uint64{"unknown_source": 1}[k]; v != want {
			t.Errorf("receiver drop %s = %d, want %d", k, v, want)
		}
	}
	if st := reports.Stats(); st.Accepted != 2 {
		t.Errorf("reports %+v, want 2 accepted", st)
	}
}

// TestReceiverTakesLargeReports: on a host that is a source and a member with a small MTU, a
// report larger than any packet its TUN takes still reaches the table.
func TestReceiverTakesLargeReports(t *testing.T) {
	var s sinkRecorder
	net := encaptest.NewNetwork()
	conn := net.Listen(netip.MustParseAddrPort("198.18.9.2:4754"))
	dev := tuntest.New(16)
	rcv := NewReceiver(conn, dev, 7, config.Member{MTU: 1200, Sources: []netip.Addr{sourceAddr}}, nil, nil, quiet)
	reports := NewReports(7, joinFrom, nil, nil, s.sink, quiet)
	rcv.DivertReports(reports)
	done := make(chan error, 1)
	go func() { done <- rcv.Run(true) }()
	defer func() { conn.Close(); dev.Close(); <-done }()
	var recs []igmp.Record
	for i := range 160 {
		recs = append(recs, igmp.Record{Type: igmp.ModeIsExclude, Group: netip.AddrFrom4([4]byte{225, 0, 0, byte(i)})})
	}
	report := igmp.BuildReports(joiner, recs)[0]
	if len(report) <= 1200 {
		t.Fatalf("the report is %d bytes: not larger than the TUN's MTU, as the test needs", len(report))
	}
	net.Inject(netip.AddrPortFrom(joiner, 4754), conn.Addr(), plainTunnel(7, report))
	for deadline := time.Now().Add(2 * time.Second); len(s.records(joiner)) < len(recs); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the table got %d of the report's %d records; receiver drops %v", len(s.records(joiner)), len(recs), rcv.Stats().Drops)
		}
	}
}

// TestRoutineReports: a source that is not a member reads its tunnel port for reports alone.
func TestRoutineReports(t *testing.T) {
	var s sinkRecorder
	net := encaptest.NewNetwork()
	conn := net.Listen(netip.MustParseAddrPort("198.18.9.2:4754"))
	r := NewReports(7, joinFrom, nil, nil, s.sink, quiet)
	done := make(chan error, 1)
	go func() { done <- r.Run(conn) }()
	net.Inject(netip.AddrPortFrom(joiner, 4754), conn.Addr(), plainTunnel(7, reportFrom(joiner)))
	net.Inject(netip.AddrPortFrom(joiner, 4754), conn.Addr(), make([]byte, 3000))
	deadline := time.Now().Add(2 * time.Second)
	for r.Stats().Refused["malformed"] == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Accepted != 1 || st.Refused["malformed"] != 1 || s.records(joiner) == nil {
		t.Fatalf("stats %+v", st)
	}
}

// TestResync: a member that joins a group again starts its accounting afresh: what was sent
// while it was away is not counted lost.
func TestResync(t *testing.T) {
	members := []string{"198.18.2.2:4754"}
	w := newWorld(t, groupsOf(members...), members...)
	h := w.members[netip.MustParseAddrPort(members[0])]
	w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, payload(0))
	h.expect(t)
	w.sender.Configure(7, []config.Group{{Address: group.Addr(), Port: group.Port()}}) // it left
	for i := range 10 {
		w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, payload(i))
	}
	time.Sleep(50 * time.Millisecond)
	h.receiver.Resync(group.Addr())
	w.sender.Configure(7, groupsOf(members...)) // and came back
	w.capture.Packets <- encaptest.UDPPacket(sourceAddr, group, payload(11))
	h.expect(t)
	if f := h.flow(t, 2); f.Packets != 2 || f.Lost != 0 {
		t.Fatalf("flow after a rejoin: %+v, want 2 packets, none lost", f)
	}
}

// refusedLines returns the lines of a JSON log, each as its fields.
func refusedLines(t *testing.T, log *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(log.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestReportsRefusedLogged: a report refused is one line in the log that names the member,
// the reason and, for a malformed one, what is wrong; a flood is a bounded number of lines,
// and one from outside join_from does not hide why a host inside it is refused.
func TestReportsRefusedLogged(t *testing.T) {
	var buf bytes.Buffer
	var s sinkRecorder
	r := NewReports(7, joinFrom, nil, nil, s.sink, slog.New(slog.NewJSONHandler(&buf, nil)))
	bad := reportFrom(joiner)
	bad[len(bad)-1] ^= 1 // the IGMP checksum no longer matches
	r.Accept(joiner.As4(), plainTunnel(7, bad))
	lines := refusedLines(t, &buf)
	if len(lines) != 1 {
		t.Fatalf("a malformed report logged %d lines, want 1", len(lines))
	}
	want := map[string]any{"msg": "report refused", "member": joiner.String(), "reason": "malformed", "err": igmp.ErrChecksum.Error()}
	for k, v := range want {
		if lines[0][k] != v {
			t.Errorf("log line %s = %v, want %v", k, lines[0][k], v)
		}
	}

	// bounded is how many lines a flood since start may log: the burst, and one a second.
	bounded := func(start time.Time) int { return 10 + 1 + int(time.Since(start)/time.Second) }
	buf.Reset()
	start := time.Now()
	for range 1000 {
		r.Accept(stranger.As4(), plainTunnel(7, reportFrom(stranger)))
	}
	lines = refusedLines(t, &buf)
	if len(lines) == 0 || len(lines) > bounded(start) {
		t.Fatalf("1000 reports from outside join_from logged %d lines, want 1 to %d", len(lines), bounded(start))
	}
	if lines[0]["member"] != stranger.String() || lines[0]["reason"] != "not_in_join_from" {
		t.Errorf("log line %v, want the stranger and not_in_join_from", lines[0])
	}
	buf.Reset()
	r.Accept(joiner.As4(), plainTunnel(9, reportFrom(joiner)))
	if lines = refusedLines(t, &buf); len(lines) != 1 || lines[0]["member"] != joiner.String() || lines[0]["reason"] != "wrong_key" {
		t.Fatalf("after a flood from outside join_from, a refusal inside it logged %v", lines)
	}

	buf.Reset()
	start = time.Now()
	for range 1000 {
		r.Accept(joiner.As4(), plainTunnel(7, bad))
	}
	if lines = refusedLines(t, &buf); len(lines) > bounded(start) {
		t.Fatalf("1000 malformed reports logged %d lines, want at most %d", len(lines), bounded(start))
	}
	if st := r.Stats(); st.Refused["malformed"] != 1001 || st.Refused["not_in_join_from"] != 1000 {
		t.Errorf("counters %+v: every report is counted, logged or not", st)
	}
}
