package conntrack

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestWarm: Warm is only a hint. A shard that is warmed, and then
// changed between the warming and the lookups as a worker changes it in
// the middle of a batch, answers every lookup as its twin that is never
// warmed, and its index and slab stay the same as the twin's.
func TestWarm(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testWarm[[4]byte](t) })
	t.Run("IPv6", func(t *testing.T) { testWarm[[16]byte](t) })
}

func testWarm[A IP](t *testing.T) {
	for _, c := range []struct {
		name     string
		capacity int
		fill     func(r *rand.Rand, i int) (Entry[A], bool) // the ith entry, with or without its reply key
		n        int                                        // entries to try to insert
	}{
		{"empty", 1000, nil, 0},
		{"full", 4096, func(_ *rand.Rand, i int) (Entry[A], bool) { return natEntry[A](uint32(i)), true }, 4096},
		// Entries from small address and port spaces, whose keys collide,
		// inserted where they fit and half of them deleted again: dangling
		// free cells, keys in their second buckets, reply keys that are
		// other entries' forward keys.
		{"mixed", 5000, func(r *rand.Rand, _ int) (Entry[A], bool) { return randEntry[A](r, 64) }, 6000},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, uint64(c.capacity)))
			warmed, twin := NewShard[A](c.capacity), NewShard[A](c.capacity)
			seed := r.Uint64()
			seedShard(warmed, rand.New(rand.NewPCG(seed, 1)))
			seedShard(twin, rand.New(rand.NewPCG(seed, 1)))

			var live []Entry[A] // inserted, in order
			var probe []Key[A]  // keys of every entry tried, live or not
			for i := range c.n {
				e, reply := c.fill(r, i)
				fk, rk := e.ForwardKey(), e.ReplyKey()
				probe = append(probe, fk, rk)
				p, err := warmed.Insert(&e, reply)
				if q, err2 := twin.Insert(&e, reply); (p == nil) != (q == nil) || err != err2 {
					t.Fatalf("insert %d: the twins differ before any Warm: %v, %v", i, err, err2)
				}
				if err == nil {
					live = append(live, e)
				}
			}
			if c.name == "mixed" {
				for i := range live {
					if i%2 == 0 {
						deleteBoth(t, warmed, twin, live[i].ForwardKey())
					}
				}
				live = slices.DeleteFunc(live, func(e Entry[A]) bool {
					k := e.ForwardKey()
					p, _ := twin.Lookup(&k)
					return p == nil
				})
			}
			// Keys of no entry: misses.
			for i := range uint32(200) {
				e := natEntry[A](1<<30 + i)
				probe = append(probe, e.ForwardKey(), e.ReplyKey())
			}
			// Keys whose tag is 0, the tag an empty slot has: misses, but
			// one of them inserted into the mixed shard.
			var zero []Entry[A]
			for id := uint32(1 << 28); len(zero) < 2; id++ {
				e := natEntry[A](id)
				if k := e.ForwardKey(); uint32(warmed.hash(&k))&warmed.tagMask == 0 {
					zero = append(zero, e)
					probe = append(probe, k)
				}
			}
			if c.name == "mixed" {
				p, err := warmed.Insert(&zero[0], false)
				if q, err2 := twin.Insert(&zero[0], false); (p == nil) != (q == nil) || err != err2 {
					t.Fatalf("inserting a key of tag 0: %v, twin %v", err, err2)
				}
			}
			t.Logf("%d entries, %d probe keys", warmed.Len(), len(probe))

			warmed.Warm(probe) // many chunks
			sameShards(t, warmed, twin, probe, "after Warm of every key")
			warmed.Warm(nil)
			warmed.Warm(probe[:1])
			sameShards(t, warmed, twin, probe, "after Warm of no key and of one")

			// A batch as a worker sees it: keys of live entries that it
			// deletes and of new connections that it inserts after the
			// batch is warmed.
			for round := range 4 {
				var batch []Key[A]
				var gone []Key[A]
				for j := 0; j < warmChunk/4 && len(live) > 0; j++ {
					k := r.IntN(len(live))
					e := live[k]
					live = slices.Delete(live, k, k+1)
					gone = append(gone, e.ForwardKey())
					batch = append(batch, e.ForwardKey(), e.ReplyKey())
				}
				var fresh []Entry[A]
				for j := range warmChunk / 4 {
					e := natEntry[A](1<<29 + uint32(round*warmChunk+j))
					fresh = append(fresh, e)
					batch = append(batch, e.ForwardKey(), e.ReplyKey())
				}
				warmed.Warm(batch)
				for _, k := range gone {
					deleteBoth(t, warmed, twin, k)
				}
				for i := range fresh {
					p, err := warmed.Insert(&fresh[i], true)
					if q, err2 := twin.Insert(&fresh[i], true); (p == nil) != (q == nil) || err != err2 {
						t.Fatalf("round %d: Insert after Warm: %v, twin %v", round, err, err2)
					}
					if err == nil {
						live = append(live, fresh[i])
					}
				}
				sameShards(t, warmed, twin, append(batch, probe...), fmt.Sprintf("round %d", round))
			}

			if a := testing.AllocsPerRun(100, func() { warmed.Warm(probe[:warmChunk]) }); a != 0 {
				t.Errorf("Warm of a batch allocates %v times", a)
			}
			if a := testing.AllocsPerRun(20, func() { warmed.Warm(probe) }); a != 0 {
				t.Errorf("Warm of %d keys allocates %v times", len(probe), a)
			}
		})
	}
}

// deleteBoth deletes the entry of k, if any, from both shards.
func deleteBoth[A IP](t *testing.T, a, b *Shard[A], k Key[A]) {
	t.Helper()
	p, _ := a.Lookup(&k)
	q, _ := b.Lookup(&k)
	if (p == nil) != (q == nil) {
		t.Fatalf("Lookup(%+v) before Delete: %v and twin %v", k, p, q)
	}
	if p != nil {
		a.Delete(p)
		b.Delete(q)
	}
}

// sameShards fails unless a and b answer every key the same and hold the
// same index, slab and free list.
func sameShards[A IP](t *testing.T, a, b *Shard[A], keys []Key[A], where string) {
	t.Helper()
	for i := range keys {
		p, pr := a.Lookup(&keys[i])
		q, qr := b.Lookup(&keys[i])
		if (p == nil) != (q == nil) || pr != qr || p != nil && *p != *q {
			t.Fatalf("%s: Lookup(%+v) = %+v, %v; twin %+v, %v", where, keys[i], p, pr, q, qr)
		}
	}
	if a.Len() != b.Len() || a.hw != b.hw || a.free != b.free ||
		!slices.Equal(a.buckets, b.buckets) || !slices.Equal(a.entries, b.entries) {
		t.Fatalf("%s: the warmed shard differs from its twin", where)
	}
}
