package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// seg is a TCP segment for the independent encoder (gopacket), with the
// fields the SYN proxy reads and writes.
type seg struct {
	srcMAC, dstMAC [6]byte
	src, dst       netip.Addr
	sport, dport   uint16
	seq, ack       uint32
	flags          string // of "SAPRF": SYN, ACK, PSH, RST, FIN
	window         uint16
	mss            uint16             // an MSS option; 0: none
	opts           []layers.TCPOption // more options, after the MSS
	payload        []byte
	ttl            uint8 // 0: 63, as the client's packets arrive
	id             uint16
	tos            uint8
}

func (s seg) bytes(tb testing.TB) []byte {
	tb.Helper()
	ttl := s.ttl
	if ttl == 0 {
		ttl = 63
	}
	ip := &layers.IPv4{Version: 4, TOS: s.tos, TTL: ttl, Id: s.id, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
	tc := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), Seq: s.seq, Ack: s.ack, Window: s.window,
		SYN: strings.Contains(s.flags, "S"), ACK: strings.Contains(s.flags, "A"), PSH: strings.Contains(s.flags, "P"),
		RST: strings.Contains(s.flags, "R"), FIN: strings.Contains(s.flags, "F")}
	if s.mss != 0 {
		tc.Options = append(tc.Options, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4,
			OptionData: binary.BigEndian.AppendUint16(nil, s.mss)})
	}
	tc.Options = append(tc.Options, s.opts...)
	tc.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: s.srcMAC[:], DstMAC: s.dstMAC[:], EthernetType: layers.EthernetTypeIPv4}, ip, tc, gopacket.Payload(s.payload))
	if err != nil {
		tb.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	return b[:header.EthernetLen+int(header.IPv4(b[header.EthernetLen:]).TotalLength())] // no Ethernet padding
}

// The ISNs of the tests: the client's wraps around 2^32 in the handshake.
const (
	spISN  = 0xffff_fff0
	spRISN = 0x1234_5678
)

// linuxOptions are what a Linux client's SYN carries after the MSS.
var linuxOptions = []layers.TCPOption{
	{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
	{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 0}},
	{OptionType: layers.TCPOptionKindNop},
	{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
}

// spTable is testTable(f, tcp) with the SYN proxy on.
func spTable(f Forward) *Table {
	tbl := testTable(f, header.ProtoTCP)
	for _, s := range tbl.Services {
		s.SynProxy = true
	}
	return tbl
}

func spWorker(tbl *Table, capacity int) *Worker {
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	return newWorker(0, 1, nil, &ptr, capacity)
}

// fromClient is a segment of the client's connection from port sport.
func fromClient(sport uint16, flags string, seq, ack uint32) seg {
	return seg{srcMAC: macRouter, dstMAC: macDir, src: ipClient, dst: ipVIP, sport: sport, dport: vport,
		seq: seq, ack: ack, flags: flags, window: 5000, id: 7}
}

// fromReal is a segment of the real of w's connection from client port
// sport, as the real sends it (to the client in NAT, to the local address
// and port in FULLNAT).
func fromReal(t testing.TB, w *Worker, sport uint16, flags string, seq, ack uint32) seg {
	t.Helper()
	s := seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: sport,
		seq: seq, ack: ack, flags: flags, window: 29200, id: 9, ttl: 64}
	if e := entryOf(t, w, sport); e.Local != ([4]byte{}) {
		s.dst, s.dport = netip.AddrFrom4(e.Local), e.LPort
	}
	return s
}

// entryOf returns the connection of client port sport.
func entryOf(t testing.TB, w *Worker, sport uint16) *conntrack.Entry4 {
	t.Helper()
	k := conntrack.Key4{Src: ipClient.As4(), Dst: ipVIP.As4(), SrcPort: sport, DstPort: vport, Proto: header.ProtoTCP}
	e, _ := w.shard.Lookup(&k)
	if e == nil {
		t.Fatalf("no connection from port %d", sport)
	}
	return e
}

// spSend runs frame (with offloads off) through w at now and returns
// copies of the frame sent, of the frames queued behind it, and the
// verdict.
func spSend(t testing.TB, w *Worker, tbl *Table, frame []byte, off header.Offload, now int64) (out []byte, extra [][]byte, v Verdict) {
	t.Helper()
	buf := make([]byte, Headroom+MaxFrame)
	copy(buf[Headroom:], frame)
	o, v := w.processOffload(tbl, buf, len(frame), off, make([]byte, 128), now)
	if o != nil {
		out = append([]byte(nil), o...)
	}
	for _, x := range w.extra {
		extra = append(extra, append([]byte(nil), x...))
	}
	w.resetSpare()
	return out, extra, v
}

// same fails unless got is want, byte for byte.
func same(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs\n got:\n%s\nwant:\n%s\n%s", what, hex.Dump(got), hex.Dump(want), diff(got, want))
	}
}

// checksumsValid fails unless frame's IPv4 and TCP checksums are right.
func checksumsValid(t testing.TB, what string, frame []byte) {
	t.Helper()
	ip := header.IPv4(frame[header.EthernetLen:])
	if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
		t.Fatalf("%s: IPv4 header invalid", what)
	}
	if !header.TCP(ip.Payload()).IsChecksumValid(ip.Source(), ip.Destination()) {
		t.Fatalf("%s: TCP checksum invalid", what)
	}
}

// tcpOf returns the TCP header of frame.
func tcpOf(frame []byte) header.TCP {
	return header.TCP(header.IPv4(frame[header.EthernetLen:]).Payload())
}

// cookieSYN sends a Linux-like SYN from sport (MSS 1460, SACK, timestamps,
// window scaling) and returns the cookie of the SYN-ACK.
func cookieSYN(t testing.TB, w *Worker, tbl *Table, sport uint16, isn uint32, now int64) uint32 {
	t.Helper()
	syn := fromClient(sport, "S", isn, 0)
	syn.mss, syn.opts, syn.window = 1460, linuxOptions, 64240
	out, _, v := spSend(t, w, tbl, syn.bytes(t), header.Offload{}, now)
	if v != VerdictSynProxy || out == nil {
		t.Fatalf("SYN: verdict %v, %d bytes out", v, len(out))
	}
	return tcpOf(out).SequenceNumber()
}

// handshake runs a whole SYN-proxied handshake of client port sport
// through w: SYN, ACK, and the real's SYN-ACK, and returns the cookie.
func handshake(t testing.TB, w *Worker, tbl *Table, sport uint16, isn, risn uint32, now int64) uint32 {
	t.Helper()
	cookie := cookieSYN(t, w, tbl, sport, isn, now)
	if _, _, v := spSend(t, w, tbl, fromClient(sport, "A", isn+1, cookie+1).bytes(t), header.Offload{}, now); v != VerdictSynProxy {
		t.Fatalf("ACK: verdict %v", v)
	}
	synack := fromReal(t, w, sport, "SA", risn, isn+clientOffset(t, w, sport)+1)
	synack.mss = 1460
	if out, _, v := spSend(t, w, tbl, synack.bytes(t), header.Offload{}, now); v != VerdictSynProxy || out == nil {
		t.Fatalf("SYN-ACK: verdict %v, %d bytes out", v, len(out))
	}
	return cookie
}

