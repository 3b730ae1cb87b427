package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// The health check of TestHealthChecks.
const (
	hcInterval = 500 * time.Millisecond
	hcTimeout  = 300 * time.Millisecond
	hcRise     = 2
	hcFall     = 3
	// hcPort is the VIP's and the reals' port: not the scenario's echo
	// ports (80 and 53, and 8080 and 8053 on NAT reals).
	hcPort = 8090
)

// serveChecked starts an HTTP server on every address of h, IPv4 and IPv6, at port: "/"
// answers "ok from <host>" and "/healthz" answers 200, or alternates 200
// and 503 while *flap is set.
func serveChecked(h *lab.Host, port uint16, flap *atomic.Bool) (stop func(), err error) {
	var ln net.Listener
	if err := h.Do(func() error {
		var err error
		// [::] takes IPv4 too (net.ipv6.bindv6only is 0 in a lab).
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
		return err
	}); err != nil {
		return nil, fmt.Errorf("http server on %s: %w", h.Name, err)
	}
	body := []byte("ok from " + h.Name)
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.Write(body) })
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if flap.Load() && n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() { // the server's accept loop, ended by stop
		defer close(done)
		srv.Serve(ln)
	}()
	return func() { srv.Close(); <-done }, nil
}

// TestHealthChecks: under a steady HTTP load through the VIP, stopping
// the web server of a real takes it out within fall × interval + timeout,
// after which no request fails; starting it again brings it back within
// rise × interval (+ timeout); and a check that alternates success and
// failure does not move the real at all. It runs in DR and in NAT, where
// the reals' answers to the director's own checks come from the same
// RIP:port as the replies gvsd takes from the kernel for its clients.
func TestHealthChecks(t *testing.T) {
	for _, mode := range []config.Forward{config.DR, config.NAT} {
		t.Run(mode.String(), func(t *testing.T) { testHealthChecks(t, mode) })
	}
}

