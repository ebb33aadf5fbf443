package bitring

import (
	"math/rand/v2"
	"testing"
)

// TestClearAgainstOneByOne holds Clear to clearing bit by bit, from every start and count
// around a ring of 4 words, on rings full of marks.
func TestClearAgainstOneByOne(t *testing.T) {
	const words = 4
	for n := uint64(0); n < 3*64*words; n++ {
		for count := uint64(0); count <= 64*words+1; count++ {
			var got, want [words]uint64
			for i := range got {
				got[i] = rand.Uint64()
			}
			want = got
			Clear(got[:], n, count)
			if count >= 64*words {
				want = [words]uint64{}
			}
			for c := n; c < n+count && count < 64*words; c++ {
				want[c/64%words] &^= 1 << (c % 64)
			}
			if got != want {
				t.Fatalf("Clear(n=%d, count=%d) = %x, want %x", n, count, got, want)
			}
		}
	}
}

func TestSetHas(t *testing.T) {
	var r [2]uint64
	Set(r[:], 130) // 130 mod 128 = 2
	if !Has(r[:], 2) || !Has(r[:], 130) || Has(r[:], 3) {
		t.Errorf("ring %x after Set(130)", r)
	}
}
