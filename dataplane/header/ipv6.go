package header

import "encoding/binary"

// IPv6 header, RFC 8200 section 3:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                         Source Address                        +
//	|                          (16 bytes)                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                      Destination Address                      +
//	|                          (16 bytes)                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// There is no header checksum: the transport checksums cover the addresses
// through the IPv6 pseudo-header (RFC 8200 section 8.1).
const (
	ipv6VersTCFlow = 0
	ipv6PayloadLen = 4
	ipv6NextHeader = 6
	ipv6HopLimit   = 7
	ipv6Src        = 8
	ipv6Dst        = 24

	ipv6Version       = 6
	ipv6FlowLabelMask = 0x000fffff
)

// IPv6MinLen is the length of the fixed IPv6 header.
const IPv6MinLen = 40

// IPv6MinMTU is the smallest link MTU IPv6 allows (RFC 8200 section 5): an
// ICMPv6 error is never longer.
const IPv6MinMTU = 1280

// IPv6 extension headers and upper-layer protocols that appear in a Next
// Header field (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoIPv6HopByHop uint8 = 0  // hop-by-hop options, RFC 8200 section 4.3
	ProtoIPv6         uint8 = 41 // IPv6 encapsulation, RFC 2473
	ProtoIPv6Route    uint8 = 43 // routing header, RFC 8200 section 4.4
	ProtoIPv6Frag     uint8 = 44 // fragment header, RFC 8200 section 4.5
	ProtoESP          uint8 = 50 // RFC 4303
	ProtoAH           uint8 = 51 // RFC 4302
	ProtoICMPv6       uint8 = 58 // RFC 4443
	ProtoIPv6NoNext   uint8 = 59 // no next header, RFC 8200 section 4.7
	ProtoIPv6Opts     uint8 = 60 // destination options, RFC 8200 section 4.6
	ProtoMobility     uint8 = 135
	ProtoHIP          uint8 = 139
	ProtoShim6        uint8 = 140
	ProtoExp253       uint8 = 253 // RFC 3692 experiments
	ProtoExp254       uint8 = 254
)

// IPv6 is a view of an IPv6 packet: the fixed header followed by the
// payload (extension headers and the upper-layer packet).
type IPv6 []byte

// IsValid reports whether b holds a well-formed IPv6 header: at least 40
// bytes, version 6 and 40+PayloadLength within pktSize and len(b). pktSize
// is the number of bytes the packet arrived in (usually len(b)). A payload
// length of 0 is taken literally (jumbograms, RFC 2675, are not supported).
func (b IPv6) IsValid(pktSize int) bool {
	if len(b) < IPv6MinLen {
		return false
	}
	if b[ipv6VersTCFlow]>>4 != ipv6Version {
		return false
	}
	n := IPv6MinLen + int(b.PayloadLength())
	return n <= pktSize && n <= len(b)
}

// TrafficClass returns the traffic class (DSCP and ECN, RFC 2474/3168).
func (b IPv6) TrafficClass() uint8 {
	return uint8(binary.BigEndian.Uint16(b[ipv6VersTCFlow:]) >> 4)
}

// FlowLabel returns the 20-bit flow label.
func (b IPv6) FlowLabel() uint32 {
	return binary.BigEndian.Uint32(b[ipv6VersTCFlow:]) & ipv6FlowLabelMask
}

// PayloadLength returns the length of everything after the fixed header,
// extension headers included.
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[ipv6PayloadLen:]) }

// SetPayloadLength sets the payload length (there is no header checksum).
func (b IPv6) SetPayloadLength(n uint16) { binary.BigEndian.PutUint16(b[ipv6PayloadLen:], n) }

// NextHeader returns the type of the header after the fixed header.
func (b IPv6) NextHeader() uint8 { return b[ipv6NextHeader] }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[ipv6HopLimit] }

// SetHopLimit sets the hop limit.
func (b IPv6) SetHopLimit(h uint8) { b[ipv6HopLimit] = h }

// Source returns the source address.
func (b IPv6) Source() [16]byte { return [16]byte(b[ipv6Src : ipv6Src+16]) }

// Destination returns the destination address.
func (b IPv6) Destination() [16]byte { return [16]byte(b[ipv6Dst : ipv6Dst+16]) }

// SetSource sets the source address. There is no header checksum, but a
// transport checksum covers the address: update it too
// (TCP.UpdateChecksumPseudoHeaderAddress6 and the like).
func (b IPv6) SetSource(a [16]byte) { copy(b[ipv6Src:ipv6Src+16], a[:]) }

// SetDestination sets the destination address, like SetSource.
func (b IPv6) SetDestination(a [16]byte) { copy(b[ipv6Dst:ipv6Dst+16], a[:]) }

// Payload returns the bytes between the fixed header and 40+PayloadLength.
func (b IPv6) Payload() []byte { return b[IPv6MinLen : IPv6MinLen+int(b.PayloadLength())] }

// IPv6Fields holds the fields IPv6.Encode writes.
type IPv6Fields struct {
	TrafficClass  uint8
	FlowLabel     uint32 // low 20 bits
	PayloadLength uint16
	NextHeader    uint8
	HopLimit      uint8
	Src, Dst      [16]byte
}

