package header_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// TestGoldenReadIPv6 reads gopacket-built IPv6 TCP and UDP frames, with and
// without hop-by-hop and destination options headers, through the views
// and the extension walker, and checks every field and checksum against
// what gopacket decoded.
func TestGoldenReadIPv6(t *testing.T) {
	payload := []byte("GET / HTTP/1.0\r\n\r\n!") // odd length
	for _, tt := range []struct {
		name      string
		proto     layers.IPProtocol
		hbh, dopt bool
		wantOff   int
	}{
		{"tcp", layers.IPProtocolTCP, false, false, 40},
		{"udp", layers.IPProtocolUDP, false, false, 40},
		{"tcp hbh", layers.IPProtocolTCP, true, false, 48},
		{"tcp hbh+dstopts", layers.IPProtocolTCP, true, true, 56},
		{"udp dstopts", layers.IPProtocolUDP, false, true, 48},
		{"udp hbh+dstopts", layers.IPProtocolUDP, true, true, 56},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var l4 gopacket.SerializableLayer = gpTCP()
			if tt.proto == layers.IPProtocolUDP {
				l4 = &layers.UDP{SrcPort: 40000, DstPort: 80}
			}
			ls := []gopacket.SerializableLayer{
				&layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv6},
			}
			first := tt.proto
			if tt.dopt {
				first = layers.IPProtocolIPv6Destination
			}
			ls = append(ls, gpIPv6(first, cip6, vip6, tt.hbh))
			if tt.dopt {
				ls = append(ls, gpDestOpts(tt.proto))
			}
			ls = append(ls, l4, gopacket.Payload(payload))
			frame := serialize6(t, ls...)
			p := decode6(t, frame, layers.LayerTypeEthernet)
			gip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)

			eth := header.Ethernet(frame)
			if eth.Type() != header.EtherTypeIPv6 {
				t.Fatalf("EtherType %#04x", eth.Type())
			}
			ip := header.IPv6(eth.Payload())
			if !ip.IsValid(len(ip)) {
				t.Fatal("IPv6.IsValid = false for a gopacket packet")
			}
			x, ok := ip.WalkExtensions()
			if !ok {
				t.Fatal("WalkExtensions = false")
			}
			for _, c := range []struct {
				name      string
				got, want any
			}{
				{"TrafficClass", ip.TrafficClass(), gip.TrafficClass},
				{"FlowLabel", ip.FlowLabel(), gip.FlowLabel},
				{"PayloadLength", ip.PayloadLength(), gip.Length},
				{"NextHeader", ip.NextHeader(), uint8(gip.NextHeader)},
				{"HopLimit", ip.HopLimit(), gip.HopLimit},
				{"Source", ip.Source(), cip6},
				{"Destination", ip.Destination(), vip6},
				{"Proto", x.Proto, uint8(tt.proto)},
				{"Offset", x.Offset, tt.wantOff},
				{"Fragment", x.Fragment, false},
				{"Payload", len(ip.Payload()), int(gip.Length)},
			} {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			seg := ip[x.Offset:]
			if tt.proto == layers.IPProtocolTCP {
				tcp := header.TCP(seg)
				gtcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
				if !tcp.IsValid(len(seg)) || tcp.SourcePort() != 40000 || tcp.Checksum() != gtcp.Checksum ||
					tcp.CalculateChecksum6(cip6, vip6) != gtcp.Checksum || !tcp.IsChecksumValid6(cip6, vip6) ||
					tcp.IsChecksumValid6(cip6, rip6) || !bytes.Equal(tcp.Payload(), payload) {
					t.Errorf("TCP: valid %v sport %d checksum %#04x calc %#04x gopacket %#04x", tcp.IsValid(len(seg)),
						tcp.SourcePort(), tcp.Checksum(), tcp.CalculateChecksum6(cip6, vip6), gtcp.Checksum)
				}
				return
			}
			udp := header.UDP(seg)
			gudp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !udp.IsValid(len(seg)) || udp.DestinationPort() != 80 || udp.Checksum() != gudp.Checksum ||
				udp.CalculateChecksum6(cip6, vip6) != gudp.Checksum || !udp.IsChecksumValid6(cip6, vip6) ||
				udp.IsChecksumValid6(rip6, vip6) || !bytes.Equal(udp.Payload(), payload) {
				t.Errorf("UDP: valid %v dport %d checksum %#04x calc %#04x gopacket %#04x", udp.IsValid(len(seg)),
					udp.DestinationPort(), udp.Checksum(), udp.CalculateChecksum6(cip6, vip6), gudp.Checksum)
			}
		})
	}
}

