package afpacket

import (
	"cmp"
	"encoding/binary"
	"slices"

	"golang.org/x/net/bpf"
)

// The IPv6 part of the programs. The fixed IPv6 header (RFC 8200 section
// 3), offsets from its first byte; the TCP or UDP header follows at 40
// when Next Header names it (no extension headers):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |  0
//	|         Payload Length        |  Next Header  |   Hop Limit   |  4
//	|                Source Address (16)                            |  8
//	|             Destination Address (16)                          |  24
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |  40
//
// Frames whose Next Header is TCP or UDP are taken; fragments of TCP
// or UDP, Next Header 44 with the fragment header (RFC 8200 section 4.5)
// right after the fixed header, naming TCP or UDP as its own Next Header,
// a first fragment's ports 8 bytes further:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|  40
//	|                         Identification                        |  44
//	|          Source Port          |       Destination Port        |  48 (first fragment)
//
// and the same behind extension headers (section 4): up to three of
// hop-by-hop, destination options and routing with Segments Left 0, each
// type at most once and hop-by-hop only first (ExtensionChains6), every
// one Next Header, length in 8-byte units beyond the first 8, and for
// routing its type and Segments Left:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  | Routing Type  | Segments Left |  40 (the first)
//	|                 (options or type-specific data)               |
//
// and ICMPv6 errors (RFC 4443 types 1 to 4) whose quoted packet, right
// after the 8-byte ICMPv6 header, is TCP or UDP behind a fixed header:
// the error is matched and steered by the quoted packet's tuple reversed,
// as IPv4's. The dataplane relays those about its connections; the kernel
// gets a copy of the errors (the ingress rules do not drop ICMPv6) and
// finds no socket of its own for them. A first fragment is matched and
// steered by its ports like a whole packet; a later one has no ports: it
// is taken by address (to a VIP or local address, from a NAT real) and
// steered to worker 0, which forwards it as its first fragment went (the
// dataplane's fragment table), as IPv4 later fragments are. Classic BPF
// has no loops: the extension headers are walked by unrolled code
// (emitExtChain6), which runs only when the fixed Next Header is none of
// TCP, UDP, fragment and ICMPv6, so that a frame without them costs what
// it did before. The nftables ingress rules (control/ingress) drop
// exactly what the filter takes, chain by chain, from the same list;
// nftables can follow a chain only while no type repeats (it finds a
// header by type), which is the bound. Other chains (a fourth header, a
// type twice, routing with segments left, AH, ESP, destination options
// behind a fragment header), ICMPv6 errors behind extension headers, other
// ICMPv6 (neighbour discovery, echo) and anything else stay with the
// kernel, which the ingress rules let have them: a client whose packets
// carry such a chain reaches the director's own stack, which answers for
// the VIP (a TCP reset), and the ingress table's last rules count them.
const (
	etherTypeV6  = 0x86dd
	ip6VerOff    = 0 // version in the high nibble
	ip6NextOff   = 6 // Next Header
	ip6SrcOff    = 8
	ip6DstOff    = 24
	ip6HdrLen    = 40
	ip6Version   = 0x60
	ip6VerMask   = 0xf0
	ip6AddrWords = 4

	// An ICMPv6 error (RFC 4443 section 2.1) behind the fixed header:
	// type, then after the 8-byte ICMPv6 header the invoking packet.
	protoICMPv6      = 58
	icmp6TypeOff     = ip6HdrLen
	icmp6ErrorMin    = 1 // destination unreachable
	icmp6ErrorMax    = 4 // parameter problem
	icmp6QuoteOff    = ip6HdrLen + 8
	icmp6QuoteL4Off  = icmp6QuoteOff + ip6HdrLen
	icmp6QuoteSrcOff = icmp6QuoteOff + ip6SrcOff
	icmp6QuoteDstOff = icmp6QuoteOff + ip6DstOff

	// A fragment header (RFC 8200 section 4.5) right after the fixed
	// header: its Next Header, then the offset and M flag; a first
	// fragment's ports follow it.
	protoIPv6Frag  = 44
	ip6FragNextOff = ip6HdrLen
	ip6FragOffOff  = ip6HdrLen + 2
	ip6FragOffMask = 0xfff8 // the offset bits
	ip6FragL4Off   = ip6HdrLen + 8
)

