package schedule

import "encoding/binary"

// goldenRatio32 is GOLDEN_RATIO_32 of include/linux/hash.h, the
// multiplier of hash_32.
const goldenRatio32 = 0x61C88647

// IP protocol numbers whose source port sh and mh may hash (the kernel's
// ip_vs_sh_get_port and ip_vs_mh_get_port: ports sit at the same offset
// in all three).
const (
	protoTCP  = 6
	protoUDP  = 17
	protoSCTP = 132
)

// hash32 is the kernel's hash_32: the top bits of val * GOLDEN_RATIO_32.
func hash32(val uint32, bits uint) uint32 {
	return (val * goldenRatio32) >> (32 - bits)
}

// fold returns the 32 bits IPVS hashes for an address in host order (the
// kernel's ntohl(addr_fold)): an IPv4-mapped address (::ffff:a.b.c.d) is
// the IPv4 service's addr->ip, anything else is folded as an IPv6
// service folds it, the XOR of its four 32-bit words.
func fold(a *[16]byte) uint32 {
	w0 := binary.BigEndian.Uint32(a[0:4])
	w1 := binary.BigEndian.Uint32(a[4:8])
	w2 := binary.BigEndian.Uint32(a[8:12])
	w3 := binary.BigEndian.Uint32(a[12:16])
	if w0 == 0 && w1 == 0 && w2 == 0xffff {
		return w3
	}
	return w0 ^ w1 ^ w2 ^ w3
}

// hashedPort is the source port sh and mh add to the address when asked
// to (sh-port, mh-port): the port for TCP, UDP and SCTP, 0 for any other
// protocol, as the kernel's *_get_port.
func hashedPort(f *Flow) uint32 {
	switch f.Proto {
	case protoTCP, protoUDP, protoSCTP:
		return uint32(f.SrcPort)
	}
	return 0
}

// mix64 is the SplitMix64 finalizer (Steele, Lea and Flood, "Fast
// splittable pseudorandom number generators", OOPSLA 2014): a bijection
// of uint64 whose every output bit depends on every input bit. mh uses it
// where the kernel uses hsiphash with fixed keys; fixed, so that every
// director with the same configuration builds the same table.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
