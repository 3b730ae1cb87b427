package dataplane

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

var ipRouter = netip.MustParseAddr("10.10.0.1")

// icmpErr is an ICMP error frame for the independent encoder: type/code
// from src to dst at the IP layer, quoting the IPv4 header and first 8
// bytes of quoted (an Ethernet frame built by pkt.bytes).
func icmpErr(tb testing.TB, srcMAC, dstMAC [6]byte, src, dst netip.Addr, typ, code uint8, quoted []byte) []byte {
	tb.Helper()
	q := quoted[header.EthernetLen:]
	q = q[:header.IPv4(q).HeaderLength()+8]
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: srcMAC[:], DstMAC: dstMAC[:], EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Id: 3, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Seq: 1400},
		gopacket.Payload(q))
	if err != nil {
		tb.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	return b[:header.EthernetLen+int(header.IPv4(b[header.EthernetLen:]).TotalLength())]
}

// TestGoldenICMPToVIP: a router on the client's path tells the VIP that a
// reply was too big. The error must reach the real server that sent the
// reply, in the form that real server can match to its connection.
func TestGoldenICMPToVIP(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardFullNAT} {
		tbl := testTable(f, header.ProtoTCP)
		syn := client(header.ProtoTCP)
		syn.syn = true
		// The reply the client's path refused, as it left the director.
		reply := pkt{srcMAC: macDir, dstMAC: macRouter, src: ipVIP, dst: ipClient, sport: vport, dport: cport,
			proto: header.ProtoTCP, ack: true, df: true, id: 9}
		in := icmpErr(t, macRouter, macDir, ipRouter, ipVIP, 3, 4, reply.bytes(t))
		// What the real server sent, and so must see quoted.
		asSent := reply
		outSrc, outDst := ipRouter, ipVIP
		switch f {
		case ForwardNAT:
			asSent.src, asSent.sport = ipRS1, natPort
			outDst = ipRS1
		case ForwardFullNAT:
			asSent.src, asSent.sport = ipRS1, natPort
			asSent.dst, asSent.dport = ipLocal, portLo
			outSrc, outDst = ipLocal, ipRS1
		}
		want := icmpErr(t, macDir, macRS1, outSrc, outDst, 3, 4, asSent.bytes(t))
		runSteps(t, tbl, []step{
			{name: f.String() + " SYN", in: syn.bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}},
			{name: f.String() + " frag-needed to the VIP", in: in, verdict: VerdictForward, out: want},
		})
	}
}

// TestGoldenICMPTUN: the error is tunnelled to the real like any packet.
func TestGoldenICMPTUN(t *testing.T) {
	tbl := testTable(ForwardTUN, header.ProtoTCP)
	syn := client(header.ProtoTCP)
	syn.syn = true
	reply := pkt{srcMAC: macDir, dstMAC: macRouter, src: ipVIP, dst: ipClient, sport: vport, dport: cport, proto: header.ProtoTCP, ack: true, df: true}
	in := icmpErr(t, macRouter, macDir, ipRouter, ipVIP, 3, 4, reply.bytes(t))
	runSteps(t, tbl, []step{
		{name: "SYN", in: syn.bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}},
		{name: "frag-needed, tunnelled", in: in, verdict: VerdictForward, check: func(t *testing.T, out []byte) {
			outer := header.IPv4(out[header.EthernetLen:])
			if outer.Protocol() != header.ProtoIPIP || outer.Destination() != ipRS1.As4() || !outer.IsChecksumValid() {
				t.Fatalf("not IPIP to the real: proto %d dst %v", outer.Protocol(), outer.Destination())
			}
			if string(outer.Payload()) != string(in[header.EthernetLen:]) {
				t.Fatal("the tunnelled error differs from the one received")
			}
		}},
	})
}

// TestGoldenICMPFromReal: a NAT or FULLNAT real server's error about a
// client's datagram goes back to the client as if from the VIP.
func TestGoldenICMPFromReal(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		tbl := testTable(f, header.ProtoUDP)
		req := client(header.ProtoUDP)
		req.udpNoChecksum = true // the quoted checksum is not rewritten; 0 stays 0 on both sides
		// The datagram as the real received it.
		asReceived := req
		asReceived.dst, asReceived.dport = ipRS1, natPort
		errDst := ipClient
		if f == ForwardFullNAT {
			asReceived.src, asReceived.sport = ipLocal, portLo
			errDst = ipLocal
		}
		in := icmpErr(t, macRS1, macDir, ipRS1, errDst, 3, 3, asReceived.bytes(t))
		want := icmpErr(t, macDir, macRouter, ipVIP, ipClient, 3, 3, req.bytes(t))
		runSteps(t, tbl, []step{
			{name: f.String() + " request", in: req.bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}},
			{name: f.String() + " port unreachable from the real", in: in, verdict: VerdictForward, out: want},
		})
	}
}

func TestICMPDrops(t *testing.T) {
	reply := pkt{srcMAC: macDir, dstMAC: macRouter, src: ipVIP, dst: ipClient, sport: vport, dport: cport, proto: header.ProtoTCP, ack: true}
	unknown := icmpErr(t, macRouter, macDir, ipRouter, ipVIP, 3, 4, reply.bytes(t))
	echo := icmpErr(t, macRouter, macDir, ipRouter, ipVIP, 8, 0, reply.bytes(t))
	short := append([]byte(nil), unknown[:len(unknown)-4]...)
	header.IPv4(short[header.EthernetLen:]).SetTotalLengthWithChecksumUpdate(uint16(len(short) - header.EthernetLen))
	runSteps(t, testTable(ForwardNAT, header.ProtoTCP), []step{
		{name: "error about no connection", in: unknown, verdict: VerdictNoConn},
		{name: "echo request", in: echo, verdict: VerdictNoService},
		{name: "quote cut short", in: short, verdict: VerdictMalformed},
	})
}

func TestZeroAllocsICMP(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoTCP)
	syn := client(header.ProtoTCP)
	syn.syn = true
	w := runSteps(t, tbl, []step{{name: "SYN", in: syn.bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}}})
	reply := pkt{srcMAC: macDir, dstMAC: macRouter, src: ipVIP, dst: ipClient, sport: vport, dport: cport, proto: header.ProtoTCP, ack: true}
	in := icmpErr(t, macRouter, macDir, ipRouter, ipVIP, 3, 4, reply.bytes(t))
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	allocs := testing.AllocsPerRun(500, func() {
		copy(buf[Headroom:], in)
		if _, v := w.process(tbl, buf, len(in), icmp, 2); v != VerdictForward {
			t.Fatalf("verdict %v", v)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per ICMP error, want 0", allocs)
	}
}
