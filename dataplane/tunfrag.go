package dataplane

import "github.com/gvs-lb/gvs/dataplane/header"

// encapFragments is TUN's answer to a packet without DF that does not fit
// the MTU once encapsulated, as IPVS's ipip_xmit does: the outer packet is
// fragmented (the real server's kernel reassembles it before decapsulating).
// The first fragment is built in buf and returned, addressed to r; the
// others go into the worker's spare buffers, queued in w.extra for the
// batch to send after it.
// The outer fragments share an IP ID from the worker's own counter (the
// inner packets of many clients share one outer source and destination, so
// their IDs could collide).
func (w *Worker) encapFragments(t *Table, r *Real, buf, frame []byte) []byte {
	full := encapsulate(t, r, buf, frame)
	eth := header.Ethernet(full)
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	outer := header.IPv4(full[header.EthernetLen:])
	inner := outer[header.IPv4MinLen:]
	per := (t.MTU - header.IPv4MinLen) &^ 7
	w.outerID++
	id := uint16(w.outerID*uint32(w.n) + uint32(w.id))
	f := header.IPv4Fields{TOS: outer.TOS(), ID: id, TTL: outer.TTL(), Protocol: header.ProtoIPIP,
		Src: outer.Source(), Dst: outer.Destination()}
	for off := per; off < len(inner); off += per {
		n := min(per, len(inner)-off)
		b := w.spare(header.EthernetLen + header.IPv4MinLen + n)
		copy(b, full[:header.EthernetLen])
		f.TotalLength, f.FragmentOffset, f.Flags = uint16(header.IPv4MinLen+n), uint16(off), 0
		if off+n < len(inner) {
			f.Flags = header.IPv4FlagMoreFragments
		}
		header.IPv4(b[header.EthernetLen:]).Encode(&f)
		copy(b[header.EthernetLen+header.IPv4MinLen:], inner[off:off+n])
		w.extra = append(w.extra, b)
	}
	f.TotalLength, f.FragmentOffset, f.Flags = uint16(header.IPv4MinLen+per), 0, header.IPv4FlagMoreFragments
	outer.Encode(&f)
	w.C.OuterFragments.Add(1)
	return full[:header.EthernetLen+header.IPv4MinLen+per]
}

// spare returns a buffer of n bytes that stays untouched until the batch
// has been written: the spare buffers are handed out in order and taken
// back by resetSpare after each write.
func (w *Worker) spare(n int) []byte {
	if w.spareUsed == len(w.spareBufs) {
		w.spareBufs = append(w.spareBufs, make([]byte, Headroom+MaxSegment))
	}
	b := w.spareBufs[w.spareUsed][:n]
	w.spareUsed++
	return b
}

// resetSpare takes the spare buffers back once their frames are written.
func (w *Worker) resetSpare() {
	w.spareUsed = 0
	w.extra = w.extra[:0]
}
