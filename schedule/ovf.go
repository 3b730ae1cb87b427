package schedule

// ovf is overflow-connection scheduling (ip_vs_ovf.c): the real with the
// highest weight among those that are not overloaded, have a positive
// weight and no more active connections than their weight, the first in
// order on ties. Connections stay on the heaviest real until its active
// count exceeds its weight, then overflow to the next. Inactive
// connections do not count (so ovf suits UDP poorly, as the kernel
// notes). An O(reals) scan, as in the kernel.
type ovf struct{ n int }

var (
	_ Scheduler = (*ovf)(nil)
	_ Peeker    = (*ovf)(nil)
)

func (s *ovf) Pick(dests []Dest, _ *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	best, hw := -1, int32(0)
	for i := range dests {
		d := &dests[i]
		w := d.Weight
		if w <= hw { // hw is 0 until a real is found: skips weight 0 too
			continue
		}
		c := d.Counters
		if c.overloaded.Load() || c.Active.Load() > int64(w) {
			continue
		}
		best, hw = i, w
	}
	return best
}

// Peek is Pick: ovf reads only the counters.
func (s *ovf) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
