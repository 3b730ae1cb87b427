package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// Option builders for the independent encoder.
var optNOP = layers.TCPOption{OptionType: layers.TCPOptionKindNop}

func optTS(val, ecr uint32) layers.TCPOption {
	d := binary.BigEndian.AppendUint32(nil, val)
	return layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: binary.BigEndian.AppendUint32(d, ecr)}
}

func optSACK(edges ...uint32) layers.TCPOption {
	var d []byte
	for _, e := range edges {
		d = binary.BigEndian.AppendUint32(d, e)
	}
	return layers.TCPOption{OptionType: layers.TCPOptionKindSACK, OptionLength: uint8(2 + len(d)), OptionData: d}
}

// toReal is client segment s as the director sends it to the real in
// FULLNAT (worker 0 of 1: the first local port).
func toReal(s seg) seg {
	s.srcMAC, s.dstMAC = macDir, macRS1
	s.src, s.sport, s.dst, s.dport = ipLocal, portLo, ipRS1, natPort
	return s
}

// toClient is real segment s as the director sends it to the client.
func toClient(s seg) seg {
	s.srcMAC, s.dstMAC = macDir, macRouter
	s.src, s.sport, s.dst, s.dport = ipVIP, vport, ipClient, cport
	return s
}

// The client's and the real's timestamp clocks in the tests.
const (
	fnClientTS = 0x1111_1111
	fnRealTS   = 0x2222_2222
)

// fnStep sends in through w and compares what comes out with want, byte
// for byte (checksums included: gopacket computes want's in full).
func fnStep(t *testing.T, w *Worker, tbl *Table, name string, in, want []byte, now int64) {
	t.Helper()
	out, _, v := spSend(t, w, tbl, in, header.Offload{}, now)
	if v != VerdictForward {
		t.Fatalf("%s: verdict %v", name, v)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("%s: output differs\n got:\n%s\nwant:\n%s\n%s", name, hex.Dump(out), hex.Dump(want), diff(out, want))
	}
}

