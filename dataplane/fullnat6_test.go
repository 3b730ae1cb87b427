package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
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

// ipLocal6 is the director's IPv6 FULLNAT local address in the tests.
var ipLocal6 = netip.MustParseAddr("fd00:20::2")

// fnTable6 is testTable6 with its IPv6 real in FULLNAT (at natPort) and
// the local address ipLocal6 on the IPv4 table's port range.
func fnTable6(proto uint8) *Table {
	tbl := testTable6(ForwardNAT, proto)
	tbl.Reals[1].Forward = ForwardFullNAT
	tbl.Locals6 = [][16]byte{ipLocal6.As16()}
	return tbl
}

// bytes6 is seg.bytes for IPv6: the same TCP segment in an IPv6 packet
// (traffic class tos, hop limit ttl).
func (s seg) bytes6(tb testing.TB) []byte {
	tb.Helper()
	ttl := s.ttl
	if ttl == 0 {
		ttl = 63
	}
	ip := &layers.IPv6{Version: 6, TrafficClass: s.tos, HopLimit: ttl, NextHeader: layers.IPProtocolTCP,
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
		&layers.Ethernet{SrcMAC: s.srcMAC[:], DstMAC: s.dstMAC[:], EthernetType: layers.EthernetTypeIPv6}, ip, tc, gopacket.Payload(s.payload))
	if err != nil {
		tb.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// fromClient6 is a segment of the IPv6 client's connection from sport.
func fromClient6(sport uint16, flags string, seq, ack uint32) seg {
	return seg{srcMAC: macRouter, dstMAC: macDir, src: ipClient6, dst: ipVIP6, sport: sport, dport: vport,
		seq: seq, ack: ack, flags: flags, window: 5000}
}

// fromReal6 is a segment of the real of w's IPv6 connection from client
// port sport, as the real sends it: to the local address and port.
func fromReal6(t testing.TB, w *Worker, sport uint16, flags string, seq, ack uint32) seg {
	t.Helper()
	e := entryOf6(t, w, sport)
	return seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS16, dst: netip.AddrFrom16(e.Local), sport: natPort, dport: e.LPort,
		seq: seq, ack: ack, flags: flags, window: 29200, ttl: 64}
}

// entryOf6 returns the IPv6 TCP connection of client port sport.
func entryOf6(t testing.TB, w *Worker, sport uint16) *conntrack.Entry6 {
	t.Helper()
	k := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: sport, DstPort: vport, Proto: header.ProtoTCP}
	e, _ := w.shard6.Load().Lookup(&k)
	if e == nil {
		t.Fatalf("no IPv6 connection from port %d", sport)
	}
	return e
}

// tcpOf6 is the TCP header of an IPv6 frame without extension headers.
func tcpOf6(frame []byte) header.TCP {
	return header.TCP(header.IPv6(frame[header.EthernetLen:]).Payload())
}

// mustSend6 sends frame through w at now and returns the frame sent.
func mustSend6(t testing.TB, w *Worker, tbl *Table, frame []byte, now int64) []byte {
	t.Helper()
	out, _, v := spSend(t, w, tbl, frame, header.Offload{}, now)
	if v != VerdictForward || out == nil {
		t.Fatalf("verdict %v, %d bytes out", v, len(out))
	}
	return out
}

// fnStep6 is fnStep for IPv6 frames, with each expected frame checked by
// gopacket first.
func fnStep6(t *testing.T, w *Worker, tbl *Table, name string, in, want []byte, now int64) {
	t.Helper()
	verify6(t, want)
	fnStep(t, w, tbl, name, in, want, now)
}

