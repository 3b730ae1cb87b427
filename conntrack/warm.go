package conntrack

// warmChunk is how many keys one round of Warm covers: the dataplane's
// batch. A round's hashes, buckets and matching slots stay on the stack.
const warmChunk = 64

// Warm loads into the CPU caches the memory that looking up keys will
// read: both index buckets of each key and the entry cells whose tags
// match, in the first bucket or, if none does there, in the second (a
// miss, or a key that was placed in its second bucket). It is only a
// hint: it changes nothing that Lookup, Insert or any other method sees,
// and a lookup after the shard has changed since Warm (an Insert or
// Delete in between) is as correct as without it, at worst as slow. It
// never allocates.
//
// Why: in a table of millions a lookup misses the caches twice, on the
// bucket and then on the entry, one miss after the other, and a batch of
// lookups pays that one key at a time. Warm issues the loads of up to
// warmChunk keys before it needs any of them, so that their misses
// overlap, as DPDK's rte_hash_lookup_bulk does; the lookups that follow
// find their lines in the cache. It pays only if they follow soon, before
// the lines are evicted: warm a batch, then look it up.
//
// Warming both keys of new entries before inserting them loads the
// buckets Insert probes and places the keys in.
func (s *Shard[A]) Warm(keys []Key[A]) {
	for len(keys) > 0 {
		n := min(len(keys), warmChunk)
		s.warm(keys[:n])
		keys = keys[n:]
	}
}

// warm is Warm for at most warmChunk keys, in passes: hash every key,
// load its buckets, scan them, load the matching entries. A core keeps a
// miss outstanding only while the instructions after it fit in its
// reorder buffer, so the loads are issued from loops of a few
// instructions an iteration, which keep many more misses in flight than a
// loop that also hashes or scans. Both buckets are loaded at once
// (measured against loading the second only for keys with no match in
// the first: hits as fast, misses, the new connections, a fifth faster).
// The words loaded are summed into s.warmSum, because the compiler
// removes loads whose values are never used.
func (s *Shard[A]) warm(keys []Key[A]) {
	var (
		hashes  [warmChunk]uint64
		buckets [2 * warmChunk]uint64 // key i's are 2i and 2i+1
		// The slots whose entries to load: at most a bucket's worth a
		// key, since the second is scanned only when the first has
		// no match.
		slots [warmChunk * bucketSlots]uint32
	)
	hs, bs := hashes[:len(keys)], buckets[:2*len(keys)]
	for i := range keys {
		hs[i] = s.hash(&keys[i])
		bs[2*i], bs[2*i+1] = s.bucketsOf(hs[i])
	}
	var sum uint32
	for i, b := range bs {
		// The second bucket, when it is the first, is already loaded.
		if i&1 == 0 || b != bs[i-1] {
			sum += s.buckets[b][0] // a 32-byte bucket is within one cache line
		}
	}
	n := 0
	for i, h := range hs {
		tag := uint32(h) & s.tagMask
		m := s.warmScan(&s.buckets[bs[2*i]], tag, &slots, n)
		if m == n && bs[2*i+1] != bs[2*i] {
			m = s.warmScan(&s.buckets[bs[2*i+1]], tag, &slots, n)
		}
		n = m
	}
	for _, v := range slots[:n] {
		if v == 0 {
			continue // an empty slot, taken for a key whose tag is 0
		}
		// In a slab that is page-aligned when it is large enough to
		// matter, a 48-byte entry starts at a multiple of 16 into its
		// cache line and a 96-byte one at a multiple of 32: either spans
		// at most two lines, and its first and last words are in them.
		e := &s.entries[s.slotIndex(v)]
		sum += uint32(e.Client[0]) + uint32(e.Expires)
	}
	s.warmSum = sum
}

// warmScan appends to slots, from position n, the slots of b whose tag is
// tag, and returns the new length. Empty slots count as tag 0 here, and
// the caller skips them: one comparison a slot lets the compiler count
// the matches without a branch, which a cached table measured as making
// Warm 40% cheaper. (A key of tag 0, one in 2^tagBits, may then go
// without the entries of its second bucket: Warm is only a hint.)
func (s *Shard[A]) warmScan(b *bucket, tag uint32, slots *[warmChunk * bucketSlots]uint32, n int) int {
	mask := s.tagMask
	for _, v := range b {
		slots[n] = v // kept only if it matches
		if v&mask == tag {
			n++
		}
	}
	return n
}
