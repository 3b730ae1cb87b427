package dataplane

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

// The golden-packet fixtures: addresses of the DESIGN.md test topology.
var (
	macRouter = mustMAC("02:00:00:00:00:01") // the client's packets arrive from the router
	macDir    = mustMAC("02:00:00:00:00:02")
	macRS1    = mustMAC("02:00:00:00:00:11")
	ipClient  = netip.MustParseAddr("10.10.0.2")
	ipDir     = netip.MustParseAddr("10.20.0.2")
	ipVIP     = netip.MustParseAddr("10.20.0.100")
	ipRS1     = netip.MustParseAddr("10.20.0.11")
	ipLocal   = netip.MustParseAddr("10.20.0.2")
)

const (
	cport   = 40000
	vport   = 80
	natPort = 8080
	portLo  = 5000
)

func mustMAC(s string) [6]byte {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	var m [6]byte
	copy(m[:], hw)
	return m
}

// testTable is a one-service, one-real table in forwarding method f for
// protocol proto. The real listens on natPort in NAT and FULLNAT, else on
// the VIP's port.
func testTable(f Forward, proto uint8) *Table {
	rport := uint16(vport)
	if f == ForwardNAT || f == ForwardFullNAT {
		rport = natPort
	}
	r := Real{ID: 0, Addr: ipRS1.As4(), Port: rport, Forward: f, MAC: macRS1, Ready: true,
		Counters: new(schedule.Counters), Stats: new(RealStats)}
	dests := []schedule.Dest{{Weight: 1, Counters: r.Counters}}
	sched, err := schedule.New("rr", dests, schedule.Options{})
	if err != nil {
		panic(err)
	}
	svc := &Service{Proto: proto, VIP: ipVIP.As4(), Port: vport, Reals: []uint32{0}, Dests: dests, Sched: sched}
	return &Table{
		MAC: macDir, Addr: ipDir.As4(), MTU: 1500,
		Services: map[ServiceKey]*Service{{Proto: proto, VIP: ipVIP.As4(), Port: vport}: svc},
		Reals:    []Real{r},
		Locals:   [][4]byte{ipLocal.As4()},
		PortLo:   portLo, PortHi: 6000,
		Timeouts: conntrack.Timeouts{TCP: 15 * time.Minute, TCPFin: 2 * time.Minute, UDP: 5 * time.Minute},
	}
}

// pkt describes a frame for the independent encoder (gopacket).
type pkt struct {
	srcMAC, dstMAC     [6]byte
	src, dst           netip.Addr
	sport, dport       uint16
	proto              uint8 // header.ProtoTCP or ProtoUDP
	syn, ack, rst, fin bool
	payload            []byte
	df                 bool
	id                 uint16
	options            []layers.IPv4Option
	udpNoChecksum      bool
	badIPChecksum      bool
	fragOffset         uint16
	moreFragments      bool
	truncateIPLength   int    // > 0: claim a longer IP total length than the frame has
	seqOff, ackOff     uint32 // added to the TCP sequence (1000) and acknowledgment (2000) numbers
}

func (p pkt) layers() []gopacket.SerializableLayer {
	eth := &layers.Ethernet{SrcMAC: p.srcMAC[:], DstMAC: p.dstMAC[:], EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 63, Id: p.id, SrcIP: p.src.AsSlice(), DstIP: p.dst.AsSlice(), Options: p.options,
		FragOffset: p.fragOffset}
	if p.df {
		ip.Flags |= layers.IPv4DontFragment
	}
	if p.moreFragments {
		ip.Flags |= layers.IPv4MoreFragments
	}
	var l4 gopacket.SerializableLayer
	if p.proto == header.ProtoUDP {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		ip.Protocol = layers.IPProtocolTCP
		tc := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), SYN: p.syn, ACK: p.ack, RST: p.rst, FIN: p.fin,
			Seq: 1000 + p.seqOff, Ack: 2000 + p.ackOff, Window: 65535, DataOffset: 5}
		tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	return []gopacket.SerializableLayer{eth, ip, l4, gopacket.Payload(p.payload)}
}

