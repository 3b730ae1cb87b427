package connsync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// goldenConn6 is the IPv6 connection spelled out byte by byte in
// TestGolden6.
var goldenConn6 = Conn{
	Protocol: 6,
	Flags:    FlagMasq, // 0
	State:    TCPStateEstablished,
	Client:   ap("[2001:db8:10::2]:40000"),
	VIP:      ap("[2001:db8:20::100]:80"),
	Real:     ap("[fd00:20::11]:8080"),
	Timeout:  900 * time.Second,
}

// TestGolden6: an IPv6 connection is a struct ip_vs_sync_v6, type
// STYPE_F_INET6, 72 bytes, addresses as struct in6_addr.
func TestGolden6(t *testing.T) {
	want := []byte{
		// Header, struct ip_vs_sync_mesg.
		0x00,       // reserved
		0x05,       // syncid 5
		0x00, 0x50, // size = 8 header + 72 record = 80 = 0x0050
		0x01,       // nr_conns 1
		0x01,       // version 1
		0x00, 0x00, // spare
		// Record, struct ip_vs_sync_v6.
		0x01,       // type STYPE_F_INET6
		0x06,       // protocol TCP
		0x00, 0x48, // ver_size: version 0 << 12 | size 72 = 0x0048
		0x00, 0x00, 0x00, 0x00, // flags MASQ 0
		0x00, 0x01, // state ESTABLISHED 1
		0x9c, 0x40, // cport 40000
		0x00, 0x50, // vport 80
		0x1f, 0x90, // dport 8080
		0x00, 0x00, 0x00, 0x00, // fwmark
		0x00, 0x00, 0x03, 0x84, // timeout 900 s
		0x20, 0x01, 0x0d, 0xb8, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // caddr 2001:db8:10::2
		0x20, 0x01, 0x0d, 0xb8, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, // vaddr 2001:db8:20::100
		0xfd, 0x00, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, // daddr fd00:20::11
	}
	m := Message{SyncID: 5, Conns: []Conn{goldenConn6}}
	got, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Marshal:\n got % x\nwant % x", got, want)
	}
	back, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Fatalf("Parse = %+v, want %+v", back, m)
	}
}

// TestGolden6Local: gvs's OptLocal in an IPv6 record carries a 16-byte
// address and the port, 18 bytes of data; the record is padded to 4.
func TestGolden6Local(t *testing.T) {
	c := goldenConn6
	c.Local = ap("[fd00:20::2]:5001")
	m := Message{Conns: []Conn{c}}
	b, err := m.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	// 72 + 2 + 18 = 92, already a multiple of 4.
	if len(b) != HeaderLen+92 || binary.BigEndian.Uint16(b[HeaderLen+recVerSize:]) != 92 {
		t.Fatalf("len %d, ver_size %#x", len(b), binary.BigEndian.Uint16(b[HeaderLen+recVerSize:]))
	}
	p := b[HeaderLen+ConnLen6:]
	wantParam := []byte{OptLocal, 18, 0xfd, 0x00, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x13, 0x89}
	if !bytes.Equal(p, wantParam) {
		t.Fatalf("param % x, want % x", p, wantParam)
	}
	if got, err := Parse(b); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("Parse = %+v, %v", got, err)
	}
	// A 6-byte (IPv4) OptLocal in an IPv6 record is malformed.
	bad := bytes.Clone(b[:HeaderLen+ConnLen6+8])
	bad[HeaderLen+ConnLen6+1] = 6
	binary.BigEndian.PutUint16(bad[hdrSize:], uint16(len(bad)))
	binary.BigEndian.PutUint16(bad[HeaderLen+recVerSize:], ConnLen6+8)
	if _, err := Parse(bad); !errors.Is(err, ErrParam) {
		t.Errorf("IPv4 OptLocal in an IPv6 record: %v, want ErrParam", err)
	}
}

func randConn6(r *rand.Rand) Conn {
	a6 := func() netip.Addr {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:], r.Uint64()|1<<63) // never IPv4-mapped
		binary.BigEndian.PutUint64(a[8:], r.Uint64())
		return netip.AddrFrom16(a)
	}
	c := randConn(r)
	c.Client = netip.AddrPortFrom(a6(), c.Client.Port())
	c.VIP = netip.AddrPortFrom(a6(), c.VIP.Port())
	c.Real = netip.AddrPortFrom(a6(), c.Real.Port())
	return c
}

// TestRoundTrip6: IPv4 and IPv6 records mixed in one message, in both
// directions, with and without parameters.
func TestRoundTrip6(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	for _, n := range []int{1, 2, 17, 255} {
		m := Message{SyncID: uint8(n)}
		for i := range n {
			var c Conn
			if i%2 == 0 {
				c = randConn6(r)
			} else {
				c = randConn(r)
			}
			if i%3 == 0 {
				c.Flags |= FlagInSeq
				c.InSeq, c.OutSeq = Seq{r.Uint32(), r.Uint32(), r.Uint32()}, Seq{r.Uint32(), r.Uint32(), r.Uint32()}
			}
			if i%5 == 0 {
				c.Local = netip.AddrPortFrom(c.Real.Addr(), 1024)
			}
			m.Conns = append(m.Conns, c)
		}
		b, err := m.Marshal(nil)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(b) != m.Size() {
			t.Fatalf("n=%d: len %d, Size %d", n, len(b), m.Size())
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("n=%d: round trip differs", n)
		}
	}
}

