package afpacket

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// The frames below are built with gopacket, an encoder independent of the
// code under test, and run through golang.org/x/net/bpf's VM.

var (
	vip     = [4]byte{10, 20, 0, 100}
	vip2    = [4]byte{10, 20, 0, 101}
	client  = [4]byte{192, 0, 2, 7}
	natReal = [4]byte{10, 20, 0, 11}
	lip     = [4]byte{10, 20, 0, 50}
	other   = [4]byte{10, 20, 0, 99}
)

func testMatch() *Match {
	return &Match{
		VIPs: []Endpoint{
			{Proto: protoTCP, Addr: vip, Port: 80},
			{Proto: protoUDP, Addr: vip, Port: 53},
			{Proto: protoTCP, Addr: vip2, Port: 443},
		},
		NATReals: []Endpoint{{Proto: protoTCP, Addr: natReal, Port: 8080}},
		Locals:   []LocalRange{{Addr: lip, PortLo: 20000, PortHi: 20999}},
	}
}

// frameOpt adjusts the layers of a test frame before it is serialized.
type frameOpt func(eth *layers.Ethernet, ip *layers.IPv4)

func withIPOptions(eth *layers.Ethernet, ip *layers.IPv4) {
	// Router Alert (RFC 2113): 4 bytes, so IHL becomes 6.
	ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
}

func withFragment(offset uint16, more bool) frameOpt {
	return func(eth *layers.Ethernet, ip *layers.IPv4) {
		ip.FragOffset = offset
		if more {
			ip.Flags = layers.IPv4MoreFragments
		}
	}
}

// ipv4Frame builds Ethernet/IPv4/TCP-or-UDP with a small payload.
func ipv4Frame(t testing.TB, proto uint8, src [4]byte, sport uint16, dst [4]byte, dport uint16, opts ...frameOpt) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocol(proto), SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:])}
	for _, o := range opts {
		o(eth, ip)
	}
	payload := gopacket.Payload("gvs afpacket test")
	var l4 gopacket.SerializableLayer
	switch proto {
	case protoTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		l4 = tcp
	case protoUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		_ = udp.SetNetworkLayerForChecksum(ip)
		l4 = udp
	default:
		// Anything else: eight bytes that would read as the same ports.
		var b [8]byte
		binary.BigEndian.PutUint16(b[0:], sport)
		binary.BigEndian.PutUint16(b[2:], dport)
		l4 = gopacket.Payload(b[:])
	}
	if ip.FragOffset != 0 {
		// A non-first fragment carries payload only; make its first bytes
		// look like matching ports to prove they are not read.
		var b [8]byte
		binary.BigEndian.PutUint16(b[0:], sport)
		binary.BigEndian.PutUint16(b[2:], dport)
		l4 = gopacket.Payload(b[:])
	}
	buf := gopacket.NewSerializeBuffer()
	so := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, so, eth, ip, l4, payload); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func vlanFrame(t testing.TB) []byte {
	t.Helper()
	inner := ipv4Frame(t, protoTCP, client, 40000, vip, 80)
	eth := &layers.Ethernet{SrcMAC: inner[6:12], DstMAC: inner[0:6], EthernetType: layers.EthernetTypeDot1Q}
	tag := &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, tag, gopacket.Payload(inner[ethHdrLen:])); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func arpFrame(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: client[:],
		DstHwAddress: make([]byte, 6), DstProtAddress: vip[:],
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ipv6Frame(t testing.TB) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.ParseIP("2001:db8::7"), DstIP: net.ParseIP("2001:db8::100")}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// skbMeta is the socket-buffer metadata classic BPF reads through
// extensions, which x/net/bpf's VM does not implement.
type skbMeta struct {
	pktType uint32 // PACKET_HOST = 0, ..., PACKET_OUTGOING = 4
	vlan    bool   // a VLAN tag was stripped into skb metadata by offload
}

// fromMark turns a load offset relative to the kernel's header marks
// (SKF_LL_OFF, SKF_NET_OFF) into one from the start of an untagged frame.
func fromMark(off uint32) uint32 {
	switch {
	case off >= skfNetOff:
		return off - skfNetOff + ethHdrLen
	case off >= skfLLOff:
		return off - skfLLOff
	}
	return off
}

