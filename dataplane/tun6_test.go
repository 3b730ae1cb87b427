package dataplane

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// tunnel6Frame is the golden TUN output for an inner IPv6 frame: an outer
// IPv6 header from the director to RS1 (next header 41, hop limit 64, the
// inner traffic class and flow label), built by gopacket.
func tunnel6Frame(t *testing.T, in []byte) []byte {
	t.Helper()
	inner := header.IPv6(in[header.EthernetLen:])
	return gopacketFrame(t,
		&layers.Ethernet{SrcMAC: macDir[:], DstMAC: macRS1[:], EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, TrafficClass: inner.TrafficClass(), FlowLabel: inner.FlowLabel(), HopLimit: tunnelTTL,
			NextHeader: layers.IPProtocolIPv6, SrcIP: ipDir6.AsSlice(), DstIP: ipRS16.AsSlice()},
		gopacket.Payload(in[header.EthernetLen:]))
}

// verifyTunnel6 checks a TUN frame with gopacket: IPv6 in IPv6 from the
// director to RS1, the inner packet's transport checksum right against
// the inner header. It returns the inner packet.
func verifyTunnel6(t *testing.T, out []byte) header.IPv6 {
	t.Helper()
	outer := header.IPv6(out[header.EthernetLen:])
	if !outer.IsValid(len(outer)) || len(outer) != header.IPv6MinLen+int(outer.PayloadLength()) ||
		outer.NextHeader() != header.ProtoIPv6 || outer.Source() != ipDir6.As16() || outer.Destination() != ipRS16.As16() ||
		outer.HopLimit() != tunnelTTL {
		t.Fatalf("bad outer header:\n%s", hex.Dump(out))
	}
	if eth := header.Ethernet(out); eth.Source() != macDir || eth.Destination() != macRS1 || eth.Type() != header.EtherTypeIPv6 {
		t.Fatalf("Ethernet %x -> %x type %#x", eth.Source(), eth.Destination(), eth.Type())
	}
	inner := make([]byte, header.EthernetLen+len(outer)-header.IPv6MinLen)
	copy(inner, out[:header.EthernetLen])
	copy(inner[header.EthernetLen:], outer.Payload())
	verify6(t, inner)
	return header.IPv6(inner[header.EthernetLen:])
}

// TestGoldenTUN6: a TCP SYN or UDP datagram to an IPv6 TUN service leaves
// in IPv6-in-IPv6 to the real, with or without extension headers; the next
// packet of the connection too; the real's counters move as in DR.
func TestGoldenTUN6(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		for _, ext := range []bool{false, true} {
			name := protoName(proto)
			if ext {
				name += "/extension headers"
			}
			t.Run(name, func(t *testing.T) {
				tbl := testTable6(ForwardTUN, proto)
				in := client6(proto)
				in.syn = true
				in.hbh, in.dstOpts = ext, ext
				next := client6(proto)
				next.ack = true
				want, wantNext := tunnel6Frame(t, in.bytes(t)), tunnel6Frame(t, next.bytes(t))
				verifyTunnel6(t, want)
				w := runSteps(t, tbl, []step{
					{name: "TUN request", in: in.bytes(t), verdict: VerdictForward, out: want},
					{name: "TUN next packet", in: next.bytes(t), verdict: VerdictForward, out: wantNext},
				})
				r := tbl.Reals[1]
				if c, in, out := r.Stats.Conns.Load(), r.Stats.InPkts.Load(), r.Stats.OutPkts.Load(); c != 1 || in != 2 || out != 0 {
					t.Errorf("real conns %d in %d out %d, want 1 2 0", c, in, out)
				}
				if w.shard6.Load().Len() != 1 {
					t.Errorf("IPv6 shard holds %d connections, want 1", w.shard6.Load().Len())
				}
			})
		}
	}
}