func TestParseErrors6(t *testing.T) {
	good, err := (&Message{Conns: []Conn{goldenConn6}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	set := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for _, tc := range []struct {
		name string
		b    []byte
		want Reason
	}{
		{"size 71", set(func(b []byte) { b[HeaderLen+recVerSize+1] = 71 }), ErrRecordSize},
		{"size 36", set(func(b []byte) { b[HeaderLen+recVerSize+1] = 36 }), ErrRecordSize},
		{"type 3", set(func(b []byte) { b[HeaderLen+recType] = 3 }), ErrType},
		{"cut", set(func(b []byte) { binary.BigEndian.PutUint16(b[hdrSize:], 60) })[:60], ErrRecordSize},
	} {
		_, err := Parse(tc.b)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Reason != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestMarshalRefusesMixed: a connection's addresses are of one family.
func TestMarshalRefusesMixed(t *testing.T) {
	for _, f := range []func(c *Conn){
		func(c *Conn) { c.VIP = ap("198.51.100.1:80") },
		func(c *Conn) { c.Real = ap("10.0.0.1:80") },
		func(c *Conn) { c.Local = ap("10.0.0.1:80") },
		func(c *Conn) { c.VIP = netip.AddrPort{} },
	} {
		c := goldenConn6
		f(&c)
		if _, err := (&Message{Conns: []Conn{c}}).Marshal(nil); !errors.Is(err, ErrFamily) {
			t.Errorf("%+v: %v, want ErrFamily", c, err)
		}
	}
}

// TestBatch6: a parameterless IPv6 record does not end a message; one with
// a parameter does, as an IPv4 one.
func TestBatch6(t *testing.T) {
	withLocal := goldenConn6
	withLocal.Local = ap("[fd00:20::2]:5001")
	conns := []Conn{goldenConn6, goldenConn, goldenConn6, withLocal, goldenConn6}
	msgs, err := Batch(conns, 1, 1472)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	var got []Conn
	for _, b := range msgs {
		m, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Conns...)
	}
	if !reflect.DeepEqual(got, conns) {
		t.Fatalf("Batch lost or changed records: %+v", got)
	}
}

// TestWiresharkDecodes6 is TestWiresharkDecodes for IPv6 records, sent to
// the peer over IPv4 as the sync daemon sends them: Wireshark's IPVS
// dissector reads struct ip_vs_sync_v6 into its caddr6, vaddr6 and daddr6
// fields.
func TestWiresharkDecodes6(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("needs tshark (apt-get install tshark) to check the format against Wireshark's IPVS dissector")
	}
	udpConn := Conn{Protocol: 17, Flags: FlagDRoute | FlagInactive, State: UDPStateNormal, Client: ap("[2001:db8:10::3]:5353"),
		VIP: ap("[2001:db8:20::100]:53"), Real: ap("[fd00:20::12]:53"), Timeout: 300 * time.Second}
	msgs, err := Batch([]Conn{goldenConn6, goldenConn, udpConn}, 9, 1472)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Batch: %d messages, %v", len(msgs), err)
	}
	var pcap bytes.Buffer
	w := pcapgo.NewWriter(&pcap)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 10, 20, 0, 2}, DstMAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 81}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolUDP, SrcIP: netip.MustParseAddr("10.20.0.2").AsSlice(), DstIP: DefaultGroup.AsSlice()}
	udp := &layers.UDP{SrcPort: DefaultPort, DstPort: DefaultPort}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(msgs[0])); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sync6.pcap")
	if err := os.WriteFile(file, pcap.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fields := []string{"ipvs.syncid", "ipvs.conncount", "ipvs.type", "ipvs.proto", "ipvs.caddr6", "ipvs.caddr", "ipvs.cport",
		"ipvs.vaddr6", "ipvs.vaddr", "ipvs.vport", "ipvs.daddr6", "ipvs.daddr", "ipvs.dport", "ipvs.flags.v1", "ipvs.state", "ipvs.timeout",
		"_ws.malformed", "_ws.expert"}
	args := []string{"-r", file, "-T", "fields", "-E", "occurrence=a", "-E", "separator=|", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	want := []string{"9", "3", "1,0,1", "0x06,0x06,0x11", "2001:db8:10::2,2001:db8:10::3", "192.0.2.10", "40000,40000,5353",
		"2001:db8:20::100,2001:db8:20::100", "198.51.100.1", "80,80,53", "fd00:20::11,fd00:20::12", "10.0.0.2", "8080,8080,53",
		"0x00000000,0x00000103,0x00000103", "0x0001,0x0003,0x0000", "900,900,300", "", ""}
	got := strings.Split(strings.TrimSpace(string(out)), "|")
	if len(got) != len(fields) {
		t.Fatalf("tshark printed %q", out)
	}
	for i, f := range fields {
		if got[i] != want[i] {
			t.Errorf("%s: Wireshark says %q, we sent %q", f, got[i], want[i])
		}
	}
}
