package control

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

// simulate answers gvsadm simulate (api.OpSimulate) from the running
// configuration, the published table and the live templates.
func (d *Daemon) simulate(req *api.SimulateRequest) *api.Response {
	if req == nil {
		return &api.Response{Error: "simulate without a connection"}
	}
	in := simInput{
		cfg:      d.Config(),
		table:    d.dp.Table(),
		template: d.dp.Template,
		now:      dataplane.Now(),
		health: func(_ dataplane.ServiceKey, s *config.Service, a netip.AddrPort) string {
			if !checked(&s.Check) {
				return ""
			}
			st, ok := d.health.State(checkKey(serviceID(s), a))
			switch {
			case !ok:
				return ""
			case st.Up:
				return "up"
			}
			return "down"
		},
	}
	sim, err := simulate(&in, req)
	if err != nil {
		return &api.Response{Error: err.Error()}
	}
	return &api.Response{Simulation: sim}
}

// simInput is what a simulation reads: the daemon's in simulate, a
// test's own otherwise.
type simInput struct {
	cfg      *config.Config
	table    *dataplane.Table
	template func(k *conntrack.TemplateKey) (conntrack.TemplateInfo, bool) // live templates, read-only
	now      int64                                                         // the dataplane's clock (Flow.Now, template expiry)
	// health returns "up" or "down" for a checked real, "" otherwise.
	health func(sk dataplane.ServiceKey, s *config.Service, a netip.AddrPort) string
}

