package realserver

import "encoding/binary"

// IPv4 header (RFC 791 section 3.1), outer and inner alike:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ipv4VerIHLOff   = 0
	ipv4TotalLenOff = 2
	ipv4FragOff     = 6
	ipv4ProtoOff    = 9
	ipv4DstOff      = 16
	ipv4MinHdrLen   = 20

	ipv4Version   = 4
	ipv4MFOffMask = 0x3fff // the More Fragments flag and the fragment offset

	// protoIPIP is IP protocol 4, IP in IP (RFC 2003).
	protoIPIP = 4
)

// maxPacket is the largest IPv4 packet, as a read buffer for outer packets
// (the kernel reassembles fragments before a raw socket sees them).
const maxPacket = 65535

// verdict is what decapsulate decided about one outer packet.
type verdict uint8

const (
	_               verdict = iota
	verdictDecap            // inner packet returned
	verdictBad              // outer or inner header invalid
	verdictNotLocal         // outer destination is not an address of this host
	verdictNotVIP           // inner destination is not one of the VIPs
)

// addrSet is a set of IPv4 addresses.
type addrSet map[[4]byte]struct{}

// decapsulate checks an outer IPIP packet as a raw socket returns it
// (starting with the outer IPv4 header) and returns the inner packet, a
// subslice of pkt trimmed to the inner total length. It does not allocate.
func decapsulate(pkt []byte, local, vips addrSet) ([]byte, verdict) {
	outerLen, ok := ipv4Header(pkt)
	if !ok || pkt[ipv4ProtoOff] != protoIPIP ||
		binary.BigEndian.Uint16(pkt[ipv4FragOff:])&ipv4MFOffMask != 0 {
		return nil, verdictBad
	}
	if _, ok := local[[4]byte(pkt[ipv4DstOff:ipv4DstOff+4])]; !ok {
		return nil, verdictNotLocal
	}
	total := int(binary.BigEndian.Uint16(pkt[ipv4TotalLenOff:]))
	inner := pkt[outerLen:total]
	if _, ok := ipv4Header(inner); !ok {
		return nil, verdictBad
	}
	inner = inner[:binary.BigEndian.Uint16(inner[ipv4TotalLenOff:])]
	if _, ok := vips[[4]byte(inner[ipv4DstOff:ipv4DstOff+4])]; !ok {
		return nil, verdictNotVIP
	}
	return inner, verdictDecap
}

// ipv4Header validates the version, header length and total length of the
// IPv4 header at the start of b and returns the header length.
func ipv4Header(b []byte) (hdrLen int, ok bool) {
	if len(b) < ipv4MinHdrLen || b[ipv4VerIHLOff]>>4 != ipv4Version {
		return 0, false
	}
	hdrLen = int(b[ipv4VerIHLOff]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[ipv4TotalLenOff:]))
	if hdrLen < ipv4MinHdrLen || total < hdrLen || total > len(b) {
		return 0, false
	}
	return hdrLen, true
}
