package conntrack

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"Sizeof(Key)", unsafe.Sizeof(Key{}), 40},
		{"Sizeof(Entry)", unsafe.Sizeof(Entry{}), 96},
		{"Alignof(Entry)", unsafe.Alignof(Entry{}), 8},
		{"Offsetof(Entry.Expires)", unsafe.Offsetof(Entry{}.Expires), 88},
		{"Sizeof(slot)", unsafe.Sizeof(slot{}), 8},
		{"Sizeof(item)", unsafe.Sizeof(item{}), 192},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestAddr(t *testing.T) {
	a := AddrFrom4([4]byte{192, 0, 2, 7})
	want := Addr{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 7}
	if a != want {
		t.Errorf("AddrFrom4 = %x, want %x", a, want)
	}
	if got := a.As4(); got != [4]byte{192, 0, 2, 7} {
		t.Errorf("As4 = %v", got)
	}
}

func TestKeyEqualityIgnoresPadding(t *testing.T) {
	a := Key{SrcPort: 1, Proto: 6}
	b := a
	*(*byte)(unsafe.Add(unsafe.Pointer(&b), 37)) = 0xAA // the blank padding
	seed := [5]uint64{1, 2, 3, 4, 5}
	if a != b || hashKey(&a, &seed) != hashKey(&b, &seed) {
		t.Error("padding bytes take part in equality or hashing")
	}
}

// flowKeys returns the two keys of connection i: client→VIP and its NAT
// reply real→client, all distinct over i.
func flowKeys(i uint32) (fwd, rev Key) {
	client := AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	vip := AddrFrom4([4]byte{192, 0, 2, 1})
	real := AddrFrom4([4]byte{172, 16, 0, byte(i % 7)})
	fwd = Key{Src: client, Dst: vip, SrcPort: uint16(1024 + i%50000), DstPort: 80, Proto: protoTCP}
	rev = Key{Src: real, Dst: client, SrcPort: 8080, DstPort: fwd.SrcPort, Proto: protoTCP}
	return fwd, rev
}

// model is the reference a shard is checked against.
type model struct {
	keys map[Key]mref
	ents map[uint32]*ment
}

type mref struct {
	id    uint32
	reply bool
}

type ment struct {
	fwd, rev Key
	two      bool
	e        Entry
}

func (m *model) check(t *testing.T, s *Shard, where string) {
	t.Helper()
	if s.Len() != len(m.ents) {
		t.Fatalf("%s: Len = %d, model %d", where, s.Len(), len(m.ents))
	}
	for id, me := range m.ents {
		e, reply := s.Lookup(&me.fwd)
		if e == nil || reply || *e != me.e {
			t.Fatalf("%s: Lookup(fwd of %d) = %+v, %v; want %+v", where, id, e, reply, me.e)
		}
		if me.two {
			e, reply := s.Lookup(&me.rev)
			if e == nil || !reply || *e != me.e {
				t.Fatalf("%s: Lookup(rev of %d) = %+v, %v", where, id, e, reply)
			}
		}
	}
	dump := s.Dump()
	if len(dump) != len(m.ents) {
		t.Fatalf("%s: Dump has %d entries, model %d", where, len(dump), len(m.ents))
	}
	for _, e := range dump {
		if me := m.ents[e.RealID]; me == nil || me.e != e {
			t.Fatalf("%s: Dump has %+v, model %+v", where, e, me)
		}
	}
	if s.used*loadDen > len(s.slots)*loadNum {
		t.Fatalf("%s: load %d/%d over the limit", where, s.used, len(s.slots))
	}
}

// randKey draws from a small space so that inserts collide with live keys.
func randKey(r *rand.Rand, space int) Key {
	k := Key{Proto: protoTCP, SrcPort: uint16(r.IntN(space)), DstPort: uint16(r.IntN(4))}
	k.Src = AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(4))})
	k.Dst = AddrFrom4([4]byte{10, 0, 1, byte(r.IntN(2))})
	if r.IntN(8) == 0 {
		k.Src = Addr{0: 0x20, 1: 0x01, 15: byte(r.IntN(4))}
	}
	if r.IntN(2) == 0 {
		k.Proto = protoUDP
	}
	return k
}

