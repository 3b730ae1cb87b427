package keepalived

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/control/config"
)

// serviceOut is one [[service]] of the output.
type serviceOut struct {
	comments    []string
	addr        netip.AddrPort
	proto       string
	protoNote   string
	sched       string
	flags       []string
	forward     string
	forwardNote string
	persistence time.Duration
	persistNote string
	netmask     int // 0: not written (32, or 128 for IPv6)
	ops         bool
	synproxy    bool
	sorry       netip.AddrPort
	sorryNote   string
	check       *checkOut // nil: no check
	reals       []realOut
}

// realOut is one [[service.real]].
type realOut struct {
	addr         netip.AddrPort
	weight       int
	upper, lower int
	forward      string // "" = the service's
	comment      string

	rs     *rsDef // what it comes from, for its check
	kaPort uint16 // its port in keepalived.conf (the VIP's if none)
}

// vsDef is a virtual_server block, read once and written once per VIP (a
// group's VIPs share it).
type vsDef struct {
	n           *node
	v6          bool // its services are IPv6
	proto       string
	protoNote   string
	sched       string
	flags       []string
	forward     string
	forwardNote string
	persistence opt[time.Duration]
	persistNote string
	netmask     opt[int] // a prefix length, of either family
	ops         opt[bool]
	synproxy    opt[bool]
	sorry       opt[netip.AddrPort] // port 0: the VIP's
	sorryFwd    opt[string]
	defaults    checkDefaults
	reals       []*rsDef
}

// rsDef is a real_server block.
type rsDef struct {
	n        *node
	addr     netip.Addr
	port     uint16 // 0: none given
	weight   int
	upper    opt[int]
	lower    opt[int]
	forward  opt[string]
	defaults checkDefaults
	checker  *checkerDef // the first one gvs can run; nil: none
}

// serviceKey is what makes a service unique: protocol, VIP and port.
type serviceKey struct {
	proto string
	addr  netip.AddrPort
}

// vipEntry is one VIP:port a virtual_server serves.
type vipEntry struct {
	addr netip.AddrPort
	pos  Pos
	via  string // the group it comes from, if any
}

// Bounds of the LVS options, from keepalived's parser.
const (
	maxGroupRange     = 256            // addresses one virtual_server_group range may stand for
	maxPersistence    = 31 * 24 * 3600 // LVS_MAX_TIMEOUT: a month, in seconds
	keepalivedPersist = 360            // IPVS_SVC_PERSISTENT_TIMEOUT: persistence_timeout alone
)

const noQuorum = "gvs has no quorum: a service serves while any real is up, and its sorry real when none is"

// vsReasons say why a virtual_server keyword has no gvs equivalent.
var vsReasons = map[string]string{
	"quorum":               noQuorum,
	"hysteresis":           noQuorum,
	"quorum_up":            noQuorum,
	"quorum_down":          noQuorum,
	"omega":                "gvs runs no quorum or notify script at shutdown",
	"virtualhost":          "gvs's http check sends the real's address as Host",
	"ha_suspend":           "gvs checks the reals whether or not it holds the VIPs",
	"smtp_alert":           emailReason,
	"snmp_name":            "gvs has no SNMP: use the metrics ([director] metrics)",
	"persistence_engine":   "gvs has no persistence engine",
	"hashed":               "gvs has no such flag",
	"sorry_server_inhibit": "gvs never checks or quiesces the sorry real",
	"laddr_group_name":     "set [director] local_addresses",
	"daddr_group_name":     "gvs has no such option",
	"blklst_group_name":    "gvs has no address blocklist",
	"whtlst_group_name":    "gvs has no address allowlist",
}

// rsReasons say why a real_server keyword has no gvs equivalent.
var rsReasons = map[string]string{
	"notify_up":   "gvs runs no script on health transitions; it logs them and gvs_real_healthy shows them",
	"notify_down": "gvs runs no script on health transitions; it logs them and gvs_real_healthy shows them",
	"virtualhost": "gvs's http check sends the real's address as Host",
	"smtp_alert":  emailReason,
	"snmp_name":   "gvs has no SNMP: use the metrics ([director] metrics)",
}

