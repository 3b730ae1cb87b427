package schedule

import (
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// Reference models of ip_vs_lblc.c and ip_vs_lblcr.c with the kernel's
// unbounded tables (Go maps and slices) and expiry at lookup.

func modelAvail(d []Dest, i int) bool { return d[i].Weight > 0 && !d[i].Counters.Overloaded() }

func modelOverhead(d []Dest, i int) *big.Rat {
	c := d[i].Counters
	return big.NewRat(c.Active.Load()*256+c.Inactive.Load(), int64(d[i].Weight))
}

// modelWLC is __ip_vs_lblc_schedule: the least overhead/weight among the
// available reals, first on ties.
func modelWLC(d []Dest) int {
	best := -1
	for i := range d {
		if modelAvail(d, i) && (best < 0 || modelOverhead(d, i).Cmp(modelOverhead(d, best)) < 0) {
			best = i
		}
	}
	return best
}

// modelIsOverloaded is is_overloaded of ip_vs_lblc.c.
func modelIsOverloaded(d []Dest, i int) bool {
	if d[i].Counters.Active.Load() <= int64(d[i].Weight) {
		return false
	}
	for m := range d {
		if d[m].Counters.Active.Load()*2 < int64(d[m].Weight) {
			return true
		}
	}
	return false
}

type lblcModel struct {
	expire int64
	m      map[[16]byte]*struct {
		dest    int
		lastuse int64
	}
}

func (k *lblcModel) pick(d []Dest, f *Flow) int {
	en := k.m[f.Dst]
	if en != nil && f.Now-en.lastuse >= k.expire {
		delete(k.m, f.Dst) // the periodic full check's work
		en = nil
	}
	if en != nil {
		en.lastuse = f.Now
		if d[en.dest].Weight > 0 && !modelIsOverloaded(d, en.dest) {
			return en.dest
		}
	}
	dest := modelWLC(d)
	if dest < 0 {
		return -1
	}
	if en != nil && en.dest == dest {
		return dest
	}
	k.m[f.Dst] = &struct {
		dest    int
		lastuse int64
	}{dest, f.Now}
	return dest
}

type lblcrModelEntry struct {
	set              []int // newest first, as list_add_rcu leaves it
	lastuse, lastmod int64
}

type lblcrModel struct {
	expire int64
	m      map[[16]byte]*lblcrModelEntry
}

// setMin is ip_vs_dest_set_min.
func (e *lblcrModelEntry) setMin(d []Dest) int {
	best := -1
	for _, i := range e.set {
		if modelAvail(d, i) && (best < 0 || modelOverhead(d, i).Cmp(modelOverhead(d, best)) < 0) {
			best = i
		}
	}
	return best
}

// setMax is ip_vs_dest_set_max: overloaded members count.
func (e *lblcrModelEntry) setMax(d []Dest) int {
	best := -1
	for _, i := range e.set {
		if d[i].Weight > 0 && (best < 0 || modelOverhead(d, i).Cmp(modelOverhead(d, best)) > 0) {
			best = i
		}
	}
	return best
}

func (k *lblcrModel) pick(d []Dest, f *Flow) int {
	now := f.Now
	en := k.m[f.Dst]
	if en != nil && now-en.lastuse >= k.expire {
		delete(k.m, f.Dst)
		en = nil
	}
	if en == nil {
		dest := modelWLC(d)
		if dest >= 0 {
			k.m[f.Dst] = &lblcrModelEntry{set: []int{dest}, lastuse: now, lastmod: now}
		}
		return dest
	}
	en.lastuse = now
	dest := en.setMin(d)
	if len(en.set) > 1 && now > en.lastmod+k.expire {
		if m := en.setMax(d); m >= 0 {
			en.set = slices.DeleteFunc(en.set, func(x int) bool { return x == m })
			en.lastmod = now
		}
	}
	if dest >= 0 && !modelIsOverloaded(d, dest) {
		return dest
	}
	dest = modelWLC(d)
	if dest < 0 {
		return -1
	}
	if !slices.Contains(en.set, dest) {
		en.set = append([]int{dest}, en.set...)
		en.lastmod = now
	}
	return dest
}

func addr4(s string) [16]byte { return netip.MustParseAddr("::ffff:" + s).As16() }

// TestLocalityAgainstKernel runs lblc and lblcr beside the models on
// seeded random scripts: four destinations (so that no entry is evicted),
// counts that move, reals overloaded and relieved, time passing now and
// then beyond the expiry.
func TestLocalityAgainstKernel(t *testing.T) {
	const expire = 100
	r := rand.New(rand.NewPCG(71, 72))
	dsts := [][16]byte{addr4("10.0.0.1"), addr4("10.0.0.2"), addr4("198.51.100.9"), netip.MustParseAddr("2001:db8::1").As16()}
	for iter := range 200 {
		w := randWeights(r, 1+r.IntN(6), 4)
		d := mkDests(w...)
		lblc := newLBLC(d, expire)
		lblcr := newLBLCR(d, expire)
		ml := &lblcModel{expire: expire, m: map[[16]byte]*struct {
			dest    int
			lastuse int64
		}{}}
		mr := &lblcrModel{expire: expire, m: map[[16]byte]*lblcrModelEntry{}}
		var now int64
		for k := range 300 {
			switch r.IntN(10) {
			case 0:
				now += expire + int64(r.IntN(50)) // maybe everything expires
			case 1, 2:
				c := d[r.IntN(len(d))].Counters
				if c.Overloaded() {
					c.SetThresholds(0, 0)
				} else if r.IntN(3) == 0 {
					overload(c)
				}
			default:
				now += int64(r.IntN(20))
			}
			f := Flow{Dst: dsts[r.IntN(len(dsts))], Now: now}
			gl, wl := lblc.Pick(d, &f), ml.pick(d, &f)
			if gl != wl {
				t.Fatalf("iter %d step %d: lblc %v = %d, kernel %d", iter, k, w, gl, wl)
			}
			gr, wr := lblcr.Pick(d, &f), mr.pick(d, &f)
			if gr != wr {
				t.Fatalf("iter %d step %d: lblcr %v = %d, kernel %d", iter, k, w, gr, wr)
			}
			// The connection lives a while: the counts move.
			if gl >= 0 {
				d[gl].Counters.Active.Add(1)
			}
			if gr >= 0 {
				d[gr].Counters.Active.Add(1)
			}
			if r.IntN(2) == 0 {
				if c := d[r.IntN(len(d))].Counters; c.Active.Load() > 0 {
					c.Active.Add(-1)
					c.Inactive.Add(1)
				}
			}
		}
	}
}

// TestLBLC walks one destination through the kernel rule's cases.
func TestLBLC(t *testing.T) {
	d := mkDests(2, 2, 2)
	s := mustNewOpts(t, "lblc", d, Options{LBLCExpire: time.Minute})
	f := &Flow{Dst: addr4("10.1.1.1")}
	step := func(what string, want int) {
		t.Helper()
		if got := s.Pick(d, f); got != want {
			t.Fatalf("%s: lblc = %d, want %d", what, got, want)
		}
	}
	step("first pick: wlc's choice", 0)
	d[0].Counters.Active.Store(2) // at its weight; wlc would now pick 1
	step("same destination, same real", 0)
	d[0].Counters.Active.Store(3) // over its weight, and real 1 is idle
	step("overloaded in lblc's sense: reassigned", 1)
	d[0].Counters.Active.Store(0)
	step("the entry now names real 1", 1)
	d[0].Counters.Active.Store(2)
	d[1].Counters.Active.Store(3) // over its weight 2
	d[2].Counters.Active.Store(1) // half its weight: 1*2 < 2 is false
	step("over its weight with no real under half its weight: kept", 1)
	overload(d[1].Counters)
	step("threshold overload does not move a cached real (as in the kernel)", 1)
	d[1].Counters.SetThresholds(0, 0)
	f.Now += int64(time.Minute) - 1
	step("used just under the expiry ago: kept", 1)
	f.Now += int64(time.Minute)
	for i := range d {
		d[i].Counters.Active.Store(0)
	}
	step("unused for the expiry: absent, wlc's choice again", 0)
}

// sameSet returns n distinct IPv4 destinations that share a cache set.
func sameSet(n int) [][16]byte {
	var out [][16]byte
	want := localitySet(new(addr4("10.0.0.0")))
	for v := uint32(0); len(out) < n; v++ {
		a := netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)}).As16()
		if localitySet(&a) == want {
			out = append(out, a)
		}
	}
	return out
}

