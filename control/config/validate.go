package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks a Config against every rule Parse applies after decoding, and returns
// nil or *Errors with every problem found. It is for configs built or edited in code (by
// the control plane, from gvsadm commands): it fills no defaults and resolves nothing, so
// a Service needs its Name, Protocol, Scheduler and Forward set, and a Real its Forward
// and a non-zero port. A Config returned by Parse always passes.
func Validate(c *Config) error {
	v := validator{}
	v.config(c)
	if len(v.errs) > 0 {
		v.errs.sort()
		return &v.errs
	}
	return nil
}

// validator checks typed values; it stays silent about paths the decoder already
// reported (bad) and everything below them.
type validator struct {
	errs Errors
	bad  map[string]bool
}

func (v *validator) addf(path, format string, args ...any) {
	if v.skip(path) {
		return
	}
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// skip reports whether path, or a path it is inside of, was already reported.
func (v *validator) skip(path string) bool {
	if len(v.bad) == 0 {
		return false
	}
	for p := path; p != ""; {
		if v.bad[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
	return false
}

func (v *validator) config(c *Config) {
	v.director(&c.Director)

	for _, t := range []struct {
		path string
		d    interface{ String() string }
		ok   bool
	}{
		{"timeouts.tcp", c.Timeouts.TCP, c.Timeouts.TCP > 0},
		{"timeouts.tcp_fin", c.Timeouts.TCPFin, c.Timeouts.TCPFin > 0},
		{"timeouts.udp", c.Timeouts.UDP, c.Timeouts.UDP > 0},
	} {
		if !t.ok {
			v.addf(t.path, "%s is not positive", t.d)
		}
	}

	if c.Timeouts.Drain < 0 {
		v.addf("timeouts.drain", "%s is negative", c.Timeouts.Drain)
	}

	if n := c.Limits.Connections; n < 1 || n > maxConnections {
		v.addf("limits.connections", "%d is out of range 1..%d", n, maxConnections)
	}

	v.services(c.Services)
	v.fullnatLocals(c)
	v.vrrp(&c.VRRP)
	v.sync(&c.Sync)
	v.bgp(&c.BGP)
	v.bgpLocals(c)
	v.bgpWithVRRP(c)
	v.vrrpIPv6(c)
}

func (v *validator) bgp(b *BGP) {
	if !b.Enabled {
		return
	}
	if b.LocalAS == 0 {
		v.addf("bgp.local_as", "required")
	} else if msg := checkAS(b.LocalAS); msg != "" {
		v.addf("bgp.local_as", "%s", msg)
	}
	if b.RouterID.IsValid() {
		if !b.RouterID.Is4() || b.RouterID.IsUnspecified() || b.RouterID.IsMulticast() || b.RouterID == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			v.addf("bgp.router_id", "%s is not a usable IPv4 address (a BGP identifier is a unicast IPv4 address, RFC 6286)", b.RouterID)
		}
	}
	// RFC 4271 section 4.2: the Hold Time is 0 or at least three seconds, in
	// whole seconds on 16 bits.
	if h := b.HoldTime; h != 0 && (h < 3*time.Second || h > 65535*time.Second || h%time.Second != 0) {
		v.addf("bgp.hold_time", "%s is not 0 or a whole number of seconds in 3s..65535s (RFC 4271)", h)
	}
	if a := b.NextHop; a.IsValid() {
		if a.Is6() && !a.Is4In6() {
			v.addf("bgp.next_hop", "%s is an IPv6 address: the IPv6 VIPs' next hop is bgp.next_hop6", a)
		} else if msg := checkAddr(a); msg != "" {
			v.addf("bgp.next_hop", "%s", msg)
		}
	}
	if a := b.NextHop6; a.IsValid() {
		if !a.Is6() || a.Is4In6() {
			v.addf("bgp.next_hop6", "%s is not an IPv6 address (bgp.next_hop is the IPv4 one)", a)
		} else if msg := checkAddrPort(netip.AddrPortFrom(a, 0)); msg != "" {
			v.addf("bgp.next_hop6", "%s", msg)
		}
	}
	if b.Drain < 0 {
		v.addf("bgp.drain", "%s is negative", b.Drain)
	}
	if b.MED < -1 || b.MED > maxAS {
		v.addf("bgp.med", "%d is out of range 0..%d", b.MED, maxAS)
	}
	for i, c := range b.Communities {
		if _, err := ParseCommunity(c); err != nil {
			v.addf(index("bgp.communities", i), "%s %s", quote(c), communityWant)
		}
	}
	if len(b.Peers) == 0 {
		v.addf("bgp.peer", "at least one [[bgp.peer]] is required")
	}
	seen := make(map[netip.Addr]int, len(b.Peers))
	for i := range b.Peers {
		p := &b.Peers[i]
		path := index("bgp.peer", i)
		ap := join(path, "address")
		// A peer may be IPv4 or IPv6: over either session both unicast
		// families are announced (MP-BGP, RFC 4760).
		if msg := checkAddrPort(netip.AddrPortFrom(p.Address, 0)); msg != "" {
			v.addf(ap, "%s", msg)
		} else if j, ok := seen[p.Address]; ok {
			v.addf(ap, "%s is already bgp.peer[%d]", p.Address, j)
		} else if !v.skip(ap) {
			seen[p.Address] = i
		}
		if p.AS == 0 {
			v.addf(join(path, "as"), "required")
		} else if msg := checkAS(p.AS); msg != "" {
			v.addf(join(path, "as"), "%s", msg)
		}
		if n := len(p.Password); n > maxMD5Key {
			v.addf(join(path, "password"), "%d bytes long; a TCP MD5 key has at most %d (TCP_MD5SIG_MAXKEYLEN)", n, maxMD5Key)
		}
	}
}

// bgpLocals checks bgp.peer_local_addresses: IPv4 unicast, each once, none
// of them this director's own local address or a service VIP, and this
// director's own local addresses set (the interface's address is on the
// LAN: the reals reach it by ARP, not through the routers).
func (v *validator) bgpLocals(c *Config) {
	b := &c.BGP
	if !b.Enabled || len(b.PeerLocalAddresses) == 0 || v.skip("bgp") {
		return
	}
	if len(c.Director.LocalAddresses) == 0 {
		v.addf("bgp.peer_local_addresses", "needs director.local_addresses: this director's own local addresses, announced beside the others'")
	}
	vips := map[netip.Addr]bool{}
	for _, s := range c.Services {
		vips[s.Address.Addr()] = true
	}
	seen := map[netip.Addr]int{}
	for i, a := range b.PeerLocalAddresses {
		path := index("bgp.peer_local_addresses", i)
		switch {
		case a.Is6() && checkAddr6(a) != "":
			v.addf(path, "%s", checkAddr6(a))
		case !a.Is6() && (a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})):
			v.addf(path, "%s is not a usable unicast address", a)
		case slices.Contains(c.Director.LocalAddresses, a):
			v.addf(path, "%s is this director's own (director.local_addresses); list only the other directors' here", a)
		case vips[a]:
			v.addf(path, "%s is a service VIP", a)
		default:
			if j, ok := seen[a]; ok {
				v.addf(path, "%s is already bgp.peer_local_addresses[%d]", a, j)
			}
			seen[a] = i
		}
	}
}

