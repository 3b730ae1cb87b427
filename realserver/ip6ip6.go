package realserver

import "encoding/binary"

// IPv6 header (RFC 8200 section 3), the inner header of IPv6-in-IPv6 (RFC
// 2473):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Source Address (16 bytes)                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                Destination Address (16 bytes)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ipv6PayloadLenOff = 4
	ipv6NextHeaderOff = 6
	ipv6HopLimitOff   = 7
	ipv6SrcOff        = 8
	ipv6DstOff        = 24
	ipv6HdrLen        = 40

	ipv6Version = 6

	// protoIPv6 is next header 41, IPv6 encapsulation (RFC 2473).
	protoIPv6 = 41
	// Next headers after which no TCP segment can follow.
	protoUDP    = 17
	protoICMPv6 = 58
	protoNoNext = 59
)

// addrSet6 is a set of IPv6 addresses.
type addrSet6 map[[16]byte]struct{}

// decapsulate6 checks what a raw AF_INET6 socket for next header 41
// returns of an IPv6-in-IPv6 packet: unlike an IPv4 raw socket's, it is
// the payload alone, the kernel having checked the outer header, walked
// its extension headers, reassembled its fragments and delivered it
// because its destination is one of this host's addresses. It returns the
// inner packet, a subslice of pkt trimmed to its payload length, when it
// is IPv6 to one of the VIPs. It does not allocate.
func decapsulate6(pkt []byte, vips addrSet6) ([]byte, verdict) {
	if len(pkt) < ipv6HdrLen || pkt[0]>>4 != ipv6Version {
		return nil, verdictBad
	}
	n := ipv6HdrLen + int(binary.BigEndian.Uint16(pkt[ipv6PayloadLenOff:]))
	if n > len(pkt) {
		return nil, verdictBad
	}
	if _, ok := vips[[16]byte(pkt[ipv6DstOff:ipv6DstOff+16])]; !ok {
		return nil, verdictNotVIP
	}
	return pkt[:n], verdictDecap
}
