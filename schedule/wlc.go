package schedule

// connShift weighs an active connection against an inactive one as
// ip_vs_dest_conn_overhead in include/net/ip_vs.h does: active << 8.
const connShift = 8

// wlc is weighted least-connection scheduling (ip_vs_wlc.c): the real with
// the smallest (Active*256 + Inactive) / Weight, compared by cross
// multiplication, ties going to the first in order. Quiescent reals are
// skipped.
type wlc struct {
	n   int
	idx []int32 // eligible reals, in order
}

var _ Scheduler = (*wlc)(nil)

func newWLC(dests []Dest) *wlc {
	return &wlc{n: len(dests), idx: eligible(dests)}
}

func overhead(c *Counters) int64 {
	return c.Active.Load()<<connShift + c.Inactive.Load()
}

func (s *wlc) Pick(dests []Dest, _ *Flow) int {
	if len(s.idx) == 0 || len(dests) != s.n {
		return -1
	}
	least := int(s.idx[0])
	loh := overhead(dests[least].Counters)
	lw := int64(dests[least].Weight)
	for _, i := range s.idx[1:] {
		d := &dests[i]
		doh := overhead(d.Counters)
		if loh*int64(d.Weight) > doh*lw {
			least, loh, lw = int(i), doh, int64(d.Weight)
		}
	}
	return least
}
