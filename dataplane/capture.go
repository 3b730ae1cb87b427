package dataplane

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// Packet capture: while a Capture is set, each worker checks every frame
// of its batches against the capture's filter and hands copies of the
// matching ones, as they arrived and as they left, with the verdict and
// the real, to the capture's bounded queue, dropping (and counting) what
// does not fit. While none is set a batch costs one atomic load.

// CaptureFilter selects the frames a Capture records. Zero fields match
// everything.
type CaptureFilter struct {
	Proto   uint8       // IP protocol: 6 TCP, 17 UDP, 1 ICMP
	Service *ServiceKey // the connection's service (frames to the VIP and replies of its connections)
	// Service6 is Service for an IPv6 service; one of the two at most.
	Service6 *ServiceKey6
	// Real is the real server the frame's connection goes to; its port 0
	// matches any port.
	Real netip.AddrPort
	// Host matches frames from or to an address in it: a client prefix,
	// or a real server. An IPv4 prefix matches IPv4 frames, an IPv6 one
	// IPv6 frames.
	Host netip.Prefix
	// Port matches frames from or to it.
	Port uint16
	// Verdicts is a bit set of the verdicts to record (1 << Verdict).
	Verdicts uint32
}

// CapturedFrame is one recorded frame: the frame as it arrived and, if
// one was sent, the frame that left. A frame the worker made and sent
// besides (a PROXY header, the SYN proxy's held client segments, the
// outer fragments of a TUN packet after the first) is a CapturedFrame of
// its own, with In nil, and the verdict and real of the frame it came
// with.
type CapturedFrame struct {
	Time    time.Time
	Worker  int
	In, Out []byte
	Verdict Verdict
	// Real is the real server of the frame's connection, when it has
	// one; Forward its forwarding method.
	Real    netip.AddrPort
	Forward Forward
	Service ServiceKey // zero when the frame has none
	// Service6 is the service of an IPv6 frame, zero when it has none.
	Service6 ServiceKey6
}

// Capture is a running packet capture (StartCapture).
type Capture struct {
	filter  CaptureFilter
	frames  chan CapturedFrame
	limit   uint64 // frames to record at most, 0 = no limit
	matched atomic.Uint64
	dropped atomic.Uint64
}

// ErrCaptureRunning is StartCapture's error while another capture runs.
var ErrCaptureRunning = errors.New("dataplane: a capture is already running")

// StartCapture starts recording the frames f selects, at most limit of
// them (0 = until StopCapture), into a queue of queue frames that
// Frames drains; a frame that finds the queue full is dropped and counted.
// One capture runs at a time.
func (d *Dataplane) StartCapture(f CaptureFilter, limit uint64, queue int) (*Capture, error) {
	c := &Capture{filter: f, frames: make(chan CapturedFrame, max(queue, 1)), limit: limit}
	if !d.capture.CompareAndSwap(nil, c) {
		return nil, ErrCaptureRunning
	}
	return c, nil
}

// StopCapture stops c. Workers may still be putting a last frame or two
// into its queue; the caller stops reading when it likes.
func (d *Dataplane) StopCapture(c *Capture) { d.capture.CompareAndSwap(c, nil) }

// Frames is the queue of recorded frames.
func (c *Capture) Frames() <-chan CapturedFrame { return c.frames }

// Matched returns how many frames matched the filter, up to the limit.
func (c *Capture) Matched() uint64 {
	n := c.matched.Load()
	if c.limit != 0 {
		n = min(n, c.limit)
	}
	return n
}

// Dropped returns how many matching frames found the queue full.
func (c *Capture) Dropped() uint64 { return c.dropped.Load() }

// before reports whether a frame, as parse read it, may match the filter
// before it is handled: everything but the verdict and the real, which
// only handling tells.
func (f *CaptureFilter) before(p *parsed) bool {
	if p.v != 0 {
		return f.keyless()
	}
	k := &p.key
	if f.Service6 != nil || f.Proto != 0 && k.Proto != f.Proto {
		return false
	}
	if f.Port != 0 && k.SrcPort != f.Port && k.DstPort != f.Port {
		return false
	}
	if f.Host.IsValid() && !f.Host.Contains(netip.AddrFrom4(k.Src)) && !f.Host.Contains(netip.AddrFrom4(k.Dst)) {
		return false
	}
	return true
}

// keyless reports whether a frame without a connection key (one parse
// or parse6 refused) may match: only the verdict filter applies to it.
func (f *CaptureFilter) keyless() bool {
	return f.Proto == 0 && f.Service == nil && f.Service6 == nil && !f.Real.IsValid() && !f.Host.IsValid() && f.Port == 0
}

// before6 is before for an IPv6 frame parse6 read (k its key).
func (f *CaptureFilter) before6(k *conntrack.Key6) bool {
	if f.Service != nil || f.Proto != 0 && k.Proto != f.Proto {
		return false
	}
	if f.Port != 0 && k.SrcPort != f.Port && k.DstPort != f.Port {
		return false
	}
	if f.Host.IsValid() && !f.Host.Contains(netip.AddrFrom16(k.Src)) && !f.Host.Contains(netip.AddrFrom16(k.Dst)) {
		return false
	}
	return true
}

// after reports whether a handled frame matches the rest of the filter:
// svc is its IPv4 service, svc6 its IPv6 one (zero if none).
func (f *CaptureFilter) after(v Verdict, svc ServiceKey, svc6 ServiceKey6, real netip.AddrPort) bool {
	if f.Verdicts != 0 && f.Verdicts&(1<<v) == 0 {
		return false
	}
	if f.Service != nil && svc != *f.Service {
		return false
	}
	if f.Service6 != nil && svc6 != *f.Service6 {
		return false
	}
	if f.Real.IsValid() && (real.Addr() != f.Real.Addr() || f.Real.Port() != 0 && real.Port() != f.Real.Port()) {
		return false
	}
	return true
}

