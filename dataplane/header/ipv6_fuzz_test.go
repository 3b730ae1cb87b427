package header_test

import (
	"encoding/binary"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// FuzzIPv6 checks that IsValid and WalkExtensions never panic, that what
// the walker reports stays inside the packet and names no extension header
// it should have stepped over, and that a TCP or UDP header it finds keeps
// a valid checksum through an incremental NAT rewrite. Run it with
// go test -fuzz=FuzzIPv6 -fuzztime=20s ./dataplane/header.
func FuzzIPv6(f *testing.F) {
	l4 := make([]byte, 20)
	l4[12] = 0x50
	f.Add(packet6(header.ProtoTCP, l4), 0)                                                                   // plain TCP
	f.Add(packet6(header.ProtoIPv6HopByHop, ext(header.ProtoIPv6Opts, 8), ext(header.ProtoTCP, 16), l4), 0)  // hop-by-hop, dest opts
	f.Add(packet6(header.ProtoIPv6Route, ext(header.ProtoUDP, 24, 4, 0), []byte{0, 1, 0, 2, 0, 8, 0, 0}), 0) // routing, segments left 0
	f.Add(packet6(header.ProtoIPv6Route, ext(header.ProtoUDP, 24, 4, 2), []byte{0, 1, 0, 2, 0, 8, 0, 0}), 0) // routing, segments left 2
	f.Add(packet6(header.ProtoIPv6Frag, frag(header.ProtoTCP, 0, true, 1), l4), 0)                           // first fragment
	f.Add(packet6(header.ProtoIPv6Frag, frag(header.ProtoTCP, 64, false, 1), l4), 0)                         // later fragment
	f.Add(packet6(header.ProtoIPv6Opts, ext(header.ProtoIPv6HopByHop, 8), ext(header.ProtoTCP, 8), l4), 0)   // hop-by-hop not first
	f.Add(packet6(header.ProtoIPv6HopByHop, ext(header.ProtoTCP, 16)[:12]), 0)                               // cut short
	f.Add(withByte(packet6(header.ProtoIPv6Opts, ext(header.ProtoTCP, 8), l4), 41, 0xff), 0)                 // length 2040 bytes
	f.Add(packet6(header.ProtoTCP, l4), -1)                                                                  // negative pktSize
	f.Fuzz(func(t *testing.T, data []byte, short int) {
		pktSize := len(data) - short
		ip := header.IPv6(data)
		if !ip.IsValid(pktSize) {
			return
		}
		end := header.IPv6MinLen + int(ip.PayloadLength())
		if end > len(data) || len(ip.Payload()) != int(ip.PayloadLength()) {
			t.Fatalf("IsValid accepted payload length %d in %d bytes", ip.PayloadLength(), len(data))
		}
		x, ok := ip.WalkExtensions()
		if !ok {
			return
		}
		if x.Offset < header.IPv6MinLen || x.Offset > end || (x.Offset-header.IPv6MinLen)%8 != 0 {
			t.Fatalf("upper layer at %d, outside [40, %d] or not after whole 8-byte units", x.Offset, end)
		}
		later := x.Fragment && x.FragOffset != 0
		switch x.Proto {
		case header.ProtoIPv6HopByHop, header.ProtoIPv6Opts, header.ProtoIPv6Route, header.ProtoIPv6Frag:
			if !later {
				t.Fatalf("walk ended on extension header %d", x.Proto)
			}
		case header.ProtoAH, header.ProtoMobility:
			if !later {
				t.Fatalf("walk accepted extension header %d it does not know", x.Proto)
			}
		}
		if later || x.Proto != header.ProtoTCP && x.Proto != header.ProtoUDP {
			return
		}
		seg := data[x.Offset:end]
		src, dst := ip.Source(), ip.Destination()
		nw := [16]byte{0xfd, 15: byte(len(data))}
		switch x.Proto {
		case header.ProtoTCP:
			tcp := header.TCP(seg)
			if !tcp.IsValid(len(seg)) {
				return
			}
			tcp.SetChecksum(tcp.CalculateChecksum6(src, dst))
			ip.SetDestination(nw)
			tcp.UpdateChecksumPseudoHeaderAddress6(dst, nw)
			tcp.SetDestinationPortWithChecksumUpdate(^tcp.DestinationPort())
			if !tcp.IsChecksumValid6(src, nw) || tcp.Checksum() != refL4Checksum6(header.ProtoTCP, src, nw, seg) {
				t.Fatalf("TCP checksum %#04x after rewrite, reference %#04x", tcp.Checksum(), refL4Checksum6(header.ProtoTCP, src, nw, seg))
			}
		case header.ProtoUDP:
			udp := header.UDP(seg)
			if !udp.IsValid(len(seg)) {
				return
			}
			seg = seg[:udp.Length()]
			udp.SetChecksum(udp.CalculateChecksum6(src, dst))
			ip.SetDestination(nw)
			udp.UpdateChecksumPseudoHeaderAddress6(dst, nw)
			udp.SetDestinationPortWithChecksumUpdate(^udp.DestinationPort())
			if !udp.IsChecksumValid6(src, nw) || udp.Checksum() != refL4Checksum6(header.ProtoUDP, src, nw, seg) {
				t.Fatalf("UDP checksum %#04x after rewrite, reference %#04x", udp.Checksum(), binary.BigEndian.Uint16(seg[6:]))
			}
		}
	})
}
