package conntrack

import (
	"errors"
	"math/bits"
	"math/rand/v2"
)

// MaxCapacity is the largest capacity of a shard: a slot holds an entry
// index, a direction bit and at least two bits of the key's hash in 32
// bits.
const MaxCapacity = 1 << 28

// The index is bucketed cuckoo hashing (as DPDK's rte_hash): every key
// lives in one of two buckets of bucketSlots slots chosen by its hash. A
// shard has room for two keys per entry (NAT and FULLNAT key both
// directions) at a load of at most loadNum/loadDen, where two choices of
// eight slots almost never need more than a short cuckoo path to place a
// key.
const (
	bucketSlots      = 8
	loadNum, loadDen = 17, 20

	// A cuckoo path is searched by up to cuckooWalks random walks of at
	// most cuckooDepth moves.
	cuckooWalks = 16
	cuckooDepth = 8

	// Shards under smallShard entries get an index at load 1/2, and
	// every index at least minBuckets buckets.
	smallShard = 4096
	minBuckets = 4
)

// Eviction samples evictWindows runs of evictRun consecutive entry cells
// for the entry to evict.
const (
	evictWindows = 4
	evictRun     = 8
)

// ErrFull and ErrExists are why Insert fails.
var (
	ErrFull   = errors.New("conntrack: shard full")
	ErrExists = errors.New("conntrack: key exists")
)

// bucket is one cell of the index: 32 bytes, two to a cache line.
type bucket [bucketSlots]uint32

// Shard is one worker's part of the connection table: a fixed slab of
// entries with a free list and a hash index over it, both allocated and
// made resident at NewShard. It never grows, rehashes or allocates after
// that.
//
// A slot of the index is 32 bits: entry index+1, the direction bit and
// the low bits of the key's hash as a tag, so a lookup dereferences an
// entry only when the tag matches (1 in 2^tagBits false matches: 1/128 at
// 10 million entries). An empty slot is 0. A key's two buckets come from
// the two halves of its hash by multiply-shift, so the bucket count need
// not be a power of two. Deleting a key clears its slot and touches
// nothing else, so expiry costs the same however full the index is.
//
// A shard has a single writer and is not safe for concurrent use: dumps,
// too, must run on the owning goroutine. The zero value is not usable;
// call NewShard.
type Shard[A IP] struct {
	buckets  []bucket
	nbuckets uint64
	entries  []Entry[A]
	aux      []Aux  // two words beside each entry cell for the caller (Aux)
	hw       int    // high-water mark: cells [0, hw) have been used
	free     uint32 // head of the free list (index+1), 0 = empty
	n        int    // live entries

	tagBits  uint32
	tagMask  uint32
	idxShift uint32 // tagBits + 1

	cursor int // Expire's position in entries
	rng    uint64
	seed   [5]uint64

	warmSum uint32 // Warm's loaded words, kept so that its loads are not optimised away
}

// NewShard returns an empty shard for at most capacity entries (clamped to
// [1, MaxCapacity]). Its memory, about 48 + 8 + 9.4 = 65.4 bytes per IPv4
// entry and 96 + 8 + 9.4 = 113.4 per IPv6 entry (entry, Aux words, index
// at its fullest), is allocated and touched here.
func NewShard[A IP](capacity int) *Shard[A] {
	capacity = min(max(capacity, 1), MaxCapacity)
	slots := (2*capacity*loadDen + loadNum - 1) / loadNum
	if capacity < smallShard {
		// A handful of buckets cannot absorb the variance of random
		// bucket choices at 17/20: small shards get twice the room.
		slots = 4 * capacity
	}
	nb := max((slots+bucketSlots-1)/bucketSlots, minBuckets)
	idxBits := uint32(bits.Len32(uint32(capacity)))
	s := &Shard[A]{
		buckets:  makeTable[bucket](nb),
		nbuckets: uint64(nb),
		entries:  makeTable[Entry[A]](capacity),
		aux:      makeTable[Aux](capacity),
		tagBits:  31 - idxBits,
		tagMask:  1<<(31-idxBits) - 1,
		idxShift: 32 - idxBits,
		rng:      rand.Uint64() | 1,
	}
	for i := range s.seed {
		s.seed[i] = rand.Uint64()
	}
	return s
}

// Len returns the number of entries.
func (s *Shard[A]) Len() int { return s.n }

// Cap returns the most entries the shard holds.
func (s *Shard[A]) Cap() int { return len(s.entries) }

