package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// drConfig is a DR configuration of the lab with a TCP service on
// VIP:80 (scheduler, extra service lines, per-real weights and extra
// lines) and a UDP service on VIP:53 (udpExtra lines, weights 1).
func drConfig(l *lab.Lab, sched, extra string, weights []int, udpExtra string, realExtra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\n\n", l.Director.Iface)
	fmt.Fprintf(&b, "[[service]]\naddress = \"%s:%d\"\nscheduler = %q\nforward = \"dr\"\n%s\n", scenario.VIP, scenario.TCPPort, sched, extra)
	for i, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n  weight = %d\n", r.Addr, scenario.TCPPort, weights[i])
		if i < len(realExtra) {
			fmt.Fprintf(&b, "  %s\n", realExtra[i])
		}
	}
	fmt.Fprintf(&b, "\n[[service]]\nprotocol = \"udp\"\naddress = \"%s:%d\"\nscheduler = \"rr\"\nforward = \"dr\"\n%s\n", scenario.VIP, scenario.UDPPort, udpExtra)
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n", r.Addr, scenario.UDPPort)
	}
	return b.String()
}

// perClient returns, for each real, the TCP connections each client
// address has made to it since before (a snapshot of env.Reals taken
// earlier is not enough: Peers counts connections and datagrams together,
// so the tests use TCP and UDP on separate steps).
type realCounts struct {
	conns, datagrams []int
	peers            []map[netip.Addr]int
}

func snapshot(env *scenario.Env) realCounts {
	var c realCounts
	for i, r := range env.Reals() {
		c.conns = append(c.conns, r.Conns)
		c.datagrams = append(c.datagrams, r.Datagrams)
		c.peers = append(c.peers, map[netip.Addr]int{})
		for p, n := range env.PeerCounts(i) {
			c.peers[i][p] = n
		}
	}
	return c
}

func (c realCounts) since(before realCounts) realCounts {
	var d realCounts
	for i := range c.conns {
		d.conns = append(d.conns, c.conns[i]-before.conns[i])
		d.datagrams = append(d.datagrams, c.datagrams[i]-before.datagrams[i])
		m := map[netip.Addr]int{}
		for p, n := range c.peers[i] {
			if n -= before.peers[i][p]; n > 0 {
				m[p] = n
			}
		}
		d.peers = append(d.peers, m)
	}
	return d
}

// echoOnce opens a connection from src (any when invalid), echoes a few
// bytes and closes it.
func echoOnce(ctx context.Context, t *testing.T, h *lab.Host, src netip.Addr) {
	t.Helper()
	c, err := h.DialTCPFrom(ctx, src, netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, 64)
}

func roundTrip(t *testing.T, c net.Conn, n int) {
	t.Helper()
	msg := make([]byte, n)
	rand.Read(msg)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo differs")
	}
}

