package control

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/arpctl"
	"github.com/gvs-lb/gvs/control/bgp"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/control/health"
	"github.com/gvs-lb/gvs/control/ingress"
	"github.com/gvs-lb/gvs/control/vrrp"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"github.com/gvs-lb/gvs/offload"
)

// Tunables of the daemon.
const (
	// resolveTimeout bounds one ARP resolution of a real server's next hop
	// at start and reload; unresolved reals are retried every
	// resolveEvery, so a slow neighbour delays only itself.
	resolveTimeout = time.Second
	resolveEvery   = 5 * time.Second
	// garpCount and garpInterval: gratuitous ARPs sent when a VIP is added
	// without VRRP (with it, vrrp.garp_repeat), spaced so that a switch
	// that missed one gets the next without delaying the first.
	garpCount    = 3
	garpInterval = 100 * time.Millisecond
)

// Daemon is a running director: links, dataplane, ingress table and VIPs.
type Daemon struct {
	log  *slog.Logger
	link LinkInfo

	mu          sync.Mutex // serialises Reload, the resolver and Close
	cfg         *config.Config
	comp        *Compiler
	match       *afpacket.Match
	macs        map[netip.Addr][6]byte
	offLink     map[netip.Addr]bool // reals whose next hop is a gateway
	gateway     netip.Addr          // the default gateway, with [sync]
	vips        map[netip.Addr]bool // VIPs present on the interface; true = we added it
	links       []*afpacket.Link
	linkCfg     afpacket.Config // what the links were opened with, for a relink
	linkGen     uint16          // relinks so far: each opens a fresh fanout group
	linkDown    chan struct{}   // a worker's read failed: the interface went down or away
	relinks     atomic.Uint64   // links reopened after the interface came back
	dp          *dataplane.Dataplane
	ingress     *ingress.Table
	restore     func() error // offloads
	stop        chan struct{}
	runDone     chan struct{} // closed when the dataplane stopped; runErr says why
	runErr      error
	bg          sync.WaitGroup
	rates       estimator // ipvsadm --rate
	health      *health.Monitor
	healthKick  chan struct{} // a real's health changed
	speaker     *vrrp.Speaker // nil without [vrrp]
	vrrpState   vrrpStatus
	vrrpKick    chan struct{} // the VRRP state changed
	sync        *syncer       // nil without [sync]
	bgp         *bgp.Speaker  // nil without [bgp]
	bgpFrom     time.Time     // with [sync]: nothing is announced before (bgpLearnFor)
	bgpNextHop6 netip.Addr    // the IPv6 next hop the speaker announces with; invalid = no IPv6 VIP announced
	bgpLearn    *time.Timer   // announces at bgpFrom; nil without
	linkOK      atomic.Bool   // the interface is up and the links read (for [bgp])
	closed      bool
	announce    sync.WaitGroup
}