// checkAS accepts an AS number a speaker may have: 4 octets, not AS_TRANS,
// and not the last of the 2- and 4-octet ranges (reserved, RFC 7300).
func checkAS(as int) string {
	switch {
	case as < 1 || as > maxAS:
		return fmt.Sprintf("%d is out of range 1..%d", as, maxAS)
	case as == asTrans:
		return fmt.Sprintf("%d is AS_TRANS (RFC 6793), not an AS a speaker may have", as)
	case as == 65535 || as == maxAS:
		return fmt.Sprintf("%d is reserved (RFC 7300)", as)
	}
	return ""
}

// bgpWithVRRP refuses [bgp] and [vrrp] on the same VIP: BGP has every director
// announce it and serve it at once, VRRP gives it to one master, and the two would
// fight over it. Without vrrp.addresses VRRP moves every service VIP: then each
// VIP is one error. With vrrp.addresses, beside [bgp], VRRP moves those
// addresses alone (the NAT reals' gateway, say: every director forwards, and
// one at a time takes the replies), and only a service VIP among them is an
// error.
func (v *validator) bgpWithVRRP(c *Config) {
	if !c.BGP.Enabled || c.VRRP.RouterID == 0 || v.skip("bgp") || v.skip("vrrp") {
		return
	}
	reported := map[netip.Addr]bool{}
	for i, s := range c.Services {
		vip := s.Address.Addr()
		if !vip.IsValid() || reported[vip] {
			continue
		}
		reported[vip] = true
		vpath := "vrrp (vrrp.addresses is empty: every service VIP)"
		if j := slices.Index(c.VRRP.Addresses, vip); j >= 0 {
			vpath = index("vrrp.addresses", j)
		} else if len(c.VRRP.Addresses) > 0 {
			continue
		}
		v.addf("bgp", "[bgp] and [vrrp] on the same VIP %s (%s): [bgp] announces it from every director, %s gives it to the VRRP master alone; use one of them (remove [vrrp] to scale out with BGP, or give [vrrp] only addresses that are no service's VIP, such as the NAT reals' gateway, in vrrp.addresses)",
			vip, index("service", i)+".address", vpath)
	}
}

