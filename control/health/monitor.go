package health

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// defaultMaxParallel bounds the checks running at once when
// Options.MaxParallel is 0. Network checks take a round trip, so a few
// hundred reals checked every few seconds never wait for a slot; exec
// checks fork, and 32 scripts at once is about what a director can run
// without the checks themselves disturbing it.
const defaultMaxParallel = 32

// State is what the monitor knows of a target.
type State struct {
	Up        bool      // the hysteresis result
	LastOK    bool      // the last check's result
	LastError string    // the last failure's reason ("" after a success)
	Changed   time.Time // when Up last changed (or when the target was added)
	Checks    uint64    // checks run
	Rises     int       // consecutive successes so far
	Falls     int       // consecutive failures so far
}

// Options configure a Monitor.
type Options struct {
	MaxParallel int                              // bound on checks running at once (default 32)
	OnChange    func(key string, s State)        // called once per Up transition, from the monitor's goroutines, never concurrently for one key; may be nil
	Logf        func(format string, args ...any) // may be nil
}

// Monitor checks a set of targets and tracks whether each is up. Its
// methods are safe for concurrent use.
//
// OnChange runs on the goroutine of the target that changed and delays
// that target's next check while it runs; it may call State, States and
// Set, but not Close. A transition decided just before a Set removed or
// replaced its key may still be reported after Set returns; none is
// reported for a key once Set has removed it and its running check has
// ended, or after Close returns.
type Monitor struct {
	opts Options
	sem  chan struct{} // a slot per running check

	// newChecker builds the checker of a target; tests replace it.
	newChecker func(key string, t Target, c *compiler) checker

	setMu sync.Mutex // serialises Set and Close
	wg    sync.WaitGroup

	mu      sync.Mutex // guards what follows and every entry's state
	closed  bool
	entries map[string]*entry
	notify  map[string]*keyLock
}

// entry is one target being checked, from the Set that added it to the
// Set that removes or changes it.
type entry struct {
	key    string
	target Target // as given, for comparison
	cfg    Config // sane(target.Check)
	chk    checker
	ctx    context.Context // cancelled when the entry is removed
	cancel context.CancelFunc
	notify *keyLock
	state  State // guarded by Monitor.mu

	skipping bool // the last due check found no slot; run goroutine only
}

// keyLock serialises OnChange for one key across the entries that have
// had that key (a changed target's old check may still be finishing).
type keyLock struct {
	sync.Mutex
	refs int // entries holding it; guarded by Monitor.mu
}

// NewMonitor returns a Monitor with no targets.
func NewMonitor(o Options) *Monitor {
	return newMonitor(o, func(_ string, t Target, c *compiler) checker { return compile(t, c) })
}

func newMonitor(o Options, newChecker func(string, Target, *compiler) checker) *Monitor {
	if o.MaxParallel <= 0 {
		o.MaxParallel = defaultMaxParallel
	}
	return &Monitor{
		opts:       o,
		sem:        make(chan struct{}, o.MaxParallel),
		newChecker: newChecker,
		entries:    make(map[string]*entry),
		notify:     make(map[string]*keyLock),
	}
}

// Set replaces the targets (keyed by an opaque string the caller chooses). A key whose
// Target (address and Config, compared by value incl. slices) is unchanged keeps its state,
// history and schedule. A new or changed key starts with Up = up(key) (the caller decides:
// "alpha" mode starts down; a nil up starts everything down) and its first check at a random
// offset in [0, Interval) (jitter), and a removed key stops (no OnChange for it). Set never
// blocks on running checks: those of removed and changed keys are cancelled and their
// results dropped. After Close, Set does nothing.
func (m *Monitor) Set(targets map[string]Target, up func(key string) bool) {
	m.setMu.Lock()
	defer m.setMu.Unlock()

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	var fresh []string
	for key, t := range targets {
		if e, ok := m.entries[key]; !ok || !sameTarget(e.target, t) {
			fresh = append(fresh, key)
		}
	}
	m.mu.Unlock()

	// Compile and ask up outside the lock: up is the caller's and may call
	// State; only Set changes the entries, and setMu keeps others out.
	var c compiler
	now := time.Now()
	news := make(map[string]*entry, len(fresh))
	for _, key := range fresh {
		t := cloneTarget(targets[key])
		e := &entry{
			key:    key,
			target: t,
			cfg:    sane(t.Check),
			chk:    m.newChecker(key, t, &c),
			state:  State{Up: up != nil && up(key), Changed: now},
		}
		e.ctx, e.cancel = context.WithCancel(context.Background())
		news[key] = e
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for key, e := range m.entries {
		if _, keep := targets[key]; keep && news[key] == nil {
			continue
		}
		e.cancel()
		delete(m.entries, key)
	}
	for key, e := range news {
		e.notify = m.holdKeyLock(key)
		m.entries[key] = e
		m.wg.Add(1)
		go m.run(e, rand.N(e.cfg.Interval))
	}
}

// State returns what the monitor knows of key.
func (m *Monitor) State(key string) (State, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok {
		return State{}, false
	}
	return e.state, true
}

// States returns a copy of the state of every target.
func (m *Monitor) States() map[string]State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := make(map[string]State, len(m.entries))
	for key, e := range m.entries {
		s[key] = e.state
	}
	return s
}

