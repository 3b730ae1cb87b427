package control

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"github.com/gvs-lb/gvs/schedule"
)

// LinkInfo is what the compiler needs of the director interface.
type LinkInfo struct {
	Name string
	MAC  [6]byte
	Addr netip.Addr // the interface's IPv4 address: IPIP outer source, default FULLNAT local address
	// Addr6 is the interface's global IPv6 address (not a /128 such as a
	// VIP), invalid if it has none: the outer source of IPv6-in-IPv6 and
	// the default FULLNAT local address of IPv6 services.
	Addr6 netip.Addr
	MTU   int
}

// realKey names a real server within a service; it maps to a stable ID.
// The service is svc (IPv4) or svc6 (IPv6), the other one zero.
type realKey struct {
	svc  dataplane.ServiceKey
	svc6 dataplane.ServiceKey6
	addr netip.AddrPort
}

// realKeyOf is the realKey of the real at addr of the configured service s.
func realKeyOf(s *config.Service, addr netip.AddrPort) realKey {
	if s.Address.Addr().Is6() {
		return realKey{svc6: serviceKey6(s), addr: addr}
	}
	return realKey{svc: serviceKey(s), addr: addr}
}

// inTable reports whether k's service is in t.
func (k *realKey) inTable(t *dataplane.Table) bool {
	if k.addr.Addr().Is6() {
		return t.Services6[k.svc6] != nil
	}
	return t.Services[k.svc] != nil
}

// tableReal is the dataplane's Real at a with the given ID, counters and
// forwarding method: an IPv6 real has its address in Addr6.
func tableReal(id uint32, a netip.AddrPort, fwd dataplane.Forward, mac [6]byte, ready bool, c *schedule.Counters, st *dataplane.RealStats) dataplane.Real {
	r := dataplane.Real{ID: id, Port: a.Port(), Forward: fwd, MAC: mac, Ready: ready, Counters: c, Stats: st}
	if a.Addr().Is6() {
		r.Addr6 = a.Addr().As16()
	} else {
		r.Addr = a.Addr().As4()
	}
	return r
}

// Compiler turns configurations into dataplane tables. It remembers the
// stable ID, the live connection counters and the traffic counters of
// every real it has seen, so a recompiled table keeps them and connection
// entries stay valid across reloads. Not safe for concurrent use.
type Compiler struct {
	ids      map[realKey]uint32
	counters []*schedule.Counters
	stats    []*dataplane.RealStats

	// present are the reals of the last successful compile; draining
	// those removed since from a service that remains, until their
	// connections end (see Drained).
	present  map[realKey]config.Real
	draining map[realKey]*drainingReal

	// Health says whether a real of a service passes its health check;
	// nil means every real does. See Compile for what a failing real gets.
	Health func(svc ServiceID, real netip.AddrPort) HealthState
}

// HealthState is a real's health as Compile needs it.
type HealthState struct {
	Checked bool      // the service has a health check
	Up      bool      // it passes (meaningful when Checked)
	Changed time.Time // when Up last changed
}

// drainingReal is a real removed from a service that still runs: it takes
// no new connection but forwards the ones it has.
type drainingReal struct {
	real  config.Real
	since time.Time
}

// NewCompiler returns an empty compiler.
func NewCompiler() *Compiler {
	return &Compiler{ids: make(map[realKey]uint32), present: map[realKey]config.Real{}, draining: map[realKey]*drainingReal{}}
}

// Draining returns how many removed reals still forward their connections.
func (c *Compiler) Draining() int { return len(c.draining) }

// Drained ends the draining of every removed real that has no connection
// left, or has drained for longer than limit (0 = no limit), and reports
// whether any ended: the table must then be compiled again.
func (c *Compiler) Drained(now time.Time, limit time.Duration) bool {
	ended := false
	for k, d := range c.draining {
		cnt := c.counters[c.ids[k]]
		if cnt.Active.Load()+cnt.Inactive.Load() <= 0 || (limit > 0 && now.Sub(d.since) >= limit) {
			delete(c.draining, k)
			ended = true
		}
	}
	return ended
}

