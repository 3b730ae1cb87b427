package conntrack

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// TemplateKey identifies a persistence template: one client prefix of one
// virtual service (IPVS's connection template, whose client port is 0).
// It is pointer-free, so a map of templates is not scanned by the GC.
type TemplateKey struct {
	Client Addr // the client address masked to the service's prefix
	VIP    Addr
	VPort  uint16
	Proto  uint8
	_      uint8
}

// MaskedTemplateKey returns the key of client's template for a service,
// with client masked to bits (1..32) as an IPv4 address.
func MaskedTemplateKey(client, vip [4]byte, vport uint16, proto, bits uint8) TemplateKey {
	a := client
	m := ^uint32(0) << (32 - uint32(min(bits, 32)))
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) & m
	return TemplateKey{
		Client: AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}),
		VIP:    AddrFrom4(vip), VPort: vport, Proto: proto,
	}
}

// MaskedTemplateKey6 returns the key of an IPv6 client's template for an
// IPv6 service, with client masked to its first bits bits (1..128), the
// prefix length ipvsadm -M takes for IPv6. An IPv6 key never equals an
// IPv4 one (MaskedTemplateKey): an IPv6 VIP is not IPv4-mapped (the config
// refuses one).
func MaskedTemplateKey6(client, vip [16]byte, vport uint16, proto, bits uint8) TemplateKey {
	n := int(min(bits, 128))
	var a Addr
	copy(a[:n/8], client[:n/8])
	if n%8 != 0 {
		a[n/8] = client[n/8] & byte(0xff<<(8-n%8))
	}
	return TemplateKey{Client: a, VIP: Addr(vip), VPort: vport, Proto: proto}
}

// A template is stored as an Entry6 in a Shard of its stripe, keyed by its
// forward key: Client (the masked client), client port 0, VIP:VPort and
// Proto, as an IPVS template is an ip_vs_conn with cport 0. Fields a
// template does not need carry its own state: Local[0:4] the number of
// connections it controls, Real[0:8] its timeout. Expires is MaxInt64
// while it controls connections, so the shard's own expiry keeps it; when
// the last one ends it becomes the time the template lapses.
const held = int64(^uint64(0) >> 1)

func tplConns(e *Entry6) uint32        { return binary.LittleEndian.Uint32(e.Local[0:4]) }
func setTplConns(e *Entry6, n uint32)  { binary.LittleEndian.PutUint32(e.Local[0:4], n) }
func tplTimeout(e *Entry6) int64       { return int64(binary.LittleEndian.Uint64(e.Real[0:8])) }
func setTplTimeout(e *Entry6, d int64) { binary.LittleEndian.PutUint64(e.Real[0:8], uint64(d)) }
func tplKey(k *TemplateKey) Key6 {
	return Key6{Src: k.Client, Dst: k.VIP, DstPort: k.VPort, Proto: k.Proto}
}
func keyOfTemplate(e *Entry6) TemplateKey {
	return TemplateKey{Client: e.Client, VIP: e.VIP, VPort: e.VPort, Proto: e.Proto}
}

// templateStripes is the number of independently locked parts of a
// Templates: enough that workers scheduling new connections at once
// rarely meet on one lock.
const templateStripes = 64

// templateScan is how many entry cells of a stripe Expire examines per
// stripe and call.
const templateScan = 1024

type templateStripe struct {
	mu     sync.Mutex
	s      *Shard6       // nil until the stripe's first template
	gone   func(uint32)  // Expire's callback, while the stripe is locked
	goneFn func(*Entry6) // calls gone with the template's real, bound once
	_      [64 - 40]byte // keep stripes on separate cache lines
}

// Templates holds the persistence templates of every worker, in the same
// kind of table as the connections: fixed-size, pointer-free entries in
// shards with incremental expiry. Unlike a connection Shard it is shared:
// a client's connections are steered to workers by their ports, so every
// worker must see the same template. It is used only when a new
// connection is scheduled or ends, never per packet, so striped locks cost
// little. A stripe's shard (capacity/64 templates) is allocated when the
// stripe takes its first template, so a director without persistence
// pays nothing for it. The zero value is not usable; call NewTemplates.
type Templates struct {
	stripes   [templateStripes]templateStripe
	perStripe int
	n         atomic.Int64
	cursor    atomic.Uint32 // Expire's next stripe
}

