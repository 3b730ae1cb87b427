package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeCheck is a checker whose outcomes follow a script: 'T' succeeds,
// 'F' fails; after the script the last outcome repeats, or the script
// starts again if cycle is set.
type fakeCheck struct {
	script string
	cycle  bool
	delay  time.Duration // how long each check takes (it returns early if cancelled)
	block  bool          // each check waits for its context to end
	calls  atomic.Int64
	begun  chan struct{} // if set, gets a value as each check begins

	inFlight, highWater *atomic.Int64 // if set, counts checks running at once (shared)
	first               chan<- time.Time
	sameKey             atomic.Int64 // checks of this target running at once
	sameKeyMax          atomic.Int64
}

var errFake = errors.New("fake failure")

// raise makes hw at least v: a high-water mark.
func raise(hw *atomic.Int64, v int64) {
	for old := hw.Load(); v > old && !hw.CompareAndSwap(old, v); old = hw.Load() {
	}
}

func (f *fakeCheck) check(ctx context.Context) error {
	n := int(f.calls.Add(1) - 1)
	if n == 0 && f.first != nil {
		f.first <- time.Now()
	}
	raise(&f.sameKeyMax, f.sameKey.Add(1))
	defer f.sameKey.Add(-1)
	if f.inFlight != nil {
		raise(f.highWater, f.inFlight.Add(1))
		defer f.inFlight.Add(-1)
	}
	if f.begun != nil {
		f.begun <- struct{}{}
	}
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.delay > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.delay):
		}
	}
	if f.script == "" {
		return nil
	}
	i := n
	if i >= len(f.script) {
		if f.cycle {
			i %= len(f.script)
		} else {
			i = len(f.script) - 1
		}
	}
	if f.script[i] == 'F' {
		return fmt.Errorf("%w %d", errFake, n+1)
	}
	return nil
}

// recorder collects OnChange calls and log lines, and fails the test if
// OnChange runs twice at once for one key.
type recorder struct {
	t       *testing.T
	mu      sync.Mutex
	changes map[string][]State
	logs    []string
	running map[string]bool
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, changes: make(map[string][]State), running: make(map[string]bool)}
}

func (r *recorder) onChange(key string, s State) {
	r.mu.Lock()
	if r.running[key] {
		r.t.Errorf("OnChange for %s called while another runs", key)
	}
	r.running[key] = true
	r.changes[key] = append(r.changes[key], s)
	r.mu.Unlock()
	time.Sleep(time.Millisecond) // widen the window for an overlap
	r.mu.Lock()
	r.running[key] = false
	r.mu.Unlock()
}

func (r *recorder) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *recorder) changesOf(key string) []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]State(nil), r.changes[key]...)
}

func (r *recorder) logsWith(sub string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.logs {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

func (r *recorder) options() Options {
	return Options{OnChange: r.onChange, Logf: r.logf}
}

// fakeMonitor is a Monitor whose checkers are the fakes, by key.
// builds counts the checkers built per key.
func fakeMonitor(o Options, fakes func(key string, build int) checker) (*Monitor, *sync.Map) {
	var builds sync.Map // key → *atomic.Int64
	m := newMonitor(o, func(key string, _ Target, _ *compiler) checker {
		n, _ := builds.LoadOrStore(key, new(atomic.Int64))
		return fakes(key, int(n.(*atomic.Int64).Add(1)))
	})
	return m, &builds
}

func buildsOf(builds *sync.Map, key string) int64 {
	n, ok := builds.Load(key)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

func fakeTarget(interval time.Duration, rise, fall int) Target {
	return Target{
		Addr:  netip.MustParseAddrPort("10.0.0.1:80"),
		Check: Config{Type: "fake", Interval: interval, Timeout: interval, Rise: rise, Fall: fall},
	}
}

func always(b bool) func(string) bool { return func(string) bool { return b } }

// eventually polls cond until it holds or a few seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func checksOf(m *Monitor, key string) uint64 {
	s, _ := m.State(key)
	return s.Checks
}

// assertNoLeaks fails if a check loop outlived its Monitor.
func assertNoLeaks(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "health.(*Monitor).run") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("check loops left running after Close:\n%s", stacks)
		}
	}
}