// newVM disassembles prog for x/net/bpf's VM, replacing what it does not
// implement: an extension load becomes a constant load of what the kernel
// would find in the socket buffer, and a load relative to the kernel's
// header marks one relative to the start of the (untagged) frame.
func newVM(t testing.TB, prog []bpf.RawInstruction, meta skbMeta) *bpf.VM {
	t.Helper()
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatalf("program does not disassemble completely:\n%v", ins)
	}
	for i, in := range ins {
		switch in := in.(type) {
		case bpf.LoadAbsolute:
			in.Off = fromMark(in.Off)
			ins[i] = in
		case bpf.LoadIndirect:
			in.Off = fromMark(in.Off)
			ins[i] = in
		case bpf.LoadMemShift:
			in.Off = fromMark(in.Off)
			ins[i] = in
		}
		e, ok := ins[i].(bpf.LoadExtension)
		if !ok {
			continue
		}
		switch e.Num {
		case bpf.ExtType:
			ins[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: meta.pktType}
		case bpf.ExtVLANTagPresent:
			v := uint32(0)
			if meta.vlan {
				v = 1
			}
			ins[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: v}
		default:
			t.Fatalf("instruction %d: unexpected extension %v", i, e)
		}
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	return vm
}

func run(t testing.TB, vm *bpf.VM, frame []byte) uint32 {
	t.Helper()
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return uint32(n)
}

