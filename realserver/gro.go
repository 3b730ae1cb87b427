package realserver

import (
	"encoding/binary"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// TCP header (RFC 9293 section 3.1), the fields the coalescer reads:
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
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	tcpPortsOff    = 0 // source and destination port, 4 bytes
	tcpSeqOff      = 4
	tcpAckOff      = 8
	tcpDataOffOff  = 12
	tcpFlagsOff    = 13
	tcpChecksumOff = 16
	tcpMinHdrLen   = 20
	tcpMaxHdrLen   = 60

	protoTCP = 6
)

// More IPv4 header offsets (see the diagram in ipip.go).
const (
	ipv4TOSOff      = 1
	ipv4TTLOff      = 8
	ipv4ChecksumOff = 10
	ipv4SrcOff      = 12

	ipv4MF          = 0x2000 // More Fragments, in the flags and fragment offset word
	ipv4MaxTotalLen = 0xffff
)

// flowKey is a TCP flow in one direction: source and destination address
// and port, as they sit in the headers (IPv4: 8 bytes of addresses, then
// the ports; IPv6: 32 bytes of addresses, then the ports), and the IP
// version last.
type flowKey [37]byte

// groFrame is one write to the TUN device: a head packet, and when
// segs > 1 the payloads of the segments that follow it in the same flow,
// written after it as one GSO super-segment.
type groFrame struct {
	head    int            // index in the batch of the packet whose headers lead the frame
	tail    int            // index of the last packet in the frame
	segs    int            // packets in the frame
	vnet    header.Offload // what the frame is written with (set by finish)
	key     flowKey        // keyed frames only
	keyed   bool           // a TCP packet whose ports could be read
	v6      bool           // IPv6 (without extension headers), else IPv4
	valid   bool           // the head's IPv4 and TCP checksums were verified
	open    bool           // a segment of the same flow may still be appended
	psh     bool           // a segment with PSH was appended: set it on the head
	hdrLen  int            // head's IP plus TCP header length
	ipLen   int            // head's IP header length (40 for IPv6)
	gsoSize int            // head's payload length: every segment but the last has it
	payload int            // payload bytes of all segments
	nextSeq uint32         // sequence number a segment must have to be appended
}

// coalescer merges consecutive TCP segments of one flow, over IPv4 or
// IPv6, in a batch of inner packets into GSO frames, as GRO does in the kernel (the rules of
// tcp_gro_receive and of wireguard-go's tcpGRO). A packet is merged into
// the open frame of its flow only when all of these hold, and otherwise
// leads a frame of its own:
//
//   - IPv4 without options, not a fragment, header checksum valid; or
//     IPv6 with TCP right behind the fixed header (no extension header);
//   - TCP with a valid checksum, only ACK or ACK|PSH set, payload > 0;
//   - same TOS, DF and TTL (IPv6: traffic class, flow label and hop
//     limit), same acknowledgment number, same TCP header length and
//     options as the frame's head;
//   - its sequence number follows the frame's last byte, its payload is at
//     most the head's, the frame has no shorter segment and no PSH yet,
//     and the frame stays within 65535 bytes.
//
// Any other TCP packet of the flow closes the flow's open frame, so the
// packets of one flow leave in the order they came. A TCP packet whose
// ports cannot be read (a later fragment; for IPv6, one behind extension
// headers) closes every open frame.
// Packets of other protocols are never merged and close nothing.
//
// coalesce allocates nothing once its slices have grown to the batch size.
type coalescer struct {
	frames []groFrame
	next   []int // per packet: the next packet of its frame, -1 at the end
	open   []int // indices into frames of the frames still open
}

// newCoalescer returns a coalescer sized for batches of up to n packets.
func newCoalescer(n int) *coalescer {
	return &coalescer{frames: make([]groFrame, 0, n), next: make([]int, n), open: make([]int, 0, n)}
}

// coalesce groups pkts (whole inner IPv4 packets, each trimmed to its
// total length) into frames, in the order of their head packets, and
// rewrites the head of every merged frame in place (see finish). Walk a
// frame's packets from head through next. The result is valid until the
// next call.
func (c *coalescer) coalesce(pkts [][]byte) []groFrame {
	c.frames = c.frames[:0]
	c.open = c.open[:0]
	if cap(c.next) < len(pkts) {
		c.next = make([]int, len(pkts))
	}
	c.next = c.next[:len(pkts)]
	for i, p := range pkts {
		c.next[i] = -1
		c.add(pkts, i, p)
	}
	for i := range c.frames {
		c.finish(pkts, &c.frames[i])
	}
	return c.frames
}

// What classify finds a packet to be.
const (
	pktOther   = iota // not TCP: never merged, closes nothing
	pktUnknown        // TCP, or maybe TCP, whose flow cannot be read: closes every open frame
	pktTCP            // TCP whose ports can be read behind ipLen bytes of IP header
)