// SteerHash6 is SteerHash for an IPv6 client: the address is folded into
// 32 bits first, word by word in network byte order (h = h*m ^ word, with
// SteerHash's address multiplier), as SteeringProgram folds it.
func SteerHash6(ip [16]byte, port uint16) uint32 {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], fold6(ip))
	return SteerHash(a, port)
}

func fold6(ip [16]byte) uint32 {
	h := binary.BigEndian.Uint32(ip[0:])
	for i := 4; i < 16; i += 4 {
		h = h*steerMulAddr ^ binary.BigEndian.Uint32(ip[i:])
	}
	return h
}

// endpointGroup6 is endpointGroup for IPv6: keys sharing one address.
type endpointGroup6 struct {
	addr [16]byte
	keys []uint32
}

// groupEndpoints6 sorts and deduplicates endpoints and groups them by
// address, at most maxKeysPerGroup keys per group.
func groupEndpoints6(eps []Endpoint6) []endpointGroup6 {
	type ak struct {
		addr [16]byte
		key  uint32
	}
	all := make([]ak, 0, len(eps))
	for _, e := range eps {
		all = append(all, ak{e.Addr, uint32(e.Proto)<<16 | uint32(e.Port)})
	}
	slices.SortFunc(all, func(x, y ak) int {
		return cmp.Or(slices.Compare(x.addr[:], y.addr[:]), cmp.Compare(x.key, y.key))
	})
	all = slices.Compact(all)
	var groups []endpointGroup6
	for _, e := range all {
		if n := len(groups); n == 0 || groups[n-1].addr != e.addr || len(groups[n-1].keys) == maxKeysPerGroup {
			groups = append(groups, endpointGroup6{addr: e.addr})
		}
		g := &groups[len(groups)-1]
		g.keys = append(g.keys, e.key)
	}
	return groups
}

// emitJumpIPv6 jumps to v6 for a frame whose EtherType is IPv6 and falls
// through for any other. The IPv6 section is last, further than a
// conditional jump reaches.
func (a *assembler) emitJumpIPv6(h headers, v6 label) {
	other := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.eth + ethTypeOff, Size: 2})
	a.jumpIf(bpf.JumpNotEqual, etherTypeV6, other, next)
	a.jump(v6)
	a.bind(other)
}

