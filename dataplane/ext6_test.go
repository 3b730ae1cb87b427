package dataplane

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// The IPv6 paths with extension headers in front of the transport or the
// fragment header, as the socket filter takes them
// (afpacket.ExtensionChains6): the headers travel with the packet,
// untouched, and the rewrites reach behind them. The transport checksum's
// pseudo-header has the addresses and the upper-layer length, not the
// extension headers (RFC 8200 section 8.1), so inserting one changes no
// checksum: the golden output of a frame with extension headers is the
// golden output without them, with the same headers inserted.

// withExt6 returns a copy of the IPv6 frame b with an 8-byte extension
// header of type typ (hop-by-hop or destination options, holding one PadN
// option) inserted right after the fixed header, in front of whatever was
// there (the transport header, a fragment header, another extension
// header).
func withExt6(t testing.TB, b []byte, typ uint8) []byte {
	t.Helper()
	ip := header.IPv6(b[header.EthernetLen:])
	if ip[0]>>4 != 6 {
		t.Fatalf("withExt6: not an IPv6 frame")
	}
	at := header.EthernetLen + header.IPv6MinLen
	out := append([]byte(nil), b[:at]...)
	out = append(out, ip.NextHeader(), 0, 1, 4, 0, 0, 0, 0)
	out = append(out, b[at:]...)
	nip := header.IPv6(out[header.EthernetLen:])
	nip[6] = typ
	nip.SetPayloadLength(ip.PayloadLength() + 8)
	return out
}

func withHBH6(t testing.TB, b []byte) []byte  { return withExt6(t, b, header.ProtoIPv6HopByHop) }
func withDOpt6(t testing.TB, b []byte) []byte { return withExt6(t, b, header.ProtoIPv6Opts) }

// withoutExt6 undoes withExt6: the frame without its first extension
// header.
func withoutExt6(t testing.TB, b []byte) []byte {
	t.Helper()
	at := header.EthernetLen + header.IPv6MinLen
	ip := header.IPv6(b[header.EthernetLen:])
	if nh := ip.NextHeader(); nh != header.ProtoIPv6HopByHop && nh != header.ProtoIPv6Opts || b[at+1] != 0 {
		t.Fatalf("withoutExt6: no 8-byte options header first")
	}
	out := append([]byte(nil), b[:at]...)
	out = append(out, b[at+8:]...)
	nip := header.IPv6(out[header.EthernetLen:])
	nip[6] = b[at]
	nip.SetPayloadLength(ip.PayloadLength() - 8)
	return out
}

