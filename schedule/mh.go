package schedule

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
)

// mhMaxTableSize bounds Options.MHTableSize: the table costs 4 bytes a
// slot, so this is 64 MiB per service, a hundred times the kernel's
// largest (131071) and far past any useful size.
const mhMaxTableSize = 1 << 24

// Seeds of mh's hashes. Any fixed values do; fixed, so that every
// director with the same configuration builds the same table and sends a
// flow to the same real.
const (
	mhOffsetSeed = 0x9e3779b97f4a7c15 // a real's first slot
	mhSkipSeed   = 0xc2b2ae3d27d4eb4f // a real's step through the table
	mhIndexSeed  = 0x165667b19e3779f9 // identity of a real without a Key
	mhFlowSeed   = 0x27d4eb2f165667c5 // a flow's slot
)

// mh is Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4; ip_vs_mh.c): a
// lookup table of M slots (M prime, Options.MHTableSize), each naming a
// real, indexed by a hash of the source address (plus the source port
// with MHPort, for TCP, UDP and SCTP). Each real walks its own
// permutation of the slots, offset + j*skip mod M, with offset and skip
// hashed from its identity, and the reals take turns claiming their next
// free slot; so a change of one real moves few flows of the others.
//
// Weights: real i gets exactly floor or ceil of M*w_i/W slots (W the sum
// of weights): the quotas floor(M*w_i/W), plus one for the M - sum of
// floors reals with the largest remainders (ties to the smaller
// identity), and a real takes its turn in a round only while under its
// quota. The kernel instead gives each real weight/gcd turns per round
// (shifted right when large), which does not hold the shares to the
// weights. Population costs O(M log M) probes expected, as the paper's.
//
// A flow whose real is unavailable (weight 0 or overloaded) gets -1, or
// with MHFallback the first available real of ip_vs_mh_get_fallback's
// probes: the flow hashed again with offsets h, h+1, ... (mod M), h the
// flow's slot, M probes at most (and none when no real with slots is
// available).
//
// Differences from the kernel, all deliberate:
//   - a real's identity is Dest.Key (its index in dests when Key is 0)
//     where the kernel hashes the real's address and port, and the turns
//     go in order of identity, not of the list, so the table depends only
//     on the set of (Key, weight) pairs;
//   - the quotas above instead of the kernel's turns;
//   - a real of weight 0 has no slots: the kernel keeps giving a real its
//     last non-zero weight's slots (last_weight) so that quiescing it
//     moves no other flow, but Dest has no last weight; a quiesced real's
//     slots go to the others;
//   - the hashes are SplitMix64 finalizers, not hsiphash, and a flow's
//     slot is the high half of hash*M rather than hash mod M;
//   - any prime table size up to 2^24, not only the kernel's list.
type mh struct {
	n       int
	m       uint64
	flags   Flags
	table   []int32 // slot → index in dests; nil when no real has a weight
	slotted []int32 // the reals with slots, for fallback's early exit
}

var (
	_ Scheduler = (*mh)(nil)
	_ Peeker    = (*mh)(nil)
)

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// mhIdentity is real i's identity: its Key, or a hash of its index.
func mhIdentity(dests []Dest, i int) uint64 {
	if k := dests[i].Key; k != 0 {
		return k
	}
	return mix64(uint64(i) ^ mhIndexSeed)
}

func newMH(dests []Dest, opts Options) (*mh, error) {
	m := opts.MHTableSize
	if m == 0 {
		m = DefaultMHTableSize
	}
	weighted := 0
	for i := range dests {
		if dests[i].Weight > 0 {
			weighted++
		}
	}
	switch {
	case m < 0 || m > mhMaxTableSize:
		return nil, fmt.Errorf("schedule: mh: MHTableSize %d out of range [2, %d]", m, mhMaxTableSize)
	case !isPrime(m):
		return nil, fmt.Errorf("schedule: mh: MHTableSize %d is not a prime", m)
	case m < weighted:
		return nil, fmt.Errorf("schedule: mh: MHTableSize %d is smaller than the %d reals with a weight", m, weighted)
	}
	s := &mh{n: len(dests), m: uint64(m), flags: opts.Flags}
	if weighted == 0 {
		return s, nil
	}
	s.table = mhPopulate(dests, m)
	for i := range dests {
		if dests[i].Weight > 0 {
			s.slotted = append(s.slotted, int32(i))
		}
	}
	return s, nil
}

