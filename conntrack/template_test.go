package conntrack

import (
	"net/netip"
	"sync"
	"testing"
)

func tkey(a, b, c, d byte) TemplateKey {
	return MaskedTemplateKey([4]byte{a, b, c, d}, [4]byte{10, 20, 0, 100}, 80, 6, 24)
}

func TestMaskedTemplateKey(t *testing.T) {
	if tkey(10, 1, 2, 3) != tkey(10, 1, 2, 200) {
		t.Error("two clients of one /24 have different templates")
	}
	if tkey(10, 1, 2, 3) == tkey(10, 1, 3, 3) {
		t.Error("clients of two /24s share a template")
	}
	k := MaskedTemplateKey([4]byte{10, 1, 2, 3}, [4]byte{}, 80, 6, 32)
	if k.Client.As4() != [4]byte{10, 1, 2, 3} {
		t.Errorf("/32 masked to %v", k.Client.As4())
	}
}

func TestTemplateLifecycle(t *testing.T) {
	const sec = int64(1e9)
	tt := NewTemplates(10)
	k := tkey(10, 1, 2, 3)
	usable := map[uint32]bool{1: true, 2: true}
	isUsable := func(id uint32) bool { return usable[id] }
	next := uint32(1)
	picks := 0
	pick := func() (uint32, bool) { picks++; return next, true }

	step := func(now int64, ref bool, wantID uint32, wantOut Outcome) {
		t.Helper()
		id, out, _ := tt.Schedule(&k, now, 10*sec, ref, isUsable, pick)
		if id != wantID || out != wantOut {
			t.Fatalf("at %ds: Schedule = real %d outcome %d, want real %d outcome %d", now/sec, id, out, wantID, wantOut)
		}
	}
	step(0, true, 1, Created)
	next = 2 // the scheduler would now say 2; the template keeps 1
	step(1*sec, true, 1, Reused)
	// Two connections hold it: it outlives its timeout.
	if n := tt.Expire(100*sec, templateStripes, func(uint32) { t.Error("expired while held") }); n != 0 {
		t.Fatalf("Expire removed %d held templates", n)
	}
	step(100*sec, false, 1, Reused) // one packet: no reference
	tt.Release(&k, 1, 100*sec)
	tt.Release(&k, 1, 200*sec) // the last one ends at 200s: alive until 210s
	step(209*sec, true, 1, Reused)
	tt.Release(&k, 1, 209*sec)
	if n := tt.Expire(218*sec, templateStripes, func(uint32) {}); n != 0 {
		t.Fatalf("Expire at 218s removed %d, want 0 (alive until 219s)", n)
	}
	var gone []uint32
	if n := tt.Expire(219*sec, templateStripes, func(id uint32) { gone = append(gone, id) }); n != 1 || len(gone) != 1 || gone[0] != 1 {
		t.Fatalf("Expire at 219s removed %d %v, want real 1", n, gone)
	}
	if tt.Len() != 0 {
		t.Fatalf("Len = %d after expiry", tt.Len())
	}

	// The real becomes unusable: the client is rescheduled and the old
	// connection's release does not touch the new template.
	next = 1
	step(300*sec, true, 1, Created)
	usable[1] = false
	next = 2
	id, out, old := tt.Schedule(&k, 301*sec, 10*sec, true, isUsable, pick)
	if id != 2 || out != Replaced || old != 1 {
		t.Fatalf("Schedule after real 1 went = %d %d old %d, want 2 Replaced old 1", id, out, old)
	}
	tt.Release(&k, 1, 302*sec) // the connection to real 1 ends
	if n := tt.Expire(1000*sec, templateStripes, func(uint32) {}); n != 0 {
		t.Fatal("a stale release freed the new template")
	}
	if got := tt.DumpInto(nil); len(got) != 1 || got[0].RealID != 2 || got[0].Conns != 1 {
		t.Fatalf("Dump = %+v", got)
	}
}

