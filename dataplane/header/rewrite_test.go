package header_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// l4 gives one rewrite interface over the TCP and UDP views.
type l4 interface {
	SetSourcePortWithChecksumUpdate(uint16)
	SetDestinationPortWithChecksumUpdate(uint16)
	UpdateChecksumPseudoHeaderAddress(old, new [4]byte)
	SetSourcePort(uint16)
	SetDestinationPort(uint16)
	UpdatePartialChecksumPseudoHeaderAddress(old, new [4]byte)
	SourcePort() uint16
	DestinationPort() uint16
}

func l4View(proto uint8, seg []byte) l4 {
	if proto == header.ProtoTCP {
		return header.TCP(seg)
	}
	return header.UDP(seg)
}

// TestIncrementalMatchesRecompute applies random sequences of every
// incremental rewrite to seeded random TCP and UDP packets (random IP and TCP
// options, odd and even payloads) and compares both checksums with a full
// recomputation after each step.
func TestIncrementalMatchesRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 4000 {
		proto := []uint8{header.ProtoTCP, header.ProtoUDP}[i%2]
		pkt := randPacket(r, proto)
		ip := header.IPv4(pkt)
		if !ip.IsValid(len(pkt)) || !ip.IsChecksumValid() {
			t.Fatalf("iteration %d: generator made an invalid packet", i)
		}
		seg := l4View(proto, ip.Payload())
		for step := range 6 {
			var what string
			switch r.IntN(6) {
			case 0:
				a := randAddr(r)
				old := ip.Source()
				ip.SetSourceWithChecksumUpdate(a)
				seg.UpdateChecksumPseudoHeaderAddress(old, a)
				what = "source address"
			case 1:
				a := randAddr(r)
				old := ip.Destination()
				ip.SetDestinationWithChecksumUpdate(a)
				seg.UpdateChecksumPseudoHeaderAddress(old, a)
				what = "destination address"
			case 2:
				seg.SetSourcePortWithChecksumUpdate(uint16(r.Uint32()))
				what = "source port"
			case 3:
				seg.SetDestinationPortWithChecksumUpdate(uint16(r.Uint32()))
				what = "destination port"
			case 4:
				ip.SetTTLWithChecksumUpdate(uint8(r.Uint32()))
				what = "TTL"
			case 5:
				// The same address twice: the checksum must not change form.
				a := ip.Destination()
				ip.SetDestinationWithChecksumUpdate(a)
				seg.UpdateChecksumPseudoHeaderAddress(a, a)
				what = "unchanged address"
			}
			refCheck(t, pkt, what, false)
			if t.Failed() {
				t.Fatalf("iteration %d step %d", i, step)
			}
		}
		if i%100 == 0 { // and once in a while through gopacket
			decode(t, pkt, layers.LayerTypeIPv4)
		}
	}
}

// TestSetTotalLengthWithChecksumUpdate shrinks and grows random packets and
// compares the header checksum with a full recomputation.
func TestSetTotalLengthWithChecksumUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for i := range 3000 {
		pkt := randPacket(r, header.ProtoUDP)
		ip := header.IPv4(pkt)
		n := uint16(ip.HeaderLength() + r.IntN(len(pkt)-ip.HeaderLength()+1))
		if i%10 == 0 {
			n = uint16(r.Uint32()) // any value, also beyond the buffer
		}
		ip.SetTotalLengthWithChecksumUpdate(n)
		if ip.TotalLength() != n {
			t.Fatalf("iteration %d: TotalLength %d, want %d", i, ip.TotalLength(), n)
		}
		if got, want := ip.Checksum(), refIPv4Checksum(pkt); got != want {
			t.Fatalf("iteration %d: checksum %#04x, full recompute %#04x", i, got, want)
		}
		if int(n) <= len(pkt) && !ip.IsValid(len(pkt)) {
			t.Fatalf("iteration %d: total length %d of %d made the header invalid", i, n, len(pkt))
		}
	}
}