// Start brings a director up with cfg: it checks the host, opens one
// AF_PACKET link per worker, publishes the compiled table, installs the
// ingress table and adds the VIPs. On any error it undoes what it did.
func Start(cfg *config.Config, log *slog.Logger) (d *Daemon, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d = &Daemon{log: log, cfg: cfg, comp: NewCompiler(), macs: map[netip.Addr][6]byte{}, offLink: map[netip.Addr]bool{}, vips: map[netip.Addr]bool{}, stop: make(chan struct{}),
		healthKick: make(chan struct{}, 1), vrrpKick: make(chan struct{}, 1), linkDown: make(chan struct{}, 1)}
	d.health = health.NewMonitor(health.Options{MaxParallel: maxParallelChecks, OnChange: d.healthChanged,
		Logf: func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }})
	// The error returns below set d to nil: tear down what this one made.
	started := d
	defer func() {
		if err != nil {
			started.teardown()
		}
	}()
	if d.link, err = linkInfo(cfg.Director.Interface); err != nil {
		return nil, err
	}
	if err := checkLocalPorts(cfg); err != nil {
		return nil, err
	}
	// The interface's offloads stay as they are: the links read partial
	// checksums and GRO frames with their metadata and forward them.
	// Turning GRO off is an option (it costs bulk throughput).
	if cfg.Director.DisableGRO {
		if d.restore, err = offload.DisableForCapture(d.link.Name); err != nil {
			log.Warn("cannot turn off GRO/LRO as director.disable_gro asks; merged frames are forwarded as GSO", "interface", d.link.Name, "err", err)
			d.restore = nil
		}
	}
	d.resolveAll(cfg)
	t, m, err := d.compile(cfg)
	if err != nil {
		return nil, err
	}
	workers := cfg.Director.Workers
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	filter, err := afpacket.FilterProgram(m)
	if err != nil {
		return nil, fmt.Errorf("control: filter: %w", err)
	}
	// Every worker has a main ring and a SYN ring (even a lone worker:
	// steering picks the ring), so a SYN flood overflows only SYN rings
	// and never costs an established connection a frame. Fanout group
	// IDs are per network namespace and 0 means none.
	// Workers keep their P while they wait (HoldP, holdProcs): measured,
	// that alone gave 10-30% more keep-alive requests per second.
	lc := afpacket.Config{Interface: d.link.Name, Filter: filter, SYNBlocks: synRingBlocks,
		FanoutGroup: fanoutGroup(0), HoldP: true, BusyPoll: cfg.Director.BusyPoll}
	if lc.Steering, err = afpacket.SteeringProgramSYN(m, workers); err != nil {
		return nil, fmt.Errorf("control: steering: %w", err)
	}
	d.linkCfg = lc
	links := make([]dataplane.Link, 0, workers)
	for i := 0; i < workers; i++ {
		l, err := afpacket.Open(lc)
		if err != nil {
			return nil, fmt.Errorf("control: worker %d: %w", i, err)
		}
		d.links = append(d.links, l)
		links = append(links, l)
	}
	if d.dp, err = dataplane.New(links, cfg.Limits.Connections); err != nil {
		return nil, err
	}
	if cfg.Sync.Enabled {
		d.dp.EnableSync(syncRing, syncOwner(workers), syncOwner6(workers))
	}
	policy := cfg.Director.WorkerPolicy
	d.dp.OnWorkerStart(func(w int) {
		if err := setThreadPolicy(policy); err != nil {
			log.Warn("worker keeps the default scheduling policy", "worker", w, "director.worker_policy", policy, "err", err)
		}
	})
	d.dp.OnLinkError(func(int, error) {
		select {
		case d.linkDown <- struct{}{}:
		default:
		}
	})
	d.dp.Publish(t)
	d.match = m
	d.runDone = make(chan struct{})
	release := holdProcs(workers)
	go func() { // dataplane supervisor: records why the workers stopped
		d.runErr = d.dp.Run(d.stop)
		release()
		close(d.runDone)
	}()
	if d.ingress, err = ingress.Install(d.link.Name, m); err != nil {
		return nil, err
	}
	if err := d.startVRRP(cfg); err != nil {
		return nil, err
	}
	if err := d.startSync(cfg); err != nil {
		return nil, err
	}
	if err := d.syncVIPs(cfg); err != nil {
		return nil, err
	}
	d.setChecks(cfg)
	if err := d.startBGP(cfg); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.bgpSync()
	d.mu.Unlock()
	d.bg.Add(4)
	go d.resolver()   // control: re-resolves next hops until Close
	go d.estimate()   // control: samples the rates every 2 s until Close
	go d.healthLoop() // control: republishes on health changes until Close
	go d.linkWatch()  // control: reopens the links after the interface comes back, until Close
	if cfg.Director.Metrics != "" {
		if err := d.serveMetrics(cfg.Director.Metrics); err != nil {
			return nil, fmt.Errorf("control: metrics on %s: %w", cfg.Director.Metrics, err)
		}
	}
	log.Info("gvsd started", "interface", d.link.Name, "addr", d.link.Addr, "mac", net.HardwareAddr(d.link.MAC[:]).String(),
		"workers", workers, "services", len(cfg.Services))
	return d, nil
}