func (v *validator) sync(s *Sync) {
	if !s.Enabled {
		return
	}
	if s.Interface != "" {
		if msg := checkIfName(s.Interface); msg != "" {
			v.addf("sync.interface", "%s", msg)
		}
	}
	if a := s.Peer; a.IsValid() {
		if msg := checkAddrPort(netip.AddrPortFrom(a, 0)); msg != "" {
			v.addf("sync.peer", "%s", msg)
		}
	}
	if a := s.Group; a.IsValid() {
		switch {
		case a.Is4In6():
			v.addf("sync.group", "%s is IPv4-mapped: write the IPv4 group %s", a, a.Unmap())
		case !a.IsMulticast():
			v.addf("sync.group", "%s is not a multicast address (224.0.0.0/4 or ff00::/8)", a)
		case s.Peer.IsValid():
			v.addf("sync.group", "%s beside sync.peer %s: messages go to the peer alone; give one or the other", a, s.Peer)
		}
	}
	if s.TTL < 1 || s.TTL > 255 {
		v.addf("sync.ttl", "%d is out of range 1..255", s.TTL)
	}
	if s.Port < 1 || s.Port > 65535 {
		v.addf("sync.port", "%d is out of range 1..65535", s.Port)
	}
	if s.SyncID < 0 || s.SyncID > 255 {
		v.addf("sync.sync_id", "%d is out of range 0..255", s.SyncID)
	}
	if s.Refresh < 0 {
		v.addf("sync.refresh", "%s is negative", s.Refresh)
	} else if s.Refresh > 0 && s.Refresh < time.Second {
		v.addf("sync.refresh", "%s is under 1s: every connection would be resent more often than the protocol's one-second timeouts can express", s.Refresh)
	}
}

// vrrpIPv6 checks a [vrrp] that moves IPv6 addresses (vrrp.addresses of
// IPv6, or, when it is empty, the VIPs of IPv6 services): the one virtual
// router then runs in both families (IPv6 adverts to ff02::12 from the
// link-local address, beside IPv4 ones for the IPv4 addresses), which only
// VRRPv3 can; with unicast_peers, each family with addresses needs a peer
// of its own.
func (v *validator) vrrpIPv6(c *Config) {
	r := &c.VRRP
	if r.RouterID == 0 || v.skip("vrrp") || v.skip("vrrp.addresses") {
		return
	}
	why := ""
	has4 := false
	if len(r.Addresses) > 0 {
		for i, a := range r.Addresses {
			if a.Is6() && why == "" {
				why = fmt.Sprintf("the IPv6 address %s (%s)", a, index("vrrp.addresses", i))
			}
			has4 = has4 || a.Is4()
		}
	} else {
		for i := range c.Services {
			a := c.Services[i].Address.Addr()
			if a.Is6() && why == "" {
				why = fmt.Sprintf("the IPv6 VIP %s (%s; vrrp.addresses is empty: every service VIP)", a, join(index("service", i), "address"))
			}
			has4 = has4 || a.Is4()
		}
	}
	if why == "" {
		return
	}
	if r.Version != 3 && !v.skip("vrrp.version") {
		v.addf("vrrp.version", "version %d cannot move %s: VRRPv2 (RFC 3768) is IPv4 only; set version = 3 (RFC 5798, keepalived's vrrp_version 3) on every router of the virtual router", r.Version, why)
	}
	if len(r.UnicastPeers) > 0 && !v.skip("vrrp.unicast_peers") {
		peer4, peer6 := false, false
		for _, p := range r.UnicastPeers {
			peer4, peer6 = peer4 || p.Is4(), peer6 || p.Is6()
		}
		if !peer6 {
			v.addf("vrrp.unicast_peers", "no IPv6 peer for %s: IPv6 adverts go to IPv6 peers", why)
		}
		if has4 && !peer4 {
			v.addf("vrrp.unicast_peers", "no IPv4 peer for the IPv4 addresses: IPv4 adverts go to IPv4 peers")
		}
	}
}

