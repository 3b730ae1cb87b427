package schedule

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

// A view of one real as the kernel's rules read it.
type realView struct {
	w, active, inactive int64
	ov                  bool
}

func view(d []Dest) []realView {
	v := make([]realView, len(d))
	for i := range d {
		c := d[i].Counters
		v[i] = realView{int64(d[i].Weight), c.Active.Load(), c.Inactive.Load(), c.Overloaded()}
	}
	return v
}

// argBest returns the first index that maximises better among those that
// pass ok: better(a, b) reports whether a is strictly better than b.
func argBest(v []realView, ok func(realView) bool, better func(a, b realView) bool) int {
	best := -1
	for i, r := range v {
		if ok(r) && (best < 0 || better(r, v[best])) {
			best = i
		}
	}
	return best
}

func avail(r realView) bool { return r.w > 0 && !r.ov }

func ratio(num, den int64) *big.Rat { return big.NewRat(num, den) }

// The kernel rules, written from the comments and loops of ip_vs_*.c with
// exact rationals.
var leastConnModels = map[string]func([]realView) int{
	// ip_vs_lc.c: least (active<<8) + inactive.
	"lc": func(v []realView) int {
		return argBest(v, avail, func(a, b realView) bool {
			return a.active*256+a.inactive < b.active*256+b.inactive
		})
	},
	// ip_vs_wlc.c: least ((active<<8) + inactive) / weight.
	"wlc": func(v []realView) int {
		return argBest(v, avail, func(a, b realView) bool {
			return ratio(a.active*256+a.inactive, a.w).Cmp(ratio(b.active*256+b.inactive, b.w)) < 0
		})
	},
	// ip_vs_sed.c: least (active + 1) / weight.
	"sed": func(v []realView) int {
		return argBest(v, avail, func(a, b realView) bool {
			return ratio(a.active+1, a.w).Cmp(ratio(b.active+1, b.w)) < 0
		})
	},
	// ip_vs_nq.c: the first idle available real, else sed.
	"nq": func(v []realView) int {
		for i, r := range v {
			if avail(r) && r.active == 0 {
				return i
			}
		}
		return argBest(v, avail, func(a, b realView) bool {
			return ratio(a.active+1, a.w).Cmp(ratio(b.active+1, b.w)) < 0
		})
	},
	// ip_vs_fo.c: the highest weight.
	"fo": func(v []realView) int {
		return argBest(v, avail, func(a, b realView) bool { return a.w > b.w })
	},
	// ip_vs_ovf.c: the highest weight with active <= weight.
	"ovf": func(v []realView) int {
		return argBest(v, func(r realView) bool { return avail(r) && r.active <= r.w },
			func(a, b realView) bool { return a.w > b.w })
	},
}

// TestLeastConnScripted sets the counters of four reals (weights 1, 2, 0,
// 1 — the third quiescent) and checks each scheduler's pick against the
// hand-worked answer and the model.
func TestLeastConnScripted(t *testing.T) {
	type counts [4][2]int64 // active, inactive per real
	for _, tc := range []struct {
		name string
		c    counts
		ov   int // index of an overloaded real, or -1
		want map[string]int
	}{
		{"all idle", counts{}, -1,
			map[string]int{"lc": 0, "wlc": 0, "sed": 1, "nq": 0, "fo": 1, "ovf": 1}},
		{"weight 2 holds twice the load", counts{{1, 0}, {2, 0}, {0, 0}, {1, 0}}, -1,
			// sed: (1+1)/1=2, (2+1)/2=1.5, (1+1)/1=2
			map[string]int{"lc": 0, "wlc": 0, "sed": 1, "nq": 1, "fo": 1, "ovf": 1}},
		{"inactive counts 1/256 in lc and wlc only", counts{{1, 1}, {2, 3}, {0, 0}, {1, 0}}, -1,
			map[string]int{"lc": 3, "wlc": 3, "sed": 1, "nq": 1, "fo": 1, "ovf": 1}},
		{"quiescent never, even idle", counts{{5, 0}, {11, 0}, {0, 0}, {5, 0}}, -1,
			// sed: 6, 6, 6: first; ovf: every real over its weight
			map[string]int{"lc": 0, "wlc": 0, "sed": 0, "nq": 0, "fo": 1, "ovf": -1}},
		{"nq takes the idle one, sed does not", counts{{1, 0}, {1, 0}, {0, 0}, {0, 0}}, -1,
			// sed: 2, 1, 1: real 1 first on the tie with 3
			map[string]int{"lc": 3, "wlc": 3, "sed": 1, "nq": 3, "fo": 1, "ovf": 1}},
		{"ovf overflows past the heaviest", counts{{0, 0}, {3, 0}, {0, 0}, {1, 0}}, -1,
			map[string]int{"lc": 0, "wlc": 0, "sed": 0, "nq": 0, "fo": 1, "ovf": 0}},
		{"overloaded heaviest is skipped", counts{{1, 0}, {0, 0}, {0, 0}, {2, 0}}, 1,
			map[string]int{"lc": 0, "wlc": 0, "sed": 0, "nq": 0, "fo": 0, "ovf": 0}},
		{"overloaded idle real is skipped", counts{{1, 5}, {1, 0}, {0, 0}, {0, 3}}, 3,
			// wlc: 261/1, 256/2: real 1; the overload bind adds one inactive to 3
			map[string]int{"lc": 1, "wlc": 1, "sed": 1, "nq": 1, "fo": 1, "ovf": 1}},
	} {
		d := mkDests(1, 2, 0, 1)
		for i, c := range tc.c {
			d[i].Counters.Active.Store(c[0])
			d[i].Counters.Inactive.Store(c[1])
		}
		if tc.ov >= 0 {
			overload(d[tc.ov].Counters)
		}
		for name, want := range tc.want {
			got := mustNew(t, name, d).Pick(d, nil)
			model := leastConnModels[name](view(d))
			if got != want || got != model {
				t.Errorf("%s: %s = %d, want %d (model %d)", tc.name, name, got, want, model)
			}
		}
	}
}

// TestLeastConnAgainstModels compares lc, wlc, sed, nq, fo and ovf with
// the models on seeded random weights, counts and overload flags, with
// many ties.
func TestLeastConnAgainstModels(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for iter := range 3000 {
		w := randWeights(r, 1+r.IntN(12), []int32{1, 3, 10}[iter%3])
		d := mkDests(w...)
		for i := range d {
			c := d[i].Counters
			c.Active.Store(r.Int64N(6))
			c.Inactive.Store(r.Int64N(600))
			if r.IntN(5) == 0 {
				overload(c)
			}
		}
		v := view(d)
		for name, model := range leastConnModels {
			if got, want := mustNew(t, name, d).Pick(d, nil), model(v); got != want {
				t.Fatalf("%s %+v = %d, model %d", name, v, got, want)
			}
		}
	}
}
