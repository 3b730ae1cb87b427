package main

import (
	"fmt"
	"math"
	"strings"
)

// The zero-loss search (-zero-loss), RFC 2544 section 26.1 style: the
// highest offered rate at which the director loses at most
// zeroLossMaxPct of the generator's frames.
const (
	// zeroLossMaxPct is the loss a step may have and still pass: the
	// generator's frames that reached no real server, in percent.
	zeroLossMaxPct = 0.1
	// defaultZeroLossLow is the search's low bound, in pps.
	defaultZeroLossLow = 10_000
	// defaultZeroLossSteps is the number of bisection steps between the
	// low bound and the saturation rate: a resolution of 1/128 of it.
	defaultZeroLossSteps = 7
	// maxZeroLossSteps bounds -zero-loss-steps.
	maxZeroLossSteps = 20
	// genLimited: a step whose generator sent less than this share of the
	// rate asked of it was limited by the generator.
	genLimited = 0.98
)

// ZeroLoss is one configuration's zero-loss search.
type ZeroLoss struct {
	// Found says that some rate passed; PPS is then the generator's rate
	// at the highest step that passed (what was offered, measured at its
	// eth0 as in every sample), AskedPPS what the generator was asked
	// for there and ForwardedPPS what reached the reals.
	Found        bool    `json:"found"`
	PPS          float64 `json:"pps"`
	AskedPPS     float64 `json:"asked_pps"`
	ForwardedPPS float64 `json:"forwarded_pps"`
	LossPct      float64 `json:"loss_pct"`
	// LowPPS and HighPPS bound the search: the low bound and the
	// saturation runs' median generator rate.
	LowPPS  float64 `json:"low_pps"`
	HighPPS float64 `json:"high_pps"`
	// GeneratorLimited says that the generator, not the director, set the
	// figure: the saturation runs lost nothing (the director kept up with
	// the generator at full speed), or the generator could not send the
	// rate asked of it at the step that counts.
	GeneratorLimited bool           `json:"generator_limited,omitempty"`
	Note             string         `json:"note,omitempty"`
	Steps            []ZeroLossStep `json:"steps,omitempty"`
}

// ZeroLossStep is one measured step of a search.
type ZeroLossStep struct {
	AskedPPS float64 `json:"asked_pps"`
	Pass     bool    `json:"pass"`
	Sample   Sample  `json:"sample"`
}

// passes says whether a sample's loss is within maxPct.
func passes(s Sample, maxPct float64) bool {
	return s.GeneratorPPS > 0 && s.LossPct <= maxPct
}

// searchZeroLoss finds the highest rate between lo and hi at which
// measure's sample passes (loss at most maxPct): steps bisection steps of
// [lo, hi], each a fresh measure at the middle of what is left (a pass
// moves the bottom up, a loss the top down), so on a loss curve that only
// grows with the rate the answer is within (hi-lo)/2^steps below the
// true one. hi is taken as failing (the saturation runs lost frames);
// lo is measured only if no step passed, and is reported as failed if it
// does not pass either. With noise the answer is still the highest rate
// that passed, below every rate that failed. The answer is the step that
// passed with the highest rate the generator offered, which is the
// highest rate asked unless the generator fell short of some. An error
// from measure ends the search with what it has.
func searchZeroLoss(lo, hi float64, steps int, maxPct float64, measure func(asked float64) (Sample, error)) (ZeroLoss, error) {
	zl := ZeroLoss{LowPPS: lo, HighPPS: hi}
	lo, hi = math.Round(lo), math.Round(hi)
	step := func(r float64) (bool, error) {
		s, err := measure(r)
		if err != nil {
			return false, err
		}
		st := ZeroLossStep{AskedPPS: r, Pass: passes(s, maxPct), Sample: s}
		zl.Steps = append(zl.Steps, st)
		return st.Pass, nil
	}
	a, b := lo, hi
	passed := false
	for i := 0; i < steps && b-a > 1; i++ {
		r := math.Round((a + b) / 2)
		ok, err := step(r)
		if err != nil {
			return zl.finish(maxPct), err
		}
		if ok {
			a, passed = r, true
		} else {
			b = r
		}
	}
	if !passed {
		if _, err := step(lo); err != nil {
			return zl.finish(maxPct), err
		}
	}
	return zl.finish(maxPct), nil
}

// finish fills the result from the best step: of those that passed, the
// one whose generator offered the most.
func (zl ZeroLoss) finish(maxPct float64) ZeroLoss {
	var best *ZeroLossStep
	for i := range zl.Steps {
		if s := &zl.Steps[i]; s.Pass && (best == nil || s.Sample.GeneratorPPS >= best.Sample.GeneratorPPS) {
			best = s
		}
	}
	if best == nil {
		if n := len(zl.Steps); n > 0 {
			last := zl.Steps[n-1]
			zl.Note = fmt.Sprintf("failed: loss %.2f%% (more than %g%%) even at %s pps asked (%s offered)",
				last.Sample.LossPct, maxPct, fmtPPS(last.AskedPPS), fmtPPS(last.Sample.GeneratorPPS))
		}
		return zl
	}
	zl.Found = true
	zl.PPS = best.Sample.GeneratorPPS
	zl.AskedPPS = best.AskedPPS
	zl.ForwardedPPS = best.Sample.ForwardedPPS
	zl.LossPct = best.Sample.LossPct
	if best.Sample.GeneratorPPS < genLimited*best.AskedPPS {
		zl.GeneratorLimited = true
		zl.Note = fmt.Sprintf("the generator sent %s pps of the %s asked for", fmtPPS(best.Sample.GeneratorPPS), fmtPPS(best.AskedPPS))
	}
	return zl
}

// zeroLossOfSaturation is the result when the saturation runs themselves
// lost at most maxPct: the director kept up with the generator at full
// speed, so nothing is searched and the figure is the generator's.
func zeroLossOfSaturation(sat Sample, lo float64) ZeroLoss {
	return ZeroLoss{
		Found: true, PPS: sat.GeneratorPPS, ForwardedPPS: sat.ForwardedPPS, LossPct: sat.LossPct,
		LowPPS: lo, HighPPS: sat.GeneratorPPS, GeneratorLimited: true,
		Note: "not searched: the saturation runs lost at most the allowed share, so the generator at full speed is the limit",
	}
}

// cell is the table's zero-loss figure: the rate, "*" when the generator
// set it, or that even the low bound failed.
func (zl *ZeroLoss) cell() string {
	switch {
	case zl == nil:
		return "-"
	case !zl.Found && len(zl.Steps) == 0:
		return "(no step)"
	case !zl.Found:
		return "< " + fmtPPS(zl.LowPPS) + " (failed)"
	case zl.GeneratorLimited:
		return fmtPPS(zl.PPS) + " *"
	}
	return fmtPPS(zl.PPS)
}

// stepsLine lists a search's steps in the order they ran.
func (zl *ZeroLoss) stepsLine() string {
	var parts []string
	for _, s := range zl.Steps {
		verdict := "ok"
		if !s.Pass {
			verdict = "lossy"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%.3f%%)", fmtPPS(s.AskedPPS), verdict, s.Sample.LossPct))
	}
	return strings.Join(parts, ", ")
}
