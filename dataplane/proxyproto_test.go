package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// ppTable is testTable(f, tcp) whose real gets PROXY headers of version v.
func ppTable(f Forward, v ProxyVersion) *Table {
	tbl := testTable(f, header.ProtoTCP)
	tbl.Reals[0].Proxy = v
	return tbl
}

// wantProxyHeader is the header of the test connection, written out here
// from proxy-protocol.txt rather than by putProxyHeader.
func wantProxyHeader(v ProxyVersion) []byte {
	if v == ProxyV1 {
		return fmt.Appendf(nil, "PROXY TCP4 %s %s %d %d\r\n", ipClient, ipVIP, cport, vport)
	}
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21, 0x11, 0, 12)
	b = append(b, ipClient.AsSlice()...)
	b = append(b, ipVIP.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, cport)
	return binary.BigEndian.AppendUint16(b, vport)
}

// headerSeg is the segment that carries the PROXY header to the real:
// from the local address in FULLNAT, from the client in NAT.
func headerSeg(f Forward, v ProxyVersion, seq, ack uint32, window uint16, opts []layers.TCPOption) seg {
	s := seg{srcMAC: macDir, dstMAC: macRS1, src: ipClient, sport: cport, dst: ipRS1, dport: natPort,
		seq: seq, ack: ack, flags: "PA", window: window, opts: opts, payload: wantProxyHeader(v), ttl: 64}
	if f == ForwardFullNAT {
		s.src, s.sport = ipLocal, portLo
	}
	return s
}

// ppStep sends in through w and compares the frame that comes out, and
// those queued behind it, with want and wantExtra, byte for byte.
func ppStep(t *testing.T, w *Worker, tbl *Table, name string, in, want []byte, wantExtra [][]byte, now int64) {
	t.Helper()
	out, extra, v := spSend(t, w, tbl, in, header.Offload{}, now)
	if v != VerdictForward && v != VerdictSynProxy {
		t.Fatalf("%s: verdict %v", name, v)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("%s: output differs\n got:\n%s\nwant:\n%s\n%s", name, hex.Dump(out), hex.Dump(want), diff(out, want))
	}
	if len(extra) != len(wantExtra) {
		t.Fatalf("%s: %d frames queued behind, want %d", name, len(extra), len(wantExtra))
	}
	for i := range extra {
		if !bytes.Equal(extra[i], wantExtra[i]) {
			t.Fatalf("%s: queued frame %d differs\n got:\n%s\nwant:\n%s\n%s", name, i, hex.Dump(extra[i]), hex.Dump(wantExtra[i]), diff(extra[i], wantExtra[i]))
		}
	}
}

