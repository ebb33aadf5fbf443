package pcap

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestWriterBytes(t *testing.T) {
	var b bytes.Buffer
	w, err := NewWriter(&b, LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(0x01020304, 0x05060708)
	if err := w.WritePacket(at, []byte{0x45, 0xaa}); err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, // magic (nanoseconds), version 2.4
		0, 0, 0, 0, 0, 0, 0, 0, // time zone, accuracy
		0xff, 0xff, 0, 0, 101, 0, 0, 0, // snap length 65535, LINKTYPE_RAW
		4, 3, 2, 1, 8, 7, 6, 5, // seconds, nanoseconds
		2, 0, 0, 0, 2, 0, 0, 0, // captured, original length
		0x45, 0xaa,
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("wrote\n% x\nwant\n% x", b.Bytes(), want)
	}
}

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	w, err := NewWriter(&b, LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 13, 0, 0, 123456789, time.UTC)
	packets := [][]byte{{0x45, 1, 2, 3}, {}, bytes.Repeat([]byte{0x45}, SnapLen)}
	for i, p := range packets {
		if err := w.WritePacket(at.Add(time.Duration(i)), p); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewReader(&b)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType != LinkTypeRaw {
		t.Errorf("link type %d, want %d", r.LinkType, LinkTypeRaw)
	}
	for i, want := range packets {
		got, data, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !got.Equal(at.Add(time.Duration(i))) || !bytes.Equal(data, want) {
			t.Errorf("packet %d: %v, %d bytes; want %v, %d bytes", i, got, len(data), at.Add(time.Duration(i)), len(want))
		}
	}
	if _, _, err := r.ReadPacket(); err != io.EOF {
		t.Errorf("after the last packet: %v, want io.EOF", err)
	}
}

func TestWriterCutsAtSnapLen(t *testing.T) {
	var b bytes.Buffer
	w, _ := NewWriter(&b, LinkTypeRaw)
	if err := w.WritePacket(time.Unix(1, 0), make([]byte, SnapLen+10)); err != nil {
		t.Fatal(err)
	}
	if got := b.Len(); got != fileHeaderLen+recordHeaderLen+SnapLen {
		t.Fatalf("%d bytes written, want %d", got, fileHeaderLen+recordHeaderLen+SnapLen)
	}
	r, _ := NewReader(&b)
	if _, data, err := r.ReadPacket(); err != nil || len(data) != SnapLen {
		t.Errorf("read %d bytes, %v; want %d", len(data), err, SnapLen)
	}
}

func TestReaderRejects(t *testing.T) {
	var good bytes.Buffer
	w, _ := NewWriter(&good, LinkTypeRaw)
	w.WritePacket(time.Unix(1, 0), []byte{0x45, 0, 0, 4})
	header := good.Bytes()[:fileHeaderLen]
	record := good.Bytes()[fileHeaderLen:]
	with := func(b []byte, at int, v ...byte) []byte {
		b = bytes.Clone(b)
		copy(b[at:], v)
		return b
	}
	for _, c := range []struct {
		name   string
		stream []byte
		want   string // in the error; "" for an io error
		err    error
	}{
		{"empty", nil, "", io.EOF},
		{"short header", header[:10], "", io.ErrUnexpectedEOF},
		{"microseconds", with(header, 0, 0xd4, 0xc3, 0xb2, 0xa1), "magic number 0xa1b2c3d4", nil},
		{"big-endian", with(header, 0, 0xa1, 0xb2, 0x3c, 0x4d), "magic number 0x4d3cb2a1", nil},
		{"version", with(header, 4, 3), "version 3", nil},
		{"cut record header", append(bytes.Clone(header), record[:8]...), "", io.ErrUnexpectedEOF},
		{"cut packet", append(bytes.Clone(header), record[:len(record)-1]...), "", io.ErrUnexpectedEOF},
		{"too long", append(bytes.Clone(header), with(record, 8, 0, 0, 1, 0)...), "a record of 65536 bytes", nil},
		{"nanoseconds", append(bytes.Clone(header), with(record, 4, 0, 0xca, 0x9a, 0x3b)...), "1000000000 ns", nil},
		{"original shorter", append(bytes.Clone(header), with(record, 12, 3)...), "of a 3-byte packet", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(c.stream))
			if err == nil {
				_, _, err = r.ReadPacket()
			}
			switch {
			case c.err != nil && !errors.Is(err, c.err):
				t.Errorf("error %v, want %v", err, c.err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v, want one that says %q", err, c.want)
			}
		})
	}
}
