package integration

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// The lab's BGP: the router is AS 65000, the director AS 65001.
const (
	routerAS   = 65000
	directorAS = 65001
	// bgpCheckPort serves each real's /healthz for the service's check.
	bgpCheckPort = 8080
	bgpDrain     = 3 * time.Second
)

// birdConfig is BIRD 2's configuration for the lab's router: one passive
// eBGP session per director (gvsd dials out) with an IPv4 and an IPv6
// unicast channel (MP-BGP over the IPv4 session), importing only /32s and
// /128s from them, and the routes exported to the router's kernel tables.
// merge paths
// makes the kernel route multipath when several directors announce a VIP
// (ECMP, the three-director lab of phase 2). error wait time: after a
// session error (a hung director's hold timer running out) BIRD waits 60
// to 300 s by default before it takes the director back; 1 to 5 s here.
func birdConfig(routerID netip.Addr, directors []netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\n", routerID)
	b.WriteString(`protocol device { scan time 1; }
protocol kernel {
	ipv4 { export where source = RTS_BGP; };
	merge paths on;
}
protocol kernel {
	ipv6 { export where source = RTS_BGP; };
	merge paths on;
}
`)
	for i, d := range directors {
		// An IPv6 session: BIRD takes the router's own address of the
		// director's family (the router ID is IPv4).
		local := routerID.String() + " "
		if d.Is6() {
			local = ""
		}
		fmt.Fprintf(&b, `protocol bgp director%d {
	local %sas %d;
	neighbor %s as %d;
	passive on;
	error wait time 1, 5;
	ipv4 { import where net.len = 32; export none; };
	ipv6 { import where net.len = 128; export none; };
}
`, i+1, local, routerAS, d, directorAS)
	}
	return b.String()
}

// bird is BIRD running in a lab namespace.
type bird struct {
	proc   *scenario.Proc
	host   *lab.Host
	socket string
}