// TestGoldenProxyFullNAT: a FULLNAT connection with timestamps and SACK
// whose real gets a PROXY header. The real's SYN-ACK reaches the client as
// without one; the client's handshake ACK brings the header to the real,
// behind it: at the director's ISN+1, acknowledging the real's ISN+1, with
// the ACK's window and timestamps, translated. Client sequence numbers
// then move up by its length; the real's acknowledgments and SACK edges
// down. While the header is not acknowledged, the real's SYN-ACK again
// sends it again, an acknowledgment that does not cover it reaches the
// client as its ISN+1 (never below), a SACK block above it makes the
// director send it again (once), and a D-SACK of the header comes out
// empty; the acknowledgment that covers it ends the wait. FIN both ways.
func TestGoldenProxyFullNAT(t *testing.T) {
	for _, v := range []ProxyVersion{ProxyV2, ProxyV1} {
		t.Run(v.String(), func(t *testing.T) {
			tbl := ppTable(ForwardFullNAT, v)
			w := spWorker(tbl, 1024)
			const now = int64(5 * time.Second)
			isn, ts := fullnatClocks(now, ipLocal.As4(), portLo, ipRS1.As4(), natPort)
			cisn := uint32(spISN)
			L := uint32(len(wantProxyHeader(v)))

			syn := fromClient(cport, "S", cisn, 0)
			syn.mss, syn.window = 1460, 64240
			syn.opts = []layers.TCPOption{{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}, optTS(fnClientTS, 0)}
			want := toReal(syn)
			want.seq = isn
			want.opts = []layers.TCPOption{syn.opts[0], optTS(ts, 0)}
			ppStep(t, w, tbl, "SYN", syn.bytes(t), want.bytes(t), nil, now)

			synack := fromReal(t, w, cport, "SA", spRISN, isn+1)
			synack.mss = 1460
			synack.opts = []layers.TCPOption{{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}, optTS(fnRealTS, ts)}
			want = toClient(synack)
			want.ack = cisn + 1
			want.opts = []layers.TCPOption{synack.opts[0], optTS(fnRealTS, fnClientTS)}
			ppStep(t, w, tbl, "SYN-ACK", synack.bytes(t), want.bytes(t), nil, now)
			e := entryOf(t, w, cport)
			if e.Flags&(flagProxyHdr|flagProxyPending) != 0 || w.pp.used != 0 {
				t.Fatalf("after the SYN-ACK: flags %#x, %d slots used; want no header yet", e.Flags, w.pp.used)
			}

			ack := fromClient(cport, "A", cisn+1, spRISN+1)
			ack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+1, fnRealTS)}
			want = toReal(ack)
			want.seq = isn + 1 + L
			want.opts = []layers.TCPOption{optNOP, optNOP, optTS(ts+1, fnRealTS)}
			hdr := headerSeg(ForwardFullNAT, v, isn+1, spRISN+1, 5000, []layers.TCPOption{optNOP, optNOP, optTS(ts+1, fnRealTS)})
			ppStep(t, w, tbl, "handshake ACK", ack.bytes(t), want.bytes(t), [][]byte{hdr.bytes(t)}, now)
			if e.Flags&(flagProxyHdr|flagProxyPending|flagSeqXlate) != flagProxyHdr|flagProxyPending|flagSeqXlate ||
				w.shard.Aux(e)[auxClient] != isn-cisn+L || w.pp.used != 1 {
				t.Fatalf("after the handshake ACK: flags %#x, in %#x, %d slots used; want pending, in %#x, 1", e.Flags, w.shard.Aux(e)[auxClient], w.pp.used, isn-cisn+L)
			}

			// The real's SYN-ACK again: it never had the header, which
			// acknowledges it; the header goes again at once.
			want = toClient(synack)
			want.ack = cisn + 1
			want.opts = []layers.TCPOption{synack.opts[0], optTS(fnRealTS, fnClientTS)}
			ppStep(t, w, tbl, "SYN-ACK again", synack.bytes(t), want.bytes(t), [][]byte{hdr.bytes(t)}, now)

			data := fromClient(cport, "PA", cisn+1, spRISN+1)
			data.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+2, fnRealTS)}
			data.payload = []byte("GET / HTTP/1.0\r\n\r\n")
			dl := uint32(len(data.payload))
			want = toReal(data)
			want.seq = isn + 1 + L
			want.opts = []layers.TCPOption{optNOP, optNOP, optTS(ts+2, fnRealTS)}
			ppStep(t, w, tbl, "client data", data.bytes(t), want.bytes(t), nil, now)

			// The real speaks before it has the header: its
			// acknowledgment stays at the header's start.
			banner := fromReal(t, w, cport, "PA", spRISN+1, isn+1)
			banner.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, ts+2)}
			banner.payload = []byte("220 hello\r\n")
			want = toClient(banner)
			want.ack = cisn + 1
			want.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, fnClientTS+2)}
			ppStep(t, w, tbl, "real data before the header's ACK", banner.bytes(t), want.bytes(t), nil, now)

			// The real has the client's data but not the header: the
			// header goes again, with the client's latest numbers.
			dup := fromReal(t, w, cport, "A", spRISN+12, isn+1)
			dup.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+2, ts+2), optNOP, optNOP, optSACK(isn+1+L, isn+1+L+dl)}
			want = toClient(dup)
			want.ack = cisn + 1
			want.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+2, fnClientTS+2), optNOP, optNOP, optSACK(cisn+1, cisn+1+dl)}
			hdr = headerSeg(ForwardFullNAT, v, isn+1, spRISN+1, 5000, []layers.TCPOption{optNOP, optNOP, optTS(ts+2, fnRealTS)})
			ppStep(t, w, tbl, "real SACK above the header", dup.bytes(t), want.bytes(t), [][]byte{hdr.bytes(t)}, now+1000)
			ppStep(t, w, tbl, "the same again: no second fast resend", dup.bytes(t), want.bytes(t), nil, now+2000)
			if n := w.C.ProxyResent.Load(); n != 2 {
				t.Fatalf("ProxyResent %d, want 2", n)
			}

			// The header arrives (twice): the acknowledgment covers it and
			// the client's data, with a D-SACK of the header's copy,
			// which comes out empty.
			covered := fromReal(t, w, cport, "A", spRISN+12, isn+1+L+dl)
			covered.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+3, ts+2), optNOP, optNOP, optSACK(isn+1, isn+1+L)}
			want = toClient(covered)
			want.ack = cisn + 1 + dl
			want.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+3, fnClientTS+2), optNOP, optNOP, optSACK(cisn+1, cisn+1)}
			ppStep(t, w, tbl, "acknowledgment of the header, D-SACK", covered.bytes(t), want.bytes(t), nil, now+3000)
			if e.Flags&flagProxyPending != 0 || w.pp.used != 0 || w.C.ProxyAcked.Load() != 1 {
				t.Fatalf("after the header's ACK: flags %#x, %d slots used, ProxyAcked %d", e.Flags, w.pp.used, w.C.ProxyAcked.Load())
			}

			// From now on, a plain shift: SACK blocks, FIN both ways.
			sack := fromReal(t, w, cport, "A", spRISN+12, isn+1+L+dl)
			sack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+4, ts+2), optNOP, optNOP, optSACK(isn+L+5001, isn+L+6001)}
			want = toClient(sack)
			want.ack = cisn + 1 + dl
			want.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+4, fnClientTS+2), optNOP, optNOP, optSACK(cisn+5001, cisn+6001)}
			ppStep(t, w, tbl, "SACK blocks", sack.bytes(t), want.bytes(t), nil, now+4000)

			fin := fromClient(cport, "FA", cisn+1+dl, spRISN+12)
			want = toReal(fin)
			want.seq = isn + 1 + L + dl
			ppStep(t, w, tbl, "client FIN", fin.bytes(t), want.bytes(t), nil, now+5000)
			rfin := fromReal(t, w, cport, "FA", spRISN+12, isn+2+L+dl)
			want = toClient(rfin)
			want.ack = cisn + 2 + dl
			ppStep(t, w, tbl, "real FIN", rfin.bytes(t), want.bytes(t), nil, now+6000)
			if n := w.C.ProxyHeaders.Load(); n != 1 {
				t.Errorf("ProxyHeaders %d, want 1", n)
			}
		})
	}
}

