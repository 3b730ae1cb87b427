package dataplane

import (
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

// Sizes of the worker's preallocated buffers. Tunables, not protocol
// constants.
const (
	// Headroom is the space in front of each received frame, so that IPIP
	// and IPv6-in-IPv6 encapsulation is a prepend, not a copy. 20 and 40
	// bytes are needed; 64 keeps the frame cache-line aligned.
	Headroom = 64
	// MaxFrame is the largest frame a worker takes: a GSO super-frame
	// (GRO on the interface, TSO of a local sender) is an IPv4 packet of
	// up to 65535 bytes behind its Ethernet header. The buffers of a
	// batch (4 MiB) cost address space only: a frame touches what it
	// fills.
	MaxFrame = 64<<10 + 64
	// MaxSegment is the largest frame on the wire that a worker builds
	// (TUN outer fragments and segments, held fragments): a 9000-byte
	// jumbo MTU plus an Ethernet header and a VLAN tag, rounded up.
	MaxSegment = 9216
	// BatchSize is the number of frames a worker reads and writes per
	// system call. 64 amortises the syscall well below the per-packet
	// work while keeping a batch's buffers (600 KiB) inside L2.
	BatchSize = 64
	// expireEvery, expireScan, expireChunk and expireBudget bound the
	// cost of connection expiry: every millisecond a worker examines at
	// most expireScan entry cells, expireChunk at a time, and stops after
	// the chunk that passes expireBudget. Examining a cell costs a few
	// nanoseconds; removing an expired NAT entry from a table of millions
	// about 0.7 µs (two cache-missing index lookups), so a sweep over a
	// table where everything expires at once removes about 250,000
	// entries a second and never holds a batch back by more than about
	// 0.4 ms.
	expireEvery  = time.Millisecond
	expireScan   = 4096
	expireChunk  = 128
	expireBudget = 200 * time.Microsecond
	// idleScan and idleBudget are the same bounds for a worker whose last
	// read was empty.
	idleScan   = 1 << 20
	idleBudget = 5 * time.Millisecond
	// linkErrorPause is how long a worker waits after a failed read
	// before the next: a link that stays down costs ten reads a second.
	linkErrorPause = 100 * time.Millisecond
	// tunnelTTL is the TTL of the outer IPIP header and the hop limit of
	// the outer IPv6 one.
	tunnelTTL = 64
	// warmMinConns is the fewest connections at which a worker warms its
	// shard before each batch: warming pays only once lookups miss the
	// caches. Measured with BenchmarkBatchManyFlows, cold against warm (on
	// a 2-vCPU VM with 1 MiB of L2 a core), it costs about 15 ns a frame
	// at 4096 flows and 5 ns at 16384, and saves 20 ns at 32768, 90 ns
	// at 65536, 350 ns at 1M and 530 ns at 4M. The threshold is about
	// where it breaks even; with smaller caches, lookups miss sooner.
	warmMinConns = 1 << 14
)

// Link is the batch I/O a worker needs: the AF_PACKET link in production,
// a fake in tests. The caller owns every buffer.
type Link interface {
	// Read fills bufs[i][offset:] with received Ethernet frames, sets
	// sizes[i] and offs[i] (what the kernel says of the frame's checksum
	// and segmentation offloads; the zero value for a plain frame) and
	// returns how many. (0, nil) means nothing arrived in time;
	// net.ErrClosed means the link is gone.
	Read(bufs [][]byte, sizes []int, offs []header.Offload, offset int) (int, error)
	// Write sends each bufs[i], a complete Ethernet frame, with the
	// offloads offs[i] asks of the kernel (a partial checksum to finish,
	// a GSO frame to segment). offs is nil or as long as bufs.
	Write(bufs [][]byte, offs []header.Offload) (int, error)
}

var epoch = time.Now()

// nanotime is the monotonic clock of connection expiry.
func nanotime() int64 { return int64(time.Since(epoch)) }

// Worker is one dataplane thread: it owns one link socket and one
// connection-table shard, and is their only user.
type Worker struct {
	id, n int
	link  Link
	table *atomic.Pointer[Table]
	shard *conntrack.Shard4

	// C are this worker's counters.
	C WorkerCounters

	bufs    [][]byte
	sizes   []int
	offs    []header.Offload // what Read said of each frame's offloads
	icmp    [][]byte
	out     [][]byte
	outOffs []header.Offload // what Write is asked for each frame of out
	// txOff is the offload request of the frame handle returned: the
	// received frame's, adjusted to its rewrite; zero for frames built
	// anew (ICMP errors, TUN outer fragments and segments).
	txOff header.Offload
	// The batch's frames as parse read them, and the keys it warms if
	// the shard holds at least warmMin connections (warmMinConns; tests
	// lower it).
	parsed  [BatchSize]parsed
	keys    [BatchSize]conntrack.Key4
	warmMin int

	capture *atomic.Pointer[Capture] // the Dataplane's; nil in tests that make a Worker alone
	capIn   [BatchSize][]byte        // copies of the batch's frames that may match the capture

	// Fragments: the table shared with the other workers, and the later
	// fragments waiting for their first (fragment.go).
	frags       *fragTable
	fragWaiting []pendingFrag
	fragFree    [][]byte // buffers of fragments sent or dropped, for reuse
	fragSent    [][]byte
	fragOut     [][]byte

	// TUN outer fragments beyond the first (tunfrag.go): the frames, how
	// many of them the batch has queued, and the buffers they use.
	extra     [][]byte
	extraSent int
	spareBufs [][]byte
	spareUsed int
	outerID   uint32

	sp synProxy   // the SYN proxy's held segments (synproxy.go)
	pp proxyState // unacknowledged PROXY headers (proxyproto.go)

	flow       schedule.Flow
	nextPort   uint32
	lastExpire int64
	cur        *Table                  // table of the batch, for onExpire
	onExpireFn func(*conntrack.Entry4) // w.onExpire, bound once
	onEvictFn  func(*conntrack.Entry4) // w.onEvict, bound once
	now        int64                   // time of the batch or expiry run

	// Persistence templates, shared with the other workers, and what
	// Templates.Schedule calls back, bound once so that no closure is
	// made per connection. curSvc is the service being scheduled.
	templates *conntrack.Templates
	curSvc    *Service
	usableFn  func(uint32) bool
	pickFn    func() (uint32, bool)
	tplGoneFn func(uint32)
	opsEntry  conntrack.Entry4 // the transient entry of a one-packet datagram

	// Link trouble: what to tell of a failed read (Dataplane.OnLinkError),
	// and the new link a relink hands over.
	linkErr   func(worker int, err error)
	start     func(worker int) // Dataplane.OnWorkerStart
	relink    chan Link
	relinking *atomic.Int32 // the Dataplane's: workers still to take a new link

	dumps chan *dumpJob // requests for a copy of the shard
	job   *dumpJob      // the dump being served

	// Connection sync (EnableSync); nil when off.
	syncOut  *syncRing[SyncConn] // connections to report to the sync sender
	syncIn   chan []SyncConn     // synced connections to install
	syncWake chan<- struct{}     // Dataplane.SyncWake
	syncC    SyncCounters

	// IPv6 (worker6.go), last so that the fields of the IPv4 path keep
	// their places. shard6 holds the IPv6 connections: nil until a table
	// with an IPv6 service is published (enableIPv6), then of capacity
	// entries like shard. Only the worker uses the shard; the pointer is
	// atomic because Publish sets it from the control plane.
	shard6      atomic.Pointer[conntrack.Shard6]
	capacity    int
	opsEntry6   conntrack.Entry6
	onExpire6Fn func(*conntrack.Entry6) // w.onExpire6, bound once
	onEvict6Fn  func(*conntrack.Entry6) // w.onEvict6, bound once
	syncOut6    *syncRing[SyncConn6]    // IPv6 connections to report to the sync sender (EnableSync)
	syncIn6     chan []SyncConn6        // synced IPv6 connections to install
	pp6         proxyTable[[16]byte]    // unacknowledged PROXY headers of IPv6 connections (proxyproto6.go)
	sp6         heldFrames[[16]byte]    // the SYN proxy's held segments of IPv6 connections (synproxy6.go)
}

func newWorker(id, n int, link Link, table *atomic.Pointer[Table], capacity int) *Worker {
	w := &Worker{
		id: id, n: n, link: link, table: table,
		shard: conntrack.NewShard[[4]byte](capacity),
		bufs:  make([][]byte, BatchSize),
		sizes: make([]int, BatchSize),
		offs:  make([]header.Offload, BatchSize),
		icmp:  make([][]byte, BatchSize),
		out:   make([][]byte, 0, BatchSize),

		outOffs: make([]header.Offload, 0, BatchSize),

		warmMin:  warmMinConns,
		frags:    new(fragTable),
		capacity: capacity,
	}
	for i := range w.bufs {
		w.bufs[i] = make([]byte, Headroom+MaxFrame)
		w.icmp[i] = make([]byte, 128)
	}
	w.onExpireFn = w.onExpire
	w.onEvictFn = w.onEvict
	w.onExpire6Fn = w.onExpire6
	w.onEvict6Fn = w.onEvict6
	w.dumps = make(chan *dumpJob, 1)
	w.relink = make(chan Link, 1)
	w.templates = conntrack.NewTemplates(capacity)
	w.usableFn = w.usable
	w.pickFn = w.pick
	w.tplGoneFn = w.templateGone
	return w
}

// run is the worker's loop: read a batch, process it, write it, expire.
// It returns nil when stop is closed or the link is closed.
func (w *Worker) run(stop <-chan struct{}) error {
	// A worker keeps its OS thread: its blocking reads then never make the
	// runtime hand the thread's work around, and an operator can pin the
	// thread to a CPU. gvsd's links also keep the worker's P while it
	// waits (afpacket.Config.HoldP).
	runtime.LockOSThread()
	if w.start != nil {
		// The hook may change the thread (its scheduling policy, its
		// affinity): it stays locked, so the runtime ends it with the
		// worker instead of handing it to other goroutines.
		w.start(w.id)
	} else {
		defer runtime.UnlockOSThread()
	}
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		n, err := w.link.Read(w.bufs, w.sizes, w.offs, Headroom)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				// Closed for a relink (Dataplane.Relink): go on with
				// the new link; else the dataplane is stopping.
				if nl := w.awaitRelink(stop); nl != nil {
					w.link = nl
					continue
				}
				return nil
			}
			// The interface went down or away (ENETDOWN): the socket
			// resumes when it comes back, or the control plane replaces
			// the links; the worker keeps its shard meanwhile.
			w.C.LinkErrors.Add(1)
			if w.linkErr != nil {
				w.linkErr(w.id, err)
			}
			if sleepOrStop(stop, linkErrorPause) {
				return nil
			}
			continue
		}
		now := nanotime()
		w.batch(w.table.Load(), n, now)
		// An idle worker (an empty read) has nobody waiting behind it and
		// works through expiry and dumps in bigger pieces.
		idle := n == 0
		if now-w.lastExpire >= int64(expireEvery) || idle {
			w.expire(now, idle)
		}
		w.retryFragments(w.cur, now)
		w.serveDump(idle)
		if w.syncIn != nil {
			w.serveSync(now)
		}
	}
}