// Full reports whether the shard holds Cap entries. Insert can fail with
// ErrFull before that only if the index finds no place for a key, which
// its sizing makes vanishingly rare (it has not been seen in large
// shards).
func (s *Shard[A]) Full() bool { return s.n >= len(s.entries) }

// Bytes returns the memory the shard holds: its index, entries and Aux
// words.
func (s *Shard[A]) Bytes() int {
	var e Entry[A]
	return len(s.buckets)*bucketSlots*4 + len(s.entries)*int(sizeofEntry(&e)) + len(s.aux)*auxSize
}

// Aux is what a shard keeps beside each entry for its caller: two 32-bit
// words, opaque here. The dataplane keeps there what only some connections
// need and the fixed-size entry has no room for: its SYN proxy's two
// sequence-number offsets, one per direction, or a FULLNAT TCP
// connection's sequence and timestamp offsets.
type Aux [2]uint32

// auxSize is the size of an Aux in bytes.
const auxSize = 8

// Aux returns the words the shard keeps beside entry e for its caller:
// zero when e is inserted, then the caller's to read and write until e is
// removed. Words apart cost 8 bytes a connection where a larger entry
// would cost as much or more (the entry has no padding left, and grows in
// steps of its 8-byte alignment), but a lookup that needs them waits for
// one more cache line, which Warm does not load. e must be an entry of
// this shard, from Insert or Lookup and still valid; any other pointer
// panics.
func (s *Shard[A]) Aux(e *Entry[A]) *Aux {
	idx, ok := s.indexOf(e)
	if !ok {
		panic("conntrack: Aux of an entry not in this shard")
	}
	return &s.aux[idx]
}

func (s *Shard[A]) hash(k *Key[A]) uint64 { return hashKey(k, &s.seed) }

// bucketsOf returns the two buckets of a key of hash h: each half of the
// hash scaled to [0, nbuckets) (Lemire's multiply-shift).
func (s *Shard[A]) bucketsOf(h uint64) (uint64, uint64) {
	return (h >> 32) * s.nbuckets >> 32, uint64(uint32(h)) * s.nbuckets >> 32
}

func (s *Shard[A]) slotOf(idx int, reply bool, h uint64) uint32 {
	v := uint32(idx+1)<<s.idxShift | uint32(h)&s.tagMask
	if reply {
		v |= 1 << s.tagBits
	}
	return v
}

func (s *Shard[A]) slotIndex(v uint32) int  { return int(v>>s.idxShift) - 1 }
func (s *Shard[A]) slotReply(v uint32) bool { return v>>s.tagBits&1 != 0 }

// findIn returns the slot of bucket b that holds key k with tag tag, or
// nil.
func (s *Shard[A]) findIn(b *bucket, k *Key[A], tag uint32) *uint32 {
	for j := range b {
		v := b[j]
		if v != 0 && v&s.tagMask == tag && s.entries[s.slotIndex(v)].matches(k, s.slotReply(v)) {
			return &b[j]
		}
	}
	return nil
}

// find returns the slot that holds key k of hash h, or nil.
func (s *Shard[A]) find(k *Key[A], h uint64) *uint32 {
	tag := uint32(h) & s.tagMask
	b1, b2 := s.bucketsOf(h)
	if p := s.findIn(&s.buckets[b1], k, tag); p != nil || b2 == b1 {
		return p
	}
	return s.findIn(&s.buckets[b2], k, tag)
}

// freeSlot returns the first empty slot of b, or -1.
func freeSlot(b *bucket) int {
	for j, v := range b {
		if v == 0 {
			return j
		}
	}
	return -1
}

// otherBucket returns the bucket of the key of slot value v that is not
// cur (cur itself if both are the same), rehashing the key from its entry.
func (s *Shard[A]) otherBucket(v uint32, cur uint64) uint64 {
	e := &s.entries[s.slotIndex(v)]
	var k Key[A]
	if s.slotReply(v) {
		k = e.ReplyKey()
	} else {
		k = e.ForwardKey()
	}
	b1, b2 := s.bucketsOf(s.hash(&k))
	if b1 == cur {
		return b2
	}
	return b1
}

func (s *Shard[A]) random() uint64 {
	s.rng ^= s.rng << 13
	s.rng ^= s.rng >> 7
	s.rng ^= s.rng << 17
	return s.rng
}

