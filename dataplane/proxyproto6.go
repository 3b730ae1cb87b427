package dataplane

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// The PROXY protocol for IPv6 connections: what proxyproto.go does for
// IPv4 ones, on the worker's Shard6, with the headers of TCP over IPv6
// ("PROXY TCP6 ..." and v2's AF_INET6) and the header segment in an IPv6
// packet. A connection of a SYN-proxied service gets its header behind the
// real's SYN-ACK (proxySynAck6), any other with the client's first segment
// after its SYN. The unacknowledged headers of
// IPv6 connections have a table of their own (Worker.pp6), and the expiry
// walk resends theirs as it does IPv4 ones' (proxyTimers6).

// The PROXY protocol v2 addresses of TCP over IPv6 (proxy-protocol.txt
// section 2.2): the source and destination addresses, 16 bytes each,
// then the ports.
const (
	ppV2TCP6      = 0x21 // AF_INET6, STREAM
	ppV2AddrsLen6 = 36
	ppV2Len6      = ppV2Addrs + ppV2AddrsLen6 // 52
	// ppV1MaxLen6 is the longest v1 header of TCP over IPv6: "PROXY TCP6 ",
	// two addresses of up to 39 characters, two ports and the spaces and
	// CRLF between them.
	ppV1MaxLen6 = len("PROXY TCP6 ") + 39 + 1 + 39 + 1 + 5 + 1 + 5 + 2 // 104
)

// putProxyHeader6 is putProxyHeader for a TCP connection over IPv6.
func putProxyHeader6(b []byte, v ProxyVersion, src [16]byte, sport uint16, dst [16]byte, dport uint16) int {
	switch v {
	case ProxyV2:
		copy(b, ppV2Sig[:])
		b[ppV2VerCmd], b[ppV2FamProto] = ppV2Proxy, ppV2TCP6
		binary.BigEndian.PutUint16(b[ppV2Len:], ppV2AddrsLen6)
		copy(b[ppV2Addrs:], src[:])
		copy(b[ppV2Addrs+16:], dst[:])
		binary.BigEndian.PutUint16(b[ppV2Addrs+32:], sport)
		binary.BigEndian.PutUint16(b[ppV2Addrs+34:], dport)
		return ppV2Len6
	case ProxyV1:
		// RFC 5952's text form (netip's); it appends without allocating
		// into b's room.
		o := append(b[:0], "PROXY TCP6 "...)
		o = netip.AddrFrom16(src).AppendTo(o)
		o = append(o, ' ')
		o = netip.AddrFrom16(dst).AppendTo(o)
		o = append(o, ' ')
		o = strconv.AppendUint(o, uint64(sport), 10)
		o = append(o, ' ')
		o = strconv.AppendUint(o, uint64(dport), 10)
		o = append(o, '\r', '\n')
		return len(o)
	}
	return 0
}

// ppSlot6 is the slot of an IPv6 connection.
type ppSlot6 = ppSlotOf[[16]byte]

// ppFrame6 is the room a header segment over IPv6 takes.
const ppFrame6 = header.EthernetLen + header.IPv6MinLen + header.TCPMinLen + ppTSOptLen + ppMaxLen

// translate6 is translate for the segment q of e, an IPv6 connection: the
// client segment that calls for a PROXY header first sends it
// (proxyOpen6), then the offsets apply (fullnat6.go), then the header's
// wait (proxyPending6). It reports false if q must be dropped.
func (w *Worker) translate6(t *Table, s *conntrack.Shard6, e *conntrack.Entry6, r *Real, reply bool, q *parsed6, off *header.Offload, now int64) bool {
	if !reply && r.Proxy != 0 && e.Proto == header.ProtoTCP && e.Flags&flagProxyHdr == 0 && e.State == conntrack.TCPSynRecv &&
		(Forward(e.Forward) == ForwardNAT || Forward(e.Forward) == ForwardFullNAT) &&
		q.flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) == header.TCPFlagAck && !w.proxyOpen6(t, s, e, r, q, now) {
		return false
	}
	if e.Flags&flagSeqXlate != 0 {
		w.fullnatXlate6(s, e, reply, q, off)
	}
	if e.Flags&flagProxyPending != 0 {
		w.proxyPending6(t, s, e, r, reply, q, off, now)
	}
	return true
}

