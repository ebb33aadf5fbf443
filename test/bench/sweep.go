package main

import (
	"errors"
	"fmt"
	"math"
)

// Outcome is one attempt of a trial: mcsend asked for a rate, reached some rate, and the
// worst member lost some fraction of what it sent.
type Outcome struct {
	Requested float64 `json:"requested_pps"` // the rate mcsend was asked for
	Achieved  float64 `json:"achieved_pps"`  // the rate mcsend reached: sent / elapsed
	Loss      float64 `json:"loss"`          // the worst member's loss, 0..1, of what was sent
	Note      string  `json:"note,omitempty"`
}

// Limit says what ended a sweep, that is what bounds its best rate.
type Limit string

const (
	// LimitLoss: a higher rate lost packets and the search narrowed to Precision; the
	// system under test (forwarder, kernel, receivers) is the limit.
	LimitLoss Limit = "loss"
	// LimitSender: mcsend reached clearly less than it was asked for while nothing was
	// lost; the sending path is the limit (for VXLAN that includes the encapsulation, done
	// in the sender's own system call).
	LimitSender Limit = "sender"
	// LimitCap: the cap (what mcsend alone can do) passed without loss; the forwarder can
	// do more than this benchmark can offer.
	LimitCap Limit = "cap"
	// LimitSteps: the sweep ran out of trials before it converged.
	LimitSteps Limit = "steps"
	// LimitIncomplete: the sweep was cut short by an error or an interrupt.
	LimitIncomplete Limit = "incomplete"
)

// Sweep searches for the highest rate a system carries without loss: geometric steps up
// from Start until a trial loses (or the Cap passes), then geometric bisection between the
// highest passing and the lowest failing rate until they are within Precision. A trial is
// made of up to Attempts attempts and passes if any of them does, which keeps one noisy
// attempt from ending the search; every attempt is recorded.
type Sweep struct {
	Start     float64 // first rate, pps
	Cap       float64 // highest rate ever asked for: what mcsend alone can do
	MinRate   float64 // below this, give up: nothing passes
	Factor    float64 // step up (and down, while nothing has passed) by this factor, > 1
	Precision float64 // stop bisecting once failing/passing <= 1+Precision
	MaxLoss   float64 // an attempt passes if its Loss < MaxLoss
	Shortfall float64 // an attempt that reaches less than Shortfall*Requested is sender-limited
	Attempts  int     // attempts per trial, >= 1
	MaxTrials int     // trials per sweep, >= 1
}

// SweepResult is what a Sweep found.
type SweepResult struct {
	Found  bool      `json:"found"`  // some trial passed
	Best   Outcome   `json:"best"`   // the passing attempt with the highest Achieved rate
	Limit  Limit     `json:"limit"`  // what bounds Best
	Trials []Outcome `json:"trials"` // every attempt, in order
}

// check reports the first field that makes s unusable.
func (s Sweep) check() error {
	switch {
	case !(s.Start > 0) || !(s.Cap > 0):
		return fmt.Errorf("sweep: Start %g and Cap %g must be positive", s.Start, s.Cap)
	case !(s.Factor > 1):
		return fmt.Errorf("sweep: Factor %g must be more than 1", s.Factor)
	case !(s.Precision > 0):
		return fmt.Errorf("sweep: Precision %g must be positive", s.Precision)
	case s.Attempts < 1 || s.MaxTrials < 1:
		return errors.New("sweep: Attempts and MaxTrials must be at least 1")
	}
	return nil
}

// Run runs the search, calling attempt for each attempt at a rate. An error from attempt
// ends the search and is returned with what was found so far, marked LimitIncomplete.
func (s Sweep) Run(attempt func(rate float64) (Outcome, error)) (SweepResult, error) {
	var res SweepResult
	if err := s.check(); err != nil {
		return res, err
	}
	lo, hi := 0.0, math.Inf(1) // the highest passing and the lowest failing rate asked for
	rate := math.Min(s.Start, s.Cap)
	for range s.MaxTrials {
		o, pass, err := s.trial(attempt, rate, &res)
		if err != nil {
			res.Limit = LimitIncomplete
			return res, err
		}
		if pass {
			if !res.Found || o.Achieved > res.Best.Achieved {
				res.Best = o
			}
			res.Found = true
			lo = rate
			if o.Achieved < s.Shortfall*rate {
				res.Limit = LimitSender
				return res, nil
			}
			if rate >= s.Cap {
				res.Limit = LimitCap
				return res, nil
			}
		} else {
			hi = rate
		}
		switch {
		case math.IsInf(hi, 1):
			rate = math.Min(lo*s.Factor, s.Cap)
		case lo == 0:
			rate = hi / s.Factor
			if rate < s.MinRate {
				res.Limit = LimitLoss
				return res, nil
			}
		case hi/lo <= 1+s.Precision:
			res.Limit = LimitLoss
			return res, nil
		default:
			rate = math.Sqrt(lo * hi)
		}
	}
	res.Limit = LimitSteps
	return res, nil
}

// trial makes up to s.Attempts attempts at rate, stopping at the first that passes and
// reaches the rate, and returns the passing one that reached the highest rate, or else the
// one that lost least. A passing attempt that falls short of the rate does not stop it: the
// sending path is then the limit, and its best is what the sweep reports.
func (s Sweep) trial(attempt func(float64) (Outcome, error), rate float64, res *SweepResult) (Outcome, bool, error) {
	var best, bestPass Outcome
	passed := false
	for i := range s.Attempts {
		o, err := attempt(rate)
		if err != nil {
			return o, false, err
		}
		res.Trials = append(res.Trials, o)
		if o.Loss < s.MaxLoss {
			if !passed || o.Achieved > bestPass.Achieved {
				bestPass = o
			}
			passed = true
			if bestPass.Achieved >= s.Shortfall*rate {
				return bestPass, true, nil
			}
			continue // sender-limited: another attempt may get closer to the rate
		}
		if i == 0 || o.Loss < best.Loss {
			best = o
		}
	}
	if passed {
		return bestPass, true, nil
	}
	return best, false, nil
}

// niceRate rounds a rate down to two significant digits (37456 -> 37000), so the fixed rates
// the benchmark picks read as round numbers. Below 1 it returns 0.
func niceRate(r float64) float64 {
	if !(r >= 1) || math.IsInf(r, 1) {
		return 0
	}
	n, unit := int64(r), int64(1)
	for n/unit >= 100 {
		unit *= 10
	}
	return float64(n / unit * unit)
}
