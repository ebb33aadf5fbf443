package capture

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"mctun/encap"
	"mctun/encap/encaptest"
)

// Known packets. "in" is what the kernel hands a NIC with checksum offload: the pseudo-header
// sum (or, in one case, garbage) in the checksum field. "out" is the packet with its checksum
// done; every "out" was checked with Wireshark's validator
// (tshark -o udp.check_checksum:TRUE -o tcp.check_checksum:TRUE: all "Good").
var completeChecksumTests = []struct {
	name    string
	in, out string
}{{
	// 198.18.200.1:40000 -> 224.1.2.3:5000, DF, TTL 1, "hello, multicast".
	name: "udp multicast",
	in:   "4500002c123440000111f774c612c801e0010203" + "9c40138800187042" + "68656c6c6f2c206d756c746963617374",
	out:  "4500002c123440000111f774c612c801e0010203" + "9c4013880018bac5" + "68656c6c6f2c206d756c746963617374",
}, {
	// Odd payload length: the last byte is summed as the high byte of a zero-padded word.
	name: "udp odd length",
	in:   "450000211234000001112984c612c801efff0001" + "9c411389000d7e33" + "68656c6c6f",
	out:  "450000211234000001112984c612c801efff0001" + "9c411389000d8e22" + "68656c6c6f",
}, {
	// The field's old contents do not matter.
	name: "udp garbage in checksum field",
	in:   "450000211234000001112984c612c801efff0001" + "9c411389000ddead" + "68656c6c6f",
	out:  "450000211234000001112984c612c801efff0001" + "9c411389000d8e22" + "68656c6c6f",
}, {
	// IHL 6: a Router Alert option moves the UDP header to offset 24.
	name: "udp with ip options",
	in:   "460000301234400001116375c612c801e00000fb94040000" + "9c42138a00186f39" + "726f7574657220616c657274206f7074",
	out:  "460000301234400001116375c612c801e00000fb94040000" + "9c42138a0018036d" + "726f7574657220616c657274206f7074",
}, {
	// The sum comes to 0xffff, so the checksum computes to 0, which UDP sends as 0xffff.
	name: "udp checksum zero becomes ffff",
	in:   "4500002e1234000001113773c612c801e0010203" + "9c401388001a7044" + "7a65726f20636865636b73756d2e2e21f80a",
	out:  "4500002e1234000001113773c612c801e0010203" + "9c401388001affff" + "7a65726f20636865636b73756d2e2e21f80a",
}, {
	// TCP SYN with an MSS option; checksum at offset 16 of the TCP header.
	name: "tcp syn",
	in:   "4500002c1234400001064b6fc612c801c612c802" + "9c400050010203040a0b0c0d6002faf01c480000020405b4",
	out:  "4500002c1234400001064b6fc612c801c612c802" + "9c400050010203040a0b0c0d6002faf0ca5d0000020405b4",
}, {
	name: "tcp odd length data",
	in:   "4500003b1234400001064b60c612c801c612c802" + "9c400050010203040a0b0c0d5018faf01c570000" + "474554202f20485454502f312e300d0a0d0a78",
	out:  "4500003b1234400001064b60c612c801c612c802" + "9c400050010203040a0b0c0d5018faf08b500000" + "474554202f20485454502f312e300d0a0d0a78",
}}

func TestCompleteChecksum(t *testing.T) {
	for _, tt := range completeChecksumTests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := mustHex(t, tt.in)
			want := mustHex(t, tt.out)
			if err := CompleteChecksum(pkt); err != nil {
				t.Fatalf("CompleteChecksum: %v", err)
			}
			if !bytes.Equal(pkt, want) {
				t.Errorf("CompleteChecksum:\n got %x\nwant %x", pkt, want)
			}
			// Completing a complete packet changes nothing.
			if err := CompleteChecksum(pkt); err != nil || !bytes.Equal(pkt, want) {
				t.Errorf("second CompleteChecksum: %v\n got %x\nwant %x", err, pkt, want)
			}
		})
	}
}

func TestCompleteChecksumRejects(t *testing.T) {
	udp := completeChecksumTests[0].in
	tcp := completeChecksumTests[5].in
	tests := []struct {
		name string
		pkt  string
		want error
	}{
		{"empty", "", ErrNotIPv4},
		{"ipv6", "6000000000080000" + strings.Repeat("00", 32), ErrNotIPv4},
		{"shorter than an IPv4 header", udp[:38], ErrMalformed},
		{"IHL below 5", "44" + udp[2:], ErrMalformed},
		{"total length beyond the packet", udp[:4] + "002d" + udp[8:], ErrMalformed},
		{"total length inside the header", udp[:4] + "0013" + udp[8:], ErrMalformed},
		{"more fragments", udp[:12] + "2000" + udp[16:], ErrFragment},
		{"fragment offset", udp[:12] + "00b9" + udp[16:], ErrFragment},
		{"igmp", udp[:18] + "02" + udp[20:], ErrUnsupportedProtocol},
		{"icmp", udp[:18] + "01" + udp[20:], ErrUnsupportedProtocol},
		{"udp header cut", udp[:4] + "001b" + udp[8:54], ErrMalformed},
		{"udp length below 8", udp[:48] + "0007" + udp[52:], ErrMalformed},
		{"udp length beyond ip payload", udp[:48] + "0019" + udp[52:], ErrMalformed},
		{"tcp header cut", tcp[:4] + "0027" + tcp[8:78], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkt := mustHex(t, tt.pkt)
			before := bytes.Clone(pkt)
			err := CompleteChecksum(pkt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("CompleteChecksum(%x) = %v, want %v", before, err, tt.want)
			}
			if !bytes.Equal(pkt, before) {
				t.Errorf("CompleteChecksum changed a packet it rejected:\n got %x\nwant %x", pkt, before)
			}
		})
	}
}

