package header

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the ones-complement 16-bit sum (RFC 1071) of buf added to
// initial, not complemented. An odd final byte is summed as the high byte of
// a word whose low byte is zero, so only the last buffer of a chain of calls
// (Checksum(b2, Checksum(b1, 0))) may have an odd length.
//
// The result is 0 only when initial and every byte of buf are 0.
func Checksum(buf []byte, initial uint16) uint16 {
	// Summing big-endian 64-bit words with an end-around carry gives the
	// same ones-complement sum as summing 16-bit words, because
	// 2^64 ≡ 2^48 ≡ 2^32 ≡ 2^16 ≡ 1 (mod 2^16-1); the 64-bit sum is folded
	// to 16 bits at the end.
	acc := uint64(initial)
	var c uint64
	for len(buf) >= 32 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(buf[0:8]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(buf[8:16]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(buf[16:24]), c)
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(buf[24:32]), c)
		buf = buf[32:]
	}
	for len(buf) >= 8 {
		acc, c = bits.Add64(acc, binary.BigEndian.Uint64(buf[0:8]), c)
		buf = buf[8:]
	}
	if len(buf) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint32(buf[0:4])), c)
		buf = buf[4:]
	}
	if len(buf) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.BigEndian.Uint16(buf[0:2])), c)
		buf = buf[2:]
	}
	if len(buf) == 1 {
		acc, c = bits.Add64(acc, uint64(buf[0])<<8, c)
	}
	// Take the last carry back in. This cannot wrap: acc == 2^64-1 with a
	// carry pending needs acc == 2^64-1 with a carry pending one step
	// earlier, and the loop starts with no carry.
	acc += c
	return fold64(acc)
}

// fold64 folds a 64-bit ones-complement sum to 16 bits. A nonzero input gives
// a nonzero result.
func fold64(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff) // < 2^33
	s = (s >> 16) + (s & 0xffff)     // < 2^17 + 2^16
	s = (s >> 16) + (s & 0xffff)     // <= 0xffff + 2
	s = (s >> 16) + (s & 0xffff)     // <= 0xffff
	return uint16(s)
}

// fold32 folds a 32-bit sum of at most 2^16 words to 16 bits. A nonzero input
// gives a nonzero result.
func fold32(s uint32) uint16 {
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// ChecksumCombine returns the ones-complement sum of two partial sums a and b.
// Both must cover data of even length, except that b may end on an odd byte.
func ChecksumCombine(a, b uint16) uint16 {
	return fold32(uint32(a) + uint32(b))
}

// PseudoHeaderChecksum returns the ones-complement sum of the IPv4
// pseudo-header that the TCP (RFC 793 section 3.1) and UDP (RFC 768)
// checksums cover: source and destination address, zero, protocol and the
// transport length (header plus data). The result is not complemented; use it
// as the initial value of Checksum over the transport header and payload.
//
//	+--------+--------+--------+--------+
//	|           Source Address          |
//	+--------+--------+--------+--------+
//	|         Destination Address       |
//	+--------+--------+--------+--------+
//	|  zero  |  PTCL  |    TCP Length   |
//	+--------+--------+--------+--------+
func PseudoHeaderChecksum(proto uint8, src, dst [4]byte, length uint16) uint16 {
	s := uint32(binary.BigEndian.Uint16(src[0:2])) +
		uint32(binary.BigEndian.Uint16(src[2:4])) +
		uint32(binary.BigEndian.Uint16(dst[0:2])) +
		uint32(binary.BigEndian.Uint16(dst[2:4])) +
		uint32(proto) +
		uint32(length)
	return fold32(s)
}

// ChecksumUpdate16 returns the new value of a checksum field hc when a 16-bit
// word of the data it covers changes from old to new (RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m')). Equation 3 rather than 2 is used so that the
// result never turns a valid checksum into -0 by accident.
//
// The word must sit at an even offset of the covered data; for a single
// byte at an odd offset pass it as the low byte of old and new, for one at an
// even offset as the high byte.
func ChecksumUpdate16(hc, old, new uint16) uint16 {
	return ^fold32(uint32(^hc) + uint32(^old) + uint32(new))
}

// ChecksumUpdate32 returns the new value of a checksum field hc when a 4-byte
// field at an even offset of the covered data, such as an IPv4 address,
// changes from old to new (RFC 1624 eqn. 3 applied to both words).
func ChecksumUpdate32(hc uint16, old, new [4]byte) uint16 {
	s := uint32(^hc) +
		uint32(^binary.BigEndian.Uint16(old[0:2])) +
		uint32(^binary.BigEndian.Uint16(old[2:4])) +
		uint32(binary.BigEndian.Uint16(new[0:2])) +
		uint32(binary.BigEndian.Uint16(new[2:4]))
	return ^fold32(s)
}
