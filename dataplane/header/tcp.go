package header

import "encoding/binary"

// TCP header, RFC 793 section 3.1 (flags as updated by RFC 3168):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	tcpSrcPort    = 0
	tcpDstPort    = 2
	tcpSeq        = 4
	tcpAck        = 8
	tcpDataOffset = 12
	tcpFlags      = 13
	tcpWindow     = 14
	tcpChecksum   = 16
	tcpUrgent     = 18
)

// TCPMinLen is the length of a TCP header without options.
const TCPMinLen = 20

// TCP option kinds (IANA "TCP Option Kind Numbers": RFC 9293 section 3.2,
// RFC 7323, RFC 2018). Every kind but EOL and NOP is followed by a length
// byte that counts the kind and length bytes too.
const (
	TCPOptionEOL           uint8 = 0
	TCPOptionNOP           uint8 = 1
	TCPOptionMSS           uint8 = 2 // maximum segment size, SYN only
	TCPOptionWindowScale   uint8 = 3
	TCPOptionSACKPermitted uint8 = 4
	TCPOptionSACK          uint8 = 5
	TCPOptionTimestamps    uint8 = 8
)

// TCPOptionMSSLen is the length of an MSS option: kind, length and a
// 16-bit value.
const TCPOptionMSSLen = 4

// TCP flag bits as returned by TCP.Flags.
const (
	TCPFlagFin uint8 = 0x01
	TCPFlagSyn uint8 = 0x02
	TCPFlagRst uint8 = 0x04
	TCPFlagPsh uint8 = 0x08
	TCPFlagAck uint8 = 0x10
	TCPFlagUrg uint8 = 0x20
	TCPFlagEce uint8 = 0x40
	TCPFlagCwr uint8 = 0x80
)

// TCP is a view of a TCP segment: the header, possibly with options,
// followed by the data. Methods that compute the checksum take the whole
// slice as the segment, so slice it to the IPv4 payload.
type TCP []byte

// IsValid reports whether b holds a well-formed TCP header in a segment of
// l4len bytes (the IPv4 payload length): at least 20 bytes and a data offset
// in [20, l4len], within len(b).
func (b TCP) IsValid(l4len int) bool {
	if len(b) < TCPMinLen {
		return false
	}
	off := b.DataOffset()
	return off >= TCPMinLen && off <= l4len && off <= len(b)
}

// SourcePort returns the source port.
func (b TCP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[tcpSrcPort:]) }

// DestinationPort returns the destination port.
func (b TCP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[tcpDstPort:]) }

// SequenceNumber returns the sequence number.
func (b TCP) SequenceNumber() uint32 { return binary.BigEndian.Uint32(b[tcpSeq:]) }

// AckNumber returns the acknowledgment number.
func (b TCP) AckNumber() uint32 { return binary.BigEndian.Uint32(b[tcpAck:]) }

// DataOffset returns the header length in bytes, options included.
func (b TCP) DataOffset() int { return int(b[tcpDataOffset]>>4) * 4 }

// Flags returns the low 8 flag bits (FIN to CWR).
func (b TCP) Flags() uint8 { return b[tcpFlags] }

// WindowSize returns the window field.
func (b TCP) WindowSize() uint16 { return binary.BigEndian.Uint16(b[tcpWindow:]) }

// Checksum returns the checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[tcpChecksum:]) }

// SetChecksum sets the checksum field.
func (b TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[tcpChecksum:], v) }

// SetSequenceNumber sets the sequence number without touching the checksum:
// for a segment with a partial checksum (the field is in the part the
// kernel or NIC sums later) or one checksummed afterwards.
func (b TCP) SetSequenceNumber(v uint32) { binary.BigEndian.PutUint32(b[tcpSeq:], v) }

// SetAckNumber sets the acknowledgment number without touching the
// checksum, like SetSequenceNumber.
func (b TCP) SetAckNumber(v uint32) { binary.BigEndian.PutUint32(b[tcpAck:], v) }

