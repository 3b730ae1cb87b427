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

// The IPv6 oracles: a byte-built pseudo-header summed with the naive
// checksum, and gopacket helpers that checksum over IPv6.

var (
	cip6 = [16]byte{0xfd, 0, 0, 0x10, 15: 1}
	vip6 = [16]byte{0xfd, 0, 0, 0x20, 14: 0x01, 15: 0x00}
	rip6 = [16]byte{0xfd, 0, 0, 0x20, 15: 0x11}
	dir6 = [16]byte{0xfd, 0, 0, 0x20, 15: 0x02}
)

func ip6(a [16]byte) net.IP { return net.IP(append([]byte(nil), a[:]...)) }

// pseudoHeader6 returns the IPv6 pseudo-header bytes (RFC 8200 section 8.1).
func pseudoHeader6(proto uint8, src, dst [16]byte, length int) []byte {
	p := make([]byte, 40)
	copy(p[0:16], src[:])
	copy(p[16:32], dst[:])
	binary.BigEndian.PutUint32(p[32:], uint32(length))
	p[39] = proto
	return p
}

// refL4Checksum6 recomputes the checksum of the upper-layer packet seg sent
// over IPv6 from scratch, with 0 → 0xFFFF for UDP.
func refL4Checksum6(proto uint8, src, dst [16]byte, seg []byte) uint16 {
	buf := pseudoHeader6(proto, src, dst, len(seg))
	off := len(buf) + l4CsumOff(proto)
	if proto == header.ProtoICMPv6 {
		off = len(buf) + 2
	}
	buf = append(buf, seg...)
	buf[off], buf[off+1] = 0, 0
	c := ^naiveChecksum(buf, 0)
	if proto == header.ProtoUDP && c == 0 {
		c = 0xffff
	}
	return c
}

// gpIPv6 returns a gopacket IPv6 layer; with hbh it carries a hop-by-hop
// header holding a router alert option (RFC 2711).
func gpIPv6(next layers.IPProtocol, src, dst [16]byte, hbh bool) *layers.IPv6 {
	ip := &layers.IPv6{Version: 6, TrafficClass: 0xb8, FlowLabel: 0x12345, NextHeader: next, HopLimit: 61,
		SrcIP: ip6(src), DstIP: ip6(dst)}
	if hbh {
		h := &layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{
			{OptionType: 5, OptionLength: 2, OptionData: []byte{0, 0}}, // router alert, MLD
			{OptionType: 1, OptionLength: 0},                           // PadN to 8 bytes
		}}
		h.NextHeader = next
		ip.HopByHop = h
	}
	return ip
}

// gpDestOpts returns a destination options header before next, with one
// 4-byte option of a type a receiver skips when unknown (RFC 8200 4.2).
func gpDestOpts(next layers.IPProtocol) *layers.IPv6Destination {
	d := &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{
		{OptionType: 0x1e, OptionLength: 4, OptionData: []byte{1, 2, 3, 4}},
	}}
	d.NextHeader = next
	return d
}

// serialize6 encodes layers with gopacket, lengths and checksums computed
// over the (first) IPv6 layer.
func serialize6(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var ip *layers.IPv6
	for _, l := range ls {
		if l, ok := l.(*layers.IPv6); ok && ip == nil {
			ip = l
		}
	}
	for _, l := range ls {
		switch l := l.(type) {
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(ip)
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(ip)
		case *layers.ICMPv6:
			l.SetNetworkLayerForChecksum(ip)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// decode6 decodes b with gopacket starting at first, fails on a decoding
// error or a checksum mismatch (transport checksums against the first IPv6
// header) and returns the packet.
func decode6(t testing.TB, b []byte, first gopacket.LayerType) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(b, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket decode: %v\n% x", el.Error(), b)
	}
	ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip == nil {
		t.Fatalf("gopacket: no IPv6 layer in % x", b)
	}
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(ip)
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(ip)
		case *layers.ICMPv6:
			l.SetNetworkLayerForChecksum(ip)
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

func randAddr6(r *rand.Rand) [16]byte {
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], r.Uint64())
	binary.BigEndian.PutUint64(a[8:], r.Uint64())
	return a
}

// randPacket6 builds a random IPv6 packet carrying proto (TCP or UDP) behind
// 0 to 2 extension headers (hop-by-hop, destination options), with random
// TCP options and an odd or even payload, its checksum from the reference
// code. It returns the packet and the offset of the transport header.
func randPacket6(r *rand.Rand, proto uint8) ([]byte, int) {
	var exts []uint8
	if r.IntN(2) == 0 {
		exts = append(exts, header.ProtoIPv6HopByHop)
	}
	if r.IntN(2) == 0 {
		exts = append(exts, header.ProtoIPv6Opts)
	}
	extLens := make([]int, len(exts))
	off := header.IPv6MinLen
	for i := range exts {
		extLens[i] = 8 * (1 + r.IntN(3))
		off += extLens[i]
	}
	l4hl := header.UDPLen
	if proto == header.ProtoTCP {
		l4hl = header.TCPMinLen + 4*r.IntN(11)
	}
	n := off + l4hl + r.IntN(300)
	pkt := make([]byte, n)
	for i := range pkt {
		pkt[i] = byte(r.Uint32())
	}
	pkt[0] = 0x60 | pkt[0]&0x0f
	binary.BigEndian.PutUint16(pkt[4:], uint16(n-header.IPv6MinLen))
	o := header.IPv6MinLen
	next := &pkt[6]
	for i, e := range exts {
		*next = e
		pkt[o+1] = byte(extLens[i]/8 - 1)
		nops6(pkt[o+2 : o+extLens[i]])
		next = &pkt[o]
		o += extLens[i]
	}
	*next = proto
	seg := pkt[off:]
	switch proto {
	case header.ProtoTCP:
		seg[12] = byte(l4hl/4)<<4 | seg[12]&0x0f
		nops(seg[header.TCPMinLen:l4hl])
	case header.ProtoUDP:
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	}
	ip := header.IPv6(pkt)
	binary.BigEndian.PutUint16(seg[l4CsumOff(proto):], refL4Checksum6(proto, ip.Source(), ip.Destination(), seg))
	return pkt, off
}

// nops6 fills an options area with Pad1 options (type 0).
func nops6(b []byte) { clear(b) }
