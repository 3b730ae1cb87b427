package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// The benchmark frame: the smallest Ethernet frame, 60 bytes plus the
// 4-byte FCS the wire adds, carrying one UDP datagram.
//
//	Ethernet (RFC 894)   0  destination MAC (6) | 6 source MAC (6) | 12 EtherType 0x0800
//	IPv4 (RFC 791)      14  version/IHL | TOS | 16 total length | 18 ID | 20 flags/fragment offset
//	                    22  TTL | 23 protocol | 24 header checksum | 26 source | 30 destination
//	UDP (RFC 768)       34  source port | 36 destination port | 38 length | 40 checksum
//	payload             42  18 bytes
const (
	ethLen     = 14
	ipv4Len    = 20
	udpLen     = 8
	payloadLen = 18
	// FrameLen is the frame handed to the link: 64 bytes on the wire.
	FrameLen = ethLen + ipv4Len + udpLen + payloadLen

	offEthDst     = 0
	offEthSrc     = 6
	offEthType    = 12
	offIPVerIHL   = 14
	offIPTotalLen = 16
	offIPID       = 18
	offIPTTL      = 22
	offIPProto    = 23
	offIPCsum     = 24
	offIPSrc      = 26
	offIPDst      = 30
	offUDPSrc     = 34
	offUDPDst     = 36
	offUDPLen     = 38
	offUDPCsum    = 40
	offPayload    = 42

	etherTypeIPv4 = 0x0800
	ipVersion4    = 0x45 // version 4, 5 words of header
	ipProtoUDP    = 17
)

// The IPv6 benchmark frame: the same UDP datagram behind a 40-byte IPv6
// header, 80 bytes plus the FCS.
//
//	Ethernet (RFC 894)   0  destination MAC (6) | 6 source MAC (6) | 12 EtherType 0x86DD
//	IPv6 (RFC 8200)     14  version/traffic class/flow label (4) | 18 payload length
//	                    20  next header | 21 hop limit | 22 source (16) | 38 destination (16)
//	UDP (RFC 768)       54  source port | 56 destination port | 58 length | 60 checksum
//	payload             62  18 bytes
const (
	ipv6Len = 40
	// FrameLen6 is the IPv6 frame handed to the link: 84 bytes on the wire.
	FrameLen6 = ethLen + ipv6Len + udpLen + payloadLen

	off6PayloadLen = 18
	off6Next       = 20
	off6HopLimit   = 21
	off6Src        = 22
	off6Dst        = 38
	off6UDP        = 54

	etherTypeIPv6 = 0x86dd
	ipVersion6    = 0x60 // version 6, traffic class 0
)

// Tunables of the traffic.
const (
	// frameTTL is an ordinary initial TTL; the kernel baseline decrements
	// it, gvsd does not (LVS does not either).
	frameTTL = 64
	// srcAddrs is how many source addresses the flows use, 10.20.0.200 and
	// up: on the LAN, so the kernel's rp_filter and the dataplane accept
	// them, and used by no lab host, so nothing ever answers them.
	srcAddrs = 4
	// firstSrcPort is the source port of flow 0; flow i uses
	// firstSrcPort+i, so every flow has a port of its own.
	firstSrcPort = 1024
	// MaxFlows keeps the ports below 65536 and the trafgen config small.
	MaxFlows = 16384
)

// firstSrcAddr is the source address of flow 0, and firstSrcAddr6 its
// IPv6 counterpart on the lab's IPv6 LAN (fd00:20::/64), used by no host.
var (
	firstSrcAddr  = netip.AddrFrom4([4]byte{10, 20, 0, 200})
	firstSrcAddr6 = netip.MustParseAddr("fd00:20::200")
)

// Traffic describes the frames the generator sends: flows UDP flows from
// srcAddrs source addresses on the LAN to Dst, all addressed to the MAC
// of the director. An IPv6 Dst makes IPv6 frames from IPv6 sources.
type Traffic struct {
	DstMAC, SrcMAC net.HardwareAddr
	Dst            netip.AddrPort
	Flows          int
}

// is6 reports whether t's frames are IPv6.
func (t Traffic) is6() bool { return t.Dst.Addr().Is6() }

// FrameLen is the length of t's frames: FrameLen or FrameLen6.
func (t Traffic) FrameLen() int {
	if t.is6() {
		return FrameLen6
	}
	return FrameLen
}

// flowSource returns the source address and port of flow i.
func (t Traffic) flowSource(i int) netip.AddrPort {
	first := firstSrcAddr
	if t.is6() {
		first = firstSrcAddr6
	}
	a := first.As16()
	a[15] += byte(i % srcAddrs)
	addr := netip.AddrFrom16(a)
	if first.Is4() {
		addr = addr.Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(firstSrcPort+i))
}

// SourceRange describes the flows' sources for humans:
// 10.20.0.200-203:1024-2047, or fd00:20::200-203:1024-2047.
func (t Traffic) SourceRange() string {
	n := min(t.Flows, srcAddrs)
	first, last := t.flowSource(0).Addr(), t.flowSource(n-1).Addr()
	a := last.As16()
	if t.is6() {
		// The last group, in hex as written.
		return fmt.Sprintf("%s-%x:%d-%d", first, binary.BigEndian.Uint16(a[14:]), firstSrcPort, firstSrcPort+t.Flows-1)
	}
	return fmt.Sprintf("%s-%d:%d-%d", first, a[15], firstSrcPort, firstSrcPort+t.Flows-1)
}

