package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mctun/config"
	"mctun/datapath"
)

// The Prometheus endpoint, [metrics]: a collector that reads the instance's counters when it
// is scraped, from the same snapshot mctun stats shows (Status, and the sender side's
// Members), so that nothing is added to the packet paths and whatever a packet path adds to
// those snapshots is exported too; and the HTTP server that serves it on metrics.listen.
//
// Every series comes from the live tables at the moment of the scrape: a group a reload
// removed is gone from the next scrape. The label sets are closed: group, port, member,
// source (addresses from the config or the flow table, which has at most 65,536 flows),
// reason (datapath's drop reasons), interface (the capture's), result, datapath, version.

// metricsScrape is what one scrape reads.
type metricsScrape struct {
	Status Status
	// Members walks each group's members' counters, groups in the order of
	// Status.Source.Stats.Groups (datapath.Sender.Members). nil without a sender side, or
	// when metrics.per_member is off.
	Members func(f func(group int, ms []datapath.MemberStats) error) error
}

// collector is the prometheus.Collector of mctun's own series.
type collector struct {
	// read calls f with one consistent snapshot: no reload changes the groups while f runs.
	read func(f func(metricsScrape))
}

// Series, in the order of the README's table.
var (
	descBuildInfo = prometheus.NewDesc("mctun_build_info",
		"Always 1: the version of mctun and the Go it was built with.", []string{"version", "goversion"}, nil)
	descDatapath = prometheus.NewDesc("mctun_datapath_info",
		`Always 1: where packets are forwarded, "kernel" or "user".`, []string{"datapath"}, nil)
	descReloads = prometheus.NewDesc("mctun_reloads_total",
		"Reloads (mctun reload, SIGHUP) applied, and refused with nothing changed.", []string{"result"}, nil)
	descCommands = prometheus.NewDesc("mctun_commands_total",
		"Management commands that change the instance (group, member, source), applied and refused with nothing changed.", []string{"result"}, nil)

	descCaptured = prometheus.NewDesc("mctun_sender_captured_packets_total",
		"Outgoing multicast packets the sender side captured on the interface (on the kernel path: that it handed over).", []string{"interface"}, nil)
	descCaptureDrops = prometheus.NewDesc("mctun_sender_kernel_dropped_packets_total",
		"Packets the kernel dropped because the capture ring (on the kernel path: the hand-off's queue) was full: the sender side fell behind.", []string{"interface"}, nil)
	descCaptureTruncated = prometheus.NewDesc("mctun_sender_capture_truncated_packets_total",
		"Packets longer than the capture ring's frames, not forwarded: sends of several datagrams at once (GSO), which only the kernel path forwards, or an MTU raised since start.", []string{"interface"}, nil)
	descGroupMembers = prometheus.NewDesc("mctun_sender_group_members",
		"Members the group is sent to (this host's own addresses left out).", []string{"group", "port"}, nil)
	descGroupFailing = prometheus.NewDesc("mctun_sender_group_failing_members",
		"Members of the group whose last send failed.", []string{"group", "port"}, nil)
	descGroupPackets = prometheus.NewDesc("mctun_sender_group_packets_total",
		"Packets captured for the group, each sent on to every member.", []string{"group", "port"}, nil)
	descGroupBytes = prometheus.NewDesc("mctun_sender_group_bytes_total",
		"Bytes of the packets captured for the group (inner packets, IP header included).", []string{"group", "port"}, nil)
	descGroupErrors = prometheus.NewDesc("mctun_sender_group_send_errors_total",
		"Sends to the group's members that failed, all members together.", []string{"group", "port"}, nil)
	descMemberPackets = prometheus.NewDesc("mctun_sender_member_packets_total",
		"Tunnel packets sent to the member for the group (metrics.per_member).", []string{"group", "port", "member"}, nil)
	descMemberBytes = prometheus.NewDesc("mctun_sender_member_bytes_total",
		"Bytes of the tunnel packets sent to the member for the group, UDP payload (metrics.per_member).", []string{"group", "port", "member"}, nil)
	descMemberErrors = prometheus.NewDesc("mctun_sender_member_send_errors_total",
		"Sends to the member for the group that failed (metrics.per_member).", []string{"group", "port", "member"}, nil)
	descSenderDrops = prometheus.NewDesc("mctun_sender_dropped_packets_total",
		"Packets the sender side did not forward, by reason.", []string{"reason"}, nil)
	descMemberships = prometheus.NewDesc("mctun_sender_dynamic_memberships",
		"Memberships the source learned from members' reports, one per member and group.", nil, nil)
	descMembershipChanges = prometheus.NewDesc("mctun_sender_membership_changes_total",
		`Changes of the learned memberships: "joined", "left", "expired", and "refused_over_limit" (a group record refused by a limit).`, []string{"change"}, nil)
	descReportsAccepted = prometheus.NewDesc("mctun_sender_reports_accepted_total",
		"Membership reports the source accepted.", nil, nil)
	descReportsRefused = prometheus.NewDesc("mctun_sender_reports_refused_total",
		"Membership reports the source refused, by reason.", []string{"reason"}, nil)
	descReportSocketDrops = prometheus.NewDesc("mctun_sender_reports_kernel_dropped_total",
		"Membership reports the kernel dropped because the source's socket's receive buffer was full (a source that is not a member too).", nil, nil)

	descFlowPackets = prometheus.NewDesc("mctun_receiver_packets_total",
		"Packets from the source for the group delivered into the TUN.", []string{"source", "group"}, nil)
	descFlowBytes = prometheus.NewDesc("mctun_receiver_bytes_total",
		"Bytes of the packets from the source for the group delivered into the TUN (inner packets).", []string{"source", "group"}, nil)
	descFlowLost = prometheus.NewDesc("mctun_receiver_lost_packets",
		"Packets missing from the source's sequence for the group; one that arrives late is taken back out.", []string{"source", "group"}, nil)
	descFlowReordered = prometheus.NewDesc("mctun_receiver_reordered_packets_total",
		"Packets from the source for the group that arrived late.", []string{"source", "group"}, nil)
	descFlowDuplicates = prometheus.NewDesc("mctun_receiver_duplicate_packets_total",
		"Packets from the source for the group that arrived a second time.", []string{"source", "group"}, nil)
	descFlowRestarts = prometheus.NewDesc("mctun_receiver_sender_restarts_total",
		"Times the source's sequence for the group started again from 0 (its mctun restarted).", []string{"source", "group"}, nil)
	descReceiverDrops = prometheus.NewDesc("mctun_receiver_dropped_packets_total",
		"Tunnel packets the receiver side dropped, by reason.", []string{"reason"}, nil)
	descSocketDrops = prometheus.NewDesc("mctun_receiver_kernel_dropped_packets_total",
		"Tunnel packets the kernel dropped because the socket's receive buffer was full.", nil, nil)
	descHostPackets = prometheus.NewDesc("mctun_receiver_host_packets_total",
		"Multicast this host sent into the TUN that no sender side took (IGMP reports, mostly), read and discarded.", nil, nil)

	descKernelPaths = prometheus.NewDesc("mctun_kernel_path_packets_total",
		`Packets of the kernel path's side (sender or receiver) by the path they took: "kernel", or "user_..." with why the kernel path left them to user space.`, []string{"side", "path"}, nil)
	descKernelMaps = prometheus.NewDesc("mctun_kernel_path_map_bytes",
		"Kernel memory the kernel path's maps hold, by side.", []string{"side"}, nil)

	allDescs = []*prometheus.Desc{descBuildInfo, descDatapath, descReloads, descCommands, descKernelPaths, descKernelMaps,
		descCaptured, descCaptureDrops, descCaptureTruncated, descGroupMembers, descGroupFailing, descGroupPackets,
		descGroupBytes, descGroupErrors, descMemberPackets, descMemberBytes, descMemberErrors,
		descSenderDrops, descMemberships, descMembershipChanges, descReportsAccepted, descReportsRefused,
		descReportSocketDrops, descFlowPackets, descFlowBytes, descFlowLost, descFlowReordered,
		descFlowDuplicates, descFlowRestarts, descReceiverDrops, descSocketDrops, descHostPackets}
)

