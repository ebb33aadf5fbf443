package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"mctun/config"
	"mctun/datapath"
	"mctun/encap/encaptest"
	"mctun/membership"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixtureStatus is a source and member with a little of everything: a group with a port and
// one without, a failing member, a flow past the flow table's limit, drops on both sides.
func fixtureStatus() Status {
	ip, ap := netip.MustParseAddr, netip.MustParseAddrPort
	return Status{
		Version: "v1.2.3", Datapath: "user",
		Reloads: Outcomes{Applied: 3, Refused: 1}, Commands: Outcomes{Applied: 5, Refused: 2},
		Source: &SourceStatus{
			Interface: "eth0",
			Captures:  []CaptureStatus{{Name: "eth0", Packets: 1017, KernelDrop: 2, Truncated: 3}},
			Skipped:   []netip.AddrPort{ap("198.18.1.2:4754")},
			Stats: datapath.SenderStats{
				Groups: []datapath.GroupStats{
					{Address: ip("224.1.2.3"), Port: 65535, Packets: 1000, Bytes: 1028000, MemberCount: 2, SendErrors: 3, Failing: 1},
					{Address: ip("224.0.0.18"), Packets: 10, Bytes: 400, MemberCount: 1},
				},
				Drops: map[string]uint64{"no_group": 7, "igmp": 0, "send_failed": 3},
			},
			Joins: &JoinStatus{
				Memberships: 2,
				Reports:     datapath.ReportStats{Accepted: 40, Refused: map[string]uint64{"not_in_join_from": 3, "wrong_key": 0}},
				SocketDrops: 1,
				Counters:    membership.Counters{Joins: 4, Leaves: 1, Expiries: 1, OverLimit: 2},
			},
		},
		Member: &MemberStatus{
			TUN: "mctun0", SocketDrops: 4,
			Stats: datapath.ReceiverStats{
				Flows: []datapath.FlowStats{
					{Source: ip("198.18.1.2"), Group: ip("224.1.2.3"), Packets: 990, Bytes: 1017720, Lost: 10, Reordered: 2, Duplicates: 1, Restarts: 1},
					{Packets: 5, Bytes: 500}, // the overflow flow
				},
				Drops:       map[string]uint64{"unknown_source": 9, "wrong_key": 0},
				HostPackets: 6,
			},
		},
	}
}

// fixtureMembers are the members' counters of fixtureStatus's groups.
func fixtureMembers(f func(group int, ms []datapath.MemberStats) error) error {
	ap := netip.MustParseAddrPort
	if err := f(0, []datapath.MemberStats{
		{Address: ap("198.18.2.2:4754"), Packets: 1000, Bytes: 1040000},
		{Address: ap("198.18.3.2:4754"), Packets: 997, Bytes: 1036880, Errors: 3, LastError: "connection refused"},
	}); err != nil {
		return err
	}
	return f(1, []datapath.MemberStats{{Address: ap("198.18.2.2:4754"), Packets: 10, Bytes: 520}})
}

func fixedCollector(s metricsScrape) *collector {
	return &collector{read: func(f func(metricsScrape)) { f(s) }}
}

