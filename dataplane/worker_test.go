package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// fakeLink is the test Link: Read hands out queued frames, Write records
// what was sent. It is safe for one reader and one test goroutine.
type fakeLink struct {
	failOnce error // returned by the next Read, once
	mu       sync.Mutex
	in       [][]byte
	inOffs   []header.Offload // as long as in
	out      [][]byte
	outOffs  []header.Offload // as long as out
	closed   bool
}

func (l *fakeLink) Read(bufs [][]byte, sizes []int, offs []header.Offload, offset int) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, net.ErrClosed
	}
	if err := l.failOnce; err != nil {
		l.failOnce = nil
		return 0, err
	}
	n := 0
	for n < len(bufs) && len(l.in) > 0 {
		sizes[n] = copy(bufs[n][offset:], l.in[0])
		offs[n] = l.inOffs[0]
		l.in, l.inOffs = l.in[1:], l.inOffs[1:]
		n++
	}
	if n == 0 {
		l.mu.Unlock()
		time.Sleep(time.Millisecond)
		l.mu.Lock()
	}
	return n, nil
}

func (l *fakeLink) Write(bufs [][]byte, offs []header.Offload) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range bufs {
		l.out = append(l.out, append([]byte(nil), b...))
		var o header.Offload
		if offs != nil {
			o = offs[i]
		}
		l.outOffs = append(l.outOffs, o)
	}
	return len(bufs), nil
}

func (l *fakeLink) push(frames ...[]byte) {
	l.mu.Lock()
	l.in = append(l.in, frames...)
	l.inOffs = append(l.inOffs, make([]header.Offload, len(frames))...)
	l.mu.Unlock()
}

func (l *fakeLink) sent() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.out...)
}

func (l *fakeLink) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// TestDataplaneRun drives the whole loop over the fake link: a batch of
// mixed frames in, the forwarded ones out, verdicts counted.
func TestDataplaneRun(t *testing.T) {
	link := &fakeLink{}
	d, err := New([]Link{link}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	d.Publish(testTable(ForwardDR, header.ProtoUDP))
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- d.Run(stop) }()

	good := client(header.ProtoUDP).bytes(t)
	other := client(header.ProtoUDP)
	other.dport = 9
	var frames [][]byte
	for i := 0; i < 100; i++ {
		frames = append(frames, good)
	}
	frames = append(frames, other.bytes(t), []byte{1, 2, 3})
	link.push(frames...)

	deadline := time.Now().Add(5 * time.Second)
	for d.Counters().RxFrames < uint64(len(frames)) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c := d.Counters()
	if c.RxFrames != 102 || c.TxFrames != 100 || c.Verdicts["forward"] != 100 || c.Verdicts["no_service"] != 1 || c.Verdicts["malformed"] != 1 {
		t.Fatalf("counters: %+v", c)
	}
	if c.NewConns != 1 || c.Conns != 1 {
		t.Fatalf("connections: new %d, in table %d, want 1 and 1", c.NewConns, c.Conns)
	}
	if got := len(link.sent()); got != 100 {
		t.Fatalf("sent %d frames, want 100", got)
	}
	if eth := header.Ethernet(link.sent()[0]); eth.Destination() != macRS1 {
		t.Fatalf("sent to %x, want the real's MAC", eth.Destination())
	}
}

func TestDataplaneStopsOnClosedLink(t *testing.T) {
	link := &fakeLink{}
	d, err := New([]Link{link}, 10)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Run(make(chan struct{})) }()
	link.Close()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the link closed")
	}
}