// TestUDPZeroChecksumStaysZero: over IPv4 a UDP checksum of 0 means "none"
// and no rewrite may turn it into a (wrong) checksum.
func TestUDPZeroChecksumStaysZero(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for i := range 1000 {
		pkt := randPacket(r, header.ProtoUDP)
		ip := header.IPv4(pkt)
		udp := header.UDP(ip.Payload())
		udp.SetChecksum(0)
		a, b := randAddr(r), randAddr(r)
		oldSrc, oldDst := ip.Source(), ip.Destination()
		ip.SetSourceWithChecksumUpdate(a)
		udp.UpdateChecksumPseudoHeaderAddress(oldSrc, a)
		ip.SetDestinationWithChecksumUpdate(b)
		udp.UpdateChecksumPseudoHeaderAddress(oldDst, b)
		udp.SetSourcePortWithChecksumUpdate(uint16(r.Uint32()))
		udp.SetDestinationPortWithChecksumUpdate(uint16(r.Uint32()))
		refCheck(t, pkt, "rewrite of a UDP datagram without checksum", true)
		if !udp.IsChecksumValid(a, b) {
			t.Fatalf("iteration %d: IsChecksumValid = false for checksum 0", i)
		}
		if i%100 == 0 {
			decode(t, pkt, layers.LayerTypeIPv4)
		}
	}
}

// TestUDPChecksumResultZeroIsAllOnes builds UDP datagrams whose checksum after
// a rewrite computes to 0 and checks that each rewrite writes 0xFFFF
// (RFC 768), not 0, which would mean "no checksum".
func TestUDPChecksumResultZeroIsAllOnes(t *testing.T) {
	type rewrite struct {
		name  string
		apply func(ip header.IPv4, udp header.UDP) // the rewrite under test
		undo  func(ip header.IPv4, udp header.UDP) // puts back the fields apply changes, no checksums
	}
	newAddr, newPort := [4]byte{192, 0, 2, 77}, uint16(31337)
	var oldAddr [4]byte
	var oldPort uint16
	rewrites := []rewrite{
		{"destination address", func(ip header.IPv4, udp header.UDP) {
			ip.SetDestinationWithChecksumUpdate(newAddr)
			udp.UpdateChecksumPseudoHeaderAddress(oldAddr, newAddr)
		}, func(ip header.IPv4, udp header.UDP) { copy(ip[16:20], oldAddr[:]) }},
		{"source address", func(ip header.IPv4, udp header.UDP) {
			ip.SetSourceWithChecksumUpdate(newAddr)
			udp.UpdateChecksumPseudoHeaderAddress(oldAddr, newAddr)
		}, func(ip header.IPv4, udp header.UDP) { copy(ip[12:16], oldAddr[:]) }},
		{"source port", func(ip header.IPv4, udp header.UDP) { udp.SetSourcePortWithChecksumUpdate(newPort) },
			func(ip header.IPv4, udp header.UDP) { udp.SetSourcePort(oldPort) }},
		{"destination port", func(ip header.IPv4, udp header.UDP) { udp.SetDestinationPortWithChecksumUpdate(newPort) },
			func(ip header.IPv4, udp header.UDP) { udp.SetDestinationPort(oldPort) }},
	}
	r := rand.New(rand.NewPCG(17, 18))
	for i := range 400 {
		rw := rewrites[i%len(rewrites)]
		var pkt []byte
		for pkt == nil || len(header.IPv4(pkt).Payload()) < header.UDPLen+2 {
			pkt = randPacket(r, header.ProtoUDP)
		}
		ip := header.IPv4(pkt)
		udp := header.UDP(ip.Payload())
		switch rw.name {
		case "destination address":
			oldAddr = ip.Destination()
		case "source address":
			oldAddr = ip.Source()
		case "source port":
			oldPort = udp.SourcePort()
		case "destination port":
			oldPort = udp.DestinationPort()
		}
		// Set the rewritten fields, then choose the first payload word so
		// that the sum over pseudo-header and datagram is 0xffff: its
		// complement, the checksum, is then 0.
		apply := func() {
			switch rw.name {
			case "destination address":
				copy(ip[16:20], newAddr[:])
			case "source address":
				copy(ip[12:16], newAddr[:])
			case "source port":
				udp.SetSourcePort(newPort)
			case "destination port":
				udp.SetDestinationPort(newPort)
			}
		}
		apply()
		udp.SetChecksum(0)
		binary.BigEndian.PutUint16(udp[8:], 0)
		s := naiveChecksum(append(pseudoHeader(header.ProtoUDP, ip.Source(), ip.Destination(), int(udp.Length())), udp[:udp.Length()]...), 0)
		binary.BigEndian.PutUint16(udp[8:], 0xffff-s)
		if c := refL4Checksum(header.ProtoUDP, ip.Source(), ip.Destination(), udp[:udp.Length()]); c != 0xffff {
			t.Fatalf("iteration %d: constructed datagram checksums to %#04x, want 0 (sent as 0xffff)", i, c)
		}
		// Back to the original fields with a correct checksum, then rewrite.
		rw.undo(ip, udp)
		fixChecksums(pkt)
		before := udp.Checksum()
		rw.apply(ip, udp)
		if got := udp.Checksum(); got != 0xffff {
			t.Fatalf("iteration %d: %s rewrite from checksum %#04x wrote %#04x, want 0xffff", i, rw.name, before, got)
		}
		refCheck(t, pkt, rw.name, false)
		if !udp.IsChecksumValid(ip.Source(), ip.Destination()) {
			t.Fatalf("iteration %d: 0xffff does not validate", i)
		}
		if i%50 == 0 {
			decode(t, pkt, layers.LayerTypeIPv4)
		}
	}
	// The raw update does produce 0 here, which is why UDP maps it.
	if got := header.ChecksumUpdate16(0x0001, 0x0000, 0x0001); got != 0 {
		t.Fatalf("ChecksumUpdate16(1, 0, 1) = %#04x, want 0", got)
	}
}