// place puts slot value v of a key with hash h into one of its buckets,
// moving other keys to their other buckets if both are full. It reports
// false if no cuckoo path was found; the index is then unchanged.
func (s *Shard[A]) place(h uint64, v uint32) bool {
	b1, b2 := s.bucketsOf(h)
	// The first bucket while it has room: a lookup that hits there
	// never loads the second (measured: filling the emptier of the two
	// instead makes hits about 1.5 times slower and inserts barely
	// faster).
	if j := freeSlot(&s.buckets[b1]); j >= 0 {
		s.buckets[b1][j] = v
		return true
	}
	if j := freeSlot(&s.buckets[b2]); j >= 0 {
		s.buckets[b2][j] = v
		return true
	}
	type pos struct {
		b uint64
		j int
	}
	var path [cuckooDepth]pos
walks:
	for w := range cuckooWalks {
		b := b1
		if w&1 == 1 {
			b = b2
		}
		for d := range cuckooDepth {
			p := pos{b, int(s.random() >> 61)}
			for _, q := range path[:d] {
				if q == p {
					continue walks // a cycle: try another walk
				}
			}
			path[d] = p
			alt := s.otherBucket(s.buckets[p.b][p.j], p.b)
			j := freeSlot(&s.buckets[alt])
			if j < 0 {
				b = alt
				continue
			}
			// Move each key on the path one step along it, the last
			// into the free slot, and v into the first.
			s.buckets[alt][j] = s.buckets[p.b][p.j]
			for i := d; i > 0; i-- {
				s.buckets[path[i].b][path[i].j] = s.buckets[path[i-1].b][path[i-1].j]
			}
			s.buckets[path[0].b][path[0].j] = v
			return true
		}
	}
	return false
}

// eraseKey clears the slot of key k, which must exist.
func (s *Shard[A]) eraseKey(k *Key[A]) {
	p := s.find(k, s.hash(k))
	if p == nil {
		panic("conntrack: index lost a key")
	}
	*p = 0
}

// alloc returns the index of a free entry cell. The caller has checked
// that the shard is not full.
func (s *Shard[A]) alloc() int {
	if s.free != 0 {
		idx := int(s.free - 1)
		s.free = s.entries[idx].RealID
		return idx
	}
	s.hw++
	return s.hw - 1
}

// Insert adds a copy of e, keyed by its forward key and, if reply, by its
// reply key too (NAT and FULLNAT, whose replies come back through the
// director; DR and TUN need only the forward key). It returns a pointer to
// the stored entry, valid until the next Insert, Delete, Expire or Evict,
// or ErrFull, or ErrExists if a key is taken. It never allocates.
func (s *Shard[A]) Insert(e *Entry[A], reply bool) (*Entry[A], error) {
	if s.Full() {
		return nil, ErrFull
	}
	fk := e.ForwardKey()
	hf := s.hash(&fk)
	if s.find(&fk, hf) != nil {
		return nil, ErrExists
	}
	var hr uint64
	if reply {
		rk := e.ReplyKey()
		if rk == fk {
			reply = false
		} else if hr = s.hash(&rk); s.find(&rk, hr) != nil {
			return nil, ErrExists
		}
	}
	idx := s.alloc()
	st := &s.entries[idx]
	*st = *e
	st.keys = 1
	s.aux[idx] = Aux{}
	if !s.place(hf, s.slotOf(idx, false, hf)) {
		s.release(idx)
		return nil, ErrFull
	}
	if reply {
		st.keys = 2
		if !s.place(hr, s.slotOf(idx, true, hr)) {
			fk := st.ForwardKey()
			s.eraseKey(&fk)
			s.release(idx)
			return nil, ErrFull
		}
	}
	s.n++
	return st, nil
}

// Lookup finds the entry for k in either direction; reply reports whether
// k was the reply key. It does not look at Expires: an entry past its time
// is found until Expire removes it. It returns nil, false on a miss.
func (s *Shard[A]) Lookup(k *Key[A]) (e *Entry[A], reply bool) {
	p := s.find(k, s.hash(k))
	if p == nil {
		return nil, false
	}
	return &s.entries[s.slotIndex(*p)], s.slotReply(*p)
}

// Delete removes e, a pointer returned by Insert or Lookup (or passed to
// an Expire or Evict callback) that is still valid. Deleting an entry
// already deleted does nothing; a pointer that is not into this shard's
// entries panics.
func (s *Shard[A]) Delete(e *Entry[A]) {
	idx, ok := s.indexOf(e)
	if !ok {
		panic("conntrack: Delete of an entry not in this shard")
	}
	if s.entries[idx].keys == 0 {
		return
	}
	s.remove(idx)
}