// TestSchedulersEndToEnd runs the scheduling behaviours an operator relies
// on through a real gvsd in DR mode: wrr 3:1 splits connections 3:1; sh
// and persistence keep each client on one real over many connections;
// weight 0 stops new connections to a real while its established one
// keeps working; one-packet scheduling spreads one UDP flow's datagrams.
func TestSchedulersEndToEnd(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Eight client addresses on the client's LAN.
	clients := []netip.Addr{l.Client.Addr}
	for i := range 7 {
		a := netip.AddrFrom4([4]byte{10, 10, 0, byte(10 + i)})
		if out, err := l.Client.Command(ctx, "ip", "addr", "add", a.String()+"/24", "dev", l.Client.Iface).CombinedOutput(); err != nil {
			t.Fatalf("client address %s: %v: %s", a, err, out)
		}
		clients = append(clients, a)
	}
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	// The first step needs fresh counters: closed DR connections linger
	// as inactive entries, and thresholds count them.
	env, err := scenario.Setup(ctx, l, config.DR, o, drConfig(l, "rr", "", []int{1, 1}, "", "upper_threshold = 3"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	reload := func(t *testing.T, cfg string) {
		t.Helper()
		if err := env.Reload(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("upper threshold", func(t *testing.T) {
		// rr alternates until the first real holds 3 connections; then
		// it is overloaded and every new connection goes to the other.
		before := snapshot(env)
		for range 8 {
			c, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, 64)
		}
		if d := snapshot(env).since(before); d.conns[0] != 3 || d.conns[1] != 5 {
			t.Errorf("8 connections split %v, want [3 5] (upper_threshold 3 on %s)", d.conns, l.Reals[0].Name)
		}
	})

	t.Run("wrr 3:1", func(t *testing.T) {
		reload(t, drConfig(l, "wrr", "", []int{3, 1}, ""))
		before := snapshot(env)
		for range 40 {
			echoOnce(ctx, t, l.Client, netip.Addr{})
		}
		if d := snapshot(env).since(before); d.conns[0] != 30 || d.conns[1] != 10 {
			t.Errorf("40 connections split %v, want [30 10] (weights 3:1)", d.conns)
		}
	})

	// Each of 8 clients makes 5 connections; every client must land on one
	// real only. With rr and persistence the test is sharp: without the
	// templates rr would split each client's connections.
	oneRealPerClient := func(t *testing.T, wantBoth bool) {
		t.Helper()
		before := snapshot(env)
		for _, c := range clients {
			for range 5 { // back to back: rr alone would alternate them
				echoOnce(ctx, t, l.Client, c)
			}
		}
		d := snapshot(env).since(before)
		for _, c := range clients {
			on := []int{d.peers[0][c], d.peers[1][c]}
			if (on[0] != 0) == (on[1] != 0) || on[0]+on[1] != 5 {
				t.Errorf("client %s: connections per real %v, want all 5 on one", c, on)
			}
		}
		if wantBoth && (d.conns[0] == 0 || d.conns[1] == 0) {
			t.Errorf("connections per real %v: every client on one real", d.conns)
		}
	}
	t.Run("sh", func(t *testing.T) {
		reload(t, drConfig(l, "sh", "", []int{1, 1}, ""))
		oneRealPerClient(t, false) // 8 clients over 256 buckets: both reals are likely, not certain
	})
	t.Run("persistence", func(t *testing.T) {
		reload(t, drConfig(l, "rr", "persistence = \"5m\"", []int{1, 1}, ""))
		oneRealPerClient(t, true) // rr hands the 8 templates out alternately
	})

	t.Run("weight 0", func(t *testing.T) {
		reload(t, drConfig(l, "rr", "", []int{1, 1}, ""))
		// One established connection on each real.
		var conns []net.Conn
		before := snapshot(env)
		for range 2 {
			c, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			roundTrip(t, c, 100)
			conns = append(conns, c)
		}
		if d := snapshot(env).since(before); d.conns[0] != 1 || d.conns[1] != 1 {
			t.Fatalf("two rr connections split %v", d.conns)
		}
		reload(t, drConfig(l, "rr", "", []int{0, 1}, ""))
		before = snapshot(env)
		for range 10 {
			echoOnce(ctx, t, l.Client, netip.Addr{})
		}
		if d := snapshot(env).since(before); d.conns[0] != 0 || d.conns[1] != 10 {
			t.Errorf("with %s quiescent, 10 new connections split %v, want [0 10]", l.Reals[0].Name, d.conns)
		}
		for i, c := range conns {
			roundTrip(t, c, 5000) // both established connections still work
			if t.Failed() {
				t.Fatalf("established connection %d broke", i)
			}
		}
	})

	t.Run("ops", func(t *testing.T) {
		reload(t, drConfig(l, "rr", "", []int{1, 1}, "ops = true"))
		c, err := l.Client.DialUDP(ctx, netip.AddrPortFrom(scenario.VIP, scenario.UDPPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		before := snapshot(env)
		buf := make([]byte, 2048)
		for i := range 20 {
			msg := fmt.Appendf(nil, "datagram %d", i)
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			n, err := c.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("datagram %d: echo %q, %v", i, buf[:n], err)
			}
		}
		if d := snapshot(env).since(before); d.datagrams[0] != 10 || d.datagrams[1] != 10 {
			t.Errorf("20 datagrams of one flow split %v, want [10 10]", d.datagrams)
		}
	})
}
