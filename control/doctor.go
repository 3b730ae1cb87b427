package control

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/arpctl"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/control/vrrp"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/offload"
)

// Doctor checks the director's setup as it runs (gvsadm doctor): the
// interface, the offloads that would hand the dataplane frames larger
// than the MTU, the ingress table, the FULLNAT ports against the kernel's
// ephemeral ports, every real's next hop (on the LAN for DR), that a
// FULLNAT real with proxy_protocol expects the header (a probe), the VIPs
// against the VRRP state, VRRP peers configured differently, and connection
// sync. Each problem comes with the
// command that fixes it.
func (d *Daemon) Doctor() []api.Check {
	cfg := d.Config()
	iface := d.link.Name
	var out []api.Check
	out = append(out, checkInterface(iface))
	if n := d.relinks.Load(); n > 0 {
		out = append(out, ok("links", fmt.Sprintf("reopened %d times after %s came back (flaps or a recreated interface)", n, iface)))
	}
	for _, f := range []offload.Feature{offload.GRO, offload.LRO} {
		on, err := offload.Get(iface, f)
		out = append(out, checkOffload(iface, f, on, err, cfg.Director.DisableGRO))
	}
	if d.ingress != nil {
		out = append(out, checkIngress(d.ingress.Check()))
		if c, err := d.ingress.Counters(); err == nil && c.Left > 0 {
			out = append(out, checkIngressLeft(c.Left))
		}
	}
	if usesFullNAT(cfg) {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		out = append(out, checkPortRange(cfg.Director.LocalPorts, string(b), err))
	}
	d.mu.Lock()
	macs, offLink := maps(d.macs), maps(d.offLink)
	held := map[netip.Addr]bool{}
	for vip := range d.vips {
		held[vip] = true
	}
	gateway := d.gateway
	d.mu.Unlock()
	out = append(out, checkReals(cfg, iface, macs, offLink)...)
	if v6 := ipv6VIPs(cfg); len(v6) > 0 {
		disabled, err := arpctl.ReadSysctl("net/ipv6/conf/" + iface + "/disable_ipv6")
		out = append(out, checkIPv6Link(iface, linkAddr6(iface), strings.TrimSpace(disabled), err))
	}
	out = append(out, checkNATReturn(d.dp.Table(), d.link.Addr, linkAddr6(iface))...)
	out = append(out, checkProxyReals(context.Background(), cfg)...)
	master := d.holdsVIPs(cfg)
	for _, vip := range append(serviceVIPs(cfg), ipv6VIPs(cfg)...) {
		has, err := arpctl.HasVIP(iface, vip)
		out = append(out, checkVIP(iface, vip, master, has, err))
	}
	if own, _ := bgpLocals(cfg); len(own) > 0 && d.bgp != nil {
		// Announced over BGP: the reals reach them through the routers,
		// whether or not they are on the interface.
		announced := d.bgp.Announced()
		for _, a := range own {
			out = append(out, checkLocalBGP(a, slices.Contains(announced, vipPrefix(a))))
		}
	} else if usesFullNAT(cfg) && len(cfg.Director.LocalAddresses) > 0 {
		vrrpOn := cfg.VRRP.RouterID != 0
		for _, a := range cfg.Director.LocalAddresses {
			has, err := ifaceHas(iface, a)
			out = append(out, checkLocal(iface, a, vrrpOn, slices.Contains(vrrpAddresses(cfg), a), master, has, err))
		}
	}
	if cfg.VRRP.RouterID != 0 && d.speaker != nil {
		out = append(out, checkVRRP(cfg.VRRP, d.vrrpMismatches(), time.Now()))
	}
	if cfg.Sync.Enabled {
		_, gwKnown := macs[gateway]
		out = append(out, checkSync(cfg, gateway, gwKnown))
	}
	if st := d.bgpStatus(); st != nil {
		out = append(out, checkBGP(cfg, st)...)
	}
	return out
}

