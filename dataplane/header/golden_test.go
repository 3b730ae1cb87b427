package header_test

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

var (
	macA  = [6]byte{0x02, 0, 0, 0, 0, 0xaa}
	macB  = [6]byte{0x02, 0, 0, 0, 0, 0xbb}
	cip   = [4]byte{10, 0, 0, 1}
	vip   = [4]byte{10, 20, 0, 100}
	rip   = [4]byte{10, 20, 0, 11}
	lip   = [4]byte{10, 20, 0, 2}
	dirIP = [4]byte{10, 20, 0, 1}
)

// gpIPv4 returns a gopacket IPv4 layer with a Router Alert option and NOPs,
// so the header is longer than 20 bytes.
func gpIPv4(proto layers.IPProtocol, src, dst [4]byte) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, TOS: 0x2e, Id: 0xbeef, Flags: layers.IPv4DontFragment, TTL: 61,
		Protocol: proto, SrcIP: ip4(src), DstIP: ip4(dst),
		Options: []layers.IPv4Option{
			{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}, // router alert
			{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1},
		},
	}
}

func gpTCP() *layers.TCP {
	return &layers.TCP{
		SrcPort: 40000, DstPort: 80, Seq: 0x01020304, Ack: 0x05060708,
		SYN: true, ACK: true, ECE: true, Window: 29200,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		},
	}
}

