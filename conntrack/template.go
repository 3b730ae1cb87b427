package conntrack

import (
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

// template is one persistence template. It is alive while it controls a
// connection (conns > 0) and until expires after the last one ended, as an
// IPVS template whose timer is re-armed while n_control > 0.
type template struct {
	realID  uint32
	conns   int32
	timeout int64 // the service's persistence timeout, ns
	expires int64 // monotonic ns
}

func (t *template) alive(now int64) bool { return t.conns > 0 || now < t.expires }

// templateStripes is the number of independently locked parts of a
// Templates: enough that workers scheduling new connections at once
// rarely meet on one lock.
const templateStripes = 64

type templateStripe struct {
	mu sync.Mutex
	m  map[TemplateKey]template
	_  [64 - 16]byte // keep stripes on separate cache lines
}

// Templates holds the persistence templates of every worker. Unlike a
// Shard it is shared: a client's connections are steered to workers by
// their ports, so every worker must see the same template. It is used
// only when a new connection is scheduled, never per packet, so striped
// locks cost little. The zero value is not usable; call NewTemplates.
type Templates struct {
	stripes  [templateStripes]templateStripe
	capacity int64
	n        atomic.Int64
	cursor   atomic.Uint32 // Expire's next stripe
}

// NewTemplates returns an empty template table for at most capacity
// templates.
func NewTemplates(capacity int) *Templates {
	t := &Templates{capacity: int64(max(capacity, 1))}
	for i := range t.stripes {
		t.stripes[i].m = make(map[TemplateKey]template)
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
	s := t.stripe(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	tpl, found := s.m[*k]
	if found && tpl.alive(now) && usable(tpl.realID) {
		if ref {
			tpl.conns++
		}
		tpl.expires = max(tpl.expires, now+timeout)
		s.m[*k] = tpl
		return tpl.realID, Reused, 0
	}
	id, ok := pick()
	if !ok {
		return 0, NoReal, 0
	}
	if !found && t.n.Load() >= t.capacity {
		return id, Full, 0
	}
	n := template{realID: id, timeout: timeout, expires: now + timeout}
	if ref {
		n.conns = 1
	}
	s.m[*k] = n
	if found {
		// A connection still counted on the old template releases into
		// nothing: Release checks the real.
		return id, Replaced, tpl.realID
	}
	t.n.Add(1)
	return id, Created, 0
}

// Release uncounts a connection of k's template on real realID that ended
// at now. When it was the last, the template lives its timeout more. A
// template that names another real by now (it was replaced) is left alone.
func (t *Templates) Release(k *TemplateKey, realID uint32, now int64) {
	s := t.stripe(k)
	s.mu.Lock()
	if tpl, ok := s.m[*k]; ok && tpl.realID == realID && tpl.conns > 0 {
		tpl.conns--
		if tpl.conns == 0 {
			tpl.expires = max(tpl.expires, now+tpl.timeout)
		}
		s.m[*k] = tpl
	}
	s.mu.Unlock()
}

// Expire scans the next stripes of the table (round robin over calls from
// any goroutine) and removes the templates that are no longer alive,
// calling gone with the real of each. It returns how many it removed.
func (t *Templates) Expire(now int64, stripes int, gone func(realID uint32)) int {
	removed := 0
	for range min(stripes, templateStripes) {
		s := &t.stripes[t.cursor.Add(1)%templateStripes]
		s.mu.Lock()
		for k, tpl := range s.m {
			if !tpl.alive(now) {
				delete(s.m, k)
				removed++
				gone(tpl.realID)
			}
		}
		s.mu.Unlock()
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
		s := &t.stripes[i]
		s.mu.Lock()
		for k, tpl := range s.m {
			dst = append(dst, TemplateInfo{Key: k, RealID: tpl.realID, Conns: tpl.conns, Expires: tpl.expires})
		}
		s.mu.Unlock()
	}
	return dst
}
