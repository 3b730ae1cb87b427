package integration

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// Tunables of TestSYNProxyPortReuse.
const (
	// reuseMeasure is how long each service's connections are counted.
	reuseMeasure = 2 * time.Second
	// reuseFreshPorts is the director's local port range while plain
	// FULLNAT is measured: more ports than it goes through, so that it
	// never meets a TIME_WAIT socket of its own (on this kernel the
	// client's timestamps have a random offset per connection, so plain
	// FULLNAT too is refused by half the TIME_WAIT sockets it meets).
	// 28,976 ports: a machine would need 14,000 connections/s in the 2 s
	// to come round (8,000 ports were too few on a fast one).
	reuseFreshPorts = "1024-29999"
	// reusePorts is the range while the SYN proxy is measured: 128 local
	// ports a worker, which its connections go through several times a
	// second, well inside the real's 60 s TIME_WAIT.
	reusePorts     = "30000-30255"
	reusePortCount = 256
	// reuseClientPorts is the client's ephemeral range. The real closes
	// first (HTTP/1.0), so the client keeps no TIME_WAIT and reuses a
	// port at once; the director then replaces the connection's entry
	// (in TIME_WAIT), which gives its local port back. Without this the
	// old entries would hold the local ports for their 2 minutes.
	reuseClientPorts = "40000 40063"
	// reuseMinShare is the least share of plain FULLNAT's connection rate
	// the SYN-proxied service must reach: generous, against a collapse
	// (with the client's ISN on the proxy's SYN, half the SYNs that met a
	// TIME_WAIT socket waited a second for the proxy's resend).
	reuseMinShare = 0.5
	// The VIP ports of the two services and the ports their real serves
	// them on.
	reusePlainVPort, reusePlainRPort = 8085, 8095
	reuseProxyVPort, reuseProxyRPort = 8086, 8096
)