// TestShardAgainstModel runs seeded random insert/lookup/delete/expire
// sequences, in both directions, against a Go map model.
func TestShardAgainstModel(t *testing.T) {
	for _, capacity := range []int{1, 3, 40, 700, 5000} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("cap%d/seed%d", capacity, seed), func(t *testing.T) {
				r := rand.New(rand.NewPCG(seed, uint64(capacity)))
				space := max(8, capacity/2)
				s := NewShard(capacity)
				for i := range s.seed { // reproducible slot layouts
					s.seed[i] = r.Uint64()
				}
				m := &model{keys: map[Key]mref{}, ents: map[uint32]*ment{}}
				var nextID uint32
				ops := 20 * capacity
				ops = min(max(ops, 3000), 60000)
				checkEvery := max(97, capacity/4) // a check costs O(len)
				maxLen := 0
				for op := range ops {
					switch x := r.IntN(100); {
					case x < 45: // insert
						fwd, rev := randKey(r, space), randKey(r, space)
						var revp *Key
						switch r.IntN(8) {
						case 0: // keyed by fwd only
						case 1:
							revp = &fwd
						default:
							revp = &rev
						}
						two := revp != nil && *revp != fwd
						nextID++
						e := Entry{RealID: nextID, Expires: r.Int64N(100), Proto: fwd.Proto, RPort: uint16(op)}
						_, fex := m.keys[fwd]
						_, rex := m.keys[rev]
						wantOK := len(m.ents) < capacity && !fex && !(two && rex)
						p, ok := s.Insert(&fwd, revp, &e)
						if ok != wantOK {
							t.Fatalf("op %d: Insert ok = %v, want %v (len %d)", op, ok, wantOK, len(m.ents))
						}
						if !ok {
							if p != nil {
								t.Fatalf("op %d: failed Insert returned %p", op, p)
							}
							continue
						}
						if *p != e {
							t.Fatalf("op %d: Insert stored %+v", op, *p)
						}
						m.ents[nextID] = &ment{fwd: fwd, rev: rev, two: two, e: e}
						m.keys[fwd] = mref{nextID, false}
						if two {
							m.keys[rev] = mref{nextID, true}
						}
					case x < 75: // lookup
						k := randKey(r, space)
						e, reply := s.Lookup(&k)
						want, ok := m.keys[k]
						if ok != (e != nil) || (ok && (e.RealID != want.id || reply != want.reply)) {
							t.Fatalf("op %d: Lookup = %+v, %v; model %+v, %v", op, e, reply, want, ok)
						}
					case x < 90: // delete, found by either key
						k := randKey(r, space)
						e, _ := s.Lookup(&k)
						if e == nil {
							continue
						}
						me := m.ents[e.RealID]
						s.Delete(e)
						delete(m.ents, e.RealID)
						delete(m.keys, me.fwd)
						if me.two {
							delete(m.keys, me.rev)
						}
					default: // expire
						now, scan := r.Int64N(100), 1+r.IntN(20)
						var gone []uint32
						n := s.Expire(now, scan, func(e *Entry) {
							if e.Expires > now {
								t.Fatalf("op %d: Expire(%d) removes %+v", op, now, *e)
							}
							gone = append(gone, e.RealID)
						})
						if n != len(gone) || n > scan {
							t.Fatalf("op %d: Expire = %d, fn saw %d, scan %d", op, n, len(gone), scan)
						}
						for _, id := range gone {
							me := m.ents[id]
							if me == nil {
								t.Fatalf("op %d: Expire removed unknown %d", op, id)
							}
							delete(m.ents, id)
							delete(m.keys, me.fwd)
							if me.two {
								delete(m.keys, me.rev)
							}
						}
					}
					maxLen = max(maxLen, s.Len())
					if op%checkEvery == 0 {
						m.check(t, s, fmt.Sprintf("op %d", op))
					}
				}
				m.check(t, s, "end")
				if capacity > initialEntries && maxLen <= initialEntries {
					t.Errorf("the shard never grew: at most %d entries", maxLen)
				}
				if maxLen < capacity && capacity <= 40 {
					t.Errorf("the shard never filled: at most %d of %d entries", maxLen, capacity)
				}
				t.Logf("at most %d entries, %d slots", maxLen, len(s.slots))
			})
		}
	}
}

func TestGrowthAndFull(t *testing.T) {
	const n = 100_000
	s := NewShard(n)
	if s.Cap() != n {
		t.Fatalf("Cap = %d", s.Cap())
	}
	slots0, items0 := len(s.slots), cap(s.items)
	for i := range uint32(n) {
		fwd, rev := flowKeys(i)
		if _, ok := s.Insert(&fwd, &rev, &Entry{RealID: i}); !ok {
			t.Fatalf("Insert %d failed", i)
		}
	}
	if len(s.slots) <= slots0 || cap(s.items) <= items0 {
		t.Errorf("did not grow: slots %d→%d, items %d→%d", slots0, len(s.slots), items0, cap(s.items))
	}
	if len(s.slots) != s.maxSlots || cap(s.items) != n {
		t.Errorf("full shard has %d slots (max %d), %d items", len(s.slots), s.maxSlots, cap(s.items))
	}
	if s.Len() != n {
		t.Fatalf("Len = %d", s.Len())
	}
	for i := range uint32(n) {
		fwd, rev := flowKeys(i)
		if e, reply := s.Lookup(&fwd); e == nil || reply || e.RealID != i {
			t.Fatalf("after growth Lookup(fwd %d) = %v, %v", i, e, reply)
		}
		if e, reply := s.Lookup(&rev); e == nil || !reply || e.RealID != i {
			t.Fatalf("after growth Lookup(rev %d) = %v, %v", i, e, reply)
		}
	}
	extraF, extraR := flowKeys(n)
	if e, ok := s.Insert(&extraF, &extraR, &Entry{}); ok || e != nil {
		t.Fatal("full shard accepted an insert")
	}
	fwd0, _ := flowKeys(0)
	e, _ := s.Lookup(&fwd0)
	s.Delete(e)
	if _, ok := s.Insert(&extraF, &extraR, &Entry{RealID: n}); !ok {
		t.Fatal("insert after a delete from a full shard failed")
	}
	if e, _ := s.Lookup(&fwd0); e != nil {
		t.Fatal("deleted entry still found")
	}
}