// vsShapes and rsShapes are the virtual_server and real_server keywords gvs
// carries over.
var (
	vsShapes = withShapes(defaultShapes, map[string]shape{
		"lb_algo": flat, "lvs_sched": flat, "lb_kind": flat, "lvs_method": flat, "protocol": flat,
		"persistence_timeout": flat, "persistence_granularity": flat, "ops": flat, "syn_proxy": flat,
		"sh-port": flat, "sh-fallback": flat, "mh-port": flat, "mh-fallback": flat, "flag-1": flat, "flag-2": flat, "flag-3": flat,
		"sorry_server": flat, "sorry_server_lvs_method": flat, "ip_family": flat, "real_server": either,
	})
	rsShapes = withShapes(defaultShapes, map[string]shape{
		"weight": flat, "lb_kind": flat, "lvs_method": flat, "uthreshold": flat, "lthreshold": flat,
		"TCP_CHECK": either, "HTTP_GET": either, "SSL_GET": either, "MISC_CHECK": either, "UDP_CHECK": either,
	})
)

// virtualServer maps one virtual_server block onto a [[service]] per VIP.
func (c *converter) virtualServer(n *node, groups map[string]*node, used map[string]bool) {
	args := n.args()
	var vips []vipEntry
	switch {
	case len(args) >= 1 && args[0] == "fwmark":
		c.drop(n, "gvs has no firewall-mark services: write a [[service]] per VIP and port")
		return
	case len(args) == 2 && args[0] == "group":
		g, ok := groups[args[1]]
		if !ok {
			c.drop(n, "there is no virtual_server_group "+args[1])
			return
		}
		used[args[1]] = true
		vips = c.groupVIPs(g)
	case len(args) == 1 || len(args) == 2:
		a, ok := parseIP(args[0])
		if !ok {
			c.bad(n, "virtual_server IP PORT, fwmark N or group NAME")
			return
		}
		if why := notVIP(a); why != "" {
			c.drop(n, why)
			return
		}
		port := 0
		if len(args) == 2 {
			var ok bool
			if port, ok = parseUint(args[1], 0, 65535); !ok {
				c.bad(n, "a port in 0..65535")
				return
			}
		}
		if port == 0 {
			c.drop(n, "gvs services have a port: keepalived's port 0 is a persistent all-ports service")
			return
		}
		vips = []vipEntry{{netip.AddrPortFrom(a, uint16(port)), n.pos, ""}}
	default:
		c.bad(n, "virtual_server IP PORT, fwmark N or group NAME")
		return
	}
	v6 := c.vsFamily(n, vips)
	vs, ok := c.parseVS(n, v6)
	if !ok {
		return
	}
	for _, v := range vips {
		if v.addr.Addr().Is6() == v6 {
			c.service(vs, v)
		}
	}
}

// vsFamily is the address family of a virtual_server's services (true:
// IPv6): its VIPs'. A group of both families is one keepalived refuses for a
// virtual_server whose reals are not all tunnelled ("address family doesn't
// match virtual server - ignoring"); gvs keeps its VIPs of the family that
// ip_family names, else of the first real_server, else IPv4 (keepalived's
// default), and warns about the others.
func (c *converter) vsFamily(n *node, vips []vipEntry) bool {
	has4, has6 := false, false
	for _, v := range vips {
		has4, has6 = has4 || v.addr.Addr().Is4(), has6 || v.addr.Addr().Is6()
	}
	if !has4 || !has6 {
		return has6
	}
	v6, by := false, "keepalived's default family"
	for _, s := range n.block {
		if s.keyword() == "ip_family" && len(s.args()) == 1 && (s.args()[0] == "inet" || s.args()[0] == "inet6") {
			v6, by = s.args()[0] == "inet6", "ip_family "+s.args()[0]
			break
		}
	}
	if by == "keepalived's default family" {
		for _, s := range n.block {
			if s.keyword() != "real_server" || len(s.args()) == 0 {
				continue
			}
			if a, ok := parseIP(s.args()[0]); ok {
				v6, by = a.Is6(), "the family of its first real_server"
				break
			}
		}
	}
	keep, drop := "IPv4", "IPv6"
	if v6 {
		keep, drop = drop, keep
	}
	for _, v := range vips {
		if v.addr.Addr().Is6() != v6 {
			c.warnf(v.pos, "%s VIPs: not carried over for %s (%s mixes IPv4 and IPv6, which keepalived refuses for it; gvs keeps the %s VIPs, by %s)",
				drop, n.text(), v.via, keep, by)
		}
	}
	return v6
}