// awaitRelink returns the worker's new link when its old one was closed
// for a relink, waiting for it if need be, or nil when no relink is under
// way or stop is closed.
func (w *Worker) awaitRelink(stop <-chan struct{}) Link {
	select {
	case nl := <-w.relink:
		return w.took(nl)
	default:
	}
	if w.relinking == nil || w.relinking.Load() <= 0 {
		return nil
	}
	select {
	case nl := <-w.relink:
		return w.took(nl)
	case <-stop:
		return nil
	}
}

// took counts a relink's link as taken.
func (w *Worker) took(nl Link) Link {
	if w.relinking != nil {
		w.relinking.Add(-1)
	}
	return nl
}

// sleepOrStop waits for d and reports whether stop closed first.
func sleepOrStop(stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return true
	case <-t.C:
		return false
	}
}

// batch processes and writes the first n frames of w.bufs. It parses them
// all first and, if the shard is large, warms it with their connection
// keys, so that the cache misses of the lookups overlap instead of coming
// one frame after the other (see conntrack.Shard.Warm). ICMP errors are
// not warmed: they are rare, and their key is in the quoted packet.
func (w *Worker) batch(t *Table, n int, now int64) {
	w.cur, w.now = t, now
	var c *Capture
	if w.capture != nil {
		c = w.capture.Load()
	}
	keys := w.keys[:0]
	for i := 0; i < n; i++ {
		p := &w.parsed[i]
		*p = parse(w.bufs[i], w.sizes[i])
		p.off = w.offs[i]
		if p.v == 0 && p.key.Proto != header.ProtoICMP && p.frag != fragLater {
			keys = append(keys, p.key)
		}
		if c != nil {
			w.capturePre(c, i)
		}
	}
	if t != nil && w.shard.Len() >= w.warmMin { // without a table, nothing is looked up
		w.shard.Warm(keys)
	}
	out, outOffs := w.out[:0], w.outOffs[:0]
	for i := 0; i < n; i++ {
		f, v := w.handle(t, w.bufs[i], &w.parsed[i], w.icmp[i], now)
		if v == verdictHeld {
			continue
		}
		w.C.Verdicts[v].Add(1)
		if c != nil {
			w.capturePost(c, t, i, f, v)
		}
		if f != nil {
			out = append(out, f)
			outOffs = append(outOffs, w.txOff)
		}
		// The other outer fragments of a TUN packet (tunfrag.go), or
		// the other segments of a GSO frame sent through a tunnel.
		for _, x := range w.extra[w.extraSent:] {
			out = append(out, x)
			outOffs = append(outOffs, header.Offload{})
		}
		w.extraSent = len(w.extra)
	}
	w.out, w.outOffs = out[:0], outOffs[:0] // keep what append grew
	w.C.RxFrames.Add(uint64(n))
	if len(out) > 0 {
		sent, _ := w.link.Write(out, outOffs)
		w.C.TxFrames.Add(uint64(sent))
		if sent < len(out) {
			w.C.Verdicts[VerdictTxError].Add(uint64(len(out) - sent))
		}
	}
	w.resetSpare()
	w.extraSent = 0
	w.C.Conns.Store(w.conns())
}