// TestGoldenFullNATSeqTimestamps: a FULLNAT TCP connection of a Linux-like
// client (MSS, SACK, timestamps, window scaling). The SYN reaches the real
// with the director's ISN and timestamp clock for the real-side tuple
// (fullnatClocks) and its other options as they were; from then on the
// client's sequence numbers and TSvals are shifted by the same offsets,
// the real's acknowledgment numbers, TSecrs and SACK edges shifted back,
// and nothing else changes: the real's own numbers, the client's
// acknowledgments, TSecrs and SACK blocks. Frames are compared whole with
// gopacket's, so every incremental checksum update is checked, including
// a timestamp option at an odd offset.
func TestGoldenFullNATSeqTimestamps(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoTCP)
	w := spWorker(tbl, 1024)
	const now = int64(5 * time.Second)
	isn, ts := fullnatClocks(now, ipLocal.As4(), portLo, ipRS1.As4(), natPort)
	cisn := uint32(spISN) // the client's ISN, which wraps around 2^32 in the connection

	syn := fromClient(cport, "S", cisn, 0)
	syn.mss, syn.window = 1460, 64240
	syn.opts = []layers.TCPOption{{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}, optTS(fnClientTS, 0),
		optNOP, {OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}}
	want := toReal(syn)
	want.seq = isn
	want.opts = append([]layers.TCPOption{}, syn.opts...)
	want.opts[1] = optTS(ts, 0)
	fnStep(t, w, tbl, "SYN", syn.bytes(t), want.bytes(t), now)
	e := entryOf(t, w, cport)
	if e.Flags&flagSeqXlate == 0 || *w.shard.Aux(e) != (conntrack.Aux{auxTS: ts - fnClientTS, auxClient: isn - cisn}) {
		t.Fatalf("entry flags %#x aux %#x, want flagSeqXlate and {tsoff, in}", e.Flags, *w.shard.Aux(e))
	}

	synack := fromReal(t, w, cport, "SA", spRISN, isn+1)
	synack.mss = 1460
	synack.opts = []layers.TCPOption{{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}, optTS(fnRealTS, ts),
		optNOP, {OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}}
	want = toClient(synack)
	want.ack = cisn + 1
	want.opts = append([]layers.TCPOption{}, synack.opts...)
	want.opts[1] = optTS(fnRealTS, fnClientTS)
	fnStep(t, w, tbl, "SYN-ACK", synack.bytes(t), want.bytes(t), now)

	data := fromClient(cport, "PA", cisn+1, spRISN+1)
	data.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+4, fnRealTS)}
	data.payload = []byte("GET / HTTP/1.0\r\n\r\n")
	wantData := toReal(data)
	wantData.seq = isn + 1
	wantData.opts = []layers.TCPOption{optNOP, optNOP, optTS(ts+4, fnRealTS)}
	fnStep(t, w, tbl, "client data", data.bytes(t), wantData.bytes(t), now)

	ack := fromReal(t, w, cport, "A", spRISN+1, isn+1+100)
	ack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+9, ts+4), optNOP, optNOP,
		optSACK(isn+1001, isn+2001, isn+3001, 0xffff_fff0+isn)}
	want = toClient(ack)
	want.ack = cisn + 1 + 100
	want.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+9, fnClientTS+4), optNOP, optNOP,
		optSACK(cisn+1001, cisn+2001, cisn+3001, 0xffff_fff0+cisn)}
	fnStep(t, w, tbl, "real ACK with SACK blocks", ack.bytes(t), want.bytes(t), now)

	// The client's SACK blocks are in the real's sequence space, which
	// the client sees unchanged; a timestamp option at an odd offset.
	odd := fromClient(cport, "A", cisn+19, spRISN+1)
	odd.opts = []layers.TCPOption{optNOP, optTS(fnClientTS+15, fnRealTS+9), optNOP, optSACK(spRISN+500, spRISN+600)}
	want = toReal(odd)
	want.seq = isn + 19
	want.opts = []layers.TCPOption{optNOP, optTS(ts+15, fnRealTS+9), optNOP, optSACK(spRISN+500, spRISN+600)}
	fnStep(t, w, tbl, "client SACK, timestamps at an odd offset", odd.bytes(t), want.bytes(t), now)

	// A real's TSecr of 0 says it echoes nothing: it stays 0.
	rst := fromReal(t, w, cport, "RA", spRISN+1, isn+19)
	rst.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+10, 0)}
	want = toClient(rst)
	want.ack = cisn + 19
	fnStep(t, w, tbl, "real TSecr 0", rst.bytes(t), want.bytes(t), now)

	if n := w.C.BadTCPOptions.Load(); n != 0 {
		t.Errorf("BadTCPOptions = %d, want 0", n)
	}
}

// TestFullNATPartialChecksum: a client segment and a real segment with
// partial checksums (as offloads hand them over) come out, once the
// kernel finishes their checksums, as the same segments with complete
// checksums do: the translation leaves the field alone.
func TestFullNATPartialChecksum(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoTCP)
	w := spWorker(tbl, 1024)
	const now = int64(time.Second)
	syn := fromClient(cport, "S", spISN, 0)
	syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
	if _, _, v := spSend(t, w, tbl, syn.bytes(t), header.Offload{}, now); v != VerdictForward {
		t.Fatalf("SYN: verdict %v", v)
	}
	data := fromClient(cport, "PA", spISN+1, spRISN+1)
	data.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+4, fnRealTS)}
	data.payload = []byte("GET / HTTP/1.0\r\n\r\n")
	reply := fromReal(t, w, cport, "PA", spRISN+1, 0)
	reply.ack = tcpOf(mustSend(t, w, tbl, data.bytes(t), now)).SequenceNumber() + uint32(len(data.payload))
	reply.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+3, fnClientTS+4+w.shard.Aux(entryOf(t, w, cport))[auxTS]),
		optNOP, optNOP, optSACK(reply.ack+10, reply.ack+20)}
	reply.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
	for _, in := range [][]byte{data.bytes(t), reply.bytes(t)} {
		full := mustSend(t, w, tbl, in, now)
		p := append([]byte(nil), in...)
		off := partial(t, p)
		out, _, v := spSend(t, w, tbl, p, off, now)
		if v != VerdictForward {
			t.Fatalf("partial: verdict %v", v)
		}
		if w.txOff.Flags&header.OffloadNeedsCsum == 0 {
			t.Fatalf("partial: the offload request lost its NeedsCsum")
		}
		if got := finish(t, out, w.txOff); !bytes.Equal(got, full) {
			t.Fatalf("partial checksum, finished, differs from the complete one\n got:\n%s\nwant:\n%s\n%s", hex.Dump(got), hex.Dump(full), diff(got, full))
		}
	}
}

