package dataplane

import (
	"encoding/binary"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// The SYN proxy for IPv6 services: what synproxy.go does for IPv4 ones,
// on the worker's Shard6. The cookie binds the client's and the VIP's
// IPv6 addresses (folded by a keyed hash first, cookieWords6), the ports
// and the client's ISN; the SYN to the real carries the director's ISN
// for the IPv6 tuple the real sees (proxyISN6); the segments the director
// builds (the cookie SYN-ACK, the SYN to the real, the ACK that completes
// the real's handshake) are IPv6 packets with the hop limit of the IPv4
// ones' TTL. Client segments that arrive before the real's SYN-ACK wait
// in slots of their own (Worker.sp6). A real that gets PROXY headers gets
// its header right behind its SYN-ACK, before the held segments
// (proxySynAck6), as over IPv4.

// cookieWords6 is cookieWords for an IPv6 client key: the 32 bytes of
// addresses are folded into one word by the cookie key's SipHash first.
func (c *cookieKey) cookieWords6(k *conntrack.Key6, isn uint32) (m0, m1 uint64) {
	m0 = sipHash24(c, binary.BigEndian.Uint64(k.Src[:8]), binary.BigEndian.Uint64(k.Src[8:]), binary.BigEndian.Uint64(k.Dst[:8])) ^
		binary.BigEndian.Uint64(k.Dst[8:])
	m1 = uint64(k.SrcPort)<<48 | uint64(k.DstPort)<<32 | uint64(isn)
	return m0, m1
}

// make6 and check6 are make and check for an IPv6 client key.
func (c *cookieKey) make6(k *conntrack.Key6, isn uint32, mss int, t uint32) uint32 {
	m0, m1 := c.cookieWords6(k, isn)
	return c.makeWords(m0, m1, mss, t)
}

func (c *cookieKey) check6(k *conntrack.Key6, isn, cookie, t uint32) (mss int, ok bool) {
	m0, m1 := c.cookieWords6(k, isn)
	return c.checkWords(m0, m1, cookie, t)
}

// proxyISN6 is proxyISN for the IPv6 tuple src:sport → dst:dport the real
// sees: the ISN of fullnatClocks6.
func proxyISN6(now int64, src [16]byte, sport uint16, dst [16]byte, dport uint16) uint32 {
	return uint32(isnTime(now)/isnTick) + uint32(realTupleHash6(src, sport, dst, dport))
}

// advertisedMSS6 is advertisedMSS over IPv6.
func advertisedMSS6(t *Table) uint16 {
	if m := t.MTU - header.IPv6MinLen - header.TCPMinLen; m > 0 && m <= 0xffff {
		return uint16(m)
	}
	return mssTable[len(mssTable)-1]
}

// segment6 is segment for an IPv6 packet (tc: its traffic class).
type segment6 struct {
	dstMAC, srcMAC [6]byte
	src, dst       [16]byte
	tc             uint8
	tcp            header.TCPFields // HeaderLength is set by buildSegment6
	mss            uint16
}

// segment6Len is the most buildSegment6 writes.
const segment6Len = header.EthernetLen + header.IPv6MinLen + header.TCPMinLen + header.TCPOptionMSSLen

// buildSegment6 is buildSegment for an IPv6 packet, its checksum complete.
// b must hold segment6Len bytes.
func buildSegment6(b []byte, s *segment6) []byte {
	hl := header.TCPMinLen
	if s.mss != 0 {
		hl += header.TCPOptionMSSLen
	}
	b = b[:header.EthernetLen+header.IPv6MinLen+hl]
	eth := header.Ethernet(b)
	eth.SetDestination(s.dstMAC)
	eth.SetSource(s.srcMAC)
	eth.SetType(header.EtherTypeIPv6)
	header.IPv6(b[header.EthernetLen:]).Encode(&header.IPv6Fields{TrafficClass: s.tc, PayloadLength: uint16(hl),
		NextHeader: header.ProtoTCP, HopLimit: spTTL, Src: s.src, Dst: s.dst})
	tcp := header.TCP(b[header.EthernetLen+header.IPv6MinLen:])
	s.tcp.HeaderLength = hl
	tcp.Encode(&s.tcp)
	if s.mss != 0 {
		header.PutMSSOption(tcp[header.TCPMinLen:], s.mss)
	}
	tcp.SetChecksum(tcp.CalculateChecksum6(s.src, s.dst))
	return b
}

// synProxyMiss6 is synProxyMiss for an IPv6 segment q.
func (w *Worker) synProxyMiss6(t *Table, s *conntrack.Shard6, svc *Service, q *parsed6, off *header.Offload, now int64) ([]byte, Verdict) {
	if q.frag != 0 {
		return nil, VerdictIPv6Fragment
	}
	switch q.flags & (header.TCPFlagSyn | header.TCPFlagAck | header.TCPFlagRst | header.TCPFlagFin) {
	case header.TCPFlagSyn:
		return w.synCookie6(t, q, now), VerdictSynProxy
	case header.TCPFlagAck:
		return w.synProxyOpen6(t, s, svc, q, off, now)
	}
	return nil, VerdictNoConn
}

// synCookie6 is synCookie for the IPv6 client SYN q: the cookie SYN-ACK is
// built in a spare buffer.
func (w *Worker) synCookie6(t *Table, q *parsed6, now int64) []byte {
	tcp := header.TCP(q.frame[q.l4:])
	isn := tcp.SequenceNumber()
	mss, ok := tcp.MSS()
	if !ok {
		mss = mssTable[0]
	}
	cookie := synCookieKey.make6(&q.key, isn, mssIndex(mss), cookieTime(now))
	w.C.SynProxyCookies.Add(1)
	return buildSegment6(w.spare(segment6Len), &segment6{
		dstMAC: header.Ethernet(q.frame).Source(), srcMAC: t.MAC, src: q.key.Dst, dst: q.key.Src,
		tcp: header.TCPFields{SrcPort: q.key.DstPort, DstPort: q.key.SrcPort, Seq: cookie, Ack: isn + 1,
			Flags: header.TCPFlagSyn | header.TCPFlagAck, Window: spSynAckWindow},
		mss: advertisedMSS6(t),
	})
}

// synProxyOpen6 is synProxyOpen for the IPv6 ACK q.
func (w *Worker) synProxyOpen6(t *Table, s *conntrack.Shard6, svc *Service, q *parsed6, off *header.Offload, now int64) ([]byte, Verdict) {
	eth := header.Ethernet(q.frame)
	tcp := header.TCP(q.frame[q.l4:])
	cookie, isn := tcp.AckNumber()-1, tcp.SequenceNumber()-1
	mi, ok := synCookieKey.check6(&q.key, isn, cookie, cookieTime(now))
	if !ok {
		w.C.SynProxyBadCookies.Add(1)
		return nil, VerdictNoConn
	}
	e, v := w.newConn6(t, s, svc, &q.key, eth, header.TCPFlagSyn, now)
	if e == nil {
		return nil, v
	}
	r := t.real(e.RealID)
	if f := Forward(e.Forward); r == nil || (f != ForwardNAT && f != ForwardFullNAT) {
		// Configuration refuses this; never forward unspliced.
		w.release6(e)
		s.Delete(e)
		return nil, VerdictNoReal
	}
	w.C.SynProxyOpened.Add(1)
	e.Flags |= flagSynProxy | flagSynPending
	src, sport := e.Client, e.ClientPort
	if Forward(e.Forward) == ForwardFullNAT {
		src, sport = e.Local, e.LPort
	}
	aux := s.Aux(e)
	aux[auxReal] = cookie
	aux[auxClient] = proxyISN6(now, src, sport, r.Addr6, r.Port) - isn
	e.ClientMAC = eth.Source()
	w.setState6(t, e, r, conntrack.TCPSynRecv, now)
	fk := e.ForwardKey()
	holdFrame(w, &w.sp6, &fk, q.frame, off, true, now)
	return w.realSYN6(t, e, r, q, isn+aux[auxClient], mi), VerdictSynProxy
}

// realSYN6 is realSYN for an IPv6 connection, built in a spare buffer: the
// client's traffic class without its ECN bits.
func (w *Worker) realSYN6(t *Table, e *conntrack.Entry6, r *Real, q *parsed6, isn uint32, mss int) []byte {
	s := segment6{dstMAC: r.MAC, srcMAC: t.MAC, src: e.Client, dst: r.Addr6,
		tc: header.IPv6(q.frame[header.EthernetLen:]).TrafficClass() &^ ecnMask,
		tcp: header.TCPFields{SrcPort: e.ClientPort, DstPort: r.Port, Seq: isn, Flags: header.TCPFlagSyn,
			Window: header.TCP(q.frame[q.l4:]).WindowSize()},
		mss: mssTable[mss]}
	if Forward(e.Forward) == ForwardFullNAT {
		s.src, s.tcp.SrcPort = e.Local, e.LPort
	}
	out := buildSegment6(w.spare(segment6Len), &s)
	r.Stats.InPkts.Add(1)
	r.Stats.InBytes.Add(uint64(len(out) - header.EthernetLen))
	return out
}

// setState6 is setState for an IPv6 connection.
func (w *Worker) setState6(t *Table, e *conntrack.Entry6, r *Real, st conntrack.State, now int64) {
	old := e.State
	e.State = st
	if a, b := conntrack.IsActive(old), conntrack.IsActive(st); a != b {
		if b {
			r.Counters.Activate()
		} else {
			r.Counters.Deactivate()
		}
	}
	e.Expires = now + int64(t.Timeouts.Timeout(st))
	if old != st {
		w.syncReport6(e)
	}
}

// synProxyConn6 is synProxyConn for the segment q of the SYN-proxied IPv6
// connection e.
func (w *Worker) synProxyConn6(t *Table, s *conntrack.Shard6, e *conntrack.Entry6, r *Real, reply bool, q *parsed6, off *header.Offload, now int64) (out []byte, v Verdict, done bool) {
	tcp := header.TCP(q.frame[q.l4:])
	aux := s.Aux(e)
	if e.Flags&flagSynPending != 0 {
		switch {
		case !reply:
			if q.flags&header.TCPFlagSyn != 0 {
				return nil, VerdictSynProxy, true
			}
			e.ClientMAC = header.Ethernet(q.frame).Source()
			fk := e.ForwardKey()
			holdFrame(w, &w.sp6, &fk, q.frame, off, true, now)
			return w.resendSYN6(t, s, e, r, q, now), VerdictSynProxy, true
		case q.flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) == header.TCPFlagSyn|header.TCPFlagAck:
			return w.synProxySynAck6(t, s, e, r, q, now), VerdictSynProxy, true
		case q.flags&header.TCPFlagRst != 0:
			// The real refused the SYN: the reset goes to the client at
			// the sequence number it expects, the cookie's +1.
			aux[auxReal] = tcp.SequenceNumber() - (aux[auxReal] + 1)
			e.Flags &^= flagSynPending
			fk := e.ForwardKey()
			dropHeldFrames(w, &w.sp6, &fk)
		default:
			return nil, VerdictSynProxy, true
		}
	}
	seqD, ackD := aux[auxClient], aux[auxReal]
	if reply {
		seqD, ackD = -aux[auxReal], -aux[auxClient]
	}
	translateSeq(tcp, seqD, ackD, q.flags&header.TCPFlagAck != 0, off.Flags&header.OffloadNeedsCsum != 0)
	return nil, 0, false
}