// clientOffset returns the director's ISN - the client's of the
// SYN-proxied connection of client port sport.
func clientOffset(t testing.TB, w *Worker, sport uint16) uint32 {
	t.Helper()
	return w.shard.Aux(entryOf(t, w, sport))[auxClient]
}

// TestSynProxyCookie: a client SYN to a SYN-proxied service is answered by
// the director, from VIP:port to the MAC it came from, with a SYN-ACK that
// acknowledges the client's ISN, offers the link's MSS and nothing else,
// and whose sequence number is a cookie carrying the client's MSS. Nothing
// is kept and nothing reaches a real.
func TestSynProxyCookie(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mss     uint16 // 0: no option
		opts    []layers.TCPOption
		payload []byte
		wantMSS uint16
	}{
		{"Linux SYN", 1460, linuxOptions, nil, 1460},
		{"PPPoE", 1452, nil, nil, 1452},
		{"between table entries", 1420, nil, nil, 1400},
		{"jumbo", 8960, nil, nil, 1460},
		{"below the table", 500, nil, nil, 536},
		{"no MSS option", 0, nil, nil, 536},
		{"with data (TFO-like), not acknowledged", 1460, nil, []byte("early data"), 1460},
	} {
		for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
			tbl := spTable(f)
			w := spWorker(tbl, 1024)
			syn := fromClient(cport, "S", spISN, 0)
			syn.mss, syn.opts, syn.payload, syn.window = tc.mss, tc.opts, tc.payload, 64240
			const now = 5 << cookiePeriodShift
			out, _, v := spSend(t, w, tbl, syn.bytes(t), header.Offload{}, now)
			if v != VerdictSynProxy {
				t.Fatalf("%s/%v: verdict %v", tc.name, f, v)
			}
			cookie := tcpOf(out).SequenceNumber()
			want := seg{srcMAC: macDir, dstMAC: macRouter, src: ipVIP, dst: ipClient, sport: vport, dport: cport,
				seq: cookie, ack: spISN + 1, flags: "SA", window: 65535, mss: 1460, ttl: 64}
			same(t, tc.name+": SYN-ACK", out, want.bytes(t))
			checksumsValid(t, tc.name, out)
			k := conntrack.Key4{Src: ipClient.As4(), Dst: ipVIP.As4(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
			mi, ok := synCookieKey.check(&k, spISN, cookie, cookieTime(now))
			if !ok || mssTable[mi] != tc.wantMSS {
				t.Fatalf("%s: cookie %#x decodes to MSS %d (%v), want %d", tc.name, cookie, mssTable[mi], ok, tc.wantMSS)
			}
			if w.shard.Len() != 0 || tbl.Reals[0].Stats.Conns.Load() != 0 || tbl.Reals[0].Counters.Active.Load() != 0 {
				t.Fatalf("%s: a SYN left %d entries, %d connections on the real", tc.name, w.shard.Len(), tbl.Reals[0].Stats.Conns.Load())
			}
			if w.C.SynProxyCookies.Load() != 1 {
				t.Fatalf("%s: SynProxyCookies = %d, want 1", tc.name, w.C.SynProxyCookies.Load())
			}
		}
	}
}

// TestSynProxyHandshake is the golden path in NAT and FULLNAT: the client's
// ACK makes the connection and a SYN to the real (the director's clock
// ISN for the tuple the real sees, not the client's; the cookie's MSS,
// nothing else); the real's SYN-ACK is answered with the client's ACK,
// translated, and nothing reaches the client; then data both ways has its
// sequence and acknowledgment numbers translated, every checksum right.
func TestSynProxyHandshake(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		t.Run(f.String(), func(t *testing.T) {
			tbl := spTable(f)
			w := spWorker(tbl, 1024)
			const now = 1
			cookie := cookieSYN(t, w, tbl, cport, spISN, now)
			// The real side of the connection: the client, or in FULLNAT the
			// local address and the worker's first port.
			lip, lport := ipClient, uint16(cport)
			if f == ForwardFullNAT {
				lip, lport = ipLocal, portLo
			}

			ack := fromClient(cport, "A", spISN+1, cookie+1)
			out, _, v := spSend(t, w, tbl, ack.bytes(t), header.Offload{}, now)
			if v != VerdictSynProxy {
				t.Fatalf("ACK: verdict %v", v)
			}
			// RFC 6528: the 4 µs clock (since boot) plus the keyed hash
			// of the tuple.
			m0 := uint64(binary.BigEndian.Uint32(lip.AsSlice()))<<32 | uint64(binary.BigEndian.Uint32(ipRS1.AsSlice()))
			isn := uint32((now+clockBase)/4000) + uint32(sipHash24(&isnKey, m0, uint64(lport)<<16|natPort, isnDomain))
			if isn == spISN {
				t.Fatal("the director's ISN is the client's")
			}
			wantSYN := seg{srcMAC: macDir, dstMAC: macRS1, src: lip, dst: ipRS1, sport: lport, dport: natPort,
				seq: isn, flags: "S", window: 5000, mss: 1460, ttl: 64}
			same(t, "SYN to the real", out, wantSYN.bytes(t))
			e := entryOf(t, w, cport)
			if a := *w.shard.Aux(e); e.State != conntrack.TCPSynRecv || e.Flags&(flagSynProxy|flagSynPending) != flagSynProxy|flagSynPending ||
				a != (conntrack.Aux{auxReal: cookie, auxClient: isn - spISN}) {
				t.Fatalf("after the ACK: state %v flags %#x aux %#x", e.State, e.Flags, a)
			}
			c := tbl.Reals[0].Counters
			if c.Active.Load() != 1 || c.Inactive.Load() != 0 || tbl.Reals[0].Stats.Conns.Load() != 1 {
				t.Fatalf("after the ACK: active %d inactive %d conns %d", c.Active.Load(), c.Inactive.Load(), tbl.Reals[0].Stats.Conns.Load())
			}

			synack := fromReal(t, w, cport, "SA", spRISN, isn+1)
			synack.mss = 1400
			out, extra, v := spSend(t, w, tbl, synack.bytes(t), header.Offload{}, now)
			if v != VerdictSynProxy || len(extra) != 0 {
				t.Fatalf("SYN-ACK: verdict %v, %d frames queued", v, len(extra))
			}
			// The client's ACK, held, as the real must see it.
			wantACK := ack
			wantACK.srcMAC, wantACK.dstMAC, wantACK.src, wantACK.sport, wantACK.dst, wantACK.dport = macDir, macRS1, lip, lport, ipRS1, natPort
			wantACK.seq, wantACK.ack = isn+1, spRISN+1
			same(t, "ACK to the real", out, wantACK.bytes(t))
			if a := *w.shard.Aux(e); e.State != conntrack.TCPEstablished || e.Flags&flagSynPending != 0 ||
				a != (conntrack.Aux{auxReal: spRISN - cookie, auxClient: isn - spISN}) {
				t.Fatalf("after the SYN-ACK: state %v flags %#x offsets %#x, want %#x %#x", e.State, e.Flags, a, spRISN-cookie, isn-spISN)
			}

			req := fromClient(cport, "AP", spISN+1, cookie+1)
			req.payload = []byte("GET / HTTP/1.0\r\n\r\n")
			wantReq := req
			wantReq.srcMAC, wantReq.dstMAC, wantReq.src, wantReq.sport, wantReq.dst, wantReq.dport = macDir, macRS1, lip, lport, ipRS1, natPort
			wantReq.seq, wantReq.ack = isn+1, spRISN+1
			out, _, v = spSend(t, w, tbl, req.bytes(t), header.Offload{}, now)
			if v != VerdictForward {
				t.Fatalf("request: verdict %v", v)
			}
			same(t, "request to the real", out, wantReq.bytes(t))

			resp := fromReal(t, w, cport, "AP", spRISN+1, isn+1+uint32(len(req.payload)))
			resp.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
			wantResp := resp
			wantResp.srcMAC, wantResp.dstMAC, wantResp.src, wantResp.sport, wantResp.dst, wantResp.dport = macDir, macRouter, ipVIP, vport, ipClient, cport
			wantResp.seq, wantResp.ack = cookie+1, spISN+1+uint32(len(req.payload))
			out, _, v = spSend(t, w, tbl, resp.bytes(t), header.Offload{}, now)
			if v != VerdictForward {
				t.Fatalf("response: verdict %v", v)
			}
			same(t, "response to the client", out, wantResp.bytes(t))

			// The real retransmits its SYN-ACK (its ACK was lost): the
			// client gets it as the cookie's and answers with an ACK.
			out, _, v = spSend(t, w, tbl, synack.bytes(t), header.Offload{}, now)
			if v != VerdictForward || tcpOf(out).SequenceNumber() != cookie || tcpOf(out).AckNumber() != spISN+1 ||
				tcpOf(out).Flags() != header.TCPFlagSyn|header.TCPFlagAck {
				t.Fatalf("retransmitted SYN-ACK: verdict %v, %d bytes", v, len(out))
			}
			checksumsValid(t, "retransmitted SYN-ACK", out)

			for name, want := range map[string]uint64{
				"cookies": w.C.SynProxyCookies.Load(), "opened": w.C.SynProxyOpened.Load(),
				"SYN-ACKs": w.C.SynProxySynAcks.Load(), "held": w.C.SynProxyHeld.Load(),
			} {
				if want != 1 {
					t.Errorf("%s counter %d, want 1", name, want)
				}
			}
			if w.C.SynProxyBadCookies.Load() != 0 || w.C.SynProxyHeldDropped.Load() != 0 {
				t.Errorf("bad cookies %d, held dropped %d, want 0", w.C.SynProxyBadCookies.Load(), w.C.SynProxyHeldDropped.Load())
			}
			st := tbl.Reals[0].Stats
			// In: the SYN, the ACK, the request; out: the SYN-ACK twice, the response.
			if st.InPkts.Load() != 3 || st.OutPkts.Load() != 3 || st.Conns.Load() != 1 {
				t.Errorf("real stats in %d out %d conns %d, want 3 3 1", st.InPkts.Load(), st.OutPkts.Load(), st.Conns.Load())
			}
		})
	}
}