// TestGoldenProxyNAT: in NAT, where the client's numbers are not otherwise
// translated, the connection gets the header's length as its only offset.
func TestGoldenProxyNAT(t *testing.T) {
	tbl := ppTable(ForwardNAT, ProxyV2)
	w := spWorker(tbl, 1024)
	const now = int64(time.Second)
	L := uint32(len(wantProxyHeader(ProxyV2)))
	cisn := uint32(spISN)
	natReal := func(s seg) seg {
		s.srcMAC, s.dstMAC, s.dst, s.dport = macDir, macRS1, ipRS1, natPort
		return s
	}
	natClient := func(s seg) seg {
		s.srcMAC, s.dstMAC, s.src, s.sport = macDir, macRouter, ipVIP, vport
		return s
	}
	syn := fromClient(cport, "S", spISN, 0)
	syn.mss = 1460
	ppStep(t, w, tbl, "SYN", syn.bytes(t), natReal(syn).bytes(t), nil, now)
	synack := fromReal(t, w, cport, "SA", spRISN, spISN+1)
	synack.mss = 1460
	ppStep(t, w, tbl, "SYN-ACK", synack.bytes(t), natClient(synack).bytes(t), nil, now)

	// The client's first segment after the SYN carries data and the
	// handshake's acknowledgment at once.
	data := fromClient(cport, "PA", spISN+1, spRISN+1)
	data.payload = []byte("GET / HTTP/1.0\r\n\r\n")
	dl := uint32(len(data.payload))
	want := natReal(data)
	want.seq = spISN + 1 + L
	hdr := headerSeg(ForwardNAT, ProxyV2, spISN+1, spRISN+1, 5000, nil)
	ppStep(t, w, tbl, "client data", data.bytes(t), want.bytes(t), [][]byte{hdr.bytes(t)}, now)

	resp := fromReal(t, w, cport, "PA", spRISN+1, spISN+1+L+dl)
	resp.opts = []layers.TCPOption{optNOP, optNOP, optSACK(cisn+L+101, cisn+L+201)}
	resp.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
	want = natClient(resp)
	want.ack = spISN + 1 + dl
	want.opts = []layers.TCPOption{optNOP, optNOP, optSACK(cisn+101, cisn+201)}
	ppStep(t, w, tbl, "real data with SACK", resp.bytes(t), want.bytes(t), nil, now)
	if e := entryOf(t, w, cport); e.Flags&flagProxyPending != 0 || *w.shard.Aux(e) != (conntrack.Aux{auxClient: L}) {
		t.Fatalf("entry flags %#x aux %#x, want acknowledged, in = %d", e.Flags, *w.shard.Aux(e), L)
	}
}

// TestGoldenProxySynProxy: a SYN-proxied FULLNAT connection. The real's
// SYN-ACK is answered by the header segment, which acknowledges it, and
// the held handshake ACK follows it, moved up by the header's length.
func TestGoldenProxySynProxy(t *testing.T) {
	for _, f := range []Forward{ForwardFullNAT, ForwardNAT} {
		t.Run(f.String(), func(t *testing.T) {
			tbl := spTable(f)
			tbl.Reals[0].Proxy = ProxyV1
			w := spWorker(tbl, 1024)
			const now = int64(time.Second)
			L := uint32(len(wantProxyHeader(ProxyV1)))
			cookie := cookieSYN(t, w, tbl, cport, spISN, now)
			hs := fromClient(cport, "A", spISN+1, cookie+1)
			if _, _, v := spSend(t, w, tbl, hs.bytes(t), header.Offload{}, now); v != VerdictSynProxy {
				t.Fatalf("ACK: verdict %v", v)
			}
			in := clientOffset(t, w, cport)
			synack := fromReal(t, w, cport, "SA", spRISN, spISN+in+1)
			synack.mss = 1460
			hdr := headerSeg(f, ProxyV1, spISN+in+1, spRISN+1, ppSynProxyWindow, nil)
			held := hs
			held.srcMAC, held.dstMAC, held.dst, held.dport = macDir, macRS1, ipRS1, natPort
			if f == ForwardFullNAT {
				held.src, held.sport = ipLocal, portLo
			}
			held.seq, held.ack = spISN+in+1+L, spRISN+1
			ppStep(t, w, tbl, "SYN-ACK", synack.bytes(t), hdr.bytes(t), [][]byte{held.bytes(t)}, now)

			resp := fromReal(t, w, cport, "PA", spRISN+1, spISN+in+1+L)
			resp.payload = []byte("220 hello\r\n")
			want := resp
			want.srcMAC, want.dstMAC, want.src, want.sport, want.dst, want.dport = macDir, macRouter, ipVIP, vport, ipClient, cport
			want.seq, want.ack = cookie+1, spISN+1
			ppStep(t, w, tbl, "real data", resp.bytes(t), want.bytes(t), nil, now)
			if e := entryOf(t, w, cport); e.Flags&flagProxyPending != 0 || w.C.ProxyAcked.Load() != 1 {
				t.Fatalf("entry flags %#x: the header's acknowledgment did not end the wait", e.Flags)
			}
		})
	}
}