// groupVIPs reads a virtual_server_group: `IP PORT`, `IP-RANGE PORT`,
// `CIDR PORT` and `fwmark N` lines.
func (c *converter) groupVIPs(g *node) []vipEntry {
	var out []vipEntry
	via := "virtual_server_group " + g.args()[0]
	for _, e := range g.block {
		if !c.shaped(e, flat) {
			continue
		}
		if e.keyword() == "fwmark" {
			c.drop(e, "gvs has no firewall-mark services: write a [[service]] per VIP and port")
			continue
		}
		addrs, why := expandRange(e.keyword())
		if why != "" {
			c.drop(e, why)
			continue
		}
		if len(e.args()) != 1 {
			if len(e.args()) == 0 {
				c.drop(e, "gvs services have a port: keepalived's port 0 is a persistent all-ports service")
			} else {
				c.bad(e, "ADDRESS[-RANGE] PORT")
			}
			continue
		}
		port, ok := parseUint(e.args()[0], 0, 65535)
		if !ok {
			c.bad(e, "a port in 0..65535")
			continue
		}
		if port == 0 {
			c.drop(e, "gvs services have a port: keepalived's port 0 is a persistent all-ports service")
			continue
		}
		for _, a := range addrs {
			out = append(out, vipEntry{netip.AddrPortFrom(a, uint16(port)), e.pos, via})
		}
	}
	return out
}

// notVIP says why a is not a VIP gvs can have ("" if it is one).
func notVIP(a netip.Addr) string {
	switch {
	case usableAny(a):
		return ""
	case a.Is6() && !a.Is4In6():
		return "gvs's IPv6 VIPs are global or unique-local unicast addresses"
	}
	return "gvs's VIPs are IPv4 or IPv6 unicast addresses"
}

// expandRange reads a group's address: A.B.C.D, A.B.C.D-E,
// A.B.C.D-E.F.G.H or A.B.C.D/N, or their IPv6 equivalents (keepalived's
// alloc_vsg_entry and inet_stor): A:B::C, A:B::C-E with E in hex, the last
// 16-bit group's end, A:B::C-A:B::D or A:B::/N. why says what is wrong with
// it.
func expandRange(s string) ([]netip.Addr, string) {
	if strings.Contains(s, ":") {
		return expandRange6(s)
	}
	const notV4 = "gvs's VIPs are IPv4 or IPv6 unicast addresses"
	var lo, hi netip.Addr
	if first, last, ok := strings.Cut(s, "-"); ok {
		var ok1 bool
		lo, ok1 = parseIP(first)
		if !ok1 || !lo.Is4() {
			return nil, notV4
		}
		if !strings.Contains(last, ".") {
			b := lo.As4()
			n, ok := parseUint(last, 0, 255)
			if !ok {
				return nil, "want A.B.C.D-E with E in 0..255"
			}
			b[3] = byte(n)
			hi = netip.AddrFrom4(b)
		} else if hi, ok1 = parseIP(last); !ok1 || !hi.Is4() {
			return nil, notV4
		}
	} else if p, err := netip.ParsePrefix(s); err == nil {
		if !p.Addr().Is4() {
			return nil, notV4
		}
		p = p.Masked()
		lo = p.Addr()
		b := lo.As4()
		u := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		u |= 1<<(32-p.Bits()) - 1
		hi = netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
	} else {
		a, ok := parseIP(s)
		if !ok || !usable(a) {
			return nil, notV4
		}
		return []netip.Addr{a}, ""
	}
	return addrRange(lo, hi, usable, notV4)
}

