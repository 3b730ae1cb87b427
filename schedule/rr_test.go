package schedule

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRoundRobinOverloaded: an overloaded real gives its turn to the next
// available one, and the walk goes on after that one, as the kernel's.
func TestRoundRobinOverloaded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int32
		ov      []int
		want    []int
	}{
		{"rr", []int32{1, 1, 1}, []int{1}, []int{0, 2, 0, 2}},
		{"rr", []int32{1, 0, 5, 1}, []int{0}, []int{2, 3, 2, 3}},
		{"rr", []int32{1, 1, 1}, []int{0, 1, 2}, []int{-1, -1}},
		// One period of 4,3,2 is 0 0 1 0 1 2 0 1 2; without real 0 the
		// walk keeps the positions of 1 and 2.
		{"wrr", []int32{4, 3, 2}, []int{0}, []int{1, 1, 2, 1, 2, 1, 1, 2, 1, 2}},
		{"wrr", []int32{4, 3, 2}, []int{1}, []int{0, 0, 0, 2, 0, 2, 0, 0, 0, 2}},
		{"wrr", []int32{4, 3, 2}, []int{0, 1}, []int{2, 2, 2, 2}},
		{"wrr", []int32{4, 3, 2}, []int{0, 1, 2}, []int{-1, -1}},
	} {
		d := mkDests(tc.weights...)
		for _, i := range tc.ov {
			overload(d[i].Counters)
		}
		scheds := []Scheduler{mustNew(t, tc.name, d)}
		if tc.name == "wrr" {
			scheds = append(scheds, newWRR(d, 0))
		}
		for _, s := range scheds {
			if got := picks(s, d, len(tc.want)); !slices.Equal(got, tc.want) {
				t.Errorf("%s %v, %v overloaded: picks = %v, want %v", tc.name, tc.weights, tc.ov, got, tc.want)
			}
		}
	}
}

// TestRoundRobinOverloadAgainstKernel compares rr and wrr (sequence and
// round-structure modes) with the kernel's loops while reals are
// overloaded and relieved at random between picks. rr is also compared
// through picks that find every real overloaded; wrr only while one real
// is available, since after such a pick the kernel's walk is left at its
// last round and ours where it was (documented on wrr).
func TestRoundRobinOverloadAgainstKernel(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for iter := range 300 {
		w := randWeights(r, 1+r.IntN(8), []int32{1, 3, 10, 100}[iter%4])
		d := mkDests(w...)
		ov := func(i int) bool { return d[i].Counters.Overloaded() }
		rrModel, wrrModel := kernelRROver(w, ov), kernelWRROver(w, ov)
		rrS, wrrS, fb := mustNew(t, "rr", d), mustNew(t, "wrr", d), newWRR(d, 0)
		var sum int
		for _, x := range w {
			sum += int(x)
		}
		for k := range 3*sum + 10 {
			if r.IntN(3) == 0 {
				c := d[r.IntN(len(d))].Counters
				if c.Overloaded() {
					c.SetThresholds(0, 0)
				} else {
					overload(c)
				}
			}
			if got, want := rrS.Pick(d, nil), rrModel(); got != want {
				t.Fatalf("rr %v pick %d = %d, kernel %d", w, k, got, want)
			}
			if !slices.ContainsFunc(d, func(x Dest) bool { return x.available() }) {
				continue
			}
			want := wrrModel()
			if got := wrrS.Pick(d, nil); got != want {
				t.Fatalf("wrr %v pick %d = %d, kernel %d", w, k, got, want)
			}
			if got := fb.Pick(d, nil); got != want {
				t.Fatalf("wrr fallback %v pick %d = %d, kernel %d", w, k, got, want)
			}
		}
	}
}
