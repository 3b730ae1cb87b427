package header

import "encoding/binary"

// PseudoHeaderChecksum6 returns the ones-complement sum of the IPv6
// pseudo-header that the TCP, UDP and ICMPv6 checksums cover (RFC 8200
// section 8.1): source and destination address, the upper-layer packet
// length as 32 bits, three zero bytes and the Next Header value of the
// upper-layer protocol (not of an extension header before it). The result
// is not complemented; use it as the initial value of Checksum over the
// upper-layer header and data.
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Source Address (16 bytes)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                Destination Address (16 bytes)                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Upper-Layer Packet Length                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      zero                     |  Next Header  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func PseudoHeaderChecksum6(proto uint8, src, dst [16]byte, length uint32) uint16 {
	return fold64(sum128(&src) + sum128(&dst) + uint64(length) + uint64(proto))
}

// sum128 is a sum of the four big-endian 32-bit words of an IPv6 address,
// below 2^34: as 2^16 ≡ 1 (mod 2^16-1), it folds (fold64) to the same
// ones-complement sum as the address's eight 16-bit words.
func sum128(a *[16]byte) uint64 {
	return uint64(binary.BigEndian.Uint32(a[0:])) + uint64(binary.BigEndian.Uint32(a[4:])) +
		uint64(binary.BigEndian.Uint32(a[8:])) + uint64(binary.BigEndian.Uint32(a[12:]))
}

// ChecksumUpdate128 returns the new value of a checksum field hc when a
// 16-byte field at an even offset of the covered data, an IPv6 address,
// changes from old to new (RFC 1624 eqn. 3 applied to its eight words).
func ChecksumUpdate128(hc uint16, old, new [16]byte) uint16 {
	// ~m summed over 32-bit words: 2^32-1 ≡ 0 (mod 2^16-1), so the
	// complement of a 32-bit word is congruent to the sum of the
	// complements of its two 16-bit halves, and 4*(2^32-1) - sum(old)
	// stands for ~old.
	s := uint64(^hc) + 4*0xffffffff - sum128(&old) + sum128(&new)
	return ^fold64(s)
}

// UpdateChecksumPseudoHeaderAddress6 updates the checksum of a segment sent
// over IPv6 for an address change in the pseudo-header, from old to new.
// Call it next to the IPv6 header rewrite of the same address.
func (b TCP) UpdateChecksumPseudoHeaderAddress6(old, new [16]byte) {
	b.SetChecksum(ChecksumUpdate128(b.Checksum(), old, new))
}

// UpdatePartialChecksumPseudoHeaderAddress6 is
// UpdateChecksumPseudoHeaderAddress6 for a segment with a partial checksum
// (see UpdatePartialChecksumPseudoHeaderAddress): the field holds the
// uncomplemented pseudo-header sum.
func (b TCP) UpdatePartialChecksumPseudoHeaderAddress6(old, new [16]byte) {
	b.SetChecksum(^ChecksumUpdate128(^b.Checksum(), old, new))
}

// CalculateChecksum6 returns the value to store in the checksum field of
// the segment b sent over IPv6 from src to dst.
func (b TCP) CalculateChecksum6(src, dst [16]byte) uint16 {
	s := PseudoHeaderChecksum6(ProtoTCP, src, dst, uint32(len(b)))
	s = Checksum(b[:tcpChecksum], s)
	return ^Checksum(b[tcpChecksum+2:], s)
}

// IsChecksumValid6 reports whether the checksum of segment b sent over IPv6
// from src to dst is correct.
func (b TCP) IsChecksumValid6(src, dst [16]byte) bool {
	return Checksum(b, PseudoHeaderChecksum6(ProtoTCP, src, dst, uint32(len(b)))) == 0xffff
}

// Over IPv6 the UDP checksum is mandatory (RFC 8200 section 8.1): a
// datagram with checksum 0 is one the receiver discards. The updates below
// leave such a datagram's 0 alone, as the IPv4 ones do, so the director does
// not turn an invalid datagram into a valid one; a computed 0 is sent as
// 0xFFFF.

// UpdateChecksumPseudoHeaderAddress6 updates the checksum of a datagram
// sent over IPv6 for an address change in the pseudo-header, from old to
// new; a checksum of 0 stays 0.
func (b UDP) UpdateChecksumPseudoHeaderAddress6(old, new [16]byte) {
	if hc := b.Checksum(); hc != 0 {
		b.updateChecksum(ChecksumUpdate128(hc, old, new))
	}
}

// UpdatePartialChecksumPseudoHeaderAddress6 is
// UpdateChecksumPseudoHeaderAddress6 for a datagram with a partial
// checksum: the field holds the uncomplemented pseudo-header sum.
func (b UDP) UpdatePartialChecksumPseudoHeaderAddress6(old, new [16]byte) {
	b.SetChecksum(^ChecksumUpdate128(^b.Checksum(), old, new))
}

// CalculateChecksum6 returns the value to store in the checksum field of
// the datagram b[:Length()] sent over IPv6 from src to dst: the
// complemented sum, or 0xFFFF where that is 0.
func (b UDP) CalculateChecksum6(src, dst [16]byte) uint16 {
	n := b.Length()
	s := PseudoHeaderChecksum6(ProtoUDP, src, dst, uint32(n))
	s = Checksum(b[:udpChecksum], s)
	c := ^Checksum(b[udpChecksum+2:n], s)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// IsChecksumValid6 reports whether the checksum of datagram b[:Length()]
// sent over IPv6 from src to dst is correct; 0 (none) is not, over IPv6.
func (b UDP) IsChecksumValid6(src, dst [16]byte) bool {
	if b.Checksum() == 0 {
		return false
	}
	n := b.Length()
	return Checksum(b[:n], PseudoHeaderChecksum6(ProtoUDP, src, dst, uint32(n))) == 0xffff
}
