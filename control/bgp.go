package control

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/bgp"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
)

// bgpInputs is everything that decides which VIPs the director announces.
type bgpInputs struct {
	// Running: gvsd is up and not stopping, its workers run (the dataplane
	// has not stopped) and the interface is up.
	Running bool
	// Learning: connection sync is on and the director started less than
	// bgpLearnFor ago, so the other directors' next refresh has not taught
	// it their connections yet. Once it announces, the routers move some
	// of those connections to it (ECMP rehashes when a next hop joins),
	// and it would drop their segments (not SYNs) until it knew them.
	Learning bool
	// VIPs are the service VIPs, each with whether it is ready: some
	// service on it has a real the scheduler may pick (see vipReadiness).
	VIPs map[netip.Addr]bool
	// Locals are this director's FULLNAT local addresses and Standby the
	// other directors' (bgp.peer_local_addresses; both empty without it):
	// announced while it runs and is not learning, the others' as a
	// fallback (bgpRoutes' Standby).
	Locals, Standby []netip.Addr
	// NextHop6: the speaker has an IPv6 next hop, so IPv6 VIPs can be
	// announced.
	NextHop6 bool
}

// bgpLearnMargin is added to [sync] refresh in bgpLearnFor: a refresh is
// paced (syncPaceEvery, syncPauseFor: about 130 MB/s), and one second
// covers a peer's refresh of some three million connections.
const bgpLearnMargin = time.Second

// bgpLearnFor is how long after its start a director with [bgp] and
// [sync] waits before it announces anything: one refresh of its peers and
// bgpLearnMargin (see bgpInputs.Learning). Without sync, or without
// refreshes, it does not wait.
func bgpLearnFor(cfg *config.Config) time.Duration {
	if !cfg.BGP.Enabled || !cfg.Sync.Enabled || cfg.Sync.Refresh <= 0 {
		return 0
	}
	return cfg.Sync.Refresh + bgpLearnMargin
}

