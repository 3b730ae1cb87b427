package bgp

import (
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"net/netip"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// TestSpeaker runs a speaker whose peer never answers: prefixes are
// announced and withdrawn in its RIB, the peer is reported not
// established, a reload swaps the peer, and Close stops every goroutine.
func TestSpeaker(t *testing.T) {
	before := runtime.NumGoroutine()
	// 192.0.2.1 (TEST-NET-1) is never reached: the session stays down.
	peer := Peer{Address: netip.MustParseAddr("192.0.2.1"), AS: 65000}
	s, err := Start(Config{LocalAS: 65001, RouterID: netip.MustParseAddr("10.20.0.2"), HoldTime: 9 * time.Second,
		Routes: Routes{NextHop: netip.MustParseAddr("10.20.0.2"), MED: 10, Communities: []uint32{65000<<16 | 1}}, Peers: []Peer{peer}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p100, p101 := netip.MustParsePrefix("10.20.0.100/32"), netip.MustParsePrefix("10.20.0.101/32")
	if err := s.Announce([]netip.Prefix{p101, p100, p100}); err != nil {
		t.Fatal(err)
	}
	if got := s.Announced(); !reflect.DeepEqual(got, []netip.Prefix{p100, p101}) {
		t.Errorf("Announced = %v", got)
	}
	if err := s.Announce([]netip.Prefix{p101}); err != nil {
		t.Fatal(err)
	}
	if got := s.Announced(); !reflect.DeepEqual(got, []netip.Prefix{p101}) {
		t.Errorf("after a withdraw: %v", got)
	}
	ps := s.Peers()
	if len(ps) != 1 || ps[0].Address != peer.Address || ps[0].AS != 65000 || ps[0].Established || ps[0].State == "established" || ps[0].State == "" {
		t.Errorf("Peers = %+v", ps)
	}
	other := Peer{Address: netip.MustParseAddr("192.0.2.2"), AS: 65002, Password: "pw"}
	if err := s.Update([]Peer{other}, Routes{NextHop: netip.MustParseAddr("10.20.0.9"), MED: -1}); err != nil {
		t.Fatal(err)
	}
	if ps := s.Peers(); len(ps) != 1 || ps[0].Address != other.Address || ps[0].AS != 65002 {
		t.Errorf("after Update: %+v", ps)
	}
	if err := s.Announce(nil); err != nil {
		t.Fatal(err)
	}
	if got := s.Announced(); len(got) != 0 {
		t.Errorf("after withdrawing all: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Announce([]netip.Prefix{p100}); err == nil {
		t.Errorf("Announce after Close succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestPathsStandby: a Standby prefix carries the MED plus StandbyMED
// (StandbyMED without a MED), every other prefix the MED or none.
func TestPathsStandby(t *testing.T) {
	own, other := netip.MustParsePrefix("10.30.0.2/32"), netip.MustParsePrefix("10.30.0.3/32")
	for _, tc := range []struct {
		med                int64
		wantOwn, wantOther int64 // -1: no MED attribute
	}{{-1, -1, StandbyMED}, {0, 0, StandbyMED}, {10, 10, 10 + StandbyMED}} {
		s := &Speaker{cfg: Config{Routes: Routes{NextHop: netip.MustParseAddr("10.20.0.2"), MED: tc.med, Standby: []netip.Prefix{other}}}}
		ps := s.paths([]netip.Prefix{own, other})
		if len(ps) != 2 {
			t.Fatalf("%d paths", len(ps))
		}
		for i, want := range []int64{tc.wantOwn, tc.wantOther} {
			got := int64(-1)
			for _, a := range ps[i].Attrs {
				if m, ok := a.(*bgppkt.PathAttributeMultiExitDisc); ok {
					got = int64(m.Value)
				}
			}
			if got != want {
				t.Errorf("MED %d: path %d has MED %d, want %d", tc.med, i, got, want)
			}
		}
	}
}
