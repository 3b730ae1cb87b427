package realserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	testDir6    = netip.MustParseAddr("fd00:203::1")
	testRIP6    = netip.MustParseAddr("fd00:203::2")
	testVIP6    = netip.MustParseAddr("fd00:203::100")
	testClient6 = netip.MustParseAddrPort("[2001:db8:100::7]:40000")
	testVIP6b   = netip.MustParseAddr("fd00:203::101") // a second IPv6 VIP, not served
)

// udpPacket6 returns an IPv6 UDP packet from src to dst, checksummed.
func udpPacket6(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, FlowLabel: 0x12345,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

func testVIPs6() addrSet6 { return addrSet6{testVIP6.As16(): {}} }

// TestDecapsulate6: what a raw socket for next header 41 hands over is the
// inner packet; it is taken when it is IPv6 to a VIP, trimmed to its
// payload length.
func TestDecapsulate6(t *testing.T) {
	inner := udpPacket6(t, testClient6, netip.AddrPortFrom(testVIP6, 9999), []byte("hello"))
	mutate := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(inner)) }
	for _, tc := range []struct {
		name string
		pkt  []byte
		want verdict
	}{
		{"good", inner, verdictDecap},
		{"bytes after the payload length", append(bytes.Clone(inner), 0xee, 0xee), verdictDecap},
		{"not to a VIP", udpPacket6(t, testClient6, netip.AddrPortFrom(testVIP6b, 9999), []byte("x")), verdictNotVIP},
		{"empty", nil, verdictBad},
		{"short header", inner[:39], verdictBad},
		{"IPv4 inside", udpPacket(t, testClient, netip.AddrPortFrom(testVIP, 9999), []byte("hello, IPv4 inside IPv6")), verdictBad},
		{"payload length past the end", mutate(func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[ipv6PayloadLenOff:], uint16(len(p)))
			return p
		}), verdictBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, v := decapsulate6(tc.pkt, testVIPs6())
			if v != tc.want {
				t.Fatalf("verdict %d, want %d", v, tc.want)
			}
			if v == verdictDecap && !bytes.Equal(got, inner) {
				t.Fatalf("inner = % x\nwant    % x", got, inner)
			}
		})
	}
	vips := testVIPs6()
	if n := testing.AllocsPerRun(100, func() { decapsulate6(inner, vips) }); n != 0 {
		t.Fatalf("decapsulate6 allocates %v times per packet", n)
	}
}

// TestProcess6: a batch of IPv6-in-IPv6 payloads is written to the TUN
// device packet by packet, in order, and what is not taken is counted.
func TestProcess6(t *testing.T) {
	for _, coalesce := range []bool{true, false} {
		b := newDecapBatch6(testVIPs6(), coalesce)
		var inner [][]byte
		for i := range 5 {
			inner = append(inner, udpPacket6(t, testClient6, netip.AddrPortFrom(testVIP6, uint16(9000+i)), bytes.Repeat([]byte{byte(i)}, 100*i+1)))
		}
		all := append(append([][]byte(nil), inner...),
			udpPacket6(t, testClient6, netip.AddrPortFrom(testVIP6b, 9999), []byte("x")),
			[]byte("not IPv6 at all, and long enough for a header"))
		for i, p := range all {
			b.sizes[i] = copy(b.bufs[i], p)
		}
		w := &recordWriter{}
		b.process(len(all), w)
		if len(w.frames) != len(inner) {
			t.Fatalf("coalesce=%v: %d frames written, want %d", coalesce, len(w.frames), len(inner))
		}
		for i, f := range w.frames {
			if !bytes.Equal(f, inner[i]) || w.parts[i] != 1 || w.vnets[i].GSOType != 0 {
				t.Errorf("coalesce=%v: frame %d differs or is merged (%d parts, %+v)", coalesce, i, w.parts[i], w.vnets[i])
			}
		}
		s := &b.stats
		if s.decapsulated.Load() != 5 || s.notVIP.Load() != 1 || s.bad.Load() != 1 || s.notLocal.Load() != 0 {
			t.Errorf("coalesce=%v: decapsulated %d not_vip %d bad %d not_local %d, want 5 1 1 0", coalesce,
				s.decapsulated.Load(), s.notVIP.Load(), s.bad.Load(), s.notLocal.Load())
		}
		w2 := &countWriter{}
		if allocs := testing.AllocsPerRun(100, func() { b.process(len(all), w2) }); allocs != 0 {
			t.Errorf("coalesce=%v: process allocates %v times per batch", coalesce, allocs)
		}
	}
}
