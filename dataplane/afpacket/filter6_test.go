package afpacket

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

var (
	vip6     = [16]byte{0xfd, 0, 0, 0x20, 15: 0x01, 14: 0x01}       // fd00:20::100
	vip6b    = [16]byte{0xfd, 0, 0, 0x20, 15: 0x01, 14: 0x02}       // fd00:20::201 (another VIP)
	client6  = [16]byte{0xfd, 0, 0, 0x10, 15: 0x07}                 // fd00:10::7
	natReal6 = [16]byte{0xfd, 0, 0, 0x20, 15: 0x11}                 // fd00:20::11
	other6   = [16]byte{0xfd, 0, 0, 0x20, 15: 0x99}                 // fd00:20::99
	nearVIP6 = [16]byte{0xfd, 0, 0, 0x21, 15: 0x01, 14: 0x01}       // differs in the first word only
	lateVIP6 = [16]byte{0xfd, 0, 0, 0x20, 15: 0x01, 14: 0x01, 8: 1} // differs in the third word only
	lip6     = [16]byte{0xfd, 0, 0, 0x20, 15: 0x02}                 // fd00:20::2, a FULLNAT local address
	router6  = [16]byte{0xfd, 0, 0, 0x10, 15: 0x01}                 // fd00:10::1
)

// testMatch6 is testMatch with IPv6 endpoints beside the IPv4 ones.
func testMatch6() *Match {
	m := testMatch()
	m.VIPs6 = []Endpoint6{
		{Proto: protoTCP, Addr: vip6, Port: 80},
		{Proto: protoUDP, Addr: vip6, Port: 53},
		{Proto: protoTCP, Addr: vip6b, Port: 443},
	}
	m.NATReals6 = []Endpoint6{{Proto: protoTCP, Addr: natReal6, Port: 8080}, {Proto: protoUDP, Addr: natReal6, Port: 5353}}
	m.Locals6 = []LocalRange6{{Addr: lip6, PortLo: 1024, PortHi: 32767}}
	return m
}

// icmp6Frame builds an ICMPv6 error of type typ from src to dst quoting
// the IPv6 packet of frame (an Ethernet frame), cut to quote bytes.
func icmp6Frame(t testing.TB, typ uint8, src, dst [16]byte, frame []byte, quote int) []byte {
	t.Helper()
	q := frame[ethHdrLen:]
	q = q[:min(quote, len(q))]
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:])}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	_ = ic.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, ic, gopacket.Payload(append(make([]byte, 4), q...))); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// frame6Opt adjusts the layers of an IPv6 test frame: it may return
// extension headers to put between the IPv6 and the transport header.
type frame6Opt func(ip *layers.IPv6) []gopacket.SerializableLayer

// withHopByHop puts a hop-by-hop options header (a PadN option) first.
func withHopByHop(ip *layers.IPv6) []gopacket.SerializableLayer {
	h := &layers.IPv6HopByHop{}
	h.NextHeader = ip.NextHeader
	h.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
	ip.NextHeader = layers.IPProtocolIPv6HopByHop
	return []gopacket.SerializableLayer{h}
}

// withFragment6 puts a fragment header (offset 0, more fragments) first.
func withFragment6(ip *layers.IPv6) []gopacket.SerializableLayer {
	f := &layers.IPv6Fragment{NextHeader: ip.NextHeader, MoreFragments: true, Identification: 7}
	ip.NextHeader = layers.IPProtocolIPv6Fragment
	return []gopacket.SerializableLayer{f}
}

// withLaterFragment6 puts a fragment header with offset 1480 first: the
// transport header after it is then payload, as in a later fragment.
func withLaterFragment6(ip *layers.IPv6) []gopacket.SerializableLayer {
	f := &layers.IPv6Fragment{NextHeader: ip.NextHeader, FragmentOffset: 185, Identification: 7}
	ip.NextHeader = layers.IPProtocolIPv6Fragment
	return []gopacket.SerializableLayer{f}
}

// rawLayer is a header given as bytes.
type rawLayer []byte

func (r rawLayer) LayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

func (r rawLayer) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	buf, err := b.PrependBytes(len(r))
	if err != nil {
		return err
	}
	copy(buf, r)
	return nil
}

// withExt6 puts an extension header of type typ and size bytes (a
// multiple of 8) first, zero but for its Next Header, its length and, in
// a routing header, segments left (its type is 4, a segment routing
// header).
func withExt6(typ uint8, size int, segLeft uint8) frame6Opt {
	return func(ip *layers.IPv6) []gopacket.SerializableLayer {
		h := make(rawLayer, size)
		h[0], h[1] = uint8(ip.NextHeader), uint8(size/8-1)
		if typ == protoRouting {
			h[2], h[3] = 4, segLeft
		}
		ip.NextHeader = layers.IPProtocol(typ)
		return []gopacket.SerializableLayer{h}
	}
}

var (
	withDstOpts   = withExt6(protoDstOpts, 8, 0)
	withBigHBH    = withExt6(protoHopByHop, 24, 0)
	withRouting   = withExt6(protoRouting, 24, 0)
	withRoutingSL = withExt6(protoRouting, 24, 1) // segments left: not at its final destination
	withAH        = withExt6(51, 16, 0)
)