func startBIRD(ctx context.Context, t *testing.T, h *lab.Host, conf string) *bird {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &bird{host: h, socket: filepath.Join(dir, "bird.ctl")}
	// -f: in the foreground, so that it is our child and stops with us.
	p, err := scenario.Start(ctx, h, filepath.Join(dir, "bird.log"), []string{"bird", "-f", "-c", path, "-s", b.socket, "-P", filepath.Join(dir, "bird.pid")})
	if err != nil {
		t.Fatal(err)
	}
	b.proc = p
	t.Cleanup(func() { p.Stop() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.birdc(ctx, "show status"); err == nil {
			return b
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("bird did not start:\n%s", p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bird) birdc(ctx context.Context, args ...string) (string, error) {
	out, err := b.host.Command(ctx, "birdc", append([]string{"-s", b.socket}, args...)...).CombinedOutput()
	return string(out), err
}

// route returns BIRD's route to prefix and whether it goes via nextHop.
func (b *bird) route(ctx context.Context, t *testing.T, prefix netip.Prefix, nextHop netip.Addr) (string, bool) {
	t.Helper()
	out, err := b.birdc(ctx, "show", "route", prefix.String())
	if err != nil && strings.Contains(out, "Network not found") {
		return out, false // birdc exits 1 for a route it does not have
	}
	if err != nil {
		t.Fatalf("birdc show route: %v\n%s", err, out)
	}
	return out, strings.Contains(out, prefix.String()) && strings.Contains(out, "via "+nextHop.String()+" ")
}

// kernelRoute reports whether the router's kernel routes prefix via nextHop
// (BIRD's export).
func kernelRoute(ctx context.Context, h *lab.Host, prefix netip.Prefix, nextHop netip.Addr) bool {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := h.Command(ctx, "ip", family, "route", "show", "exact", prefix.String()).Output()
	return err == nil && strings.Contains(string(out), "via "+nextHop.String())
}

// TestBGP: gvsd with [bgp] and a DR service with an HTTP health check, on
// an IPv4 and an IPv6 VIP, BIRD 2 on the lab's router as its peer. The
// router learns the VIP /32 via the director's IPv4 address and the IPv6
// VIP /128 via its IPv6 address (MP-BGP over the one IPv4 session; BIRD's
// tables and the kernel's) and the client reaches both services through
// them; when every real fails its check the routes are withdrawn, when
// they pass again they are back; on SIGTERM gvsd withdraws them first,
// and BIRD has lost them while gvsd still drains.
func TestBGP(t *testing.T) {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("needs BIRD 2 (apt-get install bird2)")
	}
	if _, err := exec.LookPath("birdc"); err != nil {
		t.Skip("needs birdc (apt-get install bird2)")
	}
	l := needLabWith(t, lab.Options{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	director, director6 := l.Director.Addr, l.Director.Addr6
	vip, vip6 := netip.PrefixFrom(scenario.VIP, 32), netip.PrefixFrom(lab.VIP6, 128)
	rt := startBIRD(ctx, t, l.Router, birdConfig(l.Gateway, []netip.Addr{director}))

	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 1\n\n[[service]]\naddress = \"%s:%d\"\nscheduler = \"mh\"\nforward = \"dr\"\n", l.Director.Iface, scenario.VIP, scenario.TCPPort)
	fmt.Fprintf(&b, "  [service.check]\n  type = \"http\"\n  port = %d\n  path = \"/healthz\"\n  interval = \"300ms\"\n  timeout = \"200ms\"\n  rise = 2\n  fall = 2\n", bgpCheckPort)
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n", r.Addr, scenario.TCPPort)
	}
	fmt.Fprintf(&b, "\n[[service]]\naddress = %q\nscheduler = \"mh\"\nforward = \"dr\"\n", netip.AddrPortFrom(lab.VIP6, scenario.TCPPort))
	fmt.Fprintf(&b, "  [service.check]\n  type = \"http\"\n  port = %d\n  path = \"/healthz\"\n  interval = \"300ms\"\n  timeout = \"200ms\"\n  rise = 2\n  fall = 2\n", bgpCheckPort)
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, scenario.TCPPort))
	}
	fmt.Fprintf(&b, "\n[bgp]\nlocal_as = %d\nhold_time = \"9s\"\ndrain = %q\n  [[bgp.peer]]\n  address = \"%s\"\n  as = %d\n", directorAS, bgpDrain, l.Gateway, routerAS)

	// The reals' health endpoints, before gvsd starts: they start up.
	stops := make([]func(), len(l.Reals))
	startChecks := func() {
		t.Helper()
		for i, r := range l.Reals {
			var err error
			if stops[i], err = serveChecked(r, bgpCheckPort, new(atomic.Bool)); err != nil {
				t.Fatal(err)
			}
		}
	}
	stopChecks := func() {
		for i, s := range stops {
			if s != nil {
				s()
				stops[i] = nil
			}
		}
	}
	startChecks()
	defer stopChecks()

	env, closeEnv := startBGPDR(ctx, t, l, b.String(), rt)
	defer closeEnv()

	// waitRoute waits until BIRD has (want) or lacks the routes to both
	// VIPs via the director, and returns how long that took.
	waitRoute := func(want bool, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			out, has := rt.route(ctx, t, vip, director)
			out6, has6 := rt.route(ctx, t, vip6, director6)
			if has == want && has6 == want {
				return time.Since(start)
			}
			if time.Since(start) > limit {
				t.Fatalf("after %v BIRD's routes to %s via %s and %s via %s: want present=%v, got:\n%s\n%s", limit, vip, director, vip6, director6, want, out, out6)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	list := func() *api.BGPStatus {
		t.Helper()
		resp := gvsStatus(ctx, t, env.SocketPath)
		if resp.BGP == nil {
			t.Fatalf("gvsadm -L --json has no bgp: %+v", resp)
		}
		return resp.BGP
	}

	// Announced: BIRD has the /32 via the director, exported to the kernel.
	took := waitRoute(true, 20*time.Second)
	out, _ := rt.route(ctx, t, vip, director)
	out6, _ := rt.route(ctx, t, vip6, director6)
	t.Logf("announced %v after gvsd started:\n%s%s", took.Round(time.Millisecond), out, out6)
	if !kernelRoute(ctx, l.Router, vip, director) {
		o, _ := l.Router.Command(ctx, "ip", "-4", "route").CombinedOutput()
		t.Errorf("the router's kernel has no route to %s via %s:\n%s", vip, director, o)
	}
	if !kernelRoute(ctx, l.Router, vip6, director6) {
		o, _ := l.Router.Command(ctx, "ip", "-6", "route").CombinedOutput()
		t.Errorf("the router's kernel has no route to %s via %s:\n%s", vip6, director6, o)
	}
	st := list()
	if len(st.Peers) != 1 || st.Peers[0].Address != l.Gateway.String() || !st.Peers[0].Established || st.Peers[0].State != "established" ||
		len(st.Announced) != 2 || st.Announced[0] != vip.String() || st.Announced[1] != vip6.String() ||
		st.NextHop != director.String() || st.NextHop6 != director6.String() || st.LocalAS != directorAS {
		t.Errorf("gvsadm -L --json bgp = %+v", st)
	}
	doc, _ := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "doctor").CombinedOutput()
	if !strings.Contains(string(doc), "bgp peer "+l.Gateway.String()) || !strings.Contains(string(doc), "established with AS 65000") {
		t.Errorf("gvsadm doctor shows no established bgp peer:\n%s", doc)
	}
	// The client reaches the services through the router's BGP routes.
	echoBothVIPs(ctx, t, l, "through the BGP route")

	// Every real fails its check: withdrawn.
	stopChecks()
	took = waitRoute(false, 15*time.Second)
	t.Logf("withdrawn %v after the reals' checks started failing (fall 2 × 300ms + timeout)", took.Round(time.Millisecond))
	if st := list(); len(st.Announced) != 0 || len(st.Withdrawn) != 2 || st.Withdrawn[0] != vip.String() || st.Withdrawn[1] != vip6.String() {
		t.Errorf("with every real down, gvsadm -L --json bgp = %+v", st)
	}

	// They pass again: announced again.
	startChecks()
	took = waitRoute(true, 15*time.Second)
	t.Logf("announced again %v after the reals' checks passed (rise 2 × 300ms)", took.Round(time.Millisecond))

	// SIGTERM: withdrawn first, while gvsd drains; gvsd exits after.
	stopAt := time.Now()
	if err := env.Gvsd.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took = waitRoute(false, bgpDrain)
	withdrawnAlive := !env.Gvsd.Exited()
	t.Logf("withdrawn %v after SIGTERM; gvsd still running then: %v", took.Round(time.Millisecond), withdrawnAlive)
	if !withdrawnAlive {
		t.Errorf("gvsd had exited before BIRD saw the withdraw")
	}
	if err := env.Gvsd.WaitLog(ctx, "final counters", bgpDrain+10*time.Second); err != nil {
		t.Fatalf("gvsd did not stop: %v", err)
	}
	if d := time.Since(stopAt); d < bgpDrain {
		t.Errorf("gvsd stopped %v after SIGTERM, before the %v drain ended", d, bgpDrain)
	}
	if !strings.Contains(env.Gvsd.Log(), "VIPs withdrawn; forwarding until the drain ends") {
		t.Errorf("gvsd did not log the drain")
	}
	if kernelRoute(ctx, l.Router, vip, director) {
		t.Errorf("the router's kernel still routes %s via %s after gvsd stopped", vip, director)
	}
	if kernelRoute(ctx, l.Router, vip6, director6) {
		t.Errorf("the router's kernel still routes %s via %s after gvsd stopped", vip6, director6)
	}
}

// TestBGPIPv6NextHopLater: a director whose interface has no global IPv6
// address when gvsd starts cannot announce its IPv6 VIP (no next hop: it
// says so in its log and in gvsadm doctor); once the address is there,
// gvsd notices it within a resolver round and announces the /128 via it,
// without a reload.
func TestBGPIPv6NextHopLater(t *testing.T) {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("needs BIRD 2 (apt-get install bird2)")
	}
	if _, err := exec.LookPath("birdc"); err != nil {
		t.Skip("needs birdc (apt-get install bird2)")
	}
	l := needLabWith(t, lab.Options{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	director6 := l.Director.Addr6
	vip6 := netip.PrefixFrom(lab.VIP6, 128)
	rt := startBIRD(ctx, t, l.Router, birdConfig(l.Gateway, []netip.Addr{l.Director.Addr}))
	addr6 := director6.String() + "/64"
	// The LAN stays on-link (the reals are resolved from the link-local
	// address), but the director has no global IPv6 address on it.
	lan6 := netip.PrefixFrom(director6, 64).Masked().String()
	for _, c := range [][]string{
		{"ip", "-6", "addr", "del", addr6, "dev", l.Director.Iface},
		{"ip", "-6", "route", "replace", lan6, "dev", l.Director.Iface},
	} {
		if b, err := l.Director.Command(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, b)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 1\n\n[[service]]\naddress = %q\nscheduler = \"mh\"\nforward = \"dr\"\n",
		l.Director.Iface, netip.AddrPortFrom(lab.VIP6, scenario.TCPPort))
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, scenario.TCPPort))
	}
	fmt.Fprintf(&b, "\n[bgp]\nlocal_as = %d\ndrain = \"0s\"\n  [[bgp.peer]]\n  address = \"%s\"\n  as = %d\n", directorAS, l.Gateway, routerAS)
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, MoreVIPs: []netip.Addr{lab.VIP6}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, b.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	if err := env.Gvsd.WaitLog(ctx, "no IPv6 next hop", 5*time.Second); err != nil {
		t.Errorf("gvsd did not say it has no IPv6 next hop: %v", err)
	}
	if err := waitCond(ctx, 15*time.Second, func() bool {
		st := gvsStatus(ctx, t, env.SocketPath).BGP
		return st != nil && len(st.Peers) == 1 && st.Peers[0].Established
	}); err != nil {
		t.Fatalf("the BGP session never came up: %v", err)
	}
	if out, has := rt.route(ctx, t, vip6, director6); has {
		t.Fatalf("announced without a next hop:\n%s", out)
	}
	doc, _ := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "doctor").CombinedOutput()
	if !strings.Contains(string(doc), "bgp ipv6") || !strings.Contains(string(doc), "no IPv6 next hop") {
		t.Errorf("gvsadm doctor does not say the IPv6 VIP has no next hop:\n%s", doc)
	}

	if b, err := l.Director.Command(ctx, "ip", "-6", "addr", "add", addr6, "dev", l.Director.Iface, "nodad").CombinedOutput(); err != nil {
		t.Fatalf("ip -6 addr add %s: %v %s", addr6, err, b)
	}
	start := time.Now()
	var out string
	if err := waitCond(ctx, 20*time.Second, func() bool {
		var has bool
		out, has = rt.route(ctx, t, vip6, director6)
		return has
	}); err != nil {
		t.Fatalf("no route to %s via %s after the address came: %v\n%s", vip6, director6, err, out)
	}
	t.Logf("announced %v after the director's IPv6 address came:\n%s", time.Since(start).Round(time.Millisecond), out)
	if st := gvsStatus(ctx, t, env.SocketPath).BGP; st.NextHop6 != director6.String() {
		t.Errorf("gvsadm's next_hop6 %q, want %s", st.NextHop6, director6)
	}
}

