package schedule

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// mkDests builds dests with the given weights and fresh counters.
func mkDests(weights ...int32) []Dest {
	d := make([]Dest, len(weights))
	for i, w := range weights {
		d[i] = Dest{Weight: w, Counters: new(Counters)}
	}
	return d
}

func mustNew(t testing.TB, name string, dests []Dest) Scheduler {
	t.Helper()
	s, err := New(name, dests, Options{})
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return s
}

func picks(s Scheduler, dests []Dest, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = s.Pick(dests, nil)
	}
	return out
}

// kernelRR is a model of ip_vs_rr_schedule: continue after the last pick,
// take the first real with a positive weight.
func kernelRR(weights []int32) func() int {
	last := -1
	return func() int {
		n := len(weights)
		for k := 1; k <= n; k++ {
			i := (last + k) % n // last = -1 starts at the head
			if weights[i] > 0 {
				last = i
				return i
			}
		}
		return -1
	}
}

// kernelWRR is a transcription of ip_vs_wrr_init_svc and
// ip_vs_wrr_schedule (no overload flags): cl = -1 is the list head.
func kernelWRR(weights []int32) func() int {
	di, maxw := 0, 0
	for _, w := range weights {
		if w > 0 {
			if di > 0 {
				di = int(gcd(int64(w), int64(di)))
			} else {
				di = int(w)
			}
		}
		maxw = max(maxw, int(w))
	}
	if di == 0 {
		di = 1
	}
	mw := maxw - (di - 1)
	cw, cl := mw, -1
	return func() int {
		if mw == 0 {
			return -1
		}
		d, last, stop := cl, cl, -2
		lastPass, restarted := false, false
		for {
			for d = d + 1; d < len(weights); d++ {
				if int(weights[d]) >= cw {
					cl = d
					return d
				}
				if d == stop {
					return -1
				}
			}
			d = -1
			cw -= di
			if cw <= 0 {
				cw = mw
				if lastPass || last == -1 {
					return -1
				}
				restarted = true
			}
			lastPass = cw <= di
			if lastPass && restarted && last != -1 {
				stop = last
			}
		}
	}
}

// naiveWLC picks the minimal overhead/weight as an exact rational, first
// on ties.
func naiveWLC(dests []Dest) int {
	best := -1
	var bo, bw int64
	for i, d := range dests {
		if d.Weight <= 0 {
			continue
		}
		o := d.Counters.Active.Load()*256 + d.Counters.Inactive.Load()
		if best == -1 || o*bw < bo*int64(d.Weight) {
			best, bo, bw = i, o, int64(d.Weight)
		}
	}
	return best
}

func TestNewNames(t *testing.T) {
	d := mkDests(1, 2)
	for _, name := range Implemented() {
		if _, err := New(name, d, Options{}); err != nil {
			t.Errorf("New(%q): %v", name, err)
		}
	}
	if got := Implemented(); !slices.Equal(got, []string{"rr", "wrr", "wlc"}) {
		t.Errorf("Implemented() = %v", got)
	}
	if _, err := New("sh", d, Options{}); !errors.Is(err, ErrNotImplemented) {
		t.Errorf("New(sh) = %v, want ErrNotImplemented", err)
	}
	if _, err := New("fastest", d, Options{}); !errors.Is(err, ErrUnknown) {
		t.Errorf("New(fastest) = %v, want ErrUnknown", err)
	}
	if _, err := New("rr", []Dest{{Weight: -1, Counters: new(Counters)}}, Options{}); err == nil {
		t.Error("New with a negative weight: no error")
	}
	if _, err := New("wlc", []Dest{{Weight: 1}}, Options{}); err == nil {
		t.Error("New with nil Counters: no error")
	}
}

func TestRRSequence(t *testing.T) {
	d := mkDests(1, 0, 5, 1, 0)
	got := picks(mustNew(t, "rr", d), d, 7)
	if want := []int{0, 2, 3, 0, 2, 3, 0}; !slices.Equal(got, want) {
		t.Errorf("rr picks = %v, want %v", got, want)
	}
}

