package afpacket

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
)

// Offsets into an untagged Ethernet II frame carrying IPv4 (IEEE 802.3
// clause 3, RFC 791 section 3.1). Ethernet offsets count from the first byte
// of the destination MAC address, IPv4 offsets from the first byte of the
// IPv4 header, port offsets from the first byte of the TCP (RFC 9293) or
// UDP (RFC 768) header, which starts 4*IHL bytes into the IPv4 header.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  dst MAC (6), src MAC (6)                   |   EtherType   |  Ethernet 0..13
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |  IPv4 0
//	|         Identification        |Flags|      Fragment Offset    |  IPv4 4
//	|  Time to Live |    Protocol   |         Header Checksum       |  IPv4 8
//	|                       Source Address                          |  IPv4 12
//	|                    Destination Address                        |  IPv4 16
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |  L4 0
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ethTypeOff  = 12 // EtherType
	ethHdrLen   = 14 // destination MAC, source MAC, EtherType
	etherTypeV4 = 0x0800

	ipVerIHLOff  = 0  // version (high nibble), IHL in 32-bit words (low nibble)
	ipFlagsOff   = 6  // flags (3 bits) and fragment offset (13 bits)
	ipProtoOff   = 9  // protocol
	ipSrcOff     = 12 // source address
	ipDstOff     = 16 // destination address
	ipFragOffset = 0x1fff

	// An IPv4 version/IHL byte is acceptable when the version is 4 and the
	// header is at least the minimal 20 bytes: 0x45 through 0x4f.
	ipVerIHLMin = 0x45
	ipVerIHLEnd = 0x50

	l4SrcPortOff = 0
	l4DstPortOff = 2

	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17

	// ICMP errors (RFC 792) quote the IPv4 header and the first 8 bytes
	// of the packet they are about, right after their own 8-byte header.
	icmpTypeOff         = 0
	icmpQuoteOff        = 8
	icmpDestUnreachable = 3
	icmpTimeExceeded    = 11

	// pktTypeOutgoing is PACKET_OUTGOING from <linux/if_packet.h>: the
	// frame was sent by this host (packet(7), sll_pkttype).
	pktTypeOutgoing = 4
)

// headers says where a program finds the Ethernet and IPv4 headers: the
// base added to the offsets above. The programs read ports with
// "ldx 4*([ipv4 + 0]&0xf)" and "ldh [x + ipv4 + port offset]".
type headers struct{ eth, ipv4 uint32 }

var (
	// fromFrameStart is for socket filters, which the kernel runs with the
	// packet data starting at the Ethernet header.
	fromFrameStart = headers{eth: 0, ipv4: ethHdrLen}
	// fromHeaderMarks is for fanout programs: the kernel runs them on
	// received frames with the data starting at the network header (the
	// Ethernet header already pulled), on sent ones at the Ethernet
	// header, so they address the headers through the kernel's marks
	// instead: SKF_LL_OFF and SKF_NET_OFF from <linux/filter.h>.
	fromHeaderMarks = headers{eth: skfLLOff, ipv4: skfNetOff}
)

const (
	skfNetOff = 0xfff00000 // SKF_NET_OFF, -0x100000 as an unsigned offset
	skfLLOff  = 0xffe00000 // SKF_LL_OFF, -0x200000
)

// Limits of classic BPF as the kernel accepts it (Documentation/networking/filter.rst).
const (
	bpfMaxInsns = 4096 // BPF_MAXINSNS
	bpfMaxSkip  = 255  // conditional jump offsets are 8 bits
)

// Snaplen is what the filter returns for an accepted frame: the number of
// bytes of it to capture. It is larger than any frame the kernel hands
// AF_PACKET (a GRO/GSO super-frame is at most 64 KiB plus headers, or 512 KiB
// with BIG TCP), so an accepted frame is never cut short by the filter; the
// RX ring block size is what limits it (see Config.BlockSize).
const Snaplen = 262144

