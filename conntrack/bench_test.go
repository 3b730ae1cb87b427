package conntrack

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// The benchmark tables are filled to capacity with natEntry connections,
// both keys each: the index at its highest load, the worst case for a
// lookup. Each is built once per process and shared by the benchmarks.

// benchTable is a shard that holds natEntry(id) for every id in [lo, hi).
// BenchmarkInsert moves the window; it leaves the shard full again.
type benchTable struct {
	s      *Shard4
	lo, hi uint32
}

// newBenchTable returns a full table of n connections, inserted directly:
// 10 million take a few seconds.
func newBenchTable(n int) *benchTable {
	s := NewShard[[4]byte](n)
	for i := range uint32(n) {
		e := natEntry[[4]byte](i)
		if _, err := s.Insert(&e, true); err != nil {
			panic(fmt.Sprintf("filling the benchmark table: Insert %d of %d: %v", i, n, err))
		}
	}
	return &benchTable{s: s, hi: uint32(n)}
}

// benchSizes are the table sizes of the Shard4 benchmarks.
var benchSizes = []struct {
	name  string
	table func() *benchTable
}{
	{"1M", sync.OnceValue(func() *benchTable { return newBenchTable(1 << 20) })},
	{"10M", sync.OnceValue(func() *benchTable { return newBenchTable(10_000_000) })},
}

// benchKeys is the number of keys a lookup benchmark cycles through: a
// power of two, and many more than the caches hold buckets of a table.
const benchKeys = 1 << 16

// hitKeys returns benchKeys keys of random live connections of t, half
// forward and half reply.
func hitKeys(t *benchTable, r *rand.Rand) []Key4 {
	keys := make([]Key4, benchKeys)
	for i := range keys {
		e := natEntry[[4]byte](t.lo + r.Uint32N(t.hi-t.lo))
		if i%2 == 0 {
			keys[i] = e.ForwardKey()
		} else {
			keys[i] = e.ReplyKey()
		}
	}
	return keys
}

// missKeys returns benchKeys keys of connections no table holds: ids from
// 1<<31 on, which no window of live ids reaches.
func missKeys(r *rand.Rand) []Key4 {
	keys := make([]Key4, benchKeys)
	for i := range keys {
		e := natEntry[[4]byte](1<<31 + r.Uint32N(1<<30))
		if i%2 == 0 {
			keys[i] = e.ForwardKey()
		} else {
			keys[i] = e.ReplyKey()
		}
	}
	return keys
}

// sinkID keeps the loads of the lookup benchmarks alive.
var sinkID uint32

func reportBytesPerConn[A IP](b *testing.B, s *Shard[A]) {
	b.ReportMetric(float64(s.Bytes())/float64(s.Len()), "bytes/conn")
}

// benchLookupHit looks up keys, which must all be in s, in turn, and reads
// RealID from each entry found, as the dataplane reads the entry.
func benchLookupHit[A IP](b *testing.B, s *Shard[A], keys []Key[A]) {
	b.ReportAllocs()
	var sum uint32
	i := 0
	for b.Loop() {
		e, _ := s.Lookup(&keys[i&(benchKeys-1)])
		if e == nil {
			b.Fatal("miss")
		}
		sum += e.RealID
		i++
	}
	sinkID = sum
	reportBytesPerConn(b, s)
}

func BenchmarkLookupHit(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			t := size.table()
			benchLookupHit(b, t.s, hitKeys(t, rand.New(rand.NewPCG(1, 1))))
		})
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			t := size.table()
			keys := missKeys(rand.New(rand.NewPCG(2, 2)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if e, _ := t.s.Lookup(&keys[i&(benchKeys-1)]); e != nil {
					b.Fatalf("hit: %+v", *e)
				}
				i++
			}
			reportBytesPerConn(b, t.s)
		})
	}
}

var bench6 = sync.OnceValue(func() *Shard6 {
	const n = 1 << 20
	s := NewShard[[16]byte](n)
	for i := range uint32(n) {
		e := natEntry[[16]byte](i)
		if _, err := s.Insert(&e, true); err != nil {
			panic(fmt.Sprintf("filling the IPv6 benchmark table: Insert %d: %v", i, err))
		}
	}
	return s
})

func BenchmarkLookupHit6(b *testing.B) {
	b.Run("1M", func(b *testing.B) {
		s := bench6()
		r := rand.New(rand.NewPCG(3, 3))
		keys := make([]Key6, benchKeys)
		for i := range keys {
			e := natEntry[[16]byte](r.Uint32N(uint32(s.Len())))
			if i%2 == 0 {
				keys[i] = e.ForwardKey()
			} else {
				keys[i] = e.ReplyKey()
			}
		}
		benchLookupHit(b, s, keys)
	})
}