// ipv6L4Frame builds Ethernet/IPv6/TCP-or-UDP with ipv4Frame's payload;
// any other protocol gets eight bytes that read as the same ports.
func ipv6L4Frame(t testing.TB, proto uint8, src [16]byte, sport uint16, dst [16]byte, dport uint16, opts ...frame6Opt) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocol(proto), SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:])}
	// The first option's headers come first: apply them from the last,
	// each taking the Next Header the ones after it left.
	var ext []gopacket.SerializableLayer
	for i := len(opts) - 1; i >= 0; i-- {
		ext = append(opts[i](ip), ext...)
	}
	ls := append([]gopacket.SerializableLayer{eth, ip}, ext...)
	switch proto {
	case protoTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, tcp)
	case protoUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		_ = udp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, udp)
	default:
		var b [8]byte
		binary.BigEndian.PutUint16(b[0:], sport)
		binary.BigEndian.PutUint16(b[2:], dport)
		ls = append(ls, gopacket.Payload(b[:]))
	}
	ls = append(ls, gopacket.Payload("gvs afpacket test"))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func TestFilterProgram6Golden(t *testing.T) {
	prog, err := FilterProgram(testMatch6())
	if err != nil {
		t.Fatal(err)
	}
	badVersion := ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80)
	badVersion[ethHdrLen] = 0x40
	short := ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80)[:ethHdrLen+ip6HdrLen+2]
	tests := []struct {
		name  string
		frame []byte
		meta  skbMeta
		want  bool
	}{
		{"tcp to vip", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80), skbMeta{}, true},
		{"udp to vip", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53), skbMeta{}, true},
		{"tcp to second vip", ipv6L4Frame(t, protoTCP, client6, 40000, vip6b, 443), skbMeta{}, true},
		{"to otherhost mac", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80), skbMeta{pktType: 3}, true},
		{"wrong port", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 81), skbMeta{}, false},
		{"port of other vip", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 443), skbMeta{}, false},
		{"wrong proto", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 80), skbMeta{}, false},
		{"wrong addr", ipv6L4Frame(t, protoTCP, client6, 40000, other6, 80), skbMeta{}, false},
		{"addr differs in first word", ipv6L4Frame(t, protoTCP, client6, 40000, nearVIP6, 80), skbMeta{}, false},
		{"addr differs in third word", ipv6L4Frame(t, protoTCP, client6, 40000, lateVIP6, 80), skbMeta{}, false},
		{"vip as source", ipv6L4Frame(t, protoTCP, vip6, 80, client6, 40000), skbMeta{}, false},
		{"ipv4 vip port on ipv6", ipv6L4Frame(t, protoTCP, client6, 40000, other6, 443), skbMeta{}, false},
		{"nat reply", ipv6L4Frame(t, protoTCP, natReal6, 8080, client6, 40000), skbMeta{}, true},
		{"nat reply udp", ipv6L4Frame(t, protoUDP, natReal6, 5353, client6, 40000), skbMeta{}, true},
		{"nat reply wrong port", ipv6L4Frame(t, protoTCP, natReal6, 8081, client6, 40000), skbMeta{}, false},
		{"nat reply wrong proto", ipv6L4Frame(t, protoUDP, natReal6, 8080, client6, 40000), skbMeta{}, false},
		{"to nat real", ipv6L4Frame(t, protoTCP, client6, 40000, natReal6, 8080), skbMeta{}, false},
		{"nat reply outgoing", ipv6L4Frame(t, protoTCP, natReal6, 8080, client6, 40000), skbMeta{pktType: pktTypeOutgoing}, false},
		{"outgoing", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80), skbMeta{pktType: pktTypeOutgoing}, false},
		{"vlan offloaded", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80), skbMeta{vlan: true}, false},
		// A first fragment is matched by its ports, a later one by its
		// address (fragment6.go in the dataplane).
		{"first fragment", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withFragment6), skbMeta{}, true},
		{"first fragment, wrong port", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 54, withFragment6), skbMeta{}, false},
		{"first fragment of a nat reply", ipv6L4Frame(t, protoTCP, natReal6, 8080, client6, 40000, withFragment6), skbMeta{}, true},
		{"first fragment of a fullnat reply", ipv6L4Frame(t, protoTCP, natReal6, 9000, lip6, 2000, withFragment6), skbMeta{}, true},
		{"first fragment truncated before ports", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withFragment6)[:ethHdrLen+ip6HdrLen+8+2], skbMeta{}, false},
		{"later fragment to vip", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 9, withLaterFragment6), skbMeta{}, true},
		{"later fragment to second vip", ipv6L4Frame(t, protoTCP, client6, 40000, vip6b, 9, withLaterFragment6), skbMeta{}, true},
		{"later fragment from nat real", ipv6L4Frame(t, protoUDP, natReal6, 9, client6, 40000, withLaterFragment6), skbMeta{}, true},
		{"later fragment to a local address", ipv6L4Frame(t, protoUDP, natReal6, 9, lip6, 9, withLaterFragment6), skbMeta{}, true},
		{"later fragment to other", ipv6L4Frame(t, protoUDP, client6, 40000, other6, 53, withLaterFragment6), skbMeta{}, false},
		{"later fragment, addr differs in third word", ipv6L4Frame(t, protoUDP, client6, 40000, lateVIP6, 53, withLaterFragment6), skbMeta{}, false},
		{"later fragment to nat real", ipv6L4Frame(t, protoUDP, client6, 40000, natReal6, 53, withLaterFragment6), skbMeta{}, false},
		{"later fragment of icmpv6", ipv6L4Frame(t, 58, client6, 40000, vip6, 53, withLaterFragment6), skbMeta{}, false},
		{"later fragment outgoing", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withLaterFragment6), skbMeta{pktType: pktTypeOutgoing}, false},
		{"fragment of icmpv6", ipv6L4Frame(t, 58, client6, 40000, vip6, 53, withFragment6), skbMeta{}, false},
		// Up to three extension headers of ExtensionChains6, the ports
		// behind them.
		{"hop-by-hop", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop), skbMeta{}, true},
		{"hop-by-hop, wrong port", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 81, withHopByHop), skbMeta{}, false},
		{"destination options", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withDstOpts), skbMeta{}, true},
		{"routing, segments left 0", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withRouting), skbMeta{}, true},
		{"routing with segments left", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withRoutingSL), skbMeta{}, false},
		{"hop-by-hop, destination options", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withBigHBH, withDstOpts), skbMeta{}, true},
		{"destination options, routing", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withDstOpts, withRouting), skbMeta{}, true},
		{"routing, destination options", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withRouting, withDstOpts), skbMeta{}, true},
		{"hop-by-hop, routing, destination options", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop, withRouting, withDstOpts), skbMeta{}, true},
		{"hop-by-hop, destination options, routing", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop, withDstOpts, withRouting), skbMeta{}, true},
		{"three headers, the last with segments left", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop, withDstOpts, withRoutingSL), skbMeta{}, false},
		{"nat reply behind destination options", ipv6L4Frame(t, protoTCP, natReal6, 8080, client6, 40000, withDstOpts), skbMeta{}, true},
		{"fullnat reply behind hop-by-hop", ipv6L4Frame(t, protoUDP, natReal6, 53, lip6, 2000, withHopByHop), skbMeta{}, true},
		{"first fragment behind hop-by-hop", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withHopByHop, withFragment6), skbMeta{}, true},
		{"first fragment behind hop-by-hop, wrong port", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 54, withHopByHop, withFragment6), skbMeta{}, false},
		{"first fragment behind three headers", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withHopByHop, withDstOpts, withRouting, withFragment6), skbMeta{}, true},
		{"later fragment behind hop-by-hop", ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 9, withHopByHop, withLaterFragment6), skbMeta{}, true},
		{"later fragment behind hop-by-hop to other", ipv6L4Frame(t, protoUDP, client6, 40000, other6, 9, withHopByHop, withLaterFragment6), skbMeta{}, false},
		{"later fragment of icmpv6 behind routing", ipv6L4Frame(t, 58, client6, 40000, vip6, 53, withRouting, withLaterFragment6), skbMeta{}, false},
		// Chains nftables cannot follow, other extension headers, and
		// other ICMPv6 stay with the kernel.
		{"four headers", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop, withDstOpts, withRouting, withDstOpts), skbMeta{}, false},
		{"destination options twice", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withDstOpts, withDstOpts), skbMeta{}, false},
		{"routing twice", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withRouting, withRouting), skbMeta{}, false},
		{"destination options, routing, destination options", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withDstOpts, withRouting, withDstOpts), skbMeta{}, false},
		{"hop-by-hop second", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withDstOpts, withHopByHop), skbMeta{}, false},
		{"authentication header", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withAH), skbMeta{}, false},
		{"hop-by-hop, authentication header", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop, withAH), skbMeta{}, false},
		{"icmpv6 error behind hop-by-hop", ipv6L4Frame(t, 58, router6, 0x0100, vip6, 0, withHopByHop), skbMeta{}, false},
		{"hop-by-hop cut before the ports", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop)[:ethHdrLen+ip6HdrLen+8+2], skbMeta{}, false},
		{"hop-by-hop longer than the frame", ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop)[:ethHdrLen+ip6HdrLen+4], skbMeta{}, false},
		{"icmpv6", ipv6L4Frame(t, 58, client6, 40000, vip6, 80), skbMeta{}, false},
		// FULLNAT replies to a local address and port.
		{"fullnat reply", ipv6L4Frame(t, protoTCP, natReal6, 9000, lip6, 1024), skbMeta{}, true},
		{"fullnat reply udp top port", ipv6L4Frame(t, protoUDP, other6, 53, lip6, 32767), skbMeta{}, true},
		{"fullnat reply below the range", ipv6L4Frame(t, protoTCP, natReal6, 9000, lip6, 1023), skbMeta{}, false},
		{"fullnat reply above the range", ipv6L4Frame(t, protoTCP, natReal6, 9000, lip6, 32768), skbMeta{}, false},
		{"from the local address", ipv6L4Frame(t, protoTCP, lip6, 1024, natReal6, 9000), skbMeta{}, false},
		// ICMPv6 errors, by the quoted packet's tuple reversed.
		{"packet too big about a vip reply", icmp6Frame(t, 2, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 80, client6, 40000), 200), skbMeta{}, true},
		{"unreachable from a nat real", icmp6Frame(t, 1, natReal6, client6, ipv6L4Frame(t, protoUDP, client6, 40000, natReal6, 5353), 200), skbMeta{}, true},
		{"unreachable from a fullnat real", icmp6Frame(t, 1, natReal6, lip6, ipv6L4Frame(t, protoUDP, lip6, 2000, natReal6, 53), 200), skbMeta{}, true},
		{"parameter problem, 8 bytes quoted", icmp6Frame(t, 4, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 80, client6, 40000), 48), skbMeta{}, true},
		{"error about a client packet", icmp6Frame(t, 1, router6, client6, ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80), 200), skbMeta{}, false},
		{"error about another port", icmp6Frame(t, 3, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 81, client6, 40000), 200), skbMeta{}, false},
		{"echo request quoting a vip reply", icmp6Frame(t, 128, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 80, client6, 40000), 200), skbMeta{}, false},
		{"type 0", icmp6Frame(t, 0, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 80, client6, 40000), 200), skbMeta{}, false},
		{"error quoting extension headers", icmp6Frame(t, 1, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 80, client6, 40000, withHopByHop), 200), skbMeta{}, false},
		{"error quoting icmpv6", icmp6Frame(t, 1, router6, vip6, ipv6L4Frame(t, 58, vip6, 80, client6, 40000), 200), skbMeta{}, false},
		{"error cut before the quoted ports", icmp6Frame(t, 1, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 80, client6, 40000), 42), skbMeta{}, false},
		{"version 4 in an ipv6 frame", badVersion, skbMeta{}, false},
		{"truncated before ports", short, skbMeta{}, false},
		// The IPv4 part is unchanged beside it.
		{"ipv4 tcp to vip", ipv4Frame(t, protoTCP, client, 40000, vip, 80), skbMeta{}, true},
		{"ipv4 nat reply", ipv4Frame(t, protoTCP, natReal, 8080, client, 40000), skbMeta{}, true},
		{"ipv4 wrong port", ipv4Frame(t, protoTCP, client, 40000, vip, 81), skbMeta{}, false},
		{"arp", arpFrame(t), skbMeta{}, false},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			got := run(t, newVM(t, prog, tt.meta), tt.frame)
			want := uint32(0)
			if tt.want {
				want = Snaplen
			}
			if got != want {
				t.Errorf("filter returned %d, want %d for\n%s", got, want, gopacket.NewPacket(tt.frame, layers.LayerTypeEthernet, gopacket.Default).Dump())
			}
			if naive := naiveAccept6(testMatch6(), tt.frame, tt.meta); naive != tt.want {
				t.Errorf("the reference says %v", naive)
			}
		})
	}
}

