package control

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/gvs-lb/gvs/arpctl"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/control/vrrp"
)

// notifyTimeout bounds a [vrrp] notify command.
const notifyTimeout = 30 * time.Second

// vrrpStatus is the VRRP state as the speaker last reported it.
type vrrpStatus struct {
	mu     sync.Mutex
	state  vrrp.State
	master netip.Addr
	since  time.Time
}

// holdsVIPs reports whether this director should hold the VIPs of cfg
// and forward: always without VRRP, and with [bgp] (every director serves
// them; a [vrrp] beside it moves only its own addresses), else only as
// VRRP master.
func (d *Daemon) holdsVIPs(cfg *config.Config) bool {
	if cfg.BGP.Enabled {
		return true
	}
	return d.vrrpMaster(cfg)
}

// vrrpMaster reports whether this director holds vrrp.addresses: without
// VRRP always, else while it is master.
func (d *Daemon) vrrpMaster(cfg *config.Config) bool {
	if cfg.VRRP.RouterID == 0 || d.speaker == nil {
		return true
	}
	d.vrrpState.mu.Lock()
	defer d.vrrpState.mu.Unlock()
	return d.vrrpState.state == vrrp.Master
}

// vrrpAddresses are the addresses a [vrrp] instance advertises and its
// master holds: its own list, or every service VIP, IPv4 and IPv6 (the
// speaker advertises each family's over that family, config.Validate
// made sure IPv6 ones come with version 3). Beside [bgp] (config.Validate)
// the list is never empty and holds no service VIP.
func vrrpAddresses(cfg *config.Config) []netip.Addr {
	if len(cfg.VRRP.Addresses) > 0 || cfg.BGP.Enabled {
		return cfg.VRRP.Addresses
	}
	return append(serviceVIPs(cfg), ipv6VIPs(cfg)...)
}

// startVRRP opens the VRRP speaker of cfg, if it has one, and runs it
// until the daemon stops. The director then holds the VIPs only while it
// is master.
func (d *Daemon) startVRRP(cfg *config.Config) error {
	v := cfg.VRRP
	if v.RouterID == 0 {
		return nil
	}
	iface := v.Interface
	if iface == "" {
		iface = d.link.Name
	}
	addrs := vrrpAddresses(cfg)
	if len(addrs) == 0 {
		return fmt.Errorf("control: vrrp: no address to advertise (no service and no vrrp.addresses)")
	}
	auth := vrrp.AuthNone
	if v.AuthType == "pass" {
		auth = vrrp.AuthPass
	}
	sp, err := vrrp.NewSpeaker(vrrp.SpeakerConfig{Interface: iface, Peers: v.UnicastPeers, OnState: d.vrrpChanged,
		// [vrrp] is fixed until gvsd restarts, so v is the section for
		// as long as the speaker runs.
		OnMismatch: func(m vrrp.Mismatch) { d.vrrpMismatch(v, m) },
		Machine: vrrp.Config{Version: vrrp.Version(v.Version), VRID: uint8(v.RouterID), Priority: uint8(v.Priority), Interval: v.AdvertInterval,
			AuthType: auth, AuthPass: v.AuthPass, Preempt: v.Preempt, PreemptDelay: preemptDelay(cfg), Addresses: addrs}})
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	d.speaker = sp
	d.vrrpState.state = vrrp.Initialize
	// A director that died without cleaning up (SIGKILL, a crash) left
	// its VIPs on the interface: as a backup it would still answer ARP for
	// them against the master. With VRRP they are gvsd's to hold, so they
	// go until this director is master.
	for _, vip := range vrrpAddresses(cfg) {
		if has, err := arpctl.HasVIP(d.link.Name, vip); err == nil && has {
			if err := arpctl.RemoveVIP(d.link.Name, vip); err != nil {
				return fmt.Errorf("control: vrrp: %w", err)
			}
			d.log.Warn("removed a VIP an earlier run left on the interface; it comes back when this director is master", "vip", vip)
		}
	}
	d.bg.Add(2)
	go func() { // vrrp: the speaker, until the daemon stops (a master then sends priority 0)
		defer d.bg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-d.stop; cancel() }()
		if err := sp.Run(ctx); err != nil {
			d.log.Error("vrrp", "err", err)
		}
	}()
	go d.vrrpLoop() // vrrp: moves the VIPs on each transition, until the daemon stops
	if v.GARPRefresh > 0 {
		d.bg.Add(1)
		go d.garpRefresh(v.GARPRefresh) // vrrp: re-announces the VIPs while master, until the daemon stops
	}
	return nil
}

// garpRefresh sends one gratuitous ARP for every VIP held, every period
// (vrrp.garp_refresh), so that a switch or neighbour that forgot or never
// learnt the master's MAC learns it again.
func (d *Daemon) garpRefresh(period time.Duration) {
	d.every(period, func(time.Time) bool {
		d.mu.Lock()
		vips := make([]netip.Addr, 0, len(d.vips))
		for vip := range d.vips {
			vips = append(vips, vip)
		}
		closed := d.closed
		d.mu.Unlock()
		if closed {
			return false
		}
		for _, vip := range vips {
			d.garp(vip, 1)
		}
		return true
	})
}

// preemptDelay is vrrp.preempt_delay, but with connection sync at least
// one refresh and two adverts: a director that starts (again) learns the
// connections the master already has only from the next refresh, and
// taking the VIPs back before that would cut them all.
func preemptDelay(cfg *config.Config) time.Duration {
	d := cfg.VRRP.PreemptDelay
	if cfg.Sync.Enabled && cfg.Sync.Refresh > 0 {
		d = max(d, cfg.Sync.Refresh+2*cfg.VRRP.AdvertInterval)
	}
	return d
}