// TestDataplaneSurvivesLinkErrors: a failed read (ENETDOWN when the
// interface goes down) is counted and reported, and the worker reads on;
// a relink hands the workers new links, the old ones are closed, and the
// connection made over the old link goes on over the new one.
func TestDataplaneSurvivesLinkErrors(t *testing.T) {
	old := &fakeLink{failOnce: syscall.ENETDOWN}
	d, err := New([]Link{old}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	reported := make(chan error, 4)
	d.OnLinkError(func(worker int, err error) {
		select {
		case reported <- err:
		default:
		}
	})
	d.Publish(testTable(ForwardNAT, header.ProtoUDP))
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- d.Run(stop) }()
	defer func() {
		close(stop)
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s; counters %+v", what, d.Counters())
			}
			time.Sleep(time.Millisecond)
		}
	}
	select {
	case err := <-reported:
		if !errors.Is(err, syscall.ENETDOWN) {
			t.Fatalf("reported %v, want ENETDOWN", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read error was not reported")
	}
	old.push(client(header.ProtoUDP).bytes(t))
	waitFor("a frame forwarded after the error", func() bool { return len(old.sent()) == 1 })
	if c := d.Counters(); c.LinkErrors != 1 || c.NewConns != 1 {
		t.Fatalf("after one failed read: link errors %d, new connections %d; want 1 and 1", c.LinkErrors, c.NewConns)
	}

	nl := &fakeLink{}
	if err := d.Relink([]Link{nl}); err != nil {
		t.Fatal(err)
	}
	if err := d.Relink(nil); err == nil {
		t.Error("Relink with no link for the worker: no error")
	}
	old.Close()
	nl.push(client(header.ProtoUDP).bytes(t))
	waitFor("a frame forwarded over the new link", func() bool { return len(nl.sent()) == 1 })
	if c := d.Counters(); c.NewConns != 1 || c.Verdicts["forward"] != 2 {
		t.Fatalf("after the relink: new connections %d, forwarded %d; want the same connection (1) and 2", c.NewConns, c.Verdicts["forward"])
	}
}

// modeCase is an established flow of one forwarding method, for the
// allocation test and the benchmark.
type modeCase struct {
	name  string
	fwd   Forward
	proto uint8
	reply bool
}

var modeCases = []modeCase{
	{"DR/tcp", ForwardDR, header.ProtoTCP, false},
	{"DR/udp", ForwardDR, header.ProtoUDP, false},
	{"TUN/udp", ForwardTUN, header.ProtoUDP, false},
	{"NAT/tcp/in", ForwardNAT, header.ProtoTCP, false},
	{"NAT/tcp/out", ForwardNAT, header.ProtoTCP, true},
	{"NAT/udp/in", ForwardNAT, header.ProtoUDP, false},
	{"FULLNAT/tcp/in", ForwardFullNAT, header.ProtoTCP, false},
	{"FULLNAT/tcp/out", ForwardFullNAT, header.ProtoTCP, true},
}

// established returns a worker with one connection of c set up, and a
// 64-byte frame (on the wire) of that connection in c's direction.
func established(tb testing.TB, c modeCase) (*Worker, *Table, []byte) {
	tbl := testTable(c.fwd, c.proto)
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, nil, &ptr, 1<<16)
	syn := client(c.proto)
	syn.syn = true
	syn.payload = nil
	b := syn.bytes(tb)
	buf := make([]byte, Headroom+MaxFrame)
	copy(buf[Headroom:], b)
	if _, v := w.process(tbl, buf, len(b), make([]byte, 128), 1); v != VerdictForward {
		tb.Fatalf("%s: setup verdict %v", c.name, v)
	}
	p := client(c.proto)
	p.ack = true
	if c.reply {
		dst, dport := ipClient, uint16(cport)
		if c.fwd == ForwardFullNAT {
			dst, dport = ipLocal, portLo
		}
		p = pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: dst, sport: natPort, dport: dport, proto: c.proto, ack: true, df: true}
	}
	// Pad the payload so the frame is 64 bytes with its FCS (60 without).
	hdr := header.EthernetLen + 20 + 20
	if c.proto == header.ProtoUDP {
		hdr = header.EthernetLen + 20 + 8
	}
	if hdr < 60 {
		p.payload = make([]byte, 60-hdr)
	}
	return w, tbl, p.bytes(tb)
}

