package control

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/control/vrrp"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/offload"
)

// TestDoctorChecks: each check passes on a good setup, and on a bad one
// fails with the command that fixes it.
func TestDoctorChecks(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vrrp51 := func(version int) config.VRRP {
		return config.VRRP{RouterID: 51, Version: version, AdvertInterval: time.Second, AuthType: "none"}
	}
	mismatch := func(r vrrp.DropReason, v vrrp.Version, interval, ago time.Duration) []vrrp.Mismatch {
		return []vrrp.Mismatch{{Since: now.Add(-ago - time.Minute), At: now.Add(-ago), Peer: netip.MustParseAddr("10.20.0.50"), Reason: r, Version: v, Interval: interval}}
	}
	for _, tc := range []struct {
		name         string
		got          func() (status, fix string)
		status, want string // want: a substring of the fix
	}{
		{"gro on", func() (string, string) {
			c := checkOffload("eth0", offload.GRO, true, nil, false)
			return c.Status, c.Fix
		}, "ok", ""},
		{"gro on against disable_gro", func() (string, string) {
			c := checkOffload("eth0", offload.GRO, true, nil, true)
			return c.Status, c.Fix
		}, "fail", "ethtool -K eth0 gro off"},
		{"lro off", func() (string, string) {
			c := checkOffload("eth0", offload.LRO, false, nil, false)
			return c.Status, c.Fix
		}, "ok", ""},
		{"offload unreadable", func() (string, string) {
			c := checkOffload("eth0", offload.GRO, false, errors.New("no ethtool"), false)
			return c.Status, c.Fix
		}, "warn", "ethtool -k eth0"},
		{"ingress gone", func() (string, string) { c := checkIngress(errors.New("chain gone")); return c.Status, c.Fix }, "fail", "restart gvsd"},
		{"ipv6 left to the kernel", func() (string, string) { c := checkIngressLeft(3); return c.Status, c.Detail }, "warn", "3 IPv6 frames"},
		{"ports overlap", func() (string, string) {
			c := checkPortRange(config.PortRange{Lo: 20000, Hi: 40000}, "32768\t60999\n", nil)
			return c.Status, c.Fix
		}, "fail", `sysctl -w net.ipv4.ip_local_port_range="40001 60999"`},
		{"ports apart", func() (string, string) {
			c := checkPortRange(config.PortRange{Lo: 1024, Hi: 32767}, "32768 60999", nil)
			return c.Status, c.Fix
		}, "ok", ""},
		{"ports unreadable", func() (string, string) {
			c := checkPortRange(config.PortRange{Lo: 1, Hi: 2}, "", nil)
			return c.Status, c.Fix
		}, "warn", "sysctl"},
		{"local address missing without vrrp", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("10.20.0.50"), false, false, true, false, nil)
			return c.Status, c.Fix
		}, "fail", "ip addr add 10.20.0.50/32 dev eth0"},
		{"local address on without vrrp", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("10.20.0.50"), false, false, true, true, nil)
			return c.Status, c.Fix
		}, "ok", ""},
		{"local address held by the vrrp master", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("10.20.0.50"), true, true, true, true, nil)
			return c.Status, c.Fix
		}, "ok", ""},
		{"local address missing on the vrrp master", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("10.20.0.50"), true, true, true, false, nil)
			return c.Status, c.Fix
		}, "fail", "ip addr add 10.20.0.50/32 dev eth0"},
		{"local address on a vrrp backup", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("10.20.0.50"), true, true, false, true, nil)
			return c.Status, c.Fix
		}, "fail", "ip addr del 10.20.0.50/32 dev eth0"},
		{"local address off a vrrp backup", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("10.20.0.50"), true, true, false, false, nil)
			return c.Status, c.Fix
		}, "ok", ""},
		{"local address outside vrrp addresses", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("10.20.0.50"), true, false, false, true, nil)
			return c.Status, c.Fix
		}, "warn", "list it in [vrrp] addresses"},
		{"local address unreadable", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("10.20.0.50"), false, false, true, false, errors.New("no netlink"))
			return c.Status, c.Fix
		}, "warn", "ip -4 addr show dev eth0"},
		{"IPv6 local address missing", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("fd00:20::2"), false, false, true, false, nil)
			return c.Status, c.Fix
		}, "fail", "ip -6 addr add fd00:20::2/128 dev eth0 nodad"},
		{"IPv6 local address on", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("fd00:20::2"), false, false, true, true, nil)
			return c.Status, c.Fix
		}, "ok", ""},
		{"IPv6 local address on a vrrp backup", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("fd00:20::2"), true, true, false, true, nil)
			if !strings.Contains(c.Detail, "neighbour solicitations") {
				return "detail " + c.Detail, c.Fix
			}
			return c.Status, c.Fix
		}, "fail", "ip -6 addr del fd00:20::2/128 dev eth0"},
		{"IPv6 local address unreadable", func() (string, string) {
			c := checkLocal("eth0", netip.MustParseAddr("fd00:20::2"), false, false, true, false, errors.New("no netlink"))
			return c.Status, c.Fix
		}, "warn", "ip -6 addr show dev eth0"},
		{"vip missing as master", func() (string, string) {
			c := checkVIP("eth0", netip.MustParseAddr("10.20.0.100"), true, false, nil)
			return c.Status, c.Fix
		}, "fail", "ip addr add 10.20.0.100/32 dev eth0"},
		{"vip held as backup", func() (string, string) {
			c := checkVIP("eth0", netip.MustParseAddr("10.20.0.100"), false, true, nil)
			return c.Status, c.Fix
		}, "fail", "ip addr del 10.20.0.100/32 dev eth0"},
		{"IPv6 vip missing", func() (string, string) {
			c := checkVIP("eth0", netip.MustParseAddr("fd00:20::100"), true, false, nil)
			return c.Status, c.Fix
		}, "fail", "ip -6 addr add fd00:20::100/128 dev eth0 nodad preferred_lft 0"},
		{"IPv6 vip on", func() (string, string) {
			c := checkVIP("eth0", netip.MustParseAddr("fd00:20::100"), true, true, nil)
			return c.Status, c.Fix
		}, "ok", ""},
		{"IPv6 on", func() (string, string) {
			c := checkIPv6Link("eth0", netip.MustParseAddr("fd00:20::2"), "0", nil)
			return c.Status, c.Fix
		}, "ok", ""},
		{"IPv6 disabled", func() (string, string) {
			c := checkIPv6Link("eth0", netip.Addr{}, "1", nil)
			return c.Status, c.Fix
		}, "fail", "sysctl -w net.ipv6.conf.eth0.disable_ipv6=0"},
		{"no IPv6 address", func() (string, string) {
			c := checkIPv6Link("eth0", netip.Addr{}, "0", nil)
			return c.Status, c.Fix
		}, "fail", "ip -6 addr add ADDRESS/64 dev eth0"},
		{"IPv6 unreadable", func() (string, string) {
			c := checkIPv6Link("eth0", netip.Addr{}, "", errors.New("no such file"))
			return c.Status, c.Fix
		}, "warn", "sysctl net.ipv6.conf.eth0.disable_ipv6"},
		{"vip as backup", func() (string, string) {
			c := checkVIP("eth0", netip.MustParseAddr("10.20.0.100"), false, false, nil)
			return c.Status, c.Fix
		}, "ok", ""},
		{"sync without vrrp", func() (string, string) {
			c := checkSync(&config.Config{Sync: config.Sync{Enabled: true}}, netip.Addr{}, false)
			return c.Status, c.Fix
		}, "warn", "add [vrrp]"},
		{"sync without gateway", func() (string, string) {
			c := checkSync(&config.Config{Director: config.Director{Interface: "eth0"}, VRRP: config.VRRP{RouterID: 5}}, netip.Addr{}, false)
			return c.Status, c.Fix
		}, "warn", "ip route add default via GATEWAY dev eth0"},
		{"sync fine", func() (string, string) {
			c := checkSync(&config.Config{VRRP: config.VRRP{RouterID: 5}}, netip.MustParseAddr("10.20.0.1"), true)
			return c.Status, c.Fix
		}, "ok", ""},
		{"vrrp alone", func() (string, string) {
			c := checkVRRP(vrrp51(2), nil, now)
			return c.Status, c.Fix
		}, "ok", ""},
		{"vrrp peer speaks v2", func() (string, string) {
			c := checkVRRP(vrrp51(3), mismatch(vrrp.DropVersion, 2, time.Second, 5*time.Second), now)
			return c.Status, c.Fix
		}, "fail", "set [vrrp] version = 2 and restart gvsd"},
		{"vrrp peer speaks v3", func() (string, string) {
			c := checkVRRP(vrrp51(2), mismatch(vrrp.DropVersion, 3, time.Second, 5*time.Second), now)
			return c.Status, c.Fix
		}, "fail", "set [vrrp] version = 3"},
		{"vrrp peer's password differs", func() (string, string) {
			c := checkVRRP(vrrp51(2), mismatch(vrrp.DropAuth, 2, time.Second, 10*time.Second), now)
			return c.Status, c.Fix
		}, "fail", "check [vrrp] auth_type and auth_pass"},
		{"vrrp peer's interval differs", func() (string, string) {
			c := checkVRRP(vrrp51(2), mismatch(vrrp.DropInterval, 2, 3*time.Second, 25*time.Second), now)
			return c.Status, c.Fix
		}, "fail", `set [vrrp] advert_interval = "3s"`},
		{"vrrp peer silent for an hour, not resigned", func() (string, string) {
			c := checkVRRP(vrrp51(3), mismatch(vrrp.DropVersion, 2, time.Second, time.Hour), now)
			return c.Status, c.Fix
		}, "fail", "set [vrrp] version = 2"},
		{"vrrp two peers: the one heard last", func() (string, string) {
			two := append(mismatch(vrrp.DropAuth, 2, time.Second, time.Minute), mismatch(vrrp.DropInterval, 2, 2*time.Second, time.Second)...)
			c := checkVRRP(vrrp51(2), two, now)
			if !strings.Contains(c.Detail, "1 more peer") {
				return "detail " + c.Detail, c.Fix
			}
			return c.Status, c.Fix
		}, "fail", `advert_interval = "2s"`},
	} {
		status, fix := tc.got()
		if status != tc.status || !strings.Contains(fix, tc.want) || (tc.status == "ok") != (fix == "") {
			t.Errorf("%s: %s, fix %q; want %s with a fix containing %q", tc.name, status, fix, tc.status, tc.want)
		}
	}
}