// Scratch memory slots (M[0]..M[15]) the generated programs use.
const (
	memSrc        = 0  // IPv4 source address
	memDst        = 1  // IPv4 destination address
	memSrcPort    = 2  // TCP/UDP source port
	memDstPort    = 3  // TCP/UDP destination port
	memProtoSport = 4  // protocol<<16 | source port
	memProtoDport = 5  // protocol<<16 | destination port
	memSYN        = 6  // 1 for a TCP segment that opens a connection (SteeringProgramSYN)
	memSrc6       = 7  // IPv6 source address, 4 words (7 to 10)
	memDst6       = 11 // IPv6 destination address, 4 words (11 to 14)
	memNext6      = 15 // an IPv6 Next Header while X moves past its header; then protocol<<16
)

// maxKeysPerGroup bounds how many endpoints share one address test so that
// every conditional jump in the group stays within bpfMaxSkip.
const maxKeysPerGroup = 200

// The multipliers of SteerHash: xxHash32's PRIME32_1 (also Knuth's
// golden-ratio multiplier, TAOCP 6.4) and PRIME32_2, and the first multiplier
// of the lowbias32 finaliser; odd constants with well-mixed bits, since
// classic BPF has 32-bit multiply, xor and shift and nothing fancier.
const (
	steerMulAddr  = 0x9e3779b1
	steerMulPort  = 0x85ebca77
	steerMulFinal = 0x7feb352d
)

// SteerHash is the Go twin of the hash computed by SteeringProgram: both
// directions of a connection are steered by SteerHash(client address, client
// port) % workers. The address is taken in network byte order as one
// big-endian 32-bit number, as a classic BPF "ld [off]" reads it.
func SteerHash(ip [4]byte, port uint16) uint32 {
	h := binary.BigEndian.Uint32(ip[:])*steerMulAddr ^ uint32(port)*steerMulPort
	h ^= h >> 16
	h *= steerMulFinal
	h ^= h >> 15
	return h
}

// FilterProgram returns the socket filter (SO_ATTACH_FILTER, packet(7),
// Documentation/networking/filter.rst) admitting exactly the frames m
// describes: untagged IPv4 frames that are not our own outgoing frames
// (skb->pkt_type != PACKET_OUTGOING) and are either
//
//   - TCP or UDP to one of m.VIPs (protocol, destination address and port),
//   - TCP or UDP from one of m.NATReals (protocol, source address and port), or
//   - TCP or UDP to a LocalRange address with a destination port in its range,
//   - or an ICMP destination-unreachable or time-exceeded error quoting a
//     TCP or UDP packet whose reversed tuple matches one of the above: an
//     error about a reply from a VIP, or a real server's error about a
//     packet the director sent it (RFC 792; IPVS relays these too).
//
// Ports are found through the IP header length, so IPv4 options are handled;
// non-first fragments (fragment offset != 0) carry no ports and are rejected,
// as are frames with a VLAN tag (in the frame or offloaded to skb metadata),
// a version other than 4 or an IHL below 5. Accepted frames get Snaplen,
// everything else 0. A nil or empty Match rejects everything.
//
// IPv6 frames are admitted when TCP or UDP follows the fixed header, or a
// fragment header naming TCP or UDP, directly or behind one of
// ExtensionChains6's chains of extension headers, and they go
// to one of m.VIPs6, come from one of m.NATReals6 or go to a m.Locals6
// address and port (a later fragment, by address only), and ICMPv6
// errors whose quoted packet's reversed tuple is such a frame's
// (filter6.go says what stays with the kernel and why).
func FilterProgram(m *Match) ([]bpf.RawInstruction, error) {
	if m == nil {
		m = &Match{}
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	if len(m.VIPs)+len(m.NATReals)+len(m.Locals) == 0 && !m.has6() {
		return bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	}

	var a assembler
	reject := a.newLabel()
	frag := a.newLabel()
	v6 := a.newLabel()
	a.emit(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent})
	a.jumpIf(bpf.JumpNotEqual, 0, reject, next)
	a.emit(bpf.LoadExtension{Num: bpf.ExtType})
	a.jumpIf(bpf.JumpEqual, pktTypeOutgoing, reject, next)
	if m.has6() {
		// Without IPv6 endpoints the program is what it was before
		// there was an IPv6 section.
		a.emitJumpIPv6(fromFrameStart, v6)
	}
	a.emitParse(fromFrameStart, reject, frag)

	accept := bpf.RetConstant{Val: Snaplen}
	for _, g := range groupEndpoints(m.VIPs) {
		a.emitEndpointGroup(memDst, memProtoDport, g, func() { a.emit(accept) })
	}
	for _, g := range groupEndpoints(m.NATReals) {
		a.emitEndpointGroup(memSrc, memProtoSport, g, func() { a.emit(accept) })
	}
	for _, r := range m.Locals {
		a.emitLocalRange(r, func() { a.emit(accept) })
	}
	a.emit(bpf.RetConstant{Val: 0})
	// Last: the kernel's check of scratch memory (check_load_and_stores)
	// is a linear scan that does not end a path at a return, so code
	// reached before the tuple is stored must not fall into code that
	// reads it.
	a.bind(frag)
	a.emitFragMatch(fromFrameStart, m)
	// After it the IPv6 section (filter6.go), which stores what it reads.
	if m.has6() {
		a.bind(v6)
		a.emitFilter6(fromFrameStart, m)
	}
	return a.assemble()
}