func (p pkt) bytes(t testing.TB) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, p.layers()...); err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	ip := header.IPv4(b[header.EthernetLen:])
	b = b[:header.EthernetLen+int(ip.TotalLength())] // no Ethernet padding: the tests add it where they mean it
	if p.udpNoChecksum {
		header.UDP(ip.Payload()).SetChecksum(0)
	}
	if p.truncateIPLength > 0 {
		ip.SetTotalLengthWithChecksumUpdate(ip.TotalLength() + uint16(p.truncateIPLength))
	}
	if p.badIPChecksum {
		ip.SetChecksum(ip.Checksum() ^ 0x0101)
	}
	return b
}

// client is a client packet arriving at the director for VIP:80.
func client(proto uint8) pkt {
	return pkt{srcMAC: macRouter, dstMAC: macDir, src: ipClient, dst: ipVIP, sport: cport, dport: vport, proto: proto,
		df: true, id: 7, payload: []byte("hello, real server")}
}

type step struct {
	name    string
	in      []byte
	verdict Verdict
	out     []byte // nil: nothing sent
	check   func(t *testing.T, out []byte)
}

func runSteps(t *testing.T, tbl *Table, steps []step) *Worker {
	t.Helper()
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	w := newWorker(0, 1, nil, &ptr, 1024)
	if len(tbl.Services6) > 0 {
		w.enableIPv6() // as Dataplane.Publish does
	}
	for _, s := range steps {
		buf := make([]byte, Headroom+MaxFrame)
		copy(buf[Headroom:], s.in)
		out, v := w.process(tbl, buf, len(s.in), make([]byte, 128), 1)
		if v != s.verdict {
			t.Fatalf("%s: verdict %v, want %v", s.name, v, s.verdict)
		}
		if s.out == nil && s.check == nil && out != nil {
			t.Fatalf("%s: sent a frame, want none:\n%s", s.name, hex.Dump(out))
		}
		if s.out != nil && !bytes.Equal(out, s.out) {
			t.Fatalf("%s: output differs\n got:\n%s\nwant:\n%s\n%s", s.name, hex.Dump(out), hex.Dump(s.out), diff(out, s.out))
		}
		if s.check != nil {
			if out == nil {
				t.Fatalf("%s: nothing sent", s.name)
			}
			s.check(t, out)
		}
	}
	return w
}

func diff(a, b []byte) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return "first difference at byte " + strconv.Itoa(i)
		}
	}
	return "lengths " + strconv.Itoa(len(a)) + " and " + strconv.Itoa(len(b))
}

func TestGoldenDR(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		in := client(proto)
		in.syn = true
		out := in
		out.srcMAC, out.dstMAC = macDir, macRS1
		tbl := testTable(ForwardDR, proto)
		runSteps(t, tbl, []step{{name: "DR request", in: in.bytes(t), verdict: VerdictForward, out: out.bytes(t)}})
		if c := tbl.Reals[0].Stats.Conns.Load(); c != 1 {
			t.Errorf("proto %d: real conns %d, want 1", proto, c)
		}
		// As the kernel's tcp_state_active_table: SYN_RECV counts as
		// active; UDP entries are inactive.
		wantActive, wantInactive := int64(1), int64(0)
		if proto == header.ProtoUDP {
			wantActive, wantInactive = 0, 1
		}
		if a, i := tbl.Reals[0].Counters.Active.Load(), tbl.Reals[0].Counters.Inactive.Load(); a != wantActive || i != wantInactive {
			t.Errorf("proto %d: real active %d inactive %d, want %d %d", proto, a, i, wantActive, wantInactive)
		}
	}
}

