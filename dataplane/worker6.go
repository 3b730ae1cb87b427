package dataplane

import (
	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

// The IPv6 path. parse hands an IPv6 frame over unread (verdictIPv6), and
// handle passes it here, so the IPv4 path keeps its small keys and its
// code; an IPv6 connection lives in the worker's Shard6, beside the IPv4
// ones in its Shard4, with the same schedulers, counters and templates.
// DR, TUN (IPv6-in-IPv6, tun6.go), NAT and FULLNAT (fullnat6.go), for TCP
// and UDP, with the SYN proxy (synproxy6.go) and the PROXY protocol
// (proxyproto6.go), and ICMPv6 errors about their connections
// (icmpError6), fragments included (fragment6.go); IPv6 connections are
// dumped (Connections6) and synced (syncReport6, install6), but not warmed
// before a batch.

// verdictIPv6 is parse's mark on an IPv6 frame: handle reads it with
// parse6. It is never counted.
const verdictIPv6 Verdict = 0xff

// parsed6 is what parse6 reads of an IPv6 TCP or UDP frame.
type parsed6 struct {
	frame []byte // padding cut off
	key   conntrack.Key6
	l4    int // where the transport header starts in frame
	flags uint8
	// A fragment (fragment6.go): fragFirst or fragLater, and its
	// identification.
	frag   uint8
	fragID uint32
}

// parse6 validates the IPv6 frame and its extension headers and reads the
// connection key into p, or returns the verdict of a frame that goes no
// further (p is then not meaningful). It fills p in place: the result is
// too big to return by value on every packet.
func parse6(frame []byte, p *parsed6) Verdict {
	if len(frame) < header.EthernetLen+header.IPv6MinLen {
		return VerdictMalformed
	}
	ip := header.IPv6(frame[header.EthernetLen:])
	if !ip.IsValid(len(ip)) {
		return VerdictMalformed
	}
	// Drop Ethernet padding: everything after the payload length.
	ip = ip[:header.IPv6MinLen+int(ip.PayloadLength())]
	x, ok := ip.WalkExtensions()
	if !ok {
		return VerdictIPv6Unparsed
	}
	if x.IsFragment() {
		if v, done := parseFragment6(frame, ip, &x, p); done {
			return v
		}
	}
	l4 := ip[x.Offset:]
	switch x.Proto {
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		if !tcp.IsValid(len(l4)) {
			return VerdictMalformed
		}
		p.key.SrcPort, p.key.DstPort, p.flags = tcp.SourcePort(), tcp.DestinationPort(), tcp.Flags()
	case header.ProtoUDP:
		udp := header.UDP(l4)
		if !udp.IsValid(len(l4)) && p.frag != fragFirst { // a first fragment's UDP length is the datagram's
			return VerdictMalformed
		}
		p.key.SrcPort, p.key.DstPort, p.flags = udp.SourcePort(), udp.DestinationPort(), 0
	case header.ProtoICMPv6:
		// An error about a connection is relayed (icmpError6);
		// neighbour discovery, echo and the rest are the kernel's.
		p.frame, p.l4 = frame[:header.EthernetLen+len(ip)], header.EthernetLen+x.Offset
		return verdictICMPv6
	default:
		return VerdictNoService
	}
	p.frame, p.l4 = frame[:header.EthernetLen+len(ip)], header.EthernetLen+x.Offset
	p.key.Proto = x.Proto
	p.key.Src, p.key.Dst = ip.Source(), ip.Destination()
	return 0
}

// handle6 is handle for an IPv6 frame (p.v == verdictIPv6, p.frame the
// whole frame, at buf[Headroom:]).
func (w *Worker) handle6(t *Table, buf []byte, p *parsed, now int64) ([]byte, Verdict) {
	s := w.shard6.Load()
	if s == nil {
		// No table has had an IPv6 service yet: IPv6 is not this
		// worker's, as before there was an IPv6 path.
		return nil, VerdictNotIPv4
	}
	var q parsed6
	if v := parse6(p.frame, &q); v != 0 {
		if v == verdictICMPv6 {
			return w.icmpError6(t, s, &q, &p.off) // fullnat6.go
		}
		return nil, v
	}
	if p.off.Flags&header.OffloadNeedsCsum != 0 || p.off.GSOType != header.GSONone {
		if !offloadUsable6(&q, &p.off) {
			return nil, VerdictOffload
		}
	}
	if t == nil {
		return nil, VerdictNoService
	}
	if q.frag == fragLater {
		return w.later6(t, buf, &q, now) // fragment6.go
	}
	frame := q.frame
	eth := header.Ethernet(frame)
	key, flags := &q.key, q.flags
	e, reply := s.Lookup(key)
	var r *Real
	if e != nil {
		r = t.real(e.RealID)
		if !w.keep6(s, e, r, reply, flags, now) {
			e = nil
		}
	}
	if e == nil {
		svc := t.Services6[ServiceKey6{Proto: key.Proto, VIP: key.Dst, Port: key.DstPort}]
		if svc != nil && svc.SynProxy {
			return w.synProxyMiss6(t, s, svc, &q, &p.off, now) // synproxy6.go
		}
		var v Verdict
		if e, v = w.newConn6(t, s, svc, key, eth, flags, now); e == nil {
			return nil, v
		}
		r = t.real(e.RealID)
		if r != nil && key.Proto == header.ProtoTCP && r.Forward == ForwardFullNAT && e != &w.opsEntry6 {
			w.fullnatOpen6(s, e, r, &q, now) // fullnat6.go
		}
	}
	if r == nil || !r.Ready {
		return nil, VerdictNoReal
	}
	if e.Flags&flagSynProxy != 0 {
		if f, v, done := w.synProxyConn6(t, s, e, r, reply, &q, &p.off, now); done {
			return f, v
		}
		if e.Flags&flagProxyPending != 0 {
			w.proxyPending6(t, s, e, r, reply, &q, &p.off, now) // proxyproto6.go
		}
	} else if e.Flags&(flagSeqXlate|flagProxyPending) != 0 || r.Proxy != 0 {
		if !w.translate6(t, s, e, r, reply, &q, &p.off, now) { // proxyproto6.go
			return nil, VerdictTableFull
		}
	}
	if q.frag == fragFirst {
		w.noteFirst6(t, &q, e, r, reply, now) // fragment6.go
	}
	n := uint64(len(frame) - header.EthernetLen)
	if reply {
		w.track6(t, e, r, conntrack.DirOutput, flags, now)
		r.Stats.OutPkts.Add(1)
		r.Stats.OutBytes.Add(n)
		return w.rewriteReply6(t, e, &q, &p.off), VerdictForward
	}
	e.ClientMAC = eth.Source()
	e.Flags &^= flagPeer // sync.go
	dir := conntrack.DirInput
	if f := Forward(e.Forward); f == ForwardDR || f == ForwardTUN {
		dir = conntrack.DirInputOnly
	}
	w.track6(t, e, r, dir, flags, now)
	r.Stats.InPkts.Add(1)
	r.Stats.InBytes.Add(n)
	return w.rewriteRequest6(t, e, r, buf, &q, &p.off)
}

// offloadUsable6 is offloadUsable for an IPv6 frame: a partial checksum
// starts at the transport header, behind any extension headers, and sits
// in its checksum field; a GSO frame is TCPv6 or UDP L4 segmentation with
// a partial checksum and a segment size. A fragment carries no offload.
func offloadUsable6(q *parsed6, o *header.Offload) bool {
	if q.frag != 0 {
		return false
	}
	if o.Flags&header.OffloadNeedsCsum != 0 {
		if int(o.CsumStart) != q.l4 || o.CsumOffset != l4ChecksumOffset(q.key.Proto) {
			return false
		}
	}
	switch o.GSOType &^ header.GSOECN {
	case header.GSONone:
		return true
	case header.GSOTCPv6:
		return q.key.Proto == header.ProtoTCP && o.GSOSize > 0 && o.Flags&header.OffloadNeedsCsum != 0
	case header.GSOUDPL4:
		return q.key.Proto == header.ProtoUDP && o.GSOSize > 0 && o.Flags&header.OffloadNeedsCsum != 0
	}
	return false
}

// passOffload6 is passOffload for an IPv6 frame: the headers every segment
// repeats end after the transport header.
func (w *Worker) passOffload6(q *parsed6, o *header.Offload) {
	if o.Flags&header.OffloadNeedsCsum == 0 && o.GSOType == header.GSONone {
		return
	}
	w.txOff = header.Offload{Flags: o.Flags & header.OffloadNeedsCsum, GSOType: o.GSOType, GSOSize: o.GSOSize,
		CsumStart: o.CsumStart, CsumOffset: o.CsumOffset}
	hl := q.l4 + header.UDPLen
	if q.key.Proto == header.ProtoTCP {
		hl = q.l4 + header.TCP(q.frame[q.l4:]).DataOffset()
	}
	w.txOff.HdrLen = uint16(hl)
}

// keep6 is keep for an IPv6 connection.
func (w *Worker) keep6(s *conntrack.Shard6, e *conntrack.Entry6, r *Real, reply bool, flags uint8, now int64) bool {
	switch {
	case e.Expires <= now:
		w.C.LateExpired.Add(1)
	case reply:
		return true
	case e.Proto == header.ProtoTCP && flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) == header.TCPFlagSyn &&
		(e.State == conntrack.TCPTimeWait || e.State == conntrack.TCPFinWait || e.State == conntrack.TCPClose):
		w.C.Reused.Add(1)
	case r != nil && r.Ready:
		return true
	case e.Proto == header.ProtoUDP || flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) == header.TCPFlagSyn:
		w.C.Rescheduled.Add(1)
	default:
		return true // a segment of a connection whose real is gone: dropped by handle6
	}
	w.release6(e)
	s.Delete(e)
	return false
}

