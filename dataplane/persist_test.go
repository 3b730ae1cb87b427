package dataplane

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

// twoRealTable is a DR service over two reals scheduled round robin, with
// the given persistence and one-packet flag.
func twoRealTable(t *testing.T, proto uint8, persist time.Duration, bits uint8, ops bool) *Table {
	t.Helper()
	tbl := testTable(ForwardDR, proto)
	r2 := tbl.Reals[0]
	r2.ID, r2.Addr, r2.MAC = 1, [4]byte{10, 20, 0, 12}, mustMAC("02:00:00:00:00:12")
	r2.Counters, r2.Stats = new(schedule.Counters), new(RealStats)
	tbl.Reals = append(tbl.Reals, r2)
	svc := tbl.Services[ServiceKey{Proto: proto, VIP: ipVIP.As4(), Port: vport}]
	svc.Reals = []uint32{0, 1}
	svc.Dests = []schedule.Dest{{Weight: 1, Counters: tbl.Reals[0].Counters}, {Weight: 1, Counters: r2.Counters}}
	var err error
	if svc.Sched, err = schedule.New("rr", svc.Dests, schedule.Options{}); err != nil {
		t.Fatal(err)
	}
	svc.Persist, svc.PersistBits, svc.OPS = persist, bits, ops
	return tbl
}

// sendFrom sends one new-connection packet from src:sport and returns the
// index of the real it went to (by destination MAC), or -1.
func sendFrom(t *testing.T, w *Worker, tbl *Table, proto uint8, src netip.Addr, sport uint16, now int64) int {
	t.Helper()
	p := client(proto)
	p.src, p.sport, p.syn = src, sport, true
	b := p.bytes(t)
	buf := make([]byte, Headroom+MaxFrame)
	copy(buf[Headroom:], b)
	out, v := w.process(tbl, buf, len(b), make([]byte, 128), now)
	if v != VerdictForward {
		t.Fatalf("from %s:%d: verdict %v", src, sport, v)
	}
	dst := header.Ethernet(out).Destination()
	for i, r := range tbl.Reals {
		if r.MAC == dst {
			return i
		}
	}
	return -1
}

func newTestWorker(tbl *Table) *Worker {
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, nil, &ptr, 1024)
	w.cur = tbl
	return w
}

func TestPersistence(t *testing.T) {
	const sec = int64(time.Second)
	tbl := twoRealTable(t, header.ProtoTCP, 60*time.Second, 24, false)
	w := newTestWorker(tbl)
	a := netip.MustParseAddr("10.10.0.2")
	first := sendFrom(t, w, tbl, header.ProtoTCP, a, 1000, 1*sec)
	// Without persistence rr would alternate; the client keeps its real,
	// and so does its /24 neighbour.
	for i := range 10 {
		if got := sendFrom(t, w, tbl, header.ProtoTCP, a, uint16(1001+i), 2*sec); got != first {
			t.Fatalf("connection %d of the client went to real %d, its template says %d", i+2, got, first)
		}
	}
	if got := sendFrom(t, w, tbl, header.ProtoTCP, netip.MustParseAddr("10.10.0.77"), 5000, 2*sec); got != first {
		t.Fatalf("a client of the same /24 went to real %d, want %d", got, first)
	}
	other := sendFrom(t, w, tbl, header.ProtoTCP, netip.MustParseAddr("10.11.0.2"), 5000, 2*sec)
	if other == first {
		t.Fatalf("another /24 went to real %d too: rr should have given it the other", other)
	}
	if p := tbl.Reals[first].Counters.Persistent.Load(); p != 1 {
		t.Errorf("PersistConn of real %d = %d, want 1", first, p)
	}
	if n := w.templates.Len(); n != 2 {
		t.Errorf("%d templates, want 2", n)
	}

	// The connections (SYN only: NONE state, 15-min TCP timeout in this
	// table... use a short expiry) end; the template outlives them by 60s.
	end := int64(tbl.Timeouts.TCP) + 3*sec
	w.now = end
	w.shard.Expire(end, 1<<20, w.onExpireFn)
	if w.shard.Len() != 0 {
		t.Fatalf("%d connections left", w.shard.Len())
	}
	if got := sendFrom(t, w, tbl, header.ProtoTCP, a, 2000, end+50*sec); got != first {
		t.Fatalf("50s after the last connection ended: real %d, want %d", got, first)
	}
	// That connection ends too; 61s later nothing holds the template.
	end2 := end + 50*sec + int64(tbl.Timeouts.TCP) + sec
	w.now = end2
	w.shard.Expire(end2, 1<<20, w.onExpireFn)
	w.templates.Expire(end2+61*sec, 64, w.tplGoneFn)
	if n := w.templates.Len(); n != 0 {
		t.Fatalf("%d templates after expiry, want 0", n)
	}
	if p := tbl.Reals[first].Counters.Persistent.Load(); p != 0 {
		t.Errorf("PersistConn of real %d after expiry = %d, want 0", first, p)
	}
	if a, i := tbl.Reals[first].Counters.Active.Load(), tbl.Reals[first].Counters.Inactive.Load(); a != 0 || i != 0 {
		t.Errorf("real %d counters after expiry: active %d inactive %d", first, a, i)
	}
}

