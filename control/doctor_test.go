package control

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/offload"
)

// TestDoctorChecks: each check passes on a good setup, and on a bad one
// fails with the command that fixes it.
func TestDoctorChecks(t *testing.T) {
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
		{"vip missing as master", func() (string, string) {
			c := checkVIP("eth0", netip.MustParseAddr("10.20.0.100"), true, false, nil)
			return c.Status, c.Fix
		}, "fail", "ip addr add 10.20.0.100/32 dev eth0"},
		{"vip held as backup", func() (string, string) {
			c := checkVIP("eth0", netip.MustParseAddr("10.20.0.100"), false, true, nil)
			return c.Status, c.Fix
		}, "fail", "ip addr del 10.20.0.100/32 dev eth0"},
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
	}}}}
	a := netip.MustParseAddr
	macs := map[netip.Addr][6]byte{a("10.20.0.11"): {2}, a("10.30.0.12"): {2}, a("10.30.0.13"): {2}}
	offLink := map[netip.Addr]bool{a("10.30.0.12"): true, a("10.30.0.13"): true}
	got := checkReals(cfg, "eth0", macs, offLink)
	want := []struct{ status, fix string }{{"ok", ""}, {"fail", `use forward = "tun" or "nat"`}, {"ok", ""}, {"fail", "arping -I eth0 10.20.0.14"}}
	if len(got) != len(want) {
		t.Fatalf("%d checks: %+v", len(got), got)
	}
	for i, w := range want {
		if got[i].Status != w.status || !strings.Contains(got[i].Fix, w.fix) {
			t.Errorf("real %d: %+v, want %s with %q", i, got[i], w.status, w.fix)
		}
	}
}
