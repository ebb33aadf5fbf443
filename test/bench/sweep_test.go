package main

import (
	"errors"
	"math"
	"testing"
)

// testSweep is the benchmark's sweep with a cap of 100k pps.
func testSweep() Sweep {
	return Sweep{Start: 5000, Cap: 100000, MinRate: 100, Factor: 2, Precision: 0.05,
		MaxLoss: 0.001, Shortfall: 0.95, Attempts: 1, MaxTrials: 30}
}

// forwarder is a fake system: it loses 5% above limit and its sender reaches at most
// sendMax.
func forwarder(limit, sendMax float64) func(float64) (Outcome, error) {
	return func(rate float64) (Outcome, error) {
		o := Outcome{Requested: rate, Achieved: math.Min(rate, sendMax)}
		if o.Achieved > limit {
			o.Loss = 0.05
		}
		return o, nil
	}
}

func TestSweepFindsTheLimit(t *testing.T) {
	for _, limit := range []float64{1234, 5000, 7000, 33000, 63000, 99000} {
		res, err := testSweep().Run(forwarder(limit, math.Inf(1)))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Found || res.Limit != LimitLoss {
			t.Fatalf("limit %v: found %v, limit %q, want found and %q", limit, res.Found, res.Limit, LimitLoss)
		}
		if got := res.Best.Achieved; got > limit || got < limit/1.05 {
			t.Errorf("limit %v: best %v, want within 5%% below", limit, got)
		}
		if len(res.Trials) > 12 {
			t.Errorf("limit %v: %d trials, want at most 12", limit, len(res.Trials))
		}
	}
}

func TestSweepGeometricStepsThenBisection(t *testing.T) {
	res, err := testSweep().Run(forwarder(30000, math.Inf(1)))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{5000, 10000, 20000, 40000, math.Sqrt(20000 * 40000)}
	for i, w := range want {
		if math.Abs(res.Trials[i].Requested-w) > 1e-6 {
			t.Fatalf("trial %d asked %v, want %v (trials %+v)", i, res.Trials[i].Requested, w, res.Trials)
		}
	}
}

