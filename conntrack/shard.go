package conntrack

import "math/rand/v2"

// Tunables of a shard.
const (
	// MaxCapacity is the largest capacity of a shard: slot references
	// hold an entry index in 31 bits.
	MaxCapacity = 1 << 30

	// initialSlots and initialEntries size a new shard (8 KiB of slots,
	// 46 KiB of entries): small enough that idle workers cost little,
	// large enough that a test or a light load never grows.
	initialSlots   = 1024
	initialEntries = 256

	// A slot array grows (doubles) before more than loadNum/loadDen of
	// its slots are used: linear probing at load 5/8 averages about 4
	// probes per miss, 8 slots to a 64-byte line.
	loadNum, loadDen = 5, 8

	minSlots = 8
)

// slot is one cell of the open-addressing table. ref is 0 for an empty
// slot, else (entry index+1)<<1 | reply. hash is the low 32 bits of the
// key's hash, from which the slot's home is hash & mask: the table never
// has more than 1<<32 slots, so growing rehashes without reading keys.
type slot struct {
	hash uint32
	ref  uint32
}

func slotRef(idx int, reply bool) uint32 {
	r := uint32(idx+1) << 1
	if reply {
		r |= 1
	}
	return r
}

func (s slot) index() int  { return int(s.ref>>1) - 1 }
func (s slot) reply() bool { return s.ref&1 != 0 }

// item is one cell of the entry slab: the entry and its keys, padded to
// three 64-byte cache lines so that no item straddles a fourth.
type item struct {
	fwd, rev Key
	e        Entry
	next     uint32 // free list: index+1 of the next free item, 0 = end
	keys     uint8  // 0 = free, 1 = fwd only, 2 = fwd and rev
	_        [11]byte
}

// Shard is one worker's part of the connection table. It has a single
// writer and is not safe for concurrent use: dumps, too, must run on the
// owning goroutine. The zero value is not usable; call NewShard.
type Shard struct {
	slots []slot
	mask  uint64
	used  int // occupied slots

	items []item // len = high-water mark, cap = allocated
	free  uint32 // head of the free list (index+1), 0 = empty
	n     int    // live entries

	capacity int
	maxSlots int
	cursor   int // Expire's position in items
	seed     [5]uint64
}

// NewShard returns an empty shard for at most capacity entries (clamped to
// [1, MaxCapacity]). It starts small and doubles its slot array and entry
// slab as it fills, up to what capacity needs; it allocates only then.
func NewShard(capacity int) *Shard {
	capacity = min(max(capacity, 1), MaxCapacity)
	// Every entry may hold two keys, at a load of at most loadNum/loadDen.
	need := (2*capacity*loadDen + loadNum - 1) / loadNum
	maxSlots := minSlots
	for maxSlots < need {
		maxSlots <<= 1
	}
	s := &Shard{capacity: capacity, maxSlots: maxSlots}
	s.slots = make([]slot, min(initialSlots, maxSlots))
	s.mask = uint64(len(s.slots) - 1)
	s.items = make([]item, 0, min(initialEntries, capacity))
	for i := range s.seed {
		s.seed[i] = rand.Uint64()
	}
	return s
}

// Len returns the number of entries.
func (s *Shard) Len() int { return s.n }

// Cap returns the most entries the shard holds.
func (s *Shard) Cap() int { return s.capacity }

func (s *Shard) hash32(k *Key) uint32 {
	return uint32(hashKey(k, &s.seed))
}

// find returns the slot position of key k with hash h, or -1.
func (s *Shard) find(k *Key, h uint32) int {
	for i := uint64(h) & s.mask; ; i = (i + 1) & s.mask {
		sl := s.slots[i]
		if sl.ref == 0 {
			return -1
		}
		if sl.hash != h {
			continue
		}
		it := &s.items[sl.index()]
		if sl.reply() {
			if it.rev == *k {
				return int(i)
			}
		} else if it.fwd == *k {
			return int(i)
		}
	}
}

// place puts a slot for hash h at the end of its probe run.
func (s *Shard) place(h, ref uint32) {
	i := uint64(h) & s.mask
	for s.slots[i].ref != 0 {
		i = (i + 1) & s.mask
	}
	s.slots[i] = slot{hash: h, ref: ref}
	s.used++
}

// erase empties slot pos and shifts the rest of its run back (Knuth's
// Algorithm R) so that no probe run has a hole.
func (s *Shard) erase(pos uint64) {
	i, j := pos, pos
	for {
		j = (j + 1) & s.mask
		sl := s.slots[j]
		if sl.ref == 0 {
			break
		}
		// sl may move to i if i lies cyclically within [home, j].
		home := uint64(sl.hash) & s.mask
		if (j-home)&s.mask >= (j-i)&s.mask {
			s.slots[i] = sl
			i = j
		}
	}
	s.slots[i] = slot{}
	s.used--
}

// eraseRef erases the slot for hash h that refers to ref, which must exist.
func (s *Shard) eraseRef(h, ref uint32) {
	i := uint64(h) & s.mask
	for s.slots[i].ref != ref {
		i = (i + 1) & s.mask
	}
	s.erase(i)
}