func TestFilterProgramGolden(t *testing.T) {
	prog, err := FilterProgram(testMatch())
	if err != nil {
		t.Fatal(err)
	}
	badIHL := ipv4Frame(t, protoTCP, client, 40000, vip, 80)
	badIHL[ethHdrLen+ipVerIHLOff] = 0x44
	badVersion := ipv4Frame(t, protoTCP, client, 40000, vip, 80)
	badVersion[ethHdrLen+ipVerIHLOff] = 0x65
	short := ipv4Frame(t, protoTCP, client, 40000, vip, 80)[:ethHdrLen+20+2] // no destination port

	tests := []struct {
		name  string
		frame []byte
		meta  skbMeta
		want  bool
	}{
		{"tcp to vip", ipv4Frame(t, protoTCP, client, 40000, vip, 80), skbMeta{}, true},
		{"udp to vip", ipv4Frame(t, protoUDP, client, 40000, vip, 53), skbMeta{}, true},
		{"tcp to second vip", ipv4Frame(t, protoTCP, client, 40000, vip2, 443), skbMeta{}, true},
		{"to otherhost mac", ipv4Frame(t, protoTCP, client, 40000, vip, 80), skbMeta{pktType: 3}, true},
		{"broadcast", ipv4Frame(t, protoUDP, client, 40000, vip, 53), skbMeta{pktType: 1}, true},
		{"wrong port", ipv4Frame(t, protoTCP, client, 40000, vip, 81), skbMeta{}, false},
		{"port of other vip", ipv4Frame(t, protoTCP, client, 40000, vip, 443), skbMeta{}, false},
		{"wrong addr", ipv4Frame(t, protoTCP, client, 40000, other, 80), skbMeta{}, false},
		{"wrong proto udp", ipv4Frame(t, protoUDP, client, 40000, vip, 80), skbMeta{}, false},
		{"wrong proto tcp", ipv4Frame(t, protoTCP, client, 40000, vip, 53), skbMeta{}, false},
		{"icmp", ipv4Frame(t, 1, client, 40000, vip, 80), skbMeta{}, false},
		{"sctp", ipv4Frame(t, 132, client, 40000, vip, 80), skbMeta{}, false},
		{"vip as source", ipv4Frame(t, protoTCP, vip, 80, client, 40000), skbMeta{}, false},
		{"ip options", ipv4Frame(t, protoTCP, client, 40000, vip, 80, withIPOptions), skbMeta{}, true},
		{"ip options wrong port", ipv4Frame(t, protoTCP, client, 40000, vip, 81, withIPOptions), skbMeta{}, false},
		{"first fragment", ipv4Frame(t, protoUDP, client, 40000, vip, 53, withFragment(0, true)), skbMeta{}, true},
		// Fragments after the first carry no ports: they are taken by
		// address (the dataplane matches them to their first fragment).
		{"non-first fragment", ipv4Frame(t, protoUDP, client, 40000, vip, 53, withFragment(185, true)), skbMeta{}, true},
		{"last fragment", ipv4Frame(t, protoUDP, client, 40000, vip, 53, withFragment(370, false)), skbMeta{}, true},
		{"fragment to another address", ipv4Frame(t, protoUDP, client, 40000, other, 53, withFragment(185, true)), skbMeta{}, false},
		{"fragment of icmp", ipv4Frame(t, 1, client, 0, vip, 80, withFragment(185, true)), skbMeta{}, false},
		{"fragment from a nat real", ipv4Frame(t, protoUDP, natReal, 53, client, 40000, withFragment(185, false)), skbMeta{}, true},
		{"ihl 4", badIHL, skbMeta{}, false},
		{"version 6", badVersion, skbMeta{}, false},
		{"truncated before ports", short, skbMeta{}, false},
		{"vlan in frame", vlanFrame(t), skbMeta{}, false},
		{"vlan offloaded", ipv4Frame(t, protoTCP, client, 40000, vip, 80), skbMeta{vlan: true}, false},
		{"arp", arpFrame(t), skbMeta{}, false},
		{"ipv6", ipv6Frame(t), skbMeta{}, false},
		{"outgoing", ipv4Frame(t, protoTCP, client, 40000, vip, 80), skbMeta{pktType: pktTypeOutgoing}, false},
		{"nat reply", ipv4Frame(t, protoTCP, natReal, 8080, client, 40000), skbMeta{}, true},
		{"nat reply wrong port", ipv4Frame(t, protoTCP, natReal, 8081, client, 40000), skbMeta{}, false},
		{"nat reply wrong proto", ipv4Frame(t, protoUDP, natReal, 8080, client, 40000), skbMeta{}, false},
		{"to nat real", ipv4Frame(t, protoTCP, client, 40000, natReal, 8080), skbMeta{}, false},
		{"nat reply outgoing", ipv4Frame(t, protoTCP, natReal, 8080, client, 40000), skbMeta{pktType: pktTypeOutgoing}, false},
		{"fullnat reply low", ipv4Frame(t, protoTCP, natReal, 80, lip, 20000), skbMeta{}, true},
		{"fullnat reply high", ipv4Frame(t, protoUDP, natReal, 53, lip, 20999), skbMeta{}, true},
		{"fullnat reply below", ipv4Frame(t, protoTCP, natReal, 80, lip, 19999), skbMeta{}, false},
		{"fullnat reply above", ipv4Frame(t, protoTCP, natReal, 80, lip, 21000), skbMeta{}, false},
		{"fullnat wrong addr", ipv4Frame(t, protoTCP, natReal, 80, other, 20500), skbMeta{}, false},
		{"fullnat icmp", ipv4Frame(t, 1, natReal, 80, lip, 20500), skbMeta{}, false},
		{"fullnat with options", ipv4Frame(t, protoTCP, natReal, 80, lip, 20500, withIPOptions), skbMeta{}, true},
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
		})
	}
}

func TestFilterProgramEmptyRejectsAll(t *testing.T) {
	for _, m := range []*Match{nil, {}} {
		prog, err := FilterProgram(m)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, prog, skbMeta{})
		for _, f := range [][]byte{ipv4Frame(t, protoTCP, client, 40000, vip, 80), arpFrame(t), ipv6Frame(t)} {
			if got := run(t, vm, f); got != 0 {
				t.Errorf("empty match accepted a frame (%d)", got)
			}
		}
	}
}

