package dataplane

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// tcpFrom sends one TCP segment from the client's port sport with the
// given flags (syn, ack, fin) and returns the verdict and the real it went
// to (-1 if none).
func tcpFrom(t *testing.T, w *Worker, tbl *Table, sport uint16, flags string, now int64) (Verdict, int) {
	t.Helper()
	p := client(header.ProtoTCP)
	p.sport, p.payload = sport, nil
	for _, f := range flags {
		switch f {
		case 'S':
			p.syn = true
		case 'A':
			p.ack = true
		case 'F':
			p.fin = true
		case 'R':
			p.rst = true
		}
	}
	b := p.bytes(t)
	buf := make([]byte, Headroom+MaxFrame)
	copy(buf[Headroom:], b)
	w.cur, w.now = tbl, now
	out, v := w.process(tbl, buf, len(b), make([]byte, 128), now)
	if out == nil {
		return v, -1
	}
	dst := header.Ethernet(out).Destination()
	for i, r := range tbl.Reals {
		if r.MAC == dst {
			return v, i
		}
	}
	return v, -1
}

func entryState(t *testing.T, w *Worker, sport uint16) conntrack.State {
	t.Helper()
	k := conntrack.Key4{Src: ipClient.As4(), Dst: ipVIP.As4(), SrcPort: sport, DstPort: vport, Proto: header.ProtoTCP}
	e, _ := w.shard.Lookup(&k)
	if e == nil {
		t.Fatalf("no entry for client port %d", sport)
	}
	return e.State
}

// TestSYNReusesClosingEntry: a client that reuses its port while the old
// connection's entry lingers in FIN_WAIT, TIME_WAIT or CLOSE gets a new
// connection at once, scheduled afresh (rr moves it to the other real),
// not a dropped SYN; a SYN for an established entry stays on it.
func TestSYNReusesClosingEntry(t *testing.T) {
	const sec = int64(time.Second)
	for _, c := range []struct {
		name  string
		close string // the last client segment before the new SYN
		want  conntrack.State
	}{
		{"FIN_WAIT", "FA", conntrack.TCPFinWait},
		{"CLOSE", "R", conntrack.TCPClose},
	} {
		t.Run(c.name, func(t *testing.T) {
			tbl := twoRealTable(t, header.ProtoTCP, 0, 32, false)
			w := newTestWorker(tbl)
			v, first := tcpFrom(t, w, tbl, 1000, "S", 1*sec)
			if v != VerdictForward {
				t.Fatalf("SYN: %v", v)
			}
			tcpFrom(t, w, tbl, 1000, "A", 2*sec)
			tcpFrom(t, w, tbl, 1000, c.close, 3*sec)
			if s := entryState(t, w, 1000); s != c.want {
				t.Fatalf("state before the new SYN: %v, want %v", s, c.want)
			}
			v, second := tcpFrom(t, w, tbl, 1000, "S", 4*sec)
			if v != VerdictForward || second == first || second < 0 {
				t.Fatalf("new SYN on a %v entry: verdict %v to real %d (first was %d): want a new connection on the other real", c.want, v, second, first)
			}
			if s := entryState(t, w, 1000); s != conntrack.TCPSynRecv {
				t.Errorf("state after the new SYN: %v, want SYN_RECV", s)
			}
			if w.C.Reused.Load() != 1 || w.C.NewConns.Load() != 2 || w.shard.Len() != 1 {
				t.Errorf("reused %d, new %d, entries %d; want 1, 2, 1", w.C.Reused.Load(), w.C.NewConns.Load(), w.shard.Len())
			}
			var act, inact int64
			for _, r := range tbl.Reals {
				act += r.Counters.Active.Load()
				inact += r.Counters.Inactive.Load()
			}
			if act != 1 || inact != 0 {
				t.Errorf("counters after reuse: active %d inactive %d, want 1 and 0 (the old entry released)", act, inact)
			}
		})
	}
	t.Run("ESTABLISHED", func(t *testing.T) {
		tbl := twoRealTable(t, header.ProtoTCP, 0, 32, false)
		w := newTestWorker(tbl)
		_, first := tcpFrom(t, w, tbl, 1000, "S", 1*sec)
		tcpFrom(t, w, tbl, 1000, "A", 2*sec)
		if _, again := tcpFrom(t, w, tbl, 1000, "S", 3*sec); again != first || w.C.Reused.Load() != 0 {
			t.Errorf("SYN on an established entry went to real %d (was %d), reused %d", again, first, w.C.Reused.Load())
		}
	})
}

