package dataplane

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

// The IPv6 golden-packet fixtures: the test topology with ULA prefixes, on
// the same director and MACs as the IPv4 ones.
var (
	ipClient6 = netip.MustParseAddr("fd00:10::2")
	ipVIP6    = netip.MustParseAddr("fd00:20::100")
	ipRS16    = netip.MustParseAddr("fd00:20::11")
	ipRS26    = netip.MustParseAddr("fd00:20::12")
	ipDir6    = netip.MustParseAddr("fd00:20::2")
)

// testTable6 is testTable(f, proto) with an IPv6 service beside its IPv4
// one: VIP6:80 with one real, ID 1, RS1's IPv6 address, in forwarding
// method f6 (natPort for NAT). The director's IPv6 address, the outer
// source of TUN, is ipDir6.
func testTable6(f6 Forward, proto uint8) *Table {
	tbl := testTable(ForwardDR, proto)
	tbl.Addr6 = ipDir6.As16()
	rport := uint16(vport)
	if f6 == ForwardNAT {
		rport = natPort
	}
	r := Real{ID: 1, Addr6: ipRS16.As16(), Port: rport, Forward: f6, MAC: macRS1, Ready: true,
		Counters: new(schedule.Counters), Stats: new(RealStats)}
	tbl.Reals = append(tbl.Reals, r)
	addService6(tbl, proto, vport, "rr", []uint32{1})
	return tbl
}

// addService6 adds the IPv6 service VIP6:port with reals ids to tbl.
func addService6(tbl *Table, proto uint8, port uint16, sched string, ids []uint32) *Service {
	var dests []schedule.Dest
	for _, id := range ids {
		dests = append(dests, schedule.Dest{Weight: 1, Counters: tbl.Reals[id].Counters})
	}
	s, err := schedule.New(sched, dests, schedule.Options{})
	if err != nil {
		panic(err)
	}
	svc := &Service{Proto: proto, VIP6: ipVIP6.As16(), Port: port, Reals: ids, Dests: dests, Sched: s}
	if tbl.Services6 == nil {
		tbl.Services6 = map[ServiceKey6]*Service{}
	}
	tbl.Services6[ServiceKey6{Proto: proto, VIP: ipVIP6.As16(), Port: port}] = svc
	return svc
}

// pkt6 describes an IPv6 frame for the independent encoder (gopacket).
type pkt6 struct {
	srcMAC, dstMAC     [6]byte
	src, dst           netip.Addr
	sport, dport       uint16
	proto              uint8 // header.ProtoTCP or ProtoUDP
	syn, ack, rst, fin bool
	payload            []byte
	hbh, dstOpts       bool   // a hop-by-hop (router alert) and a destination options header
	frag               bool   // a fragment header (offset fragOffset, more fragments unless lastFragment)
	fragOffset         uint16 // in 8-byte units
	lastFragment       bool
	routing            uint8 // > 0: a routing header with this many segments left
	truncate           int   // > 0: claim a longer payload than the frame has
}