func TestMatchValidation(t *testing.T) {
	bad := &Match{
		VIPs:     []Endpoint{{Proto: 1, Addr: vip, Port: 80}},
		NATReals: []Endpoint{{Proto: 132, Addr: natReal, Port: 80}},
		Locals:   []LocalRange{{Addr: lip, PortLo: 2000, PortHi: 1000}},
	}
	_, err := FilterProgram(bad)
	if err == nil {
		t.Fatal("FilterProgram accepted invalid endpoints")
	}
	for _, want := range []string{"VIPs[0]", "NATReals[0]", "Locals[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := SteeringProgram(bad, 2); err == nil {
		t.Error("SteeringProgram accepted invalid endpoints")
	}
	for _, w := range []int{0, -1, 1<<16 + 1} {
		if _, err := SteeringProgram(testMatch(), w); err == nil {
			t.Errorf("SteeringProgram accepted %d workers", w)
		}
	}
}

// TestFilterProgramLarge checks that a big configuration still assembles
// (jumps stay short) and that endpoints deep in the program match, and that
// one too big for the kernel is refused.
func TestFilterProgramLarge(t *testing.T) {
	m := &Match{}
	for a := range 50 {
		for p := range 30 {
			m.VIPs = append(m.VIPs, Endpoint{Proto: protoTCP, Addr: [4]byte{10, 1, 0, byte(a)}, Port: uint16(1000 + p)})
		}
	}
	for p := range 500 { // one address with more ports than one group holds
		m.VIPs = append(m.VIPs, Endpoint{Proto: protoUDP, Addr: vip, Port: uint16(5000 + p)})
	}
	m.VIPs = append(m.VIPs, m.VIPs[:100]...) // duplicates are harmless
	prog, err := FilterProgram(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) > bpfMaxInsns {
		t.Fatalf("%d instructions", len(prog))
	}
	vm := newVM(t, prog, skbMeta{})
	for _, tc := range []struct {
		frame []byte
		want  uint32
	}{
		{ipv4Frame(t, protoTCP, client, 1, [4]byte{10, 1, 0, 49}, 1029), Snaplen},
		{ipv4Frame(t, protoTCP, client, 1, [4]byte{10, 1, 0, 0}, 1000), Snaplen},
		{ipv4Frame(t, protoTCP, client, 1, [4]byte{10, 1, 0, 49}, 1030), 0},
		{ipv4Frame(t, protoUDP, client, 1, vip, 5499), Snaplen},
		{ipv4Frame(t, protoUDP, client, 1, vip, 5201), Snaplen},
		{ipv4Frame(t, protoUDP, client, 1, vip, 5500), 0},
	} {
		if got := run(t, vm, tc.frame); got != tc.want {
			t.Errorf("got %d, want %d", got, tc.want)
		}
	}

	huge := &Match{}
	for a := range 2000 {
		huge.VIPs = append(huge.VIPs, Endpoint{Proto: protoTCP, Addr: [4]byte{10, 2, byte(a >> 8), byte(a)}, Port: 80})
	}
	if _, err := FilterProgram(huge); err == nil || !strings.Contains(err.Error(), "4096") {
		t.Errorf("FilterProgram of 2000 addresses: err = %v, want the 4096-instruction limit", err)
	}
}