// The whole exposition of the fixture, as Prometheus reads it.
var fixtureExposition = `# HELP mctun_build_info Always 1: the version of mctun and the Go it was built with.
# TYPE mctun_build_info gauge
mctun_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
# HELP mctun_commands_total Management commands that change the instance (group, member, source), applied and refused with nothing changed.
# TYPE mctun_commands_total counter
mctun_commands_total{result="applied"} 5
mctun_commands_total{result="refused"} 2
# HELP mctun_datapath_info Always 1: where packets are forwarded, "kernel" or "user".
# TYPE mctun_datapath_info gauge
mctun_datapath_info{datapath="user"} 1
# HELP mctun_receiver_bytes_total Bytes of the packets from the source for the group delivered into the TUN (inner packets).
# TYPE mctun_receiver_bytes_total counter
mctun_receiver_bytes_total{group="224.1.2.3",source="198.18.1.2"} 1.01772e+06
mctun_receiver_bytes_total{group="other",source="other"} 500
# HELP mctun_receiver_dropped_packets_total Tunnel packets the receiver side dropped, by reason.
# TYPE mctun_receiver_dropped_packets_total counter
mctun_receiver_dropped_packets_total{reason="unknown_source"} 9
mctun_receiver_dropped_packets_total{reason="wrong_key"} 0
# HELP mctun_receiver_duplicate_packets_total Packets from the source for the group that arrived a second time.
# TYPE mctun_receiver_duplicate_packets_total counter
mctun_receiver_duplicate_packets_total{group="224.1.2.3",source="198.18.1.2"} 1
mctun_receiver_duplicate_packets_total{group="other",source="other"} 0
# HELP mctun_receiver_host_packets_total Multicast this host sent into the TUN that no sender side took (IGMP reports, mostly), read and discarded.
# TYPE mctun_receiver_host_packets_total counter
mctun_receiver_host_packets_total 6
# HELP mctun_receiver_kernel_dropped_packets_total Tunnel packets the kernel dropped because the socket's receive buffer was full.
# TYPE mctun_receiver_kernel_dropped_packets_total counter
mctun_receiver_kernel_dropped_packets_total 4
# HELP mctun_receiver_lost_packets Packets missing from the source's sequence for the group; one that arrives late is taken back out.
# TYPE mctun_receiver_lost_packets gauge
mctun_receiver_lost_packets{group="224.1.2.3",source="198.18.1.2"} 10
mctun_receiver_lost_packets{group="other",source="other"} 0
# HELP mctun_receiver_packets_total Packets from the source for the group delivered into the TUN.
# TYPE mctun_receiver_packets_total counter
mctun_receiver_packets_total{group="224.1.2.3",source="198.18.1.2"} 990
mctun_receiver_packets_total{group="other",source="other"} 5
# HELP mctun_receiver_reordered_packets_total Packets from the source for the group that arrived late.
# TYPE mctun_receiver_reordered_packets_total counter
mctun_receiver_reordered_packets_total{group="224.1.2.3",source="198.18.1.2"} 2
mctun_receiver_reordered_packets_total{group="other",source="other"} 0
# HELP mctun_receiver_sender_restarts_total Times the source's sequence for the group started again from 0 (its mctun restarted).
# TYPE mctun_receiver_sender_restarts_total counter
mctun_receiver_sender_restarts_total{group="224.1.2.3",source="198.18.1.2"} 1
mctun_receiver_sender_restarts_total{group="other",source="other"} 0
# HELP mctun_reloads_total Reloads (mctun reload, SIGHUP) applied, and refused with nothing changed.
# TYPE mctun_reloads_total counter
mctun_reloads_total{result="applied"} 3
mctun_reloads_total{result="refused"} 1
# HELP mctun_sender_capture_truncated_packets_total Packets longer than the capture ring's frames, not forwarded: sends of several datagrams at once (GSO), which only the kernel path forwards, or an MTU raised since start.
# TYPE mctun_sender_capture_truncated_packets_total counter
mctun_sender_capture_truncated_packets_total{interface="eth0"} 3
# HELP mctun_sender_captured_packets_total Outgoing multicast packets the sender side captured on the interface (on the kernel path: that it handed over).
# TYPE mctun_sender_captured_packets_total counter
mctun_sender_captured_packets_total{interface="eth0"} 1017
# HELP mctun_sender_dropped_packets_total Packets the sender side did not forward, by reason.
# TYPE mctun_sender_dropped_packets_total counter
mctun_sender_dropped_packets_total{reason="igmp"} 0
mctun_sender_dropped_packets_total{reason="no_group"} 7
mctun_sender_dropped_packets_total{reason="send_failed"} 3
# HELP mctun_sender_dynamic_memberships Memberships the source learned from members' reports, one per member and group.
# TYPE mctun_sender_dynamic_memberships gauge
mctun_sender_dynamic_memberships 2
# HELP mctun_sender_group_bytes_total Bytes of the packets captured for the group (inner packets, IP header included).
# TYPE mctun_sender_group_bytes_total counter
mctun_sender_group_bytes_total{group="224.0.0.18",port=""} 400
mctun_sender_group_bytes_total{group="224.1.2.3",port="65535"} 1.028e+06
# HELP mctun_sender_group_failing_members Members of the group whose last send failed.
# TYPE mctun_sender_group_failing_members gauge
mctun_sender_group_failing_members{group="224.0.0.18",port=""} 0
mctun_sender_group_failing_members{group="224.1.2.3",port="65535"} 1
# HELP mctun_sender_group_members Members the group is sent to (this host's own addresses left out).
# TYPE mctun_sender_group_members gauge
mctun_sender_group_members{group="224.0.0.18",port=""} 1
mctun_sender_group_members{group="224.1.2.3",port="65535"} 2
# HELP mctun_sender_group_packets_total Packets captured for the group, each sent on to every member.
# TYPE mctun_sender_group_packets_total counter
mctun_sender_group_packets_total{group="224.0.0.18",port=""} 10
mctun_sender_group_packets_total{group="224.1.2.3",port="65535"} 1000
# HELP mctun_sender_group_send_errors_total Sends to the group's members that failed, all members together.
# TYPE mctun_sender_group_send_errors_total counter
mctun_sender_group_send_errors_total{group="224.0.0.18",port=""} 0
mctun_sender_group_send_errors_total{group="224.1.2.3",port="65535"} 3
# HELP mctun_sender_kernel_dropped_packets_total Packets the kernel dropped because the capture ring (on the kernel path: the hand-off's queue) was full: the sender side fell behind.
# TYPE mctun_sender_kernel_dropped_packets_total counter
mctun_sender_kernel_dropped_packets_total{interface="eth0"} 2
# HELP mctun_sender_member_bytes_total Bytes of the tunnel packets sent to the member for the group, UDP payload (metrics.per_member).
# TYPE mctun_sender_member_bytes_total counter
mctun_sender_member_bytes_total{group="224.0.0.18",member="198.18.2.2:4754",port=""} 520
mctun_sender_member_bytes_total{group="224.1.2.3",member="198.18.2.2:4754",port="65535"} 1.04e+06
mctun_sender_member_bytes_total{group="224.1.2.3",member="198.18.3.2:4754",port="65535"} 1.03688e+06
# HELP mctun_sender_member_packets_total Tunnel packets sent to the member for the group (metrics.per_member).
# TYPE mctun_sender_member_packets_total counter
mctun_sender_member_packets_total{group="224.0.0.18",member="198.18.2.2:4754",port=""} 10
mctun_sender_member_packets_total{group="224.1.2.3",member="198.18.2.2:4754",port="65535"} 1000
mctun_sender_member_packets_total{group="224.1.2.3",member="198.18.3.2:4754",port="65535"} 997
# HELP mctun_sender_member_send_errors_total Sends to the member for the group that failed (metrics.per_member).
# TYPE mctun_sender_member_send_errors_total counter
mctun_sender_member_send_errors_total{group="224.0.0.18",member="198.18.2.2:4754",port=""} 0
mctun_sender_member_send_errors_total{group="224.1.2.3",member="198.18.2.2:4754",port="65535"} 0
mctun_sender_member_send_errors_total{group="224.1.2.3",member="198.18.3.2:4754",port="65535"} 3
# HELP mctun_sender_membership_changes_total Changes of the learned memberships: "joined", "left", "expired", and "refused_over_limit" (a group record refused by a limit).
# TYPE mctun_sender_membership_changes_total counter
mctun_sender_membership_changes_total{change="expired"} 1
mctun_sender_membership_changes_total{change="joined"} 4
mctun_sender_membership_changes_total{change="left"} 1
mctun_sender_membership_changes_total{change="refused_over_limit"} 2
# HELP mctun_sender_reports_accepted_total Membership reports the source accepted.
# TYPE mctun_sender_reports_accepted_total counter
mctun_sender_reports_accepted_total 40
# HELP mctun_sender_reports_kernel_dropped_total Membership reports the kernel dropped because the source's socket's receive buffer was full (a source that is not a member too).
# TYPE mctun_sender_reports_kernel_dropped_total counter
mctun_sender_reports_kernel_dropped_total 1
# HELP mctun_sender_reports_refused_total Membership reports the source refused, by reason.
# TYPE mctun_sender_reports_refused_total counter
mctun_sender_reports_refused_total{reason="not_in_join_from"} 3
mctun_sender_reports_refused_total{reason="wrong_key"} 0
`