func TestHysteresis(t *testing.T) {
	type change struct {
		up     bool
		checks uint64 // State.Checks when it happened
	}
	for _, tc := range []struct {
		name       string
		rise, fall int
		startUp    bool
		script     string
		cycle      bool
		want       []change
	}{
		{"rise 2 from down", 2, 3, false, "FTT", false, []change{{true, 3}}},
		{"fall 3 from up", 2, 3, true, "TTFFF", false, []change{{false, 5}}},
		{"up down up", 2, 3, false, "TTFFFTT", false, []change{{true, 2}, {false, 5}, {true, 7}}},
		{"failures not consecutive", 2, 3, true, "FFTFFTFFT", false, nil},
		{"successes not consecutive", 2, 3, false, "TFTFFTFT" + "F", false, nil},
		{"stays up", 2, 3, true, "T", false, nil},
		{"stays down", 2, 3, false, "F", false, nil},
		{"rise 1 fall 1", 1, 1, false, "TFTF", false, []change{{true, 1}, {false, 2}, {true, 3}, {false, 4}}},
		{"alternating from down never changes", 2, 3, false, "TF", true, nil},
		{"alternating from up never changes", 2, 3, true, "FT", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRecorder(t)
			f := &fakeCheck{script: tc.script, cycle: tc.cycle}
			m, _ := fakeMonitor(r.options(), func(string, int) checker { return f })
			defer m.Close()
			m.Set(map[string]Target{"k": fakeTarget(10*time.Millisecond, tc.rise, tc.fall)}, always(tc.startUp))
			if s, _ := m.State("k"); s.Up != tc.startUp || s.Checks != 0 || s.Changed.IsZero() {
				t.Errorf("state after Set: %+v; want Up %v, no checks, Changed set", s, tc.startUp)
			}
			// Every transition of the script has been reported once the
			// check after the script's end has been recorded (OnChange runs
			// on the loop, before its next check).
			n := uint64(max(len(tc.script), 20) + 1)
			eventually(t, fmt.Sprintf("%d checks", n), func() bool { return checksOf(m, "k") >= n })
			m.Close()

			got := r.changesOf("k")
			var gotc []change
			for _, s := range got {
				gotc = append(gotc, change{s.Up, s.Checks})
			}
			if fmt.Sprint(gotc) != fmt.Sprint(tc.want) {
				t.Fatalf("transitions (up, at check) %v; want %v", gotc, tc.want)
			}
			for _, s := range got {
				if s.Up && (s.Rises != tc.rise || s.Falls != 0 || !s.LastOK || s.LastError != "") {
					t.Errorf("up transition with %+v; want Rises %d, Falls 0, LastOK", s, tc.rise)
				}
				if !s.Up && (s.Falls != tc.fall || s.Rises != 0 || s.LastOK || !strings.Contains(s.LastError, "fake failure")) {
					t.Errorf("down transition with %+v; want Falls %d, Rises 0, the failure", s, tc.fall)
				}
			}
			if ups, downs := r.logsWith(") is up after"), r.logsWith(") is down: fake failure"); len(ups)+len(downs) != len(tc.want) {
				t.Errorf("logged %d ups and %d downs for %d transitions: %q", len(ups), len(downs), len(tc.want), append(ups, downs...))
			}
			if s, _ := m.State("k"); len(tc.want) > 0 && !s.Changed.Equal(got[len(got)-1].Changed) {
				t.Errorf("State.Changed %v; want the last transition's %v", s.Changed, got[len(got)-1].Changed)
			}
		})
	}
}

func TestLogLines(t *testing.T) {
	r := newRecorder(t)
	f := &fakeCheck{script: "TTFFF"}
	m, _ := fakeMonitor(r.options(), func(string, int) checker { return f })
	m.Set(map[string]Target{"svc/real": fakeTarget(10*time.Millisecond, 2, 3)}, nil)
	eventually(t, "down", func() bool { return len(r.changesOf("svc/real")) == 2 })
	m.Close()
	want := []string{
		"health: real 10.0.0.1:80 (svc/real) is up after 2 successes",
		"health: real 10.0.0.1:80 (svc/real) is down: fake failure 5 after 3 failures",
	}
	if got := r.logsWith("health: real"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged %q; want %q", got, want)
	}
}