// warmBatch is the number of keys the batch benchmarks handle at a time:
// the dataplane's batch.
const warmBatch = 64

// warmModes are the two ways the batch benchmarks treat a batch: one key
// after the other, as BenchmarkLookupHit and BenchmarkInsert do, or after
// Warm on the whole batch.
var warmModes = []struct {
	name string
	warm bool
}{{"cold", false}, {"warm", true}}

// BenchmarkLookupBatch looks up the keys of BenchmarkLookupHit warmBatch
// at a time, as a worker does, and reads RealID from each entry found.
// ns/op is one batch; ns/key is comparable to BenchmarkLookupHit's ns/op.
func BenchmarkLookupBatch(b *testing.B) {
	for _, size := range benchSizes {
		for _, mode := range warmModes {
			b.Run(size.name+"/"+mode.name, func(b *testing.B) {
				t := size.table()
				keys := hitKeys(t, rand.New(rand.NewPCG(1, 1)))
				b.ReportAllocs()
				var sum uint32
				i := 0
				for b.Loop() {
					batch := keys[i : i+warmBatch]
					if mode.warm {
						t.s.Warm(batch)
					}
					for j := range batch {
						e, _ := t.s.Lookup(&batch[j])
						if e == nil {
							b.Fatal("miss")
						}
						sum += e.RealID
					}
					i = (i + warmBatch) & (benchKeys - 1)
				}
				sinkID = sum
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*warmBatch), "ns/key")
				reportBytesPerConn(b, t.s)
			})
		}
	}
}

// insertBatch is how many of the oldest connections BenchmarkInsert
// deletes, with the timer stopped, each time the table is full.
const insertBatch = 1024

// deleteOldest deletes the n oldest connections of t.
func (t *benchTable) deleteOldest(n int) {
	for range n {
		e := natEntry[[4]byte](t.lo)
		k := e.ForwardKey()
		p, _ := t.s.Lookup(&k)
		t.s.Delete(p)
		t.lo++
	}
}

// topUp inserts new connections until t is full again.
func (t *benchTable) topUp() {
	for !t.s.Full() {
		e := natEntry[[4]byte](t.hi)
		if _, err := t.s.Insert(&e, true); err != nil {
			panic(fmt.Sprintf("topping up: %v", err))
		}
		t.hi++
	}
}

// BenchmarkInsert measures Insert alone of a new NAT connection (two new
// keys: two lookups that miss, two placements, the entry copied into a
// cold cell) into a table of capacity N that holds between N-insertBatch
// and N-1 connections, so at about its highest load. Every iteration
// inserts one new connection; each time the table is full, the timer
// stops while the insertBatch oldest connections are deleted, so Insert
// never fails and the table keeps turning over: the new keys land between
// millions of others, not in a warm corner. ns/op is one Insert.
func BenchmarkInsert(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(size.name, func(b *testing.B) {
			t := size.table()
			defer t.topUp()
			b.ReportAllocs()
			for b.Loop() {
				if t.s.Full() {
					b.StopTimer()
					t.deleteOldest(insertBatch)
					b.StartTimer()
				}
				e := natEntry[[4]byte](t.hi)
				if _, err := t.s.Insert(&e, true); err != nil {
					b.Fatalf("Insert at %d of %d: %v", t.s.Len(), t.s.Cap(), err)
				}
				t.hi++
			}
			reportBytesPerConn(b, t.s)
		})
	}
}

// BenchmarkInsertBatch is BenchmarkInsert warmBatch new connections at a
// time: "warm" first warms both keys of each, which loads the buckets
// Insert probes and places the keys in. ns/op is one batch; ns/conn is
// comparable to BenchmarkInsert's ns/op.
func BenchmarkInsertBatch(b *testing.B) {
	for _, size := range benchSizes {
		for _, mode := range warmModes {
			b.Run(size.name+"/"+mode.name, func(b *testing.B) {
				t := size.table()
				defer t.topUp()
				var ents [warmBatch]Entry4
				var keys [2 * warmBatch]Key4
				b.ReportAllocs()
				for b.Loop() {
					if t.s.Len()+warmBatch > t.s.Cap() {
						b.StopTimer()
						t.deleteOldest(insertBatch)
						b.StartTimer()
					}
					for i := range ents {
						ents[i] = natEntry[[4]byte](t.hi + uint32(i))
					}
					if mode.warm {
						for i := range ents {
							keys[2*i], keys[2*i+1] = ents[i].ForwardKey(), ents[i].ReplyKey()
						}
						t.s.Warm(keys[:])
					}
					for i := range ents {
						if _, err := t.s.Insert(&ents[i], true); err != nil {
							b.Fatalf("Insert at %d of %d: %v", t.s.Len(), t.s.Cap(), err)
						}
					}
					t.hi += warmBatch
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*warmBatch), "ns/conn")
				reportBytesPerConn(b, t.s)
			})
		}
	}
}