// TestLocalityEviction: a fifth destination in a full set replaces the
// least recently used entry, for lblc and lblcr alike.
func TestLocalityEviction(t *testing.T) {
	for _, name := range []string{"lblc", "lblcr"} {
		d := mkDests(1, 1, 1, 1, 1)
		s := mustNew(t, name, d)
		addrs := sameSet(localityWays + 1)
		// Destination k is cached on real k: real k is the least loaded
		// when it is first seen.
		for k := range localityWays {
			for i := range d {
				d[i].Counters.Active.Store(1)
			}
			d[k].Counters.Active.Store(0)
			if got := s.Pick(d, &Flow{Dst: addrs[k], Now: int64(10 + k)}); got != k {
				t.Fatalf("%s: destination %d went to %d", name, k, got)
			}
		}
		// Touch all but destination 1, then bring a fifth.
		for _, k := range []int{0, 2, 3} {
			s.Pick(d, &Flow{Dst: addrs[k], Now: 20})
		}
		for i := range d {
			d[i].Counters.Active.Store(1)
		}
		d[4].Counters.Active.Store(0)
		if got := s.Pick(d, &Flow{Dst: addrs[4], Now: 21}); got != 4 {
			t.Fatalf("%s: fifth destination went to %d", name, got)
		}
		// Now every real is equally loaded: a cached destination keeps its
		// real, the evicted one (asked last, as its new entry evicts
		// another) gets wlc's first choice, real 0.
		d[4].Counters.Active.Store(1)
		for _, k := range []int{0, 2, 3, 4, 1} {
			want := k
			if k == 1 {
				want = 0
			}
			if got := s.Pick(d, &Flow{Dst: addrs[k], Now: 22}); got != want {
				t.Errorf("%s: after eviction destination %d went to %d, want %d", name, k, got, want)
			}
		}
	}
}

