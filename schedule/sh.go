package schedule

// shTabBits sizes the sh and dh tables as the kernel's default
// CONFIG_IP_VS_SH_TAB_BITS and CONFIG_IP_VS_DH_TAB_BITS: 256 buckets.
const (
	shTabBits = 8
	shTabSize = 1 << shTabBits
	shTabMask = shTabSize - 1
)

// sh is source-hashing scheduling (ip_vs_sh.c), bit for bit: a table of
// 256 buckets, each naming a real, indexed by hash_32 of the source
// address (plus the source port with SHPort). The table is filled as
// ip_vs_sh_reassign fills it: walking the reals in order, cyclically,
// each real takes as many consecutive buckets as its weight — and a real
// of weight 0 takes one (the kernel's "++d_count >= weight" is true at
// once), so that flows hashed to a quiescent real find it unavailable.
//
// A flow whose real is unavailable (weight 0 or overloaded) gets -1, or
// with SHFallback the first available real of ip_vs_sh_get_fallback's
// probe sequence: bucket (2*h + k) mod 256 for k = 0..255, h the flow's
// bucket (the kernel adds the hash to an offset that already holds it).
// Flows of available reals never move.
//
// Only the address family differs from the kernel, which hashes by the
// service's family: here an IPv4-mapped address is hashed as IPv4 and
// any other as IPv6 (the XOR of its four 32-bit words).
type sh struct {
	n     int
	flags Flags
	table [shTabSize]int32 // index in dests; -1 only when there is no real
}

var (
	_ Scheduler = (*sh)(nil)
	_ Peeker    = (*sh)(nil)
)

func newSH(dests []Dest, flags Flags) *sh {
	s := &sh{n: len(dests), flags: flags}
	if len(dests) == 0 {
		for b := range s.table {
			s.table[b] = -1
		}
		return s
	}
	p, count := 0, int32(0)
	for b := range s.table {
		s.table[b] = int32(p)
		// Don't move to the next real until it has its weight in buckets.
		if count++; count >= dests[p].Weight {
			p, count = (p+1)%len(dests), 0
		}
	}
	return s
}

func (s *sh) Pick(dests []Dest, f *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	if f == nil {
		f = &zeroFlow
	}
	v := fold(&f.Src)
	if s.flags&SHPort != 0 {
		v += hashedPort(f)
	}
	h := hash32(v, shTabBits)
	i := s.table[h&shTabMask]
	if i < 0 {
		return -1
	}
	if dests[i].available() {
		return int(i)
	}
	if s.flags&SHFallback == 0 {
		return -1
	}
	for k := uint32(0); k < shTabSize; k++ {
		if i := s.table[(2*h+k)&shTabMask]; dests[i].available() {
			return int(i)
		}
	}
	return -1
}

// Peek is Pick: sh reads only its table and the counters.
func (s *sh) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