func TestSetUnchangedKeepsState(t *testing.T) {
	r := newRecorder(t)
	m, builds := fakeMonitor(r.options(), func(string, int) checker { return &fakeCheck{script: "T"} })
	defer m.Close()
	tg := fakeTarget(10*time.Millisecond, 1, 1)
	tg.Check.Status = []int{200, 204}
	tg.Check.Command = []string{"check", "--fast"}
	m.Set(map[string]Target{"k": tg}, nil)
	eventually(t, "up and 3 checks", func() bool { s, _ := m.State("k"); return s.Up && s.Checks >= 3 })
	before, _ := m.State("k")

	// The same target, in new slices and a new map; the caller's old
	// slices are changed afterwards, which must not matter.
	same := tg
	same.Check.Status = []int{200, 204}
	same.Check.Command = []string{"check", "--fast"}
	m.Set(map[string]Target{"k": same}, always(false))
	tg.Check.Status[0] = 500

	after, _ := m.State("k")
	if !after.Up || after.Checks < before.Checks || !after.Changed.Equal(before.Changed) {
		t.Errorf("state after an unchanged Set: %+v; want it kept from %+v", after, before)
	}
	eventually(t, "more checks", func() bool { return checksOf(m, "k") >= before.Checks+3 })
	if s, _ := m.State("k"); !s.Changed.Equal(before.Changed) || !s.Up {
		t.Errorf("state %+v; Changed and Up should be kept from %+v", s, before)
	}
	if n := buildsOf(builds, "k"); n != 1 {
		t.Errorf("checker built %d times; an unchanged target keeps its own", n)
	}
	if c := r.changesOf("k"); len(c) != 1 {
		t.Errorf("%d transitions; want only the first up", len(c))
	}
}

func TestSetChangedResets(t *testing.T) {
	r := newRecorder(t)
	// The first checker succeeds; the one built for the changed target fails.
	m, builds := fakeMonitor(r.options(), func(_ string, build int) checker {
		if build == 1 {
			return &fakeCheck{script: "T"}
		}
		return &fakeCheck{script: "F"}
	})
	defer m.Close()
	tg := fakeTarget(10*time.Millisecond, 1, 1)
	m.Set(map[string]Target{"k": tg}, nil)
	eventually(t, "up and 5 checks", func() bool { s, _ := m.State("k"); return s.Up && s.Checks >= 5 })
	before, _ := m.State("k")

	changed := tg
	changed.Check.Rise = 2
	m.Set(map[string]Target{"k": changed}, always(false))
	after, _ := m.State("k")
	if after.Up || after.Checks >= before.Checks || !after.Changed.After(before.Changed) || after.Rises != 0 {
		t.Errorf("state after a changed Set: %+v; want a fresh one, down (from %+v)", after, before)
	}
	eventually(t, "3 checks of the new target", func() bool { return checksOf(m, "k") >= 3 })
	m.Close()
	if s, _ := m.State("k"); s.Up || s.LastOK || s.Falls < 3 {
		t.Errorf("state %+v; want the new checker's failures", s)
	}
	if n := buildsOf(builds, "k"); n != 2 {
		t.Errorf("checker built %d times; want 2", n)
	}
	// The only transition is the first target's up: the new one starts down
	// (up() said so) and stays down.
	if c := r.changesOf("k"); len(c) != 1 || !c[0].Up {
		t.Errorf("transitions %+v; want one, up", c)
	}
}

func TestSetRemovedStops(t *testing.T) {
	r := newRecorder(t)
	// a: up, fall 1, and its second check blocks until cancelled, then
	// fails — which would take it down if it were still wanted.
	a := &fakeCheck{script: "T"}
	aBlocked := &fakeCheck{block: true, begun: make(chan struct{}, 1)}
	b := &fakeCheck{script: "T"}
	m, _ := fakeMonitor(r.options(), func(key string, _ int) checker {
		if key == "b" {
			return b
		}
		return &switchCheck{first: a, then: aBlocked}
	})
	defer m.Close()
	iv := 10 * time.Millisecond
	m.Set(map[string]Target{"a": fakeTarget(iv, 1, 1), "b": fakeTarget(iv, 1, 1)}, always(true))
	select {
	case <-aBlocked.begun:
	case <-time.After(3 * time.Second):
		t.Fatal("a's blocking check never began")
	}

	start := time.Now()
	m.Set(map[string]Target{"b": fakeTarget(iv, 1, 1)}, always(true))
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("Set took %v with a check running: it must not wait for it", took)
	}
	if _, ok := m.State("a"); ok {
		t.Error("State of a removed key")
	}
	if _, ok := m.States()["a"]; ok {
		t.Error("States has a removed key")
	}
	na := a.calls.Load() + aBlocked.calls.Load()
	nb := b.calls.Load()
	time.Sleep(10 * iv)
	if n := a.calls.Load() + aBlocked.calls.Load(); n != na {
		t.Errorf("removed key checked %d more times", n-na)
	}
	if n := b.calls.Load(); n < nb+3 {
		t.Errorf("the remaining key checked %d times in %v; want it to go on", n-nb, 10*iv)
	}
	m.Close()
	if c := r.changesOf("a"); len(c) != 0 {
		t.Errorf("OnChange for a removed key: %+v", c)
	}
	// Set after Close does nothing.
	m.Set(map[string]Target{"c": fakeTarget(iv, 1, 1)}, nil)
	if _, ok := m.State("c"); ok {
		t.Error("Set after Close added a target")
	}
	assertNoLeaks(t)
}