// TestPartialChecksum rewrites segments whose checksum field holds only the
// pseudo-header sum, as offloads (CHECKSUM_PARTIAL, virtio NEEDS_CSUM) hand
// them over, then finishes the checksum as the kernel or NIC would and
// compares it with a full recomputation of the rewritten packet.
func TestPartialChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	for i := range 2000 {
		proto := []uint8{header.ProtoTCP, header.ProtoUDP}[i%2]
		pkt := randPacket(r, proto)
		ip := header.IPv4(pkt)
		seg := ip.Payload()
		off := l4CsumOff(proto)
		partial := func() uint16 {
			return naiveChecksum(pseudoHeader(proto, ip.Source(), ip.Destination(), len(seg)), 0)
		}
		binary.BigEndian.PutUint16(seg[off:], partial())

		v := l4View(proto, seg)
		newSrc, newDst := randAddr(r), randAddr(r)
		oldSrc, oldDst := ip.Source(), ip.Destination()
		ip.SetSourceWithChecksumUpdate(newSrc)
		v.UpdatePartialChecksumPseudoHeaderAddress(oldSrc, newSrc)
		ip.SetDestinationWithChecksumUpdate(newDst)
		v.UpdatePartialChecksumPseudoHeaderAddress(oldDst, newDst)
		v.SetSourcePort(uint16(r.Uint32()))
		v.SetDestinationPort(uint16(r.Uint32()))

		if got, want := binary.BigEndian.Uint16(seg[off:]), partial(); got != want {
			t.Fatalf("iteration %d: partial checksum %#04x, pseudo-header sum %#04x", i, got, want)
		}
		// Finish it: the device sums from the transport header on,
		// including the partial field, and stores the complement.
		done := ^naiveChecksum(seg, 0)
		if proto == header.ProtoUDP && done == 0 {
			done = 0xffff
		}
		binary.BigEndian.PutUint16(seg[off:], done)
		refCheck(t, pkt, "finished partial checksum", false)
		if i%100 == 0 {
			decode(t, pkt, layers.LayerTypeIPv4)
		}
	}
}

// TestDecodeCatchesBadChecksum makes sure the gopacket oracle would notice a
// wrong transport checksum, so the golden tests cannot pass vacuously.
func TestDecodeCatchesBadChecksum(t *testing.T) {
	pkt := serialize(t, gpIPv4(layers.IPProtocolTCP, cip, vip), gpTCP(), gopacket.Payload("x"))
	ip := header.IPv4(pkt)
	ip.SetDestinationWithChecksumUpdate(rip) // without the pseudo-header update
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	p.Layer(layers.LayerTypeTCP).(*layers.TCP).SetNetworkLayerForChecksum(p.Layer(layers.LayerTypeIPv4).(*layers.IPv4))
	err, mm := p.VerifyChecksums()
	if err != nil || len(mm) != 1 || mm[0].Layer.LayerType() != layers.LayerTypeTCP {
		t.Fatalf("VerifyChecksums = %v, %v; want one TCP mismatch", err, mm)
	}
}

