package dataplane

import (
	"context"
	"net/netip"
	"sync/atomic"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// Connection sync: a master director's workers report each new connection
// and each state change into a bounded ring the sync sender drains
// (SyncEvents); a backup's sync receiver hands connections to Install,
// which queues them for the worker that owns them, and that worker puts
// them into its shard between batches. Neither side ever blocks a worker:
// a full ring or inbox drops and counts.

// syncInboxBatches is how many Install batches a worker's inbox holds.
const syncInboxBatches = 256

// Entry.Flags of reported and installed entries. SyncTemplate marks a
// persistence template: Client is the masked client, ClientPort 0,
// PersistBits the mask, Real and RPort its real. syncUpdate marks, in an
// Install batch, an entry that may update the one already in the shard.
// A SYN-proxied connection also keeps its flagSynProxy and
// flagSynPending, a FULLNAT-translated one its flagSeqXlate (see
// SyncConn).
const (
	SyncTemplate = 1 << 0
	syncUpdate   = 1 << 1
)

// flagPeer marks, in the shard, a connection installed from a peer's
// report that this director has not yet forwarded a client packet of: the
// peer's later reports keep it up to date (state and timeout) even where
// Install is told not to update (this director also forwards: VRRP's new
// master, or every director behind ECMP). The first client packet this
// director forwards makes the connection its own and clears the flag; from
// then on only its own state machine moves it.
const flagPeer = 1 << 7

// syncKeep are the Entry.Flags a reported connection carries to Install.
const syncKeep = SyncTemplate | flagSynProxy | flagSynPending | flagSeqXlate | flagProxyHdr

// SyncConnOf is a connection as connection sync carries it: a copy of its
// entry and of the Aux words the shard keeps beside it. Only a
// SYN-proxied connection (SynProxied) and a FULLNAT TCP connection whose
// numbers the director translates (SeqTranslated) have anything in Aux:
// the first its two sequence-number offsets (synproxy.go), the second its
// client sequence offset and timestamp offset (fullnat.go), which a
// backup needs to forward the connection as the master did. It is a plain
// value, no pointers. SyncConn is the IPv4 one, SyncConn6 the IPv6 one.
type SyncConnOf[A conntrack.IP] struct {
	Entry conntrack.Entry[A]
	Aux   conntrack.Aux
}

// SyncConn is an IPv4 connection as connection sync carries it.
type SyncConn = SyncConnOf[[4]byte]

// SyncConn6 is an IPv6 connection as connection sync carries it.
type SyncConn6 = SyncConnOf[[16]byte]

// SynProxied reports whether c was opened by the SYN proxy, so that its
// sequence and acknowledgment numbers are translated.
func (c *SyncConnOf[A]) SynProxied() bool { return c.Entry.Flags&flagSynProxy != 0 }

// SeqTranslated reports whether c is a FULLNAT TCP connection whose
// sequence numbers and timestamps are translated (fullnat.go), or a NAT
// one whose real got a PROXY header (proxyproto.go): SeqDeltas gives its
// in offset (out is 0) and TSOffset its timestamp offset.
func (c *SyncConnOf[A]) SeqTranslated() bool { return c.Entry.Flags&flagSeqXlate != 0 }

// TSOffset returns the timestamp offset of a SeqTranslated connection:
// added to the client's TSval, taken off the real's TSecr; 0 for others.
func (c *SyncConnOf[A]) TSOffset() uint32 {
	if !c.SeqTranslated() {
		return 0
	}
	return c.Aux[auxTS]
}

// SetFullNATOffsets makes c a SeqTranslated connection with the client
// sequence offset in and the timestamp offset tsoff.
func (c *SyncConnOf[A]) SetFullNATOffsets(in, tsoff uint32) {
	c.Entry.Flags = c.Entry.Flags&^(flagSynProxy|flagSynPending) | flagSeqXlate
	c.Aux[auxClient], c.Aux[auxTS] = in, tsoff
}

// ProxyHeader reports whether c's real got a PROXY header
// (proxyproto.go), whose length c's client offset includes: a backup
// must not send it again.
func (c *SyncConnOf[A]) ProxyHeader() bool { return c.Entry.Flags&flagProxyHdr != 0 }

// SetProxyHeader marks c as a connection whose real got its PROXY header.
func (c *SyncConnOf[A]) SetProxyHeader() { c.Entry.Flags |= flagProxyHdr }

// SynPending reports whether c is SYN-proxied and its real had not yet
// answered the director's SYN when the copy was taken: Aux then holds the
// cookie, not an offset, and SeqDeltas means nothing yet.
func (c *SyncConnOf[A]) SynPending() bool {
	return c.Entry.Flags&(flagSynProxy|flagSynPending) == flagSynProxy|flagSynPending
}

// SeqDeltas returns the sequence-number deltas of a SYN-proxied
// connection in IPVS's terms (struct ip_vs_seq, IP_VS_CONN_F_IN_SEQ and
// _OUT_SEQ): in is added to the client's sequence numbers and taken off
// the real's acknowledgment numbers, out is added to the real's sequence
// numbers and taken off the client's acknowledgment numbers. A
// SeqTranslated connection has only in; both are 0 for a connection that
// is neither.
func (c *SyncConnOf[A]) SeqDeltas() (in, out uint32) {
	switch {
	case c.SeqTranslated():
		return c.Aux[auxClient], 0
	case c.SynProxied():
		return c.Aux[auxClient], -c.Aux[auxReal]
	}
	return 0, 0
}

// SetSeqDeltas makes c a spliced SYN-proxied connection (its real has
// answered) whose sequence numbers are translated by the IPVS deltas in
// and out (see SeqDeltas).
func (c *SyncConnOf[A]) SetSeqDeltas(in, out uint32) {
	c.Entry.Flags = c.Entry.Flags&^(flagSynPending|flagSeqXlate) | flagSynProxy
	c.Aux[auxClient], c.Aux[auxReal] = in, -out
}

// syncRing is a single-producer (the worker), single-consumer (the sync
// sender) ring of connection copies: SyncConn or SyncConn6.
type syncRing[T any] struct {
	buf        []T
	mask       uint64
	head, tail atomic.Uint64 // head: next to read (consumer); tail: next to write (producer)
}

func newSyncRing[T any](size int) *syncRing[T] {
	n := 1
	for n < size {
		n <<= 1
	}
	return &syncRing[T]{buf: make([]T, n), mask: uint64(n - 1)}
}

// slot returns the slot the producer fills next, or nil when the ring is
// full; commit publishes it.
func (r *syncRing[T]) slot() *T {
	t := r.tail.Load()
	if t-r.head.Load() > r.mask {
		return nil
	}
	return &r.buf[t&r.mask]
}

// commit publishes the slot filled after slot, and reports whether the
// ring was empty before.
func (r *syncRing[T]) commit() (first bool) {
	t := r.tail.Load()
	first = t == r.head.Load()
	r.tail.Store(t + 1) // publishes the copy to the consumer
	return first
}

// drain appends everything in the ring to dst.
func (r *syncRing[T]) drain(dst []T) []T {
	h, t := r.head.Load(), r.tail.Load()
	for ; h != t; h++ {
		dst = append(dst, r.buf[h&r.mask])
	}
	r.head.Store(h) // gives the slots back to the producer
	return dst
}

// SyncCounters are a worker's connection-sync counters.
type SyncCounters struct {
	// Queued and Dropped count connection reports put into the ring for
	// the sync sender, and those lost because it was full.
	Queued, Dropped atomic.Uint64
	// Installed counts synced connections added or updated in the shard;
	// Unknown those naming a service or real this director does not have;
	// Refused those that found the shard full or a key taken by another
	// connection; InboxFull the connections Install could not queue;
	// Kept those not installed because the shard had the connection and
	// Install was told not to update.
	Installed, Unknown, Refused, InboxFull, Kept atomic.Uint64
}

// SyncStats is a plain-value sum of every worker's SyncCounters.
type SyncStats struct {
	Queued, Dropped, Installed, Unknown, Refused, InboxFull, Kept uint64
}

// EnableSync turns on connection reports: from now on each worker copies
// every new connection and every TCP state change into a ring of ring
// entries (rounded up to a power of two), one for IPv4 connections, which
// SyncEvents drains, and one for IPv6 ones, which SyncEvents6 drains; and
// accepts connections from Install and Install6. owner (owner6 for IPv6)
// returns the worker of a synced connection, the one the steering program
// sends its packets to, or -1 if its two directions would reach different
// workers. Call it before Run.
func (d *Dataplane) EnableSync(ring int, owner func(e *conntrack.Entry4) int, owner6 func(e *conntrack.Entry6) int) {
	d.syncOwner, d.syncOwner6 = owner, owner6
	d.syncWake = make(chan struct{}, 1)
	for _, w := range d.workers {
		w.syncOut = newSyncRing[SyncConn](ring)
		w.syncIn = make(chan []SyncConn, syncInboxBatches)
		w.syncOut6 = newSyncRing[SyncConn6](ring)
		w.syncIn6 = make(chan []SyncConn6, syncInboxBatches)
		w.syncWake = d.syncWake
	}
}

// SyncWake is signalled when a worker reports a connection into an empty
// ring, so that the sender need not poll to send it at once. It is nil
// while sync is off.
func (d *Dataplane) SyncWake() <-chan struct{} { return d.syncWake }

// SyncEvents appends the connections the workers reported since the last
// call to dst: copies of the entry and its Aux words taken when each was
// created or changed state (a SYN-proxied connection also when its real
// answered), so a connection can appear more than once. There must be one
// caller at a time.
func (d *Dataplane) SyncEvents(dst []SyncConn) []SyncConn {
	for _, w := range d.workers {
		if w.syncOut != nil {
			dst = w.syncOut.drain(dst)
		}
	}
	return dst
}

// SyncEvents6 is SyncEvents for the IPv6 connections.
func (d *Dataplane) SyncEvents6(dst []SyncConn6) []SyncConn6 {
	for _, w := range d.workers {
		if w.syncOut6 != nil {
			dst = w.syncOut6.drain(dst)
		}
	}
	return dst
}

// SyncConnections6 is SyncConnections for the IPv6 connections.
func (d *Dataplane) SyncConnections6(ctx context.Context, dst []SyncConn6) ([]SyncConn6, error) {
	es, aux, err := d.dump6(ctx, nil, nil, true)
	for i := range es {
		dst = append(dst, SyncConn6{Entry: es[i], Aux: aux[i]})
	}
	return dst, err
}

// Install queues synced connections for the workers that own them, which
// add them to their shards (or update the entry already there) between
// batches, without forwarding anything. Each entry names its service
// (Proto, VIP, VPort), its real (Real, RPort), its State, its Local and
// LPort for FULLNAT, and in Expires how long it has
// left, in nanoseconds from when its worker installs it; the worker finds
// RealID and Forward in the published table. An entry with SyncTemplate in
// Flags is a persistence template, which goes into the shared template
// table (for a service with persistence). A SYN-proxied connection
// (SynProxied, as SyncEvents reports it or SetSeqDeltas makes it) gets its
// Aux words, so the backup translates its sequence numbers as the master
// did; one still pending (SynPending) waits, as on the master, for its
// real's SYN-ACK, with the cookie in Aux (but none of the client segments
// the master held). A FULLNAT-translated connection (SeqTranslated, or
// made so by SetFullNATOffsets) gets its sequence and timestamp offsets
// likewise. With update false an entry
// already there for the same client tuple is left alone (a master takes
// the late reports of a director that just gave up the VIPs, but never
// lets them overwrite its own). Install does not keep entries. It returns
// how many it queued; the rest are counted.
func (d *Dataplane) Install(entries []SyncConn, upd bool) int {
	if d.syncOwner == nil {
		return 0
	}
	return queueSync(d, entries, upd,
		func(c *SyncConn) int { return d.syncOwner(&c.Entry) },
		func(c *SyncConn, update uint8) { c.Entry.Flags = c.Entry.Flags&syncKeep | update },
		func(w *Worker) chan []SyncConn { return w.syncIn })
}

// Install6 is Install for IPv6 connections (every forwarding method, with
// FULLNAT's Local and LPort and the Aux words of SYN-proxied and
// translated connections, and persistence templates of IPv6 services):
// each goes into the IPv6 shard of the worker that owns it. A director
// that has no IPv6 service counts them as unknown.
func (d *Dataplane) Install6(entries []SyncConn6, upd bool) int {
	if d.syncOwner6 == nil {
		return 0
	}
	return queueSync(d, entries, upd,
		func(c *SyncConn6) int { return d.syncOwner6(&c.Entry) },
		func(c *SyncConn6, update uint8) { c.Entry.Flags = c.Entry.Flags&syncKeep | update },
		func(w *Worker) chan []SyncConn6 { return w.syncIn6 })
}

// queueSync is Install for either family: it copies entries into one batch
// per owning worker, with their flags cut to what installing reads (flags),
// and offers each batch to the worker's inbox without waiting.
func queueSync[T any](d *Dataplane, entries []T, upd bool, owner func(*T) int, flags func(*T, uint8), inbox func(*Worker) chan []T) int {
	if len(entries) == 0 {
		return 0
	}
	per := make([][]T, len(d.workers))
	var update uint8
	if upd {
		update = syncUpdate
	}
	for i := range entries {
		o := owner(&entries[i])
		if o < 0 || o >= len(d.workers) {
			d.workers[0].syncC.Refused.Add(1)
			continue
		}
		per[o] = append(per[o], entries[i])
		flags(&per[o][len(per[o])-1], update)
	}
	queued := 0
	for i, b := range per {
		if len(b) == 0 {
			continue
		}
		select {
		case inbox(d.workers[i]) <- b:
			queued += len(b)
		default:
			d.workers[i].syncC.InboxFull.Add(uint64(len(b)))
		}
	}
	return queued
}

// SyncStats returns the sum of every worker's sync counters.
func (d *Dataplane) SyncStats() SyncStats {
	var s SyncStats
	for _, w := range d.workers {
		c := &w.syncC
		s.Queued += c.Queued.Load()
		s.Dropped += c.Dropped.Load()
		s.Installed += c.Installed.Load()
		s.Unknown += c.Unknown.Load()
		s.Refused += c.Refused.Load()
		s.InboxFull += c.InboxFull.Load()
		s.Kept += c.Kept.Load()
	}
	return s
}

// syncReport copies e, and for a SYN-proxied or FULLNAT-translated
// connection its Aux words, into the worker's sync ring, if sync is on.
// Other entries are not read for their Aux words (a cache line more), nor
// need they be in the shard.
func (w *Worker) syncReport(e *conntrack.Entry4) {
	if w.syncOut != nil {
		syncReportTo(w, w.syncOut, w.shard, e)
	}
}

// syncReport6 is syncReport for the IPv6 connection e, into the IPv6 ring.
func (w *Worker) syncReport6(e *conntrack.Entry6) {
	if w.syncOut6 != nil {
		syncReportTo(w, w.syncOut6, w.shard6.Load(), e)
	}
}

// syncReportTo is syncReport for either family: e (of shard s, when it
// has Aux words to copy) into ring.
func syncReportTo[A conntrack.IP](w *Worker, ring *syncRing[SyncConnOf[A]], s *conntrack.Shard[A], e *conntrack.Entry[A]) {
	c := ring.slot()
	if c == nil {
		w.syncC.Dropped.Add(1)
		return
	}
	c.Entry, c.Aux = *e, conntrack.Aux{}
	if e.Flags&(flagSynProxy|flagSeqXlate) != 0 {
		c.Aux = *s.Aux(e)
	}
	w.syncQueued(ring.commit())
}

// syncQueued counts a report put into a ring, and wakes the sender if it
// was the first of an empty ring.
func (w *Worker) syncQueued(first bool) {
	w.syncC.Queued.Add(1)
	if first {
		select {
		case w.syncWake <- struct{}{}:
		default: // already signalled
		}
	}
}

// serveSync installs the synced connections waiting in the inbox.
func (w *Worker) serveSync(now int64) {
	for {
		select {
		case b := <-w.syncIn:
			t := w.table.Load()
			if t == nil {
				w.syncC.Unknown.Add(uint64(len(b)))
				continue
			}
			w.cur, w.now = t, now
			for i := range b {
				w.install(t, &b[i], now)
			}
			w.C.Conns.Store(w.conns())
		case b := <-w.syncIn6:
			t := w.table.Load()
			if t == nil {
				w.syncC.Unknown.Add(uint64(len(b)))
				continue
			}
			w.cur, w.now = t, now
			for i := range b {
				w.install6(t, &b[i], now)
			}
			w.C.Conns.Store(w.conns())
		default:
			return
		}
	}
}

// install adds or updates one synced connection, as IPVS's
// ip_vs_proc_conn does on a backup: an entry for the same tuple and real
// gets the new state and timeout, and the sequence offsets (and the
// SYN-proxy flags) of the record; one bound to another real is replaced.
// A record without syncUpdate updates only a peer's connection (flagPeer):
// one this director forwards itself is kept as it is.
func (w *Worker) install(t *Table, sc *SyncConn, now int64) {
	s := &sc.Entry
	svc := t.Services[ServiceKey{Proto: s.Proto, VIP: s.VIP, Port: s.VPort}]
	if svc == nil || (s.Proto != header.ProtoTCP && s.Proto != header.ProtoUDP) {
		w.syncC.Unknown.Add(1)
		return
	}
	var r *Real
	for _, id := range svc.Reals {
		if c := t.real(id); c != nil && c.Addr == s.Real && c.Port == s.RPort {
			r = c
			break
		}
	}
	if s.Flags&SyncTemplate != 0 {
		k := conntrack.MaskedTemplateKey(s.Client, s.VIP, s.VPort, s.Proto, svc.PersistBits)
		w.installTemplate(svc, r, &k, s.Expires, now)
		return
	}
	var zero [4]byte
	if r == nil || (r.Forward == ForwardFullNAT) != (s.Local != zero) {
		w.syncC.Unknown.Add(1)
		return
	}
	sp, hdr, ok := syncedFlags(s.Flags, s.Proto, r.Forward)
	if !ok {
		w.syncC.Unknown.Add(1)
		return
	}
	ne := *s
	// The client's next hop is learnt from its first packet; until then
	// NAT replies go to Table.GatewayMAC.
	ne.RealID, ne.Forward, ne.Flags, ne.PersistBits, ne.ClientMAC = r.ID, uint8(r.Forward), sp|hdr|flagPeer, 0, [6]byte{}
	if r.Forward != ForwardFullNAT {
		ne.Local, ne.LPort = zero, 0
	}
	ne.Expires = now + s.Expires
	k := ne.ForwardKey()
	if e, _ := w.shard.Lookup(&k); e != nil {
		if s.Flags&syncUpdate == 0 && e.Flags&flagPeer == 0 {
			w.syncC.Kept.Add(1)
			return
		}
		if e.RealID == ne.RealID && e.ReplyKey() == ne.ReplyKey() {
			updateSynced(w, w.shard, &w.sp, e, &ne, r, sp|hdr, &sc.Aux)
			return
		}
		w.drop(e)
	}
	if w.shard.Full() && !w.shard.Evict(now, w.onEvictFn) {
		w.syncC.Refused.Add(1)
		return
	}
	e, err := w.shard.Insert(&ne, r.Forward == ForwardNAT || r.Forward == ForwardFullNAT)
	if err != nil {
		w.syncC.Refused.Add(1)
		return
	}
	*w.shard.Aux(e) = syncAux(sp, &sc.Aux)
	r.Counters.Bind(conntrack.IsActive(ne.State))
	w.syncC.Installed.Add(1)
}

// syncedFlags returns the SYN-proxy and translation flags (sp) and the
// PROXY-header flag (hdr) that a synced connection with flags f and
// protocol proto gets in the shard when its real forwards by fwd, and
// false for a record this director cannot forward as its peer did.
func syncedFlags(f, proto uint8, fwd Forward) (sp, hdr uint8, ok bool) {
	sp = f & (flagSynProxy | flagSynPending | flagSeqXlate)
	// A connection whose real had its PROXY header (proxyproto.go): its
	// offset includes the header, which must not be sent again.
	hdr = f & flagProxyHdr
	switch {
	case sp&flagSynProxy != 0:
		sp &^= flagSeqXlate
		if proto != header.ProtoTCP || (fwd != ForwardNAT && fwd != ForwardFullNAT) {
			// The director sees only one direction of a DR or TUN
			// connection, and could translate only that one.
			return 0, 0, false
		}
	case sp&flagSeqXlate != 0:
		// FULLNAT, or NAT with a PROXY header.
		sp = flagSeqXlate
		if proto != header.ProtoTCP || (fwd != ForwardFullNAT && fwd != ForwardNAT) {
			return 0, 0, false
		}
	default:
		sp, hdr = 0, 0
	}
	return sp, hdr, true
}

// updateSynced updates e, in shard s, the connection a synced record ne
// names (same real, same keys): its state and timeout, and its SYN-proxy,
// translation and PROXY-header flags fl with their Aux words aux. held
// are the worker's held SYN-proxy segments of e's family.
func updateSynced[A conntrack.IP](w *Worker, s *conntrack.Shard[A], held *heldFrames[A], e, ne *conntrack.Entry[A], r *Real, fl uint8, aux *conntrack.Aux) {
	if a, b := conntrack.IsActive(e.State), conntrack.IsActive(ne.State); a != b {
		if b {
			r.Counters.Activate()
		} else {
			r.Counters.Deactivate()
		}
	}
	e.State, e.Expires = ne.State, ne.Expires
	if e.Flags&flagSynPending != 0 && fl&flagSynPending == 0 {
		// Spliced on the master: what this director held for the real
		// it cannot send (the client retransmits).
		fk := e.ForwardKey()
		dropHeldFrames(w, held, &fk)
	}
	e.Flags = e.Flags&^(flagSynProxy|flagSynPending|flagSeqXlate|flagProxyHdr) | fl
	*s.Aux(e) = syncAux(fl, aux)
	w.syncC.Installed.Add(1)
}

// syncAux is the Aux an installed connection with SYN-proxy or
// translation flags sp gets: the record's offsets for a SYN-proxied or
// FULLNAT-translated one, zero for others.
func syncAux(sp uint8, aux *conntrack.Aux) conntrack.Aux {
	if sp&(flagSynProxy|flagSeqXlate) == 0 {
		return conntrack.Aux{}
	}
	return *aux
}

// installTemplate puts a synced persistence template of svc, key k,
// naming r, into the shared template table, and counts it on its real.
// The key is masked with the service's own mask, not the peer's: it must
// be the one newConn will look up. lapse is the time it has left.
func (w *Worker) installTemplate(svc *Service, r *Real, k *conntrack.TemplateKey, lapse, now int64) {
	if r == nil || svc.Persist <= 0 || svc.OPS {
		w.syncC.Unknown.Add(1)
		return
	}
	if lapse <= 0 {
		lapse = int64(svc.Persist)
	}
	out, old := w.templates.Put(k, r.ID, now+lapse, int64(svc.Persist))
	switch out {
	case conntrack.Full:
		w.syncC.Refused.Add(1)
		return
	case conntrack.Replaced:
		if o := w.cur.real(old); o != nil {
			o.Counters.UnbindTemplate()
		}
		fallthrough
	case conntrack.Created:
		r.Counters.BindTemplate()
	}
	w.syncC.Installed.Add(1)
}

// syncReportTemplate reports k's template, naming r, of a service with
// persistence timeout persist.
func (w *Worker) syncReportTemplate(k *conntrack.TemplateKey, r *Real, persistBits uint8, persist, now int64) {
	if w.syncOut == nil {
		return
	}
	if !isMapped(k.VIP) {
		e := conntrack.Entry6{Client: k.Client, VIP: k.VIP, VPort: k.VPort, Proto: k.Proto,
			Real: r.Addr6, RPort: r.Port, RealID: r.ID, Forward: uint8(r.Forward), Flags: SyncTemplate,
			PersistBits: persistBits, Expires: now + persist}
		w.syncReport6(&e)
		return
	}
	e := conntrack.Entry4{Client: k.Client.As4(), VIP: k.VIP.As4(), VPort: k.VPort, Proto: k.Proto,
		Real: r.Addr, RPort: r.Port, RealID: r.ID, Forward: uint8(r.Forward), Flags: SyncTemplate,
		PersistBits: persistBits, Expires: now + persist}
	w.syncReport(&e)
}

// isMapped reports whether a template key's address is IPv4
// (IPv4-mapped, as conntrack.AddrFrom4 stores it).
func isMapped(a conntrack.Addr) bool { return netip.AddrFrom16(a).Is4In6() }

// SyncTemplates appends every persistence template to dst as the entries
// a template report carries (SyncTemplate), for a sync refresh: a template
// held by connections lapses persistence after now, the others when they
// would. Templates whose real has left the table are skipped.
func (d *Dataplane) SyncTemplates(dst []SyncConn, now int64) []SyncConn {
	t := d.table.Load()
	if t == nil {
		return dst
	}
	for _, ti := range d.templates.DumpInto(nil) {
		if !isMapped(ti.Key.VIP) {
			continue // SyncTemplates6's
		}
		r := t.real(ti.RealID)
		svc := t.Services[ServiceKey{Proto: ti.Key.Proto, VIP: ti.Key.VIP.As4(), Port: ti.Key.VPort}]
		if r == nil || svc == nil || svc.Persist <= 0 {
			continue
		}
		exp := ti.Expires
		if ti.Conns > 0 {
			exp = now + int64(svc.Persist)
		}
		dst = append(dst, SyncConn{Entry: conntrack.Entry4{Client: ti.Key.Client.As4(), VIP: ti.Key.VIP.As4(), VPort: ti.Key.VPort, Proto: ti.Key.Proto,
			Real: r.Addr, RPort: r.Port, RealID: r.ID, Forward: uint8(r.Forward), Flags: SyncTemplate,
			PersistBits: svc.PersistBits, Expires: exp}})
	}
	return dst
}

// SyncTemplates6 is SyncTemplates for the templates of IPv6 services.
func (d *Dataplane) SyncTemplates6(dst []SyncConn6, now int64) []SyncConn6 {
	t := d.table.Load()
	if t == nil {
		return dst
	}
	for _, ti := range d.templates.DumpInto(nil) {
		if isMapped(ti.Key.VIP) {
			continue
		}
		r := t.real(ti.RealID)
		svc := t.Services6[ServiceKey6{Proto: ti.Key.Proto, VIP: ti.Key.VIP, Port: ti.Key.VPort}]
		if r == nil || svc == nil || svc.Persist <= 0 {
			continue
		}
		exp := ti.Expires
		if ti.Conns > 0 {
			exp = now + int64(svc.Persist)
		}
		dst = append(dst, SyncConn6{Entry: conntrack.Entry6{Client: ti.Key.Client, VIP: ti.Key.VIP, VPort: ti.Key.VPort, Proto: ti.Key.Proto,
			Real: r.Addr6, RPort: r.Port, RealID: r.ID, Forward: uint8(r.Forward), Flags: SyncTemplate,
			PersistBits: svc.PersistBits, Expires: exp}})
	}
	return dst
}

// install6 is install for an IPv6 connection: it goes into the worker's
// IPv6 shard, with its local address and port for FULLNAT and its Aux
// words for a SYN-proxied or translated one, as install does.
func (w *Worker) install6(t *Table, sc *SyncConn6, now int64) {
	s := &sc.Entry
	sh := w.shard6.Load()
	svc := t.Services6[ServiceKey6{Proto: s.Proto, VIP: s.VIP, Port: s.VPort}]
	if sh == nil || svc == nil || (s.Proto != header.ProtoTCP && s.Proto != header.ProtoUDP) {
		w.syncC.Unknown.Add(1)
		return
	}
	var r *Real
	for _, id := range svc.Reals {
		if c := t.real(id); c != nil && c.Addr6 == s.Real && c.Port == s.RPort {
			r = c
			break
		}
	}
	if s.Flags&SyncTemplate != 0 {
		k := conntrack.MaskedTemplateKey6(s.Client, s.VIP, s.VPort, s.Proto, svc.PersistBits)
		w.installTemplate(svc, r, &k, s.Expires, now)
		return
	}
	var zero [16]byte
	if r == nil || (r.Forward == ForwardFullNAT) != (s.Local != zero) {
		w.syncC.Unknown.Add(1)
		return
	}
	sp, hdr, ok := syncedFlags(s.Flags, s.Proto, r.Forward)
	if !ok {
		w.syncC.Unknown.Add(1)
		return
	}
	ne := *s
	// The client's next hop is learnt from its first packet; until then
	// NAT replies go to Table.GatewayMAC.
	ne.RealID, ne.Forward, ne.Flags, ne.PersistBits, ne.ClientMAC = r.ID, uint8(r.Forward), sp|hdr|flagPeer, 0, [6]byte{}
	if r.Forward != ForwardFullNAT {
		ne.Local, ne.LPort = zero, 0
	}
	ne.Expires = now + s.Expires
	k := ne.ForwardKey()
	if e, _ := sh.Lookup(&k); e != nil {
		if s.Flags&syncUpdate == 0 && e.Flags&flagPeer == 0 {
			w.syncC.Kept.Add(1)
			return
		}
		if e.RealID == ne.RealID && e.ReplyKey() == ne.ReplyKey() {
			updateSynced(w, sh, &w.sp6, e, &ne, r, sp|hdr, &sc.Aux)
			return
		}
		w.release6(e)
		sh.Delete(e)
	}
	if sh.Full() && !sh.Evict(now, w.onEvict6Fn) {
		w.syncC.Refused.Add(1)
		return
	}
	e, err := sh.Insert(&ne, r.Forward == ForwardNAT || r.Forward == ForwardFullNAT)
	if err != nil {
		w.syncC.Refused.Add(1)
		return
	}
	*sh.Aux(e) = syncAux(sp, &sc.Aux)
	r.Counters.Bind(conntrack.IsActive(ne.State))
	w.syncC.Installed.Add(1)
}

// clientMAC is where a reply of e goes: the client's next hop as its
// latest packet showed, or the default gateway for a connection that has
// not seen one yet (installed by connection sync).
func clientMAC(t *Table, e *conntrack.Entry4) [6]byte {
	if e.ClientMAC != ([6]byte{}) {
		return e.ClientMAC
	}
	return t.GatewayMAC
}