func TestMetricsExposition(t *testing.T) {
	c := fixedCollector(metricsScrape{Status: fixtureStatus(), Members: fixtureMembers})
	if err := testutil.CollectAndCompare(c, strings.NewReader(fixtureExposition)); err != nil {
		t.Error(err)
	}
}

// With metrics.per_member off the daemon passes no Members: the member series are gone, the
// rest is as it was.
func TestMetricsPerMemberOff(t *testing.T) {
	c := fixedCollector(metricsScrape{Status: fixtureStatus()})
	var want []string
	for _, line := range strings.SplitAfter(fixtureExposition, "\n") {
		if !strings.Contains(line, "mctun_sender_member_") {
			want = append(want, line)
		}
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(strings.Join(want, ""))); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "mctun_sender_member_packets_total", "mctun_sender_member_bytes_total", "mctun_sender_member_send_errors_total"); n != 0 {
		t.Errorf("%d member series with per_member off", n)
	}
}

// A host that is only a member, or only a source, has only that side's series.
func TestMetricsOneRole(t *testing.T) {
	member := fixtureStatus()
	member.Source = nil
	source := fixtureStatus()
	source.Member = nil
	for _, tt := range []struct {
		name   string
		scrape metricsScrape
		absent string
	}{
		{"member", metricsScrape{Status: member}, "mctun_sender_"}, // no sender side: no Members
		{"source", metricsScrape{Status: source, Members: fixtureMembers}, "mctun_receiver_"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, line := range strings.SplitAfter(fixtureExposition, "\n") {
				if !strings.Contains(line, tt.absent) {
					want = append(want, line)
				}
			}
			c := fixedCollector(tt.scrape)
			if err := testutil.CollectAndCompare(c, strings.NewReader(strings.Join(want, ""))); err != nil {
				t.Error(err)
			}
		})
	}
}

