package schedule

// dh is destination-hashing scheduling (ip_vs_dh.c), bit for bit: a table
// of 256 buckets indexed by hash_32 of the destination address. Unlike
// sh's, the kernel's dh table ignores weights: ip_vs_dh_reassign gives
// each bucket to the next real in order, cyclically, weight-0 reals
// included, so each real gets 256/N buckets (one more for the first
// 256 mod N). A flow whose real is unavailable (weight 0 or overloaded)
// gets -1: dh has no fallback and no port.
//
// Only the address family differs from the kernel, as for sh.
type dh struct {
	n     int
	table [shTabSize]int32 // index in dests; -1 only when there is no real
}

var (
	_ Scheduler = (*dh)(nil)
	_ Peeker    = (*dh)(nil)
)

func newDH(dests []Dest) *dh {
	s := &dh{n: len(dests)}
	for b := range s.table {
		s.table[b] = -1
		if len(dests) > 0 {
			s.table[b] = int32(b % len(dests))
		}
	}
	return s
}

func (s *dh) Pick(dests []Dest, f *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	if f == nil {
		f = &zeroFlow
	}
	i := s.table[hash32(fold(&f.Dst), shTabBits)&shTabMask]
	if i < 0 || !dests[i].available() {
		return -1
	}
	return int(i)
}

// Peek is Pick: dh reads only its table and the counters.
func (s *dh) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
