package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestSimulate asks a running gvsd, through gvsadm simulate, which real a
// client's next connection gets, then makes the connection: with rr over
// two reals the answer is where the connection goes, and asking twice in
// a row gives the same answer (asking moves no turn); with persistence,
// after a client's connection the answer is its template's real, decided
// by the template, while another client gets the scheduler's turn.
func TestSimulate(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, drConfig(l, "rr", "", []int{1, 1}, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	service := netip.AddrPortFrom(scenario.VIP, scenario.TCPPort).String()
	simulateText := func(client netip.Addr) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "simulate", "-t", service, "--client", client.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("gvsadm simulate: %v\n%s", err, out)
		}
		return string(out)
	}
	simulate := func(client netip.Addr) api.Simulation {
		t.Helper()
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "simulate", "-t", service, "--client", client.String(), "--json").Output()
		if err != nil {
			t.Fatalf("gvsadm simulate --json: %v", err)
		}
		var s api.Simulation
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("gvsadm simulate --json: %v\n%s", err, out)
		}
		return s
	}
	// realOf returns the lab index of the real a simulation names.
	realOf := func(s api.Simulation) int {
		t.Helper()
		for i, r := range l.Reals {
			if netip.AddrPortFrom(r.Addr, scenario.TCPPort).String() == s.Real {
				return i
			}
		}
		t.Fatalf("simulate named %q (%s: %s), not a real of the lab", s.Real, s.DecidedBy, s.Reason)
		return -1
	}
	// connect makes one connection from client and returns the real it
	// reached.
	connect := func(client netip.Addr) int {
		t.Helper()
		before := snapshot(env)
		echoOnce(ctx, t, l.Client, client)
		d := snapshot(env).since(before)
		for i, n := range d.conns {
			if n == 1 && d.conns[1-i] == 0 {
				return i
			}
		}
		t.Fatalf("one connection reached the reals %v times", d.conns)
		return -1
	}

	t.Run("rr", func(t *testing.T) {
		if out := simulateText(l.Client.Addr); !strings.HasPrefix(out, fmt.Sprintf("tcp %s from %s -> ", service, l.Client.Addr)) ||
			!strings.Contains(out, "(rr: next in turn)") {
			t.Errorf("gvsadm simulate says:\n%s", out)
		}
		for round := range 4 {
			first, again := simulate(l.Client.Addr), simulate(l.Client.Addr)
			if first.DecidedBy != "scheduler" || again.Real != first.Real {
				t.Fatalf("round %d: simulate said %q (%s), then %q: asking moved rr's turn", round, first.Real, first.DecidedBy, again.Real)
			}
			want := realOf(first)
			if got := connect(l.Client.Addr); got != want {
				t.Fatalf("round %d: simulate said %s, the connection went to %s", round, l.Reals[want].Name, l.Reals[got].Name)
			}
		}
	})

	t.Run("persistence", func(t *testing.T) {
		if err := env.Reload(ctx, drConfig(l, "rr", "persistence = \"5m\"", []int{1, 1}, "")); err != nil {
			t.Fatal(err)
		}
		before := simulate(l.Client.Addr)
		if before.DecidedBy != "scheduler" || before.Template == nil || before.Template.Found || before.Persistence != 300 {
			t.Fatalf("before any connection: %+v, template %+v", before, before.Template)
		}
		to := connect(l.Client.Addr)
		if to != realOf(before) {
			t.Errorf("simulate said %s, the connection went to %s", before.Real, l.Reals[to].Name)
		}
		after := simulate(l.Client.Addr)
		tpl := after.Template
		if after.DecidedBy != "template" || realOf(after) != to || tpl == nil || !tpl.Found || !tpl.Usable || tpl.Real != after.Real {
			t.Fatalf("after the connection: decided by %s, real %q, template %+v; want the template's real %s", after.DecidedBy, after.Real, tpl, l.Reals[to].Name)
		}
		// rr moved on: a client without a template gets the other real,
		// and the one with a template still its own.
		other := simulate(netip.MustParseAddr("10.10.99.1"))
		if other.DecidedBy != "scheduler" || realOf(other) == to {
			t.Errorf("a client without a template: %s %q, want rr's next turn", other.DecidedBy, other.Real)
		}
		if got := connect(l.Client.Addr); got != to {
			t.Errorf("the client's next connection went to %s, its template names %s", l.Reals[got].Name, l.Reals[to].Name)
		}
		if out := simulateText(l.Client.Addr); !strings.Contains(out, "it decides") {
			t.Errorf("gvsadm simulate says:\n%s", out)
		}
	})
}