// SetSequenceNumberWithChecksumUpdate sets the sequence number and updates
// the checksum incrementally (RFC 1624).
func (b TCP) SetSequenceNumberWithChecksumUpdate(v uint32) {
	old := [4]byte(b[tcpSeq : tcpSeq+4])
	b.SetSequenceNumber(v)
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, [4]byte(b[tcpSeq:tcpSeq+4])))
}

// SetAckNumberWithChecksumUpdate sets the acknowledgment number and updates
// the checksum incrementally (RFC 1624).
func (b TCP) SetAckNumberWithChecksumUpdate(v uint32) {
	old := [4]byte(b[tcpAck : tcpAck+4])
	b.SetAckNumber(v)
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, [4]byte(b[tcpAck:tcpAck+4])))
}

// Word32 returns the big-endian 32-bit word at offset off of the segment:
// an option field (a timestamp, a SACK block edge). off+4 must be within
// the header.
func (b TCP) Word32(off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }

// SetWord32 sets the 32-bit word at offset off without touching the
// checksum, like SetSequenceNumber.
func (b TCP) SetWord32(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }

// SetWord32WithChecksumUpdate sets the 32-bit word at offset off, which may
// be odd (options are byte-aligned), and updates the checksum
// incrementally. At an odd offset the field's bytes fall into the checksum
// as the low and high bytes of the 16-bit words around them: the one's
// complement sum of byte-swapped words is the byte-swapped sum (RFC 1071
// section 2(B)), so the update is RFC 1624's over the swapped pairs.
func (b TCP) SetWord32WithChecksumUpdate(off int, v uint32) {
	old := [4]byte(b[off : off+4])
	b.SetWord32(off, v)
	nw := [4]byte(b[off : off+4])
	if off&1 != 0 {
		old = [4]byte{old[1], old[0], old[3], old[2]}
		nw = [4]byte{nw[1], nw[0], nw[3], nw[2]}
	}
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, nw))
}

// Options returns the options: the header after its first 20 bytes. The
// header must be valid (IsValid).
func (b TCP) Options() []byte { return b[TCPMinLen:b.DataOffset()] }

// MSS returns the value of the segment's MSS option, and false if it has
// none before the end of the option list or a malformed option (a length
// below 2 or beyond the header), where it stops looking. The header must
// be valid (IsValid).
func (b TCP) MSS() (uint16, bool) {
	o := b.Options()
	for len(o) > 0 {
		switch o[0] {
		case TCPOptionEOL:
			return 0, false
		case TCPOptionNOP:
			o = o[1:]
			continue
		}
		if len(o) < 2 || o[1] < 2 || int(o[1]) > len(o) {
			return 0, false
		}
		if o[0] == TCPOptionMSS && o[1] == TCPOptionMSSLen {
			return binary.BigEndian.Uint16(o[2:]), true
		}
		o = o[o[1]:]
	}
	return 0, false
}

// TCPFields holds the fields TCP.Encode writes.
type TCPFields struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	// HeaderLength is the data offset in bytes, options included: a
	// multiple of 4 in [20, 60]. Encode writes the first 20 bytes only;
	// the options are the caller's.
	HeaderLength int
	Flags        uint8
	Window       uint16
}

// Encode writes the first 20 bytes of a TCP header from f into b, with a
// checksum and urgent pointer of 0. The caller writes the options (see
// PutMSSOption) and then the checksum (CalculateChecksum).
func (b TCP) Encode(f *TCPFields) {
	_ = b[TCPMinLen-1]
	binary.BigEndian.PutUint16(b[tcpSrcPort:], f.SrcPort)
	binary.BigEndian.PutUint16(b[tcpDstPort:], f.DstPort)
	binary.BigEndian.PutUint32(b[tcpSeq:], f.Seq)
	binary.BigEndian.PutUint32(b[tcpAck:], f.Ack)
	b[tcpDataOffset] = uint8(f.HeaderLength/4) << 4
	b[tcpFlags] = f.Flags
	binary.BigEndian.PutUint16(b[tcpWindow:], f.Window)
	binary.BigEndian.PutUint16(b[tcpChecksum:], 0)
	binary.BigEndian.PutUint16(b[tcpUrgent:], 0)
}