// TestPrograms6LeaveIPv4Alone: without IPv6 endpoints the programs are
// the IPv4 ones, byte for byte (an IPv6 frame is rejected and goes to
// worker 0, as before); with them, every IPv4 frame gets the same answer
// from both programs as it does without.
func TestPrograms6LeaveIPv4Alone(t *testing.T) {
	m4, m6 := testMatch(), testMatch6()
	m4copy := *m4
	m4copy.VIPs6, m4copy.NATReals6 = []Endpoint6{}, nil
	f4, _ := FilterProgram(m4)
	f4b, _ := FilterProgram(&m4copy)
	if !slices.Equal(f4, f4b) {
		t.Fatal("an empty VIPs6 changed the IPv4 filter")
	}
	for _, tt := range []struct {
		name  string
		build func(*Match) ([]bpf.RawInstruction, error)
	}{
		{"filter", func(m *Match) ([]bpf.RawInstruction, error) { return FilterProgram(m) }},
		{"steering", func(m *Match) ([]bpf.RawInstruction, error) { return SteeringProgram(m, 5) }},
		{"steering with SYN rings", func(m *Match) ([]bpf.RawInstruction, error) { return SteeringProgramSYN(m, 5) }},
	} {
		p4, err := tt.build(m4)
		if err != nil {
			t.Fatal(err)
		}
		p6, err := tt.build(m6)
		if err != nil {
			t.Fatal(err)
		}
		if len(p6) <= len(p4) {
			t.Fatalf("%s: %d instructions with IPv6 endpoints, %d without", tt.name, len(p6), len(p4))
		}
		vm4, vm6 := newVM(t, p4, skbMeta{}), newVM(t, p6, skbMeta{})
		rng := rand.New(rand.NewPCG(9, 10))
		frames := append(filterSeeds(t), ipv4Frame(t, protoTCP, client, 40000, vip, 80, withIPOptions))
		for range 3000 {
			f := append([]byte(nil), frames[rng.IntN(len(frames))]...)
			var c [4]byte
			binary.BigEndian.PutUint32(c[:], rng.Uint32())
			if f[ethTypeOff] == 0x08 && f[ethTypeOff+1] == 0 && len(f) > ethHdrLen+20 {
				copy(f[ethHdrLen+ipSrcOff:], c[:]) // spread the steering
			}
			if a, b := run(t, vm4, f), run(t, vm6, f); a != b {
				t.Fatalf("%s: %d without IPv6 endpoints, %d with, for % x", tt.name, a, b, f)
			}
		}
		if got := run(t, vm4, ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80)); got != 0 {
			t.Errorf("%s without IPv6 endpoints: IPv6 frame -> %d, want 0", tt.name, got)
		}
	}
}