// proxyOpen6 is proxyOpen for the client segment q of the IPv6
// connection e.
func (w *Worker) proxyOpen6(t *Table, s *conntrack.Shard6, e *conntrack.Entry6, r *Real, q *parsed6, now int64) bool {
	k := e.ForwardKey()
	sl := w.pp6.alloc(&k)
	if sl == nil {
		w.C.ProxyNoSlot.Add(1)
		return false
	}
	aux := s.Aux(e)
	if e.Flags&flagSeqXlate == 0 { // NAT: nothing translated so far
		aux[auxClient], aux[auxTS] = 0, 0
		e.Flags |= flagSeqXlate
	}
	sl.open(header.TCP(q.frame[q.l4:]), aux, r.Proxy)
	var hdr [ppMaxLen]byte
	sl.n = uint8(putProxyHeader6(hdr[:], sl.ver, e.Client, e.ClientPort, e.VIP, e.VPort))
	aux[auxClient] += uint32(sl.n)
	e.Flags |= flagProxyHdr | flagProxyPending
	w.proxySend6(t, e, r, sl, now)
	w.C.ProxyHeaders.Add(1)
	return true
}

// proxySynAck6 is proxySynAck for the SYN-proxied IPv6 connection e whose
// real's SYN-ACK q just set its offsets: the header segment, which also
// acknowledges the SYN-ACK, or nil if e's real gets none.
func (w *Worker) proxySynAck6(t *Table, s *conntrack.Shard6, e *conntrack.Entry6, r *Real, q *parsed6, now int64) []byte {
	if r.Proxy == 0 {
		return nil
	}
	tcp := header.TCP(q.frame[q.l4:])
	k := e.ForwardKey()
	sl := w.pp6.alloc(&k)
	if sl == nil {
		w.C.ProxyNoSlot.Add(1)
		return nil
	}
	// The cookie handshake negotiated no timestamps.
	sl.seq, sl.ack, sl.win, sl.ver, sl.rto = tcp.AckNumber(), tcp.SequenceNumber()+1, ppSynProxyWindow, r.Proxy, ppRTO
	var hdr [ppMaxLen]byte
	sl.n = uint8(putProxyHeader6(hdr[:], sl.ver, e.Client, e.ClientPort, e.VIP, e.VPort))
	s.Aux(e)[auxClient] += uint32(sl.n)
	e.Flags |= flagProxyHdr | flagProxyPending
	w.C.ProxyHeaders.Add(1)
	sl.sent, sl.tries = now, 1
	return w.proxySegment6(t, e, r, sl, w.spare(ppFrame6))
}

// proxySend6 is proxySend for an IPv6 connection.
func (w *Worker) proxySend6(t *Table, e *conntrack.Entry6, r *Real, sl *ppSlot6, now int64) {
	w.extra = append(w.extra, w.proxySegment6(t, e, r, sl, w.spare(ppFrame6)))
	sl.sent = now
	sl.tries++
}

