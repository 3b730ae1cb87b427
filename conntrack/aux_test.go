package conntrack

import (
	"math/rand/v2"
	"testing"
)

// TestAux: each entry has its own two words, zero when it is inserted
// (also in a cell a removed entry left), kept apart from each other and
// from other entries' while those come and go, and found again through
// either key; Bytes counts 8 bytes of them an entry.
func TestAux(t *testing.T) {
	testAux[[4]byte](t)
	testAux[[16]byte](t)
}

func testAux[A IP](t *testing.T) {
	const n = 256
	s := NewShard[A](n)
	var e0 Entry[A]
	if want := len(s.buckets)*bucketSlots*4 + n*int(sizeofEntry(&e0)) + n*8; s.Bytes() != want {
		t.Errorf("%T: Bytes() = %d, want %d with the Aux words", s, s.Bytes(), want)
	}
	want := map[uint32]Aux{} // RealID → words
	r := rand.New(rand.NewPCG(5, 6))
	next := uint32(0)
	for round := range 4000 {
		if len(want) < n && (len(want) == 0 || r.IntN(3) > 0) {
			e := natEntry[A](next)
			next++
			st, err := s.Insert(&e, true)
			if err != nil {
				t.Fatalf("%T round %d: Insert: %v", s, round, err)
			}
			if w := *s.Aux(st); w != (Aux{}) {
				t.Fatalf("%T round %d: a new entry's Aux words are %#x, want 0", s, round, w)
			}
			// The words written one at a time: neither may land on the
			// other or on a neighbour's.
			v := Aux{r.Uint32() | 1, r.Uint32() | 1}
			s.Aux(st)[1] = v[1]
			s.Aux(st)[0] = v[0]
			want[e.RealID] = v
			continue
		}
		// Remove a random live entry, checking every word first.
		var victim uint32
		k := r.IntN(len(want))
		for id, v := range want {
			e := natEntry[A](id)
			fk, rk := e.ForwardKey(), e.ReplyKey()
			f, _ := s.Lookup(&fk)
			p, _ := s.Lookup(&rk)
			if f == nil || f != p || *s.Aux(f) != v {
				t.Fatalf("%T round %d: entry %d lost its Aux words %#x", s, round, id, v)
			}
			if k == 0 {
				victim = id
			}
			k--
		}
		e := natEntry[A](victim)
		fk := e.ForwardKey()
		f, _ := s.Lookup(&fk)
		s.Delete(f)
		delete(want, victim)
	}
	// DumpRangeAux, in two pieces, pairs every live entry with its words.
	es, aux := s.DumpRangeAux(nil, nil, 0, s.Cells()/2)
	es, aux = s.DumpRangeAux(es, aux, s.Cells()/2, s.Cells())
	if len(es) != len(want) || len(aux) != len(es) {
		t.Fatalf("%T: DumpRangeAux gave %d entries and %d Aux, want %d", s, len(es), len(aux), len(want))
	}
	for i := range es {
		if aux[i] != want[es[i].RealID] {
			t.Fatalf("%T: DumpRangeAux paired entry %d with %#x, want %#x", s, es[i].RealID, aux[i], want[es[i].RealID])
		}
	}
}

// TestAuxForeignEntryPanics: Aux of a pointer that is not into the shard
// is a programmer error.
func TestAuxForeignEntryPanics(t *testing.T) {
	s := NewShard[[4]byte](16)
	defer func() {
		if recover() == nil {
			t.Error("Aux of a foreign entry did not panic")
		}
	}()
	s.Aux(new(Entry4))
}

// TestAuxNoAllocs: finding an entry's word allocates nothing.
func TestAuxNoAllocs(t *testing.T) {
	s := NewShard[[4]byte](16)
	e := natEntry[[4]byte](1)
	st, err := s.Insert(&e, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { s.Aux(st)[0]++; s.Aux(st)[1]-- }); n != 0 {
		t.Errorf("%v allocations per Aux, want 0", n)
	}
}
