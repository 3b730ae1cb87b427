package control

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
)

// simConfig has a wlc service (80), an rr service with persistence per
// /24 (443), a service whose reals are all quiesced, with a sorry server
// (25), and one whose reals can take nothing while its sorry server stays
// out (110, thresholds).
const simConfig = `
[director]
interface = "eth0"
[[service]]
address = "10.20.0.100:80"
scheduler = "wlc"
forward = "nat"
  [[service.real]]
  address = "10.20.0.11:8080"
  [[service.real]]
  address = "10.20.0.12:8080"
[[service]]
address = "10.20.0.100:443"
scheduler = "rr"
forward = "nat"
persistence = "5m"
persistence_netmask = 24
  [[service.real]]
  address = "10.20.0.11:443"
  [[service.real]]
  address = "10.20.0.12:443"
[[service]]
address = "10.20.0.100:25"
scheduler = "rr"
sorry = "10.20.0.99:25"
  [[service.real]]
  address = "10.20.0.11:25"
  weight = 0
  [[service.real]]
  address = "10.20.0.12:25"
  weight = 0
[[service]]
address = "10.20.0.100:110"
scheduler = "wlc"
sorry = "10.20.0.99:110"
  [[service.real]]
  address = "10.20.0.11:110"
  upper_threshold = 1
`

// simEnv is a compiled simConfig with a template table, as simulate
// reads them.
type simEnv struct {
	t         *testing.T
	cfg       *config.Config
	comp      *Compiler
	in        simInput
	templates *conntrack.Templates
}

func newSimEnv(t *testing.T) *simEnv {
	e := &simEnv{t: t, cfg: mustParse(t, simConfig), comp: NewCompiler(), templates: conntrack.NewTemplates(64)}
	e.in = simInput{cfg: e.cfg, now: int64(time.Hour),
		template: func(k *conntrack.TemplateKey) (conntrack.TemplateInfo, bool) { return e.templates.Lookup(k, e.in.now) },
		health:   func(dataplane.ServiceKey, *config.Service, netip.AddrPort) string { return "" },
	}
	e.compile(resolveAll)
	return e
}

func (e *simEnv) compile(resolve Resolver) {
	e.t.Helper()
	tbl, _, err := e.comp.Compile(e.cfg, testLink, nil, resolve)
	if err != nil {
		e.t.Fatal(err)
	}
	e.in.table = tbl
}

func (e *simEnv) simulate(addr, client string) *api.Simulation {
	e.t.Helper()
	sim, err := simulate(&e.in, &api.SimulateRequest{Protocol: "tcp", Address: addr, Client: client})
	if err != nil {
		e.t.Fatalf("simulate %s from %s: %v", addr, client, err)
	}
	return sim
}

func (e *simEnv) service(port uint16) *dataplane.Service {
	return e.in.table.Services[dataplane.ServiceKey{Proto: 6, VIP: [4]byte{10, 20, 0, 100}, Port: port}]
}

// TestSimulateScheduler: without persistence the scheduler decides, and
// says why; each real is shown as the decision saw it; asking again
// changes nothing (rr's turn and the counters stay).
func TestSimulateScheduler(t *testing.T) {
	e := newSimEnv(t)
	web := e.service(80)
	c11 := e.in.table.Reals[web.Reals[0]].Counters
	c11.Active.Store(3)
	c11.Inactive.Store(1)
	sim := e.simulate("10.20.0.100:80", "10.10.0.7:40000")
	want := &api.Simulation{
		Protocol: "tcp", Address: "10.20.0.100:80", Client: "10.10.0.7:40000", Scheduler: "wlc",
		Real: "10.20.0.12:8080", Forward: "nat", DecidedBy: "scheduler", Reason: "lowest (active*256+inactive)/weight = 0.0",
		Reals: []api.SimulatedReal{
			{Address: "10.20.0.11:8080", Forward: "nat", Weight: 1, SchedWeight: 1, Ready: true, Active: 3, Inactive: 1},
			{Address: "10.20.0.12:8080", Forward: "nat", Weight: 1, SchedWeight: 1, Ready: true, Chosen: true, Note: "chosen"},
		},
	}
	if !reflect.DeepEqual(sim, want) {
		t.Fatalf("simulate:\n got %+v\nwant %+v", sim, want)
	}
	if c11.Active.Load() != 3 || c11.Inactive.Load() != 1 {
		t.Error("simulate changed the counters")
	}

	// rr over two reals: the same answer twice, and it is what the next
	// connection gets.
	https := e.service(443)
	https.Persist = 0 // rr alone
	first := e.simulate("10.20.0.100:443", "10.10.0.7")
	again := e.simulate("10.20.0.100:443", "10.10.0.7")
	if first.Real != "10.20.0.11:443" || again.Real != first.Real || first.Reason != "next in turn" {
		t.Fatalf("rr: %q (%s) then %q", first.Real, first.Reason, again.Real)
	}
	if i := https.Sched.Pick(https.Dests, nil); i != 0 {
		t.Fatalf("rr's next pick is real %d, simulate said the first", i)
	}
	if sim := e.simulate("10.20.0.100:443", "10.10.0.7"); sim.Real != "10.20.0.12:443" {
		t.Errorf("after a pick, simulate says %q, want the second real", sim.Real)
	}
}

