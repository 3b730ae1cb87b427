package header_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// TestSeqAckWithChecksumUpdate sets random sequence and acknowledgment
// numbers on seeded random TCP packets (random options, odd and even
// payloads) and compares the checksum with a full recomputation after
// each step.
func TestSeqAckWithChecksumUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for i := range 3000 {
		pkt := randPacket(r, header.ProtoTCP)
		tcp := header.TCP(header.IPv4(pkt).Payload())
		for step := range 4 {
			v := r.Uint32()
			if step == 3 {
				v = tcp.AckNumber() // unchanged: the checksum must not change form
			}
			if r.IntN(2) == 0 {
				tcp.SetSequenceNumberWithChecksumUpdate(v)
				if tcp.SequenceNumber() != v {
					t.Fatalf("iteration %d: seq %d, want %d", i, tcp.SequenceNumber(), v)
				}
			} else {
				tcp.SetAckNumberWithChecksumUpdate(v)
				if tcp.AckNumber() != v {
					t.Fatalf("iteration %d: ack %d, want %d", i, tcp.AckNumber(), v)
				}
			}
			refCheck(t, pkt, "seq/ack", false)
		}
	}
}

// TestSeqAckPartialChecksum: with a partial checksum the sequence and
// acknowledgment numbers are in the part the device sums later, so they
// are set without touching the field, and the finished checksum is right.
func TestSeqAckPartialChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for i := range 1000 {
		pkt := randPacket(r, header.ProtoTCP)
		ip := header.IPv4(pkt)
		seg := ip.Payload()
		binary.BigEndian.PutUint16(seg[16:], naiveChecksum(pseudoHeader(header.ProtoTCP, ip.Source(), ip.Destination(), len(seg)), 0))
		tcp := header.TCP(seg)
		tcp.SetSequenceNumber(r.Uint32())
		tcp.SetAckNumber(r.Uint32())
		binary.BigEndian.PutUint16(seg[16:], ^naiveChecksum(seg, 0))
		refCheck(t, pkt, "finished partial checksum", false)
		if t.Failed() {
			t.Fatalf("iteration %d", i)
		}
	}
}

// TestMSS reads the MSS option of well-formed and malformed option lists.
func TestMSS(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []byte
		mss  uint16
		ok   bool
	}{
		{"none", nil, 0, false},
		{"MSS alone", []byte{2, 4, 0x05, 0xb4}, 1460, true},
		{"after NOPs and SACK-permitted", []byte{1, 1, 4, 2, 2, 4, 0x05, 0x8c, 0, 0, 0, 0}, 1420, true},
		{"after window scale, then EOL", []byte{3, 3, 7, 2, 4, 0x02, 0x18, 0}, 536, true},
		{"behind EOL", []byte{0, 0, 0, 0, 2, 4, 0x05, 0xb4, 0, 0, 0, 0}, 0, false},
		{"zero length", []byte{8, 0, 2, 4, 0x05, 0xb4, 0, 0}, 0, false},
		{"length beyond the header", []byte{1, 1, 8, 10}, 0, false},
		{"MSS of the wrong length", []byte{2, 3, 0x05, 0}, 0, false},
		{"MSS 0", []byte{2, 4, 0, 0}, 0, true},
	} {
		hl := header.TCPMinLen + (len(tc.opts)+3)&^3
		seg := make([]byte, hl)
		header.TCP(seg).Encode(&header.TCPFields{HeaderLength: hl, Flags: header.TCPFlagSyn})
		copy(seg[header.TCPMinLen:], tc.opts)
		tcp := header.TCP(seg)
		if !tcp.IsValid(len(seg)) {
			t.Fatalf("%s: invalid header", tc.name)
		}
		if mss, ok := tcp.MSS(); mss != tc.mss || ok != tc.ok {
			t.Errorf("%s: MSS() = %d, %v; want %d, %v", tc.name, mss, ok, tc.mss, tc.ok)
		}
	}
	// As gopacket writes a Linux-like SYN.
	syn := serialize(t, gpIPv4(layers.IPProtocolTCP, cip, vip), &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true, Window: 64240,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		}})
	if mss, ok := header.TCP(header.IPv4(syn).Payload()).MSS(); mss != 1460 || !ok {
		t.Errorf("gopacket SYN: MSS() = %d, %v; want 1460, true", mss, ok)
	}
}

// TestTCPEncode builds a SYN-ACK with an MSS option and checks it with
// gopacket.
func TestTCPEncode(t *testing.T) {
	pkt := make([]byte, header.IPv4MinLen+header.TCPMinLen+header.TCPOptionMSSLen)
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), Flags: header.IPv4FlagDontFragment, TTL: 64,
		Protocol: header.ProtoTCP, Src: vip, Dst: cip})
	tcp := header.TCP(ip.Payload())
	tcp.Encode(&header.TCPFields{SrcPort: 80, DstPort: 40000, Seq: 0xdeadbeef, Ack: 1001,
		HeaderLength: header.TCPMinLen + header.TCPOptionMSSLen, Flags: header.TCPFlagSyn | header.TCPFlagAck, Window: 65535})
	header.PutMSSOption(tcp[header.TCPMinLen:], 1460)
	tcp.SetChecksum(tcp.CalculateChecksum(ip.Source(), ip.Destination()))
	p := decode(t, pkt, layers.LayerTypeIPv4)
	g, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if g == nil || g.SrcPort != 80 || g.DstPort != 40000 || g.Seq != 0xdeadbeef || g.Ack != 1001 || !g.SYN || !g.ACK ||
		g.RST || g.FIN || g.PSH || g.Window != 65535 || g.DataOffset != 6 || len(g.Payload) != 0 {
		t.Fatalf("decoded %+v", g)
	}
	if len(g.Options) != 1 || g.Options[0].OptionType != layers.TCPOptionKindMSS ||
		binary.BigEndian.Uint16(g.Options[0].OptionData) != 1460 {
		t.Fatalf("options %v, want MSS 1460", g.Options)
	}
}

// TestSeqAckNoAllocs: the sequence-number rewrites allocate nothing.
func TestSeqAckNoAllocs(t *testing.T) {
	pkt := serialize(t, gpIPv4(layers.IPProtocolTCP, cip, vip), gpTCP(), gopacket.Payload("payload"))
	tcp := header.TCP(header.IPv4(pkt).Payload())
	if n := testing.AllocsPerRun(200, func() {
		tcp.SetSequenceNumberWithChecksumUpdate(tcp.SequenceNumber() + 7)
		tcp.SetAckNumberWithChecksumUpdate(tcp.AckNumber() - 7)
		_, _ = tcp.MSS()
	}); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
	refCheck(t, pkt, "after seq/ack rewrites", false)
}