// track6 is track for an IPv6 connection: a TCP state change goes to
// connection sync.
func (w *Worker) track6(t *Table, e *conntrack.Entry6, r *Real, dir conntrack.Direction, flags uint8, now int64) {
	if e.Proto == header.ProtoTCP {
		old := e.Transition(dir, flags)
		if a, b := conntrack.IsActive(old), conntrack.IsActive(e.State); a != b {
			if b {
				r.Counters.Activate()
			} else {
				r.Counters.Deactivate()
			}
		}
		e.Expires = now + int64(t.Timeouts.Timeout(e.State))
		if old != e.State {
			w.syncReport6(e)
		}
		return
	}
	e.Expires = now + int64(t.Timeouts.Timeout(e.State))
}

// release6 is release for an IPv6 connection.
func (w *Worker) release6(e *conntrack.Entry6) {
	if e.Flags&flagProxyPending != 0 {
		w.proxyRelease6(e)
	}
	if e.PersistBits != 0 {
		k := conntrack.MaskedTemplateKey6(e.Client, e.VIP, e.VPort, e.Proto, e.PersistBits)
		w.templates.Release(&k, e.RealID, w.now)
	}
	if w.cur == nil {
		return
	}
	if r := w.cur.real(e.RealID); r != nil && r.Counters != nil {
		r.Counters.Unbind(conntrack.IsActive(e.State))
	}
}