// TestTUN6PartialChecksum: a TUN request with a partial checksum leaves
// with it finished, byte for byte the frame a complete one gives, and with
// no offload asked of the kernel (it cannot finish a checksum behind an
// outer header it did not build).
func TestTUN6PartialChecksum(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		t.Run(protoName(proto), func(t *testing.T) {
			tbl := testTable6(ForwardTUN, proto)
			req := client6(proto)
			req.syn = true
			req.dstOpts = true
			req.payload = bytes.Repeat([]byte("0123456789"), 50)
			in := req.bytes(t)
			want := tunnel6Frame(t, in)
			p := append([]byte(nil), in...)
			off := partial6(t, p)
			got, gotOff, v := send(t, worker6(tbl, 1024), tbl, p, off)
			if v != VerdictForward || gotOff != (header.Offload{}) {
				t.Fatalf("verdict %v, offload %+v; want forward with no offload", v, gotOff)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("partial checksum tunnelled:\n%s\nwant:\n%s\n%s", hex.Dump(got), hex.Dump(want), diff(got, want))
			}
		})
	}
}

// gsoFrame6 is a GSO super-frame of n payload bytes to the IPv6 VIP, cut
// at mss, with a partial checksum (and a destination options header, for
// the segments to repeat); TCP has FIN, PSH and CWR set.
func gsoFrame6(t *testing.T, proto uint8, n, mss int) ([]byte, header.Offload) {
	t.Helper()
	p := client6(proto)
	p.ack, p.fin = true, true
	p.dstOpts = true
	p.payload = make([]byte, n)
	for i := range p.payload {
		p.payload[i] = byte(i * 7)
	}
	b := p.bytes(t)
	var q parsed6
	if v := parse6(b, &q); v != 0 {
		t.Fatalf("gsoFrame6: parse6 %v", v)
	}
	if proto == header.ProtoTCP {
		tcp := header.TCP(b[q.l4:])
		tcp.SetFlags(tcp.Flags() | header.TCPFlagPsh | header.TCPFlagCwr)
	}
	off := partial6(t, b)
	off.GSOSize = uint16(mss)
	off.GSOType = header.GSOTCPv6
	if proto == header.ProtoUDP {
		off.GSOType = header.GSOUDPL4
	}
	return b, off
}

