package conntrack

// Addr is an IP address; an IPv4 address is stored IPv4-mapped
// (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2).
type Addr [16]byte

// v4Prefix is the first 12 bytes of an IPv4-mapped IPv6 address.
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// AddrFrom4 returns a as an IPv4-mapped Addr.
func AddrFrom4(a [4]byte) Addr {
	var x Addr
	copy(x[:12], v4Prefix[:])
	copy(x[12:], a[:])
	return x
}

// As4 returns the IPv4 address in the last four bytes of a, which is
// meaningful only if a is IPv4-mapped.
func (a Addr) As4() [4]byte {
	return [4]byte(a[12:16])
}

// Key is one direction of a flow, as seen on the wire. It is 40 bytes with
// no pointers; the padding is ignored by == and by the shard's hash.
type Key struct {
	Src, Dst         Addr
	SrcPort, DstPort uint16
	Proto            uint8
	_                [3]byte
}