func (w *Worker) onExpire6(e *conntrack.Entry6) {
	w.C.ExpiredConns.Add(1)
	w.release6(e)
}

func (w *Worker) onEvict6(e *conntrack.Entry6) {
	w.C.Evicted.Add(1)
	w.release6(e)
}

// flowOf6 is the scheduler's view of a new IPv6 connection.
func flowOf6(k *conntrack.Key6, now int64) schedule.Flow {
	return schedule.Flow{Src: k.Src, Dst: k.Dst, SrcPort: k.SrcPort, DstPort: k.DstPort, Proto: k.Proto, Now: now}
}

// newConn6 is newConn for an IPv6 client packet: it schedules the
// connection (persistence included) and inserts it into s.
func (w *Worker) newConn6(t *Table, s *conntrack.Shard6, svc *Service, k *conntrack.Key6, eth header.Ethernet, flags uint8, now int64) (*conntrack.Entry6, Verdict) {
	if svc == nil {
		return nil, VerdictNoService
	}
	if k.Proto == header.ProtoTCP && flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) != header.TCPFlagSyn {
		return nil, VerdictNoConn
	}
	if s.Full() && !svc.OPS {
		if !s.Evict(now, w.onEvict6Fn) {
			return nil, VerdictTableFull
		}
	}
	w.flow = flowOf6(k, now)
	var tk conntrack.TemplateKey
	if svc.Persist > 0 {
		tk = conntrack.MaskedTemplateKey6(k.Src, k.Dst, k.DstPort, k.Proto, svc.PersistBits)
	}
	r, persist, v := w.scheduleReal(t, svc, &tk, true, now)
	if v != 0 {
		return nil, v
	}
	ne := conntrack.Entry6{
		Client: k.Src, ClientPort: k.SrcPort,
		VIP: k.Dst, VPort: k.DstPort,
		Real: r.Addr6, RPort: r.Port,
		RealID:      r.ID,
		Forward:     uint8(r.Forward),
		Proto:       k.Proto,
		ClientMAC:   eth.Source(),
		State:       conntrack.UDP,
		PersistBits: persist,
	}
	if svc.OPS {
		// One-packet scheduling: a transient entry, as newConn's.
		w.opsEntry6 = ne
		r.Stats.Conns.Add(1)
		w.C.NewConns.Add(1)
		return &w.opsEntry6, 0
	}
	if k.Proto == header.ProtoTCP {
		ne.State = conntrack.StateNone
	}
	ne.Expires = now + int64(t.Timeouts.Timeout(ne.State))
	// DR replies never come back through us: one key. NAT needs both,
	// and FULLNAT a local address and port for the reply's.
	var e *conntrack.Entry6
	if r.Forward == ForwardFullNAT {
		e = w.insertFullNAT6(t, s, k, &ne, now) // fullnat6.go
	} else {
		e, _ = s.Insert(&ne, r.Forward == ForwardNAT)
	}
	if e == nil {
		if persist != 0 {
			tk := conntrack.MaskedTemplateKey6(k.Src, k.Dst, k.DstPort, k.Proto, persist)
			w.templates.Release(&tk, r.ID, now)
		}
		return nil, VerdictTableFull
	}
	r.Counters.Bind(false)
	r.Stats.Conns.Add(1)
	w.C.NewConns.Add(1)
	if e.Proto == header.ProtoUDP {
		// A TCP connection is reported by track6, as it leaves NONE.
		w.syncReport6(e)
	}
	return e, 0
}