// vrrpChanged is the speaker's callback (on its goroutine): it records the
// new state and wakes vrrpLoop.
func (d *Daemon) vrrpChanged(s vrrp.State) {
	d.vrrpState.mu.Lock()
	d.vrrpState.state, d.vrrpState.since = s, time.Now()
	d.vrrpState.master = d.speaker.Machine().MasterAddr()
	d.vrrpState.mu.Unlock()
	select {
	case d.vrrpKick <- struct{}{}:
	default:
	}
}

// vrrpMismatches are the speaker's open Mismatches; nil without VRRP.
func (d *Daemon) vrrpMismatches() []vrrp.Mismatch {
	if d.speaker == nil {
		return nil
	}
	if l := d.speaker.C.Mismatched.Load(); l != nil {
		return *l
	}
	return nil
}

// vrrpMismatch is the speaker's report (on its receiving goroutine) of a
// peer that sends adverts for our router_id that this director must drop:
// another version, authentication or interval. Each side then thinks it is
// alone, and both hold the VIPs. The speaker reports a peer once, until it
// resigns or is fixed, so this logs as often.
func (d *Daemon) vrrpMismatch(v config.VRRP, m vrrp.Mismatch) {
	detail, fix := mismatchText(v, m)
	d.log.Warn(detail+": "+fix, "peer", m.Peer, "reason", m.Reason.String(), "router_id", v.RouterID)
}

// mismatchText says what a Mismatch means for [vrrp] v and how to fix it.
func mismatchText(v config.VRRP, m vrrp.Mismatch) (detail, fix string) {
	switch m.Reason {
	case vrrp.DropVersion:
		return fmt.Sprintf("%s sends %v for router_id %d (this director: VRRPv%d)", m.Peer, m.Version, v.RouterID, v.Version),
			fmt.Sprintf("set [vrrp] version = %d and restart gvsd, or make the peer speak VRRPv%d (keepalived: vrrp_version %d in global_defs)",
				m.Version, v.Version, v.Version)
	case vrrp.DropAuth:
		return fmt.Sprintf("%s sends %v for router_id %d whose authentication differs", m.Peer, m.Version, v.RouterID),
			"check [vrrp] auth_type and auth_pass against the peer's (keepalived: authentication { auth_type PASS; auth_pass ... }) and restart gvsd"
	case vrrp.DropInterval:
		return fmt.Sprintf("%s advertises router_id %d every %v, this director every %v: VRRPv2 drops adverts of another interval",
				m.Peer, v.RouterID, m.Interval, v.AdvertInterval),
			fmt.Sprintf("set [vrrp] advert_interval = %q and restart gvsd, or advert_int %d on the peer", m.Interval.String(), int(v.AdvertInterval/time.Second))
	}
	return fmt.Sprintf("%s sends adverts for router_id %d that this director drops (%v)", m.Peer, v.RouterID, m.Reason),
		"compare [vrrp] with the peer's configuration"
}

// vrrpLoop adds or removes the VIPs when the VRRP state changes, and runs
// the notify command.
func (d *Daemon) vrrpLoop() {
	defer d.bg.Done()
	for {
		select {
		case <-d.stop:
			return
		case <-d.vrrpKick:
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return
		}
		cfg := d.cfg
		err := d.syncVIPs(cfg)
		d.mu.Unlock()
		st := d.vrrpStatus()
		d.log.Info("vrrp state", "state", st.State, "master", st.Master, "priority", st.Priority)
		if err != nil {
			d.log.Error("vrrp: moving the VIPs failed", "err", err)
		}
		if len(cfg.VRRP.Notify) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
			args := append(slices.Clone(cfg.VRRP.Notify[1:]), st.State)
			if out, err := exec.CommandContext(ctx, cfg.VRRP.Notify[0], args...).CombinedOutput(); err != nil {
				d.log.Warn("vrrp notify failed", "command", cfg.VRRP.Notify, "err", err, "output", string(out))
			}
			cancel()
		}
	}
}

// vrrpStatus returns what gvsadm shows of VRRP, or nil without it.
func (d *Daemon) vrrpStatus() *api.VRRPStatus {
	if d.speaker == nil {
		return nil
	}
	cfg := d.Config() // before vrrpState.mu: syncVIPs takes them in the order d.mu, vrrpState.mu
	d.vrrpState.mu.Lock()
	defer d.vrrpState.mu.Unlock()
	st := &api.VRRPStatus{State: d.vrrpState.state.String(), RouterID: cfg.VRRP.RouterID, Version: cfg.VRRP.Version, Priority: cfg.VRRP.Priority,
		Since: d.vrrpState.since, Sent: d.speaker.C.Sent.Load(), Received: d.speaker.C.Received.Load(), Invalid: d.speaker.C.Invalid.Load(),
		Dropped: map[string]uint64{}}
	for r := range vrrp.NumDropReasons {
		st.Dropped[r.String()] = d.speaker.C.Dropped[r].Load()
	}
	if d.vrrpState.master.IsValid() {
		st.Master = d.vrrpState.master.String()
	}
	for _, m := range d.vrrpMismatches() {
		st.Mismatches = append(st.Mismatches, api.VRRPMismatch{Peer: m.Peer.String(), Reason: m.Reason.String(), Version: int(m.Version),
			Since: m.Since, Last: m.At})
	}
	return st
}