// expandRange6 reads an IPv6 group address for expandRange.
func expandRange6(s string) ([]netip.Addr, string) {
	const notV6 = "gvs's IPv6 VIPs are global or unique-local unicast addresses"
	var lo, hi netip.Addr
	if first, last, ok := strings.Cut(s, "-"); ok {
		var ok1 bool
		lo, ok1 = parseIP(first)
		if !ok1 || !lo.Is6() || lo.Zone() != "" {
			return nil, "not an IPv6 address"
		}
		if !strings.Contains(last, ":") {
			// keepalived reads E in hex, as the last group of the address.
			n, err := strconv.ParseUint(last, 16, 16)
			if err != nil || last == "" || last[0] == '+' || last[0] == '-' {
				return nil, "want A:B::C-E with E a hexadecimal 0..ffff, the last group's end"
			}
			b := lo.As16()
			b[14], b[15] = byte(n>>8), byte(n)
			hi = netip.AddrFrom16(b)
		} else if hi, ok1 = parseIP(last); !ok1 || !hi.Is6() || hi.Zone() != "" {
			return nil, "want A:B::C-A:B::D, two IPv6 addresses"
		}
	} else if p, err := netip.ParsePrefix(s); err == nil {
		if !p.Addr().Is6() {
			return nil, notV6
		}
		p = p.Masked()
		lo = p.Addr()
		b := lo.As16()
		for i := p.Bits(); i < 128; i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		hi = netip.AddrFrom16(b)
	} else {
		a, ok := parseIP(s)
		if !ok {
			return nil, "not an IPv6 address"
		}
		if !usable6(a) {
			return nil, notV6
		}
		return []netip.Addr{a}, ""
	}
	return addrRange(lo, hi, usable6, notV6)
}

// addrRange lists lo..hi, each of them usable, at most maxGroupRange.
func addrRange(lo, hi netip.Addr, usable func(netip.Addr) bool, notUsable string) ([]netip.Addr, string) {
	if hi.Less(lo) {
		return nil, "the range ends before it starts"
	}
	var out []netip.Addr
	for a := lo; ; a = a.Next() {
		if len(out) == maxGroupRange {
			return nil, fmt.Sprintf("more than %d addresses: write them as [[service]] tables", maxGroupRange)
		}
		if !usable(a) {
			return nil, notUsable
		}
		out = append(out, a)
		if a == hi {
			return out, ""
		}
	}
}

