package header

import "encoding/binary"

// IPv4 header, RFC 791 section 3.1:
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
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags: bit 0 reserved (zero), bit 1 DF (don't fragment), bit 2 MF (more
// fragments). The fragment offset counts 8-byte units.
const (
	ipv4VersIHL   = 0
	ipv4TOS       = 1
	ipv4TotalLen  = 2
	ipv4ID        = 4
	ipv4FlagsFrag = 6
	ipv4TTL       = 8
	ipv4Protocol  = 9
	ipv4Checksum  = 10
	ipv4Src       = 12
	ipv4Dst       = 16

	ipv4Version        = 4
	ipv4FragOffsetMask = 0x1fff // low 13 bits of the flags/fragment word
	ipv4FragUnit       = 8      // bytes per fragment-offset unit
)

// IPv4 lengths.
const (
	// IPv4MinLen is the length of an IPv4 header without options.
	IPv4MinLen = 20
	// IPv4MaxHeaderLen is the largest IPv4 header (IHL 15).
	IPv4MaxHeaderLen = 60
	// IPIPOverhead is what IPv4-in-IPv4 encapsulation (RFC 2003) adds: an
	// outer IPv4 header without options.
	IPIPOverhead = IPv4MinLen
)

// IPv4 flag bits as returned by IPv4.Flags (the top 3 bits of byte 6, shifted
// down).
const (
	IPv4FlagMoreFragments uint8 = 1 << 0
	IPv4FlagDontFragment  uint8 = 1 << 1
)

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
const (
	ProtoICMP uint8 = 1
	ProtoIPIP uint8 = 4 // IPv4 encapsulation, RFC 2003
	ProtoTCP  uint8 = 6
	ProtoUDP  uint8 = 17
)

// IPv4 is a view of an IPv4 packet: the header, possibly with options,
// followed by the payload.
type IPv4 []byte

// IsValid reports whether b holds a well-formed IPv4 header: at least 20
// bytes, version 4, IHL at least 5 and IHL*4 <= TotalLength <= pktSize, with
// TotalLength also within len(b). pktSize is the number of bytes the packet
// arrived in (usually len(b)). It does not check the header checksum.
func (b IPv4) IsValid(pktSize int) bool {
	if len(b) < IPv4MinLen {
		return false
	}
	if b[ipv4VersIHL]>>4 != ipv4Version {
		return false
	}
	hl := b.HeaderLength()
	tl := int(b.TotalLength())
	return hl >= IPv4MinLen && hl <= tl && tl <= pktSize && tl <= len(b)
}

// HeaderLength returns the header length in bytes (IHL*4), options included.
func (b IPv4) HeaderLength() int { return int(b[ipv4VersIHL]&0x0f) * 4 }

// TOS returns the type-of-service byte (DSCP and ECN, RFC 2474/3168).
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLength returns the length of the packet, header included.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// Flags returns the 3 flag bits (IPv4FlagDontFragment, IPv4FlagMoreFragments).
func (b IPv4) Flags() uint8 { return b[ipv4FlagsFrag] >> 5 }

// DontFragment reports whether the DF bit is set.
func (b IPv4) DontFragment() bool { return b.Flags()&IPv4FlagDontFragment != 0 }

// MoreFragments reports whether the MF bit is set.
func (b IPv4) MoreFragments() bool { return b.Flags()&IPv4FlagMoreFragments != 0 }

// FragmentOffset returns the fragment offset in bytes.
func (b IPv4) FragmentOffset() uint16 {
	return (binary.BigEndian.Uint16(b[ipv4FlagsFrag:]) & ipv4FragOffsetMask) * ipv4FragUnit
}

// IsFragment reports whether the packet is a fragment: MF set or a nonzero
// offset. Only the first fragment (offset 0) carries the transport header.
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsFrag:])&(uint16(IPv4FlagMoreFragments)<<13|ipv4FragOffsetMask) != 0
}

// TTL returns the time to live.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the protocol number of the payload.
func (b IPv4) Protocol() uint8 { return b[ipv4Protocol] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// SetChecksum sets the header checksum field.
func (b IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], v) }

