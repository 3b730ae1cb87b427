package dataplane

import (
	"slices"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// finishChecksum completes the partial transport checksum of a validated
// TCP or UDP frame (offloadUsable checked its offsets).
func finishChecksum(frame []byte, off *header.Offload) {
	ip := header.IPv4(frame[header.EthernetLen:])
	header.FinishChecksum(frame[:header.EthernetLen+len(ip)], off, ip.Protocol() == header.ProtoUDP)
}

// encapSegments is TUN's answer to a GSO super-frame (a TCP segment or UDP
// datagrams that the sender's kernel or the director's GRO made larger
// than the MTU): the kernel cannot segment an inner packet behind an IPIP
// header that it did not build, so the worker cuts it as GSO would, each
// segment complete with its own checksum and small enough to fit the MTU
// encapsulated, and wraps each one. A TCP segment size the MTU cannot take
// encapsulated is lowered (TCP lets any box re-cut its stream); UDP pieces
// are datagrams the application sized, so those that do not fit are sent
// as fragments of their outer packet, as a datagram without DF would be.
// The first segment is returned; the others are queued in w.extra, in
// order, in the worker's spare buffers.
func (w *Worker) encapSegments(t *Table, r *Real, frame []byte, off *header.Offload) ([]byte, Verdict) {
	ip := header.IPv4(frame[header.EthernetLen:])
	hl := ip.HeaderLength()
	l4 := ip.Payload()
	tcp := ip.Protocol() == header.ProtoTCP
	thl := header.UDPLen
	if tcp {
		thl = header.TCP(l4).DataOffset()
	}
	payload := l4[thl:]
	mss := int(off.GSOSize)
	room := min(t.MTU, MaxSegment-header.EthernetLen) - header.IPIPOverhead - hl - thl
	if tcp {
		mss = min(mss, room)
	}
	if mss <= 0 {
		return nil, VerdictTooBig
	}
	hdrs := header.EthernetLen + hl + thl
	id := ip.ID()
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
		sip := header.IPv4(seg[header.EthernetLen:])
		sip.SetTotalLength(uint16(hl + thl + n))
		if !sip.DontFragment() || k > 0 {
			// As Linux's GSO does: each segment takes the next ID.
			sip.SetID(id + uint16(k))
		}
		sip.SetChecksum(0)
		sip.SetChecksum(sip.CalculateChecksum())
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
			st.SetChecksum(st.CalculateChecksum(sip.Source(), sip.Destination()))
		} else {
			su := header.UDP(sl4)
			su.SetLength(uint16(header.UDPLen + n))
			su.SetChecksum(0)
			su.SetChecksum(su.CalculateChecksum(sip.Source(), sip.Destination()))
		}
		var out []byte
		mark := len(w.extra)
		if header.IPIPOverhead+hl+thl+n > t.MTU {
			// A UDP piece too big for the tunnel: outer fragments, which
			// encapFragments queues after mark.
			out = w.encapFragments(t, r, sb, seg)
		} else {
			out = encapsulate(t, r, sb, seg)
			eth := header.Ethernet(out)
			eth.SetDestination(r.MAC)
			eth.SetSource(t.MAC)
		}
		if first == nil {
			first = out
		} else {
			w.extra = slices.Insert(w.extra, mark, out)
		}
		at += n
		if last {
			break
		}
	}
	w.C.Segmented.Add(1)
	return first, VerdictForward
}