// bgpPrefixes decides what the director announces: each ready VIP as a /32
// (an IPv6 one as a /128, when there is an IPv6 next hop), and its own and
// the other directors' FULLNAT local addresses the same way, while it runs
// and is not learning its peers' connections, nothing otherwise. Sorted.
func bgpPrefixes(in bgpInputs) []netip.Prefix {
	if !in.Running || in.Learning {
		return nil
	}
	var out []netip.Prefix
	for vip, ready := range in.VIPs {
		if ready && (vip.Is4() || in.NextHop6) {
			out = append(out, vipPrefix(vip))
		}
	}
	for _, a := range append(slices.Clip(in.Locals), in.Standby...) {
		if a.Is4() || in.NextHop6 {
			out = append(out, vipPrefix(a))
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// vipReadiness says, for every VIP of cfg, whether one of its services
// has a real that can take a new connection: configured with a weight
// above 0, its next hop known (Ready in the published table t) and passing
// its health check (health; a service without a check passes). Health is
// asked, not the table's weights: when every real of a service fails, the
// compiler keeps the last one in the scheduler (failing open), and that
// must not keep the VIP announced. A service's sorry real does not count
// either: a director whose reals are all down leaves the VIP to the
// directors whose reals are up.
func vipReadiness(cfg *config.Config, t *dataplane.Table, health func(ServiceID, netip.AddrPort) HealthState) map[netip.Addr]bool {
	out := make(map[netip.Addr]bool, len(cfg.Services))
	for i := range cfg.Services {
		s := &cfg.Services[i]
		vip := s.Address.Addr()
		if out[vip] {
			continue
		}
		out[vip] = false
		if t == nil {
			continue
		}
		svc := t.Services[serviceKey(s)]
		if vip.Is6() {
			svc = t.Services6[serviceKey6(s)]
		}
		if svc == nil {
			continue
		}
		for _, r := range s.Reals {
			if r.Weight <= 0 || !tableReady(t, svc, r.Address) {
				continue
			}
			if health != nil {
				if h := health(serviceID(s), r.Address); h.Checked && !h.Up {
					continue
				}
			}
			out[vip] = true
			break
		}
	}
	return out
}

// tableReady reports whether real is a Ready real of svc in t.
func tableReady(t *dataplane.Table, svc *dataplane.Service, real netip.AddrPort) bool {
	for _, id := range svc.Reals {
		if int(id) >= len(t.Reals) {
			continue
		}
		r := &t.Reals[id]
		if realAddr(r) == real {
			return r.Ready
		}
	}
	return false
}

// vipPrefix is the prefix announcing vip: vip/32, or vip/128.
func vipPrefix(vip netip.Addr) netip.Prefix { return netip.PrefixFrom(vip, vip.BitLen()) }

// bgpConfig is the speaker's configuration of cfg on this director: the
// router ID and next hop default to the interface's IPv4 address (addr),
// the IPv6 next hop to its global IPv6 address (addr6, invalid if none).
func bgpConfig(cfg *config.Config, addr, addr6 netip.Addr) bgp.Config {
	b := cfg.BGP
	id := b.RouterID
	if !id.IsValid() {
		id = addr
	}
	return bgp.Config{LocalAS: uint32(b.LocalAS), RouterID: id, HoldTime: b.HoldTime, Routes: bgpRoutes(cfg, addr, addr6), Peers: bgpPeers(cfg)}
}

func bgpRoutes(cfg *config.Config, addr, addr6 netip.Addr) bgp.Routes {
	b := cfg.BGP
	r := bgp.Routes{NextHop: b.NextHop, NextHop6: b.NextHop6, MED: int64(b.MED)}
	if !r.NextHop.IsValid() {
		r.NextHop = addr
	}
	if !r.NextHop6.IsValid() {
		r.NextHop6 = addr6
	}
	for _, c := range b.Communities {
		if v, err := config.ParseCommunity(c); err == nil { // validated
			r.Communities = append(r.Communities, v)
		}
	}
	for _, a := range b.PeerLocalAddresses {
		r.Standby = append(r.Standby, vipPrefix(a))
	}
	return r
}

// bgpLocals are the local addresses a director announces (bgpInputs):
// with bgp.peer_local_addresses, its own and the others', else none.
func bgpLocals(cfg *config.Config) (own, standby []netip.Addr) {
	if len(cfg.BGP.PeerLocalAddresses) == 0 || !usesFullNAT(cfg) {
		return nil, nil
	}
	return cfg.Director.LocalAddresses, cfg.BGP.PeerLocalAddresses
}

func bgpPeers(cfg *config.Config) []bgp.Peer {
	out := make([]bgp.Peer, 0, len(cfg.BGP.Peers))
	for _, p := range cfg.BGP.Peers {
		out = append(out, bgp.Peer{Address: p.Address, AS: uint32(p.AS), Password: p.Password})
	}
	return out
}

// bgpFixed reports the [bgp] fields a reload cannot change: the session
// itself (on or off, local AS, router ID, hold time). Peers, next hop, MED,
// communities and drain can change.
func bgpFixed(cur, next config.BGP) config.Errors {
	var out config.Errors
	restart := func(path string) {
		out = append(out, config.FieldError{Path: path, Msg: "cannot change on reload; restart gvsd"})
	}
	if cur.Enabled != next.Enabled {
		restart("bgp")
		return out
	}
	if !cur.Enabled {
		return nil
	}
	if cur.LocalAS != next.LocalAS {
		restart("bgp.local_as")
	}
	if cur.RouterID != next.RouterID {
		restart("bgp.router_id")
	}
	if cur.HoldTime != next.HoldTime {
		restart("bgp.hold_time")
	}
	return out
}

// startBGP starts the speaker of cfg, if it has [bgp]. It announces
// nothing until bgpSync.
func (d *Daemon) startBGP(cfg *config.Config) error {
	if !cfg.BGP.Enabled {
		return nil
	}
	d.linkOK.Store(true)
	bc := bgpConfig(cfg, d.link.Addr, linkAddr6(d.link.Name))
	sp, err := bgp.Start(bc, d.log)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	d.bgp = sp
	d.bgpNextHop6 = bc.Routes.NextHop6
	d.warnNoNextHop6(cfg)
	d.log.Info("BGP speaker started", "local_as", cfg.BGP.LocalAS, "peers", len(cfg.BGP.Peers))
	if wait := bgpLearnFor(cfg); wait > 0 {
		d.bgpFrom = time.Now().Add(wait)
		d.bgpLearn = time.AfterFunc(wait, func() { // bgp: announces once the peers' connections are learnt
			d.mu.Lock()
			defer d.mu.Unlock()
			if !d.closed {
				d.bgpSync()
			}
		})
		d.log.Info("BGP announces after the next sync refresh of the other directors", "wait", wait)
	}
	return nil
}

// bgpSync announces what bgpPrefixes decides now. d.mu is held.
func (d *Daemon) bgpSync() {
	if d.bgp == nil {
		return
	}
	running := !d.closed && d.linkOK.Load()
	select {
	case <-d.runDone:
		running = false
	default:
	}
	in := bgpInputs{Running: running, Learning: time.Now().Before(d.bgpFrom), VIPs: vipReadiness(d.cfg, d.dp.Table(), d.healthFor(d.cfg)),
		NextHop6: d.bgpNextHop6.IsValid()}
	in.Locals, in.Standby = bgpLocals(d.cfg)
	if err := d.bgp.Announce(bgpPrefixes(in)); err != nil {
		d.log.Error("BGP announce failed", "err", err)
	}
}

// bgpReload applies what a reload may change of [bgp]. d.mu is held and
// d.cfg is the new configuration.
func (d *Daemon) bgpReload() {
	if d.bgp == nil {
		return
	}
	routes := bgpRoutes(d.cfg, d.link.Addr, linkAddr6(d.link.Name))
	if err := d.bgp.Update(bgpPeers(d.cfg), routes); err != nil {
		d.log.Error("BGP reload", "err", err)
	}
	d.bgpNextHop6 = routes.NextHop6
	d.warnNoNextHop6(d.cfg)
	d.bgpSync()
}

// warnNoNextHop6 logs, when cfg has IPv6 VIPs and the speaker no IPv6
// next hop, that they are not announced and why.
func (d *Daemon) warnNoNextHop6(cfg *config.Config) {
	if vips := ipv6VIPs(cfg); len(vips) > 0 && !d.bgpNextHop6.IsValid() {
		d.log.Warn("BGP does not announce the IPv6 VIPs: no IPv6 next hop (the interface has no global IPv6 address; set bgp.next_hop6)",
			"interface", d.link.Name, "vips", vips)
	}
}

// linkAddr6 is the first global IPv6 address of the interface name that
// is not a /128 (a VIP), or an invalid Addr: interfaceIPv6's.
func linkAddr6(name string) netip.Addr {
	a, _ := interfaceIPv6(name)
	return a
}

// bgpWithdraw withdraws every VIP on a clean stop and keeps forwarding for
// [bgp] drain, so that the routers move new flows elsewhere before the
// workers stop. d.closed is set: nothing announces again.
func (d *Daemon) bgpWithdraw(drain time.Duration) {
	if d.bgp == nil {
		return
	}
	had := len(d.bgp.Announced()) > 0
	if err := d.bgp.Announce(nil); err != nil {
		d.log.Error("BGP withdraw at stop failed", "err", err)
	}
	select {
	case <-d.runDone:
		return // the workers stopped already: nothing to drain
	default:
	}
	if !had || drain <= 0 {
		return
	}
	d.log.Info("VIPs withdrawn; forwarding until the drain ends", "drain", drain)
	time.Sleep(drain)
}

// bgpStatus returns what gvsadm shows of BGP, or nil without it.
func (d *Daemon) bgpStatus() *api.BGPStatus {
	if d.bgp == nil {
		return nil
	}
	d.mu.Lock()
	cfg, closed, from := d.cfg, d.closed, d.bgpFrom
	d.mu.Unlock()
	bc := bgpConfig(cfg, d.link.Addr, linkAddr6(d.link.Name))
	st := &api.BGPStatus{LocalAS: bc.LocalAS, RouterID: bc.RouterID.String(), NextHop: bc.Routes.NextHop.String(),
		HoldTime: int(cfg.BGP.HoldTime / time.Second), Stopping: closed, Peers: []api.BGPPeer{}, Announced: []string{}}
	now := time.Now()
	if now.Before(from) && !closed {
		st.Learning = from
	}
	for _, p := range d.bgp.Peers() {
		ap := api.BGPPeer{Address: p.Address.String(), AS: p.AS, State: p.State, Established: p.Established,
			UpdatesReceived: p.Received, UpdatesSent: p.Sent}
		if p.Established && !p.Since.IsZero() {
			ap.Since = p.Since
			ap.Uptime = int64(now.Sub(p.Since) / time.Second)
		}
		st.Peers = append(st.Peers, ap)
	}
	announced := d.bgp.Announced()
	for _, p := range announced {
		st.Announced = append(st.Announced, p.String())
	}
	if bc.Routes.NextHop6.IsValid() {
		st.NextHop6 = bc.Routes.NextHop6.String()
	}
	for _, vip := range append(serviceVIPs(cfg), ipv6VIPs(cfg)...) {
		if !slices.Contains(announced, vipPrefix(vip)) {
			st.Withdrawn = append(st.Withdrawn, vipPrefix(vip).String())
		}
	}
	return st
}