// overflowLabel names, as source and as group, the flow that counts together the packets of
// every flow past the receiver's flow table's limit.
const overflowLabel = "other"

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect makes the metrics while read holds the snapshot (the daemon's lock), and hands them
// to the registry after: the registry's work, most of a scrape's, then delays no reload.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	var ms []prometheus.Metric
	c.read(func(s metricsScrape) { ms = collect(ms, s) })
	for _, m := range ms {
		ch <- m
	}
}

// collect appends the metrics of s to ms.
func collect(ms []prometheus.Metric, s metricsScrape) []prometheus.Metric {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ms = append(ms, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ms = append(ms, prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...))
	}
	st := s.Status
	kernel := func(side string, k *KernelStatus) {
		if k == nil {
			return
		}
		for path, n := range k.Paths {
			counter(descKernelPaths, n, side, path)
		}
		gauge(descKernelMaps, float64(k.MapBytes), side)
	}
	if st.Source != nil {
		kernel("sender", st.Source.Kernel)
	}
	if st.Member != nil {
		kernel("receiver", st.Member.Kernel)
	}
	gauge(descBuildInfo, 1, st.Version, runtime.Version())
	gauge(descDatapath, 1, st.Datapath)
	counter(descReloads, st.Reloads.Applied, "applied")
	counter(descReloads, st.Reloads.Refused, "refused")
	counter(descCommands, st.Commands.Applied, "applied")
	counter(descCommands, st.Commands.Refused, "refused")

	if src := st.Source; src != nil {
		for _, c := range src.Captures {
			counter(descCaptured, c.Packets, c.Name)
			counter(descCaptureDrops, c.KernelDrop, c.Name)
			counter(descCaptureTruncated, c.Truncated, c.Name)
		}
		type groupLabels struct{ group, port string }
		groups := make([]groupLabels, len(src.Stats.Groups))
		for i, g := range src.Stats.Groups {
			l := groupLabels{g.Address.String(), ""} // a group of every packet to its address has no port
			if g.Port != 0 {
				l.port = strconv.Itoa(int(g.Port))
			}
			groups[i] = l
			gauge(descGroupMembers, float64(g.MemberCount), l.group, l.port)
			gauge(descGroupFailing, float64(g.Failing), l.group, l.port)
			counter(descGroupPackets, g.Packets, l.group, l.port)
			counter(descGroupBytes, g.Bytes, l.group, l.port)
			counter(descGroupErrors, g.SendErrors, l.group, l.port)
		}
		for reason, n := range src.Stats.Drops {
			counter(descSenderDrops, n, reason)
		}
		if j := src.Joins; j != nil {
			gauge(descMemberships, float64(j.Memberships))
			counter(descMembershipChanges, j.Joins, "joined")
			counter(descMembershipChanges, j.Leaves, "left")
			counter(descMembershipChanges, j.Expiries, "expired")
			counter(descMembershipChanges, j.OverLimit, "refused_over_limit")
			counter(descReportsAccepted, j.Reports.Accepted)
			for reason, n := range j.Reports.Refused {
				counter(descReportsRefused, n, reason)
			}
			counter(descReportSocketDrops, j.SocketDrops)
		}
		if s.Members != nil {
			s.Members(func(i int, ms []datapath.MemberStats) error {
				if i >= len(groups) {
					return nil
				}
				l := groups[i]
				for _, m := range ms {
					member := m.Address.String()
					counter(descMemberPackets, m.Packets, l.group, l.port, member)
					counter(descMemberBytes, m.Bytes, l.group, l.port, member)
					counter(descMemberErrors, m.Errors, l.group, l.port, member)
				}
				return nil
			})
		}
	}

	if mem := st.Member; mem != nil {
		for _, f := range mem.Stats.Flows {
			source, group := overflowLabel, overflowLabel
			if f.Source.IsValid() {
				source, group = f.Source.String(), f.Group.String()
			}
			counter(descFlowPackets, f.Packets, source, group)
			counter(descFlowBytes, f.Bytes, source, group)
			gauge(descFlowLost, float64(f.Lost), source, group)
			counter(descFlowReordered, f.Reordered, source, group)
			counter(descFlowDuplicates, f.Duplicates, source, group)
			counter(descFlowRestarts, f.Restarts, source, group)
		}
		for reason, n := range mem.Stats.Drops {
			counter(descReceiverDrops, n, reason)
		}
		counter(descSocketDrops, mem.SocketDrops)
		counter(descHostPackets, mem.Stats.HostPackets)
	}
	return ms
}

