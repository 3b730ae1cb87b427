package dataplane

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// fragments6 splits the IPv6 packet of an Ethernet frame (no extension
// headers) into fragments of at most mtu bytes of IP with identification
// id, as a sender's kernel does (RFC 8200 section 4.5), each a frame built
// by gopacket.
func fragments6(t testing.TB, frame []byte, mtu int, id uint32) [][]byte {
	t.Helper()
	eth := header.Ethernet(frame)
	ip := header.IPv6(frame[header.EthernetLen:])
	payload := ip.Payload()
	per := (mtu - header.IPv6MinLen - 8) &^ 7
	src, dst, smac, dmac := ip.Source(), ip.Destination(), eth.Source(), eth.Destination()
	var out [][]byte
	for off := 0; off < len(payload); off += per {
		n := min(per, len(payload)-off)
		out = append(out, gopacketFrame(t,
			&layers.Ethernet{SrcMAC: smac[:], DstMAC: dmac[:], EthernetType: layers.EthernetTypeIPv6},
			&layers.IPv6{Version: 6, TrafficClass: ip.TrafficClass(), FlowLabel: ip.FlowLabel(), HopLimit: ip.HopLimit(),
				NextHeader: layers.IPProtocolIPv6Fragment, SrcIP: src[:], DstIP: dst[:]},
			&layers.IPv6Fragment{NextHeader: layers.IPProtocol(ip.NextHeader()), FragmentOffset: uint16(off / 8),
				MoreFragments: off+n < len(payload), Identification: id},
			gopacket.Payload(payload[off:off+n])))
	}
	return out
}

// reassemble6 puts IPv6 fragment frames (fragment header right after the
// fixed header) together into the whole packet's frame, which verify6
// checks (its transport checksum included).
func reassemble6(t *testing.T, frames [][]byte) []byte {
	t.Helper()
	var whole []byte
	var first header.IPv6
	var next uint8
	total := -1
	for i, f := range frames {
		ip := header.IPv6(f[header.EthernetLen:])
		if ip.NextHeader() != header.ProtoIPv6Frag {
			t.Fatalf("frame %d is not a fragment:\n%s", i, hex.Dump(f))
		}
		fh := ip[header.IPv6MinLen : header.IPv6MinLen+8]
		of := binary.BigEndian.Uint16(fh[2:])
		off, more := int(of&0xfff8), of&1 != 0
		data := ip[header.IPv6MinLen+8 : header.IPv6MinLen+int(ip.PayloadLength())]
		if i == 0 {
			first, next = ip, fh[0]
		} else if ip.Source() != first.Source() || ip.Destination() != first.Destination() || fh[0] != next ||
			binary.BigEndian.Uint32(fh[4:]) != binary.BigEndian.Uint32(first[header.IPv6MinLen+4:]) {
			t.Fatalf("fragment %d is not of the first's datagram", i)
		}
		if len(whole) < off+len(data) {
			whole = append(whole, make([]byte, off+len(data)-len(whole))...)
		}
		copy(whole[off:], data)
		if !more {
			total = off + len(data)
		}
	}
	if total != len(whole) {
		t.Fatalf("the fragments make %d bytes, the last ends at %d", len(whole), total)
	}
	out := append([]byte(nil), frames[0][:header.EthernetLen+header.IPv6MinLen]...)
	out = append(out, whole...)
	ip := header.IPv6(out[header.EthernetLen:])
	ip.SetPayloadLength(uint16(len(whole)))
	ip[6] = next
	verify6(t, out)
	return out
}

// bigClient6 and bigReply6 are client6 and reply6 with 3000 bytes of
// payload: three fragments at 1500 bytes.
func bigClient6(proto uint8) pkt6 {
	p := client6(proto)
	p.syn = true
	p.payload = bytes.Repeat([]byte("0123456789abcdef"), 3000/16)
	return p
}

