package control

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
)

func editBase(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
[director]
interface = "eth0"
[[service]]
address = "10.20.0.100:80"
scheduler = "rr"
  [[service.real]]
  address = "10.20.0.11:80"
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func ptr[T any](v T) *T { return &v }

// TestApplyEdit runs ipvsadm's commands against a config, each result
// checked and validated as the daemon does before it reloads.
func TestApplyEdit(t *testing.T) {
	svc := api.Edit{Protocol: "tcp", Address: "10.20.0.100:80"}
	with := func(e api.Edit, f func(*api.Edit)) *api.Edit { f(&e); return &e }
	for _, c := range []struct {
		name    string
		edit    *api.Edit
		wantErr error
		check   func(*testing.T, *config.Config)
	}{
		{"add service with ipvsadm defaults", &api.Edit{Command: api.AddService, Protocol: "udp", Address: "10.20.0.100:53"}, nil,
			func(t *testing.T, c *config.Config) {
				s := c.Services[1]
				if s.Protocol != config.UDP || s.Scheduler != "wlc" || s.Persistence != 0 || len(s.Reals) != 0 {
					t.Errorf("new service %+v", s)
				}
			}},
		{"add existing service", with(svc, func(e *api.Edit) { e.Command = api.AddService }), errServiceExists, nil},
		{"edit service", with(svc, func(e *api.Edit) {
			e.Command, e.Scheduler, e.SchedulerFlags, e.Persistence, e.Netmask = api.EditService, "sh", []string{"sh-port"}, ptr(uint32(300)), ptr(24)
		}), nil, func(t *testing.T, c *config.Config) {
			s := c.Services[0]
			if s.Scheduler != "sh" || len(s.SchedulerFlags) != 1 || s.Persistence != 300*time.Second || s.PersistenceNetmask != 24 || len(s.Reals) != 1 {
				t.Errorf("edited service %+v", s)
			}
		}},
		{"edit missing service", &api.Edit{Command: api.EditService, Protocol: "tcp", Address: "10.20.0.100:81"}, errNoService, nil},
		{"delete service", with(svc, func(e *api.Edit) { e.Command = api.DeleteService }), nil,
			func(t *testing.T, c *config.Config) {
				if len(c.Services) != 0 {
					t.Errorf("%d services left", len(c.Services))
				}
			}},
		{"add server, port from the service", with(svc, func(e *api.Edit) { e.Command, e.Real, e.Weight = api.AddServer, "10.20.0.12", ptr(3) }), nil,
			func(t *testing.T, c *config.Config) {
				r := c.Services[0].Reals[1]
				if r.Address != netip.MustParseAddrPort("10.20.0.12:80") || r.Weight != 3 || r.Forward != config.DR {
					t.Errorf("new real %+v", r)
				}
			}},
		{"add existing server", with(svc, func(e *api.Edit) { e.Command, e.Real = api.AddServer, "10.20.0.11:80" }), errDestExists, nil},
		{"edit server", with(svc, func(e *api.Edit) {
			e.Command, e.Real, e.Weight, e.UpperThreshold = api.EditServer, "10.20.0.11:80", ptr(0), ptr(10)
		}), nil, func(t *testing.T, c *config.Config) {
			if r := c.Services[0].Reals[0]; r.Weight != 0 || r.UpperThreshold != 10 {
				t.Errorf("edited real %+v", r)
			}
		}},
		{"delete missing server", with(svc, func(e *api.Edit) { e.Command, e.Real = api.DeleteServer, "10.20.0.99:80" }), errNoDest, nil},
		{"delete server", with(svc, func(e *api.Edit) { e.Command, e.Real = api.DeleteServer, "10.20.0.11:80" }), nil,
			func(t *testing.T, c *config.Config) {
				if len(c.Services[0].Reals) != 0 {
					t.Errorf("reals left: %+v", c.Services[0].Reals)
				}
			}},
		{"clear", &api.Edit{Command: api.Clear}, nil, func(t *testing.T, c *config.Config) {
			if len(c.Services) != 0 {
				t.Error("services left")
			}
		}},
		{"set timeouts", &api.Edit{Command: api.SetTimeouts, TCP: 60, UDP: 30}, nil, func(t *testing.T, c *config.Config) {
			if c.Timeouts.TCP != time.Minute || c.Timeouts.TCPFin != 2*time.Minute || c.Timeouts.UDP != 30*time.Second {
				t.Errorf("timeouts %+v", c.Timeouts)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := editBase(t)
			cfg := cloneConfig(base)
			err := applyEdit(cfg, c.edit)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("error %v, want %v", err, c.wantErr)
			}
			if err != nil {
				return
			}
			if err := config.Validate(cfg); err != nil {
				t.Fatalf("the edited config does not validate: %v", err)
			}
			c.check(t, cfg)
			if len(base.Services) != 1 || len(base.Services[0].Reals) != 1 || base.Services[0].Reals[0].Weight != 1 || base.Services[0].Scheduler != "rr" {
				t.Errorf("the edit changed the running config: %+v", base.Services)
			}
		})
	}
	// A weight out of range is the validator's to refuse, with its path.
	cfg := cloneConfig(editBase(t))
	if err := applyEdit(cfg, with(svc, func(e *api.Edit) { e.Command, e.Real, e.Weight = api.EditServer, "10.20.0.11:80", ptr(-1) })); err != nil {
		t.Fatal(err)
	}
	if err := config.Validate(cfg); err == nil {
		t.Error("weight -1 validated")
	} else {
		t.Logf("weight -1: %v", err)
	}
}

// TestApplyEditProxyProtocol: gvsadm's --proxy-protocol, as -R replays
// what -S wrote: the service's value reaches the reals without their own,
// now and when it changes; a real's own (none included) stays. The result
// validates, and the listing shows what was asked.
func TestApplyEditProxyProtocol(t *testing.T) {
	cfg := editBase(t)
	cfg.Services = nil
	vip := api.Edit{Protocol: "tcp", Address: "10.20.0.100:80"}
	for _, e := range []api.Edit{
		{Command: api.AddService, ProxyProtocol: ptr("v2")},
		{Command: api.AddServer, Real: "10.20.0.11:8080", Forward: "fullnat"},
		{Command: api.AddServer, Real: "10.20.0.12:8080", Forward: "nat", ProxyProtocol: ptr("")},
		{Command: api.AddServer, Real: "10.20.0.13:8080", Forward: "fullnat", ProxyProtocol: ptr("v1")},
	} {
		e.Protocol, e.Address = vip.Protocol, vip.Address
		if err := applyEdit(cfg, &e); err != nil {
			t.Fatalf("%+v: %v", e, err)
		}
	}
	got := func() []string {
		var v []string
		for _, r := range cfg.Services[0].Reals {
			v = append(v, r.ProxyProtocol)
		}
		return v
	}
	if g := got(); cfg.Services[0].ProxyProtocol != "v2" || g[0] != "v2" || g[1] != "" || g[2] != "v1" {
		t.Fatalf("after -A/-a: service %q reals %q", cfg.Services[0].ProxyProtocol, g)
	}
	if err := config.Validate(cfg); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	e := api.Edit{Command: api.EditService, Protocol: vip.Protocol, Address: vip.Address, ProxyProtocol: ptr("v1")}
	if err := applyEdit(cfg, &e); err != nil {
		t.Fatal(err)
	}
	if g := got(); g[0] != "v1" || g[1] != "" || g[2] != "v1" {
		t.Fatalf("after -E --proxy-protocol v1: reals %q", g)
	}
	e = api.Edit{Command: api.EditServer, Protocol: vip.Protocol, Address: vip.Address, Real: "10.20.0.11:8080", Forward: "dr"}
	if err := applyEdit(cfg, &e); err != nil {
		t.Fatal(err)
	}
	if err := config.Validate(cfg); err == nil {
		t.Fatalf("a dr real with the service's PROXY protocol validated")
	}
}
