package control

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// resolveDual is resolveAll for IPv4, and knows every IPv6 address of
// fd00:20::/64 as on-link: the neighbour cache an IPv6 lookup would fill.
func resolveDual(ip netip.Addr) ([6]byte, bool, bool) {
	if ip.Is4() {
		return resolveAll(ip)
	}
	a := ip.As16()
	if !netip.MustParsePrefix("fd00:20::/64").Contains(ip) {
		return [6]byte{}, false, false
	}
	return [6]byte{2, 6, 0, 0, a[14], a[15]}, true, true
}

const dual = base + `
[[service]]
address = "[fd00:20::100]:80"
scheduler = "wrr"
  [[service.real]]
  address = "[fd00:20::11]:80"
  [[service.real]]
  address = "[fd00:20::12]:80"
  weight = 2
[[service]]
protocol = "udp"
address = "[fd00:20::100]:53"
forward = "nat"
persistence = "5m"
persistence_netmask = 64
  [[service.real]]
  address = "[fd00:20::13]:5353"
`

// TestCompileIPv6: IPv6 services go into Services6 with their VIP in VIP6,
// their reals get IDs of their own with the address in Addr6 and the MAC
// from the same Resolver as IPv4 reals; the frame match has them in its
// IPv6 lists; IDs
// survive a reload; a removed IPv6 real with connections drains.
func TestCompileIPv6(t *testing.T) {
	c := NewCompiler()
	tbl, m, err := c.Compile(mustParse(t, dual), testLink, nil, resolveDual)
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Services) != 2 || len(tbl.Services6) != 2 {
		t.Fatalf("%d IPv4 and %d IPv6 services, want 2 and 2", len(tbl.Services), len(tbl.Services6))
	}
	vip := netip.MustParseAddr("fd00:20::100").As16()
	web := tbl.Services6[dataplane.ServiceKey6{Proto: header.ProtoTCP, VIP: vip, Port: 80}]
	dns := tbl.Services6[dataplane.ServiceKey6{Proto: header.ProtoUDP, VIP: vip, Port: 53}]
	if web == nil || dns == nil {
		t.Fatalf("IPv6 services missing: %v", tbl.Services6)
	}
	if web.VIP6 != vip || web.VIP != ([4]byte{}) || web.Port != 80 || web.Proto != header.ProtoTCP || web.Sched == nil {
		t.Errorf("web service %+v", web)
	}
	if dns.PersistBits != 64 || dns.Persist == 0 {
		t.Errorf("dns persistence %v /%d, want 5m /64", dns.Persist, dns.PersistBits)
	}
	ids := map[uint32]bool{}
	for _, s := range tbl.Services {
		for _, id := range s.Reals {
			ids[id] = true
		}
	}
	for i, want := range []struct {
		addr   string
		port   uint16
		fwd    dataplane.Forward
		weight int32
	}{{"fd00:20::11", 80, dataplane.ForwardDR, 1}, {"fd00:20::12", 80, dataplane.ForwardDR, 2}} {
		id := web.Reals[i]
		if ids[id] {
			t.Errorf("IPv6 real %s shares ID %d with an IPv4 real", want.addr, id)
		}
		r := tbl.Reals[id]
		a := netip.MustParseAddr(want.addr).As16()
		if r.Addr6 != a || r.Addr != ([4]byte{}) || r.Port != want.port || r.Forward != want.fwd || !r.Ready ||
			r.MAC != [6]byte{2, 6, 0, 0, a[14], a[15]} || web.Dests[i].Weight != want.weight {
			t.Errorf("real %d: %+v weight %d, want %v", i, r, web.Dests[i].Weight, want)
		}
	}
	if r := tbl.Reals[dns.Reals[0]]; r.Forward != dataplane.ForwardNAT || r.Port != 5353 {
		t.Errorf("NAT real %+v", r)
	}
	for _, ep := range append(slices.Clone(m.VIPs), m.NATReals...) {
		if ep.Addr == ([4]byte{}) {
			t.Errorf("frame match has an endpoint without an IPv4 address: %+v", ep)
		}
	}
	if len(m.VIPs) != 2 {
		t.Errorf("frame match VIPs %v, want the 2 IPv4 services", m.VIPs)
	}
	// The IPv6 services and NAT real are in the match's IPv6 lists.
	wantVIPs6 := []afpacket.Endpoint6{{Proto: header.ProtoTCP, Addr: vip, Port: 80}, {Proto: header.ProtoUDP, Addr: vip, Port: 53}}
	if !slices.Equal(m.VIPs6, wantVIPs6) {
		t.Errorf("frame match VIPs6 %v, want %v", m.VIPs6, wantVIPs6)
	}
	wantNAT6 := []afpacket.Endpoint6{{Proto: header.ProtoUDP, Addr: netip.MustParseAddr("fd00:20::13").As16(), Port: 5353}}
	if !slices.Equal(m.NATReals6, wantNAT6) {
		t.Errorf("frame match NATReals6 %v, want %v", m.NATReals6, wantNAT6)
	}

	// An IPv4-only configuration makes no Services6: workers then never
	// make their IPv6 shards.
	if t4, _, err := NewCompiler().Compile(mustParse(t, base), testLink, nil, resolveAll); err != nil || t4.Services6 != nil {
		t.Errorf("IPv4-only table: Services6 %v, %v", t4.Services6, err)
	}

	// A reload keeps the IDs; removing a real with a connection drains it.
	id12 := web.Reals[1]
	tbl.Reals[id12].Counters.Bind(true)
	without := strings.Replace(dual, "  [[service.real]]\n  address = \"[fd00:20::12]:80\"\n  weight = 2\n", "", 1)
	t2, _, err := c.Compile(mustParse(t, without), testLink, nil, resolveDual)
	if err != nil {
		t.Fatal(err)
	}
	web2 := t2.Services6[dataplane.ServiceKey6{Proto: header.ProtoTCP, VIP: vip, Port: 80}]
	if web2.Reals[0] != web.Reals[0] || slices.Contains(web2.Reals, id12) {
		t.Errorf("after the reload: reals %v, before %v", web2.Reals, web.Reals)
	}
	if r := t2.Reals[id12]; !r.Ready || r.Addr6 != netip.MustParseAddr("fd00:20::12").As16() || c.Draining() != 1 {
		t.Errorf("removed IPv6 real with a connection: %+v, draining %d", r, c.Draining())
	}

	// A removed IPv6 NAT real with a connection keeps its replies taken.
	tbl.Reals[dns.Reals[0]].Counters.Bind(true)
	noNAT := strings.Replace(without, "  [[service.real]]\n  address = \"[fd00:20::13]:5353\"\n", "", 1)
	if noNAT == without {
		t.Fatal("the NAT real was not removed from the configuration")
	}
	_, m4, err := c.Compile(mustParse(t, noNAT), testLink, nil, resolveDual)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m4.NATReals6, wantNAT6) {
		t.Errorf("draining NAT real: NATReals6 %v, want %v", m4.NATReals6, wantNAT6)
	}

	// An IPv6 real whose next hop is unknown is in the table, not Ready.
	unknown := strings.Replace(dual, "fd00:20::13]:5353", "fd00:99::13]:5353", 1)
	t3, _, err := NewCompiler().Compile(mustParse(t, unknown), testLink, nil, resolveDual)
	if err != nil {
		t.Fatal(err)
	}
	dns3 := t3.Services6[dataplane.ServiceKey6{Proto: header.ProtoUDP, VIP: vip, Port: 53}]
	if r := t3.Reals[dns3.Reals[0]]; r.Ready || dns3.Dests[0].Weight != 0 {
		t.Errorf("unresolved IPv6 real: ready %v weight %d", r.Ready, dns3.Dests[0].Weight)
	}
}