// Reload applies a new configuration. Connections of services and reals
// that stay keep their entries and their real; on error the running
// configuration stays as it was.
func (d *Daemon) Reload(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reloadLocked(cfg)
}

// Update applies the configuration change computes from the running one, as
// one step: nothing else reloads between the read and the reload, so
// concurrent edits (and an edit racing a SIGHUP) are applied one after the
// other and none is lost. An error from change or the reload leaves the
// running configuration as it was.
func (d *Daemon) Update(change func(cur *config.Config) (*config.Config, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("control: reload after close")
	}
	cfg, err := change(d.cfg)
	if err != nil {
		return err
	}
	return d.reloadLocked(cfg)
}

// reloadLocked is Reload with d.mu held.
func (d *Daemon) reloadLocked(cfg *config.Config) error {
	if d.closed {
		return errors.New("control: reload after close")
	}
	// What sizes the dataplane is fixed when it starts.
	var fixed config.Errors
	if cfg.Director.Interface != d.cfg.Director.Interface {
		fixed = append(fixed, config.FieldError{Path: "director.interface", Msg: "cannot change on reload; restart gvsd"})
	}
	if cfg.Director.DisableGRO != d.cfg.Director.DisableGRO {
		fixed = append(fixed, config.FieldError{Path: "director.disable_gro", Msg: "cannot change on reload; restart gvsd"})
	}
	if cfg.Director.WorkerPolicy != d.cfg.Director.WorkerPolicy {
		fixed = append(fixed, config.FieldError{Path: "director.worker_policy", Msg: "cannot change on reload; restart gvsd"})
	}
	if cfg.Director.BusyPoll != d.cfg.Director.BusyPoll {
		fixed = append(fixed, config.FieldError{Path: "director.busy_poll", Msg: "cannot change on reload; restart gvsd"})
	}
	if cfg.Director.Workers != d.cfg.Director.Workers {
		fixed = append(fixed, config.FieldError{Path: "director.workers", Msg: "cannot change on reload; restart gvsd"})
	}
	if !reflect.DeepEqual(cfg.VRRP, d.cfg.VRRP) {
		fixed = append(fixed, config.FieldError{Path: "vrrp", Msg: "cannot change on reload; restart gvsd"})
	}
	if cfg.Sync != d.cfg.Sync {
		fixed = append(fixed, config.FieldError{Path: "sync", Msg: "cannot change on reload; restart gvsd"})
	}
	if cfg.Director.Metrics != d.cfg.Director.Metrics {
		fixed = append(fixed, config.FieldError{Path: "director.metrics", Msg: "cannot change on reload; restart gvsd"})
	}
	fixed = append(fixed, bgpFixed(d.cfg.BGP, cfg.BGP)...)
	if cfg.Limits.Connections != d.cfg.Limits.Connections {
		fixed = append(fixed, config.FieldError{Path: "limits.connections", Msg: "cannot change on reload (the table is sized at start); restart gvsd"})
	}
	if len(fixed) > 0 {
		return fixed
	}
	if err := checkLocalPorts(cfg); err != nil {
		return err
	}
	d.resolveAll(cfg)
	t, m, err := d.compile(cfg)
	if err != nil {
		return err
	}
	if err := d.apply(t, m); err != nil {
		return err
	}
	if err := d.syncVIPs(cfg); err != nil {
		return err
	}
	d.cfg = cfg
	d.setChecks(cfg)
	d.bgpReload()
	d.log.Info("configuration reloaded", "services", len(cfg.Services))
	return nil
}