func TestGoldenReadTCP(t *testing.T) {
	payload := []byte("GET / HTTP/1.0\r\n\r\n!") // odd length
	frame := serialize(t,
		&layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv4},
		gpIPv4(layers.IPProtocolTCP, cip, vip), gpTCP(), gopacket.Payload(payload))
	p := decode(t, frame, layers.LayerTypeEthernet)
	gip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	gtcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)

	eth := header.Ethernet(frame)
	if !eth.IsValid() || eth.Destination() != macB || eth.Source() != macA || eth.Type() != header.EtherTypeIPv4 {
		t.Fatalf("Ethernet: valid %v dst %x src %x type %#04x", eth.IsValid(), eth.Destination(), eth.Source(), eth.Type())
	}
	ip := header.IPv4(eth.Payload())
	if !ip.IsValid(len(ip)) {
		t.Fatal("IPv4.IsValid = false for a gopacket packet")
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"HeaderLength", ip.HeaderLength(), int(gip.IHL) * 4},
		{"HeaderLength > 20", ip.HeaderLength() > header.IPv4MinLen, true},
		{"TOS", ip.TOS(), gip.TOS},
		{"TotalLength", ip.TotalLength(), gip.Length},
		{"ID", ip.ID(), gip.Id},
		{"Flags", ip.Flags(), uint8(gip.Flags)},
		{"DontFragment", ip.DontFragment(), true},
		{"MoreFragments", ip.MoreFragments(), false},
		{"IsFragment", ip.IsFragment(), false},
		{"TTL", ip.TTL(), gip.TTL},
		{"Protocol", ip.Protocol(), header.ProtoTCP},
		{"Checksum", ip.Checksum(), gip.Checksum},
		{"CalculateChecksum", ip.CalculateChecksum(), gip.Checksum},
		{"IsChecksumValid", ip.IsChecksumValid(), true},
		{"Source", ip.Source(), cip},
		{"Destination", ip.Destination(), vip},
		{"Payload", string(ip.Payload()), string(append(append([]byte(nil), gtcp.Contents...), gtcp.Payload...))},
	} {
		if c.got != c.want {
			t.Errorf("IPv4.%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	tcp := header.TCP(ip.Payload())
	if !tcp.IsValid(len(ip.Payload())) {
		t.Fatal("TCP.IsValid = false for a gopacket segment")
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"SourcePort", tcp.SourcePort(), uint16(gtcp.SrcPort)},
		{"DestinationPort", tcp.DestinationPort(), uint16(gtcp.DstPort)},
		{"SequenceNumber", tcp.SequenceNumber(), gtcp.Seq},
		{"AckNumber", tcp.AckNumber(), gtcp.Ack},
		{"DataOffset", tcp.DataOffset(), int(gtcp.DataOffset) * 4},
		{"Flags", tcp.Flags(), header.TCPFlagSyn | header.TCPFlagAck | header.TCPFlagEce},
		{"WindowSize", tcp.WindowSize(), gtcp.Window},
		{"Checksum", tcp.Checksum(), gtcp.Checksum},
		{"CalculateChecksum", tcp.CalculateChecksum(cip, vip), gtcp.Checksum},
		{"IsChecksumValid", tcp.IsChecksumValid(cip, vip), true},
		{"IsChecksumValid wrong dst", tcp.IsChecksumValid(cip, rip), false},
		{"Payload", string(tcp.Payload()), string(payload)},
	} {
		if c.got != c.want {
			t.Errorf("TCP.%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestGoldenReadUDP(t *testing.T) {
	payload := []byte("dns?")
	pkt := serialize(t, gpIPv4(layers.IPProtocolUDP, cip, vip),
		&layers.UDP{SrcPort: 12345, DstPort: 7777}, gopacket.Payload(payload))
	p := decode(t, pkt, layers.LayerTypeIPv4)
	gudp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	ip := header.IPv4(pkt)
	if !ip.IsValid(len(pkt)) {
		t.Fatal("IPv4.IsValid = false")
	}
	udp := header.UDP(ip.Payload())
	if !udp.IsValid(len(ip.Payload())) {
		t.Fatal("UDP.IsValid = false")
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"SourcePort", udp.SourcePort(), uint16(12345)},
		{"DestinationPort", udp.DestinationPort(), uint16(7777)},
		{"Length", udp.Length(), gudp.Length},
		{"Checksum", udp.Checksum(), gudp.Checksum},
		{"CalculateChecksum", udp.CalculateChecksum(cip, vip), gudp.Checksum},
		{"IsChecksumValid", udp.IsChecksumValid(cip, vip), true},
		{"IsChecksumValid wrong src", udp.IsChecksumValid(rip, vip), false},
		{"Payload", string(udp.Payload()), string(payload)},
	} {
		if c.got != c.want {
			t.Errorf("UDP.%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestGoldenReadFragment(t *testing.T) {
	for _, tt := range []struct {
		name     string
		flags    layers.IPv4Flag
		off      uint16 // 8-byte units
		wantFrag bool
	}{
		{"first fragment", layers.IPv4MoreFragments, 0, true},
		{"middle fragment", layers.IPv4MoreFragments, 185, true},
		{"last fragment", 0, 370, true},
		{"DF, not a fragment", layers.IPv4DontFragment, 0, false},
		{"no flags, not a fragment", 0, 0, false},
	} {
		pkt := serialize(t, &layers.IPv4{
			Version: 4, Flags: tt.flags, FragOffset: tt.off, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: ip4(cip), DstIP: ip4(vip),
		}, gopacket.Payload(make([]byte, 16)))
		decode(t, pkt, layers.LayerTypeIPv4)
		ip := header.IPv4(pkt)
		if !ip.IsValid(len(pkt)) {
			t.Fatalf("%s: IsValid = false", tt.name)
		}
		if ip.Flags() != uint8(tt.flags) || ip.FragmentOffset() != tt.off*8 || ip.IsFragment() != tt.wantFrag ||
			ip.MoreFragments() != (tt.flags&layers.IPv4MoreFragments != 0) || ip.DontFragment() != (tt.flags&layers.IPv4DontFragment != 0) {
			t.Errorf("%s: Flags %#x FragmentOffset %d IsFragment %v MF %v DF %v", tt.name,
				ip.Flags(), ip.FragmentOffset(), ip.IsFragment(), ip.MoreFragments(), ip.DontFragment())
		}
	}
}

func TestGoldenReadICMPv4(t *testing.T) {
	// An echo request and a frag-needed error quoting a TCP header.
	echo := serialize(t, gpIPv4(layers.IPProtocolICMPv4, cip, vip),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 9}, gopacket.Payload("ping"))
	quoted := serialize(t, gpIPv4(layers.IPProtocolTCP, vip, cip), gpTCP())[:40]
	fragNeeded := serialize(t, gpIPv4(layers.IPProtocolICMPv4, rip, vip),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}, gopacket.Payload(quoted))
	for _, tt := range []struct {
		name      string
		pkt       []byte
		typ, code uint8
		isError   bool
		mtu       uint16
		payload   []byte
	}{
		{"echo request", echo, header.ICMPv4EchoRequest, 0, false, 9, []byte("ping")},
		{"frag needed", fragNeeded, header.ICMPv4DestUnreachable, header.ICMPv4FragmentationNeeded, true, 1400, quoted},
	} {
		decode(t, tt.pkt, layers.LayerTypeIPv4)
		ip := header.IPv4(tt.pkt)
		if !ip.IsValid(len(tt.pkt)) || ip.Protocol() != header.ProtoICMP {
			t.Fatalf("%s: bad IPv4 header", tt.name)
		}
		m := header.ICMPv4(ip.Payload())
		if !m.IsValid() {
			t.Fatalf("%s: ICMPv4.IsValid = false", tt.name)
		}
		if m.Type() != tt.typ || m.Code() != tt.code || m.IsError() != tt.isError || m.MTU() != tt.mtu ||
			!bytes.Equal(m.Payload(), tt.payload) || !m.IsChecksumValid() || m.CalculateChecksum() != m.Checksum() {
			t.Errorf("%s: type %d code %d error %v mtu %d checksum %#04x (calc %#04x, valid %v) payload % x",
				tt.name, m.Type(), m.Code(), m.IsError(), m.MTU(), m.Checksum(), m.CalculateChecksum(), m.IsChecksumValid(), m.Payload())
		}
	}
	for typ, want := range map[uint8]bool{0: false, 3: true, 4: true, 5: true, 8: false, 11: true, 12: true, 13: false} {
		if got := header.ICMPv4([]byte{typ, 0, 0, 0, 0, 0, 0, 0}).IsError(); got != want {
			t.Errorf("type %d: IsError = %v, want %v", typ, got, want)
		}
	}
}

// TestGoldenRewrite rewrites gopacket-built frames through the views the way
// each LVS mode does and checks the result with gopacket.
func TestGoldenRewrite(t *testing.T) {
	for _, proto := range []layers.IPProtocol{layers.IPProtocolTCP, layers.IPProtocolUDP} {
		for _, mode := range []string{"dr", "nat", "nat-reply", "fullnat"} {
			t.Run(proto.String()+"/"+mode, func(t *testing.T) {
				var l4 gopacket.SerializableLayer = gpTCP()
				if proto == layers.IPProtocolUDP {
					l4 = &layers.UDP{SrcPort: 40000, DstPort: 80}
				}
				src, dst := cip, vip
				if mode == "nat-reply" {
					src, dst = rip, cip
				}
				frame := serialize(t,
					&layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv4},
					gpIPv4(proto, src, dst), l4, gopacket.Payload("hello, world"))
				eth := header.Ethernet(frame)
				ip := header.IPv4(eth.Payload())
				ttl := ip.TTL()
				seg := ip.Payload()
				var setSrcPort, setDstPort func(uint16)
				var pseudo func(old, new [4]byte)
				if proto == layers.IPProtocolTCP {
					setSrcPort, setDstPort, pseudo = header.TCP(seg).SetSourcePortWithChecksumUpdate,
						header.TCP(seg).SetDestinationPortWithChecksumUpdate, header.TCP(seg).UpdateChecksumPseudoHeaderAddress
				} else {
					setSrcPort, setDstPort, pseudo = header.UDP(seg).SetSourcePortWithChecksumUpdate,
						header.UDP(seg).SetDestinationPortWithChecksumUpdate, header.UDP(seg).UpdateChecksumPseudoHeaderAddress
				}
				wantSrc, wantDst, wantSport, wantDport := src, dst, uint16(40000), uint16(80)
				eth.SetSource(macB)
				eth.SetDestination(macA)
				switch mode {
				case "dr":
				case "nat":
					ip.SetDestinationWithChecksumUpdate(rip)
					pseudo(vip, rip)
					setDstPort(8080)
					ip.SetTTLWithChecksumUpdate(ttl - 1)
					wantDst, wantDport = rip, 8080
				case "nat-reply":
					ip.SetSourceWithChecksumUpdate(vip)
					pseudo(rip, vip)
					setSrcPort(443)
					ip.SetTTLWithChecksumUpdate(ttl - 1)
					wantSrc, wantSport = vip, 443
				case "fullnat":
					ip.SetSourceWithChecksumUpdate(lip)
					pseudo(cip, lip)
					ip.SetDestinationWithChecksumUpdate(rip)
					pseudo(vip, rip)
					setSrcPort(5001)
					setDstPort(8080)
					wantSrc, wantDst, wantSport, wantDport = lip, rip, 5001, 8080
				}
				p := decode(t, frame, layers.LayerTypeEthernet)
				ge := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				gip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if !bytes.Equal(ge.SrcMAC, macB[:]) || !bytes.Equal(ge.DstMAC, macA[:]) {
					t.Errorf("MACs %v → %v", ge.SrcMAC, ge.DstMAC)
				}
				if !gip.SrcIP.Equal(ip4(wantSrc)) || !gip.DstIP.Equal(ip4(wantDst)) {
					t.Errorf("addresses %v → %v, want %v → %v", gip.SrcIP, gip.DstIP, ip4(wantSrc), ip4(wantDst))
				}
				var sport, dport uint16
				switch l := p.TransportLayer().(type) {
				case *layers.TCP:
					sport, dport = uint16(l.SrcPort), uint16(l.DstPort)
				case *layers.UDP:
					sport, dport = uint16(l.SrcPort), uint16(l.DstPort)
				}
				if sport != wantSport || dport != wantDport {
					t.Errorf("ports %d → %d, want %d → %d", sport, dport, wantSport, wantDport)
				}
				if mode == "nat" && gip.TTL != ttl-1 {
					t.Errorf("TTL %d, want %d", gip.TTL, ttl-1)
				}
			})
		}
	}
}

// TestGoldenEncode writes a header with IPv4.Encode and checks it with
// gopacket.
func TestGoldenEncode(t *testing.T) {
	for _, f := range []header.IPv4Fields{
		{TOS: 0xb8, TotalLength: 28, ID: 0x1234, Flags: header.IPv4FlagDontFragment, TTL: 64, Protocol: header.ProtoUDP, Src: cip, Dst: vip},
		{TotalLength: 28, ID: 1, Flags: header.IPv4FlagMoreFragments, FragmentOffset: 1480, TTL: 1, Protocol: header.ProtoTCP, Src: rip, Dst: lip},
		{TotalLength: 28, TTL: 255, Protocol: header.ProtoICMP, Src: [4]byte{255, 255, 255, 255}, Dst: [4]byte{}},
	} {
		pkt := make([]byte, 28)
		for i := range pkt {
			pkt[i] = 0xa5 // Encode must overwrite every header byte
		}
		header.IPv4(pkt).Encode(&f)
		if !bytes.Equal(pkt[20:], []byte{0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5}) {
			t.Fatalf("Encode wrote past the header: % x", pkt)
		}
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.DecodeOptions{DecodeStreamsAsDatagrams: false})
		gip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatalf("gopacket cannot decode % x", pkt)
		}
		if err, r := gip.VerifyChecksum(); err != nil || !r.Valid {
			t.Fatalf("%+v: bad checksum: %v %+v", f, err, r)
		}
		got := header.IPv4Fields{
			TOS: gip.TOS, TotalLength: gip.Length, ID: gip.Id, Flags: uint8(gip.Flags), FragmentOffset: gip.FragOffset * 8,
			TTL: gip.TTL, Protocol: uint8(gip.Protocol), Src: [4]byte(gip.SrcIP.To4()), Dst: [4]byte(gip.DstIP.To4()),
		}
		if got != f || gip.Version != 4 || gip.IHL != 5 {
			t.Errorf("gopacket decoded %+v (version %d IHL %d), want %+v", got, gip.Version, gip.IHL, f)
		}
		if v := header.IPv4(pkt); !v.IsValid(len(pkt)) || !v.IsChecksumValid() {
			t.Errorf("%+v: encoded header does not validate", f)
		}
	}
}
