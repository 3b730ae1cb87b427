package header_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// This file holds the test oracles: a naive byte-pair checksum, from-scratch
// recomputation of every checksum field, a seeded random packet generator and
// gopacket (an independent encoder/decoder) helpers. None of them call the
// checksum code under test.

// naiveChecksum is the RFC 1071 reference: add big-endian byte pairs, the
// last odd byte as a high byte, then fold the carries.
func naiveChecksum(b []byte, initial uint16) uint16 {
	s := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refIPv4Checksum recomputes the header checksum of pkt from scratch.
func refIPv4Checksum(pkt []byte) uint16 {
	hl := int(pkt[0]&0x0f) * 4
	h := append([]byte(nil), pkt[:hl]...)
	h[10], h[11] = 0, 0
	return ^naiveChecksum(h, 0)
}

// pseudoHeader returns the IPv4 pseudo-header bytes (RFC 793 section 3.1).
func pseudoHeader(proto uint8, src, dst [4]byte, length int) []byte {
	p := make([]byte, 12)
	copy(p[0:4], src[:])
	copy(p[4:8], dst[:])
	p[9] = proto
	binary.BigEndian.PutUint16(p[10:], uint16(length))
	return p
}

// l4CsumOff is the offset of the checksum field in the transport header.
func l4CsumOff(proto uint8) int {
	switch proto {
	case header.ProtoTCP:
		return 16
	case header.ProtoUDP:
		return 6
	}
	return 2 // ICMP
}

// refL4Checksum recomputes the transport checksum of the segment seg from
// scratch, with RFC 768's 0 → 0xFFFF for UDP.
func refL4Checksum(proto uint8, src, dst [4]byte, seg []byte) uint16 {
	buf := pseudoHeader(proto, src, dst, len(seg))
	if proto == header.ProtoICMP {
		buf = nil
	}
	off := len(buf) + l4CsumOff(proto)
	buf = append(buf, seg...)
	buf[off], buf[off+1] = 0, 0
	c := ^naiveChecksum(buf, 0)
	if proto == header.ProtoUDP && c == 0 {
		c = 0xffff
	}
	return c
}

// l4Segment returns the transport segment of the IPv4 packet pkt.
func l4Segment(pkt []byte) []byte {
	hl := int(pkt[0]&0x0f) * 4
	tl := int(binary.BigEndian.Uint16(pkt[2:]))
	return pkt[hl:tl]
}

// refCheck fails unless both checksums of pkt equal a full recomputation.
// A UDP checksum of 0 must stay 0 when keepZeroUDP is set.
func refCheck(t testing.TB, pkt []byte, what string, keepZeroUDP bool) {
	t.Helper()
	ip := header.IPv4(pkt)
	if got, want := ip.Checksum(), refIPv4Checksum(pkt); got != want {
		t.Fatalf("%s: IPv4 checksum %#04x, full recompute %#04x", what, got, want)
	}
	proto := ip.Protocol()
	seg := l4Segment(pkt)
	off := l4CsumOff(proto)
	got := binary.BigEndian.Uint16(seg[off:])
	if keepZeroUDP && proto == header.ProtoUDP {
		if got != 0 {
			t.Fatalf("%s: UDP checksum 0 (none) became %#04x", what, got)
		}
		return
	}
	if want := refL4Checksum(proto, ip.Source(), ip.Destination(), seg); got != want {
		t.Fatalf("%s: proto %d checksum %#04x, full recompute %#04x", what, proto, got, want)
	}
}

// randPacket builds a random IPv4 packet carrying proto (TCP or UDP) with
// random IP and TCP options and an odd or even payload, and fills in both
// checksums with the reference code.
func randPacket(r *rand.Rand, proto uint8) []byte {
	hl := header.IPv4MinLen + 4*r.IntN(11)
	l4hl := header.UDPLen
	if proto == header.ProtoTCP {
		l4hl = header.TCPMinLen + 4*r.IntN(11)
	}
	tl := hl + l4hl + r.IntN(300)
	pkt := make([]byte, tl)
	for i := range pkt {
		pkt[i] = byte(r.Uint32())
	}
	pkt[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(pkt[2:], uint16(tl))
	pkt[6] &= 0x40 // random DF; not a fragment, so gopacket decodes the transport
	pkt[7] = 0
	pkt[9] = proto
	// Options are NOPs, after a Router Alert when there is room: random
	// bytes would be options gopacket rightly rejects.
	nops(pkt[header.IPv4MinLen:hl])
	if hl >= header.IPv4MinLen+4 {
		copy(pkt[header.IPv4MinLen:], []byte{0x94, 4, 0, 0})
	}
	seg := pkt[hl:]
	switch proto {
	case header.ProtoTCP:
		seg[12] = byte(l4hl/4)<<4 | seg[12]&0x0f
		nops(seg[header.TCPMinLen:l4hl])
	case header.ProtoUDP:
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	}
	fixChecksums(pkt)
	return pkt
}

// nops fills b with NOP options (kind 1 in both IPv4 and TCP).
func nops(b []byte) {
	for i := range b {
		b[i] = 1
	}
}

// fixChecksums fills in both checksums of pkt with the reference code.
func fixChecksums(pkt []byte) {
	binary.BigEndian.PutUint16(pkt[10:], refIPv4Checksum(pkt))
	ip := header.IPv4(pkt)
	seg := l4Segment(pkt)
	binary.BigEndian.PutUint16(seg[l4CsumOff(ip.Protocol()):],
		refL4Checksum(ip.Protocol(), ip.Source(), ip.Destination(), seg))
}

func randAddr(r *rand.Rand) [4]byte {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], r.Uint32())
	return a
}

// serialize encodes layers with gopacket, lengths and checksums computed.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for _, l := range ls {
		switch l := l.(type) {
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(findIPv4(ls))
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(findIPv4(ls))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// findIPv4 returns the last IPv4 layer of ls.
func findIPv4(ls []gopacket.SerializableLayer) *layers.IPv4 {
	var ip *layers.IPv4
	for _, l := range ls {
		if l, ok := l.(*layers.IPv4); ok {
			ip = l
		}
	}
	return ip
}

// decode decodes b with gopacket starting at first, fails on a decoding
// error or any checksum mismatch (transport checksums checked against their
// innermost IPv4 header) and returns the packet.
func decode(t testing.TB, b []byte, first gopacket.LayerType) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(b, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket decode: %v\n% x", el.Error(), b)
	}
	var ip *layers.IPv4
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			ip = l
		case *layers.TCP:
			if err := l.SetNetworkLayerForChecksum(ip); err != nil {
				t.Fatal(err)
			}
		case *layers.UDP:
			if err := l.SetNetworkLayerForChecksum(ip); err != nil {
				t.Fatal(err)
			}
		}
	}
	err, mm := p.VerifyChecksums()
	if err != nil {
		t.Fatalf("gopacket verify: %v", err)
	}
	for _, m := range mm {
		t.Fatalf("gopacket: bad %v checksum: have %#04x, want %#04x\n% x", m.Layer.LayerType(), m.Actual, m.Correct, b)
	}
	return p
}

func ip4(a [4]byte) net.IP { return net.IPv4(a[0], a[1], a[2], a[3]).To4() }
