package control

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

var testLink = LinkInfo{Name: "eth0", MAC: [6]byte{2, 0, 0, 0, 0, 2}, Addr: netip.MustParseAddr("10.20.0.2"), MTU: 1500}

func mustParse(t *testing.T, s string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// resolveAll knows every address except 10.20.0.13; addresses outside
// 10.20.0.0/24 are behind a gateway.
func resolveAll(ip netip.Addr) ([6]byte, bool, bool) {
	if ip == netip.MustParseAddr("10.20.0.13") {
		return [6]byte{}, false, false
	}
	a := ip.As4()
	return [6]byte{2, 0, a[0], a[1], a[2], a[3]}, a[0] == 10 && a[1] == 20 && a[2] == 0, true
}

const base = `
[director]
interface = "eth0"
[[service]]
address = "10.20.0.100:80"
scheduler = "rr"
forward = "nat"
  [[service.real]]
  address = "10.20.0.11:8080"
  [[service.real]]
  address = "10.20.0.12:8080"
  weight = 3
[[service]]
protocol = "udp"
address = "10.20.0.100:53"
scheduler = "wrr"
forward = "fullnat"
  [[service.real]]
  address = "10.20.0.13:53"
  [[service.real]]
  address = "10.20.0.11:53"
`

func TestCompile(t *testing.T) {
	c := NewCompiler()
	tbl, m, err := c.Compile(mustParse(t, base), testLink, []netip.Addr{testLink.Addr}, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.MAC != testLink.MAC || tbl.Addr != testLink.Addr.As4() || tbl.MTU != 1500 {
		t.Errorf("link fields: %x %v %d", tbl.MAC, tbl.Addr, tbl.MTU)
	}
	web := tbl.Services[dataplane.ServiceKey{Proto: 6, VIP: [4]byte{10, 20, 0, 100}, Port: 80}]
	dns := tbl.Services[dataplane.ServiceKey{Proto: 17, VIP: [4]byte{10, 20, 0, 100}, Port: 53}]
	if web == nil || dns == nil || len(tbl.Services) != 2 {
		t.Fatalf("services: %v", tbl.Services)
	}
	if len(web.Reals) != 2 || web.Dests[1].Weight != 3 {
		t.Errorf("web reals %v dests %+v", web.Reals, web.Dests)
	}
	r := tbl.Reals[web.Reals[0]]
	if r.Addr != [4]byte{10, 20, 0, 11} || r.Port != 8080 || r.Forward != dataplane.ForwardNAT || !r.Ready || r.MAC != [6]byte{2, 0, 10, 20, 0, 11} {
		t.Errorf("first web real: %+v", r)
	}
	// An unresolved real is in the table but not Ready, and the scheduler
	// sees weight 0.
	u := tbl.Reals[dns.Reals[0]]
	if u.Ready || dns.Dests[0].Weight != 0 || u.Forward != dataplane.ForwardFullNAT {
		t.Errorf("unresolved real: %+v weight %d", u, dns.Dests[0].Weight)
	}
	// The same address in two services is two reals with their own counters.
	if web.Reals[0] == dns.Reals[1] || tbl.Reals[web.Reals[0]].Counters == tbl.Reals[dns.Reals[1]].Counters {
		t.Error("10.20.0.11 shares an ID or counters across services")
	}
	want := &afpacket.Match{
		VIPs:     []afpacket.Endpoint{{Proto: 6, Addr: [4]byte{10, 20, 0, 100}, Port: 80}, {Proto: 17, Addr: [4]byte{10, 20, 0, 100}, Port: 53}},
		NATReals: []afpacket.Endpoint{{Proto: 6, Addr: [4]byte{10, 20, 0, 11}, Port: 8080}, {Proto: 6, Addr: [4]byte{10, 20, 0, 12}, Port: 8080}},
		Locals:   []afpacket.LocalRange{{Addr: [4]byte{10, 20, 0, 2}, PortLo: 1024, PortHi: 32767}},
		Own:      [][4]byte{{10, 20, 0, 2}},
	}
	if !equalMatch(m, want) {
		t.Errorf("match\n got %+v\nwant %+v", m, want)
	}
}

func equalMatch(a, b *afpacket.Match) bool {
	if len(a.VIPs) != len(b.VIPs) || len(a.NATReals) != len(b.NATReals) || len(a.Locals) != len(b.Locals) || !slices.Equal(a.Own, b.Own) {
		return false
	}
	for i := range a.VIPs {
		if a.VIPs[i] != b.VIPs[i] {
			return false
		}
	}
	for i := range a.NATReals {
		if a.NATReals[i] != b.NATReals[i] {
			return false
		}
	}
	for i := range a.Locals {
		if a.Locals[i] != b.Locals[i] {
			return false
		}
	}
	return true
}

// TestRecompileKeepsIDsAndCounters is what lets connections survive a
// reload: a real that stays keeps its ID and its live counters; a removed
// real leaves an empty slot so its old connections are dropped, not sent
// to whoever takes its place.
func TestRecompileKeepsIDsAndCounters(t *testing.T) {
	c := NewCompiler()
	t1, _, err := c.Compile(mustParse(t, base), testLink, nil, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	key := dataplane.ServiceKey{Proto: 6, VIP: [4]byte{10, 20, 0, 100}, Port: 80}
	id11, id12 := t1.Services[key].Reals[0], t1.Services[key].Reals[1]
	t1.Reals[id11].Counters.Active.Store(5)

	// Drop 10.20.0.12, add 10.20.0.14 first.
	changed := strings.Replace(base, "  [[service.real]]\n  address = \"10.20.0.12:8080\"\n  weight = 3\n", "", 1)
	changed = strings.Replace(changed, "forward = \"nat\"\n", "forward = \"nat\"\n  [[service.real]]\n  address = \"10.20.0.14:8080\"\n", 1)
	t2, _, err := c.Compile(mustParse(t, changed), testLink, nil, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	svc := t2.Services[key]
	if len(svc.Reals) != 2 || svc.Reals[1] != id11 {
		t.Fatalf("10.20.0.11 has ID %v now, had %d", svc.Reals, id11)
	}
	if got := t2.Reals[id11].Counters.Active.Load(); got != 5 {
		t.Errorf("counters of 10.20.0.11 after recompile: active %d, want 5", got)
	}
	if svc.Reals[0] == id12 {
		t.Error("the new real reused the removed real's ID")
	}
	if int(id12) >= len(t2.Reals) || t2.Reals[id12].Forward != 0 {
		t.Errorf("removed real's slot: %+v, want empty", t2.Reals[id12])
	}
}

func TestCompileRefuses(t *testing.T) {
	cfg := mustParse(t, `
[director]
interface = "eth0"
[[service]]
protocol = "udp"
address = "10.20.0.100:53"
ops = true
  [[service.real]]
  address = "10.20.0.11:53"
  forward = "nat"
  [[service.real]]
  address = "10.20.0.12:53"
[[service]]
address = "10.20.0.100:82"
  [[service.real]]
  address = "10.30.0.5:82"
  upper_threshold = 7
`)
	c := NewCompiler()
	_, _, err := c.Compile(cfg, testLink, nil, resolveAll)
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not config.Errors", err)
	}
	for _, want := range []string{"service[0].real[0].forward: one-packet scheduling (ops) needs dr or tun", "service[1].real[0].address: 10.30.0.5 is not on the director's LAN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if len(errs) != 2 {
		t.Errorf("%d problems, want 2:\n%v", len(errs), err)
	}
	// A refused configuration changes no counters.
	for _, ctr := range c.counters {
		if up, _ := ctr.Thresholds(); up != 0 {
			t.Errorf("a refused configuration set a threshold of %d", up)
		}
	}
}

func TestCompileServiceOptions(t *testing.T) {
	cfg := mustParse(t, `
[director]
interface = "eth0"
[[service]]
address = "10.20.0.100:80"
scheduler = "rr"
persistence = "90s"
persistence_netmask = 24
  [[service.real]]
  address = "10.20.0.11:80"
  upper_threshold = 10
  lower_threshold = 4
[[service]]
protocol = "udp"
address = "10.20.0.100:53"
ops = true
scheduler = "rr"
  [[service.real]]
  address = "10.20.0.11:53"
`)
	tbl, _, err := NewCompiler().Compile(cfg, testLink, nil, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	web := tbl.Services[dataplane.ServiceKey{Proto: header.ProtoTCP, VIP: [4]byte{10, 20, 0, 100}, Port: 80}]
	if web == nil || web.Persist != 90*time.Second || web.PersistBits != 24 || web.OPS {
		t.Fatalf("web service = %+v", web)
	}
	if up, lo := tbl.Reals[web.Reals[0]].Counters.Thresholds(); up != 10 || lo != 4 {
		t.Errorf("thresholds = %d, %d, want 10, 4", up, lo)
	}
	dns := tbl.Services[dataplane.ServiceKey{Proto: header.ProtoUDP, VIP: [4]byte{10, 20, 0, 100}, Port: 53}]
	if dns == nil || !dns.OPS || dns.Persist != 0 {
		t.Fatalf("dns service = %+v", dns)
	}
	if web.SynProxy || dns.SynProxy {
		t.Errorf("SYN proxy on without synproxy = true")
	}
}

// TestCompileSynProxy: synproxy = true reaches the dataplane's service, and
// its NAT reals' replies are admitted like any NAT real's.
func TestCompileSynProxy(t *testing.T) {
	tbl, m, err := NewCompiler().Compile(mustParse(t, strings.Replace(base, "forward = \"nat\"\n", "forward = \"nat\"\nsynproxy = true\n", 1)),
		testLink, []netip.Addr{testLink.Addr}, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	web := tbl.Services[dataplane.ServiceKey{Proto: header.ProtoTCP, VIP: [4]byte{10, 20, 0, 100}, Port: 80}]
	dns := tbl.Services[dataplane.ServiceKey{Proto: header.ProtoUDP, VIP: [4]byte{10, 20, 0, 100}, Port: 53}]
	if web == nil || !web.SynProxy || dns == nil || dns.SynProxy {
		t.Fatalf("web service = %+v, dns = %+v", web, dns)
	}
	if len(m.NATReals) != 2 {
		t.Errorf("NAT reals admitted: %+v", m.NATReals)
	}
}

// TestCompileProxyProtocol: the service's proxy_protocol reaches every
// real that does not set its own, and "v1"/"v2" become the dataplane's
// versions.
func TestCompileProxyProtocol(t *testing.T) {
	cfg := mustParse(t, strings.Replace(base, "forward = \"nat\"\n", "forward = \"nat\"\nproxy_protocol = \"v2\"\n", 1))
	web := &cfg.Services[0]
	web.Reals[1].ProxyProtocol, web.Reals[1].OwnProxyProtocol = "v1", true
	tbl, _, err := NewCompiler().Compile(cfg, testLink, []netip.Addr{testLink.Addr}, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	svc := tbl.Services[dataplane.ServiceKey{Proto: header.ProtoTCP, VIP: [4]byte{10, 20, 0, 100}, Port: 80}]
	if a, b := tbl.Reals[svc.Reals[0]].Proxy, tbl.Reals[svc.Reals[1]].Proxy; a != dataplane.ProxyV2 || b != dataplane.ProxyV1 {
		t.Fatalf("reals' Proxy %v %v, want v2 v1", a, b)
	}
	dns := tbl.Services[dataplane.ServiceKey{Proto: header.ProtoUDP, VIP: [4]byte{10, 20, 0, 100}, Port: 53}]
	if p := tbl.Reals[dns.Reals[0]].Proxy; p != 0 {
		t.Fatalf("udp real's Proxy %v, want none", p)
	}
}

// TestCompileMaglevIdentity: mh's table depends on the reals, not on
// their order in the file, because the compiler gives each real an
// identity from its address.
func TestCompileMaglevIdentity(t *testing.T) {
	cfg := func(order ...int) *config.Config {
		s := "[director]\ninterface = \"eth0\"\n[[service]]\naddress = \"10.20.0.100:80\"\nscheduler = \"mh\"\n"
		for _, o := range order {
			s += fmt.Sprintf("  [[service.real]]\n  address = \"10.20.0.%d:80\"\n", 10+o)
		}
		return mustParse(t, s)
	}
	c := NewCompiler()
	key := dataplane.ServiceKey{Proto: header.ProtoTCP, VIP: [4]byte{10, 20, 0, 100}, Port: 80}
	pickIDs := func(tbl *dataplane.Table) []uint32 {
		svc := tbl.Services[key]
		var ids []uint32
		for i := range 1000 {
			f := schedule.Flow{Src: conntrack.AddrFrom4([4]byte{10, 10, byte(i >> 8), byte(i)}), SrcPort: uint16(i), Proto: header.ProtoTCP}
			ids = append(ids, svc.Reals[svc.Sched.Pick(svc.Dests, &f)])
		}
		return ids
	}
	t1, _, err := c.Compile(cfg(1, 2, 3), testLink, nil, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	t2, _, err := c.Compile(cfg(3, 1, 2), testLink, nil, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	a, b := pickIDs(t1), pickIDs(t2)
	if !slices.Equal(a, b) {
		moved := 0
		for i := range a {
			if a[i] != b[i] {
				moved++
			}
		}
		t.Errorf("reordering the reals moved %d of 1000 flows under mh", moved)
	}
}

// TestRemovedRealDrains: a real removed from a service that remains keeps
// forwarding its connections (in the table, ready, steered for NAT
// replies) but is out of the service, so nothing new reaches it; it leaves
// the table when its connections are gone, or after the drain limit. A
// real without connections leaves at once.
func TestRemovedRealDrains(t *testing.T) {
	c := NewCompiler()
	t1, _, err := c.Compile(mustParse(t, base), testLink, nil, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	key := dataplane.ServiceKey{Proto: 6, VIP: [4]byte{10, 20, 0, 100}, Port: 80}
	id12 := t1.Services[key].Reals[1]
	t1.Reals[id12].Counters.Bind(true) // one active connection
	without := strings.Replace(base, "  [[service.real]]\n  address = \"10.20.0.12:8080\"\n  weight = 3\n", "", 1)
	t2, m2, err := c.Compile(mustParse(t, without), testLink, nil, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(t2.Services[key].Reals, id12) {
		t.Fatal("the removed real is still one of the service's reals")
	}
	if r := t2.Reals[id12]; !r.Ready || r.Forward != dataplane.ForwardNAT || r.Addr != [4]byte{10, 20, 0, 12} {
		t.Fatalf("the draining real's slot %+v, want it ready for its connections", r)
	}
	ep := afpacket.Endpoint{Proto: 6, Addr: [4]byte{10, 20, 0, 12}, Port: 8080}
	if !slices.Contains(m2.NATReals, ep) {
		t.Error("the draining NAT real's replies are no longer steered")
	}
	if c.Draining() != 1 || c.Drained(time.Now(), 0) {
		t.Fatalf("draining %d; Drained with a connection left says it ended", c.Draining())
	}
	// Another reload while it drains keeps it draining.
	if t3, _, err := c.Compile(mustParse(t, without), testLink, nil, resolveAll); err != nil || !t3.Reals[id12].Ready {
		t.Fatalf("after a second reload the draining real is %+v, %v", t3.Reals[id12], err)
	}
	// The limit ends it even with its connection.
	if !c.Drained(time.Now().Add(time.Hour), time.Minute) || c.Draining() != 0 {
		t.Fatal("the drain limit did not end the draining")
	}
	t4, m4, err := c.Compile(mustParse(t, without), testLink, nil, resolveAll)
	if err != nil {
		t.Fatal(err)
	}
	if r := t4.Reals[id12]; r.Ready || r.Forward != 0 || slices.Contains(m4.NATReals, ep) {
		t.Errorf("after draining the real's slot is %+v, want empty", r)
	}

	// Put back while draining: it is a real of the service again.
	c = NewCompiler()
	t1, _, _ = c.Compile(mustParse(t, base), testLink, nil, resolveAll)
	id12 = t1.Services[key].Reals[1]
	t1.Reals[id12].Counters.Bind(false)
	c.Compile(mustParse(t, without), testLink, nil, resolveAll)
	t5, _, _ := c.Compile(mustParse(t, base), testLink, nil, resolveAll)
	if !slices.Contains(t5.Services[key].Reals, id12) || c.Draining() != 0 {
		t.Errorf("a real put back while draining: reals %v, draining %d", t5.Services[key].Reals, c.Draining())
	}
	// The connection ends: Drained lets it go.
	c.Compile(mustParse(t, without), testLink, nil, resolveAll)
	t1.Reals[id12].Counters.Unbind(false)
	if !c.Drained(time.Now(), 0) {
		t.Error("Drained with no connection left says it goes on")
	}
}

// TestCompileHealth: a real that fails its check leaves the scheduler and,
// with on_failure "remove", the table; "quiesce" keeps it for its
// connections. When every real is down, the sorry real takes the new
// connections, or without one the real that went down last stays in.
func TestCompileHealth(t *testing.T) {
	const cfgText = `
[director]
interface = "eth0"
[[service]]
address = "10.20.0.100:80"
scheduler = "rr"
%s
  [service.check]
  type = "tcp"
  on_failure = %q
  [[service.real]]
  address = "10.20.0.11:80"
  [[service.real]]
  address = "10.20.0.12:80"
`
	key := dataplane.ServiceKey{Proto: 6, VIP: [4]byte{10, 20, 0, 100}, Port: 80}
	t0 := time.Now()
	down := map[string]time.Time{}
	health := func(_ ServiceID, r netip.AddrPort) HealthState {
		at, isDown := down[r.String()]
		return HealthState{Checked: true, Up: !isDown, Changed: at}
	}
	weights := func(tbl *dataplane.Table) map[string]int32 {
		out := map[string]int32{}
		svc := tbl.Services[key]
		for i, id := range svc.Reals {
			r := tbl.Reals[id]
			out[netip.AddrPortFrom(netip.AddrFrom4(r.Addr), r.Port).String()] = svc.Dests[i].Weight
		}
		return out
	}
	compile := func(sorry, onFailure string) (*dataplane.Table, map[string]int32) {
		t.Helper()
		c := NewCompiler()
		c.Health = health
		tbl, _, err := c.Compile(mustParse(t, fmt.Sprintf(cfgText, sorry, onFailure)), testLink, nil, resolveAll)
		if err != nil {
			t.Fatal(err)
		}
		return tbl, weights(tbl)
	}
	ready := func(tbl *dataplane.Table, addr string) bool {
		for _, id := range tbl.Services[key].Reals {
			r := tbl.Reals[id]
			if netip.AddrPortFrom(netip.AddrFrom4(r.Addr), r.Port).String() == addr {
				return r.Ready
			}
		}
		return false
	}

	down["10.20.0.11:80"] = t0
	tbl, w := compile("", "remove")
	if w["10.20.0.11:80"] != 0 || w["10.20.0.12:80"] != 1 || ready(tbl, "10.20.0.11:80") {
		t.Errorf("remove: weights %v, 11 ready %v; want 11 out and not ready", w, ready(tbl, "10.20.0.11:80"))
	}
	tbl, w = compile("", "quiesce")
	if w["10.20.0.11:80"] != 0 || !ready(tbl, "10.20.0.11:80") {
		t.Errorf("quiesce: weights %v, 11 ready %v; want weight 0 and ready", w, ready(tbl, "10.20.0.11:80"))
	}
	down["10.20.0.12:80"] = t0.Add(time.Second) // the last to go down
	tbl, w = compile("", "remove")
	if w["10.20.0.11:80"] != 0 || w["10.20.0.12:80"] != 1 || !ready(tbl, "10.20.0.12:80") {
		t.Errorf("all down, no sorry: weights %v; want the last one standing (12) kept", w)
	}
	_, w = compile(`sorry = "10.20.0.99:80"`, "remove")
	if w["10.20.0.99:80"] != 1 || w["10.20.0.11:80"] != 0 || w["10.20.0.12:80"] != 0 {
		t.Errorf("all down, sorry set: weights %v; want only the sorry real", w)
	}
	delete(down, "10.20.0.11:80")
	_, w = compile(`sorry = "10.20.0.99:80"`, "remove")
	if _, in := w["10.20.0.99:80"]; in || w["10.20.0.11:80"] != 1 {
		t.Errorf("one real back: weights %v; want the sorry real out", w)
	}
}

// TestCheckTargetsProxyProtocol: a real's health check sends the PROXY
// header the real gets, when it checks the port that gets it; a check of
// another port does not.
func TestCheckTargetsProxyProtocol(t *testing.T) {
	cfg := mustParse(t, `
[director]
interface = "eth0"
[[service]]
address = "10.20.0.100:80"
forward = "fullnat"
proxy_protocol = "v2"
  [service.check]
  type = "http"
  [[service.real]]
  address = "10.20.0.11:8080"
  [[service.real]]
  address = "10.20.0.12:8080"
  proxy_protocol = ""
[[service]]
address = "10.20.0.100:81"
forward = "fullnat"
proxy_protocol = "v1"
  [service.check]
  type = "tcp"
  port = 9000
  [[service.real]]
  address = "10.20.0.11:8081"
`)
	targets, _ := checkTargets(cfg)
	got := map[string]string{}
	for _, tg := range targets {
		got[tg.Addr.String()] = tg.Check.ProxyProtocol
	}
	want := map[string]string{"10.20.0.11:8080": "v2", "10.20.0.12:8080": "", "10.20.0.11:8081": ""}
	if len(got) != len(want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	for a, v := range want {
		if got[a] != v {
			t.Errorf("%s: check's ProxyProtocol %q, want %q", a, got[a], v)
		}
	}
}

// TestCompileNATReplies: with [bgp] the table maps each NAT real to the one
// service its replies leave as (dataplane.Table.NATReplies); a real of two
// services on different VIPs, or of a service with synproxy or a PROXY
// header, has no mapping; FULLNAT reals have none; without [bgp] there is
// no map at all.
func TestCompileNATReplies(t *testing.T) {
	const bgp = "\n[bgp]\nlocal_as = 65001\n  [[bgp.peer]]\n  address = \"10.20.0.1\"\n  as = 65000\n"
	// A second VIP's service on rs2:8080 (ambiguous), and one on rs3:9090
	// with synproxy.
	const more = `
[[service]]
address = "10.20.0.101:80"
forward = "nat"
  [[service.real]]
  address = "10.20.0.12:8080"
[[service]]
address = "10.20.0.102:80"
forward = "nat"
synproxy = true
  [[service.real]]
  address = "10.20.0.14:9090"
`
	compile := func(src string) *dataplane.Table {
		t.Helper()
		tbl, _, err := NewCompiler().Compile(mustParse(t, src), testLink, []netip.Addr{testLink.Addr}, resolveAll)
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	}
	if tbl := compile(base + more); tbl.NATReplies != nil {
		t.Fatalf("without [bgp]: %+v", tbl.NATReplies)
	}
	tbl := compile(base + more + bgp)
	rs1 := dataplane.NATReplyKey{Proto: header.ProtoTCP, Addr: [4]byte{10, 20, 0, 11}, Port: 8080}
	web := tbl.Services[dataplane.ServiceKey{Proto: header.ProtoTCP, VIP: [4]byte{10, 20, 0, 100}, Port: 80}]
	want := map[dataplane.NATReplyKey]dataplane.NATReply{rs1: {VIP: [4]byte{10, 20, 0, 100}, Port: 80, RealID: web.Reals[0]}}
	if !reflect.DeepEqual(tbl.NATReplies, want) {
		t.Fatalf("NATReplies %+v, want %+v", tbl.NATReplies, want)
	}
	if r := tbl.Reals[web.Reals[0]]; r.Addr != rs1.Addr || r.Port != rs1.Port {
		t.Fatalf("RealID %d names %+v", web.Reals[0], r)
	}
}
