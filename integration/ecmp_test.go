package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestECMP's setup.
const (
	ecmpDirectors = 3
	// ecmpClients client addresses and the kernel's ephemeral ports give
	// the router's L4 hash many flows to spread.
	ecmpClients = 32
	ecmpHold    = 3 * time.Second // [bgp] hold_time
	ecmpDrain   = 2 * time.Second // [bgp] drain
	ecmpRefresh = 2 * time.Second // [sync] refresh
	// ecmpBurst requests measure each director's share: with a third
	// expected each, a share below a tenth is a broken spread, not chance.
	ecmpBurst    = 300
	ecmpMinShare = 0.10
	// ecmpInFlight: a request started before a director was killed or
	// hung (or up to this long after, while the signal lands) may have
	// been scheduled by it and not synced yet (sync reports leave about a
	// millisecond after the SYN).
	ecmpInFlight = 50 * time.Millisecond
)

// ecmpDirector is one gvsd of TestECMP and its files.
type ecmpDirector struct {
	host   *lab.Host
	dir    string
	config string
	socket string
	proc   *scenario.Proc
	runs   int // gvsd started so often; each run logs to its own file
}

// ecmpConfig is every director's configuration: a DR service with mh (so
// every director picks the same real for a flow), [bgp] with a 3 s hold
// time and a 2 s drain, and [sync] among all of them (multicast), so a
// flow the router moves to another director finds its connection there.
func ecmpConfig(l *lab.Lab) string { return ecmpConfigOf(l, config.DR, "", "", "") }

// ecmpConfigOf is ecmpConfig in forwarding method mode (NAT and FULLNAT map
// VIP:80 to RIP:8080), with director, bgp and tail added to its
// [director] and [bgp] sections and at its end.
func ecmpConfigOf(l *lab.Lab, mode config.Forward, director, bgp, tail string) string {
	rport := scenario.TCPPort
	if mode == config.NAT || mode == config.FullNAT {
		rport += 8000
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 1\n%s\n[[service]]\naddress = \"%s:%d\"\nscheduler = \"mh\"\nforward = %q\n",
		l.Director.Iface, director, scenario.VIP, scenario.TCPPort, mode)
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n", r.Addr, rport)
	}
	fmt.Fprintf(&b, "\n[bgp]\nlocal_as = %d\nhold_time = %q\ndrain = %q\n%s  [[bgp.peer]]\n  address = \"%s\"\n  as = %d\n", directorAS, ecmpHold, ecmpDrain, bgp, l.Gateway, routerAS)
	fmt.Fprintf(&b, "\n[sync]\nrefresh = %q\n%s", ecmpRefresh, tail)
	return b.String()
}

