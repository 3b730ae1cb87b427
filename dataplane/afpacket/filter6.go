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
// Only frames whose Next Header is TCP or UDP are taken, and fragments
// of TCP or UDP: Next Header 44 with the fragment header (RFC 8200
// section 4.5) right after the fixed header, naming TCP or UDP as its
// own Next Header, the ports 8 bytes further:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|  40
//	|                         Identification                        |  44
//	|          Source Port          |       Destination Port        |  48 (first fragment)
//
// A first fragment (offset 0) is matched and steered by its ports like a
// whole packet; a later one has no ports: it is taken by address (to a
// VIP, from a NAT real) and steered to worker 0, which forwards it as its
// first fragment went (the dataplane's fragment table), as IPv4 later
// fragments are. A frame with other extension headers (hop-by-hop,
// routing, destination options), an ICMPv6 message (neighbour discovery,
// echo, errors) and anything else stays with the kernel: classic BPF has
// no loops to walk a header chain, the dataplane does not relay ICMPv6
// errors yet, and the nftables ingress rules test the same fixed Next
// Header, so the kernel also keeps what the filter leaves. Such frames
// are rare on a LAN; a client whose packets carry extension headers
// reaches the director's own stack, which answers for the VIP (a TCP
// reset) rather than silently losing them.
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

	protoIPv6Frag  = 44     // the fragment header's Next Header value
	ip6FragNextOff = 40     // the fragment header's Next Header
	ip6FragOffOff  = 42     // its offset (13 bits, in 8-byte units) and M flag
	ip6FragOffMask = 0xfff8 // the offset bits
	ip6FragHdrLen  = 8
	memProto6      = 7 // scratch: the transport protocol of an IPv6 frame
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
// fixed header, or a fragment header naming TCP or UDP, returning 0
// otherwise (rejected by a filter, worker 0 for steering); it jumps to
// later for a fragment after the first, and for the rest stores the ports
// and protocol-port keys in scratch memory (the addresses are read from
// the frame where they are needed). It must be the first code of its
// section to touch scratch memory, and later must be bound after the code
// that reads it (see FilterProgram on the kernel's check).
func (a *assembler) emitParse6(h headers, later label) {
	whole := a.newLabel()
	frag := a.newLabel()
	first := a.newLabel()
	isLater := a.newLabel()
	l4 := a.newLabel()
	fail := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6VerOff, Size: 1})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ip6VerMask})
	a.jumpIf(bpf.JumpNotEqual, ip6Version, fail, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6NextOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, whole, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, whole, next)
	a.jumpIf(bpf.JumpEqual, protoIPv6Frag, frag, fail)
	a.bind(frag)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6FragOffOff, Size: 2})
	a.jumpIf(bpf.JumpBitsSet, ip6FragOffMask, isLater, next)
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6FragNextOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, first, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, first, fail)
	a.bind(fail)
	a.emit(bpf.RetConstant{Val: 0})
	a.bind(isLater)
	a.jump(later) // later is further than a conditional jump reaches
	a.bind(first)
	// A first fragment: the ports are behind the fragment header.
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProto6})
	a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: ip6FragHdrLen})
	a.jump(l4)
	a.bind(whole)
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProto6})
	a.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
	a.bind(l4)
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + ip6HdrLen + l4SrcPortOff, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memSrcPort})
	a.emit(bpf.LoadIndirect{Off: h.ipv4 + ip6HdrLen + l4DstPortOff, Size: 2})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memDstPort})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memProto6})
	a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 16})
	a.emit(bpf.TAX{})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memSrcPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoSport})
	a.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memDstPort})
	a.emit(bpf.ALUOpX{Op: bpf.ALUOpOr})
	a.emit(bpf.StoreScratch{Src: bpf.RegA, N: memProtoDport})
}

