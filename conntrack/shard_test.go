package conntrack

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"Sizeof(Entry4)", unsafe.Sizeof(Entry4{}), 48},
		{"Sizeof(Entry6)", unsafe.Sizeof(Entry6{}), 96},
		{"Sizeof(Aux)", unsafe.Sizeof(Aux{}), auxSize},
		{"Alignof(Entry4)", unsafe.Alignof(Entry4{}), 8},
		{"Alignof(Entry6)", unsafe.Alignof(Entry6{}), 8},
		{"Offsetof(Entry4.Expires)", unsafe.Offsetof(Entry4{}.Expires), 40},
		{"Offsetof(Entry6.Expires)", unsafe.Offsetof(Entry6{}.Expires), 88},
		{"Sizeof(Key4)", unsafe.Sizeof(Key4{}), 14},
		{"Sizeof(Key6)", unsafe.Sizeof(Key6{}), 38},
		{"Sizeof(bucket)", unsafe.Sizeof(bucket{}), 32},
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

// TestKeyEqualityIgnoresPadding: the blank byte after Proto takes part
// neither in == nor in the hash.
func TestKeyEqualityIgnoresPadding(t *testing.T) {
	testKeyPadding[[4]byte](t)
	testKeyPadding[[16]byte](t)
}

func testKeyPadding[A IP](t *testing.T) {
	a := Key[A]{Src: addr[A](0x0a000001), SrcPort: 1, Proto: protoTCP}
	b := a
	size := unsafe.Sizeof(b)
	*(*byte)(unsafe.Add(unsafe.Pointer(&b), size-1)) = 0xAA // the padding byte
	seed := [5]uint64{1, 2, 3, 4, 5}
	if a != b || hashKey(&a, &seed) != hashKey(&b, &seed) {
		t.Errorf("%T: padding bytes take part in equality or hashing", a)
	}
}

// addr returns the address of family A whose last four bytes are v;
// IPv6 addresses are in 2001:db8::/32 (RFC 3849).
func addr[A IP](v uint32) A {
	var a A
	n := len(a)
	if n == 16 {
		a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
	}
	a[n-4], a[n-3], a[n-2], a[n-1] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return a
}

// wantKeys derives an entry's keys from their definition, independently of
// ForwardKey and ReplyKey.
func wantKeys[A IP](e *Entry[A]) (fwd, rep Key[A]) {
	fwd = Key[A]{Src: e.Client, Dst: e.VIP, SrcPort: e.ClientPort, DstPort: e.VPort, Proto: e.Proto}
	rep = Key[A]{Src: e.Real, Dst: e.Client, SrcPort: e.RPort, DstPort: e.ClientPort, Proto: e.Proto}
	var zero A
	if e.Local != zero {
		rep.Dst, rep.DstPort = e.Local, e.LPort
	}
	return fwd, rep
}

func TestEntryKeys(t *testing.T) {
	nat := Entry4{
		Client: [4]byte{198, 51, 100, 7}, ClientPort: 40000,
		VIP: [4]byte{192, 0, 2, 1}, VPort: 80,
		Real: [4]byte{10, 0, 0, 5}, RPort: 8080,
		LPort: 999, // ignored without Local
		Proto: protoTCP,
	}
	if got, want := nat.ForwardKey(), (Key4{Src: [4]byte{198, 51, 100, 7}, Dst: [4]byte{192, 0, 2, 1}, SrcPort: 40000, DstPort: 80, Proto: protoTCP}); got != want {
		t.Errorf("NAT ForwardKey = %+v, want %+v", got, want)
	}
	if got, want := nat.ReplyKey(), (Key4{Src: [4]byte{10, 0, 0, 5}, Dst: [4]byte{198, 51, 100, 7}, SrcPort: 8080, DstPort: 40000, Proto: protoTCP}); got != want {
		t.Errorf("NAT ReplyKey = %+v, want %+v", got, want)
	}
	full := nat
	full.Local, full.LPort = [4]byte{10, 0, 0, 254}, 5000
	if got, want := full.ReplyKey(), (Key4{Src: [4]byte{10, 0, 0, 5}, Dst: [4]byte{10, 0, 0, 254}, SrcPort: 8080, DstPort: 5000, Proto: protoTCP}); got != want {
		t.Errorf("FULLNAT ReplyKey = %+v, want %+v", got, want)
	}
	six := Entry6{Client: addr[[16]byte](1), VIP: addr[[16]byte](2), Real: addr[[16]byte](3), Local: addr[[16]byte](4),
		ClientPort: 1, VPort: 2, RPort: 3, LPort: 4, Proto: protoUDP}
	if got, want := six.ReplyKey(), (Key6{Src: addr[[16]byte](3), Dst: addr[[16]byte](4), SrcPort: 3, DstPort: 4, Proto: protoUDP}); got != want {
		t.Errorf("IPv6 FULLNAT ReplyKey = %+v, want %+v", got, want)
	}
}

// seedShard makes a shard's hash seed and random walks reproducible.
func seedShard[A IP](s *Shard[A], r *rand.Rand) {
	for i := range s.seed {
		s.seed[i] = r.Uint64()
	}
	s.rng = r.Uint64() | 1
}

// slotsUsed returns the number of occupied index slots: the shard's
// keys, dangling ones included.
func slotsUsed[A IP](s *Shard[A]) int {
	n := 0
	for _, b := range s.buckets {
		for _, v := range b {
			if v != 0 {
				n++
			}
		}
	}
	return n
}

// public returns e without the shard's bookkeeping, for comparisons.
func public[A IP](e Entry[A]) Entry[A] {
	e.keys = 0
	return e
}

// natEntry returns NAT connection id: client 64.0.0.0/4 (IPv6: in
// 2001:db8::/32), 16 ports per client, to VIP 192.0.2.1:80, real
// 172.16.0.x:8080. Its two keys differ, and differ from every other id's.
func natEntry[A IP](id uint32) Entry[A] {
	return Entry[A]{
		Client:     addr[A](0x40000000 | id>>4),
		ClientPort: 1024 + uint16(id&15),
		VIP:        addr[A](0xc0000201),
		VPort:      80,
		Real:       addr[A](0xac100000 | id%7),
		RPort:      8080,
		Proto:      protoTCP,
		State:      TCPEstablished,
		RealID:     id,
	}
}