// TestECMP runs three gvsd directors behind BIRD 2 on the lab's router:
// each announces the VIP over BGP and the router's kernel route to it is
// multipath, a next hop per director, hashed by L4 (DR, mh, connection
// sync among the three). It checks that
//   - every director forwards a share of many clients' requests;
//   - a director stopped cleanly (SIGTERM) under load fails no request
//     and resets no established connection: it withdraws first and drains;
//   - a director killed (SIGKILL) or hung (SIGSTOP) under load leaves the
//     route within the hold time, and the streams it carried go on through
//     the others on the same real, every byte intact; no request started
//     after it left fails;
//   - each director that comes back gets its share again and no request
//     or stream fails meanwhile.
func TestECMP(t *testing.T) {
	l := needECMPLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel) // after startECMP's cleanup: gvsd stops cleanly first
	cfg := ecmpConfig(l)
	ds, all := startECMP(ctx, t, l, config.DR, func(int) string { return cfg })

	// Spread: every director forwards a share.
	shares := burst(ctx, t, l, ds, ecmpBurst)
	for i, n := range shares {
		if float64(n) < ecmpMinShare*ecmpBurst {
			t.Errorf("%s took %d of %d requests, want at least %.0f%%", ds[i].host.Name, n, ecmpBurst, 100*ecmpMinShare)
		}
	}
	if t.Failed() {
		return
	}

	// Clean stop of director3 under load: it withdraws first, the router
	// moves its flows while it drains, nothing fails.
	victim := ds[2]
	streams := openStreams(ctx, t, l, ds, victim)
	load := startECMPLoad(ctx, l, 2000)
	defer load.stop()
	t0 := time.Now()
	if err := victim.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	gone := waitNextHops(ctx, t, l.Router, without(all, victim.host.Addr), ecmpDrain)
	if err := victim.proc.WaitLog(ctx, "final counters", ecmpDrain+10*time.Second); err != nil {
		stopStreams(t, streams)
		t.Fatalf("%s did not stop: %v", victim.host.Name, err)
	}
	exited := time.Since(t0)
	waitStreams(ctx, t, streams, time.Now(), 20)
	load.stop()
	t.Logf("SIGTERM %s: the router dropped its next hop after %v, gvsd exited after %v; %d requests, %d failed; streams: %s",
		victim.host.Name, gone.Round(time.Millisecond), exited.Round(time.Millisecond), load.done(), len(load.errors(time.Time{})), streamReport(streams, t0))
	if errs := load.errors(time.Time{}); len(errs) > 0 {
		t.Errorf("%d requests failed around the clean stop: %v", len(errs), errs)
	}
	if exited < ecmpDrain {
		t.Errorf("%s exited %v after SIGTERM, before its %v drain ended", victim.host.Name, exited, ecmpDrain)
	}
	if t.Failed() {
		stopStreams(t, streams)
		return
	}
	rejoin(ctx, t, l, ds, victim, streams)
	stopStreams(t, streams)
	if t.Failed() {
		return
	}

	// SIGKILL of director2 under load: the kernel closes its BGP session,
	// the router drops it at once, its streams go on through the others.
	lose(ctx, t, l, ds, ds[1], syscall.SIGKILL)
	if t.Failed() {
		return
	}
	// director3 hangs (SIGSTOP): no keepalives, nothing forwarded; the
	// router drops it when the hold time runs out.
	lose(ctx, t, l, ds, ds[2], syscall.SIGSTOP)
}

// needECMPLab skips without BIRD, else returns a lab with ecmpDirectors
// directors and ecmpClients client addresses.
func needECMPLab(t *testing.T) *lab.Lab {
	t.Helper()
	for _, tool := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install bird2)", tool)
		}
	}
	return needLabWith(t, lab.Options{Directors: ecmpDirectors, ClientAddrs: ecmpClients})
}