// rewriteRequest6 turns an IPv6 client packet (its frame at
// buf[Headroom:]) into what the real server must receive: DR rewrites the
// MACs only, NAT the destination address and port too, FULLNAT the source
// as well, to the connection's local address and port, and TUN wraps it in
// an outer IPv6 header (tun6.go).
func (w *Worker) rewriteRequest6(t *Table, e *conntrack.Entry6, r *Real, buf []byte, q *parsed6, off *header.Offload) ([]byte, Verdict) {
	frame := q.frame
	partial := off.Flags&header.OffloadNeedsCsum != 0
	switch r.Forward {
	case ForwardDR:
	case ForwardNAT:
		rewriteDst6(q, r.Addr6, r.Port, partial)
	case ForwardFullNAT:
		rewriteSrc6(q, e.Local, e.LPort, partial)
		rewriteDst6(q, r.Addr6, r.Port, partial)
	case ForwardTUN:
		return w.tunnel6(t, r, buf, q, off)
	default:
		return nil, VerdictNoReal
	}
	w.passOffload6(q, off)
	eth := header.Ethernet(frame)
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	return frame, VerdictForward
}

// rewriteReply6 turns a NAT or FULLNAT reply from the real server back into
// the packet the client expects, from VIP:port (and, FULLNAT, to the
// client's address and port).
func (w *Worker) rewriteReply6(t *Table, e *conntrack.Entry6, q *parsed6, off *header.Offload) []byte {
	partial := off.Flags&header.OffloadNeedsCsum != 0
	rewriteSrc6(q, e.VIP, e.VPort, partial)
	if Forward(e.Forward) == ForwardFullNAT {
		rewriteDst6(q, e.Client, e.ClientPort, partial)
	}
	w.passOffload6(q, off)
	eth := header.Ethernet(q.frame)
	mac := e.ClientMAC
	if mac == ([6]byte{}) {
		mac = t.GatewayMAC
	}
	eth.SetDestination(mac)
	eth.SetSource(t.MAC)
	return q.frame
}