// model is the reference a shard is checked against: every key of every
// live entry, and the entries by RealID, which the model test keeps unique.
type model[A IP] struct {
	keys map[Key[A]]mref
	ents map[uint32]*ment[A]
	live []uint32 // the ids of ents, for a seeded choice
}

type mref struct {
	id    uint32
	reply bool
}

type ment[A IP] struct {
	fwd, rep Key[A]
	two      bool // keyed by rep too
	e        Entry[A]
	pos      int // in live
}

func newModel[A IP]() *model[A] {
	return &model[A]{keys: map[Key[A]]mref{}, ents: map[uint32]*ment[A]{}}
}

func (m *model[A]) add(e Entry[A], two bool) {
	fwd, rep := wantKeys(&e)
	me := &ment[A]{fwd: fwd, rep: rep, two: two, e: public(e), pos: len(m.live)}
	m.ents[e.RealID] = me
	m.live = append(m.live, e.RealID)
	m.keys[fwd] = mref{e.RealID, false}
	if two {
		m.keys[rep] = mref{e.RealID, true}
	}
}

func (m *model[A]) remove(id uint32) {
	me := m.ents[id]
	last := m.live[len(m.live)-1]
	m.live[me.pos] = last
	m.ents[last].pos = me.pos
	m.live = m.live[:len(m.live)-1]
	delete(m.ents, id)
	delete(m.keys, me.fwd)
	if me.two {
		delete(m.keys, me.rep)
	}
}

// check compares the whole shard with the model: Len, both keys of every
// entry, the contents, Dump and DumpRange in random chunks.
func (m *model[A]) check(t *testing.T, s *Shard[A], r *rand.Rand, where string) {
	t.Helper()
	if s.Len() != len(m.ents) {
		t.Fatalf("%s: Len = %d, model %d", where, s.Len(), len(m.ents))
	}
	if s.Full() != (s.Len() == s.Cap()) {
		t.Fatalf("%s: Full = %v at %d of %d", where, s.Full(), s.Len(), s.Cap())
	}
	keys := 0
	for _, me := range m.ents {
		keys += map[bool]int{false: 1, true: 2}[me.two]
	}
	if used := slotsUsed(s); used != keys {
		t.Fatalf("%s: %d index slots used for %d keys", where, used, keys)
	}
	for id, me := range m.ents {
		e, reply := s.Lookup(&me.fwd)
		if e == nil || reply || public(*e) != me.e {
			t.Fatalf("%s: Lookup(forward key of %d) = %+v, %v; want %+v", where, id, e, reply, me.e)
		}
		if me.two {
			e2, reply := s.Lookup(&me.rep)
			if e2 != e || !reply {
				t.Fatalf("%s: Lookup(reply key of %d) = %p, %v; want %p, true", where, id, e2, reply, e)
			}
		} else if ref, ok := m.keys[me.rep]; !ok {
			if e2, _ := s.Lookup(&me.rep); e2 != nil {
				t.Fatalf("%s: the reply key of single-key entry %d finds %+v", where, id, *e2)
			}
		} else if e2, reply := s.Lookup(&me.rep); e2 == nil || e2.RealID != ref.id || reply != ref.reply {
			t.Fatalf("%s: Lookup(reply key of %d, which is %+v's) = %+v, %v", where, id, ref, e2, reply)
		}
	}
	dump := s.Dump()
	if len(dump) != len(m.ents) {
		t.Fatalf("%s: Dump has %d entries, model %d", where, len(dump), len(m.ents))
	}
	for _, e := range dump {
		if me := m.ents[e.RealID]; me == nil || me.e != public(e) {
			t.Fatalf("%s: Dump has %+v, model %+v", where, e, me)
		}
	}
	var chunks []Entry[A]
	for from := 0; from < s.Cells(); {
		to := from + 1 + r.IntN(s.Cells())
		chunks = s.DumpRange(chunks, from, to)
		from = to
	}
	if !slices.Equal(chunks, dump) {
		t.Fatalf("%s: DumpRange in chunks differs from Dump", where)
	}
}

// randEntry draws an entry from small address and port spaces, so that
// its keys collide with live ones in both directions. It returns whether
// the entry is to be inserted with its reply key.
func randEntry[A IP](r *rand.Rand, ports int) (Entry[A], bool) {
	// pick draws role's address from a pool of n, or one time in eight
	// from a pool shared by every role, so a reply key can equal another
	// connection's forward key.
	pick := func(role uint32, n int) A {
		if r.IntN(8) == 0 {
			return addr[A](0x0a000000 | uint32(r.IntN(2)))
		}
		return addr[A](role<<24 | uint32(r.IntN(n)))
	}
	e := Entry[A]{
		Client:      pick(1, 4),
		VIP:         pick(2, 2),
		Real:        pick(3, 3),
		ClientPort:  uint16(r.IntN(ports)),
		VPort:       80 + uint16(r.IntN(2)),
		RPort:       [2]uint16{80, 8080}[r.IntN(2)],
		Proto:       [2]uint8{protoTCP, protoUDP}[r.IntN(2)],
		State:       State(r.IntN(int(UDP) + 1)),
		Forward:     uint8(r.IntN(4)),
		Flags:       uint8(r.Uint32()),
		PersistBits: uint8(r.IntN(33)),
		Expires:     r.Int64N(100),
	}
	for i := range e.ClientMAC {
		e.ClientMAC[i] = byte(r.Uint32())
	}
	switch r.IntN(16) {
	case 0: // DR or TUN: forward key only
		return e, false
	case 1: // NAT whose reply key is its forward key
		e.Real, e.VIP = e.Client, e.Client
		e.RPort, e.VPort = e.ClientPort, e.ClientPort
	case 2: // FULLNAT whose reply key is its forward key
		e.Real, e.RPort = e.Client, e.ClientPort
		e.Local, e.LPort = e.VIP, e.VPort
	case 3, 4, 5, 6: // FULLNAT
		e.Local, e.LPort = pick(4, 2), uint16(r.IntN(ports))
	}
	return e, true
}

