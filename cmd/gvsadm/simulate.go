package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/gvs-lb/gvs/control/api"
)

// simulateOptions are gvsadm simulate's arguments.
type simulateOptions struct {
	req    api.SimulateRequest
	json   bool
	socket string
}

const simulateUsage = `gvsadm simulate -t|-u VIP:port --client IP[:port] [--json]
  says which real server a new connection from the client would get now, and why: the
  client's persistence template or the scheduler's choice, with each real as the decision
  saw it. Nothing is sent and nothing changes: no scheduler turn moves, no template is
  made, no counter moves. The client's port matters only to sh-port and mh-port.
  An IPv6 service and client are written [VIP]:port and [IP]:port (or IP).
  --json         the answer as JSON, for programs
`

// parseSimulate reads gvsadm simulate's arguments (after "simulate"), in
// ipvsadm's manner: -t VIP:port, -tVIP:port or --tcp-service VIP:port.
func parseSimulate(args []string) (simulateOptions, error) {
	var o simulateOptions
	for i := 0; i < len(args); i++ {
		t := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs an argument", t)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case t == "-h" || t == "--help":
			return o, errHelp
		case t == "-n" || t == "--numeric":
		case t == "--json":
			o.json = true
		case t == "-t" || t == "--tcp-service" || t == "-u" || t == "--udp-service":
			o.req.Protocol = "tcp"
			if t == "-u" || t == "--udp-service" {
				o.req.Protocol = "udp"
			}
			o.req.Address, err = next()
		case len(t) > 2 && (strings.HasPrefix(t, "-t") || strings.HasPrefix(t, "-u")):
			o.req.Protocol = map[byte]string{'t': "tcp", 'u': "udp"}[t[1]]
			o.req.Address = t[2:]
		case t == "--client":
			o.req.Client, err = next()
		case strings.HasPrefix(t, "--client="):
			o.req.Client = strings.TrimPrefix(t, "--client=")
		case t == "--socket":
			o.socket, err = next()
		case strings.HasPrefix(t, "--socket="):
			o.socket = strings.TrimPrefix(t, "--socket=")
		default:
			return o, fmt.Errorf("simulate: unknown option %s", t)
		}
		if err != nil {
			return o, err
		}
	}
	switch {
	case o.req.Address == "":
		return o, fmt.Errorf("simulate: a service is needed: -t or -u VIP:port")
	case o.req.Client == "":
		return o, fmt.Errorf("simulate: a client is needed: --client IP[:port]")
	}
	return o, nil
}

// runSimulate is gvsadm simulate.
func runSimulate(args []string, stdout, stderr io.Writer) int {
	o, err := parseSimulate(args)
	if code, done := parsed("simulate", simulateUsage, err, stdout, stderr); done {
		return code
	}
	socket := socketPath(o.socket)
	resp, err := api.Call(context.Background(), socket, &api.Request{Op: api.OpSimulate, Simulate: &o.req})
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err) // "No such service", as ipvsadm
		return 1
	}
	if resp.Simulation == nil {
		fmt.Fprintf(stderr, "gvsadm: gvsd gave no simulation (an older gvsd?)\n")
		return 1
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp.Simulation)
		return 0
	}
	writeSimulation(stdout, resp.Simulation)
	return 0
}

// writeSimulation prints a simulation for people: the decision on the
// first line, then the service, the persistence template, the sorry
// server and notes as they matter, and the reals as the decision saw
// them.
func writeSimulation(w io.Writer, s *api.Simulation) {
	client := s.Client
	if ap, err := netip.ParseAddrPort(client); err == nil && ap.Port() == 0 {
		client = ap.Addr().String()
	}
	fmt.Fprintf(w, "%s %s from %s -> ", s.Protocol, s.Address, client)
	switch {
	case s.DecidedBy == "template":
		fmt.Fprintf(w, "%s (%s)\n", s.Real, s.Reason)
	case s.Real != "" && s.Real == s.Sorry:
		fmt.Fprintf(w, "%s (sorry server; %s: %s)\n", s.Real, s.Scheduler, s.Reason)
	case s.Real != "":
		fmt.Fprintf(w, "%s (%s: %s)\n", s.Real, s.Scheduler, s.Reason)
	default:
		fmt.Fprintf(w, "no real server (%s: %s)\n", s.Scheduler, s.Reason)
	}

	fmt.Fprintf(w, "service: scheduler %s", s.Scheduler)
	if len(s.SchedulerFlags) > 0 {
		fmt.Fprintf(w, ", flags %s", strings.Join(s.SchedulerFlags, ","))
	}
	if s.OPS {
		fmt.Fprint(w, ", one-packet scheduling")
	}
	fmt.Fprintln(w)

	if t := s.Template; t != nil {
		fmt.Fprintf(w, "persistence %ds, netmask %s: ", s.Persistence, maskString(max(s.Netmask, 1)))
		held := "no connection, lapses in " + fmt.Sprint(t.Expires) + "s"
		if t.Connections > 0 {
			held = plural(int(t.Connections), "connection")
		}
		switch {
		case !t.Found:
			fmt.Fprintf(w, "no template for %s\n", t.Client)
		case t.Usable:
			fmt.Fprintf(w, "template for %s names %s (%s): it decides\n", t.Client, t.Real, held)
		default:
			fmt.Fprintf(w, "template for %s names %s (%s), but %s: the connection is scheduled afresh and the template replaced\n",
				t.Client, t.Real, held, t.Note)
		}
	}

	switch {
	case s.Real != "" && s.Real == s.Sorry:
		fmt.Fprintf(w, "sorry server %s takes it: every real is down or has weight 0\n", s.Sorry)
	case s.Real != "":
	case s.Sorry == "":
		fmt.Fprintf(w, "no sorry server: the connection is dropped\n")
	case s.SorryActive:
		fmt.Fprintf(w, "the sorry server %s cannot take it either: the connection is dropped\n", s.Sorry)
	default:
		fmt.Fprintf(w, "the sorry server %s is not in use (it is while every real is down or has weight 0): the connection is dropped\n", s.Sorry)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}

	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 8, 1, ' ', 0)
	fmt.Fprintln(tw, "real\tweight\tready\thealth\toverloaded\tactive\tinactive\t")
	for _, r := range s.Reals {
		weight := fmt.Sprint(r.SchedWeight)
		if r.Weight != r.SchedWeight {
			weight += fmt.Sprintf(" (%d)", r.Weight) // the configured weight, which the scheduler does not see
		}
		health := r.Health
		if health == "" {
			health = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Address, weight, yesNo(r.Ready), health, yesNo(r.Overloaded), r.Active, r.Inactive, r.Note)
	}
	tw.Flush()
	for _, line := range strings.SplitAfter(table.String(), "\n") {
		if line != "" {
			fmt.Fprintln(w, strings.TrimRight(line, " \n")) // the padding of an empty note
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