// TestEditIPv6: gvsadm's changes name IPv6 services and reals as ipvsadm
// does, a new IPv6 service gets ipvsadm's /128 persistence netmask, and a
// real of the other family is refused with its field path.
func TestEditIPv6(t *testing.T) {
	cfg := mustParse(t, base)
	var err error
	for _, e := range []struct {
		cmd, addr, real, fwd string
	}{
		{"add-service", "[fd00:20::100]:80", "", ""},
		{"add-server", "[fd00:20::100]:80", "[fd00:20::11]", "dr"},
		{"add-server", "[fd00:20::100]:80", "[fd00:20::12]:8080", "nat"},
	} {
		cfg, err = editedConfig(cfg, apiEdit(e.cmd, e.addr, e.real, e.fwd))
		if err != nil {
			t.Fatalf("%s %s %s: %v", e.cmd, e.addr, e.real, err)
		}
	}
	s := cfg.Services[len(cfg.Services)-1]
	if s.Address != netip.MustParseAddrPort("[fd00:20::100]:80") || s.PersistenceNetmask != 128 || len(s.Reals) != 2 ||
		s.Reals[0].Address != netip.MustParseAddrPort("[fd00:20::11]:80") {
		t.Fatalf("service %+v", s)
	}
	_, err = editedConfig(cfg, apiEdit("add-server", "[fd00:20::100]:80", "10.20.0.11:80", "dr"))
	if err == nil || !strings.Contains(err.Error(), "is IPv4, the service IPv6") {
		t.Errorf("IPv4 real in an IPv6 service: %v", err)
	}
	if _, err = editedConfig(cfg, apiEdit("add-server", "[fd00:20::100]:80", "[fd00:20::14]:80", "fullnat")); err != nil {
		t.Errorf("fullnat real in an IPv6 service: %v", err)
	}
	if _, err = editedConfig(cfg, apiEdit("add-server", "[fd00:20::100]:80", "[fd00:20::14]:80", "tun")); err != nil {
		t.Errorf("tun real in an IPv6 service: %v", err)
	}
}