// evictable is Evictable's definition.
func evictable[A IP](e *Entry[A], now int64) bool {
	return e.Expires <= now || !(e.Proto == protoTCP && e.State == TCPEstablished)
}

// TestShardAgainstModel runs seeded random sequences of Insert, Lookup,
// Delete, Expire and Evict against a Go map model, for both families.
func TestShardAgainstModel(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testShardAgainstModel[[4]byte](t) })
	t.Run("IPv6", func(t *testing.T) { testShardAgainstModel[[16]byte](t) })
}

func testShardAgainstModel[A IP](t *testing.T) {
	for _, capacity := range []int{1, 3, 40, 700, 5000} {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("cap%d/seed%d", capacity, seed), func(t *testing.T) {
				runModel[A](t, capacity, seed)
			})
		}
	}
}

func runModel[A IP](t *testing.T, capacity int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, uint64(capacity)))
	s := NewShard[A](capacity)
	seedShard(s, r)
	m := newModel[A]()
	// About four forward keys per entry of capacity: the shard fills, and
	// a good part of the inserts meet a live key.
	ports := max(2, capacity/8)
	// Phases alternate between filling (inserts, lookups and a few
	// deletes; no expiry) and churning (everything).
	phase := max(250, 3*capacity+50)
	ops := 4 * phase
	checkEvery := max(61, capacity/2) // a check costs O(Len)
	var nextID uint32
	var exists, full, evicted, expired, maxLen int
	for op := range ops {
		filling := op/phase%2 == 0
		x := r.IntN(100)
		if filling {
			x = x * 6 / 10 // only inserts, lookups and deletes
		}
		where := fmt.Sprintf("op %d", op)
		switch {
		case x < 40: // insert
			e, reply := randEntry[A](r, ports)
			nextID++
			e.RealID = nextID
			fwd, rep := wantKeys(&e)
			two := reply && rep != fwd
			_, fex := m.keys[fwd]
			_, rex := m.keys[rep]
			keyTaken := fex || two && rex
			p, err := s.Insert(&e, reply)
			switch {
			case len(m.ents) == capacity && (err == ErrFull || keyTaken && err == ErrExists):
				full++
				// As a worker does: make room, and try once more.
				if r.IntN(2) == 0 {
					continue
				}
				now := r.Int64N(100)
				var victim *Entry[A]
				var v Entry[A]
				ok := s.Evict(now, func(e *Entry[A]) {
					if victim != nil {
						t.Fatalf("%s: Evict calls fn twice", where)
					}
					f, _ := wantKeys(e)
					if got, _ := s.Lookup(&f); got != e {
						t.Fatalf("%s: Evict's fn is called with %+v, which the shard does not hold", where, *e)
					}
					victim, v = e, *e
				})
				if !ok {
					if victim != nil {
						t.Fatalf("%s: Evict returned false after calling fn", where)
					}
					for _, id := range m.live {
						if me := m.ents[id]; evictable(&me.e, now) && s.Cells() <= evictRun {
							t.Fatalf("%s: Evict(%d) found nothing although %+v is evictable and one run samples every cell", where, now, me.e)
						}
					}
					continue
				}
				if victim == nil {
					t.Fatalf("%s: Evict returned true without calling fn", where)
				}
				if me := m.ents[v.RealID]; me == nil || me.e != public(v) || !evictable(&me.e, now) {
					t.Fatalf("%s: Evict(%d) chose %+v, model %+v", where, now, v, me)
				}
				m.remove(v.RealID)
				evicted++
				if s.Len() != len(m.ents) {
					t.Fatalf("%s: Len %d after Evict, model %d", where, s.Len(), len(m.ents))
				}
				// Retry: the model decides again below.
				_, fex = m.keys[fwd]
				_, rex = m.keys[rep]
				keyTaken = fex || two && rex
				p, err = s.Insert(&e, reply)
				fallthrough
			default:
				switch {
				case len(m.ents) == capacity:
					if err != ErrFull && !(keyTaken && err == ErrExists) {
						t.Fatalf("%s: Insert into a full shard: %v", where, err)
					}
					full++
				case keyTaken:
					if err != ErrExists {
						t.Fatalf("%s: Insert of %+v (reply %v) with a taken key: %v, want ErrExists", where, e, reply, err)
					}
					exists++
				case err != nil:
					t.Fatalf("%s: Insert of %+v (reply %v) at %d of %d: %v", where, e, reply, len(m.ents), capacity, err)
				default:
					if public(*p) != e {
						t.Fatalf("%s: Insert stored %+v, want %+v", where, *p, e)
					}
					m.add(e, two)
				}
				if (err == nil) != (p != nil) {
					t.Fatalf("%s: Insert returned %p, %v", where, p, err)
				}
			}
		case x < 55: // lookup of a random key, mostly a miss
			e, _ := randEntry[A](r, ports)
			f, rp := wantKeys(&e)
			for _, k := range []Key[A]{f, rp} {
				got, reply := s.Lookup(&k)
				want, ok := m.keys[k]
				if ok != (got != nil) || ok && (got.RealID != want.id || reply != want.reply) {
					t.Fatalf("%s: Lookup(%+v) = %+v, %v; model %+v, %v", where, k, got, reply, want, ok)
				}
			}
		case x < 60: // delete by either key
			if len(m.live) == 0 {
				continue
			}
			me := m.ents[m.live[r.IntN(len(m.live))]]
			k := me.fwd
			if me.two && r.IntN(2) == 0 {
				k = me.rep
			}
			e, _ := s.Lookup(&k)
			if e == nil || public(*e) != me.e {
				t.Fatalf("%s: Lookup of a live key = %+v, want %+v", where, e, me.e)
			}
			s.Delete(e)
			m.remove(me.e.RealID)
		case x < 80: // expire
			now, scan := r.Int64N(100), 1+r.IntN(20)
			if r.IntN(10) == 0 {
				scan = s.Cells() // a full sweep
			}
			var gone []uint32
			n := s.Expire(now, scan, func(e *Entry[A]) {
				if e.Expires > now {
					t.Fatalf("%s: Expire(%d) removes %+v", where, now, *e)
				}
				f, _ := wantKeys(e)
				if got, _ := s.Lookup(&f); got != e {
					t.Fatalf("%s: Expire's fn is called with %+v, which the shard does not hold", where, *e)
				}
				gone = append(gone, e.RealID)
			})
			if n != len(gone) || n > scan {
				t.Fatalf("%s: Expire = %d, fn saw %d, scan %d", where, n, len(gone), scan)
			}
			for _, id := range gone {
				if m.ents[id] == nil {
					t.Fatalf("%s: Expire removed unknown %d", where, id)
				}
				m.remove(id)
			}
			expired += n
			if scan == s.Cells() {
				for _, id := range m.live {
					if m.ents[id].e.Expires <= now {
						t.Fatalf("%s: a full sweep at %d left %+v", where, now, m.ents[id].e)
					}
				}
			}
		default: // lookup of live keys
			for range 4 {
				if len(m.live) == 0 {
					break
				}
				me := m.ents[m.live[r.IntN(len(m.live))]]
				if e, reply := s.Lookup(&me.rep); me.two && (e == nil || !reply || public(*e) != me.e) {
					t.Fatalf("%s: Lookup(reply key) = %+v, %v; want %+v", where, e, reply, me.e)
				}
			}
		}
		maxLen = max(maxLen, s.Len())
		if op%checkEvery == 0 {
			m.check(t, s, r, where)
		}
	}
	m.check(t, s, r, "end")
	if maxLen < capacity || full == 0 {
		t.Errorf("the shard never filled: at most %d of %d entries, %d ErrFull", maxLen, capacity, full)
	}
	if exists == 0 && capacity > 1 { // one entry: every insert meets a full shard or an empty one
		t.Error("no insert met a taken key")
	}
	if expired == 0 || evicted == 0 {
		t.Errorf("%d expired, %d evicted: the sequence misses a path", expired, evicted)
	}
	t.Logf("%d ops: at most %d entries; ErrExists %d, full %d, evicted %d, expired %d", ops, maxLen, exists, full, evicted, expired)
}