// TestPersistenceRealRemoved: a template whose real left the service (or
// is not ready) sends its client elsewhere.
func TestPersistenceRealRemoved(t *testing.T) {
	tbl := twoRealTable(t, header.ProtoTCP, time.Hour, 32, false)
	w := newTestWorker(tbl)
	a := netip.MustParseAddr("10.10.0.2")
	first := sendFrom(t, w, tbl, header.ProtoTCP, a, 1000, 1)
	// Republish without the first real, as the compiler does: a zero Real.
	t2 := *tbl
	t2.Reals = append([]Real(nil), tbl.Reals...)
	t2.Reals[first] = Real{}
	svc := *tbl.Services[ServiceKey{Proto: header.ProtoTCP, VIP: ipVIP.As4(), Port: vport}]
	keep := 1 - first
	svc.Reals = []uint32{uint32(keep)}
	svc.Dests = []schedule.Dest{{Weight: 1, Counters: tbl.Reals[keep].Counters}}
	var err error
	if svc.Sched, err = schedule.New("rr", svc.Dests, schedule.Options{}); err != nil {
		t.Fatal(err)
	}
	t2.Services = map[ServiceKey]*Service{{Proto: header.ProtoTCP, VIP: ipVIP.As4(), Port: vport}: &svc}
	if got := sendFrom(t, w, &t2, header.ProtoTCP, a, 1001, 2); got != keep {
		t.Fatalf("after its real was removed the client went to %d, want %d", got, keep)
	}
	if got := sendFrom(t, w, &t2, header.ProtoTCP, a, 1002, 3); got != keep {
		t.Fatalf("the new template is not used: %d", got)
	}

	// Not ready (MAC lost) counts as unavailable too; quiescent does not.
	t3 := *tbl
	t3.Reals = append([]Real(nil), tbl.Reals...)
	b := netip.MustParseAddr("10.10.9.9")
	bfirst := sendFrom(t, w, tbl, header.ProtoTCP, b, 1000, 4)
	svc3 := *tbl.Services[ServiceKey{Proto: header.ProtoTCP, VIP: ipVIP.As4(), Port: vport}]
	svc3.Dests = append([]schedule.Dest(nil), svc3.Dests...)
	svc3.Dests[bfirst].Weight = 0
	if svc3.Sched, err = schedule.New("rr", svc3.Dests, schedule.Options{}); err != nil {
		t.Fatal(err)
	}
	t3.Services = map[ServiceKey]*Service{{Proto: header.ProtoTCP, VIP: ipVIP.As4(), Port: vport}: &svc3}
	if got := sendFrom(t, w, &t3, header.ProtoTCP, b, 1001, 5); got != bfirst {
		t.Fatalf("quiescent real: persistent client moved to %d, IPVS keeps it on %d", got, bfirst)
	}
	t3.Reals[bfirst].Ready = false
	if got := sendFrom(t, w, &t3, header.ProtoTCP, b, 1002, 6); got == bfirst {
		t.Fatalf("not-ready real %d kept its persistent client", got)
	}
}

// TestOPS: every datagram of one flow is scheduled on its own; no entry
// is kept.
func TestOPS(t *testing.T) {
	tbl := twoRealTable(t, header.ProtoUDP, 0, 32, true)
	w := newTestWorker(tbl)
	a := netip.MustParseAddr("10.10.0.2")
	var got [2]int
	for i := range 10 {
		got[sendFrom(t, w, tbl, header.ProtoUDP, a, 1000, int64(i))]++
	}
	if got != [2]int{5, 5} {
		t.Errorf("10 datagrams of one flow went %v, want 5 and 5", got)
	}
	if w.shard.Len() != 0 {
		t.Errorf("%d entries kept for a one-packet service", w.shard.Len())
	}
	for i, r := range tbl.Reals {
		if c := r.Counters; c.Active.Load() != 0 || c.Inactive.Load() != 0 {
			t.Errorf("real %d counters moved: %d/%d", i, c.Active.Load(), c.Inactive.Load())
		}
		if n := r.Stats.Conns.Load(); n != 5 {
			t.Errorf("real %d counted %d connections, want 5", i, n)
		}
	}
	// With persistence, one-packet scheduling keeps the client on one real.
	tbl = twoRealTable(t, header.ProtoUDP, time.Minute, 32, true)
	w = newTestWorker(tbl)
	first := sendFrom(t, w, tbl, header.ProtoUDP, a, 1000, 0)
	for i := range 5 {
		if r := sendFrom(t, w, tbl, header.ProtoUDP, a, uint16(1001+i), int64(i+1)); r != first {
			t.Fatalf("persistent ops datagram %d went to %d, want %d", i, r, first)
		}
	}
	if w.shard.Len() != 0 {
		t.Errorf("%d entries kept", w.shard.Len())
	}
}

func TestZeroAllocsPersistence(t *testing.T) {
	tbl := twoRealTable(t, header.ProtoUDP, time.Minute, 32, false)
	w := newTestWorker(tbl)
	frame := client(header.ProtoUDP).bytes(t)
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	port := uint16(1)
	send := func() {
		copy(buf[Headroom:], frame)
		header.UDP(header.IPv4(buf[Headroom+header.EthernetLen:]).Payload()).SetSourcePortWithChecksumUpdate(port)
		port++
		if _, v := w.process(tbl, buf, len(frame), icmp, 2); v != VerdictForward {
			t.Fatalf("verdict %v", v)
		}
	}
	for range 300 {
		send()
	}
	if allocs := testing.AllocsPerRun(200, send); allocs != 0 {
		t.Errorf("%.1f allocations per persistent new connection, want 0", allocs)
	}
}
