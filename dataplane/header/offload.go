package header

import "encoding/binary"

// Offload is what the kernel says of a frame's offloads, and what a sender
// asks of it: struct virtio_net_hdr (virtio 1.x, section 5.1.6 "Device
// Operation"; <linux/virtio_net.h>), which an AF_PACKET socket with
// PACKET_VNET_HDR puts in front of every frame it receives and takes in
// front of every frame it sends.
//
//	 0               1               2               3
//	+---------------+---------------+-------------------------------+
//	|     flags     |   gso_type    |            hdr_len            |
//	+---------------+---------------+-------------------------------+
//	|           gso_size            |          csum_start           |
//	+-------------------------------+-------------------------------+
//	|          csum_offset          |
//	+-------------------------------+
//
// The fields are in host byte order (the legacy virtio layout AF_PACKET
// uses on a little-endian host). CsumStart counts from the first byte of the
// Ethernet header. The zero value is a plain frame with a complete checksum.
type Offload struct {
	// Flags: OffloadNeedsCsum (the transport checksum is partial: the
	// field at CsumStart+CsumOffset holds the uncomplemented
	// pseudo-header sum, and whoever sends the frame sums from CsumStart
	// to the end and stores the complement there) or OffloadDataValid
	// (the receiver checked it).
	Flags uint8
	// GSOType says the frame is a GSO super-frame to be cut into GSOSize
	// payload pieces (GSONone, GSOTCPv4, GSOUDPL4, ..., with GSOECN).
	GSOType uint8
	// HdrLen is the length of the headers every segment repeats (Ethernet
	// to the end of the transport header); a hint.
	HdrLen  uint16
	GSOSize uint16
	// CsumStart and CsumOffset place a partial checksum (OffloadNeedsCsum).
	CsumStart  uint16
	CsumOffset uint16
}

// OffloadLen is sizeof(struct virtio_net_hdr).
const OffloadLen = 10

// virtio_net_hdr field offsets.
const (
	vnetFlags      = 0
	vnetGSOType    = 1
	vnetHdrLen     = 2
	vnetGSOSize    = 4
	vnetCsumStart  = 6
	vnetCsumOffset = 8
)

// Offload flags (VIRTIO_NET_HDR_F_*).
const (
	OffloadNeedsCsum uint8 = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	OffloadDataValid uint8 = 2 // VIRTIO_NET_HDR_F_DATA_VALID
)

// GSO types (VIRTIO_NET_HDR_GSO_*).
const (
	GSONone  uint8 = 0
	GSOTCPv4 uint8 = 1
	GSOUDP   uint8 = 3 // UFO: one datagram to be cut into IP fragments
	GSOTCPv6 uint8 = 4
	GSOUDPL4 uint8 = 5 // UDP segmentation: each piece a datagram of its own
	GSOECN   uint8 = 0x80
)

// Partial reports whether the transport checksum is partial.
func (o *Offload) Partial() bool { return o.Flags&OffloadNeedsCsum != 0 }

// GSO reports whether the frame is a GSO super-frame.
func (o *Offload) GSO() bool { return o.GSOType&^GSOECN != GSONone }

// Decode reads a virtio_net_hdr from b[:OffloadLen].
func (o *Offload) Decode(b []byte) {
	_ = b[OffloadLen-1]
	o.Flags = b[vnetFlags]
	o.GSOType = b[vnetGSOType]
	o.HdrLen = binary.NativeEndian.Uint16(b[vnetHdrLen:])
	o.GSOSize = binary.NativeEndian.Uint16(b[vnetGSOSize:])
	o.CsumStart = binary.NativeEndian.Uint16(b[vnetCsumStart:])
	o.CsumOffset = binary.NativeEndian.Uint16(b[vnetCsumOffset:])
}

// Encode writes o as a virtio_net_hdr into b[:OffloadLen].
func (o *Offload) Encode(b []byte) {
	_ = b[OffloadLen-1]
	b[vnetFlags] = o.Flags
	b[vnetGSOType] = o.GSOType
	binary.NativeEndian.PutUint16(b[vnetHdrLen:], o.HdrLen)
	binary.NativeEndian.PutUint16(b[vnetGSOSize:], o.GSOSize)
	binary.NativeEndian.PutUint16(b[vnetCsumStart:], o.CsumStart)
	binary.NativeEndian.PutUint16(b[vnetCsumOffset:], o.CsumOffset)
}

// Where the checksum field sits in a TCP and a UDP header: the csum_offset
// of a partial checksum.
const (
	TCPChecksumOffset = tcpChecksum
	UDPChecksumOffset = udpChecksum
)

// FinishChecksum completes the partial transport checksum of frame (an
// Ethernet frame whose offloads o say OffloadNeedsCsum) as the kernel or
// NIC would: it sums from CsumStart to the end of the frame, the field
// holding the pseudo-header sum included, and stores the complement at
// CsumStart+CsumOffset; a UDP result of 0 is stored as 0xFFFF (RFC 768).
// It reports false, changing nothing, when the offsets do not fit frame.
func FinishChecksum(frame []byte, o *Offload, udp bool) bool {
	start, field := int(o.CsumStart), int(o.CsumStart)+int(o.CsumOffset)
	if start >= len(frame) || field+2 > len(frame) {
		return false
	}
	c := ^Checksum(frame[start:], 0)
	if c == 0 && udp {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(frame[field:], c)
	return true
}
