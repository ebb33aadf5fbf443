// Package bitring keeps which of the most recent sequence numbers were seen, as a ring of
// bits: number n is bit n mod 64·len(r) of r. The receiver's loss accounting and the
// authenticated tunnel's replay window each keep one, in an array of their own size.
package bitring

// Set marks n as seen.
func Set(r []uint64, n uint64) { r[n/64%uint64(len(r))] |= 1 << (n % 64) }

// Has reports whether n is marked.
func Has(r []uint64, n uint64) bool { return r[n/64%uint64(len(r))]&(1<<(n%64)) != 0 }

// Clear unmarks count numbers from n on: the window slides past them. A count of the whole
// ring or more clears it all. It takes a word at a time, so that a long gap costs no more
// than the ring's words.
func Clear(r []uint64, n, count uint64) {
	if count >= uint64(len(r))*64 {
		clear(r)
		return
	}
	for count > 0 {
		lo := n % 64
		k := min(count, 64-lo)
		mask := ^uint64(0)
		if k < 64 {
			mask = (1<<k - 1) << lo
		}
		r[n/64%uint64(len(r))] &^= mask
		n, count = n+k, count-k
	}
}