func bigReply6(proto uint8) pkt6 {
	p := reply6(proto)
	p.payload = bytes.Repeat([]byte("fedcba9876543210"), 3000/16)
	return p
}

// TestGoldenFragments6: a datagram (or a TCP SYN with data) of 3000 bytes
// in three fragments goes out fragment by fragment in DR (MACs), NAT
// (destination address in every fragment, port and checksum in the first)
// and TUN (each fragment in IPv6-in-IPv6), and a NAT reply in fragments
// comes back from the VIP: each output is the golden fragment of the
// rewritten datagram, and the outputs reassemble into it, checksum right.
func TestGoldenFragments6(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardTUN} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			t.Run(f.String()+"/"+protoName(proto), func(t *testing.T) {
				tbl := testTable6(f, proto)
				mtu := 1500
				if f == ForwardTUN {
					mtu = 1460 // room for the outer header
				}
				in := bigClient6(proto)
				want := in
				want.srcMAC, want.dstMAC = macDir, macRS1
				if f == ForwardNAT {
					want.dst, want.dport = ipRS16, natPort
				}
				ins, wants := fragments6(t, in.bytes(t), mtu, 0xfeed01), fragments6(t, want.bytes(t), mtu, 0xfeed01)
				if len(ins) != 3 {
					t.Fatalf("%d fragments", len(ins))
				}
				var steps []step
				for i := range ins {
					w := wants[i]
					if f == ForwardTUN {
						w = tunnel6Frame(t, ins[i])
					}
					steps = append(steps, step{name: "fragment " + string(rune('0'+i)), in: ins[i], verdict: VerdictForward, out: w})
				}
				if f == ForwardNAT {
					rep := bigReply6(proto)
					wantRep := rep
					wantRep.srcMAC, wantRep.dstMAC, wantRep.src, wantRep.sport = macDir, macRouter, ipVIP6, vport
					rins, rwants := fragments6(t, rep.bytes(t), 1500, 0xbeef02), fragments6(t, wantRep.bytes(t), 1500, 0xbeef02)
					for i := range rins {
						steps = append(steps, step{name: "reply fragment " + string(rune('0'+i)), in: rins[i], verdict: VerdictForward, out: rwants[i]})
					}
					reassemble6(t, rwants)
				}
				if f != ForwardTUN {
					reassemble6(t, wants)
				}
				runSteps(t, tbl, steps)
				st := tbl.Reals[1].Stats
				if st.Conns.Load() != 1 || st.InPkts.Load() != 3 {
					t.Errorf("real: %d connections, %d packets in; want 1 and 3", st.Conns.Load(), st.InPkts.Load())
				}
				if f == ForwardNAT && st.OutPkts.Load() != 3 {
					t.Errorf("real: %d packets out, want 3", st.OutPkts.Load())
				}
			})
		}
	}
}

// fragPair6 is fragPair with IPv6 on.
func fragPair6(tbl *Table) (owner, w0 *Worker, link *fakeLink) {
	owner, w0, link = fragPair(tbl)
	owner.enableIPv6()
	w0.enableIPv6()
	return owner, w0, link
}

