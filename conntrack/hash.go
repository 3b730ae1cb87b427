package conntrack

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// mix is one multiply-mix round: the two halves of the 128-bit product
// folded together (the "mum" step of wyhash).
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hashKey hashes k under seed. An IPv4 key is two 64-bit words and two
// multiply-mix rounds; an IPv6 key five words and three. The seed is
// random per shard, so a client cannot aim its ports at one probe run.
func hashKey[A IP](k *Key[A], seed *[5]uint64) uint64 {
	w4 := uint64(k.SrcPort) | uint64(k.DstPort)<<16 | uint64(k.Proto)<<32
	src := unsafe.Slice((*byte)(unsafe.Pointer(&k.Src)), unsafe.Sizeof(k.Src))
	dst := unsafe.Slice((*byte)(unsafe.Pointer(&k.Dst)), unsafe.Sizeof(k.Dst))
	if len(src) == 4 {
		w := uint64(binary.LittleEndian.Uint32(src)) | uint64(binary.LittleEndian.Uint32(dst))<<32
		return mix(mix(w^seed[0], w4^seed[1])^seed[2], seed[3])
	}
	w0 := binary.LittleEndian.Uint64(src[0:8])
	w1 := binary.LittleEndian.Uint64(src[8:16])
	w2 := binary.LittleEndian.Uint64(dst[0:8])
	w3 := binary.LittleEndian.Uint64(dst[8:16])
	a := mix(w0^seed[0], w1^seed[1])
	b := mix(w2^seed[2], w3^seed[3])
	return mix(a^w4^seed[4], b^seed[1])
}
