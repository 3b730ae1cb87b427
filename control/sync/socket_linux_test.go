//go:build linux

package connsync

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/netnstest"
)

// TestSocketMulticastAndUnicast: two directors on a veth pair exchange
// messages over the multicast group and over unicast; neither hears its
// own multicast.
func TestSocketMulticastAndUnicast(t *testing.T) {
	netnstest.RequireRoot(t)
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.VethPair(t, a, b, "synca", "192.0.2.1/24", "syncb", "192.0.2.2/24")
	open := func(ns *netnstest.NS, cfg SocketConfig) *Socket {
		var s *Socket
		var err error
		ns.Do(t, func() { s, err = Listen(cfg) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	msg, err := (&Message{SyncID: 3, Conns: []Conn{goldenConn}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(s *Socket, from string) {
		t.Helper()
		buf := make([]byte, 2048)
		n, src, err := s.Receive(buf, time.Now().Add(2*time.Second))
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		m, err := Parse(buf[:n])
		if err != nil || src != netip.MustParseAddr(from) || m.SyncID != 3 || len(m.Conns) != 1 || m.Conns[0] != goldenConn {
			t.Fatalf("got %+v from %v (%v)", m, src, err)
		}
	}
	sa := open(a, SocketConfig{Interface: "synca"})
	sb := open(b, SocketConfig{Interface: "syncb"})
	if err := sa.Send(msg); err != nil {
		t.Fatal(err)
	}
	expect(sb, "192.0.2.1")
	// The sender does not hear itself.
	if _, _, err := sa.Receive(make([]byte, 2048), time.Now().Add(200*time.Millisecond)); !IsTimeout(err) {
		t.Fatalf("the sender heard something: %v", err)
	}
	if err := sb.Send(msg); err != nil {
		t.Fatal(err)
	}
	expect(sa, "192.0.2.2")

	// Unicast on another port.
	ua := open(a, SocketConfig{Interface: "synca", Peer: netip.MustParseAddr("192.0.2.2"), Port: 8849})
	ub := open(b, SocketConfig{Interface: "syncb", Peer: netip.MustParseAddr("192.0.2.1"), Port: 8849})
	if err := ua.Send(msg); err != nil {
		t.Fatal(err)
	}
	expect(ub, "192.0.2.1")
	if _, _, err := sb.Receive(make([]byte, 2048), time.Now().Add(100*time.Millisecond)); !IsTimeout(err) {
		t.Fatalf("the multicast socket heard unicast on another port: %v", err)
	}
	if _, err := Listen(SocketConfig{Interface: "no-such-if0"}); err == nil {
		t.Fatal("Listen on a missing interface succeeded")
	}
}

// TestSocketIPv6: the same over IPv6: messages to an IPv6 group (which
// makes the socket IPv6) from the link-local address, and to an IPv6
// unicast peer; neither director hears its own multicast.
func TestSocketIPv6(t *testing.T) {
	netnstest.RequireRoot(t)
	a, b := netnstest.New(t), netnstest.New(t)
	// No DAD: the addresses, the link-local ones too, are usable at once.
	for _, ns := range []*netnstest.NS{a, b} {
		ns.Do(t, func() {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0o644); err != nil {
				t.Fatal(err)
			}
		})
	}
	netnstest.VethPair(t, a, b, "sync6a", "", "sync6b", "")
	for _, c := range []struct {
		ns   *netnstest.NS
		name string
		addr string
	}{{a, "sync6a", "fd00:81::1/64"}, {b, "sync6b", "fd00:81::2/64"}} {
		c.ns.Do(t, func() {
			l, err := netlink.LinkByName(c.name)
			if err != nil {
				t.Fatal(err)
			}
			ad, err := netlink.ParseAddr(c.addr)
			if err != nil {
				t.Fatal(err)
			}
			ad.Flags = unix.IFA_F_NODAD
			if err := netlink.AddrAdd(l, ad); err != nil {
				t.Fatal(err)
			}
		})
	}
	open := func(ns *netnstest.NS, cfg SocketConfig) *Socket {
		t.Helper()
		var s *Socket
		var err error
		ns.Do(t, func() { s, err = Listen(cfg) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if !s.IPv6() {
			t.Fatalf("%+v: not an IPv6 socket", cfg)
		}
		return s
	}
	msg, err := (&Message{SyncID: 6, Conns: []Conn{goldenConn}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(s *Socket, from func(netip.Addr) bool) {
		t.Helper()
		buf := make([]byte, 2048)
		n, src, err := s.Receive(buf, time.Now().Add(2*time.Second))
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		m, err := Parse(buf[:n])
		if err != nil || !from(src) || m.SyncID != 6 || len(m.Conns) != 1 || m.Conns[0] != goldenConn {
			t.Fatalf("got %+v from %v (%v)", m, src, err)
		}
	}
	linkLocalOf := func(ns *netnstest.NS, name string) netip.Addr {
		var out netip.Addr
		ns.Do(t, func() {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				t.Fatal(err)
			}
			addrs, _ := ifi.Addrs()
			for _, x := range addrs {
				if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr().IsLinkLocalUnicast() {
					out = p.Addr()
				}
			}
		})
		if !out.IsValid() {
			t.Fatalf("%s has no link-local address", name)
		}
		return out
	}
	group := netip.MustParseAddr("ff02::8:81")
	sa := open(a, SocketConfig{Interface: "sync6a", Group: group})
	sb := open(b, SocketConfig{Interface: "sync6b", Group: group})
	llA, llB := linkLocalOf(a, "sync6a"), linkLocalOf(b, "sync6b")
	// From the sender's own address on the link: its link-local one (the
	// kernel's choice for a link-scope group), reported without a zone.
	fromA := func(x netip.Addr) bool { return x == llA || x == netip.MustParseAddr("fd00:81::1") }
	if err := sa.Send(msg); err != nil {
		t.Fatal(err)
	}
	expect(sb, fromA)
	if _, _, err := sa.Receive(make([]byte, 2048), time.Now().Add(200*time.Millisecond)); !IsTimeout(err) {
		t.Fatalf("the sender heard something: %v", err)
	}
	if err := sb.Send(msg); err != nil {
		t.Fatal(err)
	}
	expect(sa, func(x netip.Addr) bool { return x == llB || x == netip.MustParseAddr("fd00:81::2") })

	// Unicast to an IPv6 peer, on another port.
	ua := open(a, SocketConfig{Interface: "sync6a", Peer: netip.MustParseAddr("fd00:81::2"), Port: 8849})
	ub := open(b, SocketConfig{Interface: "sync6b", Peer: netip.MustParseAddr("fd00:81::1"), Port: 8849})
	if err := ua.Send(msg); err != nil {
		t.Fatal(err)
	}
	expect(ub, func(x netip.Addr) bool { return x == netip.MustParseAddr("fd00:81::1") })
	if err := ub.Send(msg); err != nil {
		t.Fatal(err)
	}
	expect(ua, func(x netip.Addr) bool { return x == netip.MustParseAddr("fd00:81::2") })
	if _, _, err := sb.Receive(make([]byte, 2048), time.Now().Add(100*time.Millisecond)); !IsTimeout(err) {
		t.Fatalf("the multicast socket heard unicast on another port: %v", err)
	}
}