func (v *validator) vrrp(r *VRRP) {
	if r.RouterID < 0 || r.RouterID > 255 {
		v.addf("vrrp.router_id", "%d is out of range 0..255 (0 = off)", r.RouterID)
	}
	if r.RouterID == 0 {
		return
	}
	if r.Interface != "" {
		if msg := checkIfName(r.Interface); msg != "" {
			v.addf("vrrp.interface", "%s", msg)
		}
	}
	if r.Priority < 1 || r.Priority > 254 {
		v.addf("vrrp.priority", "%d is out of range 1..254", r.Priority)
	}
	switch r.Version {
	case 2:
		// VRRPv2's Adver Int is 8 bits of seconds (RFC 3768 section 5.3.7).
		if r.AdvertInterval < time.Second || r.AdvertInterval > 255*time.Second || r.AdvertInterval%time.Second != 0 {
			v.addf("vrrp.advert_interval", "%s is not a whole number of seconds in 1s..255s, as VRRPv2 carries it (version = 3 allows 10ms..40.95s)", r.AdvertInterval)
		}
	case 3:
		if r.AdvertInterval < 10*time.Millisecond || r.AdvertInterval > 40950*time.Millisecond || r.AdvertInterval%(10*time.Millisecond) != 0 {
			v.addf("vrrp.advert_interval", "%s is not a whole number of centiseconds in 10ms..40.95s", r.AdvertInterval)
		}
	default:
		v.addf("vrrp.version", "%d is not a VRRP version (want 2 or 3)", r.Version)
	}
	v.vrrpAuth(r)
	if r.PreemptDelay < 0 {
		v.addf("vrrp.preempt_delay", "%s is negative", r.PreemptDelay)
	}
	if r.GARPRepeat < 1 || r.GARPRepeat > 100 {
		v.addf("vrrp.garp_repeat", "%d is out of range 1..100", r.GARPRepeat)
	}
	if r.GARPDelay < 0 {
		v.addf("vrrp.garp_delay", "%s is negative", r.GARPDelay)
	}
	if r.GARPRefresh < 0 {
		v.addf("vrrp.garp_refresh", "%s is negative", r.GARPRefresh)
	} else if r.GARPRefresh > 0 && r.GARPRefresh < 100*time.Millisecond {
		v.addf("vrrp.garp_refresh", "%s is under 100ms", r.GARPRefresh)
	}
	for _, l := range []struct {
		key   string
		addrs []netip.Addr
	}{{"vrrp.unicast_peers", r.UnicastPeers}, {"vrrp.addresses", r.Addresses}} {
		for i, a := range l.addrs {
			if a.Is4In6() || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
				v.addf(index(l.key, i), "%s is not a usable IPv4 or IPv6 unicast address", a)
			}
		}
	}
}

// vrrpAuth checks VRRPv2's authentication: none, or a password as keepalived sends it.
// The password itself never appears in a message.
func (v *validator) vrrpAuth(r *VRRP) {
	switch r.AuthType {
	case "none":
		if r.AuthPass != "" {
			v.addf("vrrp.auth_pass", `set, but auth_type is "none"; add auth_type = "pass" to use it`)
		}
		return
	case "pass":
	case "ah":
		v.addf("vrrp.auth_type", `auth_type ah is not supported (keepalived's IPsec AH); use "pass" or "none" on every router of the virtual router`)
		return
	default:
		v.addf("vrrp.auth_type", "%s is not an authentication type (want none or pass)", quote(r.AuthType))
		return
	}
	if r.Version == 3 {
		v.addf("vrrp.auth_type", `"pass" needs version = 2: VRRPv3 (RFC 5798) has no authentication`)
	}
	if n := len(r.AuthPass); n == 0 {
		v.addf("vrrp.auth_pass", `required with auth_type = "pass"`)
	} else if n > 8 {
		v.addf("vrrp.auth_pass", "%d bytes long; VRRPv2 carries at most 8 (keepalived cuts a longer auth_pass to its first 8)", n)
	}
}