// TestProxyResendTimer: a header the real never acknowledges goes again
// from the expiry walk, straight to the link, after 200 ms, then 400 ms
// (twice the wait each time), as the same bytes; after ppMaxTries sends
// the connection is dropped and its slot freed. A silent client does not
// hold it back.
func TestProxyResendTimer(t *testing.T) {
	tbl := ppTable(ForwardFullNAT, ProxyV2)
	l := &fakeLink{}
	w := spWorker(tbl, 1024)
	w.link, w.cur = l, tbl
	now := int64(time.Second)
	syn := fromClient(cport, "S", spISN, 0)
	isn := tcpOf(mustSend(t, w, tbl, syn.bytes(t), now)).SequenceNumber()
	mustSend(t, w, tbl, fromReal(t, w, cport, "SA", spRISN, isn+1).bytes(t), now)
	_, extra, _ := spSend(t, w, tbl, fromClient(cport, "A", spISN+1, spRISN+1).bytes(t), header.Offload{}, now)
	if len(extra) != 1 {
		t.Fatalf("handshake ACK: %d frames queued behind, want the header", len(extra))
	}
	first := extra[0]
	w.proxyTimers(now + ppRTO - 1)
	if len(l.sent()) != 0 {
		t.Fatalf("header sent again before its RTO")
	}
	w.proxyTimers(now + ppRTO)
	if s := l.sent(); len(s) != 1 || !bytes.Equal(s[0], first) {
		t.Fatalf("after RTO: %d frames sent, want the header again", len(s))
	}
	w.proxyTimers(now + 2*ppRTO)
	if len(l.sent()) != 1 {
		t.Fatalf("sent again before twice the RTO")
	}
	w.proxyTimers(now + 3*ppRTO)
	if len(l.sent()) != 2 {
		t.Fatalf("not sent again after twice the RTO")
	}
	at := now + 3*ppRTO
	for i := 3; i <= ppMaxTries; i++ {
		at += ppRTO << (i - 1)
		w.proxyTimers(at)
	}
	if n := len(l.sent()); n != ppMaxTries-1 {
		t.Fatalf("%d resends, want %d", n, ppMaxTries-1)
	}
	k := conntrack.Key4{Src: ipClient.As4(), Dst: ipVIP.As4(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
	if e, _ := w.shard.Lookup(&k); e != nil || w.pp.used != 0 || w.C.ProxyGaveUp.Load() != 1 {
		t.Fatalf("after %d tries: entry %v, %d slots used, ProxyGaveUp %d; want gone", ppMaxTries, e != nil, w.pp.used, w.C.ProxyGaveUp.Load())
	}
}

// TestProxyResendOnClientSegment: a client segment after the RTO sends
// the header again behind it; a retransmitted SYN-ACK from the real sends
// it at once. An expired connection frees its slot.
func TestProxyResendOnClientSegment(t *testing.T) {
	tbl := ppTable(ForwardFullNAT, ProxyV2)
	w := spWorker(tbl, 1024)
	w.cur = tbl
	now := int64(time.Second)
	isn := tcpOf(mustSend(t, w, tbl, fromClient(cport, "S", spISN, 0).bytes(t), now)).SequenceNumber()
	synack := fromReal(t, w, cport, "SA", spRISN, isn+1)
	spSend(t, w, tbl, synack.bytes(t), header.Offload{}, now)
	L := uint32(len(wantProxyHeader(ProxyV2)))
	ack := fromClient(cport, "A", spISN+1, spRISN+1)
	if _, extra, _ := spSend(t, w, tbl, ack.bytes(t), header.Offload{}, now); len(extra) != 1 {
		t.Fatalf("handshake ACK: %d frames behind it, want the header", len(extra))
	}
	if _, extra, _ := spSend(t, w, tbl, ack.bytes(t), header.Offload{}, now+ppRTO-1); len(extra) != 0 {
		t.Fatalf("header sent again before its RTO")
	}
	want := headerSeg(ForwardFullNAT, ProxyV2, isn+1, spRISN+1, 5000, nil)
	if out, extra, _ := spSend(t, w, tbl, ack.bytes(t), header.Offload{}, now+ppRTO); len(extra) != 1 ||
		!bytes.Equal(extra[0], want.bytes(t)) || tcpOf(out).SequenceNumber() != isn+1+L {
		t.Fatalf("client segment after RTO: %d frames behind it, want the header", len(extra))
	}
	if _, extra, _ := spSend(t, w, tbl, synack.bytes(t), header.Offload{}, now+ppRTO+1); len(extra) != 1 || !bytes.Equal(extra[0], want.bytes(t)) {
		t.Fatalf("real's SYN-ACK again: %d frames behind it, want the header", len(extra))
	}
	w.expire(now+int64(time.Hour), true)
	if w.shard.Len() != 0 || w.pp.used != 0 {
		t.Fatalf("after expiry: %d entries, %d slots used", w.shard.Len(), w.pp.used)
	}
}

// TestProxyPartialChecksum: segments with partial checksums, while the
// header waits (the real's acknowledgment raised, its SACK clamped) and
// after, come out, once the kernel finishes their checksums, as the same
// segments with complete checksums do.
func TestProxyPartialChecksum(t *testing.T) {
	tbl := ppTable(ForwardFullNAT, ProxyV2)
	run := func(off bool) [][]byte {
		w := spWorker(tbl, 1024)
		const now = int64(time.Second)
		syn := fromClient(cport, "S", spISN, 0)
		syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
		isn := tcpOf(mustSend(t, w, tbl, syn.bytes(t), now)).SequenceNumber()
		synack := fromReal(t, w, cport, "SA", spRISN, isn+1)
		spSend(t, w, tbl, synack.bytes(t), header.Offload{}, now)
		L := uint32(len(wantProxyHeader(ProxyV2)))
		data := fromClient(cport, "PA", spISN+1, spRISN+1)
		data.payload = []byte("GET / HTTP/1.0\r\n\r\n")
		dup := fromReal(t, w, cport, "A", spRISN+1, isn+1)
		dup.opts = []layers.TCPOption{optNOP, optNOP, optSACK(isn+1, isn+1+L+18)}
		acked := fromReal(t, w, cport, "PA", spRISN+1, isn+1+L+18)
		acked.opts = []layers.TCPOption{optNOP, optNOP, optSACK(isn+L+100, isn+L+200)}
		acked.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
		var outs [][]byte
		for _, s := range []seg{data, dup, acked, data} {
			in := s.bytes(t)
			var o header.Offload
			if off {
				o = partial(t, in)
			}
			out, _, v := spSend(t, w, tbl, in, o, now)
			if v != VerdictForward {
				t.Fatalf("verdict %v", v)
			}
			if off && w.txOff.Flags&header.OffloadNeedsCsum == 0 {
				t.Fatalf("the offload request lost its NeedsCsum")
			}
			outs = append(outs, finish(t, out, w.txOff))
		}
		return outs
	}
	full, part := run(false), run(true)
	for i := range full {
		if !bytes.Equal(full[i], part[i]) {
			t.Fatalf("segment %d: partial checksum, finished, differs from the complete one\n got:\n%s\nwant:\n%s\n%s", i, hex.Dump(part[i]), hex.Dump(full[i]), diff(part[i], full[i]))
		}
		ip := header.IPv4(full[i][header.EthernetLen:])
		if !header.TCP(ip.Payload()).IsChecksumValid(ip.Source(), ip.Destination()) {
			t.Fatalf("segment %d: bad checksum", i)
		}
	}
}

// TestZeroAllocsProxy: the header's insertion, its wait and the shifted
// segments after it allocate nothing.
func TestZeroAllocsProxy(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		tbl := ppTable(f, ProxyV1)
		w := spWorker(tbl, 1<<16)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		send := func(frame []byte) []byte {
			copy(buf[Headroom:], frame)
			out, v := w.process(tbl, buf, len(frame), icmp, 1)
			if v != VerdictForward {
				t.Fatalf("%v: verdict %v", f, v)
			}
			w.resetSpare()
			return out
		}
		const n = 300
		var syns, synacks, datas, acks [][]byte
		for i := range n + 1 {
			sport := uint16(10000 + i)
			syns = append(syns, fromClient(sport, "S", spISN, 0).bytes(t))
		}
		for i := range n + 1 {
			sport := uint16(10000 + i)
			isn := tcpOf(send(syns[i])).SequenceNumber()
			synacks = append(synacks, fromReal(t, w, sport, "SA", spRISN, isn+1).bytes(t))
			d := fromClient(sport, "PA", spISN+1, spRISN+1)
			d.payload = []byte("GET / HTTP/1.0\r\n\r\n")
			datas = append(datas, d.bytes(t))
			acks = append(acks, fromReal(t, w, sport, "A", spRISN+1, isn+1+100).bytes(t))
		}
		i := 0
		a := testing.AllocsPerRun(n, func() {
			send(synacks[i])
			send(datas[i])
			send(acks[i])
			i++
		})
		if a != 0 {
			t.Errorf("%v: %.1f allocations per connection, want 0", f, a)
		}
		if w.C.ProxyHeaders.Load() != n+1 || w.pp.used != 0 {
			t.Errorf("%v: %d headers, %d slots in use", f, w.C.ProxyHeaders.Load(), w.pp.used)
		}
	}
}

// TestProxyNoSlot: with every slot taken, a client's handshake ACK that
// calls for a header is dropped and counted, and nothing changes for its
// connection: the next, once a slot is free, brings the header.
func TestProxyNoSlot(t *testing.T) {
	tbl := ppTable(ForwardFullNAT, ProxyV2)
	w := spWorker(tbl, 1024)
	const now = int64(time.Second)
	isn := tcpOf(mustSend(t, w, tbl, fromClient(cport, "S", spISN, 0).bytes(t), now)).SequenceNumber()
	for i := range w.pp.slots {
		w.pp.slots[i].key.Proto = header.ProtoTCP
		w.pp.slots[i].key.SrcPort = uint16(i + 1)
	}
	w.pp.used = ppSlots
	mustSend(t, w, tbl, fromReal(t, w, cport, "SA", spRISN, isn+1).bytes(t), now)
	ack := fromClient(cport, "A", spISN+1, spRISN+1).bytes(t)
	if out, extra, v := spSend(t, w, tbl, ack, header.Offload{}, now); v != VerdictTableFull || out != nil || len(extra) != 0 {
		t.Fatalf("handshake ACK without a slot: verdict %v", v)
	}
	if e := entryOf(t, w, cport); e.Flags&(flagProxyHdr|flagProxyPending) != 0 || w.C.ProxyNoSlot.Load() != 1 {
		t.Fatalf("flags %#x, ProxyNoSlot %d", e.Flags, w.C.ProxyNoSlot.Load())
	}
	w.pp.free(&w.pp.slots[0])
	if _, extra, v := spSend(t, w, tbl, ack, header.Offload{}, now); v != VerdictForward || len(extra) != 1 {
		t.Fatalf("handshake ACK with a slot: verdict %v, %d frames behind", v, len(extra))
	}
}

// TestPutProxyHeaderV1Longest: the longest v1 header fits ppMaxLen.
func TestPutProxyHeaderV1Longest(t *testing.T) {
	var b [ppMaxLen]byte
	a := [4]byte{255, 255, 255, 255}
	n := putProxyHeader(b[:], ProxyV1, a, 65535, a, 65535)
	if want := "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"; string(b[:n]) != want {
		t.Fatalf("got %q, want %q", b[:n], want)
	}
}

// TestSyncProxyHeader: a NAT or FULLNAT connection whose real got its
// PROXY header on the master is reported with the header in its client
// offset and flagged; installed on the backup, from the report or as the
// wire gives it back (SetFullNATOffsets and SetProxyHeader, what control's
// entryOf does), it translates client and real segments (SACK blocks,
// FIN) byte for byte as the master does, and a late SYN-ACK from the real
// (nor the handshake's ACK) does not make the backup send the header again.
func TestSyncProxyHeader(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		for _, variant := range []string{"report", "wire"} {
			t.Run(f.String()+"/"+variant, func(t *testing.T) {
				mk := func() (*Dataplane, *Table) {
					d, err := New([]Link{&fakeLink{}}, 1024)
					if err != nil {
						t.Fatal(err)
					}
					d.EnableSync(64, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
					tbl := ppTable(f, ProxyV2)
					d.Publish(tbl)
					d.workers[0].cur = tbl
					return d, tbl
				}
				master, mt := mk()
				backup, bt := mk()
				mw, bw := master.workers[0], backup.workers[0]
				const now = int64(time.Second)
				L := uint32(len(wantProxyHeader(ProxyV2)))
				syn := fromClient(cport, "S", spISN, 0)
				syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
				isn := tcpOf(mustSend(t, mw, mt, syn.bytes(t), now)).SequenceNumber()
				synack := fromReal(t, mw, cport, "SA", spRISN, isn+1)
				synack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS, fnClientTS)}
				mustSend(t, mw, mt, synack.bytes(t), now)
				if _, extra, _ := spSend(t, mw, mt, fromClient(cport, "A", spISN+1, spRISN+1).bytes(t), header.Offload{}, now); len(extra) != 1 {
					t.Fatalf("no header from the master")
				}
				mustSend(t, mw, mt, fromReal(t, mw, cport, "A", spRISN+1, isn+1+L).bytes(t), now)
				aux := *mw.shard.Aux(entryOf(t, mw, cport))
				ev := master.SyncEvents(nil)
				last := ev[len(ev)-1]
				if last.Entry.State != conntrack.TCPEstablished || !last.ProxyHeader() || !last.SeqTranslated() || last.Aux != aux {
					t.Fatalf("last report %+v, want established, flagged, Aux %#x", last, aux)
				}
				if in, _ := last.SeqDeltas(); in != isn-spISN+L && f == ForwardFullNAT || in != L && f == ForwardNAT {
					t.Fatalf("reported in %#x", in)
				}
				install := []SyncConn{last}
				if variant == "wire" {
					var c SyncConn
					c.Entry = last.Entry
					c.Entry.Flags = 0
					in, _ := last.SeqDeltas()
					c.SetFullNATOffsets(in, last.TSOffset())
					c.SetProxyHeader()
					install = []SyncConn{c}
				}
				backup.Install(synced(install, now), true)
				bw.serveSync(now)
				if s := backup.SyncStats(); s.Installed != 1 {
					t.Fatalf("sync stats %+v", s)
				}
				if e := entryOf(t, bw, cport); e.Flags&(flagProxyHdr|flagSeqXlate) != flagProxyHdr|flagSeqXlate || *bw.shard.Aux(e) != aux {
					t.Fatalf("backup entry flags %#x aux %#x, want %#x", e.Flags, *bw.shard.Aux(e), aux)
				}
				req := fromClient(cport, "AP", spISN+1, spRISN+1)
				req.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+4, fnRealTS)}
				req.payload = []byte("GET / HTTP/1.0\r\n\r\n")
				resp := fromReal(t, mw, cport, "AP", spRISN+1, isn+1+L+18)
				resp.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, fnClientTS+4+aux[auxTS]), optNOP, optNOP,
					optSACK(isn+L+30, isn+L+40)}
				resp.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
				cisn := uint32(spISN)
				fin := fromClient(cport, "FA", cisn+19, spRISN+20)
				for _, s := range []struct {
					name string
					seg  seg
				}{{"client segment", req}, {"real segment", resp}, {"client FIN", fin}} {
					frame := s.seg.bytes(t)
					want := mustSend(t, mw, mt, frame, now)
					got := mustSend(t, bw, bt, frame, now)
					same(t, s.name+" from the backup", got, want)
					checksumsValid(t, s.name, got)
				}
				if _, extra, _ := spSend(t, bw, bt, fromClient(cport, "A", spISN+1, spRISN+1).bytes(t), header.Offload{}, now); len(extra) != 0 || bw.C.ProxyHeaders.Load() != 0 {
					t.Fatalf("the backup sent a header for a synced connection")
				}
			})
		}
	}
}