func (p pkt6) bytes(tb testing.TB) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: p.srcMAC[:], DstMAC: p.dstMAC[:], EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, TrafficClass: 0x20, FlowLabel: 0xbeef, HopLimit: 63, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice()}
	ls := []gopacket.SerializableLayer{eth, ip}
	// The chain, front to back; each header's next header is the next
	// layer's protocol.
	var chain []layers.IPProtocol
	if p.dstOpts {
		chain = append(chain, layers.IPProtocolIPv6Destination)
	}
	if p.routing > 0 {
		chain = append(chain, layers.IPProtocolIPv6Routing)
	}
	if p.frag {
		chain = append(chain, layers.IPProtocolIPv6Fragment)
	}
	l4proto := layers.IPProtocolTCP
	if p.proto == header.ProtoUDP {
		l4proto = layers.IPProtocolUDP
	}
	chain = append(chain, l4proto)
	ip.NextHeader = chain[0]
	if p.hbh {
		h := &layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{
			{OptionType: 5, OptionLength: 2, OptionData: []byte{0, 0}}, // router alert
			{OptionType: 1, OptionLength: 0},                           // PadN to 8 bytes
		}}
		h.NextHeader = chain[0]
		ip.HopByHop = h
	}
	for i, c := range chain[:len(chain)-1] {
		next := chain[i+1]
		switch c {
		case layers.IPProtocolIPv6Destination:
			d := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{
				{OptionType: 0x1e, OptionLength: 4, OptionData: []byte{1, 2, 3, 4}},
			}}
			d.NextHeader = next
			ls = append(ls, d)
		case layers.IPProtocolIPv6Routing:
			// Type 4 (segment routing) with one segment: RFC 8754.
			r := make([]byte, 24)
			r[0], r[1], r[2], r[3] = byte(next), 2, 4, p.routing
			ls = append(ls, gopacket.Payload(r))
		case layers.IPProtocolIPv6Fragment:
			ls = append(ls, &layers.IPv6Fragment{NextHeader: next, FragmentOffset: p.fragOffset, MoreFragments: !p.lastFragment, Identification: 42})
		}
	}
	if p.proto == header.ProtoUDP {
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		u.SetNetworkLayerForChecksum(ip)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), SYN: p.syn, ACK: p.ack, RST: p.rst, FIN: p.fin,
			Seq: 1000, Ack: 2000, Window: 65535, DataOffset: 5}
		tc.SetNetworkLayerForChecksum(ip)
		ls = append(ls, tc)
	}
	ls = append(ls, gopacket.Payload(p.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	if p.truncate > 0 {
		v := header.IPv6(b[header.EthernetLen:])
		v.SetPayloadLength(v.PayloadLength() + uint16(p.truncate))
	}
	return b
}

// client6 is an IPv6 client packet arriving at the director for VIP6:80.
func client6(proto uint8) pkt6 {
	return pkt6{srcMAC: macRouter, dstMAC: macDir, src: ipClient6, dst: ipVIP6, sport: cport, dport: vport, proto: proto,
		payload: []byte("hello, real server")}
}

// reply6 is a NAT real server's IPv6 reply to client6.
func reply6(proto uint8) pkt6 {
	return pkt6{srcMAC: macRS1, dstMAC: macDir, src: ipRS16, dst: ipClient6, sport: natPort, dport: cport, proto: proto,
		syn: true, ack: true, payload: []byte("hello, client")}
}

// verify6 decodes an IPv6 frame with gopacket and fails on a decoding
// error or a wrong transport checksum: the oracle under every golden
// output, so that an expected frame cannot be wrong in the same way as the
// code.
func verify6(t *testing.T, b []byte) {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	// An error past the transport layer is gopacket guessing an
	// application protocol from a port (1000 is "APSP" to it): not ours.
	if el := p.ErrorLayer(); el != nil && p.TransportLayer() == nil {
		t.Fatalf("gopacket: %v\n%s", el.Error(), hex.Dump(b))
	}
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip == nil {
		t.Fatalf("not IPv6:\n%s", hex.Dump(b))
	}
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(ip)
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(ip)
		}
	}
	err, mm := p.VerifyChecksums()
	if err != nil || len(mm) != 0 {
		t.Fatalf("gopacket checksums: %v %+v\n%s", err, mm, hex.Dump(b))
	}
}

func protoName(proto uint8) string {
	return map[uint8]string{header.ProtoTCP: "tcp", header.ProtoUDP: "udp"}[proto]
}

func TestGoldenDR6(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		t.Run(protoName(proto), func(t *testing.T) {
			tbl := testTable6(ForwardDR, proto)
			in := client6(proto)
			in.syn = true
			out := in
			out.srcMAC, out.dstMAC = macDir, macRS1
			next := client6(proto)
			next.ack = true
			wantNext := next
			wantNext.srcMAC, wantNext.dstMAC = macDir, macRS1
			verify6(t, out.bytes(t))
			w := runSteps(t, tbl, []step{
				{name: "DR request", in: in.bytes(t), verdict: VerdictForward, out: out.bytes(t)},
				{name: "DR next packet", in: next.bytes(t), verdict: VerdictForward, out: wantNext.bytes(t)},
			})
			r := tbl.Reals[1]
			if c, in := r.Stats.Conns.Load(), r.Stats.InPkts.Load(); c != 1 || in != 2 {
				t.Errorf("real conns %d in %d, want 1 2", c, in)
			}
			if tbl.Reals[0].Stats.Conns.Load() != 0 {
				t.Error("the IPv4 service's real got the IPv6 connection")
			}
			// SYN_RECV, then ESTABLISHED (input only): active; UDP inactive.
			wantActive, wantInactive := int64(1), int64(0)
			if proto == header.ProtoUDP {
				wantActive, wantInactive = 0, 1
			}
			if a, i := r.Counters.Active.Load(), r.Counters.Inactive.Load(); a != wantActive || i != wantInactive {
				t.Errorf("real active %d inactive %d, want %d %d", a, i, wantActive, wantInactive)
			}
			if w.shard.Len() != 0 || w.shard6.Load().Len() != 1 || w.conns() != 1 {
				t.Errorf("shards hold %d IPv4 and %d IPv6 connections, want 0 and 1", w.shard.Len(), w.shard6.Load().Len())
			}
		})
	}
}