// TestGoldenIPv6Bytes pins the encoding of a small IPv6 UDP packet to bytes
// written out by hand from RFC 8200 and RFC 768 (the checksum from
// gopacket), so the views cannot drift from the wire format together with
// the test oracles.
func TestGoldenIPv6Bytes(t *testing.T) {
	want := []byte{
		0x6b, 0x81, 0x23, 0x45, // version 6, traffic class 0xb8, flow label 0x12345
		0x00, 0x0a, 0x11, 0x3d, // payload length 10, UDP, hop limit 61
		0xfd, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // fd00:10::1
		0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, // fd00:20::100
		0x9c, 0x40, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, // 40000 → 53, length 10, checksum below
		'h', 'i',
	}
	g := serialize6(t, gpIPv6(layers.IPProtocolUDP, cip6, vip6, false), &layers.UDP{SrcPort: 40000, DstPort: 53}, gopacket.Payload("hi"))
	copy(want[46:48], g[46:48])
	if !bytes.Equal(g, want) {
		t.Fatalf("gopacket encodes\n% x\nwant\n% x", g, want)
	}
	pkt := make([]byte, len(want))
	copy(pkt[header.IPv6MinLen:], want[header.IPv6MinLen:])
	header.IPv6(pkt).Encode(&header.IPv6Fields{TrafficClass: 0xb8, FlowLabel: 0x12345, PayloadLength: 10,
		NextHeader: header.ProtoUDP, HopLimit: 61, Src: cip6, Dst: vip6})
	udp := header.UDP(pkt[header.IPv6MinLen:])
	udp.SetChecksum(0)
	udp.SetChecksum(udp.CalculateChecksum6(cip6, vip6))
	if !bytes.Equal(pkt, want) {
		t.Fatalf("Encode and CalculateChecksum6 give\n% x\nwant\n% x", pkt, want)
	}
	if got := refL4Checksum6(header.ProtoUDP, cip6, vip6, want[40:]); got != binary.BigEndian.Uint16(want[46:]) {
		t.Fatalf("reference checksum %#04x, packet has %#04x", got, binary.BigEndian.Uint16(want[46:]))
	}
}

// ext builds an extension header of n bytes (a multiple of 8) with next
// header next; fill sets its type-specific bytes.
func ext(next uint8, n int, fill ...byte) []byte {
	b := make([]byte, n)
	b[0], b[1] = next, byte(n/8-1)
	copy(b[2:], fill)
	return b
}

// frag builds a fragment header.
func frag(next uint8, offset uint16, more bool, id uint32) []byte {
	b := make([]byte, 8)
	b[0] = next
	of := offset &^ 7
	if more {
		of |= 1
	}
	binary.BigEndian.PutUint16(b[2:], of)
	binary.BigEndian.PutUint32(b[4:], id)
	return b
}

// packet6 builds an IPv6 packet with next header next and payload parts.
func packet6(next uint8, parts ...[]byte) []byte {
	p := make([]byte, header.IPv6MinLen)
	for _, x := range parts {
		p = append(p, x...)
	}
	header.IPv6(p).Encode(&header.IPv6Fields{PayloadLength: uint16(len(p) - header.IPv6MinLen), NextHeader: next,
		HopLimit: 64, Src: cip6, Dst: vip6})
	return p
}

