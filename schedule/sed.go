package schedule

// sed is shortest-expected-delay scheduling (ip_vs_sed.c): among the
// available reals (positive weight, not overloaded), the one with the
// smallest (Active+1) / Weight, compared by cross multiplication, ties
// going to the first in order. Inactive connections do not count. An
// O(reals) scan, as in the kernel.
type sed struct{ n int }

var (
	_ Scheduler = (*sed)(nil)
	_ Peeker    = (*sed)(nil)
)

func (s *sed) Pick(dests []Dest, _ *Flow) int {
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
		doh := c.Active.Load() + 1
		w := int64(d.Weight)
		if least < 0 || loh*w > doh*lw {
			least, loh, lw = i, doh, w
		}
	}
	return least
}

// Peek is Pick: sed reads only the counters.
func (s *sed) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