// NewTemplates returns an empty template table for at most about
// capacity templates (capacity/64, rounded up, per stripe).
func NewTemplates(capacity int) *Templates {
	t := &Templates{perStripe: max((capacity+templateStripes-1)/templateStripes, 1)}
	for i := range t.stripes {
		s := &t.stripes[i]
		s.goneFn = func(e *Entry6) { s.gone(e.RealID) }
	}
	return t
}

// Len returns the number of templates, alive or waiting to be expired.
func (t *Templates) Len() int { return int(t.n.Load()) }

func (t *Templates) stripe(k *TemplateKey) *templateStripe {
	a := k.Client.As4()
	h := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) ^ uint32(k.VPort)<<7 ^ uint32(k.Proto)
	h *= 0x9e3779b1
	return &t.stripes[h>>26] // top 6 bits: 64 stripes
}

// Outcome says what Schedule did.
type Outcome uint8

// Outcomes of Schedule.
const (
	// NoReal: there was no live usable template and pick found no real.
	NoReal Outcome = iota
	// Reused: the template's real was returned.
	Reused
	// Created: a new template names the returned real.
	Created
	// Replaced: a template whose real was no longer usable, or that had
	// expired, was replaced; its real is returned as old.
	Replaced
	// Full: the table is full; the returned real was picked without a
	// template.
	Full
)

