package schedule

// The lblc and lblcr caches: set-associative tables of a fixed size,
// allocated by New and never grown, so that Pick allocates nothing and a
// flood of destination addresses costs no memory. A destination address
// hashes to a set as the kernel's ip_vs_lblc_hashkey hashes it to a
// bucket (hash_32 of the folded address, 10 bits); each set holds
// localityWays entries, guarded by its own mutex, and a new address takes
// a free or expired entry of its set, else the least recently used one.
// The cache costs 136 KiB per lblc service, 296 KiB per lblcr one.
const (
	localitySetBits = 10 // 1024 sets: the kernel's CONFIG_IP_VS_LBLC_TAB_BITS
	localitySets    = 1 << localitySetBits
	localityWays    = 4 // 4096 addresses in all
)

// localitySet returns the set of destination address a.
func localitySet(a *[16]byte) uint32 {
	return hash32(fold(a), localitySetBits) & (localitySets - 1)
}

// expired reports whether an entry last used at lastuse has expired at
// now: unused for expire or longer, as the kernel's periodic full check
// deletes it ("time_before(now, lastuse + expiration)" keeps it).
func expired(lastuse, now, expire int64) bool {
	return now-lastuse >= expire
}

// lblcOverloaded is is_overloaded of ip_vs_lblc.c and ip_vs_lblcr.c: real
// d has more active connections than its weight while some real, any
// real, has fewer than half its weight. Active counts only; an O(reals)
// scan, done only when d is over its weight.
func lblcOverloaded(dests []Dest, d int) bool {
	if dests[d].Counters.Active.Load() <= int64(dests[d].Weight) {
		return false
	}
	for i := range dests {
		m := &dests[i]
		if m.Counters.Active.Load()*2 < int64(m.Weight) {
			return true
		}
	}
	return false
}