// fullNAT is the FULLNAT request rewrite: both addresses and both ports.
func fullNAT(ip header.IPv4, tcp header.TCP) {
	ip.SetSourceWithChecksumUpdate(lip)
	tcp.UpdateChecksumPseudoHeaderAddress(cip, lip)
	ip.SetDestinationWithChecksumUpdate(rip)
	tcp.UpdateChecksumPseudoHeaderAddress(vip, rip)
	tcp.SetSourcePortWithChecksumUpdate(5001)
	tcp.SetDestinationPortWithChecksumUpdate(8080)
	ip.SetTTLWithChecksumUpdate(ip.TTL() - 1)
}

// undoFullNAT puts the original addresses and ports back.
func undoFullNAT(ip header.IPv4, tcp header.TCP) {
	ip.SetSourceWithChecksumUpdate(cip)
	tcp.UpdateChecksumPseudoHeaderAddress(lip, cip)
	ip.SetDestinationWithChecksumUpdate(vip)
	tcp.UpdateChecksumPseudoHeaderAddress(rip, vip)
	tcp.SetSourcePortWithChecksumUpdate(40000)
	tcp.SetDestinationPortWithChecksumUpdate(80)
	ip.SetTTLWithChecksumUpdate(ip.TTL() + 1)
}

// TestRewriteNoAllocs proves the forwarding-path operations allocate nothing.
func TestRewriteNoAllocs(t *testing.T) {
	pkt := serialize(t, gpIPv4(layers.IPProtocolTCP, cip, vip), gpTCP(), gopacket.Payload("payload"))
	udpPkt := serialize(t, gpIPv4(layers.IPProtocolUDP, cip, vip), &layers.UDP{SrcPort: 1, DstPort: 2}, gopacket.Payload("p"))
	encap := make([]byte, header.IPIPOverhead+len(pkt))
	copy(encap[header.IPIPOverhead:], pkt)
	icmp := make([]byte, 128)
	frame := make([]byte, header.EthernetLen)
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"validate and read", func() {
			ip := header.IPv4(pkt)
			if ip.IsValid(len(pkt)) && !ip.IsFragment() && ip.IsChecksumValid() {
				tcp := header.TCP(ip.Payload())
				if tcp.IsValid(len(tcp)) {
					sink = tcp.SourcePort() ^ tcp.DestinationPort() ^ uint16(tcp.Flags())
				}
			}
		}},
		{"ethernet rewrite", func() {
			eth := header.Ethernet(frame)
			eth.SetSource(eth.Destination())
			eth.SetDestination(macB)
		}},
		{"TCP FULLNAT rewrite", func() {
			ip := header.IPv4(pkt)
			tcp := header.TCP(ip.Payload())
			fullNAT(ip, tcp)
			undoFullNAT(ip, tcp)
		}},
		{"UDP NAT rewrite", func() {
			ip := header.IPv4(udpPkt)
			udp := header.UDP(ip.Payload())
			ip.SetDestinationWithChecksumUpdate(rip)
			udp.UpdateChecksumPseudoHeaderAddress(vip, rip)
			udp.SetDestinationPortWithChecksumUpdate(8080)
			ip.SetDestinationWithChecksumUpdate(vip)
			udp.UpdateChecksumPseudoHeaderAddress(rip, vip)
			udp.SetDestinationPortWithChecksumUpdate(2)
		}},
		{"checksum", func() { sink = header.Checksum(pkt, 0) }},
		{"EncapIPIP", func() { sink = header.EncapIPIP(encap, dirIP, rip, 64).Checksum() }},
		{"WriteICMPv4FragNeeded", func() { sink = uint16(header.WriteICMPv4FragNeeded(icmp, dirIP, pkt, 1400)) }},
	} {
		if n := testing.AllocsPerRun(200, tt.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tt.name, n)
		}
	}
	refCheck(t, pkt, "after rewrite and undo", false)
	decode(t, pkt, layers.LayerTypeIPv4)
}

// BenchmarkRewriteAddressPort measures the FULLNAT rewrite (two addresses,
// two ports and TTL, each with its checksum updates) and its undo, so two
// packet rewrites per iteration.
func BenchmarkRewriteAddressPort(b *testing.B) {
	pkt := serialize(b, gpIPv4(layers.IPProtocolTCP, cip, vip), gpTCP(), gopacket.Payload("payload"))
	ip := header.IPv4(pkt)
	tcp := header.TCP(ip.Payload())
	b.ReportAllocs()
	for b.Loop() {
		fullNAT(ip, tcp)
		undoFullNAT(ip, tcp)
	}
	b.ReportMetric(2*float64(b.N)/b.Elapsed().Seconds(), "rewrites/s")
}