// checkBGP: every peer's session must be established (a router without
// one has no route from this director); a VIP withdrawn while gvsd runs is
// a warning (no ready real); the routers may move a flow from one
// director to another, so [sync] should be on (the other director then
// knows the connection) and every service should use mh or sh, the
// schedulers that give every director the same real for a flow.
func checkBGP(cfg *config.Config, st *api.BGPStatus) []api.Check {
	var out []api.Check
	families := "IPv4 unicast, accepting /32s"
	v6 := ipv6VIPs(cfg)
	if len(v6) > 0 {
		families = "IPv4 unicast accepting /32s and IPv6 unicast accepting /128s (BIRD: an ipv4 and an ipv6 channel)"
	}
	for _, p := range st.Peers {
		name := "bgp peer " + p.Address
		if p.Established {
			out = append(out, ok(name, fmt.Sprintf("established with AS %d for %v, %d UPDATEs sent", p.AS, time.Duration(p.Uptime)*time.Second, p.UpdatesSent)))
			continue
		}
		// The router sees the session come from the director's address of
		// the peer's family.
		neighbor := cfg.Director.Interface + "'s address " + st.NextHop
		if a, err := netip.ParseAddr(p.Address); err == nil && a.Is6() {
			neighbor = cfg.Director.Interface + "'s IPv6 address"
			if st.NextHop6 != "" {
				neighbor += " " + st.NextHop6
			}
		}
		out = append(out, fail(name, fmt.Sprintf("session %s, not established: the router gets no route to the VIPs from this director", p.State),
			fmt.Sprintf("on %s, configure a BGP neighbor %s with remote AS %d (%s) and the same TCP MD5 password if any; check that %s reaches TCP port 179 on it (nc -z %s 179)",
				p.Address, neighbor, st.LocalAS, families, cfg.Director.Interface, p.Address)))
	}
	if len(v6) > 0 && st.NextHop6 == "" {
		out = append(out, fail("bgp ipv6", fmt.Sprintf("no IPv6 next hop: the IPv6 VIPs %v are not announced (%s has no global IPv6 address)", v6, cfg.Director.Interface),
			"give "+cfg.Director.Interface+" a global IPv6 address on the routers' LAN, or set bgp.next_hop6"))
	}
	nextHops := "next hop " + st.NextHop
	if st.NextHop6 != "" {
		nextHops += ", IPv6 next hop " + st.NextHop6
	}
	switch {
	case st.Stopping:
		out = append(out, warn("bgp", "gvsd is stopping: every VIP withdrawn, forwarding until [bgp] drain ends", ""))
	case !st.Learning.IsZero():
		out = append(out, warn("bgp", fmt.Sprintf("nothing announced until %s: learning the other directors' connections from their next [sync] refresh",
			st.Learning.Format(time.TimeOnly)), ""))
	case len(st.Withdrawn) > 0:
		out = append(out, warn("bgp", fmt.Sprintf("withdrawn: %s (no real ready: every real down, quiesced or unresolved); announced: %s",
			strings.Join(st.Withdrawn, " "), orNone(st.Announced)), "gvsadm -Ln --health shows each real's check"))
	default:
		out = append(out, ok("bgp", fmt.Sprintf("announced: %s, %s", orNone(st.Announced), nextHops)))
	}
	if !cfg.Sync.Enabled {
		out = append(out, warn("bgp sync", "no [sync]: when the routers move an established flow to another director (one joins or leaves the ECMP set), that director has no connection for it and drops its segments, and the connection stalls",
			"add [sync] on every director (multicast by default): each then installs the connections the others schedule"))
	}
	for i, s := range cfg.Services {
		if s.Scheduler != "mh" && s.Scheduler != "sh" {
			out = append(out, warn("bgp scheduler "+s.Name, fmt.Sprintf("scheduler %s with [bgp]: when the routers move a flow to another director (one joins or leaves the ECMP set), that director may pick another real and the connection breaks",
				s.Scheduler), fmt.Sprintf(`set service[%d].scheduler = "mh" (Maglev hashing; or "sh"), the same on every director`, i)))
		}
		if natTranslated(&s) {
			out = append(out, warn("bgp nat "+s.Name, "NAT with synproxy or proxy_protocol under [bgp]: a real's replies come back through the director that holds its route, which cannot translate the sequence numbers of a connection another director opened (the first SYN-ACK always beats sync), so those connections stall or break",
				fmt.Sprintf("use forward = \"fullnat\" for service[%d] (each director's local address brings its replies back to it), or drop synproxy and proxy_protocol", i)))
		}
	}
	return out
}

