package igmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"mctun/encap"
	"mctun/encap/encaptest"
)

var (
	member = netip.MustParseAddr("198.18.2.2")
	srcA   = netip.MustParseAddr("198.18.1.2")
	srcB   = netip.MustParseAddr("198.18.3.2")
)

// TestBuildReportBytes checks a report byte for byte against the layout of RFC 3376 section
// 4.2, with the IPv4 header of section 4 (TTL 1, TOS 0xc0, Router Alert), written out here
// by hand from the RFC's diagrams.
func TestBuildReportBytes(t *testing.T) {
	recs := []Record{
		{Type: ChangeToExclude, Group: netip.MustParseAddr("224.1.2.3")},
		{Type: ModeIsInclude, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{srcA, srcB}},
	}
	pkts := BuildReports(member, recs)
	if len(pkts) != 1 {
		t.Fatalf("%d packets, want 1", len(pkts))
	}
	want := []byte{
		// IPv4: version 4, IHL 6; TOS 0xc0; total length 24+8+8+16 = 56
		0x46, 0xc0, 0x00, 56,
		0x00, 0x00, 0x40, 0x00, // id 0, DF
		0x01, 0x02, 0x00, 0x00, // TTL 1, protocol 2 (IGMP), checksum (below)
		198, 18, 2, 2, // source: the member
		224, 0, 0, 22, // destination: all IGMPv3 routers
		0x94, 0x04, 0x00, 0x00, // Router Alert (RFC 2113)
		// IGMPv3 report: type 0x22, reserved, checksum (below); reserved, 2 records
		0x22, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x02,
		// record 1: CHANGE_TO_EXCLUDE_MODE, no aux data, no sources, 224.1.2.3
		0x04, 0x00, 0x00, 0x00,
		224, 1, 2, 3,
		// record 2: MODE_IS_INCLUDE, no aux data, 2 sources, 232.1.1.1, the sources
		0x01, 0x00, 0x00, 0x02,
		232, 1, 1, 1,
		198, 18, 1, 2,
		198, 18, 3, 2,
	}
	binary.BigEndian.PutUint16(want[10:], ^encaptest.ReferenceSum(0, want[:24]))
	binary.BigEndian.PutUint16(want[26:], ^encaptest.ReferenceSum(0, want[24:]))
	if !bytes.Equal(pkts[0], want) {
		t.Fatalf("report\n got % x\nwant % x", pkts[0], want)
	}
	rep, err := ParseReport(pkts[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := (Report{Src: member, Records: recs}); !reflect.DeepEqual(rep, want) {
		t.Fatalf("parsed %+v, want %+v", rep, want)
	}
}

// TestBuildReportsSplits: many records go out in several packets, none over MaxPacket, and
// together they carry every record in order.
func TestBuildReportsSplits(t *testing.T) {
	var recs []Record
	for i := range 1024 {
		recs = append(recs, Record{Type: ModeIsExclude, Group: netip.AddrFrom4([4]byte{239, 1, byte(i >> 8), byte(i)})})
	}
	many := make([]netip.Addr, 500) // over one packet: split over two
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	recs = append(recs, Record{Type: AllowNew, Group: netip.MustParseAddr("232.0.0.1"), Sources: many})
	var got []Record
	pkts := BuildReports(member, recs)
	for _, p := range pkts {
		if len(p) > MaxPacket {
			t.Fatalf("packet of %d bytes, over %d", len(p), MaxPacket)
		}
		rep, err := ParseReport(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rep.Records...)
	}
	if len(got) != 1024+2 || got[1023].Group != recs[1023].Group {
		t.Fatalf("%d records back over %d packets", len(got), len(pkts))
	}
	joined := append(append([]netip.Addr{}, got[1024].Sources...), got[1025].Sources...)
	if !reflect.DeepEqual(joined, many) || got[1025].Type != AllowNew {
		t.Fatalf("the split record's sources did not come back whole")
	}
	if n := len(BuildReports(member, nil)); n != 0 {
		t.Fatalf("no records: %d packets, want none", n)
	}
}

func TestParseReportRefuses(t *testing.T) {
	good := BuildReports(member, []Record{{Type: ModeIsInclude, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{srcA}}})[0]
	edit := func(f func(b []byte) []byte, fixIP, fixIGMP bool) []byte {
		b := f(bytes.Clone(good))
		if fixIGMP && len(b) >= 28 {
			b[26], b[27] = 0, 0
			binary.BigEndian.PutUint16(b[26:], encap.Checksum(0, b[24:]))
		}
		if fixIP && len(b) >= 24 {
			b[10], b[11] = 0, 0
			binary.BigEndian.PutUint16(b[10:], encap.Checksum(0, b[:24]))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrNotReport},
		{"UDP", encaptest.UDPPacket(member, netip.MustParseAddrPort("224.0.0.22:1"), []byte("x")), ErrNotReport},
		{"no Router Alert", encaptest.IPv4Packet(member, ReportsGroup, 2, good[24:]), ErrIPHeader},
		{"IP header checksum", edit(func(b []byte) []byte { b[10] ^= 1; return b }, false, false), ErrIPHeader},
		{"TTL 2", edit(func(b []byte) []byte { b[8] = 2; return b }, true, false), ErrIPHeader},
		{"a fragment", edit(func(b []byte) []byte { b[6] |= 0x20; return b }, true, false), ErrIPHeader},
		{"total length lies", edit(func(b []byte) []byte { return b[:len(b)-4] }, false, false), ErrIPHeader},
		{"another option", edit(func(b []byte) []byte { b[20] = 0x07; return b }, true, false), ErrIPHeader},
		{"to a group", edit(func(b []byte) []byte { b[19] = 1; return b }, true, false), ErrNotReport},
		{"IGMPv2 report", edit(func(b []byte) []byte { b[24] = 0x16; return b }, true, true), ErrNotReport},
		{"IGMP checksum", edit(func(b []byte) []byte { b[27] ^= 1; return b }, false, false), ErrChecksum},
		{"one record more than there is", edit(func(b []byte) []byte { b[31]++; return b }, true, true), ErrRecord},
		{"record type 7", edit(func(b []byte) []byte { b[32] = 7; return b }, true, true), ErrRecord},
		{"record type 0", edit(func(b []byte) []byte { b[32] = 0; return b }, true, true), ErrRecord},
		{"more sources than there are", edit(func(b []byte) []byte { b[35] = 2; return b }, true, true), ErrRecord},
		{"aux data past the end", edit(func(b []byte) []byte { b[33] = 1; return b }, true, true), ErrRecord},
		{"bytes after the records", edit(func(b []byte) []byte {
			b = append(b, 0, 0, 0, 0)
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
			return b
		}, true, true), ErrRecord},
		{"unicast group", edit(func(b []byte) []byte { b[36] = 10; return b }, true, true), ErrGroup},
		{"multicast source", edit(func(b []byte) []byte { b[40] = 224; return b }, true, true), ErrSource},
		{"source 0.0.0.0", edit(func(b []byte) []byte { copy(b[40:], []byte{0, 0, 0, 0}); return b }, true, true), ErrSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseReport(tc.pkt); !errors.Is(err, tc.want) {
				t.Fatalf("ParseReport: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := ParseReport(good); err != nil {
		t.Fatalf("the unedited report: %v", err)
	}
}

func TestRecordTypeNames(t *testing.T) {
	if s := ChangeToInclude.String(); s != "CHANGE_TO_INCLUDE_MODE" {
		t.Errorf("ChangeToInclude = %q", s)
	}
	if s := RecordType(9).String(); s != "record type 9" {
		t.Errorf("type 9 = %q", s)
	}
}