// emitParse6 checks that the IPv6 frame carries TCP or UDP right after its
// fixed header or behind one of ExtensionChains6 (or a fragment header
// naming TCP or UDP, there too: a later fragment jumps to later, which
// must be bound after the code that reads scratch memory, with X the
// length of the extension headers before its fragment header), returning
// 0 otherwise (rejected by a filter, worker 0 for steering), and stores its
// tuple in scratch memory: ports, protocol-port keys and the four words of
// each address (memSrc6, memDst6). An ICMPv6 error quoting a TCP or UDP
// packet behind a fixed header gets the quoted packet's tuple stored
// reversed instead (and M[memSYN] 0 on links with SYN rings), so the code
// after it matches and steers the error as a packet of the connection
// flowing towards the error's destination. It must be the first code of
// its section to touch scratch memory (see FilterProgram on the kernel's
// check).
//
// The transport header and the fragment header are read at X plus their
// place behind a fixed header, X being the length of the extension headers
// in front of them. Without extension headers X is 0, as it is at the
// start of every classic BPF program (the kernel clears A and X, and
// nothing before the IPv6 section loads X), so the common case costs no
// instruction more than it did before extension headers were walked: the
// walk (emitExtChain6) only runs after the fixed Next Header is neither
// TCP, UDP, a fragment header nor ICMPv6.
func (a *assembler) emitParse6(h headers, later label) {
	l4 := a.newLabel()
	fail := a.newLabel()
	quote := a.newLabel()
	parsed := a.newLabel()
	frag := a.newLabel()
	first := a.newLabel()
	isFrag := a.newLabel()
	ext := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6VerOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ip6VerMask})
	a.jumpIf(bpf.JumpNotEqual, ip6Version, fail, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6NextOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, l4, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, l4, next)
	a.jumpIf(bpf.JumpEqual, protoIPv6Frag, frag, next)
	a.jumpIf(bpf.JumpEqual, protoICMPv6, next, ext)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + icmp6TypeOff, Size: 1})
	a.jumpIf(bpf.JumpLessThan, icmp6ErrorMin, fail, next)
	a.jumpIf(bpf.JumpGreaterThan, icmp6ErrorMax, fail, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + icmp6QuoteOff + ip6VerOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ip6VerMask})
	a.jumpIf(bpf.JumpNotEqual, ip6Version, fail, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + icmp6QuoteOff + ip6NextOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, quote, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, quote, fail)
	a.bind(quote)
	// The quoted packet went the other way: its destination is the
	// tuple's source.
	q := h.ipv4 + icmp6QuoteOff
	a.emitTuple6(q+ip6DstOff, q+ip6HdrLen+l4DstPortOff, q+ip6SrcOff, q+ip6HdrLen+l4SrcPortOff, q+ip6NextOff)
	if a.synRing {
		a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSYN})
	}
	a.jump(parsed)
	// Extension headers: walked to TCP, UDP or a fragment header, which
	// the code below reads at X.
	a.bind(ext)
	a.emitExtChain6(h, l4, frag, fail)
	// A fragment of TCP or UDP: the first is matched and steered by the
	// ports behind its fragment header, a later one goes to later.
	a.bind(frag)
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + ip6FragNextOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, isFrag, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, isFrag, fail)
	a.bind(isFrag)
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + ip6FragOffOff, Size: 2})
	a.jumpIf(bpf.JumpBitsSet, ip6FragOffMask, next, first)
	a.jump(later) // later is further than a conditional jump reaches
	a.bind(first)
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + ip6FragNextOff, Size: 1})
	a.emitTuple6X(h, ip6FragL4Off, false)
	if a.synRing {
		a.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0}) // a fragmented SYN goes to the main ring
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSYN})
	}
	a.jump(parsed)
	a.bind(fail)
	a.emit(bpf.RetConstant{Val: 0})
	a.bind(l4)
	a.emitTuple6X(h, ip6HdrLen, a.synRing)
	a.bind(parsed)
}

// maxExtHeaders6 bounds the extension headers the programs walk in front
// of the transport or fragment header: hop-by-hop, destination options
// and routing (segments left 0), each at most once, hop-by-hop only
// first (RFC 8200 section 4.1), which is all three at most. The bound
// comes from the ingress rules, which must drop exactly what the filter
// takes: nftables finds an extension header by its type (exthdr, the
// kernel's ipv6_find_hdr), the first of that type, so a chain is
// something it can follow only while no type repeats. A real stack sends
// at most one of each ahead of the upper layer (destination options twice
// only around a routing header, which hosts do not send to a VIP).
const maxExtHeaders6 = 3

// Extension header types the programs walk (RFC 8200 section 4) and the
// fields of one they read, counted from its first byte: Next Header, the
// length in 8-byte units not counting the first 8, and a routing header's
// Segments Left.
const (
	protoHopByHop = 0
	protoRouting  = 43
	protoDstOpts  = 60
	extNextOff    = 0
	extLenOff     = 1
	extLenShift   = 3 // 8-byte units
	extUnit       = 8
	rtSegLeftOff  = 3
)

// ExtensionChains6 lists the chains of IPv6 extension headers (their
// Next Header values, in order) that the socket filter and the steering
// program walk to a TCP, UDP or fragment header: the nftables ingress
// rules (control/ingress) are generated from the same list, so that they
// drop exactly the frames the filter takes. A routing header must have
// Segments Left 0. It allocates a new list on every call.
func ExtensionChains6() [][]uint8 {
	var out [][]uint8
	var grow func(chain []uint8)
	grow = func(chain []uint8) {
		if len(chain) > 0 {
			out = append(out, slices.Clone(chain))
		}
		if len(chain) == maxExtHeaders6 {
			return
		}
		for _, t := range []uint8{protoHopByHop, protoDstOpts, protoRouting} {
			if (t == protoHopByHop && len(chain) > 0) || slices.Contains(chain, t) {
				continue
			}
			grow(append(chain, t))
		}
	}
	grow(nil)
	return out
}

