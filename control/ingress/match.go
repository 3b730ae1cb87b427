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
	chainName   = "ingress"
	setVIPs     = "vips"
	setNATReals = "natreals"
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

// portRange is a FULLNAT local range of one protocol: one rule each.
type portRange struct {
	addr   [4]byte
	proto  uint8
	lo, hi uint16
}

// elements is a Match compiled to the contents of the two sets, sorted and
// without duplicates, and to the local port ranges, merged.
type elements struct {
	vips, natReals []key
	locals         []portRange
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