// SteeringProgram returns a PACKET_FANOUT_CBPF program (packet(7)) that
// picks, for every frame, the worker in [0, workers) that owns its
// connection, so that both directions of a connection reach the same worker:
//
//   - a FULLNAT reply (to an address of m.Locals with a destination port in
//     its range) goes to worker dport % workers, because each worker only
//     allocates local ports p with p % workers == worker;
//   - a NAT reply (from one of m.NATReals) goes to worker
//     SteerHash(dst address, dst port) % workers;
//   - anything else, in particular a client request, goes to worker
//     SteerHash(src address, src port) % workers.
//
// IPv6 frames are steered the same way with SteerHash6 (a FULLNAT reply to
// m.Locals6 by its port, a NAT reply from one of m.NATReals6 by its
// destination, anything else by its source, by the ports behind any
// extension headers the filter walks; a first fragment by the ports
// behind its fragment header, later fragments to worker 0), ICMPv6 errors
// by their quoted packet's reversed tuple.
// ICMP errors go where the connection they quote goes (its tuple reversed).
// Frames that are not IPv4 TCP/UDP with readable ports go to worker 0 (the
// socket filter drops them anyway). The kernel numbers fanout members in the
// order they joined the group, so workers must open their links in order.
//
// Unlike a socket filter, a fanout program runs on received frames with the
// packet data starting at the IPv4 header, so it reads the headers relative
// to the kernel's header marks (SKF_LL_OFF, SKF_NET_OFF).
func SteeringProgram(m *Match, workers int) ([]bpf.RawInstruction, error) {
	return steeringProgram(m, workers, false)
}

// SteeringProgramSYN is SteeringProgram for links with a SYN ring
// (Config.SYNBlocks): it returns 2w for a frame of worker w, and 2w+1 for
// a TCP segment with SYN set and ACK and RST clear (one that opens a
// connection, or a flood's), so that each worker's SYNs land in its SYN
// ring. It needs a fanout group even for one worker.
func SteeringProgramSYN(m *Match, workers int) ([]bpf.RawInstruction, error) {
	return steeringProgram(m, workers, true)
}