// TestSteeringProgram6: an IPv6 request and the NAT reply to it land on
// one worker, SteerHash6(client, port) % workers; IPv4 steering beside it
// is unchanged.
func TestSteeringProgram6(t *testing.T) {
	m := testMatch6()
	rng := rand.New(rand.NewPCG(11, 12))
	for _, workers := range []int{2, 3, 4, 7, 16} {
		prog, err := SteeringProgram(m, workers)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, prog, skbMeta{})
		w := uint32(workers)
		seen := map[uint32]bool{}
		for range 300 {
			var c [16]byte
			for i := 0; i < 16; i += 4 {
				binary.BigEndian.PutUint32(c[i:], rng.Uint32())
			}
			cport := uint16(rng.UintN(65536))
			want := SteerHash6(c, cport) % w
			seen[want] = true
			for _, tc := range []struct {
				name  string
				frame []byte
			}{
				{"TCP request", ipv6L4Frame(t, protoTCP, c, cport, vip6, 80)},
				{"TCP NAT reply", ipv6L4Frame(t, protoTCP, natReal6, 8080, c, cport)},
				{"UDP request", ipv6L4Frame(t, protoUDP, c, cport, vip6, 53)},
				{"UDP NAT reply", ipv6L4Frame(t, protoUDP, natReal6, 5353, c, cport)},
				{"UDP first fragment", ipv6L4Frame(t, protoUDP, c, cport, vip6, 53, withFragment6)},
				{"TCP request behind hop-by-hop", ipv6L4Frame(t, protoTCP, c, cport, vip6, 80, withHopByHop)},
				{"TCP request behind three headers", ipv6L4Frame(t, protoTCP, c, cport, vip6, 80, withBigHBH, withRouting, withDstOpts)},
				{"TCP NAT reply behind destination options", ipv6L4Frame(t, protoTCP, natReal6, 8080, c, cport, withDstOpts)},
				{"UDP first fragment behind hop-by-hop", ipv6L4Frame(t, protoUDP, c, cport, vip6, 53, withHopByHop, withFragment6)},
				{"UDP NAT reply first fragment", ipv6L4Frame(t, protoUDP, natReal6, 5353, c, cport, withFragment6)},
				{"packet too big about a reply", icmp6Frame(t, 2, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 80, c, cport), 100)},
				{"NAT real's unreachable", icmp6Frame(t, 1, natReal6, c, ipv6L4Frame(t, protoUDP, c, cport, natReal6, 5353), 100)},
			} {
				if got := run(t, vm, tc.frame); got != want {
					t.Fatalf("workers=%d %s for [%x]:%d -> %d, want %d", workers, tc.name, c, cport, got, want)
				}
			}
			// FULLNAT replies, and a FULLNAT real's errors, by local port.
			lport := uint16(1024 + rng.UintN(32767-1024+1))
			for _, f := range [][]byte{
				ipv6L4Frame(t, protoTCP, natReal6, 9000, lip6, lport),
				ipv6L4Frame(t, protoTCP, natReal6, 9000, lip6, lport, withDstOpts, withRouting),
				icmp6Frame(t, 1, natReal6, lip6, ipv6L4Frame(t, protoUDP, lip6, lport, natReal6, 53), 100),
			} {
				if got := run(t, vm, f); got != uint32(lport)%w {
					t.Fatalf("workers=%d FULLNAT reply or error to port %d -> %d, want %d", workers, lport, got, uint32(lport)%w)
				}
			}
			// From a NAT real's address but not its port: by source.
			if got := run(t, vm, ipv6L4Frame(t, protoTCP, natReal6, 9999, c, cport)); got != SteerHash6(natReal6, 9999)%w {
				t.Fatalf("frame from a non-NAT port -> %d, want the source hash", got)
			}
			// IPv4 beside it, as before.
			var c4 [4]byte
			binary.BigEndian.PutUint32(c4[:], rng.Uint32())
			if got := run(t, vm, ipv4Frame(t, protoTCP, natReal, 8080, c4, cport)); got != SteerHash(c4, cport)%w {
				t.Fatalf("IPv4 NAT reply -> %d, want %d", got, SteerHash(c4, cport)%w)
			}
		}
		if len(seen) != workers {
			t.Errorf("workers=%d: 300 clients reached only %d workers", workers, len(seen))
		}
		for _, f := range [][]byte{
			ipv6L4Frame(t, 58, client6, 1, vip6, 80),
			ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withAH),
			ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withDstOpts, withDstOpts),
			ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withLaterFragment6),
			ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withHopByHop, withLaterFragment6),
			ipv6L4Frame(t, protoUDP, natReal6, 5353, client6, 40000, withLaterFragment6),
		} {
			if got := run(t, vm, f); got != 0 {
				t.Errorf("workers=%d: a later fragment or a frame the filter leaves -> %d, want 0", workers, got)
			}
		}
	}
}