// TestSynProxyHeldSegments: what the client sends before the real answers
// waits, and follows the SYN-ACK's answer to the real in the order it came,
// each translated; a connection holds at most spHoldPerConn.
func TestSynProxyHeldSegments(t *testing.T) {
	tbl := spTable(ForwardNAT)
	w := spWorker(tbl, 1024)
	cookie := cookieSYN(t, w, tbl, cport, spISN, 1)
	var sent []seg
	ack := fromClient(cport, "A", spISN+1, cookie+1)
	sent = append(sent, ack)
	if _, _, v := spSend(t, w, tbl, ack.bytes(t), header.Offload{}, 1); v != VerdictSynProxy {
		t.Fatalf("ACK: verdict %v", v)
	}
	seq := uint32(spISN + 1)
	for i := range spHoldPerConn {
		d := fromClient(cport, "AP", seq, cookie+1)
		d.payload = []byte(strings.Repeat(string(rune('a'+i)), 10+i))
		d.id = uint16(100 + i)
		seq += uint32(len(d.payload))
		out, _, v := spSend(t, w, tbl, d.bytes(t), header.Offload{}, 2)
		if v != VerdictSynProxy || out != nil {
			t.Fatalf("data %d: verdict %v, %d bytes out", i, v, len(out))
		}
		sent = append(sent, d)
	}
	sent = sent[:spHoldPerConn] // the last found the connection's share taken
	if w.C.SynProxyHeld.Load() != spHoldPerConn || w.C.SynProxyHeldDropped.Load() != 1 {
		t.Fatalf("held %d dropped %d, want %d 1", w.C.SynProxyHeld.Load(), w.C.SynProxyHeldDropped.Load(), spHoldPerConn)
	}
	in := clientOffset(t, w, cport)
	out, extra, v := spSend(t, w, tbl, fromReal(t, w, cport, "SA", spRISN, spISN+in+1).bytes(t), header.Offload{}, 3)
	if v != VerdictSynProxy || len(extra) != len(sent)-1 {
		t.Fatalf("SYN-ACK: verdict %v, %d frames queued, want %d", v, len(extra), len(sent)-1)
	}
	for i, got := range append([][]byte{out}, extra...) {
		want := sent[i]
		want.srcMAC, want.dstMAC, want.dst, want.dport, want.seq, want.ack = macDir, macRS1, ipRS1, natPort, want.seq+in, spRISN+1
		same(t, "held segment "+string(rune('0'+i)), got, want.bytes(t))
	}
	for i := range w.sp.held {
		if w.sp.held[i].key.Proto != 0 {
			t.Fatalf("slot %d still taken after the flush", i)
		}
	}
}

// TestSynProxyNoRoomToHold: when every slot is taken the handshake ACK is
// not held; the director answers the real's SYN-ACK with an ACK of its
// own. A slot held too long is taken back.
func TestSynProxyNoRoomToHold(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		tbl := spTable(f)
		w := spWorker(tbl, 1024)
		for i := range w.sp.held {
			w.sp.held[i] = heldFrame{key: conntrack.Key4{Proto: header.ProtoTCP, SrcPort: uint16(i)}, at: 1}
		}
		cookie := cookieSYN(t, w, tbl, cport, spISN, 2)
		if _, _, v := spSend(t, w, tbl, fromClient(cport, "A", spISN+1, cookie+1).bytes(t), header.Offload{}, 2); v != VerdictSynProxy {
			t.Fatalf("ACK: verdict %v", v)
		}
		if w.C.SynProxyHeld.Load() != 0 || w.C.SynProxyHeldDropped.Load() != 1 {
			t.Fatalf("held %d dropped %d, want 0 1", w.C.SynProxyHeld.Load(), w.C.SynProxyHeldDropped.Load())
		}
		synack := fromReal(t, w, cport, "SA", spRISN, spISN+1)
		synack.mss = 1460
		out, extra, v := spSend(t, w, tbl, synack.bytes(t), header.Offload{}, 3)
		if v != VerdictSynProxy || len(extra) != 0 {
			t.Fatalf("SYN-ACK: verdict %v, %d queued", v, len(extra))
		}
		want := seg{srcMAC: macDir, dstMAC: macRS1, src: synack.dst, dst: ipRS1, sport: synack.dport, dport: natPort,
			seq: spISN + 1, ack: spRISN + 1, flags: "A", window: spFallbackWindow, ttl: 64}
		same(t, f.String()+": the director's ACK", out, want.bytes(t))
		// The stale slots go back once spHoldFor has passed.
		other := cookieSYN(t, w, tbl, cport+1, spISN, 2+spHoldFor)
		if _, _, v := spSend(t, w, tbl, fromClient(cport+1, "A", spISN+1, other+1).bytes(t), header.Offload{}, 2+spHoldFor); v != VerdictSynProxy {
			t.Fatalf("second ACK: verdict %v", v)
		}
		if w.C.SynProxyHeld.Load() != 1 || w.C.SynProxyHeldDropped.Load() != 1+spHoldSlots {
			t.Fatalf("after spHoldFor: held %d dropped %d, want 1 %d", w.C.SynProxyHeld.Load(), w.C.SynProxyHeldDropped.Load(), 1+spHoldSlots)
		}
	}
}