// TestCaptureProxyHeader: a capture records the header segment like any
// frame the worker sent: behind the client's handshake ACK (In nil, the
// ACK's verdict, service and real), and when the expiry walk sends it
// again.
// A filter that does not select the connection records neither.
func TestCaptureProxyHeader(t *testing.T) {
	tbl := ppTable(ForwardFullNAT, ProxyV2)
	w, slot := captureWorker(tbl)
	svc := ServiceKey{Proto: header.ProtoTCP, VIP: ipVIP.As4(), Port: vport}
	for _, tc := range []struct {
		name   string
		filter CaptureFilter
		want   bool
	}{{"service", CaptureFilter{Service: &svc}, true}, {"another port", CaptureFilter{Port: 53}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Capture{filter: tc.filter, frames: make(chan CapturedFrame, 16)}
			slot.Store(c)
			defer slot.Store(nil)
			sport := uint16(cport + 100)
			if tc.want {
				sport++
			}
			runBatch(w, tbl, fromClient(sport, "S", spISN, 0).bytes(t))
			drain(c)
			isn := spISN + w.shard.Aux(entryOf(t, w, sport))[auxClient] // the director's
			runBatch(w, tbl, fromReal(t, w, sport, "SA", spRISN, isn+1).bytes(t))
			drain(c)
			runBatch(w, tbl, fromClient(sport, "A", spISN+1, spRISN+1).bytes(t))
			hdr := headerSeg(ForwardFullNAT, ProxyV2, isn+1, spRISN+1, 5000, nil)
			hdr.sport = entryOf(t, w, sport).LPort
			binary.BigEndian.PutUint16(hdr.payload[24:], sport) // the client's port in the v2 header
			want := hdr.bytes(t)
			got := drain(c)
			if !tc.want {
				if len(got) != 0 {
					t.Fatalf("%d frames recorded, want none", len(got))
				}
				return
			}
			if len(got) != 2 || got[0].In == nil || got[1].In != nil || !bytes.Equal(got[1].Out, want) ||
				got[1].Verdict != VerdictForward || got[1].Service != svc || got[1].Real != netip.AddrPortFrom(ipRS1, natPort) {
				t.Fatalf("recorded %+v, want the handshake ACK and then the header segment\n%s", got, diff(got[len(got)-1].Out, want))
			}
			w.proxyTimers(1 + ppRTO)
			if got := drain(c); len(got) != 1 || got[0].In != nil || !bytes.Equal(got[0].Out, want) {
				t.Fatalf("after the RTO: recorded %+v, want the header segment again", got)
			}
		})
	}
}