// mustSend sends frame through w and returns a copy of what comes out.
func mustSend(t testing.TB, w *Worker, tbl *Table, frame []byte, now int64) []byte {
	t.Helper()
	out, _, v := spSend(t, w, tbl, frame, header.Offload{}, now)
	if v != VerdictForward || out == nil {
		t.Fatalf("verdict %v, %d bytes out", v, len(out))
	}
	return out
}

// TestFullNATMalformedOptions: a segment whose options do not parse gets
// its sequence number translated, its options left as they were, its
// checksum still right, and is counted; none of it panics.
func TestFullNATMalformedOptions(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoTCP)
	w := spWorker(tbl, 1024)
	const now = int64(time.Second)
	syn := fromClient(cport, "S", spISN, 0)
	syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
	isn, _ := fullnatClocks(now, ipLocal.As4(), portLo, ipRS1.As4(), natPort)
	mustSend(t, w, tbl, syn.bytes(t), now)
	for i, corrupt := range []struct {
		name string
		off  int // in the options
		v    byte
	}{
		{"timestamps length 11", 3, 11},
		{"timestamps length 40, past the header", 3, 40},
		{"timestamps length 8", 3, 8},
		{"length 1", 3, 1},
		{"length 0", 3, 0},
		{"SACK length 9", 15, 9},
		{"SACK length 2", 15, 2},
	} {
		data := fromClient(cport, "A", spISN+1, spRISN+1)
		data.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+4, fnRealTS), optNOP, optNOP, optSACK(5, 6)}
		want := toReal(data)
		want.seq = isn + 1
		in, wb := data.bytes(t), want.bytes(t)
		for _, b := range [][]byte{in, wb} {
			ip := header.IPv4(b[header.EthernetLen:])
			tcp := header.TCP(ip.Payload())
			tcp[header.TCPMinLen+corrupt.off] = corrupt.v
			tcp.SetChecksum(tcp.CalculateChecksum(ip.Source(), ip.Destination()))
		}
		fnStep(t, w, tbl, corrupt.name, in, wb, now)
		if n := w.C.BadTCPOptions.Load(); n != uint64(i+1) {
			t.Fatalf("%s: BadTCPOptions = %d, want %d", corrupt.name, n, i+1)
		}
	}
}

// TestFullNATTimeWaitReuse is the reason for all this: two connections
// one after the other over the same local address and port to the same
// real, the second from a client whose ISN and TSval are far below the
// first's (another client, or Linux's random timestamp offset per
// connection). Linux's TIME_WAIT socket of the first takes the second's
// SYN only if its sequence number is after the first's last one and PAWS
// does not refuse its TSval (tcp_timewait_state_process): as the client
// sends them they fail both; as the director sends them they pass both.
func TestFullNATTimeWaitReuse(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoTCP)
	tbl.PortHi = portLo // one local port
	w := spWorker(tbl, 1024)
	t1 := int64(10 * time.Second)
	const isn1, ts1, isn2, ts2 = 0x1000_0000, 0x7000_0000, 0x10, 0x100

	syn := fromClient(cport, "S", isn1, 0)
	syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(ts1, 0)}
	mustSend(t, w, tbl, syn.bytes(t), t1)
	// 100 kB from the client over 50 ms (less than 250 kB a second of the
	// tuple's reuse interval, 1 s), then its FIN: the real's
	// TIME_WAIT remembers the sequence number after the FIN and the last
	// TSval.
	fin := fromClient(cport, "FA", isn1+1+100_000, spRISN+1)
	fin.opts = []layers.TCPOption{optNOP, optNOP, optTS(ts1+50, fnRealTS)}
	out := tcpOf(mustSend(t, w, tbl, fin.bytes(t), t1+int64(50*time.Millisecond)))
	rcvNxt := out.SequenceNumber() + 1
	tsRecent := out.Word32(header.TCPMinLen + 4)
	w.drop(entryOf(t, w, cport)) // the client's port is free again: the director forgets

	t2 := t1 + int64(time.Second)
	syn2 := fromClient(cport+1, "S", isn2, 0)
	syn2.opts = []layers.TCPOption{optNOP, optNOP, optTS(ts2, 0)}
	out = tcpOf(mustSend(t, w, tbl, syn2.bytes(t), t2))
	if out.SourcePort() != portLo {
		t.Fatalf("second connection on local port %d, want %d", out.SourcePort(), portLo)
	}
	after := func(a, b uint32) bool { return int32(a-b) > 0 }
	if after(isn2, isn1+1+100_000+1) || int32(ts1+50-ts2) <= 0 {
		t.Fatal("the test's client numbers would pass TIME_WAIT by themselves")
	}
	if seq := out.SequenceNumber(); !after(seq, rcvNxt) {
		t.Errorf("second SYN's sequence number %#x is not after the first connection's last %#x", seq, rcvNxt)
	}
	if tsval := out.Word32(header.TCPMinLen + 4); int32(tsRecent-tsval) > 0 {
		t.Errorf("second SYN's TSval %#x is older than the first connection's last %#x: PAWS refuses it", tsval, tsRecent)
	}
}