// parseVS reads the block of a virtual_server of one family (v6: IPv6);
// ok is false for one that gvs cannot carry over at all (SCTP).
func (c *converter) parseVS(n *node, v6 bool) (*vsDef, bool) {
	vs := &vsDef{n: n, v6: v6}
	ok := true
	for _, s := range n.block {
		k := s.keyword()
		if sh, ok := vsShapes[k]; ok && !c.shaped(s, sh) {
			continue
		}
		if c.checkDefault(s, &vs.defaults) {
			continue
		}
		switch k {
		case "lb_algo", "lvs_sched":
			if len(s.args()) != 1 {
				c.bad(s, "a scheduler")
				continue
			}
			switch a := s.args()[0]; {
			case slices.Contains(config.Schedulers(), a):
				vs.sched = a
			case a == "twos":
				c.drop(s, "gvs has no twos scheduler: it uses wlc, keepalived's default")
			default:
				c.bad(s, "one of "+strings.Join(config.Schedulers(), " "))
			}
		case "lb_kind", "lvs_method":
			if f, ok := c.method(s, v6); ok {
				vs.forward = f
			}
		case "protocol":
			switch p := strings.ToUpper(strings.Join(s.args(), " ")); p {
			case "TCP", "UDP":
				vs.proto = strings.ToLower(p)
			case "SCTP":
				c.warnf(n.pos, "%s: not carried over (gvs has no SCTP services)", n.text())
				ok = false
			default:
				c.bad(s, "TCP, UDP or SCTP")
			}
		case "persistence_timeout":
			secs := keepalivedPersist
			if len(s.args()) > 0 {
				var ok bool
				if secs, ok = c.integer(s, 1, maxPersistence); !ok {
					continue
				}
			}
			vs.persistence = some(time.Duration(secs)*time.Second, s.pos)
		case "persistence_granularity":
			if v6 {
				// keepalived takes a prefix length for an IPv6 service.
				bits, ok := 0, false
				if len(s.args()) == 1 {
					bits, ok = parseUint(s.args()[0], 1, 128)
				}
				if !ok {
					c.drop(s, "an IPv6 service takes a prefix length, 1 to 128, as keepalived does")
					continue
				}
				vs.netmask = some(bits, s.pos)
				continue
			}
			bits, ok := 0, false
			if len(s.args()) == 1 {
				bits, ok = maskBits(s.args()[0])
			}
			if !ok || bits == 0 {
				c.drop(s, "gvs takes a contiguous IPv4 netmask, /1 to /32")
				continue
			}
			vs.netmask = some(bits, s.pos)
		case "ops":
			vs.ops = some(true, s.pos)
		case "syn_proxy": // DPVS's keepalived
			vs.synproxy = some(true, s.pos)
		case "sh-port", "sh-fallback", "mh-port", "mh-fallback", "flag-1", "flag-2", "flag-3":
			vs.flags = append(vs.flags, k)
		case "sorry_server":
			if ap, ok := c.addrPort(s); ok {
				vs.sorry = some(ap, s.pos)
			}
		case "sorry_server_lvs_method":
			if f, ok := c.method(s, v6); ok {
				vs.sorryFwd = some(f, s.pos)
			}
		case "ip_family":
			switch {
			case len(s.args()) != 1 || s.args()[0] != "inet" && s.args()[0] != "inet6":
				c.bad(s, "inet or inet6")
			case (s.args()[0] == "inet6") != v6 && len(n.args()) > 0 && n.args()[0] == "group":
				c.drop(s, "the group's addresses are "+familyName(v6)+"; keepalived ignores the virtual_server for it, gvs carries it over")
			case (s.args()[0] == "inet6") != v6:
				c.drop(s, "the virtual_server's addresses are "+familyName(v6)+"; keepalived ignores it too")
			}
		case "real_server":
			if rs, ok := c.realServer(s, v6); ok {
				vs.reals = append(vs.reals, rs)
			}
		default:
			why, ok := vsReasons[k]
			if !ok {
				why = "gvs has no equivalent"
			}
			c.drop(s, why)
		}
	}
	if vs.proto == "" {
		vs.proto, vs.protoNote = "udp", "no protocol: keepalived's (the kernel's) default is UDP"
	}
	if vs.sched == "" {
		vs.sched = "wlc" // keepalived's default and gvs's
	}
	if vs.forward == "" {
		vs.forward, vs.forwardNote = "nat", "no lb_kind: keepalived's default is NAT"
	}
	c.realsOneFamily(vs)
	if vs.netmask.set && !vs.persistence.set {
		vs.persistence = some(keepalivedPersist*time.Second, vs.netmask.pos)
		vs.persistNote = "persistence_granularity without persistence_timeout: keepalived's 6 minutes"
	}
	return vs, ok
}

