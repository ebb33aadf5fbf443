package igmp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"

	"mctun/encap"
)

// An IGMPv3 membership report (RFC 3376 section 4.2) as mctun sends it, inside an IPv4 packet
// with TTL 1, the type of service of internetwork control (0xc0) and the Router Alert option
// (RFC 2113), from the member's address to 224.0.0.22:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL=6|  TOS = 0xc0   |          Total Length         |  IPv4 (RFC 791)
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |0|1|0|    Fragment Offset      |  DF, as Linux sends
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    TTL = 1    | Protocol = 2  |        Header Checksum        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Source Address: the member                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 Destination Address: 224.0.0.22               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  0x94 (Router Alert)  |  4    |               0               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Type = 0x22  |    Reserved   |           Checksum            |  IGMPv3 report
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Reserved            |  Number of Group Records (M)  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Record Type  |  Aux Data Len |     Number of Sources (N)     |  group record,
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  M times
//	|                       Multicast Address                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Source Address [1..N]                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Auxiliary Data (Aux Data Len words)         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

// RecordType is a group record's type (RFC 3376 section 4.2.12).
type RecordType uint8

// The record types. A member sends the current state (ModeIsInclude, ModeIsExclude) every
// interval and a change (ChangeToInclude, ChangeToExclude) at once; a leave is
// ChangeToInclude with no sources. AllowNew and BlockOld are understood when received.
const (
	ModeIsInclude   RecordType = 1
	ModeIsExclude   RecordType = 2
	ChangeToInclude RecordType = 3
	ChangeToExclude RecordType = 4
	AllowNew        RecordType = 5
	BlockOld        RecordType = 6
)

var recordNames = [...]string{"", "MODE_IS_INCLUDE", "MODE_IS_EXCLUDE", "CHANGE_TO_INCLUDE_MODE",
	"CHANGE_TO_EXCLUDE_MODE", "ALLOW_NEW_SOURCES", "BLOCK_OLD_SOURCES"}

func (t RecordType) String() string {
	if int(t) < len(recordNames) && t != 0 {
		return recordNames[t]
	}
	return "record type " + strconv.Itoa(int(t))
}

// Record is one group record: a group and a source list whose meaning the type gives.
type Record struct {
	Type    RecordType
	Group   netip.Addr
	Sources []netip.Addr
}

// Report is a parsed membership report.
type Report struct {
	Src     netip.Addr // the IPv4 source: the member's address as it wrote it
	Records []Record
}

// ReportsGroup is where IGMPv3 reports are sent: all IGMPv3-capable multicast routers.
var ReportsGroup = netip.AddrFrom4([4]byte{224, 0, 0, 22})

// AllHosts is the group every host's kernel joins on every interface; it is never reported.
var AllHosts = netip.AddrFrom4([4]byte{224, 0, 0, 1})

const (
	ipHeaderLen   = 24 // with the Router Alert option
	reportHdrLen  = 8
	recordHdrLen  = 8
	typeReportV3  = 0x22
	tosControl    = 0xc0
	optRouterAlrt = 0x94
)

// Errors ParseReport returns, one per reason a report is refused.
var (
	ErrNotReport = errors.New("not an IGMPv3 membership report")
	ErrIPHeader  = errors.New("malformed IPv4 header around the report")
	ErrChecksum  = errors.New("IGMP checksum does not match")
	ErrRecord    = errors.New("malformed group record")
	ErrGroup     = errors.New("group record for an address that is not a multicast group")
	ErrSource    = errors.New("group record with a source that is not a unicast host address")
)

// IsReport reports whether an inner packet looks like IGMP at all (IPv4, protocol 2): the
// cheap test that sends it to ParseReport instead of the checks for multicast data.
func IsReport(b []byte) bool {
	return len(b) >= 20 && b[0]>>4 == 4 && b[9] == encap.ProtoIGMP
}

// MaxPacket is the largest report packet BuildReports makes: small enough that the tunnel
// packet around it is not fragmented on a 1500-byte path, with a secret too.
const MaxPacket = 1400

// BuildReports returns the reports that carry recs from src, in order, each a whole IPv4
// packet of at most MaxPacket bytes, so that the tunnel packet around it is not fragmented.
// A record is split over packets (RFC 3376 section 4.2.16) only when it does not fit in one
// by itself, which a member avoids by sending at most MaxSources sources in a record.
func BuildReports(src netip.Addr, recs []Record) [][]byte {
	var out [][]byte
	pkt, n := newPacket(), 0 // n: records in pkt
	for _, r := range recs {
		sources := r.Sources
		for {
			room := (MaxPacket - len(pkt) - recordHdrLen) / 4 // sources that still fit
			if n > 0 && (len(pkt)+recordHdrLen > MaxPacket || room < len(sources)) {
				out = append(out, finish(pkt, src, n))
				pkt, n = newPacket(), 0
				continue
			}
			k := min(room, len(sources))
			pkt = appendRecord(pkt, r.Type, r.Group, sources[:k])
			n++
			if sources = sources[k:]; len(sources) == 0 {
				break
			}
		}
	}
	if n > 0 {
		out = append(out, finish(pkt, src, n))
	}
	return out
}

