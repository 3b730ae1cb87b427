package dataplane

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// fakeLink is the test Link: Read hands out queued frames, Write records
// what was sent. It is safe for one reader and one test goroutine.
type fakeLink struct {
	mu     sync.Mutex
	in     [][]byte
	out    [][]byte
	closed bool
}

func (l *fakeLink) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(bufs) && len(l.in) > 0 {
		sizes[n] = copy(bufs[n][offset:], l.in[0])
		l.in = l.in[1:]
		n++
	}
	if n == 0 {
		l.mu.Unlock()
		time.Sleep(time.Millisecond)
		l.mu.Lock()
	}
	return n, nil
}

func (l *fakeLink) Write(bufs [][]byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range bufs {
		l.out = append(l.out, append([]byte(nil), b...))
	}
	return len(bufs), nil
}

func (l *fakeLink) push(frames ...[]byte) {
	l.mu.Lock()
	l.in = append(l.in, frames...)
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
