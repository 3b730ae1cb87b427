package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fakeDirector is a measure function: the generator sends min(asked,
// genMax) (genMax 0: what is asked), and the director loses lossAt(rate)
// percent of it.
func fakeDirector(genMax float64, lossAt func(rate float64) float64) (measure func(float64) (Sample, error), asked *[]float64) {
	var log []float64
	return func(r float64) (Sample, error) {
		log = append(log, r)
		sent := r
		if genMax > 0 {
			sent = min(r, genMax)
		}
		loss := lossAt(sent)
		return Sample{GeneratorPPS: sent, ForwardedPPS: sent * (1 - loss/100), LossPct: loss}, nil
	}, &log
}

// overload is a director that forwards up to capacity and loses the rest.
func overload(capacity float64) func(float64) float64 {
	return func(r float64) float64 {
		if r <= capacity {
			return 0
		}
		return 100 * (r - capacity) / r
	}
}

// TestSearchZeroLossMonotonic: on a loss curve that grows with the rate
// the search ends within one step (of the last bisection, (hi-lo)/2^steps)
// below the true zero-loss rate, in exactly steps measurements.
func TestSearchZeroLossMonotonic(t *testing.T) {
	const lo, hi, steps = 10_000, 800_000, 7
	resolution := (hi - lo) / math.Pow(2, steps)
	for _, capacity := range []float64{10_500, 123_456, 237_000, 400_000, 400_001, 799_000} {
		// The allowed 0.1% moves the true answer up a little: the highest
		// rate whose loss is at most 0.1%.
		truth := capacity / (1 - zeroLossMaxPct/100)
		measure, asked := fakeDirector(0, overload(capacity))
		zl, err := searchZeroLoss(lo, hi, steps, zeroLossMaxPct, measure)
		if err != nil {
			t.Fatal(err)
		}
		if !zl.Found || zl.GeneratorLimited || zl.Note != "" {
			t.Errorf("capacity %v: %+v", capacity, zl)
		}
		if zl.PPS > truth || zl.PPS < truth-resolution-1 {
			t.Errorf("capacity %v: zero-loss %v, want within %v below %v", capacity, zl.PPS, resolution, truth)
		}
		// Below the lowest bisection step the low bound is measured too.
		want := steps
		if truth < lo+resolution {
			want++
		}
		if len(*asked) != want || len(zl.Steps) != want {
			t.Errorf("capacity %v: %d measurements (%v), want %d", capacity, len(*asked), *asked, want)
		}
		if zl.LowPPS != lo || zl.HighPPS != hi || zl.AskedPPS != zl.PPS || zl.ForwardedPPS > zl.PPS || zl.LossPct > zeroLossMaxPct {
			t.Errorf("capacity %v: %+v", capacity, zl)
		}
		for _, s := range zl.Steps {
			if s.Pass != (s.Sample.LossPct <= zeroLossMaxPct) || s.AskedPPS != math.Round(s.AskedPPS) {
				t.Errorf("capacity %v: step %+v", capacity, s)
			}
		}
	}
	// The first step is the middle; every step halves what is left.
	measure, asked := fakeDirector(0, overload(1e9))
	if zl, _ := searchZeroLoss(0, 1024, 3, zeroLossMaxPct, measure); zl.PPS != 896 || !equalFloats(*asked, []float64{512, 768, 896}) {
		t.Errorf("lossless curve: asked %v, zero-loss %v", *asked, zl.PPS)
	}
}

// TestSearchZeroLossNoisy: with noise near the knee (a capacity that
// varies by up to 3% from one measurement to the next) the answer is the
// highest rate that passed, below every rate that failed, and within a
// step of the band the noise spans.
func TestSearchZeroLossNoisy(t *testing.T) {
	const lo, hi, steps, capacity, jitter = 10_000, 1_000_000, 7, 300_000, 0.03
	res := (hi - lo) / math.Pow(2, steps)
	spread := 0.0
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		measure, _ := fakeDirector(0, func(r float64) float64 {
			return overload(capacity * (1 + jitter*(2*rng.Float64()-1)))(r)
		})
		zl, err := searchZeroLoss(lo, hi, steps, zeroLossMaxPct, measure)
		if err != nil {
			t.Fatal(err)
		}
		if !zl.Found {
			t.Fatalf("seed %d: nothing found: %+v", seed, zl)
		}
		for _, s := range zl.Steps {
			if s.Pass && s.AskedPPS > zl.AskedPPS || !s.Pass && s.AskedPPS <= zl.AskedPPS {
				t.Errorf("seed %d: zero-loss %v, step %v pass %v", seed, zl.AskedPPS, s.AskedPPS, s.Pass)
			}
			if s.Pass != (s.Sample.LossPct <= zeroLossMaxPct) {
				t.Errorf("seed %d: step %+v", seed, s)
			}
		}
		if zl.PPS < capacity*(1-jitter)-res-1 || zl.PPS > capacity*(1+jitter)/(1-zeroLossMaxPct/100) {
			t.Errorf("seed %d: zero-loss %v, want within a step of %v ± %g%%", seed, zl.PPS, capacity, 100*jitter)
		}
		spread = max(spread, math.Abs(zl.PPS-capacity))
	}
	if spread < res {
		t.Errorf("the noise never moved the answer by a step (%v): not a noisy curve", spread)
	}
}