func testHealthChecks(t *testing.T, mode config.Forward) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\n\n[[service]]\naddress = \"%s:%d\"\nscheduler = \"rr\"\nforward = %q\n", l.Director.Iface, scenario.VIP, hcPort, mode)
	fmt.Fprintf(&b, "  [service.check]\n  type = \"http\"\n  path = \"/healthz\"\n  interval = %q\n  timeout = %q\n  rise = %d\n  fall = %d\n", hcInterval, hcTimeout, hcRise, hcFall)
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s:%d\"\n", r.Addr, hcPort)
	}
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, mode, o, b.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	flap := make([]*atomic.Bool, len(l.Reals))
	stops := make([]func(), len(l.Reals))
	for i, r := range l.Reals {
		flap[i] = new(atomic.Bool)
		if stops[i], err = serveChecked(r, hcPort, flap[i]); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, s := range stops {
			if s != nil {
				s()
			}
		}
	}()
	// health returns what gvsd says of real i.
	health := func(i int) api.Real {
		t.Helper()
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "-L", "--json").Output()
		if err != nil {
			t.Fatalf("gvsadm -L --json: %v", err)
		}
		var resp api.Response
		if err := json.Unmarshal(out, &resp); err != nil || len(resp.Services) != 1 {
			t.Fatalf("gvsadm -L --json: %v\n%s", err, out)
		}
		want := netip.AddrPortFrom(l.Reals[i].Addr, hcPort).String()
		for _, r := range resp.Services[0].Reals {
			if r.Address == want {
				return r
			}
		}
		t.Fatalf("no real %s in %s", want, out)
		return api.Real{}
	}
	// waitFor polls real i until its health is want and returns how long
	// that took, and when the last poll that still saw another health
	// started: the change came after that (each poll is a gvsadm run,
	// slow on a loaded machine, so only that moment is a sure bound).
	waitFor := func(i int, want string, limit time.Duration) (took, lastOther time.Duration) {
		t.Helper()
		start := time.Now()
		for time.Since(start) < limit {
			polled := time.Since(start)
			if health(i).Health == want {
				return time.Since(start), lastOther
			}
			lastOther = polled
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("real %s not %s after %v: %+v", l.Reals[i].Addr, want, limit, health(i))
		return 0, 0
	}
	waitFor(0, "up", 5*time.Second)
	waitFor(1, "up", 5*time.Second)

	vip := netip.AddrPortFrom(scenario.VIP, hcPort)
	load := startLoad(l.Client, vip)
	defer load.stop()
	time.Sleep(loadMargin)

	// Down: stop rs1's web server.
	stops[0]()
	stops[0] = nil
	down, stillUp := waitFor(0, "down", 10*time.Second)
	bound := time.Duration(hcFall)*hcInterval + hcTimeout
	t.Logf("%s went down %v-%v after its server stopped (bound fall × interval + timeout = %v); last error %q",
		l.Reals[0].Addr, stillUp.Round(time.Millisecond), down.Round(time.Millisecond), bound, health(0).HealthError)
	if stillUp > bound {
		t.Errorf("still up %v after its server stopped, more than fall × interval + timeout = %v", stillUp, bound)
	}
	// A reload keeps the check's state: the real stays down, no flap.
	if err := env.Reload(ctx, b.String()); err != nil {
		t.Fatal(err)
	}
	if h := health(0); h.Health != "down" {
		t.Errorf("after a reload the failed real is %q, want still down", h.Health)
	}
	// Requests that were already on their way to the dead real may still
	// fail; from here on none may.
	time.Sleep(time.Second)
	load.phase.Store(phaseFlood)
	time.Sleep(3 * time.Second)
	if f := load.failed[phaseFlood].Load(); f != 0 || load.ok[phaseFlood].Load() < 50 {
		t.Errorf("with %s out: %d requests ok, %d failed; want 0 failed:\n  %s", l.Reals[0].Addr, load.ok[phaseFlood].Load(), f, strings.Join(load.errors(), "\n  "))
	}

	// Up: start it again.
	if stops[0], err = serveChecked(l.Reals[0], hcPort, flap[0]); err != nil {
		t.Fatal(err)
	}
	up, stillDown := waitFor(0, "up", 10*time.Second)
	upBound := time.Duration(hcRise)*hcInterval + hcTimeout
	t.Logf("%s came back %v-%v after its server started (bound rise × interval + timeout = %v)", l.Reals[0].Addr, stillDown.Round(time.Millisecond), up.Round(time.Millisecond), upBound)
	if stillDown > upBound {
		t.Errorf("still down %v after its server started, more than rise × interval + timeout = %v", stillDown, upBound)
	}

	// No flapping: rs2's check alternates; with rise 2 and fall 3 it must
	// neither go down nor move.
	before := health(1)
	flap[1].Store(true)
	time.Sleep(12 * hcInterval)
	flap[1].Store(false)
	after := health(1)
	t.Logf("alternating check: %d checks, health %s, changed %v -> %v", after.HealthChecks-before.HealthChecks, after.Health, before.HealthChanged, after.HealthChanged)
	if after.Health != "up" || !after.HealthChanged.Equal(before.HealthChanged) || after.HealthChecks-before.HealthChecks < 8 {
		t.Errorf("an alternating check moved the real: before %+v, after %+v", before, after)
	}
	load.phase.Store(phaseAfter)
	time.Sleep(loadMargin)
	load.stop()
	if f := load.failed[phaseAfter].Load(); f != 0 {
		t.Errorf("%d requests failed after the real came back:\n  %s", f, strings.Join(load.errors(), "\n  "))
	}
	out, _ := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "-Ln", "--health").CombinedOutput()
	t.Logf("gvsadm -Ln --health:\n%s", out)
	if !strings.Contains(string(out), "Health Checks") || !strings.Contains(string(out), " up ") {
		t.Errorf("gvsadm -Ln --health does not show the health column")
	}
}