// mhReal is one real's state while the table is populated.
type mhReal struct {
	index      int32
	id         uint64
	quota      uint64 // slots it will have
	rem        uint64 // remainder of M*w/W, for the quotas
	next, skip uint64 // its next slot to try and its step
}

// mhPopulate builds the lookup table of size m for the reals with a
// positive weight (at least one).
func mhPopulate(dests []Dest, m int) []int32 {
	M := uint64(m)
	var reals []mhReal
	var W uint64
	for i := range dests {
		if w := dests[i].Weight; w > 0 {
			id := mhIdentity(dests, i)
			reals = append(reals, mhReal{
				index: int32(i),
				id:    id,
				next:  mix64(id^mhOffsetSeed) % M,
				skip:  mix64(id^mhSkipSeed)%(M-1) + 1,
			})
			W += uint64(w)
		}
	}
	// Quotas by the largest remainder.
	var given uint64
	for k := range reals {
		r := &reals[k]
		hi, lo := bits.Mul64(M, uint64(dests[r.index].Weight))
		r.quota, r.rem = bits.Div64(hi, lo, W)
		given += r.quota
	}
	byIdentity := func(a, b mhReal) int {
		return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.index, b.index))
	}
	slices.SortFunc(reals, func(a, b mhReal) int {
		return cmp.Or(cmp.Compare(b.rem, a.rem), byIdentity(a, b))
	})
	for k := range M - given { // < len(reals): each remainder is < 1 slot
		reals[k].quota++
	}
	// Turns in order of identity, each real while under its quota.
	slices.SortFunc(reals, byIdentity)
	table := make([]int32, m)
	for j := range table {
		table[j] = -1
	}
	active := make([]int, 0, len(reals))
	for k := range reals {
		if reals[k].quota > 0 {
			active = append(active, k)
		}
	}
	filled := make([]uint64, len(reals))
	for len(active) > 0 {
		still := active[:0]
		for _, k := range active {
			r := &reals[k]
			c := r.next
			for table[c] >= 0 {
				if c += r.skip; c >= M {
					c -= M
				}
			}
			table[c] = r.index
			r.next = c
			if filled[k]++; filled[k] < r.quota {
				still = append(still, k)
			}
		}
		active = still
	}
	return table
}

// slot is the slot of the 32-bit flow value v (the kernel's
// offset + port + address).
func (s *mh) slot(v uint32) uint64 {
	hi, _ := bits.Mul64(mix64(uint64(v)^mhFlowSeed), s.m)
	return hi
}

func (s *mh) Pick(dests []Dest, f *Flow) int {
	if len(dests) != s.n || s.table == nil {
		return -1
	}
	if f == nil {
		f = &zeroFlow
	}
	v := fold(&f.Src)
	if s.flags&MHPort != 0 {
		v += hashedPort(f)
	}
	h := s.slot(v)
	if i := s.table[h]; dests[i].available() {
		return int(i)
	}
	if s.flags&MHFallback == 0 {
		return -1
	}
	return s.fallback(dests, v, h)
}

// fallback is ip_vs_mh_get_fallback after the flow's own real (at slot
// h) was found unavailable.
func (s *mh) fallback(dests []Dest, v uint32, h uint64) int {
	some := false
	for _, i := range s.slotted {
		if dests[i].available() {
			some = true
			break
		}
	}
	if !some {
		return -1
	}
	off := h // the kernel's roffset = (offset + ihash) % M
	for range s.m {
		if i := s.table[s.slot(v+uint32(off))]; dests[i].available() {
			return int(i)
		}
		if off++; off == s.m {
			off = 0
		}
	}
	return -1
}

// Peek is Pick: mh reads only its table and the counters.
func (s *mh) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
