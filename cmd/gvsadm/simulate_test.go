package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/control/api"
)

func TestParseSimulate(t *testing.T) {
	for _, c := range []struct {
		args    string
		want    simulateOptions
		wantErr string
	}{
		{args: "-t 10.20.0.100:80 --client 10.10.0.7:40000",
			want: simulateOptions{req: api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100:80", Client: "10.10.0.7:40000"}}},
		{args: "-u10.20.0.100:53 --client=10.10.0.7 --json -n --socket /x.sock",
			want: simulateOptions{req: api.SimulateRequest{Protocol: "udp", Address: "10.20.0.100:53", Client: "10.10.0.7"}, json: true, socket: "/x.sock"}},
		{args: "--tcp-service 10.20.0.100:80 --client 10.10.0.7 --socket=/y.sock",
			want: simulateOptions{req: api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100:80", Client: "10.10.0.7"}, socket: "/y.sock"}},
		{args: "--client 10.10.0.7", wantErr: "a service is needed"},
		{args: "-t 10.20.0.100:80", wantErr: "a client is needed"},
		{args: "-t 10.20.0.100:80 --client", wantErr: "option --client needs an argument"},
		{args: "-t 10.20.0.100:80 --client 10.10.0.7 -L", wantErr: "unknown option -L"},
	} {
		got, err := parseSimulate(strings.Fields(c.args))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"simulate", "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "gvsadm simulate") {
		t.Errorf("simulate -h: %d %q", code, out.String())
	}
	if code := run([]string{"simulate", "-t", "10.20.0.100:80"}, &out, &errb); code != 2 {
		t.Errorf("simulate without a client: exit %d", code)
	}
	errb.Reset()
	if code := run([]string{"--socket", "/nonexistent/gvsd.sock", "simulate", "-t", "10.20.0.100:80", "--client", "10.10.0.7"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "cannot reach gvsd at /nonexistent/gvsd.sock") {
		t.Errorf("simulate after --socket: exit %d, %q", code, errb.String())
	}
}

func TestSimulationFormat(t *testing.T) {
	reals := []api.SimulatedReal{
		{Address: "10.20.0.11:80", Forward: "dr", Weight: 1, SchedWeight: 1, Ready: true, Health: "up", Active: 3, Inactive: 1},
		{Address: "10.20.0.12:80", Forward: "dr", Weight: 1, SchedWeight: 1, Ready: true, Health: "up", Chosen: true, Note: "chosen"},
	}
	for _, c := range []struct {
		name string
		sim  api.Simulation
		want string
	}{
		{"scheduler, no template", api.Simulation{Protocol: "tcp", Address: "10.20.0.100:80", Client: "10.10.0.7:40000", Scheduler: "wlc",
			Persistence: 300, Netmask: 24, Real: "10.20.0.12:80", DecidedBy: "scheduler", Reason: "lowest (active*256+inactive)/weight = 0.0",
			Template: &api.SimulatedTemplate{Client: "10.10.0.0"}, Notes: []string{"the chosen real becomes the client's persistence template"}, Reals: reals},
			`tcp 10.20.0.100:80 from 10.10.0.7:40000 -> 10.20.0.12:80 (wlc: lowest (active*256+inactive)/weight = 0.0)
service: scheduler wlc
persistence 300s, netmask 255.255.255.0: no template for 10.10.0.0
note: the chosen real becomes the client's persistence template
real          weight ready health overloaded active inactive
10.20.0.11:80 1      yes   up     no         3      1
10.20.0.12:80 1      yes   up     no         0      0        chosen
`},
		{"template decides", api.Simulation{Protocol: "tcp", Address: "10.20.0.100:80", Client: "10.10.0.7:0", Scheduler: "rr",
			SchedulerFlags: []string{"sh-port"}, Persistence: 300, Netmask: 32, Real: "10.20.0.11:80", DecidedBy: "template",
			Reason: "persistence template of 10.10.0.7/32", Template: &api.SimulatedTemplate{Client: "10.10.0.7", Found: true, Real: "10.20.0.11:80", Connections: 2, Usable: true},
			Reals: reals[:1]},
			`tcp 10.20.0.100:80 from 10.10.0.7 -> 10.20.0.11:80 (persistence template of 10.10.0.7/32)
service: scheduler rr, flags sh-port
persistence 300s, netmask 255.255.255.255: template for 10.10.0.7 names 10.20.0.11:80 (2 connections): it decides
real          weight ready health overloaded active inactive
10.20.0.11:80 1      yes   up     no         3      1
`},
		{"template replaced", api.Simulation{Protocol: "udp", Address: "10.20.0.100:53", Client: "10.10.0.7:5353", Scheduler: "rr", OPS: true,
			Persistence: 60, Netmask: 24, Real: "10.20.0.11:53", DecidedBy: "scheduler", Reason: "next in turn",
			Template: &api.SimulatedTemplate{Client: "10.10.0.0", Found: true, Real: "10.20.0.12:53", Expires: 42, Note: "its real is not ready"},
			Reals: []api.SimulatedReal{{Address: "10.20.0.11:53", Weight: 1, SchedWeight: 1, Ready: true, Note: "chosen"},
				{Address: "10.20.0.12:53", Weight: 2, SchedWeight: 0, Note: "template, not ready"}}},
			`udp 10.20.0.100:53 from 10.10.0.7:5353 -> 10.20.0.11:53 (rr: next in turn)
service: scheduler rr, one-packet scheduling
persistence 60s, netmask 255.255.255.0: template for 10.10.0.0 names 10.20.0.12:53 (no connection, lapses in 42s), but its real is not ready: the connection is scheduled afresh and the template replaced
real          weight ready health overloaded active inactive
10.20.0.11:53 1      yes   -      no         0      0        chosen
10.20.0.12:53 0 (2)  no    -      no         0      0        template, not ready
`},
		{"sorry", api.Simulation{Protocol: "tcp", Address: "10.20.0.100:25", Client: "10.10.0.7:0", Scheduler: "rr", Real: "10.20.0.99:25",
			DecidedBy: "scheduler", Reason: "next in turn", Sorry: "10.20.0.99:25", SorryActive: true,
			Reals: []api.SimulatedReal{{Address: "10.20.0.99:25", Weight: 1, SchedWeight: 1, Ready: true, Sorry: true, Chosen: true, Note: "chosen, sorry server"}}},
			`tcp 10.20.0.100:25 from 10.10.0.7 -> 10.20.0.99:25 (sorry server; rr: next in turn)
service: scheduler rr
sorry server 10.20.0.99:25 takes it: every real is down or has weight 0
real          weight ready health overloaded active inactive
10.20.0.99:25 1      yes   -      no         0      0        chosen, sorry server
`},
		{"none, sorry not in use", api.Simulation{Protocol: "tcp", Address: "10.20.0.100:110", Client: "10.10.0.7:0", Scheduler: "wlc",
			DecidedBy: "none", Reason: "no real available: every real has weight 0 or is overloaded", Sorry: "10.20.0.99:110",
			Reals: []api.SimulatedReal{{Address: "10.20.0.11:110", Weight: 1, SchedWeight: 1, Ready: true, Overloaded: true, Active: 1, Note: "overloaded"}}},
			`tcp 10.20.0.100:110 from 10.10.0.7 -> no real server (wlc: no real available: every real has weight 0 or is overloaded)
service: scheduler wlc
the sorry server 10.20.0.99:110 is not in use (it is while every real is down or has weight 0): the connection is dropped
real           weight ready health overloaded active inactive
10.20.0.11:110 1      yes   -      yes        1      0        overloaded
`},
		{"none, no sorry", api.Simulation{Protocol: "tcp", Address: "10.20.0.100:110", Client: "10.10.0.7:0", Scheduler: "sh",
			DecidedBy: "none", Reason: "source address hashed to bucket 7 of 256, whose real is quiescent or overloaded, and sh-fallback is off",
			Reals: []api.SimulatedReal{}},
			`tcp 10.20.0.100:110 from 10.10.0.7 -> no real server (sh: source address hashed to bucket 7 of 256, whose real is quiescent or overloaded, and sh-fallback is off)
service: scheduler sh
no sorry server: the connection is dropped
real weight ready health overloaded active inactive
`},
	} {
		var b bytes.Buffer
		writeSimulation(&b, &c.sim)
		if b.String() != c.want {
			t.Errorf("%s:\n got:\n%s\nwant:\n%s", c.name, b.String(), c.want)
		}
	}
}

// TestRunSimulate: gvsadm simulate asks gvsd over its socket and prints
// the answer, as text or JSON; gvsd's "No such service" is printed as
// ipvsadm prints it.
func TestRunSimulate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gvsd.sock")
	l, err := api.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sim := &api.Simulation{Protocol: "tcp", Address: "10.20.0.100:80", Client: "10.10.0.7:0", Scheduler: "rr",
		Real: "10.20.0.11:80", DecidedBy: "scheduler", Reason: "next in turn", Reals: []api.SimulatedReal{}}
	var got api.SimulateRequest
	go api.Serve(context.Background(), l, func(_ context.Context, r *api.Request) *api.Response {
		if r.Op != api.OpSimulate || r.Simulate == nil {
			return &api.Response{Error: "unexpected request"}
		}
		got = *r.Simulate
		if r.Simulate.Address != "10.20.0.100:80" {
			return &api.Response{Error: "No such service"}
		}
		return &api.Response{Simulation: sim}
	})
	var out, errb bytes.Buffer
	if code := run([]string{"--socket", path, "simulate", "-t", "10.20.0.100:80", "--client", "10.10.0.7"}, &out, &errb); code != 0 ||
		!strings.HasPrefix(out.String(), "tcp 10.20.0.100:80 from 10.10.0.7 -> 10.20.0.11:80 (rr: next in turn)\n") {
		t.Fatalf("simulate: exit %d, %q, %q", code, out.String(), errb.String())
	}
	if want := (api.SimulateRequest{Protocol: "tcp", Address: "10.20.0.100:80", Client: "10.10.0.7"}); got != want {
		t.Errorf("request %+v, want %+v", got, want)
	}
	out.Reset()
	if code := run([]string{"simulate", "--socket=" + path, "-t10.20.0.100:80", "--client", "10.10.0.7", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("simulate --json: exit %d, %q", code, errb.String())
	}
	var back api.Simulation
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || !reflect.DeepEqual(&back, sim) {
		t.Errorf("--json: %+v, %v; want %+v", back, err, sim)
	}
	errb.Reset()
	if code := run([]string{"simulate", "--socket", path, "-u", "10.20.0.100:81", "--client", "10.10.0.7"}, &out, &errb); code != 1 || errb.String() != "No such service\n" {
		t.Errorf("missing service: exit %d, %q", code, errb.String())
	}
}