// Close stops every target and waits for their goroutines: running checks
// are cancelled, so it waits at most about the longest Timeout (and for an
// OnChange in progress). State and States still answer with the targets'
// last states. Close may be called more than once.
func (m *Monitor) Close() {
	m.setMu.Lock()
	m.mu.Lock()
	m.closed = true
	for _, e := range m.entries {
		e.cancel()
	}
	m.mu.Unlock()
	m.setMu.Unlock()
	m.wg.Wait()
}

// run is the check loop of one entry, its goroutine, owned by the Monitor:
// it checks e every Interval, the first after first, and ends when e.ctx
// is cancelled by Set or Close.
func (m *Monitor) run(e *entry, first time.Duration) {
	defer m.wg.Done()
	defer m.dropKeyLock(e)

	iv := e.cfg.Interval
	next := time.Now().Add(first)
	timer := time.NewTimer(first)
	defer timer.Stop()
	due := false // the timer has already fired for next
	for {
		if !due {
			select {
			case <-e.ctx.Done():
				return
			case <-timer.C:
			}
		}
		due = false
		now := time.Now()
		// After a stall (a suspended host, a long OnChange) resume the
		// rhythm rather than catch up in a burst.
		next = next.Add(iv)
		for !next.After(now) {
			next = next.Add(iv)
		}
		timer.Reset(next.Sub(now))

		select {
		case m.sem <- struct{}{}:
		case <-e.ctx.Done():
			return
		case <-timer.C:
			// No slot before the next check is due: skip this one.
			if !e.skipping {
				m.logf("health: real %s (%s): check skipped: %d checks already running", e.target.Addr, e.key, cap(m.sem))
				e.skipping = true
			}
			due = true
			continue
		}
		e.skipping = false
		err := runCheck(e.ctx, e.chk, e.cfg.Timeout)
		<-m.sem
		m.record(e, err)
	}
}

// record applies the result of one check of e and reports a transition.
func (m *Monitor) record(e *entry, err error) {
	e.notify.Lock()
	defer e.notify.Unlock()

	m.mu.Lock()
	if e.ctx.Err() != nil { // removed, changed or closed while checking
		m.mu.Unlock()
		return
	}
	s := &e.state
	s.Checks++
	changed := false
	if err == nil {
		s.LastOK, s.LastError = true, ""
		s.Rises, s.Falls = s.Rises+1, 0
		if !s.Up && s.Rises >= e.cfg.Rise {
			s.Up, changed = true, true
		}
	} else {
		s.LastOK, s.LastError = false, err.Error()
		s.Rises, s.Falls = 0, s.Falls+1
		if s.Up && s.Falls >= e.cfg.Fall {
			s.Up, changed = false, true
		}
	}
	if changed {
		s.Changed = time.Now()
	}
	snap := *s
	m.mu.Unlock()

	if !changed {
		return
	}
	if snap.Up {
		m.logf("health: real %s (%s) is up after %d %s", e.target.Addr, e.key, snap.Rises, plural(snap.Rises, "success", "successes"))
	} else {
		m.logf("health: real %s (%s) is down: %s after %d %s", e.target.Addr, e.key, snap.LastError, snap.Falls, plural(snap.Falls, "failure", "failures"))
	}
	if m.opts.OnChange != nil {
		m.opts.OnChange(e.key, snap)
	}
}

// holdKeyLock returns the OnChange lock of key, shared with any entry of
// the same key whose goroutine has not ended yet. m.mu is held.
func (m *Monitor) holdKeyLock(key string) *keyLock {
	kl := m.notify[key]
	if kl == nil {
		kl = new(keyLock)
		m.notify[key] = kl
	}
	kl.refs++
	return kl
}

// dropKeyLock releases e's hold on its key's OnChange lock.
func (m *Monitor) dropKeyLock(e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.notify.refs--; e.notify.refs == 0 {
		delete(m.notify, e.key)
	}
}

func (m *Monitor) logf(format string, args ...any) {
	if m.opts.Logf != nil {
		m.opts.Logf(format, args...)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
