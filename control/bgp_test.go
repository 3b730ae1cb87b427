package control

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/schedule"
)

var (
	vip100 = netip.MustParseAddr("10.20.0.100")
	vip101 = netip.MustParseAddr("10.20.0.101")
	lip2   = netip.MustParseAddr("10.30.0.2")
	lip3   = netip.MustParseAddr("10.30.0.3")
)

// TestBGPPrefixes: a VIP is announced while gvsd runs and it is ready,
// as a /32; nothing while gvsd does not run.
func TestBGPPrefixes(t *testing.T) {
	p100, p101 := netip.MustParsePrefix("10.20.0.100/32"), netip.MustParsePrefix("10.20.0.101/32")
	for _, tc := range []struct {
		name string
		in   bgpInputs
		want []netip.Prefix
	}{
		{"running, both ready", bgpInputs{Running: true, VIPs: map[netip.Addr]bool{vip101: true, vip100: true}}, []netip.Prefix{p100, p101}},
		{"running, one ready", bgpInputs{Running: true, VIPs: map[netip.Addr]bool{vip100: false, vip101: true}}, []netip.Prefix{p101}},
		{"running, none ready", bgpInputs{Running: true, VIPs: map[netip.Addr]bool{vip100: false}}, nil},
		{"no services", bgpInputs{Running: true}, nil},
		{"not running (stopping, workers stopped, interface down)", bgpInputs{VIPs: map[netip.Addr]bool{vip100: true, vip101: true}}, nil},
		{"learning the other directors' connections (sync)", bgpInputs{Running: true, Learning: true, VIPs: map[netip.Addr]bool{vip100: true}}, nil},
		{"local addresses, own and the others'", bgpInputs{Running: true, VIPs: map[netip.Addr]bool{vip100: false}, Locals: []netip.Addr{lip2}, Standby: []netip.Addr{lip3}},
			[]netip.Prefix{netip.PrefixFrom(lip2, 32), netip.PrefixFrom(lip3, 32)}},
		{"local addresses while learning", bgpInputs{Running: true, Learning: true, Locals: []netip.Addr{lip2}, Standby: []netip.Addr{lip3}}, nil},
		{"local addresses while stopping", bgpInputs{Locals: []netip.Addr{lip2}, Standby: []netip.Addr{lip3}}, nil},
		{"IPv6 as a /128 beside IPv4", bgpInputs{Running: true, NextHop6: true, VIPs: map[netip.Addr]bool{netip.MustParseAddr("2001:db8::1"): true, vip100: true}},
			[]netip.Prefix{p100, netip.MustParsePrefix("2001:db8::1/128")}},
		{"IPv6 without an IPv6 next hop", bgpInputs{Running: true, VIPs: map[netip.Addr]bool{netip.MustParseAddr("2001:db8::1"): true, vip100: true}}, []netip.Prefix{p100}},
		{"IPv6 not ready", bgpInputs{Running: true, NextHop6: true, VIPs: map[netip.Addr]bool{netip.MustParseAddr("2001:db8::1"): false}}, nil},
	} {
		if got := bgpPrefixes(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestBGPLearnFor: with [bgp] and [sync] (refreshing), a director waits
// one refresh and a margin before it announces; otherwise not at all.
func TestBGPLearnFor(t *testing.T) {
	cfg := func(bgp, sync bool, refresh time.Duration) *config.Config {
		c := config.Default()
		c.BGP.Enabled, c.Sync.Enabled, c.Sync.Refresh = bgp, sync, refresh
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  *config.Config
		want time.Duration
	}{
		{"bgp and sync", cfg(true, true, 2*time.Second), 2*time.Second + bgpLearnMargin},
		{"bgp and sync without refresh", cfg(true, true, 0), 0},
		{"bgp alone", cfg(true, false, 2*time.Second), 0},
		{"sync alone", cfg(false, true, 2*time.Second), 0},
	} {
		if got := bgpLearnFor(tc.cfg); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestVIPReadiness: a VIP is ready while one service on it has a real
// with a weight, a known next hop and a passing check. A sorry real, a
// real of weight 0, a failed real (even the one the compiler keeps in the
// scheduler when all failed) or a missing service do not make it ready.
func TestVIPReadiness(t *testing.T) {
	svc := func(vip netip.Addr, port uint16, reals ...netip.AddrPort) config.Service {
		s := config.Service{Protocol: config.TCP, Address: netip.AddrPortFrom(vip, port), Scheduler: "mh", Forward: config.DR}
		for _, r := range reals {
			s.Reals = append(s.Reals, config.Real{Address: r, Weight: 1, Forward: config.DR})
		}
		return s
	}
	rs1, rs2, sorry := netip.MustParseAddrPort("10.20.0.11:80"), netip.MustParseAddrPort("10.20.0.12:80"), netip.MustParseAddrPort("10.20.0.99:80")
	// st is a real's state: next hop known (Ready in the table) and its
	// health check (down = checked and failing).
	type st struct{ ready, down bool }
	table := func(cfg *config.Config, states map[netip.AddrPort]st) *dataplane.Table {
		t := &dataplane.Table{Services: map[dataplane.ServiceKey]*dataplane.Service{}}
		for i := range cfg.Services {
			s := &cfg.Services[i]
			ds := &dataplane.Service{}
			reals := s.Reals
			if s.Sorry.IsValid() {
				reals = append(reals, config.Real{Address: s.Sorry})
			}
			for _, r := range reals {
				id := uint32(len(t.Reals))
				// As the compiler keeps the last failed real: Ready
				// and in the scheduler whatever its health.
				t.Reals = append(t.Reals, dataplane.Real{ID: id, Addr: r.Address.Addr().As4(), Port: r.Address.Port(), Ready: states[r.Address].ready})
				ds.Reals = append(ds.Reals, id)
				ds.Dests = append(ds.Dests, schedule.Dest{Weight: 1, Counters: new(schedule.Counters)})
			}
			t.Services[serviceKey(s)] = ds
		}
		return t
	}
	health := func(states map[netip.AddrPort]st) func(ServiceID, netip.AddrPort) HealthState {
		return func(_ ServiceID, r netip.AddrPort) HealthState {
			return HealthState{Checked: true, Up: !states[r].down}
		}
	}
	two := &config.Config{Services: []config.Service{svc(vip100, 80, rs1, rs2), svc(vip100, 443, rs1), svc(vip101, 80, rs2)}}
	withSorry := &config.Config{Services: []config.Service{svc(vip100, 80, rs1)}}
	withSorry.Services[0].Sorry = sorry
	quiesced := &config.Config{Services: []config.Service{svc(vip100, 80, rs1)}}
	quiesced.Services[0].Reals[0].Weight = 0
	for _, tc := range []struct {
		name   string
		cfg    *config.Config
		states map[netip.AddrPort]st
		noTbl  bool
		want   map[netip.Addr]bool
	}{
		{"all up", two, map[netip.AddrPort]st{rs1: {ready: true}, rs2: {ready: true}}, false, map[netip.Addr]bool{vip100: true, vip101: true}},
		{"rs2 fails its check: .101 has only rs2", two, map[netip.AddrPort]st{rs1: {ready: true}, rs2: {ready: true, down: true}}, false, map[netip.Addr]bool{vip100: true, vip101: false}},
		{"all fail (the compiler keeps one, Ready)", two, map[netip.AddrPort]st{rs1: {ready: true, down: true}, rs2: {ready: true, down: true}}, false, map[netip.Addr]bool{vip100: false, vip101: false}},
		{"next hop unknown", two, map[netip.AddrPort]st{rs1: {}, rs2: {}}, false, map[netip.Addr]bool{vip100: false, vip101: false}},
		{"weight 0", quiesced, map[netip.AddrPort]st{rs1: {ready: true}}, false, map[netip.Addr]bool{vip100: false}},
		{"only the sorry real", withSorry, map[netip.AddrPort]st{rs1: {down: true}, sorry: {ready: true}}, false, map[netip.Addr]bool{vip100: false}},
		{"real up beside the sorry real", withSorry, map[netip.AddrPort]st{rs1: {ready: true}, sorry: {ready: true}}, false, map[netip.Addr]bool{vip100: true}},
		{"no table yet", two, nil, true, map[netip.Addr]bool{vip100: false, vip101: false}},
	} {
		var tbl *dataplane.Table
		if !tc.noTbl {
			tbl = table(tc.cfg, tc.states)
		}
		if got := vipReadiness(tc.cfg, tbl, health(tc.states)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// Without checks (nil health, or unchecked), the table decides.
	up := map[netip.AddrPort]st{rs1: {ready: true}, rs2: {ready: true}}
	if got := vipReadiness(two, table(two, up), nil); !got[vip100] || !got[vip101] {
		t.Errorf("no health function: %v", got)
	}
	// A service the table lacks (a compile left it out) is not ready.
	tbl := table(two, up)
	delete(tbl.Services, serviceKey(&two.Services[2]))
	if got := vipReadiness(two, tbl, health(up)); got[vip101] {
		t.Errorf("service missing from the table: %v", got)
	}
}

// TestVIPReadinessIPv6: an IPv6 VIP is ready while a real of its service
// in the compiled table (Services6) is ready and passes its check, as an
// IPv4 one; two IPv6 services on one port are told apart.
func TestVIPReadinessIPv6(t *testing.T) {
	cfg := mustParse(t, `[director]
interface = "eth0"
[[service]]
address = "[fd00:20::100]:80"
  [service.check]
  type = "tcp"
  [[service.real]]
  address = "[fd00:20::11]:80"
[[service]]
address = "[fd00:20::101]:80"
  [service.check]
  type = "tcp"
  [[service.real]]
  address = "[fd00:20::12]:80"
`)
	tbl, _, err := NewCompiler().Compile(cfg, testLink, nil, resolveDual)
	if err != nil {
		t.Fatal(err)
	}
	v100, v101 := netip.MustParseAddr("fd00:20::100"), netip.MustParseAddr("fd00:20::101")
	down := netip.MustParseAddrPort("[fd00:20::12]:80")
	health := func(id ServiceID, r netip.AddrPort) HealthState {
		if id.Addr.Addr() == v101 && id.Proto != 6 {
			t.Errorf("health asked of %+v", id)
		}
		return HealthState{Checked: true, Up: r != down}
	}
	if got := vipReadiness(cfg, tbl, health); !reflect.DeepEqual(got, map[netip.Addr]bool{v100: true, v101: false}) {
		t.Errorf("got %v, want .100 ready and .101 (its real failing) not", got)
	}
	if got := vipReadiness(cfg, nil, nil); got[v100] || got[v101] {
		t.Errorf("no table: %v", got)
	}
}

// TestBGPFixed: the session's identity needs a restart, the rest reloads.
func TestBGPFixed(t *testing.T) {
	base := config.BGP{Enabled: true, LocalAS: 65001, RouterID: netip.MustParseAddr("10.20.0.2"), HoldTime: 9 * time.Second, Drain: 5 * time.Second, MED: -1,
		Peers: []config.BGPPeer{{Address: netip.MustParseAddr("10.20.0.1"), AS: 65000}}}
	paths := func(errs config.Errors) []string {
		var out []string
		for _, e := range errs {
			out = append(out, e.Path+": "+e.Msg)
		}
		return out
	}
	next := base
	next.Peers = []config.BGPPeer{{Address: netip.MustParseAddr("10.20.0.254"), AS: 65000, Password: "x"}}
	next.NextHop, next.MED, next.Communities, next.Drain = netip.MustParseAddr("10.20.0.9"), 10, []string{"65000:1"}, time.Second
	if errs := bgpFixed(base, next); len(errs) != 0 {
		t.Errorf("peers, next_hop, med, communities, drain refused: %v", paths(errs))
	}
	next = base
	next.LocalAS, next.RouterID, next.HoldTime = 65002, netip.MustParseAddr("10.20.0.3"), 90*time.Second
	want := []string{"bgp.local_as: cannot change on reload; restart gvsd", "bgp.router_id: cannot change on reload; restart gvsd", "bgp.hold_time: cannot change on reload; restart gvsd"}
	if got := paths(bgpFixed(base, next)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := paths(bgpFixed(config.BGP{}, base)); !reflect.DeepEqual(got, []string{"bgp: cannot change on reload; restart gvsd"}) {
		t.Errorf("turning [bgp] on: %v", got)
	}
	if got := bgpFixed(config.BGP{LocalAS: 1}, config.BGP{LocalAS: 2}); len(got) != 0 {
		t.Errorf("[bgp] off in both: %v", got)
	}
}

func TestBGPConfigDefaults(t *testing.T) {
	cfg := config.Default()
	cfg.BGP = config.BGP{Enabled: true, LocalAS: 65001, HoldTime: 9 * time.Second, MED: -1, Communities: []string{"65000:100"},
		Peers: []config.BGPPeer{{Address: netip.MustParseAddr("10.20.0.1"), AS: 65000, Password: "pw"}}}
	addr, addr6 := netip.MustParseAddr("10.20.0.2"), netip.MustParseAddr("fd00:20::2")
	bc := bgpConfig(cfg, addr, addr6)
	if bc.RouterID != addr || bc.Routes.NextHop != addr || bc.Routes.NextHop6 != addr6 || bc.Routes.MED != -1 || !reflect.DeepEqual(bc.Routes.Communities, []uint32{65000<<16 | 100}) ||
		bc.LocalAS != 65001 || len(bc.Peers) != 1 || bc.Peers[0].Password != "pw" || bc.Peers[0].AS != 65000 {
		t.Errorf("bgpConfig = %+v", bc)
	}
	if bc := bgpConfig(cfg, addr, netip.Addr{}); bc.Routes.NextHop6.IsValid() {
		t.Errorf("no IPv6 address and no next_hop6: next hop %v", bc.Routes.NextHop6)
	}
	cfg.BGP.RouterID, cfg.BGP.NextHop = netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("10.20.0.9")
	cfg.BGP.NextHop6 = netip.MustParseAddr("fd00:20::9")
	if bc := bgpConfig(cfg, addr, addr6); bc.RouterID != cfg.BGP.RouterID || bc.Routes.NextHop != cfg.BGP.NextHop || bc.Routes.NextHop6 != cfg.BGP.NextHop6 {
		t.Errorf("configured router_id, next_hop and next_hop6: %+v", bc)
	}
}

// TestDoctorBGP: a peer not established fails with how to fix it; a
// withdrawn VIP warns; a scheduler other than mh or sh warns, and so does
// [bgp] without [sync].
func TestDoctorBGP(t *testing.T) {
	cfg := config.Default()
	cfg.Director.Interface = "eth0"
	cfg.Services = []config.Service{{Name: "web", Address: netip.MustParseAddrPort("10.20.0.100:80"), Scheduler: "mh"},
		{Name: "dns", Address: netip.MustParseAddrPort("10.20.0.101:53"), Scheduler: "wlc"}}
	st := &api.BGPStatus{LocalAS: 65001, NextHop: "10.20.0.2", Announced: []string{"10.20.0.100/32"}, Withdrawn: []string{"10.20.0.101/32"},
		Peers: []api.BGPPeer{{Address: "10.20.0.1", AS: 65000, State: "established", Established: true, Uptime: 75},
			{Address: "10.20.0.254", AS: 65000, State: "active"}}}
	got := map[string]api.Check{}
	for _, c := range checkBGP(cfg, st) {
		got[c.Name] = c
	}
	for name, want := range map[string]struct{ status, sub string }{
		"bgp peer 10.20.0.1":   {"ok", "established with AS 65000 for 1m15s"},
		"bgp peer 10.20.0.254": {"fail", "neighbor eth0's address 10.20.0.2 with remote AS 65001"},
		"bgp":                  {"warn", "withdrawn: 10.20.0.101/32"},
		"bgp scheduler dns":    {"warn", `service[1].scheduler = "mh"`},
		"bgp sync":             {"warn", "add [sync] on every director"},
	} {
		c, ok := got[name]
		if !ok || c.Status != want.status || !strings.Contains(c.Detail+" "+c.Fix, want.sub) {
			t.Errorf("%s: got %+v, want %s with %q", name, c, want.status, want.sub)
		}
	}
	if _, ok := got["bgp scheduler web"]; ok {
		t.Errorf("mh service warned")
	}
	cfg.Sync.Enabled = true
	for _, c := range checkBGP(cfg, st) {
		if c.Name == "bgp sync" {
			t.Errorf("with [sync]: %+v", c)
		}
	}
	st.Learning = time.Date(2026, 12, 6, 5, 0, 3, 0, time.UTC)
	for _, c := range checkBGP(cfg, st) {
		if c.Name == "bgp" && (c.Status != "warn" || !strings.Contains(c.Detail, "nothing announced until 05:00:03: learning")) {
			t.Errorf("learning: %+v", c)
		}
	}
	st.Learning = time.Time{}
	st.Withdrawn = nil
	for _, c := range checkBGP(cfg, st) {
		if c.Name == "bgp" && (c.Status != "ok" || !strings.Contains(c.Detail, "announced: 10.20.0.100/32, next hop 10.20.0.2")) {
			t.Errorf("all announced: %+v", c)
		}
		if c.Name == "bgp ipv6" {
			t.Errorf("no IPv6 service: %+v", c)
		}
	}
	// An IPv6 service: without an IPv6 next hop it cannot be announced;
	// with one, both next hops are shown, and a peer's fix names both
	// families.
	cfg.Services = append(cfg.Services, config.Service{Name: "web6", Address: netip.MustParseAddrPort("[fd00:20::100]:80"), Scheduler: "mh"})
	got = map[string]api.Check{}
	for _, c := range checkBGP(cfg, st) {
		got[c.Name] = c
	}
	if c := got["bgp ipv6"]; c.Status != "fail" || !strings.Contains(c.Detail, "no IPv6 next hop") || !strings.Contains(c.Fix, "bgp.next_hop6") {
		t.Errorf("IPv6 VIP without an IPv6 next hop: %+v", c)
	}
	if c := got["bgp peer 10.20.0.254"]; !strings.Contains(c.Fix, "IPv6 unicast accepting /128s") {
		t.Errorf("peer fix with an IPv6 service: %+v", c)
	}
	st.NextHop6, st.Announced = "fd00:20::2", []string{"10.20.0.100/32", "fd00:20::100/128"}
	got = map[string]api.Check{}
	for _, c := range checkBGP(cfg, st) {
		got[c.Name] = c
	}
	if c, has := got["bgp ipv6"]; has {
		t.Errorf("with an IPv6 next hop: %+v", c)
	}
	if c := got["bgp"]; c.Status != "ok" || !strings.Contains(c.Detail, "announced: 10.20.0.100/32 fd00:20::100/128, next hop 10.20.0.2, IPv6 next hop fd00:20::2") {
		t.Errorf("IPv6 announced: %+v", c)
	}
}

func TestMetricsBGP(t *testing.T) {
	snap := snapshot{bgp: &api.BGPStatus{Announced: []string{"10.20.0.100/32"}, Withdrawn: []string{"10.20.0.101/32"},
		Peers: []api.BGPPeer{{Address: "10.20.0.1", Established: true}, {Address: "10.20.0.254"}}}}
	reg := newMetricsRegistry(func() snapshot { return snap })
	want := `
# HELP gvs_bgp_announced 1 while the VIP's /32 (IPv6: /128) is announced to the BGP peers, 0 while it is withdrawn (no ready real, or gvsd stopping).
# TYPE gvs_bgp_announced gauge
gvs_bgp_announced{prefix="10.20.0.100/32"} 1
gvs_bgp_announced{prefix="10.20.0.101/32"} 0
# HELP gvs_bgp_session_up 1 while the BGP session to the peer is established, 0 otherwise.
# TYPE gvs_bgp_session_up gauge
gvs_bgp_session_up{peer="10.20.0.1"} 1
gvs_bgp_session_up{peer="10.20.0.254"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gvs_bgp_announced", "gvs_bgp_session_up"); err != nil {
		t.Error(err)
	}
}

// TestBGPLocals: with bgp.peer_local_addresses and a FULLNAT service, the
// director announces its own local addresses and, as standby routes, the
// others'; the compiled match takes replies to both, while only its own
// are sources of new connections. Without a FULLNAT service or without the
// field: nothing more than before.
func TestBGPLocals(t *testing.T) {
	const src = `
[director]
interface = "eth0"
local_addresses = ["10.30.0.2"]
[[service]]
address = "10.20.0.100:80"
forward = "fullnat"
  [[service.real]]
  address = "10.20.0.11:8080"
[bgp]
local_as = 65001
peer_local_addresses = ["10.30.0.3", "10.30.0.4"]
  [[bgp.peer]]
  address = "10.20.0.1"
  as = 65000
`
	cfg := mustParse(t, src)
	own, standby := bgpLocals(cfg)
	lip4 := netip.MustParseAddr("10.30.0.4")
	if !reflect.DeepEqual(own, []netip.Addr{lip2}) || !reflect.DeepEqual(standby, []netip.Addr{lip3, lip4}) {
		t.Fatalf("bgpLocals = %v, %v", own, standby)
	}
	r := bgpRoutes(cfg, netip.MustParseAddr("10.20.0.2"), netip.Addr{})
	if want := []netip.Prefix{netip.PrefixFrom(lip3, 32), netip.PrefixFrom(lip4, 32)}; !reflect.DeepEqual(r.Standby, want) {
		t.Fatalf("Standby = %v, want %v", r.Standby, want)
	}
	tbl, m, err := NewCompiler().Compile(cfg, testLink, own, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tbl.Locals, [][4]byte{lip2.As4()}) {
		t.Errorf("Table.Locals = %v: only this director's own are sources", tbl.Locals)
	}
	var got []netip.Addr
	for _, l := range m.Locals {
		got = append(got, netip.AddrFrom4(l.Addr))
	}
	if !reflect.DeepEqual(got, []netip.Addr{lip2, lip3, lip4}) {
		t.Errorf("Match.Locals = %v, want the director's own and the others'", got)
	}
	dr := mustParse(t, strings.NewReplacer(`forward = "fullnat"`, `forward = "dr"`, "8080", "80").Replace(src))
	if own, standby := bgpLocals(dr); own != nil || standby != nil {
		t.Errorf("without FULLNAT: %v, %v", own, standby)
	}
}

// TestBGPLocalsIPv6: local addresses of both families under BGP. The
// director's own and the others' IPv6 local addresses are announced as
// /128s (only with an IPv6 next hop), the others' as standby routes; the
// compiled match takes replies to every local address once, each in its
// family's list, while only the director's own are sources.
func TestBGPLocalsIPv6(t *testing.T) {
	const src = `
[director]
interface = "eth0"
local_addresses = ["10.30.0.2", "fd00:30::2"]
[[service]]
address = "10.20.0.100:80"
forward = "fullnat"
  [[service.real]]
  address = "10.20.0.11:8080"
[[service]]
address = "[fd00:20::100]:80"
forward = "fullnat"
  [[service.real]]
  address = "[fd00:20::11]:8080"
[bgp]
local_as = 65001
peer_local_addresses = ["10.30.0.3", "fd00:30::3", "fd00:30::4"]
  [[bgp.peer]]
  address = "fd00:20::1"
  as = 65000
`
	cfg := mustParse(t, src)
	own6, peer6a, peer6b := netip.MustParseAddr("fd00:30::2"), netip.MustParseAddr("fd00:30::3"), netip.MustParseAddr("fd00:30::4")
	own, standby := bgpLocals(cfg)
	if !reflect.DeepEqual(own, []netip.Addr{lip2, own6}) || !reflect.DeepEqual(standby, []netip.Addr{lip3, peer6a, peer6b}) {
		t.Fatalf("bgpLocals = %v, %v", own, standby)
	}
	r := bgpRoutes(cfg, netip.MustParseAddr("10.20.0.2"), netip.MustParseAddr("fd00:20::2"))
	if want := []netip.Prefix{netip.PrefixFrom(lip3, 32), netip.PrefixFrom(peer6a, 128), netip.PrefixFrom(peer6b, 128)}; !reflect.DeepEqual(r.Standby, want) {
		t.Fatalf("Standby = %v, want %v", r.Standby, want)
	}
	in := bgpInputs{Running: true, NextHop6: true, Locals: own, Standby: standby}
	want := []netip.Prefix{netip.PrefixFrom(lip2, 32), netip.PrefixFrom(lip3, 32), netip.PrefixFrom(own6, 128), netip.PrefixFrom(peer6a, 128), netip.PrefixFrom(peer6b, 128)}
	if got := bgpPrefixes(in); !reflect.DeepEqual(got, want) {
		t.Errorf("bgpPrefixes = %v, want %v", got, want)
	}
	in.NextHop6 = false
	if got := bgpPrefixes(in); !reflect.DeepEqual(got, want[:2]) {
		t.Errorf("without an IPv6 next hop: bgpPrefixes = %v, want the IPv4 ones %v", got, want[:2])
	}
	link := testLink
	link.Addr6 = netip.MustParseAddr("fd00:20::2")
	tbl, m, err := NewCompiler().Compile(cfg, link, own, resolveDual)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tbl.Locals, [][4]byte{lip2.As4()}) || !reflect.DeepEqual(tbl.Locals6, [][16]byte{own6.As16()}) {
		t.Errorf("Table.Locals = %v, Locals6 = %v: only this director's own are sources", tbl.Locals, tbl.Locals6)
	}
	var got4, got6 []netip.Addr
	for _, l := range m.Locals {
		got4 = append(got4, netip.AddrFrom4(l.Addr))
	}
	for _, l := range m.Locals6 {
		got6 = append(got6, netip.AddrFrom16(l.Addr))
	}
	if !reflect.DeepEqual(got4, []netip.Addr{lip2, lip3}) || !reflect.DeepEqual(got6, []netip.Addr{own6, peer6a, peer6b}) {
		t.Errorf("Match.Locals = %v, Locals6 = %v: want every local address once", got4, got6)
	}
}