// TestGSOThroughTunnel6: a GSO super-frame to an IPv6 TUN service is cut
// into segments that fit the MTU with the 40-byte outer header, each with
// its own valid checksum, sequence number and flags, and the payloads
// together are the super-frame's; a TCP segment size too big for the
// tunnel is lowered; UDP pieces too big for it get Packet Too Big.
func TestGSOThroughTunnel6(t *testing.T) {
	// Headers of a segment: 40 (IPv6) + 8 (destination options) + 20 (TCP)
	// or 8 (UDP), and the outer 40.
	for _, tc := range []struct {
		name       string
		proto      uint8
		n, mss     int
		mtu        int
		wantSegs   int
		wantMaxSeg int
	}{
		{"tcp", header.ProtoTCP, 4000, 1300, 1500, 4, 1300},
		{"tcp-mss-lowered", header.ProtoTCP, 4000, 1432, 1500, 3, 1500 - 40 - 48 - 20}, // 1392 bytes a segment
		{"tcp-one-segment", header.ProtoTCP, 1000, 1432, 1500, 1, 1000},
		{"udp", header.ProtoUDP, 3000, 1000, 1500, 3, 1000},
		{"udp-one-datagram-under-a-large-gso-size", header.ProtoUDP, 1000, 9000, 1500, 1, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := testTable6(ForwardTUN, tc.proto)
			tbl.MTU = tc.mtu
			w := worker6(tbl, 1024)
			if tc.proto == header.ProtoTCP {
				syn := client6(header.ProtoTCP)
				syn.syn = true
				if _, _, v := send(t, w, tbl, syn.bytes(t), header.Offload{}); v != VerdictForward {
					t.Fatalf("SYN verdict %v", v)
				}
				w.resetSpare()
			}
			in, off := gsoFrame6(t, tc.proto, tc.n, tc.mss)
			first, gotOff, v := send(t, w, tbl, in, off)
			if v != VerdictForward || gotOff != (header.Offload{}) {
				t.Fatalf("verdict %v, offload %+v; want forward with no offload", v, gotOff)
			}
			segs := [][]byte{first}
			for _, x := range w.extra {
				segs = append(segs, append([]byte(nil), x...))
			}
			if len(segs) != tc.wantSegs || w.C.Segmented.Load() != 1 {
				t.Fatalf("%d segments (Segmented %d), want %d", len(segs), w.C.Segmented.Load(), tc.wantSegs)
			}
			var q parsed6
			if v := parse6(in, &q); v != 0 {
				t.Fatal(v)
			}
			thl := header.UDPLen
			if tc.proto == header.ProtoTCP {
				thl = header.TCP(in[q.l4:]).DataOffset()
			}
			var payload []byte
			var seq uint32
			for i, s := range segs {
				if len(s)-header.EthernetLen > tc.mtu {
					t.Fatalf("segment %d: %d bytes over MTU %d", i, len(s)-header.EthernetLen, tc.mtu)
				}
				inner := verifyTunnel6(t, s)
				x, _ := inner.WalkExtensions()
				if x.Offset != header.IPv6MinLen+8 {
					t.Fatalf("segment %d: the destination options header is not repeated", i)
				}
				l4 := inner[x.Offset:]
				last := i == len(segs)-1
				var pl []byte
				if tc.proto == header.ProtoTCP {
					tcp := header.TCP(l4)
					if i == 0 {
						seq = tcp.SequenceNumber()
					} else if tcp.SequenceNumber() != seq+uint32(len(payload)) {
						t.Fatalf("segment %d: seq %d, want %d", i, tcp.SequenceNumber(), seq+uint32(len(payload)))
					}
					fl := tcp.Flags()
					if (fl&header.TCPFlagFin != 0) != last || (fl&header.TCPFlagPsh != 0) != last || (fl&header.TCPFlagCwr != 0) != (i == 0) {
						t.Errorf("segment %d of %d: flags %#x", i, len(segs), fl)
					}
					pl = l4[tcp.DataOffset():]
				} else {
					pl = header.UDP(l4).Payload()
				}
				if len(pl) > tc.wantMaxSeg {
					t.Errorf("segment %d: %d payload bytes, want at most %d", i, len(pl), tc.wantMaxSeg)
				}
				payload = append(payload, pl...)
			}
			if !bytes.Equal(payload, in[q.l4+thl:]) {
				t.Fatalf("the segments carry %d bytes that differ from the %d of the super-frame", len(payload), len(in[q.l4+thl:]))
			}
		})
	}
}

// checkPacketTooBig6 checks a Packet Too Big frame with gopacket: from
// the VIP to the client through the router's MAC, with MTU mtu, a valid
// checksum, and quoting the client's packet from its IPv6 header on.
func checkPacketTooBig6(t *testing.T, out, in []byte, mtu uint32) {
	t.Helper()
	p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	icmp, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if eth == nil || ip == nil || icmp == nil {
		t.Fatalf("not Ethernet/IPv6/ICMPv6:\n%s", p.Dump())
	}
	if !bytes.Equal(eth.DstMAC, macRouter[:]) || !bytes.Equal(eth.SrcMAC, macDir[:]) {
		t.Errorf("ICMPv6 MACs %s -> %s, want to the router", eth.SrcMAC, eth.DstMAC)
	}
	if !ip.DstIP.Equal(ipClient6.AsSlice()) || !ip.SrcIP.Equal(ipVIP6.AsSlice()) || len(out)-header.EthernetLen > header.IPv6MinMTU {
		t.Errorf("ICMPv6 %s -> %s, %d bytes; want VIP -> client within 1280", ip.SrcIP, ip.DstIP, len(out)-header.EthernetLen)
	}
	m := header.ICMPv6(out[header.EthernetLen+header.IPv6MinLen:])
	if icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0) || m.MTU() != mtu {
		t.Errorf("ICMPv6 %v mtu %d, want packet too big mtu %d", icmp.TypeCode, m.MTU(), mtu)
	}
	if !m.IsChecksumValid(ipVIP6.As16(), ipClient6.As16()) {
		t.Error("ICMPv6 checksum invalid")
	}
	if q := m.Payload(); !bytes.Equal(q, in[header.EthernetLen:header.EthernetLen+len(q)]) {
		t.Error("the quote is not the client's packet")
	}
}