func TestZeroAllocs(t *testing.T) {
	for _, c := range modeCases {
		w, tbl, frame := established(t, c)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		allocs := testing.AllocsPerRun(1000, func() {
			copy(buf[Headroom:], frame)
			if _, v := w.process(tbl, buf, len(frame), icmp, 2); v != VerdictForward {
				t.Fatalf("%s: verdict %v", c.name, v)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per packet, want 0", c.name, allocs)
		}
	}
}

// TestZeroAllocsNewConnections covers the miss path: scheduling and
// inserting a new connection (the shard has room, so it does not grow).
func TestZeroAllocsNewConnections(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardFullNAT} {
		tbl := testTable(f, header.ProtoUDP)
		var ptr atomic.Pointer[Table]
		ptr.Store(tbl)
		w := newWorker(0, 1, nil, &ptr, 1<<16)
		// Grow the shard first so that the measured inserts do not.
		frame := client(header.ProtoUDP).bytes(t)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		port := uint16(1)
		send := func() {
			copy(buf[Headroom:], frame)
			u := header.UDP(header.IPv4(buf[Headroom+header.EthernetLen:]).Payload())
			u.SetSourcePortWithChecksumUpdate(port)
			port++
			if _, v := w.process(tbl, buf, len(frame), icmp, 2); v != VerdictForward {
				t.Fatalf("%v: verdict %v", f, v)
			}
		}
		for i := 0; i < 600; i++ {
			send()
		}
		w.shard.Expire(int64(time.Hour), 1<<20, nil)
		if allocs := testing.AllocsPerRun(200, send); allocs != 0 {
			t.Errorf("%v: %.1f allocations per new connection, want 0", f, allocs)
		}
	}
}

// BenchmarkProcess is the per-packet cost of an established flow of each
// forwarding method, connection lookup included, on a 64-byte frame.
func BenchmarkProcess(b *testing.B) {
	for _, c := range modeCases {
		b.Run(c.name, func(b *testing.B) {
			w, tbl, frame := established(b, c)
			buf := make([]byte, Headroom+MaxFrame)
			icmp := make([]byte, 128)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				copy(buf[Headroom:], frame)
				w.process(tbl, buf, len(frame), icmp, 2)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pps")
		})
	}
}

// BenchmarkProcessManyFlows spreads packets over 100k established NAT
// flows so the connection lookup misses the CPU caches as it would under
// real load.
func BenchmarkProcessManyFlows(b *testing.B) {
	const flows = 100000
	tbl := testTable(ForwardNAT, header.ProtoUDP)
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, nil, &ptr, 1<<20)
	frames := make([][]byte, flows)
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	for i := range frames {
		p := client(header.ProtoUDP)
		p.payload = make([]byte, 18)
		p.src = ipClient.Next()
		for j := 0; j < i/60000; j++ {
			p.src = p.src.Next()
		}
		p.sport = uint16(1024 + i%60000)
		frames[i] = p.bytes(b)
		copy(buf[Headroom:], frames[i])
		if _, v := w.process(tbl, buf, len(frames[i]), icmp, 1); v != VerdictForward {
			b.Fatalf("setup: %v", v)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := frames[i%flows]
		copy(buf[Headroom:], f)
		w.process(tbl, buf, len(f), icmp, 2)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pps")
}

// TestBatchMatchesProcess: a batch, which parses every frame and warms
// the shard before it processes any, forwards exactly what processing the
// frames one at a time does, in the same order, with the same verdicts
// and connections, also where a frame's connection is created, expires
// or is replaced by an earlier frame of the same batch.
func TestBatchMatchesProcess(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	// A NAT TCP service whose established connections time out after two
	// batches (each batch is 20 s after the one before) and FIN_WAIT ones
	// after one; UDP, to no service, and broken frames pass by.
	tables := [2]*Table{testTable(ForwardNAT, header.ProtoTCP), testTable(ForwardNAT, header.ProtoTCP)}
	for _, tbl := range tables {
		tbl.Timeouts.TCP, tbl.Timeouts.TCPFin = 30*time.Second, 10*time.Second
	}
	link := &fakeLink{}
	var ptrs [2]atomic.Pointer[Table]
	ptrs[0].Store(tables[0])
	ptrs[1].Store(tables[1])
	batched := newWorker(0, 1, link, &ptrs[0], 1000)
	batched.warmMin = 0 // warm however few the connections
	single := newWorker(0, 1, nil, &ptrs[1], 1000)

	frame := func() []byte {
		sport := uint16(40000 + r.IntN(12)) // few flows: repeats in a batch
		var p pkt
		switch k := r.IntN(20); {
		case k < 12:
			p = client(header.ProtoTCP)
			p.sport = sport
			switch r.IntN(4) {
			case 0:
				p.syn = true
			case 1:
				p.ack = true
			case 2:
				p.ack, p.fin = true, true
			case 3:
				p.rst = true
			}
		case k < 17:
			p = pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: sport,
				proto: header.ProtoTCP, ack: true, fin: r.IntN(4) == 0, df: true}
		case k < 19:
			p = client(header.ProtoUDP)
			p.sport = sport
		default:
			return []byte{0x02, 0, 0, 0}
		}
		return p.bytes(t)
	}

	now := int64(1)
	var tally [numVerdicts]uint64
	var want [][]byte
	for round := range 60 {
		n := 1 + r.IntN(BatchSize)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		for i := range n {
			f := frame()
			batched.sizes[i] = copy(batched.bufs[i][Headroom:], f)
			size := copy(buf[Headroom:], f)
			out, v := single.process(tables[1], buf, size, icmp, now)
			tally[v]++
			if out != nil {
				want = append(want, append([]byte(nil), out...))
			}
		}
		batched.batch(tables[0], n, now)
		got := link.sent()
		if len(got) != len(want) {
			t.Fatalf("round %d: batch sent %d frames in all, one at a time %d", round, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("round %d: sent frame %d differs:\nbatch  %x\nsingle %x", round, i, got[i], want[i])
			}
		}
		now += int64(20 * time.Second)
	}
	for v := Verdict(1); v < numVerdicts; v++ {
		if got := batched.C.Verdicts[v].Load(); got != tally[v] {
			t.Errorf("verdict %v: %d in batches, %d one at a time", v, got, tally[v])
		}
	}
	conns := func(w *Worker) [4]uint64 {
		return [4]uint64{w.C.NewConns.Load(), w.C.LateExpired.Load(), w.C.Reused.Load(), w.C.Rescheduled.Load()}
	}
	b := conns(batched)
	if s := conns(single); b != s {
		t.Errorf("new, late-expired, reused, rescheduled connections: %v in batches, %v one at a time", b, s)
	}
	if bd, sd := batched.shard.Dump(), single.shard.Dump(); !slices.Equal(bd, sd) {
		t.Errorf("the shards differ:\nbatch  %+v\nsingle %+v", bd, sd)
	}
	t.Logf("%d frames sent; new, late-expired, reused, rescheduled connections %v; %d left; verdicts %v",
		len(want), b, batched.shard.Len(), tally)
	if b[0] == 0 || b[1] == 0 || b[2] == 0 || tally[VerdictNoConn] == 0 || tally[VerdictNoService] == 0 || tally[VerdictMalformed] == 0 {
		t.Errorf("the frames missed a case")
	}
}

// nullLink is a Link that never receives and accepts every write: the
// batch benchmark's link.
type nullLink struct{}

func (nullLink) Read([][]byte, []int, []header.Offload, int) (int, error) { return 0, nil }
func (nullLink) Write(bufs [][]byte, _ []header.Offload) (int, error)     { return len(bufs), nil }

// manyFlows is a worker whose shard holds established NAT UDP flows, and
// 64-byte frames (on the wire) of random ones of them, every other one a
// reply from the real.
type manyFlows struct {
	w      *Worker
	tbl    *Table
	frames [][]byte
}

// manyFlowsFrames is how many frames a manyFlows cycles through: a power
// of two, and flows whose connections take far more memory than the
// caches hold.
const manyFlowsFrames = 1 << 16

// flowClient returns the client address and port of flow i.
func flowClient(i int) ([4]byte, uint16) {
	a := 0x0a800000 + uint32(i>>10) // 10.128.0.0/16 and up
	return [4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}, uint16(1024 + i&1023)
}

func newManyFlows(tb testing.TB, flows int) *manyFlows {
	tbl := testTable(ForwardNAT, header.ProtoUDP)
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	m := &manyFlows{w: newWorker(0, 1, nullLink{}, &ptr, flows), tbl: tbl}
	req := client(header.ProtoUDP).bytes(tb)
	rep := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport,
		proto: header.ProtoUDP, df: true, payload: client(header.ProtoUDP).payload}.bytes(tb) // as long as req
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	for i := range flows {
		n := copy(buf[Headroom:], req)
		addr, port := flowClient(i)
		rewriteSrc(header.IPv4(buf[Headroom+header.EthernetLen:Headroom+n]), addr, port, false)
		if _, v := m.w.process(tbl, buf, n, icmp, 1); v != VerdictForward {
			tb.Fatalf("setting up flow %d: verdict %v", i, v)
		}
	}
	r := rand.New(rand.NewPCG(5, uint64(flows)))
	block := make([]byte, manyFlowsFrames*len(req))
	m.frames = make([][]byte, manyFlowsFrames)
	for i := range m.frames {
		f := block[i*len(req) : (i+1)*len(req)]
		addr, port := flowClient(r.IntN(flows))
		if i%2 == 0 {
			copy(f, req)
			rewriteSrc(header.IPv4(f[header.EthernetLen:]), addr, port, false)
		} else {
			copy(f, rep)
			rewriteDst(header.IPv4(f[header.EthernetLen:]), addr, port, false)
		}
		m.frames[i] = f
	}
	return m
}