// expire runs one piece of the incremental sweep over the shard and one
// stripe of the persistence templates.
func (w *Worker) expire(now int64, idle bool) {
	w.lastExpire, w.now = now, now
	if w.cur == nil {
		w.cur = w.table.Load()
	}
	budget, scan := int64(expireBudget), expireScan
	if idle {
		budget, scan = int64(idleBudget), idleScan
	}
	deadline := now + budget
	for scanned := 0; scanned < min(scan, w.shard.Cells()); scanned += expireChunk {
		w.shard.Expire(now, expireChunk, w.onExpireFn)
		if nanotime() >= deadline {
			break
		}
	}
	w.expire6(now, scan, deadline)
	w.templates.Expire(now, templateStripesPerExpire, w.tplGoneFn)
	w.proxyTimers(now)
	w.C.Conns.Store(w.conns())
}

// templateStripesPerExpire: each worker scans this many of the 64 template
// stripes every expireEvery, so a lone worker sweeps them all in 64 ms.
const templateStripesPerExpire = 1

func (w *Worker) onExpire(e *conntrack.Entry4) {
	w.C.ExpiredConns.Add(1)
	w.release(e)
}

func (w *Worker) onEvict(e *conntrack.Entry4) {
	w.C.Evicted.Add(1)
	w.release(e)
}

// drop removes e from the shard ahead of its time, releasing what it held.
func (w *Worker) drop(e *conntrack.Entry4) {
	w.release(e)
	w.shard.Delete(e)
}

// release gives back what a connection held: its persistence template's
// reference and its place in its real's active or inactive count.
func (w *Worker) release(e *conntrack.Entry4) {
	if e.Flags&flagProxyPending != 0 {
		w.proxyRelease(e)
	}
	if e.PersistBits != 0 {
		k := conntrack.MaskedTemplateKey(e.Client, e.VIP, e.VPort, e.Proto, e.PersistBits)
		w.templates.Release(&k, e.RealID, w.now)
	}
	if w.cur == nil {
		return
	}
	if r := w.cur.real(e.RealID); r != nil && r.Counters != nil {
		r.Counters.Unbind(conntrack.IsActive(e.State))
	}
}

// templateGone uncounts an expired persistence template on its real.
func (w *Worker) templateGone(id uint32) {
	if w.cur == nil {
		return
	}
	if r := w.cur.real(id); r != nil && r.Counters != nil {
		r.Counters.UnbindTemplate()
	}
}

// usable reports whether a persistence template's real may take the new
// connection (Table.TemplateUsable, which gvsadm simulate asks too). As in
// IPVS (with expire_quiescent_template at its default, 0), a quiescent or
// overloaded real keeps its persistent clients.
func (w *Worker) usable(id uint32) bool { return w.cur.TemplateUsable(w.curSvc, id) }

// pick asks the scheduler of w.curSvc for a real for w.flow.
func (w *Worker) pick() (uint32, bool) {
	svc := w.curSvc
	i := svc.Sched.Pick(svc.Dests, &w.flow)
	if i < 0 {
		return 0, false
	}
	return svc.Reals[i], true
}

// parsed is what a frame's headers say, as parse finds it: the frame
// with its padding cut off and, for TCP and UDP, the connection key and
// the TCP flags. v is the verdict of a frame that goes no further, or 0.
// For ICMP, key holds only the protocol.
type parsed struct {
	frame []byte
	key   conntrack.Key4
	flags uint8
	v     Verdict
	frag  uint8          // fragFirst, fragLater or 0
	off   header.Offload // the frame's offloads, as the link read them
}

// What parsed.frag says of a fragment: the first (with the ports) or a
// later one (without: only its addresses and protocol are in the key).
const (
	fragFirst = 1
	fragLater = 2
)

// verdictHeld is handle's verdict for a later fragment kept until its
// first fragment is handled: it is counted when it is sent or dropped.
const verdictHeld Verdict = 0