func TestGoldenNAT(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		tbl := testTable(ForwardNAT, proto)
		req := client(proto)
		req.syn = true
		wantReq := req
		wantReq.srcMAC, wantReq.dstMAC, wantReq.dst, wantReq.dport = macDir, macRS1, ipRS1, natPort

		reply := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport, proto: proto,
			syn: true, ack: true, df: true, id: 9, payload: []byte("hello, client")}
		wantReply := reply
		wantReply.srcMAC, wantReply.dstMAC, wantReply.src, wantReply.sport = macDir, macRouter, ipVIP, vport

		ack := client(proto)
		ack.ack = true
		wantAck := ack
		wantAck.srcMAC, wantAck.dstMAC, wantAck.dst, wantAck.dport = macDir, macRS1, ipRS1, natPort

		runSteps(t, tbl, []step{
			{name: "NAT request", in: req.bytes(t), verdict: VerdictForward, out: wantReq.bytes(t)},
			{name: "NAT reply", in: reply.bytes(t), verdict: VerdictForward, out: wantReply.bytes(t)},
			{name: "NAT ack", in: ack.bytes(t), verdict: VerdictForward, out: wantAck.bytes(t)},
		})
		st := tbl.Reals[0].Stats
		if st.InPkts.Load() != 2 || st.OutPkts.Load() != 1 || st.Conns.Load() != 1 {
			t.Errorf("proto %d: real stats in %d out %d conns %d, want 2 1 1", proto, st.InPkts.Load(), st.OutPkts.Load(), st.Conns.Load())
		}
		if proto == header.ProtoTCP {
			c := tbl.Reals[0].Counters
			if c.Active.Load() != 1 || c.Inactive.Load() != 0 {
				t.Errorf("after the handshake: active %d inactive %d, want 1 0", c.Active.Load(), c.Inactive.Load())
			}
		}
	}
}

func TestGoldenFullNAT(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		tbl := testTable(ForwardFullNAT, proto)
		req := client(proto)
		req.syn = true
		wantReq := req
		wantReq.srcMAC, wantReq.dstMAC = macDir, macRS1
		wantReq.src, wantReq.sport = ipLocal, portLo // worker 0 of 1 starts at the bottom of the range
		wantReq.dst, wantReq.dport = ipRS1, natPort

		reply := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipLocal, sport: natPort, dport: portLo, proto: proto,
			syn: true, ack: true, df: true, id: 9, payload: []byte("hello, client")}
		wantReply := reply
		wantReply.srcMAC, wantReply.dstMAC = macDir, macRouter
		wantReply.src, wantReply.sport, wantReply.dst, wantReply.dport = ipVIP, vport, ipClient, cport
		if proto == header.ProtoTCP {
			// The director's ISN for the real-side tuple (fullnat.go):
			// the client's sequence numbers are shifted up, the real's
			// acknowledgments back down.
			isn, _ := fullnatClocks(1, ipLocal.As4(), portLo, ipRS1.As4(), natPort)
			wantReq.seqOff, wantReply.ackOff = isn-1000, -(isn - 1000)
		}

		runSteps(t, tbl, []step{
			{name: "FULLNAT request", in: req.bytes(t), verdict: VerdictForward, out: wantReq.bytes(t)},
			{name: "FULLNAT reply", in: reply.bytes(t), verdict: VerdictForward, out: wantReply.bytes(t)},
		})
	}
}

func TestFullNATPortsPerWorker(t *testing.T) {
	tbl := testTable(ForwardFullNAT, header.ProtoUDP)
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	const n = 3
	for id := 0; id < n; id++ {
		w := newWorker(id, n, nil, &ptr, 1024)
		for i := 0; i < 50; i++ {
			in := client(header.ProtoUDP)
			in.sport = uint16(30000 + i)
			b := in.bytes(t)
			buf := make([]byte, Headroom+MaxFrame)
			copy(buf[Headroom:], b)
			out, v := w.process(tbl, buf, len(b), make([]byte, 128), 1)
			if v != VerdictForward {
				t.Fatalf("worker %d flow %d: verdict %v", id, i, v)
			}
			ip := header.IPv4(out[header.EthernetLen:])
			p := header.UDP(ip.Payload()).SourcePort()
			if int(p)%n != id || p < portLo || p > 6000 {
				t.Fatalf("worker %d of %d used local port %d", id, n, p)
			}
		}
	}
}