// TestBGPIPv6Peer: gvsd peers with BIRD over an IPv6 session (bgp.peer
// address = the router's IPv6 address) and announces over it both its
// IPv4 VIP (/32 via the director's IPv4 address) and its IPv6 VIP (/128
// via its IPv6 address): the router learns both, and the client reaches
// both services through them. gvsadm -L --json and doctor name the IPv6
// peer.
func TestBGPIPv6Peer(t *testing.T) {
	if _, err := exec.LookPath("bird"); err != nil {
		t.Skip("needs BIRD 2 (apt-get install bird2)")
	}
	if _, err := exec.LookPath("birdc"); err != nil {
		t.Skip("needs birdc (apt-get install bird2)")
	}
	l := needLabWith(t, lab.Options{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	director, director6 := l.Director.Addr, l.Director.Addr6
	vip, vip6 := netip.PrefixFrom(scenario.VIP, 32), netip.PrefixFrom(lab.VIP6, 128)
	rt := startBIRD(ctx, t, l.Router, birdConfig(l.Gateway, []netip.Addr{director6}))

	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 1\n", l.Director.Iface)
	for _, v := range []netip.Addr{scenario.VIP, lab.VIP6} {
		fmt.Fprintf(&b, "\n[[service]]\naddress = %q\nscheduler = \"mh\"\nforward = \"dr\"\n", netip.AddrPortFrom(v, scenario.TCPPort))
		for _, r := range l.Reals {
			a := r.Addr
			if v.Is6() {
				a = r.Addr6
			}
			fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(a, scenario.TCPPort))
		}
	}
	fmt.Fprintf(&b, "\n[bgp]\nlocal_as = %d\ndrain = \"0s\"\n  [[bgp.peer]]\n  address = \"%s\"\n  as = %d\n", directorAS, l.Gateway6, routerAS)
	env, closeEnv := startBGPDR(ctx, t, l, b.String(), rt)
	defer closeEnv()

	var out, out6 string
	if err := waitCond(ctx, 20*time.Second, func() bool {
		var has, has6 bool
		out, has = rt.route(ctx, t, vip, director)
		out6, has6 = rt.route(ctx, t, vip6, director6)
		return has && has6
	}); err != nil {
		t.Fatalf("BIRD's routes to %s via %s and %s via %s over the IPv6 session: %v\n%s\n%s", vip, director, vip6, director6, err, out, out6)
	}
	t.Logf("over the IPv6 session:\n%s%s", out, out6)
	for _, c := range []struct {
		p  netip.Prefix
		nh netip.Addr
	}{{vip, director}, {vip6, director6}} {
		if err := waitCond(ctx, 5*time.Second, func() bool { return kernelRoute(ctx, l.Router, c.p, c.nh) }); err != nil {
			t.Errorf("the router's kernel has no route to %s via %s", c.p, c.nh)
		}
	}
	st := gvsStatus(ctx, t, env.SocketPath).BGP
	if st == nil || len(st.Peers) != 1 || st.Peers[0].Address != l.Gateway6.String() || !st.Peers[0].Established || len(st.Announced) != 2 {
		t.Errorf("gvsadm -L --json bgp = %+v", st)
	}
	doc, _ := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "doctor").CombinedOutput()
	if !strings.Contains(string(doc), "bgp peer "+l.Gateway6.String()) || !strings.Contains(string(doc), "established with AS 65000") {
		t.Errorf("gvsadm doctor shows no established IPv6 bgp peer:\n%s", doc)
	}
	echoBothVIPs(ctx, t, l, "through a route learnt over IPv6")
}

