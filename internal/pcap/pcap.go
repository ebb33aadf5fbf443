// Package pcap writes and reads mctun dump's stream: the classic pcap format, little-endian,
// with nanosecond timestamps and one link type for the whole stream, as tcpdump, tshark and
// Wireshark read it.
//
// It is a few lines, where a packet library's pcap writer would bring that library's tables
// of every protocol number: gopacket's are 5 MiB of pointers, which Go's collector counts as
// roots, letting every mctun process's heap grow 5 MiB more before each collection.
package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The file header and the record header (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
const (
	magicNanos      = 0xa1b23c4d // a file whose timestamps' second part is nanoseconds
	versionMajor    = 2
	versionMinor    = 4
	fileHeaderLen   = 24
	recordHeaderLen = 16
)

// LinkTypeRaw is LINKTYPE_RAW: each record is an IP packet, with no link-layer header.
const LinkTypeRaw = 101

// SnapLen is the most of a packet a record holds: an IPv4 packet's largest length.
const SnapLen = 65535

var le = binary.LittleEndian

// Writer writes a pcap stream.
type Writer struct {
	w   io.Writer
	hdr [recordHeaderLen]byte
}

// NewWriter writes the file header for linkType to w and returns a Writer of its records.
func NewWriter(w io.Writer, linkType uint32) (*Writer, error) {
	var h [fileHeaderLen]byte
	le.PutUint32(h[0:], magicNanos)
	le.PutUint16(h[4:], versionMajor)
	le.PutUint16(h[6:], versionMinor)
	// h[8:16], the time zone and the timestamps' accuracy, are 0 as the format asks.
	le.PutUint32(h[16:], SnapLen)
	le.PutUint32(h[20:], linkType)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// WritePacket writes one record: data, captured at t. Past SnapLen bytes it is cut, the
// record saying how long the packet was.
func (w *Writer) WritePacket(t time.Time, data []byte) error {
	n := min(len(data), SnapLen)
	le.PutUint32(w.hdr[0:], uint32(t.Unix()))
	le.PutUint32(w.hdr[4:], uint32(t.Nanosecond()))
	le.PutUint32(w.hdr[8:], uint32(n))
	le.PutUint32(w.hdr[12:], uint32(len(data)))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return err
	}
	_, err := w.w.Write(data[:n])
	return err
}

// Reader reads a stream a Writer wrote.
type Reader struct {
	r        io.Reader
	LinkType uint32
	hdr      [recordHeaderLen]byte
	buf      []byte
}

// NewReader reads and checks the file header. A stream that ends before it gives io.EOF or
// io.ErrUnexpectedEOF; any other header is an error that says what it is not.
func NewReader(r io.Reader) (*Reader, error) {
	var h [fileHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	if m := le.Uint32(h[0:]); m != magicNanos {
		return nil, fmt.Errorf("pcap: magic number %#08x: not a little-endian pcap stream with nanosecond timestamps", m)
	}
	if v := le.Uint16(h[4:]); v != versionMajor {
		return nil, fmt.Errorf("pcap: version %d: want %d", v, versionMajor)
	}
	return &Reader{r: r, LinkType: le.Uint32(h[20:])}, nil
}

// ReadPacket reads the next record: when its packet was captured, and the bytes captured.
// The bytes are valid until the next call. At the end of the stream it returns io.EOF; a
// stream cut inside a record gives io.ErrUnexpectedEOF, and a record longer than SnapLen an
// error.
func (r *Reader) ReadPacket() (time.Time, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return time.Time{}, nil, err
	}
	sec, nsec := le.Uint32(r.hdr[0:]), le.Uint32(r.hdr[4:])
	n, orig := le.Uint32(r.hdr[8:]), le.Uint32(r.hdr[12:])
	switch {
	case n > SnapLen:
		return time.Time{}, nil, fmt.Errorf("pcap: a record of %d bytes: at most %d", n, SnapLen)
	case nsec >= 1e9:
		return time.Time{}, nil, fmt.Errorf("pcap: a record's timestamp has %d ns", nsec)
	case orig < n:
		return time.Time{}, nil, fmt.Errorf("pcap: a record of %d bytes of a %d-byte packet", n, orig)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, SnapLen)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return time.Time{}, nil, err
	}
	return time.Unix(int64(sec), int64(nsec)), r.buf, nil
}