func (v *validator) director(d *Director) {
	if d.Interface == "" {
		v.addf("director.interface", "required")
	} else if msg := checkIfName(d.Interface); msg != "" {
		v.addf("director.interface", "%s", msg)
	}
	if d.Workers < 0 || d.Workers > maxWorkers {
		v.addf("director.workers", "%d is out of range 0..%d", d.Workers, maxWorkers)
	}
	if d.WorkerPolicy != "batch" && d.WorkerPolicy != "normal" {
		v.addf("director.worker_policy", `%s: want "batch" or "normal"`, quote(d.WorkerPolicy))
	}
	if d.BusyPoll < 0 || d.BusyPoll > maxBusyPoll {
		v.addf("director.busy_poll", "%v is out of range 0s..%v", d.BusyPoll, maxBusyPoll)
	}
	seen := make(map[netip.Addr]int, len(d.LocalAddresses))
	for i, a := range d.LocalAddresses {
		p := index("director.local_addresses", i)
		if msg := checkLocalAddr(a); msg != "" {
			v.addf(p, "%s", msg)
			continue
		}
		if j, ok := seen[a]; ok {
			v.addf(p, "%s is already local_addresses[%d]", a, j)
		} else if !v.skip(p) {
			seen[a] = i
		}
	}
	if !d.LocalPorts.valid() {
		v.addf("director.local_ports", "%q %s", d.LocalPorts.String(), portRangeWant)
	}
	if d.Metrics != "" {
		if !hostPort(d.Metrics) {
			v.addf("director.metrics", `%s is not host:port (e.g. "127.0.0.1:9464")`, quote(d.Metrics))
		}
	}
}

// checkIfName applies the kernel's dev_valid_name (net/core/dev.c).
func checkIfName(name string) string {
	if len(name) >= ifNameSize {
		return fmt.Sprintf("%s is longer than %d bytes (IFNAMSIZ)", quote(name), ifNameSize-1)
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\v\f\r") {
		return fmt.Sprintf("%s is not a valid interface name", quote(name))
	}
	return ""
}

// checkAddr accepts a unicast IPv4 address.
func checkAddr(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "required"
	case !a.Is4():
		return fmt.Sprintf("IPv6 not supported yet (%s)", a)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Sprintf("%s is not a unicast address", a)
	}
	return ""
}

// checkLocalAddr accepts a FULLNAT local address: a unicast IPv4 address,
// or an IPv6 one as checkAddr6 does (for IPv6 FULLNAT services).
func checkLocalAddr(a netip.Addr) string {
	if a.Is6() {
		return checkAddr6(a)
	}
	return checkAddr(a)
}

// checkAddr6 accepts a global or unique-local unicast IPv6 address: a
// link-local one needs a zone, and an IPv4-mapped one is an IPv4 address
// written the long way.
func checkAddr6(a netip.Addr) string {
	switch {
	case a.Zone() != "":
		return fmt.Sprintf("%s has a zone: a service or real address is global", a)
	case a.Is4In6():
		return fmt.Sprintf("%s is IPv4-mapped: write the IPv4 address %s", a, a.Unmap())
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		return fmt.Sprintf("%s is not a unicast address", a)
	case a.IsLinkLocalUnicast():
		return fmt.Sprintf("%s is link-local", a)
	}
	return ""
}

// fullnatLocals: when local_addresses is given, every FULLNAT real needs
// one of its family there (the reals answer it). Without local_addresses
// the daemon takes the interface's addresses and says if one is missing.
func (v *validator) fullnatLocals(c *Config) {
	if len(c.Director.LocalAddresses) == 0 {
		return
	}
	has := map[bool]bool{} // by Is6
	for _, a := range c.Director.LocalAddresses {
		has[a.Is6()] = true
	}
	for i, s := range c.Services {
		if !s.Address.IsValid() {
			continue
		}
		v6 := s.Address.Addr().Is6()
		if has[v6] {
			continue
		}
		path := index("service", i)
		fp := join(path, "forward")
		if s.Forward != FullNAT {
			j := slices.IndexFunc(s.Reals, func(r Real) bool { return r.Forward == FullNAT })
			if j < 0 {
				continue
			}
			fp = join(index(join(path, "real"), j), "forward")
		}
		if v.skip(fp) {
			continue
		}
		fam, other := "IPv4", "IPv6"
		if v6 {
			fam, other = other, fam
		}
		v.addf(fp, "%s fullnat needs an %s address in director.local_addresses (it lists %s ones only)", fam, fam, other)
	}
}