// The series come from the sender's live table: a group that a reconfiguration removes, and
// a member it removes, disappear from the next scrape; a group it adds appears.
func TestMetricsFollowReconfiguration(t *testing.T) {
	ip, ap := netip.MustParseAddr, netip.MustParseAddrPort
	conn := encaptest.NewNetwork().Listen(ap("198.18.1.2:40000"))
	defer conn.Close()
	a := config.Group{Address: ip("224.1.2.3"), Port: 65535, Members: []netip.AddrPort{ap("198.18.2.2:4754"), ap("198.18.3.2:4754")}}
	b := config.Group{Address: ip("224.9.9.9"), Members: []netip.AddrPort{ap("198.18.2.2:4754")}}
	sender := datapath.NewSender(conn, 0, []config.Group{a, b}, nil, quiet)
	c := &collector{read: func(f func(metricsScrape)) {
		f(metricsScrape{
			Status:  Status{Version: "v1", Datapath: "user", Source: &SourceStatus{Stats: sender.Stats()}},
			Members: sender.Members,
		})
	}}
	names := []string{"mctun_sender_group_members", "mctun_sender_member_packets_total"}
	before := `# HELP mctun_sender_group_members Members the group is sent to (this host's own addresses left out).
# TYPE mctun_sender_group_members gauge
mctun_sender_group_members{group="224.1.2.3",port="65535"} 2
mctun_sender_group_members{group="224.9.9.9",port=""} 1
# HELP mctun_sender_member_packets_total Tunnel packets sent to the member for the group (metrics.per_member).
# TYPE mctun_sender_member_packets_total counter
mctun_sender_member_packets_total{group="224.1.2.3",member="198.18.2.2:4754",port="65535"} 0
mctun_sender_member_packets_total{group="224.1.2.3",member="198.18.3.2:4754",port="65535"} 0
mctun_sender_member_packets_total{group="224.9.9.9",member="198.18.2.2:4754",port=""} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(before), names...); err != nil {
		t.Fatalf("before: %v", err)
	}

	a.Members = a.Members[1:]
	added := config.Group{Address: ip("224.7.7.7"), Port: 7, Members: []netip.AddrPort{ap("198.18.4.2:4754")}}
	sender.Configure(0, []config.Group{a, added}) // b removed
	after := `# HELP mctun_sender_group_members Members the group is sent to (this host's own addresses left out).
# TYPE mctun_sender_group_members gauge
mctun_sender_group_members{group="224.1.2.3",port="65535"} 1
mctun_sender_group_members{group="224.7.7.7",port="7"} 1
# HELP mctun_sender_member_packets_total Tunnel packets sent to the member for the group (metrics.per_member).
# TYPE mctun_sender_member_packets_total counter
mctun_sender_member_packets_total{group="224.1.2.3",member="198.18.3.2:4754",port="65535"} 0
mctun_sender_member_packets_total{group="224.7.7.7",member="198.18.4.2:4754",port="7"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(after), names...); err != nil {
		t.Errorf("after the reconfiguration: %v", err)
	}
	var exposition bytes.Buffer
	if err := scrape(t, newMetricsHandler(c, quiet), &exposition); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(exposition.String(), "224.9.9.9") {
		t.Errorf("the removed group is still in the exposition:\n%s", exposition.String())
	}
}