func TestSteeringProgram(t *testing.T) {
	m := testMatch()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, workers := range []int{2, 3, 4, 7, 16} {
		prog, err := SteeringProgram(m, workers)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, prog, skbMeta{})
		w := uint32(workers)
		for range 300 {
			var c [4]byte
			binary.BigEndian.PutUint32(c[:], rng.Uint32())
			cport := uint16(rng.UintN(65536))

			// NAT: the request to the VIP and the reply from the real.
			req := run(t, vm, ipv4Frame(t, protoTCP, c, cport, vip, 80))
			rep := run(t, vm, ipv4Frame(t, protoTCP, natReal, 8080, c, cport))
			if want := SteerHash(c, cport) % w; req != want || rep != want {
				t.Fatalf("workers=%d client %v:%d: request -> %d, NAT reply -> %d, want both %d", workers, c, cport, req, rep, want)
			}
			// With IP options the ports move; the worker must not.
			if got := run(t, vm, ipv4Frame(t, protoTCP, c, cport, vip, 80, withIPOptions)); got != req {
				t.Fatalf("request with IP options -> %d, want %d", got, req)
			}

			// FULLNAT: the reply to LIP:lport goes to lport % workers.
			lport := uint16(20000 + rng.UintN(1000))
			if got := run(t, vm, ipv4Frame(t, protoUDP, natReal, 53, lip, lport)); got != uint32(lport)%w {
				t.Fatalf("workers=%d FULLNAT reply to port %d -> %d, want %d", workers, lport, got, uint32(lport)%w)
			}
			// Outside the local range it is an ordinary source-hashed frame.
			if got := run(t, vm, ipv4Frame(t, protoUDP, c, cport, lip, 30000)); got != SteerHash(c, cport)%w {
				t.Fatalf("frame to LIP outside the range -> %d, want the source hash", got)
			}
			// A frame from the real's address but another port is not a NAT reply.
			if got := run(t, vm, ipv4Frame(t, protoTCP, natReal, 9999, c, cport)); got != SteerHash(natReal, 9999)%w {
				t.Fatalf("frame from a non-NAT port -> %d, want the source hash", got)
			}
		}
		for _, f := range [][]byte{arpFrame(t), ipv6Frame(t), vlanFrame(t), ipv4Frame(t, 1, client, 1, vip, 80)} {
			if got := run(t, vm, f); got != 0 {
				t.Errorf("non-TCP/UDP frame -> %d, want 0", got)
			}
		}
	}
}

func TestSteeringProgramOneWorker(t *testing.T) {
	prog, err := SteeringProgram(testMatch(), 1)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog, skbMeta{})
	if got := run(t, vm, ipv4Frame(t, protoTCP, client, 40000, vip, 80)); got != 0 {
		t.Errorf("one worker: got %d", got)
	}
}

// TestSteerHashMatchesProgram runs many random tuples through the program
// and the Go twin.
func TestSteerHashMatchesProgram(t *testing.T) {
	const workers = 1 << 16 // the largest modulus shows the most hash bits
	prog, err := SteeringProgram(&Match{}, workers)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog, skbMeta{})
	rng := rand.New(rand.NewPCG(3, 4))
	frame := ipv4Frame(t, protoUDP, client, 1, vip, 53)
	counts := make([]int, 4)
	for range 20000 {
		var src [4]byte
		binary.BigEndian.PutUint32(src[:], rng.Uint32())
		sport := uint16(rng.UintN(65536))
		copy(frame[ethHdrLen+ipSrcOff:], src[:])
		binary.BigEndian.PutUint16(frame[ethHdrLen+20:], sport)
		h := SteerHash(src, sport)
		if got := run(t, vm, frame); got != h%workers {
			t.Fatalf("%v:%d: program %d, SteerHash %% %d = %d", src, sport, got, workers, h%workers)
		}
		counts[h%4]++
	}
	// Sequential client ports from one address must spread too.
	for p := range 4000 {
		counts[SteerHash(client, uint16(30000+p))%4]++
	}
	for i, c := range counts {
		if c < 24000/4*8/10 || c > 24000/4*12/10 {
			t.Errorf("worker %d of 4 got %d of 24000 tuples: the hash spreads badly (%v)", i, c, counts)
		}
	}
}

