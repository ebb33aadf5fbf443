package encap_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"mctun/encap"
	"mctun/encap/encaptest"
)

// FuzzCheckInner checks CheckInner against the rules it documents, restated here from RFC 791
// and the README: it never panics; it accepts exactly the whole IPv4 packets with a good header
// checksum, no options and a total length equal to their size, from a unicast host address
// to a multicast group, that are not IGMP and, if they are fragments, are fragments a sane
// datagram has; and what it reports of a packet it accepts is what the header says. The
// seed corpus is in testdata/fuzz/FuzzCheckInner.
func FuzzCheckInner(f *testing.F) {
	src, grp := netip.MustParseAddr("198.18.1.2"), netip.MustParseAddrPort("224.1.2.3:65535")
	udp := encaptest.UDPPacket(src, grp, []byte("hello"))
	f.Add(udp)
	f.Add(encaptest.IPv4Packet(src, netip.MustParseAddr("224.0.0.18"), 112, make([]byte, 20)))
	f.Add(fragment(encaptest.UDPPacket(src, grp, make([]byte, 1472)), 0x2000))
	f.Add(fragment(encaptest.UDPPacket(src, grp, make([]byte, 100)), 185))
	f.Add(encaptest.IPv4Packet(src, grp.Addr(), encap.ProtoIGMP, make([]byte, 8)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := encap.CheckInner(b)
		why := innerRuleBroken(b)
		if err != nil {
			switch err {
			case encap.ErrNotIPv4, encap.ErrMalformed, encap.ErrLength, encap.ErrOptions, encap.ErrFragment,
				encap.ErrNotMulticast, encap.ErrSource, encap.ErrIGMP:
			default:
				t.Fatalf("error %v is none of CheckInner's", err)
			}
			if why == "" {
				t.Fatalf("refused a packet that keeps every rule (%v): % x", err, b)
			}
			return
		}
		if why != "" {
			t.Fatalf("accepted a packet that breaks a rule: %s: % x", why, b)
		}
		frag := binary.BigEndian.Uint16(b[6:])
		more, offset := frag&0x2000 != 0, frag&0x1fff
		want := encap.Inner{
			Src: netip.AddrFrom4([4]byte(b[12:16])), Dst: netip.AddrFrom4([4]byte(b[16:20])), Proto: b[9],
			ID: binary.BigEndian.Uint16(b[4:]), Fragment: more || offset != 0, First: offset == 0,
		}
		if b[9] == encap.ProtoUDP && offset == 0 && len(b) >= 28 {
			want.Port, want.HasPort = binary.BigEndian.Uint16(b[22:]), true
		}
		if in != want {
			t.Fatalf("CheckInner says %+v, the header says %+v", in, want)
		}
	})
}

// innerRuleBroken returns the first rule b breaks, or "" if it keeps them all.
func innerRuleBroken(b []byte) string {
	switch {
	case len(b) < 20:
		return "shorter than an IPv4 header"
	case b[0]>>4 != 4:
		return "not IPv4"
	case b[0]&0x0f != 5:
		return "header length not 20 (options, or broken)"
	case encaptest.ReferenceSum(0, b[:20]) != 0xffff:
		return "bad header checksum"
	case int(binary.BigEndian.Uint16(b[2:])) != len(b):
		return "total length is not the packet's length"
	}
	src, dst := netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	switch {
	case dst.As4()[0]&0xf0 != 0xe0:
		return "destination not in 224.0.0.0/4"
	case src == netip.IPv4Unspecified() || src.As4()[0] == 127 || src.As4()[0]&0xf0 == 0xe0 || src == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "source not a unicast host address"
	case b[9] == encap.ProtoIGMP:
		return "IGMP"
	}
	frag := binary.BigEndian.Uint16(b[6:])
	more, offset, payload := frag&0x2000 != 0, int(frag&0x1fff)*8, len(b)-20
	if more || offset != 0 {
		switch {
		case more && payload%8 != 0:
			return "a fragment with more to come whose payload is not a multiple of 8"
		case offset+payload > 65535-20:
			return "a fragment past the largest datagram"
		case offset == 0 && b[9] == encap.ProtoUDP && payload < 8:
			return "a first fragment without the whole UDP header"
		}
	}
	return ""
}