// Encode writes the 40-byte fixed IPv6 header from f into b[:40]. It does
// not touch b[40:].
func (b IPv6) Encode(f *IPv6Fields) {
	_ = b[IPv6MinLen-1]
	binary.BigEndian.PutUint32(b[ipv6VersTCFlow:], ipv6Version<<28|uint32(f.TrafficClass)<<20|f.FlowLabel&ipv6FlowLabelMask)
	binary.BigEndian.PutUint16(b[ipv6PayloadLen:], f.PayloadLength)
	b[ipv6NextHeader] = f.NextHeader
	b[ipv6HopLimit] = f.HopLimit
	copy(b[ipv6Src:ipv6Src+16], f.Src[:])
	copy(b[ipv6Dst:ipv6Dst+16], f.Dst[:])
}

// Extension headers, RFC 8200 section 4. Hop-by-hop options, routing and
// destination options share the first two bytes; their length counts
// 8-byte units after the first 8:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  |  (type-specific data)         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The routing header goes on with its type and Segments Left; the
// fragment header (section 4.5) is always 8 bytes:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	extNextHeader    = 0
	extLen           = 1
	extUnit          = 8
	routeSegLeft     = 3
	fragOffsetFlags  = 2
	fragID           = 4
	fragHeaderLen    = 8
	fragOffsetMask   = 0xfff8 // the offset in 8-byte units, already shifted: bytes
	fragMoreFragment = 0x0001

	// maxExtHeaders bounds the walk: a packet with more extension headers
	// than this is not one the dataplane forwards (a real stack sees at most
	// one of each, destination options twice).
	maxExtHeaders = 8
)

// IPv6Ext is what IPv6.WalkExtensions finds behind the fixed header.
type IPv6Ext struct {
	// Proto is the upper-layer protocol (TCP, UDP, ICMPv6, ...), or for a
	// later fragment (FragOffset > 0) the Next Header of its fragment
	// header.
	Proto uint8
	// Offset is where the upper-layer header starts, counted from the first
	// byte of the IPv6 header: 40 plus the extension headers.
	Offset int
	// Fragment is set when there is a fragment header: FragOffset (in
	// bytes), MoreFragments and FragID are its fields.
	Fragment      bool
	MoreFragments bool
	FragOffset    uint16
	FragID        uint32
	// FragNext is the fragment header's Next Header: the first header of
	// the fragmentable part, the same in every fragment of a datagram
	// (RFC 8200 section 4.5). It equals Proto when the upper-layer header
	// follows the fragment header directly.
	FragNext uint8
}

// IsFragment reports whether the packet is a fragment proper: a fragment
// header with MF set or a nonzero offset (an "atomic fragment", RFC 6946,
// with neither, is a whole packet).
func (x *IPv6Ext) IsFragment() bool { return x.Fragment && (x.MoreFragments || x.FragOffset != 0) }

// WalkExtensions follows the chain of extension headers of a valid packet
// (IsValid) to its upper-layer header, within 40+PayloadLength. It knows
// hop-by-hop options (only first, RFC 8200 section 4.1), destination
// options, routing headers whose Segments Left is 0 (the packet is at its
// final destination; with segments left it would have to be routed on) and
// one fragment header; a later fragment (offset > 0) ends the walk at its
// fragment header. It reports false when the chain is malformed (a header
// that does not fit, a second fragment header, hop-by-hop after the first
// place, more than 8 headers), has a routing header with segments left, or
// has an extension header it does not know (AH, mobility, HIP, shim6, the
// experimental 253 and 254): the packet is then not one the dataplane
// forwards. Any other Next Header ends the walk as the upper layer. It does
// not allocate.
func (b IPv6) WalkExtensions() (IPv6Ext, bool) {
	// The common case first: no extension header at all.
	if nh := b.NextHeader(); nh == ProtoTCP || nh == ProtoUDP {
		return IPv6Ext{Proto: nh, Offset: IPv6MinLen}, true
	}
	end := IPv6MinLen + int(b.PayloadLength())
	x := IPv6Ext{Proto: b.NextHeader(), Offset: IPv6MinLen}
	for i := 0; ; i++ {
		switch x.Proto {
		case ProtoIPv6HopByHop, ProtoIPv6Opts, ProtoIPv6Route:
		case ProtoIPv6Frag:
			if x.Fragment || x.Offset+fragHeaderLen > end {
				return x, false
			}
			h := b[x.Offset : x.Offset+fragHeaderLen]
			of := binary.BigEndian.Uint16(h[fragOffsetFlags:])
			x.Fragment = true
			x.FragOffset = of & fragOffsetMask
			x.MoreFragments = of&fragMoreFragment != 0
			x.FragID = binary.BigEndian.Uint32(h[fragID:])
			x.Proto = h[extNextHeader]
			x.FragNext = x.Proto
			x.Offset += fragHeaderLen
			if x.FragOffset != 0 {
				return x, true // no upper-layer header in a later fragment
			}
			continue
		case ProtoAH, ProtoMobility, ProtoHIP, ProtoShim6, ProtoExp253, ProtoExp254:
			return x, false
		default:
			return x, true
		}
		if i >= maxExtHeaders || (x.Proto == ProtoIPv6HopByHop && x.Offset != IPv6MinLen) || x.Offset+extUnit > end {
			return x, false
		}
		h := b[x.Offset:end]
		n := (int(h[extLen]) + 1) * extUnit
		if n > len(h) || (x.Proto == ProtoIPv6Route && h[routeSegLeft] != 0) {
			return x, false
		}
		x.Proto = h[extNextHeader]
		x.Offset += n
	}
}