// startBGPDR sets the lab up for DR with gvsd on cfg, VIPs VIP and VIP6,
// and echoes on both (the scenario's own are on the IPv4 VIP). The
// function it returns closes it all, logging gvsd's and BIRD's logs when
// the test failed.
func startBGPDR(ctx context.Context, t *testing.T, l *lab.Lab, cfg string, rt *bird) (*scenario.Env, func()) {
	t.Helper()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, MoreVIPs: []netip.Addr{lab.VIP6}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var echoes []*lab.Echo
	closeAll := func() {
		for _, e := range echoes {
			e.Close()
		}
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
			t.Logf("bird log:\n%s", rt.proc.Log())
		}
	}
	for _, r := range l.Reals {
		e, err := r.StartEcho("tcp", netip.AddrPortFrom(lab.VIP6, scenario.TCPPort))
		if err != nil {
			closeAll()
			t.Fatal(err)
		}
		echoes = append(echoes, e)
	}
	return env, closeAll
}

// echoBothVIPs sends msg from the client to VIP and VIP6 (port
// scenario.TCPPort) and expects it back from each.
func echoBothVIPs(ctx context.Context, t *testing.T, l *lab.Lab, msg string) {
	t.Helper()
	for _, v := range []netip.Addr{scenario.VIP, lab.VIP6} {
		conn, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(v, scenario.TCPPort))
		if err != nil {
			t.Fatalf("client to the VIP %s: %v", v, err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			conn.Close()
			t.Fatal(err)
		}
		back := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, back); err != nil || string(back) != msg {
			t.Errorf("echo through the VIP %s: %q, %v", v, back, err)
		}
		conn.Close()
	}
}
