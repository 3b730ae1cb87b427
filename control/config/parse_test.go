package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// head is the smallest valid config; snippets below append to it.
const head = "[director]\ninterface = \"eth0\"\n"

// parseErrs parses src, which must fail, and returns its problems.
func parseErrs(t *testing.T, src string) Errors {
	t.Helper()
	c, err := Parse([]byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded, want errors; got %+v", c)
	}
	if c != nil {
		t.Errorf("Parse returned a config and an error")
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error is %T, want *Errors: %v", err, err)
	}
	if len(*errs) == 0 {
		t.Fatal("Parse returned empty *Errors")
	}
	return *errs
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return c
}

func TestParseDefaults(t *testing.T) {
	c := mustParse(t, head+`
[[service]]
address = "10.20.0.100:80"
  [[service.real]]
  address = "10.20.0.11:80"
  [[service.real]]
  address = "10.20.0.12:0"
  forward = "tun"
[[service]]
protocol = "udp"
address = "10.20.0.100:53"
forward = "nat"
  [[service.real]]
  address = "10.30.0.11:0"
  [[service.real]]
  address = "10.30.0.12:5353"
  weight = 0
`)
	want := &Config{
		Director: Director{Interface: "eth0", LocalPorts: PortRange{1024, 32767}, WorkerPolicy: "batch"},
		Timeouts: Timeouts{TCP: 15 * time.Minute, TCPFin: 2 * time.Minute, UDP: 5 * time.Minute},
		Limits:   Limits{Connections: 4000000},
		VRRP:     VRRP{Version: 2, Priority: 100, AdvertInterval: time.Second, AuthType: "none", Preempt: true, GARPRepeat: 5, GARPDelay: 5 * time.Second},
		Sync:     Sync{Port: 8848, TTL: 1, Refresh: 30 * time.Second},
		BGP:      BGP{HoldTime: 9 * time.Second, Drain: 5 * time.Second, MED: -1},
		Services: []Service{
			{
				Name: "tcp/10.20.0.100:80", Protocol: TCP, Address: netip.MustParseAddrPort("10.20.0.100:80"),
				Scheduler: "wlc", Forward: DR, PersistenceNetmask: 32, Check: DefaultCheck(),
				Reals: []Real{
					{Address: netip.MustParseAddrPort("10.20.0.11:80"), Weight: 1, Forward: DR},
					{Address: netip.MustParseAddrPort("10.20.0.12:80"), Weight: 1, Forward: TUN},
				},
			},
			{
				Name: "udp/10.20.0.100:53", Protocol: UDP, Address: netip.MustParseAddrPort("10.20.0.100:53"),
				Scheduler: "wlc", Forward: NAT, PersistenceNetmask: 32, Check: DefaultCheck(),
				Reals: []Real{
					{Address: netip.MustParseAddrPort("10.30.0.11:53"), Weight: 1, Forward: NAT},
					{Address: netip.MustParseAddrPort("10.30.0.12:5353"), Weight: 0, Forward: NAT},
				},
			},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", c, want)
	}

	// Default() is what an almost empty file gives, without services.
	d := Default()
	d.Director.Interface = "eth0"
	if got := mustParse(t, head); !reflect.DeepEqual(got, d) {
		t.Errorf("Parse(head) = %+v, want Default() with the interface: %+v", got, d)
	}
}

// TestParseVRRPv2 reads keepalived's usual instance: VRRPv2 (the default)
// with a password.
func TestParseVRRPv2(t *testing.T) {
	c := mustParse(t, `
[director]
interface = "eth0"
[vrrp]
router_id = 51
advert_interval = "2s"
auth_type = "pass"
auth_pass = "s3cr3t"
`)
	want := VRRP{RouterID: 51, Version: 2, Priority: 100, AdvertInterval: 2 * time.Second, AuthType: "pass", AuthPass: "s3cr3t",
		Preempt: true, GARPRepeat: 5, GARPDelay: 5 * time.Second}
	if !reflect.DeepEqual(c.VRRP, want) {
		t.Errorf("[vrrp]:\n got %+v\nwant %+v", c.VRRP, want)
	}
}

func TestParseEveryField(t *testing.T) {
	c := mustParse(t, `
[director]
interface = "eth1"
workers = 4
local_addresses = ["10.40.0.2", "10.40.0.3"]
local_ports = "2000-3000"
metrics = "127.0.0.1:9464"
worker_policy = "normal"
busy_poll = "50us"
[timeouts]
tcp = "1h"
tcp_fin = "30s"
udp = "90s"
drain = "10m"
[limits]
connections = 1000
[vrrp]
interface = "eth2"
router_id = 51
version = 3
priority = 150
advert_interval = "100ms"
preempt = false
preempt_delay = "30s"
unicast_peers = ["10.40.0.9"]
addresses = ["10.20.0.53"]
notify = ["/usr/local/bin/vrrp-notify", "dns"]
garp_repeat = 3
garp_delay = "0s"
garp_refresh = "1m"
[sync]
interface = "eth3"
peer = "10.40.0.9"
port = 8849
sync_id = 7
refresh = "10s"
[[service]]
name = "dns"
protocol = "udp"
address = "10.20.0.53:53"
scheduler = "sh"
scheduler_flags = ["sh-port", "sh-fallback"]
forward = "fullnat"
persistence = "5m"
persistence_netmask = 24
ops = true
sorry = "10.40.1.99:53"
  [service.check]
  type = "udp"
  interval = "5s"
  timeout = "2s"
  rise = 3
  fall = 4
  port = 5300
  path = "/health"
  status = [200, 204]
  expect = "^ok"
  send = "0x0102"
  command = ["/bin/true", "x"]
  on_failure = "quiesce"
  alpha = true
  [[service.real]]
  address = "10.40.1.11:5353"
  weight = 65535
  upper_threshold = 100
  lower_threshold = 50
  forward = "nat"
`)
	want := &Config{
		Director: Director{
			Interface: "eth1", Workers: 4,
			LocalAddresses: []netip.Addr{netip.MustParseAddr("10.40.0.2"), netip.MustParseAddr("10.40.0.3")},
			LocalPorts:     PortRange{2000, 3000}, Metrics: "127.0.0.1:9464", WorkerPolicy: "normal",
			BusyPoll: 50 * time.Microsecond,
		},
		Timeouts: Timeouts{TCP: time.Hour, TCPFin: 30 * time.Second, UDP: 90 * time.Second, Drain: 10 * time.Minute},
		Limits:   Limits{Connections: 1000},
		VRRP: VRRP{Interface: "eth2", RouterID: 51, Version: 3, Priority: 150, AdvertInterval: 100 * time.Millisecond, AuthType: "none", PreemptDelay: 30 * time.Second,
			UnicastPeers: []netip.Addr{netip.MustParseAddr("10.40.0.9")}, Addresses: []netip.Addr{netip.MustParseAddr("10.20.0.53")},
			Notify: []string{"/usr/local/bin/vrrp-notify", "dns"}, GARPRepeat: 3, GARPRefresh: time.Minute},
		Sync: Sync{Enabled: true, Interface: "eth3", Peer: netip.MustParseAddr("10.40.0.9"), TTL: 1, Port: 8849, SyncID: 7, Refresh: 10 * time.Second},
		BGP:  BGP{HoldTime: 9 * time.Second, Drain: 5 * time.Second, MED: -1},
		Services: []Service{{
			Name: "dns", Protocol: UDP, Address: netip.MustParseAddrPort("10.20.0.53:53"), Scheduler: "sh",
			SchedulerFlags: []string{"sh-port", "sh-fallback"},
			Forward:        FullNAT, Persistence: 5 * time.Minute, PersistenceNetmask: 24, OPS: true,
			Reals: []Real{{Address: netip.MustParseAddrPort("10.40.1.11:5353"), Weight: 65535, UpperThreshold: 100, LowerThreshold: 50, Forward: NAT}},
			Sorry: netip.MustParseAddrPort("10.40.1.99:53"),
			Check: Check{Type: "udp", Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 3, Fall: 4, Port: 5300, Path: "/health",
				Status: []int{200, 204}, Expect: "^ok", Send: "0x0102", Command: []string{"/bin/true", "x"}, OnFailure: "quiesce", Alpha: true},
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", c, want)
	}
}

func TestParseValid(t *testing.T) {
	for _, tt := range []struct{ name, src string }{
		{"no services", head},
		{"service without reals", head + "[[service]]\naddress = \"10.0.0.1:80\"\n"},
		{"inline tables", "director = { interface = \"eth0\" }\nservice = [{ address = \"10.0.0.1:80\", real = [{ address = \"10.0.0.2:80\" }] }]\n"},
		{"every scheduler", head + func() string {
			var b strings.Builder
			for i, s := range Schedulers() {
				fmt.Fprintf(&b, "[[service]]\nscheduler = %q\naddress = \"10.0.0.1:%d\"\n", s, 80+i)
			}
			return b.String()
		}()},
		{"same address, both protocols", head + "[[service]]\naddress = \"10.0.0.1:53\"\n[[service]]\nprotocol = \"udp\"\naddress = \"10.0.0.1:53\"\n"},
		{"same real address in two services", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\n[[service]]\naddress = \"10.0.0.1:81\"\n[[service.real]]\naddress = \"10.0.0.2:81\"\n"},
		{"nat real on another port, same IP twice", head + "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"nat\"\n[[service.real]]\naddress = \"10.0.0.2:8080\"\n[[service.real]]\naddress = \"10.0.0.2:8081\"\n"},
		{"fullnat real on another port", head + "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"fullnat\"\n[[service.real]]\naddress = \"10.0.0.2:8080\"\n"},
		{"dr service, nat real with another port", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.real]]\naddress = \"10.0.0.2:8080\"\nforward = \"nat\"\n"},
		{"weight 0 and workers 256", "[director]\ninterface = \"eth0\"\nworkers = 256\n[[service]]\naddress = \"10.0.0.1:80\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\nweight = 0\n"},
		{"single port range, metrics on all addresses", head + "local_ports = \"5000-5000\"\nmetrics = \":9464\"\n"},
		{"interface of 15 bytes", "[director]\ninterface = \"abcdefghijklmno\"\n"},
		{"synproxy with nat and fullnat reals", head + "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"nat\"\nsynproxy = true\n" +
			"sorry = \"10.0.0.9:8080\"\n[[service.real]]\naddress = \"10.0.0.2:8080\"\n[[service.real]]\naddress = \"10.0.0.3:8080\"\nforward = \"fullnat\"\n"},
		{"synproxy off with a dr real", head + "[[service]]\naddress = \"10.0.0.1:80\"\nsynproxy = false\n[[service.real]]\naddress = \"10.0.0.2:80\"\n"},
		{"IPv6 dr and nat beside IPv4", head + "[[service]]\naddress = \"[fd00:20::100]:80\"\n[[service.real]]\naddress = \"[fd00:20::11]:80\"\n" +
			"[[service.real]]\naddress = \"[fd00:20::12]:8080\"\nforward = \"nat\"\n" +
			"[[service]]\nprotocol = \"udp\"\naddress = \"[2001:db8::53]:53\"\nforward = \"nat\"\npersistence = \"5m\"\npersistence_netmask = 64\n[[service.real]]\naddress = \"[2001:db8:1::53]:5353\"\n" +
			"[[service]]\naddress = \"10.0.0.1:80\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\n"},
		{"IPv6 tun service", head + "[[service]]\naddress = \"[fd00:20::100]:80\"\nforward = \"tun\"\n[[service.real]]\naddress = \"[fd00:20::11]:80\"\n" +
			"[[service.real]]\naddress = \"[2001:db8:1::11]:80\"\n[[service.real]]\naddress = \"[fd00:20::12]:8080\"\nforward = \"nat\"\n"},
		{"IPv6 health checks of every kind", head + "[[service]]\naddress = \"[fd00:20::100]:80\"\n[service.check]\ntype = \"http\"\npath = \"/healthz\"\n[[service.real]]\naddress = \"[fd00:20::11]:80\"\n" +
			"[[service]]\nprotocol = \"udp\"\naddress = \"[fd00:20::100]:53\"\nforward = \"nat\"\n[service.check]\ntype = \"udp\"\nsend = \"ping\"\n[[service.real]]\naddress = \"[fd00:20::11]:5353\"\n" +
			"[[service]]\naddress = \"[fd00:20::100]:81\"\n[service.check]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n[[service.real]]\naddress = \"[fd00:20::11]:81\"\n" +
			"[[service]]\naddress = \"[fd00:20::100]:82\"\n[service.check]\ntype = \"tcp\"\nport = 9000\n[[service.real]]\naddress = \"[fd00:20::11]:82\"\n"},
		{"IPv6 fullnat with local addresses of both families", head + "local_addresses = [\"10.20.0.2\", \"fd00:20::2\"]\n" +
			"[[service]]\naddress = \"[fd00:20::100]:80\"\nforward = \"fullnat\"\n[[service.real]]\naddress = \"[fd00:20::11]:8080\"\n" +
			"[[service]]\nprotocol = \"udp\"\naddress = \"10.20.0.100:53\"\nforward = \"fullnat\"\n[[service.real]]\naddress = \"10.20.0.11:5353\"\n"},
		{"IPv6 fullnat real without local addresses (the interface's)", head + "[[service]]\naddress = \"[fd00::1]:80\"\n[[service.real]]\naddress = \"[fd00::2]:80\"\n" +
			"[[service.real]]\naddress = \"[fd00::3]:8080\"\nforward = \"fullnat\"\n"},
		{"IPv6 proxy_protocol on nat and fullnat reals", head + "[[service]]\naddress = \"[fd00:20::100]:80\"\nforward = \"nat\"\nproxy_protocol = \"v2\"\n" +
			"[[service.real]]\naddress = \"[fd00:20::11]:8080\"\n[[service.real]]\naddress = \"[fd00:20::12]:8080\"\nforward = \"fullnat\"\nproxy_protocol = \"v1\"\n"},
		{"IPv6 synproxy on nat and fullnat reals, with proxy_protocol", head + "[[service]]\naddress = \"[fd00:20::100]:80\"\nforward = \"fullnat\"\nsynproxy = true\nproxy_protocol = \"v2\"\n" +
			"[[service.real]]\naddress = \"[fd00:20::11]:8080\"\n[[service.real]]\naddress = \"[fd00:20::12]:8080\"\nforward = \"nat\"\n"},
		{"IPv6 tun service whose reals are all nat", head + "[[service]]\naddress = \"[fd00:20::100]:80\"\nforward = \"nat\"\n[[service.real]]\naddress = \"[fd00:20::11]:8080\"\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.src)
			if err := Validate(c); err != nil {
				t.Errorf("Validate(Parse(...)):\n%v", err)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	svc := func(lines string) string { return head + "[[service]]\naddress = \"10.0.0.1:80\"\n" + lines }
	real := func(lines string) string { return svc("[[service.real]]\n" + lines) }
	for _, tt := range []struct {
		name string
		src  string
		want []FieldError // exactly these, in this order
	}{
		// director
		{"interface missing", "[director]\n", []FieldError{{"director.interface", "required"}}},
		{"no director", "", []FieldError{{"director.interface", "required"}}},
		{"interface wrong type", "[director]\ninterface = 1\n", []FieldError{{"director.interface", "want a string, got integer 1"}}},
		{"interface too long", "[director]\ninterface = \"abcdefghijklmnop\"\n", []FieldError{{"director.interface", `"abcdefghijklmnop" is longer than 15 bytes (IFNAMSIZ)`}}},
		{"interface with slash", "[director]\ninterface = \"eth0/1\"\n", []FieldError{{"director.interface", `"eth0/1" is not a valid interface name`}}},
		{"workers negative", head + "workers = -1\n", []FieldError{{"director.workers", "-1 is out of range 0..256"}}},
		{"workers too many", head + "workers = 257\n", []FieldError{{"director.workers", "257 is out of range 0..256"}}},
		{"workers float", head + "workers = 2.5\n", []FieldError{{"director.workers", "want an integer, got float 2.5"}}},
		{"local address IPv6 link-local", head + "local_addresses = [\"10.0.0.1\", \"fe80::1\"]\n", []FieldError{{"director.local_addresses[1]", "fe80::1 is link-local"}}},
		{"local address IPv6 multicast", head + "local_addresses = [\"ff02::2\"]\n", []FieldError{{"director.local_addresses[0]", "ff02::2 is not a unicast address"}}},
		{"local address IPv6 duplicate", head + "local_addresses = [\"fd00::1\", \"fd00:0::1\"]\n", []FieldError{{"director.local_addresses[1]", "fd00::1 is already local_addresses[0]"}}},
		{"IPv6 fullnat with IPv4 local addresses only", head + "local_addresses = [\"10.0.0.9\"]\n[[service]]\naddress = \"[fd00::1]:80\"\n[[service.real]]\naddress = \"[fd00::2]:80\"\n" +
			"[[service.real]]\naddress = \"[fd00::3]:8080\"\nforward = \"fullnat\"\n[[service]]\naddress = \"[fd00::1]:81\"\nforward = \"fullnat\"\n",
			[]FieldError{{"service[0].real[1].forward", "IPv6 fullnat needs an IPv6 address in director.local_addresses (it lists IPv4 ones only)"},
				{"service[1].forward", "IPv6 fullnat needs an IPv6 address in director.local_addresses (it lists IPv4 ones only)"}}},
		{"IPv4 fullnat with IPv6 local addresses only", head + "local_addresses = [\"fd00::9\"]\n[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"fullnat\"\n[[service.real]]\naddress = \"10.0.0.2:8080\"\n",
			[]FieldError{{"service[0].forward", "IPv4 fullnat needs an IPv4 address in director.local_addresses (it lists IPv6 ones only)"}}},
		{"local address junk", head + "local_addresses = [\"10.0.0.1\", \"ten\"]\n", []FieldError{{"director.local_addresses[1]", `"ten" is not an IP address`}}},
		{"local address multicast", head + "local_addresses = [\"224.0.0.1\"]\n", []FieldError{{"director.local_addresses[0]", "224.0.0.1 is not a unicast address"}}},
		{"local address duplicate", head + "local_addresses = [\"10.0.0.1\", \"10.0.0.2\", \"10.0.0.1\"]\n", []FieldError{{"director.local_addresses[2]", "10.0.0.1 is already local_addresses[0]"}}},
		{"local addresses not an array", head + "local_addresses = \"10.0.0.1\"\n", []FieldError{{"director.local_addresses", `want an array of IPv4 address strings, got string "10.0.0.1"`}}},
		{"local ports zero", head + "local_ports = \"0-100\"\n", []FieldError{{"director.local_ports", `"0-100" is not a port range (want "LO-HI" with 1 <= LO <= HI <= 65535)`}}},
		{"local ports reversed", head + "local_ports = \"2000-1000\"\n", []FieldError{{"director.local_ports", `"2000-1000" is not a port range (want "LO-HI" with 1 <= LO <= HI <= 65535)`}}},
		{"local ports too high", head + "local_ports = \"1000-65536\"\n", []FieldError{{"director.local_ports", `"1000-65536" is not a port range (want "LO-HI" with 1 <= LO <= HI <= 65535)`}}},
		{"local ports one number", head + "local_ports = \"1000\"\n", []FieldError{{"director.local_ports", `"1000" is not a port range (want "LO-HI" with 1 <= LO <= HI <= 65535)`}}},
		{"metrics not host:port", head + "metrics = \"9464\"\n", []FieldError{{"director.metrics", `"9464" is not host:port (e.g. "127.0.0.1:9464")`}}},
		{"director not a table", "director = \"eth0\"\n", []FieldError{{"director", `want a table, got string "eth0"`}}},

		// timeouts and limits
		{"timeout zero", head + "[timeouts]\ntcp = \"0s\"\n", []FieldError{{"timeouts.tcp", "0s is not positive"}}},
		{"timeout negative", head + "[timeouts]\ntcp_fin = \"-2m\"\n", []FieldError{{"timeouts.tcp_fin", "-2m0s is not positive"}}},
		{"check type", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[service.check]\ntype = \"icmp\"\n", []FieldError{{"service[0].check.type", `"icmp" is not a check type (want one of none tcp http https udp exec)`}}},
		{"check timeout over interval", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[service.check]\ntype = \"tcp\"\ninterval = \"1s\"\ntimeout = \"2s\"\nfall = 0\n", []FieldError{
			{"service[0].check.fall", "0 is out of range 1..100"}, {"service[0].check.timeout", "2s is longer than the interval 1s"}}},
		{"check exec and regexp", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[service.check]\ntype = \"exec\"\nexpect = \"(\"\non_failure = \"drop\"\n", []FieldError{
			{"service[0].check.command", "exec needs a command"}, {"service[0].check.expect", "not a regular expression: error parsing regexp: missing closing ): `(`"},
			{"service[0].check.on_failure", `"drop" is not remove or quiesce`}}},
		{"sorry is a real", head + "[[service]]\naddress = \"10.0.0.1:80\"\nsorry = \"10.0.0.2:80\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\n", []FieldError{{"service[0].sorry", "10.0.0.2:80 is also a real of the service"}}},
		{"vrrp ranges", head + "[vrrp]\nrouter_id = 300\n", []FieldError{{"vrrp.router_id", "300 is out of range 0..255 (0 = off)"}}},
		{"sync values", head + "[sync]\npeer = \"224.0.0.81\"\nport = 0\nsync_id = 256\nrefresh = \"100ms\"\nttl = 0\n", []FieldError{
			{"sync.peer", "224.0.0.81 is not a unicast address"}, {"sync.port", "0 is out of range 1..65535"},
			{"sync.refresh", "100ms is under 1s: every connection would be resent more often than the protocol's one-second timeouts can express"},
			{"sync.sync_id", "256 is out of range 0..255"}, {"sync.ttl", "0 is out of range 1..255"}}},
		{"sync group", head + "[sync]\ngroup = \"fd00::81\"\nttl = 256\n", []FieldError{
			{"sync.group", "fd00::81 is not a multicast address (224.0.0.0/4 or ff00::/8)"}, {"sync.ttl", "256 is out of range 1..255"}}},
		{"sync group and peer", head + "[sync]\ngroup = \"ff02::8:81\"\npeer = \"fe80::2\"\n", []FieldError{
			{"sync.group", "ff02::8:81 beside sync.peer fe80::2: messages go to the peer alone; give one or the other"},
			{"sync.peer", "fe80::2 is link-local"}}},
		{"garp values", head + "[vrrp]\nrouter_id = 5\ngarp_repeat = 0\ngarp_delay = \"-1s\"\ngarp_refresh = \"10ms\"\n", []FieldError{
			{"vrrp.garp_delay", "-1s is negative"}, {"vrrp.garp_refresh", "10ms is under 100ms"}, {"vrrp.garp_repeat", "0 is out of range 1..100"}}},
		{"vrrp values", head + "[vrrp]\nrouter_id = 5\nversion = 3\npriority = 255\nadvert_interval = \"5ms\"\n", []FieldError{{"vrrp.advert_interval", "5ms is not a whole number of centiseconds in 10ms..40.95s"}, {"vrrp.priority", "255 is out of range 1..254"}}},
		{"vrrp version", head + "[vrrp]\nrouter_id = 5\nversion = 4\n", []FieldError{{"vrrp.version", "4 is not a VRRP version (want 2 or 3)"}}},
		{"vrrp version as string", head + "[vrrp]\nrouter_id = 5\nversion = \"3\"\n", []FieldError{{"vrrp.version", `want an integer, got string "3"`}}},
		{"vrrp v2 interval under a second", head + "[vrrp]\nrouter_id = 5\nadvert_interval = \"100ms\"\n", []FieldError{
			{"vrrp.advert_interval", "100ms is not a whole number of seconds in 1s..255s, as VRRPv2 carries it (version = 3 allows 10ms..40.95s)"}}},
		{"vrrp v2 interval fraction", head + "[vrrp]\nrouter_id = 5\nversion = 2\nadvert_interval = \"1.5s\"\n", []FieldError{
			{"vrrp.advert_interval", "1.5s is not a whole number of seconds in 1s..255s, as VRRPv2 carries it (version = 3 allows 10ms..40.95s)"}}},
		{"vrrp v2 interval too long", head + "[vrrp]\nrouter_id = 5\nadvert_interval = \"256s\"\n", []FieldError{
			{"vrrp.advert_interval", "4m16s is not a whole number of seconds in 1s..255s, as VRRPv2 carries it (version = 3 allows 10ms..40.95s)"}}},
		{"vrrp auth ah", head + "[vrrp]\nrouter_id = 5\nauth_type = \"ah\"\nauth_pass = \"secret\"\n", []FieldError{
			{"vrrp.auth_type", `auth_type ah is not supported (keepalived's IPsec AH); use "pass" or "none" on every router of the virtual router`}}},
		{"vrrp auth upper case", head + "[vrrp]\nrouter_id = 5\nauth_type = \"PASS\"\n", []FieldError{{"vrrp.auth_type", `"PASS" is not an authentication type (want none or pass)`}}},
		{"vrrp auth with v3", head + "[vrrp]\nrouter_id = 5\nversion = 3\nauth_type = \"pass\"\nauth_pass = \"secret\"\n", []FieldError{
			{"vrrp.auth_type", `"pass" needs version = 2: VRRPv3 (RFC 5798) has no authentication`}}},
		{"vrrp auth without password", head + "[vrrp]\nrouter_id = 5\nauth_type = \"pass\"\n", []FieldError{{"vrrp.auth_pass", `required with auth_type = "pass"`}}},
		{"vrrp auth password too long", head + "[vrrp]\nrouter_id = 5\nauth_type = \"pass\"\nauth_pass = \"123456789\"\n", []FieldError{
			{"vrrp.auth_pass", "9 bytes long; VRRPv2 carries at most 8 (keepalived cuts a longer auth_pass to its first 8)"}}},
		{"vrrp password without auth", head + "[vrrp]\nrouter_id = 5\nauth_pass = \"secret\"\n", []FieldError{
			{"vrrp.auth_pass", `set, but auth_type is "none"; add auth_type = "pass" to use it`}}},
		{"vrrp v3 values all at once", head + "[vrrp]\nrouter_id = 5\nversion = 3\nadvert_interval = \"1ms\"\nauth_type = \"pass\"\n", []FieldError{
			{"vrrp.advert_interval", "1ms is not a whole number of centiseconds in 10ms..40.95s"},
			{"vrrp.auth_pass", `required with auth_type = "pass"`},
			{"vrrp.auth_type", `"pass" needs version = 2: VRRPv3 (RFC 5798) has no authentication`}}},
		{"drain negative", head + "[timeouts]\ndrain = \"-1s\"\n", []FieldError{{"timeouts.drain", "-1s is negative"}}},
		{"timeout bad syntax", head + "[timeouts]\nudp = \"5 minutes\"\n", []FieldError{{"timeouts.udp", `"5 minutes" is not a duration (want Go syntax like "15m" or "90s")`}}},
		{"timeout as integer", head + "[timeouts]\nudp = 300\n", []FieldError{{"timeouts.udp", `want a duration string like "15m", got integer 300`}}},
		{"connections zero", head + "[limits]\nconnections = 0\n", []FieldError{{"limits.connections", "0 is out of range 1..100000000"}}},
		{"connections too many", head + "[limits]\nconnections = 100000001\n", []FieldError{{"limits.connections", "100000001 is out of range 1..100000000"}}},

		// service
		{"service address missing", head + "[[service]]\nname = \"x\"\n", []FieldError{{"service[0].address", "required"}}},
		{"service address without port", head + "[[service]]\naddress = \"10.0.0.1\"\n", []FieldError{{"service[0].address", `"10.0.0.1" is not IP:port`}}},
		{"service address link-local", head + "[[service]]\naddress = \"[fe80::1]:80\"\n", []FieldError{{"service[0].address", "fe80::1 is link-local"}}},
		{"service address IPv6 with a zone", head + "[[service]]\naddress = \"[fe80::1%eth0]:80\"\n", []FieldError{{"service[0].address", "fe80::1%eth0 has a zone: a service or real address is global"}}},
		{"service address IPv4-mapped", head + "[[service]]\naddress = \"[::ffff:10.0.0.1]:80\"\n", []FieldError{{"service[0].address", "::ffff:10.0.0.1 is IPv4-mapped: write the IPv4 address 10.0.0.1"}}},
		{"service address IPv6 multicast", head + "[[service]]\naddress = \"[ff02::1]:80\"\n", []FieldError{{"service[0].address", "ff02::1 is not a unicast address"}}},
		{"service address IPv6 loopback", head + "[[service]]\naddress = \"[::1]:80\"\n", []FieldError{{"service[0].address", "::1 is not a unicast address"}}},
		{"service address IPv6 without brackets", head + "[[service]]\naddress = \"fd00::1:80\"\n", []FieldError{{"service[0].address", `"fd00::1:80" is not IP:port`}}},
		{"IPv6 persistence netmask 129", head + "[[service]]\naddress = \"[fd00::1]:80\"\npersistence_netmask = 129\n", []FieldError{{"service[0].persistence_netmask", "129 is out of range 1..128"}}},
		{"IPv6 service with VRRPv2", head + "[[service]]\naddress = \"[fd00::1]:80\"\n[vrrp]\nrouter_id = 5\n", []FieldError{{"vrrp.version", "version 2 cannot move the IPv6 VIP fd00::1 (service[0].address; vrrp.addresses is empty: every service VIP): VRRPv2 (RFC 3768) is IPv4 only; set version = 3 (RFC 5798, keepalived's vrrp_version 3) on every router of the virtual router"}}},
		{"IPv6 vrrp address with VRRPv2", head + "[vrrp]\nrouter_id = 5\naddresses = [\"10.0.0.1\", \"fd00::1\"]\n", []FieldError{{"vrrp.version", "version 2 cannot move the IPv6 address fd00::1 (vrrp.addresses[1]): VRRPv2 (RFC 3768) is IPv4 only; set version = 3 (RFC 5798, keepalived's vrrp_version 3) on every router of the virtual router"}}},
		{"IPv6 vrrp without an IPv6 peer", head + "[vrrp]\nrouter_id = 5\nversion = 3\nunicast_peers = [\"10.0.0.2\"]\naddresses = [\"10.0.0.1\", \"fd00::1\"]\n", []FieldError{{"vrrp.unicast_peers", "no IPv6 peer for the IPv6 address fd00::1 (vrrp.addresses[1]): IPv6 adverts go to IPv6 peers"}}},
		{"IPv6 vrrp without an IPv4 peer", head + "[vrrp]\nrouter_id = 5\nversion = 3\nunicast_peers = [\"fd00::2\"]\naddresses = [\"10.0.0.1\", \"fd00::1\"]\n", []FieldError{{"vrrp.unicast_peers", "no IPv4 peer for the IPv4 addresses: IPv4 adverts go to IPv4 peers"}}},
		{"vrrp bad addresses", head + "[vrrp]\nrouter_id = 5\nversion = 3\nunicast_peers = [\"ff02::12\"]\naddresses = [\"::\", \"::ffff:10.0.0.1\"]\n", []FieldError{
			{"vrrp.addresses[0]", ":: is not a usable IPv4 or IPv6 unicast address"}, {"vrrp.addresses[1]", "::ffff:10.0.0.1 is not a usable IPv4 or IPv6 unicast address"},
			{"vrrp.unicast_peers[0]", "ff02::12 is not a usable IPv4 or IPv6 unicast address"}}},
		{"IPv6 synproxy with a dr real", head + "[[service]]\naddress = \"[fd00::1]:80\"\nforward = \"fullnat\"\nsynproxy = true\n[[service.real]]\naddress = \"[fd00::2]:80\"\nforward = \"dr\"\n",
			[]FieldError{{"service[0].real[0].forward", "dr with synproxy: synproxy needs nat or fullnat (the real's replies must come back through the director)"}}},
		{"IPv6 proxy_protocol with a dr real", head + "[[service]]\naddress = \"[fd00::1]:80\"\nforward = \"nat\"\nproxy_protocol = \"v2\"\n  [[service.real]]\n  address = \"[fd00::2]:80\"\n  forward = \"dr\"\n",
			[]FieldError{{"service[0].real[0].forward", `dr with proxy_protocol "v2": the PROXY protocol needs nat or fullnat (the director writes the header into the stream to the real, so it must see the real's replies)`}}},
		{"IPv6 service, IPv4 real", head + "[[service]]\naddress = \"[fd00::1]:80\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\n", []FieldError{{"service[0].real[0].address", "10.0.0.2:80 is IPv4, the service IPv6: a service and its reals are of one family"}}},
		{"IPv6 service, IPv4 sorry", head + "[[service]]\naddress = \"[fd00::1]:80\"\nsorry = \"10.0.0.9:80\"\n", []FieldError{{"service[0].sorry", "10.0.0.9:80 is IPv4, the service IPv6: a service and its reals are of one family"}}},
		{"service address port 0", head + "[[service]]\naddress = \"10.0.0.1:0\"\n", []FieldError{{"service[0].address", "port must not be 0"}}},
		{"service address unspecified", head + "[[service]]\naddress = \"0.0.0.0:80\"\n", []FieldError{{"service[0].address", "0.0.0.0 is not a unicast address"}}},
		{"protocol", svc("protocol = \"sctp\"\n"), []FieldError{{"service[0].protocol", `"sctp" is not a protocol (want tcp or udp)`}}},
		{"protocol upper case", svc("protocol = \"TCP\"\n"), []FieldError{{"service[0].protocol", `"TCP" is not a protocol (want tcp or udp)`}}},
		{"scheduler", svc("scheduler = \"random\"\n"), []FieldError{{"service[0].scheduler", `"random" is not a scheduler (want one of rr wrr lc wlc sed nq sh dh lblc lblcr mh fo ovf)`}}},
		{"forward", svc("forward = \"route\"\n"), []FieldError{{"service[0].forward", `"route" is not a forwarding method (want dr, tun, nat or fullnat)`}}},
		{"persistence negative", svc("persistence = \"-1s\"\n"), []FieldError{{"service[0].persistence", "-1s must not be negative"}}},
		{"persistence netmask 0", svc("persistence_netmask = 0\n"), []FieldError{{"service[0].persistence_netmask", "0 is out of range 1..32"}}},
		{"persistence netmask 33", svc("persistence_netmask = 33\n"), []FieldError{{"service[0].persistence_netmask", "33 is out of range 1..32"}}},
		{"scheduler flag unknown", svc("scheduler = \"sh\"\nscheduler_flags = [\"sh-port\", \"sticky\"]\n"), []FieldError{{"service[0].scheduler_flags[1]", `"sticky" is not a scheduler flag (want sh-fallback, sh-port, mh-fallback or mh-port)`}}},
		{"scheduler flag of another scheduler", svc("scheduler = \"mh\"\nscheduler_flags = [\"sh-port\"]\n"), []FieldError{{"service[0].scheduler_flags[0]", "sh-port applies to scheduler sh only, not mh"}}},
		{"scheduler flag twice", svc("scheduler = \"mh\"\nscheduler_flags = [\"mh-port\", \"mh-port\"]\n"), []FieldError{{"service[0].scheduler_flags[1]", "mh-port is given twice"}}},
		{"scheduler flags not an array", svc("scheduler_flags = \"sh-port\"\n"), []FieldError{{"service[0].scheduler_flags", `want an array of strings, got string "sh-port"`}}},
		{"scheduler flag not a string", svc("scheduler = \"sh\"\nscheduler_flags = [1]\n"), []FieldError{{"service[0].scheduler_flags[0]", "want a string, got integer 1"}}},
		{"ops with tcp", svc("ops = true\n"), []FieldError{{"service[0].ops", "only valid with protocol udp"}}},
		{"ops not a bool", svc("protocol = \"udp\"\nops = \"yes\"\n"), []FieldError{{"service[0].ops", `want true or false, got string "yes"`}}},
		{"synproxy with udp", svc("protocol = \"udp\"\nforward = \"nat\"\nsynproxy = true\n"), []FieldError{{"service[0].synproxy", "only valid with protocol tcp"}}},
		{"synproxy not a bool", svc("synproxy = 1\n"), []FieldError{{"service[0].synproxy", "want true or false, got integer 1"}}},
		{"synproxy with dr and tun reals", svc("synproxy = true\nforward = \"nat\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\nforward = \"dr\"\n" +
			"[[service.real]]\naddress = \"10.0.0.3:8080\"\n[[service.real]]\naddress = \"10.0.0.4:80\"\nforward = \"tun\"\n"), []FieldError{
			{"service[0].real[0].forward", "dr with synproxy: synproxy needs nat or fullnat (the real's replies must come back through the director)"},
			{"service[0].real[2].forward", "tun with synproxy: synproxy needs nat or fullnat (the real's replies must come back through the director)"}}},
		{"synproxy with the default dr", svc("synproxy = true\n[[service.real]]\naddress = \"10.0.0.2:80\"\n"), []FieldError{
			{"service[0].real[0].forward", "dr with synproxy: synproxy needs nat or fullnat (the real's replies must come back through the director)"}}},
		{"synproxy with a dr sorry real", svc("synproxy = true\nsorry = \"10.0.0.9:80\"\n"), []FieldError{
			{"service[0].forward", "dr for the sorry real: synproxy needs nat or fullnat (the real's replies must come back through the director)"}}},
		{"synproxy with udp and a tun real: both", svc("protocol = \"udp\"\nsynproxy = true\nforward = \"tun\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\n"), []FieldError{
			{"service[0].real[0].forward", "tun with synproxy: synproxy needs nat or fullnat (the real's replies must come back through the director)"},
			{"service[0].synproxy", "only valid with protocol tcp"}}},
		{"bad protocol hides synproxy", svc("protocol = \"sctp\"\nforward = \"nat\"\nsynproxy = true\n"), []FieldError{{"service[0].protocol", `"sctp" is not a protocol (want tcp or udp)`}}},
		{"duplicate service", svc("[[service]]\naddress = \"10.0.0.1:80\"\n"), []FieldError{{"service[1].address", "tcp 10.0.0.1:80 is already service[0]"}}},
		{"duplicate name", svc("name = \"web\"\n[[service]]\nname = \"web\"\naddress = \"10.0.0.1:81\"\n"), []FieldError{{"service[1].name", `"web" is already the name of service[0]`}}},
		{"explicit name collides with a default one", svc("[[service]]\nname = \"tcp/10.0.0.1:80\"\nprotocol = \"udp\"\naddress = \"10.0.0.1:80\"\n"), []FieldError{{"service[1].name", `"tcp/10.0.0.1:80" is already the name of service[0]`}}},
		{"empty name", svc("name = \"\"\n"), []FieldError{{"service[0].name", "must not be empty"}}},
		{"service as a table", head + "[service]\naddress = \"10.0.0.1:80\"\n", []FieldError{{"service", "want an array of tables ([[service]]), got table"}}},
		{"service element not a table", "service = [1]\n" + head, []FieldError{{"service[0]", "want a table, got integer 1"}}},

		// real
		{"threshold negative", real("address = \"10.0.0.2:80\"\nupper_threshold = -1\n"), []FieldError{{"service[0].real[0].upper_threshold", "-1 is out of range 0..2147483647"}}},
		{"lower above upper", real("address = \"10.0.0.2:80\"\nupper_threshold = 10\nlower_threshold = 11\n"), []FieldError{{"service[0].real[0].lower_threshold", "11 is above upper_threshold 10"}}},
		{"lower without upper", real("address = \"10.0.0.2:80\"\nlower_threshold = 5\n"), []FieldError{{"service[0].real[0].lower_threshold", "5 is above upper_threshold 0"}}},
		{"real address missing", real("weight = 2\n"), []FieldError{{"service[0].real[0].address", "required"}}},
		{"real address not IP:port", real("address = \"10.0.0.1\"\n"), []FieldError{{"service[0].real[0].address", `"10.0.0.1" is not IP:port`}}},
		{"real address IPv6 in an IPv4 service", real("address = \"[fd00::2]:80\"\n"), []FieldError{{"service[0].real[0].address", "[fd00::2]:80 is IPv6, the service IPv4: a service and its reals are of one family"}}},
		{"real address broadcast", real("address = \"255.255.255.255:80\"\n"), []FieldError{{"service[0].real[0].address", "255.255.255.255 is not a unicast address"}}},
		{"weight negative", real("address = \"10.0.0.2:80\"\nweight = -1\n"), []FieldError{{"service[0].real[0].weight", "-1 is out of range 0..65535"}}},
		{"weight too big", real("address = \"10.0.0.2:80\"\nweight = 65536\n"), []FieldError{{"service[0].real[0].weight", "65536 is out of range 0..65535"}}},
		{"real forward", real("address = \"10.0.0.2:80\"\nforward = \"masq\"\n"), []FieldError{{"service[0].real[0].forward", `"masq" is not a forwarding method (want dr, tun, nat or fullnat)`}}},
		{"dr real on another port", real("address = \"10.0.0.2:8080\"\n"), []FieldError{{"service[0].real[0].address", "port 8080 differs from the service port 80: dr cannot change the port (use nat or fullnat)"}}},
		{"tun real on another port", real("address = \"10.0.0.2:8080\"\nforward = \"tun\"\n"), []FieldError{{"service[0].real[0].address", "port 8080 differs from the service port 80: tun cannot change the port (use nat or fullnat)"}}},
		{"duplicate real", real("address = \"10.0.0.2:80\"\n[[service.real]]\naddress = \"10.0.0.3:80\"\n[[service.real]]\naddress = \"10.0.0.2:0\"\n"), []FieldError{{"service[0].real[2].address", "10.0.0.2:80 is already real[0]"}}},
		{"real as a table", svc("[service.real]\naddress = \"10.0.0.2:80\"\n"), []FieldError{{"service[0].real", "want an array of tables ([[service.real]]), got table"}}},

		// One bad value is one problem: nothing derived from it is reported again.
		{"bad service address hides real port checks", head + "[[service]]\naddress = \"nope\"\n[[service.real]]\naddress = \"10.0.0.2:0\"\n[[service.real]]\naddress = \"10.0.0.3:8080\"\n", []FieldError{{"service[0].address", `"nope" is not IP:port`}}},
		{"bad service forward is not inherited as a second problem", head + "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"x\"\n[[service.real]]\naddress = \"10.0.0.2:8080\"\n", []FieldError{{"service[0].forward", `"x" is not a forwarding method (want dr, tun, nat or fullnat)`}}},
		{"bad protocol hides ops and names", head + "[[service]]\nprotocol = 6\naddress = \"10.0.0.1:80\"\nops = true\n[[service]]\nprotocol = 17\naddress = \"10.0.0.1:80\"\n", []FieldError{{"service[0].protocol", `want "tcp" or "udp", got integer 6`}, {"service[1].protocol", `want "tcp" or "udp", got integer 17`}}},
		{"two bad addresses are not duplicates", head + "[[service]]\naddress = \"a\"\n[[service]]\naddress = \"a\"\n", []FieldError{{"service[0].address", `"a" is not IP:port`}, {"service[1].address", `"a" is not IP:port`}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, tt.src)
			if !slices.Equal(got, Errors(tt.want)) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseUnknownKeys(t *testing.T) {
	for _, tt := range []struct{ name, src, path string }{
		{"top level", "bogus = 1\n" + head, "bogus"},
		{"director", head + "interfaces = \"eth1\"\n", "director.interfaces"},
		{"timeouts", head + "[timeouts]\ntcpfin = \"1m\"\n", "timeouts.tcpfin"},
		{"limits", head + "[limits]\nconns = 5\n", "limits.conns"},
		{"service", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[[service]]\naddress = \"10.0.0.1:81\"\nsheduler = \"rr\"\n", "service[1].sheduler"},
		{"real", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.real]]\naddress = \"10.0.0.2:80\"\n[[service.real]]\naddress = \"10.0.0.3:80\"\nwieght = 2\n", "service[0].real[1].wieght"},
		{"sub-table of a service", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[service.checks]\ntype = \"tcp\"\n", "service[0].checks"},
		{"key of a check", head + "[[service]]\naddress = \"10.0.0.1:80\"\n[service.check]\ntype = \"tcp\"\nintervall = \"1s\"\n", "service[0].check.intervall"},
		{"top-level table", head + "[synch]\npeer = \"10.0.0.2\"\n", "synch"},
		{"key of sync", head + "[sync]\nsyncid = 5\n", "sync.syncid"},
		{"key of vrrp", head + "[vrrp]\nrouter_id = 5\nvrid = 5\n", "vrrp.vrid"},
		{"quoted key", head + "\"odd key\" = 1\n", `director."odd key"`},
		{"dotted key", head + "a.b = 1\n", "director.a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, tt.src)
			want := Errors{{tt.path, "unknown key"}}
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestParseAllAtOnce checks that problems in every part of a file are reported together,
// sorted by path with indices in numeric order.
func TestParseAllAtOnce(t *testing.T) {
	var b strings.Builder
	b.WriteString(`
[director]
workers = 1000
local_ports = "x"
[timeouts]
tcp = "soon"
[limits]
connections = -5
`)
	for i := range 11 { // 11 services, so service[10] must sort after service[9]
		b.WriteString("[[service]]\naddress = \"10.0.0.1:" + string(rune('a'+i)) + "\"\n")
	}
	b.WriteString("[[service.real]]\naddress = \"10.0.0.2:80\"\nweight = 1e3\nforward = \"dr\"\ncolour = \"red\"\n")
	got := parseErrs(t, b.String())

	want := Errors{
		{"director.interface", "required"},
		{"director.local_ports", `"x" is not a port range (want "LO-HI" with 1 <= LO <= HI <= 65535)`},
		{"director.workers", "1000 is out of range 0..256"},
		{"limits.connections", "-5 is out of range 1..100000000"},
	}
	for i := range 11 {
		want = append(want, FieldError{index("service", i) + ".address", `"10.0.0.1:` + string(rune('a'+i)) + `" is not IP:port`})
	}
	want = append(want,
		FieldError{"service[10].real[0].colour", "unknown key"},
		FieldError{"service[10].real[0].weight", "want an integer, got float 1000"},
		FieldError{"timeouts.tcp", `"soon" is not a duration (want Go syntax like "15m" or "90s")`},
	)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got %s\nwant %s", got, want)
	}
	// Error() has one problem per line.
	if lines := strings.Split(got.Error(), "\n"); len(lines) != len(want) || lines[0] != "director.interface: required" {
		t.Errorf("Error() = %q", got.Error())
	}
}

func TestParseSyntaxError(t *testing.T) {
	for _, tt := range []struct{ name, src, wantPrefix string }{
		{"missing value", head + "workers = \n", "line 3, column "},
		{"bare word value", "\n\n[director]\ninterface = eth0\n", "line 4, column 13: "},
		{"duplicate key", head + "interface = \"eth1\"\n", "line 3, column "},
		{"unterminated string", "[director]\ninterface = \"eth0\n", "line 2, column "},
		{"NUL bytes", "\x00\x00[director]", "line 1, column 1: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, tt.src)
			if len(got) != 1 || got[0].Path != "" || !strings.HasPrefix(got[0].Msg, tt.wantPrefix) {
				t.Fatalf("problems = %q, want one without a path, starting %q", got, tt.wantPrefix)
			}
			if got.Error() != got[0].Msg {
				t.Errorf("Error() = %q, want the message alone", got.Error())
			}
		})
	}
	// Syntax stops decoding: the schema problems of the same file are not reported.
	got := parseErrs(t, "[director]\nworkers = -1\nbad = = 1\n")
	if len(got) != 1 || !strings.HasPrefix(got[0].Msg, "line 3, column ") {
		t.Errorf("problems = %q, want only the syntax error", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte(head+"[[service]]\naddress = \"10.0.0.1:80\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(c.Services) != 1 || c.Services[0].Name != "tcp/10.0.0.1:80" {
		t.Errorf("Load = %+v", c)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[director]\nworkers = -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil {
		t.Fatal("Load(bad) succeeded")
	}
	want := bad + ": director.interface: required\n" + bad + ": director.workers: -1 is out of range 0..256"
	if err.Error() != want {
		t.Errorf("Load(bad) error:\n got %q\nwant %q", err, want)
	}
	var errs *Errors
	if !errors.As(err, &errs) || len(*errs) != 2 || (*errs)[1].Path != "director.workers" {
		t.Errorf("errors.As(*Errors) on %v: %v", err, errs)
	}

	missing := filepath.Join(dir, "missing.toml")
	if _, err := Load(missing); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want a not-exist error naming the file", err)
	}
}

// TestSyncOff: [sync] turns sync on by being there; enabled = false turns
// it off, and the rest of the table is then not checked.
func TestSyncOff(t *testing.T) {
	on, err := Parse([]byte(head + "[sync]\n"))
	if err != nil || !on.Sync.Enabled || on.Sync.Port != 8848 {
		t.Fatalf("[sync]: %+v, %v", on.Sync, err)
	}
	off, err := Parse([]byte(head + "[sync]\nenabled = false\nport = 0\n"))
	if err != nil || off.Sync.Enabled {
		t.Fatalf("enabled = false: %+v, %v", off.Sync, err)
	}
}

// TestParseIPv6 reads an IPv6 service the way DESIGN.md writes it and
// checks the family-dependent defaults: a real without a port takes the
// service's, and persistence_netmask defaults to 128 for IPv6 (ipvsadm's
// default) and stays 32 for IPv4.
func TestParseIPv6(t *testing.T) {
	c := mustParse(t, head+`[[service]]
address = "[fd00:20::100]:80"
persistence = "1m"
[[service.real]]
address = "[fd00:20::11]:0"
[[service]]
address = "[fd00:20::100]:443"
persistence_netmask = 64
[[service]]
address = "10.0.0.1:80"
`)
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
	s := c.Services
	if s[0].Address != netip.MustParseAddrPort("[fd00:20::100]:80") || s[0].Name != "tcp/[fd00:20::100]:80" {
		t.Errorf("service address %v name %q", s[0].Address, s[0].Name)
	}
	if r := s[0].Reals[0].Address; r != netip.MustParseAddrPort("[fd00:20::11]:80") {
		t.Errorf("real address %v, want the service's port", r)
	}
	if s[0].PersistenceNetmask != 128 || s[1].PersistenceNetmask != 64 || s[2].PersistenceNetmask != 32 {
		t.Errorf("netmasks %d %d %d, want 128 64 32", s[0].PersistenceNetmask, s[1].PersistenceNetmask, s[2].PersistenceNetmask)
	}
}

// TestParseSyncIPv6: sync over IPv6, to a group (with a TTL) or to a peer.
func TestParseSyncIPv6(t *testing.T) {
	c := mustParse(t, head+"[sync]\ngroup = \"ff02::8:81\"\nttl = 2\n")
	if want := (Sync{Enabled: true, Group: netip.MustParseAddr("ff02::8:81"), TTL: 2, Port: 8848, Refresh: 30 * time.Second}); c.Sync != want {
		t.Errorf("Sync = %+v, want %+v", c.Sync, want)
	}
	c = mustParse(t, head+"[sync]\npeer = \"fd00:20::3\"\n")
	if c.Sync.Peer != netip.MustParseAddr("fd00:20::3") || c.Sync.Group.IsValid() || c.Sync.TTL != 1 {
		t.Errorf("Sync = %+v, want the IPv6 peer", c.Sync)
	}
}