// TestFragments6OutOfOrder: later fragments that come to worker 0 before
// their first fragment comes to the connection's owner are held, and go
// out once it has been handled, as the golden NAT fragments; a later
// fragment of an identification no first fragment had is dropped after
// fragWait and counted as ipv6_fragment; so is a fragment held beyond
// fragPending.
func TestFragments6OutOfOrder(t *testing.T) {
	tbl := testTable6(ForwardNAT, header.ProtoUDP)
	owner, w0, link := fragPair6(tbl)
	in := bigClient6(header.ProtoUDP)
	want := in
	want.srcMAC, want.dstMAC, want.dst, want.dport = macDir, macRS1, ipRS16, natPort
	ins, wants := fragments6(t, in.bytes(t), 1500, 7), fragments6(t, want.bytes(t), 1500, 7)
	now := int64(1e9)
	for i, fr := range ins[1:] {
		if _, v := handleFrame(w0, tbl, fr, now); v != verdictHeld {
			t.Fatalf("later fragment %d before its first: %v, want held", i+1, v)
		}
	}
	w0.retryFragments(tbl, now)
	if len(link.sent()) != 0 {
		t.Fatal("a held fragment went out before its first")
	}
	out, v := handleFrame(owner, tbl, ins[0], now)
	if v != VerdictForward || !bytes.Equal(out, wants[0]) {
		t.Fatalf("first fragment: %v\n%s", v, diff(out, wants[0]))
	}
	w0.retryFragments(tbl, now+1e6)
	sent := link.sent()
	if len(sent) != 2 || w0.C.Verdicts[VerdictForward].Load() != 2 {
		t.Fatalf("after the first fragment: %d sent, %d counted", len(sent), w0.C.Verdicts[VerdictForward].Load())
	}
	for i, s := range sent {
		if !bytes.Equal(s, wants[i+1]) {
			t.Fatalf("held fragment %d:\n got:\n%s\nwant:\n%s", i+1, hex.Dump(s), hex.Dump(wants[i+1]))
		}
	}
	reassemble6(t, append([][]byte{out}, sent...))

	// An unknown identification: its first fragment never comes.
	orphan := fragments6(t, in.bytes(t), 1500, 8)[1]
	if _, v := handleFrame(w0, tbl, orphan, now); v != verdictHeld {
		t.Fatalf("orphan: %v", v)
	}
	w0.retryFragments(tbl, now+fragWait-1)
	if w0.C.Verdicts[VerdictIPv6Fragment].Load() != 0 || len(w0.fragWaiting) != 1 {
		t.Fatal("the orphan was dropped before fragWait")
	}
	w0.retryFragments(tbl, now+fragWait)
	if w0.C.Verdicts[VerdictIPv6Fragment].Load() != 1 || len(w0.fragWaiting) != 0 || len(link.sent()) != 2 {
		t.Fatalf("after fragWait: %d dropped, %d waiting, %d sent", w0.C.Verdicts[VerdictIPv6Fragment].Load(), len(w0.fragWaiting), len(link.sent()))
	}
	// At most fragPending wait, IPv4 and IPv6 together.
	v4 := client(header.ProtoUDP)
	v4.df, v4.id, v4.payload = false, 1, bytes.Repeat([]byte{9}, 3000)
	if _, v := handleFrame(w0, tbl, fragments(t, v4.bytes(t), 1500)[1], now); v != verdictHeld {
		t.Fatalf("IPv4 orphan: %v", v)
	}
	for i := range fragPending {
		_, v := handleFrame(w0, tbl, fragments6(t, in.bytes(t), 1500, uint32(100+i))[2], now)
		if want := verdictHeld; i == fragPending-1 {
			if v != VerdictIPv6Fragment {
				t.Fatalf("fragment %d beyond the limit: %v", i, v)
			}
		} else if v != want {
			t.Fatalf("fragment %d: %v", i, v)
		}
	}
	// The first fragment's decision outlives it by fragTimeout only.
	if _, v := handleFrame(w0, tbl, ins[2], now+fragTimeout); v != VerdictIPv6Fragment {
		t.Fatalf("a later fragment after fragTimeout: %v, want ipv6_fragment (nothing held: the queue is full)", v)
	}
}

