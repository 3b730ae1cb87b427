package header

import "encoding/binary"

// ICMPv6 header, RFC 4443 section 2.1; the body of a Packet Too Big
// message (type 2) as section 3.2 defines it:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                             MTU                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    As much of invoking packet                 |
//	+               as possible without the ICMPv6 packet           +
//	|               exceeding the minimum IPv6 MTU [IPv6]           |
//
// Unlike ICMPv4's, the checksum covers the IPv6 pseudo-header
// (PseudoHeaderChecksum6 with ProtoICMPv6) and the whole message.
const (
	icmpv6MTU = 4
)

// ICMPv6MinLen is the length of the ICMPv6 header: type, code, checksum and
// the 4-byte type-specific word.
const ICMPv6MinLen = 8

// ICMPv6 types (RFC 4443 section 2.1, RFC 4861 section 4).
const (
	ICMPv6DestUnreachable  uint8 = 1
	ICMPv6PacketTooBig     uint8 = 2
	ICMPv6TimeExceeded     uint8 = 3
	ICMPv6ParameterProblem uint8 = 4
	ICMPv6EchoRequest      uint8 = 128
	ICMPv6EchoReply        uint8 = 129
	ICMPv6NeighborSolicit  uint8 = 135
	ICMPv6NeighborAdvert   uint8 = 136
)

// ICMPv6 is a view of an ICMPv6 message: the 8-byte header followed by the
// rest of the message. Methods that compute the checksum take the whole
// slice as the message, so slice it to the upper-layer packet.
type ICMPv6 []byte

// IsValid reports whether b is long enough to hold an ICMPv6 header.
func (b ICMPv6) IsValid() bool { return len(b) >= ICMPv6MinLen }

// Type returns the message type.
func (b ICMPv6) Type() uint8 { return b[icmpType] }

// Code returns the message code.
func (b ICMPv6) Code() uint8 { return b[icmpCode] }

// Checksum returns the checksum field.
func (b ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// SetChecksum sets the checksum field.
func (b ICMPv6) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], v) }

// MTU returns the MTU of a Packet Too Big message (bytes 4-7).
func (b ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(b[icmpv6MTU:]) }

// Payload returns the bytes after the header; for an error message this is
// the start of the invoking packet.
func (b ICMPv6) Payload() []byte { return b[ICMPv6MinLen:] }

// IsError reports whether the message is an error (types 0 to 127, RFC 4443
// section 2.1) of a kind that quotes the invoking packet: destination
// unreachable, packet too big, time exceeded or parameter problem.
func (b ICMPv6) IsError() bool {
	switch b.Type() {
	case ICMPv6DestUnreachable, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParameterProblem:
		return true
	}
	return false
}

// CalculateChecksum returns the value to store in the checksum field of the
// message b sent from src to dst, with that field taken as zero.
func (b ICMPv6) CalculateChecksum(src, dst [16]byte) uint16 {
	s := PseudoHeaderChecksum6(ProtoICMPv6, src, dst, uint32(len(b)))
	s = Checksum(b[:icmpChecksum], s)
	return ^Checksum(b[icmpChecksum+2:], s)
}

// IsChecksumValid reports whether the checksum of the message b sent from
// src to dst is correct.
func (b ICMPv6) IsChecksumValid(src, dst [16]byte) bool {
	return Checksum(b, PseudoHeaderChecksum6(ProtoICMPv6, src, dst, uint32(len(b)))) == 0xffff
}

// icmpv6HopLimit is the hop limit of the ICMPv6 errors we originate:
// Linux's default net.ipv6.conf.all.hop_limit.
const icmpv6HopLimit = 64

// WriteICMPv6PacketTooBig writes into b a complete IPv6 packet: a 40-byte
// header from src to orig's source with hop limit 64 and orig's traffic
// class, carrying an ICMPv6 Packet Too Big (type 2, code 0) with MTU mtu,
// quoting as much of orig (from its IPv6 header on) as fits without the
// packet exceeding the minimum IPv6 MTU of 1280 bytes (RFC 4443 sections
// 2.4(c) and 3.2). orig must have passed IsValid. The checksum is filled
// in.
//
// It returns the number of bytes written, or 0 if b is too small for the
// packet or orig is shorter than its header.
func WriteICMPv6PacketTooBig(b []byte, src [16]byte, orig IPv6, mtu uint32) int {
	if len(orig) < IPv6MinLen {
		return 0
	}
	end := min(IPv6MinLen+int(orig.PayloadLength()), len(orig))
	quote := min(end, IPv6MinMTU-IPv6MinLen-ICMPv6MinLen)
	n := IPv6MinLen + ICMPv6MinLen + quote
	if len(b) < n {
		return 0
	}
	b = b[:n]
	dst := orig.Source()
	IPv6(b).Encode(&IPv6Fields{
		TrafficClass:  orig.TrafficClass(),
		PayloadLength: uint16(n - IPv6MinLen),
		NextHeader:    ProtoICMPv6,
		HopLimit:      icmpv6HopLimit,
		Src:           src,
		Dst:           dst,
	})
	m := ICMPv6(b[IPv6MinLen:])
	m[icmpType] = ICMPv6PacketTooBig
	m[icmpCode] = 0
	m.SetChecksum(0)
	binary.BigEndian.PutUint32(m[icmpv6MTU:], mtu)
	copy(m[ICMPv6MinLen:], orig[:quote])
	m.SetChecksum(m.CalculateChecksum(src, dst))
	return n
}
