package header_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 section 3: the sum of these bytes is ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := header.Checksum(b, 0); got != 0xddf2 {
		t.Fatalf("Checksum = %#04x, want 0xddf2", got)
	}
}

func TestChecksumEdgeCases(t *testing.T) {
	ones := make([]byte, 1500)
	for i := range ones {
		ones[i] = 0xff
	}
	for _, tt := range []struct {
		name    string
		b       []byte
		initial uint16
		want    uint16
	}{
		{"empty", nil, 0, 0},
		{"empty keeps initial", nil, 0x1234, 0x1234},
		{"all zero stays zero", make([]byte, 99), 0, 0},
		{"odd byte is high byte", []byte{0xab}, 0, 0xab00},
		{"three bytes", []byte{0x01, 0x02, 0x03}, 0, 0x0402},
		{"all ones", ones, 0, 0xffff},
		{"all ones odd", ones[:1499], 0, 0xff00},
		{"carry out of 64 bits", ones[:64], 0xffff, 0xffff},
		{"initial carries", []byte{0x00, 0x01}, 0xffff, 0x0001},
	} {
		if got := header.Checksum(tt.b, tt.initial); got != tt.want {
			t.Errorf("%s: Checksum = %#04x, want %#04x", tt.name, got, tt.want)
		}
		if got := naiveChecksum(tt.b, tt.initial); got != tt.want {
			t.Errorf("%s: reference = %#04x, want %#04x (bad test)", tt.name, got, tt.want)
		}
	}
}

// TestChecksumMatchesNaive checks the word-at-a-time sum against the byte-pair
// reference on random lengths 0..1500, random offsets (alignment) and random
// initial values, including buffers of all 0xff that stress the carries.
func TestChecksumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1508)
	for i := range 5000 {
		n := r.IntN(1501)
		off := r.IntN(8)
		b := buf[off : off+n]
		fill := r.IntN(4)
		for j := range b {
			switch fill {
			case 0:
				b[j] = 0xff
			default:
				b[j] = byte(r.Uint32())
			}
		}
		initial := uint16(r.Uint32())
		if i%7 == 0 {
			initial = 0xffff
		}
		if got, want := header.Checksum(b, initial), naiveChecksum(b, initial); got != want {
			t.Fatalf("iteration %d: len %d initial %#04x: Checksum = %#04x, naive %#04x", i, n, initial, got, want)
		}
	}
}

// TestChecksumChain checks that summing even-length pieces in a chain, or
// separately and then with ChecksumCombine, equals summing the whole.
func TestChecksumChain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		b := make([]byte, r.IntN(1501))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		cut := r.IntN(len(b)/2+1) * 2
		want := naiveChecksum(b, 0)
		if got := header.Checksum(b[cut:], header.Checksum(b[:cut], 0)); got != want {
			t.Fatalf("iteration %d: chained sum %#04x, whole %#04x", i, got, want)
		}
		got := header.ChecksumCombine(header.Checksum(b[:cut], 0), header.Checksum(b[cut:], 0))
		if got != want {
			t.Fatalf("iteration %d: combined sum %#04x, whole %#04x", i, got, want)
		}
	}
}

func TestChecksumCombine(t *testing.T) {
	for _, tt := range []struct{ a, b, want uint16 }{
		{0, 0, 0},
		{1, 2, 3},
		{0xffff, 1, 1},
		{0xffff, 0, 0xffff},
		{0x8000, 0x8000, 1},
		{0xffff, 0xffff, 0xffff},
	} {
		if got := header.ChecksumCombine(tt.a, tt.b); got != tt.want {
			t.Errorf("ChecksumCombine(%#04x, %#04x) = %#04x, want %#04x", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		src, dst := randAddr(r), randAddr(r)
		proto := uint8(r.Uint32())
		n := int(uint16(r.Uint32()))
		want := naiveChecksum(pseudoHeader(proto, src, dst, n), 0)
		if got := header.PseudoHeaderChecksum(proto, src, dst, uint16(n)); got != want {
			t.Fatalf("iteration %d: PseudoHeaderChecksum = %#04x, naive %#04x", i, got, want)
		}
	}
}

// TestChecksumUpdate changes one aligned 16- or 32-bit word of random data
// that carries a checksum and compares the incremental update with a full
// recomputation.
func TestChecksumUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 5000 {
		b := make([]byte, 8+2*r.IntN(100)) // checksum field at 0
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if i%5 == 0 {
			// Words that are 0x0000 or 0xffff probe the ±0 corners.
			binary.BigEndian.PutUint32(b[2:], []uint32{0, 0xffffffff, 0xffff, 0xffff0000}[r.IntN(4)])
		}
		full := func() uint16 {
			c := append([]byte(nil), b...)
			c[0], c[1] = 0, 0
			return ^naiveChecksum(c, 0)
		}
		binary.BigEndian.PutUint16(b, full())
		off := 2 + 2*r.IntN(len(b)/2-2)
		if r.IntN(2) == 0 {
			old := binary.BigEndian.Uint16(b[off:])
			nw := uint16(r.Uint32())
			if i%3 == 0 {
				nw = []uint16{0, 0xffff, old}[r.IntN(3)]
			}
			binary.BigEndian.PutUint16(b[off:], nw)
			got := header.ChecksumUpdate16(binary.BigEndian.Uint16(b), old, nw)
			if want := full(); got != want {
				t.Fatalf("iteration %d: ChecksumUpdate16 %#04x → %#04x: %#04x, full %#04x", i, old, nw, got, want)
			}
		} else {
			old := [4]byte(b[off : off+4])
			nw := randAddr(r)
			copy(b[off:], nw[:])
			got := header.ChecksumUpdate32(binary.BigEndian.Uint16(b), old, nw)
			if want := full(); got != want {
				t.Fatalf("iteration %d: ChecksumUpdate32 %v → %v: %#04x, full %#04x", i, old, nw, got, want)
			}
		}
	}
}

// FuzzChecksum checks the fast sum against the naive one.
func FuzzChecksum(f *testing.F) {
	f.Add([]byte{}, uint16(0))                                               // empty
	f.Add([]byte{0xff}, uint16(0xffff))                                      // odd, all ones
	f.Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, uint16(0)) // RFC 1071 example
	f.Add(make([]byte, 37), uint16(1))                                       // zeros, odd tail after 32-byte blocks
	f.Fuzz(func(t *testing.T, b []byte, initial uint16) {
		if got, want := header.Checksum(b, initial), naiveChecksum(b, initial); got != want {
			t.Fatalf("Checksum = %#04x, naive %#04x", got, want)
		}
	})
}

var sink uint16

func BenchmarkChecksum1500(b *testing.B) {
	buf := make([]byte, 1500)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		sink = header.Checksum(buf, 0)
	}
}

func BenchmarkChecksumNaive1500(b *testing.B) {
	buf := make([]byte, 1500)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		sink = naiveChecksum(buf, 0)
	}
}