// readMetrics is the collector's read: the status and the members' counters under d.mu, so
// that a reload cannot swap the groups between the two.
func (d *daemon) readMetrics(f func(metricsScrape)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	view := d.sender.View()
	s := metricsScrape{Status: d.statusLocked(view)}
	if d.sender != nil && d.cfg.Metrics.PerMember {
		groups := s.Status.Source.Stats.Groups
		s.Members = func(f func(int, []datapath.MemberStats) error) error { return d.memberStats(view, groups, f) }
	}
	f(s)
}

// newMetricsHandler serves GET /metrics: c's series, and the Go runtime's and the process's
// (go_*, process_*: memory, CPU, open files).
func newMetricsHandler(c prometheus.Collector, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape with per-member series copies every member's counters: two scrapers at
		// once are plenty; a third gets 503 Service Unavailable.
		MaxRequestsInFlight: 2,
	}))
	return mux
}

// promLogger logs promhttp's errors.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// metricsServer serves the endpoint on one listener, from listenMetrics to close.
type metricsServer struct {
	addr netip.AddrPort
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve returned; nil until serve
}

// listenMetrics binds addr, metrics.listen, and returns a server that serves h once serve is
// called. Binding first lets start and reload fail, with nothing changed, on an address that
// cannot be bound.
func listenMetrics(addr netip.AddrPort, h http.Handler, log *slog.Logger) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) { // "bind: address already in use", without repeating the address
			err = op.Err
		}
		return nil, fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	return &metricsServer{addr: addr, ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// url is where the endpoint is scraped.
func (s *metricsServer) url() string { return "http://" + s.addr.String() + "/metrics" }

// serve starts serving, in a goroutine that ends with close or shutdown.
func (s *metricsServer) serve() {
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		s.srv.Serve(s.ln) // returns on close or shutdown
	}()
}

