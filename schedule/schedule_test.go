package schedule

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
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
func kernelRR(weights []int32) func() int { return kernelRROver(weights, nil) }

// kernelRROver is kernelRR with overload flags: ov(i) reports whether real
// i is overloaded at the time of the pick (nil: never).
func kernelRROver(weights []int32, ov func(int) bool) func() int {
	last := -1
	return func() int {
		n := len(weights)
		for k := 1; k <= n; k++ {
			i := (last + k) % n // last = -1 starts at the head
			if weights[i] > 0 && (ov == nil || !ov(i)) {
				last = i
				return i
			}
		}
		return -1
	}
}

// kernelWRR is a transcription of ip_vs_wrr_init_svc and
// ip_vs_wrr_schedule (no overload flags): cl = -1 is the list head.
func kernelWRR(weights []int32) func() int { return kernelWRROver(weights, nil) }

// kernelWRROver is kernelWRR with overload flags, as kernelRROver.
func kernelWRROver(weights []int32, ov func(int) bool) func() int {
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
				if (ov == nil || !ov(d)) && int(weights[d]) >= cw {
					cl = d
					return d
				}
				if d == stop {
					cl = d
					return -1
				}
			}
			d = -1
			cw -= di
			if cw <= 0 {
				cw = mw
				if lastPass || last == -1 {
					cl = d
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

// naiveWLC picks the minimal overhead/weight as an exact rational among
// the available reals, first on ties.
func naiveWLC(dests []Dest) int {
	best := -1
	var bo, bw int64
	for i, d := range dests {
		if d.Weight <= 0 || d.Counters.Overloaded() {
			continue
		}
		o := d.Counters.Active.Load()*256 + d.Counters.Inactive.Load()
		if best == -1 || o*bw < bo*int64(d.Weight) {
			best, bo, bw = i, o, int64(d.Weight)
		}
	}
	return best
}

// allNames is every scheduler of ipvsadm(8), in its order.
var allNames = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}

func TestNewNames(t *testing.T) {
	d := mkDests(1, 2)
	if got := Implemented(); !slices.Equal(got, allNames) {
		t.Errorf("Implemented() = %v, want %v", got, allNames)
	}
	for _, name := range allNames {
		if _, err := New(name, d, Options{}); err != nil {
			t.Errorf("New(%q): %v", name, err)
		}
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
	for _, tc := range []struct {
		name  string
		dests []Dest
		opts  Options
	}{
		{"mh", d, Options{MHTableSize: 65536}},                  // not a prime
		{"mh", d, Options{MHTableSize: 1}},                      // not a prime
		{"mh", d, Options{MHTableSize: -7}},                     // negative
		{"mh", d, Options{MHTableSize: 16777259}},               // a prime past the limit
		{"mh", mkDests(1, 1, 0, 1, 1), Options{MHTableSize: 3}}, // 4 weighted reals
		{"lblc", d, Options{LBLCExpire: -1}},
		{"lblcr", d, Options{LBLCExpire: -time.Second}},
	} {
		if _, err := New(tc.name, tc.dests, tc.opts); err == nil {
			t.Errorf("New(%q, %+v): no error", tc.name, tc.opts)
		}
	}
	// Options a scheduler does not use are ignored, as ipvsadm ignores
	// flags; a table size of exactly the weighted reals is enough.
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"rr", Options{MHTableSize: 4, Flags: SHPort | MHFallback}},
		{"wlc", Options{LBLCExpire: -1}},
		{"mh", Options{MHTableSize: 2}},
	} {
		if _, err := New(tc.name, d, tc.opts); err != nil {
			t.Errorf("New(%q, %+v): %v", tc.name, tc.opts, err)
		}
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

// randFlow returns a TCP flow between random IPv4 addresses and ports.
func randFlow(r *rand.Rand) Flow {
	f := Flow{SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()), Proto: protoTCP}
	f.Src = netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, r.Uint32()))).As16()
	f.Dst = netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, r.Uint32()))).As16()
	return f
}

