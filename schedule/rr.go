package schedule

// rr is round-robin scheduling (ip_vs_rr.c): the available reals in turn,
// each new connection going to the first available one after the previous
// pick. The kernel walks its list from the last pick skipping quiescent
// and overloaded reals; walking the precomputed list of reals with a
// positive weight with one atomic counter gives the same sequence without
// a lock.
//
// An overloaded real is skipped as the kernel skips it: the pick goes to
// the next available real and the counter is moved past the skipped ones,
// so that the real after the overloaded one does not get its turn twice.
// Differences from the kernel: that move is one compare-and-swap, which
// loses to a concurrent pick; then two workers may each take the same
// turn once. When no real is available the counter is put back where it
// was, as the kernel leaves its position.
type rr struct {
	n    int
	idx  []int32 // reals with a positive weight, in order
	next cursor
}

var _ Scheduler = (*rr)(nil)

func newRR(dests []Dest) *rr {
	return &rr{n: len(dests), idx: eligible(dests)}
}

func (s *rr) Pick(dests []Dest, _ *Flow) int {
	if len(s.idx) == 0 || len(dests) != s.n {
		return -1
	}
	c := s.next.next()
	p := c % uint64(len(s.idx))
	if i := int(s.idx[p]); dests[i].available() {
		return i
	}
	i, k := s.after(dests, p)
	if i < 0 {
		s.next.undo(c)
	} else {
		s.next.advance(c, k)
	}
	return i
}

// Peek returns what Pick would return now, without moving the counter.
func (s *rr) Peek(dests []Dest, _ *Flow) int {
	if len(s.idx) == 0 || len(dests) != s.n {
		return -1
	}
	p := s.next.n.Load() % uint64(len(s.idx))
	if i := int(s.idx[p]); dests[i].available() {
		return i
	}
	i, _ := s.after(dests, p)
	return i
}

// after is the slow path of Pick and Peek when the real at position p is
// unavailable: the first available real after it, cyclically, and how
// many positions further it is; -1 if none is available.
func (s *rr) after(dests []Dest, p uint64) (int, uint64) {
	n := uint64(len(s.idx))
	for k := uint64(1); k < n; k++ {
		q := p + k
		if q >= n {
			q -= n
		}
		if i := int(s.idx[q]); dests[i].available() {
			return i, k
		}
	}
	return -1, 0
}