// TestSynProxyBadCookie: an ACK without a connection whose ack-1 is not a
// cookie for its tuple and seq-1 is dropped and counted, and makes
// nothing; other segments without a connection are dropped uncounted.
func TestSynProxyBadCookie(t *testing.T) {
	tbl := spTable(ForwardNAT)
	w := spWorker(tbl, 1024)
	cookie := cookieSYN(t, w, tbl, cport, spISN, 1)
	r := rand.New(rand.NewPCG(1, 2))
	bad := []seg{
		fromClient(cport, "A", spISN+1, cookie+2),            // a wrong cookie
		fromClient(cport, "A", spISN+2, cookie+1),            // another ISN
		fromClient(cport+1, "A", spISN+1, cookie+1),          // another client port
		fromClient(cport, "AP", spISN+1, cookie^0x8000_0000), // one bit off
	}
	for range 100 {
		bad = append(bad, fromClient(cport, "A", spISN+1, r.Uint32())) // a flood of guesses
	}
	for i, b := range bad {
		if out, _, v := spSend(t, w, tbl, b.bytes(t), header.Offload{}, 1); v != VerdictNoConn || out != nil {
			t.Fatalf("bad ACK %d: verdict %v, %d bytes out", i, v, len(out))
		}
	}
	for _, flags := range []string{"R", "AR", "AF", "SA", "F"} {
		if _, _, v := spSend(t, w, tbl, fromClient(cport, flags, spISN+1, cookie+1).bytes(t), header.Offload{}, 1); v != VerdictNoConn {
			t.Fatalf("%s without a connection: verdict %v", flags, v)
		}
	}
	if got := w.C.SynProxyBadCookies.Load(); got != uint64(len(bad)) {
		t.Fatalf("SynProxyBadCookies = %d, want %d", got, len(bad))
	}
	if w.shard.Len() != 0 || tbl.Reals[0].Stats.Conns.Load() != 0 || w.C.SynProxyOpened.Load() != 0 {
		t.Fatalf("bad ACKs made %d entries", w.shard.Len())
	}
}

// TestSynProxyCookieAge: a cookie is honoured in its period and the next,
// refused after; the 3 bits of time in it wrapping around do not revive
// it.
func TestSynProxyCookieAge(t *testing.T) {
	const made = 10<<cookiePeriodShift + 12345
	for _, tc := range []struct {
		name  string
		later int64
		ok    bool
	}{
		{"at once", 0, true},
		{"end of its period", 1<<cookiePeriodShift - 12346, true},
		{"next period", 1 << cookiePeriodShift, true},
		{"two periods on", 2 << cookiePeriodShift, false},
		{"seven periods on", 7 << cookiePeriodShift, false},
		{"eight periods on (t mod 8 the same)", 8 << cookiePeriodShift, false},
		{"from the future", -1 << cookiePeriodShift, false},
	} {
		tbl := spTable(ForwardNAT)
		w := spWorker(tbl, 1024)
		cookie := cookieSYN(t, w, tbl, cport, spISN, made)
		_, _, v := spSend(t, w, tbl, fromClient(cport, "A", spISN+1, cookie+1).bytes(t), header.Offload{}, made+tc.later)
		if got := v == VerdictSynProxy; got != tc.ok {
			t.Errorf("%s: verdict %v, want valid %v", tc.name, v, tc.ok)
		}
		if !tc.ok && w.C.SynProxyBadCookies.Load() != 1 {
			t.Errorf("%s: SynProxyBadCookies = %d, want 1", tc.name, w.C.SynProxyBadCookies.Load())
		}
	}
}

// TestSynProxyRealRefuses: a real that answers the SYN with a reset has the
// reset reach the client at the sequence number the client expects (the
// cookie's +1), from the VIP, and the connection closes; what was held is
// dropped.
func TestSynProxyRealRefuses(t *testing.T) {
	tbl := spTable(ForwardFullNAT)
	w := spWorker(tbl, 1024)
	cookie := cookieSYN(t, w, tbl, cport, spISN, 1)
	if _, _, v := spSend(t, w, tbl, fromClient(cport, "A", spISN+1, cookie+1).bytes(t), header.Offload{}, 1); v != VerdictSynProxy {
		t.Fatalf("ACK: verdict %v", v)
	}
	rst := fromReal(t, w, cport, "RA", 0, spISN+clientOffset(t, w, cport)+1)
	rst.window = 0
	out, _, v := spSend(t, w, tbl, rst.bytes(t), header.Offload{}, 2)
	if v != VerdictForward {
		t.Fatalf("RST: verdict %v", v)
	}
	want := rst
	want.srcMAC, want.dstMAC, want.src, want.sport, want.dst, want.dport, want.seq, want.ack = macDir, macRouter, ipVIP, vport, ipClient, cport, cookie+1, spISN+1
	same(t, "RST to the client", out, want.bytes(t))
	if e := entryOf(t, w, cport); e.State != conntrack.TCPClose {
		t.Fatalf("state %v, want CLOSE", e.State)
	}
	if w.C.SynProxyHeldDropped.Load() != 1 {
		t.Fatalf("held dropped %d, want 1", w.C.SynProxyHeldDropped.Load())
	}
}

// TestSynProxyPendingDrops: before the real answers, nothing but its
// SYN-ACK or a reset comes from it, and a new SYN of the client waits for
// nothing.
func TestSynProxyPendingDrops(t *testing.T) {
	tbl := spTable(ForwardNAT)
	w := spWorker(tbl, 1024)
	cookie := cookieSYN(t, w, tbl, cport, spISN, 1)
	spSend(t, w, tbl, fromClient(cport, "A", spISN+1, cookie+1).bytes(t), header.Offload{}, 1)
	for _, s := range []seg{fromReal(t, w, cport, "A", spRISN+1, spISN+1), fromClient(cport, "S", 100, 0)} {
		if out, _, v := spSend(t, w, tbl, s.bytes(t), header.Offload{}, 1); v != VerdictSynProxy || out != nil {
			t.Fatalf("%s: verdict %v, %d bytes out", s.flags, v, len(out))
		}
	}
	if w.C.SynProxyHeld.Load() != 1 {
		t.Fatalf("held %d, want the ACK alone", w.C.SynProxyHeld.Load())
	}
}

