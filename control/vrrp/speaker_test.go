//go:build linux

package vrrp

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netnstest"
	"golang.org/x/sys/unix"
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

// TestSpeakerDropsBadAdverts sends a speaker adverts from a raw socket in
// another namespace: the valid one is received, and each bad one is
// dropped and counted under its reason.
func TestSpeakerDropsBadAdverts(t *testing.T) {
	netnstest.RequireRoot(t)
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.VethPair(t, a, b, "vrrpbada", "192.0.2.1/24", "vrrpbadb", "192.0.2.2/24")
	var sp *Speaker
	var err error
	b.Do(t, func() {
		sp, err = NewSpeaker(SpeakerConfig{Interface: "vrrpbadb",
			Machine: Config{VRID: 51, Priority: 100, Interval: time.Second, Preempt: true, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sp.Run(ctx) }()
	defer func() { cancel(); <-done }()

	src := netip.MustParseAddr("192.0.2.1")
	advert := func(vrid uint8) []byte {
		ad := Advert{VRID: vrid, Priority: 200, Interval: time.Second, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
		b, err := ad.Marshal(nil, src, IPv4Group)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	badVersion := advert(51)
	badVersion[0] = 2<<4 | badVersion[0]&0x0f
	badSum := advert(51)
	badSum[6] ^= 0xff
	var fd int
	a.Do(t, func() {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
		if err == nil {
			err = unix.BindToDevice(fd, "vrrpbada")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	send := func(pkt []byte, ttl int) {
		t.Helper()
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttl); err != nil {
			t.Fatal(err)
		}
		if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: IPv4Group.As4()}); err != nil {
			t.Fatal(err)
		}
	}
	send(advert(51), 255)
	send(advert(52), 255)
	send(advert(51), 64)
	send(badVersion, 255)
	send(badSum, 255)
	send([]byte{0x31, 51, 200}, 255)
	want := map[DropReason]uint64{DropVRID: 1, DropTTL: 1, DropVersion: 1, DropChecksum: 1, DropMalformed: 1}
	deadline := time.Now().Add(3 * time.Second)
	for sp.C.Received.Load()+sp.C.Invalid.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r, inv := sp.C.Received.Load(), sp.C.Invalid.Load(); r != 1 || inv != 5 {
		t.Errorf("received %d, invalid %d; want 1 and 5", r, inv)
	}
	for r := range NumDropReasons {
		if got := sp.C.Dropped[r].Load(); got != want[r] {
			t.Errorf("dropped for %v: %d, want %d", r, got, want[r])
		}
	}
}