// TestLBLCRSet: the set grows while its best real is overloaded, shrinks
// by its most loaded real once unchanged for the expiry, and holds at most
// lblcrSetMax reals.
func TestLBLCRSet(t *testing.T) {
	const expire = int64(time.Minute)
	d := mkDests(slices.Repeat([]int32{2}, lblcrSetMax+2)...)
	s := newLBLCR(d, time.Duration(expire))
	f := &Flow{Dst: addr4("10.9.9.9")}
	members := func() []int32 {
		set := &s.sets[localitySet(&f.Dst)]
		e := set.lookup(&f.Dst, f.Now, expire)
		if e == nil {
			return nil
		}
		return slices.Clone(e.members[:e.size])
	}
	if got := s.Pick(d, f); got != 0 {
		t.Fatalf("first pick = %d", got)
	}
	// Each real, once picked, is over its weight while later ones are
	// idle: the next pick adds the next real.
	for k := 1; k < lblcrSetMax; k++ {
		d[k-1].Counters.Active.Store(3)
		f.Now++
		if got := s.Pick(d, f); got != k {
			t.Fatalf("growth step %d: pick = %d", k, got)
		}
	}
	if m := members(); len(m) != lblcrSetMax || m[0] != lblcrSetMax-1 {
		t.Fatalf("set after growth = %v, want %d reals, newest first", m, lblcrSetMax)
	}
	// Full: real 8 joins, the most loaded member goes. Make real 3 the
	// most loaded.
	d[lblcrSetMax-1].Counters.Active.Store(3)
	d[3].Counters.Active.Store(4)
	f.Now++
	if got := s.Pick(d, f); got != lblcrSetMax {
		t.Fatalf("pick on a full set = %d, want %d", got, lblcrSetMax)
	}
	m := members()
	if len(m) != lblcrSetMax || m[0] != lblcrSetMax || slices.Contains(m, 3) {
		t.Fatalf("full set after insert = %v: want %d reals, real %d first, real 3 dropped", m, lblcrSetMax, lblcrSetMax)
	}
	// Quiet: the entry stays in use but the set does not change. After
	// the expiry each pick drops the most loaded member, down to one.
	for i := range d {
		d[i].Counters.Active.Store(int64(i % 3)) // none over its weight
	}
	f.Now += expire / 2
	s.Pick(d, f)
	f.Now += expire/2 + 1
	before := len(members())
	s.Pick(d, f)
	if after := len(members()); after != before-1 {
		t.Fatalf("after the expiry: set of %d became %d, want one fewer", before, after)
	}
	for range 2 * lblcrSetMax {
		f.Now += expire + 1
		s.Pick(d, f)
	}
	if got := members(); len(got) != 1 {
		t.Errorf("after many expiries the set is %v, want one real", got)
	}
}