func steeringProgram(m *Match, workers int, syn bool) ([]bpf.RawInstruction, error) {
	if workers < 1 || workers > 1<<16 {
		return nil, fmt.Errorf("afpacket: steering for %d workers: want 1 to 65536", workers)
	}
	if m == nil {
		m = &Match{}
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	if workers == 1 && !syn {
		return bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	}

	a := assembler{synRing: syn}
	zero := a.newLabel()
	natHash := a.newLabel()
	frag := a.newLabel()
	v6 := a.newLabel()
	if m.has6() {
		a.emitJumpIPv6(fromHeaderMarks, v6)
	}
	a.emitParse(fromHeaderMarks, zero, frag)
	if syn {
		a.emitClassifySYN(fromHeaderMarks)
	}

	w := uint32(workers)
	for _, r := range m.Locals {
		a.emitLocalRange(r, func() {
			a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: w})
			a.emitRetWorker()
		})
	}
	for _, g := range groupEndpoints(m.NATReals) {
		a.emitEndpointGroup(memSrc, memProtoSport, g, func() { a.jump(natHash) })
	}
	a.emitSteerHash(memSrc, memSrcPort, w)
	a.bind(natHash)
	a.emitSteerHash(memDst, memDstPort, w)
	// Fragments after the first carry no ports: all of them go to worker
	// 0's main ring, which forwards them by their first fragment's
	// decision (the dataplane's fragment table). Last, for the kernel's
	// scratch-memory check (see FilterProgram).
	a.bind(frag)
	a.emit(bpf.RetConstant{Val: 0})
	if m.has6() {
		a.bind(v6)
		a.emitSteering6(fromHeaderMarks, m, w)
	}
	return a.assemble()
}

// TCP flags (RFC 9293 section 3.1): the byte at offset 13 of the header.
const (
	tcpFlagsOff = 13
	tcpSYN      = 0x02
	tcpRST      = 0x04
	tcpACK      = 0x10
)

// emitClassifySYN sets M[memSYN] to 1 for a TCP segment with SYN set and
// ACK and RST clear, else 0 (an ICMP error quoting one included: its
// outer protocol is ICMP).
func (a *assembler) emitClassifySYN(h headers) {
	notSYN := a.newLabel()
	done := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ipProtoOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, next, notSYN)
	a.emit(bpf.LoadMemShift{Off: h.ipv4 + ipVerIHLOff})
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + tcpFlagsOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: tcpSYN | tcpRST | tcpACK})
	a.jumpIf(bpf.JumpEqual, tcpSYN, next, notSYN)
	a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 1})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSYN})
	a.jump(done)
	a.bind(notSYN)
	a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSYN})
	a.bind(done)
}

// emitRetWorker returns A, the worker: as it is, or for links with SYN
// rings as fanout member 2A + M[memSYN].
func (a *assembler) emitRetWorker() {
	if a.synRing {
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 2})
		a.emit(bpf.TAX{})
		a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memSYN})
		a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	}
	a.emit(bpf.RetA{})
}

// validate reports every endpoint whose protocol is not TCP or UDP and every
// empty port range.
func (m *Match) validate() error {
	var errs []error
	for i, e := range m.VIPs {
		if e.Proto != protoTCP && e.Proto != protoUDP {
			errs = append(errs, fmt.Errorf("afpacket: VIPs[%d]: protocol %d is neither TCP (6) nor UDP (17)", i, e.Proto))
		}
	}
	for i, e := range m.NATReals {
		if e.Proto != protoTCP && e.Proto != protoUDP {
			errs = append(errs, fmt.Errorf("afpacket: NATReals[%d]: protocol %d is neither TCP (6) nor UDP (17)", i, e.Proto))
		}
	}
	for i, e := range m.VIPs6 {
		if e.Proto != protoTCP && e.Proto != protoUDP {
			errs = append(errs, fmt.Errorf("afpacket: VIPs6[%d]: protocol %d is neither TCP (6) nor UDP (17)", i, e.Proto))
		}
	}
	for i, e := range m.NATReals6 {
		if e.Proto != protoTCP && e.Proto != protoUDP {
			errs = append(errs, fmt.Errorf("afpacket: NATReals6[%d]: protocol %d is neither TCP (6) nor UDP (17)", i, e.Proto))
		}
	}
	for i, r := range m.Locals {
		if r.PortLo > r.PortHi {
			errs = append(errs, fmt.Errorf("afpacket: Locals[%d]: port range %d-%d is empty", i, r.PortLo, r.PortHi))
		}
	}
	for i, r := range m.Locals6 {
		if r.PortLo > r.PortHi {
			errs = append(errs, fmt.Errorf("afpacket: Locals6[%d]: port range %d-%d is empty", i, r.PortLo, r.PortHi))
		}
	}
	return errors.Join(errs...)
}