// switchCheck runs first once, then then.
type switchCheck struct {
	first, then checker
	n           int
}

func (s *switchCheck) check(ctx context.Context) error {
	s.n++
	if s.n == 1 {
		return s.first.check(ctx)
	}
	return s.then.check(ctx)
}

func TestReaddedKeyStartsAfresh(t *testing.T) {
	r := newRecorder(t)
	// The checker of the re-added key fails once, then succeeds.
	m, builds := fakeMonitor(r.options(), func(_ string, build int) checker {
		if build == 1 {
			return &fakeCheck{script: "T"}
		}
		return &fakeCheck{script: "FT"}
	})
	defer m.Close()
	tg := fakeTarget(10*time.Millisecond, 1, 1)
	m.Set(map[string]Target{"k": tg}, nil)
	eventually(t, "up", func() bool { s, _ := m.State("k"); return s.Up && s.Checks >= 3 })
	before, _ := m.State("k")
	m.Set(nil, nil)
	if _, ok := m.State("k"); ok {
		t.Fatal("State of a removed key")
	}
	m.Set(map[string]Target{"k": tg}, nil)
	if s, _ := m.State("k"); s.Up || s.Checks > 1 || !s.Changed.After(before.Changed) {
		t.Errorf("re-added key: %+v; want a fresh state, down", s)
	}
	eventually(t, "up again", func() bool { return len(r.changesOf("k")) == 2 })
	if n := buildsOf(builds, "k"); n != 2 {
		t.Errorf("checker built %d times; want 2", n)
	}
}

func TestJitter(t *testing.T) {
	const n = 50
	first := make(chan time.Time, n)
	m, _ := fakeMonitor(Options{}, func(string, int) checker { return &fakeCheck{first: first} })
	defer m.Close()
	targets := make(map[string]Target, n)
	for i := range n {
		targets[fmt.Sprint("real", i)] = fakeTarget(time.Second, 1, 1)
	}
	start := time.Now()
	m.Set(targets, nil)
	var lo, hi time.Time
	for i := range n {
		select {
		case at := <-first:
			if i == 0 || at.Before(lo) {
				lo = at
			}
			if at.After(hi) {
				hi = at
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("only %d of %d targets checked within 3s", i, n)
		}
	}
	// 50 offsets uniform over 1s span about 0.96s; all within 300ms is a
	// chance of about 50 × 0.3^49.
	if spread := hi.Sub(lo); spread < 300*time.Millisecond {
		t.Errorf("first checks of %d targets spread over %v; want them spread over the 1s interval", n, spread)
	}
	if late := hi.Sub(start); late > time.Second+200*time.Millisecond {
		t.Errorf("a first check %v after Set; want within the 1s interval", late)
	}
	t.Logf("first checks from %v to %v after Set", lo.Sub(start), hi.Sub(start))
}

func TestMaxParallel(t *testing.T) {
	const targets, limit = 20, 3
	var inFlight, highWater atomic.Int64
	r := newRecorder(t)
	o := r.options()
	o.MaxParallel = limit
	var fakes sync.Map
	m, _ := fakeMonitor(o, func(key string, _ int) checker {
		f := &fakeCheck{delay: 15 * time.Millisecond, inFlight: &inFlight, highWater: &highWater}
		fakes.Store(key, f)
		return f
	})
	defer m.Close()
	iv := 20 * time.Millisecond
	set := make(map[string]Target, targets)
	for i := range targets {
		set[fmt.Sprint("real", i)] = fakeTarget(iv, 1, 1)
	}
	start := time.Now()
	m.Set(set, nil)
	time.Sleep(300 * time.Millisecond)
	m.Close()
	elapsed := time.Since(start)

	if hw := highWater.Load(); hw != limit {
		t.Errorf("at most %d checks ran at once; want exactly MaxParallel = %d", hw, limit)
	}
	if len(r.logsWith("check skipped")) == 0 {
		t.Error("no check was skipped with 20 targets wanting 15 slots and 3 to share")
	}
	// A skipped check is not made up for: no target ran more than one
	// check per Interval, and none ran two at once.
	maxPer := int64(elapsed/iv) + 2
	fakes.Range(func(key, v any) bool {
		f := v.(*fakeCheck)
		if n := f.calls.Load(); n > maxPer {
			t.Errorf("%s checked %d times in %v at Interval %v", key, n, elapsed, iv)
		}
		if n := f.sameKeyMax.Load(); n > 1 {
			t.Errorf("%s had %d checks at once", key, n)
		}
		return true
	})
	assertNoLeaks(t)
}

func TestCloseCancelsChecks(t *testing.T) {
	begun := make(chan struct{}, 10)
	r := newRecorder(t)
	m, _ := fakeMonitor(r.options(), func(string, int) checker { return &fakeCheck{block: true, begun: begun} })
	set := make(map[string]Target)
	for i := range 5 {
		// Timeout is 10s: Close must cancel the checks, not wait them out.
		tg := fakeTarget(10*time.Second, 1, 1)
		set[fmt.Sprint("real", i)] = tg
	}
	m.Set(set, always(true))
	// Give the first checks (at up to 10s of jitter) no time: Close has
	// to stop loops waiting for their first check as well as one running.
	start := time.Now()
	m.Close()
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Close took %v", took)
	}
	m.Close() // again: a no-op
	assertNoLeaks(t)
	for key := range set {
		if len(r.changesOf(key)) != 0 {
			t.Errorf("OnChange for %s after Close", key)
		}
	}
	if len(m.States()) != 5 {
		t.Errorf("States after Close: %d targets; want the last 5", len(m.States()))
	}
}