func TestGoldenNAT6(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		t.Run(protoName(proto), func(t *testing.T) {
			tbl := testTable6(ForwardNAT, proto)
			req := client6(proto)
			req.syn = true
			wantReq := req
			wantReq.srcMAC, wantReq.dstMAC, wantReq.dst, wantReq.dport = macDir, macRS1, ipRS16, natPort

			reply := reply6(proto)
			wantReply := reply
			wantReply.srcMAC, wantReply.dstMAC, wantReply.src, wantReply.sport = macDir, macRouter, ipVIP6, vport

			ack := client6(proto)
			ack.ack = true
			wantAck := ack
			wantAck.srcMAC, wantAck.dstMAC, wantAck.dst, wantAck.dport = macDir, macRS1, ipRS16, natPort

			for _, b := range []pkt6{wantReq, wantReply, wantAck} {
				verify6(t, b.bytes(t))
			}
			runSteps(t, tbl, []step{
				{name: "NAT request", in: req.bytes(t), verdict: VerdictForward, out: wantReq.bytes(t)},
				{name: "NAT reply", in: reply.bytes(t), verdict: VerdictForward, out: wantReply.bytes(t)},
				{name: "NAT ack", in: ack.bytes(t), verdict: VerdictForward, out: wantAck.bytes(t)},
			})
			st := tbl.Reals[1].Stats
			if st.InPkts.Load() != 2 || st.OutPkts.Load() != 1 || st.Conns.Load() != 1 {
				t.Errorf("real stats in %d out %d conns %d, want 2 1 1", st.InPkts.Load(), st.OutPkts.Load(), st.Conns.Load())
			}
			if want := uint64(len(req.bytes(t)) + len(ack.bytes(t)) - 2*header.EthernetLen); st.InBytes.Load() != want {
				t.Errorf("real in bytes %d, want %d", st.InBytes.Load(), want)
			}
			if proto == header.ProtoTCP {
				c := tbl.Reals[1].Counters
				if c.Active.Load() != 1 || c.Inactive.Load() != 0 {
					t.Errorf("after the handshake: active %d inactive %d, want 1 0", c.Active.Load(), c.Inactive.Load())
				}
			}
		})
	}
}

// TestGoldenNAT6ExtensionHeaders: a request with hop-by-hop and
// destination options headers keeps them, byte for byte, and its
// transport header behind them is rewritten; so is one behind a routing
// header with no segments left, and an atomic fragment (a fragment header
// with offset 0 and no more fragments is a whole packet, RFC 6946).
func TestGoldenNAT6ExtensionHeaders(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		for _, tc := range []struct {
			name string
			set  func(*pkt6)
		}{
			{"hop-by-hop and destination options", func(p *pkt6) { p.hbh, p.dstOpts = true, true }},
			{"destination options", func(p *pkt6) { p.dstOpts = true }},
		} {
			t.Run(protoName(proto)+"/"+tc.name, func(t *testing.T) {
				tbl := testTable6(ForwardNAT, proto)
				req := client6(proto)
				req.syn = true
				tc.set(&req)
				want := req
				want.srcMAC, want.dstMAC, want.dst, want.dport = macDir, macRS1, ipRS16, natPort
				verify6(t, want.bytes(t))
				reply := reply6(proto)
				tc.set(&reply)
				wantReply := reply
				wantReply.srcMAC, wantReply.dstMAC, wantReply.src, wantReply.sport = macDir, macRouter, ipVIP6, vport
				verify6(t, wantReply.bytes(t))
				runSteps(t, tbl, []step{
					{name: "request", in: req.bytes(t), verdict: VerdictForward, out: want.bytes(t)},
					{name: "reply", in: reply.bytes(t), verdict: VerdictForward, out: wantReply.bytes(t)},
				})
			})
		}
	}
	// An atomic fragment is forwarded as the whole packet it is.
	atomic := client6(header.ProtoUDP)
	atomic.frag, atomic.lastFragment = true, true
	wantAtomic := atomic
	wantAtomic.srcMAC, wantAtomic.dstMAC, wantAtomic.dst, wantAtomic.dport = macDir, macRS1, ipRS16, natPort
	runSteps(t, testTable6(ForwardNAT, header.ProtoUDP), []step{
		{name: "atomic fragment", in: atomic.bytes(t), verdict: VerdictForward, out: wantAtomic.bytes(t)},
	})

	// A routing header with no segments left: built here, as gopacket
	// encodes only type 0 routing headers.
	req := client6(header.ProtoUDP)
	req.routing = 1
	in := req.bytes(t)
	in[header.EthernetLen+header.IPv6MinLen+3] = 0 // segments left 0
	want := append([]byte(nil), in...)
	tbl := testTable6(ForwardNAT, header.ProtoUDP)
	var q parsed6
	if v := parse6(want, &q); v != 0 || q.l4 != header.EthernetLen+header.IPv6MinLen+24 {
		t.Fatalf("parse6 of a routing header: verdict %v, transport at %d", v, q.l4)
	}
	header.Ethernet(want).SetSource(macDir)
	header.Ethernet(want).SetDestination(macRS1)
	header.IPv6(want[header.EthernetLen:]).SetDestination(ipRS16.As16())
	u := header.UDP(want[q.l4:])
	u.SetDestinationPort(natPort)
	u.SetChecksum(0)
	u.SetChecksum(u.CalculateChecksum6(ipClient6.As16(), ipRS16.As16()))
	runSteps(t, tbl, []step{{name: "routing, no segments left", in: in, verdict: VerdictForward, out: want}})
}

