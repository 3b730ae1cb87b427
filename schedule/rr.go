package schedule

// rr is round-robin scheduling (ip_vs_rr.c): the reals with a positive
// weight in turn, each new connection going to the one after the previous
// pick. The kernel walks its list from the last pick skipping quiescent
// reals; walking the precomputed list of eligible reals with one atomic
// counter gives the same sequence without a lock.
type rr struct {
	n    int     // len(dests) at New
	idx  []int32 // eligible reals, in order
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
	return int(s.idx[s.next.next()%uint64(len(s.idx))])
}
