package control

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/dataplane"
)

// Handle answers a gvsadm request (see package api) from the running
// configuration and the live dataplane.
func (d *Daemon) Handle(ctx context.Context, req *api.Request) *api.Response {
	switch req.Op {
	case api.OpList:
		return d.list()
	case api.OpConnections:
		return d.connections(ctx)
	case api.OpSimulate:
		return d.simulate(req.Simulate)
	case api.OpDoctor:
		return &api.Response{Checks: d.Doctor()}
	case api.OpEdit:
		if req.Edit == nil {
			return &api.Response{Error: "edit without a change"}
		}
		if err := d.edit(req.Edit); err != nil {
			return &api.Response{Error: err.Error()}
		}
		return &api.Response{}
	}
	return &api.Response{Error: fmt.Sprintf("unknown operation %q", req.Op)}
}

func (d *Daemon) list() *api.Response {
	cfg := d.Config()
	resp := &api.Response{TableSize: cfg.Limits.Connections, VRRP: d.vrrpStatus(), Sync: d.syncStatus(), BGP: d.bgpStatus(), Ingress: d.ingressStatus()}
	// The reals of the published table by service and address.
	live := map[realKey]*dataplane.Real{}
	if t := d.dp.Table(); t != nil {
		for k, svc := range t.Services {
			for _, id := range svc.Reals {
				r := &t.Reals[id]
				live[realKey{svc: k, addr: realAddr(r)}] = r
			}
		}
		for k, svc := range t.Services6 {
			for _, id := range svc.Reals {
				r := &t.Reals[id]
				live[realKey{svc6: k, addr: realAddr(r)}] = r
			}
		}
	}
	for _, s := range cfg.Services {
		as := api.Service{
			Name: s.Name, Protocol: s.Protocol.String(), Address: s.Address.String(),
			Scheduler: s.Scheduler, SchedulerFlags: s.SchedulerFlags,
			Persistence: uint32(s.Persistence.Seconds()), OPS: s.OPS, ProxyProtocol: s.ProxyProtocol, Reals: []api.Real{},
		}
		if s.Persistence > 0 {
			as.Netmask = s.PersistenceNetmask
		}
		sid := serviceID(&s)
		for _, r := range s.Reals {
			ar := api.Real{
				Address: r.Address.String(), Forward: r.Forward.String(), ProxyProtocol: r.ProxyProtocol, Weight: r.Weight,
				UpperThreshold: uint32(r.UpperThreshold), LowerThreshold: uint32(r.LowerThreshold),
			}
			if checked(&s.Check) {
				if st, ok := d.health.State(checkKey(sid, r.Address)); ok {
					ar.Health, ar.HealthError, ar.HealthChanged, ar.HealthChecks = "down", st.LastError, st.Changed, st.Checks
					if st.Up {
						ar.Health = "up"
					}
				}
			}
			if lr := live[realKeyOf(&s, r.Address)]; lr != nil {
				ar.Ready = lr.Ready
				if c := lr.Counters; c != nil {
					ar.Active, ar.Inactive, ar.Persistent = c.Active.Load(), c.Inactive.Load(), c.Persistent.Load()
					ar.Overloaded = c.Overloaded()
				}
				if st := lr.Stats; st != nil {
					ar.Stats = api.Stats{Conns: st.Conns.Load(), InPkts: st.InPkts.Load(), OutPkts: st.OutPkts.Load(),
						InBytes: st.InBytes.Load(), OutBytes: st.OutBytes.Load()}
				}
			}
			as.Stats.Add(ar.Stats)
			as.Reals = append(as.Reals, ar)
		}
		as.Rates = d.rates.rates(serviceRateName(&as))
		for i := range as.Reals {
			as.Reals[i].Rates = d.rates.rates(realRateName(&as, &as.Reals[i]))
		}
		resp.Services = append(resp.Services, as)
	}
	return resp
}

func (d *Daemon) connections(ctx context.Context) *api.Response {
	entries, err := d.dp.Connections(ctx, nil)
	if err != nil {
		return &api.Response{Error: fmt.Sprintf("connection dump: %v", err)}
	}
	entries6, err := d.dp.Connections6(ctx, nil)
	if err != nil {
		return &api.Response{Error: fmt.Sprintf("IPv6 connection dump: %v", err)}
	}
	now := dataplane.Now()
	resp := &api.Response{TableSize: d.Config().Limits.Connections, Connections: make([]api.Connection, 0, len(entries)+len(entries6))}
	for i := range entries {
		resp.Connections = append(resp.Connections, apiConnection(&entries[i], now))
	}
	for i := range entries6 {
		resp.Connections = append(resp.Connections, apiConnection6(&entries6[i], now))
	}
	return resp
}

// apiConnection6 is apiConnection for an IPv6 connection, addresses
// written as ipvsadm writes them, in brackets.
func apiConnection6(e *conntrack.Entry6, now int64) api.Connection {
	ap := func(a [16]byte, p uint16) string { return netip.AddrPortFrom(netip.AddrFrom16(a), p).String() }
	c := api.Connection{
		Protocol: "tcp", Client: ap(e.Client, e.ClientPort), Virtual: ap(e.VIP, e.VPort), Real: ap(e.Real, e.RPort),
		State: e.State.String(), Expires: max(e.Expires-now, 0) / 1e9,
	}
	if e.Proto == 17 {
		c.Protocol = "udp"
	}
	if e.Local != ([16]byte{}) {
		c.Local = ap(e.Local, e.LPort)
	}
	return c
}

func apiConnection(e *conntrack.Entry4, now int64) api.Connection {
	ap := func(a [4]byte, p uint16) string { return netip.AddrPortFrom(netip.AddrFrom4(a), p).String() }
	c := api.Connection{
		Protocol: "tcp", Client: ap(e.Client, e.ClientPort), Virtual: ap(e.VIP, e.VPort), Real: ap(e.Real, e.RPort),
		State: e.State.String(), Expires: max(e.Expires-now, 0) / 1e9,
	}
	if e.Proto == 17 {
		c.Protocol = "udp"
	}
	if e.Local != ([4]byte{}) {
		c.Local = ap(e.Local, e.LPort)
	}
	return c
}

// ingressStatus reads the ingress table's counters, or nil without a
// table or when they cannot be read.
func (d *Daemon) ingressStatus() *api.Ingress {
	d.mu.Lock()
	t := d.ingress
	d.mu.Unlock()
	if t == nil {
		return nil
	}
	c, err := t.Counters()
	if err != nil {
		return nil
	}
	return &api.Ingress{Taken: c.Taken, LeftToKernel: c.Left}
}
