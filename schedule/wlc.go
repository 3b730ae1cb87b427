package schedule

// connShift weighs an active connection against an inactive one as
// ip_vs_dest_conn_overhead in include/net/ip_vs.h does: active << 8.
const connShift = 8

// wlc is weighted least-connection scheduling (ip_vs_wlc.c): among the
// available reals (positive weight, not overloaded), the one with the
// smallest (Active*256 + Inactive) / Weight, compared by cross
// multiplication, ties going to the first in order. An O(reals) scan, as
// in the kernel. All the least-connection schedulers count in 64 bits,
// where the kernel's int overhead would overflow past 2^23 active
// connections on one real.
type wlc struct{ n int }

var (
	_ Scheduler = (*wlc)(nil)
	_ Peeker    = (*wlc)(nil)
)

func (s *wlc) Pick(dests []Dest, _ *Flow) int {
	if len(dests) != s.n {
		return -1
	}
	return leastWeighted(dests)
}

// leastWeighted is the loop of ip_vs_wlc_schedule, which lblc and lblcr
// repeat (__ip_vs_lblc_schedule, __ip_vs_lblcr_schedule): the first
// available real, then any later one that is not overloaded and whose
// overhead/weight is strictly smaller. A weight-0 real never wins the
// comparison, so skipping it as well changes nothing. -1 if no real is
// available.
func leastWeighted(dests []Dest) int {
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
		doh := c.Active.Load()<<connShift + c.Inactive.Load()
		w := int64(d.Weight)
		if least < 0 || loh*w > doh*lw {
			least, loh, lw = i, doh, w
		}
	}
	return least
}

// Peek is Pick: wlc reads only the counters.
func (s *wlc) Peek(dests []Dest, f *Flow) int { return s.Pick(dests, f) }