// TestGoldenFragmentDrops6: IPv6 fragments the dataplane leaves alone,
// each with its verdict: a first fragment too short to hold its
// transport header, a fragment of ICMPv6 (a large ping), a fragment whose
// fragment header is followed by destination options; a first fragment
// to a port without a service is no_service as a whole packet would be; a
// fragment with offload metadata is refused. In TUN, a fragment that does
// not fit with the outer header gets Packet Too Big, the first as the
// later ones.
func TestGoldenFragmentDrops6(t *testing.T) {
	in := bigClient6(header.ProtoUDP)
	whole := in.bytes(t)
	// A first fragment of 4 bytes of UDP: the ports, not the length.
	short := fragments6(t, whole, header.IPv6MinLen+8+8, 3)[0]
	ip := header.IPv6(short[header.EthernetLen:])
	ip.SetPayloadLength(8 + 4)
	short = short[:header.EthernetLen+header.IPv6MinLen+12]
	ping := gopacketFrame(t, &layers.Ethernet{SrcMAC: macRouter[:], DstMAC: macDir[:], EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: ipClient6.AsSlice(), DstIP: ipVIP6.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 1},
		gopacket.Payload(make([]byte, 3000)))
	pingFrags := fragments6(t, ping, 1500, 4)
	dopts := in
	dopts.dstOpts = true
	doptsFrag := fragments6(t, dopts.bytes(t), 1500, 5)[0]
	other := in
	other.dport = 81
	runSteps(t, testTable6(ForwardNAT, header.ProtoUDP), []step{
		{name: "first fragment without its whole UDP header", in: short, verdict: VerdictIPv6Fragment},
		{name: "first fragment of a ping", in: pingFrags[0], verdict: VerdictIPv6Fragment},
		{name: "later fragment of a ping", in: pingFrags[1], verdict: VerdictIPv6Fragment},
		{name: "fragment of destination options", in: doptsFrag, verdict: VerdictIPv6Fragment},
		{name: "first fragment to port 81", in: fragments6(t, other.bytes(t), 1500, 6)[0], verdict: VerdictNoService},
		{name: "later fragment to port 81, its first refused", in: fragments6(t, other.bytes(t), 1500, 6)[1], verdict: verdictHeld},
	})
	tbl := testTable6(ForwardNAT, header.ProtoUDP)
	w := worker6(tbl, 1024)
	first := fragments6(t, whole, 1500, 9)[0]
	off := header.Offload{Flags: header.OffloadNeedsCsum, CsumStart: header.EthernetLen + header.IPv6MinLen + 8, CsumOffset: header.UDPChecksumOffset}
	if _, _, v := send(t, w, tbl, first, off); v != VerdictOffload {
		t.Errorf("a fragment with a partial checksum: %v, want offload", v)
	}

	// TUN: fragments of 1500 bytes do not fit with 40 more.
	tbl = testTable6(ForwardTUN, header.ProtoUDP)
	frags := fragments6(t, whole, 1500, 10)
	steps := []step{
		{name: "first fragment too big", in: frags[0], verdict: VerdictTooBig,
			check: func(t *testing.T, out []byte) { checkPacketTooBig6(t, out, frags[0], 1460) }},
		{name: "later fragment too big", in: frags[1], verdict: VerdictTooBig,
			check: func(t *testing.T, out []byte) { checkPacketTooBig6(t, out, frags[1], 1460) }},
		{name: "last fragment fits", in: frags[2], verdict: VerdictForward, out: tunnel6Frame(t, frags[2])},
	}
	runSteps(t, tbl, steps)
}

// TestZeroAllocsFragments6: a first fragment of an established NAT
// connection and a later fragment, forwarded, cost no allocation.
func TestZeroAllocsFragments6(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardTUN} {
		tbl := testTable6(f, header.ProtoUDP)
		w := worker6(tbl, 1024)
		mtu := 1500
		if f == ForwardTUN {
			mtu = 1460
		}
		frags := fragments6(t, bigClient6(header.ProtoUDP).bytes(t), mtu, 11)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		run := func(fr []byte) {
			copy(buf[Headroom:], fr)
			if _, v := w.process(tbl, buf, len(fr), icmp, 2); v != VerdictForward {
				t.Fatalf("%v: verdict %v", f, v)
			}
		}
		run(frags[0]) // the connection, and the table's map
		if allocs := testing.AllocsPerRun(1000, func() { run(frags[0]); run(frags[1]) }); allocs != 0 {
			t.Errorf("%v: %.1f allocations per first and later fragment, want 0", f, allocs)
		}
	}
}