const tun6 = base + `
[[service]]
address = "[fd00:20::100]:80"
forward = "tun"
  [[service.real]]
  address = "[fd00:20::11]:80"
  [[service.real]]
  address = "[fd00:20::12]:80"
  forward = "dr"
`

// TestCompileIPv6TUN: an IPv6 service's tun reals go into the table with
// their forwarding method, and the table has the director's IPv6 address
// for the outer source; without one on the interface the tun reals are
// refused, each with its path, and the dr real is not.
func TestCompileIPv6TUN(t *testing.T) {
	link := testLink
	link.Addr6 = netip.MustParseAddr("fd00:20::2")
	tbl, _, err := NewCompiler().Compile(mustParse(t, tun6), link, nil, resolveDual)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Addr6 != link.Addr6.As16() || tbl.Addr != link.Addr.As4() {
		t.Errorf("table addresses %v and %v, want the link's", netip.AddrFrom16(tbl.Addr6), netip.AddrFrom4(tbl.Addr))
	}
	svc := tbl.Services6[dataplane.ServiceKey6{Proto: header.ProtoTCP, VIP: netip.MustParseAddr("fd00:20::100").As16(), Port: 80}]
	if svc == nil || len(svc.Reals) != 2 {
		t.Fatalf("IPv6 tun service %+v", svc)
	}
	if r := tbl.Reals[svc.Reals[0]]; r.Forward != dataplane.ForwardTUN || r.Addr6 != netip.MustParseAddr("fd00:20::11").As16() || !r.Ready {
		t.Errorf("tun real %+v", r)
	}
	if r := tbl.Reals[svc.Reals[1]]; r.Forward != dataplane.ForwardDR {
		t.Errorf("dr real %+v", r)
	}

	_, _, err = NewCompiler().Compile(mustParse(t, tun6), testLink, nil, resolveDual)
	if err == nil || !strings.Contains(err.Error(), "service[2].real[0].forward: tun to fd00:20::11 needs an IPv6 address on the director's interface eth0") ||
		strings.Contains(err.Error(), "real[1]") {
		t.Errorf("without an IPv6 address on the link: %v", err)
	}
}

// apiEdit is a gvsadm change of a TCP service.
func apiEdit(cmd, addr, real, fwd string) *api.Edit {
	return &api.Edit{Command: cmd, Protocol: "tcp", Address: addr, Real: real, Forward: fwd}
}

// TestAPIConnection6: an IPv6 connection is listed with its addresses in
// brackets, as ipvsadm -L -c -n writes them, and a FULLNAT one with its
// local address.
func TestAPIConnection6(t *testing.T) {
	e := conntrack.Entry6{
		Client: netip.MustParseAddr("fd00:10::2").As16(), ClientPort: 40000,
		VIP: netip.MustParseAddr("fd00:20::100").As16(), VPort: 53,
		Real: netip.MustParseAddr("fd00:20::13").As16(), RPort: 5353,
		Proto: 17, State: conntrack.UDP, Expires: 5e9 + 42,
	}
	got := apiConnection6(&e, 42)
	want := api.Connection{Protocol: "udp", Client: "[fd00:10::2]:40000", Virtual: "[fd00:20::100]:53", Real: "[fd00:20::13]:5353",
		State: "UDP", Expires: 5}
	if got != want {
		t.Errorf("apiConnection6 = %+v, want %+v", got, want)
	}
	// FULLNAT: its local address and port too.
	e.Local, e.LPort = netip.MustParseAddr("fd00:20::2").As16(), 1024
	want.Local = "[fd00:20::2]:1024"
	if got := apiConnection6(&e, 42); got != want {
		t.Errorf("FULLNAT apiConnection6 = %+v, want %+v", got, want)
	}
}

