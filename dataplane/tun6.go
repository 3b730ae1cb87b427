package dataplane

import (
	"encoding/binary"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// TUN for IPv6: IPv6-in-IPv6 (RFC 2473), the IPv6 twin of IPIP. The
// director is the tunnel entry point: it prepends an outer IPv6 header from
// its own address (Table.Addr6) to the real's, next header 41, and sends it
// to the real's (or its next hop's) MAC; the real decapsulates and answers
// the client directly. IPv6 routers do not fragment: a client packet too
// big to travel encapsulated is answered with ICMPv6 Packet Too Big (as
// IPv4 TUN answers a DF packet with fragmentation needed), and the client's
// path MTU to the VIP shrinks by the 40 bytes of the outer header. Only a
// packet the client cannot make smaller, one of at most 1280 bytes on a
// link whose MTU is below 1320, is sent in outer fragments, as RFC 2473
// section 7.1 asks of the tunnel entry point (the real's kernel reassembles
// them before decapsulation). A GSO frame is cut into segments that fit, as
// IPv4 TUN does (gso.go).

// tunnel6 encapsulates the IPv6 client packet of q (its frame starts at
// buf[Headroom:]) to r, or answers it with Packet Too Big. A partial
// checksum is finished here: the outer header moves the inner transport
// header, and the kernel finishes only checksums of headers it built.
func (w *Worker) tunnel6(t *Table, r *Real, buf []byte, q *parsed6, off *header.Offload) ([]byte, Verdict) {
	if off.GSOType != header.GSONone {
		return w.encapSegments6(t, r, q, off)
	}
	frame := q.frame
	if off.Flags&header.OffloadNeedsCsum != 0 {
		header.FinishChecksum(frame, off, q.key.Proto == header.ProtoUDP)
	}
	if n := len(frame) - header.EthernetLen; n+header.IPv6TunnelOverhead > t.MTU {
		if n <= tunnelMTU6(t) {
			// Within 1280 bytes: Packet Too Big cannot ask for less.
			return w.encapFragments6(t, r, buf, frame), VerdictForward
		}
		return w.packetTooBig6(t, frame)
	}
	return encapsulate6(t, r, buf, frame), VerdictForward
}

// encapFragments6 sends the IPv6 packet of frame (which starts at
// buf[Headroom:]) to r in outer fragments (RFC 2473 section 7.1, RFC 8200
// section 4.5): each an outer IPv6 header to r with next header 44, a
// fragment header naming 41 with the worker's own identification (as
// IPv4's encapFragments), and a piece of the client's packet, a multiple
// of 8 bytes but the last, each within the MTU. The first fragment is
// built in buf in front of the packet, which stays in place, and returned;
// the others go into the worker's spare buffers, queued in w.extra.
func (w *Worker) encapFragments6(t *Table, r *Real, buf, frame []byte) []byte {
	const fragHdr = 8
	inner := header.IPv6(frame[header.EthernetLen:])
	per := (t.MTU - header.IPv6MinLen - fragHdr) &^ 7
	w.outerID++
	id := w.outerID*uint32(w.n) + uint32(w.id)
	f := header.IPv6Fields{TrafficClass: inner.TrafficClass(), FlowLabel: inner.FlowLabel(), NextHeader: header.ProtoIPv6Frag,
		HopLimit: tunnelTTL, Src: t.Addr6, Dst: r.Addr6}
	// piece writes the Ethernet and outer headers and the fragment header
	// of the piece at off, n bytes long, into b.
	piece := func(b []byte, off, n int) {
		eth := header.Ethernet(b)
		eth.SetDestination(r.MAC)
		eth.SetSource(t.MAC)
		eth.SetType(header.EtherTypeIPv6)
		f.PayloadLength = uint16(fragHdr + n)
		header.IPv6(b[header.EthernetLen:]).Encode(&f)
		fh := b[header.EthernetLen+header.IPv6MinLen:]
		fh[0], fh[1] = header.ProtoIPv6, 0
		of := uint16(off)
		if off+n < len(inner) {
			of |= 1 // M: more fragments
		}
		binary.BigEndian.PutUint16(fh[2:], of)
		binary.BigEndian.PutUint32(fh[4:], id)
	}
	for off := per; off < len(inner); off += per {
		n := min(per, len(inner)-off)
		b := w.spare(header.EthernetLen + header.IPv6MinLen + fragHdr + n)
		piece(b, off, n)
		copy(b[header.EthernetLen+header.IPv6MinLen+fragHdr:], inner[off:off+n])
		w.extra = append(w.extra, b)
	}
	start := Headroom - header.IPv6MinLen - fragHdr
	n := min(per, len(inner))
	out := buf[start : Headroom+header.EthernetLen+n]
	piece(out, 0, n)
	w.C.OuterFragments.Add(1)
	return out
}

// encapsulate6 wraps the IPv6 packet of frame (which starts at
// buf[Headroom:]) in IPv6 to r: the Ethernet header moves 40 bytes to the
// front, the outer header goes into the gap, and the frame is addressed to
// r's MAC from the director's.
func encapsulate6(t *Table, r *Real, buf, frame []byte) []byte {
	start := Headroom - header.IPv6TunnelOverhead
	copy(buf[start:start+header.EthernetLen], frame[:header.EthernetLen])
	header.EncapIPv6(buf[start+header.EthernetLen:Headroom+len(frame)], t.Addr6, r.Addr6, tunnelTTL)
	out := buf[start : Headroom+len(frame)]
	eth := header.Ethernet(out)
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	return out
}

// tunnelMTU6 is the MTU a client's packets must keep to for the director
// to tunnel them: the link's less the outer header, and never below the
// minimum IPv6 MTU (RFC 8200 section 5: a node never lowers its path MTU
// below 1280, whatever a Packet Too Big says).
func tunnelMTU6(t *Table) int {
	return max(t.MTU-header.IPv6TunnelOverhead, header.IPv6MinMTU)
}

// packetTooBig6 answers the client packet of frame, too big to be
// tunnelled, with ICMPv6 Packet Too Big from the VIP (RFC 4443 section 3.2)
// with the tunnel's MTU, built in a spare buffer, and counts it. A packet
// that already keeps to 1280 bytes cannot be made smaller by the client
// (on a link whose MTU is below 1320): tunnel6 sends those in outer
// fragments; a UDP GSO piece of them (encapSegments6) is dropped, counted,
// with no answer.
func (w *Worker) packetTooBig6(t *Table, frame []byte) ([]byte, Verdict) {
	ip := header.IPv6(frame[header.EthernetLen:])
	mtu := tunnelMTU6(t)
	if len(ip) <= mtu {
		return nil, VerdictTooBig
	}
	b := w.spare(header.EthernetLen + header.IPv6MinMTU)
	n := header.WriteICMPv6PacketTooBig(b[header.EthernetLen:], ip.Destination(), ip, uint32(mtu))
	if n == 0 {
		return nil, VerdictTooBig
	}
	out := header.Ethernet(b[:header.EthernetLen+n])
	out.SetDestination(header.Ethernet(frame).Source())
	out.SetSource(t.MAC)
	out.SetType(header.EtherTypeIPv6)
	w.C.ICMPSent.Add(1)
	return out, VerdictTooBig
}

// encapSegments6 is encapSegments for IPv6: the GSO frame of q is cut
// into segments, each complete with its own checksum and small enough to
// fit the MTU encapsulated, and each is wrapped. A TCP segment size the
// MTU cannot take is lowered (TCP lets any box re-cut its stream); UDP
// pieces are datagrams the application sized, so when they do not fit the
// client is sent Packet Too Big instead. The extension headers, if any,
// are repeated in every segment. The first segment is returned; the others
// are queued in w.extra, in order, in the worker's spare buffers.
func (w *Worker) encapSegments6(t *Table, r *Real, q *parsed6, off *header.Offload) ([]byte, Verdict) {
	frame := q.frame
	hl := q.l4 - header.EthernetLen // fixed header and extension headers
	l4 := frame[q.l4:]
	tcp := q.key.Proto == header.ProtoTCP
	thl := header.UDPLen
	if tcp {
		thl = header.TCP(l4).DataOffset()
	}
	payload := l4[thl:]
	mss := int(off.GSOSize)
	room := min(t.MTU, MaxSegment-header.EthernetLen) - header.IPv6TunnelOverhead - hl - thl
	if tcp {
		mss = min(mss, room)
	} else if min(mss, len(payload)) > room {
		return w.packetTooBig6(t, frame)
	}
	if mss <= 0 {
		return nil, VerdictTooBig
	}
	hdrs := header.EthernetLen + hl + thl
	ip := header.IPv6(frame[header.EthernetLen:])
	src, dst := ip.Source(), ip.Destination()
	var seq uint32
	var flags uint8
	if tcp {
		seq, flags = header.TCP(l4).SequenceNumber(), header.TCP(l4).Flags()
	}
	var first []byte
	for k, at := 0, 0; at < len(payload) || k == 0; k++ {
		n := min(mss, len(payload)-at)
		sb := w.spare(Headroom + hdrs + n)
		seg := sb[Headroom:]
		copy(seg, frame[:hdrs])
		copy(seg[hdrs:], payload[at:at+n])
		header.IPv6(seg[header.EthernetLen:]).SetPayloadLength(uint16(hl - header.IPv6MinLen + thl + n))
		sl4 := seg[header.EthernetLen+hl:]
		last := at+n >= len(payload)
		if tcp {
			st := header.TCP(sl4)
			st.SetSequenceNumber(seq + uint32(at))
			f := flags
			if !last {
				f &^= header.TCPFlagFin | header.TCPFlagPsh
			}
			if k > 0 {
				f &^= header.TCPFlagCwr
			}
			st.SetFlags(f)
			st.SetChecksum(0)
			st.SetChecksum(st.CalculateChecksum6(src, dst))
		} else {
			su := header.UDP(sl4)
			su.SetLength(uint16(header.UDPLen + n))
			su.SetChecksum(0)
			su.SetChecksum(su.CalculateChecksum6(src, dst))
		}
		out := encapsulate6(t, r, sb, seg)
		if first == nil {
			first = out
		} else {
			w.extra = append(w.extra, out)
		}
		at += n
		if last {
			break
		}
	}
	w.C.Segmented.Add(1)
	return first, VerdictForward
}
