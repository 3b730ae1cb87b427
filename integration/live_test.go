package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// Size of TestLiveChanges: reloads of the file, and gvsadm changes made
// between two reloads.
const (
	liveReloads        = 100
	liveEditsPerReload = 10
)

// liveMetrics is where gvsd serves /metrics, in the director's namespace.
const liveMetrics = "127.0.0.1:9464"

// liveConfig is a DR configuration with one HTTP service, VIP:floodPort,
// over both reals with the given weights.
func liveConfig(l *lab.Lab, sched string, w0, w1 int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\nmetrics = %q\n\n[limits]\nconnections = 100000\n\n", l.Director.Iface, liveMetrics)
	fmt.Fprintf(&b, "[[service]]\naddress = \"%s:%d\"\nscheduler = %q\nforward = \"dr\"\n", scenario.VIP, floodPort, sched)
	for i, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n  weight = %d\n", r.Addr, floodPort, []int{w0, w1}[i])
	}
	return b.String()
}

// TestLiveChanges: 100 reloads of the configuration file and 1,000
// gvsadm changes (weights, scheduler) while HTTP clients keep making new
// connections and keep others alive through the VIP: no request fails and
// no long-lived connection breaks. A change is a diff against the running
// state, so the service and its reals keep their connections.
func TestLiveChanges(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, liveConfig(l, "wlc", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	vip := netip.AddrPortFrom(scenario.VIP, floodPort)
	for _, r := range l.Reals {
		stop, err := serveHTTP(r, vip)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	load := startLoad(l.Client, vip)
	defer load.stop()
	time.Sleep(loadMargin)
	if load.ok[phaseBefore].Load() == 0 {
		t.Fatalf("no HTTP request succeeded before the changes: %v", load.errors())
	}

	load.phase.Store(phaseFlood)
	start := time.Now()
	edits := 0
	for i := range liveReloads {
		if err := env.Reload(ctx, liveConfig(l, []string{"wlc", "rr"}[i%2], 1+i%3, 1+(i+1)%3)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		for j := range liveEditsPerReload {
			var args []string
			switch {
			case j == liveEditsPerReload-1:
				args = []string{"-E", "-t", vip.String(), "-s", []string{"wrr", "lc"}[i%2]}
			default:
				r := l.Reals[j%len(l.Reals)]
				args = []string{"-e", "-t", vip.String(), "-r", netip.AddrPortFrom(r.Addr, floodPort).String(), "-w", fmt.Sprint(1 + (i+j)%4)}
			}
			if out, err := exec.CommandContext(ctx, bins.gvsadm, append([]string{"--socket", env.SocketPath}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("gvsadm %v: %v: %s", args, err, out)
			}
			edits++
		}
	}
	// A real removed under load drains: the established connection of a
	// keep-alive client on it goes on (for longer than a request may take),
	// new connections go to the other real. The keep-alive connection is
	// the ESTABLISHED entry seen in two dumps a second apart.
	gvsadmOut := func(args ...string) string {
		out, err := exec.CommandContext(ctx, bins.gvsadm, append([]string{"--socket", env.SocketPath}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gvsadm %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	established := func() map[string]string { // client -> real
		m := map[string]string{}
		for _, line := range strings.Split(gvsadmOut("-Lnc"), "\n") {
			if f := strings.Fields(line); len(f) == 6 && f[2] == "ESTABLISHED" && f[4] == vip.String() {
				m[f[3]] = f[5]
			}
		}
		return m
	}
	first := established()
	time.Sleep(time.Second)
	gone := ""
	for c, r := range established() {
		if first[c] == r {
			gone = r
			break
		}
	}
	if gone == "" {
		states := map[string]int{}
		for _, line := range strings.Split(gvsadmOut("-Lnc"), "\n") {
			if f := strings.Fields(line); len(f) == 6 {
				states[f[2]]++
			}
		}
		t.Fatalf("no long-lived connection in two dumps of the connection table: ESTABLISHED %v, then %v; states now %v; keep-alive clients dialled %v",
			first, established(), states, load.keepAliveDials())
	}
	gvsadmOut("-d", "-t", vip.String(), "-r", gone)
	time.Sleep(requestTimeout + 2*time.Second)
	if strings.Contains(gvsadmOut("-Ln"), gone) {
		t.Errorf("%s is still listed after -d", gone)
	}
	gvsadmOut("-a", "-t", vip.String(), "-r", gone, "-w", "1")
	edits += 2
	took := time.Since(start)
	// The rate estimator has seen the load for tens of seconds.
	out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "-Ln", "--rate").CombinedOutput()
	t.Logf("gvsadm -Ln --rate:\n%s", out)
	if m := regexp.MustCompile(`(?m)^TCP  \S+:8080 +(\d+) +(\d+) `).FindSubmatch(out); err != nil || m == nil || string(m[1]) == "0" || string(m[2]) == "0" {
		t.Errorf("gvsadm -Ln --rate under load: %v; want the service's CPS and InPPS above 0", err)
	}
	// Prometheus sees the same traffic.
	metrics := scrape(ctx, t, l.Director, liveMetrics)
	if m := regexp.MustCompile(`(?m)^gvs_service_connections_total\{port="8080",proto="tcp",vip="10\.20\.0\.100"\} (\d+)`).FindStringSubmatch(metrics); m == nil || m[1] == "0" {
		t.Errorf("/metrics has no connections of the service:\n%.2000s", metrics)
	}
	for _, name := range []string{"gvs_real_active_connections{", "gvs_worker_frames_total{", "gvs_worker_ring_drops_total{", "go_goroutines "} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	load.phase.Store(phaseAfter)
	time.Sleep(loadMargin)
	load.stop()

	during := load.ok[phaseFlood].Load()
	t.Logf("%d reloads and %d gvsadm changes in %v; HTTP requests ok/failed: before %d/%d, during %d/%d, after %d/%d; keep-alive connections dialled %v",
		liveReloads, edits, took.Round(time.Millisecond),
		load.ok[phaseBefore].Load(), load.failed[phaseBefore].Load(), during, load.failed[phaseFlood].Load(),
		load.ok[phaseAfter].Load(), load.failed[phaseAfter].Load(), load.keepAliveDials())
	var failed int64
	for p := range load.failed {
		failed += load.failed[p].Load()
	}
	if failed != 0 {
		t.Errorf("%d HTTP requests failed, want 0; first errors:\n  %s", failed, strings.Join(load.errors(), "\n  "))
	}
	if during < 100 {
		t.Errorf("only %d requests succeeded while the changes ran: the load did not run alongside", during)
	}
	for i, n := range load.keepAliveDials() {
		if n != 1 {
			t.Errorf("keep-alive client %d dialled %d connections, want 1: its long-lived connection broke", i, n)
		}
	}
	if env.Gvsd.Exited() {
		t.Fatal("gvsd exited")
	}
}

// scrape fetches /metrics from addr inside h's namespace.
func scrape(ctx context.Context, t *testing.T, h *lab.Host, addr string) string {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return h.DialTCP(ctx, ap) },
	}}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s, %v", addr, resp.Status, err)
	}
	return string(b)
}