// TestGoldenFullNAT6: an IPv6 FULLNAT request reaches the real from the
// local address and the worker's first local port, with the director's
// ISN for the real-side tuple; the reply reaches the client from the VIP,
// its acknowledgment shifted back; the next client packet goes out on the
// same tuple; and the real's counters see both directions.
func TestGoldenFullNAT6(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		t.Run(protoName(proto), func(t *testing.T) {
			tbl := fnTable6(proto)
			req := client6(proto)
			req.syn = true
			wantReq := req
			wantReq.srcMAC, wantReq.dstMAC = macDir, macRS1
			wantReq.src, wantReq.sport, wantReq.dst, wantReq.dport = ipLocal6, portLo, ipRS16, natPort

			reply := reply6(proto)
			reply.dst, reply.dport = ipLocal6, portLo
			wantReply := reply
			wantReply.srcMAC, wantReply.dstMAC = macDir, macRouter
			wantReply.src, wantReply.sport, wantReply.dst, wantReply.dport = ipVIP6, vport, ipClient6, cport

			ack := client6(proto)
			ack.ack = true
			wantAck := ack
			wantAck.srcMAC, wantAck.dstMAC = macDir, macRS1
			wantAck.src, wantAck.sport, wantAck.dst, wantAck.dport = ipLocal6, portLo, ipRS16, natPort

			wantReqB, wantReplyB, wantAckB := wantReq.bytes(t), wantReply.bytes(t), wantAck.bytes(t)
			if proto == header.ProtoTCP {
				// pkt6's segments have Seq 1000 and Ack 2000: the
				// client's sequence number gains in, the real's
				// acknowledgment loses it.
				isn, _ := fullnatClocks6(1, ipLocal6.As16(), portLo, ipRS16.As16(), natPort)
				in := isn - 1000
				for _, x := range []struct {
					b   []byte
					off int
					d   uint32
				}{{wantReqB, 4, in}, {wantReplyB, 8, -in}, {wantAckB, 4, in}} {
					tcp := tcpOf6(x.b)
					tcp.SetWord32WithChecksumUpdate(x.off, tcp.Word32(x.off)+x.d)
				}
			}
			for _, b := range [][]byte{wantReqB, wantReplyB, wantAckB} {
				verify6(t, b)
			}
			w := runSteps(t, tbl, []step{
				{name: "FULLNAT6 request", in: req.bytes(t), verdict: VerdictForward, out: wantReqB},
				{name: "FULLNAT6 reply", in: reply.bytes(t), verdict: VerdictForward, out: wantReplyB},
				{name: "FULLNAT6 next request", in: ack.bytes(t), verdict: VerdictForward, out: wantAckB},
			})
			st := tbl.Reals[1].Stats
			if st.Conns.Load() != 1 || st.InPkts.Load() != 2 || st.OutPkts.Load() != 1 {
				t.Errorf("real stats conns %d in %d out %d, want 1 2 1", st.Conns.Load(), st.InPkts.Load(), st.OutPkts.Load())
			}
			if w.shard.Len() != 0 || w.shard6.Load().Len() != 1 {
				t.Errorf("shards hold %d IPv4 and %d IPv6 connections, want 0 and 1", w.shard.Len(), w.shard6.Load().Len())
			}
		})
	}
}

// TestGoldenFullNAT6SeqTimestamps is TestGoldenFullNATSeqTimestamps over
// IPv6: a Linux-like client's SYN reaches the real with the director's
// ISN and timestamp for the real-side IPv6 tuple; the client's sequence
// numbers and TSvals keep their offsets, the real's acknowledgments,
// TSecrs and SACK edges are shifted back, and nothing else changes.
func TestGoldenFullNAT6SeqTimestamps(t *testing.T) {
	tbl := fnTable6(header.ProtoTCP)
	w := worker6(tbl, 1024)
	now := int64(3 * time.Second)
	isn, ts := fullnatClocks6(now, ipLocal6.As16(), portLo, ipRS16.As16(), natPort)
	in, tsoff := isn-spISN, ts-fnClientTS
	toReal6 := func(s seg) seg {
		s.srcMAC, s.dstMAC = macDir, macRS1
		s.src, s.sport, s.dst, s.dport = ipLocal6, portLo, ipRS16, natPort
		return s
	}
	toClient6 := func(s seg) seg {
		s.srcMAC, s.dstMAC = macDir, macRouter
		s.src, s.sport, s.dst, s.dport = ipVIP6, vport, ipClient6, cport
		return s
	}

	syn := fromClient6(cport, "S", spISN, 0)
	syn.mss, syn.window = 1440, 64800
	syn.opts = []layers.TCPOption{{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}, optTS(fnClientTS, 0),
		optNOP, {OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}}
	wantSyn := toReal6(syn)
	wantSyn.seq = isn
	wantSyn.opts = []layers.TCPOption{syn.opts[0], optTS(ts, 0), syn.opts[2], syn.opts[3]}
	fnStep6(t, w, tbl, "SYN", syn.bytes6(t), wantSyn.bytes6(t), now)

	synAck := fromReal6(t, w, cport, "SA", spRISN, isn+1)
	synAck.mss = 1440
	synAck.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS, ts)}
	wantSynAck := toClient6(synAck)
	wantSynAck.ack = spISN + 1
	wantSynAck.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS, fnClientTS)}
	fnStep6(t, w, tbl, "SYN-ACK", synAck.bytes6(t), wantSynAck.bytes6(t), now+1)

	data := fromClient6(cport, "PA", spISN+1, spRISN+1)
	data.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+5, fnRealTS)}
	data.payload = []byte("GET / HTTP/1.1\r\n\r\n")
	wantData := toReal6(data)
	wantData.seq = spISN + 1 + in
	wantData.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+5+tsoff, fnRealTS)}
	fnStep6(t, w, tbl, "client data", data.bytes6(t), wantData.bytes6(t), now+2)

	sack := fromReal6(t, w, cport, "A", spRISN+1, isn+1)
	sack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, ts+5), optNOP, optNOP, optSACK(isn+100, isn+200)}
	wantSack := toClient6(sack)
	wantSack.ack = spISN + 1
	wantSack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, fnClientTS+5), optNOP, optNOP, optSACK(isn+100-in, isn+200-in)}
	fnStep6(t, w, tbl, "real's SACK", sack.bytes6(t), wantSack.bytes6(t), now+3)
	if n := w.C.BadTCPOptions.Load(); n != 0 {
		t.Errorf("BadTCPOptions = %d, want 0", n)
	}
}