// parse validates the headers of the frame in buf[Headroom:Headroom+size]
// and reads what process needs of them. It looks at nothing but the
// frame, so a batch is parsed before any of it is processed.
func parse(buf []byte, size int) parsed {
	if size < header.EthernetLen+header.IPv4MinLen {
		if size >= header.EthernetLen && header.Ethernet(buf[Headroom:]).Type() != header.EtherTypeIPv4 {
			return notIPv4(buf[Headroom : Headroom+size])
		}
		return parsed{v: VerdictMalformed}
	}
	frame := buf[Headroom : Headroom+size]
	if header.Ethernet(frame).Type() != header.EtherTypeIPv4 {
		return notIPv4(frame)
	}
	ip := header.IPv4(frame[header.EthernetLen:])
	if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
		return parsed{v: VerdictMalformed}
	}
	// Drop Ethernet padding: everything after the IP total length.
	frame = frame[:header.EthernetLen+int(ip.TotalLength())]
	ip = ip[:ip.TotalLength()]
	p := parsed{frame: frame, key: conntrack.Key4{Proto: ip.Protocol()}}
	if ip.IsFragment() {
		if p.key.Proto != header.ProtoTCP && p.key.Proto != header.ProtoUDP {
			return parsed{v: VerdictFragment}
		}
		if ip.FragmentOffset() != 0 {
			// No transport header: forwarded as its first fragment was
			// (fragment.go).
			p.frag = fragLater
			p.key.Src, p.key.Dst = ip.Source(), ip.Destination()
			return p
		}
		p.frag = fragFirst
	}
	l4 := ip.Payload()
	switch p.key.Proto {
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		if !tcp.IsValid(len(l4)) {
			return parsed{v: VerdictMalformed}
		}
		p.key.SrcPort, p.key.DstPort, p.flags = tcp.SourcePort(), tcp.DestinationPort(), tcp.Flags()
	case header.ProtoUDP:
		udp := header.UDP(l4)
		// A first fragment's UDP length is the whole datagram's.
		if !udp.IsValid(len(l4)) && (p.frag != fragFirst || len(l4) < header.UDPLen || udp.Length() < header.UDPLen) {
			return parsed{v: VerdictMalformed}
		}
		p.key.SrcPort, p.key.DstPort = udp.SourcePort(), udp.DestinationPort()
	case header.ProtoICMP:
		return p
	default:
		return parsed{v: VerdictNoService}
	}
	p.key.Src, p.key.Dst = ip.Source(), ip.Destination()
	return p
}

// notIPv4 is parse's answer for a frame that is not IPv4: an IPv6 frame is
// marked for handle6, which reads it (worker6.go); anything else is not
// ours.
func notIPv4(frame []byte) parsed {
	if header.Ethernet(frame).Type() == header.EtherTypeIPv6 {
		return parsed{frame: frame, v: verdictIPv6}
	}
	return parsed{v: VerdictNotIPv4}
}

// process handles one received frame in buf[Headroom:Headroom+size]. It
// returns the frame to send (a subslice of buf or of icmp) or nil, and the
// verdict.
func (w *Worker) process(t *Table, buf []byte, size int, icmp []byte, now int64) ([]byte, Verdict) {
	return w.processOffload(t, buf, size, header.Offload{}, icmp, now)
}

// processOffload is process for a frame the link read with offloads off;
// the offload request of the frame to send is then in w.txOff.
func (w *Worker) processOffload(t *Table, buf []byte, size int, off header.Offload, icmp []byte, now int64) ([]byte, Verdict) {
	p := parse(buf, size)
	p.off = off
	return w.handle(t, buf, &p, icmp, now)
}

// handle is process for a frame that parse has read.
func (w *Worker) handle(t *Table, buf []byte, p *parsed, icmp []byte, now int64) ([]byte, Verdict) {
	w.txOff = header.Offload{}
	if p.v != 0 {
		if p.v == verdictIPv6 {
			return w.handle6(t, buf, p, now)
		}
		return nil, p.v
	}
	if p.off.Flags&header.OffloadNeedsCsum != 0 || p.off.GSOType != header.GSONone {
		if !offloadUsable(p) {
			return nil, VerdictOffload
		}
	}
	if t == nil {
		return nil, VerdictNoService
	}
	frame := p.frame
	if p.key.Proto == header.ProtoICMP {
		return w.icmpError(t, buf, frame)
	}
	if p.frag == fragLater {
		f, v, found := w.laterFragment(t, buf, frame, now)
		if !found && w.holdFragment(frame, now) {
			return nil, verdictHeld
		}
		return f, v
	}
	eth := header.Ethernet(frame)
	ip := header.IPv4(frame[header.EthernetLen:])
	key, flags := &p.key, p.flags
	e, reply := w.shard.Lookup(key)
	var r *Real
	if e != nil {
		r = t.real(e.RealID)
		if !w.keep(e, r, reply, flags, now) {
			e = nil
		}
	}
	if e == nil {
		svc := t.Services[ServiceKey{Proto: key.Proto, VIP: key.Dst, Port: key.DstPort}]
		if svc != nil && svc.SynProxy {
			return w.synProxyMiss(t, svc, p, icmp, now)
		}
		if svc == nil && t.NATReplies != nil && p.frag == 0 {
			if f, ok := w.natReply(t, frame, p); ok { // natreply.go
				return f, VerdictForward
			}
		}
		var v Verdict
		if e, v = w.newConn(t, svc, key, eth, flags, now); e == nil {
			return nil, v
		}
		r = t.real(e.RealID)
		if r != nil && key.Proto == header.ProtoTCP && r.Forward == ForwardFullNAT && e != &w.opsEntry {
			w.fullnatOpen(e, r, p, now) // fullnat.go
		}
	}
	if r == nil || !r.Ready {
		return nil, VerdictNoReal
	}
	if e.Flags&flagSynProxy != 0 {
		if f, v, done := w.synProxyConn(t, e, r, reply, p, now); done {
			return f, v
		}
		if e.Flags&flagProxyPending != 0 {
			w.proxyPending(t, e, r, reply, p, now) // proxyproto.go
		}
	} else if e.Flags&(flagSeqXlate|flagProxyPending) != 0 || r.Proxy != 0 {
		if !w.translate(t, e, r, reply, p, now) { // proxyproto.go
			return nil, VerdictTableFull
		}
	}
	if p.frag == fragFirst {
		w.noteFirst(t, frame, e, r, reply, now)
	}
	if reply {
		w.track(t, e, r, conntrack.DirOutput, flags, now)
		r.Stats.OutPkts.Add(1)
		r.Stats.OutBytes.Add(uint64(len(ip)))
		return w.rewriteReply(t, e, frame, &p.off), VerdictForward
	}
	e.ClientMAC = eth.Source()
	e.Flags &^= flagPeer // sync.go: forwarded here, the connection is this director's now
	dir := conntrack.DirInput
	if f := Forward(e.Forward); f == ForwardDR || f == ForwardTUN {
		dir = conntrack.DirInputOnly
	}
	w.track(t, e, r, dir, flags, now)
	r.Stats.InPkts.Add(1)
	r.Stats.InBytes.Add(uint64(len(ip)))
	return w.rewriteRequest(t, e, r, buf, frame, icmp, &p.off)
}