func newPacket() []byte { return make([]byte, ipHeaderLen+reportHdrLen, MaxPacket) }

// MaxSources is the most sources a member puts in one record: one packet's worth.
const MaxSources = (MaxPacket - ipHeaderLen - reportHdrLen - recordHdrLen) / 4

func appendRecord(b []byte, t RecordType, group netip.Addr, sources []netip.Addr) []byte {
	b = append(b, byte(t), 0, byte(len(sources)>>8), byte(len(sources)))
	g := group.As4()
	b = append(b, g[:]...)
	for _, s := range sources {
		a := s.As4()
		b = append(b, a[:]...)
	}
	return b
}

// finish writes the IPv4 and IGMP headers in front of n records.
func finish(b []byte, src netip.Addr, n int) []byte {
	ip := b[:ipHeaderLen]
	ip[0], ip[1] = 0x46, tosControl
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(ip[4:], 0)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8], ip[9] = 1, encap.ProtoIGMP
	ip[10], ip[11] = 0, 0
	s, d := src.As4(), ReportsGroup.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	ip[20], ip[21], ip[22], ip[23] = optRouterAlrt, 4, 0, 0
	binary.BigEndian.PutUint16(ip[10:], encap.Checksum(0, ip))
	m := b[ipHeaderLen:]
	m[0], m[1], m[2], m[3] = typeReportV3, 0, 0, 0
	m[4], m[5] = 0, 0
	binary.BigEndian.PutUint16(m[6:], uint16(n))
	binary.BigEndian.PutUint16(m[2:], encap.Checksum(0, m))
	return b
}

// ParseReport checks an inner packet that IsReport picked out and returns the report it
// carries. It accepts exactly what RFC 3376 says a report is: a whole, unfragmented IPv4
// packet with a good header checksum, TTL 1, the Router Alert option and no other, to
// 224.0.0.22, holding an IGMPv3 report (type 0x22) with a good checksum whose group records
// fill it exactly, each of a known type, for a multicast group, with unicast sources.
// Anything else is refused rather than guessed at.
func ParseReport(b []byte) (Report, error) {
	if !IsReport(b) {
		return Report{}, ErrNotReport
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl != ipHeaderLen || len(b) < ihl || encap.Checksum(0, b[:ihl]) != 0 ||
		int(binary.BigEndian.Uint16(b[2:])) != len(b) || binary.BigEndian.Uint16(b[6:])&0x3fff != 0 ||
		b[8] != 1 || b[20] != optRouterAlrt || b[21] != 4 || b[22] != 0 || b[23] != 0 {
		return Report{}, ErrIPHeader
	}
	if netip.AddrFrom4([4]byte(b[16:20])) != ReportsGroup {
		return Report{}, ErrNotReport
	}
	m := b[ihl:]
	if len(m) < reportHdrLen || m[0] != typeReportV3 {
		return Report{}, ErrNotReport
	}
	if encap.Checksum(0, m) != 0 {
		return Report{}, ErrChecksum
	}
	n := int(binary.BigEndian.Uint16(m[6:]))
	rep := Report{Src: netip.AddrFrom4([4]byte(b[12:16]))}
	if n > 0 {
		rep.Records = make([]Record, 0, min(n, len(m)/recordHdrLen))
	}
	p := m[reportHdrLen:]
	for range n {
		if len(p) < recordHdrLen {
			return Report{}, ErrRecord
		}
		t, aux, ns := RecordType(p[0]), int(p[1])*4, int(binary.BigEndian.Uint16(p[2:]))
		size := recordHdrLen + 4*ns + aux
		if t < ModeIsInclude || t > BlockOld || len(p) < size {
			return Report{}, ErrRecord
		}
		r := Record{Type: t, Group: netip.AddrFrom4([4]byte(p[4:8]))}
		if !r.Group.IsMulticast() {
			return Report{}, ErrGroup
		}
		if ns > 0 {
			r.Sources = make([]netip.Addr, ns)
			for i := range ns {
				s := netip.AddrFrom4([4]byte(p[recordHdrLen+4*i:]))
				if !encap.IsHostAddr(s) {
					return Report{}, ErrSource
				}
				r.Sources[i] = s
			}
		}
		rep.Records = append(rep.Records, r)
		p = p[size:]
	}
	if len(p) != 0 {
		return Report{}, ErrRecord
	}
	return rep, nil
}