// BenchmarkInsertDelete measures Insert and then Delete of one and the
// same connection in a table of 1M that holds 1M-1 others: a connection
// that lives for one packet, with its buckets and cell warm in the cache
// from the second iteration on. Compare BenchmarkInsert/1M for new keys.
func BenchmarkInsertDelete(b *testing.B) {
	b.Run("1M", func(b *testing.B) {
		t := benchSizes[0].table()
		defer t.topUp()
		if t.s.Full() {
			t.deleteOldest(1)
		}
		e := natEntry[[4]byte](t.hi) // never kept: t.hi stays free
		b.ReportAllocs()
		for b.Loop() {
			p, err := t.s.Insert(&e, true)
			if err != nil {
				b.Fatal(err)
			}
			t.s.Delete(p)
		}
		reportBytesPerConn(b, t.s)
	})
}

// scalingTables are one full 1M table per worker of BenchmarkScaling.
var scalingTables = sync.OnceValue(func() []*benchTable {
	tables := make([]*benchTable, 2)
	var wg sync.WaitGroup
	for w := range tables {
		wg.Go(func() { tables[w] = newBenchTable(1 << 20) })
	}
	wg.Wait()
	return tables
})

// BenchmarkScaling runs lookup hits on 1 and 2 workers at once, each a
// goroutine locked to its OS thread that owns its own 1M table, as the
// dataplane's workers do. Each worker does b.N lookups; Mlookups/s is the
// total rate, workers*b.N over the wall time. The ratio of 2workers to
// 1workers is how well the shards scale: the workers share memory
// bandwidth, the memory controller's queue and the last-level cache, and
// nothing else. It uses b.N, not b.Loop: the workers need the count before
// they start.
func BenchmarkScaling(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("%dworkers", workers), func(b *testing.B) { benchScaling(b, workers, false) })
	}
}

// BenchmarkScalingChained is BenchmarkScaling with each lookup's key
// chosen by the entry the previous one found, so that a worker has one
// lookup in flight at a time: the memory latency bound rather than the
// throughput bound. Where 2workers/1workers is much higher here than in
// BenchmarkScaling, the machine's memory system, not the shard, limits
// the throughput.
func BenchmarkScalingChained(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("%dworkers", workers), func(b *testing.B) { benchScaling(b, workers, true) })
	}
}

func benchScaling(b *testing.B, workers int, chained bool) {
	tables := scalingTables()
	keys := make([][]Key4, workers)
	for w := range keys {
		keys[w] = hitKeys(tables[w], rand.New(rand.NewPCG(4, uint64(w))))
	}
	// sums are one cache line apart, so the workers share none.
	sums := make([]uint32, 16*workers)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for w := range workers {
		ready.Add(1)
		done.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			s, ks := tables[w].s, keys[w]
			ready.Done()
			<-start
			var sum uint32
			j := 0
			for range b.N {
				e, _ := s.Lookup(&ks[j])
				sum += e.RealID // every key is a hit (nil would panic)
				if chained {
					j += 1 + int(e.RealID&1)
				} else {
					j++
				}
				j &= benchKeys - 1
			}
			sums[16*w] = sum
		})
	}
	ready.Wait()
	b.ResetTimer()
	t0 := time.Now()
	close(start)
	done.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(workers*b.N)/elapsed.Seconds()/1e6, "Mlookups/s")
	sinkID = sums[0]
}

// heapObjects returns the bytes of live heap objects after a GC.
func heapObjects() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// gcPauses returns the histogram of the stop-the-world pauses of the GC
// so far.
func gcPauses() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64Histogram()
}