// startECMP runs BIRD on the router and gvsd with cfgFor(i) on director i
// (the lab's reals prepared for mode), waits until the router's route to
// the VIP has a next hop per director, and returns the directors and
// their addresses. Everything stops when the test ends; a failed test
// logs every gvsd's and BIRD's log.
func startECMP(ctx context.Context, t *testing.T, l *lab.Lab, mode config.Forward, cfgFor func(i int) string) ([]*ecmpDirector, []netip.Addr) {
	t.Helper()
	var addrs []netip.Addr
	for _, d := range l.Directors {
		addrs = append(addrs, d.Addr)
	}
	rt := startBIRD(ctx, t, l.Router, birdConfig(l.Gateway, addrs))

	dir := t.TempDir()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: dir, Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, mode, o, cfgFor(0))
	if err != nil {
		t.Fatal(err)
	}
	ds := []*ecmpDirector{{host: l.Director, dir: dir, config: env.ConfigPath, socket: env.SocketPath, proc: env.Gvsd, runs: 1}}
	for i, h := range l.Directors[1:] {
		d := &ecmpDirector{host: h, dir: dir, config: filepath.Join(dir, h.Name+".toml"), socket: filepath.Join(dir, h.Name+".sock")}
		if err := os.WriteFile(d.config, []byte(cfgFor(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	t.Cleanup(func() {
		for _, d := range ds[1:] {
			if d.proc != nil {
				d.proc.Stop()
			}
		}
		env.Close()
		if t.Failed() {
			for _, d := range ds {
				if d.proc != nil {
					t.Logf("%s gvsd log (run %d):\n%s", d.host.Name, d.runs, d.proc.Log())
				}
			}
			t.Logf("bird log:\n%s", rt.proc.Log())
		}
	})
	for _, d := range ds[1:] {
		d.start(ctx, t)
	}
	took := waitNextHops(ctx, t, l.Router, addrs, 30*time.Second)
	out, _ := l.Router.Command(ctx, "ip", "route", "show", scenario.VIP.String()).CombinedOutput()
	t.Logf("the router's route has a next hop per director %v after the last gvsd started:\n%s", took.Round(time.Millisecond), out)
	return ds, addrs
}

// lose takes victim away under load and brings it back: SIGKILL (a
// crashed gvsd: the kernel closes its BGP session) or SIGSTOP (a hung
// director, then killed: only the hold timer notices). The router must
// drop it within the hold time, the streams it carried must go on
// through the others (the same real: a TCP connection that reached
// another real would be reset), every byte intact, and no request
// started after the signal (but those in flight) may fail.
func lose(ctx context.Context, t *testing.T, l *lab.Lab, ds []*ecmpDirector, victim *ecmpDirector, sig syscall.Signal) {
	t.Helper()
	var rest []netip.Addr
	for _, d := range ds {
		if d != victim {
			rest = append(rest, d.host.Addr)
		}
	}
	streams := openStreams(ctx, t, l, ds, victim)
	for _, s := range streams {
		if s.owner != victim {
			continue
		}
		// Every other director knows the victim's streams (sync).
		for _, d := range ds {
			if d != victim {
				if err := waitCond(ctx, 5*time.Second, func() bool { return hasConn(ctx, t, d.socket, s.port, "") }); err != nil {
					stopStreams(t, streams)
					t.Fatalf("%s never installed %s's stream from port %d", d.host.Name, victim.host.Name, s.port)
				}
			}
		}
	}
	load := startECMPLoad(ctx, l, 2000)
	defer load.stop()
	t0 := time.Now()
	if err := victim.proc.Signal(sig); err != nil {
		t.Fatal(err)
	}
	// The hold time, and the 1 s BIRD may take to notice and export.
	gone := waitNextHops(ctx, t, l.Router, rest, ecmpHold+time.Second)
	if sig == syscall.SIGSTOP {
		victim.proc.Signal(syscall.SIGKILL)
	}
	victim.proc.Stop()
	waitStreams(ctx, t, streams, t0.Add(gone), 20)
	load.stop()
	name := map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGSTOP: "SIGSTOP"}[sig]
	t.Logf("%s %s: the router dropped its next hop after %v (hold time %v); %d requests, %d failed (in flight at the %s); streams: %s",
		name, victim.host.Name, gone.Round(time.Millisecond), ecmpHold, load.done(), len(load.errors(time.Time{})), name, streamReport(streams, t0))
	// A request whose SYN the victim forwarded just before it went, but
	// whose connection it had not synced yet (reports leave about a
	// millisecond after), is unknown to the others and may fail; a request
	// started later is not: its SYN reaches the victim's dead dataplane (and
	// is retried) or another director.
	if errs := load.errors(t0.Add(ecmpInFlight)); len(errs) > 0 {
		t.Errorf("%d requests started more than %v after the %s of %s failed: %v", len(errs), ecmpInFlight, name, victim.host.Name, errs)
	}
	if t.Failed() {
		stopStreams(t, streams)
		return
	}
	rejoin(ctx, t, l, ds, victim, streams)
	stopStreams(t, streams)
}

// start runs gvsd on d's host and waits until it has started.
func (d *ecmpDirector) start(ctx context.Context, t *testing.T) {
	t.Helper()
	d.runs++
	p, err := scenario.Start(ctx, d.host, filepath.Join(d.dir, fmt.Sprintf("%s-%d.log", d.host.Name, d.runs)),
		[]string{bins.gvsd, "-config", d.config, "-socket", d.socket, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	d.proc = p
	if err := p.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("gvsd on %s: %v\n%s", d.host.Name, err, p.Log())
	}
}

// conns is how many connections d has scheduled (synced ones not counted).
func (d *ecmpDirector) conns(ctx context.Context, t *testing.T) uint64 {
	t.Helper()
	var n uint64
	for _, s := range gvsStatus(ctx, t, d.socket).Services {
		n += s.Stats.Conns
	}
	return n
}

// rejoin starts victim's gvsd again under load: the router takes it back
// once it announces, no request and no stream fails, and a burst gives it
// its share again.
func rejoin(ctx context.Context, t *testing.T, l *lab.Lab, ds []*ecmpDirector, victim *ecmpDirector, streams []*ecmpStream) {
	t.Helper()
	var all []netip.Addr
	for _, d := range ds {
		all = append(all, d.host.Addr)
	}
	load := startECMPLoad(ctx, l, 2000)
	defer load.stop()
	t0 := time.Now()
	victim.start(ctx, t)
	// With [sync] it announces once a refresh of the others has taught it
	// their connections.
	waitNextHops(ctx, t, l.Router, all, ecmpRefresh+15*time.Second)
	t1 := time.Now()
	waitStreams(ctx, t, streams, t1, 20)
	load.stop()
	t.Logf("%s back: in the router's route %v after it was started; %d requests, %d failed; streams: %s",
		victim.host.Name, t1.Sub(t0).Round(time.Millisecond), load.done(), len(load.errors(time.Time{})), streamReport(streams, t1))
	if errs := load.errors(time.Time{}); len(errs) > 0 {
		t.Errorf("%d requests failed while %s came back: %v", len(errs), victim.host.Name, errs)
	}
	if wait := ecmpRefresh + time.Second; t1.Sub(t0) < wait {
		t.Errorf("%s was in the route %v after it started, before its learning wait (refresh + 1s = %v) ended", victim.host.Name, t1.Sub(t0), wait)
	}
	shares := burst(ctx, t, l, ds, ecmpBurst)
	for i, d := range ds {
		if d == victim && float64(shares[i]) < ecmpMinShare*ecmpBurst {
			t.Errorf("%s took %d of %d requests after it came back, want at least %.0f%%", d.host.Name, shares[i], ecmpBurst, 100*ecmpMinShare)
		}
	}
}

// burst sends n requests, 8 at a time, from the client's addresses in
// turn; every one must succeed. It returns each director's share.
func burst(ctx context.Context, t *testing.T, l *lab.Lab, ds []*ecmpDirector, n int) []uint64 {
	t.Helper()
	before := make([]uint64, len(ds))
	for i, d := range ds {
		before[i] = d.conns(ctx, t)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 8)
	start := time.Now()
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() { // integration: one request of the burst, bounded by its deadline
			defer wg.Done()
			defer func() { <-sem }()
			if err := requestFrom(ctx, l.Client, l.ClientAddrs[i%len(l.ClientAddrs)]); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d of %d requests failed: %v", len(errs), n, errs)
	}
	out := make([]uint64, len(ds))
	var total uint64
	var b strings.Builder
	for i, d := range ds {
		out[i] = d.conns(ctx, t) - before[i]
		total += out[i]
	}
	for i, d := range ds {
		fmt.Fprintf(&b, " %s %d (%.0f%%)", d.host.Name, out[i], 100*float64(out[i])/float64(max(total, 1)))
	}
	t.Logf("%d requests from %d client addresses in %v:%s", n, len(l.ClientAddrs), time.Since(start).Round(time.Millisecond), b.String())
	if total != uint64(n) {
		t.Errorf("the directors scheduled %d connections for %d requests", total, n)
	}
	return out
}

// startECMPLoad opens a new TCP connection to the VIP every 10 ms, from
// the client's addresses in turn, until stopped or limit requests.
func startECMPLoad(ctx context.Context, l *lab.Lab, limit int) *requests {
	return startRequestsEvery(ctx, 10*time.Millisecond, limit, func(i int) error {
		return requestFrom(ctx, l.Client, l.ClientAddrs[i%len(l.ClientAddrs)])
	})
}

// ecmpStream is a stream (see startStream) and the director that
// scheduled it.
type ecmpStream struct {
	*stream
	port  uint16
	owner *ecmpDirector
}

// openStreams opens streams from the client's addresses in turn, one at a
// time so that the director whose connection count rises is the one that
// scheduled it, until at least two run through victim and one through
// every other director (at most 30).
func openStreams(ctx context.Context, t *testing.T, l *lab.Lab, ds []*ecmpDirector, victim *ecmpDirector) []*ecmpStream {
	t.Helper()
	var out []*ecmpStream
	per := map[*ecmpDirector]int{}
	enough := func() bool {
		for _, d := range ds {
			if per[d] < 1 || (d == victim && per[d] < 2) {
				return false
			}
		}
		return true
	}
	for i := 0; i < 30 && !enough(); i++ {
		before := make([]uint64, len(ds))
		for j, d := range ds {
			before[j] = d.conns(ctx, t)
		}
		c, err := l.Client.DialTCPFrom(ctx, l.ClientAddrs[(7*i+3)%len(l.ClientAddrs)], netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
		if err != nil {
			t.Fatal(err)
		}
		s := &ecmpStream{stream: startStream(c), port: uint16(c.LocalAddr().(*net.TCPAddr).Port)}
		out = append(out, s)
		err = waitCond(ctx, 2*time.Second, func() bool {
			for j, d := range ds {
				if d.conns(ctx, t) > before[j] {
					s.owner = d
					return true
				}
			}
			return false
		})
		if err != nil {
			stopStreams(t, out)
			t.Fatalf("no director counted the stream from %s", c.LocalAddr())
		}
		per[s.owner]++
	}
	if !enough() {
		stopStreams(t, out)
		t.Fatalf("after %d streams, per director %v: the router does not spread them", len(out), per)
	}
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, " %s %d", d.host.Name, per[d])
	}
	t.Logf("%d streams open:%s", len(out), b.String())
	return out
}

// waitStreams waits until every stream has n echoes after since, and
// fails the test if one broke.
func waitStreams(ctx context.Context, t *testing.T, streams []*ecmpStream, since time.Time, n int) {
	t.Helper()
	for _, s := range streams {
		err := waitCond(ctx, 30*time.Second, func() bool { return s.echoes(since) >= n || s.failure() != nil })
		if err == nil {
			err = s.failure()
		}
		if err != nil {
			t.Errorf("the stream from port %d (scheduled by %s) after %s: %d echoes, %v", s.port, s.owner.host.Name, since.Format("15:04:05.000"), s.echoes(since), err)
		}
	}
}

// streamReport says how long each stream stalled after t0 (the longest
// time between two echoes from the last one before t0 on), by the
// director that scheduled it.
func streamReport(streams []*ecmpStream, t0 time.Time) string {
	var b strings.Builder
	for _, s := range streams {
		fmt.Fprintf(&b, " %s:%v", s.owner.host.Name, s.longestGap(t0).Round(time.Millisecond))
	}
	return strings.TrimSpace(b.String()) + " (director that scheduled it: longest time between echoes since the event)"
}

// longestGap is the longest time between two consecutive echoes, from
// the last echo before t0 on.
func (s *ecmpStream) longestGap(t0 time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var longest time.Duration
	for i := 1; i < len(s.at); i++ {
		if s.at[i].After(t0) {
			longest = max(longest, s.at[i].Sub(s.at[i-1]))
		}
	}
	return longest
}

func stopStreams(t *testing.T, streams []*ecmpStream) {
	t.Helper()
	for _, s := range streams {
		s.stop()
		if err := s.failure(); err != nil {
			t.Errorf("the stream from port %d broke: %v", s.port, err)
		}
	}
}

// nextHops returns the next hops of the router's kernel route to the VIP,
// sorted: one for a plain route, one per "nexthop" of a multipath route.
func nextHops(ctx context.Context, h *lab.Host) []netip.Addr {
	out, err := h.Command(ctx, "ip", "-4", "route", "show", "exact", netip.PrefixFrom(scenario.VIP, 32).String()).Output()
	if err != nil {
		return nil
	}
	f := strings.Fields(string(out))
	var hops []netip.Addr
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			if a, err := netip.ParseAddr(f[i+1]); err == nil {
				hops = append(hops, a)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops
}

// waitNextHops waits until the router's route to the VIP has exactly the
// next hops want, and returns how long that took.
func waitNextHops(ctx context.Context, t *testing.T, router *lab.Host, want []netip.Addr, limit time.Duration) time.Duration {
	t.Helper()
	want = slices.Clone(want)
	slices.SortFunc(want, netip.Addr.Compare)
	start := time.Now()
	var got []netip.Addr
	if err := waitCond(ctx, limit, func() bool { got = nextHops(ctx, router); return slices.Equal(got, want) }); err != nil {
		out, _ := router.Command(ctx, "ip", "route").CombinedOutput()
		t.Fatalf("the router's route to %s has next hops %v after %v, want %v:\n%s", scenario.VIP, got, limit, want, out)
	}
	return time.Since(start)
}

func without(addrs []netip.Addr, a netip.Addr) []netip.Addr {
	return slices.DeleteFunc(slices.Clone(addrs), func(x netip.Addr) bool { return x == a })
}

// ecmpNATGateway is the reals' route back in TestECMPNAT: a [vrrp] address
// that one director at a time holds.
var ecmpNATGateway = netip.MustParseAddr("10.20.0.254")

// ecmpNATConfig is TestECMP's configuration in NAT (VIP:80 to RIP:8080),
// with a [vrrp] instance beside [bgp] that moves only the reals' gateway
// address (VRRPv3 every 100 ms, so that it moves within half a second).
func ecmpNATConfig(l *lab.Lab) string {
	return ecmpConfigOf(l, config.NAT, "", "",
		fmt.Sprintf("\n[vrrp]\nrouter_id = 60\nversion = 3\nadvert_interval = \"100ms\"\naddresses = [\"%s\"]\n", ecmpNATGateway))
}

// TestECMPNAT runs NAT on three directors behind ECMP: every director
// schedules connections and rewrites their client side, and the reals
// answer through a gateway address that [vrrp] gives to one of them. That
// director translates the replies of every director's connections: those
// it has from sync, and (the SYN-ACK always beats sync) the others by
// their real's service (dataplane.Table.NATReplies). It checks that every
// director forwards a share of many clients' requests and all succeed
// while only the gateway sees replies; that a director killed (SIGKILL)
// under load, then the gateway itself, leaves no request started after
// it failed and every stream going on byte for byte (a moved stream's
// client side finds its connection on another director through sync; the
// gateway address moves with VRRP); and that each comes back.
func TestECMPNAT(t *testing.T) {
	l := needECMPLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel) // after startECMP's cleanup: gvsd stops cleanly first
	cfg := ecmpNATConfig(l)
	ds, _ := startECMP(ctx, t, l, config.NAT, func(int) string { return cfg })
	if err := l.SetRealGateway(ecmpNATGateway); err != nil {
		t.Fatal(err)
	}
	gw := gatewayHolder(ctx, t, ds)
	t.Logf("%s holds the reals' gateway %s", gw.host.Name, ecmpNATGateway)

	// A real retransmits its SYN-ACK when the gateway drops the first
	// one: what happened to two thirds of the connections (the other
	// directors') before replies were translated without a connection.
	synRetrans := func() uint64 {
		var n uint64
		for _, r := range l.Reals {
			n += tcpCounters(ctx, t, r)["TcpExtTCPSynRetrans"]
		}
		return n
	}
	retrans := synRetrans()
	shares := burst(ctx, t, l, ds, ecmpBurst)
	for i, n := range shares {
		if float64(n) < ecmpMinShare*ecmpBurst {
			t.Errorf("%s took %d of %d requests, want at least %.0f%%", ds[i].host.Name, n, ecmpBurst, 100*ecmpMinShare)
		}
	}
	if n := synRetrans() - retrans; n > ecmpBurst/10 {
		t.Errorf("the reals retransmitted %d SYN-ACKs for %d requests: the gateway dropped the first replies of the other directors' connections", n, ecmpBurst)
	} else {
		t.Logf("the reals retransmitted %d SYN-ACKs for %d requests", n, ecmpBurst)
	}
	for _, d := range ds {
		var out uint64
		for _, s := range gvsStatus(ctx, t, d.socket).Services {
			out += s.Stats.OutPkts
		}
		switch {
		case d == gw && out == 0:
			t.Errorf("the gateway %s translated no reply", d.host.Name)
		case d != gw && out != 0:
			t.Errorf("%s, not the gateway, translated %d replies", d.host.Name, out)
		}
	}
	if t.Failed() {
		return
	}

	var other *ecmpDirector
	for _, d := range ds {
		if d != gw {
			other = d
			break
		}
	}
	lose(ctx, t, l, ds, other, syscall.SIGKILL)
	if t.Failed() {
		return
	}
	gw = gatewayHolder(ctx, t, ds)
	t.Logf("killing the gateway %s", gw.host.Name)
	lose(ctx, t, l, ds, gw, syscall.SIGKILL)
	if t.Failed() {
		return
	}
	t.Logf("%s holds the reals' gateway now", gatewayHolder(ctx, t, ds).host.Name)
}

// gatewayHolder waits until exactly one running director holds
// ecmpNATGateway as VRRP master, and returns it. (A killed gvsd leaves
// the address on its interface until it starts again; it is not counted.)
func gatewayHolder(ctx context.Context, t *testing.T, ds []*ecmpDirector) *ecmpDirector {
	t.Helper()
	var holder *ecmpDirector
	err := waitCond(ctx, 10*time.Second, func() bool {
		holder = nil
		n := 0
		for _, d := range ds {
			if d.proc == nil || d.proc.Exited() {
				continue
			}
			out, err := d.host.Command(ctx, "ip", "-o", "-4", "addr", "show", "dev", d.host.Iface).Output()
			if err != nil || !strings.Contains(string(out), " "+ecmpNATGateway.String()+"/") {
				continue
			}
			if st := gvsStatus(ctx, t, d.socket); st.VRRP != nil && st.VRRP.State == "MASTER" {
				holder = d
				n++
			}
		}
		return n == 1
	})
	if err != nil {
		t.Fatalf("no single running director holds %s as VRRP master: %v", ecmpNATGateway, err)
	}
	return holder
}

// ecmpLocal is director i's FULLNAT local address in TestECMPFullNAT: off
// the LAN, so that the reals reach it through the router, which has it
// from BGP.
func ecmpLocal(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 30, 0, byte(2 + i)}) }

