package igmp

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzParseReport: ParseReport never panics, and whatever it accepts is a report that
// BuildReports writes back byte for byte (but for aux data, which mctun never sends, and the
// packet's IP identification, type of service and don't-fragment and reserved flags, which it
// sends as 0, 0xc0, set and clear, and does not check, as other stacks set them otherwise):
// it accepts nothing else it would not itself send. The seed corpus is in testdata/fuzz/FuzzParseReport.
func FuzzParseReport(f *testing.F) {
	for _, recs := range [][]Record{
		nil,
		{{Type: ChangeToExclude, Group: netip.MustParseAddr("224.1.2.3")}},
		{{Type: ModeIsInclude, Group: netip.MustParseAddr("232.1.1.1"), Sources: []netip.Addr{srcA, srcB}},
			{Type: ChangeToInclude, Group: netip.MustParseAddr("224.0.0.18")}},
	} {
		if recs == nil {
			f.Add(finish(newPacket(), member, 0))
			continue
		}
		f.Add(BuildReports(member, recs)[0])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ParseReport(b)
		if err != nil {
			return
		}
		if len(b) > MaxPacket || len(rep.Records) == 0 {
			return // BuildReports would split it, or sends no empty report
		}
		aux := false
		p := b[ipHeaderLen+reportHdrLen:]
		for range rep.Records {
			aux = aux || p[1] != 0
			p = p[recordHdrLen+4*(int(p[2])<<8|int(p[3]))+4*int(p[1]):]
		}
		if aux {
			return
		}
		again := BuildReports(rep.Src, rep.Records)
		want := bytes.Clone(b)
		want[4], want[5] = 0, 0 // identification
		if len(again) != 1 {
			t.Fatalf("accepted % x, which builds back into %d packets", b, len(again))
		}
		rebuilt := again[0]
		// Only the type of service, the identification, the flags but more-fragments and the
		// reserved fields may differ, and the checksums with them.
		for _, i := range []int{1, 4, 5, 10, 11, 25, 26, 27, 28, 29} {
			want[i], rebuilt[i] = 0, 0
		}
		want[6] &^= 0xc0
		rebuilt[6] &^= 0xc0
		if !bytes.Equal(rebuilt, want) {
			t.Fatalf("accepted\n% x\nwhich builds back as\n% x", b, again[0])
		}
	})
}
