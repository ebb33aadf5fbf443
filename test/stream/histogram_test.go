package stream

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	if got := h.Summary(); got != (Latency{}) {
		t.Fatalf("empty Summary = %+v, want zeros", got)
	}
}

func TestHistogramSmallValuesExact(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	if got := h.Quantile(0.5); got != 50 {
		t.Errorf("p50 = %d, want 50", got)
	}
	if got := h.Quantile(0.99); got != 99 {
		t.Errorf("p99 = %d, want 99", got)
	}
	if h.Max() != 100 || h.Mean() != 50 || h.Count() != 100 {
		t.Errorf("max/mean/count = %d/%d/%d, want 100/50/100", h.Max(), h.Mean(), h.Count())
	}
}

func TestHistogramNegativeIsZero(t *testing.T) {
	var h Histogram
	h.Record(-5)
	if h.Max() != 0 || h.Quantile(1) != 0 {
		t.Fatalf("max %d, p100 %d, want 0", h.Max(), h.Quantile(1))
	}
}

func TestHistogramQuantilesWithinBucketError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = int64(math.Exp(r.NormFloat64()*2 + 12)) // log-normal around 160µs
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 0.004 {
			t.Errorf("q%.3f = %d, exact %d: off by %.2f%%", q, got, exact, 100*rel)
		}
	}
	if h.Max() != vals[len(vals)-1] {
		t.Errorf("max = %d, want %d", h.Max(), vals[len(vals)-1])
	}
}

func TestBucketsCoverInt64(t *testing.T) {
	for _, v := range []uint64{0, 255, 256, 257, 511, 512, 1 << 40, math.MaxInt64} {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0,%d)", v, i, histBuckets)
		}
		if mid := bucketMid(i); v >= histExact && math.Abs(float64(mid)-float64(v))/float64(v) > 0.004 {
			t.Fatalf("bucketMid(bucketOf(%d)) = %d, more than 0.4%% off", v, mid)
		}
	}
	if bucketOf(256) == bucketOf(255) || bucketOf(511) == bucketOf(512) {
		t.Fatal("neighbouring ranges share a bucket")
	}
}