// ecmpFullNATConfig is director i's configuration in TestECMPFullNAT:
// TestECMP's in FULLNAT (VIP:80 to RIP:8080), with its own local address
// and the others' in bgp.peer_local_addresses.
func ecmpFullNATConfig(l *lab.Lab, i int) string {
	var peers []string
	for j := range ecmpDirectors {
		if j != i {
			peers = append(peers, fmt.Sprintf("%q", ecmpLocal(j)))
		}
	}
	return ecmpConfigOf(l, config.FullNAT, fmt.Sprintf("local_addresses = [\"%s\"]\n", ecmpLocal(i)),
		fmt.Sprintf("peer_local_addresses = [%s]\n", strings.Join(peers, ", ")), "")
}

// TestECMPFullNAT runs FULLNAT on three directors behind ECMP. Each has
// its own local address off the LAN and announces it over BGP; each also
// announces the others' with a worse MED (bgp.peer_local_addresses), so
// that when a director goes the router sends the replies to its address to
// the others, which have its connections from sync. The router must not
// send ICMP redirects (the reals and the directors share its LAN, and a
// real would cache a redirect to a director that dies). It checks that
// each local address is routed to its own director, that every director
// forwards a share of many clients' requests and all succeed, and that a
// director stopped cleanly (SIGTERM) and one killed (SIGKILL) under load
// leave every stream they carried going on byte for byte, on the same real
// and from the same local address, and each comes back.
func TestECMPFullNAT(t *testing.T) {
	l := needECMPLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel) // after startECMP's cleanup: gvsd stops cleanly first
	for _, k := range []string{"net.ipv4.conf.all.send_redirects", "net.ipv4.conf.eth1.send_redirects"} {
		if out, err := l.Router.Command(ctx, "sysctl", "-qw", k+"=0").CombinedOutput(); err != nil {
			t.Fatalf("sysctl %s=0 on the router: %v: %s", k, err, out)
		}
	}
	ds, all := startECMP(ctx, t, l, config.FullNAT, func(i int) string { return ecmpFullNATConfig(l, i) })
	for i, d := range ds {
		want := []netip.Addr{d.host.Addr}
		if err := waitCond(ctx, 10*time.Second, func() bool { return slices.Equal(routeVia(ctx, l.Router, ecmpLocal(i)), want) }); err != nil {
			t.Fatalf("the router's route to %s (%s's local address) goes via %v, want %v", ecmpLocal(i), d.host.Name, routeVia(ctx, l.Router, ecmpLocal(i)), want)
		}
	}

	shares := burst(ctx, t, l, ds, ecmpBurst)
	for i, n := range shares {
		if float64(n) < ecmpMinShare*ecmpBurst {
			t.Errorf("%s took %d of %d requests, want at least %.0f%%", ds[i].host.Name, n, ecmpBurst, 100*ecmpMinShare)
		}
	}
	if t.Failed() {
		return
	}

	// A clean stop: the director withdraws its VIP and its local address
	// at once, so the router sends its flows and their replies to the
	// others while it drains; its streams outlive it.
	victim := ds[2]
	streams := openStreams(ctx, t, l, ds, victim)
	for _, s := range streams {
		for _, d := range ds {
			if d != s.owner {
				if err := waitCond(ctx, 5*time.Second, func() bool { return hasConn(ctx, t, d.socket, s.port, "") }); err != nil {
					stopStreams(t, streams)
					t.Fatalf("%s never installed %s's stream from port %d", d.host.Name, s.owner.host.Name, s.port)
				}
			}
		}
	}
	t0 := time.Now()
	if err := victim.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	gone := waitNextHops(ctx, t, l.Router, without(all, victim.host.Addr), ecmpDrain)
	if err := victim.proc.WaitLog(ctx, "final counters", ecmpDrain+10*time.Second); err != nil {
		stopStreams(t, streams)
		t.Fatalf("%s did not stop: %v", victim.host.Name, err)
	}
	exited := time.Now()
	waitStreams(ctx, t, streams, exited, 20)
	t.Logf("SIGTERM %s: the router dropped its next hop after %v, gvsd exited after %v; the router's route to its local address %s then went via %v; streams: %s",
		victim.host.Name, gone.Round(time.Millisecond), exited.Sub(t0).Round(time.Millisecond), ecmpLocal(2), routeVia(ctx, l.Router, ecmpLocal(2)), streamReport(streams, t0))
	if t.Failed() {
		stopStreams(t, streams)
		return
	}
	rejoin(ctx, t, l, ds, victim, streams)
	stopStreams(t, streams)
	if t.Failed() {
		return
	}
	lose(ctx, t, l, ds, ds[1], syscall.SIGKILL)
}

// routeVia returns the next hops of the router's route to a, sorted.
func routeVia(ctx context.Context, h *lab.Host, a netip.Addr) []netip.Addr {
	out, err := h.Command(ctx, "ip", "-4", "route", "show", "exact", netip.PrefixFrom(a, 32).String()).Output()
	if err != nil {
		return nil
	}
	f := strings.Fields(string(out))
	var hops []netip.Addr
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			if v, err := netip.ParseAddr(f[i+1]); err == nil {
				hops = append(hops, v)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops
}