// capturePre copies the frame of batch slot i if it may match c, into
// w.capIn[i] (nil if not).
func (w *Worker) capturePre(c *Capture, i int) {
	w.capIn[i] = nil
	p := &w.parsed[i]
	in := w.bufs[i][Headroom : Headroom+w.sizes[i]]
	ok := false
	if p.v == verdictIPv6 {
		// Read here as well as in handle6: a capture is the slow path.
		var q parsed6
		if parse6(p.frame, &q) != 0 {
			ok = c.filter.keyless()
		} else {
			ok = c.filter.before6(&q.key)
		}
	} else {
		ok = c.filter.before(p)
	}
	if ok {
		w.capIn[i] = append([]byte(nil), in...)
	}
}

// service6Of is the IPv6 service and real of the IPv6 frame in (a copy
// of the frame as it arrived), as capturePost reports them.
func (w *Worker) service6Of(t *Table, in []byte) (ServiceKey6, netip.AddrPort, Forward) {
	var q parsed6
	s := w.shard6.Load()
	if t == nil || s == nil || parse6(in, &q) != 0 {
		return ServiceKey6{}, netip.AddrPort{}, 0
	}
	svc := ServiceKey6{Proto: q.key.Proto, VIP: q.key.Dst, Port: q.key.DstPort}
	if e, _ := s.Lookup(&q.key); e != nil {
		svc = ServiceKey6{Proto: e.Proto, VIP: e.VIP, Port: e.VPort}
		if r := t.real(e.RealID); r != nil {
			return svc, netip.AddrPortFrom(netip.AddrFrom16(r.Addr6), r.Port), r.Forward
		}
		return svc, netip.AddrPort{}, 0
	}
	if t.Services6[svc] == nil {
		svc = ServiceKey6{}
	}
	return svc, netip.AddrPort{}, 0
}

// capturePost records batch slot i, handled with verdict v and output out,
// if it matches c.
func (w *Worker) capturePost(c *Capture, t *Table, i int, out []byte, v Verdict) {
	in := w.capIn[i]
	if in == nil {
		return
	}
	w.capIn[i] = nil
	p := &w.parsed[i]
	var svc ServiceKey
	var svc6 ServiceKey6
	var real netip.AddrPort
	var fwd Forward
	if p.v == verdictIPv6 {
		svc6, real, fwd = w.service6Of(t, in)
	} else if p.v == 0 && p.key.Proto != header.ProtoICMP && t != nil {
		svc = ServiceKey{Proto: p.key.Proto, VIP: p.key.Dst, Port: p.key.DstPort}
		if e, _ := w.shard.Lookup(&p.key); e != nil {
			svc = ServiceKey{Proto: e.Proto, VIP: e.VIP, Port: e.VPort}
			if r := t.real(e.RealID); r != nil {
				real, fwd = netip.AddrPortFrom(netip.AddrFrom4(r.Addr), r.Port), r.Forward
			}
		} else if t.Services[svc] == nil {
			svc = ServiceKey{}
		}
	}
	if !c.filter.after(v, svc, svc6, real) {
		return
	}
	if n := c.matched.Add(1); c.limit != 0 && n > c.limit {
		return
	}
	f := CapturedFrame{Time: time.Now(), Worker: w.id, In: in, Verdict: v, Real: real, Forward: fwd, Service: svc, Service6: svc6}
	if out != nil {
		f.Out = append([]byte(nil), out...)
	}
	c.put(f)
	// The frames the worker sent besides out for this one (a PROXY
	// header, the SYN proxy's held segments, TUN outer fragments): each
	// recorded as sent, without a frame that came in.
	for _, x := range w.extra[w.extraSent:] {
		if n := c.matched.Add(1); c.limit != 0 && n > c.limit {
			return
		}
		f.In, f.Out = nil, append([]byte(nil), x...)
		c.put(f)
	}
}

// put queues f, or counts it dropped.
func (c *Capture) put(f CapturedFrame) {
	select {
	case c.frames <- f:
	default:
		c.dropped.Add(1)
	}
}

// captureOwn records frame f, which the worker made and sent on its own
// for the connection e (a PROXY header sent again), if the running
// capture, if any, wants it: In is nil.
func (w *Worker) captureOwn(t *Table, e *conntrack.Entry4, f []byte) {
	if w.capture == nil {
		return
	}
	c := w.capture.Load()
	if c == nil {
		return
	}
	ip := header.IPv4(f[header.EthernetLen:])
	tcp := header.TCP(ip.Payload())
	p := parsed{frame: f, key: conntrack.Key4{Src: ip.Source(), Dst: ip.Destination(), SrcPort: tcp.SourcePort(),
		DstPort: tcp.DestinationPort(), Proto: ip.Protocol()}}
	svc := ServiceKey{Proto: e.Proto, VIP: e.VIP, Port: e.VPort}
	var real netip.AddrPort
	var fwd Forward
	if r := t.real(e.RealID); r != nil {
		real, fwd = netip.AddrPortFrom(netip.AddrFrom4(r.Addr), r.Port), r.Forward
	}
	if !c.filter.before(&p) || !c.filter.after(VerdictForward, svc, ServiceKey6{}, real) {
		return
	}
	if n := c.matched.Add(1); c.limit != 0 && n > c.limit {
		return
	}
	c.put(CapturedFrame{Time: time.Now(), Worker: w.id, Out: append([]byte(nil), f...), Verdict: VerdictForward,
		Real: real, Forward: fwd, Service: svc})
}