// resendSYN6 is resendSYN for the client segment q of the IPv6
// connection e.
func (w *Worker) resendSYN6(t *Table, s *conntrack.Shard6, e *conntrack.Entry6, r *Real, q *parsed6, now int64) []byte {
	sent := e.Expires - int64(t.Timeouts.Timeout(conntrack.TCPSynRecv))
	if now-sent < spResendAfter || q.flags&header.TCPFlagAck == 0 {
		return nil
	}
	tcp := header.TCP(q.frame[q.l4:])
	aux := s.Aux(e)
	cookie, isn := aux[auxReal], tcp.SequenceNumber()-1
	if tcp.AckNumber() != cookie+1 {
		return nil
	}
	mi, ok := synCookieKey.check6(&q.key, isn, cookie, cookieTime(now))
	if !ok {
		return nil
	}
	e.Expires = now + int64(t.Timeouts.Timeout(conntrack.TCPSynRecv))
	w.C.SynProxySynResent.Add(1)
	return w.realSYN6(t, e, r, q, isn+aux[auxClient], mi)
}

// synProxySynAck6 is synProxySynAck for the real's SYN-ACK q of the IPv6
// connection e.
func (w *Worker) synProxySynAck6(t *Table, s *conntrack.Shard6, e *conntrack.Entry6, r *Real, q *parsed6, now int64) []byte {
	ip := header.IPv6(q.frame[header.EthernetLen:])
	tcp := header.TCP(q.frame[q.l4:])
	if r.Proxy != 0 && w.pp6.full() {
		// No room to keep the PROXY header until it is acknowledged:
		// the real sends its SYN-ACK again.
		w.C.ProxyNoSlot.Add(1)
		return nil
	}
	aux := s.Aux(e)
	cookie := aux[auxReal]
	aux[auxReal] = tcp.SequenceNumber() - cookie
	e.Flags &^= flagSynPending
	w.C.SynProxySynAcks.Add(1)
	r.Stats.OutPkts.Add(1)
	r.Stats.OutBytes.Add(uint64(len(ip)))
	w.setState6(t, e, r, conntrack.TCPEstablished, now)
	if h := w.proxySynAck6(t, s, e, r, q, now); h != nil {
		// The PROXY header goes first, and acknowledges the SYN-ACK;
		// the held segments follow it.
		k := len(w.extra)
		if out := w.flushHeld6(t, s, e, r, cookie, now); out != nil {
			w.extra = append(w.extra, nil)
			copy(w.extra[k+1:], w.extra[k:])
			w.extra[k] = out
		}
		return h
	}
	if out := w.flushHeld6(t, s, e, r, cookie, now); out != nil {
		return out
	}
	// As the real's own SYN-ACK, turned around.
	return buildSegment6(w.spare(segment6Len), &segment6{
		dstMAC: r.MAC, srcMAC: t.MAC, src: ip.Destination(), dst: ip.Source(),
		tcp: header.TCPFields{SrcPort: tcp.DestinationPort(), DstPort: tcp.SourcePort(), Seq: tcp.AckNumber(),
			Ack: tcp.SequenceNumber() + 1, Flags: header.TCPFlagAck, Window: spFallbackWindow},
	})
}

