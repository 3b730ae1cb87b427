package dataplane

import (
	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// IPv6 fragments, forwarded as IPv4 ones are (fragment.go), not
// reassembled. A fragment carries a fragment header (RFC 8200 section
// 4.5): a 32-bit identification, an offset and the M flag. The first
// fragment (offset 0) carries the transport header: it is handled like
// any packet of its connection by the worker that owns it, which notes
// its decision in the shared fragment table (fragTable.m6), keyed by
// source, destination, identification and the fragment header's Next
// Header (the first header of the fragmentable part, the same in every
// fragment of a datagram). The later fragments carry no ports: the
// steering program sends them to worker 0, which forwards each as its
// first fragment's decision says: DR rewrites the MACs, TUN wraps the
// fragment in IPv6 (Packet Too Big when it does not fit, as for any
// packet: tun6.go), NAT and FULLNAT rewrite the addresses only (IPv6 has
// no header checksum, and the transport checksum, which covers the whole
// datagram, is in the first fragment, whose rewrite updates it for the
// new addresses and ports). A later fragment that comes before its first
// waits as an IPv4 one does (holdFragment, fragWait, fragPending).
//
// The dataplane's fragments are those whose fragment header names TCP or
// UDP as its Next Header, as the socket filter takes only those. The rest,
// a first fragment without its whole transport header (RFC 8200 section
// 4.5 makes it an error, RFC 7112), and a later fragment whose first
// fragment was not seen, are counted as ipv6_fragment and not forwarded.

// fragKey6 is fragKey for IPv6: what every fragment of one datagram has
// in common.
type fragKey6 struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
}

// fragEntry6 is fragEntry for IPv6: what the first fragment's worker
// decided.
type fragEntry6 struct {
	expires int64
	realID  uint32
	reply   bool     // a NAT or FULLNAT reply, from the real to the client
	src     [16]byte // the new source address, zero to keep it
	dst     [16]byte // the new destination address, zero to keep it (requests: the real's)
	mac     [6]byte  // replies: the client's next hop
}

func (e fragEntry6) expiry() int64 { return e.expires }

func (f *fragTable) put6(k fragKey6, e fragEntry6, now int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m6 == nil {
		f.m6 = make(map[fragKey6]fragEntry6)
	}
	return fragPut(f.m6, k, e, now)
}

func (f *fragTable) get6(k fragKey6, now int64) (fragEntry6, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fragGet(f.m6, k, now)
}

// parseFragment6 reads the fragment header x of the IPv6 packet ip (in
// frame, padding cut off) into p for parse6. It reports done when parse6
// goes no further: with verdict 0 for a later fragment, whose key then
// holds its addresses and protocol only (no ports), and with
// ipv6_fragment for one the dataplane leaves alone. A first fragment goes
// on to have its transport header read; it must hold all of it.
func parseFragment6(frame []byte, ip header.IPv6, x *header.IPv6Ext, p *parsed6) (Verdict, bool) {
	if x.FragNext != header.ProtoTCP && x.FragNext != header.ProtoUDP {
		return VerdictIPv6Fragment, true
	}
	p.fragID = x.FragID
	if x.FragOffset != 0 {
		p.frag = fragLater
		p.frame, p.l4 = frame[:header.EthernetLen+len(ip)], header.EthernetLen+x.Offset
		p.key = conntrack.Key6{Src: ip.Source(), Dst: ip.Destination(), Proto: x.Proto}
		p.flags = 0
		return 0, true
	}
	p.frag = fragFirst
	l4 := ip[x.Offset:]
	switch x.Proto {
	case header.ProtoTCP:
		if !header.TCP(l4).IsValid(len(l4)) {
			return VerdictIPv6Fragment, true
		}
	case header.ProtoUDP:
		// The UDP length is the whole datagram's, longer than l4.
		if len(l4) < header.UDPLen || header.UDP(l4).Length() < header.UDPLen {
			return VerdictIPv6Fragment, true
		}
	}
	return 0, false
}