// natTranslated reports whether s has a NAT real whose segments the
// director translates (synproxy, a PROXY header): its replies need the
// connection, not only the service (dataplane.Table.NATReplies).
func natTranslated(s *config.Service) bool {
	for _, r := range s.Reals {
		if r.Forward == config.NAT && (s.SynProxy || r.ProxyProtocol != "") {
			return true
		}
	}
	return false
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, " ")
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// serviceVIPs are the IPv4 VIPs of cfg's services, sorted: the ones gvsd
// puts on the interface, announces, and moves with VRRP or advertises with
// BGP. IPv6 VIPs (ipv6VIPs) go on the interface as /128, are announced
// with neighbour advertisements and move with VRRP too (VRRPv3 over IPv6);
// config.Validate refuses them beside [bgp], which does not carry them
// yet.
func serviceVIPs(cfg *config.Config) []netip.Addr {
	var out []netip.Addr
	for _, s := range cfg.Services {
		if a := s.Address.Addr(); a.Is4() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// ipv6VIPs are the IPv6 VIPs of cfg's services, sorted.
func ipv6VIPs(cfg *config.Config) []netip.Addr {
	var out []netip.Addr
	for _, s := range cfg.Services {
		if a := s.Address.Addr(); a.Is6() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func ok(name, detail string) api.Check { return api.Check{Name: name, Status: "ok", Detail: detail} }
func fail(name, detail, fix string) api.Check {
	return api.Check{Name: name, Status: "fail", Detail: detail, Fix: fix}
}
func warn(name, detail, fix string) api.Check {
	return api.Check{Name: name, Status: "warn", Detail: detail, Fix: fix}
}

func checkInterface(iface string) api.Check {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return fail("interface", err.Error(), "set director.interface to an interface of this host (ip -br link)")
	}
	if ifi.Flags&net.FlagUp == 0 {
		return fail("interface", iface+" is down", "ip link set dev "+iface+" up")
	}
	return ok("interface", fmt.Sprintf("%s up, MTU %d", iface, ifi.MTU))
}

// checkOffload: GRO or LRO on merges frames before the dataplane's socket
// sees them; the dataplane forwards merged frames as GSO frames (TUN cuts
// them itself), so either way is fine unless director.disable_gro asked
// gvsd to keep them off.
func checkOffload(iface string, f offload.Feature, on bool, err error, wantOff bool) api.Check {
	name := f.String()
	switch {
	case err != nil:
		return warn(name, "cannot read: "+err.Error(), "ethtool -k "+iface)
	case on && wantOff:
		short := map[offload.Feature]string{offload.GRO: "gro", offload.LRO: "lro"}[f]
		return fail(name, "on, but director.disable_gro asks for it off", "ethtool -K "+iface+" "+short+" off")
	case on:
		return ok(name, "on: merged frames are forwarded as GSO frames (TUN segments them)")
	}
	return ok(name, "off")
}

func checkIngress(err error) api.Check {
	if err != nil {
		return fail("ingress table", err.Error()+": the kernel also sees the dataplane's frames and answers them with resets",
			"restart gvsd (it installs table netdev gvs again)")
	}
	return ok("ingress table", "table netdev gvs in place")
}

// checkIngressLeft: IPv6 frames to a VIP (or from a NAT real) that the
// dataplane could not take went to the director's kernel, which answers
// for a VIP with resets.
func checkIngressLeft(n uint64) api.Check {
	return warn("ingress ipv6", fmt.Sprintf("%d IPv6 frames to a VIP or from a NAT real carried extension headers gvsd does not walk (a fourth header, a type twice, a routing header with segments left, AH, ESP, destination options behind a fragment header) and went to the kernel, which answers them with resets", n),
		"find their senders with gvsadm capture or tcpdump 'ip6 and not (ip6[6] == 6 or ip6[6] == 17)'; gvsd walks up to three of hop-by-hop, destination options and routing with no segments left")
}

// checkPortRange: FULLNAT local ports must not be ports the kernel hands
// its own connections (net.ipv4.ip_local_port_range, read as text).
func checkPortRange(r config.PortRange, text string, err error) api.Check {
	const name = "fullnat ports"
	if err != nil {
		return warn(name, "cannot read net.ipv4.ip_local_port_range: "+err.Error(), "sysctl net.ipv4.ip_local_port_range")
	}
	f := strings.Fields(text)
	if len(f) != 2 {
		return warn(name, fmt.Sprintf("net.ipv4.ip_local_port_range is %q", text), "sysctl net.ipv4.ip_local_port_range")
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return warn(name, fmt.Sprintf("net.ipv4.ip_local_port_range is %q", text), "sysctl net.ipv4.ip_local_port_range")
	}
	if int(r.Lo) <= hi && int(r.Hi) >= lo {
		fix := fmt.Sprintf("change director.local_ports to a range outside %d-%d", lo, hi)
		if int(r.Hi)+1 < 65535 {
			fix = fmt.Sprintf("sysctl -w net.ipv4.ip_local_port_range=\"%d %d\" (or %s)", int(r.Hi)+1, max(hi, int(r.Hi)+1001), fix)
		}
		return fail(name, fmt.Sprintf("director.local_ports %s overlaps the kernel's ephemeral ports %d-%d", r, lo, hi), fix)
	}
	return ok(name, fmt.Sprintf("director.local_ports %s, kernel ephemeral ports %d-%d", r, lo, hi))
}

// checkReals: every real needs a known next hop; a DR real must be on the
// director's LAN, since DR only rewrites the MAC.
func checkReals(cfg *config.Config, iface string, macs map[netip.Addr][6]byte, offLink map[netip.Addr]bool) []api.Check {
	var out []api.Check
	seen := map[netip.Addr]bool{}
	for _, s := range cfg.Services {
		for _, r := range s.Reals {
			a := r.Address.Addr()
			if seen[a] {
				continue
			}
			seen[a] = true
			name := "real " + a.String()
			mac, known := macs[a]
			switch {
			case !known && a.Is6():
				out = append(out, fail(name, "next hop not resolved: the real gets no traffic",
					fmt.Sprintf("check that %s is up and reachable from %s: ip -6 route get %s; ping -6 -I %s %s; ip -6 neigh show dev %s", a, iface, a, iface, a, iface)))
			case !known:
				out = append(out, fail(name, "next hop not resolved: the real gets no traffic",
					fmt.Sprintf("check that %s is up and reachable from %s: ip route get %s; arping -I %s %s", a, iface, a, iface, a)))
			case r.Forward == config.DR && offLink[a]:
				out = append(out, fail(name, "forward dr, but its next hop is a gateway: DR rewrites only the MAC, so the real must be on the LAN of "+iface,
					"put "+a.String()+" on the LAN of "+iface+`, or use forward = "tun" or "nat" for it`))
			default:
				out = append(out, ok(name, fmt.Sprintf("%s, next hop %s", r.Forward, net.HardwareAddr(mac[:]))))
			}
		}
	}
	return out
}

// checkVIP: a VIP is on the interface exactly while this director holds
// the VIPs (always without VRRP; as master with it).
func checkVIP(iface string, vip netip.Addr, master, has bool, err error) api.Check {
	name := "vip " + vip.String()
	switch {
	case err != nil && vip.Is6():
		return warn(name, err.Error(), "ip -6 addr show dev "+iface)
	case err != nil:
		return warn(name, err.Error(), "ip -4 addr show dev "+iface)
	case master && !has && vip.Is6():
		// Deprecated (preferred_lft 0), as gvsd adds it: never the source
		// of the director's own connections (arpctl.AddVIP).
		return fail(name, "not on "+iface+": the LAN cannot reach the services", fmt.Sprintf("ip -6 addr add %s/128 dev %s nodad preferred_lft 0", vip, iface))
	case master && !has:
		return fail(name, "not on "+iface+": the LAN cannot reach the services", fmt.Sprintf("ip addr add %s/32 dev %s", vip, iface))
	case !master && has && vip.Is6():
		return fail(name, "on "+iface+" while this director is VRRP backup: it answers neighbour solicitations against the master",
			fmt.Sprintf("ip -6 addr del %s/128 dev %s", vip, iface))
	case !master && has:
		return fail(name, "on "+iface+" while this director is VRRP backup: it answers ARP against the master",
			fmt.Sprintf("ip addr del %s/%d dev %s", vip, vip.BitLen(), iface))
	case master:
		return ok(name, "on "+iface)
	}
	return ok(name, "not on "+iface+" (VRRP backup)")
}

// checkIPv6Link: IPv6 services need IPv6 on the interface (disable_ipv6
// 0, the text of net.ipv6.conf.<iface>.disable_ipv6) and a global IPv6
// address of the director's own (addr6, invalid if none): the source of
// its neighbour solicitations for the reals and of its health checks, the
// gateway of IPv6 NAT reals, the BGP IPv6 next hop.
func checkIPv6Link(iface string, addr6 netip.Addr, disabled string, err error) api.Check {
	const name = "ipv6"
	switch {
	case err != nil:
		return warn(name, "cannot read net.ipv6.conf."+iface+".disable_ipv6: "+err.Error(), "sysctl net.ipv6.conf."+iface+".disable_ipv6")
	case disabled != "0":
		return fail(name, "IPv6 is disabled on "+iface+" (net.ipv6.conf."+iface+".disable_ipv6 = "+disabled+"): the IPv6 VIPs cannot be added",
			"sysctl -w net.ipv6.conf."+iface+".disable_ipv6=0")
	case !addr6.IsValid():
		return fail(name, iface+" has no global IPv6 address of its own: the director cannot resolve its IPv6 reals, check them, or be their NAT gateway",
			"ip -6 addr add ADDRESS/64 dev "+iface+" (an address on the reals' LAN)")
	}
	return ok(name, "on "+iface+", address "+addr6.String())
}

// natReturnMin is how many packets a NAT real must have been sent, with
// none coming back through the director, before the doctor says its
// replies take another route: a handshake in flight or a UDP request
// without an answer is well below it.
const natReturnMin = 20

// checkNATReturn: a NAT real's replies must come back through the
// director, which translates them back to the VIP; a real that was sent
// natReturnMin packets and answered none through it routes its replies
// around the director (its default route, or its route to the clients,
// is not the director's address addr, addr6 for IPv6).
func checkNATReturn(t *dataplane.Table, addr, addr6 netip.Addr) []api.Check {
	if t == nil {
		return nil
	}
	var out []api.Check
	for i := range t.Reals {
		r := &t.Reals[i]
		if r.Forward != dataplane.ForwardNAT || r.Stats == nil {
			continue
		}
		in, back := r.Stats.InPkts.Load(), r.Stats.OutPkts.Load()
		if in < natReturnMin || back > 0 {
			continue
		}
		a := realAddr(r)
		fix := fmt.Sprintf("on %s: ip route replace default via %s (or a route to the clients via it)", a.Addr(), addr)
		if a.Addr().Is6() {
			gw := "THE_DIRECTOR'S_IPV6_ADDRESS"
			if addr6.IsValid() {
				gw = addr6.String()
			}
			fix = fmt.Sprintf("on %s: ip -6 route replace default via %s (or a route to the clients via it)", a.Addr(), gw)
		}
		out = append(out, warn("nat return "+a.String(),
			fmt.Sprintf("%d packets sent to it and no reply came back through this director: its replies to the clients take another route and reach them untranslated (or it answers nothing at all)", in),
			fix))
	}
	return out
}

// ifaceHas reports whether a is an address of iface, with any prefix.
func ifaceHas(iface string, a netip.Addr) (bool, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return false, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false, err
	}
	for _, x := range addrs {
		if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr().Unmap() == a {
			return true, nil
		}
	}
	return false, nil
}

// checkLocal checks a configured FULLNAT local address: the reals answer
// it, so it must be on the interface of the director that forwards (with
// VRRP, the master holds it when it is in vrrp.addresses), and with VRRP it
// should be in vrrp.addresses, or the reals' replies do not follow a
// failover.
func checkLocal(iface string, a netip.Addr, vrrpOn, inVRRP, master, has bool, err error) api.Check {
	name := "local address " + a.String()
	held := vrrpOn && inVRRP // VRRP adds and removes it
	// An IPv6 local address is a /128 (nodad: the director must answer
	// for it at once) and is found by neighbour discovery, not ARP.
	show, add, del, asked := "ip -4 addr show dev "+iface, fmt.Sprintf("ip addr add %s/32 dev %s", a, iface), fmt.Sprintf("ip addr del %s/32 dev %s", a, iface), "ARP"
	if a.Is6() {
		show, add, del, asked = "ip -6 addr show dev "+iface, fmt.Sprintf("ip -6 addr add %s/128 dev %s nodad", a, iface), fmt.Sprintf("ip -6 addr del %s/128 dev %s", a, iface), "neighbour solicitations"
	}
	switch {
	case err != nil:
		return warn(name, err.Error(), show)
	case (!held || master) && !has:
		fix := add
		if vrrpOn {
			fix = "list it in [vrrp] addresses with the VIPs, or " + fix
		}
		return fail(name, "not on "+iface+": the real servers' FULLNAT replies to it reach no one", fix)
	case held && !master && has:
		return fail(name, "on "+iface+" while this director is VRRP backup: it answers "+asked+" against the master", del)
	case vrrpOn && !inVRRP:
		return warn(name, "not in [vrrp] addresses: after a failover the reals still answer this director, so FULLNAT connections do not survive it",
			"list it in [vrrp] addresses with the VIPs (give both directors the same local_addresses)")
	case held && !master:
		return ok(name, "not on "+iface+" (VRRP backup)")
	}
	return ok(name, "on "+iface)
}

// checkLocalBGP: a local address announced over BGP (bgp.peer_local_addresses)
// is fine while it is announced; until then (learning, or stopping) the
// other directors carry its replies.
func checkLocalBGP(a netip.Addr, announced bool) api.Check {
	name := "local address " + a.String()
	if !announced {
		return warn(name, "not announced over BGP yet (learning the other directors' connections, or stopping): the routers send the reals' replies to it to the other directors", "")
	}
	return ok(name, "announced over BGP (the reals reach it through the routers; the other directors announce it as a fallback)")
}

// checkVRRP fails while a peer sends, or sent and has not resigned since,
// adverts for our router_id that this director drops for another version,
// authentication or interval (open, the speaker's open Mismatches):
// neither side accepts the other's adverts, so both may be master. Silence
// does not close one: a keepalived master stops advertising while it hears
// adverts it drops.
func checkVRRP(v config.VRRP, open []vrrp.Mismatch, now time.Time) api.Check {
	if len(open) == 0 {
		auth := ""
		if v.Version == 2 {
			auth = ", auth_type " + v.AuthType
		}
		return ok("vrrp", fmt.Sprintf("VRRPv%d router_id %d%s: no peer sends adverts for it configured otherwise", v.Version, v.RouterID, auth))
	}
	// The peer heard last first: the likeliest to be master now.
	m := slices.MaxFunc(open, func(a, b vrrp.Mismatch) int { return a.At.Compare(b.At) })
	detail, fix := mismatchText(v, m)
	detail += fmt.Sprintf(", heard since %s, last %v ago: neither side accepts the other's adverts, so both may be master and hold the VIPs",
		m.Since.UTC().Format(time.RFC3339), now.Sub(m.At).Round(time.Second))
	if n := len(open) - 1; n > 0 {
		detail += fmt.Sprintf("; %d more peer(s) too, see gvsadm -L --json", n)
	}
	return fail("vrrp", detail, fix+"; this clears when the peer sends adverts this director accepts, or priority 0 as it stops")
}

// checkSync: sync follows VIP possession, so without VRRP a director
// always sends; replies of synced NAT connections need the gateway's MAC.
func checkSync(cfg *config.Config, gateway netip.Addr, gwKnown bool) api.Check {
	switch {
	case cfg.VRRP.RouterID == 0:
		return warn("sync", "[sync] without [vrrp]: this director always holds the VIPs, so it only sends and never installs a peer's connections",
			"add [vrrp] to both directors")
	case !gateway.IsValid():
		return warn("sync", "no IPv4 default route with a gateway: replies of a synced NAT connection wait for its client's next packet",
			"ip route add default via GATEWAY dev "+cfg.Director.Interface)
	case !gwKnown:
		return warn("sync", "the default gateway "+gateway.String()+" is not resolved yet", "ip neigh show "+gateway.String())
	}
	return ok("sync", "on; default gateway "+gateway.String()+" resolved")
}
