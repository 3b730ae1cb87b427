package vrrp

import (
	"errors"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// SpeakerConfig says where a Speaker runs its Machine.
type SpeakerConfig struct {
	Interface string
	// Machine is the router's configuration; its Primary, when not set,
	// is the interface's first IPv4 address.
	Machine Config
	// Peers are unicast peers; empty means the 224.0.0.18 group.
	Peers []netip.Addr
	// OnState is called with every new state, from Run's goroutine.
	OnState func(State)
	// OnMismatch is called, from the receiving goroutine, when a Mismatch
	// opens: a peer starts sending adverts for our virtual router that
	// Config.Match refuses for another version, authentication or
	// interval. It is called again for the peer only after its Mismatch
	// closed, or for another reason. It is for a log line; it must not
	// block.
	OnMismatch func(Mismatch)
}

// SpeakerCounters count what a Speaker sent and received. Invalid is the
// sum of Dropped, which counts the adverts dropped by reason.
type SpeakerCounters struct {
	Sent, Received, Invalid atomic.Uint64
	Dropped                 [NumDropReasons]atomic.Uint64
	// Mismatched are the peers with an open Mismatch, by address; nil or
	// empty when there is none. The slice is replaced, never modified.
	Mismatched atomic.Pointer[[]Mismatch]
}

// drop counts a dropped advert.
func (c *SpeakerCounters) drop(r DropReason) {
	c.Dropped[r].Add(1)
	c.Invalid.Add(1)
}

// Mismatch is a peer that sends adverts for our virtual router configured
// differently: another version, another authentication or, in version 2,
// another interval (Config.Match's ErrOtherVersion, ErrAuth,
// ErrOtherInterval). Neither router accepts the other's adverts, so both
// become master: the split brain the speaker warns about.
//
// A Mismatch stays open after the peer falls silent, since silence does
// not mean it left: keepalived as master restarts its advertisement timer
// on every advert it receives for its VRID, even one it drops, so while it
// hears ours every interval it sends none of its own (keepalived 2.2's
// vrrp_dispatcher_read). It closes when the peer resigns (an advert with
// priority 0, which keepalived sends when it stops, in its own version)
// or sends an advert that Config.Match accepts (it was fixed), and with
// the Speaker.
type Mismatch struct {
	Peer     netip.Addr    // the adverts' IP source
	Reason   DropReason    // DropVersion, DropAuth or DropInterval
	Version  Version       // the peer's
	Interval time.Duration // the peer's
	Since    time.Time     // first heard so
	At       time.Time     // last heard so
}

// isMismatch reports whether an error of Config.Match is a Mismatch.
func isMismatch(err error) bool {
	return errors.Is(err, ErrOtherVersion) || errors.Is(err, ErrAuth) || errors.Is(err, ErrOtherInterval)
}

// maxMismatches bounds the peers a mismatchTable keeps open, so that
// adverts from spoofed sources cannot grow it: past it, a new peer's
// adverts are still counted as dropped, but it is not reported.
const maxMismatches = 64

// mismatchTable holds the open Mismatches, one per peer. It is owned by
// the receiving goroutine.
type mismatchTable struct {
	open map[netip.Addr]Mismatch
}

// heard records a mismatched advert from m.Peer with the given priority.
// It reports whether to report m (a peer not open before, or open for
// another reason) and whether the table changed at all. Priority 0 closes
// the peer's Mismatch: it resigns.
func (t *mismatchTable) heard(m Mismatch, priority uint8) (report, changed bool) {
	prev, open := t.open[m.Peer]
	if priority == PriorityStop {
		if open {
			delete(t.open, m.Peer)
		}
		return false, open
	}
	if !open && len(t.open) >= maxMismatches {
		return false, false
	}
	if t.open == nil {
		t.open = make(map[netip.Addr]Mismatch)
	}
	m.Since = m.At
	if open && prev.Reason == m.Reason {
		m.Since = prev.Since
	}
	t.open[m.Peer] = m
	return !open || prev.Reason != m.Reason, true
}

// accepted records an advert from peer that Config.Match accepted: its
// Mismatch, if open, closes. It reports whether the table changed.
func (t *mismatchTable) accepted(peer netip.Addr) bool {
	if _, open := t.open[peer]; !open {
		return false
	}
	delete(t.open, peer)
	return true
}

// list returns the open Mismatches by peer address, in a new slice.
func (t *mismatchTable) list() []Mismatch {
	out := make([]Mismatch, 0, len(t.open))
	for _, m := range t.open {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Mismatch) int { return a.Peer.Compare(b.Peer) })
	return out
}
