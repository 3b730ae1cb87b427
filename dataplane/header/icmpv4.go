package header

import "encoding/binary"

// ICMPv4 header, RFC 792; the rest-of-header word as RFC 1191 section 4
// defines it for "fragmentation needed and DF set":
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           unused = 0          |         Next-Hop MTU          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      Internet Header + 64 bits of Original Data Datagram      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The checksum covers the whole ICMP message; there is no pseudo-header.
const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpMTU      = 6

	// icmpQuoteData is how much of the original datagram's payload an
	// ICMP error quotes after its IP header (RFC 792: "64 bits").
	icmpQuoteData = 8
)

// ICMPv4MinLen is the length of an ICMPv4 header.
const ICMPv4MinLen = 8

// ICMPv4 types (RFC 792) and codes.
const (
	ICMPv4EchoReply        uint8 = 0
	ICMPv4DestUnreachable  uint8 = 3
	ICMPv4SourceQuench     uint8 = 4
	ICMPv4Redirect         uint8 = 5
	ICMPv4EchoRequest      uint8 = 8
	ICMPv4TimeExceeded     uint8 = 11
	ICMPv4ParameterProblem uint8 = 12

	// ICMPv4FragmentationNeeded is the code under ICMPv4DestUnreachable
	// for "fragmentation needed and DF set" (RFC 792, RFC 1191).
	ICMPv4FragmentationNeeded uint8 = 4
)

// ICMPv4 is a view of an ICMPv4 message: the 8-byte header followed by the
// rest of the message. Methods that compute the checksum take the whole slice
// as the message, so slice it to the IPv4 payload.
type ICMPv4 []byte

// IsValid reports whether b is long enough to hold an ICMPv4 header.
func (b ICMPv4) IsValid() bool { return len(b) >= ICMPv4MinLen }

// Type returns the message type.
func (b ICMPv4) Type() uint8 { return b[icmpType] }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[icmpCode] }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// SetChecksum sets the checksum field.
func (b ICMPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], v) }

// MTU returns the next-hop MTU of a fragmentation-needed message (bytes 6-7).
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[icmpMTU:]) }

// Payload returns the bytes after the header; for an error message this is
// the quoted IP header and the start of its payload.
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinLen:] }

// IsError reports whether the message is an error that quotes the packet
// that caused it: destination unreachable, source quench, redirect, time
// exceeded or parameter problem.
func (b ICMPv4) IsError() bool {
	switch b.Type() {
	case ICMPv4DestUnreachable, ICMPv4SourceQuench, ICMPv4Redirect,
		ICMPv4TimeExceeded, ICMPv4ParameterProblem:
		return true
	}
	return false
}

// CalculateChecksum returns the value to store in the checksum field of the
// message b, with that field taken as zero.
func (b ICMPv4) CalculateChecksum() uint16 {
	s := Checksum(b[:icmpChecksum], 0)
	return ^Checksum(b[icmpChecksum+2:], s)
}

// IsChecksumValid reports whether the checksum of the message b is correct.
func (b ICMPv4) IsChecksumValid() bool { return Checksum(b, 0) == 0xffff }

// ICMP error packets from this package.
const (
	// icmpErrorTTL is the TTL of the ICMP errors we originate: Linux's
	// default net.ipv4.ip_default_ttl.
	icmpErrorTTL = 64
	// icmpErrorPrecedence is the IP precedence of ICMP errors, 6
	// "internetwork control", as RFC 1812 section 4.3.2.5 asks and Linux's
	// icmp_send does; the TOS bits of the original packet are kept.
	icmpErrorPrecedence = 0xc0
	ipv4TOSBitsMask     = 0x1e // RFC 1349 TOS bits, Linux IPTOS_TOS_MASK
)

// WriteICMPv4FragNeeded writes into b a complete IPv4 packet: a 20-byte header
// from src to orig's source with TTL 64, carrying an ICMP destination
// unreachable, code fragmentation needed (type 3 code 4), with next-hop MTU
// mtu (RFC 1191), quoting orig's IP header and up to the first 8 bytes of its
// payload (RFC 792). orig must have passed IsValid. The packet has DF set and
// ID 0 (it is far smaller than any MTU, RFC 6864) and both checksums are
// filled in.
//
// It returns the number of bytes written, or 0 if b is too small or orig is
// shorter than its own header.
func WriteICMPv4FragNeeded(b []byte, src [4]byte, orig IPv4, mtu uint16) int {
	if len(orig) < IPv4MinLen {
		return 0
	}
	hl := orig.HeaderLength()
	end := min(int(orig.TotalLength()), len(orig))
	if hl < IPv4MinLen || hl > end {
		return 0
	}
	quote := hl + min(end-hl, icmpQuoteData)
	n := IPv4MinLen + ICMPv4MinLen + quote
	if len(b) < n {
		return 0
	}
	b = b[:n]
	ip := IPv4(b)
	ip.Encode(&IPv4Fields{
		TOS:         orig.TOS()&ipv4TOSBitsMask | icmpErrorPrecedence,
		TotalLength: uint16(n),
		Flags:       IPv4FlagDontFragment,
		TTL:         icmpErrorTTL,
		Protocol:    ProtoICMP,
		Src:         src,
		Dst:         orig.Source(),
	})
	m := ICMPv4(b[IPv4MinLen:])
	m[icmpType] = ICMPv4DestUnreachable
	m[icmpCode] = ICMPv4FragmentationNeeded
	binary.BigEndian.PutUint32(m[icmpChecksum:], 0) // checksum and unused
	binary.BigEndian.PutUint16(m[icmpMTU:], mtu)
	copy(m[ICMPv4MinLen:], orig[:quote])
	m.SetChecksum(^Checksum(m, 0))
	return n
}