// close stops at once: the listener and every connection are closed, a scrape in progress
// gets a broken connection. It does not wait for a handler, so it may be called with d.mu
// held (a handler may be waiting for it).
func (s *metricsServer) close() {
	s.srv.Close()
	s.ln.Close() // not yet Serve's if serve was not called
	if s.done != nil {
		<-s.done
	}
}

// shutdown stops accepting, lets the scrapes in progress finish (within timeout), then
// closes. Not with d.mu held: a scrape needs it.
func (s *metricsServer) shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.srv.Shutdown(ctx)
	s.close()
}

// startMetrics binds metrics.listen, the first thing start does, so that an address that
// cannot be bound fails mctun up before anything changes on the host. Serving starts once
// the packet paths exist, before the control socket (so before any reload).
func (d *daemon) startMetrics() error {
	if !d.cfg.Metrics.Enabled() {
		return nil
	}
	srv, err := listenMetrics(d.cfg.Metrics.Listen, d.metricsHandler(), d.log)
	if err != nil {
		return err
	}
	d.metrics = srv
	return nil
}

// metricsHandler returns the endpoint's handler, made on first use. The caller holds d.mu or
// is start.
func (d *daemon) metricsHandler() http.Handler {
	if d.metricsHTTP == nil {
		d.metricsHTTP = newMetricsHandler(&collector{read: d.readMetrics}, d.log)
	}
	return d.metricsHTTP
}

// rebindMetrics readies the move of the endpoint to next's address for a reload: it binds
// the new address while the old one still serves, so that an address that cannot be bound
// refuses the reload with nothing changed. commit then closes the old listener and serves
// the new one; abort closes the new one and leaves the old. The caller holds d.mu.
//
// When both addresses have the same port (127.0.0.1:9477 -> 0.0.0.0:9477) they cannot hold it
// at once: the old listener is closed first, and opened again if the new cannot be bound or
// the reload is aborted. Should another program have taken the old address meanwhile, the
// error says so (errNotUndone): there are no metrics until metrics.listen changes.
func (d *daemon) rebindMetrics(next config.Metrics) (commit func(), abort func() error, err error) {
	cur := d.cfg.Metrics.Listen
	if next.Listen == cur {
		return func() {}, func() error { return nil }, nil
	}
	old := d.metrics
	samePort := old != nil && next.Enabled() && next.Listen.Port() == cur.Port()
	reopen := func() error {
		if !samePort {
			return nil
		}
		d.metrics = nil
		srv, err := listenMetrics(cur, d.metricsHandler(), d.log)
		if err != nil {
			d.log.Error("metrics: cannot serve on the previous address again; no metrics until metrics.listen changes or mctun restarts", "err", err)
			return err
		}
		srv.serve()
		d.metrics = srv
		return nil
	}
	if samePort {
		old.close()
	}
	var srv *metricsServer
	if next.Enabled() {
		if srv, err = listenMetrics(next.Listen, d.metricsHandler(), d.log); err != nil {
			if rerr := reopen(); rerr != nil {
				err = fmt.Errorf("%w; %w: %w", err, errNotUndone, rerr)
			}
			return nil, nil, err
		}
	}
	commit = func() {
		if old != nil && !samePort {
			old.close()
		}
		d.metrics = srv
		if srv != nil {
			srv.serve()
		}
	}
	abort = func() error {
		if srv != nil {
			srv.close()
		}
		return reopen()
	}
	return commit, abort, nil
}

// stopMetrics ends the endpoint, letting a scrape in progress finish: the first thing stop
// does, so that no scrape reads what stop closes.
func (d *daemon) stopMetrics() {
	d.mu.Lock()
	srv := d.metrics
	d.metrics = nil
	d.mu.Unlock()
	if srv != nil {
		srv.shutdown(5 * time.Second)
	}
}

// metricsURL is where status says the endpoint is, or "". The caller holds d.mu.
func (d *daemon) metricsURL() string {
	if d.metrics == nil {
		return ""
	}
	return d.metrics.url()
}