func TestInsertDuplicateAndSingleKey(t *testing.T) {
	s := NewShard(10)
	fwd, rev := flowKeys(1)
	if _, ok := s.Insert(&fwd, &rev, &Entry{RealID: 1}); !ok {
		t.Fatal("first insert failed")
	}
	other, _ := flowKeys(2)
	if _, ok := s.Insert(&fwd, &other, &Entry{}); ok {
		t.Error("insert with an existing forward key succeeded")
	}
	if _, ok := s.Insert(&other, &fwd, &Entry{}); ok {
		t.Error("insert whose reply key exists as a forward key succeeded")
	}
	if _, ok := s.Insert(&other, &rev, &Entry{}); ok {
		t.Error("insert with an existing reply key succeeded")
	}
	if s.Len() != 1 || s.used != 2 {
		t.Fatalf("failed inserts changed the shard: len %d, slots used %d", s.Len(), s.used)
	}
	// DR/TUN: forward key only, via nil or rev == fwd.
	dr1, _ := flowKeys(3)
	dr2, _ := flowKeys(4)
	if _, ok := s.Insert(&dr1, nil, &Entry{RealID: 3}); !ok {
		t.Fatal("insert with nil rev failed")
	}
	p, ok := s.Insert(&dr2, &dr2, &Entry{RealID: 4})
	if !ok {
		t.Fatal("insert with rev == fwd failed")
	}
	if s.used != 4 {
		t.Errorf("single-key entries use %d slots in all, want 4", s.used)
	}
	if e, reply := s.Lookup(&dr2); e != p || reply {
		t.Errorf("Lookup(single key) = %p, %v; want %p, false", e, reply, p)
	}
	var zero Key
	if e, _ := s.Lookup(&zero); e != nil {
		t.Error("the zero key of a single-key entry is found")
	}
	s.Delete(p)
	s.Delete(p) // already deleted: no-op
	if s.Len() != 2 || s.used != 3 {
		t.Errorf("after deletes: len %d, used %d", s.Len(), s.used)
	}
}

func TestDeleteForeignPanics(t *testing.T) {
	s := NewShard(4)
	fwd, rev := flowKeys(1)
	s.Insert(&fwd, &rev, &Entry{})
	for name, e := range map[string]*Entry{
		"foreign": new(Entry),
		"inside":  (*Entry)(unsafe.Add(unsafe.Pointer(&s.items[0].e), 8)),
		"nil":     nil,
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Delete(%s pointer) did not panic", name)
				}
			}()
			s.Delete(e)
		}()
	}
}

// TestExpireIncremental: many calls with a small budget remove every
// expired entry and nothing live, never more than the budget per call.
func TestExpireIncremental(t *testing.T) {
	const n, budget, now = 5000, 7, 1000
	s := NewShard(n)
	live := map[uint32]bool{}
	for i := range uint32(n) {
		fwd, rev := flowKeys(i)
		exp := int64(now - 1 + int(i%3)) // 999, 1000: expired; 1001: live
		s.Insert(&fwd, &rev, &Entry{RealID: i, Expires: exp})
		if exp > now {
			live[i] = true
		}
	}
	// Holes from deletes must not confuse the sweep.
	for i := uint32(0); i < n; i += 10 {
		fwd, _ := flowKeys(i)
		e, _ := s.Lookup(&fwd)
		s.Delete(e)
		delete(live, i)
	}
	removed, calls := 0, 0
	for calls < (n+budget-1)/budget {
		k := s.Expire(now, budget, func(e *Entry) {
			if live[e.RealID] {
				t.Fatalf("Expire removed live entry %d", e.RealID)
			}
		})
		if k > budget {
			t.Fatalf("one call removed %d > %d", k, budget)
		}
		removed += k
		calls++
	}
	if s.Len() != len(live) {
		t.Fatalf("after one sweep of %d calls: %d entries left, want %d live (removed %d)", calls, s.Len(), len(live), removed)
	}
	for _, e := range s.Dump() {
		if !live[e.RealID] {
			t.Fatalf("expired entry %d survived", e.RealID)
		}
	}
	if k := s.Expire(now, n, nil); k != 0 {
		t.Errorf("a second sweep removed %d", k)
	}
	if k := s.Expire(now+1, n, nil); k != len(live) || s.Len() != 0 {
		t.Errorf("sweep at now+1 removed %d, left %d", k, s.Len())
	}
	if k := s.Expire(now, 0, nil); k != 0 {
		t.Errorf("Expire with no budget removed %d", k)
	}
}

