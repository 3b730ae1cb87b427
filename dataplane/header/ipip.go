package header

// EncapIPIP writes an outer IPv4 header (protocol 4, RFC 2003 section 3.1)
// from src to dst into b[:20], where b[20:] already holds the inner IPv4
// packet; leaving IPIPOverhead bytes of headroom in front of each frame makes
// encapsulation a prepend rather than a copy.
//
// As RFC 2003 section 3.1 allows, the outer TOS and DF bit are copied from the
// inner header and the outer ID is the inner ID; the outer TTL is ttl, the
// total length is the inner TotalLength plus 20 and the checksum is computed.
// The inner packet is not modified. It returns IPv4(b[:20+inner TotalLength]).
//
// The inner header must have passed IsValid and its TotalLength must be at
// most 65535-20; the caller checks the result against the path MTU.
func EncapIPIP(b []byte, src, dst [4]byte, ttl uint8) IPv4 {
	inner := IPv4(b[IPIPOverhead:])
	n := IPIPOverhead + int(inner.TotalLength())
	outer := IPv4(b[:n])
	outer.Encode(&IPv4Fields{
		TOS:         inner.TOS(),
		TotalLength: uint16(n),
		ID:          inner.ID(),
		Flags:       inner.Flags() & IPv4FlagDontFragment,
		TTL:         ttl,
		Protocol:    ProtoIPIP,
		Src:         src,
		Dst:         dst,
	})
	return outer
}

// IPv6TunnelOverhead is what IPv6-in-IPv6 encapsulation adds to a packet:
// the outer fixed header, with no extension header (RFC 2473 section 3.1).
const IPv6TunnelOverhead = IPv6MinLen

// EncapIPv6 writes an outer IPv6 header (next header 41, RFC 2473 section
// 3.1) from src to dst into b[:40], where b[40:] already holds the inner
// IPv6 packet; leaving IPv6TunnelOverhead bytes of headroom in front of
// each frame makes encapsulation a prepend rather than a copy.
//
// The outer traffic class and flow label are copied from the inner header
// (RFC 2473 section 6.5 and 6.6 leave both to the entry point; copying
// keeps the inner packet's DSCP and ECN and its flow's ECMP path), the
// hop limit is hopLimit and the payload length is the inner packet's
// 40+PayloadLength. The inner packet is not modified. It returns
// IPv6(b[:80+inner PayloadLength]).
//
// The inner header must have passed IsValid and its PayloadLength must be
// at most 65535-40; the caller checks the result against the path MTU.
func EncapIPv6(b []byte, src, dst [16]byte, hopLimit uint8) IPv6 {
	inner := IPv6(b[IPv6TunnelOverhead:])
	n := IPv6MinLen + int(inner.PayloadLength())
	outer := IPv6(b[:IPv6TunnelOverhead+n])
	outer.Encode(&IPv6Fields{
		TrafficClass:  inner.TrafficClass(),
		FlowLabel:     inner.FlowLabel(),
		PayloadLength: uint16(n),
		NextHeader:    ProtoIPv6,
		HopLimit:      hopLimit,
		Src:           src,
		Dst:           dst,
	})
	return outer
}