func (s *Shard[A]) remove(idx int) {
	e := &s.entries[idx]
	fk := e.ForwardKey()
	s.eraseKey(&fk)
	if e.keys == 2 {
		rk := e.ReplyKey()
		s.eraseKey(&rk)
	}
	s.release(idx)
	s.n--
}

// release puts entry cell idx on the free list.
func (s *Shard[A]) release(idx int) {
	s.entries[idx] = Entry[A]{RealID: s.free}
	s.free = uint32(idx + 1)
}

// Expire removes entries with Expires <= now. It examines at most scan
// entry cells, continuing from where the previous call stopped and
// wrapping around, so a call costs O(scan) however large the table; a
// sweep over the whole shard takes about hw/scan calls, where hw is the
// most entries the shard has held at once. fn, if not nil, is called with
// each entry before it is removed and must not modify the shard. It
// returns the number removed, at most scan.
func (s *Shard[A]) Expire(now int64, scan int, fn func(*Entry[A])) int {
	hw := s.hw
	scan = min(scan, hw)
	removed := 0
	for range scan {
		if s.cursor >= hw {
			s.cursor = 0
		}
		idx := s.cursor
		s.cursor++
		e := &s.entries[idx]
		if e.keys == 0 || e.Expires > now {
			continue
		}
		if fn != nil {
			fn(e)
		}
		s.remove(idx)
		removed++
	}
	return removed
}

// Evictable reports whether a full shard may evict e to make room for a
// new connection: any entry past its time, and any that is not an
// established TCP connection (half-open, closing, or UDP). Established
// connections are never evicted.
func Evictable[A IP](e *Entry[A], now int64) bool {
	return e.Expires <= now || e.State != TCPEstablished || e.Proto != protoTCP
}

// Evict makes room in a full shard by removing one entry, as IPVS's
// drop_entry does under memory pressure but with a choice of victim: it
// samples evictWindows runs of evictRun consecutive entry cells from
// random places and removes, among the Evictable entries seen, the one
// that expires first (for half-open entries of a SYN flood, the oldest).
// fn, if not nil, is called with the victim before it is removed. It
// reports false if no sampled entry was evictable: the table is full of
// established connections, and the new one must be refused.
func (s *Shard[A]) Evict(now int64, fn func(*Entry[A])) bool {
	if s.hw == 0 {
		return false
	}
	victim := -1
	for range evictWindows {
		idx := int((s.random() >> 32) * uint64(s.hw) >> 32)
		for range evictRun {
			e := &s.entries[idx]
			if e.keys != 0 && Evictable(e, now) && (victim < 0 || e.Expires < s.entries[victim].Expires) {
				victim = idx
			}
			if idx++; idx == s.hw {
				idx = 0
			}
		}
	}
	if victim < 0 {
		return false
	}
	if fn != nil {
		fn(&s.entries[victim])
	}
	s.remove(victim)
	return true
}

// DumpInto appends copies of all entries to dst and returns it; it does
// not allocate if dst has room for Len() more. Dump is the allocating
// convenience.
func (s *Shard[A]) DumpInto(dst []Entry[A]) []Entry[A] {
	return s.DumpRange(dst, 0, s.hw)
}

// DumpRange appends copies of the entries in cells [from, to) to dst, so
// that a worker can copy its shard a piece at a time between batches. It
// returns dst; cells past the high-water mark are empty.
func (s *Shard[A]) DumpRange(dst []Entry[A], from, to int) []Entry[A] {
	to = min(to, s.hw)
	for i := max(from, 0); i < to; i++ {
		if s.entries[i].keys != 0 {
			dst = append(dst, s.entries[i])
		}
	}
	return dst
}

// DumpRangeAux is DumpRange that also appends each copied entry's Aux
// words to aux, in step with dst (the connection-sync refresh needs both).
func (s *Shard[A]) DumpRangeAux(dst []Entry[A], aux []Aux, from, to int) ([]Entry[A], []Aux) {
	to = min(to, s.hw)
	for i := max(from, 0); i < to; i++ {
		if s.entries[i].keys != 0 {
			dst = append(dst, s.entries[i])
			aux = append(aux, s.aux[i])
		}
	}
	return dst, aux
}

// Cells returns the number of entry cells ever used, the bound of
// DumpRange.
func (s *Shard[A]) Cells() int { return s.hw }

// Dump returns copies of all entries in a new slice.
func (s *Shard[A]) Dump() []Entry[A] {
	return s.DumpInto(make([]Entry[A], 0, s.n))
}