// TestGoldenDrops6: what the IPv6 path does not forward, with the verdict
// it is counted under; all of it stays with the kernel.
func TestGoldenDrops6(t *testing.T) {
	ack := client6(header.ProtoTCP)
	ack.ack = true
	other := client6(header.ProtoTCP)
	other.syn = true
	other.dport = 81
	first := client6(header.ProtoUDP)
	first.frag = true
	later := first
	later.fragOffset = 185
	routed := client6(header.ProtoUDP)
	routed.routing = 1
	trunc := client6(header.ProtoTCP)
	trunc.syn = true
	trunc.truncate = 8
	hbhLate := client6(header.ProtoUDP)
	hbhLate.dstOpts = true
	hbhLateB := hbhLate.bytes(t)
	hbhLateB[header.EthernetLen+header.IPv6MinLen] = header.ProtoIPv6HopByHop // dest opts followed by hop-by-hop
	icmp := gopacketFrame(t, &layers.Ethernet{SrcMAC: macRouter[:], DstMAC: macDir[:], EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipClient6.AsSlice(), DstIP: ipVIP6.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 1})
	runt := make([]byte, 40)
	header.Ethernet(runt).SetType(header.EtherTypeIPv6)
	v4 := make([]byte, 60)
	copy(v4[header.EthernetLen:], client6(header.ProtoUDP).bytes(t)[header.EthernetLen:])
	header.Ethernet(v4).SetType(header.EtherTypeIPv6)
	v4[header.EthernetLen] = 0x45 // an IPv4 header behind the IPv6 EtherType
	runSteps(t, testTable6(ForwardNAT, header.ProtoTCP), []step{
		{name: "ACK without connection", in: ack.bytes(t), verdict: VerdictNoConn},
		{name: "no service on port 81", in: other.bytes(t), verdict: VerdictNoService},
		{name: "first fragment of a datagram to no service", in: first.bytes(t), verdict: VerdictNoService},
		{name: "later fragment without its first: held (fragment6_test.go)", in: later.bytes(t), verdict: verdictHeld},
		{name: "routing header with segments left", in: routed.bytes(t), verdict: VerdictIPv6Unparsed},
		{name: "hop-by-hop after destination options", in: hbhLateB, verdict: VerdictIPv6Unparsed},
		{name: "payload length beyond frame", in: trunc.bytes(t), verdict: VerdictMalformed},
		{name: "ICMPv6 echo to the VIP", in: icmp, verdict: VerdictNoService},
		{name: "runt", in: runt, verdict: VerdictMalformed},
		{name: "version 4 behind 0x86DD", in: v4, verdict: VerdictMalformed},
	})
	// A worker that never saw a table with IPv6 services has no IPv6
	// shard and leaves IPv6 alone, as before it had an IPv6 path.
	syn := client6(header.ProtoTCP)
	syn.syn = true
	w := runSteps(t, testTable(ForwardNAT, header.ProtoTCP), []step{
		{name: "IPv6 never enabled", in: syn.bytes(t), verdict: VerdictNotIPv4},
	})
	if w.shard6.Load() != nil {
		t.Error("an IPv4-only worker made an IPv6 shard")
	}
	// Once enabled, a nil table (no services) is no_service for IPv6 too.
	w.enableIPv6()
	buf := make([]byte, Headroom+MaxFrame)
	in := syn.bytes(t)
	copy(buf[Headroom:], in)
	if _, v := w.process(nil, buf, len(in), make([]byte, 128), 1); v != VerdictNoService {
		t.Errorf("nil table: verdict %v, want no_service", v)
	}
}