// apply moves the links, the dataplane and the ingress table to (t, m):
// first the filters admit the new frames, then the table is published,
// then the kernel stops seeing them.
// synRingBlocks sizes each worker's SYN ring: 4 blocks of 1 MiB, 16,384
// 256-byte slots (a SYN each), several milliseconds of a flood at the rates a
// worker forwards.
const synRingBlocks = 4

func (d *Daemon) apply(t *dataplane.Table, m *afpacket.Match) error {
	filter, err := afpacket.FilterProgram(m)
	if err != nil {
		return fmt.Errorf("control: filter: %w", err)
	}
	for i, l := range d.links {
		if err := l.SetFilter(filter); err != nil {
			return fmt.Errorf("control: worker %d: %w", i, err)
		}
	}
	steer, err := afpacket.SteeringProgramSYN(m, len(d.links))
	if err != nil {
		return fmt.Errorf("control: steering: %w", err)
	}
	if err := d.links[0].SetSteering(steer); err != nil {
		return fmt.Errorf("control: steering: %w", err)
	}
	d.dp.Publish(t)
	if err := d.ingress.Update(m); err != nil {
		return err
	}
	d.match = m
	return nil
}

// Dataplane returns the running dataplane, for counters.
func (d *Daemon) Dataplane() *dataplane.Dataplane { return d.dp }

// LinkStats returns each worker's AF_PACKET socket counters: frames the
// kernel put in the ring, frames it dropped because the ring was full (the
// dataplane fell behind), frames truncated, frames sent and refused.
func (d *Daemon) LinkStats() []afpacket.Stats {
	out := make([]afpacket.Stats, len(d.links))
	for i, l := range d.links {
		out[i], _ = l.Stats()
	}
	return out
}

// Config returns the running configuration.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Done is closed when the dataplane stopped, on its own (a link failed) or
// by Close; Err then says why.
func (d *Daemon) Done() <-chan struct{} { return d.runDone }

// Err is the dataplane's error once Done is closed.
func (d *Daemon) Err() error {
	<-d.runDone
	return d.runErr
}

// Close stops the director. With [bgp] it first withdraws every VIP and
// keeps forwarding for [bgp] drain; then it removes the VIPs, stops the
// workers, closes the links, removes the ingress table and restores the
// interface's offloads (see teardown).
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	drain := d.cfg.BGP.Drain
	d.mu.Unlock()
	d.bgpWithdraw(drain)
	return d.teardown()
}

// teardown stops the director. The VIPs go first and the ingress table
// last: with the table gone and a VIP still up, the kernel would answer
// the dataplane's connections with resets, while a director without the
// VIP drops whatever still reaches it until its peer's gratuitous ARP
// moves the traffic.
func (d *Daemon) teardown() error {
	var errs []error
	if d.bgpLearn != nil {
		d.bgpLearn.Stop()
	}
	if d.bgp != nil {
		errs = append(errs, d.bgp.Close()) // a Cease to every peer
	}
	d.announce.Wait()
	for vip, added := range d.vips {
		if added {
			errs = append(errs, arpctl.RemoveVIP(d.link.Name, vip))
		}
	}
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	for _, l := range d.links {
		errs = append(errs, l.Close())
	}
	if d.runDone != nil {
		<-d.runDone
		errs = append(errs, d.runErr)
	}
	d.bg.Wait()
	if d.ingress != nil {
		errs = append(errs, d.ingress.Remove())
	}
	d.health.Close()
	if d.restore != nil {
		errs = append(errs, d.restore())
	}
	return errors.Join(errs...)
}