// checkAddrPort accepts a unicast IPv4 or IPv6 address with any port, as a
// service, real or sorry address; callers check the port and that a
// service and its reals are of one family. An IPv6 address must be global
// or unique-local: a link-local one needs a zone, and an IPv4-mapped one
// is an IPv4 address written the long way.
func checkAddrPort(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "required"
	}
	a := ap.Addr()
	if !a.Is6() {
		return checkAddr(a)
	}
	return checkAddr6(a)
}

// family names an address family in messages.
func family(a netip.Addr) string {
	if a.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

func hostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n != 0
}

func (v *validator) services(svcs []Service) {
	type key struct {
		p Protocol
		a netip.AddrPort
	}
	byKey := make(map[key]int, len(svcs))
	byName := make(map[string]int, len(svcs))
	for i := range svcs {
		s := &svcs[i]
		path := index("service", i)
		if v.skip(path) {
			continue
		}
		addrOK := v.service(path, s)

		protoOK := s.Protocol.valid() && !v.skip(join(path, "protocol"))
		dup := false
		if addrOK && protoOK {
			k := key{s.Protocol, s.Address}
			if j, ok := byKey[k]; ok {
				v.addf(join(path, "address"), "%s %s is already service[%d]", s.Protocol, s.Address, j)
				dup = true // its default name collides too: one problem is enough
			} else {
				byKey[k] = i
			}
		}
		switch {
		case s.Name == "":
			v.addf(join(path, "name"), "must not be empty")
		case dup || v.skip(join(path, "name")):
		default:
			if j, ok := byName[s.Name]; ok {
				v.addf(join(path, "name"), "%s is already the name of service[%d]", quote(s.Name), j)
			} else {
				byName[s.Name] = i
			}
		}
	}
}

