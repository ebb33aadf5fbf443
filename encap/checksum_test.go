package encap

import "testing"

// TestChecksumAgainstRFC1071 checks the 8-bytes-at-a-time sum against the word-at-a-time RFC 1071 loop for
// every length and alignment up to 100 bytes, with bytes that force carries.
func TestChecksumAgainstRFC1071(t *testing.T) {
	b := make([]byte, 108)
	for i := range b {
		b[i] = byte(0xff - i*7)
	}
	for start := 0; start < 8; start++ {
		for n := 0; n <= 100; n++ {
			for _, initial := range []uint64{0, 0xffff, 1<<64 - 1} {
				got := fold(onesSum(initial, b[start:start+n]))
				want := referenceSum(fold(onesSum(initial, nil)), b[start:start+n])
				if got != want {
					t.Fatalf("onesSum(%#x, b[%d:%d]) folds to %#04x, want %#04x", initial, start, start+n, got, want)
				}
			}
		}
	}
}

// referenceSum is RFC 1071's ones' complement sum, a 16-bit word at a time.
func referenceSum(initial uint16, b []byte) uint16 {
	sum := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
