package stream

import "math/bits"

// Histogram buckets the values below 256 exactly and every larger value with 8 significant
// bits, so a quantile it reports is within 0.4% of the true one. It takes int64 values,
// such as latencies in nanoseconds; negative values are recorded as 0. The zero value is
// ready to use. A Histogram is not safe for concurrent use.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	max    int64
}

const (
	histExact   = 256                       // values below this have a bucket each
	histPerOct  = 128                       // buckets per power of two above histExact
	histBuckets = histExact + 55*histPerOct // shifts 1..55 cover every non-negative int64
	histTopBits = 8                         // significant bits kept above histExact
	histTopMin  = 1 << (histTopBits - 1)    // the top bits of a value >= histExact start at 128
)

// Record adds one value.
func (h *Histogram) Record(v int64) {
	v = max(v, 0)
	h.counts[bucketOf(uint64(v))]++
	h.n++
	h.sum += float64(v)
	h.max = max(h.max, v)
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Mean is the exact mean of the values recorded, 0 when there are none.
func (h *Histogram) Mean() int64 {
	if h.n == 0 {
		return 0
	}
	return int64(h.sum / float64(h.n))
}

// Max is the largest value recorded, exactly.
func (h *Histogram) Max() int64 { return h.max }

// Quantile returns the value below which the fraction q (0..1) of the recorded values lie:
// the middle of the bucket that holds it, never more than Max. It is 0 when nothing was
// recorded.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var acc uint64
	for i, c := range h.counts {
		acc += c
		if acc >= rank {
			return min(bucketMid(i), h.max)
		}
	}
	return h.max
}

// bucketOf returns the index of the bucket that holds v.
func bucketOf(v uint64) int {
	if v < histExact {
		return int(v)
	}
	shift := bits.Len64(v) - histTopBits
	top := v >> shift
	return histExact + (shift-1)*histPerOct + int(top-histTopMin)
}

// bucketMid returns the middle of the range of values that bucket i holds.
func bucketMid(i int) int64 {
	if i < histExact {
		return int64(i)
	}
	i -= histExact
	shift := i/histPerOct + 1
	lo := uint64(i%histPerOct+histTopMin) << shift
	return int64(lo + (uint64(1)<<shift)/2)
}
