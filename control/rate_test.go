package control

import (
	"math"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
)

// TestEstimator: a steady rate is approached a quarter of the remaining
// way every sample, as IPVS's estimator does; a service that goes away is
// forgotten, and counters that go backwards (gvsadm -Z) count as no traffic.
func TestEstimator(t *testing.T) {
	var e estimator
	svc := func(conns, pkts uint64) []api.Service {
		return []api.Service{{Protocol: "tcp", Address: "10.0.0.1:80", Stats: api.Stats{Conns: conns, InPkts: pkts},
			Reals: []api.Real{{Address: "10.0.0.11:80", Stats: api.Stats{Conns: conns, InPkts: pkts}}}}}
	}
	for i := range uint64(6) { // 100 connections/s, 1000 packets/s, 2-second samples
		e.sampleAll(svc(200*i, 2000*i), time.Unix(int64(2*i), 0), 2)
	}
	// Five intervals at 100/s from 0: 100 * (1 - (3/4)^5) = 76.3.
	want := 100 * (1 - math.Pow(0.75, 5))
	s := []api.Service{{Protocol: "tcp", Address: "10.0.0.1:80"}}
	r := e.rates(serviceRateName(&s[0]))
	if math.Abs(float64(r.CPS)-want) > 1 || math.Abs(float64(r.InPPS)-10*want) > 1 || r.OutPPS != 0 {
		t.Errorf("rates %+v, want CPS %.1f and InPPS %.1f", r, want, 10*want)
	}
	if rr := e.rates(realRateName(&s[0], &api.Real{Address: "10.0.0.11:80"})); rr != r {
		t.Errorf("real rates %+v, want the service's %+v", rr, r)
	}
	e.sampleAll(svc(0, 0), time.Unix(12, 0), 2) // zeroed: no traffic in the interval
	if r2 := e.rates(serviceRateName(&s[0])); r2.CPS >= r.CPS || r2.CPS == 0 {
		t.Errorf("after a reset to 0: %+v, want a quarter less than %+v", r2, r)
	}
	e.sampleAll(nil, time.Unix(14, 0), 2)
	if r := e.rates(serviceRateName(&s[0])); r != (api.Rates{}) {
		t.Errorf("a service that is gone still has rates %+v", r)
	}
}