func TestWalkExtensions(t *testing.T) {
	const (
		hbh  = header.ProtoIPv6HopByHop
		dopt = header.ProtoIPv6Opts
		rt   = header.ProtoIPv6Route
		fr   = header.ProtoIPv6Frag
		tcp  = header.ProtoTCP
		udp  = header.ProtoUDP
	)
	l4 := make([]byte, 20)
	many := [][]byte{}
	for range 9 {
		many = append(many, ext(dopt, 8))
	}
	many[8][0] = tcp
	for _, tt := range []struct {
		name string
		pkt  []byte
		ok   bool
		want header.IPv6Ext // when ok
	}{
		{"no extension", packet6(tcp, l4), true, header.IPv6Ext{Proto: tcp, Offset: 40}},
		{"hop-by-hop", packet6(hbh, ext(tcp, 8), l4), true, header.IPv6Ext{Proto: tcp, Offset: 48}},
		{"hop-by-hop 16 bytes, dest opts", packet6(hbh, ext(dopt, 16), ext(udp, 8), l4), true, header.IPv6Ext{Proto: udp, Offset: 64}},
		{"routing, segments left 0", packet6(rt, ext(tcp, 24, 4, 0), l4), true, header.IPv6Ext{Proto: tcp, Offset: 64}},
		{"routing, segments left 1", packet6(rt, ext(tcp, 24, 4, 1), l4), false, header.IPv6Ext{}},
		{"first fragment", packet6(fr, frag(udp, 0, true, 77), l4), true,
			header.IPv6Ext{Proto: udp, Offset: 48, Fragment: true, MoreFragments: true, FragID: 77, FragNext: udp}},
		{"first fragment, dest opts after", packet6(hbh, ext(fr, 8), frag(dopt, 0, true, 5), ext(udp, 8), l4), true,
			header.IPv6Ext{Proto: udp, Offset: 64, Fragment: true, MoreFragments: true, FragID: 5, FragNext: dopt}},
		{"later fragment", packet6(fr, frag(tcp, 1448, false, 9), l4), true,
			header.IPv6Ext{Proto: tcp, Offset: 48, Fragment: true, FragOffset: 1448, FragID: 9, FragNext: tcp}},
		{"later fragment, opaque next header", packet6(fr, frag(dopt, 8, true, 9), l4), true,
			header.IPv6Ext{Proto: dopt, Offset: 48, Fragment: true, MoreFragments: true, FragOffset: 8, FragID: 9, FragNext: dopt}},
		{"atomic fragment", packet6(fr, frag(tcp, 0, false, 3), l4), true,
			header.IPv6Ext{Proto: tcp, Offset: 48, Fragment: true, FragID: 3, FragNext: tcp}},
		{"two fragment headers", packet6(fr, frag(fr, 0, true, 1), frag(tcp, 0, true, 1), l4), false, header.IPv6Ext{}},
		{"hop-by-hop not first", packet6(dopt, ext(hbh, 8), ext(tcp, 8), l4), false, header.IPv6Ext{}},
		{"AH", packet6(header.ProtoAH, ext(tcp, 16), l4), false, header.IPv6Ext{}},
		{"mobility", packet6(header.ProtoMobility, ext(tcp, 8)), false, header.IPv6Ext{}},
		{"ESP is upper layer", packet6(header.ProtoESP, l4), true, header.IPv6Ext{Proto: header.ProtoESP, Offset: 40}},
		{"no next header", packet6(header.ProtoIPv6NoNext), true, header.IPv6Ext{Proto: header.ProtoIPv6NoNext, Offset: 40}},
		{"ICMPv6 after dest opts", packet6(dopt, ext(header.ProtoICMPv6, 8), l4), true, header.IPv6Ext{Proto: header.ProtoICMPv6, Offset: 48}},
		{"extension header cut short", packet6(hbh, ext(tcp, 16)[:12]), false, header.IPv6Ext{}},
		{"extension header longer than payload", packet6(dopt, ext(tcp, 8)[:7]), false, header.IPv6Ext{}},
		{"fragment header cut short", packet6(fr, frag(tcp, 0, true, 1)[:6]), false, header.IPv6Ext{}},
		{"nine extension headers", packet6(dopt, many...), false, header.IPv6Ext{}},
		{"eight extension headers", packet6(dopt, append(many[1:len(many):len(many)], l4)...), true, header.IPv6Ext{Proto: tcp, Offset: 40 + 64}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ip := header.IPv6(tt.pkt)
			if !ip.IsValid(len(tt.pkt)) {
				t.Fatal("IsValid = false")
			}
			x, ok := ip.WalkExtensions()
			if ok != tt.ok {
				t.Fatalf("WalkExtensions ok = %v (%+v), want %v", ok, x, tt.ok)
			}
			if ok && x != tt.want {
				t.Fatalf("WalkExtensions = %+v, want %+v", x, tt.want)
			}
			if ok && x.IsFragment() != (x.Fragment && (x.MoreFragments || x.FragOffset != 0)) {
				t.Fatal("IsFragment disagrees with the fields")
			}
		})
	}
	// gopacket agrees on where the fragment header's fields are.
	g := serialize6(t, gpIPv6(layers.IPProtocolIPv6Fragment, cip6, vip6, false),
		&layers.IPv6Fragment{NextHeader: layers.IPProtocolUDP, FragmentOffset: 185, MoreFragments: true, Identification: 0xdeadbeef},
		gopacket.Payload(make([]byte, 16)))
	x, ok := header.IPv6(g).WalkExtensions()
	if !ok || x != (header.IPv6Ext{Proto: udp, Offset: 48, Fragment: true, MoreFragments: true, FragOffset: 185 * 8, FragID: 0xdeadbeef, FragNext: udp}) {
		t.Fatalf("gopacket fragment: %+v %v", x, ok)
	}
}