// gopacketFrame serializes ls, checksums computed over the IPv6 layer.
func gopacketFrame(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var ip *layers.IPv6
	for _, l := range ls {
		switch l := l.(type) {
		case *layers.IPv6:
			ip = l
		case *layers.ICMPv6:
			l.SetNetworkLayerForChecksum(ip)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// partial6 is partial for an IPv6 frame: the checksum field gets the
// uncomplemented IPv6 pseudo-header sum.
func partial6(t *testing.T, frame []byte) header.Offload {
	t.Helper()
	ip := header.IPv6(frame[header.EthernetLen:])
	x, ok := ip.WalkExtensions()
	if !ok {
		t.Fatal("partial6: extension headers")
	}
	l4 := ip[x.Offset : header.IPv6MinLen+int(ip.PayloadLength())]
	o := header.Offload{Flags: header.OffloadNeedsCsum, CsumStart: uint16(header.EthernetLen + x.Offset)}
	ps := header.PseudoHeaderChecksum6(x.Proto, ip.Source(), ip.Destination(), uint32(len(l4)))
	switch x.Proto {
	case header.ProtoTCP:
		o.CsumOffset = header.TCPChecksumOffset
		header.TCP(l4).SetChecksum(ps)
	case header.ProtoUDP:
		o.CsumOffset = header.UDPChecksumOffset
		header.UDP(l4).SetChecksum(ps)
	default:
		t.Fatalf("partial6: protocol %d", x.Proto)
	}
	return o
}

// worker6 is a worker alone on tbl, with its IPv6 shard.
func worker6(tbl *Table, capacity int) *Worker {
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, nil, &ptr, capacity)
	w.enableIPv6()
	return w
}

// TestPartialChecksum6 runs DR and NAT requests and NAT replies (with and
// without extension headers) twice: with a complete checksum, and with the
// partial one the kernel hands over with offloads on. The partial frame
// sent, its checksum finished as the kernel would, must be the complete
// one's byte for byte, and the offsets are passed on.
func TestPartialChecksum6(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		for _, f := range []Forward{ForwardDR, ForwardNAT} {
			for _, ext := range []bool{false, true} {
				name := f.String() + "/" + protoName(proto)
				if ext {
					name += "/extension headers"
				}
				t.Run(name, func(t *testing.T) {
					full, part := testTable6(f, proto), testTable6(f, proto)
					wf, wp := worker6(full, 1024), worker6(part, 1024)
					req := client6(proto)
					req.syn = true
					req.hbh, req.dstOpts = ext, ext
					req.payload = bytes.Repeat([]byte("0123456789"), 50)
					frames := [][]byte{req.bytes(t)}
					if f == ForwardNAT {
						r := reply6(proto)
						r.dstOpts = ext
						frames = append(frames, r.bytes(t))
					}
					for i, in := range frames {
						want, wantOff, v := send(t, wf, full, in, header.Offload{})
						if v != VerdictForward || wantOff != (header.Offload{}) {
							t.Fatalf("frame %d with a complete checksum: verdict %v, offload %+v", i, v, wantOff)
						}
						verify6(t, want)
						p := append([]byte(nil), in...)
						off := partial6(t, p)
						got, gotOff, v := send(t, wp, part, p, off)
						if v != VerdictForward {
							t.Fatalf("frame %d with a partial checksum: verdict %v", i, v)
						}
						if gotOff.Flags != header.OffloadNeedsCsum || gotOff.CsumStart != off.CsumStart || gotOff.CsumOffset != off.CsumOffset {
							t.Fatalf("frame %d: offload %+v, want the partial checksum at %d+%d passed on", i, gotOff, off.CsumStart, off.CsumOffset)
						}
						hl := int(off.CsumStart) + header.UDPLen
						if proto == header.ProtoTCP {
							hl = int(off.CsumStart) + header.TCPMinLen
						}
						if int(gotOff.HdrLen) != hl {
							t.Errorf("frame %d: HdrLen %d, want %d", i, gotOff.HdrLen, hl)
						}
						if done := finish6(t, got, gotOff); !bytes.Equal(done, want) {
							t.Fatalf("frame %d: sent with a partial checksum and finished:\n%s\nwith a complete one:\n%s\n%s", i, hex.Dump(done), hex.Dump(want), diff(done, want))
						}
					}
				})
			}
		}
	}
}

// finish6 completes out's partial checksum as the kernel would and returns
// a copy.
func finish6(t *testing.T, out []byte, off header.Offload) []byte {
	t.Helper()
	b := append([]byte(nil), out...)
	if !header.FinishChecksum(b, &off, off.CsumOffset == header.UDPChecksumOffset) {
		t.Fatalf("partial checksum offsets %d+%d do not fit a %d-byte frame", off.CsumStart, off.CsumOffset, len(b))
	}
	return b
}

// TestOffloads6: a GSO super-frame passes through NAT with its
// segmentation request intact (TCPv6, UDP L4), and offload metadata that
// does not fit the frame is counted rather than forwarded.
func TestOffloads6(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proto   uint8
		off     func(o header.Offload) header.Offload
		verdict Verdict
	}{
		{"TCPv6 GSO", header.ProtoTCP, func(o header.Offload) header.Offload {
			o.GSOType, o.GSOSize = header.GSOTCPv6, 1400
			return o
		}, VerdictForward},
		{"UDP L4 GSO", header.ProtoUDP, func(o header.Offload) header.Offload {
			o.GSOType, o.GSOSize = header.GSOUDPL4, 1400
			return o
		}, VerdictForward},
		{"TCPv4 GSO type on IPv6", header.ProtoTCP, func(o header.Offload) header.Offload {
			o.GSOType, o.GSOSize = header.GSOTCPv4, 1400
			return o
		}, VerdictOffload},
		{"GSO without a partial checksum", header.ProtoTCP, func(o header.Offload) header.Offload {
			return header.Offload{GSOType: header.GSOTCPv6, GSOSize: 1400}
		}, VerdictOffload},
		{"checksum start before the extension headers' end", header.ProtoTCP, func(o header.Offload) header.Offload {
			o.CsumStart -= 8
			return o
		}, VerdictOffload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := testTable6(ForwardNAT, tc.proto)
			w := worker6(tbl, 1024)
			req := client6(tc.proto)
			req.syn = true
			req.dstOpts = true
			req.payload = bytes.Repeat([]byte("x"), 5000)
			in := req.bytes(t)
			off := tc.off(partial6(t, in))
			out, gotOff, v := send(t, w, tbl, in, off)
			if v != tc.verdict {
				t.Fatalf("verdict %v, want %v", v, tc.verdict)
			}
			if v != VerdictForward {
				return
			}
			if gotOff.GSOType != off.GSOType || gotOff.GSOSize != off.GSOSize || gotOff.CsumStart != off.CsumStart {
				t.Errorf("offload %+v, want %+v passed on", gotOff, off)
			}
			want := req
			want.srcMAC, want.dstMAC, want.dst, want.dport = macDir, macRS1, ipRS16, natPort
			if done := finish6(t, out, gotOff); !bytes.Equal(done, want.bytes(t)) {
				t.Fatalf("finished frame differs: %s", diff(done, want.bytes(t)))
			}
		})
	}
}

