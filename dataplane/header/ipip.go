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