// fragKeyOf6 is the fragment key of a parsed fragment.
func fragKeyOf6(q *parsed6) fragKey6 {
	return fragKey6{src: q.key.Src, dst: q.key.Dst, id: q.fragID, proto: q.key.Proto}
}

// noteFirst6 records, for the first fragment of q (not yet rewritten) of
// connection e going to r, how to forward the rest of its datagram.
func (w *Worker) noteFirst6(t *Table, q *parsed6, e *conntrack.Entry6, r *Real, reply bool, now int64) {
	fe := fragEntry6{expires: now + fragTimeout, realID: r.ID, reply: reply}
	switch {
	case reply:
		fe.src, fe.mac = e.VIP, e.ClientMAC
		if fe.mac == ([6]byte{}) {
			fe.mac = t.GatewayMAC
		}
		if Forward(e.Forward) == ForwardFullNAT {
			fe.dst = e.Client
		}
	case r.Forward == ForwardNAT:
		fe.dst = r.Addr6
	case r.Forward == ForwardFullNAT:
		fe.src, fe.dst = e.Local, r.Addr6
	}
	if !w.frags.put6(fragKeyOf6(q), fe, now) {
		w.C.FragTableFull.Add(1)
	}
}

// later6 is handle6 for a later fragment (q.frag == fragLater, its frame
// at buf[Headroom:]): forwarded as its first fragment's decision says, or
// held until that is known (verdictHeld).
func (w *Worker) later6(t *Table, buf []byte, q *parsed6, now int64) ([]byte, Verdict) {
	k := fragKeyOf6(q)
	f, v, found := w.laterFragment6(t, buf, q.frame, &k, now)
	if !found && w.holdFragment(q.frame, now) {
		return nil, verdictHeld
	}
	return f, v
}

// laterFragment6 is laterFragment for an IPv6 fragment with key k, in
// buf[Headroom:] as frame. It reports false when its first fragment's
// decision is not (yet) known.
func (w *Worker) laterFragment6(t *Table, buf, frame []byte, k *fragKey6, now int64) ([]byte, Verdict, bool) {
	fe, ok := w.frags.get6(*k, now)
	if !ok {
		return nil, VerdictIPv6Fragment, false
	}
	eth := header.Ethernet(frame)
	ip := header.IPv6(frame[header.EthernetLen:])
	r := t.real(fe.realID)
	if fe.reply {
		ip.SetSource(fe.src)
		if fe.dst != ([16]byte{}) {
			ip.SetDestination(fe.dst)
		}
		eth.SetDestination(fe.mac)
		eth.SetSource(t.MAC)
		if r != nil {
			r.Stats.OutPkts.Add(1)
			r.Stats.OutBytes.Add(uint64(len(ip)))
		}
		return frame, VerdictForward, true
	}
	if r == nil || !r.Ready {
		return nil, VerdictNoReal, true
	}
	if fe.src != ([16]byte{}) {
		ip.SetSource(fe.src)
	}
	if fe.dst != ([16]byte{}) {
		ip.SetDestination(fe.dst)
	}
	r.Stats.InPkts.Add(1)
	r.Stats.InBytes.Add(uint64(len(ip)))
	if r.Forward == ForwardTUN {
		if len(ip)+header.IPv6TunnelOverhead > t.MTU {
			f, v := w.packetTooBig6(t, frame)
			return f, v, true
		}
		return encapsulate6(t, r, buf, frame), VerdictForward, true
	}
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	return frame, VerdictForward, true
}

// heldFragment is laterFragment or laterFragment6 for a held fragment
// (retryFragments), by its frame's family.
func (w *Worker) heldFragment(t *Table, buf, frame []byte, now int64) ([]byte, Verdict, bool) {
	if header.Ethernet(frame).Type() != header.EtherTypeIPv6 {
		return w.laterFragment(t, buf, frame, now)
	}
	// The frame was validated before it was held; its addresses may
	// not be rewritten yet, since it was not forwarded.
	var q parsed6
	if v := parse6(frame, &q); v != 0 || q.frag != fragLater {
		return nil, VerdictIPv6Fragment, true
	}
	k := fragKeyOf6(&q)
	return w.laterFragment6(t, buf, frame, &k, now)
}