// classify says what the inner packet p is to the coalescer and, for
// pktTCP, its IP header length, its family and whether it is whole (not a
// fragment: an IPv4 first fragment has ports but is not whole).
func classify(p []byte) (kind, ipLen int, v6, whole bool) {
	if len(p) >= ipv6HdrLen && p[0]>>4 == ipv6Version {
		if int(binary.BigEndian.Uint16(p[ipv6PayloadLenOff:])) != len(p)-ipv6HdrLen {
			return pktUnknown, 0, true, false // not trimmed to its length
		}
		switch p[ipv6NextHeaderOff] {
		case protoTCP:
			if len(p) < ipv6HdrLen+4 {
				return pktUnknown, 0, true, false
			}
			return pktTCP, ipv6HdrLen, true, true
		case protoUDP, protoICMPv6, protoNoNext:
			return pktOther, 0, true, false
		}
		// An extension header: a fragment, or TCP behind options.
		return pktUnknown, 0, true, false
	}
	ipLen, ok := ipv4Header(p)
	if !ok || p[ipv4ProtoOff] != protoTCP {
		return pktOther, 0, false, false
	}
	frag := binary.BigEndian.Uint16(p[ipv4FragOff:]) & ipv4MFOffMask
	if frag&^ipv4MF != 0 || len(p) < ipLen+4 || int(binary.BigEndian.Uint16(p[ipv4TotalLenOff:])) != len(p) {
		// A later fragment, too short for the ports, or not trimmed to
		// its total length: it may belong to any flow.
		return pktUnknown, 0, false, false
	}
	return pktTCP, ipLen, false, frag == 0
}

// add places packet i.
func (c *coalescer) add(pkts [][]byte, i int, p []byte) {
	f := groFrame{head: i, tail: i, segs: 1}
	kind, ipLen, v6, whole := classify(p)
	switch kind {
	case pktOther:
		c.frames = append(c.frames, f)
		return
	case pktUnknown:
		c.closeAll()
		c.frames = append(c.frames, f)
		return
	}
	f.keyed, f.v6 = true, v6
	if v6 {
		copy(f.key[:32], p[ipv6SrcOff:ipv6SrcOff+32])
		copy(f.key[32:], p[ipLen+tcpPortsOff:ipLen+tcpPortsOff+4])
		f.key[36] = ipv6Version
	} else {
		copy(f.key[:8], p[ipv4SrcOff:ipv4SrcOff+8])
		copy(f.key[8:], p[ipLen+tcpPortsOff:ipLen+tcpPortsOff+4])
		f.key[36] = ipv4Version
	}
	open := c.findOpen(f.key)

	tcpLen := 0
	if whole && len(p) >= ipLen+tcpMinHdrLen {
		tcpLen = int(p[ipLen+tcpDataOffOff]>>4) * 4
	}
	if tcpLen < tcpMinHdrLen || tcpLen > len(p)-ipLen ||
		(!v6 && header.Checksum(p[:ipLen], 0) != 0xffff) || !tcpChecksumValid(p, ipLen, v6) {
		// Malformed, a first fragment, or a bad checksum: the kernel
		// judges it as it is.
		c.close(open)
		c.frames = append(c.frames, f)
		return
	}
	f.valid = true
	f.ipLen, f.hdrLen = ipLen, ipLen+tcpLen
	f.gsoSize = len(p) - f.hdrLen
	f.payload = f.gsoSize
	seq := binary.BigEndian.Uint32(p[ipLen+tcpSeqOff:])
	f.nextSeq = seq + uint32(f.gsoSize)
	flags := p[ipLen+tcpFlagsOff]
	mergeable := (v6 || ipLen == ipv4MinHdrLen) && f.gsoSize > 0 &&
		(flags == header.TCPFlagAck || flags == header.TCPFlagAck|header.TCPFlagPsh)

	if open >= 0 && mergeable {
		g := &c.frames[c.open[open]]
		if c.canAppend(pkts[g.head], g, p, seq, f) {
			c.next[g.tail] = i
			g.tail = i
			g.segs++
			g.payload += f.gsoSize
			g.nextSeq = f.nextSeq
			if flags&header.TCPFlagPsh != 0 {
				g.psh = true
			}
			if g.psh || f.gsoSize < g.gsoSize {
				c.close(open)
			}
			return
		}
	}
	c.close(open)
	f.open = mergeable && flags&header.TCPFlagPsh == 0
	c.frames = append(c.frames, f)
	if f.open {
		c.open = append(c.open, len(c.frames)-1)
	}
}