// TestDoctorReals: an unresolved real and an off-link DR real fail, with
// what to do; an off-link TUN real is fine.
func TestDoctorReals(t *testing.T) {
	cfg := &config.Config{Services: []config.Service{{Reals: []config.Real{
		{Address: netip.MustParseAddrPort("10.20.0.11:80"), Forward: config.DR},
		{Address: netip.MustParseAddrPort("10.30.0.12:80"), Forward: config.DR},
		{Address: netip.MustParseAddrPort("10.30.0.13:80"), Forward: config.TUN},
		{Address: netip.MustParseAddrPort("10.20.0.14:80"), Forward: config.NAT},
	}}, {Reals: []config.Real{
		{Address: netip.MustParseAddrPort("[fd00:20::11]:80"), Forward: config.DR},
		{Address: netip.MustParseAddrPort("[fd00:20::12]:80"), Forward: config.NAT},
	}}}}
	a := netip.MustParseAddr
	macs := map[netip.Addr][6]byte{a("10.20.0.11"): {2}, a("10.30.0.12"): {2}, a("10.30.0.13"): {2}, a("fd00:20::11"): {2}}
	offLink := map[netip.Addr]bool{a("10.30.0.12"): true, a("10.30.0.13"): true}
	got := checkReals(cfg, "eth0", macs, offLink)
	want := []struct{ status, fix string }{{"ok", ""}, {"fail", `use forward = "tun" or "nat"`}, {"ok", ""}, {"fail", "arping -I eth0 10.20.0.14"},
		{"ok", ""}, {"fail", "ip -6 neigh show dev eth0"}}
	if len(got) != len(want) {
		t.Fatalf("%d checks: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Status != w.status || !strings.Contains(got[i].Fix, w.fix) {
			t.Errorf("real %d: %+v, want %s with %q", i, got[i], w.status, w.fix)
		}
	}
}

