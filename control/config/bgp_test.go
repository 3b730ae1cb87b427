package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// bgpHead is head with one service and the issue's [bgp] section.
const bgpHead = head + `
[[service]]
address = "10.20.0.100:80"
scheduler = "mh"
  [[service.real]]
  address = "10.20.0.11:80"
`

func TestParseBGP(t *testing.T) {
	c := mustParse(t, bgpHead+`
[bgp]
local_as = 4200000001
router_id = "10.20.0.2"
hold_time = "30s"
next_hop = "10.20.0.9"
next_hop6 = "fd00:20::9"
drain = "2s"
med = 0
communities = ["65000:100", "0:65535"]
  [[bgp.peer]]
  address = "10.20.0.1"
  as = 65000
  password = "s3cret"
  [[bgp.peer]]
  address = "10.20.0.254"
  as = 4200000001
  [[bgp.peer]]
  address = "fd00:20::1"
  as = 65000
`)
	want := BGP{Enabled: true, LocalAS: 4200000001, RouterID: netip.MustParseAddr("10.20.0.2"), HoldTime: 30 * time.Second,
		NextHop: netip.MustParseAddr("10.20.0.9"), NextHop6: netip.MustParseAddr("fd00:20::9"), Drain: 2 * time.Second, MED: 0, Communities: []string{"65000:100", "0:65535"},
		Peers: []BGPPeer{{Address: netip.MustParseAddr("10.20.0.1"), AS: 65000, Password: "s3cret"},
			{Address: netip.MustParseAddr("10.20.0.254"), AS: 4200000001}, {Address: netip.MustParseAddr("fd00:20::1"), AS: 65000}}}
	if !reflect.DeepEqual(c.BGP, want) {
		t.Errorf("BGP =\n%+v\nwant\n%+v", c.BGP, want)
	}
}

// TestBGPDefaults: the minimal section gets hold_time 9s, drain 5s,
// no MED, and leaves router_id and next_hop to the daemon (the interface's
// address); without [bgp] it is off.
func TestBGPDefaults(t *testing.T) {
	c := mustParse(t, bgpHead+"[bgp]\nlocal_as = 65001\n[[bgp.peer]]\naddress = \"10.20.0.1\"\nas = 65000\n")
	b := c.BGP
	if !b.Enabled || b.HoldTime != 9*time.Second || b.Drain != 5*time.Second || b.MED != -1 || b.RouterID.IsValid() || b.NextHop.IsValid() {
		t.Errorf("defaults: %+v", b)
	}
	if c := mustParse(t, bgpHead); c.BGP.Enabled {
		t.Errorf("no [bgp]: enabled")
	}
	if c := mustParse(t, bgpHead+"[bgp]\nenabled = false\n"); c.BGP.Enabled {
		t.Errorf("enabled = false: enabled")
	}
	// Beside [bgp], [vrrp] may move addresses that are no service's VIP:
	// the NAT reals' gateway, taken by one director at a time.
	c = mustParse(t, bgpHead+`
[vrrp]
router_id = 51
addresses = ["10.20.0.254"]
[bgp]
local_as = 65001
  [[bgp.peer]]
  address = "10.20.0.1"
  as = 65000
`)
	if !c.BGP.Enabled || c.VRRP.RouterID != 51 {
		t.Errorf("[bgp] with a gateway-only [vrrp]: %+v %+v", c.BGP, c.VRRP)
	}
	// An IPv6 service beside [bgp]: its VIP is announced as a /128.
	if err := Validate(mustParse(t, bgpHead+"[[service]]\naddress = \"[fd00:20::100]:80\"\n[bgp]\nlocal_as = 65001\n[[bgp.peer]]\naddress = \"10.20.0.1\"\nas = 65000\n")); err != nil {
		t.Errorf("IPv6 service with [bgp]: %v", err)
	}
	// The issue's own example, empty next_hop and password included.
	mustParse(t, bgpHead+`
[bgp]
local_as = 65001
router_id = "10.20.0.2"
hold_time = "9s"
next_hop = ""
drain = "5s"
  [[bgp.peer]]
  address = "10.20.0.1"
  as = 65000
  password = ""
`)
}

