package datapath

/* Report flow: a source's side of dynamic membership, in the loop that reads its tunnel port:
   the receiver side's routineReceive on a host that is a member too, routineReports on one
   that is not.

	receive -> check join_from -> decapsulate -> parse the report -> membership table

1. receive: a tunnel packet from an address that is not one of member.sources, or one from
   a source whose inner packet is IGMP, is handed here instead of to the receiver side's
   checks.
2. check join_from: the member is the tunnel packet's outer source address, always; it must
   be inside source.join_from.
3. decapsulate: with a secret, only the authenticated form, with a valid tag and a counter
   not seen before (encap.Opener); then our key.
4. parse: the inner packet must be an IGMPv3 membership report exactly as RFC 3376 draws it
   (igmp.ParseReport). With a secret, its own IPv4 source address, which the tag covers,
   must be the outer one: the Opener keeps its counters per outer address, so a report
   captured and sent again from another address would otherwise make that host a member.
5. the table: the report's records go to the sink, the daemon's membership table, which
   holds members and groups to their limits.

Every report refused is counted by reason and logged, rate-limited (newRefusedLog), with the
member's address, the reason and what more there is to say: what is wrong with a malformed
report or a bad tunnel header, the address a wrong member's report names. None costs memory
beyond the Opener's state for the members that authenticated. Refusals from outside
join_from, the bulk of a flood, have a limit of their own, so that they do not hide why a
host inside it is refused.
*/

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"mctun/config"
	"mctun/encap"
	"mctun/igmp"
	"mctun/internal/loglimit"
)

// ReportReason is why a report was refused.
type ReportReason uint8

// The reasons a report is refused.
const (
	NotInJoinFrom      ReportReason = iota // the sender's address is outside source.join_from
	ReportBadHeader                        // not a GRE header of the form mctun sends
	ReportWrongKey                         // the GRE key differs from ours
	ReportNotAuth                          // the plain form, where a secret requires the authenticated one
	ReportAuthFailed                       // the tag does not match: forged, corrupted, or another secret
	ReportReplayed                         // a counter seen before, or of an earlier run of its sender
	ReportNotEncrypted                     // authenticated but not encrypted, where encrypt = true
	NotAReport                             // the inner packet is not IGMP: data from a host that is no source
	ReportMalformed                        // IGMP, but not a well-formed IGMPv3 report (igmp.ParseReport)
	ReportWrongMember                      // with a secret, the report's own address is not the one it came from
	numReportReasons
)

var reportReasonNames = [numReportReasons]string{
	NotInJoinFrom:      "not_in_join_from",
	ReportBadHeader:    "bad_tunnel_header",
	ReportWrongKey:     "wrong_key",
	ReportNotAuth:      "not_authenticated",
	ReportAuthFailed:   "auth_failed",
	ReportReplayed:     "replayed",
	ReportNotEncrypted: "not_encrypted",
	NotAReport:         "not_a_report",
	ReportMalformed:    "malformed",
	ReportWrongMember:  "wrong_member",
}

func (r ReportReason) String() string { return reportReasonNames[r] }

// ReportSink takes the records of an accepted report from member.
type ReportSink func(member netip.Addr, recs []igmp.Record)

// Reports is a source's receiving end of membership reports. Its key and join_from can be
// replaced while it runs (Configure).
type Reports struct {
	open    *encap.Opener // nil: the plain form; owned by the loop that reads the tunnel port
	onEpoch func(member netip.Addr, epoch uint64)
	sink    ReportSink
	log     *slog.Logger
	policy  atomic.Pointer[reportPolicy]

	accepted     atomic.Uint64
	refused      [numReportReasons]atomic.Uint64
	refusedLogs  loglimit.Limiter // of reports refused from hosts inside join_from
	strangerLogs loglimit.Limiter // of reports refused from outside join_from
}

type reportPolicy struct {
	key      uint32
	joinFrom []netip.Prefix
}

// NewReports returns the receiving end of reports for a source with the given key and
// join_from; with an Opener, it accepts the authenticated form only, and only a report whose
// own source address is the address it came from (AcceptInner's too). The Opener must not be
// the receiver side's: each address's packets are opened by one Opener, the receiver side's
// for its sources, this one for everyone else. onEpoch, if not nil, learns each sending
// instance of a member that the Opener authenticates first (to keep the newest epochs across
// a restart of the source, as the receiver side does: see NewReceiver). Each report refused
// is logged to log, rate-limited (newRefusedLog).
func NewReports(key uint32, joinFrom []netip.Prefix, open *encap.Opener,
	onEpoch func(member netip.Addr, epoch uint64), sink ReportSink, log *slog.Logger) *Reports {
	r := &Reports{open: open, onEpoch: onEpoch, sink: sink, log: log,
		refusedLogs: newRefusedLog(), strangerLogs: newRefusedLog()}
	r.Configure(key, joinFrom)
	return r
}

// Configure replaces the key and join_from, from the next report on.
func (r *Reports) Configure(key uint32, joinFrom []netip.Prefix) {
	r.policy.Store(&reportPolicy{key: key, joinFrom: joinFrom})
}

// joins reports whether src may join.
func (p *reportPolicy) joins(src [4]byte) bool {
	return config.MayJoin(p.joinFrom, netip.AddrFrom4(src))
}

// Accept takes a whole tunnel packet from src through steps 2 to 5 of the flow.
func (r *Reports) Accept(src [4]byte, pkt []byte) {
	if !r.Take(src, pkt) {
		r.refuse(src, NotInJoinFrom, nil)
	}
}