// manyFlowsBuilt keeps the worlds of BenchmarkBatchManyFlows from one run
// (-count) to the next: millions of flows take seconds to set up.
var manyFlowsBuilt = map[int]*manyFlows{}

// BenchmarkBatchManyFlows is the cost of whole batches of BatchSize frames,
// each of a random one of many established NAT flows: from some tens of
// thousands of flows on, nearly every connection lookup misses the CPU
// caches, as in a director that holds millions of connections. "cold"
// never warms the shard, "warm" always does, whatever warmMinConns says.
// ns/pkt is one frame; copying the frames into the worker's buffers is
// included.
func BenchmarkBatchManyFlows(b *testing.B) {
	for _, flows := range []int{1 << 13, 1 << 16, 1 << 20, 4 << 20} {
		size := fmt.Sprintf("%dK", flows>>10)
		if flows >= 1<<20 {
			size = fmt.Sprintf("%dM", flows>>20)
		}
		for _, mode := range []struct {
			name    string
			warmMin int
		}{{"cold", math.MaxInt}, {"warm", 0}} {
			b.Run(size+"/"+mode.name, func(b *testing.B) {
				m := manyFlowsBuilt[flows]
				if m == nil {
					m = newManyFlows(b, flows)
					manyFlowsBuilt[flows] = m
				}
				w := m.w
				w.warmMin = mode.warmMin
				fwd := w.C.Verdicts[VerdictForward].Load()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					for j := range BatchSize {
						w.sizes[j] = copy(w.bufs[j][Headroom:], m.frames[(i+j)&(manyFlowsFrames-1)])
					}
					w.batch(m.tbl, BatchSize, 2)
					i += BatchSize
				}
				if got := w.C.Verdicts[VerdictForward].Load() - fwd; got != uint64(b.N*BatchSize) {
					b.Fatalf("%d of %d frames forwarded", got, b.N*BatchSize)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchSize), "ns/pkt")
				b.ReportMetric(float64(b.N*BatchSize)/b.Elapsed().Seconds(), "pps")
			})
		}
	}
}