// growSlots doubles the slot array if adding k slots would pass the load
// limit.
func (s *Shard) growSlots(k int) {
	if (s.used+k)*loadDen <= len(s.slots)*loadNum || len(s.slots) >= s.maxSlots {
		return
	}
	old := s.slots
	s.slots = make([]slot, 2*len(old))
	s.mask = uint64(len(s.slots) - 1)
	s.used = 0
	for _, sl := range old {
		if sl.ref != 0 {
			s.place(sl.hash, sl.ref)
		}
	}
}

// alloc returns the index of a free item, growing the slab if needed. The
// caller has checked s.n < s.capacity.
func (s *Shard) alloc() int {
	if s.free != 0 {
		idx := int(s.free - 1)
		s.free = s.items[idx].next
		return idx
	}
	if len(s.items) == cap(s.items) {
		items := make([]item, len(s.items), min(2*cap(s.items), s.capacity))
		copy(items, s.items)
		s.items = items
	}
	s.items = s.items[:len(s.items)+1]
	return len(s.items) - 1
}

// Insert adds a copy of e under the forward key fwd and the reply key rev
// (both directions map to the same entry). A nil rev, or one equal to fwd,
// keys the entry by fwd alone (for DR/TUN, whose replies are never seen).
// It returns a pointer to the stored entry and true, or nil, false if the
// shard is full or a key exists. The pointer is valid until the next
// Insert, Delete or Expire. Insert allocates only when the shard grows.
func (s *Shard) Insert(fwd, rev *Key, e *Entry) (*Entry, bool) {
	if s.n >= s.capacity {
		return nil, false
	}
	hf := s.hash32(fwd)
	if s.find(fwd, hf) >= 0 {
		return nil, false
	}
	two := rev != nil && *rev != *fwd
	var hr uint32
	if two {
		hr = s.hash32(rev)
		if s.find(rev, hr) >= 0 {
			return nil, false
		}
	}
	nkeys := 1
	if two {
		nkeys = 2
	}
	s.growSlots(nkeys)
	idx := s.alloc()
	it := &s.items[idx]
	it.e = *e
	it.fwd = *fwd
	it.keys = uint8(nkeys)
	it.next = 0
	s.place(hf, slotRef(idx, false))
	if two {
		it.rev = *rev
		s.place(hr, slotRef(idx, true))
	} else {
		it.rev = Key{}
	}
	s.n++
	return &it.e, true
}

// Lookup finds the entry for k in either direction; reply reports whether
// k was the reply key. It does not look at Expires: an entry past its time
// is found until Expire removes it. It returns nil, false on a miss.
func (s *Shard) Lookup(k *Key) (e *Entry, reply bool) {
	h := s.hash32(k)
	pos := s.find(k, h)
	if pos < 0 {
		return nil, false
	}
	sl := s.slots[pos]
	return &s.items[sl.index()].e, sl.reply()
}

// Delete removes e, a pointer returned by Insert or Lookup (or passed to
// Expire's fn) that is still valid. Deleting an entry already deleted does
// nothing; a pointer that is not into this shard's entries panics.
func (s *Shard) Delete(e *Entry) {
	idx, ok := s.indexOf(e)
	if !ok {
		panic("conntrack: Delete of an entry not in this shard")
	}
	if s.items[idx].keys == 0 {
		return
	}
	s.remove(idx)
}

func (s *Shard) remove(idx int) {
	it := &s.items[idx]
	s.eraseRef(s.hash32(&it.fwd), slotRef(idx, false))
	if it.keys == 2 {
		s.eraseRef(s.hash32(&it.rev), slotRef(idx, true))
	}
	it.keys = 0
	it.next = s.free
	s.free = uint32(idx + 1)
	s.n--
}

// Expire removes entries with Expires <= now. It examines at most scan
// entry cells, continuing from where the previous call stopped and
// wrapping around, so a call costs O(scan) however large the table; a
// sweep over the whole shard takes about Len()/scan calls (more after
// deletions leave free cells). fn, if not nil, is called with each entry
// before it is removed and must not modify the shard. It returns the
// number removed, at most scan.
func (s *Shard) Expire(now int64, scan int, fn func(*Entry)) int {
	hw := len(s.items)
	scan = min(scan, hw)
	removed := 0
	for range scan {
		if s.cursor >= hw {
			s.cursor = 0
		}
		idx := s.cursor
		s.cursor++
		it := &s.items[idx]
		if it.keys == 0 || it.e.Expires > now {
			continue
		}
		if fn != nil {
			fn(&it.e)
		}
		s.remove(idx)
		removed++
	}
	return removed
}

// DumpInto appends copies of all entries to dst and returns it; it does
// not allocate if dst has room for Len() more. Dump is the allocating
// convenience.
func (s *Shard) DumpInto(dst []Entry) []Entry {
	for i := range s.items {
		if s.items[i].keys != 0 {
			dst = append(dst, s.items[i].e)
		}
	}
	return dst
}

// Dump returns copies of all entries in a new slice.
func (s *Shard) Dump() []Entry {
	return s.DumpInto(make([]Entry, 0, s.n))
}
