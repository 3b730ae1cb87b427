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
// Only frames whose Next Header is TCP or UDP are taken, and ICMPv6 errors
// (RFC 4443 types 1 to 4) whose quoted packet, right after the 8-byte
// ICMPv6 header, is TCP or UDP behind a fixed header: the error is
// matched and steered by the quoted packet's tuple reversed, as IPv4's.
// The dataplane relays those about its connections; the kernel gets a
// copy of the errors (the ingress rules do not drop ICMPv6) and finds no
// socket of its own for them. A frame with extension headers (hop-by-hop,
// routing, destination options, a fragment header), other ICMPv6
// (neighbour discovery, echo) and anything else stays with the kernel:
// classic BPF has no loops to walk a header chain, the dataplane does not
// forward IPv6 fragments yet, and the nftables ingress rules test the
// same fixed Next Header, so the kernel also keeps what the filter leaves.
// Such frames are rare on a LAN; a client whose packets carry extension
// headers reaches the director's own stack, which answers for the VIP (a
// TCP reset) rather than silently losing them.
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
// fixed header, returning 0 otherwise (rejected by a filter, worker 0 for
// steering), and stores its tuple in scratch memory: ports, protocol-port
// keys and the four words of each address (memSrc6, memDst6). An ICMPv6
// error quoting a TCP or UDP packet behind a fixed header gets the quoted
// packet's tuple stored reversed instead (and M[memSYN] 0 on links with
// SYN rings), so the code after it matches and steers the error as a
// packet of the connection flowing towards the error's destination. It
// must be the first code of its section to touch scratch memory (see
// FilterProgram on the kernel's check).
func (a *assembler) emitParse6(h headers) {
	l4 := a.newLabel()
	fail := a.newLabel()
	quote := a.newLabel()
	parsed := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6VerOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ip6VerMask})
	a.jumpIf(bpf.JumpNotEqual, ip6Version, fail, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6NextOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, l4, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, l4, next)
	a.jumpIf(bpf.JumpEqual, protoICMPv6, next, fail)
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
	a.bind(fail)
	a.emit(bpf.RetConstant{Val: 0})
	a.bind(l4)
	a.emitTuple6(h.ipv4+ip6SrcOff, h.ipv4+ip6HdrLen+l4SrcPortOff, h.ipv4+ip6DstOff, h.ipv4+ip6HdrLen+l4DstPortOff, h.ipv4+ip6NextOff)
	if a.synRing {
		a.emitClassifySYN6(h)
	}
	a.bind(parsed)
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
	a.emitParse6(h)
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
}

// emitSteering6 is the fanout program's IPv6 section: a FULLNAT reply (to
// a m.Locals6 address and port) goes to worker dport % workers, a NAT
// reply (from one of m.NATReals6) to SteerHash6(dst address, dst port) %
// workers, anything else to SteerHash6(src address, src port) % workers;
// an ICMPv6 error goes where its quoted packet's reversed tuple goes; and
// a frame the filter would not take to worker 0.
func (a *assembler) emitSteering6(h headers, m *Match, workers uint32) {
	natHash := a.newLabel()
	a.emitParse6(h)
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

// emitClassifySYN6 is emitClassifySYN for an IPv6 frame that passed
// emitParse6 (TCP, if it is TCP, at the fixed offset).
func (a *assembler) emitClassifySYN6(h headers) {
	notSYN := a.newLabel()
	done := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6NextOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, next, notSYN)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6HdrLen + tcpFlagsOff, Size: 1})
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
