package schedule

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// peekCase is one scheduler to test Peek on, built afresh for each run.
type peekCase struct {
	name  string
	build func(t testing.TB, d []Dest) Scheduler
}

// peekCases are all 13 schedulers, with their options and modes that
// take other paths: sh and mh with fallback and port hashing, wrr from
// its round structure, lblc and lblcr with a short expiry.
func peekCases() []peekCase {
	opts := func(name string, o Options) func(testing.TB, []Dest) Scheduler {
		return func(t testing.TB, d []Dest) Scheduler { return mustNewOpts(t, name, d, o) }
	}
	var cases []peekCase
	for _, name := range allNames {
		cases = append(cases, peekCase{name, opts(name, Options{MHTableSize: 251, LBLCExpire: 500})})
	}
	return append(cases,
		peekCase{"wrr-rounds", func(_ testing.TB, d []Dest) Scheduler { return newWRR(d, 0) }},
		peekCase{"sh-fallback-port", opts("sh", Options{Flags: SHFallback | SHPort})},
		peekCase{"mh-fallback-port", opts("mh", Options{Flags: MHFallback | MHPort, MHTableSize: 251})},
		peekCase{"lblc-noexpire", opts("lblc", Options{})},
		peekCase{"lblcr-noexpire", opts("lblcr", Options{})},
	)
}

// peekStep is one new connection of a scripted run, and what happens to
// the counters after it is scheduled.
type peekStep struct {
	flow         Flow
	active       bool // the new connection counts as active
	end          int  // a real one of whose connections ends, if < reals
	endActive    bool
	overloadReal int // a real whose upper threshold is set now, if < reals
	upper        int64
}

func peekScript(r *rand.Rand, reals, n int) []peekStep {
	srcs := []string{"10.10.0.1", "10.10.0.2", "10.10.1.7", "192.0.2.9"}
	dsts := []string{"10.20.0.100", "10.20.0.101", "10.20.0.102"}
	steps := make([]peekStep, n)
	now := int64(0)
	for k := range steps {
		now += r.Int64N(120) // lblc entries (expiry 500) come and go
		steps[k] = peekStep{
			flow: Flow{Src: addr4(srcs[r.IntN(len(srcs))]), Dst: addr4(dsts[r.IntN(len(dsts))]),
				SrcPort: uint16(1024 + r.IntN(8)), DstPort: 80, Proto: protoTCP, Now: now},
			active:       r.IntN(3) > 0,
			end:          r.IntN(reals + 2),
			endActive:    r.IntN(2) == 0,
			overloadReal: reals,
		}
		if r.IntN(20) == 0 {
			steps[k].overloadReal, steps[k].upper = r.IntN(reals), int64(r.IntN(6))
		}
	}
	return steps
}

// runScript schedules the steps on a fresh scheduler over fresh reals of
// the given weights and returns Pick's answers. With peek, every Pick is
// preceded by two Peeks, which must both say what the Pick returns.
func runScript(t *testing.T, c peekCase, weights []int32, steps []peekStep, peek bool) []int {
	t.Helper()
	d := mkDests(weights...)
	for i := range d {
		d[i].Key = uint64(i*7919 + 1)
	}
	s := c.build(t, d)
	p, ok := s.(Peeker)
	if !ok {
		t.Fatalf("%s: not a Peeker", c.name)
	}
	out := make([]int, 0, len(steps))
	for k, st := range steps {
		if st.overloadReal < len(d) {
			d[st.overloadReal].Counters.SetThresholds(st.upper, 0)
		}
		var p1, p2 int
		if peek {
			p1, p2 = p.Peek(d, &st.flow), p.Peek(d, &st.flow)
		}
		i := s.Pick(d, &st.flow)
		if peek && (p1 != i || p2 != i) {
			t.Errorf("%s %v step %d: Peek said %d then %d, Pick %d", c.name, weights, k, p1, p2, i)
		}
		out = append(out, i)
		if i >= 0 {
			d[i].Counters.Bind(st.active)
		}
		if st.end < len(d) {
			cnt := d[st.end].Counters
			switch {
			case st.endActive && cnt.Active.Load() > 0:
				cnt.Unbind(true)
			case cnt.Inactive.Load() > 0:
				cnt.Unbind(false)
			}
		}
	}
	return out
}

// TestPeekMatchesPick: for every scheduler, on random weights, flows,
// thresholds and connection churn, Peek says what the next Pick returns,
// and a run with Peeks between the Picks picks exactly as a run without.
func TestPeekMatchesPick(t *testing.T) {
	r := rand.New(rand.NewPCG(81, 82))
	for _, c := range peekCases() {
		for iter := range 12 {
			weights := randWeights(r, 1+r.IntN(6), []int32{1, 3, 5}[iter%3])
			if iter%4 == 3 {
				weights[r.IntN(len(weights))] = 0 // a quiescent real
			}
			steps := peekScript(r, len(weights), 300)
			with := runScript(t, c, weights, steps, true)
			without := runScript(t, c, weights, steps, false)
			if !slices.Equal(with, without) {
				t.Errorf("%s %v: picks with Peeks %v\nwithout %v", c.name, weights, with, without)
			}
		}
	}
}