// TestZeroAllocsFullNATOptions: translating segments with timestamps and
// SACK blocks, both ways, allocates nothing.
func TestZeroAllocsFullNATOptions(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoTCP)
	w := spWorker(tbl, 1024)
	syn := fromClient(cport, "S", spISN, 0)
	syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
	mustSend(t, w, tbl, syn.bytes(t), 1)
	data := fromClient(cport, "A", spISN+1, spRISN+1)
	data.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+4, fnRealTS), optNOP, optNOP, optSACK(5, 6)}
	reply := fromReal(t, w, cport, "A", spRISN+1, 1)
	reply.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS, 7), optNOP, optNOP, optSACK(5, 6, 7, 8)}
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	for _, f := range [][]byte{data.bytes(t), reply.bytes(t)} {
		allocs := testing.AllocsPerRun(1000, func() {
			copy(buf[Headroom:], f)
			if _, v := w.process(tbl, buf, len(f), icmp, 2); v != VerdictForward {
				t.Fatalf("verdict %v", v)
			}
		})
		if allocs != 0 {
			t.Errorf("%.1f allocations per packet, want 0", allocs)
		}
	}
}

// FuzzFullNATOptions: whatever a segment's options hold, translating them
// neither panics nor reads or writes past the header, and leaves a valid
// checksum; a list the walk refuses is left byte for byte as it was.
func FuzzFullNATOptions(f *testing.F) {
	f.Add([]byte{1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8}, uint32(7), uint32(9), uint32(11))                          // NOP NOP timestamps
	f.Add([]byte{1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4}, uint32(0), uint32(0), uint32(5))   // SACK, two blocks
	f.Add([]byte{8, 40}, uint32(1), uint32(1), uint32(1))                                                         // a length past the header
	f.Add([]byte{2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}, uint32(3), uint32(0), uint32(0)) // a Linux SYN's
	f.Add([]byte{0, 8, 10}, uint32(1), uint32(1), uint32(1))                                                      // EOL first: nothing after counts
	f.Fuzz(func(t *testing.T, opts []byte, valD, ecrD, sackD uint32) {
		if len(opts) > 40 {
			opts = opts[:40]
		}
		n := (len(opts) + 3) &^ 3
		b := make([]byte, header.TCPMinLen+n+4) // 4 bytes of payload after the header
		copy(b[header.TCPMinLen:], opts)
		tcp := header.TCP(b)
		tcp[12] = uint8((header.TCPMinLen+n)/4) << 4
		src, dst := ipClient.As4(), ipRS1.As4()
		tcp.SetChecksum(tcp.CalculateChecksum(src, dst))
		before := append([]byte(nil), b...)
		ok := xlateOptions(tcp[:len(b)-4:len(b)-4], valD, ecrD, sackD, false)
		if !ok && !bytes.Equal(b, before) {
			t.Fatalf("refused options were changed:\n% x\n% x", before, b)
		}
		if !bytes.Equal(b[len(b)-4:], before[len(b)-4:]) {
			t.Fatal("the payload changed")
		}
		if !tcp.IsChecksumValid(src, dst) {
			t.Fatalf("checksum no longer valid after %v", ok)
		}
	})
}

