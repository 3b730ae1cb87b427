//go:build linux

package vrrp

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netnstest"
)

// TestSpeakersDualStack: a speaker with an IPv4 and an IPv6 address runs
// one virtual router in both families; a peer with only the IPv6 address
// hears its IPv6 adverts (and only those), yields to its higher priority,
// and takes over when it stops cleanly. The dual-stack speaker in turn
// yields to the IPv6-only peer once that one has the higher priority.
func TestSpeakersDualStack(t *testing.T) {
	netnstest.RequireRoot(t)
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.VethPair(t, a, b, "vrrpa", "192.0.2.1/24", "vrrpb", "192.0.2.2/24")
	const interval = 100 * time.Millisecond
	v4, v6 := netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("fd00:20::100")
	start := func(ns *netnstest.NS, ifname string, prio uint8, addrs []netip.Addr, st *atomic.Int32) (*Speaker, context.CancelFunc, <-chan error) {
		var sp *Speaker
		var err error
		ns.Do(t, func() {
			sp, err = NewSpeaker(SpeakerConfig{Interface: ifname, OnState: func(s State) { st.Store(int32(s)) },
				Machine: Config{Version: Version3, VRID: 51, Priority: prio, Interval: interval, Preempt: true, Addresses: addrs}})
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- sp.Run(ctx) }()
		return sp, cancel, errc
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("%s: not after 8s", what)
	}
	var sa, sb atomic.Int32
	spA, stopA, doneA := start(a, "vrrpa", 200, []netip.Addr{v4, v6}, &sa)
	defer func() { stopA(); <-doneA }()
	wait("dual-stack speaker master alone", func() bool { return State(sa.Load()) == Master })
	if m := spA.Machine().MasterAddr(); !m.Is4() {
		t.Errorf("dual-stack master names %v, want its IPv4 address", m)
	}
	spB, stopB, doneB := start(b, "vrrpb", 100, []netip.Addr{v6}, &sb)
	defer func() { stopB(); <-doneB }()
	wait("IPv6-only peer backup, hearing IPv6 adverts", func() bool { return State(sb.Load()) == Backup && spB.C.Received.Load() >= 3 })
	if m := spB.Machine().MasterAddr(); !m.Is6() || !m.IsLinkLocalUnicast() {
		t.Errorf("IPv6-only backup names master %v, want a link-local address", m)
	}
	if spB.C.Invalid.Load() != 0 {
		t.Errorf("IPv6-only peer dropped %d adverts", spB.C.Invalid.Load())
	}
	stopA()
	<-doneA
	doneA = closedErr()
	wait("IPv6-only peer master after the dual-stack one stopped", func() bool { return State(sb.Load()) == Master })
	// Back with a lower priority: it yields to the IPv6 peer's adverts.
	spA, stopA, doneA = start(a, "vrrpa", 50, []netip.Addr{v4, v6}, &sa)
	wait("dual-stack speaker backup", func() bool { return State(sa.Load()) == Backup && spA.C.Received.Load() >= 3 })
	if State(sb.Load()) != Master {
		t.Errorf("IPv6-only peer %v, want master", State(sb.Load()))
	}
}

func closedErr() <-chan error {
	c := make(chan error, 1)
	c <- nil
	return c
}