// TestDeleteStress fills small shards to capacity with NAT entries (two
// keys each: the index at its highest load), deletes them in random order
// and checks after every delete that every remaining key is still found
// and every deleted one is gone; then refills the holes and checks again.
// The index is bucketed cuckoo hashing, not linear probing, so there is no
// backward shift to break; this catches instead an erase that clears the
// wrong slot, a cuckoo move that drops or duplicates a key, and bucket
// counts that are not powers of two.
func TestDeleteStress(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testDeleteStress[[4]byte](t) })
	t.Run("IPv6", func(t *testing.T) { testDeleteStress[[16]byte](t) })
}

func testDeleteStress[A IP](t *testing.T) {
	caps := []int{61, 97, 100, 255, 256, 257}
	for c := 1; c <= 48; c++ {
		caps = append(caps, c)
	}
	if !testing.Short() { // O(capacity²) lookups
		caps = append(caps, 1000)
	}
	for _, capacity := range caps {
		for seed := range uint64(3) {
			r := rand.New(rand.NewPCG(seed, uint64(capacity)))
			s := NewShard[A](capacity)
			seedShard(s, r)
			where := fmt.Sprintf("cap %d seed %d", capacity, seed)
			// Ids drawn at random from a large space: the keys are not
			// sequential.
			ids := map[uint32]bool{}
			next := func() uint32 {
				for {
					id := r.Uint32N(1 << 30)
					if !ids[id] {
						ids[id] = true
						return id
					}
				}
			}
			var live []uint32
			fill := func() {
				for !s.Full() {
					e := natEntry[A](next())
					p, err := s.Insert(&e, true)
					if err == ErrFull && len(s.buckets) <= 3 {
						// Known: a shard of two or three buckets
						// cannot always hold Cap() entries (see
						// TestCapacityIsHonoured). The failed insert
						// must leave the shard as it was.
						f, rp := e.ForwardKey(), e.ReplyKey()
						if a, _ := s.Lookup(&f); a != nil || p != nil || s.Len() != len(live) || slotsUsed(s) != 2*len(live) {
							t.Fatalf("%s: a failed Insert changed the shard", where)
						}
						if a, _ := s.Lookup(&rp); a != nil {
							t.Fatalf("%s: a failed Insert left its reply key", where)
						}
						t.Logf("%s: ErrFull at %d of %d (%d buckets)", where, s.Len(), capacity, len(s.buckets))
						return
					}
					if err != nil {
						t.Fatalf("%s: Insert at %d of %d: %v", where, s.Len(), capacity, err)
					}
					live = append(live, e.RealID)
				}
				e := natEntry[A](next())
				if p, err := s.Insert(&e, true); err != ErrFull || p != nil {
					t.Fatalf("%s: Insert into a full shard = %p, %v", where, p, err)
				}
			}
			checkAll := func(dead uint32) {
				for _, id := range live {
					e := natEntry[A](id)
					f, rp := e.ForwardKey(), e.ReplyKey()
					if got, reply := s.Lookup(&f); got == nil || reply || got.RealID != id {
						t.Fatalf("%s: lost the forward key of %d", where, id)
					}
					if got, reply := s.Lookup(&rp); got == nil || !reply || got.RealID != id {
						t.Fatalf("%s: lost the reply key of %d", where, id)
					}
				}
				e := natEntry[A](dead)
				f, rp := e.ForwardKey(), e.ReplyKey()
				if got, _ := s.Lookup(&f); got != nil {
					t.Fatalf("%s: deleted %d still found by its forward key", where, dead)
				}
				if got, _ := s.Lookup(&rp); got != nil {
					t.Fatalf("%s: deleted %d still found by its reply key", where, dead)
				}
			}
			drain := func(until int) {
				r.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
				for len(live) > until {
					id := live[len(live)-1]
					live = live[:len(live)-1]
					e := natEntry[A](id)
					k := e.ForwardKey()
					if r.IntN(2) == 0 {
						k = e.ReplyKey()
					}
					p, _ := s.Lookup(&k)
					s.Delete(p)
					if s.Len() != len(live) {
						t.Fatalf("%s: Len %d after a delete, want %d", where, s.Len(), len(live))
					}
					checkAll(id)
				}
			}
			fill()
			drain(capacity / 2)
			fill()
			drain(0)
			if capacity == 1000 && seed == 0 {
				t.Logf("%T: 1000 entries, 2000 keys in %d buckets of %d slots: load %.3f",
					s, len(s.buckets), bucketSlots, 2000/float64(len(s.buckets)*bucketSlots))
			}
		}
	}
}