// simulate decides the new connection req describes as the dataplane's
// newConn (dataplane/worker.go) would: a live persistence template whose
// real is still usable decides; else the scheduler's choice, asked with
// schedule.Explain, which peeks and moves nothing. Errors are ipvsadm's.
func simulate(in *simInput, req *api.SimulateRequest) (*api.Simulation, error) {
	var proto uint8
	switch req.Protocol {
	case "tcp":
		proto = header.ProtoTCP
	case "udp":
		proto = header.ProtoUDP
	default:
		return nil, fmt.Errorf("unknown protocol %q: want tcp or udp", req.Protocol)
	}
	vip, err := netip.ParseAddrPort(req.Address)
	if err != nil || vip.Addr().Zone() != "" || vip.Addr().Is4In6() {
		return nil, fmt.Errorf("illegal virtual server address[:port] %q", req.Address)
	}
	v6 := vip.Addr().Is6()
	client, err := parseClient(req.Client, v6)
	if err != nil {
		return nil, err
	}
	var s *config.Service
	if in.cfg != nil {
		for i := range in.cfg.Services {
			if c := &in.cfg.Services[i]; c.Protocol.String() == req.Protocol && c.Address == vip {
				s = c
			}
		}
	}
	var sk dataplane.ServiceKey // of an IPv4 service; an IPv6 one's is vip
	var svc *dataplane.Service
	switch {
	case in.table == nil:
	case v6:
		svc = in.table.Services6[dataplane.ServiceKey6{Proto: proto, VIP: vip.Addr().As16(), Port: vip.Port()}]
	default:
		sk = dataplane.ServiceKey{Proto: proto, VIP: vip.Addr().As4(), Port: vip.Port()}
		svc = in.table.Services[sk]
	}
	if s == nil || svc == nil {
		return nil, fmt.Errorf("No such service")
	}
	t := in.table

	sim := &api.Simulation{
		Protocol: req.Protocol, Address: vip.String(), Client: client.String(),
		Scheduler: s.Scheduler, SchedulerFlags: s.SchedulerFlags, OPS: s.OPS, Reals: []api.SimulatedReal{},
	}
	if s.Persistence > 0 {
		sim.Persistence, sim.Netmask = uint32(s.Persistence.Seconds()), s.PersistenceNetmask
	}
	if s.Sorry.IsValid() {
		sim.Sorry = s.Sorry.String()
	}
	configured := map[netip.AddrPort]*config.Real{}
	for i := range s.Reals {
		configured[s.Reals[i].Address] = &s.Reals[i]
	}
	// The reals as the decision sees them, in the scheduler's order.
	for i, id := range svc.Reals {
		r := realOf(t, id)
		if r == nil {
			sim.Reals = append(sim.Reals, api.SimulatedReal{Address: fmt.Sprintf("real #%d (removed)", id)})
			continue
		}
		a := realAddr(r)
		sr := api.SimulatedReal{Address: a.String(), Forward: r.Forward.String(), SchedWeight: int(svc.Dests[i].Weight), Ready: r.Ready}
		if c := configured[a]; c != nil {
			sr.Weight = c.Weight
			sr.Health = in.health(sk, s, a)
		} else if a == s.Sorry {
			sr.Weight, sr.Sorry, sim.SorryActive = 1, true, true
		}
		if c := r.Counters; c != nil {
			sr.Active, sr.Inactive, sr.Persistent = c.Active.Load(), c.Inactive.Load(), c.Persistent.Load()
			sr.Overloaded = c.Overloaded()
			u, l := c.Thresholds()
			sr.UpperThreshold, sr.LowerThreshold = uint32(u), uint32(l)
		}
		sim.Reals = append(sim.Reals, sr)
	}
	notes := make([][]string, len(sim.Reals)) // each real's Note, in parts
	mark := func(id uint32, note string) {
		for i, rid := range svc.Reals {
			if rid == id {
				notes[i] = append(notes[i], note)
			}
		}
	}

	decided := false
	if svc.Persist > 0 {
		var tk conntrack.TemplateKey
		var masked netip.Addr
		if v6 {
			tk = conntrack.MaskedTemplateKey6(client.Addr().As16(), vip.Addr().As16(), vip.Port(), proto, svc.PersistBits)
			masked = netip.AddrFrom16(tk.Client)
		} else {
			tk = conntrack.MaskedTemplateKey(client.Addr().As4(), sk.VIP, sk.Port, proto, svc.PersistBits)
			masked = netip.AddrFrom4(tk.Client.As4())
		}
		tpl := &api.SimulatedTemplate{Client: masked.String()}
		sim.Template = tpl
		if info, ok := in.template(&tk); ok {
			tpl.Found, tpl.Connections = true, info.Conns
			tpl.Real = fmt.Sprintf("real #%d (removed)", info.RealID)
			r := realOf(t, info.RealID)
			if r != nil {
				tpl.Real = realAddr(r).String()
			}
			if info.Conns == 0 {
				tpl.Expires = max(info.Expires-in.now+1e9-1, 0) / 1e9 // seconds, rounded up
			}
			switch tpl.Usable = t.TemplateUsable(svc, info.RealID); {
			case tpl.Usable:
				decided = true
				sim.DecidedBy, sim.Real, sim.Forward = "template", tpl.Real, r.Forward.String()
				sim.Reason = fmt.Sprintf("persistence template of %s/%d", tpl.Client, svc.PersistBits)
				mark(info.RealID, "chosen")
				mark(info.RealID, "template")
			case r == nil || !slices.Contains(svc.Reals, info.RealID):
				tpl.Note = "its real is no longer one of the service's"
			default:
				tpl.Note = "its real is not ready (next hop unknown, or removed by a failed check)"
				mark(info.RealID, "template")
			}
		}
	}
	if !decided {
		// The flow as the worker's flowOf or flowOf6 makes it.
		f := schedule.Flow{SrcPort: client.Port(), DstPort: vip.Port(), Proto: proto, Now: in.now}
		if v6 {
			f.Src, f.Dst = client.Addr().As16(), vip.Addr().As16()
		} else {
			f.Src, f.Dst = conntrack.AddrFrom4(client.Addr().As4()), conntrack.AddrFrom4(sk.VIP)
		}
		ch := schedule.Explain(svc.Sched, svc.Dests, &f)
		sim.DecidedBy, sim.Reason = "scheduler", ch.Reason
		if ch.Preferred >= 0 && ch.Preferred < len(notes) && ch.Preferred != ch.Index {
			switch ch.Scheduler {
			case "lblc", "lblcr":
				notes[ch.Preferred] = append(notes[ch.Preferred], "cached here")
			default:
				notes[ch.Preferred] = append(notes[ch.Preferred], "hashed here")
			}
		}
		if ch.Index < 0 {
			sim.DecidedBy = "none"
		} else if r := realOf(t, svc.Reals[ch.Index]); r == nil || !r.Ready {
			// newConn refuses a pick that is not ready; a compiled table
			// gives such a real weight 0, so this is a table in flux.
			sim.DecidedBy = "none"
			sim.Reason = "the scheduler's choice is not ready: " + ch.Reason
		} else {
			sim.Real, sim.Forward = realAddr(r).String(), r.Forward.String()
			notes[ch.Index] = append(notes[ch.Index], "chosen")
		}
	}

	for i := range sim.Reals {
		sr := &sim.Reals[i]
		sr.Chosen = sim.Real != "" && sr.Address == sim.Real
		switch {
		case sr.Sorry:
			notes[i] = append(notes[i], "sorry server")
		case !sr.Ready:
			notes[i] = append(notes[i], "not ready")
		case sr.Health == "down":
			notes[i] = append(notes[i], "check failed")
		case sr.SchedWeight == 0:
			notes[i] = append(notes[i], "quiescent")
		}
		if sr.Overloaded {
			notes[i] = append(notes[i], "overloaded")
		}
		sr.Note = strings.Join(notes[i], ", ")
	}

	if s.OPS {
		sim.Notes = append(sim.Notes, "one-packet scheduling: every datagram is scheduled on its own")
	}
	if sim.DecidedBy == "scheduler" {
		hashesPort := false
		for _, fl := range s.SchedulerFlags {
			hashesPort = hashesPort || (fl == "sh-port" && s.Scheduler == "sh") || (fl == "mh-port" && s.Scheduler == "mh")
		}
		if hashesPort && client.Port() == 0 {
			sim.Notes = append(sim.Notes, "the scheduler hashes the client's port too, and this is port 0: give --client IP:port")
		}
		switch s.Scheduler {
		case "rr", "wrr":
			sim.Notes = append(sim.Notes, "any client's new connection arriving first takes this turn")
		}
		if svc.Persist > 0 {
			sim.Notes = append(sim.Notes, "the chosen real becomes the client's persistence template")
		}
	}
	return sim, nil
}

