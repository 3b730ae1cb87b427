package schedule

// nq is never-queue scheduling (ip_vs_nq.c): the first available real
// (positive weight, not overloaded) that has no active connection, at
// once; if every available real is busy, sed's choice, the smallest
// (Active+1) / Weight with ties to the first in order. An O(reals) scan,
// as in the kernel, that stops at the first idle real.
type nq struct{ n int }

var (
	_ Scheduler = (*nq)(nil)
	_ Peeker    = (*nq)(nil)
)

func (s *nq) Pick(dests []Dest, _ *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	least := -1
	var loh, lw int64
	for i := range dests {
		d := &dests[i]
		if d.Weight <= 0 {
			continue
		}
		c := d.Counters
		if c.overloaded.Load() {
			continue
		}
		a := c.Active.Load()
		if a == 0 {
			return i
		}
		doh, w := a+1, int64(d.Weight)
		if least < 0 || loh*w > doh*lw {
			least, loh, lw = i, doh, w
		}
	}
	return least
}

// Peek is Pick: nq reads only the counters.
func (s *nq) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