const fullnat6 = `
[director]
interface = "eth0"
[[service]]
address = "[fd00:20::100]:80"
forward = "fullnat"
  [[service.real]]
  address = "[fd00:20::11]:8080"
[[service]]
address = "10.20.0.100:80"
forward = "fullnat"
  [[service.real]]
  address = "10.20.0.11:8080"
`

// TestCompileFullNAT6: the local addresses are split by family, IPv6 ones
// into Table.Locals6 and Match.Locals6 on the same port range; an IPv6
// FULLNAT real without an IPv6 local address is an error at its path.
func TestCompileFullNAT6(t *testing.T) {
	lip4, lip6 := netip.MustParseAddr("10.20.0.2"), netip.MustParseAddr("fd00:20::2")
	tbl, m, err := NewCompiler().Compile(mustParse(t, fullnat6), testLink, []netip.Addr{lip4, lip6}, resolveDual)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tbl.Locals, [][4]byte{lip4.As4()}) || !slices.Equal(tbl.Locals6, [][16]byte{lip6.As16()}) {
		t.Errorf("table locals %v and %v", tbl.Locals, tbl.Locals6)
	}
	want6 := []afpacket.LocalRange6{{Addr: lip6.As16(), PortLo: 1024, PortHi: 32767}}
	if !slices.Equal(m.Locals6, want6) || len(m.Locals) != 1 {
		t.Errorf("match locals %v and %v, want one IPv4 and %v", m.Locals, m.Locals6, want6)
	}
	r := tbl.Reals[tbl.Services6[dataplane.ServiceKey6{Proto: header.ProtoTCP, VIP: netip.MustParseAddr("fd00:20::100").As16(), Port: 80}].Reals[0]]
	if r.Forward != dataplane.ForwardFullNAT || r.Addr6 != netip.MustParseAddr("fd00:20::11").As16() || r.Port != 8080 {
		t.Errorf("IPv6 FULLNAT real %+v", r)
	}

	// The interface's IPv4 address only (no global IPv6 one).
	_, _, err = NewCompiler().Compile(mustParse(t, fullnat6), testLink, []netip.Addr{lip4}, resolveDual)
	if err == nil || err.Error() != "service[0].forward: IPv6 fullnat needs an IPv6 local address: eth0 has no global IPv6 address (add one, or list one in director.local_addresses)" {
		t.Errorf("without an IPv6 local address: %v", err)
	}
	// An IPv6-only table keeps Locals empty.
	v6only := strings.Split(fullnat6, "[[service]]\naddress = \"10.20.0.100:80\"")[0]
	tbl, m, err = NewCompiler().Compile(mustParse(t, v6only), testLink, []netip.Addr{lip4, lip6}, resolveDual)
	if err != nil || len(tbl.Locals) != 0 || len(m.Locals) != 0 || len(tbl.Locals6) != 1 {
		t.Errorf("IPv6 FULLNAT only: %v, locals %v %v %v", err, tbl.Locals, m.Locals, tbl.Locals6)
	}
}

// TestOwnIPv6: the tunnel's source is the interface's first global IPv6
// address: not a link-local one, not a /128 VIP, not an IPv4 one.
func TestOwnIPv6(t *testing.T) {
	nets := func(ss ...string) []net.Addr {
		var out []net.Addr
		for _, s := range ss {
			ip, n, err := net.ParseCIDR(s)
			if err != nil {
				t.Fatal(err)
			}
			n.IP = ip
			out = append(out, n)
		}
		return out
	}
	for _, tc := range []struct {
		addrs []net.Addr
		want  string
	}{
		{nets("10.20.0.2/24", "fe80::1/64", "fd00:20::100/128", "fd00:20::2/64", "2001:db8::2/64"), "fd00:20::2"},
		{nets("10.20.0.2/24", "fe80::1/64", "fd00:20::100/128"), ""},
		{nil, ""},
	} {
		got := ownIPv6(tc.addrs)
		if (tc.want == "" && got.IsValid()) || (tc.want != "" && got != netip.MustParseAddr(tc.want)) {
			t.Errorf("ownIPv6(%v) = %v, want %q", tc.addrs, got, tc.want)
		}
	}
}