func TestSweepStopsAtTheCap(t *testing.T) {
	res, err := testSweep().Run(forwarder(math.Inf(1), math.Inf(1)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Limit != LimitCap || res.Best.Achieved != 100000 {
		t.Fatalf("limit %q best %v, want %q at the cap 100000", res.Limit, res.Best.Achieved, LimitCap)
	}
	var asked []float64
	for _, o := range res.Trials {
		asked = append(asked, o.Requested)
	}
	want := []float64{5000, 10000, 20000, 40000, 80000, 100000}
	if len(asked) != len(want) {
		t.Fatalf("asked %v, want %v", asked, want)
	}
	for i := range want {
		if asked[i] != want[i] {
			t.Fatalf("asked %v, want %v", asked, want)
		}
	}
}

func TestSweepStartAboveCap(t *testing.T) {
	s := testSweep()
	s.Start = 1e6
	res, err := s.Run(forwarder(math.Inf(1), math.Inf(1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trials) != 1 || res.Trials[0].Requested != s.Cap || res.Limit != LimitCap {
		t.Fatalf("trials %+v limit %q, want one trial at the cap", res.Trials, res.Limit)
	}
}

func TestSweepSenderLimited(t *testing.T) {
	res, err := testSweep().Run(forwarder(math.Inf(1), 30000))
	if err != nil {
		t.Fatal(err)
	}
	if res.Limit != LimitSender || res.Best.Achieved != 30000 {
		t.Fatalf("limit %q best %+v, want %q at 30000", res.Limit, res.Best, LimitSender)
	}
}

func TestSweepSenderLimitedAndLossy(t *testing.T) {
	// The sender stalls at 30k, and at 30k the forwarder loses: loss decides.
	res, err := testSweep().Run(forwarder(25000, 30000))
	if err != nil {
		t.Fatal(err)
	}
	if res.Limit != LimitLoss || res.Best.Achieved > 25000 || res.Best.Achieved < 25000/1.05 {
		t.Fatalf("limit %q best %v, want %q just under 25000", res.Limit, res.Best.Achieved, LimitLoss)
	}
}

func TestSweepNothingPasses(t *testing.T) {
	res, err := testSweep().Run(forwarder(50, math.Inf(1)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Found || res.Limit != LimitLoss {
		t.Fatalf("found %v limit %q, want nothing found", res.Found, res.Limit)
	}
	last := res.Trials[len(res.Trials)-1].Requested
	if last < 100 || last > 200 {
		t.Fatalf("last asked %v, want the lowest step at or above MinRate", last)
	}
}

func TestSweepAttemptsForgiveOneBadAttempt(t *testing.T) {
	s := testSweep()
	s.Attempts = 2
	n := 0
	// Every first attempt loses, every second one passes up to 20000.
	res, err := s.Run(func(rate float64) (Outcome, error) {
		n++
		o := Outcome{Requested: rate, Achieved: rate}
		if n%2 == 1 || rate > 20000 {
			o.Loss = 0.01
		}
		return o, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Best.Achieved != 20000 || res.Limit != LimitLoss {
		t.Fatalf("best %v limit %q, want 20000 and %q", res.Best.Achieved, res.Limit, LimitLoss)
	}
	if len(res.Trials) != n {
		t.Fatalf("%d attempts recorded, %d made", len(res.Trials), n)
	}
}

func TestSweepFailingTrialKeepsLeastLoss(t *testing.T) {
	s := testSweep()
	s.Attempts = 3
	losses := []float64{0.3, 0.1, 0.2}
	var res SweepResult
	n := 0
	o, pass, err := s.trial(func(rate float64) (Outcome, error) {
		n++
		return Outcome{Requested: rate, Achieved: rate, Loss: losses[n-1]}, nil
	}, 1000, &res)
	if err != nil || pass || o.Loss != 0.1 {
		t.Fatalf("trial: %+v pass %v err %v, want the attempt that lost 0.1, failing", o, pass, err)
	}
	if len(res.Trials) != 3 {
		t.Fatalf("%d attempts recorded, want 3", len(res.Trials))
	}
}

func TestSweepMaxTrials(t *testing.T) {
	s := testSweep()
	s.MaxTrials = 3
	res, err := s.Run(forwarder(30000, math.Inf(1)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Limit != LimitSteps || len(res.Trials) != 3 || res.Best.Achieved != 20000 {
		t.Fatalf("limit %q trials %d best %v, want %q after 3 with 20000", res.Limit, len(res.Trials), res.Best.Achieved, LimitSteps)
	}
}

func TestSweepError(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	res, err := testSweep().Run(func(rate float64) (Outcome, error) {
		n++
		if n == 3 {
			return Outcome{}, boom
		}
		return Outcome{Requested: rate, Achieved: rate}, nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if len(res.Trials) != 2 || res.Best.Achieved != 10000 || res.Limit != LimitIncomplete {
		t.Fatalf("trials %d best %v, want what was found before the error", len(res.Trials), res.Best.Achieved)
	}
}

func TestSweepCheck(t *testing.T) {
	for _, mod := range []func(*Sweep){
		func(s *Sweep) { s.Start = 0 },
		func(s *Sweep) { s.Cap = math.NaN() },
		func(s *Sweep) { s.Factor = 1 },
		func(s *Sweep) { s.Precision = 0 },
		func(s *Sweep) { s.Attempts = 0 },
		func(s *Sweep) { s.MaxTrials = 0 },
	} {
		s := testSweep()
		mod(&s)
		if _, err := s.Run(forwarder(1, 1)); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

func TestNiceRate(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{37456, 37000}, {100000, 100000}, {99999, 99000}, {1000, 1000}, {1234.5, 1200},
		{99, 99}, {5.5, 5}, {0.5, 0}, {0, 0}, {-3, 0}, {math.NaN(), 0}, {math.Inf(1), 0},
	} {
		if got := niceRate(c.in); got != c.want {
			t.Errorf("niceRate(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestSweepSenderLimitedTakesBestAttempt(t *testing.T) {
	s := testSweep()
	s.Attempts = 2
	achieved := []float64{2800, 3100}
	n := 0
	res, err := s.Run(func(rate float64) (Outcome, error) {
		n++
		return Outcome{Requested: rate, Achieved: achieved[n-1]}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Limit != LimitSender || res.Best.Achieved != 3100 || len(res.Trials) != 2 {
		t.Fatalf("limit %q best %v after %d attempts, want %q at 3100 after 2", res.Limit, res.Best.Achieved, len(res.Trials), LimitSender)
	}
}