// TestFullNATReclaimsHalfOpen: with every local port held, a new
// connection takes the port of a connection that never got past the
// client's SYN once that one has been silent for halfOpenReclaimAge, and
// is refused before; an established connection keeps its port however
// long it has been quiet.
func TestFullNATReclaimsHalfOpen(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoTCP)
	tbl.PortHi = portLo + 1 // two local ports
	w := spWorker(tbl, 1024)
	ms := int64(time.Millisecond)
	t0 := int64(10 * time.Second)

	// cport: established.
	syn := tcpOf(mustSend(t, w, tbl, fromClient(cport, "S", 100, 0).bytes(t), t0))
	estPort := syn.SourcePort()
	mustSend(t, w, tbl, fromReal(t, w, cport, "SA", 5000, syn.SequenceNumber()+1).bytes(t), t0+ms)
	mustSend(t, w, tbl, fromClient(cport, "A", 101, 5001).bytes(t), t0+2*ms)
	if s := entryOf(t, w, cport).State; s != conntrack.TCPEstablished {
		t.Fatalf("first connection in %v, want ESTABLISHED", s)
	}
	// cport+1: the client's SYN and the real's SYN-ACK, then nothing.
	half := tcpOf(mustSend(t, w, tbl, fromClient(cport+1, "S", 200, 0).bytes(t), t0+3*ms))
	halfPort := half.SourcePort()
	mustSend(t, w, tbl, fromReal(t, w, cport+1, "SA", 7000, half.SequenceNumber()+1).bytes(t), t0+4*ms)
	if halfPort == estPort {
		t.Fatalf("both connections on local port %d", halfPort)
	}

	// Too soon: the half-open one is quiet for less than
	// halfOpenReclaimAge.
	soon := t0 + 4*ms + halfOpenReclaimAge - ms
	if out, _, v := spSend(t, w, tbl, fromClient(cport+2, "S", 300, 0).bytes(t), header.Offload{}, soon); v == VerdictForward || out != nil {
		t.Fatalf("a third connection with both ports held went out (verdict %v)", v)
	}
	if n := w.C.PortsReclaimed.Load(); n != 0 {
		t.Fatalf("%d ports reclaimed from a connection quiet for less than %v", n, time.Duration(halfOpenReclaimAge))
	}

	// halfOpenReclaimAge after the real's SYN-ACK: its port is taken over.
	now := t0 + 4*ms + halfOpenReclaimAge
	out := tcpOf(mustSend(t, w, tbl, fromClient(cport+2, "S", 300, 0).bytes(t), now))
	if out.SourcePort() != halfPort {
		t.Errorf("third connection on local port %d, want the half-open one's %d", out.SourcePort(), halfPort)
	}
	if n := w.C.PortsReclaimed.Load(); n != 1 {
		t.Errorf("PortsReclaimed = %d, want 1", n)
	}
	k := conntrack.Key4{Src: ipClient.As4(), Dst: ipVIP.As4(), SrcPort: cport + 1, DstPort: vport, Proto: header.ProtoTCP}
	if e, _ := w.shard.Lookup(&k); e != nil {
		t.Error("the half-open connection is still in the table")
	}
	if e := entryOf(t, w, cport); e.LPort != estPort {
		t.Errorf("established connection moved to port %d", e.LPort)
	}

	// Much later the established connection, quiet all along, still
	// keeps its port: the next SYN takes the half-open third one's.
	out = tcpOf(mustSend(t, w, tbl, fromClient(cport+3, "S", 400, 0).bytes(t), t0+int64(30*time.Second)))
	if out.SourcePort() != halfPort || entryOf(t, w, cport).LPort != estPort {
		t.Errorf("fourth connection on port %d (want %d); established one on %d (want %d)",
			out.SourcePort(), halfPort, entryOf(t, w, cport).LPort, estPort)
	}
	if n := w.C.PortsReclaimed.Load(); n != 2 {
		t.Errorf("PortsReclaimed = %d, want 2", n)
	}
}