// emitExtChain6 walks the extension headers of ExtensionChains6 for a
// frame whose fixed Next Header, in A, is none of those the caller tests
// first, with X 0. Classic BPF has no loops: each of the three places a
// header may take is unrolled, and goes on to the next place, or to l4
// (TCP or UDP, A holding which) or frag (a fragment header) with X the
// length of the extension headers; anything else goes to fail. A header
// type may not repeat, which the places check against the first two
// headers' types at their fixed offsets (the fixed header's Next Header
// at 6, the first extension header's at 40): the first place takes
// hop-by-hop, destination options or routing; the second destination
// options or routing, not the first's type; the third only behind a
// hop-by-hop header and not the second's type. M[memNext6] holds a Next
// Header while X moves past its header. About 55 instructions, none of
// them on the path of a frame without extension headers.
func (a *assembler) emitExtChain6(h headers, l4, frag, fail label) {
	exits := func(last label) {
		a.jumpIf(bpf.JumpEqual, protoTCP, l4, next)
		a.jumpIf(bpf.JumpEqual, protoUDP, l4, next)
		a.jumpIf(bpf.JumpEqual, protoIPv6Frag, frag, last)
	}
	// The first place: X is 0, so its fields are at fixed offsets.
	adv1 := a.newLabel()
	place2 := a.newLabel()
	a.jumpIf(bpf.JumpEqual, protoHopByHop, adv1, next)
	a.jumpIf(bpf.JumpEqual, protoDstOpts, adv1, next)
	a.jumpIf(bpf.JumpEqual, protoRouting, next, fail)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6HdrLen + rtSegLeftOff, Size: 1})
	a.jumpIf(bpf.JumpNotEqual, 0, fail, next)
	a.bind(adv1)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6HdrLen + extLenOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: extLenShift})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: extUnit})
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6HdrLen + extNextOff, Size: 1})
	exits(place2)
	// The second and third places: destination options or routing, of
	// a type not seen at the fixed offset prev.
	place := func(prev uint32, hopByHopFirst bool, after label) {
		dst := a.newLabel()
		rt := a.newLabel()
		adv := a.newLabel()
		a.jumpIf(bpf.JumpEqual, protoDstOpts, dst, next)
		a.jumpIf(bpf.JumpEqual, protoRouting, rt, fail)
		a.bind(rt)
		a.emit(bpf.LoadIndirect{Off: h.ipv4 + ip6HdrLen + rtSegLeftOff, Size: 1})
		a.jumpIf(bpf.JumpNotEqual, 0, fail, next)
		a.emit(bpf.LoadAbsolute{Off: h.ipv4 + prev, Size: 1})
		a.jumpIf(bpf.JumpEqual, protoRouting, fail, adv)
		a.bind(dst)
		a.emit(bpf.LoadAbsolute{Off: h.ipv4 + prev, Size: 1})
		a.jumpIf(bpf.JumpEqual, protoDstOpts, fail, next)
		a.bind(adv)
		if hopByHopFirst {
			// Three distinct types: the first is hop-by-hop.
			a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6NextOff, Size: 1})
			a.jumpIf(bpf.JumpEqual, protoHopByHop, next, fail)
		}
		a.emit(bpf.LoadIndirect{Off: h.ipv4 + ip6HdrLen + extNextOff, Size: 1})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memNext6})
		a.emit(bpf.LoadIndirect{Off: h.ipv4 + ip6HdrLen + extLenOff, Size: 1})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: extLenShift})
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: extUnit})
		a.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
		a.emit(bpf.TAX{})
		a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memNext6})
		exits(after)
	}
	place3 := a.newLabel()
	a.bind(place2)
	place(ip6NextOff, false, place3)
	a.bind(place3)
	place(ip6HdrLen+extNextOff, true, fail)
}

// emitTuple6 stores the tuple whose source address and port are read at
// src and sport, destination at dst and dport, and protocol at proto.
func (a *assembler) emitTuple6(src, sport, dst, dport, proto uint32) {
	for i := range ip6AddrWords {
		a.emit(bpf.LoadAbsolute{Off: src + uint32(4*i), Size: 4})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrc6 + i})
		a.emit(bpf.LoadAbsolute{Off: dst + uint32(4*i), Size: 4})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDst6 + i})
	}
	a.emit(bpf.LoadAbsolute{Off: sport, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrcPort})
	a.emit(bpf.LoadAbsolute{Off: dport, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDstPort})
	a.emit(bpf.LoadAbsolute{Off: proto, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 16})
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memSrcPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoSport})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memDstPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoDport})
}

