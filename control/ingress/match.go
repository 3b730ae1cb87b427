package ingress

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// TableName is the name of the netdev table gvsd owns.
const TableName = "gvs"

// Names inside the table.
const (
	chainName    = "ingress"
	setVIPs      = "vips"
	setNATReals  = "natreals"
	setVIPs6     = "vips6"
	setNATReals6 = "natreals6"
)

// IP protocol numbers (RFC 790, IANA "Assigned Internet Protocol Numbers").
const (
	protoTCP = 6
	protoUDP = 17
)

// A set key is the concatenation ipv4_addr . inet_proto . inet_service as
// nft lays it out in registers: each field starts on a 4-byte boundary and
// the padding is zero.
//
//	0               4               8              12
//	+---------------+---+-----------+-------+-------+
//	| IPv4 address  |pro|  padding  | port  |  pad  |
//	+---------------+---+-----------+-------+-------+
const (
	keyAddrOff  = 0
	keyProtoOff = 4
	keyPortOff  = 8
	keyLen      = 12
)

type key [keyLen]byte

func makeKey(proto uint8, addr [4]byte, port uint16) key {
	var k key
	copy(k[keyAddrOff:], addr[:])
	k[keyProtoOff] = proto
	binary.BigEndian.PutUint16(k[keyPortOff:], port)
	return k
}

// A key of the IPv6 sets is ip6_addr . inet_proto . inet_service: the
// address fills the 16-byte NFT_REG_1, the others follow as above.
//
//	0                              16              20              24
//	+------------------------------+---+-----------+-------+-------+
//	| IPv6 address                 |pro|  padding  | port  |  pad  |
//	+------------------------------+---+-----------+-------+-------+
const (
	key6ProtoOff = 16
	key6PortOff  = 20
	key6Len      = 24
)

type key6 [key6Len]byte

func makeKey6(proto uint8, addr [16]byte, port uint16) key6 {
	var k key6
	copy(k[:], addr[:])
	k[key6ProtoOff] = proto
	binary.BigEndian.PutUint16(k[key6PortOff:], port)
	return k
}

// portRange is a FULLNAT local range of one protocol: one rule each.
type portRange struct {
	addr   [4]byte
	proto  uint8
	lo, hi uint16
}

// portRange6 is portRange for an IPv6 local address.
type portRange6 struct {
	addr   [16]byte
	proto  uint8
	lo, hi uint16
}

// elements is a Match compiled to the contents of the two sets, sorted and
// without duplicates, and to the local port ranges, merged.
type elements struct {
	vips, natReals   []key
	vips6, natReals6 []key6
	locals           []portRange
	locals6          []portRange6
	own              [][4]byte
	own6             [][16]byte
}

// compile validates m and turns it into set elements and local port
// ranges. A nil m has none. Overlapping or adjacent port ranges of one
// local address are merged (per-worker port slices become one range).
func compile(m *afpacket.Match) (elements, error) {
	var e elements
	if m == nil {
		return e, nil
	}
	var err error
	if e.vips, err = endpointKeys("VIPs", m.VIPs); err != nil {
		return e, err
	}
	if e.natReals, err = endpointKeys("NATReals", m.NATReals); err != nil {
		return e, err
	}
	if e.vips6, err = endpointKeys6("VIPs6", m.VIPs6); err != nil {
		return e, err
	}
	if e.natReals6, err = endpointKeys6("NATReals6", m.NATReals6); err != nil {
		return e, err
	}

	e.own = slices.Clone(m.Own)
	slices.SortFunc(e.own, func(a, b [4]byte) int { return slices.Compare(a[:], b[:]) })
	e.own = slices.Compact(e.own)
	e.own6 = slices.Clone(m.Own6)
	slices.SortFunc(e.own6, func(a, b [16]byte) int { return slices.Compare(a[:], b[:]) })
	e.own6 = slices.Compact(e.own6)
	locals := slices.Clone(m.Locals)
	for i, l := range locals {
		if l.PortLo > l.PortHi {
			return e, fmt.Errorf("Locals[%d]: port range %d-%d is reversed", i, l.PortLo, l.PortHi)
		}
	}
	slices.SortFunc(locals, func(a, b afpacket.LocalRange) int {
		return cmp.Or(slices.Compare(a.Addr[:], b.Addr[:]), cmp.Compare(a.PortLo, b.PortLo))
	})
	var merged []afpacket.LocalRange
	for _, l := range locals {
		if n := len(merged); n > 0 && merged[n-1].Addr == l.Addr && uint32(l.PortLo) <= uint32(merged[n-1].PortHi)+1 {
			merged[n-1].PortHi = max(merged[n-1].PortHi, l.PortHi)
			continue
		}
		merged = append(merged, l)
	}
	for _, proto := range []uint8{protoTCP, protoUDP} {
		for _, l := range merged {
			e.locals = append(e.locals, portRange{addr: l.Addr, proto: proto, lo: l.PortLo, hi: l.PortHi})
		}
	}
	locals6 := slices.Clone(m.Locals6)
	for i, l := range locals6 {
		if l.PortLo > l.PortHi {
			return e, fmt.Errorf("Locals6[%d]: port range %d-%d is reversed", i, l.PortLo, l.PortHi)
		}
	}
	slices.SortFunc(locals6, func(a, b afpacket.LocalRange6) int {
		return cmp.Or(slices.Compare(a.Addr[:], b.Addr[:]), cmp.Compare(a.PortLo, b.PortLo))
	})
	var merged6 []afpacket.LocalRange6
	for _, l := range locals6 {
		if n := len(merged6); n > 0 && merged6[n-1].Addr == l.Addr && uint32(l.PortLo) <= uint32(merged6[n-1].PortHi)+1 {
			merged6[n-1].PortHi = max(merged6[n-1].PortHi, l.PortHi)
			continue
		}
		merged6 = append(merged6, l)
	}
	for _, proto := range []uint8{protoTCP, protoUDP} {
		for _, l := range merged6 {
			e.locals6 = append(e.locals6, portRange6{addr: l.Addr, proto: proto, lo: l.PortLo, hi: l.PortHi})
		}
	}
	return e, nil
}

func endpointKeys(field string, eps []afpacket.Endpoint) ([]key, error) {
	keys := make([]key, 0, len(eps))
	for i, ep := range eps {
		if ep.Proto != protoTCP && ep.Proto != protoUDP {
			return nil, fmt.Errorf("%s[%d]: protocol %d is neither TCP (6) nor UDP (17)", field, i, ep.Proto)
		}
		keys = append(keys, makeKey(ep.Proto, ep.Addr, ep.Port))
	}
	slices.SortFunc(keys, func(a, b key) int { return slices.Compare(a[:], b[:]) })
	return slices.Compact(keys), nil
}

func endpointKeys6(field string, eps []afpacket.Endpoint6) ([]key6, error) {
	keys := make([]key6, 0, len(eps))
	for i, ep := range eps {
		if ep.Proto != protoTCP && ep.Proto != protoUDP {
			return nil, fmt.Errorf("%s[%d]: protocol %d is neither TCP (6) nor UDP (17)", field, i, ep.Proto)
		}
		keys = append(keys, makeKey6(ep.Proto, ep.Addr, ep.Port))
	}
	slices.SortFunc(keys, func(a, b key6) int { return slices.Compare(a[:], b[:]) })
	return slices.Compact(keys), nil
}