// proxySegment6 is proxySegment for an IPv6 connection: the header
// segment in an IPv6 packet from the client (NAT) or the local address
// (FULLNAT) to the real, its checksum complete.
func (w *Worker) proxySegment6(t *Table, e *conntrack.Entry6, r *Real, sl *ppSlot6, b []byte) []byte {
	src, sport := e.Client, e.ClientPort
	if Forward(e.Forward) == ForwardFullNAT {
		src, sport = e.Local, e.LPort
	}
	hl := header.TCPMinLen
	if sl.ts {
		hl += ppTSOptLen
	}
	l4 := header.EthernetLen + header.IPv6MinLen
	n := putProxyHeader6(b[l4+hl:cap(b)], sl.ver, e.Client, e.ClientPort, e.VIP, e.VPort)
	b = b[:l4+hl+n]
	eth := header.Ethernet(b)
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	eth.SetType(header.EtherTypeIPv6)
	ip := header.IPv6(b[header.EthernetLen:])
	ip.Encode(&header.IPv6Fields{PayloadLength: uint16(hl + n), NextHeader: header.ProtoTCP, HopLimit: spTTL, Src: src, Dst: r.Addr6})
	tcp := header.TCP(b[l4:])
	tcp.Encode(&header.TCPFields{SrcPort: sport, DstPort: r.Port, Seq: sl.seq, Ack: sl.ack, HeaderLength: hl,
		Flags: header.TCPFlagAck | header.TCPFlagPsh, Window: sl.win})
	if sl.ts {
		o := tcp[header.TCPMinLen:]
		o[0], o[1], o[2], o[3] = header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionTimestamps, tcpOptTimestampsLen
		binary.BigEndian.PutUint32(o[4:], sl.tsval)
		binary.BigEndian.PutUint32(o[8:], sl.tsecr)
	}
	tcp.SetChecksum(tcp.CalculateChecksum6(src, r.Addr6))
	r.Stats.InPkts.Add(1)
	r.Stats.InBytes.Add(uint64(len(ip)))
	return b
}

// proxyPending6 is proxyPending for the segment q of the IPv6
// connection e.
func (w *Worker) proxyPending6(t *Table, s *conntrack.Shard6, e *conntrack.Entry6, r *Real, reply bool, q *parsed6, off *header.Offload, now int64) {
	k := e.ForwardKey()
	sl := w.pp6.find(&k)
	if sl == nil {
		e.Flags &^= flagProxyPending
		return
	}
	tcp := header.TCP(q.frame[q.l4:])
	switch w.pendingSegment(&sl.ppSeg, tcp, s.Aux(e)[auxClient], reply, q.flags, off.Flags&header.OffloadNeedsCsum != 0, now) {
	case ppDone:
		w.pp6.free(sl)
		e.Flags &^= flagProxyPending
	case ppResend:
		w.proxyResend6(t, e, r, sl, now)
	}
}

// proxyResend6 is proxyResend for an IPv6 connection.
func (w *Worker) proxyResend6(t *Table, e *conntrack.Entry6, r *Real, sl *ppSlot6, now int64) {
	if sl.tries >= ppMaxTries {
		return
	}
	sl.rto *= 2
	w.C.ProxyResent.Add(1)
	w.proxySend6(t, e, r, sl, now)
}

// proxyRelease6 is proxyRelease for an IPv6 connection.
func (w *Worker) proxyRelease6(e *conntrack.Entry6) {
	k := e.ForwardKey()
	if sl := w.pp6.find(&k); sl != nil {
		w.pp6.free(sl)
	}
	e.Flags &^= flagProxyPending
}

// proxyTimers6 is proxyTimers for IPv6 connections: headers whose RTO has
// passed go again, straight to the link, and a connection whose header
// went ppMaxTries times unacknowledged is dropped.
func (w *Worker) proxyTimers6(now int64) {
	s := w.shard6.Load()
	if w.pp6.used == 0 || w.cur == nil || s == nil {
		return
	}
	for i := range w.pp6.slots {
		sl := &w.pp6.slots[i]
		if sl.key.Proto == 0 || now-sl.sent < sl.rto {
			continue
		}
		e, _ := s.Lookup(&sl.key)
		var r *Real
		if e != nil {
			r = w.cur.real(e.RealID)
		}
		switch {
		case e == nil || e.Flags&flagProxyPending == 0:
			w.pp6.free(sl) // cannot happen: release6 frees a connection's slot
			continue
		case sl.tries >= ppMaxTries || r == nil || !r.Ready:
			w.C.ProxyGaveUp.Add(1)
			w.release6(e) // frees the slot
			s.Delete(e)
			continue
		}
		w.proxyResend6(w.cur, e, r, sl, now)
		for _, f := range w.extra {
			w.pp.out[0] = f
			sent, _ := w.link.Write(w.pp.out[:], nil)
			w.C.TxFrames.Add(uint64(sent))
			if sent == 0 {
				w.C.Verdicts[VerdictTxError].Add(1)
			}
		}
		w.pp.out[0] = nil
		w.resetSpare()
	}
}