// newFilled returns a shard of capacity n filled with natEntry(i), whose
// Expires is i, and the bytes of heap the shard took.
func newFilled[A IP](t *testing.T, n int) (*Shard[A], float64) {
	before := heapObjects()
	t0 := time.Now()
	s := NewShard[A](n)
	made := time.Since(t0)
	after := heapObjects()
	t0 = time.Now()
	for i := range uint32(n) {
		e := natEntry[A](i)
		e.Expires = int64(i)
		if _, err := s.Insert(&e, true); err != nil {
			t.Fatalf("%T: Insert %d of %d: %v", s, i, n, err)
		}
	}
	filled := time.Since(t0)
	if grown := int64(heapObjects()) - int64(after); grown > 1<<20 {
		t.Errorf("%T: filling grew the heap by %d bytes", s, grown)
	}
	perConn := float64(after-before) / float64(n)
	t.Logf("%T: NewShard(%d) %v, heap +%d MB = %.1f bytes/conn (Bytes() %.1f); %d inserts %v (%.0f ns each)",
		s, n, made.Round(time.Millisecond), (after-before)>>20, perConn, float64(s.Bytes())/float64(n),
		n, filled.Round(time.Millisecond), float64(filled.Nanoseconds())/float64(n))
	return s, perConn
}

// expireAll empties s, all of whose entries have Expires < now, by calls of
// Expire(now, expireChunk, nil) (the dataplane's piece of work between
// budget checks), and logs the longest call, the median, the 99th
// percentile and the total. It returns the 99th percentile.
func expireAll[A IP](t *testing.T, s *Shard[A], now int64) (p99 time.Duration) {
	var longest time.Duration
	var total time.Duration
	var calls []time.Duration
	for s.Len() > 0 {
		t0 := time.Now()
		s.Expire(now, expireChunk, nil)
		d := time.Since(t0)
		calls = append(calls, d)
		longest, total = max(longest, d), total+d
		if len(calls) > 2*s.Cells()/expireChunk+2 {
			t.Fatalf("%T: %d entries left after %d calls", s, s.Len(), len(calls))
		}
	}
	slices.Sort(calls)
	over := len(calls) - sort.Search(len(calls), func(i int) bool { return calls[i] >= time.Millisecond })
	t.Logf("%T: expiring %d cells: %d calls of Expire(now, %d): median %v, p99 %v, longest %v, %d calls ≥ 1ms; total %v (%.0f ns an entry)",
		s, s.Cells(), len(calls), expireChunk, calls[len(calls)/2], calls[len(calls)*99/100], longest, over,
		total.Round(time.Millisecond), float64(total.Nanoseconds())/float64(s.Cells()))
	return calls[len(calls)*99/100]
}

// expireChunk is the dataplane's expiry piece (dataplane.expireChunk).
const expireChunk = 128

// TestTenMillion measures a 10-million-connection table: its heap per
// connection, the GC pauses with it live and the longest stall of
// incremental expiry.
func TestTenMillion(t *testing.T) {
	if testing.Short() || os.Getenv("GVS_BIG") == "" {
		t.Skip("set GVS_BIG=1: builds a 10-million-entry table (~600 MB)")
	}
	const n = 10_000_000
	s4, per4 := newFilled[[4]byte](t, n)
	if per4 > 64 {
		t.Errorf("IPv4: %.1f bytes of heap per connection, want at most 64", per4)
	}
	s6, _ := newFilled[[16]byte](t, n)

	h0 := gcPauses()
	const gcs = 5
	t0 := time.Now()
	for range gcs {
		runtime.GC()
	}
	gcTime := time.Since(t0)
	h1 := gcPauses()
	maxPause := 0.0
	for i := range h1.Counts {
		if h1.Counts[i] > h0.Counts[i] {
			maxPause = h1.Buckets[i+1] // the upper bound of the bucket
		}
	}
	if math.IsInf(maxPause, 1) {
		maxPause = h1.Buckets[len(h1.Buckets)-2]
		t.Logf("the longest pause is beyond %v", time.Duration(maxPause*1e9))
	}
	t.Logf("%d forced GCs with %d+%d connections live: %v in all, longest stop-the-world pause ≤ %v",
		gcs, s4.Len(), s6.Len(), gcTime.Round(time.Millisecond), time.Duration(maxPause*1e9))

	// Every entry expired: the worst case of an Expire call, every cell
	// it examines removed with its two keys. The tail is the VM's (see
	// the dataplane's TestExpiryStallTenMillion for a baseline).
	if p99 := expireAll(t, s4, n); p99 >= time.Millisecond {
		t.Errorf("IPv4: 99th percentile of Expire(now, %d) is %v, want < 1ms", expireChunk, p99)
	}
	expireAll(t, s6, n)
	runtime.KeepAlive(s4)
	runtime.KeepAlive(s6)
}