func FuzzCompleteChecksum(f *testing.F) {
	for _, tt := range completeChecksumTests {
		b, _ := hex.DecodeString(tt.in)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := bytes.Clone(pkt)
		if err := CompleteChecksum(pkt); err != nil {
			if !bytes.Equal(pkt, before) {
				t.Fatalf("CompleteChecksum changed a packet it rejected with %v", err)
			}
			return
		}
		if !transportChecksumValid(pkt) {
			t.Fatalf("CompleteChecksum(%x) = %x, which does not verify", before, pkt)
		}
	})
}

func BenchmarkCompleteChecksum(b *testing.B) {
	for _, size := range []int{64, 1472} {
		pkt := make([]byte, 28+size)
		copy(pkt, mustHex(b, completeChecksumTests[0].in)[:28])
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		binary.BigEndian.PutUint16(pkt[24:], uint16(8+size))
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				if err := CompleteChecksum(pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// transportChecksumValid verifies the UDP or TCP checksum of an unfragmented IPv4 packet with
// the plain RFC 1071 loop, independently of the package's code.
func transportChecksumValid(pkt []byte) bool {
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	seg := pkt[ihl:total]
	if pkt[9] == encap.ProtoUDP {
		seg = seg[:binary.BigEndian.Uint16(seg[4:6])]
	}
	var pseudo [12]byte
	copy(pseudo[:8], pkt[12:20])
	pseudo[9] = pkt[9]
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(seg)))
	return encaptest.ReferenceSum(encaptest.ReferenceSum(0, pseudo[:]), seg) == 0xffff
}

// ipv4HeaderValid verifies the IPv4 header checksum with the plain RFC 1071 loop.
func ipv4HeaderValid(pkt []byte) bool {
	return encaptest.ReferenceSum(0, pkt[:int(pkt[0]&0x0f)*4]) == 0xffff
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// ChecksumUnfinished tells a datagram whose checksum a host left for its NIC to finish (the
// pseudo-header's sum) from a finished one, a broken one and the ones it does not judge.
func TestChecksumUnfinished(t *testing.T) {
	finished := udpPacket(t, 100)
	unfinished := slices.Clone(finished)
	// What the kernel leaves for the NIC: the pseudo-header's sum, not complemented.
	pseudo := uint64(binary.BigEndian.Uint32(unfinished[12:16])) + uint64(binary.BigEndian.Uint32(unfinished[16:20])) + 17 + 108
	binary.BigEndian.PutUint16(unfinished[26:28], ^encap.Checksum(pseudo, nil))
	broken := slices.Clone(finished)
	broken[40] ^= 0xff
	noChecksum := slices.Clone(finished)
	binary.BigEndian.PutUint16(noChecksum[26:28], 0)
	fragment := slices.Clone(unfinished)
	fragment[6] |= 0x20 // MF
	for _, tt := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"finished", finished, false},
		{"unfinished", unfinished, true},
		{"broken on the way", broken, false},
		{"no checksum", noChecksum, false},
		{"a fragment", fragment, false},
		{"too short", unfinished[:24], false},
	} {
		if got := ChecksumUnfinished(tt.pkt); got != tt.want {
			t.Errorf("%s: ChecksumUnfinished = %v, want %v", tt.name, got, tt.want)
		}
	}
	if err := CompleteChecksum(unfinished); err != nil || !bytes.Equal(unfinished, finished) || ChecksumUnfinished(unfinished) {
		t.Errorf("CompleteChecksum of the unfinished one: %v, equal to the finished one %v", err, bytes.Equal(unfinished, finished))
	}
}

// udpPacket is an IPv4 UDP datagram from 198.18.1.2 to 224.1.2.3:65535 with n bytes of data,
// its checksums finished.
func udpPacket(t *testing.T, n int) []byte {
	t.Helper()
	p := make([]byte, 28+n)
	copy(p, []byte{0x45, 0, byte((28 + n) >> 8), byte(28 + n), 0x12, 0x34, 0, 0, 1, 17, 0, 0, 198, 18, 1, 2, 224, 1, 2, 3})
	binary.BigEndian.PutUint16(p[10:], encap.Checksum(0, p[:20]))
	binary.BigEndian.PutUint16(p[20:], 5000)
	binary.BigEndian.PutUint16(p[22:], 65535)
	binary.BigEndian.PutUint16(p[24:], uint16(8+n))
	for i := range n {
		p[28+i] = byte(i)
	}
	if err := CompleteChecksum(p); err != nil {
		t.Fatal(err)
	}
	return p
}