func TestDumpInto(t *testing.T) {
	s := NewShard(100)
	var want []uint32
	for i := range uint32(50) {
		fwd, rev := flowKeys(i)
		s.Insert(&fwd, &rev, &Entry{RealID: i})
		want = append(want, i)
	}
	prefix := Entry{RealID: 999}
	buf := make([]Entry, 1, 64)
	buf[0] = prefix
	out := s.DumpInto(buf)
	if &out[0] != &buf[0] {
		t.Error("DumpInto reallocated although dst had room")
	}
	var got []uint32
	for _, e := range out[1:] {
		got = append(got, e.RealID)
	}
	slices.Sort(got)
	if out[0] != prefix || !slices.Equal(got, want) {
		t.Errorf("DumpInto = %v", got)
	}
}

func TestNoAllocs(t *testing.T) {
	const n = 4096
	s := NewShard(n)
	for i := range uint32(n) { // grow to full size, then empty
		fwd, rev := flowKeys(i)
		s.Insert(&fwd, &rev, &Entry{RealID: i})
	}
	for i := range uint32(n) {
		fwd, _ := flowKeys(i)
		e, _ := s.Lookup(&fwd)
		s.Delete(e)
	}
	for i := range uint32(n / 2) {
		fwd, rev := flowKeys(i)
		s.Insert(&fwd, &rev, &Entry{RealID: i})
	}
	hit, _ := flowKeys(7)
	miss, _ := flowKeys(n + 1)
	newF, newR := flowKeys(n + 2)
	e := Entry{Proto: protoTCP}
	var sink *Entry
	var dump = make([]Entry, 0, n)
	fn := func(e *Entry) { sink = e }
	for name, f := range map[string]func(){
		"Lookup hit":  func() { sink, _ = s.Lookup(&hit) },
		"Lookup miss": func() { sink, _ = s.Lookup(&miss) },
		"Insert+Delete": func() {
			p, _ := s.Insert(&newF, &newR, &e)
			s.Delete(p)
		},
		"Insert+Expire": func() {
			s.Insert(&newF, &newR, &Entry{Expires: -1})
			s.Expire(0, n, fn)
		},
		"Transition": func() { e.State = TCPEstablished; e.Transition(DirInput, tcpFIN) },
		"DumpInto":   func() { dump = s.DumpInto(dump[:0]) },
	} {
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s allocates %v times", name, a)
		}
	}
	_ = sink
}

// The benchmark shard: 1M connections, each with both keys.
const benchN = 1 << 20

var benchShard = sync.OnceValue(func() *Shard {
	s := NewShard(benchN + 1)
	for i := range uint32(benchN) {
		fwd, rev := flowKeys(i)
		s.Insert(&fwd, &rev, &Entry{RealID: i})
	}
	// Grow the slab for the (benchN+1)-th entry now, not in a benchmark.
	fwd, rev := flowKeys(benchN + 5)
	e, _ := s.Insert(&fwd, &rev, &Entry{})
	s.Delete(e)
	return s
})

func benchKeys(n int, base uint32) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i], _ = flowKeys(base + uint32(rand.IntN(benchN)))
	}
	return keys
}

func BenchmarkLookupHit(b *testing.B) {
	s := benchShard()
	keys := benchKeys(4096, 0)
	b.ReportAllocs()
	i, sum := 0, uint32(0)
	for b.Loop() {
		e, _ := s.Lookup(&keys[i&4095])
		if e == nil {
			b.Fatal("miss")
		}
		sum += e.RealID // read the entry, as the dataplane does
		i++
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	s := benchShard()
	keys := benchKeys(4096, benchN)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if e, _ := s.Lookup(&keys[i&4095]); e != nil {
			b.Fatal("hit")
		}
		i++
	}
}

func BenchmarkInsertDelete(b *testing.B) {
	s := benchShard()
	fwd, rev := flowKeys(benchN + 5)
	e := Entry{Proto: protoTCP}
	b.ReportAllocs()
	for b.Loop() {
		p, ok := s.Insert(&fwd, &rev, &e)
		if !ok {
			b.Fatal("insert failed")
		}
		s.Delete(p)
	}
}
