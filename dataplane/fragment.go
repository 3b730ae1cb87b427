package dataplane

import (
	"sync"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// IP fragments. Only a datagram's first fragment carries the ports, so it
// is handled like any packet of its connection, by the worker that owns
// the connection; that worker notes what it did in the fragment table,
// keyed by what all fragments share (source, destination, protocol, IP
// ID). The later fragments carry no ports: the steering program sends all
// of them to worker 0, which forwards each as the table says: to the same
// real server, translated the same way (addresses only: the transport
// header, whose checksum covers the whole datagram, is in the first
// fragment). Nothing is reassembled.
//
// A later fragment that finds no entry (it overtook its first fragment on
// the wire, or in the other worker's queue) waits up to fragWait, at most
// fragPending of them at a time, and is dropped and counted (verdict
// fragment) if its first fragment does not come, or was not forwarded.

// Tunables of the fragment table.
const (
	// fragTimeout is how long a first fragment's decision is kept for the
	// fragments after it (Linux keeps a reassembly queue ipfrag_time, 30
	// s; fragments of one datagram arrive within milliseconds).
	fragTimeout = 5e9
	// fragEntries bounds the table: datagrams in flight at once.
	fragEntries = 16384
	// fragWait and fragPending bound the fragments waiting for their
	// first fragment. A worker retries them after each read, and an idle
	// worker's read lasts up to 100 ms (afpacket's poll timeout), so the
	// wait must outlast that.
	fragWait    = 250e6
	fragPending = 128
)

// fragKey is what every fragment of one datagram has in common.
type fragKey struct {
	src, dst [4]byte
	id       uint16
	proto    uint8
}

// fragEntry is what the first fragment's worker decided.
type fragEntry struct {
	expires int64
	realID  uint32
	reply   bool    // a NAT or FULLNAT reply, from the real to the client
	src     [4]byte // the new source address, zero to keep it
	dst     [4]byte // the new destination address, zero to keep it (requests: the real's)
	mac     [6]byte // replies: the client's next hop
}

// fragTable is shared by the workers: the owner of a connection puts, and
// worker 0 gets. Fragmented traffic is rare, so a lock is cheap. m6 holds
// the IPv6 datagrams' decisions (fragment6.go).
type fragTable struct {
	mu sync.Mutex
	m  map[fragKey]fragEntry
	m6 map[fragKey6]fragEntry6
}

func (f *fragTable) put(k fragKey, e fragEntry, now int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[fragKey]fragEntry)
	}
	return fragPut(f.m, k, e, now)
}

func (f *fragTable) get(k fragKey, now int64) (fragEntry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fragGet(f.m, k, now)
}

// expiring is a fragment table entry of either family.
type expiring interface{ expiry() int64 }

func (e fragEntry) expiry() int64 { return e.expires }

// fragPut stores e under k in m, making room by dropping expired entries
// when m holds fragEntries already; it reports false when there is none.
// The caller holds the table's lock.
func fragPut[K comparable, E expiring](m map[K]E, k K, e E, now int64) bool {
	if _, ok := m[k]; !ok && len(m) >= fragEntries {
		for k2, e2 := range m {
			if e2.expiry() <= now {
				delete(m, k2)
			}
		}
		if len(m) >= fragEntries {
			return false
		}
	}
	m[k] = e
	return true
}

// fragGet returns the entry of k in m unless it has expired (it is then
// deleted). The caller holds the table's lock.
func fragGet[K comparable, E expiring](m map[K]E, k K, now int64) (E, bool) {
	e, ok := m[k]
	if ok && e.expiry() <= now {
		delete(m, k)
		var zero E
		return zero, false
	}
	return e, ok
}

// keyOf is the fragment key of a validated IPv4 packet.
func keyOf(ip header.IPv4) fragKey {
	return fragKey{src: ip.Source(), dst: ip.Destination(), id: ip.ID(), proto: ip.Protocol()}
}

