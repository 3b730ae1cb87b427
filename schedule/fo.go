package schedule

// fo is weighted fail-over scheduling (ip_vs_fo.c): the available real
// (positive weight, not overloaded) with the highest weight, the first in
// order on ties. Connection counts play no part. An O(reals) scan, as in
// the kernel.
type fo struct{ n int }

var (
	_ Scheduler = (*fo)(nil)
	_ Peeker    = (*fo)(nil)
)

func (s *fo) Pick(dests []Dest, _ *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	best, hw := -1, int32(0)
	for i := range dests {
		d := &dests[i]
		if d.Weight > hw && !d.Counters.overloaded.Load() {
			best, hw = i, d.Weight
		}
	}
	return best
}

// Peek is Pick: fo reads only the counters.
func (s *fo) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
