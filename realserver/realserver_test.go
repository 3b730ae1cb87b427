package realserver

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{DR, TUN} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	for _, s := range []string{"", "DR", "nat", "fullnat"} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) succeeded", s)
		}
	}
	if s := Mode(0).String(); s != "Mode(0)" {
		t.Errorf("zero Mode prints %q", s)
	}
}

func TestOptionsCheck(t *testing.T) {
	o := Options{VIPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Mode: TUN}
	if err := o.check(); err != nil || o.TunName != DefaultTunName {
		t.Fatalf("check = %v, TunName %q", err, o.TunName)
	}
	if err := (&Options{VIPs: []netip.Addr{netip.MustParseAddr("fd00:20::100"), netip.MustParseAddr("10.0.0.1")}, Mode: DR}).check(); err != nil {
		t.Errorf("IPv6 and IPv4 VIPs in dr: %v", err)
	}
	bad := Options{
		VIPs: []netip.Addr{
			netip.MustParseAddr("::ffff:10.0.0.2"),
			netip.MustParseAddr("fe80::1"),
			netip.MustParseAddr("127.0.0.1"),
			netip.MustParseAddr("10.0.0.1"),
			netip.MustParseAddr("10.0.0.1"),
		},
		TunName: "a-name-longer-than-ifnamsiz",
	}
	err := bad.check()
	if err == nil {
		t.Fatal("check accepted bad options")
	}
	for _, want := range []string{"::ffff:10.0.0.2: not an IPv4 or IPv6 address", "fe80::1: not a unicast", "127.0.0.1: not a unicast", "10.0.0.1: listed twice", "mode 0", "longer than 15"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	tun6 := Options{VIPs: []netip.Addr{netip.MustParseAddr("fd00:20::100")}, Mode: TUN}
	if err := tun6.check(); err != nil {
		t.Errorf("IPv6 VIP in tun: %v", err)
	}
	if err := (&Options{Mode: DR}).check(); err == nil || !strings.Contains(err.Error(), "no VIPs") {
		t.Errorf("no VIPs: %v", err)
	}
}
