package encap_test

import (
	"testing"

	"mctun/encap"
	"mctun/encap/encaptest"
)

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
				got := encap.Fold(encap.OnesSum(initial, b[start:start+n]))
				want := encaptest.ReferenceSum(encap.Fold(encap.OnesSum(initial, nil)), b[start:start+n])
				if got != want {
					t.Fatalf("onesSum(%#x, b[%d:%d]) folds to %#04x, want %#04x", initial, start, start+n, got, want)
				}
			}
		}
	}
}