// TestFullNAT6Offloads: FULLNAT requests and replies with a partial
// checksum (and as TCPv6 or UDP L4 GSO frames) go out with the offload
// passed on, and finished as the kernel would they are the frames sent for
// a complete checksum, byte for byte: the pseudo-header part of the
// checksum follows both addresses, the sequence translation included.
func TestFullNAT6Offloads(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		for _, gso := range []bool{false, true} {
			name := protoName(proto)
			if gso {
				name += "/GSO"
			}
			t.Run(name, func(t *testing.T) {
				full, part := fnTable6(proto), fnTable6(proto)
				wf, wp := worker6(full, 1024), worker6(part, 1024)
				req := client6(proto)
				req.syn = true
				req.payload = bytes.Repeat([]byte("0123456789"), 500)
				reply := reply6(proto)
				reply.dst, reply.dport = ipLocal6, portLo
				reply.payload = req.payload
				for i, in := range [][]byte{req.bytes(t), reply.bytes(t)} {
					want, wantOff, v := send(t, wf, full, in, header.Offload{})
					if v != VerdictForward || wantOff != (header.Offload{}) {
						t.Fatalf("frame %d with a complete checksum: verdict %v, offload %+v", i, v, wantOff)
					}
					verify6(t, want)
					p := append([]byte(nil), in...)
					off := partial6(t, p)
					if gso {
						off.GSOType, off.GSOSize = header.GSOTCPv6, 1400
						if proto == header.ProtoUDP {
							off.GSOType = header.GSOUDPL4
						}
					}
					got, gotOff, v := send(t, wp, part, p, off)
					if v != VerdictForward {
						t.Fatalf("frame %d with a partial checksum: verdict %v", i, v)
					}
					if gotOff.Flags != header.OffloadNeedsCsum || gotOff.CsumStart != off.CsumStart || gotOff.CsumOffset != off.CsumOffset ||
						gotOff.GSOType != off.GSOType || gotOff.GSOSize != off.GSOSize {
						t.Fatalf("frame %d: offload %+v, want %+v passed on", i, gotOff, off)
					}
					if done := finish6(t, got, gotOff); !bytes.Equal(done, want) {
						t.Fatalf("frame %d: sent with a partial checksum and finished:\n%s\nwith a complete one:\n%s\n%s", i, hex.Dump(done), hex.Dump(want), diff(done, want))
					}
				}
			})
		}
	}
}

