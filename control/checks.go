package control

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/control/health"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// maxParallelChecks bounds the health checks running at once.
const maxParallelChecks = 64

// ServiceID names a configured service of either family by its protocol
// and VIP:port, as health checks and BGP readiness know it.
type ServiceID struct {
	Proto uint8 // header.ProtoTCP or header.ProtoUDP
	Addr  netip.AddrPort
}

// serviceID is the ServiceID of a configured service.
func serviceID(s *config.Service) ServiceID {
	return ServiceID{Proto: protoOf(s), Addr: s.Address}
}

// checkKey names a checked real: "tcp/10.20.0.100:80 -> 10.20.0.11:80",
// or with IPv6 "tcp/[2001:db8::100]:80 -> [2001:db8::11]:80".
func checkKey(id ServiceID, real netip.AddrPort) string {
	proto := "tcp"
	if id.Proto == header.ProtoUDP {
		proto = "udp"
	}
	return fmt.Sprintf("%s/%s -> %s", proto, id.Addr, real)
}

// serviceKey is the dataplane's key of a configured IPv4 service; of an
// IPv6 one it has the protocol and port only (serviceKey6 is its key).
func serviceKey(s *config.Service) dataplane.ServiceKey {
	k := dataplane.ServiceKey{Proto: protoOf(s), Port: s.Address.Port()}
	if a := s.Address.Addr(); a.Is4() {
		k.VIP = a.As4()
	}
	return k
}

// serviceKey6 is the dataplane's key of a configured IPv6 service.
func serviceKey6(s *config.Service) dataplane.ServiceKey6 {
	return dataplane.ServiceKey6{Proto: protoOf(s), VIP: s.Address.Addr().As16(), Port: s.Address.Port()}
}

// protoOf is the IP protocol number of s.
func protoOf(s *config.Service) uint8 {
	if s.Protocol == config.UDP {
		return header.ProtoUDP
	}
	return header.ProtoTCP
}

func checked(c *config.Check) bool { return c.Type != "" && c.Type != "none" }

// checkTargets returns the health-check targets of cfg and, for each,
// whether it starts down (alpha).
func checkTargets(cfg *config.Config) (map[string]health.Target, map[string]bool) {
	targets, alpha := map[string]health.Target{}, map[string]bool{}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		if !checked(&s.Check) {
			continue
		}
		c := s.Check
		hc := health.Config{Type: c.Type, Interval: c.Interval, Timeout: c.Timeout, Rise: c.Rise, Fall: c.Fall,
			Port: uint16(c.Port), Path: c.Path, Status: c.Status, Expect: c.Expect, Send: c.Send, Command: c.Command}
		for _, r := range s.Reals {
			k := checkKey(serviceID(s), r.Address)
			rc := hc
			if c.Port == 0 || c.Port == int(r.Address.Port()) {
				// The port the director sends PROXY headers to wants one
				// from the check too.
				rc.ProxyProtocol = r.ProxyProtocol
			}
			targets[k] = health.Target{Addr: r.Address, Check: rc}
			alpha[k] = c.Alpha
		}
	}
	return targets, alpha
}

// healthFor is the compiler's view of health while it compiles cfg: the
// monitor's state of a checked real, or, before the monitor knows it, the
// state it starts in (down with alpha, else up).
func (d *Daemon) healthFor(cfg *config.Config) func(ServiceID, netip.AddrPort) HealthState {
	_, alpha := checkTargets(cfg)
	return func(k ServiceID, real netip.AddrPort) HealthState {
		key := checkKey(k, real)
		a, ok := alpha[key]
		if !ok {
			return HealthState{}
		}
		if st, ok := d.health.State(key); ok {
			return HealthState{Checked: true, Up: st.Up, Changed: st.Changed}
		}
		return HealthState{Checked: true, Up: !a}
	}
}

// compile compiles cfg with the current health of its reals.
func (d *Daemon) compile(cfg *config.Config) (*dataplane.Table, *afpacket.Match, error) {
	d.comp.Health = d.healthFor(cfg)
	t, m, err := d.comp.Compile(cfg, d.link, d.locals(cfg), d.lookupMAC)
	if err == nil && d.gateway.IsValid() {
		t.GatewayMAC = d.macs[d.gateway]
	}
	if err == nil && len(m.NATReals6) > 0 {
		m.Own6 = ownAddrs6(d.link.Name)
	}
	return t, m, err
}

// ownAddrs6 lists the IPv6 addresses of the interface name that are the
// director's own, not its VIPs (gvsd adds those as /128): the sources of
// its health checks of IPv6 NAT reals, whose answers the ingress table
// must leave to the kernel. They are read at every compile, as an address
// may come and go (SLAAC) while gvsd runs; none on an error.
func ownAddrs6(name string) [][16]byte {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	var out [][16]byte
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() < 128 {
			out = append(out, p.Addr().As16())
		}
	}
	return out
}

// setChecks gives the monitor the checks of cfg (after cfg is running).
func (d *Daemon) setChecks(cfg *config.Config) {
	targets, alpha := checkTargets(cfg)
	d.health.Set(targets, func(key string) bool { return !alpha[key] })
}

// healthChanged is the monitor's callback: it only wakes healthLoop, so
// the monitor never waits for the daemon's lock.
func (d *Daemon) healthChanged(string, health.State) {
	select {
	case d.healthKick <- struct{}{}:
	default:
	}
}

// healthLoop republishes the table when a real's health changes, until
// the daemon stops.
func (d *Daemon) healthLoop() {
	defer d.bg.Done()
	for {
		select {
		case <-d.stop:
			return
		case <-d.healthKick:
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return
		}
		t, m, err := d.compile(d.cfg)
		if err == nil {
			err = d.apply(t, m)
		}
		if err != nil {
			d.log.Error("republish after a health change failed", "err", err)
		}
		d.bgpSync()
		d.mu.Unlock()
	}
}