// naiveAccept is the reference for FilterProgram: the same decision
// written plainly over a parsed frame.
func naiveAccept(m *Match, f []byte, meta skbMeta) bool {
	if meta.vlan || meta.pktType == pktTypeOutgoing || len(f) < ethHdrLen+20 {
		return false
	}
	if binary.BigEndian.Uint16(f[12:]) != etherTypeV4 || f[14]>>4 != 4 || f[14]&0xf < 5 {
		return false
	}
	proto := f[23]
	if binary.BigEndian.Uint16(f[20:])&0x1fff != 0 {
		// A fragment after the first: by address alone.
		if proto != protoTCP && proto != protoUDP {
			return false
		}
		var src, dst [4]byte
		copy(src[:], f[26:30])
		copy(dst[:], f[30:34])
		for _, e := range m.VIPs {
			if e.Addr == dst {
				return true
			}
		}
		for _, r := range m.Locals {
			if r.Addr == dst {
				return true
			}
		}
		for _, e := range m.NATReals {
			if e.Addr == src {
				return true
			}
		}
		return false
	}
	l4 := ethHdrLen + int(f[14]&0xf)*4
	var src, dst [4]byte
	copy(src[:], f[26:30])
	copy(dst[:], f[30:34])
	var sport, dport uint16
	switch proto {
	case protoTCP, protoUDP:
		if len(f) < l4+4 {
			return false
		}
		sport, dport = binary.BigEndian.Uint16(f[l4:]), binary.BigEndian.Uint16(f[l4+2:])
	case protoICMP:
		// An error about a TCP/UDP packet: its quoted tuple, reversed.
		q := l4 + 8
		if len(f) < q+20 || (f[l4] != 3 && f[l4] != 11) {
			return false
		}
		if f[q]>>4 != 4 || f[q]&0xf < 5 || binary.BigEndian.Uint16(f[q+6:])&0x1fff != 0 {
			return false
		}
		proto = f[q+9]
		if proto != protoTCP && proto != protoUDP {
			return false
		}
		ql4 := q + int(f[q]&0xf)*4
		if len(f) < ql4+4 {
			return false
		}
		copy(dst[:], f[q+12:q+16])
		copy(src[:], f[q+16:q+20])
		dport, sport = binary.BigEndian.Uint16(f[ql4:]), binary.BigEndian.Uint16(f[ql4+2:])
	default:
		return false
	}
	for _, e := range m.VIPs {
		if e.Proto == proto && e.Addr == dst && e.Port == dport {
			return true
		}
	}
	for _, e := range m.NATReals {
		if e.Proto == proto && e.Addr == src && e.Port == sport {
			return true
		}
	}
	for _, r := range m.Locals {
		if r.Addr == dst && dport >= r.PortLo && dport <= r.PortHi {
			return true
		}
	}
	return false
}

// TestFilterAgainstNaive mutates golden frames at random and compares the
// program with naiveAccept.
func TestFilterAgainstNaive(t *testing.T) {
	m := testMatch()
	prog, err := FilterProgram(m)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog, skbMeta{})
	seeds := filterSeeds(t)
	rng := rand.New(rand.NewPCG(5, 6))
	accepted := 0
	for range 20000 {
		f := append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
		for range rng.IntN(3) {
			// Mutate the bytes the filter looks at most of the time.
			i := rng.IntN(min(len(f), 60))
			f[i] = byte(rng.UintN(256))
		}
		if rng.IntN(10) == 0 {
			f = f[:rng.IntN(len(f)+1)]
		}
		got := run(t, vm, f) == Snaplen
		if want := naiveAccept(m, f, skbMeta{}); got != want {
			t.Fatalf("program says %v, reference says %v for % x", got, want, f)
		}
		if got {
			accepted++
		}
	}
	if accepted < 1000 {
		t.Errorf("only %d accepted frames: the mutations are too destructive to test much", accepted)
	}
}

func filterSeeds(t testing.TB) [][]byte {
	router := [4]byte{192, 0, 2, 1}
	return [][]byte{
		icmpErrorFrame(t, 3, 4, router, vip, ipv4Frame(t, protoTCP, vip, 80, client, 40000)),
		icmpErrorFrame(t, 3, 3, natReal, client, ipv4Frame(t, protoTCP, client, 40000, natReal, 8080)),
		ipv4Frame(t, protoTCP, client, 40000, vip, 80),
		ipv4Frame(t, protoUDP, client, 40000, vip, 53),
		ipv4Frame(t, protoTCP, client, 40000, vip2, 443, withIPOptions),
		ipv4Frame(t, protoTCP, natReal, 8080, client, 40000),
		ipv4Frame(t, protoUDP, natReal, 53, lip, 20500),
		ipv4Frame(t, protoUDP, client, 40000, vip, 53, withFragment(185, true)),
		vlanFrame(t),
		arpFrame(t),
	}
}