// TestProxyNoSlotSynProxy: with every slot taken, the real's SYN-ACK to a
// SYN-proxied connection is dropped and changes nothing; sent again once
// a slot is free, it brings the header and the held ACK.
func TestProxyNoSlotSynProxy(t *testing.T) {
	tbl := spTable(ForwardFullNAT)
	tbl.Reals[0].Proxy = ProxyV2
	w := spWorker(tbl, 1024)
	const now = int64(time.Second)
	cookie := cookieSYN(t, w, tbl, cport, spISN, now)
	if _, _, v := spSend(t, w, tbl, fromClient(cport, "A", spISN+1, cookie+1).bytes(t), header.Offload{}, now); v != VerdictSynProxy {
		t.Fatalf("ACK: verdict %v", v)
	}
	for i := range w.pp.slots {
		w.pp.slots[i].key.Proto = header.ProtoTCP
		w.pp.slots[i].key.SrcPort = uint16(i + 1)
	}
	w.pp.used = ppSlots
	synack := fromReal(t, w, cport, "SA", spRISN, spISN+clientOffset(t, w, cport)+1).bytes(t)
	if out, extra, _ := spSend(t, w, tbl, synack, header.Offload{}, now); out != nil || len(extra) != 0 {
		t.Fatalf("SYN-ACK without a slot: %d bytes out, %d behind", len(out), len(extra))
	}
	if e := entryOf(t, w, cport); e.Flags&flagSynPending == 0 || w.C.ProxyNoSlot.Load() != 1 {
		t.Fatalf("flags %#x, ProxyNoSlot %d; want still pending", e.Flags, w.C.ProxyNoSlot.Load())
	}
	w.pp.free(&w.pp.slots[0])
	out, extra, _ := spSend(t, w, tbl, synack, header.Offload{}, now)
	if len(out) == 0 || !bytes.Equal(header.TCP(header.IPv4(out[header.EthernetLen:]).Payload()).Payload(), wantProxyHeader(ProxyV2)) || len(extra) != 1 {
		t.Fatalf("SYN-ACK with a slot: %d bytes out, %d behind; want the header and the held ACK", len(out), len(extra))
	}
}