// TestTUN6PacketTooBig: a client packet that does not fit the MTU with the
// outer header is answered with Packet Too Big, MTU the link's less 40, and
// counted; on a link below 1320 bytes the MTU said is 1280 (a packet already
// within 1280 goes in outer fragments: TestTUN6OuterFragments). A UDP GSO
// frame whose datagrams do not fit gets one too.
func TestTUN6PacketTooBig(t *testing.T) {
	big := func(proto uint8, size int) []byte {
		p := client6(proto)
		p.syn = true
		hl := header.IPv6MinLen + header.TCPMinLen
		if proto == header.ProtoUDP {
			hl = header.IPv6MinLen + header.UDPLen
		}
		p.payload = make([]byte, size-hl)
		return p.bytes(t)
	}
	for _, tc := range []struct {
		name    string
		proto   uint8
		mtu     int
		size    int    // of the client's IPv6 packet
		wantMTU uint32 // 0: dropped without an answer
	}{
		{"tcp full size", header.ProtoTCP, 1500, 1500, 1460},
		{"udp full size", header.ProtoUDP, 1500, 1500, 1460},
		{"udp one byte over", header.ProtoUDP, 1500, 1461, 1460},
		{"small link", header.ProtoTCP, 1300, 1300, 1280},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := testTable6(ForwardTUN, tc.proto)
			tbl.MTU = tc.mtu
			in := big(tc.proto, tc.size)
			st := step{name: "too big", in: in, verdict: VerdictTooBig}
			if tc.wantMTU != 0 {
				st.check = func(t *testing.T, out []byte) { checkPacketTooBig6(t, out, in, tc.wantMTU) }
			}
			w := runSteps(t, tbl, []step{st})
			if sent := w.C.ICMPSent.Load(); sent != 0 != (tc.wantMTU != 0) {
				t.Errorf("ICMPSent %d", sent)
			}
		})
	}
	// The largest packet that fits is tunnelled.
	tbl := testTable6(ForwardTUN, header.ProtoUDP)
	fits := big(header.ProtoUDP, 1460)
	runSteps(t, tbl, []step{{name: "1460 bytes", in: fits, verdict: VerdictForward, out: tunnel6Frame(t, fits)}})

	// A UDP GSO frame of 1452-byte datagrams: 1500 each, too big.
	w := worker6(tbl, 1024)
	in, off := gsoFrame6(t, header.ProtoUDP, 3000, 1452)
	out, _, v := send(t, w, tbl, in, off)
	if v != VerdictTooBig {
		t.Fatalf("UDP GSO of 1452-byte datagrams: verdict %v, want too_big", v)
	}
	checkPacketTooBig6(t, out, in, 1460)
	if w.C.ICMPSent.Load() != 1 || len(w.extra) != 0 {
		t.Errorf("ICMPSent %d, %d extra frames; want 1 and 0", w.C.ICMPSent.Load(), len(w.extra))
	}
}

