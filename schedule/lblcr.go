package schedule

import (
	"sync"
	"time"
)

// lblcrSetMax bounds an lblcr server set. The kernel's set grows without
// bound (in practice to the reals that were least loaded each time the
// set's best was overloaded, shrunk by one per LBLCExpire of quiet); 8
// covers the replication lblcr is for and keeps an entry at 72 bytes, the
// cache at 296 KiB per service.
const lblcrSetMax = 8

// lblcr is locality-based least-connection with replication scheduling
// (ip_vs_lblcr.c): a cache from destination address to a set of reals.
// A flow whose destination has an entry goes to the set's weighted least
// loaded real (ip_vs_dest_set_min: overloaded and weight-0 members
// skipped, ties to the newest member); if the set has more than one
// member and has not changed for Options.LBLCExpire, its weighted most
// loaded member (ip_vs_dest_set_max) is dropped first — after the choice,
// as in the kernel, which may drop the real it just chose and still use
// it. If there is no such real or it is overloaded in lblc's sense
// (is_overloaded), the real of the weighted least-connection loop over
// all reals is used and added to the set. Without an entry that real
// starts a new one. An entry unused for LBLCExpire (by Flow.Now) counts
// as absent.
//
// Differences from the kernel, all deliberate:
//   - a set holds at most lblcrSetMax reals: adding a real to a full set
//     first drops its weighted most loaded member, as the kernel's
//     shrink step would;
//   - the cache holds 4096 addresses in 1024 sets of 4 with LRU
//     replacement, expiry is checked at lookup, and the cache lives as
//     long as the scheduler, as for lblc.
type lblcr struct {
	n      int
	expire int64 // in Flow.Now's nanoseconds
	sets   [localitySets]lblcrSet
}

type lblcrSet struct {
	mu sync.Mutex
	e  [localityWays]lblcrEntry
}

type lblcrEntry struct {
	addr    [16]byte
	lastuse int64
	lastmod int64 // when the set last changed
	members [lblcrSetMax]int32
	size    int32 // 0 = free entry
}

var (
	_ Scheduler = (*lblcr)(nil)
	_ Peeker    = (*lblcr)(nil)
)

func newLBLCR(dests []Dest, expire time.Duration) *lblcr {
	return &lblcr{n: len(dests), expire: int64(expire)}
}

func (s *lblcr) Pick(dests []Dest, f *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	if f == nil {
		f = &zeroFlow
	}
	now := f.Now
	set := &s.sets[localitySet(&f.Dst)]
	set.mu.Lock()
	e := set.lookup(&f.Dst, now, s.expire)
	if e == nil {
		set.mu.Unlock()
		d := leastWeighted(dests)
		if d >= 0 {
			set.mu.Lock()
			set.add(&f.Dst, int32(d), now, s.expire, dests)
			set.mu.Unlock()
		}
		return d
	}
	e.lastuse = now
	d := e.min(dests)
	if e.size > 1 && now-e.lastmod > s.expire { // time_after(now, lastmod + expire)
		if m := e.max(dests); m >= 0 {
			e.erase(m, now)
		}
	}
	set.mu.Unlock()
	if d >= 0 && !lblcOverloaded(dests, d) {
		return d
	}
	if d = leastWeighted(dests); d < 0 {
		return -1
	}
	set.mu.Lock()
	set.add(&f.Dst, int32(d), now, s.expire, dests)
	set.mu.Unlock()
	return d
}

// Peek returns what Pick would return now, without touching the cache:
// the least loaded member of the destination's set if Pick would take
// it, else the weighted least-connection choice over all reals (which
// Pick would then add to the set). Pick's dropping of a set's most
// loaded member comes after its choice and does not change it.
func (s *lblcr) Peek(dests []Dest, f *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	if f == nil {
		f = &zeroFlow
	}
	if e, ok := s.cached(f); ok {
		if d := e.min(dests); d >= 0 && !lblcOverloaded(dests, d) {
			return d
		}
	}
	return leastWeighted(dests)
}

