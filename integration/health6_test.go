package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// The ports of TestHealthChecksIPv6: the DR service's (VIP and reals)
// and the NAT service's VIP port and its reals' port.
const (
	hc6DRPort      = 8090
	hc6NATPort     = 8091
	hc6NATRealPort = 8191
)

// TestHealthChecksIPv6: IPv6 DR and NAT services with HTTP checks of their
// IPv6 reals. Both reals of each start up; stopping one real's web server
// takes it down within fall × interval + timeout, after which every new
// connection through the VIP goes to the other real; starting it again
// brings it back within rise × interval + timeout and rr sends it
// connections again. gvsadm names the reals in brackets, and gvsd's log
// names the checked real the same way. In NAT the reals' answers to the
// director's checks come from the [RIP]:port whose replies to clients gvsd
// takes from the kernel (the ingress table's own-address rule for IPv6).
func TestHealthChecksIPv6(t *testing.T) {
	l := needLabWith(t, lab.Options{IPv6: true, Reals: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	dr, nat := l.Reals[:2], l.Reals[2:]
	if err := l.SetGateway(l.Director.Addr6, nat...); err != nil {
		t.Fatal(err)
	}
	for _, r := range dr {
		p, err := scenario.Start(ctx, r, filepath.Join(dir, r.Name+"-realserver.log"),
			[]string{bins.realserver, "-vip", lab.VIP6.String(), "-mode", "dr"})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
	}
	for _, r := range dr {
		if err := waitCond(ctx, 10*time.Second, func() bool { return hostHas(ctx, t, r, "lo", lab.VIP6.String()+"/128") }); err != nil {
			t.Fatalf("%s: %s never appeared on lo: %v", r.Name, lab.VIP6, err)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\n", l.Director.Iface)
	service := func(vport uint16, fwd string, reals []*lab.Host, rport uint16) {
		fmt.Fprintf(&b, "\n[[service]]\naddress = %q\nscheduler = \"rr\"\nforward = %q\n", netip.AddrPortFrom(lab.VIP6, vport), fwd)
		fmt.Fprintf(&b, "  [service.check]\n  type = \"http\"\n  path = \"/healthz\"\n  interval = %q\n  timeout = %q\n  rise = %d\n  fall = %d\n", hcInterval, hcTimeout, hcRise, hcFall)
		for _, r := range reals {
			fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, rport))
		}
	}
	service(hc6DRPort, "dr", dr, hc6DRPort)
	service(hc6NATPort, "nat", nat, hc6NATRealPort)
	cfgPath := filepath.Join(dir, "gvs-health6.toml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	// Web servers on every real: [::] takes the VIP (DR) and the RIP (NAT).
	stops := make([]func(), len(l.Reals))
	flap := new(atomic.Bool) // never set: serveChecked's /healthz answers 200
	start := func(i int) {
		t.Helper()
		port := uint16(hc6DRPort)
		if i >= len(dr) {
			port = hc6NATRealPort
		}
		var err error
		if stops[i], err = serveChecked(l.Reals[i], port, flap); err != nil {
			t.Fatal(err)
		}
	}
	for i := range l.Reals {
		start(i)
	}
	defer func() {
		for _, s := range stops {
			if s != nil {
				s()
			}
		}
	}()

	logPath, socket := filepath.Join(dir, "gvsd.log"), filepath.Join(dir, "gvsd.sock")
	gvsd, err := scenario.Start(ctx, l.Director, logPath, []string{bins.gvsd, "-config", cfgPath, "-socket", socket, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		gvsd.Stop()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", gvsd.Log())
		}
	}()
	if err := gvsd.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("gvsd did not start: %v", err)
	}

	// real returns what gvsd says of real i.
	real := func(i int) api.Real {
		t.Helper()
		port := uint16(hc6DRPort)
		if i >= len(dr) {
			port = hc6NATRealPort
		}
		want := netip.AddrPortFrom(l.Reals[i].Addr6, port).String()
		for _, s := range gvsStatus(ctx, t, socket).Services {
			for _, r := range s.Reals {
				if r.Address == want {
					return r
				}
			}
		}
		t.Fatalf("gvsadm lists no real %s", want)
		return api.Real{}
	}
	// waitHealth waits until real i is up and Ready, or down and out of the
	// published table (on_failure = "remove"), and returns how long it took.
	waitHealth := func(i int, up bool, limit time.Duration) time.Duration {
		t.Helper()
		want := map[bool]string{true: "up", false: "down"}[up]
		began := time.Now()
		if err := waitCond(ctx, limit, func() bool { r := real(i); return r.Health == want && r.Ready == up }); err != nil {
			t.Fatalf("real %s not %s after %v: %+v", l.Reals[i].Addr6, want, limit, real(i))
		}
		return time.Since(began)
	}
	for i := range l.Reals {
		waitHealth(i, true, 10*time.Second)
	}

	// get makes n new connections to vip and counts the reals that answered.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, a string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(a)
			if err != nil {
				return nil, err
			}
			return l.Client.DialTCP(ctx, ap)
		},
	}}
	get := func(vip netip.AddrPort, n int) (map[string]int, []string) {
		t.Helper()
		seen, failed := map[string]int{}, []string(nil)
		for range n {
			resp, err := client.Get("http://" + vip.String() + "/")
			if err != nil {
				failed = append(failed, err.Error())
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				failed = append(failed, err.Error())
				continue
			}
			seen[strings.TrimPrefix(string(body), "ok from ")]++
		}
		return seen, failed
	}

	bound := time.Duration(hcFall)*hcInterval + hcTimeout
	upBound := time.Duration(hcRise)*hcInterval + hcTimeout
	const slack = 500 * time.Millisecond // polling through gvsadm, the republish
	for _, svc := range []struct {
		name  string
		vip   netip.AddrPort
		first int // index of the service's first real in l.Reals
	}{
		{"dr", netip.AddrPortFrom(lab.VIP6, hc6DRPort), 0},
		{"nat", netip.AddrPortFrom(lab.VIP6, hc6NATPort), len(dr)},
	} {
		a, other := l.Reals[svc.first], l.Reals[svc.first+1]
		if seen, failed := get(svc.vip, 8); len(failed) > 0 || seen[a.Name] != 4 || seen[other.Name] != 4 {
			t.Fatalf("%s: before any failure: answers %v, failures %v; want 4 from each real", svc.name, seen, failed)
		}

		stops[svc.first]()
		stops[svc.first] = nil
		down := waitHealth(svc.first, false, 10*time.Second)
		r := real(svc.first)
		t.Logf("%s: %s went down %v after its server stopped (bound %v); last error %q", svc.name, r.Address, down.Round(time.Millisecond), bound, r.HealthError)
		if down > bound+slack {
			t.Errorf("%s: detection took %v, more than fall × interval + timeout = %v", svc.name, down, bound)
		}
		if want := "[" + a.Addr6.String() + "]:"; !strings.Contains(r.HealthError, want) {
			t.Errorf("%s: health error %q does not name the real as %s...", svc.name, r.HealthError, want)
		}
		if seen, failed := get(svc.vip, 8); len(failed) > 0 || seen[other.Name] != 8 {
			t.Errorf("%s: with %s down: answers %v, failures %v; want all 8 from %s", svc.name, a.Name, seen, failed, other.Name)
		}

		start(svc.first)
		up := waitHealth(svc.first, true, 10*time.Second)
		t.Logf("%s: %s came back %v after its server started (bound %v)", svc.name, r.Address, up.Round(time.Millisecond), upBound)
		if up > upBound+slack {
			t.Errorf("%s: coming back took %v, more than rise × interval + timeout = %v", svc.name, up, upBound)
		}
		if seen, failed := get(svc.vip, 8); len(failed) > 0 || seen[a.Name] != 4 || seen[other.Name] != 4 {
			t.Errorf("%s: after %s came back: answers %v, failures %v; want 4 from each real", svc.name, a.Name, seen, failed)
		}
	}

	out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", socket, "-Ln", "--health").CombinedOutput()
	if err != nil {
		t.Fatalf("gvsadm -Ln --health: %v\n%s", err, out)
	}
	t.Logf("gvsadm -Ln --health:\n%s", out)
	for _, r := range l.Reals {
		if !strings.Contains(string(out), "["+r.Addr6.String()+"]:") {
			t.Errorf("gvsadm -Ln --health does not list %s in brackets", r.Addr6)
		}
	}
	// gvsd logs the health changes with the real in brackets.
	if want := "[" + l.Reals[0].Addr6.String() + "]:"; !strings.Contains(gvsd.Log(), want) {
		t.Errorf("gvsd's log never names %s", want)
	}
}