// rewriteDst6 sets the destination address and port of a parsed IPv6 TCP
// or UDP packet, updating the transport checksum incrementally for the
// pseudo-header and the port (RFC 1624); IPv6 has no header checksum. With
// a partial checksum only its pseudo-header part changes, as rewriteDst's.
func rewriteDst6(q *parsed6, addr [16]byte, port uint16, partial bool) {
	ip := header.IPv6(q.frame[header.EthernetLen:])
	old := ip.Destination()
	ip.SetDestination(addr)
	l4 := q.frame[q.l4:]
	switch q.key.Proto {
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		if partial {
			tcp.UpdatePartialChecksumPseudoHeaderAddress6(old, addr)
			tcp.SetDestinationPort(port)
			return
		}
		tcp.UpdateChecksumPseudoHeaderAddress6(old, addr)
		tcp.SetDestinationPortWithChecksumUpdate(port)
	case header.ProtoUDP:
		udp := header.UDP(l4)
		if partial {
			udp.UpdatePartialChecksumPseudoHeaderAddress6(old, addr)
			udp.SetDestinationPort(port)
			return
		}
		udp.UpdateChecksumPseudoHeaderAddress6(old, addr)
		udp.SetDestinationPortWithChecksumUpdate(port)
	}
}

// rewriteSrc6 is rewriteDst6 for the source.
func rewriteSrc6(q *parsed6, addr [16]byte, port uint16, partial bool) {
	ip := header.IPv6(q.frame[header.EthernetLen:])
	old := ip.Source()
	ip.SetSource(addr)
	l4 := q.frame[q.l4:]
	switch q.key.Proto {
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		if partial {
			tcp.UpdatePartialChecksumPseudoHeaderAddress6(old, addr)
			tcp.SetSourcePort(port)
			return
		}
		tcp.UpdateChecksumPseudoHeaderAddress6(old, addr)
		tcp.SetSourcePortWithChecksumUpdate(port)
	case header.ProtoUDP:
		udp := header.UDP(l4)
		if partial {
			udp.UpdatePartialChecksumPseudoHeaderAddress6(old, addr)
			udp.SetSourcePort(port)
			return
		}
		udp.UpdateChecksumPseudoHeaderAddress6(old, addr)
		udp.SetSourcePortWithChecksumUpdate(port)
	}
}

// enableIPv6 gives the worker its IPv6 connection shard, of the same
// capacity as its IPv4 one, unless it has one: Dataplane.Publish calls it
// before it publishes the first table with an IPv6 service, so the memory
// of an IPv6 table is taken (and touched) only by directors that need it,
// and not on a worker's packet path.
func (w *Worker) enableIPv6() {
	if w.shard6.Load() == nil {
		w.shard6.Store(conntrack.NewShard[[16]byte](w.capacity))
	}
}

// expire6 runs one piece of the sweep over the IPv6 shard, if there is
// one, within expire's bounds: at most scan cells, and none after the
// deadline.
func (w *Worker) expire6(now int64, scan int, deadline int64) {
	s := w.shard6.Load()
	if s == nil {
		return
	}
	for scanned := 0; scanned < min(scan, s.Cells()) && nanotime() < deadline; scanned += expireChunk {
		s.Expire(now, expireChunk, w.onExpire6Fn)
	}
}

// conns is the number of connections in the worker's shards.
func (w *Worker) conns() int64 {
	n := w.shard.Len()
	if s := w.shard6.Load(); s != nil {
		n += s.Len()
	}
	return int64(n)
}