// TestSteerHash6MatchesProgram runs random IPv6 tuples through the program
// and the Go twin, and checks that the hash spreads.
func TestSteerHash6MatchesProgram(t *testing.T) {
	const workers = 1 << 16
	prog, err := SteeringProgram(testMatch6(), workers)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog, skbMeta{})
	rng := rand.New(rand.NewPCG(13, 14))
	frame := ipv6L4Frame(t, protoUDP, client6, 1, vip6, 53)
	counts := make([]int, 4)
	for range 20000 {
		src := client6
		// Random low 64 bits (SLAAC-like) or random words anywhere.
		for i := 8; i < 16; i += 4 {
			binary.BigEndian.PutUint32(src[i:], rng.Uint32())
		}
		if rng.IntN(2) == 0 {
			binary.BigEndian.PutUint32(src[0:], rng.Uint32())
		}
		sport := uint16(rng.UintN(65536))
		copy(frame[ethHdrLen+ip6SrcOff:], src[:])
		binary.BigEndian.PutUint16(frame[ethHdrLen+ip6HdrLen:], sport)
		h := SteerHash6(src, sport)
		if got := run(t, vm, frame); got != h%workers {
			t.Fatalf("[%x]:%d: program %d, SteerHash6 %% %d = %d", src, sport, got, workers, h%workers)
		}
		counts[h%4]++
	}
	// One client, sequential ports, and many clients differing only in
	// the last byte, must spread too.
	for p := range 2000 {
		counts[SteerHash6(client6, uint16(30000+p))%4]++
		c := client6
		c[15], c[14] = byte(p), byte(p>>8)
		counts[SteerHash6(c, 40000)%4]++
	}
	for i, c := range counts {
		if c < 24000/4*8/10 || c > 24000/4*12/10 {
			t.Errorf("worker %d of 4 got %d of 24000 tuples: the hash spreads badly (%v)", i, c, counts)
		}
	}
}

