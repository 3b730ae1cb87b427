package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// TestExampleConfigs loads every example in configs/ so they cannot rot. A new example
// must be added to want, and a removed one removed from it.
func TestExampleConfigs(t *testing.T) {
	want := map[string]int{ // file name → number of services
		"gvs.toml":         1,
		"nat.toml":         1,
		"fullnat.toml":     2,
		"tun.toml":         1,
		"udp-dns.toml":     2,
		"bgp.toml":         1,
		"bgp-nat.toml":     1,
		"bgp-fullnat.toml": 1,
		"ipv6.toml":        4,
		"ipv6-ha.toml":     2,
	}
	files, err := filepath.Glob("../../configs/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("Load:\n%v", err)
			}
			n, ok := want[name]
			if !ok {
				t.Fatalf("%s is not listed in this test; add it with its number of services", name)
			}
			if len(c.Services) != n {
				t.Errorf("%d services, want %d", len(c.Services), n)
			}
			for _, s := range c.Services {
				if len(s.Reals) == 0 {
					t.Errorf("service %q has no reals: an example should show some", s.Name)
				}
			}
			if err := Validate(c); err != nil {
				t.Errorf("Validate(Load(...)):\n%v", err)
			}
		})
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("configs/%s is missing", name)
		}
	}
}

// TestReferenceConfig checks that configs/gvs.toml, the commented reference, sets every
// key of the schema and that the values it shows are the defaults.
func TestReferenceConfig(t *testing.T) {
	const file = "../../configs/gvs.toml"
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []struct {
		header string
		keys   []string
	}{
		{"[director]", []string{"interface", "workers", "local_addresses", "local_ports", "metrics"}},
		{"[timeouts]", []string{"tcp", "tcp_fin", "udp"}},
		{"[limits]", []string{"connections"}},
		{"[[service]]", []string{"name", "protocol", "address", "scheduler", "scheduler_flags", "forward", "persistence", "persistence_netmask", "ops", "synproxy"}},
		{"[[service.real]]", []string{"address", "weight", "upper_threshold", "lower_threshold", "forward"}},
	} {
		// The section's keys are the lines between its header and the next header.
		loc := regexp.MustCompile(`(?m)^[ \t]*` + regexp.QuoteMeta(section.header)).FindIndex(text)
		if loc == nil {
			t.Errorf("%s has no %s", file, section.header)
			continue
		}
		body := text[loc[1]:]
		if next := regexp.MustCompile(`(?m)^[ \t]*\[`).FindIndex(body); next != nil {
			body = body[:next[0]]
		}
		for _, k := range section.keys {
			if !regexp.MustCompile(`(?m)^\s*` + k + ` = `).Match(body) {
				t.Errorf("%s: %s does not show %s", file, section.header, k)
			}
		}
	}

	c, err := Load(file)
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	d := Default()
	d.Director.Interface = "eth0"
	if !reflect.DeepEqual(c.Director, d.Director) || c.Timeouts != d.Timeouts || c.Limits != d.Limits {
		t.Errorf("reference shows non-default values:\n got %+v %+v %+v\nwant %+v %+v %+v",
			c.Director, c.Timeouts, c.Limits, d.Director, d.Timeouts, d.Limits)
	}
	s := c.Services[0]
	def := defaultService()
	if s.Protocol != def.Protocol || s.Scheduler != def.Scheduler || s.Forward != def.Forward ||
		s.Persistence != def.Persistence || s.PersistenceNetmask != def.PersistenceNetmask || s.OPS != def.OPS || s.SynProxy != def.SynProxy {
		t.Errorf("reference service shows non-default values: %+v", s)
	}
	// Port 0 of the second real is resolved to the service's port.
	if got := s.Reals[1].Address.Port(); got != s.Address.Port() {
		t.Errorf("real[1] port = %d, want the service's %d", got, s.Address.Port())
	}
}