// TestGoldenExtensionHeaders6: a TCP SYN with a destination options
// header and a UDP datagram with hop-by-hop and destination options, in
// every mode: DR changes MACs, NAT and FULLNAT rewrite addresses and
// ports behind the headers (and FULLNAT's sequence numbers), TUN
// encapsulates the whole packet, headers and all; the replies of NAT and
// FULLNAT carry their headers back.
func TestGoldenExtensionHeaders6(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardTUN, ForwardNAT, ForwardFullNAT} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			t.Run(f.String()+"/"+protoName(proto), func(t *testing.T) {
				ext := withDOpt6
				if proto == header.ProtoUDP {
					ext = func(t testing.TB, b []byte) []byte { return withHBH6(t, withDOpt6(t, b)) }
				}
				tbl := testTable6(f, proto)
				if f == ForwardFullNAT {
					tbl = fnTable6(proto)
				}
				req := client6(proto)
				req.syn = true
				in := ext(t, req.bytes(t))
				// The expected frame: without the headers, from the
				// test of the mode without them; then with them.
				want := req
				want.srcMAC, want.dstMAC = macDir, macRS1
				var reply, wantReply pkt6
				switch f {
				case ForwardNAT:
					want.dst, want.dport = ipRS16, natPort
					reply = reply6(proto)
					wantReply = reply
					wantReply.srcMAC, wantReply.dstMAC, wantReply.src, wantReply.sport = macDir, macRouter, ipVIP6, vport
				case ForwardFullNAT:
					want.src, want.sport, want.dst, want.dport = ipLocal6, portLo, ipRS16, natPort
					reply = reply6(proto)
					reply.dst, reply.dport = ipLocal6, portLo
					wantReply = reply
					wantReply.srcMAC, wantReply.dstMAC = macDir, macRouter
					wantReply.src, wantReply.sport, wantReply.dst, wantReply.dport = ipVIP6, vport, ipClient6, cport
				}
				wantB := want.bytes(t)
				var wantReplyB []byte
				if f == ForwardNAT || f == ForwardFullNAT {
					wantReplyB = wantReply.bytes(t)
				}
				if f == ForwardFullNAT && proto == header.ProtoTCP {
					isn, _ := fullnatClocks6(1, ipLocal6.As16(), portLo, ipRS16.As16(), natPort)
					d := isn - 1000
					tcp := tcpOf6(wantB)
					tcp.SetWord32WithChecksumUpdate(4, tcp.Word32(4)+d)
					tcp = tcpOf6(wantReplyB)
					tcp.SetWord32WithChecksumUpdate(8, tcp.Word32(8)-d)
				}
				wantB = ext(t, wantB)
				verify6(t, wantB)
				if f == ForwardTUN {
					// The inner packet whole (verify6 would check its
					// checksum against the outer header).
					wantB = tunnel6Frame(t, in)
				}
				steps := []step{{name: "request", in: in, verdict: VerdictForward, out: wantB}}
				if f == ForwardNAT || f == ForwardFullNAT {
					wantReplyB = withDOpt6(t, wantReplyB)
					verify6(t, wantReplyB)
					steps = append(steps, step{name: "reply", in: withDOpt6(t, reply.bytes(t)), verdict: VerdictForward, out: wantReplyB})
				}
				runSteps(t, tbl, steps)
				st := tbl.Reals[1].Stats
				if st.Conns.Load() != 1 || st.InPkts.Load() != 1 {
					t.Errorf("real: %d connections, %d packets in; want 1 and 1", st.Conns.Load(), st.InPkts.Load())
				}
			})
		}
	}
}

// TestGoldenFragmentsBehindHopByHop6: a UDP datagram of 3000 bytes in
// three fragments whose fragment header comes behind a hop-by-hop header
// (as a sender with IPV6_HOPOPTS fragments it: hop-by-hop is in the
// unfragmentable part, RFC 8200 section 4.5) goes out in every mode as
// the fragments without the header do, the header kept in each; TUN
// encapsulates each whole.
func TestGoldenFragmentsBehindHopByHop6(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardTUN, ForwardNAT, ForwardFullNAT} {
		t.Run(f.String(), func(t *testing.T) {
			tbl := testTable6(f, header.ProtoUDP)
			if f == ForwardFullNAT {
				tbl = fnTable6(header.ProtoUDP)
			}
			mtu := 1500 - 8
			if f == ForwardTUN {
				mtu -= 40 // room for the outer header
			}
			in := bigClient6(header.ProtoUDP)
			want := in
			want.srcMAC, want.dstMAC = macDir, macRS1
			switch f {
			case ForwardNAT:
				want.dst, want.dport = ipRS16, natPort
			case ForwardFullNAT:
				want.src, want.sport, want.dst, want.dport = ipLocal6, portLo, ipRS16, natPort
			}
			ins, wants := fragments6(t, in.bytes(t), mtu, 0xfeed07), fragments6(t, want.bytes(t), mtu, 0xfeed07)
			if len(ins) != 3 {
				t.Fatalf("%d fragments", len(ins))
			}
			var steps []step
			var outs [][]byte
			for i := range ins {
				in := withHBH6(t, ins[i])
				w := withHBH6(t, wants[i])
				if f == ForwardTUN {
					w = tunnel6Frame(t, in)
				}
				outs = append(outs, w)
				steps = append(steps, step{name: "fragment " + string(rune('0'+i)), in: in, verdict: VerdictForward, out: w})
			}
			if f != ForwardTUN {
				var stripped [][]byte
				for _, o := range outs {
					stripped = append(stripped, withoutExt6(t, o))
				}
				reassemble6(t, stripped)
			}
			runSteps(t, tbl, steps)
			st := tbl.Reals[1].Stats
			if st.Conns.Load() != 1 || st.InPkts.Load() != 3 {
				t.Errorf("real: %d connections, %d packets in; want 1 and 3", st.Conns.Load(), st.InPkts.Load())
			}
		})
	}
}