// TestRealGoneReschedules: a SYN (or a UDP datagram) whose entry is bound
// to a real that left the service or is not ready is scheduled again
// (IPVS expire_nodest_conn); any other segment of such a connection is
// dropped.
func TestRealGoneReschedules(t *testing.T) {
	const sec = int64(time.Second)
	tbl := twoRealTable(t, header.ProtoTCP, 0, 32, false)
	w := newTestWorker(tbl)
	_, first := tcpFrom(t, w, tbl, 1000, "S", 1*sec)
	tcpFrom(t, w, tbl, 1000, "A", 2*sec)
	down := *tbl
	down.Reals = append([]Real(nil), tbl.Reals...)
	down.Reals[first].Ready = false
	if v, _ := tcpFrom(t, w, &down, 1000, "A", 3*sec); v != VerdictNoReal {
		t.Fatalf("ACK of a connection whose real is down: %v, want no_real", v)
	}
	v, got := tcpFrom(t, w, &down, 1000, "S", 4*sec)
	if v != VerdictForward || got == first {
		t.Fatalf("SYN whose entry's real is down: %v to real %d, want the other than %d", v, got, first)
	}
	if w.C.Rescheduled.Load() != 1 || w.shard.Len() != 1 {
		t.Errorf("rescheduled %d, entries %d; want 1, 1", w.C.Rescheduled.Load(), w.shard.Len())
	}
}

// TestLateExpiredEntryIsNotUsed: an entry past its time that the sweep has
// not reached yet is removed by the next packet, which is then treated as
// a new connection.
func TestLateExpiredEntryIsNotUsed(t *testing.T) {
	const sec = int64(time.Second)
	tbl := twoRealTable(t, header.ProtoTCP, 0, 32, false)
	w := newTestWorker(tbl)
	tcpFrom(t, w, tbl, 1000, "S", 1*sec)
	later := 1*sec + int64(tbl.Timeouts.Timeout(conntrack.TCPSynRecv)) + sec
	if v, _ := tcpFrom(t, w, tbl, 1000, "A", later); v != VerdictNoConn {
		t.Fatalf("ACK after the SYN_RECV timeout: %v, want no_conn", v)
	}
	if w.C.LateExpired.Load() != 1 || w.shard.Len() != 0 {
		t.Errorf("late-expired %d, entries %d; want 1, 0", w.C.LateExpired.Load(), w.shard.Len())
	}
}

// TestFullTableEvictsHalfOpen: a full shard makes room for a new
// connection by evicting a half-open entry, never an established one;
// when every entry is established the new connection is refused.
func TestFullTableEvictsHalfOpen(t *testing.T) {
	const sec = int64(time.Second)
	tbl := twoRealTable(t, header.ProtoTCP, 0, 32, false)
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, nil, &ptr, 8)
	for p := range uint16(8) {
		if v, _ := tcpFrom(t, w, tbl, 1000+p, "S", 1*sec+int64(p)); v != VerdictForward {
			t.Fatalf("SYN %d: %v", p, v)
		}
	}
	if !w.shard.Full() {
		t.Fatal("8 SYNs did not fill a shard of 8")
	}
	if v, _ := tcpFrom(t, w, tbl, 2000, "S", 2*sec); v != VerdictForward {
		t.Fatalf("SYN into a full shard of half-open entries: %v, want forward", v)
	}
	if w.C.Evicted.Load() != 1 || w.shard.Len() != 8 {
		t.Fatalf("evicted %d, entries %d; want 1, 8", w.C.Evicted.Load(), w.shard.Len())
	}
	// Establish everything that is left; now nothing may go.
	for _, e := range w.shard.Dump() {
		tcpFrom(t, w, tbl, e.ClientPort, "A", 3*sec)
	}
	if v, _ := tcpFrom(t, w, tbl, 2001, "S", 4*sec); v != VerdictTableFull {
		t.Fatalf("SYN into a shard of established entries: %v, want table_full", v)
	}
	if w.C.Evicted.Load() != 1 || w.shard.Len() != 8 {
		t.Errorf("evicted %d, entries %d after the refusal; want 1, 8", w.C.Evicted.Load(), w.shard.Len())
	}
	var act, inact int64
	for _, r := range tbl.Reals {
		act += r.Counters.Active.Load()
		inact += r.Counters.Inactive.Load()
	}
	if act != 8 || inact != 0 {
		t.Errorf("counters: active %d inactive %d, want 8 and 0", act, inact)
	}
}