// TestTemplatesFull: a stripe holds capacity/64 templates (rounded up);
// a new client whose stripe is full is scheduled without a template.
func TestTemplatesFull(t *testing.T) {
	tt := NewTemplates(2 * templateStripes) // two per stripe
	pick := func() (uint32, bool) { return 7, true }
	ok := func(uint32) bool { return true }
	// Three clients of one stripe.
	var keys []TemplateKey
	first := tkey(10, 0, 0, 1)
	for i := 0; len(keys) < 3 && i < 1<<16; i++ {
		k := tkey(11, byte(i>>8), byte(i), 1)
		if len(keys) == 0 {
			first = k
		}
		if tt.stripe(&k) == tt.stripe(&first) {
			keys = append(keys, k)
		}
	}
	if len(keys) < 3 {
		t.Fatal("no three clients of one stripe")
	}
	for i, k := range keys {
		_, out, _ := tt.Schedule(&k, 0, 1e9, true, ok, pick)
		if want := map[bool]Outcome{true: Created, false: Full}[i < 2]; out != want {
			t.Errorf("template %d: outcome %d, want %d", i, out, want)
		}
	}
	if tt.Len() != 2 {
		t.Errorf("Len = %d, want 2", tt.Len())
	}
	// Another stripe still has room.
	for i := 0; i < 1<<16; i++ {
		k := tkey(12, byte(i>>8), byte(i), 1)
		if tt.stripe(&k) != tt.stripe(&first) {
			if _, out, _ := tt.Schedule(&k, 0, 1e9, true, ok, pick); out != Created {
				t.Errorf("a client of another stripe: outcome %d, want Created", out)
			}
			break
		}
	}
	k := tkey(10, 9, 9, 9)
	if id, out, _ := tt.Schedule(&k, 0, 1e9, true, ok, func() (uint32, bool) { return 0, false }); out != NoReal || id != 0 {
		t.Errorf("no real: %d %d", id, out)
	}
}