// syncVIPs adds the VIPs of cfg to the interface (announcing each new one
// with gratuitous ARP) and removes the ones we added that cfg no longer has.
func (d *Daemon) syncVIPs(cfg *config.Config) error {
	want := map[netip.Addr]bool{}
	if d.holdsVIPs(cfg) {
		// IPv6 VIPs go on as /128 without DAD and are announced with
		// unsolicited neighbour advertisements (arpctl). With VRRP the
		// master holds every address of vrrp.addresses, IPv4 and IPv6
		// (a FULLNAT local address too, so the reals' replies follow
		// the master), as keepalived holds its virtual_ipaddress; by
		// default every service VIP. Beside [bgp] the service VIPs are
		// BGP's, held by every director, and VRRP moves its own
		// addresses alone (below).
		vips := append(serviceVIPs(cfg), ipv6VIPs(cfg)...)
		if cfg.VRRP.RouterID != 0 && !cfg.BGP.Enabled {
			vips = vrrpAddresses(cfg)
		}
		for _, vip := range vips {
			want[vip] = true
		}
	}
	if cfg.BGP.Enabled && cfg.VRRP.RouterID != 0 && d.vrrpMaster(cfg) {
		// Beside [bgp], VRRP moves its own addresses alone (the NAT
		// reals' gateway): the master takes their replies.
		for _, a := range vrrpAddresses(cfg) {
			want[a] = true
		}
	}
	for vip := range want {
		if _, ok := d.vips[vip]; ok {
			continue
		}
		added, err := arpctl.AddVIP(d.link.Name, vip)
		if err != nil {
			return err
		}
		d.vips[vip] = added
		count, again := garpCount, time.Duration(0)
		if cfg.VRRP.RouterID != 0 {
			count, again = cfg.VRRP.GARPRepeat, cfg.VRRP.GARPDelay
		}
		d.announce.Add(1)
		go func() { // control: gratuitous ARP for one new VIP, bounded by count
			defer d.announce.Done()
			d.garp(vip, count)
		}()
		if again > 0 {
			d.bg.Add(1)
			go func() { // control: the second round of gratuitous ARP, unless the VIP has gone or the daemon stopped
				defer d.bg.Done()
				select {
				case <-d.stop:
				case <-time.After(again):
					if d.holdsVIP(vip) {
						d.garp(vip, count)
					}
				}
			}()
		}
		d.log.Info("VIP up", "vip", vip, "interface", d.link.Name)
	}
	for vip, added := range d.vips {
		if want[vip] {
			continue
		}
		if added {
			if err := arpctl.RemoveVIP(d.link.Name, vip); err != nil {
				return err
			}
		}
		delete(d.vips, vip)
		d.log.Info("VIP down", "vip", vip)
	}
	return nil
}

// garp announces vip with count gratuitous ARPs (an IPv6 vip: unsolicited
// neighbour advertisements), garpInterval apart.
func (d *Daemon) garp(vip netip.Addr, count int) {
	if err := arpctl.Announce(d.link.Name, vip, count, garpInterval); err != nil {
		d.log.Warn("gratuitous ARP failed", "vip", vip, "err", err)
	}
}

// holdsVIP reports whether vip is on the interface by our doing now.
func (d *Daemon) holdsVIP(vip netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.vips[vip]
	return ok && !d.closed
}

// locals returns the FULLNAT local addresses: configured, else the
// interface's IPv4 address and its global IPv6 address if it has one.
func (d *Daemon) locals(cfg *config.Config) []netip.Addr {
	if len(cfg.Director.LocalAddresses) > 0 {
		return cfg.Director.LocalAddresses
	}
	if d.link.Addr6.IsValid() {
		return []netip.Addr{d.link.Addr, d.link.Addr6}
	}
	return []netip.Addr{d.link.Addr}
}

func (d *Daemon) lookupMAC(ip netip.Addr) ([6]byte, bool, bool) {
	mac, ok := d.macs[ip]
	return mac, !d.offLink[ip], ok
}

// nextHops returns the addresses whose MAC the table needs: every real
// of cfg and, with connection sync, the default gateway (where replies of
// a synced NAT connection go until its client's next packet shows its
// next hop).
func (d *Daemon) nextHops(cfg *config.Config) []netip.Addr {
	var all []netip.Addr
	for _, s := range cfg.Services {
		for _, r := range s.Reals {
			// IPv6 reals too: arpctl.Resolve reads the kernel's IPv6
			// neighbour table and has the kernel run neighbour
			// discovery for a missing entry.
			if a := r.Address.Addr(); !slices.Contains(all, a) {
				all = append(all, a)
			}
		}
	}
	if cfg.Sync.Enabled {
		d.gateway = netip.Addr{}
		if gw, err := arpctl.DefaultGateway(d.link.Name); err == nil {
			d.gateway = gw
			if !slices.Contains(all, gw) {
				all = append(all, gw)
			}
		}
	}
	return all
}

