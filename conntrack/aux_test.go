package conntrack

import (
	"math/rand/v2"
	"testing"
)

// TestAux: each entry has its own word, 0 when it is inserted (also in a
// cell a removed entry left), kept while other entries come and go, and
// found again through either key; Bytes counts the words.
func TestAux(t *testing.T) {
	testAux[[4]byte](t)
	testAux[[16]byte](t)
}

func testAux[A IP](t *testing.T) {
	const n = 256
	s := NewShard[A](n)
	var e0 Entry[A]
	if want := len(s.buckets)*bucketSlots*4 + n*int(sizeofEntry(&e0)) + n*4; s.Bytes() != want {
		t.Errorf("%T: Bytes() = %d, want %d with the Aux words", s, s.Bytes(), want)
	}
	want := map[uint32]uint32{} // RealID → word
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
			if w := *s.Aux(st); w != 0 {
				t.Fatalf("%T round %d: a new entry's Aux word is %#x, want 0", s, round, w)
			}
			v := r.Uint32() | 1
			*s.Aux(st) = v
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
				t.Fatalf("%T round %d: entry %d lost its Aux word %#x", s, round, id, v)
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
	if n := testing.AllocsPerRun(100, func() { *s.Aux(st)++ }); n != 0 {
		t.Errorf("%v allocations per Aux, want 0", n)
	}
}