// emitTuple6X stores the tuple of a TCP or UDP packet whose protocol is in
// A and whose ports are at X+l4 from the IPv6 header (X the length of the
// extension headers in front of them, l4 where they would be without),
// and on links with SYN rings (syn) whether it opens a connection.
func (a *assembler) emitTuple6X(h headers, l4 uint32, syn bool) {
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 16})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memNext6}) // protocol<<16
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + l4 + l4SrcPortOff, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrcPort})
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + l4 + l4DstPortOff, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDstPort})
	if syn {
		a.emitClassifySYN6(h, l4)
	}
	for i := range ip6AddrWords {
		a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6SrcOff + uint32(4*i), Size: 4})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrc6 + i})
		a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6DstOff + uint32(4*i), Size: 4})
		a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDst6 + i})
	}
	a.emit(bpf.LoadScratch{Dst: bpf.RegX, N: memNext6})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memSrcPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoSport})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memDstPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoDport})
}

// emitLocalRange6 emits "if the address at M[addrMem..addrMem+3] is r.Addr
// && r.PortLo <= M[memDstPort] <= r.PortHi { hit() }" with the destination
// port in A when hit runs.
func (a *assembler) emitLocalRange6(addrMem int, r LocalRange6, hit func()) {
	miss := a.newLabel()
	for i := range ip6AddrWords {
		a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: addrMem + i})
		a.jumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(r.Addr[4*i:]), next, miss)
	}
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memDstPort})
	a.jumpIf(bpf.JumpGreaterOrEqual, uint32(r.PortLo), next, miss)
	a.jumpIf(bpf.JumpGreaterThan, uint32(r.PortHi), miss, next)
	hit()
	a.bind(miss)
}

// emitEndpointGroup6 emits "if the address at M[addrMem..addrMem+3] is
// g.addr && M[keyMem] in g.keys { hit() }", falling through otherwise.
func (a *assembler) emitEndpointGroup6(addrMem, keyMem int, g endpointGroup6, hit func()) {
	miss := a.newLabel()
	matched := a.newLabel()
	for i := range ip6AddrWords {
		a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: addrMem + i})
		a.jumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(g.addr[4*i:]), next, miss)
	}
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

// emitFilter6 is the socket filter's IPv6 section: accept a TCP or UDP
// frame to one of m.VIPs6, from one of m.NATReals6 or to a m.Locals6
// address and port, and an ICMPv6 error whose quoted packet's reversed
// tuple is such a frame's; reject the rest.
func (a *assembler) emitFilter6(h headers, m *Match) {
	later := a.newLabel()
	a.emitParse6(h, later)
	accept := func() { a.emit(bpf.RetConstant{Val: Snaplen}) }
	for _, g := range groupEndpoints6(m.VIPs6) {
		a.emitEndpointGroup6(memDst6, memProtoDport, g, accept)
	}
	for _, g := range groupEndpoints6(m.NATReals6) {
		a.emitEndpointGroup6(memSrc6, memProtoSport, g, accept)
	}
	for _, r := range m.Locals6 {
		a.emitLocalRange6(memDst6, r, accept)
	}
	a.emit(bpf.RetConstant{Val: 0})
	a.bind(later)
	a.emitLaterMatch6(h, m)
}

// fragAddrs6 are the addresses a later IPv6 fragment is taken for: to
// (dst) a VIP or a FULLNAT local address, from (src) a NAT real; sorted,
// without duplicates.
func fragAddrs6(m *Match) (dst, src [][16]byte) {
	sorted := func(out [][16]byte) [][16]byte {
		slices.SortFunc(out, func(x, y [16]byte) int { return slices.Compare(x[:], y[:]) })
		return slices.Compact(out)
	}
	for _, e := range m.VIPs6 {
		dst = append(dst, e.Addr)
	}
	for _, r := range m.Locals6 {
		dst = append(dst, r.Addr)
	}
	for _, e := range m.NATReals6 {
		src = append(src, e.Addr)
	}
	return sorted(dst), sorted(src)
}