// TestFillToCapacity: a shard takes exactly Cap() entries of random keys,
// with both keys each, and keeps taking new ones at that load while old
// ones are deleted: the cuckoo index must not report ErrFull early.
func TestFillToCapacity(t *testing.T) {
	n4, n6, churn := 1<<17, 1<<15, 4
	if testing.Short() {
		n4, n6, churn = 1<<14, 1<<12, 2
	}
	t.Run("IPv4", func(t *testing.T) { testFillToCapacity[[4]byte](t, n4, churn) })
	t.Run("IPv6", func(t *testing.T) { testFillToCapacity[[16]byte](t, n6, churn) })
}

func testFillToCapacity[A IP](t *testing.T, capacity, churn int) {
	for seed := range uint64(2) {
		r := rand.New(rand.NewPCG(seed, 99))
		s := NewShard[A](capacity)
		seedShard(s, r)
		// Ids are a random permutation prefix of a space much larger than
		// the table; ring holds the live ones in insertion order.
		perm := r.Perm(capacity * (churn + 2))
		ring := make([]uint32, 0, capacity)
		for _, id := range perm[:capacity] {
			e := natEntry[A](uint32(id))
			if _, err := s.Insert(&e, true); err != nil {
				t.Fatalf("seed %d: Insert at %d of %d: %v", seed, s.Len(), capacity, err)
			}
			ring = append(ring, uint32(id))
		}
		if !s.Full() {
			t.Fatalf("seed %d: not Full at %d of %d", seed, s.Len(), s.Cap())
		}
		for i, id := range perm[capacity : capacity*(churn+1)] {
			old := natEntry[A](ring[i%capacity])
			k := old.ForwardKey()
			p, _ := s.Lookup(&k)
			s.Delete(p)
			e := natEntry[A](uint32(id))
			if _, err := s.Insert(&e, true); err != nil {
				t.Fatalf("seed %d: churn insert %d at %d of %d: %v", seed, i, s.Len(), capacity, err)
			}
			ring[i%capacity] = uint32(id)
		}
		for _, id := range ring {
			e := natEntry[A](id)
			f, rp := e.ForwardKey(), e.ReplyKey()
			if got, _ := s.Lookup(&f); got == nil || got.RealID != id {
				t.Fatalf("seed %d: lost the forward key of %d", seed, id)
			}
			if got, _ := s.Lookup(&rp); got == nil || got.RealID != id {
				t.Fatalf("seed %d: lost the reply key of %d", seed, id)
			}
		}
	}
}

// TestExpireIncremental: Expire removes only entries with Expires <= now,
// examines at most scan cells a call, resumes where the last call stopped
// (wrapping around), and a sweep over N cells takes ceil(N/scan) calls.
func TestExpireIncremental(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testExpireIncremental[[4]byte](t) })
	t.Run("IPv6", func(t *testing.T) { testExpireIncremental[[16]byte](t) })
}

func testExpireIncremental[A IP](t *testing.T) {
	const n, scan, now = 5000, 7, 1000
	s := NewShard[A](n)
	for i := range uint32(n) {
		e := natEntry[A](i)
		e.Expires = now - 1 + int64(i%3) // 999, 1000: expired; 1001: live
		if _, err := s.Insert(&e, true); err != nil {
			t.Fatal(err)
		}
	}
	// Holes from deletes must not confuse the sweep.
	for i := uint32(0); i < n; i += 10 {
		e := natEntry[A](i)
		k := e.ForwardKey()
		p, _ := s.Lookup(&k)
		s.Delete(p)
	}
	// cell[c] is the RealID in cell c, or -1: found with DumpRange.
	cells := s.Cells()
	cell := make([]int64, cells)
	for c := range cells {
		cell[c] = -1
		if d := s.DumpRange(nil, c, c+1); len(d) == 1 {
			cell[c] = int64(d[0].RealID)
		}
	}
	expiredIn := func(c int) bool { return cell[c] >= 0 && cell[c]%3 != 2 }
	live := s.Len()
	for c := range cells {
		if expiredIn(c) {
			live--
		}
	}
	calls := (cells + scan - 1) / scan
	cur := 0
	for call := range calls {
		var want []uint32
		for range scan {
			if c := cur % cells; expiredIn(c) {
				want = append(want, uint32(cell[c]))
				cell[c] = -1
			}
			cur++
		}
		var got []uint32
		k := s.Expire(now, scan, func(e *Entry[A]) {
			if e.Expires > now {
				t.Fatalf("Expire(%d) removes %+v", now, *e)
			}
			got = append(got, e.RealID)
		})
		if k != len(got) || !slices.Equal(got, want) {
			t.Fatalf("call %d: Expire = %d, removed %v; want the expired of cells [%d, %d): %v",
				call, k, got, cur-scan, cur, want)
		}
	}
	if s.Len() != live {
		t.Fatalf("after one sweep of %d calls: %d entries left, want %d", calls, s.Len(), live)
	}
	for _, e := range s.Dump() {
		if e.Expires <= now {
			t.Fatalf("expired entry %d survived", e.RealID)
		}
	}
	// The cursor wrapped past the end in the last call; a second sweep
	// finds nothing.
	if k := s.Expire(now, n, nil); k != 0 {
		t.Errorf("a second sweep removed %d", k)
	}
	if k := s.Expire(now, 0, nil); k != 0 {
		t.Errorf("Expire with no budget removed %d", k)
	}
	if k := s.Expire(now+1, -1, nil); k != 0 {
		t.Errorf("Expire with a negative budget removed %d", k)
	}
	if k := s.Expire(now+1, 10*n, nil); k != live || s.Len() != 0 {
		t.Errorf("sweep at now+1 with a budget beyond Cells removed %d, left %d", k, s.Len())
	}
	if k := NewShard[A](10).Expire(now, 10, nil); k != 0 {
		t.Errorf("Expire on a new shard removed %d", k)
	}
}

