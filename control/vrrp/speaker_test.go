//go:build linux

package vrrp

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netnstest"
)

// TestSpeakersFailOver runs two speakers on the two ends of a veth pair:
// the higher priority becomes master and the other backup; when the
// master stops cleanly (priority 0) the backup takes over within about
// Skew_Time, and when it comes back it takes mastership again (preempt).
func TestSpeakersFailOver(t *testing.T) {
	netnstest.RequireRoot(t)
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.VethPair(t, a, b, "vrrpa", "192.0.2.1/24", "vrrpb", "192.0.2.2/24")
	const interval = 100 * time.Millisecond
	vip := []netip.Addr{netip.MustParseAddr("192.0.2.100")}

	type watcher struct {
		mu     sync.Mutex
		states []State
		at     []time.Time
	}
	watch := func(w *watcher) func(State) {
		return func(s State) {
			w.mu.Lock()
			w.states = append(w.states, s)
			w.at = append(w.at, time.Now())
			w.mu.Unlock()
		}
	}
	last := func(w *watcher) (State, time.Time) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.states) == 0 {
			return Initialize, time.Time{}
		}
		return w.states[len(w.states)-1], w.at[len(w.at)-1]
	}
	waitState := func(w *watcher, want State, limit time.Duration) time.Time {
		t.Helper()
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if s, at := last(w); s == want {
				return at
			}
		}
		s, _ := last(w)
		t.Fatalf("state %v after %v, want %v", s, limit, want)
		return time.Time{}
	}
	start := func(ns *netnstest.NS, ifname string, prio uint8, w *watcher) (context.CancelFunc, <-chan error, *Speaker) {
		var sp *Speaker
		var err error
		ns.Do(t, func() {
			sp, err = NewSpeaker(SpeakerConfig{Interface: ifname, OnState: watch(w),
				Machine: Config{VRID: 51, Priority: prio, Interval: interval, Preempt: true, Addresses: vip}})
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- sp.Run(ctx) }()
		return cancel, errc, sp
	}

	var wa, wb watcher
	stopA, doneA, spA := start(a, "vrrpa", 100, &wa)
	defer func() { stopA(); <-doneA }()
	waitState(&wa, Master, 2*time.Second) // alone: master after Master_Down_Interval

	stopB, doneB, spB := start(b, "vrrpb", 200, &wb)
	waitState(&wb, Master, 2*time.Second) // higher priority and preempt: B takes over
	waitState(&wa, Backup, time.Second)

	// B stops cleanly: it sends priority 0, A takes over after Skew_Time.
	stopped := time.Now()
	stopB()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	at := waitState(&wa, Master, 2*time.Second)
	gap := at.Sub(stopped)
	skew := time.Duration(256-100) * interval / 256
	t.Logf("after the master's clean stop the backup took over in %v (Skew_Time %v); A sent %d, received %d, invalid %d; B sent %d",
		gap.Round(time.Millisecond), skew, spA.C.Sent.Load(), spA.C.Received.Load(), spA.C.Invalid.Load(), spB.C.Sent.Load())
	if gap > skew+interval {
		t.Errorf("takeover after a clean stop took %v, want about Skew_Time %v", gap, skew)
	}
	if spA.C.Received.Load() == 0 || spA.C.Invalid.Load() != 0 {
		t.Errorf("A received %d adverts, %d invalid", spA.C.Received.Load(), spA.C.Invalid.Load())
	}
}