// TestSynProxyResendSYN: when the real has not answered in spResendAfter,
// a client retransmission (from its ISN+1, acknowledging the cookie) makes
// the director send the SYN again; a segment that is not one does not.
func TestSynProxyResendSYN(t *testing.T) {
	tbl := spTable(ForwardFullNAT)
	w := spWorker(tbl, 1024)
	const now = 1
	cookie := cookieSYN(t, w, tbl, cport, spISN, now)
	first, _, _ := spSend(t, w, tbl, fromClient(cport, "A", spISN+1, cookie+1).bytes(t), header.Offload{}, now)
	req := fromClient(cport, "AP", spISN+1, cookie+1)
	req.payload = []byte("GET /")
	later := fromClient(cport, "AP", spISN+1+5, cookie+1)
	later.payload = []byte("more")
	for _, step := range []struct {
		name   string
		s      seg
		at     int64
		resent bool
	}{
		{"request before spResendAfter", req, now + spResendAfter/2, false},
		{"a new segment, not a retransmission", later, now + spResendAfter, false},
		{"the request retransmitted", req, now + spResendAfter, true},
		{"again at once", req, now + spResendAfter + 1, false},
	} {
		out, _, v := spSend(t, w, tbl, step.s.bytes(t), header.Offload{}, step.at)
		if v != VerdictSynProxy || (out != nil) != step.resent {
			t.Fatalf("%s: verdict %v, %d bytes out", step.name, v, len(out))
		}
		if out != nil {
			same(t, step.name+": SYN sent again", out, first)
		}
	}
	if w.C.SynProxySynResent.Load() != 1 {
		t.Fatalf("SynProxySynResent = %d, want 1", w.C.SynProxySynResent.Load())
	}
}

// TestSynProxyPartialChecksum: data of a spliced connection with a partial
// checksum, finished after the translation, equals the frame sent for the
// same data with a complete checksum, both ways; a held segment with a
// partial checksum is kept finished and leaves complete.
func TestSynProxyPartialChecksum(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		full, part := spTable(f), spTable(f)
		wf, wp := spWorker(full, 1024), spWorker(part, 1024)
		// The same cookie on both: the same key, time and tuple.
		cookie := cookieSYN(t, wf, full, cport, spISN, 1)
		cookieSYN(t, wp, part, cport, spISN, 1)
		ack := fromClient(cport, "AP", spISN+1, cookie+1)
		ack.payload = []byte("data in the ACK")
		spSend(t, wf, full, ack.bytes(t), header.Offload{}, 1)
		pa := ack.bytes(t)
		spSend(t, wp, part, pa, partial(t, pa), 1)
		synack := fromReal(t, wf, cport, "SA", spRISN, spISN+1).bytes(t)
		want, _, _ := spSend(t, wf, full, synack, header.Offload{}, 1)
		got, _, _ := spSend(t, wp, part, synack, header.Offload{}, 1)
		if wp.txOff != (header.Offload{}) {
			t.Fatalf("%v: held segment sent with offload %+v", f, wp.txOff)
		}
		same(t, f.String()+": held segment with a partial checksum", got, want)
		checksumsValid(t, "held segment", got)

		req := fromClient(cport, "AP", spISN+1+uint32(len(ack.payload)), cookie+1)
		req.payload = []byte(strings.Repeat("x", 333))
		resp := fromReal(t, wf, cport, "AP", spRISN+1, spISN+1)
		resp.payload = []byte(strings.Repeat("y", 777))
		for _, s := range []seg{req, resp} {
			in := s.bytes(t)
			want, _, v := spSend(t, wf, full, in, header.Offload{}, 2)
			if v != VerdictForward {
				t.Fatalf("%v: complete checksum: verdict %v", f, v)
			}
			p := append([]byte(nil), in...)
			off := partial(t, p)
			got, _, v := spSend(t, wp, part, p, off, 2)
			if v != VerdictForward || wp.txOff.Flags != header.OffloadNeedsCsum {
				t.Fatalf("%v: partial checksum: verdict %v, offload %+v", f, v, wp.txOff)
			}
			same(t, f.String()+": finished partial checksum", finish(t, got, wp.txOff), want)
		}
	}
}

// TestSynProxySeqTranslation is the translation against a reference on
// seeded random connections: random ISNs on both sides (wrapping around),
// random segments both ways with random sequence and acknowledgment
// numbers, flags, payloads and partial checksums. Each frame sent must be
// what the reference says, built by gopacket: seq + (director's ISN -
// client's ISN) and ack + (real ISN - cookie) toward the real, seq - (real
// ISN - cookie) and ack - (director's ISN - client's ISN) toward the
// client, the NAT or FULLNAT rewrite around it, and right checksums.
func TestSynProxySeqTranslation(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		tbl := spTable(f)
		w := spWorker(tbl, 1<<12)
		for c := range 200 {
			sport := uint16(20000 + c)
			isn, risn := r.Uint32(), r.Uint32()
			if c%10 == 0 {
				isn, risn = 0xffff_ffff, 0xffff_fffe // the handshake itself wraps
			}
			cookie := handshake(t, w, tbl, sport, isn, risn, int64(c))
			delta := risn - cookie // the reference
			e := entryOf(t, w, sport)
			lip, lport := ipClient, sport
			if f == ForwardFullNAT {
				lip, lport = netip.AddrFrom4(e.Local), e.LPort
			}
			dIn := proxyISN(int64(c), lip.As4(), lport, ipRS1.As4(), natPort) - isn
			for range 10 {
				flags := []string{"A", "AP", "AF", "AR", "R", "A"}[r.IntN(6)]
				payload := make([]byte, r.IntN(200))
				for i := range payload {
					payload[i] = byte(r.Uint32())
				}
				var in, want seg
				if r.IntN(2) == 0 {
					in = fromClient(sport, flags, r.Uint32(), r.Uint32())
					want = in
					want.srcMAC, want.dstMAC, want.src, want.sport, want.dst, want.dport = macDir, macRS1, lip, lport, ipRS1, natPort
					want.seq = in.seq + dIn
					if strings.Contains(flags, "A") {
						want.ack = in.ack + delta
					}
				} else {
					in = fromReal(t, w, sport, flags, r.Uint32(), r.Uint32())
					want = in
					want.srcMAC, want.dstMAC, want.src, want.sport, want.dst, want.dport = macDir, macRouter, ipVIP, vport, ipClient, sport
					want.seq = in.seq - delta
					if strings.Contains(flags, "A") {
						want.ack = in.ack - dIn
					}
				}
				in.payload, want.payload = payload, payload
				in.window = uint16(r.Uint32())
				want.window = in.window
				frame := in.bytes(t)
				var off header.Offload
				if r.IntN(3) == 0 {
					off = partial(t, frame)
				}
				got, _, v := spSend(t, w, tbl, frame, off, int64(c))
				if v != VerdictForward {
					t.Fatalf("%v connection %d %s: verdict %v", f, c, flags, v)
				}
				same(t, f.String()+" "+flags, finish(t, got, w.txOff), want.bytes(t))
				// RST and FIN moved the entry on: the next segment finds it
				// established again.
				e := entryOf(t, w, sport)
				e.State = conntrack.TCPEstablished
			}
		}
	}
}

