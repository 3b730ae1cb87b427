//go:build linux

package vrrp

import (
	"context"
	"net/netip"
	"slices"
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
				Machine: Config{Version: Version3, VRID: 51, Priority: prio, Interval: interval, Preempt: true, Addresses: vip}})
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
// dropped and counted under its reason. Adverts for our VRID from a peer
// configured differently (the other version, another password, another
// VRRPv2 interval) are also reported, once per peer and reason.
func TestSpeakerDropsBadAdverts(t *testing.T) {
	netnstest.RequireRoot(t)
	vip := []netip.Addr{netip.MustParseAddr("192.0.2.100")}
	src := netip.MustParseAddr("192.0.2.1")
	mk := func(a Advert) []byte {
		t.Helper()
		a.Addresses = vip
		b, err := a.Marshal(nil, src, IPv4Group)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type packet struct {
		pkt []byte
		ttl int
	}
	v3 := func(vrid uint8) []byte {
		return mk(Advert{Version: Version3, VRID: vrid, Priority: 200, Interval: time.Second})
	}
	v2 := func(vrid uint8, interval time.Duration, auth AuthType, pass string) []byte {
		return mk(Advert{Version: Version2, VRID: vrid, Priority: 200, Interval: interval, AuthType: auth, AuthData: Password(pass)})
	}
	version4 := v3(51)
	version4[0] = 4<<4 | version4[0]&0x0f
	badSum := v3(51)
	badSum[6] ^= 0xff
	for _, tc := range []struct {
		name     string
		cfg      Config
		send     []packet
		want     map[DropReason]uint64
		mismatch []DropReason // reported, in order
	}{
		{"v3",
			Config{Version: Version3, VRID: 51, Priority: 100, Interval: time.Second, Preempt: true, Addresses: vip},
			[]packet{{v3(51), 255}, {v3(52), 255}, {v3(51), 64}, {version4, 255}, {badSum, 255}, {[]byte{0x31, 51, 200}, 255},
				{v2(51, time.Second, AuthNone, ""), 255}, {v2(51, time.Second, AuthNone, ""), 255}, {v2(52, time.Second, AuthNone, ""), 255}},
			map[DropReason]uint64{DropVRID: 2, DropTTL: 1, DropVersion: 3, DropChecksum: 1, DropMalformed: 1},
			[]DropReason{DropVersion}},
		{"v2 pass",
			Config{Version: Version2, VRID: 51, Priority: 100, Interval: time.Second, Preempt: true, Addresses: vip, AuthType: AuthPass, AuthPass: "secret"},
			[]packet{{v2(51, time.Second, AuthPass, "secret"), 255}, {v2(51, time.Second, AuthPass, "wrong"), 255}, {v2(51, time.Second, AuthNone, ""), 255},
				{v2(51, 2*time.Second, AuthPass, "secret"), 255}, {v3(51), 255}, {v2(52, time.Second, AuthPass, "other"), 255}},
			map[DropReason]uint64{DropAuth: 2, DropInterval: 1, DropVersion: 1, DropVRID: 1},
			[]DropReason{DropAuth, DropInterval, DropVersion}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := netnstest.New(t), netnstest.New(t)
			netnstest.VethPair(t, a, b, "vrrpbada", "192.0.2.1/24", "vrrpbadb", "192.0.2.2/24")
			var mu sync.Mutex
			var reported []Mismatch
			var sp *Speaker
			var err error
			b.Do(t, func() {
				sp, err = NewSpeaker(SpeakerConfig{Interface: "vrrpbadb", Machine: tc.cfg, OnMismatch: func(m Mismatch) {
					mu.Lock()
					reported = append(reported, m)
					mu.Unlock()
				}})
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- sp.Run(ctx) }()
			defer func() { cancel(); <-done }()

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
			for _, p := range tc.send {
				if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, p.ttl); err != nil {
					t.Fatal(err)
				}
				if err := unix.Sendto(fd, p.pkt, 0, &unix.SockaddrInet4{Addr: IPv4Group.As4()}); err != nil {
					t.Fatal(err)
				}
			}
			n := uint64(len(tc.send))
			deadline := time.Now().Add(3 * time.Second)
			for sp.C.Received.Load()+sp.C.Invalid.Load() < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if r, inv := sp.C.Received.Load(), sp.C.Invalid.Load(); r != 1 || inv != n-1 {
				t.Errorf("received %d, invalid %d; want 1 and %d", r, inv, n-1)
			}
			for r := range NumDropReasons {
				if got := sp.C.Dropped[r].Load(); got != tc.want[r] {
					t.Errorf("dropped for %v: %d, want %d", r, got, tc.want[r])
				}
			}
			mu.Lock()
			defer mu.Unlock()
			var reasons []DropReason
			for _, m := range reported {
				reasons = append(reasons, m.Reason)
				if m.Peer != src {
					t.Errorf("mismatch reported from %v, want %v", m.Peer, src)
				}
			}
			if !slices.Equal(reasons, tc.mismatch) {
				t.Errorf("mismatches reported: %v, want %v", reasons, tc.mismatch)
			}
			if l := sp.C.Mismatched.Load(); l == nil || len(*l) != 1 || (*l)[0].Reason != tc.mismatch[len(tc.mismatch)-1] || (*l)[0].Peer != src {
				t.Errorf("Mismatched %+v, want the last one reported open", l)
			}
		})
	}
}
