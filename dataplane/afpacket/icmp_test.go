package afpacket

import (
	"math/rand/v2"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// icmpErrorFrame builds an ICMP error (type/code) from src to dst quoting
// the first 28 bytes (IPv4 header + 8) of quoted, an Ethernet frame.
func icmpErrorFrame(t testing.TB, typ, code uint8, src, dst [4]byte, quoted []byte, opts ...frameOpt) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:])}
	for _, o := range opts {
		o(eth, ip)
	}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Seq: 1400}
	q := quoted[ethHdrLen:]
	q = q[:int(q[0]&0xf)*4+8]
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, icmp, gopacket.Payload(q)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// TestFilterICMPErrors: an ICMP error is admitted exactly when the packet
// it quotes, reversed, would be: an error sent to the VIP about a reply
// from VIP:port, or one from a NAT real (or to a FULLNAT local address)
// about a packet the director sent it.
func TestFilterICMPErrors(t *testing.T) {
	prog, err := FilterProgram(testMatch())
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog, skbMeta{})
	router := [4]byte{192, 0, 2, 1}
	reply := ipv4Frame(t, protoTCP, vip, 80, client, 40000)
	cases := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"frag-needed to the VIP about a TCP reply", icmpErrorFrame(t, 3, 4, router, vip, reply), true},
		{"same with IP options", icmpErrorFrame(t, 3, 4, router, vip, reply, withIPOptions), true},
		{"quoted packet with IP options", icmpErrorFrame(t, 3, 4, router, vip, ipv4Frame(t, protoTCP, vip, 80, client, 40000, withIPOptions)), true},
		{"time exceeded about a UDP reply", icmpErrorFrame(t, 11, 0, router, vip, ipv4Frame(t, protoUDP, vip, 53, client, 5353)), true},
		{"about a port that is no service", icmpErrorFrame(t, 3, 4, router, vip, ipv4Frame(t, protoTCP, vip, 81, client, 40000)), false},
		{"about the wrong protocol", icmpErrorFrame(t, 3, 4, router, vip, ipv4Frame(t, protoUDP, vip, 80, client, 40000)), false},
		{"redirect (not an error we relay)", icmpErrorFrame(t, 5, 1, router, vip, reply), false},
		{"echo request to the VIP", icmpErrorFrame(t, 8, 0, router, vip, reply), false},
		{"NAT real's port unreachable about a request", icmpErrorFrame(t, 3, 3, natReal, client, ipv4Frame(t, protoTCP, client, 40000, natReal, 8080)), true},
		{"FULLNAT real's error about a request from a local port", icmpErrorFrame(t, 3, 3, natReal, lip, ipv4Frame(t, protoUDP, lip, 20500, natReal, 53)), true},
		{"FULLNAT local port out of range", icmpErrorFrame(t, 3, 3, natReal, lip, ipv4Frame(t, protoUDP, lip, 30000, natReal, 53)), false},
		{"quoting a non-first fragment", icmpErrorFrame(t, 3, 4, router, vip, ipv4Frame(t, protoTCP, vip, 80, client, 40000, withFragment(100, false))), false},
		{"quote cut short", icmpErrorFrame(t, 3, 4, router, vip, reply)[:ethHdrLen+20+8+20+2], false},
	}
	for _, c := range cases {
		if got := run(t, vm, c.frame) == Snaplen; got != c.want {
			t.Errorf("%s: accepted %v, want %v", c.name, got, c.want)
		}
	}
}

// TestSteeringICMPErrors: an ICMP error reaches the worker that owns the
// connection it is about.
func TestSteeringICMPErrors(t *testing.T) {
	m := testMatch()
	rng := rand.New(rand.NewPCG(3, 4))
	router := [4]byte{192, 0, 2, 1}
	for _, workers := range []int{2, 3, 7} {
		prog, err := SteeringProgram(m, workers)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, prog, skbMeta{})
		w := uint32(workers)
		for range 200 {
			c := [4]byte{byte(rng.UintN(256)), byte(rng.UintN(256)), byte(rng.UintN(256)), byte(rng.UintN(256))}
			cport := uint16(rng.UintN(65536))
			want := run(t, vm, ipv4Frame(t, protoTCP, c, cport, vip, 80))
			if got := run(t, vm, icmpErrorFrame(t, 3, 4, router, vip, ipv4Frame(t, protoTCP, vip, 80, c, cport), withIPOptions)); got != want {
				t.Fatalf("workers=%d: error to the VIP -> %d, the connection's requests -> %d", workers, got, want)
			}
			if got := run(t, vm, icmpErrorFrame(t, 3, 3, natReal, c, ipv4Frame(t, protoTCP, c, cport, natReal, 8080))); got != want {
				t.Fatalf("workers=%d: NAT real's error -> %d, the connection's requests -> %d", workers, got, want)
			}
			lport := uint16(20000 + rng.UintN(1000))
			if got := run(t, vm, icmpErrorFrame(t, 3, 3, natReal, lip, ipv4Frame(t, protoUDP, lip, lport, natReal, 53))); got != uint32(lport)%w {
				t.Fatalf("workers=%d: FULLNAT real's error about local port %d -> %d, want %d", workers, lport, got, uint32(lport)%w)
			}
		}
	}
}