// cached returns a copy of the live entry of f's destination, without
// changing it; false if there is none.
func (s *lblcr) cached(f *Flow) (lblcrEntry, bool) {
	set := &s.sets[localitySet(&f.Dst)]
	set.mu.Lock()
	defer set.mu.Unlock()
	if e := set.lookup(&f.Dst, f.Now, s.expire); e != nil {
		return *e, true
	}
	return lblcrEntry{}, false
}

// lookup returns the live entry of address a, or nil.
func (t *lblcrSet) lookup(a *[16]byte, now, expire int64) *lblcrEntry {
	for k := range t.e {
		if e := &t.e[k]; e.size > 0 && e.addr == *a {
			if expired(e.lastuse, now, expire) {
				return nil
			}
			return e
		}
	}
	return nil
}

// add puts real d in the set of address a, as ip_vs_lblcr_new and
// ip_vs_dest_set_insert: into the live entry of a if there is one (no
// change if d is in it already), else into a new entry that takes a free
// or expired way or else the least recently used.
func (t *lblcrSet) add(a *[16]byte, d int32, now, expire int64, dests []Dest) {
	victim := &t.e[0]
	for k := range t.e {
		e := &t.e[k]
		live := e.size > 0 && !expired(e.lastuse, now, expire)
		if live && e.addr == *a {
			e.insert(d, now, dests)
			return
		}
		switch {
		case !live:
			victim = e
		case victim.size > 0 && !expired(victim.lastuse, now, expire) && e.lastuse < victim.lastuse:
			victim = e
		}
	}
	// An expired entry of a, if any, is reused like any free way: the
	// lookup treats it as absent, and a fresh one would shadow it.
	for k := range t.e {
		if e := &t.e[k]; e.size > 0 && e.addr == *a {
			victim = e
		}
	}
	*victim = lblcrEntry{addr: *a, lastuse: now, lastmod: now, size: 1}
	victim.members[0] = d
}

// insert adds real d at the head of the set, as list_add_rcu in
// ip_vs_dest_set_insert, unless it is a member already.
func (e *lblcrEntry) insert(d int32, now int64, dests []Dest) {
	for _, m := range e.members[:e.size] {
		if m == d {
			return
		}
	}
	if e.size == lblcrSetMax {
		m := e.max(dests)
		if m < 0 {
			m = int(e.members[e.size-1]) // the oldest
		}
		e.erase(m, now)
	}
	copy(e.members[1:e.size+1], e.members[:e.size])
	e.members[0] = d
	e.size++
	e.lastmod = now
}

// erase drops real d from the set (ip_vs_dest_set_erase).
func (e *lblcrEntry) erase(d int, now int64) {
	for k, m := range e.members[:e.size] {
		if int(m) == d {
			copy(e.members[k:e.size], e.members[k+1:e.size])
			e.size--
			e.lastmod = now
			return
		}
	}
}

// min is ip_vs_dest_set_min: the first member that is not overloaded and
// has a positive weight, then any later one not overloaded with a
// strictly smaller overhead/weight. -1 if none.
func (e *lblcrEntry) min(dests []Dest) int {
	least := -1
	var loh, lw int64
	for _, m := range e.members[:e.size] {
		d := &dests[m]
		if d.Weight <= 0 || d.Counters.overloaded.Load() {
			continue
		}
		doh := overhead(d.Counters)
		w := int64(d.Weight)
		if least < 0 || loh*w > doh*lw {
			least, loh, lw = int(m), doh, w
		}
	}
	return least
}

// max is ip_vs_dest_set_max: the first member with a positive weight,
// then any later one with a positive weight and a strictly larger
// overhead/weight, overloaded or not. -1 if none.
func (e *lblcrEntry) max(dests []Dest) int {
	most := -1
	var moh, mw int64
	for _, m := range e.members[:e.size] {
		d := &dests[m]
		if d.Weight <= 0 {
			continue
		}
		doh := overhead(d.Counters)
		w := int64(d.Weight)
		if most < 0 || moh*w < doh*mw {
			most, moh, mw = int(m), doh, w
		}
	}
	return most
}

// overhead is ip_vs_dest_conn_overhead: Active*256 + Inactive.
func overhead(c *Counters) int64 {
	return c.Active.Load()<<connShift + c.Inactive.Load()
}