// realsOneFamily leaves out the reals and sorry server of the other family than
// the virtual_server's: gvs refuses a service whose reals are of two
// families, and keepalived skips them too ("Address family of virtual
// server and real server ... don't match - skipping real server"), but for
// tunnelled ones, which the kernel can encapsulate across families and gvs
// cannot. Leaving the real out, rather than the service, keeps what
// keepalived serves.
func (c *converter) realsOneFamily(vs *vsDef) {
	why := func(a netip.Addr, fwd string) string {
		if fwd == "tun" {
			return fmt.Sprintf("an %s real of an %s virtual_server: keepalived tunnels across families, gvs tunnels only to reals of the service's family", family(a), familyName(vs.v6))
		}
		return fmt.Sprintf("an %s real of an %s virtual_server: a service and its reals are of one family, and keepalived skips it too", family(a), familyName(vs.v6))
	}
	reals := vs.reals[:0]
	for _, rs := range vs.reals {
		if rs.addr.Is6() == vs.v6 {
			reals = append(reals, rs)
			continue
		}
		fwd := vs.forward
		if rs.forward.set {
			fwd = rs.forward.v
		}
		c.drop(rs.n, why(rs.addr, fwd))
	}
	vs.reals = reals
	if a := vs.sorry.v.Addr(); vs.sorry.set && a.Is6() != vs.v6 {
		c.warnf(vs.sorry.pos, "sorry_server %s: not carried over (%s)", a, strings.Replace(why(a, or(vs.forward, vs.sorryFwd).v), "real", "sorry server", 1))
		vs.sorry = opt[netip.AddrPort]{}
	}
}

// familyName names the family of v6 in messages.
func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// method parses `lb_kind|lvs_method NAT|DR|TUN [type ipip|gue port N|gre]
// [nocsum|csum|remcsum]`, and DPVS's FNAT, for a service of one family
// (v6: IPv6). keepalived's default tunnel, ipip, is IPv6-in-IPv6 for an
// IPv6 service in the kernel, as in gvs.
func (c *converter) method(n *node, v6 bool) (string, bool) {
	args := n.args()
	if len(args) == 0 {
		c.bad(n, "NAT, DR or TUN")
		return "", false
	}
	var f string
	switch strings.ToUpper(args[0]) {
	case "NAT":
		f = "nat"
	case "DR":
		f = "dr"
	case "TUN":
		f = "tun"
	case "FNAT", "FULLNAT": // DPVS's keepalived
		f = "fullnat"
	default:
		c.bad(n, "NAT, DR or TUN")
		return "", false
	}
	switch rest := args[1:]; {
	case len(rest) == 0, f == "tun" && slices.Equal(rest, []string{"type", "ipip"}):
	case f == "tun" && v6:
		c.warnf(n.pos, "%s: %s not carried over (gvs tunnels IPv6 services in IPv6-in-IPv6 only, keepalived's type ipip)", n.keyword(), strings.Join(rest, " "))
	case f == "tun":
		c.warnf(n.pos, "%s: %s not carried over (gvs tunnels in IPIP only)", n.keyword(), strings.Join(rest, " "))
	default:
		c.bad(n, "NAT, DR or TUN [type ...]")
		return "", false
	}
	return f, true
}