// SetTotalLength sets the total length without touching the checksum: for
// a header whose checksum is computed afresh afterwards.
func (b IPv4) SetTotalLength(n uint16) { binary.BigEndian.PutUint16(b[ipv4TotalLen:], n) }

// SetID sets the identification without touching the checksum.
func (b IPv4) SetID(id uint16) { binary.BigEndian.PutUint16(b[ipv4ID:], id) }

// Source returns the source address.
func (b IPv4) Source() [4]byte { return [4]byte(b[ipv4Src : ipv4Src+4]) }

// Destination returns the destination address.
func (b IPv4) Destination() [4]byte { return [4]byte(b[ipv4Dst : ipv4Dst+4]) }

// Payload returns the bytes between the header and TotalLength.
func (b IPv4) Payload() []byte { return b[b.HeaderLength():b.TotalLength()] }

// CalculateChecksum returns the value to store in the header checksum field:
// the complemented sum over the header (options included) with the checksum
// field taken as zero.
func (b IPv4) CalculateChecksum() uint16 {
	s := Checksum(b[:ipv4Checksum], 0)
	return ^Checksum(b[ipv4Checksum+2:b.HeaderLength()], s)
}

// IsChecksumValid reports whether the header checksum is correct (RFC 1071:
// the sum over the header including its checksum is all ones).
func (b IPv4) IsChecksumValid() bool {
	return Checksum(b[:b.HeaderLength()], 0) == 0xffff
}

// SetSourceWithChecksumUpdate sets the source address and updates the header
// checksum incrementally. A TCP or UDP checksum, which also covers the
// address, must be updated separately (UpdateChecksumPseudoHeaderAddress).
func (b IPv4) SetSourceWithChecksumUpdate(a [4]byte) {
	old := b.Source()
	copy(b[ipv4Src:ipv4Src+4], a[:])
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, a))
}

// SetDestinationWithChecksumUpdate sets the destination address and updates
// the header checksum incrementally. A TCP or UDP checksum, which also covers
// the address, must be updated separately (UpdateChecksumPseudoHeaderAddress).
func (b IPv4) SetDestinationWithChecksumUpdate(a [4]byte) {
	old := b.Destination()
	copy(b[ipv4Dst:ipv4Dst+4], a[:])
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, a))
}

// SetTTLWithChecksumUpdate sets the time to live and updates the header
// checksum incrementally.
func (b IPv4) SetTTLWithChecksumUpdate(ttl uint8) {
	old := b[ipv4TTL]
	b[ipv4TTL] = ttl
	// TTL is the high byte of the TTL/protocol word.
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), uint16(old)<<8, uint16(ttl)<<8))
}

// SetTotalLengthWithChecksumUpdate sets the total length and updates the
// header checksum incrementally.
func (b IPv4) SetTotalLengthWithChecksumUpdate(n uint16) {
	old := b.TotalLength()
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], n)
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), old, n))
}

// IPv4Fields holds the fields Encode writes.
type IPv4Fields struct {
	TOS            uint8
	TotalLength    uint16
	ID             uint16
	Flags          uint8  // IPv4FlagDontFragment, IPv4FlagMoreFragments
	FragmentOffset uint16 // in bytes, a multiple of 8
	TTL            uint8
	Protocol       uint8
	Src, Dst       [4]byte
}

// Encode writes a 20-byte IPv4 header (version 4, IHL 5, no options) from f
// into b[:20], with its checksum. It does not touch b[20:].
func (b IPv4) Encode(f *IPv4Fields) {
	_ = b[IPv4MinLen-1]
	b[ipv4VersIHL] = ipv4Version<<4 | IPv4MinLen/4
	b[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], f.TotalLength)
	binary.BigEndian.PutUint16(b[ipv4ID:], f.ID)
	binary.BigEndian.PutUint16(b[ipv4FlagsFrag:], uint16(f.Flags&0x7)<<13|(f.FragmentOffset/ipv4FragUnit)&ipv4FragOffsetMask)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = f.Protocol
	b.SetChecksum(0)
	copy(b[ipv4Src:ipv4Src+4], f.Src[:])
	copy(b[ipv4Dst:ipv4Dst+4], f.Dst[:])
	b.SetChecksum(^Checksum(b[:IPv4MinLen], 0))
}