// Take is Accept for a packet that may be something else than a report: from a host outside
// join_from it takes nothing, counts nothing and returns false, for the caller to count.
func (r *Reports) Take(src [4]byte, pkt []byte) bool {
	p := r.policy.Load()
	if !p.joins(src) {
		return false
	}
	r.acceptTunnel(p, src, pkt)
	return true
}

// acceptTunnel takes a whole tunnel packet from src, which may join, through steps 3 to 5.
func (r *Reports) acceptTunnel(p *reportPolicy, src [4]byte, pkt []byte) {
	var h encap.Header
	var inner []byte
	if r.open == nil {
		var err error
		if h, inner, err = encap.ParseHeader(pkt); err != nil {
			r.refuse(src, ReportBadHeader, err)
			return
		}
	} else {
		res, in, err := r.open.Open(src, pkt)
		if res.New && r.onEpoch != nil { // also when refused as not encrypted: the tag was good
			r.onEpoch(netip.AddrFrom4(src), res.Epoch)
		}
		if err != nil {
			reason := reportOpenReason(err)
			if reason != ReportBadHeader { // the reason says it all
				err = nil
			}
			r.refuse(src, reason, err)
			return
		}
		h, inner = res.Header, in
	}
	r.accept(p, src, h, inner)
}

// AcceptInner takes a report that came from one of the receiver side's sources, already
// decapsulated (and authenticated) there, through steps 2, 4 and 5. The receiver side has an
// Opener when r has one, both from the secret, so step 4 holds its report to its address too.
func (r *Reports) AcceptInner(src [4]byte, h encap.Header, inner []byte) {
	p := r.policy.Load()
	if !p.joins(src) {
		r.refuse(src, NotInJoinFrom, nil)
		return
	}
	r.accept(p, src, h, inner)
}

func (r *Reports) accept(p *reportPolicy, src [4]byte, h encap.Header, inner []byte) {
	if h.Key != p.key {
		r.refuse(src, ReportWrongKey, nil)
		return
	}
	if !igmp.IsReport(inner) {
		r.refuse(src, NotAReport, nil)
		return
	}
	rep, err := igmp.ParseReport(inner)
	if err != nil {
		r.refuse(src, ReportMalformed, err)
		return
	}
	if r.open != nil && rep.Src != netip.AddrFrom4(src) { // a secret: see step 4
		// Only a host with the secret gets this far: a flood never pays for the message.
		r.refuse(src, ReportWrongMember, fmt.Errorf("the report names %v as its member", rep.Src))
		return
	}
	r.accepted.Add(1)
	r.sink(netip.AddrFrom4(src), rep.Records)
}

// reportBufSize is the largest tunnel packet routineReports takes, and one byte more: the
// largest report (igmp.MaxPacket) with the authenticated form's headers and tag fits.
const reportBufSize = 2048

// Run runs routineReports until the Conn is closed: the loop that reads the tunnel port of a
// source that is not a member too.
func (r *Reports) Run(conn encap.Conn) error {
	return r.routineReports(conn)
}

// routineReports is the report flow for a source that has no receiver side.
func (r *Reports) routineReports(conn encap.Conn) error {
	n := conn.BatchSize()
	bufs := makeBufs(n, reportBufSize)
	sizes := make([]int, n)
	from := make([]netip.AddrPort, n)
	for {
		got, err := conn.ReadBatch(bufs, sizes, from)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		for i := range got {
			src := from[i].Addr().As4()
			if sizes[i] == len(bufs[i]) { // longer than any report
				if r.policy.Load().joins(src) {
					r.refuse(src, ReportMalformed, errReportTooLong)
				} else {
					r.refuse(src, NotInJoinFrom, nil)
				}
				continue
			}
			r.Accept(src, bufs[i][:sizes[i]])
		}
	}
}

// errReportTooLong is why routineReports refuses a tunnel packet longer than any report.
var errReportTooLong = errors.New("longer than any report")

// refuse counts a report from src refused for reason and logs it, rate-limited; err, if not
// nil, says what is wrong with it.
func (r *Reports) refuse(src [4]byte, reason ReportReason, err error) {
	r.refused[reason].Add(1)
	limit := &r.refusedLogs
	if reason == NotInJoinFrom {
		limit = &r.strangerLogs
	}
	ok, suppressed := limit.Allow()
	if !ok {
		return
	}
	attrs := []any{"member", netip.AddrFrom4(src), "reason", reason.String()}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if suppressed > 0 {
		attrs = append(attrs, "not_logged", suppressed)
	}
	r.log.Warn("report refused", attrs...)
}

// newRefusedLog is the limiter of refused reports in the log: up to 10 lines at once and one
// a second after that, the next line let through saying how many were held back. A flood of
// reports costs the log a line a second; the counters have every report.
func newRefusedLog() loglimit.Limiter {
	return loglimit.Limiter{Burst: 10, Every: time.Second}
}

// ReportStats counts reports: accepted, and refused by reason.
type ReportStats struct {
	Accepted uint64            `json:"accepted"`
	Refused  map[string]uint64 `json:"refused"`
}

// Stats returns the report counters.
func (r *Reports) Stats() ReportStats {
	st := ReportStats{Accepted: r.accepted.Load(), Refused: make(map[string]uint64, numReportReasons)}
	for i := range numReportReasons {
		st.Refused[i.String()] = r.refused[i].Load()
	}
	return st
}

// reportOpenReason maps encap.Opener.Open's errors to reasons.
func reportOpenReason(err error) ReportReason {
	switch err {
	case encap.ErrNotAuthenticated:
		return ReportNotAuth
	case encap.ErrAuthFailed:
		return ReportAuthFailed
	case encap.ErrReplay:
		return ReportReplayed
	case encap.ErrNotEncrypted:
		return ReportNotEncrypted
	default:
		return ReportBadHeader
	}
}