func (t Traffic) validate() error {
	if len(t.DstMAC) != 6 || len(t.SrcMAC) != 6 {
		return fmt.Errorf("bench: traffic: MACs %v and %v are not Ethernet", t.DstMAC, t.SrcMAC)
	}
	if a := t.Dst.Addr(); !a.IsValid() || a.Is4In6() {
		return fmt.Errorf("bench: traffic: destination %s is neither IPv4 nor IPv6", t.Dst)
	}
	if t.Flows < 1 || t.Flows > MaxFlows {
		return fmt.Errorf("bench: traffic: %d flows: want 1 to %d", t.Flows, MaxFlows)
	}
	return nil
}

// Frames returns one frame per flow, allocating them all. Flow i differs
// from the others in its source address, source port and IP ID.
func (t Traffic) Frames() ([][]byte, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	frames := make([][]byte, t.Flows)
	for i := range frames {
		frames[i] = make([]byte, t.FrameLen())
		if t.is6() {
			t.build6(frames[i], i)
		} else {
			t.build(frames[i], i)
		}
	}
	return frames, nil
}

// build writes flow i's frame into b, which is FrameLen bytes long.
func (t Traffic) build(b []byte, i int) {
	src := t.flowSource(i)
	copy(b[offEthDst:], t.DstMAC)
	copy(b[offEthSrc:], t.SrcMAC)
	binary.BigEndian.PutUint16(b[offEthType:], etherTypeIPv4)

	b[offIPVerIHL] = ipVersion4
	binary.BigEndian.PutUint16(b[offIPTotalLen:], ipv4Len+udpLen+payloadLen)
	binary.BigEndian.PutUint16(b[offIPID:], uint16(i))
	b[offIPTTL] = frameTTL
	b[offIPProto] = ipProtoUDP
	s4, d4 := src.Addr().As4(), t.Dst.Addr().As4()
	copy(b[offIPSrc:], s4[:])
	copy(b[offIPDst:], d4[:])
	binary.BigEndian.PutUint16(b[offIPCsum:], ^onesSum(0, b[offIPVerIHL:offIPVerIHL+ipv4Len]))

	binary.BigEndian.PutUint16(b[offUDPSrc:], src.Port())
	binary.BigEndian.PutUint16(b[offUDPDst:], t.Dst.Port())
	binary.BigEndian.PutUint16(b[offUDPLen:], udpLen+payloadLen)
	copy(b[offPayload:], "gvs bench payload!")
	// RFC 768 checksum over the pseudo-header, the UDP header and the data;
	// a result of 0 is sent as 0xFFFF (0 means "no checksum").
	var pseudo [12]byte
	copy(pseudo[0:], s4[:])
	copy(pseudo[4:], d4[:])
	pseudo[9] = ipProtoUDP
	binary.BigEndian.PutUint16(pseudo[10:], udpLen+payloadLen)
	c := ^onesSum(onesSum(0, pseudo[:]), b[offUDPSrc:FrameLen])
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[offUDPCsum:], c)
}

// build6 writes flow i's IPv6 frame into b, which is FrameLen6 bytes
// long. The flow label stays 0 (the kernel's and gvsd's steering hash the
// ports either way).
func (t Traffic) build6(b []byte, i int) {
	src := t.flowSource(i)
	copy(b[offEthDst:], t.DstMAC)
	copy(b[offEthSrc:], t.SrcMAC)
	binary.BigEndian.PutUint16(b[offEthType:], etherTypeIPv6)

	b[ethLen] = ipVersion6
	binary.BigEndian.PutUint16(b[off6PayloadLen:], udpLen+payloadLen)
	b[off6Next] = ipProtoUDP
	b[off6HopLimit] = frameTTL
	s16, d16 := src.Addr().As16(), t.Dst.Addr().As16()
	copy(b[off6Src:], s16[:])
	copy(b[off6Dst:], d16[:])

	u := b[off6UDP:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], t.Dst.Port())
	binary.BigEndian.PutUint16(u[4:], udpLen+payloadLen)
	copy(u[udpLen:], "gvs bench payload!")
	// RFC 8200 section 8.1: the pseudo-header is both addresses, the
	// upper-layer length and the next header; the checksum is mandatory.
	var pseudo [40]byte
	copy(pseudo[0:], s16[:])
	copy(pseudo[16:], d16[:])
	binary.BigEndian.PutUint32(pseudo[32:], udpLen+payloadLen)
	pseudo[39] = ipProtoUDP
	c := ^onesSum(onesSum(0, pseudo[:]), u[:udpLen+payloadLen])
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
}

// onesSum adds b to the RFC 1071 ones' complement sum sum, folded to 16
// bits. b has an even length here.
func onesSum(sum uint16, b []byte) uint16 {
	s := uint32(sum)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// WriteTrafgen writes a trafgen(8) packet configuration holding every
// frame: trafgen sends them round robin, so each flow gets the same share.
func (t Traffic) WriteTrafgen(w io.Writer) error {
	frames, err := t.Frames()
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "/* gvs bench: %d UDP flows %s -> %s, %d-byte frames (%d with FCS) */\n", t.Flows, t.SourceRange(), t.Dst, t.FrameLen(), t.FrameLen()+4)
	for _, f := range frames {
		bw.WriteString("{")
		for j, c := range f {
			if j > 0 {
				bw.WriteString(",")
			}
			fmt.Fprintf(bw, "0x%02x", c)
		}
		bw.WriteString("}\n")
	}
	return bw.Flush()
}