func TestGoldenTUN(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		tbl := testTable(ForwardTUN, proto)
		in := client(proto)
		in.syn = true
		inner := in.bytes(t)[header.EthernetLen:]
		outer := []gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: macDir[:], DstMAC: macRS1[:], EthernetType: layers.EthernetTypeIPv4},
			&layers.IPv4{Version: 4, TTL: tunnelTTL, Id: in.id, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolIPv4,
				SrcIP: ipDir.AsSlice(), DstIP: ipRS1.AsSlice()},
			gopacket.Payload(inner),
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, outer...); err != nil {
			t.Fatal(err)
		}
		runSteps(t, tbl, []step{{name: "TUN request", in: in.bytes(t), verdict: VerdictForward, out: buf.Bytes()}})
	}
}

func TestTUNFragNeeded(t *testing.T) {
	tbl := testTable(ForwardTUN, header.ProtoTCP)
	syn := client(header.ProtoTCP)
	syn.syn = true
	big := client(header.ProtoTCP)
	big.ack = true
	big.payload = make([]byte, 1500-20-20) // a full-MTU segment: +20 bytes of IPIP is too big
	noDF := big
	noDF.df = false
	runSteps(t, tbl, []step{
		{name: "SYN", in: syn.bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}},
		{name: "full-size DF segment", in: big.bytes(t), verdict: VerdictTooBig, check: func(t *testing.T, out []byte) {
			p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
			eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if eth == nil || ip == nil || icmp == nil {
				t.Fatalf("not Ethernet/IPv4/ICMPv4:\n%s", p.Dump())
			}
			if !bytes.Equal(eth.DstMAC, macRouter[:]) || !bytes.Equal(eth.SrcMAC, macDir[:]) {
				t.Errorf("ICMP MACs %s -> %s, want to the router", eth.SrcMAC, eth.DstMAC)
			}
			if !ip.DstIP.Equal(ipClient.AsSlice()) || !ip.SrcIP.Equal(ipVIP.AsSlice()) {
				t.Errorf("ICMP %s -> %s, want VIP -> client", ip.SrcIP, ip.DstIP)
			}
			if icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || icmp.Seq != 1480 {
				t.Errorf("ICMP %v mtu %d, want frag-needed mtu 1480", icmp.TypeCode, icmp.Seq)
			}
			if !header.IPv4(out[header.EthernetLen:]).IsChecksumValid() {
				t.Error("ICMP's IPv4 checksum invalid")
			}
			if header.Checksum(out[header.EthernetLen+20:], 0) != 0xffff {
				t.Error("ICMP checksum invalid")
			}
		}},
		// Without DF the outer packet is fragmented (tunfrag_test.go).
		{name: "full-size segment without DF", in: noDF.bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}},
	})
}

func TestGoldenDrops(t *testing.T) {
	ack := client(header.ProtoTCP)
	ack.ack = true
	other := client(header.ProtoTCP)
	other.syn = true
	other.dport = 81
	bad := client(header.ProtoTCP)
	bad.syn = true
	bad.badIPChecksum = true
	trunc := client(header.ProtoTCP)
	trunc.syn = true
	trunc.truncateIPLength = 40
	frag := client(header.ProtoUDP)
	frag.df = false
	frag.fragOffset = 185
	first := client(header.ProtoUDP)
	first.df = false
	first.moreFragments = true
	arp := make([]byte, 42)
	header.Ethernet(arp).SetType(header.EtherTypeARP)
	synack := client(header.ProtoTCP)
	synack.syn, synack.ack = true, true
	rst := client(header.ProtoTCP)
	rst.rst = true
	runSteps(t, testTable(ForwardNAT, header.ProtoTCP), []step{
		{name: "ACK without connection", in: ack.bytes(t), verdict: VerdictNoConn},
		{name: "SYN+ACK without connection", in: synack.bytes(t), verdict: VerdictNoConn},
		{name: "RST without connection", in: rst.bytes(t), verdict: VerdictNoConn},
		{name: "no service on port 81", in: other.bytes(t), verdict: VerdictNoService},
		{name: "bad IPv4 checksum", in: bad.bytes(t), verdict: VerdictMalformed},
		{name: "IP length beyond frame", in: trunc.bytes(t), verdict: VerdictMalformed},
		// Fragments (fragment_test.go): a later one without its first
		// waits; a first one is a packet like any other, here to no
		// service (UDP).
		{name: "non-first fragment", in: frag.bytes(t), verdict: verdictHeld},
		{name: "first fragment", in: first.bytes(t), verdict: VerdictNoService},
		{name: "ARP", in: arp, verdict: VerdictNotIPv4},
		{name: "runt", in: arp[:20], verdict: VerdictNotIPv4},
		{name: "empty", in: nil, verdict: VerdictMalformed},
	})
}

