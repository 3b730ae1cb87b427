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

// rateEst is the estimate of one service or real.
type rateEst struct {
	last                              api.Stats
	cps, inPPS, outPPS, inBPS, outBPS float64
	seen                              bool // in the last sample
}

// estimator keeps the rate estimates, by service and real name.
type estimator struct {
	mu   sync.Mutex
	ests map[string]*rateEst
}

// sample moves the estimate of name towards the rates since its last
// sample, dt seconds ago. The first sample only records the counters.
func (e *estimator) sample(name string, s api.Stats, dt float64) {
	est := e.ests[name]
	if est == nil {
		e.ests[name] = &rateEst{last: s, seen: true}
		return
	}
	est.seen = true
	// Counters reset by gvsadm -Z go backwards: start again from there.
	d := func(now, last uint64) float64 {
		if now < last {
			return 0
		}
		return float64(now-last) / dt
	}
	move := func(est *float64, rate float64) { *est += (rate - *est) / 4 }
	move(&est.cps, d(s.Conns, est.last.Conns))
	move(&est.inPPS, d(s.InPkts, est.last.InPkts))
	move(&est.outPPS, d(s.OutPkts, est.last.OutPkts))
	move(&est.inBPS, d(s.InBytes, est.last.InBytes))
	move(&est.outBPS, d(s.OutBytes, est.last.OutBytes))
	est.last = s
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

// sampleAll takes one sample of every service and real of list, and
// forgets those that are gone.
func (e *estimator) sampleAll(svcs []api.Service, dt float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ests == nil {
		e.ests = map[string]*rateEst{}
	}
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
		d.rates.sampleAll(d.list().Services, now.Sub(last).Seconds())
		last = now
		return true
	})
}
