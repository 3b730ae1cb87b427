package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestSimulateIPv6 asks a running gvsd, through gvsadm simulate -t
// [VIP]:port --client IPv6, which real an IPv6 client's next connection
// gets, then makes the connection, on an IPv6 NAT service with rr and
// persistence per /64: before any connection rr's turn decides, and the
// connection goes there; after it the client's template decides, another
// client of the /64 gets the same real, and one of another /64 rr's next
// turn.
func TestSimulateIPv6(t *testing.T) {
	l := needLabWith(t, lab.Options{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if err := l.SetGateway(l.Director.Addr6, l.Reals...); err != nil {
		t.Fatal(err)
	}
	const realPort = 8080
	echoes := make([]*lab.Echo, len(l.Reals))
	for i, r := range l.Reals {
		var err error
		if echoes[i], err = r.StartEcho("tcp", netip.AddrPortFrom(netip.IPv6Unspecified(), realPort)); err != nil {
			t.Fatal(err)
		}
		defer echoes[i].Close()
	}
	vip := netip.AddrPortFrom(lab.VIP6, 80)
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\n\n[[service]]\naddress = %q\nscheduler = \"rr\"\nforward = \"nat\"\npersistence = \"5m\"\npersistence_netmask = 64\n",
		l.Director.Iface, vip)
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, realPort))
	}
	cfgPath, logPath, socket := filepath.Join(dir, "gvs.toml"), filepath.Join(dir, "gvsd.log"), filepath.Join(dir, "gvsd.sock")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
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
	waitReady(ctx, t, socket, len(l.Reals))

	simulate := func(client netip.Addr) api.Simulation {
		t.Helper()
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", socket, "simulate", "-t", vip.String(), "--client", client.String(), "--json").CombinedOutput()
		if err != nil {
			t.Fatalf("gvsadm simulate --json: %v\n%s", err, out)
		}
		var s api.Simulation
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("gvsadm simulate --json: %v\n%s", err, out)
		}
		return s
	}
	realOf := func(s api.Simulation) int {
		t.Helper()
		for i, r := range l.Reals {
			if netip.AddrPortFrom(r.Addr6, realPort).String() == s.Real {
				return i
			}
		}
		t.Fatalf("simulate named %q (%s: %s), not a real of the lab", s.Real, s.DecidedBy, s.Reason)
		return -1
	}
	// connect makes one connection from the client's own address and
	// returns the real it reached.
	connect := func() int {
		t.Helper()
		before := make([]int, len(echoes))
		for i, e := range echoes {
			before[i] = e.Stats().Conns
		}
		c, err := l.Client.DialTCP(ctx, vip)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, 64)
		c.Close()
		got := -1
		for i, e := range echoes {
			if e.Stats().Conns != before[i] {
				if got >= 0 {
					t.Fatal("one connection reached both reals")
				}
				got = i
			}
		}
		if got < 0 {
			t.Fatal("the connection reached no real")
		}
		return got
	}

	client := l.Client.Addr6
	first, again := simulate(client), simulate(client)
	if first.DecidedBy != "scheduler" || again.Real != first.Real || first.Template == nil || first.Template.Found ||
		first.Template.Client != netip.PrefixFrom(client, 64).Masked().Addr().String() || first.Address != vip.String() {
		t.Fatalf("before any connection: %+v, template %+v; then %q", first, first.Template, again.Real)
	}
	to := connect()
	if to != realOf(first) {
		t.Fatalf("simulate said %s, the connection went to %s", first.Real, l.Reals[to].Name)
	}
	after := simulate(client)
	if after.DecidedBy != "template" || realOf(after) != to || !after.Template.Found || !after.Template.Usable {
		t.Fatalf("after the connection: %+v, template %+v; want the template's %s", after, after.Template, l.Reals[to].Name)
	}
	if n := simulate(netip.MustParseAddr("fd00:10::77")); n.DecidedBy != "template" || realOf(n) != to {
		t.Errorf("another client of the /64: %s %q, want the template's %s", n.DecidedBy, n.Real, l.Reals[to].Name)
	}
	if o := simulate(netip.MustParseAddr("fd00:99::1")); o.DecidedBy != "scheduler" || realOf(o) == to {
		t.Errorf("a client of another /64: %s %q, want rr's next turn", o.DecidedBy, o.Real)
	}
	if got := connect(); got != to {
		t.Errorf("the client's next connection went to %s, its template names %s", l.Reals[got].Name, l.Reals[to].Name)
	}
	out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", socket, "simulate", "-t", vip.String(), "--client", l.Client.Addr.String()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "IPv6") {
		t.Errorf("an IPv4 client of an IPv6 service: %v\n%s", err, out)
	}
}