// emitEndpointGroup6 emits "if the address at addrOff (in the frame) is
// g.addr && M[keyMem] in g.keys { hit() }", falling through otherwise.
func (a *assembler) emitEndpointGroup6(addrOff uint32, keyMem int, g endpointGroup6, hit func()) {
	miss := a.newLabel()
	matched := a.newLabel()
	for i := range ip6AddrWords {
		a.emit(bpf.LoadAbsolute{Off: addrOff + uint32(4*i), Size: 4})
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
// frame (or first fragment) to one of m.VIPs6 or from one of m.NATReals6,
// and a later fragment of TCP or UDP to one of their VIP addresses or
// from one of their NAT real addresses (emitLaterMatch6); reject the
// rest.
func (a *assembler) emitFilter6(h headers, m *Match) {
	later := a.newLabel()
	a.emitParse6(h, later)
	accept := func() { a.emit(bpf.RetConstant{Val: Snaplen}) }
	for _, g := range groupEndpoints6(m.VIPs6) {
		a.emitEndpointGroup6(h.ipv4+ip6DstOff, memProtoDport, g, accept)
	}
	for _, g := range groupEndpoints6(m.NATReals6) {
		a.emitEndpointGroup6(h.ipv4+ip6SrcOff, memProtoSport, g, accept)
	}
	a.emit(bpf.RetConstant{Val: 0})
	a.bind(later)
	a.emitLaterMatch6(h, m)
}

// fragAddrs6 are the addresses a later IPv6 fragment is taken for: to
// (dst) a VIP, from (src) a NAT real; sorted, without duplicates.
func fragAddrs6(m *Match) (dst, src [][16]byte) {
	addrs := func(eps []Endpoint6) [][16]byte {
		var out [][16]byte
		for _, e := range eps {
			out = append(out, e.Addr)
		}
		slices.SortFunc(out, func(x, y [16]byte) int { return slices.Compare(x[:], y[:]) })
		return slices.Compact(out)
	}
	return addrs(m.VIPs6), addrs(m.NATReals6)
}

// emitLaterMatch6 accepts a later fragment (no ports to match) of TCP or
// UDP going to one of fragAddrs6's destinations or coming from one of its
// sources, and rejects the rest. It reads no scratch memory.
func (a *assembler) emitLaterMatch6(h headers, m *Match) {
	ok := a.newLabel()
	reject := a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: h.ipv4 + ip6FragNextOff, Size: 1})
	a.jumpIf(bpf.JumpEqual, protoTCP, ok, next)
	a.jumpIf(bpf.JumpEqual, protoUDP, ok, reject)
	a.bind(reject)
	a.emit(bpf.RetConstant{Val: 0})
	a.bind(ok)
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

// emitSteering6 is the fanout program's IPv6 section: a NAT reply (from
// one of m.NATReals6) goes to SteerHash6(dst address, dst port) % workers,
// anything else to SteerHash6(src address, src port) % workers (a first
// fragment by the ports behind its fragment header), and a later
// fragment, or a frame the filter would not take, to worker 0.
func (a *assembler) emitSteering6(h headers, m *Match, workers uint32) {
	natHash := a.newLabel()
	later := a.newLabel()
	a.emitParse6(h, later)
	if a.synRing {
		a.emitClassifySYN6(h)
	}
	for _, g := range groupEndpoints6(m.NATReals6) {
		a.emitEndpointGroup6(h.ipv4+ip6SrcOff, memProtoSport, g, func() { a.jump(natHash) })
	}
	a.emitFold6(h.ipv4+ip6SrcOff, memSrc)
	a.emitSteerHash(memSrc, memSrcPort, workers)
	a.bind(natHash)
	a.emitFold6(h.ipv4+ip6DstOff, memDst)
	a.emitSteerHash(memDst, memDstPort, workers)
	// Later fragments: worker 0's main ring, which forwards them by
	// their first fragment's decision (the dataplane's fragment table).
	a.bind(later)
	a.emit(bpf.RetConstant{Val: 0})
}

// emitFold6 stores fold6 of the address at off in M[mem].
func (a *assembler) emitFold6(off uint32, mem int) {
	a.emit(bpf.LoadAbsolute{Off: off, Size: 4})
	for i := 1; i < ip6AddrWords; i++ {
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: steerMulAddr})
		a.emit(bpf.TAX{})
		a.emit(bpf.LoadAbsolute{Off: off + uint32(4*i), Size: 4})
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