// endpointGroup is a set of protocol<<16|port keys sharing one address.
type endpointGroup struct {
	addr uint32
	keys []uint32
}

// groupEndpoints sorts and deduplicates endpoints and groups them by
// address, at most maxKeysPerGroup keys per group.
func groupEndpoints(eps []Endpoint) []endpointGroup {
	type ak struct{ addr, key uint32 }
	all := make([]ak, 0, len(eps))
	for _, e := range eps {
		all = append(all, ak{binary.BigEndian.Uint32(e.Addr[:]), uint32(e.Proto)<<16 | uint32(e.Port)})
	}
	slices.SortFunc(all, func(x, y ak) int {
		if c := cmp.Compare(x.addr, y.addr); c != 0 {
			return c
		}
		return cmp.Compare(x.key, y.key)
	})
	all = slices.Compact(all)
	var groups []endpointGroup
	for _, e := range all {
		if n := len(groups); n == 0 || groups[n-1].addr != e.addr || len(groups[n-1].keys) == maxKeysPerGroup {
			groups = append(groups, endpointGroup{addr: e.addr})
		}
		g := &groups[len(groups)-1]
		g.keys = append(g.keys, e.key)
	}
	return groups
}

// emitIPv4Checks jumps to pass for an IPv4 frame (EtherType 0x0800) with
// version 4, IHL >= 5, fragment offset 0 and protocol TCP or UDP, and to fail
// for everything else.
// emitParse checks the frame and loads its tuple into scratch memory, or
// returns 0 at fail. For an ICMP error about a TCP or UDP packet the tuple
// is that of the quoted packet, reversed: the error then matches, and is
// steered like, the packets of the connection flowing towards the side
// the error was sent to.
func (a *assembler) emitParse(h headers, fail, frag label) {
	parsed := a.newLabel()
	icmp := a.newLabel()
	loaded := a.newLabel()
	a.emitIPv4Checks(h, fail, frag, parsed, icmp)
	a.bind(fail)
	a.emit(bpf.RetConstant{Val: 0})
	a.bind(icmp)
	a.emitLoadQuotedTuple(h)
	a.jump(loaded)
	a.bind(parsed)
	a.emitLoadTuple(h)
	a.bind(loaded)
}

// emitIPv4Checks jumps to pass for an IPv4 TCP or UDP packet that is not
// a non-first fragment, to frag for a non-first fragment of one (which
// carries no ports), to icmp for an ICMP destination-unreachable or
// time-exceeded error quoting a packet of the first kind, and to fail
// otherwise.
func (a *assembler) emitIPv4Checks(h headers, fail, frag, pass, icmp label) {
	rest := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.eth + ethTypeOff, Size: 2})
	a.jumpIf(bpf.JumpNotEqual, etherTypeV4, fail, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ipVerIHLOff, Size: 1})
	a.jumpIf(bpf.JumpLessThan, ipVerIHLMin, fail, next)
	a.jumpIf(bpf.JumpGreaterOrEqual, ipVerIHLEnd, fail, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ipFlagsOff, Size: 2})
	a.jumpIf(bpf.JumpBitsSet, ipFragOffset, rest, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ipProtoOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, pass, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, pass, next)
	a.jumpIf(bpf.JumpEqual, protoICMP, next, fail)
	// X = outer header length; the ICMP header follows, then the quote.
	q := h.ipv4 + icmpQuoteOff
	a.emit(bpf.LoadMemShift{Off: h.ipv4 + ipVerIHLOff})
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + icmpTypeOff, Size: 1})
	quote := a.newLabel()
	a.jumpIf(bpf.JumpEqual, icmpDestUnreachable, quote, next)
	a.jumpIf(bpf.JumpEqual, icmpTimeExceeded, quote, fail)
	a.bind(quote)
	a.emit(bpf.LoadIndirect{Off: q + ipVerIHLOff, Size: 1})
	a.jumpIf(bpf.JumpLessThan, ipVerIHLMin, fail, next)
	a.jumpIf(bpf.JumpGreaterOrEqual, ipVerIHLEnd, fail, next)
	a.emit(bpf.LoadIndirect{Off: q + ipFlagsOff, Size: 2})
	a.jumpIf(bpf.JumpBitsSet, ipFragOffset, fail, next)
	a.emit(bpf.LoadIndirect{Off: q + ipProtoOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, icmp, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, icmp, fail)
	a.bind(rest)
	isFrag := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ipProtoOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, isFrag, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, isFrag, fail)
	a.bind(isFrag)
	a.jump(frag) // frag may be further than a conditional jump reaches
}