// TestSynProxyICMP: an error about a spliced connection's segment quotes
// it as it was on the wire where the error was made; relayed, the quote is
// in the sequence space of whoever gets it, so that Linux, which checks a
// quoted sequence number against its window, acts on it.
func TestSynProxyICMP(t *testing.T) {
	tbl := spTable(ForwardNAT)
	w := spWorker(tbl, 1024)
	cookie := handshake(t, w, tbl, cport, spISN, spRISN, 1)
	// A router on the client's path refuses a reply as too big: it quotes
	// the reply's sequence number as the client would see it.
	reply := seg{srcMAC: macDir, dstMAC: macRouter, src: ipVIP, dst: ipClient, sport: vport, dport: cport,
		seq: cookie + 1, ack: spISN + 1, flags: "A", ttl: 64}
	in := icmpErr(t, macRouter, macDir, ipRouter, ipVIP, 3, 4, reply.bytes(t))
	asSent := reply
	asSent.src, asSent.sport, asSent.seq = ipRS1, natPort, spRISN+1
	want := icmpErr(t, macDir, macRS1, ipRouter, ipRS1, 3, 4, asSent.bytes(t))
	out, _, v := spSend(t, w, tbl, in, header.Offload{}, 2)
	if v != VerdictForward {
		t.Fatalf("verdict %v", v)
	}
	same(t, "error to the real", out, want)

	// The real's error about a client segment, quoting its whole TCP
	// header (as Linux does), reaches the client with the sequence and
	// acknowledgment numbers the client sent.
	asReceived := seg{srcMAC: macDir, dstMAC: macRS1, src: ipClient, dst: ipRS1, sport: cport, dport: natPort,
		seq: spISN + clientOffset(t, w, cport) + 1, ack: spRISN + 1, flags: "A", window: 5000}
	in = icmpErrQuoting(t, macRS1, macDir, ipRS1, ipClient, asReceived.bytes(t), header.TCPMinLen)
	toClient := asReceived
	toClient.dst, toClient.dport, toClient.seq, toClient.ack = ipVIP, vport, spISN+1, cookie+1
	want = icmpErrQuoting(t, macDir, macRouter, ipVIP, ipClient, toClient.bytes(t), header.TCPMinLen)
	// The quoted checksum stays as the real quoted it (icmpError), the
	// ICMP checksum covers the quote as sent.
	wantICMP := header.ICMPv4(header.IPv4(want[header.EthernetLen:]).Payload())
	wq := header.TCP(header.IPv4(wantICMP.Payload()).Payload())
	wq.SetChecksum(tcpOf(asReceived.bytes(t)).Checksum())
	wantICMP.SetChecksum(0)
	wantICMP.SetChecksum(wantICMP.CalculateChecksum())
	out, _, v = spSend(t, w, tbl, in, header.Offload{}, 2)
	if v != VerdictForward {
		t.Fatalf("error from the real: verdict %v", v)
	}
	same(t, "error to the client", out, want)
}

// icmpErrQuoting is icmpErr (port unreachable) quoting n bytes of the
// transport header of quoted, not just 8.
func icmpErrQuoting(tb testing.TB, srcMAC, dstMAC [6]byte, src, dst netip.Addr, quoted []byte, n int) []byte {
	tb.Helper()
	q := quoted[header.EthernetLen:]
	q = q[:header.IPv4(q).HeaderLength()+n]
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: srcMAC[:], DstMAC: dstMAC[:], EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Id: 3, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)},
		gopacket.Payload(q))
	if err != nil {
		tb.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	return b[:header.EthernetLen+int(header.IPv4(b[header.EthernetLen:]).TotalLength())]
}

// TestSynProxyBatch runs the handshake and a request through batch and the
// fake link, as a worker does: the frames written, and a verdict counted
// for each frame read.
func TestSynProxyBatch(t *testing.T) {
	tbl := spTable(ForwardNAT)
	link := &fakeLink{}
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, link, &ptr, 1024)
	run := func(frames ...[]byte) [][]byte {
		link.in, link.inOffs, link.out, link.outOffs = nil, nil, nil, nil
		for _, f := range frames {
			link.in = append(link.in, f)
			link.inOffs = append(link.inOffs, header.Offload{})
		}
		n, err := link.Read(w.bufs, w.sizes, w.offs, Headroom)
		if err != nil || n != len(frames) {
			t.Fatalf("fake read: %d, %v", n, err)
		}
		w.batch(tbl, n, 1)
		return link.out
	}
	syn := fromClient(cport, "S", spISN, 0)
	syn.mss = 1460
	out := run(syn.bytes(t))
	if len(out) != 1 {
		t.Fatalf("SYN: %d frames written", len(out))
	}
	cookie := tcpOf(out[0]).SequenceNumber()
	req := fromClient(cport, "AP", spISN+1, cookie+1)
	req.payload = []byte("GET /")
	out = run(fromClient(cport, "A", spISN+1, cookie+1).bytes(t), req.bytes(t))
	if len(out) != 1 || tcpOf(out[0]).Flags() != header.TCPFlagSyn {
		t.Fatalf("ACK and request: %d frames written, want the SYN to the real", len(out))
	}
	out = run(fromReal(t, w, cport, "SA", spRISN, spISN+1).bytes(t))
	if len(out) != 2 || tcpOf(out[0]).Flags() != header.TCPFlagAck || !bytes.Equal(tcpOf(out[1]).Payload(), req.payload) {
		t.Fatalf("SYN-ACK: %d frames written, want the ACK and the request", len(out))
	}
	for i, f := range out {
		checksumsValid(t, "frame written", f)
		if tcpOf(f).AckNumber() != spRISN+1 {
			t.Fatalf("frame %d acknowledges %#x, want %#x", i, tcpOf(f).AckNumber(), spRISN+1)
		}
	}
	if n := w.C.Verdicts[VerdictSynProxy].Load(); n != 4 {
		t.Fatalf("synproxy verdicts %d, want 4 (SYN, ACK, held request, SYN-ACK)", n)
	}
	if w.C.TxFrames.Load() != 4 {
		t.Fatalf("TxFrames %d, want 4", w.C.TxFrames.Load())
	}
}

// TestSynProxyNotOtherServices: a service without the SYN proxy, on the
// same table, still schedules on a client's SYN.
func TestSynProxyNotOtherServices(t *testing.T) {
	tbl := testTable(ForwardNAT, header.ProtoTCP)
	w := spWorker(tbl, 1024)
	syn := fromClient(cport, "S", spISN, 0)
	out, _, v := spSend(t, w, tbl, syn.bytes(t), header.Offload{}, 1)
	if v != VerdictForward || w.shard.Len() != 1 || header.IPv4(out[header.EthernetLen:]).Destination() != ipRS1.As4() {
		t.Fatalf("plain NAT SYN: verdict %v, %d entries", v, w.shard.Len())
	}
	if w.C.SynProxyCookies.Load() != 0 {
		t.Fatal("a cookie for a service without the SYN proxy")
	}
}