// noteFirst records, for the first fragment in frame (not yet rewritten)
// of connection e going to r, how to forward the rest of its datagram.
func (w *Worker) noteFirst(t *Table, frame []byte, e *conntrack.Entry4, r *Real, reply bool, now int64) {
	ip := header.IPv4(frame[header.EthernetLen:])
	fe := fragEntry{expires: now + fragTimeout, realID: r.ID, reply: reply}
	switch {
	case reply:
		fe.src, fe.mac = e.VIP, clientMAC(t, e)
		if Forward(e.Forward) == ForwardFullNAT {
			fe.dst = e.Client
		}
	case r.Forward == ForwardNAT:
		fe.dst = r.Addr
	case r.Forward == ForwardFullNAT:
		fe.src, fe.dst = e.Local, r.Addr
	}
	if !w.frags.put(keyOf(ip), fe, now) {
		w.C.FragTableFull.Add(1)
	}
}

// laterFragment forwards a fragment after the first, in buf[Headroom:] as
// frame, as its first fragment's decision says. It reports false when
// there is none (yet).
func (w *Worker) laterFragment(t *Table, buf, frame []byte, now int64) ([]byte, Verdict, bool) {
	ip := header.IPv4(frame[header.EthernetLen:])
	fe, ok := w.frags.get(keyOf(ip), now)
	if !ok {
		return nil, VerdictFragment, false
	}
	eth := header.Ethernet(frame)
	r := t.real(fe.realID)
	if fe.reply {
		ip.SetSourceWithChecksumUpdate(fe.src)
		if fe.dst != ([4]byte{}) {
			ip.SetDestinationWithChecksumUpdate(fe.dst)
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
	if fe.src != ([4]byte{}) {
		ip.SetSourceWithChecksumUpdate(fe.src)
	}
	if fe.dst != ([4]byte{}) {
		ip.SetDestinationWithChecksumUpdate(fe.dst)
	}
	r.Stats.InPkts.Add(1)
	r.Stats.InBytes.Add(uint64(len(ip)))
	if r.Forward == ForwardTUN {
		// A fragment has DF clear: too big for the tunnel, its outer
		// packet is fragmented in turn.
		if len(ip)+header.IPIPOverhead > t.MTU {
			return w.encapFragments(t, r, buf, frame), VerdictForward, true
		}
		frame = encapsulate(t, r, buf, frame)
		eth = header.Ethernet(frame)
	}
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	return frame, VerdictForward, true
}

// pendingFrag is a later fragment waiting for its first.
type pendingFrag struct {
	buf      []byte // Headroom + MaxSegment, the frame at Headroom
	size     int
	deadline int64
}

// holdFragment keeps a copy of the later fragment in frame until its
// first fragment's decision is known; it reports false when too many
// wait already.
func (w *Worker) holdFragment(frame []byte, now int64) bool {
	if len(w.fragWaiting) >= fragPending || len(frame) > MaxSegment {
		return false
	}
	var p pendingFrag
	if n := len(w.fragFree); n > 0 {
		p.buf, w.fragFree = w.fragFree[n-1], w.fragFree[:n-1]
	} else {
		p.buf = make([]byte, Headroom+MaxSegment)
	}
	p.size = copy(p.buf[Headroom:], frame)
	p.deadline = now + fragWait
	w.fragWaiting = append(w.fragWaiting, p)
	return true
}

// retryFragments sends the waiting fragments whose first fragment has
// been handled since, and drops those that waited too long.
func (w *Worker) retryFragments(t *Table, now int64) {
	if len(w.fragWaiting) == 0 || t == nil {
		return
	}
	out := w.fragOut[:0]
	keep := w.fragWaiting[:0]
	for _, p := range w.fragWaiting {
		frame := p.buf[Headroom : Headroom+p.size]
		f, v, found := w.heldFragment(t, p.buf, frame, now) // either family (fragment6.go)
		switch {
		case !found && now < p.deadline:
			keep = append(keep, p)
			continue
		case f != nil:
			out = append(out, f)
			out = append(out, w.extra...) // a TUN fragment's outer fragments
			w.extra = w.extra[:0]
		}
		w.C.Verdicts[v].Add(1)
		w.fragSent = append(w.fragSent, p.buf)
	}
	w.fragWaiting = keep
	if len(out) > 0 {
		sent, _ := w.link.Write(out, nil)
		w.C.TxFrames.Add(uint64(sent))
		if sent < len(out) {
			w.C.Verdicts[VerdictTxError].Add(uint64(len(out) - sent))
		}
	}
	// The buffers are free once written.
	w.resetSpare()
	w.fragFree = append(w.fragFree, w.fragSent...)
	w.fragSent = w.fragSent[:0]
	w.fragOut = out[:0]
}