// offloadUsable reports whether the offloads of a parsed TCP or UDP frame
// are ones the rewrites handle: a partial checksum starts at the transport
// header and sits in its checksum field; a GSO frame has a partial
// checksum, a segment size and a type that fits its protocol. A fragment
// carries no offload. The kernel hands over nothing else, but a frame that
// breaks these is counted rather than sent with a wrong checksum.
func offloadUsable(p *parsed) bool {
	o := &p.off
	if p.frag != 0 || (p.key.Proto != header.ProtoTCP && p.key.Proto != header.ProtoUDP) {
		return false
	}
	if o.Flags&header.OffloadNeedsCsum != 0 {
		ip := header.IPv4(p.frame[header.EthernetLen:])
		if int(o.CsumStart) != header.EthernetLen+ip.HeaderLength() || o.CsumOffset != l4ChecksumOffset(p.key.Proto) {
			return false
		}
	}
	switch o.GSOType &^ header.GSOECN {
	case header.GSONone:
		return true
	case header.GSOTCPv4:
		return p.key.Proto == header.ProtoTCP && o.GSOSize > 0 && o.Flags&header.OffloadNeedsCsum != 0
	case header.GSOUDPL4:
		return p.key.Proto == header.ProtoUDP && o.GSOSize > 0 && o.Flags&header.OffloadNeedsCsum != 0
	}
	return false
}

// l4ChecksumOffset is where the checksum field of a TCP or UDP header is.
func l4ChecksumOffset(proto uint8) uint16 {
	if proto == header.ProtoTCP {
		return header.TCPChecksumOffset
	}
	return header.UDPChecksumOffset
}

// passOffload sets w.txOff for a frame sent with the same headers as it
// came (a MAC or address rewrite): the kernel finishes its partial checksum
// and segments it as the sender asked. HdrLen is recomputed: the kernel
// takes it as the length of the headers to keep linear.
func (w *Worker) passOffload(frame []byte, o *header.Offload) {
	if o.Flags&header.OffloadNeedsCsum == 0 && o.GSOType == header.GSONone {
		return
	}
	w.txOff = header.Offload{Flags: o.Flags & header.OffloadNeedsCsum, GSOType: o.GSOType, GSOSize: o.GSOSize,
		CsumStart: o.CsumStart, CsumOffset: o.CsumOffset}
	ip := header.IPv4(frame[header.EthernetLen:])
	hl := header.EthernetLen + ip.HeaderLength() + header.UDPLen
	if ip.Protocol() == header.ProtoTCP {
		hl += header.TCP(ip.Payload()).DataOffset() - header.UDPLen
	}
	w.txOff.HdrLen = uint16(hl)
}

// keep decides whether a packet belongs to the connection it found, e:
// not if e is past its time (the sweep had not reached it yet), nor, for
// a client packet that opens a connection (a TCP SYN, or any UDP
// datagram), if e is closing (TIME_WAIT, FIN_WAIT, CLOSE: the client reuses
// the port, and a new connection is scheduled at once instead of the
// packet being dropped until the old entry expires) or its real is gone
// or not ready (IPVS expire_nodest_conn). An entry that is not kept is
// removed.
func (w *Worker) keep(e *conntrack.Entry4, r *Real, reply bool, flags uint8, now int64) bool {
	switch {
	case e.Expires <= now:
		w.C.LateExpired.Add(1)
	case reply:
		return true
	case e.Proto == header.ProtoTCP && flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) == header.TCPFlagSyn &&
		(e.State == conntrack.TCPTimeWait || e.State == conntrack.TCPFinWait || e.State == conntrack.TCPClose):
		w.C.Reused.Add(1)
	case r != nil && r.Ready:
		return true
	case e.Proto == header.ProtoUDP || flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) == header.TCPFlagSyn:
		w.C.Rescheduled.Add(1)
	default:
		return true // a segment of a connection whose real is gone: dropped below
	}
	w.drop(e)
	return false
}

// track advances the connection state and moves the real's counters
// between active and inactive when it changes class.
func (w *Worker) track(t *Table, e *conntrack.Entry4, r *Real, dir conntrack.Direction, flags uint8, now int64) {
	if e.Proto == header.ProtoTCP {
		old := e.Transition(dir, flags)
		if a, b := conntrack.IsActive(old), conntrack.IsActive(e.State); a != b {
			if b {
				r.Counters.Activate()
			} else {
				r.Counters.Deactivate()
			}
		}
		e.Expires = now + int64(t.Timeouts.Timeout(e.State))
		if old != e.State {
			w.syncReport(e)
		}
		return
	}
	e.Expires = now + int64(t.Timeouts.Timeout(e.State))
}