// emitFragMatch accepts a non-first fragment (no ports to match) going to
// one of m's VIP or local addresses or coming from one of its NAT real
// servers, and rejects the rest.
func (a *assembler) emitFragMatch(h headers, m *Match) {
	addrs := func(eps []Endpoint) []uint32 {
		var out []uint32
		for _, e := range eps {
			out = append(out, binary.BigEndian.Uint32(e.Addr[:]))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	test := func(off uint32, list []uint32) {
		a.emit(bpf.LoadAbsolute{Off: off, Size: 4})
		for _, addr := range list {
			other := a.newLabel()
			a.jumpIf(bpf.JumpNotEqual, addr, other, next)
			a.emit(bpf.RetConstant{Val: Snaplen})
			a.bind(other)
		}
	}
	dst := addrs(m.VIPs)
	for _, r := range m.Locals {
		dst = append(dst, binary.BigEndian.Uint32(r.Addr[:]))
	}
	slices.Sort(dst)
	test(h.ipv4+ipDstOff, slices.Compact(dst))
	test(h.ipv4+ipSrcOff, addrs(m.NATReals))
	a.emit(bpf.RetConstant{Val: 0})
}

// emitLoadQuotedTuple is emitLoadTuple for an ICMP error: the quoted
// packet's tuple with source and destination swapped.
func (a *assembler) emitLoadQuotedTuple(h headers) {
	q := h.ipv4 + icmpQuoteOff
	a.emit(bpf.LoadMemShift{Off: h.ipv4 + ipVerIHLOff})
	a.emit(bpf.LoadIndirect{Off: q + ipSrcOff, Size: 4})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDst})
	a.emit(bpf.LoadIndirect{Off: q + ipDstOff, Size: 4})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrc})
	// X = outer + quoted header length: the quoted ports.
	a.emit(bpf.LoadIndirect{Off: q + ipVerIHLOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadIndirect{Off: q + l4SrcPortOff, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDstPort})
	a.emit(bpf.LoadIndirect{Off: q + l4DstPortOff, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrcPort})
	a.emit(bpf.LoadMemShift{Off: h.ipv4 + ipVerIHLOff})
	a.emit(bpf.LoadIndirect{Off: q + ipProtoOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 16})
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memSrcPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoSport})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memDstPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoDport})
}

// emitLoadTuple stores the addresses, ports and protocol-port keys of an
// IPv4 TCP/UDP frame in scratch memory. Every path that reads scratch memory
// runs it first, as the kernel's classic BPF checker demands.
func (a *assembler) emitLoadTuple(h headers) {
	a.emit(bpf.LoadMemShift{Off: h.ipv4 + ipVerIHLOff})
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + l4SrcPortOff, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrcPort})
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + l4DstPortOff, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDstPort})
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ipProtoOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 16})
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memSrcPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoSport})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memDstPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoDport})
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ipSrcOff, Size: 4})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrc})
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ipDstOff, Size: 4})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDst})
}

// emitEndpointGroup emits "if M[addrMem] == g.addr && M[keyMem] in g.keys
// { hit() }", falling through to the next instruction otherwise.
func (a *assembler) emitEndpointGroup(addrMem, keyMem int, g endpointGroup, hit func()) {
	miss := a.newLabel()
	matched := a.newLabel()
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: addrMem})
	a.jumpIf(bpf.JumpEqual, g.addr, next, miss)
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: keyMem})
	for i, k := range g.keys {
		if i == len(g.keys)-1 {
			a.jumpIf(bpf.JumpEqual, k, matched, miss)
		} else {
			a.jumpIf(bpf.JumpEqual, k, matched, next)
		}
	}
	a.bind(matched)
	hit()
	a.bind(miss)
}