// parseClient reads IP or IP:port (port 0; IPv6: [IP]:port), of the
// service's family (v6).
func parseClient(s string, v6 bool) (netip.AddrPort, error) {
	family := func(a netip.Addr) bool { return a.Zone() == "" && !a.Is4In6() && a.Is6() == v6 }
	if ap, err := netip.ParseAddrPort(s); err == nil && family(ap.Addr()) {
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && family(a) {
		return netip.AddrPortFrom(a, 0), nil
	}
	if v6 {
		return netip.AddrPort{}, fmt.Errorf("illegal client address %q: want an IPv6 address, as [IP]:port or IP, for an IPv6 service", s)
	}
	return netip.AddrPort{}, fmt.Errorf("illegal client address %q: want an IPv4 address, with :port or not", s)
}

// realOf returns the table's real with ID id, or nil if the table has
// none (out of range, or a removed real's empty slot).
func realOf(t *dataplane.Table, id uint32) *dataplane.Real {
	if int(id) >= len(t.Reals) || t.Reals[id].Forward == 0 {
		return nil
	}
	return &t.Reals[id]
}

func realAddr(r *dataplane.Real) netip.AddrPort {
	if r.Addr6 != ([16]byte{}) {
		return netip.AddrPortFrom(netip.AddrFrom16(r.Addr6), r.Port)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(r.Addr), r.Port)
}