// TestFullNAT6PortsPerWorker: each of 3 workers gives its IPv6 FULLNAT
// connections only its own local ports (p%3 == its id), which the
// steering program sends the replies of to it.
func TestFullNAT6PortsPerWorker(t *testing.T) {
	tbl := fnTable6(header.ProtoUDP)
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	const n = 3
	for id := 0; id < n; id++ {
		w := newWorker(id, n, nil, &ptr, 1024)
		w.enableIPv6()
		for i := 0; i < 50; i++ {
			in := client6(header.ProtoUDP)
			in.sport = uint16(30000 + i)
			out, _, v := send(t, w, tbl, in.bytes(t), header.Offload{})
			if v != VerdictForward {
				t.Fatalf("worker %d flow %d: verdict %v", id, i, v)
			}
			ip := header.IPv6(out[header.EthernetLen:])
			p := header.UDP(ip.Payload()).SourcePort()
			if int(p)%n != id || p < portLo || p > 6000 || ip.Source() != ipLocal6.As16() {
				t.Fatalf("worker %d of %d used local %v port %d", id, n, netip.AddrFrom16(ip.Source()), p)
			}
		}
	}
}

// TestFullNAT6PortExhaustion: with one local port, a second connection
// finds none while the first is open (table_full, counted), takes it once
// the first has been over (TIME_WAIT) for closedReclaimAge, and a
// half-open connection gives its port up after halfOpenReclaimAge.
func TestFullNAT6PortExhaustion(t *testing.T) {
	tbl := fnTable6(header.ProtoTCP)
	tbl.PortHi = portLo // one local port
	w := worker6(tbl, 1024)
	ms := int64(time.Millisecond)
	t0 := int64(10 * time.Second)

	syn := tcpOf6(mustSend6(t, w, tbl, fromClient6(cport, "S", 100, 0).bytes6(t), t0))
	mustSend6(t, w, tbl, fromReal6(t, w, cport, "SA", 5000, syn.SequenceNumber()+1).bytes6(t), t0+ms)
	mustSend6(t, w, tbl, fromClient6(cport, "A", 101, 5001).bytes6(t), t0+2*ms)
	if _, _, v := spSend(t, w, tbl, fromClient6(cport+1, "S", 300, 0).bytes6(t), header.Offload{}, t0+3*ms); v != VerdictTableFull {
		t.Fatalf("second connection with the only port held: verdict %v, want table_full", v)
	}
	// Both FINs and the last ACK: over.
	mustSend6(t, w, tbl, fromClient6(cport, "FA", 101, 5001).bytes6(t), t0+4*ms)
	mustSend6(t, w, tbl, fromReal6(t, w, cport, "FA", 5001, syn.SequenceNumber()+2).bytes6(t), t0+5*ms)
	mustSend6(t, w, tbl, fromClient6(cport, "A", 102, 5002).bytes6(t), t0+6*ms)
	if s := entryOf6(t, w, cport).State; s != conntrack.TCPTimeWait && s != conntrack.TCPClose {
		t.Fatalf("after both FINs: %v, want TIME_WAIT or CLOSE", s)
	}
	if _, _, v := spSend(t, w, tbl, fromClient6(cport+1, "S", 300, 0).bytes6(t), header.Offload{}, t0+5*ms+closedReclaimAge); v != VerdictTableFull {
		t.Fatalf("a SYN took the port of a connection over for less than %v (verdict %v)", time.Duration(closedReclaimAge), v)
	}
	t1 := t0 + 6*ms + closedReclaimAge
	out := tcpOf6(mustSend6(t, w, tbl, fromClient6(cport+1, "S", 300, 0).bytes6(t), t1))
	if out.SourcePort() != portLo || w.C.PortsReclaimed.Load() != 1 {
		t.Fatalf("reclaimed: port %d, PortsReclaimed %d, want %d and 1", out.SourcePort(), w.C.PortsReclaimed.Load(), portLo)
	}
	k := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
	if e, _ := w.shard6.Load().Lookup(&k); e != nil {
		t.Error("the closed connection is still in the table")
	}
	// cport+1 stays half-open (no answer from the real): after
	// halfOpenReclaimAge its port goes to the next SYN.
	if _, _, v := spSend(t, w, tbl, fromClient6(cport+2, "S", 400, 0).bytes6(t), header.Offload{}, t1+halfOpenReclaimAge-ms); v != VerdictTableFull {
		t.Fatalf("a SYN took a half-open connection's port too soon (verdict %v)", v)
	}
	out = tcpOf6(mustSend6(t, w, tbl, fromClient6(cport+2, "S", 400, 0).bytes6(t), t1+halfOpenReclaimAge))
	if out.SourcePort() != portLo || w.C.PortsReclaimed.Load() != 2 {
		t.Fatalf("reclaimed from the half-open: port %d, PortsReclaimed %d, want %d and 2", out.SourcePort(), w.C.PortsReclaimed.Load(), portLo)
	}
	// The reals' counts follow: one connection left.
	c := tbl.Reals[1].Counters
	if n := c.Active.Load() + c.Inactive.Load(); n != 1 {
		t.Errorf("real holds %d connections, want 1", n)
	}
}