// TestVRRPMismatchText: the log line a differently configured peer causes
// names the peer, the router_id and the setting to change.
func TestVRRPMismatchText(t *testing.T) {
	peer := netip.MustParseAddr("10.20.0.50")
	v3 := config.VRRP{RouterID: 51, Version: 3, AdvertInterval: time.Second, AuthType: "none"}
	v2 := config.VRRP{RouterID: 51, Version: 2, AdvertInterval: time.Second, AuthType: "pass", AuthPass: "s3cr3t"}
	for _, tc := range []struct {
		v    config.VRRP
		m    vrrp.Mismatch
		want string
	}{
		{v3, vrrp.Mismatch{Peer: peer, Reason: vrrp.DropVersion, Version: 2, Interval: time.Second},
			"10.20.0.50 sends VRRPv2 for router_id 51 (this director: VRRPv3): set [vrrp] version = 2 and restart gvsd, or make the peer speak VRRPv3 (keepalived: vrrp_version 3 in global_defs)"},
		{v2, vrrp.Mismatch{Peer: peer, Reason: vrrp.DropAuth, Version: 2, Interval: time.Second},
			"10.20.0.50 sends VRRPv2 for router_id 51 whose authentication differs: check [vrrp] auth_type and auth_pass against the peer's (keepalived: authentication { auth_type PASS; auth_pass ... }) and restart gvsd"},
		{v2, vrrp.Mismatch{Peer: peer, Reason: vrrp.DropInterval, Version: 2, Interval: 2 * time.Second},
			`10.20.0.50 advertises router_id 51 every 2s, this director every 1s: VRRPv2 drops adverts of another interval: set [vrrp] advert_interval = "2s" and restart gvsd, or advert_int 1 on the peer`},
	} {
		detail, fix := mismatchText(tc.v, tc.m)
		if got := detail + ": " + fix; got != tc.want {
			t.Errorf("%v:\n got %s\nwant %s", tc.m.Reason, got, tc.want)
		}
		if strings.Contains(detail+fix, "s3cr3t") {
			t.Errorf("the password is in %q", detail+fix)
		}
	}
}