// TestSYNProxyPortReuse measures short HTTP/1.0 connections (the real
// closes first, and keeps TIME_WAIT) through FULLNAT with one local
// address and one real: first a plain FULLNAT service over local ports it
// never comes round to; then, after a reload, the same service over so
// few local ports that most of its connections meet a TIME_WAIT socket of
// an earlier one on the real (the director's ISN and timestamps per
// real-side tuple, fullnat.go, are what lets them in); then, after
// another, a SYN-proxied service over those few ports. Both rates over few
// ports must be at least half the rate over many, no request may fail,
// and each must have opened several times more connections than there
// are local ports. Last, gvsd restarts and the SYN-proxied service runs
// again over the same ports, whose TIME_WAIT sockets on the real the old
// process left: as fast, and its SYNs not refused. The real's TIME_WAIT
// and PAWS counters are logged.
func TestSYNProxyPortReuse(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	if err := l.Client.Sysctl("net.ipv4.ip_local_port_range", reuseClientPorts); err != nil {
		t.Fatal(err)
	}
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: dir, Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.FullNAT, o, portReuseConfig(l, reuseFreshPorts, reusePlainVPort, reusePlainRPort, false))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	real := l.Reals[0]
	for _, port := range []uint16{reusePlainRPort, reuseProxyRPort} {
		stop, err := serveHTTP(real, netip.AddrPortFrom(netip.IPv4Unspecified(), port))
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	plainVIP := netip.AddrPortFrom(scenario.VIP, reusePlainVPort)
	if err := oneRequest(ctx, l.Client, plainVIP); err != nil {
		t.Fatalf("a request to %s: %v", plainVIP, err)
	}
	plain := connRate(ctx, l.Client, plainVIP, reuseMeasure)
	t.Logf("plain FULLNAT over %s: %d connections in %v (%.0f/s), %d failed", reuseFreshPorts, plain.ok,
		plain.took.Round(time.Millisecond), plain.perSec(), plain.failed)

	if err := env.Reload(ctx, portReuseConfig(l, reusePorts, reusePlainVPort, reusePlainRPort, false)); err != nil {
		t.Fatal(err)
	}
	if err := oneRequest(ctx, l.Client, plainVIP); err != nil {
		t.Fatalf("a request to %s over few ports: %v", plainVIP, err)
	}
	realBefore, clientBefore := tcpCounters(ctx, t, real), tcpCounters(ctx, t, l.Client)
	fewBefore, _ := signalCounters(ctx, t, env.Gvsd)
	few := connRate(ctx, l.Client, plainVIP, reuseMeasure)
	fewAfter, _ := signalCounters(ctx, t, env.Gvsd)
	realAfter, clientAfter := tcpCounters(ctx, t, real), tcpCounters(ctx, t, l.Client)
	fewShare := few.perSec() / plain.perSec()
	fewOpened := fewAfter.Dataplane.NewConns - fewBefore.Dataplane.NewConns
	t.Logf("plain FULLNAT over %s: %d connections in %v (%.0f/s), %d failed: %.0f%% of it over many ports; %d opened; "+
		"real: PAWSTimewait +%d, PAWSEstab +%d, TW +%d, TWRecycled +%d, TCPTimeWaitOverflow +%d; client: TCPSynRetrans +%d",
		reusePorts, few.ok, few.took.Round(time.Millisecond), few.perSec(), few.failed, 100*fewShare, fewOpened,
		realAfter["TcpExtPAWSTimewait"]-realBefore["TcpExtPAWSTimewait"],
		realAfter["TcpExtPAWSEstab"]-realBefore["TcpExtPAWSEstab"], realAfter["TcpExtTW"]-realBefore["TcpExtTW"],
		realAfter["TcpExtTWRecycled"]-realBefore["TcpExtTWRecycled"],
		realAfter["TcpExtTCPTimeWaitOverflow"]-realBefore["TcpExtTCPTimeWaitOverflow"],
		clientAfter["TcpExtTCPSynRetrans"]-clientBefore["TcpExtTCPSynRetrans"])
	if few.failed > 0 {
		t.Errorf("%d requests failed on plain FULLNAT over few ports, want 0", few.failed)
	}
	if fewOpened < 2*reusePortCount {
		t.Errorf("plain FULLNAT opened %d connections over %d local ports: too few to come round to ports in TIME_WAIT on the real", fewOpened, reusePortCount)
	}
	if fewShare < reuseMinShare {
		t.Errorf("plain FULLNAT over %d local ports made %.0f new connections/s, %.0f%% of its %.0f/s over many; want at least %.0f%%",
			reusePortCount, few.perSec(), 100*fewShare, plain.perSec(), 100*reuseMinShare)
	}

	if err := env.Reload(ctx, portReuseConfig(l, reusePorts, reuseProxyVPort, reuseProxyRPort, true)); err != nil {
		t.Fatal(err)
	}
	proxyVIP := netip.AddrPortFrom(scenario.VIP, reuseProxyVPort)
	if err := oneRequest(ctx, l.Client, proxyVIP); err != nil {
		t.Fatalf("a request to %s: %v", proxyVIP, err)
	}
	before, _ := signalCounters(ctx, t, env.Gvsd)
	proxied := connRate(ctx, l.Client, proxyVIP, reuseMeasure)
	after, _ := signalCounters(ctx, t, env.Gvsd)
	share := proxied.perSec() / plain.perSec()
	resent := after.Dataplane.SynProxySynResent - before.Dataplane.SynProxySynResent
	opened := after.Dataplane.SynProxyOpened - before.Dataplane.SynProxyOpened
	t.Logf("FULLNAT + synproxy over %s: %d connections in %v (%.0f/s), %d failed: %.0f%% of plain FULLNAT; %d opened by the proxy, %d SYNs resent; real: %d TIME_WAIT",
		reusePorts, proxied.ok, proxied.took.Round(time.Millisecond), proxied.perSec(), proxied.failed, 100*share, opened, resent,
		timeWaits(ctx, t, real, reuseProxyRPort))

	if plain.failed+proxied.failed > 0 {
		t.Errorf("%d requests failed on plain FULLNAT and %d with the SYN proxy, want 0", plain.failed, proxied.failed)
	}
	if opened < 2*reusePortCount {
		t.Errorf("the proxy opened %d connections over %d local ports: too few to come round to ports in TIME_WAIT on the real", opened, reusePortCount)
	}
	if share < reuseMinShare {
		t.Errorf("FULLNAT + synproxy made %.0f new connections/s, %.0f%% of plain FULLNAT's %.0f/s; want at least %.0f%%",
			proxied.perSec(), 100*share, plain.perSec(), 100*reuseMinShare)
	}
	if env.Gvsd.Exited() {
		t.Fatal("gvsd exited")
	}

	// A restarted gvsd on the same socket gets the ISN key back (beside
	// the socket) and numbers the tuples on from the boot clock: the
	// TIME_WAIT sockets the last one left on the real take its SYNs.
	if err := env.StopGvsd(); err != nil {
		t.Logf("stopping gvsd: %v", err)
	}
	again, err := scenario.Start(ctx, l.Director, filepath.Join(dir, "restart.log"),
		[]string{bins.gvsd, "-config", env.ConfigPath, "-socket", env.SocketPath, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	env.Gvsd = again // stopped by env.Close
	if err := again.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("restarted gvsd: %v", err)
	}
	if err := oneRequest(ctx, l.Client, proxyVIP); err != nil {
		t.Fatalf("a request to %s after the restart: %v", proxyVIP, err)
	}
	before, _ = signalCounters(ctx, t, again)
	restarted := connRate(ctx, l.Client, proxyVIP, reuseMeasure)
	after, _ = signalCounters(ctx, t, again)
	rShare := restarted.perSec() / plain.perSec()
	rResent := after.Dataplane.SynProxySynResent - before.Dataplane.SynProxySynResent
	rOpened := after.Dataplane.SynProxyOpened - before.Dataplane.SynProxyOpened
	t.Logf("FULLNAT + synproxy after a restart: %d connections in %v (%.0f/s), %d failed: %.0f%% of plain FULLNAT; %d opened, %d SYNs resent; real: %d TIME_WAIT",
		restarted.ok, restarted.took.Round(time.Millisecond), restarted.perSec(), restarted.failed, 100*rShare, rOpened, rResent,
		timeWaits(ctx, t, real, reuseProxyRPort))
	if restarted.failed > 0 {
		t.Errorf("%d requests failed after the restart, want 0", restarted.failed)
	}
	// With a new key, half the SYNs that met a TIME_WAIT socket were
	// refused and resent a second later.
	if rResent*10 > rOpened {
		t.Errorf("after the restart %d of %d proxied SYNs were resent: the real's TIME_WAIT sockets refused them", rResent, rOpened)
	}
	if rShare < reuseMinShare {
		t.Errorf("after the restart FULLNAT + synproxy made %.0f new connections/s, %.0f%% of plain FULLNAT's; want at least %.0f%%",
			restarted.perSec(), 100*rShare, 100*reuseMinShare)
	}
}

// portReuseConfig is a configuration of TestSYNProxyPortReuse: the
// director's own address as the one local address, local ports ports, and
// one FULLNAT service, VIP:vport over the first real's rport.
func portReuseConfig(l *lab.Lab, ports string, vport, rport uint16, proxy bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\nlocal_ports = %q\n\n", l.Director.Iface, ports)
	fmt.Fprintf(&b, "[[service]]\naddress = \"%s:%d\"\nscheduler = \"rr\"\nforward = \"fullnat\"\nsynproxy = %v\n", scenario.VIP, vport, proxy)
	fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n", l.Reals[0].Addr, rport)
	return b.String()
}

// tcpCounters returns h's TCP counters (nstat's names, TcpExtPAWSTimewait
// and so on), for the log; an empty map if nstat fails.
func tcpCounters(ctx context.Context, t *testing.T, h *lab.Host) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	out, err := h.Command(ctx, "nstat", "-asz").Output()
	if err != nil {
		t.Logf("nstat on %s: %v", h.Name, err)
		return m
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var v uint64
		if _, err := fmt.Sscan(f[1], &v); err == nil {
			m[f[0]] = v
		}
	}
	return m
}

// timeWaits returns how many TIME_WAIT sockets h holds on local port
// port, for the log.
func timeWaits(ctx context.Context, t *testing.T, h *lab.Host, port uint16) int {
	t.Helper()
	out, err := h.Command(ctx, "ss", "-Htn", "state", "time-wait", fmt.Sprintf("sport = :%d", port)).Output()
	if err != nil {
		t.Logf("ss on %s: %v", h.Name, err)
		return -1
	}
	return strings.Count(string(out), "\n")
}