func TestSteeringProgram6SYN(t *testing.T) {
	m := testMatch6()
	rng := rand.New(rand.NewPCG(15, 16))
	for _, workers := range []int{1, 2, 5} {
		prog, err := SteeringProgramSYN(m, workers)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, prog, skbMeta{})
		for range 100 {
			var c [16]byte
			for i := 0; i < 16; i += 4 {
				binary.BigEndian.PutUint32(c[i:], rng.Uint32())
			}
			cport := uint16(rng.UintN(65536))
			worker := SteerHash6(c, cport) % uint32(workers)
			req := ipv6L4Frame(t, protoTCP, c, cport, vip6, 80)
			flags := func(f []byte, fl byte, ext ...int) []byte {
				f = append([]byte(nil), f...)
				f[ethHdrLen+ip6HdrLen+tcpFlagsOff+sum(ext)] = fl
				return f
			}
			for _, tc := range []struct {
				name  string
				frame []byte
				want  uint32
			}{
				{"SYN", flags(req, tcpSYN), 2*worker + 1},
				{"SYN with ECN bits", flags(req, tcpSYN|0xc0), 2*worker + 1},
				{"SYN-ACK", flags(req, tcpSYN|tcpACK), 2 * worker},
				{"ACK", flags(req, tcpACK), 2 * worker},
				{"UDP", ipv6L4Frame(t, protoUDP, c, cport, vip6, 53), 2 * worker},
				{"NAT reply SYN-ACK", flags(ipv6L4Frame(t, protoTCP, natReal6, 8080, c, cport), tcpSYN|tcpACK), 2 * worker},
				{"FULLNAT reply SYN-ACK", flags(ipv6L4Frame(t, protoTCP, natReal6, 8080, lip6, 2000), tcpSYN|tcpACK), 2 * (2000 % uint32(workers))},
				{"error about a client SYN, by its reversed tuple", icmp6Frame(t, 1, router6, c, flags(req, tcpSYN), 100), 2 * (SteerHash6(vip6, 80) % uint32(workers))},
				{"error about a reply", icmp6Frame(t, 2, router6, vip6, flags(ipv6L4Frame(t, protoTCP, vip6, 80, c, cport), tcpSYN|tcpACK), 100), 2 * worker},
				{"first fragment", ipv6L4Frame(t, protoUDP, c, cport, vip6, 53, withFragment6), 2 * worker},
				{"SYN behind destination options", ipv6L4Frame(t, protoTCP, c, cport, vip6, 80, withDstOpts), 2*worker + 1},
				{"SYN behind three headers", ipv6L4Frame(t, protoTCP, c, cport, vip6, 80, withHopByHop, withRouting, withDstOpts), 2*worker + 1},
				{"ACK behind hop-by-hop", flags(ipv6L4Frame(t, protoTCP, c, cport, vip6, 80, withHopByHop), tcpACK, 8), 2 * worker},
				{"UDP behind hop-by-hop", ipv6L4Frame(t, protoUDP, c, cport, vip6, 53, withHopByHop), 2 * worker},
				{"first fragment of a SYN behind hop-by-hop", ipv6L4Frame(t, protoTCP, c, cport, vip6, 80, withHopByHop, withFragment6), 2 * worker},
				{"later fragment", ipv6L4Frame(t, protoUDP, c, cport, vip6, 53, withLaterFragment6), 0},
			} {
				if got := run(t, vm, tc.frame); got != tc.want {
					t.Fatalf("workers=%d %s -> member %d, want %d", workers, tc.name, got, tc.want)
				}
			}
		}
	}
}