func TestEvictable(t *testing.T) {
	const now = 100
	for _, c := range []struct {
		proto   uint8
		state   State
		expires int64
		want    bool
	}{
		{protoTCP, TCPEstablished, now + 1, false},
		{protoTCP, TCPEstablished, now, true}, // expired
		{protoTCP, TCPEstablished, now - 1, true},
		{protoTCP, TCPSynRecv, now + 1, true},
		{protoTCP, TCPSynSent, now + 1, true},
		{protoTCP, TCPFinWait, now + 1, true},
		{protoTCP, StateNone, now + 1, true},
		{protoUDP, UDP, now + 1, true},
		{protoUDP, TCPEstablished, now + 1, true}, // not TCP
	} {
		e := Entry4{Proto: c.proto, State: c.state, Expires: c.expires}
		if got := Evictable(&e, now); got != c.want {
			t.Errorf("Evictable(proto %d %v expires %d, now %d) = %v", c.proto, c.state, c.expires, now, got)
		}
		e6 := Entry6{Proto: c.proto, State: c.state, Expires: c.expires}
		if got := Evictable(&e6, now); got != c.want {
			t.Errorf("Evictable(IPv6 proto %d %v expires %d, now %d) = %v", c.proto, c.state, c.expires, now, got)
		}
	}
}

func TestEvict(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testEvict[[4]byte](t) })
	t.Run("IPv6", func(t *testing.T) { testEvict[[16]byte](t) })
}

// fillShard fills a new shard of capacity n with natEntry(i), i < n, after
// set adjusts each.
func fillShard[A IP](t *testing.T, r *rand.Rand, n int, set func(i uint32, e *Entry[A])) *Shard[A] {
	t.Helper()
	s := NewShard[A](n)
	seedShard(s, r)
	for i := range uint32(n) {
		e := natEntry[A](i)
		set(i, &e)
		if _, err := s.Insert(&e, true); err != nil {
			t.Fatalf("Insert %d of %d: %v", i, n, err)
		}
	}
	return s
}

func testEvict[A IP](t *testing.T) {
	const n, now = 1000, 1 << 20
	r := rand.New(rand.NewPCG(1, 2))

	if NewShard[A](4).Evict(now, func(*Entry[A]) { t.Error("Evict on an empty shard calls fn") }) {
		t.Error("Evict on an empty shard returned true")
	}

	// A SYN flood: every entry half-open, in order of arrival.
	s := fillShard(t, r, n, func(i uint32, e *Entry[A]) {
		e.State, e.Expires = TCPSynRecv, now+int64(i)
	})
	var victim Entry[A]
	calls := 0
	if !s.Evict(now, func(e *Entry[A]) {
		calls++
		victim = *e
		k := e.ReplyKey()
		if got, reply := s.Lookup(&k); got != e || !reply || s.Len() != n {
			t.Errorf("fn is called after the victim is removed")
		}
	}) || calls != 1 {
		t.Fatalf("Evict from a full half-open shard: fn called %d times", calls)
	}
	if s.Len() != n-1 || s.Full() {
		t.Fatalf("after Evict: Len %d, Full %v", s.Len(), s.Full())
	}
	for _, k := range []Key[A]{victim.ForwardKey(), victim.ReplyKey()} {
		if e, _ := s.Lookup(&k); e != nil {
			t.Fatalf("the victim %d is still found", victim.RealID)
		}
	}
	e := natEntry[A](n)
	if _, err := s.Insert(&e, true); err != nil {
		t.Fatalf("Insert after Evict: %v", err)
	}
	if !s.Evict(now, nil) || s.Len() != n-1 {
		t.Fatal("Evict with a nil fn")
	}

	// Every entry established and in time: nothing is evictable.
	s = fillShard(t, r, n, func(i uint32, e *Entry[A]) {
		e.State, e.Expires = TCPEstablished, now+1+int64(i)
	})
	for range 1000 {
		if s.Evict(now, func(e *Entry[A]) { t.Fatalf("evicts established %+v", *e) }) {
			t.Fatal("Evict returned true in a shard of established connections")
		}
	}
	if s.Len() != n {
		t.Fatalf("Len %d after refused evictions", s.Len())
	}
	// Expired established connections are evictable.
	if !s.Evict(now+n+1, nil) || s.Len() != n-1 {
		t.Fatal("an expired established connection was not evicted")
	}

	// 90% half-open with random Expires, 10% established: no established
	// connection is evicted, and the victims are the old ones.
	const mixed = 10_000
	rank := r.Perm(mixed) // Expires of entry i is now+1+rank[i]
	s = fillShard(t, r, mixed, func(i uint32, e *Entry[A]) {
		e.State, e.Expires = TCPSynRecv, now+1+int64(rank[i])
		if i%10 == 0 {
			e.State = TCPEstablished
		}
	})
	var sum, count float64
	for range mixed / 10 {
		if !s.Evict(now, func(e *Entry[A]) {
			if e.State == TCPEstablished {
				t.Fatalf("evicted established %+v", *e)
			}
			sum += float64(e.Expires - now - 1)
			count++
		}) {
			t.Fatal("Evict found nothing in a 90% half-open shard")
		}
	}
	mean := sum / count / mixed
	t.Logf("random Expires: mean victim rank %.3f of the population (0 = oldest)", mean)
	if mean >= 0.5 {
		t.Errorf("mean victim rank %.3f: eviction does not prefer the old", mean)
	}

	// Half-open entries whose Expires grows with the cell, as after a
	// flood into an empty shard: logged, not asserted, since a sample of
	// consecutive cells is then a sample of entries of about one age.
	s = fillShard(t, r, mixed, func(i uint32, e *Entry[A]) {
		e.State, e.Expires = TCPSynRecv, now+1+int64(i)
	})
	sum, count = 0, 0
	for range mixed / 10 {
		s.Evict(now, func(e *Entry[A]) { sum += float64(e.Expires - now - 1); count++ })
	}
	t.Logf("Expires in cell order: mean victim rank %.3f of the population (0 = oldest)", sum/count/mixed)
}