// service checks one service and its reals, and reports whether its address is usable
// (so duplicates and real ports can be checked against it).
func (v *validator) service(path string, s *Service) (addrOK bool) {
	ap := join(path, "address")
	if msg := checkAddrPort(s.Address); msg != "" {
		v.addf(ap, "%s", msg)
	} else if s.Address.Port() == 0 {
		v.addf(ap, "port must not be 0")
	} else {
		addrOK = !v.skip(ap)
	}

	if !s.Protocol.valid() {
		v.addf(join(path, "protocol"), "%s", enumMsg(uint8(s.Protocol), s.Protocol.String(), "protocol"))
	}
	if !slices.Contains(schedulers, s.Scheduler) {
		v.addf(join(path, "scheduler"), "%s is not a scheduler (want one of %s)", quote(s.Scheduler), strings.Join(schedulers, " "))
	}
	for i, f := range s.SchedulerFlags {
		fp := index(join(path, "scheduler_flags"), i)
		switch sched, ok := schedulerFlags[f]; {
		case !ok:
			v.addf(fp, "%s is not a scheduler flag (want sh-fallback, sh-port, mh-fallback or mh-port)", quote(f))
		case sched != s.Scheduler && !v.skip(join(path, "scheduler")):
			v.addf(fp, "%s applies to scheduler %s only, not %s", f, sched, s.Scheduler)
		case slices.Index(s.SchedulerFlags, f) != i:
			v.addf(fp, "%s is given twice", f)
		}
	}
	if !s.Forward.valid() {
		v.addf(join(path, "forward"), "%s", enumMsg(uint8(s.Forward), s.Forward.String(), "forwarding method"))
	}
	if s.Persistence < 0 {
		v.addf(join(path, "persistence"), "%s must not be negative", s.Persistence)
	}
	max := maxNetmask // the family's, even of an address refused above: one problem is enough
	if s.Address.Addr().Is6() {
		max = maxNetmask6
	}
	if n := s.PersistenceNetmask; n < 1 || n > max {
		v.addf(join(path, "persistence_netmask"), "%d is out of range 1..%d", n, max)
	}
	// ip_vs_ctl.c clears IP_VS_SVC_F_ONEPACKET on anything but UDP; we refuse instead.
	if s.OPS && s.Protocol != UDP && !v.skip(join(path, "protocol")) {
		v.addf(join(path, "ops"), "only valid with protocol udp")
	}
	// The SYN proxy splices two handshakes: it must see the real's SYN-ACK and every
	// segment after it, which a dr or tun real sends to the client directly.
	if s.SynProxy && s.Protocol != TCP && !v.skip(join(path, "protocol")) {
		v.addf(join(path, "synproxy"), "only valid with protocol tcp")
	}
	// A PROXY header goes into the stream to the real: the director must see the real's
	// SYN-ACK and translate every segment after it, as for the SYN proxy.
	pp := join(path, "proxy_protocol")
	switch {
	case !slices.Contains(ProxyProtocols, s.ProxyProtocol):
		v.addf(pp, "%s is not a PROXY protocol version (want \"v1\", \"v2\" or \"\" for none)", quote(s.ProxyProtocol))
	case s.ProxyProtocol != "" && s.Protocol != TCP && !v.skip(join(path, "protocol")):
		v.addf(pp, "only valid with protocol tcp")
	case s.ProxyProtocol != "" && s.Sorry.IsValid() && (s.Forward == DR || s.Forward == TUN):
		v.addf(join(path, "forward"), "%s for the sorry real: proxy_protocol needs nat or fullnat (the director writes the header into the stream to the real)", s.Forward)
	}
	if s.SynProxy && s.Sorry.IsValid() && (s.Forward == DR || s.Forward == TUN) {
		v.addf(join(path, "forward"), "%s for the sorry real: synproxy needs nat or fullnat (the real's replies must come back through the director)", s.Forward)
	}

	v.check(join(path, "check"), &s.Check)
	if s.Sorry.IsValid() {
		sp := join(path, "sorry")
		if msg := checkAddrPort(s.Sorry); msg != "" {
			v.addf(sp, "%s", msg)
		} else if addrOK && s.Sorry.Addr().Is6() != s.Address.Addr().Is6() {
			v.addf(sp, "%s is %s, the service %s: a service and its reals are of one family", s.Sorry, family(s.Sorry.Addr()), family(s.Address.Addr()))
		} else if s.Sorry.Port() == 0 {
			v.addf(sp, "port must not be 0")
		} else if (s.Forward == DR || s.Forward == TUN) && addrOK && s.Sorry.Port() != s.Address.Port() {
			v.addf(sp, "port %d differs from the service port %d: %s cannot change the port", s.Sorry.Port(), s.Address.Port(), s.Forward)
		} else if slices.ContainsFunc(s.Reals, func(r Real) bool { return r.Address == s.Sorry }) {
			v.addf(sp, "%s is also a real of the service", s.Sorry)
		}
	}

	seen := make(map[netip.AddrPort]int, len(s.Reals))
	for j := range s.Reals {
		r := &s.Reals[j]
		rp := index(join(path, "real"), j)
		if v.skip(rp) {
			continue
		}
		v.real(rp, r, s, addrOK)
		if !r.Address.IsValid() || v.skip(join(rp, "address")) {
			continue
		}
		if k, ok := seen[r.Address]; ok {
			v.addf(join(rp, "address"), "%s is already real[%d]", r.Address, k)
		} else {
			seen[r.Address] = j
		}
	}
	return addrOK
}

func (v *validator) real(path string, r *Real, s *Service, svcAddrOK bool) {
	ap := join(path, "address")
	if msg := checkAddrPort(r.Address); msg != "" {
		v.addf(ap, "%s", msg)
	} else if svcAddrOK && r.Address.Addr().Is6() != s.Address.Addr().Is6() {
		v.addf(ap, "%s is %s, the service %s: a service and its reals are of one family", r.Address, family(r.Address.Addr()), family(s.Address.Addr()))
	} else if svcAddrOK {
		port, want := r.Address.Port(), s.Address.Port()
		switch {
		case port == 0:
			v.addf(ap, "port must not be 0 (Parse resolves it to the service's port)")
		case (r.Forward == DR || r.Forward == TUN) && port != want && !v.skip(join(path, "forward")):
			v.addf(ap, "port %d differs from the service port %d: %s cannot change the port (use nat or fullnat)", port, want, r.Forward)
		}
	}
	if r.Weight < 0 || r.Weight > maxWeight {
		v.addf(join(path, "weight"), "%d is out of range 0..%d", r.Weight, maxWeight)
	}
	if !r.Forward.valid() {
		v.addf(join(path, "forward"), "%s", enumMsg(uint8(r.Forward), r.Forward.String(), "forwarding method"))
	} else if s.SynProxy && (r.Forward == DR || r.Forward == TUN) {
		v.addf(join(path, "forward"), "%s with synproxy: synproxy needs nat or fullnat (the real's replies must come back through the director)", r.Forward)
	}
	v.realProxy(path, r, s)
	up, lo := r.UpperThreshold, r.LowerThreshold
	if up < 0 || up > maxThreshold {
		v.addf(join(path, "upper_threshold"), "%d is out of range 0..%d", up, maxThreshold)
	}
	if lo < 0 || lo > maxThreshold {
		v.addf(join(path, "lower_threshold"), "%d is out of range 0..%d", lo, maxThreshold)
	} else if lo > up && up >= 0 {
		// ip_vs_ctl.c refuses l_threshold > u_threshold (-ERANGE).
		v.addf(join(path, "lower_threshold"), "%d is above upper_threshold %d", lo, up)
	}
}