// TestSimulateTemplate: a live template whose real is usable decides
// (rr would say otherwise); once its real is not ready the scheduler
// decides and the answer says the template would be replaced.
func TestSimulateTemplate(t *testing.T) {
	e := newSimEnv(t)
	https := e.service(443)
	id12 := https.Reals[1]
	sim := e.simulate("10.20.0.100:443", "10.10.0.7")
	if sim.DecidedBy != "scheduler" || sim.Template == nil || sim.Template.Found || sim.Template.Client != "10.10.0.0" ||
		sim.Persistence != 300 || sim.Netmask != 24 || sim.Real != "10.20.0.11:443" {
		t.Fatalf("no template yet: %+v, template %+v", sim, sim.Template)
	}
	if e.templates.Len() != 0 {
		t.Fatal("simulate made a template")
	}
	// A connection of a neighbour in the /24 went to .12 and holds the
	// template.
	tk := conntrack.MaskedTemplateKey([4]byte{10, 10, 0, 99}, [4]byte{10, 20, 0, 100}, 443, 6, 24)
	e.templates.Schedule(&tk, e.in.now, int64(5*time.Minute), true, func(uint32) bool { return true }, func() (uint32, bool) { return id12, true })
	sim = e.simulate("10.20.0.100:443", "10.10.0.7:1234")
	wantTpl := api.SimulatedTemplate{Client: "10.10.0.0", Found: true, Real: "10.20.0.12:443", Connections: 1, Usable: true}
	if sim.DecidedBy != "template" || sim.Real != "10.20.0.12:443" || *sim.Template != wantTpl || !strings.Contains(sim.Reason, "10.10.0.0/24") {
		t.Fatalf("live template: %+v, template %+v", sim, *sim.Template)
	}
	if n := sim.Reals[1].Note; n != "chosen, template" {
		t.Errorf("template real's note %q", n)
	}
	if info, _ := e.templates.Lookup(&tk, e.in.now); info.Conns != 1 {
		t.Errorf("simulate changed the template: %+v", info)
	}

	// The template's real loses its next hop: not ready, weight 0.
	e.compile(func(ip netip.Addr) ([6]byte, bool, bool) {
		if ip == netip.MustParseAddr("10.20.0.12") {
			return [6]byte{}, false, false
		}
		return resolveAll(ip)
	})
	sim = e.simulate("10.20.0.100:443", "10.10.0.7:1234")
	if sim.DecidedBy != "scheduler" || sim.Real != "10.20.0.11:443" || sim.Template.Usable || !sim.Template.Found ||
		!strings.Contains(sim.Template.Note, "not ready") {
		t.Fatalf("template of a real not ready: %+v, template %+v", sim, *sim.Template)
	}
	if n := sim.Reals[1].Note; n != "template, not ready" || sim.Reals[1].SchedWeight != 0 || sim.Reals[1].Ready {
		t.Errorf("real not ready: %+v", sim.Reals[1])
	}

	// The last connection ends: the template lapses in 5 minutes.
	e.templates.Release(&tk, id12, e.in.now)
	e.in.now += int64(time.Minute)
	if sim = e.simulate("10.20.0.100:443", "10.10.0.7"); sim.Template.Connections != 0 || sim.Template.Expires != 240 {
		t.Errorf("lapsing template: %+v", *sim.Template)
	}
}

// TestSimulateNoReal: with every real quiesced the sorry server takes the
// connection; with the reals unable to take it but not quiesced, nothing
// does, and the answer says the sorry server is not in use.
func TestSimulateNoReal(t *testing.T) {
	e := newSimEnv(t)
	sim := e.simulate("10.20.0.100:25", "10.10.0.7")
	if sim.DecidedBy != "scheduler" || sim.Real != "10.20.0.99:25" || sim.Sorry != "10.20.0.99:25" || !sim.SorryActive ||
		len(sim.Reals) != 3 || !sim.Reals[2].Sorry || sim.Reals[2].Note != "chosen, sorry server" || sim.Reals[0].Note != "quiescent" {
		t.Fatalf("sorry: %+v", sim)
	}

	pop := e.service(110)
	pop.Dests[0].Counters.Bind(true) // at its upper threshold, 1: overloaded
	sim = e.simulate("10.20.0.100:110", "10.10.0.7")
	if sim.DecidedBy != "none" || sim.Real != "" || sim.Sorry != "10.20.0.99:110" || sim.SorryActive ||
		sim.Reason != "no real available: every real has weight 0 or is overloaded" || sim.Reals[0].Note != "overloaded" || !sim.Reals[0].Overloaded {
		t.Fatalf("overloaded, sorry not in use: %+v", sim)
	}
}

// TestSimulateErrors: ipvsadm's errors for a service that is not there,
// and what is wanted for a bad request.
func TestSimulateErrors(t *testing.T) {
	e := newSimEnv(t)
	for _, c := range []struct {
		req  api.SimulateRequest
		want string
	}{
		{api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100:81", Client: "10.10.0.7"}, "No such service"},
		{api.SimulateRequest{Protocol: "udp", Address: "10.20.0.100:80", Client: "10.10.0.7"}, "No such service"},
		{api.SimulateRequest{Protocol: "sctp", Address: "10.20.0.100:80", Client: "10.10.0.7"}, "unknown protocol"},
		{api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100", Client: "10.10.0.7"}, "illegal virtual server address"},
		{api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100:80", Client: "client"}, "illegal client address"},
		{api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100:80", Client: "[::1]:80"}, "illegal client address"},
	} {
		if _, err := simulate(&e.in, &c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.req, err, c.want)
		}
	}
	e.in.table = nil // nothing published yet
	if _, err := simulate(&e.in, &api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100:80", Client: "10.10.0.7"}); err == nil || err.Error() != "No such service" {
		t.Errorf("no table: %v", err)
	}
}