// TestDualStack: one worker forwards IPv4 and IPv6 connections of the
// same services side by side, each in its shard, and expiry sweeps both
// and gives back their reals' counts.
func TestDualStack(t *testing.T) {
	tbl := testTable6(ForwardNAT, header.ProtoUDP)
	w := worker6(tbl, 1024)
	for i := range 10 {
		p4 := client(header.ProtoUDP)
		p4.sport = uint16(20000 + i)
		p6 := client6(header.ProtoUDP)
		p6.sport = uint16(20000 + i)
		for _, in := range [][]byte{p4.bytes(t), p6.bytes(t)} {
			if _, _, v := send(t, w, tbl, in, header.Offload{}); v != VerdictForward {
				t.Fatalf("flow %d: verdict %v", i, v)
			}
		}
	}
	if w.shard.Len() != 10 || w.shard6.Load().Len() != 10 || w.conns() != 20 {
		t.Fatalf("shards hold %d and %d connections, want 10 and 10", w.shard.Len(), w.shard6.Load().Len())
	}
	if a, b := tbl.Reals[0].Counters.Inactive.Load(), tbl.Reals[1].Counters.Inactive.Load(); a != 10 || b != 10 {
		t.Fatalf("inactive counts %d (IPv4 real) and %d (IPv6 real), want 10 and 10", a, b)
	}
	w.cur = tbl
	w.expire(1+int64(6*time.Minute), true)
	if w.conns() != 0 || w.C.ExpiredConns.Load() != 20 || w.C.Conns.Load() != 0 {
		t.Fatalf("after the UDP timeout: %d connections, %d expired", w.conns(), w.C.ExpiredConns.Load())
	}
	if a, b := tbl.Reals[0].Counters.Inactive.Load(), tbl.Reals[1].Counters.Inactive.Load(); a != 0 || b != 0 {
		t.Fatalf("after expiry: inactive counts %d and %d, want 0", a, b)
	}
}