// newConn schedules a new connection for the client packet with key k and
// inserts it into the shard.
func (w *Worker) newConn(t *Table, svc *Service, k *conntrack.Key4, eth header.Ethernet, flags uint8, now int64) (*conntrack.Entry4, Verdict) {
	if svc == nil {
		return nil, VerdictNoService
	}
	if k.Proto == header.ProtoTCP && flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) != header.TCPFlagSyn {
		return nil, VerdictNoConn
	}
	// A full shard makes room before anything is scheduled, so that a
	// refused connection leaves no template or counter behind.
	if w.shard.Full() && !svc.OPS {
		if !w.shard.Evict(now, w.onEvictFn) {
			return nil, VerdictTableFull
		}
	}
	// The flow lives in the worker: passed to an interface method, a local
	// would escape to the heap.
	w.flow = flowOf(k, now)
	var tk conntrack.TemplateKey
	if svc.Persist > 0 {
		tk = conntrack.MaskedTemplateKey(k.Src, k.Dst, k.DstPort, k.Proto, svc.PersistBits)
	}
	r, persist, v := w.scheduleReal(t, svc, &tk, true, now)
	if v != 0 {
		return nil, v
	}
	if svc.OPS {
		// One-packet scheduling: a transient entry, never inserted, so
		// the next datagram is scheduled again (ip_vs_conn with
		// IP_VS_CONN_F_ONE_PACKET). Its counters rise and fall at once:
		// only the connection count moves.
		w.opsEntry = conntrack.Entry4{
			Client: k.Src, ClientPort: k.SrcPort, VIP: k.Dst, VPort: k.DstPort,
			Real: r.Addr, RPort: r.Port, RealID: r.ID,
			Forward: uint8(r.Forward), Proto: k.Proto, ClientMAC: eth.Source(), State: conntrack.UDP,
		}
		r.Stats.Conns.Add(1)
		w.C.NewConns.Add(1)
		return &w.opsEntry, 0
	}
	ne := conntrack.Entry4{
		Client: k.Src, ClientPort: k.SrcPort,
		VIP: k.Dst, VPort: k.DstPort,
		Real: r.Addr, RPort: r.Port,
		RealID:      r.ID,
		Forward:     uint8(r.Forward),
		Proto:       k.Proto,
		ClientMAC:   eth.Source(),
		State:       conntrack.UDP,
		PersistBits: persist,
	}
	if k.Proto == header.ProtoTCP {
		ne.State = conntrack.StateNone
	}
	ne.Expires = now + int64(t.Timeouts.Timeout(ne.State))
	var e *conntrack.Entry4
	switch r.Forward {
	case ForwardNAT:
		e, _ = w.shard.Insert(&ne, true)
	case ForwardFullNAT:
		e = w.insertFullNAT(t, k, &ne, now)
	default:
		// DR and TUN replies never come back through us: one key.
		e, _ = w.shard.Insert(&ne, false)
	}
	if e == nil {
		if persist != 0 {
			tk := conntrack.MaskedTemplateKey(k.Src, k.Dst, k.DstPort, k.Proto, persist)
			w.templates.Release(&tk, r.ID, now)
		}
		return nil, VerdictTableFull
	}
	r.Counters.Bind(false)
	r.Stats.Conns.Add(1)
	w.C.NewConns.Add(1)
	if e.Proto == header.ProtoUDP {
		// A TCP connection is reported by track, as it leaves NONE.
		w.syncReport(e)
	}
	return e, 0
}

// portAttempts bounds the search for a free FULLNAT local port per
// connection.
const portAttempts = 64

// scheduleReal picks the real of a new connection of svc, the flow in
// w.flow: through the persistence template tk if the service has
// persistence, else the scheduler. It returns the real and the
// persistence bits the connection holds, or the verdict that refuses it.
// report: a new template goes to connection sync.
func (w *Worker) scheduleReal(t *Table, svc *Service, tk *conntrack.TemplateKey, report bool, now int64) (*Real, uint8, Verdict) {
	w.cur, w.curSvc = t, svc
	var id uint32
	var persist uint8
	if svc.Persist > 0 {
		var out conntrack.Outcome
		var old uint32
		id, out, old = w.templates.Schedule(tk, now, int64(svc.Persist), !svc.OPS, w.usableFn, w.pickFn)
		switch out {
		case conntrack.NoReal:
			return nil, 0, VerdictNoReal
		case conntrack.Full:
			w.C.TemplatesFull.Add(1)
		case conntrack.Replaced:
			if r := t.real(old); r != nil {
				r.Counters.UnbindTemplate()
			}
			fallthrough
		case conntrack.Created:
			if r := t.real(id); r != nil {
				r.Counters.BindTemplate()
				if report {
					w.syncReportTemplate(tk, r, svc.PersistBits, int64(svc.Persist), now)
				}
			}
			fallthrough
		case conntrack.Reused:
			if !svc.OPS {
				persist = svc.PersistBits
			}
		}
	} else {
		var ok bool
		if id, ok = w.pick(); !ok {
			return nil, 0, VerdictNoReal
		}
	}
	r := t.real(id)
	if r == nil || !r.Ready {
		return nil, 0, VerdictNoReal
	}
	return r, persist, 0
}

// insertFullNAT picks a local address and one of this worker's local ports
// (p%n == id) whose reply key is free, and inserts the entry.
//
// When the ports it tries are taken, it takes the port of a connection
// among them that is over or stuck half-open (reclaimable), the first it
// met unless a free port comes within reclaimLookahead more tries. A
// closed connection's entry stays for TIME_WAIT's two minutes, so one
// local address and a real would otherwise serve only a few hundred new
// connections a second from many clients; and under a spoofed SYN flood
// each SYN holds a port for the minute SYN_RECV lasts, so 100,000 SYNs a
// second would use an address's ports up in a fraction of a second. The
// ports are handed out in turn, so the first taken one met is about the
// longest held.
func (w *Worker) insertFullNAT(t *Table, k *conntrack.Key4, ne *conntrack.Entry4, now int64) *conntrack.Entry4 {
	if len(t.Locals) == 0 || t.PortHi < t.PortLo {
		return nil
	}
	first, count, n, ok := w.localPorts(t)
	if !ok {
		return nil
	}
	lip := t.Locals[int(flowHash(k)%uint32(len(t.Locals)))]
	ne.Local = lip
	rev := conntrack.Key4{Src: ne.Real, Dst: ne.Local, SrcPort: ne.RPort, Proto: k.Proto}
	var victim *conntrack.Entry4
	stop := portAttempts
	for a := 0; a < stop; a++ {
		p := first + (w.nextPort%count)*n
		w.nextPort++
		rev.DstPort = uint16(p)
		if e, _ := w.shard.Lookup(&rev); e != nil {
			if victim == nil && reclaimable(t, e, now) {
				victim, stop = e, min(stop, a+1+reclaimLookahead)
			}
			continue
		}
		ne.LPort = uint16(p)
		e, _ := w.shard.Insert(ne, true)
		return e
	}
	if victim == nil {
		return nil
	}
	ne.LPort = victim.LPort
	w.drop(victim)
	w.C.PortsReclaimed.Add(1)
	e, _ := w.shard.Insert(ne, true)
	return e
}

// localPorts returns the worker's slice of t's local port range: the
// ports first, first+n, ... (count of them), those p with p%n == w.id; ok
// is false if the worker has none.
func (w *Worker) localPorts(t *Table) (first, count, n uint32, ok bool) {
	n = uint32(w.n)
	lo, hi := uint32(t.PortLo), uint32(t.PortHi)
	if hi < lo {
		return 0, 0, n, false
	}
	first = lo + (uint32(w.id)+n-lo%n)%n
	if first > hi {
		return 0, 0, n, false
	}
	return first, (hi-first)/n + 1, n, true
}