func TestCloseCancelsRunningCheck(t *testing.T) {
	f := &fakeCheck{block: true, begun: make(chan struct{}, 1)}
	m, _ := fakeMonitor(Options{}, func(string, int) checker { return f })
	tg := fakeTarget(20*time.Millisecond, 1, 1)
	tg.Check.Timeout = 20 * time.Millisecond
	m.Set(map[string]Target{"k": tg}, always(true))
	<-f.begun
	start := time.Now()
	m.Close()
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("Close took %v with a check running", took)
	}
	assertNoLeaks(t)
}

// TestOnChangeSerialPerKey replaces a target's Config over and over while
// its checks keep changing state: the old loop's last OnChange and the new
// loop's first must never overlap (the recorder fails the test if they do).
func TestOnChangeSerialPerKey(t *testing.T) {
	r := newRecorder(t)
	m, _ := fakeMonitor(r.options(), func(string, int) checker { return &fakeCheck{script: "TF", cycle: true} })
	defer m.Close()
	for i := range 30 {
		tg := fakeTarget(time.Duration(2+i%3)*time.Millisecond, 1, 1)
		m.Set(map[string]Target{"k": tg}, always(i%2 == 0))
		time.Sleep(5 * time.Millisecond)
	}
	m.Close()
	if len(r.changesOf("k")) == 0 {
		t.Error("no transitions at all")
	}
	assertNoLeaks(t)
}

// TestMonitorRealChecks runs the Monitor with its real checkers: a TCP
// real that goes away, and an http check whose regexp does not compile.
func TestMonitorRealChecks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	r := newRecorder(t)
	m := NewMonitor(r.options())
	defer m.Close()
	addr := addrOf(t, l.Addr())
	cfg := Config{Type: "tcp", Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, Rise: 2, Fall: 2}
	bad := Config{Type: "http", Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, Rise: 1, Fall: 1, Expect: "("}
	m.Set(map[string]Target{"tcp": {addr, cfg}, "bad": {addr, bad}}, func(key string) bool { return key == "bad" })

	eventually(t, "tcp up", func() bool { return len(r.changesOf("tcp")) == 1 })
	l.Close()
	eventually(t, "tcp down", func() bool { return len(r.changesOf("tcp")) == 2 })
	if c := r.changesOf("tcp"); !c[0].Up || c[1].Up || !strings.Contains(c[1].LastError, "connection refused") {
		t.Errorf("tcp transitions %+v; want up, then down with connection refused", c)
	}
	eventually(t, "bad down", func() bool { return len(r.changesOf("bad")) == 1 })
	if s, _ := m.State("bad"); s.Up || !strings.Contains(s.LastError, "error parsing regexp") {
		t.Errorf("bad regexp: state %+v; want down with the compile error", s)
	}
}