func TestIPv6IsValid(t *testing.T) {
	good := packet6(header.ProtoTCP, make([]byte, 20))
	for _, tt := range []struct {
		name    string
		b       []byte
		pktSize int
		want    bool
	}{
		{"valid", good, len(good), true},
		{"trailing padding", append(append([]byte(nil), good...), 0, 0, 0), len(good) + 3, true},
		{"short", good[:39], 39, false},
		{"version 4", withByte(good, 0, 0x45), len(good), false},
		{"payload beyond slice", good[:len(good)-1], len(good), false},
		{"payload beyond pktSize", good, len(good) - 1, false},
	} {
		if got := header.IPv6(tt.b).IsValid(tt.pktSize); got != tt.want {
			t.Errorf("%s: IsValid = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPseudoHeaderChecksum6(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	for range 1000 {
		src, dst := randAddr6(r), randAddr6(r)
		n := r.Uint32()
		if r.IntN(2) == 0 {
			n &= 0xffff
		}
		proto := uint8(r.Uint32())
		buf := make([]byte, 40)
		copy(buf, src[:])
		copy(buf[16:], dst[:])
		binary.BigEndian.PutUint32(buf[32:], n)
		buf[39] = proto
		if got, want := header.PseudoHeaderChecksum6(proto, src, dst, n), naiveChecksum(buf, 0); got != want {
			t.Fatalf("PseudoHeaderChecksum6 = %#04x, naive %#04x", got, want)
		}
	}
}

func TestChecksumUpdate128(t *testing.T) {
	r := rand.New(rand.NewPCG(63, 64))
	for i := range 2000 {
		data := make([]byte, 16+r.IntN(64)*2)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		if i%50 == 0 {
			clear(data[:16]) // all-zero and all-ones words at the edges
		} else if i%50 == 1 {
			for j := range 16 {
				data[j] = 0xff
			}
		}
		hc := ^naiveChecksum(data, 0)
		old := [16]byte(data[:16])
		nw := randAddr6(r)
		copy(data, nw[:])
		if got, want := header.ChecksumUpdate128(hc, old, nw), ^naiveChecksum(data, 0); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("ChecksumUpdate128 = %#04x, recompute %#04x", got, want)
		}
		// The updated checksum must validate: the sum with it is all ones.
		c := header.ChecksumUpdate128(hc, old, nw)
		if naiveChecksum(data, c) != 0xffff && naiveChecksum(data, 0) != 0 {
			t.Fatalf("updated checksum %#04x does not validate", c)
		}
	}
}

// TestIncrementalMatchesRecompute6 rewrites addresses and ports of seeded
// random IPv6 TCP and UDP packets (with extension headers) and compares the
// transport checksum with a full recomputation after each step; every
// hundredth packet is also checked by gopacket.
func TestIncrementalMatchesRecompute6(t *testing.T) {
	r := rand.New(rand.NewPCG(65, 66))
	for i := range 3000 {
		proto := []uint8{header.ProtoTCP, header.ProtoUDP}[i%2]
		pkt, off := randPacket6(r, proto)
		ip := header.IPv6(pkt)
		if x, ok := ip.WalkExtensions(); !ok || x.Offset != off || x.Proto != proto {
			t.Fatalf("iteration %d: walker %+v %v, generator put %d at %d", i, x, ok, proto, off)
		}
		seg := pkt[off:]
		for step := range 6 {
			var what string
			switch r.IntN(4) {
			case 0:
				a, old := randAddr6(r), ip.Source()
				ip.SetSource(a)
				pseudo6(proto, seg, old, a)
				what = "source address"
			case 1:
				a, old := randAddr6(r), ip.Destination()
				ip.SetDestination(a)
				pseudo6(proto, seg, old, a)
				what = "destination address"
			case 2:
				l4View(proto, seg).SetSourcePortWithChecksumUpdate(uint16(r.Uint32()))
				what = "source port"
			case 3:
				l4View(proto, seg).SetDestinationPortWithChecksumUpdate(uint16(r.Uint32()))
				what = "destination port"
			}
			got := binary.BigEndian.Uint16(seg[l4CsumOff(proto):])
			if want := refL4Checksum6(proto, ip.Source(), ip.Destination(), seg); got != want {
				t.Fatalf("iteration %d step %d (%s): checksum %#04x, recompute %#04x", i, step, what, got, want)
			}
		}
		if i%100 == 0 {
			decode6(t, pkt, layers.LayerTypeIPv6)
		}
	}
}

func pseudo6(proto uint8, seg []byte, old, new [16]byte) {
	if proto == header.ProtoTCP {
		header.TCP(seg).UpdateChecksumPseudoHeaderAddress6(old, new)
	} else {
		header.UDP(seg).UpdateChecksumPseudoHeaderAddress6(old, new)
	}
}

func TestUDP6ZeroChecksum(t *testing.T) {
	pkt := packet6(header.ProtoUDP, []byte{0x9c, 0x40, 0, 53, 0, 10, 0, 0, 'h', 'i'})
	udp := header.UDP(pkt[40:])
	if udp.IsChecksumValid6(cip6, vip6) {
		t.Fatal("a UDP checksum of 0 validates over IPv6")
	}
	udp.UpdateChecksumPseudoHeaderAddress6(vip6, rip6)
	udp.SetDestinationPortWithChecksumUpdate(5353)
	if udp.Checksum() != 0 {
		t.Fatalf("checksum 0 became %#04x: an invalid datagram made valid", udp.Checksum())
	}
	// A computed 0 is sent as 0xFFFF: with the payload word w = ~sum(rest)
	// the sum is all ones and its complement 0.
	binary.BigEndian.PutUint16(pkt[48:], 0)
	binary.BigEndian.PutUint16(pkt[48:], udp.CalculateChecksum6(cip6, vip6))
	if c, ref := udp.CalculateChecksum6(cip6, vip6), refL4Checksum6(header.ProtoUDP, cip6, vip6, udp); c != 0xffff || ref != 0xffff {
		t.Fatalf("computed checksum %#04x (reference %#04x), want 0xffff", c, ref)
	}
	// And an incremental update whose result is 0 writes 0xFFFF too.
	udp.SetChecksum(0xffff)
	binary.BigEndian.PutUint16(pkt[48:], 0)
	binary.BigEndian.PutUint16(pkt[48:], udp.CalculateChecksum6(cip6, vip6))
	udp.SetChecksum(udp.CalculateChecksum6(cip6, vip6))
	udp.UpdateChecksumPseudoHeaderAddress6(vip6, rip6)
	udp.UpdateChecksumPseudoHeaderAddress6(rip6, vip6)
	if udp.Checksum() != 0xffff {
		t.Fatalf("update gave %#04x, want 0xffff", udp.Checksum())
	}
}

// TestPartialChecksum6 gives seeded random packets the partial checksum an
// offloading sender leaves (the uncomplemented pseudo-header sum), rewrites
// both addresses and ports as NAT does, finishes the checksum as the device
// would (FinishChecksum) and checks the result against a full
// recomputation.
func TestPartialChecksum6(t *testing.T) {
	r := rand.New(rand.NewPCG(67, 68))
	for i := range 2000 {
		proto := []uint8{header.ProtoTCP, header.ProtoUDP}[i%2]
		pkt, off := randPacket6(r, proto)
		ip := header.IPv6(pkt)
		seg := pkt[off:]
		coff := l4CsumOff(proto)
		partial := func() uint16 {
			return naiveChecksum(pseudoHeader6(proto, ip.Source(), ip.Destination(), len(seg)), 0)
		}
		binary.BigEndian.PutUint16(seg[coff:], partial())
		newSrc, newDst := randAddr6(r), randAddr6(r)
		oldSrc, oldDst := ip.Source(), ip.Destination()
		ip.SetSource(newSrc)
		ip.SetDestination(newDst)
		if proto == header.ProtoTCP {
			tcp := header.TCP(seg)
			tcp.UpdatePartialChecksumPseudoHeaderAddress6(oldSrc, newSrc)
			tcp.UpdatePartialChecksumPseudoHeaderAddress6(oldDst, newDst)
			tcp.SetSourcePort(uint16(r.Uint32()))
			tcp.SetDestinationPort(uint16(r.Uint32()))
		} else {
			udp := header.UDP(seg)
			udp.UpdatePartialChecksumPseudoHeaderAddress6(oldSrc, newSrc)
			udp.UpdatePartialChecksumPseudoHeaderAddress6(oldDst, newDst)
			udp.SetSourcePort(uint16(r.Uint32()))
			udp.SetDestinationPort(uint16(r.Uint32()))
		}
		if got, want := binary.BigEndian.Uint16(seg[coff:]), partial(); got != want {
			t.Fatalf("iteration %d: partial checksum %#04x, pseudo-header sum %#04x", i, got, want)
		}
		o := header.Offload{Flags: header.OffloadNeedsCsum, CsumStart: uint16(off), CsumOffset: uint16(coff)}
		if !header.FinishChecksum(pkt, &o, proto == header.ProtoUDP) {
			t.Fatal("FinishChecksum refused")
		}
		if got, want := binary.BigEndian.Uint16(seg[coff:]), refL4Checksum6(proto, newSrc, newDst, seg); got != want {
			t.Fatalf("iteration %d: finished checksum %#04x, recompute %#04x", i, got, want)
		}
	}
}

func TestWriteICMPv6PacketTooBig(t *testing.T) {
	small := serialize6(t, gpIPv6(layers.IPProtocolTCP, cip6, vip6, false), gpTCP(), gopacket.Payload("hello"))
	big := serialize6(t, gpIPv6(layers.IPProtocolTCP, cip6, vip6, true), gpTCP(), gopacket.Payload(make([]byte, 1900)))
	for _, tt := range []struct {
		name  string
		orig  []byte
		quote int
	}{
		{"small packet quoted whole", small, len(small)},
		{"large packet quoted to 1280 bytes in all", big, 1280 - 48},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, 1500)
			n := header.WriteICMPv6PacketTooBig(b, dir6, header.IPv6(tt.orig), 1400)
			if n != 48+tt.quote {
				t.Fatalf("wrote %d bytes, want %d", n, 48+tt.quote)
			}
			p := decode6(t, b[:n], layers.LayerTypeIPv6)
			gip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			gic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			if !ok {
				t.Fatalf("no ICMPv6 layer: %v", p)
			}
			if !gip.SrcIP.Equal(ip6(dir6)) || !gip.DstIP.Equal(ip6(cip6)) || gip.HopLimit != 64 ||
				gip.NextHeader != layers.IPProtocolICMPv6 || gip.TrafficClass != 0xb8 {
				t.Errorf("IPv6 header %+v", gip)
			}
			if gic.TypeCode != layers.CreateICMPv6TypeCode(2, 0) {
				t.Errorf("type/code %v", gic.TypeCode)
			}
			m := header.ICMPv6(b[40:n])
			if m.Type() != header.ICMPv6PacketTooBig || m.Code() != 0 || m.MTU() != 1400 || !m.IsError() ||
				!m.IsChecksumValid(dir6, cip6) || m.IsChecksumValid(dir6, rip6) {
				t.Errorf("ICMPv6 type %d code %d MTU %d error %v", m.Type(), m.Code(), m.MTU(), m.IsError())
			}
			if !bytes.Equal(m.Payload(), tt.orig[:tt.quote]) {
				t.Error("quote is not the start of the original packet")
			}
		})
	}
	if n := header.WriteICMPv6PacketTooBig(make([]byte, 100), dir6, header.IPv6(small), 1400); n != 0 {
		t.Errorf("into a short buffer: wrote %d", n)
	}
	if n := header.WriteICMPv6PacketTooBig(make([]byte, 1500), dir6, header.IPv6(small[:30]), 1400); n != 0 {
		t.Errorf("from a short original: wrote %d", n)
	}
}