func TestWRRSequence(t *testing.T) {
	for _, tc := range []struct {
		weights []int32
		want    []int
	}{
		{[]int32{4, 3, 2}, []int{0, 0, 1, 0, 1, 2, 0, 1, 2}},
		{[]int32{4, 2}, []int{0, 0, 1}}, // gcd 2: one period is 3 picks
		{[]int32{1, 0, 1}, []int{0, 2}},
		{[]int32{2, 6, 4}, []int{1, 1, 2, 0, 1, 2}},
	} {
		d := mkDests(tc.weights...)
		got := picks(mustNew(t, "wrr", d), d, 2*len(tc.want))
		want := append(slices.Clone(tc.want), tc.want...)
		if !slices.Equal(got, want) {
			t.Errorf("wrr %v picks = %v, want %v", tc.weights, got, want)
		}
	}
}

// randWeights returns n weights in [0, maxw], some of them zero.
func randWeights(r *rand.Rand, n int, maxw int32) []int32 {
	w := make([]int32, n)
	for i := range w {
		if r.IntN(5) > 0 {
			w[i] = r.Int32N(maxw + 1)
		}
	}
	return w
}

// TestAgainstKernelModels compares rr and wrr, with a precomputed sequence
// and with the round-structure fallback, against transcriptions of the
// kernel's loops on seeded random weights.
func TestAgainstKernelModels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		w := randWeights(r, 1+r.IntN(8), []int32{1, 3, 10, 100}[iter%4])
		d := mkDests(w...)
		var sum int
		for _, x := range w {
			sum += int(x)
		}
		n := 2*sum + 5
		rrModel, wrrModel := kernelRR(w), kernelWRR(w)
		rrS := mustNew(t, "rr", d)
		wrrS := mustNew(t, "wrr", d)
		fb := newWRR(d, 0) // always the fallback
		for k := range n {
			if got, want := rrS.Pick(d, nil), rrModel(); got != want {
				t.Fatalf("rr %v pick %d = %d, kernel %d", w, k, got, want)
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

// TestDistribution: over whole periods rr gives each eligible real the same
// count and wrr gives each real exactly its weight (times periods/gcd).
func TestDistribution(t *testing.T) {
	w := []int32{5, 0, 3, 1, 7}
	d := mkDests(w...)
	const periods = 10

	count := func(s Scheduler, n int) []int {
		c := make([]int, len(d))
		for range n {
			c[s.Pick(d, nil)]++
		}
		return c
	}
	if got, want := count(mustNew(t, "rr", d), 4*periods), []int{periods, 0, periods, periods, periods}; !slices.Equal(got, want) {
		t.Errorf("rr counts = %v, want %v", got, want)
	}
	got := count(mustNew(t, "wrr", d), 16*periods)
	for i := range w {
		if got[i] != int(w[i])*periods {
			t.Errorf("wrr counts = %v, want weights %v × %d", got, w, periods)
			break
		}
	}
}

func TestWLC(t *testing.T) {
	d := mkDests(1, 2, 0, 1)
	s := mustNew(t, "wlc", d)
	set := func(i int, active, inactive int64) {
		d[i].Counters.Active.Store(active)
		d[i].Counters.Inactive.Store(inactive)
	}
	for _, tc := range []struct {
		name   string
		counts [4][2]int64
		want   int
	}{
		{"all idle: first", [4][2]int64{}, 0},
		{"weight 2 takes twice the load", [4][2]int64{{1, 0}, {2, 0}, {0, 0}, {1, 0}}, 0},
		{"weight 2 below twice", [4][2]int64{{1, 0}, {1, 255}, {0, 0}, {1, 0}}, 1},
		{"inactive counts 1/256", [4][2]int64{{1, 1}, {2, 3}, {0, 0}, {1, 0}}, 3},
		{"quiescent never, even idle", [4][2]int64{{5, 0}, {11, 0}, {0, 0}, {5, 0}}, 0},
		{"active outweighs 255 inactive", [4][2]int64{{0, 255}, {2, 600}, {0, 0}, {1, 0}}, 0},
	} {
		for i, c := range tc.counts {
			set(i, c[0], c[1])
		}
		if got := s.Pick(d, nil); got != tc.want || got != naiveWLC(d) {
			t.Errorf("%s: wlc = %d, want %d (naive %d)", tc.name, got, tc.want, naiveWLC(d))
		}
	}

	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		w := randWeights(r, 1+r.IntN(10), 20)
		d := mkDests(w...)
		for i := range d {
			d[i].Counters.Active.Store(r.Int64N(50))
			d[i].Counters.Inactive.Store(r.Int64N(2000))
		}
		if got, want := mustNew(t, "wlc", d).Pick(d, nil), naiveWLC(d); got != want {
			t.Fatalf("wlc %v = %d, naive %d", w, got, want)
		}
	}
}

func TestNoneAvailable(t *testing.T) {
	for _, name := range Implemented() {
		for _, d := range [][]Dest{nil, mkDests(0), mkDests(0, 0, 0)} {
			s := mustNew(t, name, d)
			for range 3 {
				if got := s.Pick(d, nil); got != -1 {
					t.Errorf("%s with weights all 0 (%d reals) picked %d", name, len(d), got)
				}
			}
		}
		d := mkDests(1, 1)
		if got := mustNew(t, name, d).Pick(d[:1], nil); got != -1 {
			t.Errorf("%s with a dests of another length picked %d", name, got)
		}
	}
}

func TestQuiescentNeverPicked(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, name := range Implemented() {
		for range 50 {
			w := randWeights(r, 1+r.IntN(6), 5)
			d := mkDests(w...)
			s := mustNew(t, name, d)
			for range 100 {
				i := s.Pick(d, nil)
				if i == -1 {
					if slices.ContainsFunc(w, func(x int32) bool { return x > 0 }) {
						t.Fatalf("%s %v: -1 with an eligible real", name, w)
					}
					break
				}
				if w[i] == 0 {
					t.Fatalf("%s %v picked quiescent real %d", name, w, i)
				}
				d[i].Counters.Active.Add(1) // move wlc around
			}
		}
	}
}

// TestConcurrentPick: picks from several goroutines are each a position of
// the one sequence, so whole periods still add up to the weights exactly.
// Run with -race.
func TestConcurrentPick(t *testing.T) {
	w := []int32{3, 1, 0, 2}
	const workers, perWorker = 4, 6 * 250 // 250 periods of wrr (sum 6)
	for _, name := range []string{"rr", "wrr", "wlc"} {
		d := mkDests(w...)
		s := mustNew(t, name, d)
		counts := make([][]int, workers)
		var wg sync.WaitGroup
		for g := range workers {
			counts[g] = make([]int, len(d))
			wg.Go(func() {
				for range perWorker {
					i := s.Pick(d, nil)
					if i < 0 || w[i] == 0 {
						t.Errorf("%s: bad pick %d", name, i)
						return
					}
					counts[g][i]++
					if name == "wlc" {
						d[i].Counters.Active.Add(1)
					}
				}
			})
		}
		wg.Wait()
		total := make([]int, len(d))
		for _, c := range counts {
			for i, n := range c {
				total[i] += n
			}
		}
		var want []int
		switch name {
		case "rr":
			want = []int{2000, 2000, 0, 2000}
		case "wrr":
			want = []int{3000, 1000, 0, 2000}
		}
		if want != nil && !slices.Equal(total, want) {
			t.Errorf("%s concurrent counts = %v, want %v", name, total, want)
		}
		if name == "wlc" && total[0]+total[1]+total[3] != workers*perWorker {
			t.Errorf("wlc concurrent counts = %v", total)
		}
	}
}

func TestPickAllocs(t *testing.T) {
	d := mkDests(3, 1, 0, 2)
	f := &Flow{Proto: 6}
	cases := map[string]Scheduler{"wrr-fallback": newWRR(d, 0)}
	for _, name := range Implemented() {
		cases[name] = mustNew(t, name, d)
	}
	for name, s := range cases {
		if a := testing.AllocsPerRun(1000, func() { s.Pick(d, f) }); a != 0 {
			t.Errorf("%s: Pick allocates %v times", name, a)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	w := make([]int32, 16)
	for i := range w {
		w[i] = int32(1 + i%5)
	}
	d := mkDests(w...)
	f := &Flow{Proto: 6}
	cases := []struct {
		name string
		s    Scheduler
	}{
		{"rr", mustNew(b, "rr", d)},
		{"wrr", mustNew(b, "wrr", d)},
		{"wrr-fallback", newWRR(d, 0)},
		{"wlc", mustNew(b, "wlc", d)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.s.Pick(d, f)
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.s.Pick(d, f)
				}
			})
		})
	}
}