// TestZeroAllocsTUN6GSO: cutting a TCP GSO frame through the IPv6 tunnel,
// and answering a packet too big for it, cost no allocation once the spare
// buffers have grown.
func TestZeroAllocsTUN6GSO(t *testing.T) {
	tbl := testTable6(ForwardTUN, header.ProtoTCP)
	w := worker6(tbl, 1024)
	syn := client6(header.ProtoTCP)
	syn.syn = true
	if _, _, v := send(t, w, tbl, syn.bytes(t), header.Offload{}); v != VerdictForward {
		t.Fatalf("SYN verdict %v", v)
	}
	in, off := gsoFrame6(t, header.ProtoTCP, 16000, 1432)
	in = append([]byte(nil), in...)
	tcp := header.TCP(in[header.EthernetLen+header.IPv6MinLen+8:])
	tcp.SetFlags(header.TCPFlagAck) // no FIN: the connection stays
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[Headroom:], in)
		if _, v := w.processOffload(tbl, buf, len(in), off, icmp, 2); v != VerdictForward {
			t.Fatalf("verdict %v", v)
		}
		w.resetSpare()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per GSO frame, want 0", allocs)
	}

	// A packet too big for the tunnel: its Packet Too Big costs none either.
	big := client6(header.ProtoTCP)
	big.ack = true
	big.payload = make([]byte, 1500-header.IPv6MinLen-header.TCPMinLen)
	bigFrame := big.bytes(t)
	allocs = testing.AllocsPerRun(200, func() {
		copy(buf[Headroom:], bigFrame)
		if _, v := w.processOffload(tbl, buf, len(bigFrame), header.Offload{}, icmp, 2); v != VerdictTooBig {
			t.Fatalf("verdict %v", v)
		}
		w.resetSpare()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per Packet Too Big, want 0", allocs)
	}
}

// TestBatchTUN6: through batch, a TUN6 GSO frame's segments go out in
// order right after its first, followed by the next frames of the batch (a
// plain request, and the Packet Too Big answering a full-size one), none
// with an offload asked of the kernel.
func TestBatchTUN6(t *testing.T) {
	tbl := testTable6(ForwardTUN, header.ProtoTCP)
	link := &fakeLink{}
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, link, &ptr, 1024)
	w.enableIPv6()
	syn := client6(header.ProtoTCP)
	syn.syn = true
	gso, off := gsoFrame6(t, header.ProtoTCP, 4000, 1300)
	plain := client6(header.ProtoTCP)
	plain.ack = true
	big := client6(header.ProtoTCP)
	big.ack = true
	big.payload = make([]byte, 1500-header.IPv6MinLen-header.TCPMinLen)
	link.in = [][]byte{syn.bytes(t), gso, plain.bytes(t), big.bytes(t)}
	link.inOffs = []header.Offload{{}, off, {}, {}}
	n, err := link.Read(w.bufs, w.sizes, w.offs, Headroom)
	if n != 4 || err != nil {
		t.Fatalf("fake read: %d, %v", n, err)
	}
	w.batch(tbl, n, 1)
	// SYN, 4 segments, the plain request, Packet Too Big.
	if len(link.out) != 7 {
		t.Fatalf("%d frames written, want 7", len(link.out))
	}
	for i, o := range link.outOffs {
		if o != (header.Offload{}) {
			t.Errorf("frame %d written with offload %+v", i, o)
		}
	}
	var seq uint32
	for i, f := range link.out[:6] {
		inner := verifyTunnel6(t, f)
		if i >= 1 && i <= 4 {
			tcp := header.TCP(inner[header.IPv6MinLen+8:])
			if i > 1 && tcp.SequenceNumber() != seq+1300 {
				t.Fatalf("segment %d: seq %d after %d", i, tcp.SequenceNumber(), seq)
			}
			seq = tcp.SequenceNumber()
		}
	}
	checkPacketTooBig6(t, link.out[6], big.bytes(t), 1460)
	if got := w.C.Verdicts[VerdictForward].Load(); got != 3 || w.C.Verdicts[VerdictTooBig].Load() != 1 || w.C.TxFrames.Load() != 7 {
		t.Errorf("verdicts forward %d too_big %d, %d frames sent; want 3 1 7", got, w.C.Verdicts[VerdictTooBig].Load(), w.C.TxFrames.Load())
	}
}