// TestPeekNoAllocs: Peek allocates nothing, on the fast and slow paths.
func TestPeekNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(83, 84))
	flows := make([]Flow, 64)
	for i := range flows {
		flows[i] = randFlow(r)
	}
	d := mkDests(3, 1, 0, 2)
	var scheds []Scheduler
	var names []string
	for _, c := range peekCases() {
		scheds, names = append(scheds, c.build(t, d)), append(names, c.name)
	}
	check := func(what string) {
		for j, s := range scheds {
			p := s.(Peeker)
			k := 0
			if a := testing.AllocsPerRun(1000, func() {
				p.Peek(d, &flows[k%len(flows)])
				k++
			}); a != 0 {
				t.Errorf("%s, %s: Peek allocates %v times", names[j], what, a)
			}
		}
	}
	check("all available")
	// Cache entries for lblc and lblcr to find.
	for _, s := range scheds {
		for k := range flows {
			s.Pick(d, &flows[k])
		}
	}
	check("cached")
	overload(d[0].Counters)
	d[3].Counters.Active.Store(5)
	check("overloaded real")
}

// TestExplain: Explain names the scheduler, answers as Peek does, and
// says why in the scheduler's terms, for every scheduler and for the
// branches an operator meets.
func TestExplain(t *testing.T) {
	f := Flow{Src: addr4("10.10.0.7"), Dst: addr4("10.20.0.100"), SrcPort: 40000, DstPort: 80, Proto: protoTCP, Now: int64(time.Second)}
	d := mkDests(1, 1, 2)
	for _, c := range peekCases() {
		s := c.build(t, d)
		ch := Explain(s, d, &f)
		if want := strings.SplitN(c.name, "-", 2)[0]; ch.Scheduler != want {
			t.Errorf("%s: Scheduler %q, want %q", c.name, ch.Scheduler, want)
		}
		if p := s.(Peeker).Peek(d, &f); ch.Index != p || ch.Reason == "" {
			t.Errorf("%s: Explain %+v, Peek %d", c.name, ch, p)
		}
		if got := Explain(s, d[:2], &f); got.Index != -1 || !strings.Contains(got.Reason, "another list") {
			t.Errorf("%s: Explain over other reals: %+v", c.name, got)
		}
	}

	reason := func(name string, o Options, d []Dest) Choice {
		t.Helper()
		return Explain(mustNewOpts(t, name, d, o), d, &f)
	}
	d = mkDests(1, 1)
	d[0].Counters.Active.Store(3)
	d[0].Counters.Inactive.Store(1)
	if ch := reason("wlc", Options{}, d); ch.Index != 1 || ch.Reason != "lowest (active*256+inactive)/weight = 0.0" {
		t.Errorf("wlc: %+v", ch)
	}
	if ch := reason("lc", Options{}, d); ch.Index != 1 || ch.Reason != "lowest active*256+inactive = 0" {
		t.Errorf("lc: %+v", ch)
	}
	if ch := reason("nq", Options{}, d); ch.Index != 1 || ch.Reason != "first available real with no active connection" {
		t.Errorf("nq: %+v", ch)
	}

	d = mkDests(1, 1, 1)
	s := mustNew(t, "rr", d)
	if ch := Explain(s, d, &f); ch.Index != 0 || ch.Reason != "next in turn" {
		t.Errorf("rr: %+v", ch)
	}
	overload(d[0].Counters)
	if ch := Explain(s, d, &f); ch.Index != 1 || !strings.HasPrefix(ch.Reason, "next in turn, after passing over") {
		t.Errorf("rr past an overloaded real: %+v", ch)
	}
	overload(d[1].Counters)
	overload(d[2].Counters)
	if ch := Explain(s, d, &f); ch.Index != -1 || ch.Reason != noneAvailable {
		t.Errorf("rr, none available: %+v", ch)
	}

	// sh: the flow's bucket names a real; quiesced, the flow gets nothing
	// without sh-fallback and another real with it.
	d = mkDests(1, 1)
	pref := reason("sh", Options{}, d).Preferred
	if pref < 0 {
		t.Fatal("sh: no preferred real")
	}
	d[pref].Weight = 0
	if ch := reason("sh", Options{}, d); ch.Index != -1 || ch.Preferred != pref || !strings.Contains(ch.Reason, "sh-fallback is off") {
		t.Errorf("sh, hashed real quiescent: %+v", ch)
	}
	if ch := reason("sh", Options{Flags: SHFallback}, d); ch.Index != 1-pref || !strings.Contains(ch.Reason, "probe") {
		t.Errorf("sh-fallback, hashed real quiescent: %+v", ch)
	}

	// lblc: no entry, then the entry Pick made; Explain leaves the cache
	// alone (the first Explain would otherwise have made the entry).
	d = mkDests(1, 1)
	s = mustNew(t, "lblc", d)
	if ch := Explain(s, d, &f); ch.Preferred != -1 || !strings.HasPrefix(ch.Reason, "no cache entry") {
		t.Errorf("lblc, empty cache: %+v", ch)
	}
	if ch := Explain(s, d, &f); ch.Preferred != -1 {
		t.Errorf("lblc: Explain made an entry: %+v", ch)
	}
	i := s.Pick(d, &f)
	d[i].Counters.Active.Store(1) // the other real is now the least loaded
	if ch := Explain(s, d, &f); ch.Index != i || ch.Preferred != i || ch.Reason != "the real cached for the destination" {
		t.Errorf("lblc, cached: %+v", ch)
	}
}