// TestTemplatesConcurrent: many goroutines scheduling clients of one
// prefix all get the one real of its template. Run with -race.
func TestTemplatesConcurrent(t *testing.T) {
	tt := NewTemplates(1000)
	var mu sync.Mutex
	next := uint32(0)
	pick := func() (uint32, bool) { mu.Lock(); defer mu.Unlock(); next++; return next, true }
	ok := func(uint32) bool { return true }
	ids := make([]uint32, 8)
	var wg sync.WaitGroup
	for g := range ids {
		wg.Go(func() {
			for i := range 100 {
				k := tkey(10, 1, 2, byte(i))
				id, _, _ := tt.Schedule(&k, 0, 1e9, true, ok, pick)
				if ids[g] == 0 {
					ids[g] = id
				} else if id != ids[g] {
					t.Errorf("goroutine %d got real %d then %d", g, ids[g], id)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("reals %v: one prefix, several reals", ids)
		}
	}
	if next != 1 {
		t.Errorf("scheduler called %d times for one prefix", next)
	}
}

// TestTemplatePut: a synced template is created lapsing at its time, kept
// alive by a later report, re-pointed by a report naming another real,
// and then reused by Schedule like any other.
func TestTemplatePut(t *testing.T) {
	const sec = int64(1e9)
	tt := NewTemplates(10)
	k := tkey(10, 1, 2, 3)
	if out, _ := tt.Put(&k, 1, 30*sec, 10*sec); out != Created || tt.Len() != 1 {
		t.Fatalf("Put = %v, Len %d", out, tt.Len())
	}
	if out, _ := tt.Put(&k, 1, 20*sec, 10*sec); out != Reused {
		t.Fatalf("second Put = %v", out)
	}
	if n := tt.Expire(29*sec, templateStripes, func(uint32) {}); n != 0 {
		t.Fatal("an earlier report shortened the template")
	}
	if out, old := tt.Put(&k, 2, 40*sec, 10*sec); out != Replaced || old != 1 {
		t.Fatalf("Put naming real 2 = %v old %d", out, old)
	}
	id, out, _ := tt.Schedule(&k, 35*sec, 10*sec, true, func(uint32) bool { return true }, func() (uint32, bool) { return 9, true })
	if id != 2 || out != Reused {
		t.Fatalf("Schedule after Put = real %d %v, want 2 Reused", id, out)
	}
	tt.Release(&k, 2, 36*sec)
	var gone []uint32
	if n := tt.Expire(46*sec, templateStripes, func(id uint32) { gone = append(gone, id) }); n != 1 || gone[0] != 2 {
		t.Fatalf("Expire at 46s: %d %v", n, gone)
	}
}

// TestTemplateLookup: Lookup finds a live template, held or lapsing, and
// not an expired one or another client's, and changes nothing: the
// template's connections and lapse time are as before, and a Lookup of a
// missing template creates none.
func TestTemplateLookup(t *testing.T) {
	const sec = int64(1e9)
	tt := NewTemplates(10)
	k, other := tkey(10, 1, 2, 3), tkey(10, 1, 3, 3)
	if _, ok := tt.Lookup(&k, 0); ok || tt.Len() != 0 {
		t.Fatalf("Lookup in an empty table: found %v, Len %d", ok, tt.Len())
	}
	pick := func() (uint32, bool) { return 4, true }
	usable := func(uint32) bool { return true }
	tt.Schedule(&k, 0, 10*sec, true, usable, pick)
	before := tt.DumpInto(nil)
	for range 3 {
		info, ok := tt.Lookup(&k, 5*sec)
		if !ok || info.RealID != 4 || info.Conns != 1 || info.Key != k || info.Expires != held {
			t.Fatalf("Lookup of a held template = %+v, %v", info, ok)
		}
	}
	if _, ok := tt.Lookup(&other, 5*sec); ok {
		t.Error("Lookup found another client's template")
	}
	if after := tt.DumpInto(nil); len(after) != 1 || after[0] != before[0] || tt.Len() != 1 {
		t.Fatalf("Lookup changed the table: %+v, was %+v", after, before)
	}
	tt.Release(&k, 4, 20*sec) // lapses at 30s
	if info, ok := tt.Lookup(&k, 29*sec); !ok || info.Conns != 0 || info.Expires != 30*sec {
		t.Errorf("Lookup of a lapsing template = %+v, %v", info, ok)
	}
	if _, ok := tt.Lookup(&k, 30*sec); ok {
		t.Error("Lookup found an expired template")
	}
	// Lookup did not refresh it: it expires at 30s still.
	if n := tt.Expire(30*sec, templateStripes, func(uint32) {}); n != 1 {
		t.Errorf("Expire at 30s removed %d, want the template", n)
	}
}

func TestMaskedTemplateKey6(t *testing.T) {
	client := netip.MustParseAddr("fd00:10:abcd:ef12:3456:789a:bcde:f012").As16()
	vip := netip.MustParseAddr("fd00:20::100").As16()
	for _, tt := range []struct {
		bits uint8
		want string
	}{
		{128, "fd00:10:abcd:ef12:3456:789a:bcde:f012"},
		{64, "fd00:10:abcd:ef12::"},
		{60, "fd00:10:abcd:ef10::"},
		{49, "fd00:10:abcd:8000::"},
		{1, "8000::"},
		{200, "fd00:10:abcd:ef12:3456:789a:bcde:f012"}, // clamped to 128
	} {
		k := MaskedTemplateKey6(client, vip, 80, 6, tt.bits)
		if got := netip.AddrFrom16(k.Client); got != netip.MustParseAddr(tt.want) {
			t.Errorf("/%d: client %v, want %s", tt.bits, got, tt.want)
		}
		if k.VIP != Addr(vip) || k.VPort != 80 || k.Proto != 6 {
			t.Errorf("/%d: VIP %v port %d proto %d", tt.bits, netip.AddrFrom16(k.VIP), k.VPort, k.Proto)
		}
	}
	other := netip.MustParseAddr("fd00:10:abcd:ef13::1").As16()
	if MaskedTemplateKey6(client, vip, 80, 6, 64) == MaskedTemplateKey6(other, vip, 80, 6, 64) {
		t.Error("clients of two /64s share a template")
	}
	if MaskedTemplateKey6(client, vip, 80, 6, 48) != MaskedTemplateKey6(other, vip, 80, 6, 48) {
		t.Error("two clients of one /48 have different templates")
	}
}