// The exposition follows Prometheus's naming rules: client_golang's linter, and promtool's
// (Debian's prometheus package) on what the endpoint serves, go_* and process_* included.
func TestMetricsLint(t *testing.T) {
	c := fixedCollector(metricsScrape{Status: fixtureStatus(), Members: fixtureMembers})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus): skipping promtool check metrics")
	}
	var exposition bytes.Buffer
	if err := scrape(t, newMetricsHandler(c, quiet), &exposition); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &exposition
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// scrape GETs /metrics from h into w, as Prometheus does.
func scrape(t *testing.T, h http.Handler, w io.Writer) error {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// get GETs url and returns the body, or an error that names what failed.
func get(url string) (string, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// The server's goroutines end with it, and its port is free again.
func TestMetricsServerLifetime(t *testing.T) {
	before := runtime.NumGoroutine()
	c := fixedCollector(metricsScrape{Status: fixtureStatus()})
	addr := freeAddr(t)
	srv, err := listenMetrics(addr, newMetricsHandler(c, quiet), quiet)
	if err != nil {
		t.Fatal(err)
	}
	srv.serve()
	body, err := get(srv.url())
	if err != nil || !strings.Contains(body, `mctun_datapath_info{datapath="user"} 1`) {
		t.Fatalf("scrape: %v\n%s", err, body)
	}
	if _, err := get("http://" + addr.String() + "/"); err == nil {
		t.Errorf("GET / answered; only /metrics is served")
	}
	srv.shutdown(time.Second)
	if _, err := get(srv.url()); err == nil {
		t.Errorf("the endpoint still answers after shutdown")
	}
	waitGoroutines(t, before)

	// Bound but never served (start failed later on): close frees the port.
	srv, err = listenMetrics(addr, newMetricsHandler(c, quiet), quiet)
	if err != nil {
		t.Fatal(err)
	}
	srv.close()
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("the port is still taken after close: %v", err)
	}
	ln.Close()
	waitGoroutines(t, before)
}

// waitGoroutines waits for the number of goroutines to come back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An address that cannot be bound is refused with the key and the address.
func TestMetricsListenRefused(t *testing.T) {
	addr := freeAddr(t)
	taken, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = listenMetrics(addr, http.NotFoundHandler(), quiet)
	want := fmt.Sprintf("metrics.listen %s: bind: address already in use", addr)
	if err == nil || err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("listenMetrics on a taken port: %v; want %q", err, want)
	}
}

