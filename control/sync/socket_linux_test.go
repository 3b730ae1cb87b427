//go:build linux

package connsync

import (
	"net/netip"
	"testing"
	"time"

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