// halfOpenReclaimAge is how long a FULLNAT connection must have been
// half-open and silent before insertFullNAT may take its port: longer
// than a round trip on a LAN and most of the internet, so a client that
// is really there has usually answered the real's SYN-ACK by then. It is
// short because under a flood every port comes round again within a
// fraction of a second (at 100,000 SYNs/s, 16,000 ports a worker last a
// third of one).
const halfOpenReclaimAge = int64(50 * time.Millisecond)

// closedReclaimAge is how long a FULLNAT connection must have been over
// (TIME_WAIT, CLOSE) and silent before insertFullNAT may give its port to
// a new one. The real may still hold the old connection in TIME_WAIT and
// takes a SYN on its tuple only if its ISN is past the old connection's
// last sequence number (or, with timestamps, its TSval past the last):
// the director's ISN clock runs at 250,000 a second and its timestamp
// clock at 1,000, so a second later a new SYN passes unless the old
// connection sent more than 250 kB a second of its life without
// timestamps. Taken at once, most SYNs on a just-closed tuple are refused.
const closedReclaimAge = int64(time.Second)

// reclaimLookahead is how many more ports insertFullNAT tries for a free
// one after it met a reclaimable one: under a flood every try is a lookup
// that misses the caches.
const reclaimLookahead = 4

// reclaimable reports whether the FULLNAT connection e may give its local
// port to a new one: a TCP connection that has been over (TIME_WAIT,
// CLOSE) and silent for closedReclaimAge, or one the client opened but
// never completed (SYN_RECV, not the SYN proxy's, which opens only on a
// valid ACK) and which has been silent for halfOpenReclaimAge.
func reclaimable[A conntrack.IP](t *Table, e *conntrack.Entry[A], now int64) bool {
	if e.Proto != header.ProtoTCP {
		return false
	}
	last := e.Expires - int64(t.Timeouts.Timeout(e.State)) // the last packet
	switch e.State {
	case conntrack.TCPTimeWait, conntrack.TCPClose:
		return now-last >= closedReclaimAge
	case conntrack.TCPSynRecv:
		return e.Flags&flagSynProxy == 0 && now-last >= halfOpenReclaimAge
	}
	return false
}

// rewriteRequest turns a client packet into what the real server must
// receive, according to the connection's forwarding method.
func (w *Worker) rewriteRequest(t *Table, e *conntrack.Entry4, r *Real, buf, frame, icmp []byte, off *header.Offload) ([]byte, Verdict) {
	eth := header.Ethernet(frame)
	ip := header.IPv4(frame[header.EthernetLen:])
	partial := off.Flags&header.OffloadNeedsCsum != 0
	switch r.Forward {
	case ForwardDR:
		w.passOffload(frame, off)
	case ForwardTUN:
		// An outer header moves the inner transport header: the partial
		// checksum is finished here, and a GSO frame is cut into
		// segments here, each fitting the MTU encapsulated (gso.go).
		if off.GSOType != header.GSONone {
			return w.encapSegments(t, r, frame, off)
		}
		if partial {
			finishChecksum(frame, off)
		}
		if len(ip)+header.IPIPOverhead > t.MTU {
			if !ip.DontFragment() {
				return w.encapFragments(t, r, buf, frame), VerdictForward
			}
			n := header.WriteICMPv4FragNeeded(icmp[header.EthernetLen:], ip.Destination(), ip, uint16(t.MTU-header.IPIPOverhead))
			if n == 0 {
				return nil, VerdictTooBig
			}
			out := header.Ethernet(icmp[:header.EthernetLen+n])
			out.SetDestination(eth.Source())
			out.SetSource(t.MAC)
			out.SetType(header.EtherTypeIPv4)
			w.C.ICMPSent.Add(1)
			return out, VerdictTooBig
		}
		frame = encapsulate(t, r, buf, frame)
		eth = header.Ethernet(frame)
	case ForwardNAT:
		rewriteDst(ip, r.Addr, r.Port, partial)
		w.passOffload(frame, off)
	case ForwardFullNAT:
		rewriteSrc(ip, e.Local, e.LPort, partial)
		rewriteDst(ip, r.Addr, r.Port, partial)
		w.passOffload(frame, off)
	default:
		return nil, VerdictNoReal
	}
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	return frame, VerdictForward
}

// encapsulate wraps the IPv4 packet of frame (which starts at
// buf[Headroom:]) in IPIP to r: the Ethernet header moves 20 bytes to the
// front and the outer IPv4 header goes into the gap.
func encapsulate(t *Table, r *Real, buf, frame []byte) []byte {
	start := Headroom - header.IPIPOverhead
	copy(buf[start:start+header.EthernetLen], frame[:header.EthernetLen])
	header.EncapIPIP(buf[start+header.EthernetLen:Headroom+len(frame)], t.Addr, r.Addr, tunnelTTL)
	return buf[start : Headroom+len(frame)]
}