// TestFullNATReclaimsClosed: the only local port, held by a connection
// that ended (TIME_WAIT), goes to the next client's SYN once the old one
// has been quiet for closedReclaimAge, instead of refusing SYNs for
// TIME_WAIT's two minutes; one still closing (CLOSE_WAIT: the client's
// FIN, in IPVS's names) keeps it.
func TestFullNATReclaimsClosed(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoTCP)
	tbl.PortHi = portLo // one local port
	w := spWorker(tbl, 1024)
	ms := int64(time.Millisecond)
	t0 := int64(10 * time.Second)

	syn := tcpOf(mustSend(t, w, tbl, fromClient(cport, "S", 100, 0).bytes(t), t0))
	mustSend(t, w, tbl, fromReal(t, w, cport, "SA", 5000, syn.SequenceNumber()+1).bytes(t), t0+ms)
	mustSend(t, w, tbl, fromClient(cport, "A", 101, 5001).bytes(t), t0+2*ms)
	// The client closes first; the real may still send.
	mustSend(t, w, tbl, fromClient(cport, "FA", 101, 5001).bytes(t), t0+3*ms)
	e := entryOf(t, w, cport)
	if e.State != conntrack.TCPCloseWait {
		t.Fatalf("after the client's FIN: %v, want CLOSE_WAIT", e.State)
	}
	if out, _, v := spSend(t, w, tbl, fromClient(cport+1, "S", 300, 0).bytes(t), header.Offload{}, t0+4*ms); v == VerdictForward || out != nil {
		t.Fatalf("a SYN took the port of a connection still closing (verdict %v)", v)
	}
	// The real's FIN and the client's last ACK: over.
	mustSend(t, w, tbl, fromReal(t, w, cport, "FA", 5001, 102).bytes(t), t0+5*ms)
	mustSend(t, w, tbl, fromClient(cport, "A", 102, 5002).bytes(t), t0+6*ms)
	if s := e.State; s != conntrack.TCPTimeWait && s != conntrack.TCPClose {
		t.Fatalf("after both FINs: %v, want TIME_WAIT or CLOSE", s)
	}
	if out, _, v := spSend(t, w, tbl, fromClient(cport+1, "S", 300, 0).bytes(t), header.Offload{}, t0+5*ms+closedReclaimAge); v == VerdictForward || out != nil {
		t.Fatalf("a SYN took the port of a connection over for less than %v (verdict %v)", time.Duration(closedReclaimAge), v)
	}
	out := tcpOf(mustSend(t, w, tbl, fromClient(cport+1, "S", 300, 0).bytes(t), t0+6*ms+closedReclaimAge))
	if out.SourcePort() != portLo {
		t.Errorf("new connection on port %d, want %d", out.SourcePort(), portLo)
	}
	if n := w.C.PortsReclaimed.Load(); n != 1 {
		t.Errorf("PortsReclaimed = %d, want 1", n)
	}
	k := conntrack.Key4{Src: ipClient.As4(), Dst: ipVIP.As4(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
	if e, _ := w.shard.Lookup(&k); e != nil {
		t.Error("the closed connection is still in the table")
	}
}

// TestISNClockOutlivesRestart: the ISN and timestamp clocks read the time
// since boot, not since the process started, and with the same key a
// later process numbers a tuple after an earlier one.
func TestISNClockOutlivesRestart(t *testing.T) {
	if d := isnTime(nanotime()) - bootClock(); d < -int64(time.Millisecond) || d > int64(time.Millisecond) {
		t.Fatalf("ISN clock is %v off the boot clock", time.Duration(d))
	}
	saved := isnKey
	defer func() { isnKey = saved }()
	SetISNKey([16]byte{1, 2, 3})
	isn1, ts1 := fullnatClocks(int64(5*time.Second), ipLocal.As4(), portLo, ipRS1.As4(), natPort)
	// A second process started 10 s later, 1 s into its life: its
	// nanotime is 1 s, its clock base 14 s more than the first's.
	base := clockBase
	clockBase += int64(14 * time.Second)
	defer func() { clockBase = base }()
	isn2, ts2 := fullnatClocks(int64(time.Second), ipLocal.As4(), portLo, ipRS1.As4(), natPort)
	if d := int32(isn2 - isn1); d != int32(10*time.Second/isnTick) {
		t.Errorf("ISN moved by %d over 10 s across a restart, want %d", d, 10*time.Second/isnTick)
	}
	if d := int32(ts2 - ts1); d != int32(10*time.Second/tsTick) {
		t.Errorf("timestamp moved by %d over 10 s across a restart, want %d", d, 10*time.Second/tsTick)
	}
}