// TestZeroAllocsSynProxy: answering a SYN, a whole handshake (once the
// worker's held slots and spare buffers exist) and the translated data of
// a spliced connection cost no allocation.
func TestZeroAllocsSynProxy(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		tbl := spTable(f)
		w := spWorker(tbl, 1<<16)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		send := func(frame []byte, want Verdict) {
			copy(buf[Headroom:], frame)
			if _, v := w.process(tbl, buf, len(frame), icmp, 1); v != want {
				t.Fatalf("%v: verdict %v, want %v", f, v, want)
			}
			w.resetSpare()
		}
		syn := fromClient(cport, "S", spISN, 0)
		syn.mss, syn.opts = 1460, linuxOptions
		synFrame := syn.bytes(t)
		if a := testing.AllocsPerRun(1000, func() { send(synFrame, VerdictSynProxy) }); a != 0 {
			t.Errorf("%v SYN: %.1f allocations, want 0", f, a)
		}

		// Whole handshakes, a new client port each; frames made first.
		const n = 300
		type hs struct{ ack, synack []byte }
		var all []hs
		for i := range n + 1 {
			sport := uint16(10000 + i)
			cookie := cookieSYN(t, w, tbl, sport, spISN, 1)
			a := fromClient(sport, "A", spISN+1, cookie+1).bytes(t)
			sa := seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: sport,
				seq: spRISN, ack: spISN + 1, flags: "SA", window: 29200, mss: 1460}
			if f == ForwardFullNAT {
				// The worker's local ports in the order it takes them.
				sa.dst, sa.dport = ipLocal, uint16(portLo+i)
			}
			all = append(all, hs{a, sa.bytes(t)})
		}
		i := 0
		run := func() {
			send(all[i].ack, VerdictSynProxy)
			send(all[i].synack, VerdictSynProxy)
			i++
		}
		run() // the first held slot and spare buffer
		if a := testing.AllocsPerRun(n-1, run); a != 0 {
			t.Errorf("%v handshake: %.1f allocations, want 0", f, a)
		}

		sport := uint16(10000)
		e := entryOf(t, w, sport)
		lip, lport := ipClient, sport
		if f == ForwardFullNAT {
			lip, lport = netip.AddrFrom4(e.Local), e.LPort
		}
		req := fromClient(sport, "AP", spISN+1, 1).bytes(t)
		resp := seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: lip, sport: natPort, dport: lport,
			seq: spRISN + 1, ack: spISN + 1, flags: "A", payload: make([]byte, 6)}
		respFrame := resp.bytes(t)
		if a := testing.AllocsPerRun(1000, func() {
			send(req, VerdictForward)
			send(respFrame, VerdictForward)
		}); a != 0 {
			t.Errorf("%v data: %.1f allocations, want 0", f, a)
		}
	}
}

// BenchmarkSynProxy measures what a SYN-proxied service costs per frame:
// a SYN answered with a cookie (the whole cost of a flood's SYN), a bad
// cookie refused (a flood of ACKs), a handshake (the client's ACK and the
// real's SYN-ACK; the entry is then removed, so that the same frames open
// it again), and data of a spliced connection each way.
func BenchmarkSynProxy(b *testing.B) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		bench := func(name string, perOp int, setup func(b *testing.B, w *Worker, tbl *Table) (frames [][]byte, after func())) {
			b.Run(f.String()+"/"+name, func(b *testing.B) {
				tbl := spTable(f)
				tbl.PortLo, tbl.PortHi = portLo, portLo // one local port: a removed entry gives it back
				w := spWorker(tbl, 1<<16)
				frames, after := setup(b, w, tbl)
				buf := make([]byte, Headroom+MaxFrame)
				icmp := make([]byte, 128)
				b.ReportAllocs()
				for b.Loop() {
					for _, fr := range frames {
						copy(buf[Headroom:], fr)
						w.process(tbl, buf, len(fr), icmp, 1)
						w.resetSpare()
					}
					if after != nil {
						after()
					}
				}
				b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "pps")
			})
		}
		bench("syn-cookie", 1, func(b *testing.B, w *Worker, tbl *Table) ([][]byte, func()) {
			syn := fromClient(cport, "S", spISN, 0)
			syn.mss, syn.opts = 1460, linuxOptions
			return [][]byte{syn.bytes(b)}, nil
		})
		bench("bad-cookie", 1, func(b *testing.B, w *Worker, tbl *Table) ([][]byte, func()) {
			return [][]byte{fromClient(cport, "A", spISN+1, 12345).bytes(b)}, nil
		})
		bench("handshake", 2, func(b *testing.B, w *Worker, tbl *Table) ([][]byte, func()) {
			k := conntrack.Key4{Src: ipClient.As4(), Dst: ipVIP.As4(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
			cookie := synCookieKey.make(&k, spISN, len(mssTable)-1, cookieTime(1))
			sa := seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport,
				seq: spRISN, ack: spISN + 1, flags: "SA", mss: 1460}
			if f == ForwardFullNAT {
				sa.dst, sa.dport = ipLocal, portLo
			}
			return [][]byte{fromClient(cport, "A", spISN+1, cookie+1).bytes(b), sa.bytes(b)}, func() {
				e, _ := w.shard.Lookup(&k)
				if e == nil || e.State != conntrack.TCPEstablished {
					b.Fatal("the handshake did not splice")
				}
				w.drop(e)
			}
		})
		bench("data", 2, func(b *testing.B, w *Worker, tbl *Table) ([][]byte, func()) {
			cookie := handshake(b, w, tbl, cport, spISN, spRISN, 1)
			req := fromClient(cport, "A", spISN+1, cookie+1)
			req.payload = make([]byte, 6)
			resp := fromReal(b, w, cport, "A", spRISN+1, spISN+1)
			resp.payload = make([]byte, 6)
			return [][]byte{req.bytes(b), resp.bytes(b)}, nil
		})
	}
}

// TestSipHash24 checks the fixed-length SipHash-2-4 against the reference
// vector of a 24-byte message (key 00..0f, message 00..17) from the
// SipHash paper's test vectors, and cookieWords' packing against a naive
// byte-wise one.
func TestSipHash24(t *testing.T) {
	k := cookieKey{0x0706050403020100, 0x0f0e0d0c0b0a0908}
	if got := sipHash24(&k, 0x0706050403020100, 0x0f0e0d0c0b0a0908, 0x1716151413121110); got != 0xb8ad50c6f649af94 {
		t.Fatalf("SipHash-2-4 of 00..17 = %#x, want 0xb8ad50c6f649af94", got)
	}
	key := conntrack.Key4{Src: [4]byte{1, 2, 3, 4}, Dst: [4]byte{5, 6, 7, 8}, SrcPort: 0x090a, DstPort: 0x0b0c, Proto: header.ProtoTCP}
	m0, m1 := cookieWords(&key, 0x0d0e0f10)
	if m0 != 0x0102030405060708 || m1 != 0x090a0b0c0d0e0f10 {
		t.Fatalf("cookieWords = %#x %#x", m0, m1)
	}
}

// TestCookie: on seeded random tuples, ISNs, MSS indexes and times a cookie
// validates for its own tuple and ISN within its age and returns its MSS
// index; it fails for another tuple, another ISN, any single bit flipped
// and any other key.
func TestCookie(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	key := cookieKey{r.Uint64(), r.Uint64()}
	other := cookieKey{r.Uint64(), r.Uint64()}
	for i := range 2000 {
		k := conntrack.Key4{SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()), Proto: header.ProtoTCP}
		binary.BigEndian.PutUint32(k.Src[:], r.Uint32())
		binary.BigEndian.PutUint32(k.Dst[:], r.Uint32())
		isn, mss, tm := r.Uint32(), r.IntN(len(mssTable)), r.Uint32()
		c := key.make(&k, isn, mss, tm)
		for age := uint32(0); age <= cookieMaxAge; age++ {
			if got, ok := key.check(&k, isn, c, tm+age); !ok || got != mss {
				t.Fatalf("%d: age %d: check = %d, %v; want %d, true", i, age, got, ok, mss)
			}
		}
		if _, ok := key.check(&k, isn, c, tm+cookieMaxAge+1); ok {
			t.Fatalf("%d: valid after its age", i)
		}
		if _, ok := key.check(&k, isn+1, c, tm); ok {
			t.Fatalf("%d: valid for another ISN", i)
		}
		if _, ok := other.check(&k, isn, c, tm); ok {
			t.Fatalf("%d: valid under another key", i)
		}
		k2 := k
		k2.SrcPort++
		if _, ok := key.check(&k2, isn, c, tm); ok {
			t.Fatalf("%d: valid for another port", i)
		}
		for b := range 32 {
			if _, ok := key.check(&k, isn, c^1<<b, tm); ok {
				t.Fatalf("%d: valid with bit %d flipped", i, b)
			}
		}
	}
}