func TestDumpRange(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testDumpRange[[4]byte](t) })
	t.Run("IPv6", func(t *testing.T) { testDumpRange[[16]byte](t) })
}

func testDumpRange[A IP](t *testing.T) {
	s := NewShard[A](400)
	for i := range uint32(300) {
		e := natEntry[A](i)
		s.Insert(&e, i%2 == 0)
	}
	for i := uint32(0); i < 300; i += 3 {
		e := natEntry[A](i)
		k := e.ForwardKey()
		p, _ := s.Lookup(&k)
		s.Delete(p)
	}
	if s.Cells() != 300 {
		t.Fatalf("Cells = %d, want 300", s.Cells())
	}
	all := s.DumpInto(nil)
	if len(all) != 200 {
		t.Fatalf("DumpInto has %d entries, want 200", len(all))
	}
	for _, chunk := range []int{1, 7, 64, 299, 300, 1000} {
		var got []Entry[A]
		for from := -chunk; from < s.Cells()+chunk; from += chunk {
			got = s.DumpRange(got, from, from+chunk)
		}
		if !slices.Equal(got, all) {
			t.Errorf("DumpRange in chunks of %d: %d entries, differ from DumpInto", chunk, len(got))
		}
	}
	if got := s.DumpRange(nil, 200, 100); len(got) != 0 {
		t.Errorf("DumpRange(200, 100) = %d entries", len(got))
	}
	if !slices.Equal(s.Dump(), all) {
		t.Error("Dump differs from DumpInto")
	}

	prefix := Entry[A]{RealID: 999}
	buf := make([]Entry[A], 1, 1+s.Len())
	buf[0] = prefix
	out := s.DumpInto(buf)
	if &out[0] != &buf[0] || out[0] != prefix || !slices.Equal(out[1:], all) {
		t.Error("DumpInto with room: reallocated, or lost the prefix, or differs")
	}
	if a := testing.AllocsPerRun(50, func() { out = s.DumpInto(buf[:0]) }); a != 0 {
		t.Errorf("DumpInto with room allocates %v times", a)
	}
	if a := testing.AllocsPerRun(50, func() { out = s.DumpRange(buf[:0], 10, 100) }); a != 0 {
		t.Errorf("DumpRange with room allocates %v times", a)
	}
}

func TestNoAllocs(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testNoAllocs[[4]byte](t) })
	t.Run("IPv6", func(t *testing.T) { testNoAllocs[[16]byte](t) })
}

func testNoAllocs[A IP](t *testing.T) {
	const n = 4096
	s := NewShard[A](n)
	for i := range uint32(n / 2) {
		e := natEntry[A](i)
		e.Expires = 1 // outlives the Expire(0, ...) below
		s.Insert(&e, true)
	}
	hitE, missE := natEntry[A](7), natEntry[A](n+1)
	hit, hitReply, miss := hitE.ForwardKey(), hitE.ReplyKey(), missE.ForwardKey()
	fresh := natEntry[A](n + 2)
	fresh.Local, fresh.LPort = addr[A](0x0a0000fe), 5000
	expired := natEntry[A](n + 3)
	expired.Expires = -1

	full := NewShard[A](64)
	for i := range uint32(64) {
		e := natEntry[A](i)
		e.State = TCPSynRecv
		full.Insert(&e, true)
	}
	next := uint32(64)

	var sink *Entry[A]
	var sinkB bool
	fn := func(e *Entry[A]) { sink = e }
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"Lookup hit", func() { sink, sinkB = s.Lookup(&hit) }},
		{"Lookup hit reply", func() { sink, sinkB = s.Lookup(&hitReply) }},
		{"Lookup miss", func() { sink, sinkB = s.Lookup(&miss) }},
		{"Insert+Delete", func() {
			p, _ := s.Insert(&fresh, true)
			s.Delete(p)
		}},
		{"Insert+Expire", func() {
			s.Insert(&expired, true)
			s.Expire(0, n, fn)
		}},
		{"Evict+Insert", func() {
			full.Evict(0, fn)
			e := natEntry[A](next)
			e.State = TCPSynRecv
			next++
			full.Insert(&e, true)
		}},
		{"Transition", func() { e := hitE; e.Transition(DirInput, tcpFIN) }},
	} {
		if a := testing.AllocsPerRun(200, c.f); a != 0 {
			t.Errorf("%s allocates %v times", c.name, a)
		}
	}
	if s.Len() != n/2 || !full.Full() {
		t.Errorf("the operations changed the shards: Len %d, full shard %d", s.Len(), full.Len())
	}
	_, _ = sink, sinkB
}

func TestDelete(t *testing.T) {
	t.Run("IPv4", func(t *testing.T) { testDelete[[4]byte](t) })
	t.Run("IPv6", func(t *testing.T) { testDelete[[16]byte](t) })
}

