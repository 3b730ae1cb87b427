package schedule

import "sort"

// maxWRRSequence bounds the precomputed weighted round-robin sequence, in
// picks (4 bytes each). 1<<16 covers any practical configuration (100
// reals of weight 100 need 10,000) in at most 256 KiB per service; a
// service whose sequence is longer (large, coprime weights) computes each
// pick from the round structure instead, in O(log² + reals).
const maxWRRSequence = 1 << 16

// wrr is weighted round-robin scheduling with the interleaving of
// ip_vs_wrr.c. The kernel keeps a current weight cw, starting at
// mw = max - (gcd - 1) and stepping down by the gcd of the weights, and in
// each round picks, in order, every real whose weight is >= cw. One period
// of that walk is precomputed here and walked with an atomic counter, so
// concurrent picks need no lock and the distribution over whole periods is
// exactly the weights.
//
// Round r (cw = mw - r*gcd) holds the reals with enter <= r, where
// enter = ceil((mw - weight) / gcd); there are max/gcd rounds and one
// period is sum(weights)/gcd picks.
//
// The kernel's loop takes a real only if it is not overloaded and its
// weight is >= cw, so an overloaded real gives its turn to the next
// position of the walk whose real is available; the kernel then goes on
// from that position. Pick does the same: when the real at its position
// is overloaded it finds the next position with an available real from
// the round structure, in O(reals) whatever the period, and moves the
// counter there. Differences from the kernel: the move is one
// compare-and-swap that loses to a concurrent pick (two workers may then
// take one turn each); and when every real is overloaded the counter is
// put back where it was, while the kernel's walk is left at its last
// round, so that the kernel's next pick after such a failure comes from
// the last round and ours from where the walk stopped.
type wrr struct {
	n      int
	seq    []int32 // one period of picks; nil if longer than the limit
	period uint64  // picks in one period; 0 = no eligible real

	// The round structure, for at() when seq is nil.
	enter  []int64  // per real: first round it takes part in
	sorted []int64  // the enter values of the eligible reals, ascending
	prefix []uint64 // prefix[m] = sum of sorted[:m]
	rounds int64

	next cursor
}

var _ Scheduler = (*wrr)(nil)

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func newWRR(dests []Dest, limit uint64) *wrr {
	s := &wrr{n: len(dests)}
	var g, maxw int64
	for i := range dests {
		w := int64(dests[i].Weight)
		if w <= 0 {
			continue
		}
		if g > 0 {
			g = gcd(w, g)
		} else {
			g = w
		}
		maxw = max(maxw, w)
	}
	if maxw == 0 {
		return s
	}
	mw := maxw - (g - 1)
	s.rounds = maxw / g
	s.enter = make([]int64, len(dests))
	for i := range dests {
		w := int64(dests[i].Weight)
		if w <= 0 {
			s.enter[i] = s.rounds // never
			continue
		}
		if d := mw - w; d > 0 {
			s.enter[i] = (d + g - 1) / g
		}
		s.sorted = append(s.sorted, s.enter[i])
		s.period += uint64(w / g)
	}
	sort.Slice(s.sorted, func(a, b int) bool { return s.sorted[a] < s.sorted[b] })
	s.prefix = make([]uint64, len(s.sorted)+1)
	for m, e := range s.sorted {
		s.prefix[m+1] = s.prefix[m] + uint64(e)
	}
	if s.period <= limit {
		s.seq = make([]int32, 0, s.period)
		for r := int64(0); r < s.rounds; r++ {
			for i, e := range s.enter {
				if e <= r {
					s.seq = append(s.seq, int32(i))
				}
			}
		}
	}
	return s
}

// before returns the number of picks in the rounds before round r.
func (s *wrr) before(r int64) uint64 {
	// Reals with enter < r took part in r - enter rounds each.
	m := sort.Search(len(s.sorted), func(j int) bool { return s.sorted[j] >= r })
	return uint64(r)*uint64(m) - s.prefix[m]
}

// roundOf returns the round of the p-th pick of a period (p < period):
// the last round r with before(r) <= p.
func (s *wrr) roundOf(p uint64) int64 {
	lo, hi := int64(0), s.rounds-1
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if s.before(mid) <= p {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// at returns the p-th pick of a period (p < period) from the round
// structure.
func (s *wrr) at(p uint64) int {
	lo := s.roundOf(p)
	k := p - s.before(lo)
	for i, e := range s.enter {
		if e <= lo {
			if k == 0 {
				return i
			}
			k--
		}
	}
	return -1 // not reached for p < period
}

func (s *wrr) Pick(dests []Dest, _ *Flow) int {
	if s.period == 0 || len(dests) != s.n {
		return -1
	}
	c := s.next.next()
	p := c % s.period
	i := s.real(p)
	if dests[i].available() {
		return i
	}
	j, k := s.after(dests, p, i)
	if j < 0 {
		s.next.undo(c)
	} else {
		s.next.advance(c, k)
	}
	return j
}

// Peek returns what Pick would return now, without moving the counter.
func (s *wrr) Peek(dests []Dest, _ *Flow) int {
	if s.period == 0 || len(dests) != s.n {
		return -1
	}
	p := s.next.n.Load() % s.period
	i := s.real(p)
	if dests[i].available() {
		return i
	}
	j, _ := s.after(dests, p, i)
	return j
}

// real returns the real at position p of the period (p < period).
func (s *wrr) real(p uint64) int {
	if s.seq != nil {
		return int(s.seq[p])
	}
	return s.at(p)
}

// after is the slow path of Pick and Peek when real i, at position p of
// the period, is unavailable: the real at the first later position,
// within one period, whose real is available, and how many positions
// further that is; -1 if no real is available.
func (s *wrr) after(dests []Dest, p uint64, i int) (int, uint64) {
	r := s.roundOf(p)
	// The rest of round r: the reals after i that take part in it.
	q := p
	for j := i + 1; j < len(dests); j++ {
		if s.enter[j] <= r {
			q++
			if dests[j].available() {
				return j, q - p
			}
		}
	}
	// A later round: the first round r2 > r in which an available real
	// takes part, in this period or the next.
	first := s.rounds // the first round of any available real
	for j := range dests {
		if s.enter[j] < first && dests[j].available() {
			first = s.enter[j]
		}
	}
	if first == s.rounds {
		return -1, 0
	}
	r2, base := max(r+1, first), uint64(0)
	if r2 >= s.rounds {
		r2, base = first, s.period
	}
	q = base + s.before(r2)
	for j := range dests {
		if s.enter[j] <= r2 {
			if dests[j].available() {
				return j, q - p
			}
			q++
		}
	}
	return -1, 0 // not reached: first <= r2
}
