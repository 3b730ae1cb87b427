package schedule

// lc is least-connection scheduling (ip_vs_lc.c): among the available
// reals (positive weight, not overloaded), the one with the smallest
// overhead Active*256 + Inactive, whatever its weight; ties go to the
// first in order. An O(reals) scan, as in the kernel.
type lc struct{ n int }

var (
	_ Scheduler = (*lc)(nil)
	_ Peeker    = (*lc)(nil)
)

func (s *lc) Pick(dests []Dest, _ *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	least := -1
	var loh int64
	for i := range dests {
		d := &dests[i]
		if d.Weight <= 0 {
			continue
		}
		c := d.Counters
		if c.overloaded.Load() {
			continue
		}
		if doh := c.Active.Load()<<connShift + c.Inactive.Load(); least < 0 || doh < loh {
			least, loh = i, doh
		}
	}
	return least
}

// Peek is Pick: lc reads only the counters.
func (s *lc) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
