package conntrack

import (
	"encoding/binary"
	"math/bits"
)

// mix is one multiply-mix round: the two halves of the 128-bit product
// folded together (the "mum" step of wyhash).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashKey hashes the 40 bytes of k (padding excluded) under seed as five
// 64-bit words in three multiply-mix rounds. The seed is random per shard,
// so a client cannot aim its ports at one probe run.
func hashKey(k *Key, seed *[5]uint64) uint64 {
	w0 := binary.LittleEndian.Uint64(k.Src[0:8])
	w1 := binary.LittleEndian.Uint64(k.Src[8:16])
	w2 := binary.LittleEndian.Uint64(k.Dst[0:8])
	w3 := binary.LittleEndian.Uint64(k.Dst[8:16])
	w4 := uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.Proto)<<32
	a := mix(w0^seed[0], w1^seed[1])
	b := mix(w2^seed[2], w3^seed[3])
	return mix(a^w4^seed[4], b^seed[1])
}