// overload sets c's overload flag as the dataplane would: an upper
// threshold one above the current total, then one more connection
// (inactive, so that active counts are left alone).
func overload(c *Counters) {
	c.SetThresholds(c.Active.Load()+c.Inactive.Load()+1, 0)
	c.Bind(false)
}

// fallbackOpts turns on sh's and mh's fallback, so that every scheduler
// but dh answers -1 only when no real is available.
var fallbackOpts = Options{Flags: SHFallback | MHFallback}

func mustNewOpts(t testing.TB, name string, dests []Dest, opts Options) Scheduler {
	t.Helper()
	s, err := New(name, dests, opts)
	if err != nil {
		t.Fatalf("New(%q, %+v): %v", name, opts, err)
	}
	return s
}

func TestNoneAvailable(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, name := range allNames {
		for _, w := range [][]int32{nil, {0}, {0, 0, 0}} {
			d := mkDests(w...)
			s := mustNewOpts(t, name, d, fallbackOpts)
			for range 5 {
				f := randFlow(r)
				if got := s.Pick(d, &f); got != -1 {
					t.Errorf("%s with weights %v picked %d", name, w, got)
				}
			}
		}
		d := mkDests(1, 1)
		if got := mustNew(t, name, d).Pick(d[:1], nil); got != -1 {
			t.Errorf("%s with a dests of another length picked %d", name, got)
		}
		// Every real overloaded.
		d = mkDests(3, 0, 1, 2)
		s := mustNewOpts(t, name, d, fallbackOpts)
		for i := range d {
			overload(d[i].Counters)
		}
		for range 5 {
			f := randFlow(r)
			if got := s.Pick(d, &f); got != -1 {
				t.Errorf("%s with every real overloaded picked %d", name, got)
			}
		}
	}
}

func TestQuiescentNeverPicked(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, name := range allNames {
		for _, opts := range []Options{{}, fallbackOpts} {
			for range 50 {
				w := randWeights(r, 1+r.IntN(6), 5)
				d := mkDests(w...)
				s := mustNewOpts(t, name, d, opts)
				for range 100 {
					f := randFlow(r)
					i := s.Pick(d, &f)
					if i == -1 {
						// Without fallback a hashing scheduler may find
						// the flow's real quiescent; dh has none.
						hashing := name == "dh" || opts.Flags == 0 && (name == "sh" || name == "mh")
						// ovf takes no real with more active
						// connections than its weight.
						if name == "ovf" && !slices.ContainsFunc(d, func(x Dest) bool {
							return x.Weight > 0 && x.Counters.Active.Load() <= int64(x.Weight)
						}) {
							continue
						}
						if !hashing && slices.ContainsFunc(w, func(x int32) bool { return x > 0 }) {
							t.Fatalf("%s %v: -1 with an eligible real", name, w)
						}
						continue
					}
					if w[i] == 0 {
						t.Fatalf("%s %v picked quiescent real %d", name, w, i)
					}
					d[i].Counters.Active.Add(1) // move the least-connection ones around
				}
			}
		}
	}
}