// flushHeld6 is flushHeld for the IPv6 connection e: each held segment is
// parsed again in its spare copy, translated, tracked and rewritten for
// the real.
func (w *Worker) flushHeld6(t *Table, s *conntrack.Shard6, e *conntrack.Entry6, r *Real, cookie uint32, now int64) []byte {
	fk := e.ForwardKey()
	idx, n := heldInOrder(w, &w.sp6, &fk)
	aux := s.Aux(e)
	var first []byte
	for _, i := range idx[:n] {
		h := &w.sp6.held[i]
		h.key.Proto = 0
		frame := w.spare(h.n)
		copy(frame, h.buf[:h.n])
		var hq parsed6
		if parse6(frame, &hq) != 0 { // cannot happen: it parsed when held
			w.C.SynProxyHeldDropped.Add(1)
			continue
		}
		tcp := header.TCP(hq.frame[hq.l4:])
		if hq.flags&header.TCPFlagAck != 0 && tcp.AckNumber() != cookie+1 {
			w.C.SynProxyHeldDropped.Add(1)
			continue
		}
		// hold finished any partial checksum.
		translateSeq(tcp, aux[auxClient], aux[auxReal], hq.flags&header.TCPFlagAck != 0, false)
		w.track6(t, e, r, conntrack.DirInput, hq.flags, now)
		r.Stats.InPkts.Add(1)
		r.Stats.InBytes.Add(uint64(len(hq.frame) - header.EthernetLen))
		if Forward(e.Forward) == ForwardFullNAT {
			rewriteSrc6(&hq, e.Local, e.LPort, false)
		}
		rewriteDst6(&hq, r.Addr6, r.Port, false)
		eth := header.Ethernet(hq.frame)
		eth.SetDestination(r.MAC)
		eth.SetSource(t.MAC)
		if first == nil {
			first = hq.frame
		} else {
			w.extra = append(w.extra, hq.frame)
		}
	}
	return first
}