func TestBGPErrors(t *testing.T) {
	peer := "[[bgp.peer]]\naddress = \"10.20.0.1\"\nas = 65000\n"
	for _, tt := range []struct {
		name string
		src  string
		want []FieldError
	}{
		{"empty section", bgpHead + "[bgp]\n", []FieldError{{"bgp.local_as", "required"}, {"bgp.peer", "at least one [[bgp.peer]] is required"}}},
		{"AS ranges", bgpHead + "[bgp]\nlocal_as = 4294967296\n[[bgp.peer]]\naddress = \"10.20.0.1\"\nas = -1\n[[bgp.peer]]\naddress = \"10.20.0.3\"\nas = 23456\n[[bgp.peer]]\naddress = \"10.20.0.4\"\nas = 65535\n",
			[]FieldError{{"bgp.local_as", "4294967296 is out of range 1..4294967295"}, {"bgp.peer[0].as", "-1 is out of range 1..4294967295"},
				{"bgp.peer[1].as", "23456 is AS_TRANS (RFC 6793), not an AS a speaker may have"}, {"bgp.peer[2].as", "65535 is reserved (RFC 7300)"}}},
		{"router_id", bgpHead + "[bgp]\nlocal_as = 65001\nrouter_id = \"fd00::1\"\n" + peer,
			[]FieldError{{"bgp.router_id", "fd00::1 is not a usable IPv4 address (a BGP identifier is a unicast IPv4 address, RFC 6286)"}}},
		{"router_id junk", bgpHead + "[bgp]\nlocal_as = 65001\nrouter_id = \"ten\"\n" + peer, []FieldError{{"bgp.router_id", `"ten" is not an IP address`}}},
		{"hold_time 2s", bgpHead + "[bgp]\nlocal_as = 65001\nhold_time = \"2s\"\n" + peer,
			[]FieldError{{"bgp.hold_time", "2s is not 0 or a whole number of seconds in 3s..65535s (RFC 4271)"}}},
		{"hold_time fraction", bgpHead + "[bgp]\nlocal_as = 65001\nhold_time = \"3.5s\"\n" + peer,
			[]FieldError{{"bgp.hold_time", "3.5s is not 0 or a whole number of seconds in 3s..65535s (RFC 4271)"}}},
		{"hold_time too long", bgpHead + "[bgp]\nlocal_as = 65001\nhold_time = \"65536s\"\n" + peer,
			[]FieldError{{"bgp.hold_time", "18h12m16s is not 0 or a whole number of seconds in 3s..65535s (RFC 4271)"}}},
		{"values", bgpHead + "[bgp]\nlocal_as = 65001\nnext_hop = \"224.0.0.1\"\ndrain = \"-1s\"\nmed = 4294967296\ncommunities = [\"65000:100\", \"65536:1\", \"x\"]\n" + peer,
			[]FieldError{{"bgp.communities[1]", `"65536:1" is not a community (want "ASN:VALUE", each 0..65535)`},
				{"bgp.communities[2]", `"x" is not a community (want "ASN:VALUE", each 0..65535)`},
				{"bgp.drain", "-1s is negative"}, {"bgp.med", "4294967296 is out of range 0..4294967295"},
				{"bgp.next_hop", "224.0.0.1 is not a unicast address"}}},
		{"peers", bgpHead + "[bgp]\nlocal_as = 65001\n" + peer + peer + "[[bgp.peer]]\nas = 65000\npassword = \"" + strings.Repeat("k", 81) + "\"\n[[bgp.peer]]\naddress = \"10.20.0.5\"\n",
			[]FieldError{{"bgp.peer[1].address", "10.20.0.1 is already bgp.peer[0]"}, {"bgp.peer[2].address", "required"},
				{"bgp.peer[2].password", "81 bytes long; a TCP MD5 key has at most 80 (TCP_MD5SIG_MAXKEYLEN)"}, {"bgp.peer[3].as", "required"}}},
		{"peer IPv6 link-local, next_hop IPv6", bgpHead + "[bgp]\nlocal_as = 65001\nnext_hop = \"fd00::2\"\n[[bgp.peer]]\naddress = \"fe80::1\"\nas = 65000\n",
			[]FieldError{{"bgp.next_hop", "fd00::2 is an IPv6 address: the IPv6 VIPs' next hop is bgp.next_hop6"},
				{"bgp.peer[0].address", "fe80::1 is link-local"}}},
		{"peer unknown key", bgpHead + "[bgp]\nlocal_as = 65001\n" + peer + "port = 1179\n", []FieldError{{"bgp.peer[0].port", "unknown key"}}},
		{"peer not a table array", bgpHead + "[bgp]\nlocal_as = 65001\npeer = 1\n", []FieldError{{"bgp.peer", "want an array of tables ([[bgp.peer]]), got integer 1"}}},
		{"with vrrp", bgpHead + "[[service]]\naddress = \"10.20.0.100:443\"\n[[service]]\naddress = \"10.20.0.101:80\"\n[vrrp]\nrouter_id = 51\n[bgp]\nlocal_as = 65001\n" + peer,
			[]FieldError{
				{"bgp", "[bgp] and [vrrp] on the same VIP 10.20.0.100 (service[0].address): [bgp] announces it from every director, vrrp (vrrp.addresses is empty: every service VIP) gives it to the VRRP master alone; use one of them (remove [vrrp] to scale out with BGP, or give [vrrp] only addresses that are no service's VIP, such as the NAT reals' gateway, in vrrp.addresses)"},
				{"bgp", "[bgp] and [vrrp] on the same VIP 10.20.0.101 (service[2].address): [bgp] announces it from every director, vrrp (vrrp.addresses is empty: every service VIP) gives it to the VRRP master alone; use one of them (remove [vrrp] to scale out with BGP, or give [vrrp] only addresses that are no service's VIP, such as the NAT reals' gateway, in vrrp.addresses)"}}},
		{"peer_local_addresses without local_addresses", bgpHead + "[bgp]\nlocal_as = 65001\npeer_local_addresses = [\"10.30.0.3\"]\n" + peer,
			[]FieldError{{"bgp.peer_local_addresses", "needs director.local_addresses: this director's own local addresses, announced beside the others'"}}},
		{"peer_local_addresses values", strings.Replace(bgpHead, "[director]\n", "[director]\nlocal_addresses = [\"10.30.0.2\"]\n", 1) +
			"[bgp]\nlocal_as = 65001\npeer_local_addresses = [\"10.30.0.2\", \"fe80::3\", \"10.30.0.3\", \"10.30.0.3\", \"10.20.0.100\", \"224.0.0.1\"]\n" + peer,
			[]FieldError{{"bgp.peer_local_addresses[0]", "10.30.0.2 is this director's own (director.local_addresses); list only the other directors' here"},
				{"bgp.peer_local_addresses[1]", "fe80::3 is link-local"},
				{"bgp.peer_local_addresses[3]", "10.30.0.3 is already bgp.peer_local_addresses[2]"},
				{"bgp.peer_local_addresses[4]", "10.20.0.100 is a service VIP"},
				{"bgp.peer_local_addresses[5]", "224.0.0.1 is not a usable unicast address"}}},
		{"next_hop6 IPv4", bgpHead + "[bgp]\nlocal_as = 65001\nnext_hop6 = \"10.20.0.9\"\n" + peer,
			[]FieldError{{"bgp.next_hop6", "10.20.0.9 is not an IPv6 address (bgp.next_hop is the IPv4 one)"}}},
		{"next_hop6 link-local", bgpHead + "[bgp]\nlocal_as = 65001\nnext_hop6 = \"fe80::1\"\n" + peer,
			[]FieldError{{"bgp.next_hop6", "fe80::1 is link-local"}}},
		{"next_hop6 multicast", bgpHead + "[bgp]\nlocal_as = 65001\nnext_hop6 = \"ff02::1\"\n" + peer,
			[]FieldError{{"bgp.next_hop6", "ff02::1 is not a unicast address"}}},
		{"with vrrp addresses", bgpHead + "[vrrp]\nrouter_id = 51\naddresses = [\"10.20.0.53\", \"10.20.0.100\"]\n[bgp]\nlocal_as = 65001\n" + peer,
			[]FieldError{{"bgp", "[bgp] and [vrrp] on the same VIP 10.20.0.100 (service[0].address): [bgp] announces it from every director, vrrp.addresses[1] gives it to the VRRP master alone; use one of them (remove [vrrp] to scale out with BGP, or give [vrrp] only addresses that are no service's VIP, such as the NAT reals' gateway, in vrrp.addresses)"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrs(t, tt.src)
			if !reflect.DeepEqual([]FieldError(got), tt.want) {
				t.Errorf("got\n%v\nwant\n%v", got, Errors(tt.want))
			}
		})
	}
}

// TestBGPOffWithVRRP: [vrrp] with [bgp] turned off, or [bgp] without
// services, is no conflict.
func TestBGPOffWithVRRP(t *testing.T) {
	mustParse(t, bgpHead+"[vrrp]\nrouter_id = 51\n[bgp]\nenabled = false\n")
	mustParse(t, head+"[vrrp]\nrouter_id = 51\naddresses = [\"10.20.0.53\"]\n[bgp]\nlocal_as = 65001\n[[bgp.peer]]\naddress = \"10.20.0.1\"\nas = 65000\n")
}

func TestParseCommunity(t *testing.T) {
	for s, want := range map[string]uint32{"0:0": 0, "65000:100": 65000<<16 | 100, "65535:65535": 0xffffffff} {
		if got, err := ParseCommunity(s); err != nil || got != want {
			t.Errorf("ParseCommunity(%q) = %#x, %v; want %#x", s, got, err, want)
		}
	}
	for _, s := range []string{"", ":", "1:", ":1", "1", "65536:0", "0:65536", "-1:0", "1:2:3", " 1:2"} {
		if _, err := ParseCommunity(s); err == nil {
			t.Errorf("ParseCommunity(%q) succeeded", s)
		}
	}
}