// canAppend reports whether p (described by f, with sequence number seq)
// may follow the segments of frame g, whose head packet is h.
func (c *coalescer) canAppend(h []byte, g *groFrame, p []byte, seq uint32, f groFrame) bool {
	var sameIP bool
	if g.v6 {
		sameIP = [4]byte(h[0:4]) == [4]byte(p[0:4]) && // traffic class, flow label
			h[ipv6HopLimitOff] == p[ipv6HopLimitOff]
	} else {
		sameIP = h[ipv4TOSOff] == p[ipv4TOSOff] &&
			h[ipv4FragOff]&0xe0 == p[ipv4FragOff]&0xe0 && // reserved, DF, MF
			h[ipv4TTLOff] == p[ipv4TTLOff]
	}
	return sameIP && f.hdrLen == g.hdrLen &&
		seq == g.nextSeq && f.gsoSize <= g.gsoSize &&
		g.hdrLen+g.payload+f.gsoSize <= ipv4MaxTotalLen &&
		[4]byte(h[g.ipLen+tcpAckOff:]) == [4]byte(p[f.ipLen+tcpAckOff:]) &&
		string(h[g.ipLen+tcpMinHdrLen:g.hdrLen]) == string(p[f.ipLen+tcpMinHdrLen:f.hdrLen])
}

// findOpen returns the position in c.open of the open frame of flow k, or -1.
func (c *coalescer) findOpen(k flowKey) int {
	for j, fi := range c.open {
		if c.frames[fi].key == k {
			return j
		}
	}
	return -1
}

// close closes the open frame at position j of c.open (nothing if j < 0).
func (c *coalescer) close(j int) {
	if j < 0 {
		return
	}
	c.frames[c.open[j]].open = false
	last := len(c.open) - 1
	c.open[j] = c.open[last]
	c.open = c.open[:last]
}

func (c *coalescer) closeAll() {
	for _, fi := range c.open {
		c.frames[fi].open = false
	}
	c.open = c.open[:0]
}

// finish sets the frame's virtio_net_hdr. A lone packet is left as it
// came; its checksums are marked verified (DATA_VALID) when they were. A
// merged frame becomes a TCPv4 (TCPv6) GSO super-segment: the head's IPv4
// total length and header checksum (IPv6 payload length) are rewritten for
// the whole frame, PSH is set when a segment had it, and the TCP checksum
// field holds the pseudo-header sum for the kernel to complete
// (NEEDS_CSUM).
func (c *coalescer) finish(pkts [][]byte, f *groFrame) {
	f.open = false
	if f.segs == 1 {
		if f.valid {
			f.vnet = header.Offload{Flags: header.OffloadDataValid}
		}
		return
	}
	h := pkts[f.head]
	total := f.hdrLen + f.payload
	if f.psh {
		h[f.ipLen+tcpFlagsOff] |= header.TCPFlagPsh
	}
	if f.v6 {
		binary.BigEndian.PutUint16(h[ipv6PayloadLenOff:], uint16(total-ipv6HdrLen))
		psum := header.PseudoHeaderChecksum6(protoTCP, [16]byte(h[ipv6SrcOff:]), [16]byte(h[ipv6DstOff:]), uint32(total-ipv6HdrLen))
		binary.BigEndian.PutUint16(h[ipv6HdrLen+tcpChecksumOff:], psum)
		f.vnet = header.Offload{
			Flags:      header.OffloadNeedsCsum,
			GSOType:    header.GSOTCPv6,
			HdrLen:     uint16(f.hdrLen),
			GSOSize:    uint16(f.gsoSize),
			CsumStart:  ipv6HdrLen,
			CsumOffset: header.TCPChecksumOffset,
		}
		return
	}
	binary.BigEndian.PutUint16(h[ipv4TotalLenOff:], uint16(total))
	binary.BigEndian.PutUint16(h[ipv4ChecksumOff:], 0)
	binary.BigEndian.PutUint16(h[ipv4ChecksumOff:], ^header.Checksum(h[:f.ipLen], 0))
	psum := header.PseudoHeaderChecksum(protoTCP, [4]byte(h[ipv4SrcOff:]), [4]byte(h[ipv4DstOff:]), uint16(total-f.ipLen))
	binary.BigEndian.PutUint16(h[f.ipLen+tcpChecksumOff:], psum)
	f.vnet = header.Offload{
		Flags:      header.OffloadNeedsCsum,
		GSOType:    header.GSOTCPv4,
		HdrLen:     uint16(f.hdrLen),
		GSOSize:    uint16(f.gsoSize),
		CsumStart:  uint16(f.ipLen),
		CsumOffset: header.TCPChecksumOffset,
	}
}

// tcpChecksumValid checks the TCP checksum of the IPv4 (v6: IPv6) packet p
// whose header is ipLen bytes long.
func tcpChecksumValid(p []byte, ipLen int, v6 bool) bool {
	seg := p[ipLen:]
	var psum uint16
	if v6 {
		psum = header.PseudoHeaderChecksum6(protoTCP, [16]byte(p[ipv6SrcOff:]), [16]byte(p[ipv6DstOff:]), uint32(len(seg)))
	} else {
		psum = header.PseudoHeaderChecksum(protoTCP, [4]byte(p[ipv4SrcOff:]), [4]byte(p[ipv4DstOff:]), uint16(len(seg)))
	}
	return header.Checksum(seg, psum) == 0xffff
}
