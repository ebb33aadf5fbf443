package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestEncodeCheckRoundTrip(t *testing.T) {
	for _, size := range []int{16, 17, 23, 24, 25, 31, 100, 1472, 8000, MaxUDPSize} {
		for _, seq := range []uint64{0, 1, 2, 1 << 40, ^uint64(0)} {
			b := make([]byte, size)
			Encode(b, seq, 1234567890123)
			h, err := Check(b)
			if err != nil {
				t.Fatalf("size %d seq %d: Check: %v", size, seq, err)
			}
			if h.Seq != seq || h.SentNs != 1234567890123 {
				t.Fatalf("size %d: header = %+v, want seq %d sent 1234567890123", size, h, seq)
			}
		}
	}
}

// TestWireLayout pins the layout drawn in doc.go, byte for byte, so a change to the format
// cannot pass unnoticed between a new sender and an old receiver.
func TestWireLayout(t *testing.T) {
	b := make([]byte, 27)
	Encode(b, 0x0102030405060708, 0x1112131415161718)
	want := []byte{
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // sequence number, big endian
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // send time, big endian
	}
	if !bytes.Equal(b[:16], want) {
		t.Fatalf("header = % x, want % x", b[:16], want)
	}
	w := seed(0x0102030405060708)
	if got := binary.LittleEndian.Uint64(b[16:24]); got != w {
		t.Fatalf("word 0 = %#x, want seed %#x", got, w)
	}
	var last [8]byte
	binary.LittleEndian.PutUint64(last[:], w+step)
	if !bytes.Equal(b[24:27], last[:3]) {
		t.Fatalf("cut last word = % x, want % x", b[24:27], last[:3])
	}
}

func TestSeedKnownValues(t *testing.T) {
	// splitmix64's published first output for state 0 is the finalizer of 0+step.
	if got, want := seed(0), uint64(0xe220a8397b1dcdaf); got != want {
		t.Fatalf("seed(0) = %#x, want %#x", got, want)
	}
	if seed(1) == seed(0)+step {
		t.Fatal("seeds of consecutive sequence numbers are one step apart: patterns overlap")
	}
}

func TestCheckFindsEveryCorruptByte(t *testing.T) {
	const size = 61 // seven whole words and a cut one
	for off := HeaderLen; off < size; off++ {
		b := make([]byte, size)
		Encode(b, 42, 7)
		b[off] ^= 0x20
		_, err := Check(b)
		if !errors.Is(err, ErrPattern) {
			t.Fatalf("corrupt byte %d: err = %v, want ErrPattern", off, err)
		}
		if got := mismatchOffset(b); got != off {
			t.Fatalf("corrupt byte %d: reported offset %d", off, got)
		}
	}
}

func TestCheckRejectsOtherSequenceNumber(t *testing.T) {
	b := make([]byte, 64)
	Encode(b, 5, 0)
	binary.BigEndian.PutUint64(b, 6) // header of 6, pattern of 5
	if _, err := Check(b); !errors.Is(err, ErrPattern) {
		t.Fatalf("err = %v, want ErrPattern", err)
	}
}

func TestCheckShort(t *testing.T) {
	for n := 0; n < HeaderLen; n++ {
		if _, err := Check(make([]byte, n)); !errors.Is(err, ErrShort) {
			t.Fatalf("len %d: err = %v, want ErrShort", n, err)
		}
	}
}

func TestHeaderOnlyPayload(t *testing.T) {
	b := make([]byte, HeaderLen)
	Encode(b, 9, -1)
	h, err := Check(b)
	if err != nil || h.Seq != 9 || h.SentNs != -1 {
		t.Fatalf("Check = %+v, %v", h, err)
	}
}

func mismatchOffset(b []byte) int {
	h, _ := Decode(b)
	return HeaderLen + firstMismatch(b[HeaderLen:], seed(h.Seq))
}

func FuzzCheck(f *testing.F) {
	good := make([]byte, 40)
	Encode(good, 3, 4)
	f.Add(good)
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Check(b)
		if err != nil {
			return
		}
		again := make([]byte, len(b))
		Encode(again, h.Seq, h.SentNs)
		if !bytes.Equal(again, b) {
			t.Fatalf("Check accepted % x, but Encode gives % x", b, again)
		}
	})
}

func BenchmarkEncode1472(b *testing.B) {
	buf := make([]byte, 1472)
	b.SetBytes(int64(len(buf)))
	for i := range b.N {
		Encode(buf, uint64(i), 1)
	}
}

func BenchmarkCheck1472(b *testing.B) {
	buf := make([]byte, 1472)
	Encode(buf, 77, 1)
	b.SetBytes(int64(len(buf)))
	for range b.N {
		if _, err := Check(buf); err != nil {
			b.Fatal(err)
		}
	}
}