// TestGSOThroughTunnel6Random cuts GSO frames of seeded random sizes,
// segment sizes and MTUs through the IPv6 tunnel: every frame sent fits
// the MTU, is IPv6 in IPv6 with valid inner checksums (or a valid Packet
// Too Big, for UDP pieces that cannot fit), and the segments' payloads are
// the super-frame's.
func TestGSOThroughTunnel6Random(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 41))
	for i := range 200 {
		proto := []uint8{header.ProtoTCP, header.ProtoUDP}[r.IntN(2)]
		n, mss, mtu := 1+r.IntN(30000), 1+r.IntN(9000), 1280+r.IntN(9000-1280)
		tbl := testTable6(ForwardTUN, proto)
		tbl.MTU = mtu
		w := worker6(tbl, 1024)
		if proto == header.ProtoTCP {
			syn := client6(header.ProtoTCP)
			syn.syn = true
			send(t, w, tbl, syn.bytes(t), header.Offload{})
			w.resetSpare()
		}
		in, off := gsoFrame6(t, proto, n, mss)
		first, _, v := send(t, w, tbl, in, off)
		var q parsed6
		parse6(in, &q)
		thl := header.UDPLen
		if proto == header.ProtoTCP {
			thl = header.TCP(in[q.l4:]).DataOffset()
		}
		name := fmt.Sprintf("case %d: %s n=%d mss=%d mtu=%d", i, protoName(proto), n, mss, mtu)
		if v == VerdictTooBig {
			if proto != header.ProtoUDP || q.l4-header.EthernetLen+thl+min(mss, n)+header.IPv6TunnelOverhead <= mtu {
				t.Fatalf("%s: too big", name)
			}
			if len(in)-header.EthernetLen <= tunnelMTU6(tbl) {
				// Within 1280 bytes on a link below 1320: no answer helps.
				if first != nil {
					t.Fatalf("%s: answered a packet the client cannot make smaller", name)
				}
				continue
			}
			checkPacketTooBig6(t, first, in, uint32(tunnelMTU6(tbl)))
			continue
		}
		if v != VerdictForward {
			t.Fatalf("%s: verdict %v", name, v)
		}
		segs := append([][]byte{first}, w.extra...)
		var payload []byte
		for j, s := range segs {
			if len(s)-header.EthernetLen > mtu {
				t.Fatalf("%s: segment %d of %d bytes", name, j, len(s)-header.EthernetLen)
			}
			inner := verifyTunnel6(t, s)
			payload = append(payload, inner[q.l4-header.EthernetLen+thl:]...)
		}
		if !bytes.Equal(payload, in[q.l4+thl:]) {
			t.Fatalf("%s: the segments' payloads differ from the super-frame's", name)
		}
	}
}