// TestSearchZeroLossAllLossy: when no step passes the low bound is
// measured too, and reported as failed.
func TestSearchZeroLossAllLossy(t *testing.T) {
	const lo, hi, steps = 10_000, 500_000, 7
	measure, asked := fakeDirector(0, func(float64) float64 { return 2.5 })
	zl, err := searchZeroLoss(lo, hi, steps, zeroLossMaxPct, measure)
	if err != nil {
		t.Fatal(err)
	}
	if zl.Found || zl.PPS != 0 || len(zl.Steps) != steps+1 || (*asked)[steps] != lo {
		t.Errorf("all lossy: %+v, asked %v", zl, *asked)
	}
	// Each step below the one before.
	for i := 1; i < steps; i++ {
		if (*asked)[i] >= (*asked)[i-1] {
			t.Errorf("asked %v: not descending", *asked)
		}
	}
	if !strings.Contains(zl.Note, "failed") || !strings.Contains(zl.Note, "10,000 pps asked") || zl.cell() != "< 10,000 (failed)" {
		t.Errorf("note %q, cell %q", zl.Note, zl.cell())
	}
	// Lossy everywhere but at the low bound: found there.
	measure, _ = fakeDirector(0, func(r float64) float64 {
		if r <= lo {
			return 0
		}
		return 50
	})
	if zl, _ := searchZeroLoss(lo, hi, steps, zeroLossMaxPct, measure); !zl.Found || zl.PPS != lo || len(zl.Steps) != steps+1 {
		t.Errorf("only the low bound passes: %+v", zl)
	}
	// A saturation rate at or below the low bound: only the low bound.
	measure, asked = fakeDirector(0, overload(1e9))
	if zl, _ := searchZeroLoss(lo, 9_000, steps, zeroLossMaxPct, measure); !zl.Found || zl.PPS != lo || len(*asked) != 1 {
		t.Errorf("high below low: %+v, asked %v", zl, *asked)
	}
}

// TestSearchZeroLossGeneratorLimited: a generator that cannot send what
// is asked passes every step; the figure is what it sent, flagged.
func TestSearchZeroLossGeneratorLimited(t *testing.T) {
	measure, _ := fakeDirector(300_000, overload(1e9))
	zl, err := searchZeroLoss(10_000, 1_000_000, 7, zeroLossMaxPct, measure)
	if err != nil {
		t.Fatal(err)
	}
	if !zl.Found || !zl.GeneratorLimited || zl.PPS != 300_000 || zl.AskedPPS < 990_000 || !strings.Contains(zl.Note, "sent 300,000 pps") || zl.cell() != "300,000 *" {
		t.Errorf("%+v, cell %q", zl, zl.cell())
	}
	// A generator that offers less at a higher rate asked: the answer is
	// the highest rate offered that passed.
	offered := map[float64]float64{505_000: 260_000, 752_500: 240_000}
	zl, _ = searchZeroLoss(10_000, 1_000_000, 3, zeroLossMaxPct, func(r float64) (Sample, error) {
		sent := offered[r]
		if sent == 0 {
			return Sample{GeneratorPPS: 250_000, ForwardedPPS: 200_000, LossPct: 20}, nil
		}
		return Sample{GeneratorPPS: sent, ForwardedPPS: sent}, nil
	})
	if !zl.Found || zl.PPS != 260_000 || zl.AskedPPS != 505_000 || len(zl.Steps) != 3 {
		t.Errorf("uneven generator: %+v", zl)
	}
	sat := zeroLossOfSaturation(Sample{GeneratorPPS: 500_000, ForwardedPPS: 499_900, LossPct: 0.02}, 10_000)
	if !sat.Found || !sat.GeneratorLimited || sat.PPS != 500_000 || len(sat.Steps) != 0 || sat.Note == "" {
		t.Errorf("saturation without loss: %+v", sat)
	}
}