func testDelete[A IP](t *testing.T) {
	s := NewShard[A](4)
	e1, e2 := natEntry[A](1), natEntry[A](2)
	p1, _ := s.Insert(&e1, true)
	p2, _ := s.Insert(&e2, true)
	other := NewShard[A](4)
	po, _ := other.Insert(&e1, true)
	for _, c := range []struct {
		name string
		e    *Entry[A]
	}{
		{"nil", nil},
		{"a new Entry", new(Entry[A])},
		{"a local copy", &e1},
		{"another shard's entry", po},
		{"inside an entry", (*Entry[A])(unsafe.Add(unsafe.Pointer(p1), 8))},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Delete(%s) did not panic", c.name)
				}
			}()
			s.Delete(c.e)
		}()
	}
	if s.Len() != 2 || other.Len() != 1 {
		t.Fatalf("panicking Deletes changed the shards: Len %d, %d", s.Len(), other.Len())
	}
	s.Delete(p1)
	s.Delete(p1) // already deleted: no-op
	if s.Len() != 1 {
		t.Fatalf("Len %d after deleting one of two twice", s.Len())
	}
	k := e2.ReplyKey()
	if got, reply := s.Lookup(&k); got != p2 || !reply || public(*got) != e2 {
		t.Fatalf("the other entry: Lookup = %p, %v; want %p", got, reply, p2)
	}
	k = e1.ForwardKey()
	if got, _ := s.Lookup(&k); got != nil {
		t.Fatal("the deleted entry is still found")
	}
}

// TestInsertErrors: Insert's errors leave the shard unchanged.
func TestInsertErrors(t *testing.T) {
	s := NewShard4(2)
	a := natEntry[[4]byte](1)
	if _, err := s.Insert(&a, true); err != nil {
		t.Fatal(err)
	}
	clash := natEntry[[4]byte](2)
	clash.Client, clash.ClientPort = a.Client, a.ClientPort // same forward key
	if p, err := s.Insert(&clash, false); !errors.Is(err, ErrExists) || p != nil {
		t.Errorf("forward key taken: %p, %v", p, err)
	}
	clash = natEntry[[4]byte](2)
	clash.Real, clash.RPort = a.Real, a.RPort
	clash.Local, clash.LPort = a.Client, a.ClientPort // reply key is a's
	if _, err := s.Insert(&clash, true); !errors.Is(err, ErrExists) {
		t.Errorf("reply key taken: %v", err)
	}
	if _, err := s.Insert(&clash, false); err != nil { // its reply key is not wanted
		t.Errorf("forward key only, reply key taken: %v", err)
	}
	if s.Len() != 2 || !s.Full() {
		t.Fatalf("Len %d", s.Len())
	}
	b := natEntry[[4]byte](3)
	if p, err := s.Insert(&b, true); !errors.Is(err, ErrFull) || p != nil {
		t.Errorf("full: %p, %v", p, err)
	}
	if ErrFull.Error() == "" || ErrExists.Error() == "" || ErrFull == ErrExists {
		t.Error("errors")
	}
}

// NewShard4 is a test shorthand.
func NewShard4(n int) *Shard4 { return NewShard[[4]byte](n) }

// TestCapacityIsHonoured: a shard takes Cap() entries with both keys
// whatever their hashes: Insert reports ErrFull only when Full. Shards of
// two or three buckets (capacities 4 to 10) sometimes fail this, a few
// fills in a thousand: sixteen or twenty-four slots for up to twenty keys
// leave no room for the variance of two random bucket choices, and the
// random cuckoo walk sometimes misses a placement that exists. Until
// NewShard sizes small indexes with more slack, the test checks that a
// failed Insert leaves the shard as it was, reports the failures and
// skips.
func TestCapacityIsHonoured(t *testing.T) {
	runs := 300
	if testing.Short() {
		runs = 50
	}
	type fill struct {
		capacity int
		seed     uint64
	}
	// Fills known to fail: on the reply key (cap 5 and 10 seed 256: the
	// failure path that erases the forward key again) and on the forward
	// key (cap 10 seed 958).
	fills := []fill{{5, 1383}, {6, 1383}, {10, 256}, {10, 958}}
	for capacity := 1; capacity <= 64; capacity++ {
		for seed := range uint64(runs) {
			fills = append(fills, fill{capacity, seed})
		}
	}
	var early []string
	for _, f := range fills {
		r := rand.New(rand.NewPCG(f.seed, 7))
		s := NewShard4(f.capacity)
		seedShard(s, r)
		for i := uint32(0); !s.Full(); i++ {
			e := natEntry[[4]byte](i)
			p, err := s.Insert(&e, true)
			if err == nil {
				continue
			}
			where := fmt.Sprintf("cap %d (%d buckets) seed %d: natEntry(%d): %v at Len %d, Full %v",
				f.capacity, len(s.buckets), f.seed, i, err, s.Len(), s.Full())
			early = append(early, where)
			// The failed Insert left the shard as it was.
			fk, rk := e.ForwardKey(), e.ReplyKey()
			if a, _ := s.Lookup(&fk); a != nil || p != nil || s.Len() != int(i) || slotsUsed(s) != 2*int(i) {
				t.Fatalf("%s: the failed Insert changed the shard: %d slots used for %d entries", where, slotsUsed(s), s.Len())
			}
			if a, _ := s.Lookup(&rk); a != nil {
				t.Fatalf("%s: the failed Insert left its reply key", where)
			}
			for j := range i {
				old := natEntry[[4]byte](j)
				fk, rk := old.ForwardKey(), old.ReplyKey()
				if a, _ := s.Lookup(&fk); a == nil || a.RealID != j {
					t.Fatalf("%s: lost the forward key of %d", where, j)
				}
				if a, _ := s.Lookup(&rk); a == nil || a.RealID != j {
					t.Fatalf("%s: lost the reply key of %d", where, j)
				}
			}
			break
		}
	}
	if len(early) > 0 {
		t.Errorf("%d of %d fills got ErrFull before Full():\n%s",
			len(early), len(fills), strings.Join(early, "\n"))
	}
}