// TestConnectionsDump: the running workers hand over copies of their
// connections without stopping; the dump holds every connection once.
func TestConnectionsDump(t *testing.T) {
	links := []Link{&fakeLink{}, &fakeLink{}}
	d, err := New(links, 100000)
	if err != nil {
		t.Fatal(err)
	}
	d.Publish(testTable(ForwardNAT, header.ProtoUDP))
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- d.Run(stop) }()
	defer func() {
		close(stop)
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	const flows = 20000 // more than one dump chunk per worker
	for i := range flows {
		p := client(header.ProtoUDP)
		p.sport = uint16(1024 + i)
		links[i%2].(*fakeLink).push(p.bytes(t))
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.Counters().Conns < flows && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conns, err := d.Connections(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != flows {
		t.Fatalf("dump has %d connections, want %d", len(conns), flows)
	}
	seen := map[uint16]bool{}
	for _, e := range conns {
		if seen[e.ClientPort] || e.VIP != ipVIP.As4() || e.Real != ipRS1.As4() || e.RPort != natPort {
			t.Fatalf("bad or repeated entry %+v", e)
		}
		seen[e.ClientPort] = true
	}
}

// TestOnWorkerStart: each worker calls the hook once, with its id, on the
// thread it then reads on, before it forwards anything.
func TestOnWorkerStart(t *testing.T) {
	links := []Link{&fakeLink{}, &fakeLink{}, &fakeLink{}}
	d, err := New(links, 1000)
	if err != nil {
		t.Fatal(err)
	}
	d.Publish(testTable(ForwardDR, header.ProtoUDP))
	var mu sync.Mutex
	calls := map[int]int{}
	d.OnWorkerStart(func(w int) {
		if n := d.Counters().RxFrames; n != 0 {
			t.Errorf("worker %d started after %d frames", w, n)
		}
		mu.Lock()
		calls[w]++
		mu.Unlock()
	})
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- d.Run(stop) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n == len(links) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for w := range links {
		if calls[w] != 1 {
			t.Errorf("worker %d called the hook %d times, want 1 (all calls: %v)", w, calls[w], calls)
		}
	}
}