// realProxy checks a real's proxy_protocol, its own or the service's. An
// inherited value the service's own check refused is not told again; one
// the real's forwarding method cannot carry is told at the real's forward,
// as synproxy's is.
func (v *validator) realProxy(path string, r *Real, s *Service) {
	if r.ProxyProtocol == "" {
		return
	}
	pp := join(path, "proxy_protocol")
	if !r.OwnProxyProtocol {
		if !slices.Contains(ProxyProtocols, r.ProxyProtocol) || s.Protocol != TCP {
			return // the service's check told it
		}
		if (r.Forward == DR || r.Forward == TUN) && !v.skip(join(path, "forward")) {
			v.addf(join(path, "forward"), "%s with proxy_protocol %s: the PROXY protocol needs nat or fullnat (the director writes the header into the stream to the real, so it must see the real's replies)", r.Forward, quote(r.ProxyProtocol))
		}
		return
	}
	switch {
	case !slices.Contains(ProxyProtocols, r.ProxyProtocol):
		v.addf(pp, "%s is not a PROXY protocol version (want \"v1\", \"v2\" or \"\" for none)", quote(r.ProxyProtocol))
	case s.Protocol != TCP:
		v.addf(pp, "only valid with protocol tcp")
	case (r.Forward == DR || r.Forward == TUN) && !v.skip(join(path, "forward")):
		v.addf(pp, "needs forward nat or fullnat, not %s: the director writes the header into the stream to the real, so it must see the real's replies", r.Forward)
	}
}

// check checks a [service.check] table.
func (v *validator) check(path string, c *Check) {
	if c.Type == "" {
		return // built in code without a check: none
	}
	if !slices.Contains(CheckTypes, c.Type) {
		v.addf(join(path, "type"), "%s is not a check type (want one of %s)", quote(c.Type), strings.Join(CheckTypes, " "))
		return
	}
	if c.Type == "none" {
		return
	}
	if c.Interval <= 0 {
		v.addf(join(path, "interval"), "%s is not positive", c.Interval)
	}
	if c.Timeout <= 0 {
		v.addf(join(path, "timeout"), "%s is not positive", c.Timeout)
	} else if c.Interval > 0 && c.Timeout > c.Interval {
		v.addf(join(path, "timeout"), "%s is longer than the interval %s", c.Timeout, c.Interval)
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"rise", c.Rise}, {"fall", c.Fall}} {
		if n.v < 1 || n.v > 100 {
			v.addf(join(path, n.key), "%d is out of range 1..100", n.v)
		}
	}
	if c.Port < 0 || c.Port > 65535 {
		v.addf(join(path, "port"), "%d is out of range 0..65535", c.Port)
	}
	for i, code := range c.Status {
		if code < 100 || code > 599 {
			v.addf(index(join(path, "status"), i), "%d is not an HTTP status code", code)
		}
	}
	if c.Expect != "" {
		if _, err := regexp.Compile(c.Expect); err != nil {
			v.addf(join(path, "expect"), "not a regular expression: %v", err)
		}
	}
	if c.Type == "exec" && len(c.Command) == 0 {
		v.addf(join(path, "command"), "exec needs a command")
	}
	if c.OnFailure != "remove" && c.OnFailure != "quiesce" {
		v.addf(join(path, "on_failure"), "%s is not remove or quiesce", quote(c.OnFailure))
	}
}

// enumMsg describes an invalid enum value set in code.
func enumMsg(n uint8, s, what string) string {
	if n == 0 {
		return "not set"
	}
	return s + " is not a " + what
}
