package dataplane

import (
	"encoding/binary"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// FULLNAT and ICMPv6 errors for IPv6 connections: what fullnat.go and
// icmpError do for IPv4, on the worker's Shard6. A FULLNAT connection gets
// a local address of Table.Locals6 and a port of the worker's slice of the
// same range as IPv4 (so replies are steered to it by port alike); its
// TCP sequence numbers and timestamps are translated as fullnat.go
// explains, from the same keyed clocks over the real-side IPv6 tuple. The
// IPv6 header has no checksum: only the transport checksum changes, for
// its pseudo-header and ports, and a partial checksum only for the
// pseudo-header. The packet keeps its size, so no MSS is clamped (IPv4
// clamps none either).

// isnDomain6 ends the second SipHash of an IPv6 real-side tuple's hash:
// its top bits differ from isnDomain's and from the cookies' last words
// (below 2^40), and its low 32 bits hold the ports.
const isnDomain6 = 1<<63 | 1<<61

// realTupleHash6 is realTupleHash for the IPv6 tuple src:sport → dst:dport
// a real sees: two SipHash-2-4 rounds over its 36 bytes.
func realTupleHash6(src [16]byte, sport uint16, dst [16]byte, dport uint16) uint64 {
	h := sipHash24(&isnKey, binary.BigEndian.Uint64(src[:8]), binary.BigEndian.Uint64(src[8:]), binary.BigEndian.Uint64(dst[:8]))
	return sipHash24(&isnKey, h, binary.BigEndian.Uint64(dst[8:]), isnDomain6|uint64(sport)<<16|uint64(dport))
}

// fullnatClocks6 is fullnatClocks for an IPv6 tuple.
func fullnatClocks6(now int64, src [16]byte, sport uint16, dst [16]byte, dport uint16) (isn, ts uint32) {
	h := realTupleHash6(src, sport, dst, dport)
	t := isnTime(now)
	return uint32(t/isnTick) + uint32(h), uint32(t/tsTick) + uint32(h>>32)
}

// flowHash6 is flowHash for an IPv6 client: it spreads connections over
// the local addresses.
func flowHash6(k *conntrack.Key6) uint32 {
	a := k.Src
	h := binary.BigEndian.Uint32(a[0:]) ^ binary.BigEndian.Uint32(a[4:]) ^ binary.BigEndian.Uint32(a[8:]) ^ binary.BigEndian.Uint32(a[12:])
	h ^= uint32(k.SrcPort)
	h *= 0x9e3779b1
	return h ^ h>>16
}

// insertFullNAT6 is insertFullNAT for an IPv6 connection: a local address
// of t.Locals6, one of this worker's local ports whose reply key is free
// (or, when none of those it tries is, the port of a reclaimable
// connection among them), and the entry inserted into s with both keys.
func (w *Worker) insertFullNAT6(t *Table, s *conntrack.Shard6, k *conntrack.Key6, ne *conntrack.Entry6, now int64) *conntrack.Entry6 {
	if len(t.Locals6) == 0 {
		return nil
	}
	first, count, n, ok := w.localPorts(t)
	if !ok {
		return nil
	}
	ne.Local = t.Locals6[int(flowHash6(k)%uint32(len(t.Locals6)))]
	rev := conntrack.Key6{Src: ne.Real, Dst: ne.Local, SrcPort: ne.RPort, Proto: k.Proto}
	var victim *conntrack.Entry6
	stop := portAttempts
	for a := 0; a < stop; a++ {
		p := first + (w.nextPort%count)*n
		w.nextPort++
		rev.DstPort = uint16(p)
		if e, _ := s.Lookup(&rev); e != nil {
			if victim == nil && reclaimable(t, e, now) {
				victim, stop = e, min(stop, a+1+reclaimLookahead)
			}
			continue
		}
		ne.LPort = uint16(p)
		e, _ := s.Insert(ne, true)
		return e
	}
	if victim == nil {
		return nil
	}
	ne.LPort = victim.LPort
	w.release6(victim)
	s.Delete(victim)
	w.C.PortsReclaimed.Add(1)
	e, _ := s.Insert(ne, true)
	return e
}

// fullnatOpen6 is fullnatOpen for the new IPv6 FULLNAT TCP connection e,
// opened by the client SYN q.
func (w *Worker) fullnatOpen6(s *conntrack.Shard6, e *conntrack.Entry6, r *Real, q *parsed6, now int64) {
	isn, ts := fullnatClocks6(now, e.Local, e.LPort, r.Addr6, r.Port)
	seedXlate(s.Aux(e), header.TCP(q.frame[q.l4:]), isn, ts)
	e.Flags |= flagSeqXlate
}

// fullnatXlate6 is fullnatXlate for a segment q of the IPv6 connection e.
func (w *Worker) fullnatXlate6(s *conntrack.Shard6, e *conntrack.Entry6, reply bool, q *parsed6, off *header.Offload) {
	w.xlateSegment(header.TCP(q.frame[q.l4:]), s.Aux(e), reply, q.flags, off.Flags&header.OffloadNeedsCsum != 0)
}

// verdictICMPv6 is parse6's mark on an ICMPv6 message, which handle6
// passes to icmpError6. It is never counted.
const verdictICMPv6 Verdict = 0xfe

// icmpv6QuoteMin is the least of the invoking packet an ICMPv6 error must
// quote for the dataplane to relay it: the fixed IPv6 header and the 8
// bytes of TCP or UDP with the ports (and a TCP sequence number).
const icmpv6QuoteMin = header.IPv6MinLen + 8

// icmpError6 relays an ICMPv6 error (destination unreachable, packet too
// big, time exceeded, parameter problem; RFC 4443) about one of the
// worker's IPv6 connections, as icmpError does ICMPv4's and IPVS's
// ip_vs_in_icmp_v6 and ip_vs_out_icmp_v6 do: an error sent to the VIP
// about a reply (a router on the client's path asking for a smaller MTU)
// goes to the real that sent the reply, in the form it sent it; a NAT or
// FULLNAT real's error about a packet of the client (a port unreachable)
// goes to the client, as if from the VIP about the packet the client
// sent. The quoted packet's addresses and ports, the outer addresses and
// the ICMPv6 checksum (over the new pseudo-header) are rewritten; the
// quoted transport checksum is left alone, as IPVS leaves it. Anything
// else ICMPv6 (neighbour discovery, echo) is the kernel's. q.l4 is where
// the ICMPv6 message starts.
func (w *Worker) icmpError6(t *Table, s *conntrack.Shard6, q *parsed6, off *header.Offload) ([]byte, Verdict) {
	if off.Flags&header.OffloadNeedsCsum != 0 || off.GSOType != header.GSONone {
		return nil, VerdictOffload
	}
	frame := q.frame
	icmp := header.ICMPv6(frame[q.l4:])
	if !icmp.IsValid() {
		return nil, VerdictMalformed
	}
	if !icmp.IsError() {
		return nil, VerdictNoService
	}
	// The quote: the invoking packet's fixed header and its ports. Its
	// payload length is the original packet's, longer than the quote, so
	// IsValid does not apply. A quote with extension headers is left to
	// the kernel, as the socket filter leaves it.
	qt := header.IPv6(icmp.Payload())
	if len(qt) < icmpv6QuoteMin || qt[0]>>4 != 6 {
		return nil, VerdictMalformed
	}
	proto := qt.NextHeader()
	if proto != header.ProtoTCP && proto != header.ProtoUDP {
		return nil, VerdictNoService
	}
	if t == nil {
		return nil, VerdictNoService
	}
	ql4 := header.UDP(qt[header.IPv6MinLen:]) // the ports are TCP's and UDP's alike
	key := conntrack.Key6{
		Src: qt.Destination(), Dst: qt.Source(),
		SrcPort: ql4.DestinationPort(), DstPort: ql4.SourcePort(), Proto: proto,
	}
	e, reply := s.Lookup(&key)
	if e == nil {
		return nil, VerdictNoConn
	}
	r := t.real(e.RealID)
	if r == nil || !r.Ready {
		return nil, VerdictNoReal
	}
	ip := header.IPv6(frame[header.EthernetLen:])
	if e.Flags&(flagSeqXlate|flagSynProxy) != 0 && proto == header.ProtoTCP {
		quoteSeq6(e, s.Aux(e), qt[header.IPv6MinLen:], reply)
	}
	eth := header.Ethernet(frame)
	n := uint64(len(ip))
	if reply {
		// Towards the client: from the VIP, about what the client sent.
		ip.SetSource(e.VIP)
		qt.SetDestination(e.VIP)
		ql4.SetDestinationPort(e.VPort)
		if Forward(e.Forward) == ForwardFullNAT {
			ip.SetDestination(e.Client)
			qt.SetSource(e.Client)
			ql4.SetSourcePort(e.ClientPort)
		}
		r.Stats.OutPkts.Add(1)
		r.Stats.OutBytes.Add(n)
	} else {
		// Towards the real: about the packet it sent.
		switch r.Forward {
		case ForwardDR:
		case ForwardNAT:
			ip.SetDestination(r.Addr6)
			qt.SetSource(r.Addr6)
			ql4.SetSourcePort(r.Port)
		case ForwardFullNAT:
			ip.SetSource(e.Local)
			ip.SetDestination(r.Addr6)
			qt.SetSource(r.Addr6)
			ql4.SetSourcePort(r.Port)
			qt.SetDestination(e.Local)
			ql4.SetDestinationPort(e.LPort)
		default:
			return nil, VerdictNoReal
		}
		r.Stats.InPkts.Add(1)
		r.Stats.InBytes.Add(n)
	}
	// Errors are rare and short: the checksum is summed anew over the
	// new pseudo-header and message rather than updated in many places.
	msg := header.ICMPv6(frame[q.l4:])
	msg.SetChecksum(0)
	msg.SetChecksum(msg.CalculateChecksum(ip.Source(), ip.Destination()))
	if reply {
		mac := e.ClientMAC
		if mac == ([6]byte{}) {
			mac = t.GatewayMAC
		}
		eth.SetDestination(mac)
	} else {
		eth.SetDestination(r.MAC)
	}
	eth.SetSource(t.MAC)
	return frame, VerdictForward
}

// quoteSeq6 is synProxyQuote for the quoted TCP header of an error about
// the IPv6 connection e whose sequence numbers the director translates
// (offsets in aux): FULLNAT's (flagSeqXlate: in, the client's offset) or
// the SYN proxy's once its real answered (in and out, the real's). Towards
// the client (reply) the quoted segment is one the director sent the
// real, in the real's sequence space; towards the real one it sent the
// client, in the client's.
func quoteSeq6(e *conntrack.Entry6, aux *conntrack.Aux, quote []byte, reply bool) {
	var in, out uint32
	switch {
	case e.Flags&flagSeqXlate != 0:
		in = aux[auxClient]
	case e.Flags&(flagSynProxy|flagSynPending) == flagSynProxy:
		in, out = aux[auxClient], aux[auxReal]
	default:
		return
	}
	tcp := header.TCP(quote)
	seqD, ackD := out, in
	if reply {
		seqD, ackD = -in, -out
	}
	tcp.SetSequenceNumber(tcp.SequenceNumber() + seqD)
	if len(quote) >= 12 { // it quotes the acknowledgment number, bytes 8 to 11
		tcp.SetAckNumber(tcp.AckNumber() + ackD)
	}
}
