package integration

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestLinkFlap takes the director's interface down and up ten times under
// a long TCP stream and a new connection every 50 ms, in NAT (the mode
// whose replies must reach the worker that owns the connection). gvsd
// must never exit; after each link-up new connections must go through
// again (the figure is logged; the bound is generous for slow machines);
// the stream, whose segments TCP retransmits across each flap, must carry
// on to the end without a reset; and gvsadm doctor must say the links were
// reopened. Then the interface is deleted and made again with the same
// name, and gvsd must forward again over it.
func TestLinkFlap(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.NAT, o, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	c, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
	if err != nil {
		t.Fatal(err)
	}
	s := startStream(c)
	defer s.stop()
	reqs := startRequests(ctx, l.Client)
	defer reqs.stop()

	ip := func(args ...string) {
		t.Helper()
		if out, err := l.Director.Command(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	const flaps = 10
	var worst time.Duration
	for i := range flaps {
		ip("link", "set", "dev", l.Director.Iface, "down")
		// Long enough for TCP to notice: its next segments are lost.
		time.Sleep(300 * time.Millisecond)
		ip("link", "set", "dev", l.Director.Iface, "up")
		up := time.Now()
		// Forwarding is back when a new connection gets through.
		var last error
		err := waitCond(ctx, 10*time.Second, func() bool {
			if env.Gvsd.Exited() {
				return true
			}
			cctx, ccancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer ccancel()
			last = request(cctx, l.Client)
			return last == nil
		})
		if env.Gvsd.Exited() {
			t.Fatalf("flap %d: gvsd exited", i+1)
		}
		if err != nil {
			t.Fatalf("flap %d: no connection through the VIP within 10 s of link-up: %v", i+1, last)
		}
		took := time.Since(up)
		worst = max(worst, took)
		t.Logf("flap %d: forwarding again %v after link-up", i+1, took.Round(time.Millisecond))
	}
	t.Logf("worst time from link-up to a new connection through: %v", worst.Round(time.Millisecond))

	// The interface deleted and made again with the same name, address
	// and MAC (as a VM's NIC re-plugged): the old sockets are bound to
	// nothing and the VIP and ingress table went with the old interface.
	lanNS := strings.TrimSuffix(l.Director.NS, "-director") + "-lan"
	mac := net.HardwareAddr(l.Director.MAC[:]).String()
	ip("link", "del", "dev", l.Director.Iface)
	ip("link", "add", l.Director.Iface, "address", mac, "type", "veth", "peer", "name", "director", "netns", lanNS)
	if out, err := exec.CommandContext(ctx, "ip", "-n", lanNS, "link", "set", "director", "master", "br0", "up").CombinedOutput(); err != nil {
		t.Fatalf("enslave the new veth: %v: %s", err, out)
	}
	ip("addr", "add", netip.PrefixFrom(l.Director.Addr, 24).String(), "dev", l.Director.Iface)
	ip("link", "set", "dev", l.Director.Iface, "up")
	ip("route", "add", "default", "via", l.Gateway.String())
	recreated := time.Now()
	var last error
	if err := waitCond(ctx, 10*time.Second, func() bool {
		cctx, ccancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer ccancel()
		last = request(cctx, l.Client)
		return last == nil || env.Gvsd.Exited()
	}); err != nil || env.Gvsd.Exited() {
		t.Fatalf("after the interface was recreated: gvsd exited %v, no connection within 10 s: %v %v", env.Gvsd.Exited(), err, last)
	}
	t.Logf("recreated interface: forwarding again %v after it came up", time.Since(recreated).Round(time.Millisecond))
	// The stream carries on: an echo after the last flap, and no error.
	after := time.Now()
	if err := waitCond(ctx, 30*time.Second, func() bool { return s.echoes(after) > 0 || s.failure() != nil }); err != nil || s.failure() != nil {
		t.Fatalf("the long stream after %d flaps: %v %v", flaps, err, s.failure())
	}
	reqs.stop()
	t.Logf("%d requests during the flaps, %d failed (those caught by a flap)", reqs.done(), len(reqs.errors(time.Time{})))

	out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "doctor").CombinedOutput()
	m := regexp.MustCompile(`(?m)^ok +links +reopened (\d+) times`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("gvsadm doctor after the flaps: %v\n%s", err, out)
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 1 || n > flaps {
		t.Errorf("links reopened %d times for %d flaps", n, flaps)
	}
	if !regexp.MustCompile(`(?m)^ok +interface `).Match(out) || !regexp.MustCompile(`(?m)^ok +ingress table `).Match(out) ||
		!regexp.MustCompile(`(?m)^ok +vip `+regexp.QuoteMeta(scenario.VIP.String())).Match(out) {
		t.Errorf("doctor after the flaps:\n%s", out)
	}
}