// TestSearchZeroLossError: a failed measurement ends the search with the
// steps before it.
func TestSearchZeroLossError(t *testing.T) {
	n := 0
	boom := errors.New("generator died")
	zl, err := searchZeroLoss(10_000, 1_000_000, 7, zeroLossMaxPct, func(r float64) (Sample, error) {
		if n++; n == 3 {
			return Sample{}, boom
		}
		return Sample{GeneratorPPS: r, ForwardedPPS: r}, nil
	})
	if !errors.Is(err, boom) || len(zl.Steps) != 2 || !zl.Found || zl.AskedPPS != zl.Steps[1].AskedPPS {
		t.Errorf("%+v, %v", zl, err)
	}
	var none *ZeroLoss
	if none.cell() != "-" {
		t.Errorf("cell of no search %q", none.cell())
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPacer drives the Go generator's pacing with a fake clock.
func TestPacer(t *testing.T) {
	p := &pacer{rate: 1000} // a frame every millisecond
	if n, _ := p.due(0, 0); n != 1 {
		t.Errorf("at the start: %d due, want 1", n)
	}
	if n, wait := p.due(200*time.Microsecond, 1); n != 0 || wait != 800*time.Microsecond {
		t.Errorf("after the first: %d due, wait %v, want 0 and 800µs", n, wait)
	}
	if n, _ := p.due(10*time.Millisecond+time.Microsecond, 1); n != 10 {
		t.Errorf("10 ms late: %d due, want 10", n)
	}
	// Far behind: two batches, the rest skipped, and the schedule goes on
	// from there.
	if n, _ := p.due(time.Second, 11); n != genBatch || p.skipped != 1001-11-paceMaxBehind {
		t.Errorf("1 s late: %d due, %d skipped", n, p.skipped)
	}
	if n, _ := p.due(time.Second, 11+genBatch); n != genBatch {
		t.Errorf("1 s late, one batch sent: %d due", n)
	}
	if n, wait := p.due(time.Second, 11+2*genBatch); n != 0 || wait != time.Millisecond {
		t.Errorf("caught up: %d due, wait %v", n, wait)
	}

	// With a quantum: one write per quantum of what is due by then.
	p = &pacer{rate: 100_000, quantum: 100 * time.Microsecond} // a frame every 10 µs
	if n, _ := p.due(0, 0); n != 1 {
		t.Errorf("quantum, at the start: %d due", n)
	}
	if n, wait := p.due(30*time.Microsecond, 1); n != 0 || wait != 70*time.Microsecond {
		t.Errorf("quantum, 30 µs in: %d due, wait %v; want 0 and 70µs", n, wait)
	}
	if n, _ := p.due(100*time.Microsecond, 1); n != 10 {
		t.Errorf("quantum, 100 µs in: %d due, want 10", n)
	}
	// Late by more than a write carries: the rest right after, not a
	// quantum later.
	if n, _ := p.due(1100*time.Microsecond, 11); n != genBatch {
		t.Errorf("quantum, 1 ms late: %d due, want %d", n, genBatch)
	}
	if n, _ := p.due(1101*time.Microsecond, 11+genBatch); n != 111-11-genBatch {
		t.Errorf("quantum, the rest: %d due, want %d", n, 111-11-genBatch)
	}
	if n, wait := p.due(1102*time.Microsecond, 111); n != 0 || wait != 99*time.Microsecond {
		t.Errorf("quantum, caught up: %d due, wait %v", n, wait)
	}

	// A generator that sends whatever is due at once and otherwise waits
	// as told sends the rate, evenly.
	for _, c := range []struct {
		rate     float64
		quantum  time.Duration
		maxBatch int
	}{{10_000, 0, 1}, {123_457, 0, 1}, {1e6, 0, 1}, {10_000, 100 * time.Microsecond, 1}, {123_457, 100 * time.Microsecond, 13}, {500_000, 100 * time.Microsecond, 51}} {
		rate := c.rate
		p := &pacer{rate: rate, quantum: c.quantum}
		var now time.Duration
		var sent uint64
		maxBatch := 0
		for now < time.Second {
			n, wait := p.due(now, sent)
			if n == 0 {
				if wait <= 0 {
					t.Fatalf("rate %v: nothing due and no wait at %v", rate, now)
				}
				now += wait
				continue
			}
			sent += uint64(n)
			maxBatch = max(maxBatch, n)
			now += 300 * time.Nanosecond // what a write costs
		}
		if math.Abs(float64(sent)-rate) > 2+rate*c.quantum.Seconds() || p.skipped != 0 || maxBatch > c.maxBatch {
			t.Errorf("rate %v, quantum %v: sent %d in 1 s, %d skipped, batches up to %d", rate, c.quantum, sent, p.skipped, maxBatch)
		}
	}
}

func TestParseStatPgrp(t *testing.T) {
	for stat, want := range map[string]int{
		"4242 (trafgen) S 4240 4239 4239 0 -1 4194560 1 0": 4239,
		"7 (a (b) c) R 1 77 77 0 -1":                       77,
		"8 (x) S 1 ":                                       -1,
		"no parenthesis":                                   -1,
	} {
		got, err := parseStatPgrp(stat)
		if want < 0 {
			if err == nil {
				t.Errorf("parseStatPgrp(%q) = %d, want an error", stat, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("parseStatPgrp(%q) = %d, %v; want %d", stat, got, err, want)
		}
	}
}

// TestPPSFlags checks what the pps suite's flags set.
func TestPPSFlags(t *testing.T) {
	var errb bytes.Buffer
	o, jsonOut, code := parsePPSFlags([]string{"-generator", "go"}, &errb)
	if code != 0 || jsonOut || o.NoPin || !o.pinned() || o.ZeroLoss || o.ZeroLossSteps != defaultZeroLossSteps || o.ZeroLossLow != defaultZeroLossLow ||
		o.Duration != 5*time.Second || o.Runs != 3 || len(o.Modes) != 3 || o.Generator != genGo {
		t.Errorf("defaults: %+v, json %v, code %d: %s", o, jsonOut, code, errb.String())
	}
	if o.PaceQuantum != defaultPaceQuantum {
		t.Errorf("default quantum %v", o.PaceQuantum)
	}
	o, jsonOut, code = parsePPSFlags([]string{"-generator", "go", "-pin=false", "-zero-loss", "-zero-loss-steps", "5", "-zero-loss-low", "20kpps", "-zero-loss-quantum", "0", "-json", "-duration", "3s", "-runs", "1"}, &errb)
	if code != 0 || !jsonOut || !o.NoPin || o.pinned() || !o.ZeroLoss || o.ZeroLossSteps != 5 || o.ZeroLossLow != 20_000 || o.PaceQuantum != 0 || o.Duration != 3*time.Second || o.Runs != 1 {
		t.Errorf("-pin=false -zero-loss: %+v, json %v, code %d: %s", o, jsonOut, code, errb.String())
	}
	if o, _, code := parsePPSFlags([]string{"-generator", "go", "-pin=true", "-zero-loss"}, &errb); code != 0 || o.NoPin || !o.ZeroLoss {
		t.Errorf("-pin=true: %+v, code %d", o, code)
	}
	for _, args := range [][]string{
		{"-zero-loss", "-zero-loss-steps", "0"}, {"-zero-loss", "-zero-loss-steps", "21"},
		{"-zero-loss", "-zero-loss-low", "0pps"}, {"-zero-loss", "-zero-loss-low", "10k"}, {"-zero-loss", "-zero-loss-low", "1.5pps"},
		{"-zero-loss-steps", "5"}, {"-zero-loss-low", "20kpps"}, {"-zero-loss-quantum", "50us"},
		{"-zero-loss", "-zero-loss-quantum", "-1us"}, {"-zero-loss", "-zero-loss-quantum", "11ms"},
		{"-pin=false", "-napi"}, {"-pin=false", "-lan-napi"}, {"-pin=false", "-no-rps"}, {"-pin=maybe"},
	} {
		errb.Reset()
		if _, _, code := parsePPSFlags(append([]string{"-generator", "go"}, args...), &errb); code != 2 {
			t.Errorf("parsePPSFlags(%q) = %d, want 2 (usage); stderr %s", args, code, errb.String())
		}
	}
}

// TestGenRateFlag: the Go generator refuses a rate it cannot mean.
func TestGenRateFlag(t *testing.T) {
	base := []string{"-dst-mac", "02:00:0a:14:00:02", "-src-mac", "02:00:0a:14:00:fa", "-dst", "10.20.0.100:53"}
	for _, args := range [][]string{{"-rate", "-1"}, {"-rate", "1e9"}, {"-rate", "x"}, {"-rate", "1000", "-quantum", "-1us"}, {"-rate", "1000", "-quantum", "1s"}} {
		var errb bytes.Buffer
		if code := genMain(append(base, args...), &errb); code != 2 {
			t.Errorf("gen %q = %d, want 2; %s", args, code, errb.String())
		}
	}
}

// TestReportZeroLoss checks the zero-loss column, notes and ratios, and
// the unpinned header, in the table and the JSON.
func TestReportZeroLoss(t *testing.T) {
	r := newReport(Options{Generator: genTrafgen, Flows: 1024, Duration: 3 * time.Second, Runs: 1, NoPin: true,
		ZeroLoss: true, ZeroLossLow: 10_000, ZeroLossSteps: 7})
	dr, _ := searchZeroLoss(10_000, 400_000, 7, zeroLossMaxPct, func() func(float64) (Sample, error) {
		m, _ := fakeDirector(0, overload(150_000))
		return m
	}())
	nat, _ := searchZeroLoss(10_000, 400_000, 7, zeroLossMaxPct, func(r float64) (Sample, error) {
		return Sample{GeneratorPPS: r, ForwardedPPS: r / 2, LossPct: 50}, nil
	})
	kernel := zeroLossOfSaturation(Sample{GeneratorPPS: 100_000, ForwardedPPS: 100_000}, 10_000)
	r.Configs = []ConfigResult{
		{Name: "gvsd-dr", Median: Sample{GeneratorPPS: 4e5, ForwardedPPS: 2e5}, Runs: []Sample{{ForwardedPPS: 2e5}}, ZeroLoss: &dr},
		{Name: "gvsd-nat", Median: Sample{GeneratorPPS: 4e5, ForwardedPPS: 1e5}, Runs: []Sample{{ForwardedPPS: 1e5}}, ZeroLoss: &nat},
		{Name: "kernel-dnat", Median: Sample{GeneratorPPS: 1e5, ForwardedPPS: 1e5}, Runs: []Sample{{ForwardedPPS: 1e5}}, ZeroLoss: &kernel},
	}
	r.computeRatios()
	if len(r.Ratios) != 2 || r.Ratios[0].ZeroLoss == nil || math.Abs(*r.Ratios[0].ZeroLoss-dr.PPS/1e5) > 1e-9 ||
		r.Ratios[0].ZeroLossNote != "the generator set the kernel's" || r.Ratios[1].ZeroLoss != nil || r.Ratios[1].ZeroLossNote != "not found for both" {
		t.Errorf("ratios %+v", r.Ratios)
	}
	var b bytes.Buffer
	r.writeTable(&b)
	out := b.String()
	for _, want := range []string{
		"NOT PINNED (-pin=false)", "trafgen -P 1 pins its worker to CPU 0 itself", "no RPS (rps_cpus = 0)",
		"zero-loss (-zero-loss): the highest offered rate with at most 0.1% loss", "7 steps", "zero-loss pps", "CPU 0 busy %", "CPU 1 busy %",
		fmtPPS(dr.PPS), "< 10,000 (failed)", "100,000 *", "zero-loss steps (pps asked): 205,000 lossy (26.829%)",
		"gvsd-dr / kernel-dnat: 2.00x (target >= 1.5x): met; zero-loss 1.", "(the generator set the kernel's)",
		"gvsd-nat / kernel-dnat: 1.00x (target >= 1.2x): NOT met; zero-loss: not found for both",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pinned (the default") {
		t.Errorf("unpinned table says pinned:\n%s", out)
	}
	b.Reset()
	if err := r.writeJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Pinned || back.ZeroLoss == nil || back.ZeroLoss.Steps != 7 || back.ZeroLoss.MaxLossPct != 0.1 || back.Configs[0].ZeroLoss == nil ||
		back.Configs[0].ZeroLoss.PPS != dr.PPS || len(back.Configs[0].ZeroLoss.Steps) != 7 || back.Ratios[0].ZeroLoss == nil {
		t.Errorf("JSON round trip: %s", b.String())
	}

	// Pinned and without -zero-loss: today's table, no zero-loss column.
	r = newReport(Options{Generator: genTrafgen, Duration: 3 * time.Second, Runs: 1})
	r.Configs = []ConfigResult{{Name: "kernel-dnat", Median: Sample{GeneratorPPS: 1e5, ForwardedPPS: 1e5}, Runs: []Sample{{ForwardedPPS: 1e5}}}}
	b.Reset()
	r.writeTable(&b)
	if out := b.String(); strings.Contains(out, "zero-loss") || strings.Contains(out, "CPU 0 busy") || !strings.Contains(out, "pinned (the default, -pin)") || !strings.Contains(out, "taskset -c 1") {
		t.Errorf("pinned table:\n%s", out)
	}
	if !r.Pinned {
		t.Error("the default report is not pinned")
	}
}
