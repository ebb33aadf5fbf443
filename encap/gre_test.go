package encap

import (
	"bytes"
	"errors"
	"testing"
)

// TestPutHeaderWire checks the header byte for byte against the diagram in the package doc.
func TestPutHeaderWire(t *testing.T) {
	var b [HeaderLen]byte
	PutHeader(b[:], Header{Key: 0x01020304, Seq: 0xa0b0c0d0})
	want := []byte{
		0x30, 0x00, 0x08, 0x00, // K and S set, version 0, protocol IPv4
		0x01, 0x02, 0x03, 0x04, // key
		0xa0, 0xb0, 0xc0, 0xd0, // sequence number
	}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("header = % x, want % x", b, want)
	}
}

func TestEncapsulateInPlace(t *testing.T) {
	buf := make([]byte, Headroom+4)
	copy(buf[Headroom:], "abcd")
	pkt := Encapsulate(buf, 4, Header{Key: 7, Seq: 1})
	if &pkt[0] != &buf[Headroom-HeaderLen] || len(pkt) != HeaderLen+4 || string(pkt[HeaderLen:]) != "abcd" {
		t.Fatalf("Encapsulate = % x, want the header written into the headroom", pkt)
	}
	h, inner, err := ParseHeader(pkt)
	if err != nil || h != (Header{Key: 7, Seq: 1}) || string(inner) != "abcd" {
		t.Fatalf("ParseHeader = %+v %q %v", h, inner, err)
	}
}

func TestParseHeader(t *testing.T) {
	valid := []byte{0x30, 0, 0x08, 0, 0, 0, 0, 9, 0, 0, 0, 3, 0x45}
	tests := []struct {
		name string
		pkt  []byte
		want Header
		err  error
	}{
		{"valid", valid, Header{Key: 9, Seq: 3}, nil},
		{"empty", nil, Header{}, ErrTruncated},
		{"short", valid[:HeaderLen-1], Header{}, ErrTruncated},
		{"no sequence", []byte{0x20, 0, 0x08, 0, 0, 0, 0, 9, 0, 0, 0, 3}, Header{}, ErrFlags},
		{"checksum bit", []byte{0xb0, 0, 0x08, 0, 0, 0, 0, 9, 0, 0, 0, 3}, Header{}, ErrFlags},
		{"version 1", []byte{0x30, 1, 0x08, 0, 0, 0, 0, 9, 0, 0, 0, 3}, Header{}, ErrFlags},
		{"IPv6 payload", []byte{0x30, 0, 0x86, 0xdd, 0, 0, 0, 9, 0, 0, 0, 3}, Header{}, ErrProtocol},
		{"Ethernet payload", []byte{0x30, 0, 0x65, 0x58, 0, 0, 0, 9, 0, 0, 0, 3}, Header{}, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, inner, err := ParseHeader(tt.pkt)
			if !errors.Is(err, tt.err) || h != tt.want {
				t.Fatalf("ParseHeader = %+v, %v; want %+v, %v", h, err, tt.want, tt.err)
			}
			if err == nil && len(inner) != len(tt.pkt)-HeaderLen {
				t.Fatalf("inner is %d bytes, want %d", len(inner), len(tt.pkt)-HeaderLen)
			}
		})
	}
}