// TestTUN6OuterFragments: on a link whose MTU is below 1320, a client packet
// of at most 1280 bytes that does not fit with the outer header is sent in
// outer fragments (RFC 2473 section 7.1): each within the MTU, an outer
// header to the real with next header 44, a fragment header naming 41 with
// one identification, offsets in 8-byte units, M on all but the last; put
// back together they are the client's packet, byte for byte. Nothing is
// answered, the fragments are counted, and the next packet gets another
// identification. No allocation once the spare buffers have grown.
func TestTUN6OuterFragments(t *testing.T) {
	for _, tc := range []struct {
		proto     uint8
		mtu, size int
	}{{header.ProtoUDP, 1300, 1280}, {header.ProtoTCP, 1280, 1280}, {header.ProtoUDP, 1300, 1261}} {
		name := fmt.Sprintf("%s mtu %d size %d", protoName(tc.proto), tc.mtu, tc.size)
		tbl := testTable6(ForwardTUN, tc.proto)
		tbl.MTU = tc.mtu
		w := worker6(tbl, 1024)
		p := client6(tc.proto)
		p.syn = true
		hl := header.IPv6MinLen + header.TCPMinLen
		if tc.proto == header.ProtoUDP {
			hl = header.IPv6MinLen + header.UDPLen
		}
		p.payload = make([]byte, tc.size-hl)
		for i := range p.payload {
			p.payload[i] = byte(i * 7)
		}
		in := p.bytes(t)
		var ids []uint32
		for round := range 2 {
			first, _, v := send(t, w, tbl, in, header.Offload{})
			if v != VerdictForward {
				t.Fatalf("%s: verdict %v, want forward", name, v)
			}
			frags := append([][]byte{first}, w.extra...)
			if len(frags) != 2 {
				t.Fatalf("%s: %d fragments, want 2", name, len(frags))
			}
			var whole []byte
			for i, f := range frags {
				if len(f)-header.EthernetLen > tc.mtu {
					t.Fatalf("%s: fragment %d is %d bytes, over the MTU", name, i, len(f)-header.EthernetLen)
				}
				if eth := header.Ethernet(f); eth.Source() != macDir || eth.Destination() != macRS1 || eth.Type() != header.EtherTypeIPv6 {
					t.Fatalf("%s: fragment %d: Ethernet %x -> %x type %#x", name, i, eth.Source(), eth.Destination(), eth.Type())
				}
				outer := header.IPv6(f[header.EthernetLen:])
				if !outer.IsValid(len(outer)) || len(outer) != header.IPv6MinLen+int(outer.PayloadLength()) || outer.NextHeader() != header.ProtoIPv6Frag ||
					outer.Source() != ipDir6.As16() || outer.Destination() != ipRS16.As16() || outer.HopLimit() != tunnelTTL {
					t.Fatalf("%s: fragment %d: bad outer header:\n%s", name, i, hex.Dump(f))
				}
				x, ok := outer.WalkExtensions()
				if !ok || !x.Fragment || x.FragNext != header.ProtoIPv6 || int(x.FragOffset) != len(whole) || x.MoreFragments != (i == 0) {
					t.Fatalf("%s: fragment %d: %+v (ok %v), want offset %d", name, i, x, ok, len(whole))
				}
				if i == 0 && len(outer[x.Offset:])%8 != 0 {
					t.Fatalf("%s: the first fragment's piece is %d bytes, not a multiple of 8", name, len(outer[x.Offset:]))
				}
				if i == 0 {
					ids = append(ids, x.FragID)
				} else if x.FragID != ids[round] {
					t.Fatalf("%s: fragment ids %d and %d", name, ids[round], x.FragID)
				}
				// A later fragment's walk stops at its fragment header.
				whole = append(whole, outer[header.IPv6MinLen+8:]...)
			}
			if !bytes.Equal(whole, in[header.EthernetLen:]) {
				t.Fatalf("%s: reassembled %d bytes differ from the client's %d", name, len(whole), len(in)-header.EthernetLen)
			}
			w.resetSpare()
		}
		if ids[0] == ids[1] {
			t.Errorf("%s: two packets share the identification %d", name, ids[0])
		}
		if w.C.ICMPSent.Load() != 0 || w.C.OuterFragments.Load() != 2 {
			t.Errorf("%s: ICMPSent %d, OuterFragments %d; want 0 and 2", name, w.C.ICMPSent.Load(), w.C.OuterFragments.Load())
		}
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		if n := testing.AllocsPerRun(100, func() {
			copy(buf[Headroom:], in)
			if _, v := w.processOffload(tbl, buf, len(in), header.Offload{}, icmp, 2); v != VerdictForward {
				t.Fatalf("verdict %v", v)
			}
			w.resetSpare()
		}); n != 0 {
			t.Errorf("%s: %v allocations per packet", name, n)
		}
	}
}
