package header

import "encoding/binary"

// UDP header, RFC 768:
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|     Source      |   Destination   |
//	|      Port       |      Port       |
//	+--------+--------+--------+--------+
//	|                 |                 |
//	|     Length      |    Checksum     |
//	+--------+--------+--------+--------+
//
// Over IPv4 a checksum of 0 means the sender computed none; a computed
// checksum of 0 is sent as 0xFFFF.
const (
	udpSrcPort  = 0
	udpDstPort  = 2
	udpLength   = 4
	udpChecksum = 6
)

// UDPLen is the length of a UDP header.
const UDPLen = 8

// UDP is a view of a UDP datagram: the header followed by the data.
type UDP []byte

// IsValid reports whether b holds a well-formed UDP header in a datagram of
// l4len bytes (the IPv4 payload length): at least 8 bytes and a Length field
// in [8, l4len], within len(b).
func (b UDP) IsValid(l4len int) bool {
	if len(b) < UDPLen {
		return false
	}
	n := int(b.Length())
	return n >= UDPLen && n <= l4len && n <= len(b)
}

// SourcePort returns the source port.
func (b UDP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[udpSrcPort:]) }

// DestinationPort returns the destination port.
func (b UDP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[udpDstPort:]) }

// Length returns the Length field: header plus data, in bytes.
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[udpLength:]) }

// Checksum returns the checksum field; 0 means none.
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[udpChecksum:]) }

// SetChecksum sets the checksum field as given, 0 included.
func (b UDP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[udpChecksum:], v) }

// SetLength sets the length without touching the checksum.
func (b UDP) SetLength(n uint16) { binary.BigEndian.PutUint16(b[udpLength:], n) }

// Payload returns the data between the header and Length.
func (b UDP) Payload() []byte { return b[UDPLen:b.Length()] }

// SetSourcePort sets the source port without touching the checksum (see
// TCP.SetSourcePort).
func (b UDP) SetSourcePort(p uint16) { binary.BigEndian.PutUint16(b[udpSrcPort:], p) }

// SetDestinationPort sets the destination port without touching the
// checksum.
func (b UDP) SetDestinationPort(p uint16) { binary.BigEndian.PutUint16(b[udpDstPort:], p) }

// updateChecksum stores the checksum c that an incremental update produced,
// as RFC 768 wants it: a result of 0 is sent as 0xFFFF.
func (b UDP) updateChecksum(c uint16) {
	if c == 0 {
		c = 0xffff
	}
	b.SetChecksum(c)
}

// SetSourcePortWithChecksumUpdate sets the source port and updates the
// checksum incrementally; a checksum of 0 (none) stays 0.
func (b UDP) SetSourcePortWithChecksumUpdate(p uint16) {
	old := b.SourcePort()
	b.SetSourcePort(p)
	if hc := b.Checksum(); hc != 0 {
		b.updateChecksum(ChecksumUpdate16(hc, old, p))
	}
}

// SetDestinationPortWithChecksumUpdate sets the destination port and updates
// the checksum incrementally; a checksum of 0 (none) stays 0.
func (b UDP) SetDestinationPortWithChecksumUpdate(p uint16) {
	old := b.DestinationPort()
	b.SetDestinationPort(p)
	if hc := b.Checksum(); hc != 0 {
		b.updateChecksum(ChecksumUpdate16(hc, old, p))
	}
}

// UpdateChecksumPseudoHeaderAddress updates the checksum for an IP address
// change in the pseudo-header, from old to new; a checksum of 0 (none) stays
// 0.
func (b UDP) UpdateChecksumPseudoHeaderAddress(old, new [4]byte) {
	if hc := b.Checksum(); hc != 0 {
		b.updateChecksum(ChecksumUpdate32(hc, old, new))
	}
}

// UpdatePartialChecksumPseudoHeaderAddress is UpdateChecksumPseudoHeaderAddress
// for a datagram with a partial checksum (see
// TCP.UpdatePartialChecksumPseudoHeaderAddress). The field then holds a
// pseudo-header sum, never "none", and whoever finishes the checksum maps a
// result of 0 to 0xFFFF.
func (b UDP) UpdatePartialChecksumPseudoHeaderAddress(old, new [4]byte) {
	b.SetChecksum(^ChecksumUpdate32(^b.Checksum(), old, new))
}

// CalculateChecksum returns the value to store in the checksum field of the
// datagram b[:Length()] sent from src to dst, with the checksum field taken
// as zero: the complemented sum, or 0xFFFF where that is 0 (RFC 768).
func (b UDP) CalculateChecksum(src, dst [4]byte) uint16 {
	n := b.Length()
	s := PseudoHeaderChecksum(ProtoUDP, src, dst, n)
	s = Checksum(b[:udpChecksum], s)
	c := ^Checksum(b[udpChecksum+2:n], s)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// IsChecksumValid reports whether the checksum of datagram b[:Length()] sent
// from src to dst is correct or absent (0).
func (b UDP) IsChecksumValid(src, dst [4]byte) bool {
	if b.Checksum() == 0 {
		return true
	}
	n := b.Length()
	return Checksum(b[:n], PseudoHeaderChecksum(ProtoUDP, src, dst, n)) == 0xffff
}
