package encap_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"mctun/encap"
	"mctun/encap/encaptest"
)

var (
	srcAddr = netip.MustParseAddr("198.18.1.2")
	group   = netip.MustParseAddrPort("224.1.2.3:65535")
)

// fragment turns a valid packet into a fragment with the given flags/offset word and fixes the
// header checksum.
func fragment(b []byte, word uint16) []byte {
	binary.BigEndian.PutUint16(b[6:], word)
	encaptest.SetHeaderChecksum(b)
	return b
}

func TestCheckInner(t *testing.T) {
	udp := func(n int) []byte { return encaptest.UDPPacket(srcAddr, group, make([]byte, n)) }
	tests := []struct {
		name string
		pkt  []byte
		err  error
		want encap.Inner // checked when err is nil
	}{
		{"udp", udp(100), nil, encap.Inner{Src: srcAddr, Dst: group.Addr(), Proto: 17, ID: 0x1234, First: true, Port: 65535, HasPort: true}},
		{"vrrp", encaptest.IPv4Packet(srcAddr, netip.MustParseAddr("224.0.0.18"), 112, make([]byte, 20)), nil,
			encap.Inner{Src: srcAddr, Dst: netip.MustParseAddr("224.0.0.18"), Proto: 112, ID: 0x1234, First: true}},
		{"first fragment", fragment(udp(1472), 0x2000), nil,
			encap.Inner{Src: srcAddr, Dst: group.Addr(), Proto: 17, ID: 0x1234, Fragment: true, First: true, Port: 65535, HasPort: true}},
		{"middle fragment", fragment(udp(1472), 0x2000|185), nil,
			encap.Inner{Src: srcAddr, Dst: group.Addr(), Proto: 17, ID: 0x1234, Fragment: true}},
		{"last fragment", fragment(udp(100), 185), nil,
			encap.Inner{Src: srcAddr, Dst: group.Addr(), Proto: 17, ID: 0x1234, Fragment: true}},

		{"empty", nil, encap.ErrNotIPv4, encap.Inner{}},
		{"IPv6", append([]byte{0x60}, make([]byte, 39)...), encap.ErrNotIPv4, encap.Inner{}},
		{"short header", udp(10)[:19], encap.ErrMalformed, encap.Inner{}},
		{"bad header checksum", func() []byte { b := udp(10); b[10] ^= 1; return b }(), encap.ErrMalformed, encap.Inner{}},
		{"ihl below 5", func() []byte { b := udp(10); b[0] = 0x44; encaptest.SetHeaderChecksum(b); return b }(), encap.ErrMalformed, encap.Inner{}},
		{"ihl past end", func() []byte { b := udp(0)[:24]; b[0] = 0x4f; return b }(), encap.ErrMalformed, encap.Inner{}},
		{"truncated", udp(100)[:60], encap.ErrLength, encap.Inner{}},
		{"trailing bytes", append(udp(10), 0, 0), encap.ErrLength, encap.Inner{}},
		{"lying length", func() []byte {
			b := udp(10)
			binary.BigEndian.PutUint16(b[2:], 1000)
			encaptest.SetHeaderChecksum(b)
			return b
		}(), encap.ErrLength, encap.Inner{}},
		{"options", func() []byte {
			b := encaptest.IPv4Packet(srcAddr, group.Addr(), 17, make([]byte, 12))
			b[0] = 0x46 // 4 bytes of options (the first 4 payload bytes: zeros = end of list)
			encaptest.SetHeaderChecksum(b)
			return b
		}(), encap.ErrOptions, encap.Inner{}},
		{"unicast", encaptest.UDPPacket(srcAddr, netip.MustParseAddrPort("198.18.2.2:65535"), nil), encap.ErrNotMulticast, encap.Inner{}},
		{"broadcast", encaptest.UDPPacket(srcAddr, netip.MustParseAddrPort("255.255.255.255:65535"), nil), encap.ErrNotMulticast, encap.Inner{}},
		{"source zero", encaptest.UDPPacket(netip.IPv4Unspecified(), group, nil), encap.ErrSource, encap.Inner{}},
		{"source multicast", encaptest.UDPPacket(netip.MustParseAddr("239.1.1.1"), group, nil), encap.ErrSource, encap.Inner{}},
		{"source loopback", encaptest.UDPPacket(netip.MustParseAddr("127.0.0.1"), group, nil), encap.ErrSource, encap.Inner{}},
		{"source broadcast", encaptest.UDPPacket(netip.MustParseAddr("255.255.255.255"), group, nil), encap.ErrSource, encap.Inner{}},
		{"igmp", encaptest.IPv4Packet(srcAddr, group.Addr(), 2, make([]byte, 8)), encap.ErrIGMP, encap.Inner{}},
		{"fragment not multiple of 8", fragment(udp(1471), 0x2000), encap.ErrFragment, encap.Inner{}},
		{"fragment past 64 KiB", fragment(udp(1472), 0x2000|8100), encap.ErrFragment, encap.Inner{}},
		{"tiny first fragment", fragment(encaptest.IPv4Packet(srcAddr, group.Addr(), 17, make([]byte, 0)), 0x2000), encap.ErrFragment, encap.Inner{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encap.CheckInner(tt.pkt)
			if !errors.Is(err, tt.err) {
				t.Fatalf("CheckInner error = %v, want %v", err, tt.err)
			}
			if err == nil && got != tt.want {
				t.Fatalf("CheckInner = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzTunnelPacket feeds arbitrary bytes through the receiver side's parsing, header then
// inner packet. It must never panic, and whatever it accepts must be a packet the receiver
// may inject: IPv4 to a multicast group, with a total length equal to its size.
func FuzzTunnelPacket(f *testing.F) {
	var hdr [encap.HeaderLen]byte
	encap.PutHeader(hdr[:], encap.Header{Key: 1, Seq: 2})
	f.Add(append(hdr[:], encaptest.UDPPacket(srcAddr, group, []byte("hello"))...))
	f.Add(append(hdr[:], encaptest.IPv4Packet(srcAddr, netip.MustParseAddr("224.0.0.18"), 112, make([]byte, 20))...))
	f.Add(append(hdr[:], fragment(encaptest.UDPPacket(srcAddr, group, make([]byte, 1472)), 0x2000)...))
	f.Add(hdr[:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, inner, err := encap.ParseHeader(b)
		if err != nil {
			return
		}
		in, err := encap.CheckInner(inner)
		if err != nil {
			return
		}
		if inner[0]>>4 != 4 || !in.Dst.IsMulticast() || int(binary.BigEndian.Uint16(inner[2:])) != len(inner) {
			t.Fatalf("accepted a packet the receiver must not inject: % x", inner)
		}
		if in.Proto == encap.ProtoIGMP || !in.Src.Is4() || in.Src.IsMulticast() {
			t.Fatalf("accepted IGMP or a bad source: %+v", in)
		}
	})
}