func TestICMPv6Echo(t *testing.T) {
	pkt := serialize6(t, gpIPv6(layers.IPProtocolICMPv6, cip6, vip6, false),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}, &layers.ICMPv6Echo{Identifier: 7, SeqNumber: 9})
	decode6(t, pkt, layers.LayerTypeIPv6)
	m := header.ICMPv6(header.IPv6(pkt).Payload())
	if !m.IsValid() || m.Type() != header.ICMPv6EchoRequest || m.IsError() || !m.IsChecksumValid(cip6, vip6) ||
		m.CalculateChecksum(cip6, vip6) != m.Checksum() {
		t.Fatalf("echo: type %d error %v checksum %#04x calc %#04x", m.Type(), m.IsError(), m.Checksum(), m.CalculateChecksum(cip6, vip6))
	}
}

// TestIPv6NoAllocs proves the IPv6 forwarding-path operations allocate
// nothing.
func TestIPv6NoAllocs(t *testing.T) {
	pkt := serialize6(t, gpIPv6(layers.IPProtocolIPv6Destination, cip6, vip6, true), gpDestOpts(layers.IPProtocolTCP), gpTCP(), gopacket.Payload("payload"))
	ptb := make([]byte, 1500)
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"validate and walk", func() {
			ip := header.IPv6(pkt)
			if ip.IsValid(len(pkt)) {
				if x, ok := ip.WalkExtensions(); ok {
					sink = header.TCP(pkt[x.Offset:]).SourcePort()
				}
			}
		}},
		{"NAT rewrite and undo", func() {
			ip := header.IPv6(pkt)
			tcp := header.TCP(pkt[56:])
			ip.SetDestination(rip6)
			tcp.UpdateChecksumPseudoHeaderAddress6(vip6, rip6)
			tcp.SetDestinationPortWithChecksumUpdate(8080)
			ip.SetDestination(vip6)
			tcp.UpdateChecksumPseudoHeaderAddress6(rip6, vip6)
			tcp.SetDestinationPortWithChecksumUpdate(80)
		}},
		{"Packet Too Big", func() { sink = uint16(header.WriteICMPv6PacketTooBig(ptb, dir6, pkt, 1280)) }},
	} {
		if n := testing.AllocsPerRun(200, tt.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
	decode6(t, pkt, layers.LayerTypeIPv6)
}