// TestIfaceHas: an address is found on its interface whatever its prefix
// (127.0.0.1/8 on lo), and one that is not there is not.
func TestIfaceHas(t *testing.T) {
	if has, err := ifaceHas("lo", netip.MustParseAddr("127.0.0.1")); err != nil || !has {
		t.Errorf("127.0.0.1 on lo: %v, %v", has, err)
	}
	if has, err := ifaceHas("lo", netip.MustParseAddr("10.255.255.1")); err != nil || has {
		t.Errorf("10.255.255.1 on lo: %v, %v", has, err)
	}
	if _, err := ifaceHas("gvs-no-such-if", netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("an interface that does not exist: no error")
	}
}

// TestDoctorNATReturn: a NAT real sent natReturnMin packets with none
// coming back through the director is told to route its replies via it,
// IPv6 reals with ip -6 and the director's IPv6 address; a real that
// answers, a DR real, or one sent few packets, is not.
func TestDoctorNATReturn(t *testing.T) {
	real := func(a string, fwd dataplane.Forward, in, out uint64) dataplane.Real {
		ap := netip.MustParseAddrPort(a)
		r := dataplane.Real{Port: ap.Port(), Forward: fwd, Stats: new(dataplane.RealStats)}
		if ap.Addr().Is6() {
			r.Addr6 = ap.Addr().As16()
		} else {
			r.Addr = ap.Addr().As4()
		}
		r.Stats.InPkts.Store(in)
		r.Stats.OutPkts.Store(out)
		return r
	}
	tbl := &dataplane.Table{Reals: []dataplane.Real{
		real("10.20.0.11:8080", dataplane.ForwardNAT, 50, 0),
		real("10.20.0.12:8080", dataplane.ForwardNAT, 50, 40),
		real("[fd00:20::13]:8080", dataplane.ForwardNAT, natReturnMin, 0),
		real("[fd00:20::14]:8080", dataplane.ForwardNAT, natReturnMin-1, 0),
		real("[fd00:20::15]:80", dataplane.ForwardDR, 500, 0),
	}}
	got := checkNATReturn(tbl, netip.MustParseAddr("10.20.0.2"), netip.MustParseAddr("fd00:20::2"))
	if len(got) != 2 || got[0].Name != "nat return 10.20.0.11:8080" || got[1].Name != "nat return [fd00:20::13]:8080" ||
		got[0].Status != "warn" || !strings.Contains(got[0].Fix, "ip route replace default via 10.20.0.2") ||
		!strings.Contains(got[1].Fix, "on fd00:20::13: ip -6 route replace default via fd00:20::2") {
		t.Fatalf("checkNATReturn = %+v", got)
	}
	if got := checkNATReturn(nil, netip.Addr{}, netip.Addr{}); got != nil {
		t.Errorf("no table: %+v", got)
	}
}