// emitLocalRange emits "if M[dst] == r.Addr && r.PortLo <= M[dport] <=
// r.PortHi { hit() }" with the destination port in A when hit runs.
func (a *assembler) emitLocalRange(r LocalRange, hit func()) {
	miss := a.newLabel()
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memDst})
	a.jumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(r.Addr[:]), next, miss)
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memDstPort})
	a.jumpIf(bpf.JumpGreaterOrEqual, uint32(r.PortLo), next, miss)
	a.jumpIf(bpf.JumpGreaterThan, uint32(r.PortHi), miss, next)
	hit()
	a.bind(miss)
}

// emitSteerHash returns SteerHash(M[addrMem], M[portMem]) % workers.
func (a *assembler) emitSteerHash(addrMem, portMem int, workers uint32) {
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: addrMem})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: steerMulAddr})
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: portMem})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: steerMulPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpXor})
	a.emit(bpf.TAX{})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 16})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpXor})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: steerMulFinal})
	a.emit(bpf.TAX{})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 15})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpXor})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: workers})
	a.emitRetWorker()
}

// label names an instruction position that jumps can target before it is
// known; next is the instruction right after the jump.
type label int

const next label = -1

// assembler collects instructions and resolves forward jumps to labels.
type assembler struct {
	synRing bool // steering for links with SYN rings (emitRetWorker)
	ins     []bpf.Instruction
	labels  []int // label -> instruction index, -1 while unbound
	fixups  []fixup
}

type fixup struct {
	at          int // index of the jump instruction
	taken, skip label
}

func (a *assembler) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

func (a *assembler) bind(l label) { a.labels[l] = len(a.ins) }

func (a *assembler) emit(i bpf.Instruction) { a.ins = append(a.ins, i) }

// jumpIf emits "if A <cond> val goto t else goto f".
func (a *assembler) jumpIf(cond bpf.JumpTest, val uint32, t, f label) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), taken: t, skip: f})
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
}

// jump emits an unconditional jump (32-bit offset) to l.
func (a *assembler) jump(l label) {
	a.fixups = append(a.fixups, fixup{at: len(a.ins), taken: l, skip: next})
	a.emit(bpf.Jump{})
}

// offset is the skip count from the jump at index at to label l.
func (a *assembler) offset(at int, l label) (uint32, error) {
	if l == next {
		return 0, nil
	}
	to := a.labels[l]
	if to <= at {
		return 0, fmt.Errorf("afpacket: bpf: jump at %d to unbound or backward label %d", at, l)
	}
	return uint32(to - at - 1), nil
}

func (a *assembler) assemble() ([]bpf.RawInstruction, error) {
	if len(a.ins) > bpfMaxInsns {
		return nil, fmt.Errorf("afpacket: bpf: program needs %d instructions, the kernel takes at most %d", len(a.ins), bpfMaxInsns)
	}
	for _, f := range a.fixups {
		t, err := a.offset(f.at, f.taken)
		if err != nil {
			return nil, err
		}
		switch j := a.ins[f.at].(type) {
		case bpf.Jump:
			j.Skip = t
			a.ins[f.at] = j
		case bpf.JumpIf:
			s, err := a.offset(f.at, f.skip)
			if err != nil {
				return nil, err
			}
			if t > bpfMaxSkip || s > bpfMaxSkip {
				return nil, fmt.Errorf("afpacket: bpf: conditional jump at %d spans more than %d instructions", f.at, bpfMaxSkip)
			}
			j.SkipTrue, j.SkipFalse = uint8(t), uint8(s)
			a.ins[f.at] = j
		}
	}
	raw, err := bpf.Assemble(a.ins)
	if err != nil {
		return nil, fmt.Errorf("afpacket: bpf: %w", err)
	}
	return raw, nil
}
