package header_test

import (
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// TestSetWord32MatchesRecompute: the incremental update of a 32-bit
// option word, at every even and odd offset of the options, gives the
// checksum a full recompute gives.
func TestSetWord32MatchesRecompute(t *testing.T) {
	src, dst := [4]byte{10, 10, 0, 2}, [4]byte{10, 20, 0, 11}
	for off := header.TCPMinLen; off+4 <= 60; off++ {
		for _, d := range []uint32{1, 0x9e3779b9, 0xffff_ffff, 0x0001_0000} {
			b := make([]byte, 61) // an odd-length segment too
			for i := range b {
				b[i] = byte(i*37 + off)
			}
			tcp := header.TCP(b)
			tcp[12] = 15 << 4 // data offset: 60 bytes
			tcp.SetChecksum(tcp.CalculateChecksum(src, dst))
			tcp.SetWord32WithChecksumUpdate(off, tcp.Word32(off)+d)
			if got, want := tcp.Checksum(), tcp.CalculateChecksum(src, dst); got != want {
				t.Errorf("offset %d, +%#x: incremental %#04x, recomputed %#04x", off, d, got, want)
			}
		}
	}
}
