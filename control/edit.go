package control

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/dataplane"
)

// ipvsadm's messages for the errors of an edit (libipvs ipvs_strerror).
var (
	errServiceExists = errors.New("Service already exists")
	errNoService     = errors.New("No such service")
	errDestExists    = errors.New("Destination already exists")
	errNoDest        = errors.New("No such destination")
)

// edit applies one gvsadm change: to a copy of the running configuration,
// which is validated and then reloaded as a SIGHUP reload is, so services
// and reals the change does not touch keep their connections and counters.
// Read, edit and reload are one step (Daemon.Update): concurrent edits are
// applied one after the other. It lasts until the configuration file is
// reloaded.
func (d *Daemon) edit(e *api.Edit) error {
	if e.Command == api.Zero {
		return d.zero(e)
	}
	return d.Update(func(cur *config.Config) (*config.Config, error) { return editedConfig(cur, e) })
}

// editedConfig is cur with the change e made, validated; cur is unchanged.
func editedConfig(cur *config.Config, e *api.Edit) (*config.Config, error) {
	cfg := cloneConfig(cur)
	if err := applyEdit(cfg, e); err != nil {
		return nil, err
	}
	if err := config.Validate(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// cloneConfig copies c deeply enough that editing the copy's services and
// reals leaves c alone.
func cloneConfig(c *config.Config) *config.Config {
	n := *c
	n.Director.LocalAddresses = slices.Clone(c.Director.LocalAddresses)
	n.Services = make([]config.Service, len(c.Services))
	for i, s := range c.Services {
		s.SchedulerFlags = slices.Clone(s.SchedulerFlags)
		s.Reals = slices.Clone(s.Reals)
		n.Services[i] = s
	}
	return &n
}

// applyEdit makes the change e to cfg, with ipvsadm's defaults for what e
// leaves out of a new service (wlc, no persistence) or real (-g, weight 1).
func applyEdit(cfg *config.Config, e *api.Edit) error {
	switch e.Command {
	case api.Clear:
		cfg.Services = nil
		return nil
	case api.SetTimeouts:
		for _, t := range []struct {
			secs uint32
			dst  *time.Duration
		}{{e.TCP, &cfg.Timeouts.TCP}, {e.TCPFin, &cfg.Timeouts.TCPFin}, {e.UDP, &cfg.Timeouts.UDP}} {
			if t.secs > 0 {
				*t.dst = time.Duration(t.secs) * time.Second
			}
		}
		return nil
	}
	proto, vip, si, err := findService(cfg, e)
	if err != nil {
		return err
	}
	switch e.Command {
	case api.AddService:
		if si >= 0 {
			return errServiceExists
		}
		s := config.Service{Name: proto.String() + "/" + vip.String(), Protocol: proto, Address: vip,
			Scheduler: "wlc", Forward: config.DR, PersistenceNetmask: 32}
		if vip.Addr().Is6() {
			s.PersistenceNetmask = 128 // ipvsadm's default -M for an IPv6 service
		}
		editService(&s, e)
		cfg.Services = append(cfg.Services, s)
		return nil
	case api.EditService, api.DeleteService, api.AddServer, api.EditServer, api.DeleteServer:
		if si < 0 {
			return errNoService
		}
	default:
		return fmt.Errorf("unknown command %q", e.Command)
	}
	s := &cfg.Services[si]
	switch e.Command {
	case api.EditService:
		editService(s, e)
		return nil
	case api.DeleteService:
		cfg.Services = slices.Delete(cfg.Services, si, si+1)
		return nil
	}
	rip, err := netip.ParseAddrPort(e.Real)
	if err != nil {
		// ipvsadm -r takes a bare address: the service's port. An
		// IPv6 one may be in brackets ("[fd00::11]").
		bare := e.Real
		if len(bare) > 2 && bare[0] == '[' && bare[len(bare)-1] == ']' {
			bare = bare[1 : len(bare)-1]
		}
		a, aerr := netip.ParseAddr(bare)
		if aerr != nil {
			return fmt.Errorf("invalid server address %q", e.Real)
		}
		rip = netip.AddrPortFrom(a, 0)
	}
	if rip.Port() == 0 {
		rip = netip.AddrPortFrom(rip.Addr(), vip.Port())
	}
	ri := slices.IndexFunc(s.Reals, func(r config.Real) bool { return r.Address == rip })
	switch e.Command {
	case api.AddServer:
		if ri >= 0 {
			return errDestExists
		}
		r := config.Real{Address: rip, Weight: 1, Forward: config.DR, ProxyProtocol: s.ProxyProtocol}
		if err := editReal(&r, e); err != nil {
			return err
		}
		s.Reals = append(s.Reals, r)
	case api.EditServer:
		if ri < 0 {
			return errNoDest
		}
		return editReal(&s.Reals[ri], e)
	case api.DeleteServer:
		if ri < 0 {
			return errNoDest
		}
		s.Reals = slices.Delete(s.Reals, ri, ri+1)
	}
	return nil
}

// findService parses the service an edit names and returns its index in
// cfg, or -1.
func findService(cfg *config.Config, e *api.Edit) (config.Protocol, netip.AddrPort, int, error) {
	proto, err := config.ParseProtocol(e.Protocol)
	if err != nil {
		return 0, netip.AddrPort{}, -1, err
	}
	vip, err := netip.ParseAddrPort(e.Address)
	if err != nil {
		return 0, netip.AddrPort{}, -1, fmt.Errorf("invalid service address %q", e.Address)
	}
	i := slices.IndexFunc(cfg.Services, func(s config.Service) bool { return s.Protocol == proto && s.Address == vip })
	return proto, vip, i, nil
}

func editService(s *config.Service, e *api.Edit) {
	if e.Scheduler != "" {
		s.Scheduler = e.Scheduler
		s.SchedulerFlags = nil
	}
	if e.SchedulerFlags != nil {
		s.SchedulerFlags = slices.Clone(e.SchedulerFlags)
	}
	if e.Persistence != nil {
		s.Persistence = time.Duration(*e.Persistence) * time.Second
	}
	if e.Netmask != nil {
		s.PersistenceNetmask = *e.Netmask
	}
	if e.OPS != nil {
		s.OPS = *e.OPS
	}
	if e.ProxyProtocol != nil {
		s.ProxyProtocol = *e.ProxyProtocol
		for i := range s.Reals {
			if !s.Reals[i].OwnProxyProtocol {
				s.Reals[i].ProxyProtocol = s.ProxyProtocol
			}
		}
	}
}

func editReal(r *config.Real, e *api.Edit) error {
	if e.Forward != "" {
		f, err := config.ParseForward(e.Forward)
		if err != nil {
			return err
		}
		r.Forward = f
	}
	if e.Weight != nil {
		r.Weight = *e.Weight
	}
	if e.UpperThreshold != nil {
		r.UpperThreshold = *e.UpperThreshold
	}
	if e.LowerThreshold != nil {
		r.LowerThreshold = *e.LowerThreshold
	}
	if e.ProxyProtocol != nil {
		r.ProxyProtocol, r.OwnProxyProtocol = *e.ProxyProtocol, true
	}
	return nil
}

// zero resets the traffic counters of one service's reals, or of every
// real (ipvsadm -Z).
func (d *Daemon) zero(e *api.Edit) error {
	t := d.dp.Table()
	if t == nil {
		return nil
	}
	var only *config.Service
	if e.Address != "" {
		cfg := d.Config()
		_, _, i, err := findService(cfg, e)
		if err != nil {
			return err
		}
		if i < 0 {
			return errNoService
		}
		only = &cfg.Services[i]
	}
	zero := func(svc *dataplane.Service) {
		for _, id := range svc.Reals {
			if st := t.Reals[id].Stats; st != nil {
				st.Conns.Store(0)
				st.InPkts.Store(0)
				st.OutPkts.Store(0)
				st.InBytes.Store(0)
				st.OutBytes.Store(0)
			}
		}
	}
	for k, svc := range t.Services {
		if only == nil || only.Address.Addr().Is4() && k == serviceKey(only) {
			zero(svc)
		}
	}
	for k, svc := range t.Services6 {
		if only == nil || only.Address.Addr().Is6() && k == serviceKey6(only) {
			zero(svc)
		}
	}
	return nil
}