// icmpError relays an ICMP destination-unreachable or time-exceeded error
// that concerns one of the worker's connections, as IPVS's ip_vs_in_icmp
// and ip_vs_out_icmp do: an error sent to the VIP about a reply (a router
// on the client's path asking for a smaller MTU, say) goes to the real
// server that sent the reply, translated for its forwarding method; a NAT
// or FULLNAT real server's error about a packet of the client goes to the
// client, translated to come from the VIP. Without this, path MTU
// discovery breaks for every connection behind the director. frame is
// the validated Ethernet frame in buf[Headroom:].
func (w *Worker) icmpError(t *Table, buf, frame []byte) ([]byte, Verdict) {
	ip := header.IPv4(frame[header.EthernetLen:])
	icmp := header.ICMPv4(ip.Payload())
	if !icmp.IsValid() {
		return nil, VerdictMalformed
	}
	if !icmp.IsError() || (icmp.Type() != header.ICMPv4DestUnreachable && icmp.Type() != header.ICMPv4TimeExceeded) {
		return nil, VerdictNoService
	}
	// The quote: the IPv4 header and at least the 8 bytes with the ports
	// of the packet the error is about. Its total length is the original
	// packet's, longer than what is quoted, so IsValid does not apply.
	q := header.IPv4(icmp.Payload())
	if len(q) < header.IPv4MinLen || q[0]>>4 != 4 {
		return nil, VerdictMalformed
	}
	hl := q.HeaderLength()
	if hl < header.IPv4MinLen || len(q) < hl+8 {
		return nil, VerdictMalformed
	}
	if q.FragmentOffset() != 0 {
		return nil, VerdictFragment
	}
	proto := q.Protocol()
	if proto != header.ProtoTCP && proto != header.ProtoUDP {
		return nil, VerdictNoService
	}
	// The first 4 bytes of TCP and UDP are the ports alike.
	ql4 := header.UDP(q[hl:])
	key := conntrack.Key4{
		Src: q.Destination(), Dst: q.Source(),
		SrcPort: ql4.DestinationPort(), DstPort: ql4.SourcePort(), Proto: proto,
	}
	e, reply := w.shard.Lookup(&key)
	if e == nil {
		return nil, VerdictNoConn
	}
	r := t.real(e.RealID)
	if r == nil || !r.Ready {
		return nil, VerdictNoReal
	}
	eth := header.Ethernet(frame)
	changed := false
	if e.Flags&(flagSynProxy|flagSeqXlate) != 0 {
		w.synProxyQuote(e, q[hl:], reply)
	}
	if !reply {
		// Towards the real: it must see the error about the packet it sent.
		switch r.Forward {
		case ForwardDR, ForwardTUN:
		case ForwardNAT:
			ip.SetDestinationWithChecksumUpdate(r.Addr)
			q.SetSourceWithChecksumUpdate(r.Addr)
			ql4.SetSourcePort(r.Port)
			changed = true
		case ForwardFullNAT:
			ip.SetSourceWithChecksumUpdate(e.Local)
			ip.SetDestinationWithChecksumUpdate(r.Addr)
			q.SetSourceWithChecksumUpdate(r.Addr)
			ql4.SetSourcePort(r.Port)
			q.SetDestinationWithChecksumUpdate(e.Local)
			ql4.SetDestinationPort(e.LPort)
			changed = true
		default:
			return nil, VerdictNoReal
		}
		r.Stats.InPkts.Add(1)
		r.Stats.InBytes.Add(uint64(len(ip)))
	} else {
		// Towards the client: the error must come from the VIP, about the
		// packet the client sent.
		ip.SetSourceWithChecksumUpdate(e.VIP)
		q.SetDestinationWithChecksumUpdate(e.VIP)
		ql4.SetDestinationPort(e.VPort)
		if Forward(e.Forward) == ForwardFullNAT {
			ip.SetDestinationWithChecksumUpdate(e.Client)
			q.SetSourceWithChecksumUpdate(e.Client)
			ql4.SetSourcePort(e.ClientPort)
		}
		changed = true
		r.Stats.OutPkts.Add(1)
		r.Stats.OutBytes.Add(uint64(len(ip)))
	}
	if changed {
		// The quote changed in several places and the quoted transport
		// checksum is left alone (as IPVS does: the quote is cut short, so
		// it cannot be verified anyway); errors are rare and short, so the
		// ICMP checksum is recomputed rather than updated.
		icmp.SetChecksum(0)
		icmp.SetChecksum(icmp.CalculateChecksum())
	}
	if reply {
		eth.SetDestination(clientMAC(t, e))
		eth.SetSource(t.MAC)
		return frame, VerdictForward
	}
	if r.Forward == ForwardTUN {
		if len(ip)+header.IPIPOverhead > t.MTU {
			return nil, VerdictTooBig
		}
		frame = encapsulate(t, r, buf, frame)
		eth = header.Ethernet(frame)
	}
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	return frame, VerdictForward
}

// rewriteReply turns a NAT or FULLNAT reply from the real server back into
// the packet the client expects, from VIP:port.
func (w *Worker) rewriteReply(t *Table, e *conntrack.Entry4, frame []byte, off *header.Offload) []byte {
	eth := header.Ethernet(frame)
	ip := header.IPv4(frame[header.EthernetLen:])
	partial := off.Flags&header.OffloadNeedsCsum != 0
	rewriteSrc(ip, e.VIP, e.VPort, partial)
	if Forward(e.Forward) == ForwardFullNAT {
		rewriteDst(ip, e.Client, e.ClientPort, partial)
	}
	w.passOffload(frame, off)
	eth.SetDestination(clientMAC(t, e))
	eth.SetSource(t.MAC)
	return frame
}

// rewriteDst sets the destination address and port of a validated IPv4
// TCP or UDP packet, updating every checksum incrementally (RFC 1624).
// With a partial transport checksum (partial: the kernel or NIC finishes
// it) only its pseudo-header part changes, for the address: the port is
// in the part still to be summed.
func rewriteDst(ip header.IPv4, addr [4]byte, port uint16, partial bool) {
	old := ip.Destination()
	ip.SetDestinationWithChecksumUpdate(addr)
	switch ip.Protocol() {
	case header.ProtoTCP:
		tcp := header.TCP(ip.Payload())
		if partial {
			tcp.UpdatePartialChecksumPseudoHeaderAddress(old, addr)
			tcp.SetDestinationPort(port)
			return
		}
		tcp.UpdateChecksumPseudoHeaderAddress(old, addr)
		tcp.SetDestinationPortWithChecksumUpdate(port)
	case header.ProtoUDP:
		udp := header.UDP(ip.Payload())
		if partial {
			udp.UpdatePartialChecksumPseudoHeaderAddress(old, addr)
			udp.SetDestinationPort(port)
			return
		}
		udp.UpdateChecksumPseudoHeaderAddress(old, addr)
		udp.SetDestinationPortWithChecksumUpdate(port)
	}
}

// rewriteSrc is rewriteDst for the source.
func rewriteSrc(ip header.IPv4, addr [4]byte, port uint16, partial bool) {
	old := ip.Source()
	ip.SetSourceWithChecksumUpdate(addr)
	switch ip.Protocol() {
	case header.ProtoTCP:
		tcp := header.TCP(ip.Payload())
		if partial {
			tcp.UpdatePartialChecksumPseudoHeaderAddress(old, addr)
			tcp.SetSourcePort(port)
			return
		}
		tcp.UpdateChecksumPseudoHeaderAddress(old, addr)
		tcp.SetSourcePortWithChecksumUpdate(port)
	case header.ProtoUDP:
		udp := header.UDP(ip.Payload())
		if partial {
			udp.UpdatePartialChecksumPseudoHeaderAddress(old, addr)
			udp.SetSourcePort(port)
			return
		}
		udp.UpdateChecksumPseudoHeaderAddress(old, addr)
		udp.SetSourcePortWithChecksumUpdate(port)
	}
}