// TestPersistence6: with persistence and a /64 netmask, clients of one /64
// stay on one real and the template is released with their connections.
func TestPersistence6(t *testing.T) {
	tbl := testTable(ForwardDR, header.ProtoUDP)
	for i, a := range []netip.Addr{ipRS16, ipRS26} {
		tbl.Reals = append(tbl.Reals, Real{ID: uint32(1 + i), Addr6: a.As16(), Port: vport, Forward: ForwardDR, MAC: macRS1, Ready: true,
			Counters: new(schedule.Counters), Stats: new(RealStats)})
	}
	svc := addService6(tbl, header.ProtoUDP, vport, "rr", []uint32{1, 2})
	svc.Persist, svc.PersistBits = time.Minute, 64
	w := worker6(tbl, 1024)
	for i := range 6 {
		p := client6(header.ProtoUDP)
		p.src = netip.MustParseAddr("fd00:10::" + string(rune('a'+i)))
		p.sport = uint16(30000 + i)
		if _, _, v := send(t, w, tbl, p.bytes(t), header.Offload{}); v != VerdictForward {
			t.Fatalf("client %d: verdict %v", i, v)
		}
	}
	c1, c2 := tbl.Reals[1].Stats.Conns.Load(), tbl.Reals[2].Stats.Conns.Load()
	if c1+c2 != 6 || (c1 != 0 && c2 != 0) {
		t.Fatalf("one /64 spread over reals: %d and %d connections", c1, c2)
	}
	other := client6(header.ProtoUDP)
	other.src = netip.MustParseAddr("fd00:11::1")
	if _, _, v := send(t, w, tbl, other.bytes(t), header.Offload{}); v != VerdictForward {
		t.Fatalf("other /64: verdict %v", v)
	}
	n1, n2 := tbl.Reals[1].Stats.Conns.Load(), tbl.Reals[2].Stats.Conns.Load()
	wantN1, wantN2 := c1, c2+1 // the other real
	if c2 == 6 {
		wantN1, wantN2 = c1+1, c2
	}
	if n1 != wantN1 || n2 != wantN2 {
		t.Fatalf("a second /64 did not go to the other real under rr: %d and %d after %d and %d", n1, n2, c1, c2)
	}
	if w.templates.Len() != 2 {
		t.Fatalf("%d templates, want 2", w.templates.Len())
	}
	w.cur = tbl
	w.expire(1+int64(6*time.Minute), true)
	w.templates.Expire(1+int64(8*time.Minute), 64, w.tplGoneFn)
	if w.templates.Len() != 0 || w.conns() != 0 {
		t.Fatalf("after expiry: %d templates, %d connections", w.templates.Len(), w.conns())
	}
}

// TestDataplaneRunIPv6 drives the whole loop: Publish gives the workers
// their IPv6 shards, and a batch of IPv4 and IPv6 frames comes out
// forwarded, the IPv6 ones in NAT.
func TestDataplaneRunIPv6(t *testing.T) {
	link := &fakeLink{}
	d, err := New([]Link{link}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	d.Publish(testTable6(ForwardNAT, header.ProtoUDP))
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- d.Run(stop) }()
	var frames [][]byte
	for i := range 20 {
		p := client6(header.ProtoUDP)
		p.sport = uint16(1000 + i)
		frames = append(frames, p.bytes(t), client(header.ProtoUDP).bytes(t))
	}
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
	if c.Verdicts["forward"] != uint64(len(frames)) || c.NewConns != 21 || c.Conns != 21 {
		t.Fatalf("forwarded %d of %d, %d new connections, %d live, want 21 and 21 (verdicts %v)", c.Verdicts["forward"], len(frames), c.NewConns, c.Conns, c.Verdicts)
	}
	n6 := 0
	for _, out := range link.sent() {
		if header.Ethernet(out).Type() != header.EtherTypeIPv6 {
			continue
		}
		n6++
		verify6(t, out)
		if header.IPv6(out[header.EthernetLen:]).Destination() != ipRS16.As16() {
			t.Fatalf("IPv6 frame sent to %v", netip.AddrFrom16(header.IPv6(out[header.EthernetLen:]).Destination()))
		}
	}
	if n6 != 20 {
		t.Fatalf("%d IPv6 frames sent, want 20", n6)
	}
}