// resolveAll resolves, in parallel, every next hop of cfg that has no MAC
// yet.
func (d *Daemon) resolveAll(cfg *config.Config) {
	var todo []netip.Addr
	for _, a := range d.nextHops(cfg) {
		if _, ok := d.macs[a]; !ok {
			todo = append(todo, a)
		}
	}
	d.resolve(todo)
}

func (d *Daemon) resolve(addrs []netip.Addr) (changed bool) {
	type result struct {
		addr    netip.Addr
		mac     [6]byte
		nextHop netip.Addr
		err     error
	}
	results := make(chan result, len(addrs))
	for _, a := range addrs {
		go func() { // control: one ARP resolution, bounded by resolveTimeout
			hw, nh, err := arpctl.Resolve(d.link.Name, a, resolveTimeout)
			var mac [6]byte
			if err == nil {
				copy(mac[:], hw)
			}
			results <- result{a, mac, nh, err}
		}()
	}
	for range addrs {
		r := <-results
		if r.err != nil {
			if _, had := d.macs[r.addr]; had {
				d.log.Warn("next hop lost", "addr", r.addr, "gateway", r.addr == d.gateway, "err", r.err)
				delete(d.macs, r.addr)
				changed = true
			} else {
				d.log.Warn("cannot resolve next hop; a real gets no traffic until it can", "addr", r.addr, "gateway", r.addr == d.gateway, "err", r.err)
			}
			continue
		}
		d.offLink[r.addr] = r.nextHop.IsValid() && r.nextHop != r.addr
		if old, had := d.macs[r.addr]; !had || old != r.mac {
			d.macs[r.addr] = r.mac
			changed = true
			d.log.Info("next hop", "addr", r.addr, "gateway", r.addr == d.gateway, "mac", net.HardwareAddr(r.mac[:]).String())
		}
	}
	return changed
}

// every runs fn each period, on the calling goroutine (one of d.bg),
// until the daemon stops or fn reports false.
func (d *Daemon) every(period time.Duration, fn func(now time.Time) bool) {
	defer d.bg.Done()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-tick.C:
			if !fn(now) {
				return
			}
		}
	}
}

// resolver re-resolves every real's next hop periodically and republishes
// the table when one changed (a real came up, moved or went away).
func (d *Daemon) resolver() {
	d.every(resolveEvery, func(time.Time) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed {
			return false
		}
		changed := d.resolve(d.nextHops(d.cfg))
		if a6, ok := interfaceIPv6(d.link.Name); ok && a6 != d.link.Addr6 {
			// The interface's own IPv6 address came (SLAAC after the
			// start), went or moved (renumbering): it is the default
			// FULLNAT local address of the IPv6 services and the
			// IPv6-in-IPv6 tunnels' source.
			d.log.Info("interface IPv6 address changed", "interface", d.link.Name, "was", d.link.Addr6, "now", a6)
			d.link.Addr6 = a6
			changed = true
		}
		if d.match != nil && len(d.match.NATReals6) > 0 && !slices.Equal(ownAddrs6(d.link.Name), d.match.Own6) {
			// An IPv6 address of the director came or went (SLAAC, an
			// operator): the ingress table must let the NAT reals'
			// answers to it through.
			changed = true
		}
		if d.bgp != nil && !d.cfg.BGP.NextHop6.IsValid() && linkAddr6(d.link.Name) != d.bgpNextHop6 {
			d.bgpReload() // the IPv6 next hop came, went or moved
		}
		if d.comp.Drained(time.Now(), d.cfg.Timeouts.Drain) {
			changed = true
			d.log.Info("removed real servers drained", "draining", d.comp.Draining())
		}
		if changed {
			t, m, err := d.compile(d.cfg)
			if err == nil {
				err = d.apply(t, m)
			}
			if err != nil {
				d.log.Error("republish after next-hop change failed", "err", err)
			}
			d.bgpSync()
		}
		return true
	})
}

