package lab

import (
	"net/netip"
	"strings"
	"testing"
)

// TestIPv6: with Options.IPv6 every host has its fd00:10::/64 or
// fd00:20::/64 address beside the IPv4 one; the client reaches a real
// server's TCP and UDP echo over IPv6 through the router; SetGateway moves
// one real's IPv6 default route to the director and leaves its IPv4 route
// and the other real alone.
func TestIPv6(t *testing.T) {
	requireRoot(t)
	prefix := testPrefix()
	l, err := New(Options{Prefix: prefix, Reals: 2, IPv6: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertGone(t, prefix, 2)
	})
	for _, w := range []struct {
		h    *Host
		addr string
	}{{l.Client, "fd00:10::2"}, {l.Router, "fd00:10::1"}, {l.Director, "fd00:20::2"}, {l.Reals[0], "fd00:20::11"}, {l.Reals[1], "fd00:20::12"}} {
		if w.h.Addr6.String() != w.addr {
			t.Errorf("%s: Addr6 %s, want %s", w.h.Name, w.h.Addr6, w.addr)
		}
		out, err := w.h.Command(ctx(t), "ip", "-6", "-o", "addr", "show", "dev", w.h.Iface).Output()
		if err != nil || !strings.Contains(string(out), " "+w.addr+"/64 ") {
			t.Errorf("%s: %s/64 not on %s: %s %v", w.h.Name, w.addr, w.h.Iface, out, err)
		}
	}
	if l.LAN6.String() != "fd00:20::/64" || l.Gateway6.String() != "fd00:20::1" {
		t.Errorf("LAN6 %s, Gateway6 %s", l.LAN6, l.Gateway6)
	}

	rs := l.Reals[0]
	for _, proto := range []string{"tcp", "udp"} {
		e, err := rs.StartEcho(proto, netip.AddrPortFrom(netip.IPv6Unspecified(), 7))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
	}
	dst := netip.AddrPortFrom(rs.Addr6, 7)
	udpRoundTrip(t, l.Client, dst, "over IPv6")
	c, err := l.Client.DialTCP(ctx(t), dst)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("tcp over IPv6")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := ioReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("TCP echo %q, %v", got, err)
	}
	c.Close()

	if err := l.SetGateway(l.Director.Addr6, rs); err != nil {
		t.Fatal(err)
	}
	route := func(h *Host, family string) string {
		out, err := h.Command(ctx(t), "ip", family, "route", "show", "default").Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if r := route(rs, "-6"); !strings.Contains(r, "via fd00:20::2 ") {
		t.Errorf("%s IPv6 default route %q, want via the director", rs.Name, r)
	}
	if r := route(rs, "-4"); !strings.Contains(r, "via 10.20.0.1 ") {
		t.Errorf("%s IPv4 default route %q, want it left via the router", rs.Name, r)
	}
	if r := route(l.Reals[1], "-6"); !strings.Contains(r, "via fd00:20::1 ") {
		t.Errorf("%s IPv6 default route %q, want it left via the router", l.Reals[1].Name, r)
	}
	if err := l.SetGateway(netip.MustParseAddr("fd00:99::1"), rs); err == nil {
		t.Error("SetGateway accepted a gateway outside the LAN")
	}
}
