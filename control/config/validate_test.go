package config

import (
	"errors"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"
)

// validConfig is what a control plane might build from gvsadm commands.
func validConfig() *Config {
	c := Default()
	c.Director.Interface = "eth0"
	c.Services = []Service{{
		Name: "web", Protocol: TCP, Address: netip.MustParseAddrPort("10.0.0.1:80"),
		Scheduler: "rr", Forward: DR, PersistenceNetmask: 32,
		Reals: []Real{{Address: netip.MustParseAddrPort("10.0.0.2:80"), Weight: 1, Forward: DR}},
	}}
	return c
}

func TestValidate(t *testing.T) {
	if err := Validate(validConfig()); err != nil {
		t.Fatalf("Validate(valid) = %v", err)
	}
	for _, tt := range []struct {
		name string
		edit func(c *Config)
		want []FieldError
	}{
		{"Default() lacks only the interface", func(c *Config) { *c = *Default() }, []FieldError{{"director.interface", "required"}}},
		{"worker_policy", func(c *Config) { c.Director.WorkerPolicy = "fifo" }, []FieldError{{"director.worker_policy", `"fifo": want "batch" or "normal"`}}},
		{"busy_poll negative", func(c *Config) { c.Director.BusyPoll = -time.Microsecond }, []FieldError{{"director.busy_poll", "-1µs is out of range 0s..1ms"}}},
		{"busy_poll too long", func(c *Config) { c.Director.BusyPoll = 2 * time.Millisecond }, []FieldError{{"director.busy_poll", "2ms is out of range 0s..1ms"}}},
		{"zero Config", func(c *Config) { *c = Config{} }, []FieldError{
			{"director.interface", "required"},
			{"director.local_ports", `"0-0" is not a port range (want "LO-HI" with 1 <= LO <= HI <= 65535)`},
			{"director.worker_policy", `"": want "batch" or "normal"`},
			{"limits.connections", "0 is out of range 1..100000000"},
			{"timeouts.tcp", "0s is not positive"},
			{"timeouts.tcp_fin", "0s is not positive"},
			{"timeouts.udp", "0s is not positive"},
		}},
		{"zero Service", func(c *Config) { c.Services = []Service{{}} }, []FieldError{
			{"service[0].address", "required"},
			{"service[0].forward", "not set"},
			{"service[0].name", "must not be empty"},
			{"service[0].persistence_netmask", "0 is out of range 1..32"},
			{"service[0].protocol", "not set"},
			{"service[0].scheduler", `"" is not a scheduler (want one of rr wrr lc wlc sed nq sh dh lblc lblcr mh fo ovf)`},
		}},
		{"zero Real", func(c *Config) { c.Services[0].Reals = []Real{{}} }, []FieldError{
			{"service[0].real[0].address", "required"},
			{"service[0].real[0].forward", "not set"},
		}},
		{"unresolved real port", func(c *Config) { c.Services[0].Reals[0].Address = netip.MustParseAddrPort("10.0.0.2:0") }, []FieldError{
			{"service[0].real[0].address", "port must not be 0 (Parse resolves it to the service's port)"},
		}},
		{"enums out of range", func(c *Config) {
			c.Services[0].Protocol = 3
			c.Services[0].Reals[0].Forward = 9
		}, []FieldError{
			{"service[0].protocol", "Protocol(3) is not a protocol"},
			{"service[0].real[0].forward", "Forward(9) is not a forwarding method"},
		}},
		{"IPv4-mapped IPv6 local address", func(c *Config) {
			c.Director.LocalAddresses = []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.9")}
		}, []FieldError{{"director.local_addresses[0]", "::ffff:10.0.0.9 is IPv4-mapped: write the IPv4 address 10.0.0.9"}}},
		{"ops on udp is fine, duplicate service by code", func(c *Config) {
			s := c.Services[0]
			s.Name = "web2"
			s.OPS = true
			c.Services = append(c.Services, s)
		}, []FieldError{
			{"service[1].address", "tcp 10.0.0.1:80 is already service[0]"},
			{"service[1].ops", "only valid with protocol udp"},
		}},
		{"synproxy in code: dr real and udp", func(c *Config) {
			c.Services[0].SynProxy = true
			s := c.Services[0]
			s.Name, s.Protocol, s.Forward = "dns", UDP, NAT
			s.Reals = []Real{{Address: netip.MustParseAddrPort("10.0.0.2:53"), Weight: 1, Forward: NAT}}
			c.Services = append(c.Services, s)
		}, []FieldError{
			{"service[0].real[0].forward", "dr with synproxy: synproxy needs nat or fullnat (the real's replies must come back through the director)"},
			{"service[1].synproxy", "only valid with protocol tcp"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(c)
			err := Validate(c)
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Validate = %v, want *Errors", err)
			}
			if !slices.Equal(*errs, Errors(tt.want)) {
				t.Errorf("problems:\n got %q\nwant %q", *errs, tt.want)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	if d.Director.LocalPorts != (PortRange{1024, 32767}) || d.Director.Workers != 0 || d.Director.Interface != "" ||
		d.Timeouts != (Timeouts{TCP: 15 * time.Minute, TCPFin: 2 * time.Minute, UDP: 5 * time.Minute}) ||
		d.Limits.Connections != 4000000 || d.Services != nil {
		t.Errorf("Default() = %+v", d)
	}
	// Each call is a fresh value.
	d.Director.Interface = "x"
	if Default().Director.Interface != "" {
		t.Error("Default() shares state between calls")
	}
}

func TestEnums(t *testing.T) {
	for _, tt := range []struct {
		f    Forward
		name string
	}{{DR, "dr"}, {TUN, "tun"}, {NAT, "nat"}, {FullNAT, "fullnat"}} {
		if got := tt.f.String(); got != tt.name {
			t.Errorf("%d.String() = %q, want %q", tt.f, got, tt.name)
		}
		if got, err := ParseForward(tt.name); err != nil || got != tt.f {
			t.Errorf("ParseForward(%q) = %v, %v", tt.name, got, err)
		}
	}
	for _, s := range []string{"", "DR", "route", "masq", "fullnat "} {
		if f, err := ParseForward(s); err == nil {
			t.Errorf("ParseForward(%q) = %v, want an error", s, f)
		}
	}
	if Forward(0).String() != "Forward(0)" || Protocol(0).String() != "Protocol(0)" {
		t.Errorf("zero values print as %q, %q", Forward(0), Protocol(0))
	}
	if TCP.String() != "tcp" || UDP.String() != "udp" {
		t.Errorf("protocols print as %q, %q", TCP, UDP)
	}
	if p, err := ParseProtocol("udp"); err != nil || p != UDP {
		t.Errorf("ParseProtocol(udp) = %v, %v", p, err)
	}
	if _, err := ParseProtocol("sctp"); err == nil {
		t.Error("ParseProtocol(sctp) succeeded")
	}
}

func TestPortRange(t *testing.T) {
	if s := (PortRange{1024, 32767}).String(); s != "1024-32767" {
		t.Errorf("String() = %q", s)
	}
	for _, tt := range []struct {
		in   string
		want PortRange
		ok   bool
	}{
		{"1024-32767", PortRange{1024, 32767}, true},
		{"1-65535", PortRange{1, 65535}, true},
		{"7-7", PortRange{7, 7}, true},
		{"0-7", PortRange{}, false},
		{"8-7", PortRange{}, false},
		{"1-65536", PortRange{}, false},
		{"-5", PortRange{}, false},
		{"5-", PortRange{}, false},
		{"5", PortRange{}, false},
		{"1 - 5", PortRange{}, false},
		{"1-2-3", PortRange{}, false},
		{"", PortRange{}, false},
	} {
		got, err := ParsePortRange(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSchedulers(t *testing.T) {
	want := []string{"rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr", "mh", "fo", "ovf"}
	got := Schedulers()
	if !slices.Equal(got, want) {
		t.Errorf("Schedulers() = %q", got)
	}
	got[0] = "x"
	if Schedulers()[0] != "rr" {
		t.Error("Schedulers() returned shared storage")
	}
}

func TestErrorsSortNaturally(t *testing.T) {
	paths := []string{"timeouts.tcp", "service[10].address", "service[2].real[11].weight", "director.workers",
		"service[2].real[2].weight", "service[2].address", "", "service[9]"}
	want := []string{"", "director.workers", "service[2].address", "service[2].real[2].weight",
		"service[2].real[11].weight", "service[9]", "service[10].address", "timeouts.tcp"}
	e := make(Errors, len(paths))
	for i, p := range paths {
		e[i] = FieldError{Path: p}
	}
	e.sort()
	got := make([]string, len(e))
	for i := range e {
		got[i] = e[i].Path
	}
	if !slices.Equal(got, want) {
		t.Errorf("sorted:\n got %q\nwant %q", got, want)
	}
	if !sort.SliceIsSorted(e, func(i, j int) bool { return comparePaths(e[i].Path, e[j].Path) < 0 }) {
		t.Error("not sorted by comparePaths")
	}
	if (Errors{}).Error() == "" {
		t.Error("empty Errors has an empty message")
	}
}