// TestMSSIndex: the largest table MSS that does not exceed the client's.
func TestMSSIndex(t *testing.T) {
	for _, tc := range []struct{ in, want uint16 }{
		{0, 536}, {535, 536}, {536, 536}, {1199, 536}, {1200, 1200}, {1459, 1452}, {1460, 1460}, {65535, 1460},
	} {
		if got := mssTable[mssIndex(tc.in)]; got != tc.want {
			t.Errorf("MSS %d: %d, want %d", tc.in, got, tc.want)
		}
	}
}

// FuzzSynProxy feeds arbitrary frames to a worker with a SYN-proxied
// service, one spliced connection and one waiting for its real.
// Invariants: no panic, a valid verdict, and a frame sent is a valid IPv4
// packet, inside the frame buffer or a built one, whose TCP checksum is
// right whenever the input's was.
func FuzzSynProxy(f *testing.F) {
	syn := fromClient(cport, "S", spISN, 0)
	syn.mss, syn.opts = 1460, linuxOptions
	f.Add(syn.bytes(f), false)
	f.Add(fromClient(cport, "A", spISN+1, 12345).bytes(f), true)
	data := fromClient(cport, "AP", spISN+1, 12345)
	data.payload = []byte("data")
	f.Add(data.bytes(f), true)
	f.Add(seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport,
		seq: spRISN, ack: spISN + 1, flags: "SA"}.bytes(f), false)
	f.Add(seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport + 1,
		seq: 7, ack: 8, flags: "RA"}.bytes(f), false)
	f.Fuzz(func(t *testing.T, in []byte, partialCsum bool) {
		if len(in) > MaxSegment {
			return
		}
		tbl := spTable(ForwardNAT)
		w := spWorker(tbl, 64)
		handshake(t, w, tbl, cport, spISN, spRISN, 1)
		cookie := cookieSYN(t, w, tbl, cport+1, spISN, 1)
		spSend(t, w, tbl, fromClient(cport+1, "A", spISN+1, cookie+1).bytes(t), header.Offload{}, 1)
		frame := append([]byte(nil), in...)
		var off header.Offload
		p := parse(append(make([]byte, Headroom), frame...), len(frame))
		csumOK := p.v == 0 && p.key.Proto == header.ProtoTCP && p.frag == 0
		if csumOK {
			ip := header.IPv4(frame[header.EthernetLen:])
			csumOK = header.TCP(ip[:ip.TotalLength()][ip.HeaderLength():]).IsChecksumValid(ip.Source(), ip.Destination())
			if partialCsum {
				off = partial(t, frame[:header.EthernetLen+int(ip.TotalLength())])
			}
		}
		for pass := range 2 {
			out, extra, v := spSend(t, w, tbl, frame, off, 2)
			if v == 0 || v >= numVerdicts {
				t.Fatalf("pass %d: invalid verdict %d", pass, v)
			}
			for _, o := range append(extra, out) {
				if o == nil {
					continue
				}
				ip := header.IPv4(o[header.EthernetLen:])
				if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
					t.Fatalf("pass %d, verdict %v: output IPv4 header invalid", pass, v)
				}
				done := finish(t, o, w.txOff)
				dip := header.IPv4(done[header.EthernetLen:])
				if csumOK && dip.Protocol() == header.ProtoTCP && !header.TCP(dip.Payload()).IsChecksumValid(dip.Source(), dip.Destination()) {
					t.Fatalf("pass %d, verdict %v: TCP checksum broken", pass, v)
				}
			}
		}
	})
}

// TestSynProxyISNReusedTuple: two connections of different clients that
// FULLNAT puts on the same local port (the worker has one) open their real
// with ISNs 10 ms apart on the 4 µs clock, whatever the clients' ISNs:
// the second lands above the first's sequence space, as a real holding a
// TIME_WAIT socket for the tuple requires. In NAT, where the real sees the
// clients' tuples, two tuples at the same instant get unrelated ISNs.
func TestSynProxyISNReusedTuple(t *testing.T) {
	tbl := spTable(ForwardFullNAT)
	tbl.PortLo, tbl.PortHi = portLo, portLo
	w := spWorker(tbl, 1024)
	const t1, t2 = int64(5 * time.Second), int64(5*time.Second + 10*time.Millisecond)
	var isns [2]uint32
	for i, c := range []struct {
		sport uint16
		isn   uint32
		now   int64
	}{{cport, 0x8000_0000, t1}, {cport + 1, 0x7000_0000, t2}} {
		cookie := cookieSYN(t, w, tbl, c.sport, c.isn, c.now)
		syn, _, v := spSend(t, w, tbl, fromClient(c.sport, "A", c.isn+1, cookie+1).bytes(t), header.Offload{}, c.now)
		if v != VerdictSynProxy || syn == nil || tcpOf(syn).Flags() != header.TCPFlagSyn {
			t.Fatalf("connection %d: verdict %v, no SYN to the real", i, v)
		}
		checksumsValid(t, "SYN to the real", syn)
		if tcpOf(syn).SourcePort() != portLo || tcpOf(syn).SequenceNumber() == c.isn {
			t.Fatalf("connection %d: SYN from port %d with seq %#x (client ISN %#x)", i, tcpOf(syn).SourcePort(), tcpOf(syn).SequenceNumber(), c.isn)
		}
		isns[i] = tcpOf(syn).SequenceNumber()
		// The connection ends; its entry goes and gives the port back.
		w.drop(entryOf(t, w, c.sport))
	}
	if got, want := isns[1]-isns[0], uint32((t2-t1)/4000); got != want {
		t.Fatalf("ISNs %#x then %#x on the same tuple 10 ms apart: grew by %d, want %d (4 µs ticks)", isns[0], isns[1], got, want)
	}

	nat := spTable(ForwardNAT)
	wn := spWorker(nat, 1024)
	var a, b uint32
	for i, sport := range []uint16{cport, cport + 1} {
		cookie := cookieSYN(t, wn, nat, sport, spISN, t1)
		syn, _, _ := spSend(t, wn, nat, fromClient(sport, "A", spISN+1, cookie+1).bytes(t), header.Offload{}, t1)
		if i == 0 {
			a = tcpOf(syn).SequenceNumber()
		} else {
			b = tcpOf(syn).SequenceNumber()
		}
	}
	if a == b || a == spISN || b == spISN {
		t.Fatalf("NAT: two tuples at the same instant got ISNs %#x and %#x (client's %#x)", a, b, spISN)
	}
}