// TestConcurrentPick: picks from several goroutines are each a position of
// the one sequence, so whole periods of rr and wrr still add up to the
// weights exactly; every scheduler picks only reals with a weight while
// another goroutine overloads and relieves reals. Run with -race.
func TestConcurrentPick(t *testing.T) {
	w := []int32{3, 1, 0, 2}
	const workers, perWorker = 4, 6 * 250 // 250 periods of wrr (sum 6)
	for _, name := range allNames {
		d := mkDests(w...)
		s := mustNewOpts(t, name, d, fallbackOpts)
		counts := make([][]int, workers)
		var wg sync.WaitGroup
		for g := range workers {
			counts[g] = make([]int, len(d))
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 9))
				for k := range perWorker {
					f := randFlow(r)
					f.Now = int64(k)
					i := s.Pick(d, &f)
					if i < 0 && (name == "dh" || name == "ovf") {
						// dh hashes some flows to the quiescent
						// real; ovf fills every real to its weight.
						continue
					}
					if i < 0 || w[i] == 0 {
						t.Errorf("%s: bad pick %d", name, i)
						return
					}
					counts[g][i]++
					if name != "rr" && name != "wrr" {
						d[i].Counters.Bind(true)
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
		if sum := total[0] + total[1] + total[3]; sum != workers*perWorker && name != "dh" && name != "ovf" {
			t.Errorf("%s concurrent counts = %v, want %d picks", name, total, workers*perWorker)
		}
	}

	// With overload flags changing under the picks.
	for _, name := range allNames {
		d := mkDests(w...)
		for i := range d {
			d[i].Counters.SetThresholds(8, 2)
		}
		s := mustNewOpts(t, name, d, fallbackOpts)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			r := rand.New(rand.NewPCG(10, 11))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := d[r.IntN(len(d))].Counters
				if r.IntN(2) == 0 {
					c.Bind(r.IntN(2) == 0)
				} else if c.Active.Load() > 0 {
					c.Unbind(true)
				} else if c.Inactive.Load() > 0 {
					c.Unbind(false)
				}
			}
		})
		var pickers sync.WaitGroup
		for g := range workers {
			pickers.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 12))
				for k := range 2000 {
					f := randFlow(r)
					f.Now = int64(k) * int64(time.Second)
					if i := s.Pick(d, &f); i >= 0 && w[i] == 0 {
						t.Errorf("%s: picked quiescent real %d", name, i)
						return
					}
				}
			})
		}
		pickers.Wait()
		close(stop)
		wg.Wait()
	}
}

func TestPickAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	flows := make([]Flow, 64)
	for i := range flows {
		flows[i] = randFlow(r)
	}
	d := mkDests(3, 1, 0, 2)
	cases := map[string]Scheduler{"wrr-fallback": newWRR(d, 0)}
	for _, name := range allNames {
		cases[name] = mustNew(t, name, d)
		cases[name+"+fallback"] = mustNewOpts(t, name, d, fallbackOpts)
	}
	check := func(what string) {
		for name, s := range cases {
			k := 0
			a := testing.AllocsPerRun(1000, func() {
				s.Pick(d, &flows[k%len(flows)])
				k++
			})
			if a != 0 {
				t.Errorf("%s, %s: Pick allocates %v times", name, what, a)
			}
		}
	}
	check("all available")
	overload(d[0].Counters) // the slow paths: skip, fallback, reschedule
	d[3].Counters.Active.Store(5)
	check("overloaded real")
}

// benchDests returns n reals with weights 1..5, a few connections each
// (none idle, so that nq scans them all, and none with more active than
// its weight, so that lblc keeps its entries) and distinct Keys.
func benchDests(n int) []Dest {
	d := make([]Dest, n)
	for i := range d {
		w := int32(1 + i%5)
		d[i] = Dest{Weight: w, Counters: new(Counters), Key: mix64(uint64(i) + 1)}
		d[i].Counters.Active.Store(int64(min(w, int32(1+i%2))))
		d[i].Counters.Inactive.Store(int64(i % 13))
	}
	return d
}

// BenchmarkPick measures Pick on one goroutine (BenchmarkPick/NAME/REALS)
// and BenchmarkPickParallel on GOMAXPROCS, over 1024 random flows.
func BenchmarkPick(b *testing.B)         { benchmarkPick(b, false) }
func BenchmarkPickParallel(b *testing.B) { benchmarkPick(b, true) }

func benchmarkPick(b *testing.B, parallel bool) {
	r := rand.New(rand.NewPCG(15, 16))
	flows := make([]Flow, 1024)
	for i := range flows {
		flows[i] = randFlow(r)
	}
	names := append(slices.Clone(allNames), "wrr-fallback")
	for _, name := range names {
		for _, n := range []int{2, 64, 1000} {
			d := benchDests(n)
			var s Scheduler
			if name == "wrr-fallback" {
				s = newWRR(d, 0)
			} else {
				s = mustNew(b, name, d)
			}
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				b.ReportAllocs()
				if !parallel {
					k := 0
					for b.Loop() {
						s.Pick(d, &flows[k&1023])
						k++
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					k := 0
					for pb.Next() {
						s.Pick(d, &flows[k&1023])
						k++
					}
				})
			})
		}
	}
}