// Schedule returns the real for a new connection of k's client: the real
// of k's live template if usable(real) says it still is, else pick's
// choice, which then becomes k's template for timeout nanoseconds after
// its last connection. With ref, the new connection holds the template
// until Release; without (one-packet scheduling), it only refreshes it.
// usable and pick are called with the stripe locked: they must not call
// back into t.
func (t *Templates) Schedule(k *TemplateKey, now, timeout int64, ref bool,
	usable func(realID uint32) bool, pick func() (uint32, bool)) (realID uint32, out Outcome, old uint32) {
	st := t.stripe(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	key := tplKey(k)
	var e *Entry6
	if st.s != nil {
		e, _ = st.s.Lookup(&key)
	}
	if e != nil && now < e.Expires && usable(e.RealID) {
		if ref {
			setTplConns(e, tplConns(e)+1)
			e.Expires = held
		} else if e.Expires != held {
			e.Expires = max(e.Expires, now+timeout)
		}
		return e.RealID, Reused, 0
	}
	id, ok := pick()
	if !ok {
		return 0, NoReal, 0
	}
	if e != nil {
		// A connection still counted on the old template releases into
		// nothing: Release checks the real.
		old = e.RealID
		e.RealID = id
		setTemplate(e, timeout, now, ref)
		return id, Replaced, old
	}
	if st.s == nil {
		st.s = NewShard[[16]byte](t.perStripe)
	}
	if st.s.Full() {
		return id, Full, 0
	}
	n := Entry6{Client: k.Client, VIP: k.VIP, VPort: k.VPort, Proto: k.Proto, RealID: id}
	setTemplate(&n, timeout, now, ref)
	if _, err := st.s.Insert(&n, false); err != nil {
		return id, Full, 0
	}
	t.n.Add(1)
	return id, Created, 0
}

// Lookup returns k's template if it is live at now (the template
// Schedule would find and keep if its real is still usable), changing
// nothing: no connection is counted, no timeout restarted, nothing
// created. For gvsadm simulate; it takes the stripe's lock as Schedule
// does.
func (t *Templates) Lookup(k *TemplateKey, now int64) (TemplateInfo, bool) {
	st := t.stripe(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.s == nil {
		return TemplateInfo{}, false
	}
	key := tplKey(k)
	e, _ := st.s.Lookup(&key)
	if e == nil || now >= e.Expires {
		return TemplateInfo{}, false
	}
	return TemplateInfo{Key: keyOfTemplate(e), RealID: e.RealID, Conns: int32(tplConns(e)), Expires: e.Expires}, true
}

// Put installs k's template as a peer director reports it (connection
// sync): naming realID, lapsing at expires, timeout after its last
// connection. A template already there for realID keeps its connections
// and lives at least until expires; one naming another real is replaced
// (Replaced, with that real as old). Put never counts a connection on it.
func (t *Templates) Put(k *TemplateKey, realID uint32, expires, timeout int64) (out Outcome, old uint32) {
	st := t.stripe(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	key := tplKey(k)
	if st.s == nil {
		st.s = NewShard[[16]byte](t.perStripe)
	}
	if e, _ := st.s.Lookup(&key); e != nil {
		if e.RealID == realID {
			if e.Expires != held {
				e.Expires = max(e.Expires, expires)
			}
			return Reused, 0
		}
		old = e.RealID
		e.RealID = realID
		setTplTimeout(e, timeout)
		setTplConns(e, 0)
		e.Expires = expires
		return Replaced, old
	}
	if st.s.Full() {
		return Full, 0
	}
	n := Entry6{Client: k.Client, VIP: k.VIP, VPort: k.VPort, Proto: k.Proto, RealID: realID, Expires: expires}
	setTplTimeout(&n, timeout)
	if _, err := st.s.Insert(&n, false); err != nil {
		return Full, 0
	}
	t.n.Add(1)
	return Created, 0
}

// setTemplate (re)starts template e: held by one connection (ref) or
// lapsing timeout after now.
func setTemplate(e *Entry6, timeout, now int64, ref bool) {
	setTplTimeout(e, timeout)
	if ref {
		setTplConns(e, 1)
		e.Expires = held
	} else {
		setTplConns(e, 0)
		e.Expires = now + timeout
	}
}

// Release uncounts a connection of k's template on real realID that ended
// at now. When it was the last, the template lives its timeout more. A
// template that names another real by now (it was replaced) is left alone.
func (t *Templates) Release(k *TemplateKey, realID uint32, now int64) {
	st := t.stripe(k)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.s == nil {
		return
	}
	key := tplKey(k)
	e, _ := st.s.Lookup(&key)
	if e == nil || e.RealID != realID || tplConns(e) == 0 {
		return
	}
	setTplConns(e, tplConns(e)-1)
	if tplConns(e) == 0 {
		e.Expires = now + tplTimeout(e)
	}
}

// Expire examines the next stripes of the table (round robin over calls
// from any goroutine), templateScan entry cells of each, and removes the
// templates that have lapsed, calling gone with the real of each. It
// returns how many it removed.
func (t *Templates) Expire(now int64, stripes int, gone func(realID uint32)) int {
	removed := 0
	for range min(stripes, templateStripes) {
		st := &t.stripes[t.cursor.Add(1)%templateStripes]
		st.mu.Lock()
		if st.s != nil {
			st.gone = gone
			removed += st.s.Expire(now, templateScan, st.goneFn)
			st.gone = nil
		}
		st.mu.Unlock()
	}
	t.n.Add(int64(-removed))
	return removed
}

// TemplateInfo is a template as Dump reports it.
type TemplateInfo struct {
	Key     TemplateKey
	RealID  uint32
	Conns   int32
	Expires int64 // monotonic ns; meaningful when Conns is 0
}

// DumpInto appends every template to dst and returns it.
func (t *Templates) DumpInto(dst []TemplateInfo) []TemplateInfo {
	for i := range t.stripes {
		st := &t.stripes[i]
		st.mu.Lock()
		if st.s != nil {
			for c := range st.s.Cells() {
				e := &st.s.entries[c]
				if e.keys != 0 {
					dst = append(dst, TemplateInfo{Key: keyOfTemplate(e), RealID: e.RealID, Conns: int32(tplConns(e)), Expires: e.Expires})
				}
			}
		}
		st.mu.Unlock()
	}
	return dst
}