// TestConnectionsDump6: the running workers hand over copies of their IPv6
// connections, each once, beside the IPv4 ones; a dataplane that never had
// an IPv6 service has none to give.
func TestConnectionsDump6(t *testing.T) {
	links := []Link{&fakeLink{}, &fakeLink{}}
	d, err := New(links, 100000)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- d.Run(stop) }()
	defer func() {
		close(stop)
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if conns, err := d.Connections6(ctx, nil); err != nil || len(conns) != 0 {
		t.Fatalf("before any IPv6 service: %d connections, %v", len(conns), err)
	}
	d.Publish(testTable6(ForwardNAT, header.ProtoUDP))
	const flows = 6000 // more than one dump chunk per worker
	for i := range flows {
		p := client6(header.ProtoUDP)
		p.sport = uint16(1024 + i)
		links[i%2].(*fakeLink).push(p.bytes(t))
	}
	links[0].(*fakeLink).push(client(header.ProtoUDP).bytes(t))
	deadline := time.Now().Add(10 * time.Second)
	for d.Counters().Conns < flows+1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	conns, err := d.Connections6(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != flows {
		t.Fatalf("IPv6 dump has %d connections, want %d", len(conns), flows)
	}
	seen := map[uint16]bool{}
	for _, e := range conns {
		if seen[e.ClientPort] || e.VIP != ipVIP6.As16() || e.Real != ipRS16.As16() || e.RPort != natPort || e.Client != ipClient6.As16() {
			t.Fatalf("bad or repeated entry %+v", e)
		}
		seen[e.ClientPort] = true
	}
	if v4, err := d.Connections(ctx, nil); err != nil || len(v4) != 1 {
		t.Fatalf("IPv4 dump beside: %d connections, %v", len(v4), err)
	}
}

// modeCases6 are the IPv6 paths of the zero-allocation test and the
// benchmark.
var modeCases6 = []modeCase{
	{"DR6/tcp", ForwardDR, header.ProtoTCP, false},
	{"DR6/udp", ForwardDR, header.ProtoUDP, false},
	{"NAT6/tcp/in", ForwardNAT, header.ProtoTCP, false},
	{"NAT6/tcp/out", ForwardNAT, header.ProtoTCP, true},
	{"NAT6/udp/in", ForwardNAT, header.ProtoUDP, false},
	{"TUN6/tcp", ForwardTUN, header.ProtoTCP, false},
	{"TUN6/udp", ForwardTUN, header.ProtoUDP, false},
}

// established6 is established for an IPv6 connection: a worker with one
// connection of c and a frame of it in c's direction.
func established6(tb testing.TB, c modeCase) (*Worker, *Table, []byte) {
	tbl := testTable6(c.fwd, c.proto)
	w := worker6(tbl, 1<<16)
	syn := client6(c.proto)
	syn.syn = true
	b := syn.bytes(tb)
	buf := make([]byte, Headroom+MaxFrame)
	copy(buf[Headroom:], b)
	if _, v := w.process(tbl, buf, len(b), make([]byte, 128), 1); v != VerdictForward {
		tb.Fatalf("%s: setup verdict %v", c.name, v)
	}
	p := client6(c.proto)
	p.ack = true
	if c.reply {
		p = reply6(c.proto)
		p.syn = false
	}
	p.payload = make([]byte, 6)
	return w, tbl, p.bytes(tb)
}

// TestZeroAllocs6: an IPv6 packet of an established connection, with a
// complete or a partial checksum, and a new IPv6 connection cost no
// allocation.
func TestZeroAllocs6(t *testing.T) {
	for _, c := range modeCases6 {
		w, tbl, frame := established6(t, c)
		partialFrame := append([]byte(nil), frame...)
		off := partial6(t, partialFrame)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		for _, x := range []struct {
			in  []byte
			off header.Offload
		}{{frame, header.Offload{}}, {partialFrame, off}} {
			allocs := testing.AllocsPerRun(1000, func() {
				copy(buf[Headroom:], x.in)
				if _, v := w.processOffload(tbl, buf, len(x.in), x.off, icmp, 2); v != VerdictForward {
					t.Fatalf("%s: verdict %v", c.name, v)
				}
			})
			if allocs != 0 {
				t.Errorf("%s (offload %+v): %.1f allocations per packet, want 0", c.name, x.off, allocs)
			}
		}
	}
	for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardTUN} {
		tbl := testTable6(f, header.ProtoUDP)
		w := worker6(tbl, 1<<16)
		frame := client6(header.ProtoUDP).bytes(t)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		port := uint16(1)
		newConn := func() {
			copy(buf[Headroom:], frame)
			ip := header.IPv6(buf[Headroom+header.EthernetLen:])
			header.UDP(ip.Payload()).SetSourcePortWithChecksumUpdate(port)
			port++
			if _, v := w.process(tbl, buf, len(frame), icmp, 2); v != VerdictForward {
				t.Fatalf("%v: verdict %v", f, v)
			}
		}
		if allocs := testing.AllocsPerRun(500, newConn); allocs != 0 {
			t.Errorf("%v: %.1f allocations per new IPv6 connection, want 0", f, allocs)
		}
	}
}

// BenchmarkProcess6 is BenchmarkProcess for the IPv6 paths: an established
// flow's packet, connection lookup included.
func BenchmarkProcess6(b *testing.B) {
	for _, c := range modeCases6 {
		b.Run(c.name, func(b *testing.B) {
			w, tbl, frame := established6(b, c)
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