func TestGoldenEdgeCases(t *testing.T) {
	// IPv4 options survive NAT and the checksums stay right.
	opt := client(header.ProtoTCP)
	opt.syn = true
	opt.options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // NOP NOP NOP EOL
	wantOpt := opt
	wantOpt.srcMAC, wantOpt.dstMAC, wantOpt.dst, wantOpt.dport = macDir, macRS1, ipRS1, natPort
	runSteps(t, testTable(ForwardNAT, header.ProtoTCP), []step{{name: "IP options", in: opt.bytes(t), verdict: VerdictForward, out: wantOpt.bytes(t)}})

	// A UDP checksum of 0 means none: it stays 0 through NAT.
	u := client(header.ProtoUDP)
	u.udpNoChecksum = true
	wantU := u
	wantU.srcMAC, wantU.dstMAC, wantU.dst, wantU.dport = macDir, macRS1, ipRS1, natPort
	runSteps(t, testTable(ForwardNAT, header.ProtoUDP), []step{{name: "UDP checksum 0", in: u.bytes(t), verdict: VerdictForward, out: wantU.bytes(t)}})

	// Ethernet padding (a 60-byte minimum frame) is not forwarded.
	small := client(header.ProtoUDP)
	small.payload = nil
	b := small.bytes(t)
	padded := append(append([]byte(nil), b...), make([]byte, 60-len(b))...)
	wantSmall := small
	wantSmall.srcMAC, wantSmall.dstMAC = macDir, macRS1
	runSteps(t, testTable(ForwardDR, header.ProtoUDP), []step{{name: "padded frame", in: padded, verdict: VerdictForward, out: wantSmall.bytes(t)}})

	// A real that lost its next hop gets nothing, even for live connections.
	tbl := testTable(ForwardDR, header.ProtoUDP)
	w := runSteps(t, tbl, []step{{name: "first", in: client(header.ProtoUDP).bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}}})
	tbl2 := *tbl
	tbl2.Reals = []Real{tbl.Reals[0]}
	tbl2.Reals[0].Ready = false
	buf := make([]byte, Headroom+MaxFrame)
	in := client(header.ProtoUDP).bytes(t)
	copy(buf[Headroom:], in)
	if _, v := w.process(&tbl2, buf, len(in), make([]byte, 128), 2); v != VerdictNoReal {
		t.Errorf("real not ready: verdict %v, want no_real", v)
	}
	// A nil table means no services.
	copy(buf[Headroom:], in)
	if _, v := w.process(nil, buf, len(in), make([]byte, 128), 2); v != VerdictNoService {
		t.Errorf("nil table: verdict %v, want no_service", v)
	}
}

func TestExpiryReleasesCounters(t *testing.T) {
	tbl := testTable(ForwardDR, header.ProtoUDP)
	w := runSteps(t, tbl, []step{{name: "first", in: client(header.ProtoUDP).bytes(t), verdict: VerdictForward, check: func(*testing.T, []byte) {}}})
	if w.shard.Len() != 1 || tbl.Reals[0].Counters.Inactive.Load() != 1 {
		t.Fatalf("after one flow: %d entries, %d inactive", w.shard.Len(), tbl.Reals[0].Counters.Inactive.Load())
	}
	w.cur = tbl
	w.expire(1+int64(6*time.Minute), false)
	if w.shard.Len() != 0 || tbl.Reals[0].Counters.Inactive.Load() != 0 || w.C.ExpiredConns.Load() != 1 {
		t.Fatalf("after the UDP timeout: %d entries, %d inactive, %d expired", w.shard.Len(), tbl.Reals[0].Counters.Inactive.Load(), w.C.ExpiredConns.Load())
	}
}
