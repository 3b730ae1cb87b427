package conntrack

// IP is the address type a table is built for: [4]byte for IPv4, [16]byte
// for IPv6. Keys and entries are generic in it, so an IPv4 entry does not
// carry IPv6-sized addresses.
type IP interface{ [4]byte | [16]byte }

// Key is one direction of a flow, as seen on the wire. It has no pointers.
type Key[A IP] struct {
	Src, Dst         A
	SrcPort, DstPort uint16
	Proto            uint8
}

// The instantiations the dataplane uses.
type (
	Key4   = Key[[4]byte]
	Key6   = Key[[16]byte]
	Entry4 = Entry[[4]byte]
	Entry6 = Entry[[16]byte]
	Shard4 = Shard[[4]byte]
	Shard6 = Shard[[16]byte]
)

// Addr is an IP address as the persistence templates and the schedulers
// see it: an IPv4 address is stored IPv4-mapped (::ffff:a.b.c.d, RFC 4291
// section 2.5.5.2).
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
