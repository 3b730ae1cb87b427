package header_test

import (
	"fmt"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// A NAT rewrite of a validated TCP packet: destination VIP:port to RIP:port,
// each field written together with its checksum updates.
func Example() {
	pkt := make([]byte, header.IPv4MinLen+header.TCPMinLen)
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(pkt)), TTL: 64, Protocol: header.ProtoTCP,
		Src: [4]byte{10, 0, 0, 1}, Dst: [4]byte{10, 20, 0, 100},
	})
	tcp := header.TCP(ip.Payload())
	tcp[12] = (header.TCPMinLen / 4) << 4 // data offset
	tcp.SetDestinationPort(80)
	tcp.SetChecksum(tcp.CalculateChecksum(ip.Source(), ip.Destination()))

	if !ip.IsValid(len(pkt)) || !tcp.IsValid(len(ip.Payload())) {
		return
	}
	rip := [4]byte{10, 20, 0, 11}
	vip := ip.Destination()
	ip.SetDestinationWithChecksumUpdate(rip)
	tcp.UpdateChecksumPseudoHeaderAddress(vip, rip)
	tcp.SetDestinationPortWithChecksumUpdate(8080)

	fmt.Println(ip.Destination(), tcp.DestinationPort())
	fmt.Println(ip.IsChecksumValid(), tcp.IsChecksumValid(ip.Source(), ip.Destination()))
	// Output:
	// [10 20 0 11] 8080
	// true true
}
