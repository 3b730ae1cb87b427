package control

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// captureQueue is how many recorded frames wait for the API stream; more
// are dropped and counted.
const captureQueue = 4096

// Capture runs a packet capture for gvsadm capture (api.OpCapture): it
// streams every frame req selects until its count or time is reached or
// the caller goes away, then the end event.
func (d *Daemon) Capture(ctx context.Context, req *api.Request, emit func(*api.CaptureEvent) error) {
	cr := req.Capture
	if cr == nil {
		cr = &api.CaptureRequest{}
	}
	f, err := captureFilter(cr)
	if err != nil {
		emit(&api.CaptureEvent{Error: err.Error()})
		return
	}
	c, err := d.dp.StartCapture(f, cr.Count, captureQueue)
	if err != nil {
		emit(&api.CaptureEvent{Error: "a capture is already running; one at a time"})
		return
	}
	defer d.dp.StopCapture(c)
	var timeout <-chan time.Time
	if cr.Seconds > 0 {
		t := time.NewTimer(time.Duration(cr.Seconds * float64(time.Second)))
		defer t.Stop()
		timeout = t.C
	}
	reason := "stopped"
	sent := uint64(0)
loop:
	for cr.Count == 0 || sent < cr.Count {
		select {
		case <-ctx.Done():
			break loop
		case <-d.stop:
			break loop
		case <-timeout:
			reason = "time"
			break loop
		case fr := <-c.Frames():
			if emit(&api.CaptureEvent{Packet: capturedPacket(&fr)}) != nil {
				return
			}
			sent++
		}
	}
	if cr.Count != 0 && sent >= cr.Count {
		reason = "count"
	}
	d.dp.StopCapture(c)
	emit(&api.CaptureEvent{End: &api.CaptureEnd{Matched: c.Matched(), Dropped: c.Dropped(), Reason: reason}})
}

// capturedPacket is what the API says of a recorded frame.
func capturedPacket(f *dataplane.CapturedFrame) *api.CapturedPacket {
	p := &api.CapturedPacket{Time: f.Time, Worker: f.Worker, In: f.In, Out: f.Out, Verdict: f.Verdict.String()}
	if f.Service != (dataplane.ServiceKey{}) {
		p.Service = serviceName(f.Service.Proto, netip.AddrPortFrom(netip.AddrFrom4(f.Service.VIP), f.Service.Port))
	}
	if f.Service6 != (dataplane.ServiceKey6{}) {
		p.Service = serviceName(f.Service6.Proto, netip.AddrPortFrom(netip.AddrFrom16(f.Service6.VIP), f.Service6.Port))
	}
	if f.Real.IsValid() {
		p.Real, p.Forward = f.Real.String(), f.Forward.String()
	}
	return p
}

// serviceName is "tcp:VIP:port", or "tcp:[VIP]:port" for IPv6.
func serviceName(proto uint8, vip netip.AddrPort) string {
	name := "udp"
	if proto == header.ProtoTCP {
		name = "tcp"
	}
	return name + ":" + vip.String()
}

// captureFilter turns a capture request into the dataplane's filter,
// refusing what it cannot mean.
func captureFilter(r *api.CaptureRequest) (dataplane.CaptureFilter, error) {
	var f dataplane.CaptureFilter
	protos := map[string]uint8{"tcp": header.ProtoTCP, "udp": header.ProtoUDP, "icmp": header.ProtoICMP}
	if r.Protocol != "" {
		p, ok := protos[r.Protocol]
		if !ok {
			return f, fmt.Errorf("capture: protocol %q: want tcp, udp or icmp", r.Protocol)
		}
		f.Proto = p
	}
	if r.Service != "" {
		proto, addr, ok := strings.Cut(r.Service, ":")
		ap, err := netip.ParseAddrPort(addr)
		if !ok || err != nil || (proto != "tcp" && proto != "udp") || ap.Addr().Zone() != "" || ap.Addr().Is4In6() {
			return f, fmt.Errorf("capture: service %q: want tcp:VIP:port or udp:VIP:port (IPv6: tcp:[VIP]:port)", r.Service)
		}
		if ap.Addr().Is6() {
			f.Service6 = &dataplane.ServiceKey6{Proto: protos[proto], VIP: ap.Addr().As16(), Port: ap.Port()}
		} else {
			f.Service = &dataplane.ServiceKey{Proto: protos[proto], VIP: ap.Addr().As4(), Port: ap.Port()}
		}
	}
	if r.Real != "" {
		ap, err := netip.ParseAddrPort(r.Real)
		if err != nil {
			a, aerr := netip.ParseAddr(r.Real)
			if aerr != nil {
				return f, fmt.Errorf("capture: real %q: want RIP or RIP:port (IPv6: [RIP]:port)", r.Real)
			}
			ap = netip.AddrPortFrom(a, 0)
		}
		if ap.Addr().Zone() != "" || ap.Addr().Is4In6() {
			return f, fmt.Errorf("capture: real %q: want RIP or RIP:port (IPv6: [RIP]:port)", r.Real)
		}
		f.Real = ap
	}
	if r.Host != "" {
		p, err := netip.ParsePrefix(r.Host)
		if err != nil {
			a, aerr := netip.ParseAddr(r.Host)
			if aerr != nil {
				return f, fmt.Errorf("capture: host %q: want an address or a prefix", r.Host)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return f, fmt.Errorf("capture: host %q: want an address or a prefix", r.Host)
		}
		f.Host = p.Masked()
	}
	f.Port = r.Port
	names := dataplane.VerdictNames()
	for _, v := range r.Verdicts {
		i := slices.Index(names, v)
		if i < 0 {
			return f, fmt.Errorf("capture: verdict %q: want one of %s", v, strings.Join(names, ", "))
		}
		f.Verdicts |= 1 << (i + 1) // VerdictNames starts at VerdictForward, 1
	}
	if r.Seconds < 0 {
		return f, fmt.Errorf("capture: seconds %v is negative", r.Seconds)
	}
	return f, nil
}