func FuzzFilterProgram(f *testing.F) {
	for _, s := range filterSeeds(f) {
		f.Add(s, false, uint8(0))
	}
	f.Add(ipv4Frame(f, protoTCP, client, 40000, vip, 80), true, uint8(0))                // offloaded VLAN tag
	f.Add(ipv4Frame(f, protoTCP, client, 40000, vip, 80), false, uint8(pktTypeOutgoing)) // our own frame
	m := testMatch()
	prog, err := FilterProgram(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte, vlan bool, pktType uint8) {
		meta := skbMeta{pktType: uint32(pktType % 8), vlan: vlan}
		got := run(t, newVM(t, prog, meta), frame) == Snaplen
		if want := naiveAccept(m, frame, meta); got != want {
			t.Fatalf("program says %v, reference says %v", got, want)
		}
	})
}

// withTCPFlags returns a copy of TCP frame f with its flags byte set to
// flags (the checksum is left stale: programs do not read it).
func withTCPFlags(f []byte, flags byte) []byte {
	f = append([]byte(nil), f...)
	f[ethHdrLen+int(f[ethHdrLen]&0xf)*4+tcpFlagsOff] = flags
	return f
}

// TestSteeringProgramSYN: with SYN rings, a worker's frames go to fanout
// member 2w and the TCP segments that open connections (SYN without ACK
// or RST) to 2w+1; everything else keeps its worker's main ring.
func TestSteeringProgramSYN(t *testing.T) {
	m := testMatch()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, workers := range []int{1, 2, 3, 16} {
		prog, err := SteeringProgramSYN(m, workers)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, prog, skbMeta{})
		w := uint32(workers)
		for range 200 {
			var c [4]byte
			binary.BigEndian.PutUint32(c[:], rng.Uint32())
			cport := uint16(rng.UintN(65536))
			worker := SteerHash(c, cport) % w
			req := ipv4Frame(t, protoTCP, c, cport, vip, 80)
			for _, tc := range []struct {
				name  string
				frame []byte
				want  uint32
			}{
				{"SYN", withTCPFlags(req, tcpSYN), 2*worker + 1},
				{"SYN with IP options", withTCPFlags(ipv4Frame(t, protoTCP, c, cport, vip, 80, withIPOptions), tcpSYN), 2*worker + 1},
				{"SYN with ECN bits", withTCPFlags(req, tcpSYN|0xc0), 2*worker + 1},
				{"SYN-ACK", withTCPFlags(req, tcpSYN|tcpACK), 2 * worker},
				{"SYN-RST", withTCPFlags(req, tcpSYN|tcpRST), 2 * worker},
				{"ACK", withTCPFlags(req, tcpACK), 2 * worker},
				{"FIN-ACK", withTCPFlags(req, tcpACK|0x01), 2 * worker},
				{"UDP", ipv4Frame(t, protoUDP, c, cport, vip, 53), 2 * worker},
				{"NAT reply SYN-ACK", withTCPFlags(ipv4Frame(t, protoTCP, natReal, 8080, c, cport), tcpSYN|tcpACK), 2 * worker},
				// The first fragment has ports and goes with its flow;
				// the others have none and all go to worker 0's main ring.
				{"first fragment", ipv4Frame(t, protoUDP, c, cport, vip, 53, withFragment(0, true)), 2 * worker},
				{"later fragment", ipv4Frame(t, protoUDP, c, cport, vip, 53, withFragment(185, true)), 0},
				{"last fragment from a NAT real", ipv4Frame(t, protoUDP, natReal, 53, c, cport, withFragment(370, false)), 0},
			} {
				if got := run(t, vm, tc.frame); got != tc.want {
					t.Fatalf("workers=%d %s from %v:%d -> member %d, want %d", workers, tc.name, c, cport, got, tc.want)
				}
			}
			lport := uint16(20000 + rng.UintN(1000))
			if got := run(t, vm, ipv4Frame(t, protoUDP, natReal, 53, lip, lport)); got != 2*(uint32(lport)%w) {
				t.Fatalf("workers=%d FULLNAT reply to port %d -> member %d, want %d", workers, lport, got, 2*(uint32(lport)%w))
			}
		}
	}
}
