package realserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// udpPacket builds an IPv4/UDP packet with gopacket, an encoder
// independent of the code under test.
func udpPacket(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

// ipipPacket wraps inner in an outer IPv4 header, protocol 4 (RFC 2003).
func ipipPacket(t testing.TB, src, dst netip.Addr, inner []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolIPv4,
		SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return serialize(t, ip, gopacket.Payload(inner))
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	testRIP    = netip.MustParseAddr("10.203.0.2")
	testDir    = netip.MustParseAddr("10.203.0.1")
	testVIP    = netip.MustParseAddr("10.203.0.100")
	testClient = netip.MustParseAddrPort("198.51.100.7:40000")
)

func testSets() (local, vips addrSet) {
	return addrSet{testRIP.As4(): {}, testVIP.As4(): {}}, addrSet{testVIP.As4(): {}}
}

func TestDecapsulate(t *testing.T) {
	local, vips := testSets()
	inner := udpPacket(t, testClient, netip.AddrPortFrom(testVIP, 9999), []byte("hello"))
	good := ipipPacket(t, testDir, testRIP, inner)

	mutate := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(good)) }
	const innerOff = ipv4MinHdrLen
	for _, tc := range []struct {
		name string
		pkt  []byte
		want verdict
	}{
		{"good", good, verdictDecap},
		{"outer to the VIP is local too", ipipPacket(t, testDir, testVIP, inner), verdictDecap},
		{"padding after the outer total length", append(bytes.Clone(good), 0, 0, 0, 0), verdictDecap},
		{"outer not local", ipipPacket(t, testDir, netip.MustParseAddr("10.203.0.9"), inner), verdictNotLocal},
		{"inner not to a VIP", ipipPacket(t, testDir, testRIP,
			udpPacket(t, testClient, netip.MustParseAddrPort("10.203.0.200:9999"), []byte("x"))), verdictNotVIP},
		{"empty", nil, verdictBad},
		{"short outer", good[:19], verdictBad},
		{"outer IPv6 version", mutate(func(p []byte) []byte { p[0] = 0x65; return p }), verdictBad},
		{"outer IHL 4", mutate(func(p []byte) []byte { p[0] = 0x44; return p }), verdictBad},
		{"outer IHL past the end", mutate(func(p []byte) []byte { p[0] = 0x4f; return p[:40] }), verdictBad},
		{"outer total length past the end", mutate(func(p []byte) []byte { return p[:len(p)-1] }), verdictBad},
		{"not IPIP", mutate(func(p []byte) []byte { p[ipv4ProtoOff] = 17; return p }), verdictBad},
		{"outer fragment", mutate(func(p []byte) []byte { p[ipv4FragOff] |= 0x20; return p }), verdictBad},
		{"inner truncated", mutate(func(p []byte) []byte {
			p = p[:innerOff+10]
			binary.BigEndian.PutUint16(p[ipv4TotalLenOff:], uint16(len(p)))
			return p
		}), verdictBad},
		{"inner not IPv4", mutate(func(p []byte) []byte { p[innerOff] = 0x60; return p }), verdictBad},
		{"inner total length past the outer", mutate(func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[innerOff+ipv4TotalLenOff:], uint16(len(inner)+1))
			return p
		}), verdictBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, v := decapsulate(tc.pkt, local, vips)
			if v != tc.want {
				t.Fatalf("verdict %d, want %d", v, tc.want)
			}
			if v == verdictDecap && !bytes.Equal(got, inner) && tc.name != "outer to the VIP is local too" {
				t.Fatalf("inner = % x\nwant    % x", got, inner)
			}
		})
	}
}

func TestDecapsulateTrimsInner(t *testing.T) {
	local, vips := testSets()
	inner := udpPacket(t, testClient, netip.AddrPortFrom(testVIP, 9999), []byte("hello"))
	// Bytes after the inner total length (link padding copied by a sloppy
	// encapsulator) are not part of the inner packet.
	pkt := ipipPacket(t, testDir, testRIP, append(bytes.Clone(inner), 0xee, 0xee))
	got, v := decapsulate(pkt, local, vips)
	if v != verdictDecap || !bytes.Equal(got, inner) {
		t.Fatalf("decapsulate = %d, % x; want the inner packet without padding", v, got)
	}
}

func TestDecapsulateNoAllocs(t *testing.T) {
	local, vips := testSets()
	pkt := ipipPacket(t, testDir, testRIP, udpPacket(t, testClient, netip.AddrPortFrom(testVIP, 9999), []byte("hello")))
	if n := testing.AllocsPerRun(100, func() { decapsulate(pkt, local, vips) }); n != 0 {
		t.Fatalf("decapsulate allocates %v times per packet", n)
	}
}

func FuzzDecapsulate(f *testing.F) {
	inner := udpPacket(f, testClient, netip.AddrPortFrom(testVIP, 9999), []byte("hello"))
	f.Add(ipipPacket(f, testDir, testRIP, inner))                   // a good packet
	f.Add(ipipPacket(f, testDir, testRIP, inner[:20]))              // inner header only
	f.Add(ipipPacket(f, testDir, testRIP, nil))                     // no inner packet
	f.Add([]byte{0x4f, 0, 0, 20, 0, 0, 0, 0, 64, 4, 0, 0, 0, 0, 0}) // IHL 15, short
	local, vips := testSets()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		got, v := decapsulate(pkt, local, vips)
		if v != verdictDecap {
			if got != nil {
				t.Fatalf("verdict %d with an inner packet", v)
			}
			return
		}
		if len(got) < ipv4MinHdrLen || got[0]>>4 != 4 || int(binary.BigEndian.Uint16(got[ipv4TotalLenOff:])) != len(got) {
			t.Fatalf("inner packet is not a whole IPv4 packet: % x", got)
		}
		if _, ok := vips[[4]byte(got[ipv4DstOff:])]; !ok {
			t.Fatalf("inner destination %v is not a VIP", got[ipv4DstOff:ipv4DstOff+4])
		}
		if _, ok := local[[4]byte(pkt[ipv4DstOff:])]; !ok {
			t.Fatal("outer destination is not local")
		}
		if cap(got) > cap(pkt) {
			t.Fatal("inner packet is not a subslice of the outer")
		}
	})
}