// TestFullNAT6NoLocals: without an IPv6 local address (a table the
// control plane would not build) a new FULLNAT connection is refused and
// counted, never sent from a zero address.
func TestFullNAT6NoLocals(t *testing.T) {
	tbl := fnTable6(header.ProtoUDP)
	tbl.Locals6 = nil
	w := worker6(tbl, 1024)
	if out, _, v := send(t, w, tbl, client6(header.ProtoUDP).bytes(t), header.Offload{}); v != VerdictTableFull || len(out) != 0 {
		t.Fatalf("verdict %v, %d bytes out; want table_full and nothing", v, len(out))
	}
	if c := tbl.Reals[1].Counters; c.Active.Load()+c.Inactive.Load() != 0 {
		t.Error("a refused connection left a count on its real")
	}
}

// icmp6Err is an ICMPv6 error frame for the independent encoder: typ/code
// from src to dst quoting the IPv6 packet of quoted (an Ethernet frame),
// cut to quoteLen bytes if quoteLen > 0.
func icmp6Err(tb testing.TB, srcMAC, dstMAC [6]byte, src, dst netip.Addr, typ, code uint8, quoted []byte, quoteLen int) []byte {
	tb.Helper()
	q := quoted[header.EthernetLen:]
	if quoteLen > 0 {
		q = q[:quoteLen]
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	ic.SetNetworkLayerForChecksum(ip)
	rest := make([]byte, 4) // the unused word, or Packet Too Big's MTU
	if typ == header.ICMPv6PacketTooBig {
		binary.BigEndian.PutUint32(rest, 1280)
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: srcMAC[:], DstMAC: dstMAC[:], EthernetType: layers.EthernetTypeIPv6}, ip, ic,
		gopacket.Payload(append(rest, q...)))
	if err != nil {
		tb.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// verifyICMP6 checks an ICMPv6 frame's checksum over its pseudo-header.
func verifyICMP6(t *testing.T, b []byte) {
	t.Helper()
	ip := header.IPv6(b[header.EthernetLen:])
	if !header.ICMPv6(ip.Payload()).IsChecksumValid(ip.Source(), ip.Destination()) {
		t.Fatalf("ICMPv6 checksum wrong:\n%s", hex.Dump(b))
	}
}

var ipRouter6 = netip.MustParseAddr("fd00:10::1")

// TestGoldenICMPv6FromReal: a NAT or FULLNAT real's port unreachable about
// a client's datagram goes back to the client from the VIP, quoting the
// datagram as the client sent it, with a checksum over the new
// pseudo-header.
func TestGoldenICMPv6FromReal(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		t.Run(f.String(), func(t *testing.T) {
			tbl := testTable6(ForwardNAT, header.ProtoUDP)
			if f == ForwardFullNAT {
				tbl = fnTable6(header.ProtoUDP)
			}
			req := client6(header.ProtoUDP)
			// The datagram as the real received it.
			asReceived := req
			asReceived.dst, asReceived.dport = ipRS16, natPort
			errDst := ipClient6
			if f == ForwardFullNAT {
				asReceived.src, asReceived.sport = ipLocal6, portLo
				errDst = ipLocal6
			}
			// The quoted UDP checksum is not rewritten (as IPVS): the
			// expected quote keeps the one the real saw.
			reqB := req.bytes(t)
			rcvB := asReceived.bytes(t)
			l4 := header.EthernetLen + header.IPv6MinLen
			copy(reqB[l4+6:l4+8], rcvB[l4+6:l4+8])
			in := icmp6Err(t, macRS1, macDir, ipRS16, errDst, header.ICMPv6DestUnreachable, 4, rcvB, 0)
			want := icmp6Err(t, macDir, macRouter, ipVIP6, ipClient6, header.ICMPv6DestUnreachable, 4, reqB, 0)
			verifyICMP6(t, want)
			runSteps(t, tbl, []step{
				{name: "request", in: req.bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}},
				{name: "port unreachable from the real", in: in, verdict: VerdictForward, out: want},
			})
			if n := tbl.Reals[1].Stats.OutPkts.Load(); n != 1 {
				t.Errorf("real OutPkts %d, want 1 (the error)", n)
			}
		})
	}
}