// addrPort parses `IP [PORT]`; a missing port is 0.
func (c *converter) addrPort(n *node) (netip.AddrPort, bool) {
	args := n.args()
	if len(args) < 1 || len(args) > 2 {
		c.bad(n, "IP [PORT]")
		return netip.AddrPort{}, false
	}
	a, ok := parseIP(args[0])
	if !ok || !usableAny(a) {
		c.drop(n, "gvs takes IPv4 unicast and global or unique-local IPv6 unicast addresses only")
		return netip.AddrPort{}, false
	}
	port := 0
	if len(args) == 2 {
		if port, ok = parseUint(args[1], 0, 65535); !ok {
			c.bad(n, "a port in 0..65535")
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(a, uint16(port)), true
}

// realServer reads a real_server block of a virtual_server of one family
// (v6: IPv6).
func (c *converter) realServer(n *node, v6 bool) (*rsDef, bool) {
	ap, ok := c.addrPort(n)
	if !ok {
		return nil, false
	}
	rs := &rsDef{n: n, addr: ap.Addr(), port: ap.Port(), weight: 1}
	var extra []*checkerDef
	for _, s := range n.block {
		k := s.keyword()
		if sh, ok := rsShapes[k]; ok && !c.shaped(s, sh) {
			continue
		}
		if c.checkDefault(s, &rs.defaults) {
			continue
		}
		switch k {
		case "weight":
			if w, ok := c.integer(s, 0, 65535); ok {
				rs.weight = w
			}
		case "lb_kind", "lvs_method":
			if f, ok := c.method(s, v6); ok {
				rs.forward = some(f, s.pos)
			}
		case "uthreshold":
			if t, ok := c.integer(s, 0, 1<<31-1); ok {
				rs.upper = some(t, s.pos)
			}
		case "lthreshold":
			if t, ok := c.integer(s, 0, 1<<31-1); ok {
				rs.lower = some(t, s.pos)
			}
		default:
			if _, isChecker := checkerTypes[k]; isChecker {
				if ck := c.checker(s); ck != nil {
					extra = append(extra, ck)
				}
				continue
			}
			why, ok := rsReasons[k]
			if !ok {
				why = "gvs has no equivalent"
			}
			c.drop(s, why)
		}
	}
	if rs.lower.set && (!rs.upper.set || rs.upper.v == 0) {
		c.warnf(rs.lower.pos, "lthreshold %d: not carried over (without uthreshold there is nothing to go below)", rs.lower.v)
		rs.lower = opt[int]{}
	} else if rs.lower.set && rs.lower.v > rs.upper.v {
		c.warnf(rs.lower.pos, "lthreshold %d: not carried over (above uthreshold %d, which IPVS refuses)", rs.lower.v, rs.upper.v)
		rs.lower = opt[int]{}
	}
	if len(extra) > 0 {
		rs.checker = extra[0]
		for _, ck := range extra[1:] {
			c.drop(ck.n, fmt.Sprintf("gvs runs one check per real: the first, %s at %s", extra[0].n.keyword(), extra[0].n.pos))
		}
	}
	return rs, true
}

// service writes one [[service]]: the virtual_server vs at one of its VIPs.
func (c *converter) service(vs *vsDef, vip vipEntry) {
	key := serviceKey{vs.proto, vip.addr}
	if other, ok := c.byKey[key]; ok {
		c.warnf(vip.pos, "%s %s: not carried over (already a service: %s)", vs.proto, vip.addr, other.comments[0])
		return
	}
	s := &serviceOut{
		addr: vip.addr, proto: vs.proto, protoNote: vs.protoNote, sched: vs.sched,
		forward: vs.forward, forwardNote: vs.forwardNote, persistence: vs.persistence.v, persistNote: vs.persistNote,
	}
	head := vs.n.pos.String() + ": " + vs.n.text()
	if vip.via != "" {
		head += " (" + vip.pos.String() + ": " + vip.via + ")"
	}
	s.comments = []string{head}
	if def := map[bool]int{false: 32, true: 128}[vs.v6]; vs.netmask.set && vs.netmask.v != def {
		s.netmask = vs.netmask.v
	}
	if vs.ops.set {
		if vs.proto == "udp" {
			s.ops = true
		} else {
			c.warnf(vs.ops.pos, "ops: not carried over (one-packet scheduling is for UDP; keepalived drops it too)")
		}
	}
	s.flags = c.schedFlags(vs)

	seen := map[netip.AddrPort]int{} // real → index in s.reals
	for _, rs := range vs.reals {
		fwd := or(vs.forward, rs.forward).v
		kaPort := rs.port
		if kaPort == 0 {
			kaPort = vip.addr.Port()
		}
		r := realOut{addr: netip.AddrPortFrom(rs.addr, kaPort), weight: rs.weight, upper: rs.upper.v, lower: rs.lower.v, rs: rs, kaPort: kaPort}
		if rs.forward.set && fwd != vs.forward {
			r.forward = fwd
		}
		if (fwd == "dr" || fwd == "tun") && kaPort != vip.addr.Port() {
			r.addr = netip.AddrPortFrom(rs.addr, vip.addr.Port())
			r.comment = fmt.Sprintf("port %d in keepalived.conf: %s keeps the VIP's port; its check keeps %d", kaPort, fwd, kaPort)
		}
		if i, ok := seen[r.addr]; ok {
			c.warnf(rs.n.pos, "%s: not carried over (the same real as %s, at %s)", rs.n.text(), r.addr, s.reals[i].rs.n.pos)
			continue
		}
		seen[r.addr] = len(s.reals)
		s.reals = append(s.reals, r)
	}
	c.sorry(vs, s)
	c.synproxy(vs, s)
	s.check = c.serviceCheck(vs, s)
	c.services = append(c.services, s)
	c.byKey[key] = s
}

// schedFlags maps sh-port, sh-fallback, mh-port, mh-fallback and
// ipvsadm's flag-1 (…-fallback) and flag-2 (…-port) of sh and mh.
func (c *converter) schedFlags(vs *vsDef) []string {
	var out []string
	for _, f := range vs.flags {
		g := f
		switch f {
		case "flag-1":
			g = vs.sched + "-fallback"
		case "flag-2":
			g = vs.sched + "-port"
		}
		switch {
		case !strings.HasPrefix(g, "sh-") && !strings.HasPrefix(g, "mh-"), !strings.HasPrefix(g, vs.sched+"-"):
			c.warnf(vs.n.pos, "%s: not carried over (gvs has no such flag for scheduler %s)", f, vs.sched)
		case !slices.Contains(out, g):
			out = append(out, g)
		}
	}
	return out
}

// sorry maps sorry_server and sorry_server_lvs_method.
func (c *converter) sorry(vs *vsDef, s *serviceOut) {
	if !vs.sorry.set {
		return
	}
	ap := vs.sorry.v
	if ap.Port() == 0 {
		ap = netip.AddrPortFrom(ap.Addr(), s.addr.Port())
	}
	if vs.sorryFwd.set && vs.sorryFwd.v != s.forward {
		c.warnf(vs.sorryFwd.pos, "sorry_server_lvs_method: not carried over (gvs's sorry real uses the service's forward, %s)", s.forward)
	}
	if (s.forward == "dr" || s.forward == "tun") && ap.Port() != s.addr.Port() {
		s.sorryNote = fmt.Sprintf("port %d in keepalived.conf: %s keeps the VIP's port", ap.Port(), s.forward)
		ap = netip.AddrPortFrom(ap.Addr(), s.addr.Port())
	}
	if slices.ContainsFunc(s.reals, func(r realOut) bool { return r.addr == ap }) {
		c.warnf(vs.sorry.pos, "sorry_server %s: not carried over (it is also a real_server)", ap)
		return
	}
	s.sorry = ap
}

// synproxy keeps DPVS's syn_proxy where gvs can do it: TCP, nat and fullnat.
func (c *converter) synproxy(vs *vsDef, s *serviceOut) {
	if !vs.synproxy.set {
		return
	}
	nat := func(f string) bool { return f == "nat" || f == "fullnat" }
	realNAT := func(r realOut) bool { return nat(r.forward) || r.forward == "" && nat(s.forward) }
	switch {
	case s.proto != "tcp":
		c.warnf(vs.synproxy.pos, "syn_proxy: not carried over (the SYN proxy is for TCP)")
	case !nat(s.forward) && s.sorry.IsValid():
		c.warnf(vs.synproxy.pos, "syn_proxy: not carried over (the SYN proxy needs the sorry real in nat or fullnat)")
	case slices.ContainsFunc(s.reals, func(r realOut) bool { return !realNAT(r) }):
		c.warnf(vs.synproxy.pos, "syn_proxy: not carried over (the SYN proxy needs every real in nat or fullnat)")
	default:
		s.synproxy = true
	}
}
