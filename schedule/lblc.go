package schedule

import (
	"sync"
	"time"
)

// lblc is locality-based least-connection scheduling (ip_vs_lblc.c): a
// cache from destination address to real. A flow whose destination has
// an entry goes to that real if its weight is positive and it is not
// overloaded in lblc's sense (is_overloaded: more active connections
// than its weight while some real has fewer than half its weight);
// otherwise, or without an entry, to the real of the weighted
// least-connection loop (__ip_vs_lblc_schedule, which skips overloaded
// and weight-0 reals), which the entry then names. An entry unused for
// Options.LBLCExpire (by Flow.Now) counts as absent.
//
// As in the kernel, a cached real is kept even while its threshold
// overload flag (Counters.Overloaded) is set: only the new choice skips
// flagged reals.
//
// Differences from the kernel, all deliberate:
//   - the cache holds 4096 addresses in 1024 sets of 4, replacing the
//     least recently used entry of a set when it is full; the kernel's
//     list grows to 16384 entries and then stops caching, and a timer
//     frees entries unused for 6 minutes while it is over that size;
//   - expiry is checked when an entry is looked up, not by a timer every
//     30 minutes, so an entry expires after LBLCExpire exactly;
//   - the cache lives as long as the scheduler: a new snapshot (New)
//     starts empty, where the kernel keeps its table across changes of
//     the service's reals.
type lblc struct {
	n      int
	expire int64 // in Flow.Now's nanoseconds
	sets   [localitySets]lblcSet
}

type lblcSet struct {
	mu sync.Mutex
	e  [localityWays]lblcEntry
}

type lblcEntry struct {
	addr    [16]byte
	lastuse int64
	dest    int32
	used    bool
}

var (
	_ Scheduler = (*lblc)(nil)
	_ Peeker    = (*lblc)(nil)
)

func newLBLC(dests []Dest, expire time.Duration) *lblc {
	return &lblc{n: len(dests), expire: int64(expire)}
}

func (s *lblc) Pick(dests []Dest, f *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	if f == nil {
		f = &zeroFlow
	}
	set := &s.sets[localitySet(&f.Dst)]
	set.mu.Lock()
	d := -1
	if e := set.lookup(&f.Dst, f.Now, s.expire); e != nil {
		e.lastuse = f.Now
		d = int(e.dest)
	}
	set.mu.Unlock()
	if d >= 0 && dests[d].Weight > 0 && !lblcOverloaded(dests, d) {
		return d
	}
	if d = leastWeighted(dests); d < 0 {
		return -1
	}
	set.mu.Lock()
	set.assign(&f.Dst, int32(d), f.Now, s.expire)
	set.mu.Unlock()
	return d
}

// Peek returns what Pick would return now, without touching the cache:
// the cached real if Pick would keep it, else the weighted
// least-connection choice (which Pick would then cache).
func (s *lblc) Peek(dests []Dest, f *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	if f == nil {
		f = &zeroFlow
	}
	if d := s.cached(f); d >= 0 && dests[d].Weight > 0 && !lblcOverloaded(dests, d) {
		return d
	}
	return leastWeighted(dests)
}

// cached returns the real of the live entry of f's destination, or -1,
// without changing the entry.
func (s *lblc) cached(f *Flow) int {
	set := &s.sets[localitySet(&f.Dst)]
	set.mu.Lock()
	defer set.mu.Unlock()
	if e := set.lookup(&f.Dst, f.Now, s.expire); e != nil {
		return int(e.dest)
	}
	return -1
}

// lookup returns the live entry of address a, or nil.
func (t *lblcSet) lookup(a *[16]byte, now, expire int64) *lblcEntry {
	for k := range t.e {
		if e := &t.e[k]; e.used && e.addr == *a {
			if expired(e.lastuse, now, expire) {
				return nil
			}
			return e
		}
	}
	return nil
}

// assign makes address a name real d, as ip_vs_lblc_new: a live entry
// naming d is kept as it is, any other entry of a is replaced, and a new
// entry takes a free or expired way or else the least recently used.
func (t *lblcSet) assign(a *[16]byte, d int32, now, expire int64) {
	victim := &t.e[0]
	for k := range t.e {
		e := &t.e[k]
		if e.used && e.addr == *a {
			if e.dest != d || expired(e.lastuse, now, expire) {
				*e = lblcEntry{addr: *a, lastuse: now, dest: d, used: true}
			}
			return
		}
		if !e.used || expired(e.lastuse, now, expire) {
			victim = e
		} else if victim.used && !expired(victim.lastuse, now, expire) && e.lastuse < victim.lastuse {
			victim = e
		}
	}
	*victim = lblcEntry{addr: *a, lastuse: now, dest: d, used: true}
}