// TestGoldenICMPv6ToVIP: a router on the client's path tells the VIP a
// reply was too big; the error reaches the real that sent the reply, about
// the reply as that real sent it (FULLNAT: from the local address, its
// quoted acknowledgment number in the real's sequence space).
func TestGoldenICMPv6ToVIP(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardFullNAT} {
		t.Run(f.String(), func(t *testing.T) {
			tbl := testTable6(f, header.ProtoTCP)
			if f == ForwardFullNAT {
				tbl = fnTable6(header.ProtoTCP)
			}
			syn := fromClient6(cport, "S", spISN, 0)
			// The reply the client's path refused, as it left the
			// director.
			reply := seg{srcMAC: macDir, dstMAC: macRouter, src: ipVIP6, dst: ipClient6, sport: vport, dport: cport,
				seq: spRISN + 1, ack: spISN + 1, flags: "A", window: 100, payload: bytes.Repeat([]byte("r"), 1400)}
			in := icmp6Err(t, macRouter, macDir, ipRouter6, ipVIP6, header.ICMPv6PacketTooBig, 0, reply.bytes6(t), 200)
			asSent := reply
			outSrc, outDst := ipRouter6, ipVIP6
			switch f {
			case ForwardNAT:
				asSent.src, asSent.sport = ipRS16, natPort
				outDst = ipRS16
			case ForwardFullNAT:
				isn, _ := fullnatClocks6(1, ipLocal6.As16(), portLo, ipRS16.As16(), natPort)
				asSent.src, asSent.sport = ipRS16, natPort
				asSent.dst, asSent.dport = ipLocal6, portLo
				asSent.ack = isn + 1
				outSrc, outDst = ipLocal6, ipRS16
			}
			sentB, replyB := asSent.bytes6(t), reply.bytes6(t)
			l4 := header.EthernetLen + header.IPv6MinLen
			copy(sentB[l4+16:l4+18], replyB[l4+16:l4+18]) // the quoted checksum stays
			want := icmp6Err(t, macDir, macRS1, outSrc, outDst, header.ICMPv6PacketTooBig, 0, sentB, 200)
			verifyICMP6(t, want)
			runSteps(t, tbl, []step{
				{name: "SYN", in: syn.bytes6(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}},
				{name: "packet too big to the VIP", in: in, verdict: VerdictForward, out: want},
			})
		})
	}
}

// TestICMPv6Drops: ICMPv6 that is not a relayable error is counted and
// left alone.
func TestICMPv6Drops(t *testing.T) {
	reply := reply6(header.ProtoUDP)
	reply.src, reply.dst = ipVIP6, ipClient6
	reply.sport, reply.dport = vport, cport
	unknown := icmp6Err(t, macRouter, macDir, ipRouter6, ipVIP6, header.ICMPv6DestUnreachable, 0, reply.bytes(t), 0)
	echo := icmp6Err(t, macRouter, macDir, ipRouter6, ipVIP6, header.ICMPv6EchoRequest, 0, reply.bytes(t), 0)
	short := icmp6Err(t, macRouter, macDir, ipRouter6, ipVIP6, header.ICMPv6DestUnreachable, 0, reply.bytes(t), header.IPv6MinLen+4)
	tiny := icmp6Err(t, macRouter, macDir, ipRouter6, ipVIP6, header.ICMPv6DestUnreachable, 0, reply.bytes(t), 0)
	tiny = tiny[:header.EthernetLen+header.IPv6MinLen+4]
	header.IPv6(tiny[header.EthernetLen:]).SetPayloadLength(4)
	runSteps(t, testTable6(ForwardNAT, header.ProtoUDP), []step{
		{name: "error about no connection", in: unknown, verdict: VerdictNoConn},
		{name: "echo request", in: echo, verdict: VerdictNoService},
		{name: "quote cut short", in: short, verdict: VerdictMalformed},
		{name: "no ICMPv6 header", in: tiny, verdict: VerdictMalformed},
	})
}