func (c *Compiler) id(k realKey) uint32 {
	if id, ok := c.ids[k]; ok {
		return id
	}
	id := uint32(len(c.counters))
	c.ids[k] = id
	c.counters = append(c.counters, new(schedule.Counters))
	c.stats = append(c.stats, new(dataplane.RealStats))
	return id
}

// Resolver returns the next-hop MAC for a real server's address and
// whether the real is on-link (its own MAC, not a gateway's), or ok false
// while it is unknown.
type Resolver func(ip netip.Addr) (mac [6]byte, onLink, ok bool)

// Compile builds the dataplane table and the frame match for cfg. locals
// are the FULLNAT local addresses (already defaulted), of both families:
// IPv4 services' FULLNAT reals use the IPv4 ones, IPv6 services' the
// IPv6 ones, and a FULLNAT real with none of its family is an error. A real whose MAC
// resolve cannot tell yet is in the table but not Ready, with weight 0 for
// the scheduler. Problems are reported together, each with its config path.
func (c *Compiler) Compile(cfg *config.Config, link LinkInfo, locals []netip.Addr, resolve Resolver) (*dataplane.Table, *afpacket.Match, error) {
	t := &dataplane.Table{
		MAC:      link.MAC,
		Addr:     link.Addr.As4(),
		MTU:      link.MTU,
		Services: make(map[dataplane.ServiceKey]*dataplane.Service, len(cfg.Services)),
		// Services6 stays nil without IPv6 services: the workers then
		// never make their IPv6 connection shards.
		PortLo:   cfg.Director.LocalPorts.Lo,
		PortHi:   cfg.Director.LocalPorts.Hi,
		Timeouts: conntrack.Timeouts{TCP: cfg.Timeouts.TCP, TCPFin: cfg.Timeouts.TCPFin, UDP: cfg.Timeouts.UDP},
	}
	if link.Addr6.IsValid() {
		t.Addr6 = link.Addr6.As16()
	}
	m := &afpacket.Match{}
	// The director's own address: a NAT real's answers to it are the
	// kernel's (health checks), not a client's replies.
	if link.Addr.Is4() {
		m.Own = [][4]byte{link.Addr.As4()}
	}
	var errs config.Errors
	type threshold struct {
		c            *schedule.Counters
		upper, lower int64
	}
	var thresholds []threshold
	fullnat, fullnat6 := false, false
	// IPv6 FULLNAT reals without an IPv6 local address (the interface
	// may have none; config.Validate catches a local_addresses without
	// one, and the daemon always has an IPv4 address).
	var noLocal []string
	hasLocal := map[bool]bool{}
	for _, a := range locals {
		hasLocal[a.Is6()] = true
	}
	present := map[realKey]config.Real{}
	// With [bgp] every director serves the VIPs, and a NAT real answers
	// through whichever holds its route back: replies of connections
	// another director opened are translated by the real's service
	// (dataplane.Table.NATReplies). A real of two services, or of one
	// whose sequence numbers the director translates, cannot be.
	var natReplies map[dataplane.NATReplyKey]dataplane.NATReply
	var natAmbiguous map[dataplane.NATReplyKey]bool
	if cfg.BGP.Enabled {
		natReplies, natAmbiguous = map[dataplane.NATReplyKey]dataplane.NATReply{}, map[dataplane.NATReplyKey]bool{}
	}
	addNATReal := func(proto uint8, a netip.AddrPort) {
		if a.Addr().Is6() {
			ep := afpacket.Endpoint6{Proto: proto, Addr: a.Addr().As16(), Port: a.Port()}
			if !slices.Contains(m.NATReals6, ep) {
				m.NATReals6 = append(m.NATReals6, ep)
			}
			return
		}
		ep := afpacket.Endpoint{Proto: proto, Addr: a.Addr().As4(), Port: a.Port()}
		if !slices.Contains(m.NATReals, ep) {
			m.NATReals = append(m.NATReals, ep)
		}
	}
	for si, s := range cfg.Services {
		path := fmt.Sprintf("service[%d]", si)
		v6 := s.Address.Addr().Is6()
		key := serviceKey(&s)
		proto := key.Proto
		svc := &dataplane.Service{Proto: key.Proto, VIP: key.VIP, Port: key.Port,
			Persist: s.Persistence, PersistBits: uint8(s.PersistenceNetmask), OPS: s.OPS, SynProxy: s.SynProxy}
		if v6 {
			svc.VIP6 = s.Address.Addr().As16()
			m.VIPs6 = append(m.VIPs6, afpacket.Endpoint6{Proto: proto, Addr: svc.VIP6, Port: key.Port})
		} else {
			m.VIPs = append(m.VIPs, afpacket.Endpoint{Proto: proto, Addr: key.VIP, Port: key.Port})
		}
		healthy := c.healthOf(&s)
		reals := s.Reals
		if sorry, ok := sorryReal(&s, healthy); ok {
			reals = append(slices.Clip(reals), sorry)
			healthy = append(slices.Clip(healthy), true)
		}
		for ri, r := range reals {
			rk := realKeyOf(&s, r.Address)
			present[rk] = r
			id := c.id(rk)
			fwd := dataplane.Forward(r.Forward)
			if v6 && fwd == dataplane.ForwardTUN && !link.Addr6.IsValid() {
				// The outer source of IPv6-in-IPv6 is the director's own
				// IPv6 address, as IPIP's is its IPv4 one.
				errs = append(errs, config.FieldError{Path: fmt.Sprintf("%s.real[%d].forward", path, ri),
					Msg: fmt.Sprintf("tun to %s needs an IPv6 address on the director's interface %s (a global one, not a /128), the tunnel's source", r.Address.Addr(), link.Name)})
			}
			// The MAC of an IPv6 real comes through the same Resolver
			// as an IPv4 one's (the daemon's neighbour cache).
			mac, onLink, ready := resolve(r.Address.Addr())
			if s.OPS && (fwd == dataplane.ForwardNAT || fwd == dataplane.ForwardFullNAT) {
				// With no entry, a NAT reply would find nothing to
				// translate it back (IPVS lets it out untranslated).
				errs = append(errs, config.FieldError{Path: fmt.Sprintf("%s.real[%d].forward", path, ri),
					Msg: fmt.Sprintf("one-packet scheduling (ops) needs dr or tun: a %s reply has no connection to be translated by", fwd)})
			}
			thresholds = append(thresholds, threshold{c.counters[id], int64(r.UpperThreshold), int64(r.LowerThreshold)})
			if ready && !onLink && fwd == dataplane.ForwardDR {
				// A DR frame keeps the VIP as its destination: sent to a
				// gateway, it would be routed back to the director.
				errs = append(errs, config.FieldError{Path: fmt.Sprintf("%s.real[%d].address", path, ri),
					Msg: fmt.Sprintf("%s is not on the director's LAN; DR needs the real server on-link (use tun, nat or fullnat to reach it through a router)", r.Address.Addr())})
			}
			for int(id) >= len(t.Reals) {
				t.Reals = append(t.Reals, dataplane.Real{})
			}
			tr := tableReal(id, r.Address, fwd, mac, ready, c.counters[id], c.stats[id])
			tr.Proxy = proxyVersion(r.ProxyProtocol)
			t.Reals[id] = tr
			w := int32(r.Weight)
			if !healthy[ri] {
				// A failed check: out of the scheduler, and with
				// on_failure = "remove" its connections cut too (the
				// real is dead); "quiesce" lets them go on.
				w = 0
				if s.Check.OnFailure != "quiesce" {
					ready = false
					t.Reals[id].Ready = false
				}
			}
			if !ready {
				w = 0
			}
			svc.Reals = append(svc.Reals, id)
			svc.Dests = append(svc.Dests, schedule.Dest{Weight: w, Counters: c.counters[id], Key: realIdentity(r.Address)})
			switch fwd {
			case dataplane.ForwardNAT:
				addNATReal(proto, r.Address)
				if natReplies != nil && !v6 {
					k := dataplane.NATReplyKey{Proto: proto, Addr: r.Address.Addr().As4(), Port: r.Address.Port()}
					nr := dataplane.NATReply{VIP: key.VIP, Port: key.Port, RealID: id}
					if old, dup := natReplies[k]; (dup && old != nr) || s.SynProxy || tr.Proxy != 0 {
						natAmbiguous[k] = true
					}
					natReplies[k] = nr
				}
			case dataplane.ForwardFullNAT:
				if v6 {
					fullnat6 = true
				} else {
					fullnat = true
				}
				if v6 && !hasLocal[v6] {
					// Reported where the method is set: on the real, or
					// on the service for reals (the sorry one included)
					// that inherit it.
					p := fmt.Sprintf("%s.real[%d].forward", path, ri)
					if ri >= len(s.Reals) || r.Forward == s.Forward {
						p = path + ".forward"
					}
					if !slices.Contains(noLocal, p) {
						noLocal = append(noLocal, p)
					}
				}
			case dataplane.ForwardDR, dataplane.ForwardTUN, 0:
			}
		}
		var opts schedule.Options
		for fi, name := range s.SchedulerFlags {
			f, err := schedule.ParseFlag(name)
			if err != nil {
				errs = append(errs, config.FieldError{Path: fmt.Sprintf("%s.scheduler_flags[%d]", path, fi), Msg: err.Error()})
			}
			opts.Flags |= f
		}
		sched, err := schedule.New(s.Scheduler, svc.Dests, opts)
		if err != nil {
			errs = append(errs, config.FieldError{Path: path + ".scheduler", Msg: err.Error()})
			continue
		}
		svc.Sched = sched
		if v6 {
			if t.Services6 == nil {
				t.Services6 = map[dataplane.ServiceKey6]*dataplane.Service{}
			}
			t.Services6[serviceKey6(&s)] = svc
			continue
		}
		t.Services[key] = svc
	}
	// A real removed from a service that remains drains: it stays in the
	// table for its connections (and its NAT replies stay steered) but is
	// no longer one of the service's reals, so nothing new reaches it.
	drains := map[realKey]*drainingReal{}
	for k, d := range c.draining {
		drains[k] = d
	}
	now := time.Now()
	for k, r := range c.present {
		if _, ok := present[k]; ok || drains[k] != nil {
			continue
		}
		if cnt := c.counters[c.ids[k]]; cnt.Active.Load()+cnt.Inactive.Load() > 0 {
			drains[k] = &drainingReal{real: r, since: now}
		}
	}
	for k, d := range drains {
		if _, back := present[k]; back || !k.inTable(t) {
			delete(drains, k) // put back, or its service is gone
			continue
		}
		id := c.id(k)
		mac, _, ready := resolve(k.addr.Addr())
		for int(id) >= len(t.Reals) {
			t.Reals = append(t.Reals, dataplane.Real{})
		}
		tr := tableReal(id, k.addr, dataplane.Forward(d.real.Forward), mac, ready, c.counters[id], c.stats[id])
		tr.Proxy = proxyVersion(d.real.ProxyProtocol)
		t.Reals[id] = tr
		switch dataplane.Forward(d.real.Forward) {
		case dataplane.ForwardNAT:
			proto := k.svc.Proto
			if k.addr.Addr().Is6() {
				proto = k.svc6.Proto
			}
			addNATReal(proto, k.addr)
		case dataplane.ForwardFullNAT:
			if k.addr.Addr().Is6() {
				fullnat6 = true
			} else {
				fullnat = true
			}
		}
	}
	// Every ID this compiler ever handed out has a slot, so that entries of
	// removed reals find a zero Real and are dropped rather than misrouted.
	for len(t.Reals) < len(c.counters) {
		t.Reals = append(t.Reals, dataplane.Real{})
	}
	for _, a := range locals {
		switch {
		case a.Is4() && fullnat:
			t.Locals = append(t.Locals, a.As4())
			m.Locals = append(m.Locals, afpacket.LocalRange{Addr: a.As4(), PortLo: t.PortLo, PortHi: t.PortHi})
		case a.Is6() && fullnat6:
			t.Locals6 = append(t.Locals6, a.As16())
			m.Locals6 = append(m.Locals6, afpacket.LocalRange6{Addr: a.As16(), PortLo: t.PortLo, PortHi: t.PortHi})
		}
	}
	// The other directors' local addresses: never a source of this
	// director's connections, but their replies come here when the routers
	// move them (bgp.peer_local_addresses), to be translated by the
	// connections sync brought.
	if cfg.BGP.Enabled {
		for _, a := range cfg.BGP.PeerLocalAddresses {
			switch {
			case a.Is4() && fullnat:
				m.Locals = append(m.Locals, afpacket.LocalRange{Addr: a.As4(), PortLo: t.PortLo, PortHi: t.PortHi})
			case a.Is6() && fullnat6:
				m.Locals6 = append(m.Locals6, afpacket.LocalRange6{Addr: a.As16(), PortLo: t.PortLo, PortHi: t.PortHi})
			}
		}
	}
	for _, p := range noLocal {
		where := link.Name + " has no global IPv6 address (add one, or list one in director.local_addresses)"
		if len(cfg.Director.LocalAddresses) > 0 {
			where = "director.local_addresses lists none"
		}
		errs = append(errs, config.FieldError{Path: p, Msg: "IPv6 fullnat needs an IPv6 local address: " + where})
	}
	for k := range natAmbiguous {
		delete(natReplies, k)
	}
	t.NATReplies = natReplies
	if len(errs) > 0 {
		return nil, nil, errs
	}
	// Thresholds live in the counters, which outlast this table: set them
	// only once the whole configuration is known to be good.
	for _, th := range thresholds {
		th.c.SetThresholds(th.upper, th.lower)
	}
	c.present, c.draining = present, drains
	return t, m, nil
}