// emitLaterMatch6 accepts a later fragment (no ports to match) of TCP or
// UDP (emitParse6 checked that) going to one of fragAddrs6's destinations
// or coming from one of its sources, and rejects the rest. It reads no
// scratch memory.
func (a *assembler) emitLaterMatch6(h headers, m *Match) {
	// Addresses sharing their first 96 bits (VIPs are usually in one
	// prefix) share the test of those, so that an address costs two
	// instructions more, not nine, of the kernel's 4096.
	test := func(off uint32, list [][16]byte) {
		for i := 0; i < len(list); {
			j := i + 1
			for j < len(list) && j-i < maxKeysPerGroup && [12]byte(list[j][:12]) == [12]byte(list[i][:12]) {
				j++
			}
			miss := a.newLabel()
			hit := a.newLabel()
			for w := range ip6AddrWords - 1 {
				a.emit(bpf.LoadAbsolute{Off: off + uint32(4*w), Size: 4})
				a.jumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(list[i][4*w:]), next, miss)
			}
			a.emit(bpf.LoadAbsolute{Off: off + 12, Size: 4})
			for k := i; k < j; k++ {
				f := next
				if k == j-1 {
					f = miss
				}
				a.jumpIf(bpf.JumpEqual, binary.BigEndian.Uint32(list[k][12:]), hit, f)
			}
			a.bind(hit)
			a.emit(bpf.RetConstant{Val: Snaplen})
			a.bind(miss)
			i = j
		}
	}
	dst, src := fragAddrs6(m)
	test(h.ipv4+ip6DstOff, dst)
	test(h.ipv4+ip6SrcOff, src)
	a.emit(bpf.RetConstant{Val: 0})
}

// emitSteering6 is the fanout program's IPv6 section: a FULLNAT reply (to
// a m.Locals6 address and port) goes to worker dport % workers, a NAT
// reply (from one of m.NATReals6) to SteerHash6(dst address, dst port) %
// workers, anything else to SteerHash6(src address, src port) % workers;
// an ICMPv6 error goes where its quoted packet's reversed tuple goes; and
// a frame the filter would not take to worker 0.
func (a *assembler) emitSteering6(h headers, m *Match, workers uint32) {
	natHash := a.newLabel()
	later := a.newLabel()
	a.emitParse6(h, later)
	for _, r := range m.Locals6 {
		a.emitLocalRange6(memDst6, r, func() {
			a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: workers})
			a.emitRetWorker()
		})
	}
	for _, g := range groupEndpoints6(m.NATReals6) {
		a.emitEndpointGroup6(memSrc6, memProtoSport, g, func() { a.jump(natHash) })
	}
	a.emitFold6(memSrc6, memSrc)
	a.emitSteerHash(memSrc, memSrcPort, workers)
	a.bind(natHash)
	a.emitFold6(memDst6, memDst)
	a.emitSteerHash(memDst, memDstPort, workers)
	// Later fragments: worker 0's main ring, which forwards them by
	// their first fragment's decision (the dataplane's fragment table).
	a.bind(later)
	a.emit(bpf.RetConstant{Val: 0})
}

// emitFold6 stores fold6 of the address at M[addrMem..addrMem+3] in M[mem].
func (a *assembler) emitFold6(addrMem, mem int) {
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: addrMem})
	for i := 1; i < ip6AddrWords; i++ {
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: steerMulAddr})
		a.emit(bpf.LoadScratch{Dst: bpf.RegX, N: addrMem + i})
		a.emit(bpf.ALUOpX{Op: bpf.ALUOpXor})
	}
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: mem})
}

// emitClassifySYN6 is emitClassifySYN for an IPv6 frame in emitTuple6X:
// M[memNext6] holds its protocol<<16, its TCP header (if it is TCP) is at
// X+l4.
func (a *assembler) emitClassifySYN6(h headers, l4 uint32) {
	notSYN := a.newLabel()
	done := a.newLabel()
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memNext6})
	a.jumpIf(bpf.JumpEqual, protoTCP<<16, next, notSYN)
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + l4 + tcpFlagsOff, Size: 1})
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