// A reload moves the endpoint: the new address is bound before the old one closes, so an
// address that cannot be bound changes nothing; abort leaves the old one serving; the same
// port on another address works too.
func TestRebindMetrics(t *testing.T) {
	before := runtime.NumGoroutine()
	c := fixedCollector(metricsScrape{Status: fixtureStatus()})
	first := freeAddr(t)
	d := &daemon{log: quiet, stopping: make(chan struct{}),
		cfg: &config.Config{Metrics: config.Metrics{Listen: first}}}
	d.metricsHTTP = newMetricsHandler(c, quiet)
	if err := d.startMetrics(); err != nil {
		t.Fatal(err)
	}
	d.metrics.serve()
	serves := func(addr netip.AddrPort) bool {
		_, err := get("http://" + addr.String() + "/metrics")
		return err == nil
	}
	// apply's part: rebind, then the new config is d.cfg, then commit or abort.
	reload := func(next config.Metrics, commit bool) error {
		commitMetrics, abortMetrics, err := d.rebindMetrics(next)
		if err != nil {
			return err
		}
		if commit {
			d.cfg = &config.Config{Metrics: next}
			commitMetrics()
			return nil
		}
		return abortMetrics()
	}

	second := freeAddr(t)
	if err := reload(config.Metrics{Listen: second}, false); err != nil {
		t.Fatal(err)
	}
	if !serves(first) || serves(second) {
		t.Errorf("after an aborted reload: serves %s %t, %s %t; want only the first", first, serves(first), second, serves(second))
	}

	taken, err := net.Listen("tcp", second.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := reload(config.Metrics{Listen: second}, true); err == nil || !strings.Contains(err.Error(), "metrics.listen "+second.String()) {
		t.Errorf("reload to a taken address: %v", err)
	}
	taken.Close()
	if !serves(first) {
		t.Errorf("a refused reload stopped the endpoint")
	}

	if err := reload(config.Metrics{Listen: second}, true); err != nil {
		t.Fatal(err)
	}
	if serves(first) || !serves(second) || d.metricsURL() != "http://"+second.String()+"/metrics" {
		t.Errorf("after the reload: serves %s %t, %s %t, url %s; want only the second", first, serves(first), second, serves(second), d.metricsURL())
	}

	// The same port on another loopback address: the old listener makes way, and comes back
	// if the reload is aborted.
	samePort := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), second.Port())
	if err := reload(config.Metrics{Listen: samePort}, false); err != nil {
		t.Fatal(err)
	}
	if !serves(second) || serves(samePort) {
		t.Errorf("after an aborted reload to the same port: serves %s %t, %s %t", second, serves(second), samePort, serves(samePort))
	}
	if err := reload(config.Metrics{Listen: samePort}, true); err != nil {
		t.Fatal(err)
	}
	if serves(second) || !serves(samePort) {
		t.Errorf("after the reload to the same port: serves %s %t, %s %t", second, serves(second), samePort, serves(samePort))
	}
	// Another program takes the old address while it makes way: an abort cannot open it
	// again, and says so.
	_, abortMetrics, err := d.rebindMetrics(config.Metrics{Listen: second})
	if err != nil {
		t.Fatal(err)
	}
	taken, err = net.Listen("tcp", samePort.String())
	if err != nil {
		t.Fatalf("the old address, which the rebind let go: %v", err)
	}
	if err := abortMetrics(); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("abort with the old address taken: %v; want it to say so", err)
	}
	taken.Close()
	if d.metrics != nil {
		t.Errorf("after an abort that could not reopen, d.metrics is %v; want nil", d.metrics)
	}

	// Off, then stop: nothing serves, nothing is left running.
	if err := reload(config.Metrics{}, true); err != nil {
		t.Fatal(err)
	}
	if serves(samePort) || d.metrics != nil || d.metricsURL() != "" {
		t.Errorf("metrics off still serves")
	}
	if err := reload(config.Metrics{Listen: first}, true); err != nil {
		t.Fatal(err)
	}
	d.stopMetrics()
	if serves(first) {
		t.Errorf("the endpoint serves after stop")
	}
	waitGoroutines(t, before)
}

// BenchmarkMetricsScrape scrapes a source of 16 groups of 4,096 members (65,536 in all), with
// and without per-member series: the time the daemon's lock is held is about a scrape's.
func BenchmarkMetricsScrape(b *testing.B) {
	conn := encaptest.NewNetwork().Listen(netip.MustParseAddrPort("198.18.1.2:40000"))
	defer conn.Close()
	var groups []config.Group
	for g := range 16 {
		grp := config.Group{Address: netip.AddrFrom4([4]byte{224, 1, 1, byte(g)}), Port: 5000}
		for m := range 4096 {
			grp.Members = append(grp.Members, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(m >> 8), byte(m)}), 4754))
		}
		groups = append(groups, grp)
	}
	sender := datapath.NewSender(conn, 0, groups, nil, quiet)
	for _, perMember := range []bool{false, true} {
		b.Run(fmt.Sprintf("per_member=%t", perMember), func(b *testing.B) {
			var locked time.Duration // as long as the daemon's lock would be held
			c := &collector{read: func(f func(metricsScrape)) {
				start := time.Now()
				s := metricsScrape{Status: Status{Version: "v1", Datapath: "user", Source: &SourceStatus{Stats: sender.Stats()}}}
				if perMember {
					s.Members = sender.Members
				}
				f(s)
				locked += time.Since(start)
			}}
			h := newMetricsHandler(c, quiet)
			req := httptest.NewRequest("GET", "/metrics", nil)
			var size int
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
			b.ReportMetric(float64(locked.Milliseconds())/float64(b.N), "ms-locked/op")
		})
	}
}