// TestZeroAllocsFullNAT6: IPv6 FULLNAT segments both ways (timestamps
// translated), a new FULLNAT connection and a relayed ICMPv6 error cost no
// allocation.
func TestZeroAllocsFullNAT6(t *testing.T) {
	tbl := fnTable6(header.ProtoTCP)
	w := worker6(tbl, 1<<16)
	syn := fromClient6(cport, "S", spISN, 0)
	syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
	mustSend6(t, w, tbl, syn.bytes6(t), 1)
	c := fromClient6(cport, "A", spISN+1, spRISN+1)
	c.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+1, fnRealTS)}
	c.payload = make([]byte, 100)
	r := fromReal6(t, w, cport, "A", spRISN+1, 12345)
	r.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, 777), optNOP, optNOP, optSACK(1, 2)}
	reply := seg{srcMAC: macDir, dstMAC: macRouter, src: ipVIP6, dst: ipClient6, sport: vport, dport: cport, seq: 1, ack: 2, flags: "A"}
	icmpIn := icmp6Err(t, macRouter, macDir, ipRouter6, ipVIP6, header.ICMPv6PacketTooBig, 0, reply.bytes6(t), 0)
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	for _, x := range []struct {
		name string
		in   []byte
	}{{"client segment", c.bytes6(t)}, {"real segment", r.bytes6(t)}, {"ICMPv6 error", icmpIn}} {
		allocs := testing.AllocsPerRun(500, func() {
			copy(buf[Headroom:], x.in)
			if _, v := w.process(tbl, buf, len(x.in), icmp, 2); v != VerdictForward {
				t.Fatalf("%s: verdict %v", x.name, v)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per packet, want 0", x.name, allocs)
		}
	}
	utbl := fnTable6(header.ProtoUDP)
	uw := worker6(utbl, 1<<16)
	frame := client6(header.ProtoUDP).bytes(t)
	port := uint16(1)
	allocs := testing.AllocsPerRun(500, func() {
		copy(buf[Headroom:], frame)
		ip := header.IPv6(buf[Headroom+header.EthernetLen:])
		header.UDP(ip.Payload()).SetSourcePortWithChecksumUpdate(port)
		port++
		if _, v := uw.process(utbl, buf, len(frame), icmp, 2); v != VerdictForward {
			t.Fatalf("new connection: verdict %v", v)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per new IPv6 FULLNAT connection, want 0", allocs)
	}
}

// BenchmarkProcessFullNAT6 is BenchmarkProcess6 for IPv6 FULLNAT: a
// segment of an established connection each way, with timestamps
// translated, and a relayed ICMPv6 error.
func BenchmarkProcessFullNAT6(b *testing.B) {
	tbl := fnTable6(header.ProtoTCP)
	w := worker6(tbl, 1<<16)
	syn := fromClient6(cport, "S", spISN, 0)
	syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
	mustSend6(b, w, tbl, syn.bytes6(b), 1)
	c := fromClient6(cport, "A", spISN+1, spRISN+1)
	c.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+1, fnRealTS)}
	c.payload = make([]byte, 100)
	r := fromReal6(b, w, cport, "A", spRISN+1, 12345)
	r.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, 777)}
	reply := seg{srcMAC: macDir, dstMAC: macRouter, src: ipVIP6, dst: ipClient6, sport: vport, dport: cport, seq: 1, ack: 2, flags: "A"}
	for _, x := range []struct {
		name string
		in   []byte
	}{{"in", c.bytes6(b)}, {"out", r.bytes6(b)}, {"icmpv6", icmp6Err(b, macRouter, macDir, ipRouter6, ipVIP6, header.ICMPv6PacketTooBig, 0, reply.bytes6(b), 0)}} {
		b.Run(x.name, func(b *testing.B) {
			buf := make([]byte, Headroom+MaxFrame)
			icmp := make([]byte, 128)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				copy(buf[Headroom:], x.in)
				w.process(tbl, buf, len(x.in), icmp, 2)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pps")
		})
	}
}