// healthOf returns, for each real of s, whether it counts as healthy. When
// the check says every real is down and the service has no sorry real,
// the one that went down last keeps answering (a service with no real at
// all helps nobody: the last one standing may still serve some).
func (c *Compiler) healthOf(s *config.Service) []bool {
	id := serviceID(s)
	out := make([]bool, len(s.Reals))
	last, lastAt := -1, time.Time{}
	allDown := len(s.Reals) > 0
	for i, r := range s.Reals {
		out[i] = true
		if c.Health == nil {
			continue
		}
		h := c.Health(id, r.Address)
		if !h.Checked || h.Up {
			allDown = false
			continue
		}
		out[i] = false
		if last < 0 || h.Changed.After(lastAt) {
			last, lastAt = i, h.Changed
		}
	}
	if allDown && !s.Sorry.IsValid() && last >= 0 {
		out[last] = true
	}
	return out
}

// sorryReal returns the service's sorry real when none of its reals can
// take a new connection (all failed their checks or have weight 0).
func sorryReal(s *config.Service, healthy []bool) (config.Real, bool) {
	if !s.Sorry.IsValid() {
		return config.Real{}, false
	}
	for i, r := range s.Reals {
		if healthy[i] && r.Weight > 0 {
			return config.Real{}, false
		}
	}
	return config.Real{Address: s.Sorry, Weight: 1, Forward: s.Forward, ProxyProtocol: s.ProxyProtocol}, true
}

// proxyVersion is the dataplane's PROXY protocol version of a validated
// proxy_protocol value.
func proxyVersion(v string) dataplane.ProxyVersion {
	switch v {
	case "v1":
		return dataplane.ProxyV1
	case "v2":
		return dataplane.ProxyV2
	}
	return 0
}

// realIdentity is a real's identity for mh: a stable hash of its address
// and port, the same on every director and after any reordering, so that
// Maglev keeps the real's permutation when others come and go.
func realIdentity(a netip.AddrPort) uint64 {
	h := fnv.New64a()
	b, _ := a.MarshalBinary()
	h.Write(b)
	if k := h.Sum64(); k != 0 {
		return k
	}
	return 1 // 0 means "no identity" to schedule
}

// errNoIPv4 is returned when the director interface has no IPv4 address.
var errNoIPv4 = errors.New("has no IPv4 address")
