package bgp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// rib lists the speaker's own RIB of family as prefix -> next hop.
func rib(t *testing.T, s *Speaker, family bgppkt.Family) map[netip.Prefix]netip.Addr {
	t.Helper()
	out := map[netip.Prefix]netip.Addr{}
	err := s.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: family}, func(nlri bgppkt.NLRI, paths []*apiutil.Path) {
		p, err := netip.ParsePrefix(nlri.String())
		if err != nil {
			t.Errorf("NLRI %s: %v", nlri, err)
			return
		}
		for _, path := range paths {
			for _, a := range path.Attrs {
				switch a := a.(type) {
				case *bgppkt.PathAttributeNextHop:
					out[p] = a.Value
				case *bgppkt.PathAttributeMpReachNLRI:
					out[p] = a.Nexthop
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSpeakerIPv6: an IPv6 VIP is announced as a /128 in the IPv6 unicast
// family with the IPv6 next hop, beside the IPv4 ones; it is withdrawn
// like them; without an IPv6 next hop it is refused, and a reload that
// takes the IPv6 next hop away withdraws it.
func TestSpeakerIPv6(t *testing.T) {
	peer := Peer{Address: netip.MustParseAddr("192.0.2.1"), AS: 65000} // never reached
	nh, nh6 := netip.MustParseAddr("10.20.0.2"), netip.MustParseAddr("fd00:20::2")
	s, err := Start(Config{LocalAS: 65001, RouterID: nh, HoldTime: 9 * time.Second,
		Routes: Routes{NextHop: nh, NextHop6: nh6, MED: -1}, Peers: []Peer{peer}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p4, p6 := netip.MustParsePrefix("10.20.0.100/32"), netip.MustParsePrefix("fd00:20::100/128")
	if err := s.Announce([]netip.Prefix{p6, p4}); err != nil {
		t.Fatal(err)
	}
	if got := s.Announced(); !reflect.DeepEqual(got, []netip.Prefix{p4, p6}) {
		t.Errorf("Announced = %v", got)
	}
	if got := rib(t, s, bgppkt.RF_IPv6_UC); !reflect.DeepEqual(got, map[netip.Prefix]netip.Addr{p6: nh6}) {
		t.Errorf("IPv6 unicast RIB = %v, want %v via %v", got, p6, nh6)
	}
	if got := rib(t, s, bgppkt.RF_IPv4_UC); !reflect.DeepEqual(got, map[netip.Prefix]netip.Addr{p4: nh}) {
		t.Errorf("IPv4 unicast RIB = %v, want %v via %v", got, p4, nh)
	}
	// A new IPv6 next hop: announced again with it.
	nh6b := netip.MustParseAddr("fd00:20::9")
	if err := s.Update([]Peer{peer}, Routes{NextHop: nh, NextHop6: nh6b, MED: -1}); err != nil {
		t.Fatal(err)
	}
	if got := rib(t, s, bgppkt.RF_IPv6_UC); !reflect.DeepEqual(got, map[netip.Prefix]netip.Addr{p6: nh6b}) {
		t.Errorf("after a new next_hop6: IPv6 RIB = %v", got)
	}
	if err := s.Announce([]netip.Prefix{p4}); err != nil {
		t.Fatal(err)
	}
	if got := rib(t, s, bgppkt.RF_IPv6_UC); len(got) != 0 {
		t.Errorf("after the withdraw: IPv6 RIB = %v", got)
	}
	// No IPv6 next hop: withdrawn on Update, refused by Announce.
	if err := s.Announce([]netip.Prefix{p4, p6}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update([]Peer{peer}, Routes{NextHop: nh, MED: -1}); err != nil {
		t.Fatal(err)
	}
	if got := s.Announced(); !reflect.DeepEqual(got, []netip.Prefix{p4}) {
		t.Errorf("after losing the IPv6 next hop: Announced = %v", got)
	}
	if got := rib(t, s, bgppkt.RF_IPv6_UC); len(got) != 0 {
		t.Errorf("after losing the IPv6 next hop: IPv6 RIB = %v", got)
	}
	err = s.Announce([]netip.Prefix{p4, p6})
	if err == nil || !strings.Contains(err.Error(), "no IPv6 next hop") {
		t.Errorf("Announce of an IPv6 prefix without a next hop: %v", err)
	}
	if got := s.Announced(); !reflect.DeepEqual(got, []netip.Prefix{p4}) {
		t.Errorf("Announced = %v, want the IPv4 prefix alone", got)
	}
}
