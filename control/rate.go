package control

import (
	"math"
	"sync"
	"time"

	"github.com/gvs-lb/gvs/control/api"
)

// estimateEvery is IPVS's estimator interval (ip_vs_est.c): every 2 s each
// rate moves a quarter of the way to the rate of the last interval.
const estimateEvery = 2 * time.Second

// historyLen is how many samples the status page's history keeps: 150
// at estimateEvery is five minutes, what a sparkline shows legibly. Each
// service and real costs historyLen × 20 bytes (3 KB), fixed.
const historyLen = 150

// Rates of one interval, in the order of api.History's fields.
const (
	histCPS = iota
	histInPPS
	histOutPPS
	histInBPS
	histOutBPS
	histRates
)

// rateEst is the estimate of one service or real.
type rateEst struct {
	last                              api.Stats
	cps, inPPS, outPPS, inBPS, outBPS float64
	seen                              bool // in the last sample
	// hist holds the rates of the intervals ending at ticks since..tick
	// (the estimator's), at index tick % historyLen; since is the first
	// tick with a rate (the one after the series' first sample).
	hist  [historyLen][histRates]float32
	since uint64
}

// estimator keeps the rate estimates, by service and real name, and the
// rates of the last historyLen intervals.
type estimator struct {
	mu   sync.Mutex
	ests map[string]*rateEst
	// tick counts sampleAll calls; times[tick % historyLen] is when the
	// tick'th was taken (Unix milliseconds).
	tick  uint64
	times [historyLen]int64
}

// sample moves the estimate of name towards the rates since its last
// sample, dt seconds ago, and records those rates at the current tick. The
// first sample only records the counters.
func (e *estimator) sample(name string, s api.Stats, dt float64) {
	est := e.ests[name]
	if est == nil {
		e.ests[name] = &rateEst{last: s, seen: true, since: e.tick + 1}
		return
	}
	est.seen = true
	// Counters reset by gvsadm -Z go backwards: start again from there.
	d := func(now, last uint64) float64 {
		if now < last || dt <= 0 {
			return 0
		}
		return float64(now-last) / dt
	}
	rates := [histRates]float64{
		histCPS:    d(s.Conns, est.last.Conns),
		histInPPS:  d(s.InPkts, est.last.InPkts),
		histOutPPS: d(s.OutPkts, est.last.OutPkts),
		histInBPS:  d(s.InBytes, est.last.InBytes),
		histOutBPS: d(s.OutBytes, est.last.OutBytes),
	}
	move := func(est *float64, rate float64) { *est += (rate - *est) / 4 }
	move(&est.cps, rates[histCPS])
	move(&est.inPPS, rates[histInPPS])
	move(&est.outPPS, rates[histOutPPS])
	move(&est.inBPS, rates[histInBPS])
	move(&est.outBPS, rates[histOutBPS])
	est.last = s
	h := &est.hist[e.tick%historyLen]
	for i, r := range rates {
		h[i] = float32(r)
	}
}

func (e *estimator) rates(name string) api.Rates {
	e.mu.Lock()
	defer e.mu.Unlock()
	est := e.ests[name]
	if est == nil {
		return api.Rates{}
	}
	r := func(v float64) uint64 { return uint64(math.Round(v)) }
	return api.Rates{CPS: r(est.cps), InPPS: r(est.inPPS), OutPPS: r(est.outPPS), InBPS: r(est.inBPS), OutBPS: r(est.outBPS)}
}

// sampleAll takes one sample, at now, of every service and real of list,
// and forgets those that are gone.
func (e *estimator) sampleAll(svcs []api.Service, now time.Time, dt float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ests == nil {
		e.ests = map[string]*rateEst{}
	}
	e.tick++
	e.times[e.tick%historyLen] = now.UnixMilli()
	for _, est := range e.ests {
		est.seen = false
	}
	for _, s := range svcs {
		e.sample(serviceRateName(&s), s.Stats, dt)
		for _, r := range s.Reals {
			e.sample(realRateName(&s, &r), r.Stats, dt)
		}
	}
	for name, est := range e.ests {
		if !est.seen {
			delete(e.ests, name)
		}
	}
}

func serviceRateName(s *api.Service) string { return s.Protocol + "/" + s.Address }
func realRateName(s *api.Service, r *api.Real) string {
	return s.Protocol + "/" + s.Address + " -> " + r.Address
}

// estimate samples the counters every estimateEvery until the daemon
// stops.
func (d *Daemon) estimate() {
	last := time.Now()
	d.every(estimateEvery, func(now time.Time) bool {
		d.rates.sampleAll(d.list().Services, now, now.Sub(last).Seconds())
		last = now
		return true
	})
}

// histories fills in the histories of svcs and returns their time axis,
// all from the same samples.
func (e *estimator) histories(svcs []api.Service) api.HistoryAxis {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range svcs {
		s := &svcs[i]
		s.History = e.historyLocked(serviceRateName(s))
		for j := range s.Reals {
			s.Reals[j].History = e.historyLocked(realRateName(s, &s.Reals[j]))
		}
	}
	return e.axisLocked()
}

// first is the oldest tick the history still holds.
func (e *estimator) first() uint64 {
	if e.tick < historyLen {
		return 1
	}
	return e.tick - historyLen + 1
}

// axis returns the history's time axis, oldest first.
func (e *estimator) axis() api.HistoryAxis {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.axisLocked()
}

func (e *estimator) axisLocked() api.HistoryAxis {
	a := api.HistoryAxis{IntervalSeconds: estimateEvery.Seconds(), Capacity: historyLen, Times: []int64{}}
	for t := e.first(); t <= e.tick; t++ {
		a.Times = append(a.Times, e.times[t%historyLen])
	}
	return a
}

// history returns the rates of name in the intervals the history holds,
// oldest first, or nil if it has none. Each call allocates its slices.
func (e *estimator) history(name string) *api.History {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.historyLocked(name)
}

func (e *estimator) historyLocked(name string) *api.History {
	est := e.ests[name]
	if est == nil || e.tick == 0 {
		return nil
	}
	from := max(e.first(), est.since)
	n := 0
	if from <= e.tick {
		n = int(e.tick - from + 1)
	}
	h := &api.History{CPS: make([]float32, 0, n), InPPS: make([]float32, 0, n), OutPPS: make([]float32, 0, n),
		InBPS: make([]float32, 0, n), OutBPS: make([]float32, 0, n)}
	for t := from; t <= e.tick; t++ {
		v := &est.hist[t%historyLen]
		h.CPS = append(h.CPS, v[histCPS])
		h.InPPS = append(h.InPPS, v[histInPPS])
		h.OutPPS = append(h.OutPPS, v[histOutPPS])
		h.InBPS = append(h.InBPS, v[histInBPS])
		h.OutBPS = append(h.OutBPS, v[histOutBPS])
	}
	return h
}