// naiveAccept6 is naiveAccept that knows IPv6: the reference for the
// IPv6 section of FilterProgram.
func naiveAccept6(m *Match, f []byte, meta skbMeta) bool {
	if len(f) < ethHdrLen || binary.BigEndian.Uint16(f[12:]) != etherTypeV6 {
		return naiveAccept(m, f, meta)
	}
	if meta.vlan || meta.pktType == pktTypeOutgoing || !m.has6() {
		return false
	}
	ip := f[ethHdrLen:]
	if len(ip) < ip6HdrLen+4 || ip[0]>>4 != 6 {
		return false
	}
	proto := ip[6]
	var src, dst [16]byte
	var sport, dport uint16
	// Extension headers of ExtensionChains6: X is their length.
	x := 0
	var chain []uint8
	for proto == protoHopByHop || proto == protoDstOpts || proto == protoRouting {
		off := ip6HdrLen + x
		if len(ip) < off+2 || (proto == protoRouting && (len(ip) < off+4 || ip[off+3] != 0)) {
			return false
		}
		chain = append(chain, proto)
		proto = ip[off]
		x += (int(ip[off+1]) + 1) * 8
	}
	if len(chain) > 0 && !slices.ContainsFunc(ExtensionChains6(), func(c []uint8) bool { return slices.Equal(c, chain) }) {
		return false
	}
	switch {
	case len(chain) > 0 && proto == protoICMPv6:
		return false
	case proto == protoIPv6Frag:
		// A fragment header: a later fragment is taken by address, a
		// first one by the ports behind the header.
		copy(src[:], ip[8:24])
		copy(dst[:], ip[24:40])
		off := ip6HdrLen + x
		if len(ip) < off+1 {
			return false
		}
		proto = ip[off]
		if proto != protoTCP && proto != protoUDP {
			return false
		}
		if len(ip) < off+4 {
			return false
		}
		if binary.BigEndian.Uint16(ip[off+2:])&0xfff8 != 0 {
			to := slices.ContainsFunc(m.VIPs6, func(e Endpoint6) bool { return e.Addr == dst }) ||
				slices.ContainsFunc(m.Locals6, func(r LocalRange6) bool { return r.Addr == dst })
			return to || slices.ContainsFunc(m.NATReals6, func(e Endpoint6) bool { return e.Addr == src })
		}
		if len(ip) < off+8+4 {
			return false
		}
		sport, dport = binary.BigEndian.Uint16(ip[off+8:]), binary.BigEndian.Uint16(ip[off+10:])
	case proto == protoTCP, proto == protoUDP:
		copy(src[:], ip[8:24])
		copy(dst[:], ip[24:40])
		if len(ip) < ip6HdrLen+x+4 {
			return false
		}
		sport, dport = binary.BigEndian.Uint16(ip[ip6HdrLen+x:]), binary.BigEndian.Uint16(ip[ip6HdrLen+x+2:])
	case proto == protoICMPv6:
		// An error quoting TCP or UDP behind a fixed header: its tuple,
		// reversed.
		if len(ip) < icmp6QuoteL4Off+4 {
			return false
		}
		q := ip[icmp6QuoteOff:]
		if ip[icmp6TypeOff] < 1 || ip[icmp6TypeOff] > 4 || q[0]>>4 != 6 || (q[6] != protoTCP && q[6] != protoUDP) {
			return false
		}
		proto = q[6]
		copy(dst[:], q[8:24])
		copy(src[:], q[24:40])
		dport, sport = binary.BigEndian.Uint16(q[40:]), binary.BigEndian.Uint16(q[42:])
	default:
		return false
	}
	for _, r := range m.Locals6 {
		if r.Addr == dst && dport >= r.PortLo && dport <= r.PortHi {
			return true
		}
	}
	return slices.Contains(m.VIPs6, Endpoint6{proto, dst, dport}) || slices.Contains(m.NATReals6, Endpoint6{proto, src, sport})
}

// TestFilter6AgainstNaive mutates IPv6 and IPv4 frames at random and
// compares the program with naiveAccept6.
func TestFilter6AgainstNaive(t *testing.T) {
	m := testMatch6()
	prog, err := FilterProgram(m)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog, skbMeta{})
	seeds := append(filterSeeds(t),
		ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80),
		ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53),
		ipv6L4Frame(t, protoTCP, client6, 40000, vip6b, 443),
		ipv6L4Frame(t, protoTCP, natReal6, 8080, client6, 40000),
		ipv6L4Frame(t, protoUDP, natReal6, 5353, client6, 40000),
		ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, withHopByHop),
		ipv6L4Frame(t, protoTCP, natReal6, 8080, client6, 40000, withDstOpts, withRouting),
		ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withHopByHop, withRouting, withDstOpts),
		ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withHopByHop, withFragment6),
		ipv6L4Frame(t, protoUDP, client6, 40000, vip6b, 53, withRouting, withLaterFragment6),
		ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, withFragment6),
		ipv6L4Frame(t, protoUDP, natReal6, 5353, client6, 40000, withLaterFragment6),
		ipv6L4Frame(t, protoTCP, client6, 40000, vip6b, 1, withLaterFragment6),
		ipv6L4Frame(t, protoTCP, natReal6, 9000, lip6, 2000),
		icmp6Frame(t, 2, router6, vip6, ipv6L4Frame(t, protoTCP, vip6, 80, client6, 40000), 48),
		icmp6Frame(t, 1, natReal6, lip6, ipv6L4Frame(t, protoUDP, lip6, 2000, natReal6, 53), 100),
	)
	rng := rand.New(rand.NewPCG(17, 18))
	accepted6 := 0
	for range 20000 {
		f := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for range rng.IntN(3) {
			i := rng.IntN(min(len(f), ethHdrLen+icmp6QuoteL4Off+8))
			if rng.IntN(4) == 0 && len(f) > ethHdrLen+ip6HdrLen+1 {
				// The Next Header and length fields of the chain.
				i = ethHdrLen + []int{ip6NextOff, ip6HdrLen, ip6HdrLen + 1}[rng.IntN(3)]
				f[i] = []byte{0, 6, 17, 43, 44, 58, 60, 51, byte(rng.UintN(256))}[rng.IntN(9)]
				continue
			}
			f[i] = byte(rng.UintN(256))
		}
		if rng.IntN(10) == 0 {
			f = f[:rng.IntN(len(f)+1)]
		}
		got := run(t, vm, f) == Snaplen
		if want := naiveAccept6(m, f, skbMeta{}); got != want {
			t.Fatalf("program says %v, reference says %v for % x", got, want, f)
		}
		if got && len(f) > ethTypeOff+1 && f[ethTypeOff] == 0x86 {
			accepted6++
		}
	}
	if accepted6 < 1000 {
		t.Errorf("only %d accepted IPv6 frames: the mutations are too destructive to test much", accepted6)
	}
}