// TestProxyNotMidStream: a connection established before its real got
// proxy_protocol (a reload) gets no header in the middle of its stream;
// the next connection does.
func TestProxyNotMidStream(t *testing.T) {
	tbl := ppTable(ForwardFullNAT, 0)
	w := spWorker(tbl, 1024)
	const now = int64(time.Second)
	isn := tcpOf(mustSend(t, w, tbl, fromClient(cport, "S", spISN, 0).bytes(t), now)).SequenceNumber()
	mustSend(t, w, tbl, fromReal(t, w, cport, "SA", spRISN, isn+1).bytes(t), now)
	mustSend(t, w, tbl, fromClient(cport, "A", spISN+1, spRISN+1).bytes(t), now)
	tbl.Reals[0].Proxy = ProxyV2
	data := fromClient(cport, "PA", spISN+1, spRISN+1)
	data.payload = []byte("GET / HTTP/1.0\r\n\r\n")
	out, extra, _ := spSend(t, w, tbl, data.bytes(t), header.Offload{}, now)
	if len(extra) != 0 || tcpOf(out).SequenceNumber() != isn+1 || w.C.ProxyHeaders.Load() != 0 {
		t.Fatalf("an established connection got a header: %d frames behind, seq %#x (want %#x)", len(extra), tcpOf(out).SequenceNumber(), isn+1)
	}
	isn = tcpOf(mustSend(t, w, tbl, fromClient(cport+1, "S", spISN, 0).bytes(t), now)).SequenceNumber()
	mustSend(t, w, tbl, fromReal(t, w, cport+1, "SA", spRISN, isn+1).bytes(t), now)
	if _, extra, _ := spSend(t, w, tbl, fromClient(cport+1, "A", spISN+1, spRISN+1).bytes(t), header.Offload{}, now); len(extra) != 1 {
		t.Fatalf("a new connection got no header")
	}
}