// TestExtensionHeadersUnparsed6: a frame the filter takes whose extension
// headers then do not hold (one that runs past the payload length: the
// filter reads the frame, not the payload length) gets the verdict
// ipv6_unparsed (which the worker's loop counts), is not forwarded and
// is no crash.
func TestExtensionHeadersUnparsed6(t *testing.T) {
	req := client6(header.ProtoTCP)
	req.syn = true
	long := withDOpt6(t, req.bytes(t))
	long[header.EthernetLen+header.IPv6MinLen+1] = 200 // 1608 bytes of options
	runSteps(t, testTable6(ForwardNAT, header.ProtoTCP), []step{
		{name: "destination options longer than the packet", in: long, verdict: VerdictIPv6Unparsed},
	})
}

// TestZeroAllocsExtensionHeaders6: a packet of an established connection
// behind a destination options header (and a hop-by-hop one), complete or
// partial checksum, in every mode, and a first and later fragment behind
// a hop-by-hop header, cost no allocation.
func TestZeroAllocsExtensionHeaders6(t *testing.T) {
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	for _, c := range append(modeCases6, modeCase{"FULLNAT6/udp", ForwardFullNAT, header.ProtoUDP, false}) {
		tbl := testTable6(c.fwd, c.proto)
		if c.fwd == ForwardFullNAT {
			tbl = fnTable6(c.proto)
		}
		w := worker6(tbl, 1<<16)
		syn := client6(c.proto)
		syn.syn = true
		if _, _, v := send(t, w, tbl, withDOpt6(t, syn.bytes(t)), header.Offload{}); v != VerdictForward {
			t.Fatalf("%s: setup verdict %v", c.name, v)
		}
		p := client6(c.proto)
		p.ack = true
		if c.reply {
			p = reply6(c.proto)
			p.syn = false
		}
		p.payload = make([]byte, 6)
		frame := withHBH6(t, withDOpt6(t, p.bytes(t)))
		partialFrame := append([]byte(nil), frame...)
		off := partial6(t, partialFrame)
		if off.CsumStart != header.EthernetLen+header.IPv6MinLen+16 {
			t.Fatalf("%s: partial checksum at %d, want behind the headers", c.name, off.CsumStart)
		}
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
				t.Errorf("%s behind extension headers (offload %+v): %.1f allocations per packet, want 0", c.name, x.off, allocs)
			}
		}
	}
	for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardTUN} {
		tbl := testTable6(f, header.ProtoUDP)
		w := worker6(tbl, 1024)
		frags := fragments6(t, bigClient6(header.ProtoUDP).bytes(t), 1400, 12)
		first, later := withHBH6(t, frags[0]), withHBH6(t, frags[1])
		run := func(fr []byte) {
			copy(buf[Headroom:], fr)
			if _, v := w.process(tbl, buf, len(fr), icmp, 2); v != VerdictForward {
				t.Fatalf("%v: fragment verdict %v", f, v)
			}
		}
		run(first)
		if allocs := testing.AllocsPerRun(1000, func() { run(first); run(later) }); allocs != 0 {
			t.Errorf("%v: %.1f allocations per first and later fragment behind hop-by-hop, want 0", f, allocs)
		}
	}
}

// TestExt6Helpers: withExt6 makes what the independent encoder makes.
func TestExt6Helpers(t *testing.T) {
	p := client6(header.ProtoUDP)
	b := withDOpt6(t, p.bytes(t))
	verify6(t, b)
	if !bytes.Equal(withoutExt6(t, b), p.bytes(t)) {
		t.Error("withoutExt6 does not undo withExt6")
	}
	pk := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if pk.Layer(layers.LayerTypeIPv6Destination) == nil || pk.Layer(layers.LayerTypeUDP) == nil {
		t.Errorf("gopacket does not see destination options and UDP")
	}
}