func FuzzFilterProgram6(f *testing.F) {
	f.Add(ipv6L4Frame(f, protoTCP, client6, 40000, vip6, 80), false, uint8(0))
	f.Add(ipv6L4Frame(f, protoTCP, natReal6, 8080, client6, 40000), false, uint8(0))
	f.Add(ipv6L4Frame(f, protoTCP, client6, 40000, vip6, 80, withHopByHop), false, uint8(0))
	f.Add(ipv6L4Frame(f, protoTCP, client6, 40000, vip6, 80), true, uint8(pktTypeOutgoing))
	f.Add(ipv6L4Frame(f, protoUDP, client6, 40000, vip6, 53, withFragment6), false, uint8(0))      // first fragment
	f.Add(ipv6L4Frame(f, protoUDP, client6, 40000, vip6, 53, withLaterFragment6), false, uint8(0)) // later fragment
	f.Add(ipv6L4Frame(f, protoTCP, client6, 40000, vip6, 80, withHopByHop, withRouting, withDstOpts), false, uint8(0))
	f.Add(ipv6L4Frame(f, protoUDP, client6, 40000, vip6, 53, withDstOpts, withFragment6), false, uint8(0))
	m := testMatch6()
	prog, err := FilterProgram(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte, vlan bool, pktType uint8) {
		meta := skbMeta{pktType: uint32(pktType % 8), vlan: vlan}
		got := run(t, newVM(t, prog, meta), frame) == Snaplen
		if want := naiveAccept6(m, frame, meta); got != want {
			t.Fatalf("program says %v, reference says %v", got, want)
		}
	})
}

func TestMatch6Validation(t *testing.T) {
	bad := &Match{VIPs6: []Endpoint6{{Proto: 58, Addr: vip6, Port: 80}}, NATReals6: []Endpoint6{{Proto: 1, Addr: natReal6}}}
	_, err := FilterProgram(bad)
	if err == nil {
		t.Fatal("FilterProgram accepted invalid IPv6 endpoints")
	}
	for _, want := range []string{"VIPs6[0]", "NATReals6[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestFilterProgram6Large: many IPv6 VIPs still assemble (the jump to the
// IPv6 section is long) and the last ones match.
func TestFilterProgram6Large(t *testing.T) {
	m := testMatch()
	for a := range 100 {
		for p := range 5 {
			addr := vip6
			addr[13] = byte(a)
			m.VIPs6 = append(m.VIPs6, Endpoint6{Proto: protoTCP, Addr: addr, Port: uint16(1000 + p)})
		}
	}
	prog, err := FilterProgram(m)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog, skbMeta{})
	last := vip6
	last[13] = 99
	if got := run(t, vm, ipv6L4Frame(t, protoTCP, client6, 1, last, 1004)); got != Snaplen {
		t.Errorf("last VIP: %d", got)
	}
	if got := run(t, vm, ipv6L4Frame(t, protoTCP, client6, 1, last, 1005)); got != 0 {
		t.Errorf("last VIP, wrong port: %d", got)
	}
	if got := run(t, vm, ipv4Frame(t, protoTCP, client, 40000, vip, 80)); got != Snaplen {
		t.Errorf("IPv4 VIP: %d", got)
	}
	if _, err := SteeringProgramSYN(m, 4); err != nil {
		t.Error(err)
	}
}

func sum(n []int) int {
	s := 0
	for _, v := range n {
		s += v
	}
	return s
}

// TestExtensionChains6 runs every chain of up to four extension headers
// of the types the programs know (and one they do not) through the filter:
// it takes exactly those of ExtensionChains6, as the ingress rules drop
// them (control/ingress), and steers them by their ports.
func TestExtensionChains6(t *testing.T) {
	chains := ExtensionChains6()
	if len(chains) != 9 {
		t.Errorf("%d chains, want 9: %v", len(chains), chains)
	}
	m := testMatch6()
	prog, err := FilterProgram(m)
	if err != nil {
		t.Fatal(err)
	}
	steer, err := SteeringProgram(m, 7)
	if err != nil {
		t.Fatal(err)
	}
	vm, svm := newVM(t, prog, skbMeta{}), newVM(t, steer, skbMeta{})
	opt := map[uint8]frame6Opt{protoHopByHop: withBigHBH, protoDstOpts: withDstOpts, protoRouting: withRouting, 51: withAH}
	var walk func(c []uint8)
	taken := 0
	walk = func(c []uint8) {
		if len(c) > 0 {
			var opts []frame6Opt
			for _, typ := range c {
				opts = append(opts, opt[typ])
			}
			want := slices.ContainsFunc(chains, func(x []uint8) bool { return slices.Equal(x, c) })
			for _, f := range [][]byte{
				ipv6L4Frame(t, protoTCP, client6, 40000, vip6, 80, opts...),
				ipv6L4Frame(t, protoUDP, client6, 40000, vip6, 53, append(opts, withFragment6)...),
			} {
				if got := run(t, vm, f) == Snaplen; got != want {
					t.Errorf("chain %v: filter takes it: %v, want %v", c, got, want)
				}
				if naive := naiveAccept6(m, f, skbMeta{}); naive != want {
					t.Errorf("chain %v: the reference says %v", c, naive)
				}
				w := uint32(0)
				if want {
					w = SteerHash6(client6, 40000) % 7
					taken++
				}
				if got := run(t, svm, f); got != w {
					t.Errorf("chain %v: steered to %d, want %d", c, got, w)
				}
			}
		}
		if len(c) == 4 {
			return
		}
		for _, typ := range []uint8{protoHopByHop, protoDstOpts, protoRouting, 51} {
			walk(append(slices.Clone(c), typ))
		}
	}
	walk(nil)
	if taken != 2*len(chains) {
		t.Errorf("%d frames taken, want %d", taken, 2*len(chains))
	}
}