// PutMSSOption writes an MSS option of value mss into b[:4].
func PutMSSOption(b []byte, mss uint16) {
	_ = b[TCPOptionMSSLen-1]
	b[0], b[1] = TCPOptionMSS, TCPOptionMSSLen
	binary.BigEndian.PutUint16(b[2:], mss)
}

// SetFlags sets the flags byte without touching the checksum.
func (b TCP) SetFlags(f uint8) { b[tcpFlags] = f }

// Payload returns the data after the header.
func (b TCP) Payload() []byte { return b[b.DataOffset():] }

// SetSourcePort sets the source port without touching the checksum: for a
// segment whose checksum the kernel or NIC will finish (see
// UpdatePartialChecksumPseudoHeaderAddress) or that is checksummed later.
func (b TCP) SetSourcePort(p uint16) { binary.BigEndian.PutUint16(b[tcpSrcPort:], p) }

// SetDestinationPort sets the destination port without touching the
// checksum, like SetSourcePort.
func (b TCP) SetDestinationPort(p uint16) { binary.BigEndian.PutUint16(b[tcpDstPort:], p) }

// SetSourcePortWithChecksumUpdate sets the source port and updates the
// checksum incrementally.
func (b TCP) SetSourcePortWithChecksumUpdate(p uint16) {
	old := b.SourcePort()
	b.SetSourcePort(p)
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), old, p))
}

// SetDestinationPortWithChecksumUpdate sets the destination port and updates
// the checksum incrementally.
func (b TCP) SetDestinationPortWithChecksumUpdate(p uint16) {
	old := b.DestinationPort()
	b.SetDestinationPort(p)
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), old, p))
}

// UpdateChecksumPseudoHeaderAddress updates the checksum for an IP address
// change in the pseudo-header, from old to new. Call it next to the IPv4
// header rewrite of the same address.
func (b TCP) UpdateChecksumPseudoHeaderAddress(old, new [4]byte) {
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, new))
}

// UpdatePartialChecksumPseudoHeaderAddress is UpdateChecksumPseudoHeaderAddress
// for a segment with a partial checksum (CHECKSUM_PARTIAL, VIRTIO_NET_HDR_F_NEEDS_CSUM,
// as offloads hand it over): the field holds the uncomplemented pseudo-header
// sum and the kernel or NIC sums the segment later. Ports are not in the
// pseudo-header, so with a partial checksum they are set with SetSourcePort
// and SetDestinationPort, which leave the field alone.
func (b TCP) UpdatePartialChecksumPseudoHeaderAddress(old, new [4]byte) {
	b.SetChecksum(^ChecksumUpdate32(^b.Checksum(), old, new))
}

// CalculateChecksum returns the value to store in the checksum field of the
// segment b sent from src to dst: the complemented sum over the pseudo-header
// and the whole of b, with the checksum field taken as zero.
func (b TCP) CalculateChecksum(src, dst [4]byte) uint16 {
	s := PseudoHeaderChecksum(ProtoTCP, src, dst, uint16(len(b)))
	s = Checksum(b[:tcpChecksum], s)
	return ^Checksum(b[tcpChecksum+2:], s)
}

// IsChecksumValid reports whether the checksum of segment b sent from src to
// dst is correct.
func (b TCP) IsChecksumValid(src, dst [4]byte) bool {
	return Checksum(b, PseudoHeaderChecksum(ProtoTCP, src, dst, uint16(len(b)))) == 0xffff
}
