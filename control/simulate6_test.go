package control

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/schedule"
)

// simConfig6 has an IPv6 NAT service with rr and persistence per /64
// (443) and an IPv6 mh service (80), beside an IPv4 service on port 80.
const simConfig6 = `
[director]
interface = "eth0"
[[service]]
address = "10.20.0.100:80"
  [[service.real]]
  address = "10.20.0.11:80"
[[service]]
address = "[fd00:20::100]:443"
scheduler = "rr"
forward = "nat"
persistence = "5m"
persistence_netmask = 64
  [[service.real]]
  address = "[fd00:20::11]:8443"
  [[service.real]]
  address = "[fd00:20::12]:8443"
[[service]]
address = "[fd00:20::100]:80"
scheduler = "mh"
  [[service.real]]
  address = "[fd00:20::11]:80"
  [[service.real]]
  address = "[fd00:20::12]:80"
  [[service.real]]
  address = "[fd00:20::13]:80"
`

// TestSimulateIPv6: simulate takes an IPv6 service and client: the
// scheduler's choice is the one the worker's next pick makes (mh hashes
// the IPv6 flow as flowOf6 does), a live template of the client's /64
// decides, the reals and the template are named in IPv6 form; an IPv4
// client of an IPv6 service (and the reverse) is refused.
func TestSimulateIPv6(t *testing.T) {
	e := &simEnv{t: t, cfg: mustParse(t, simConfig6), comp: NewCompiler(), templates: conntrack.NewTemplates(64)}
	e.in = simInput{cfg: e.cfg, now: int64(time.Hour),
		template: func(k *conntrack.TemplateKey) (conntrack.TemplateInfo, bool) { return e.templates.Lookup(k, e.in.now) },
		health:   func(dataplane.ServiceKey, *config.Service, netip.AddrPort) string { return "" },
	}
	e.compile(resolveDual)
	vip := netip.MustParseAddr("fd00:20::100")
	svc := func(port uint16) *dataplane.Service {
		return e.in.table.Services6[dataplane.ServiceKey6{Proto: 6, VIP: vip.As16(), Port: port}]
	}

	// mh: the real the worker would pick for this flow.
	for i := range 20 {
		client := netip.AddrPortFrom(netip.MustParseAddr("fd00:10::7"), uint16(40000+i))
		sim := e.simulate("[fd00:20::100]:80", client.String())
		web := svc(80)
		f := schedule.Flow{Src: client.Addr().As16(), Dst: vip.As16(), SrcPort: client.Port(), DstPort: 80, Proto: 6, Now: e.in.now}
		want := e.in.table.Reals[web.Reals[web.Sched.Pick(web.Dests, &f)]]
		if sim.DecidedBy != "scheduler" || sim.Real != netip.AddrPortFrom(netip.AddrFrom16(want.Addr6), want.Port).String() ||
			sim.Address != "[fd00:20::100]:80" || sim.Client != client.String() || !strings.HasPrefix(sim.Real, "[fd00:20::1") {
			t.Fatalf("mh from %s: %+v, the worker picks %v", client, sim, netip.AddrFrom16(want.Addr6))
		}
	}

	// Persistence per /64: no template, then a neighbour's decides.
	https := svc(443)
	sim := e.simulate("[fd00:20::100]:443", "fd00:10::7")
	if sim.DecidedBy != "scheduler" || sim.Template == nil || sim.Template.Found || sim.Template.Client != "fd00:10::" ||
		sim.Netmask != 64 || sim.Real != "[fd00:20::11]:8443" || sim.Forward != "nat" {
		t.Fatalf("no template yet: %+v, template %+v", sim, sim.Template)
	}
	tk := conntrack.MaskedTemplateKey6(netip.MustParseAddr("fd00:10::99").As16(), vip.As16(), 443, 6, 64)
	id12 := https.Reals[1]
	e.templates.Schedule(&tk, e.in.now, int64(5*time.Minute), true, func(uint32) bool { return true }, func() (uint32, bool) { return id12, true })
	sim = e.simulate("[fd00:20::100]:443", "[fd00:10::7]:1234")
	wantTpl := api.SimulatedTemplate{Client: "fd00:10::", Found: true, Real: "[fd00:20::12]:8443", Connections: 1, Usable: true}
	if sim.DecidedBy != "template" || sim.Real != "[fd00:20::12]:8443" || *sim.Template != wantTpl || !strings.Contains(sim.Reason, "fd00:10::/64") {
		t.Fatalf("live template: %+v, template %+v", sim, *sim.Template)
	}
	// Another /64 has no template.
	if sim = e.simulate("[fd00:20::100]:443", "fd00:11::7"); sim.Template.Found {
		t.Errorf("another /64 found the template: %+v", *sim.Template)
	}

	for _, c := range []struct {
		req  api.SimulateRequest
		want string
	}{
		{api.SimulateRequest{Protocol: "tcp", Address: "[fd00:20::100]:80", Client: "10.10.0.7"}, "want an IPv6 address"},
		{api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100:80", Client: "fd00:10::7"}, "want an IPv4 address"},
		{api.SimulateRequest{Protocol: "udp", Address: "[fd00:20::100]:80", Client: "fd00:10::7"}, "No such service"},
		{api.SimulateRequest{Protocol: "tcp", Address: "[fd00:20::101]:80", Client: "fd00:10::7"}, "No such service"},
		{api.SimulateRequest{Protocol: "tcp", Address: "[::ffff:10.20.0.100]:80", Client: "10.10.0.7"}, "illegal virtual server address"},
		{api.SimulateRequest{Protocol: "tcp", Address: "[fd00:20::100]:80", Client: "fe80::1%eth0"}, "illegal client address"},
	} {
		if _, err := simulate(&e.in, &c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.req, err, c.want)
		}
	}
}