// BenchmarkProxyProtocol: a FULLNAT or NAT connection's opening (SYN,
// SYN-ACK, the handshake ACK that takes the header along, the real's ACK
// of it, and the client's RST that ends it: five frames), and a data frame
// of an established connection, with and without proxy_protocol.
func BenchmarkProxyProtocol(b *testing.B) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		for _, v := range []ProxyVersion{0, ProxyV2} {
			name := f.String() + "/" + map[ProxyVersion]string{0: "none", ProxyV2: "v2"}[v]
			run := func(b *testing.B, perOp int, frames func(w *Worker, tbl *Table) [][]byte) *Worker {
				tbl := ppTable(f, v)
				tbl.PortLo, tbl.PortHi = portLo, portLo // one local port: the same ISN every time (now is fixed)
				w := spWorker(tbl, 1<<16)
				buf := make([]byte, Headroom+MaxFrame)
				icmp := make([]byte, 128)
				all := frames(w, tbl)
				b.ReportAllocs()
				for b.Loop() {
					for _, fr := range all {
						copy(buf[Headroom:], fr)
						w.process(tbl, buf, len(fr), icmp, 1)
						w.resetSpare()
					}
				}
				b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "pps")
				return w
			}
			b.Run(name+"/open", func(b *testing.B) {
				w := run(b, 5, func(w *Worker, tbl *Table) [][]byte {
					syn := fromClient(cport, "S", spISN, 0).bytes(b)
					isn := tcpOf(mustSend(b, w, tbl, syn, 1)).SequenceNumber()
					L := uint32(0)
					if v != 0 {
						L = uint32(len(wantProxyHeader(v)))
					}
					fr := [][]byte{syn, fromReal(b, w, cport, "SA", spRISN, isn+1).bytes(b),
						fromClient(cport, "A", spISN+1, spRISN+1).bytes(b),
						fromReal(b, w, cport, "A", spRISN+1, isn+1+L).bytes(b),
						fromClient(cport, "R", spISN+1, 0).bytes(b)}
					mustSend(b, w, tbl, fr[4], 1) // closed: the loop's SYN opens anew
					return fr
				})
				if v != 0 && (w.C.ProxyHeaders.Load() < uint64(b.N) || w.C.ProxyAcked.Load() < uint64(b.N)) {
					b.Fatalf("%d headers sent, %d acknowledged in %d openings", w.C.ProxyHeaders.Load(), w.C.ProxyAcked.Load(), b.N)
				}
			})
			b.Run(name+"/data", func(b *testing.B) {
				run(b, 1, func(w *Worker, tbl *Table) [][]byte {
					isn := tcpOf(mustSend(b, w, tbl, fromClient(cport, "S", spISN, 0).bytes(b), 1)).SequenceNumber()
					mustSend(b, w, tbl, fromReal(b, w, cport, "SA", spRISN, isn+1).bytes(b), 1)
					d := fromClient(cport, "PA", spISN+1, spRISN+1)
					d.payload = make([]byte, 1000)
					mustSend(b, w, tbl, d.bytes(b), 1)
					mustSend(b, w, tbl, fromReal(b, w, cport, "A", spRISN+1, isn+2000).bytes(b), 1)
					return [][]byte{d.bytes(b)}
				})
			})
		}
	}
}

// FuzzProxyPending feeds arbitrary TCP segments, both ways, to a FULLNAT
// connection whose PROXY header the real has not acknowledged yet.
// Invariants: no panic; every segment that goes out has valid checksums;
// while the header waits, a real's acknowledgment and SACK edges reach
// the client at its ISN+1 or after, never in the header's bytes.
func FuzzProxyPending(f *testing.F) {
	f.Add(true, uint8(0x10), uint32(spRISN+1), uint32(0), uint32(0), uint32(0), false, false, []byte(nil))
	f.Add(true, uint8(0x10), uint32(spRISN+1), uint32(1), uint32(0), uint32(28), true, true, []byte("x"))
	f.Add(false, uint8(0x18), uint32(spISN+1), uint32(spRISN+1), uint32(5), uint32(9), true, true, []byte("GET /"))
	f.Add(true, uint8(0x12), uint32(spRISN), uint32(1), uint32(0), uint32(0), false, true, []byte(nil))
	f.Fuzz(func(t *testing.T, reply bool, flags uint8, seq, ackOff, e1, e2 uint32, sack, ts bool, payload []byte) {
		if len(payload) > 1400 {
			return
		}
		tbl := ppTable(ForwardFullNAT, ProxyV2)
		w := spWorker(tbl, 64)
		const now = int64(time.Second)
		syn := fromClient(cport, "S", spISN, 0)
		syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
		isn := tcpOf(mustSend(t, w, tbl, syn.bytes(t), now)).SequenceNumber()
		mustSend(t, w, tbl, fromReal(t, w, cport, "SA", spRISN, isn+1).bytes(t), now)
		mustSend(t, w, tbl, fromClient(cport, "A", spISN+1, spRISN+1).bytes(t), now)
		e := entryOf(t, w, cport)
		floor := uint32(spISN) + 1 // the client's ISN+1
		s := fromClient(cport, "", seq, ackOff)
		if reply {
			s = fromReal(t, w, cport, "", seq, isn+1+ackOff)
		}
		var fl strings.Builder
		for i, c := range "FSRPA" {
			if flags&(1<<[]uint{0, 1, 2, 3, 4}[i]) != 0 {
				fl.WriteRune(c)
			}
		}
		s.flags, s.payload = fl.String(), payload
		if ts {
			s.opts = append(s.opts, optNOP, optNOP, optTS(e1, e2))
		}
		if sack {
			s.opts = append(s.opts, optNOP, optNOP, optSACK(isn+1+e1, isn+1+e2))
		}
		pending := e.Flags&flagProxyPending != 0
		out, extra, _ := spSend(t, w, tbl, s.bytes(t), header.Offload{}, now)
		for _, fr := range append(extra, out) {
			if fr == nil {
				continue
			}
			checksumsValid(t, "output", fr)
		}
		if out == nil || !reply || !pending {
			return
		}
		tcp := tcpOf(out)
		if tcp.Flags()&header.TCPFlagAck != 0 && int32(tcp.AckNumber()-floor) < 0 {
			t.Fatalf("ack %#x reached the client, before its ISN+1 %#x", tcp.AckNumber(), floor)
		}
		for o := header.TCPMinLen; o < tcp.DataOffset() && tcp[o] != header.TCPOptionEOL; {
			if tcp[o] == header.TCPOptionNOP {
				o++
				continue
			}
			n := int(tcp[o+1])
			if tcp[o] == header.TCPOptionSACK {
				for b := o + 2; b < o+n; b += 4 {
					if edge := tcp.Word32(b); int32(edge-floor) < 0 {
						t.Fatalf("SACK edge %#x reached the client, before its ISN+1 %#x", edge, floor)
					}
				}
			}
			o += n
		}
	})
}