func linkInfo(name string) (LinkInfo, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return LinkInfo{}, fmt.Errorf("control: interface %q: %w", name, err)
	}
	li := LinkInfo{Name: name, MTU: ifi.MTU}
	if len(ifi.HardwareAddr) != 6 {
		return LinkInfo{}, fmt.Errorf("control: interface %q is not Ethernet", name)
	}
	copy(li.MAC[:], ifi.HardwareAddr)
	addrs, err := ifi.Addrs()
	if err != nil {
		return LinkInfo{}, fmt.Errorf("control: interface %q: %w", name, err)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		switch {
		case err != nil:
		case p.Addr().Is4() && p.Bits() < 32 && !li.Addr.IsValid():
			li.Addr = p.Addr()
		}
	}
	li.Addr6 = ownIPv6(addrs)
	if !li.Addr.IsValid() {
		return LinkInfo{}, fmt.Errorf("control: interface %q %w", name, errNoIPv4)
	}
	return li, nil
}

// interfaceIPv6 reads the interface's own IPv6 address again (ownIPv6 of
// its addresses; invalid when it has none), false if the interface or its
// addresses cannot be read.
func interfaceIPv6(name string) (netip.Addr, bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	return ownIPv6(addrs), true
}

// ownIPv6 returns the first global IPv6 address of an interface's
// addresses, skipping link-local ones (a tunnel to a real behind a router
// needs a routable source) and /128s (the VIPs gvsd adds), or an invalid
// Addr when there is none.
func ownIPv6(addrs []net.Addr) netip.Addr {
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err == nil && p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() < 128 &&
			!p.Addr().IsLinkLocalUnicast() && !p.Addr().IsLoopback() && !p.Addr().IsMulticast() {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// checkLocalPorts refuses FULLNAT local ports that overlap the kernel's
// ephemeral range: the kernel would pick the same source ports for its own
// connections from the same address.
func checkLocalPorts(cfg *config.Config) error {
	if !usesFullNAT(cfg) {
		return nil
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fmt.Errorf("control: read ip_local_port_range: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return fmt.Errorf("control: ip_local_port_range: unexpected %q", b)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("control: ip_local_port_range: unexpected %q", b)
	}
	r := cfg.Director.LocalPorts
	if int(r.Lo) <= hi && int(r.Hi) >= lo {
		return config.Errors{{Path: "director.local_ports", Msg: fmt.Sprintf("%s overlaps the kernel's ephemeral ports %d-%d (net.ipv4.ip_local_port_range)", r, lo, hi)}}
	}
	return nil
}

func usesFullNAT(cfg *config.Config) bool {
	for _, s := range cfg.Services {
		for _, r := range s.Reals {
			if r.Forward == config.FullNAT {
				return true
			}
		}
	}
	return false
}

// fanoutGroup is the PACKET_FANOUT group id of the gen'th set of links:
// per process (ids are per network namespace and 0 means none), and new
// for each relink, so the new sockets never join the old ones' group.
func fanoutGroup(gen uint16) uint16 {
	return uint16((os.Getpid()+int(gen)*7919)%0xffff + 1)
}

// linkPoll is how often linkWatch looks whether the interface is back.
const linkPoll = 100 * time.Millisecond

// linkWatch waits for a worker's failed read (the interface went down, or
// was deleted) and then for the interface to be up again, and relinks.
// Workers keep their shards and go on reading meanwhile: after a plain
// flap their sockets would resume by themselves, but the kernel rejoins
// them to the fanout group in another order (which breaks steering), and
// a recreated interface leaves them bound to nothing.
func (d *Daemon) linkWatch() {
	defer d.bg.Done()
	for {
		select {
		case <-d.stop:
			return
		case <-d.linkDown:
		}
		d.log.Warn("interface down: forwarding paused until it is back", "interface", d.link.Name)
		d.linkOK.Store(false)
		d.mu.Lock()
		d.bgpSync()
		d.mu.Unlock()
		for !interfaceUp(d.link.Name) {
			select {
			case <-d.stop:
				return
			case <-time.After(linkPoll):
			}
		}
		// Errors of the old links until the new ones are in are the
		// same trouble.
		if err := d.relink(); err != nil {
			d.log.Error("cannot reopen the links; retrying", "interface", d.link.Name, "err", err)
			select {
			case d.linkDown <- struct{}{}:
			default:
			}
			select {
			case <-d.stop:
				return
			case <-time.After(linkPoll):
			}
			continue
		}
		select {
		case <-d.linkDown:
		default:
		}
	}
}

// interfaceUp reports whether the interface exists and is up.
func interfaceUp(name string) bool {
	ifi, err := net.InterfaceByName(name)
	return err == nil && ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0
}

// relink opens a new set of links on the interface (found anew: it may
// have been recreated), hands them to the workers, closes the old ones, and
// puts back what the interface may have lost: the VIPs (announced again),
// the ingress table, and a table compiled for its MAC and MTU.
func (d *Daemon) relink() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	li, err := linkInfo(d.link.Name)
	if err != nil {
		return err
	}
	d.link = li
	lc := d.linkCfg
	lc.FanoutGroup = fanoutGroup(d.linkGen + 1)
	filter, err := afpacket.FilterProgram(d.match)
	if err != nil {
		return fmt.Errorf("control: filter: %w", err)
	}
	lc.Filter = filter
	if lc.Steering, err = afpacket.SteeringProgramSYN(d.match, len(d.links)); err != nil {
		return fmt.Errorf("control: steering: %w", err)
	}
	fresh := make([]*afpacket.Link, 0, len(d.links))
	links := make([]dataplane.Link, 0, len(d.links))
	for i := range d.links {
		l, err := afpacket.Open(lc)
		if err != nil {
			for _, f := range fresh {
				f.Close()
			}
			return fmt.Errorf("control: reopen worker %d's link: %w", i, err)
		}
		fresh = append(fresh, l)
		links = append(links, l)
	}
	if err := d.dp.Relink(links); err != nil {
		for _, f := range fresh {
			f.Close()
		}
		return err
	}
	old := d.links
	d.links, d.linkCfg, d.linkGen = fresh, lc, d.linkGen+1
	for _, l := range old {
		l.Close()
	}
	// The ingress table: still bound after a flap; a recreated interface
	// needs a new one (Install replaces the old in one batch).
	if d.ingress == nil || d.ingress.Check() != nil {
		t, err := ingress.Install(d.link.Name, d.match)
		if err != nil {
			return err
		}
		if d.ingress != nil {
			d.ingress.Release()
		}
		d.ingress = t
	}
	// The VIPs: a recreated interface lost them; all are announced again
	// (a switch may have forgotten the port during the flap).
	prev := d.vips
	d.vips = map[netip.Addr]bool{}
	if err := d.syncVIPs(d.cfg); err != nil {
		return err
	}
	for vip, added := range prev {
		if added {
			if _, ok := d.vips[vip]; ok {
				d.vips[vip] = true
			}
		}
	}
	d.linkOK.Store(true) // the reload announces again
	if err := d.reloadLocked(d.cfg); err != nil {
		return err
	}
	d.relinks.Add(1)
	d.log.Info("interface back: links reopened, VIPs announced", "interface", d.link.Name, "mac", net.HardwareAddr(d.link.MAC[:]).String(), "relinks", d.relinks.Load())
	return nil
}
