package schedule

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// kernelSHTable transcribes ip_vs_sh_reassign: p walks the service's list,
// -1 standing for the list head.
func kernelSHTable(weights []int32) [256]int {
	var b [256]int
	p, count := -1, 0
	for i := range b {
		if len(weights) == 0 {
			b[i] = -1
			continue
		}
		if p == -1 {
			p = 0
		}
		b[i] = p
		count++
		if count >= int(weights[p]) {
			p++
			if p == len(weights) {
				p = -1
			}
			count = 0
		}
	}
	return b
}

// kernelDHTable transcribes ip_vs_dh_reassign: the next real per bucket.
func kernelDHTable(n int) [256]int {
	var b [256]int
	p := -1
	for i := range b {
		if n == 0 {
			b[i] = -1
			continue
		}
		if p == -1 {
			p = 0
		}
		b[i] = p
		if p++; p == n {
			p = -1
		}
	}
	return b
}

// kernelFold is ntohl(addr_fold) of ip_vs_sh_hashkey, from net/netip.
func kernelFold(a [16]byte) uint32 {
	ip := netip.AddrFrom16(a)
	if ip.Is4In6() {
		v4 := ip.Unmap().As4()
		return binary.BigEndian.Uint32(v4[:])
	}
	var x uint32
	for k := 0; k < 16; k += 4 {
		x ^= binary.BigEndian.Uint32(a[k : k+4])
	}
	return x
}

// kernelHash is hash_32(val, 8) with the multiplication spelled out.
func kernelHash(val uint32) int { return int(uint32(uint64(val)*0x61C88647) >> 24) }

func TestHash32KnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		val  uint32
		bits uint
		want uint32
	}{
		{0, 8, 0},
		{1, 8, 0x61},          // 0x61C88647 >> 24
		{1, 10, 0x187},        // 0x61C88647 >> 22
		{0x0a000001, 8, 0x27}, // 10.0.0.1: 0x0a000001 * 0x61C88647 mod 2^32 = 0x27…
		{0xffffffff, 8, 0x9e}, // -0x61C88647 mod 2^32 = 0x9E3779B9
	} {
		if got := hash32(tc.val, tc.bits); got != tc.want {
			t.Errorf("hash32(%#x, %d) = %#x, want %#x", tc.val, tc.bits, got, tc.want)
		}
	}
}

// TestSHTable compares all 256 buckets of sh and dh with the kernel's
// reassign loops, weight-0 reals included.
func TestSHTable(t *testing.T) {
	for _, w := range [][]int32{
		nil, {1}, {0}, {1, 2, 3, 4}, {5, 3}, {0, 3, 0}, {100, 1}, {300, 2},
		{7, 0, 0, 1, 13}, {1, 1, 1, 1, 1, 1, 1}, make([]int32, 300),
	} {
		d := mkDests(w...)
		sh, dh := newSH(d, 0), newDH(d)
		ks, kd := kernelSHTable(w), kernelDHTable(len(w))
		for b := range 256 {
			if int(sh.table[b]) != ks[b] {
				t.Errorf("sh %v: bucket %d = %d, kernel %d", w, b, sh.table[b], ks[b])
				break
			}
			if int(dh.table[b]) != kd[b] {
				t.Errorf("dh %v: bucket %d = %d, kernel %d", w, b, dh.table[b], kd[b])
				break
			}
		}
	}
}

// kernelSHPick is ip_vs_sh_schedule on the kernel's table: the bucket of
// the source (and port), and with fallback ip_vs_sh_get_fallback's loop.
func kernelSHPick(table [256]int, d []Dest, f *Flow, flags Flags) int {
	port := uint32(0)
	if flags&SHPort != 0 && (f.Proto == 6 || f.Proto == 17 || f.Proto == 132) {
		port = uint32(f.SrcPort)
	}
	hashkey := func(offset int) int { return (offset + kernelHash(port+kernelFold(f.Src))) & 255 }
	ihash := hashkey(0)
	dest := table[ihash]
	if dest < 0 {
		return -1
	}
	if d[dest].Weight > 0 && !d[dest].Counters.Overloaded() {
		return dest
	}
	if flags&SHFallback == 0 {
		return -1
	}
	for offset := range 256 {
		roffset := (offset + ihash) % 256
		dest = table[hashkey(roffset)]
		if dest < 0 {
			break
		}
		if d[dest].Weight > 0 && !d[dest].Counters.Overloaded() {
			return dest
		}
	}
	return -1
}

// TestSHAgainstKernel: sh's and dh's picks for random flows (IPv4, IPv6,
// ports, protocols) with random weights, overloads and flags are the
// kernel's.
func TestSHAgainstKernel(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for iter := range 400 {
		w := randWeights(r, 1+r.IntN(10), 4)
		d := mkDests(w...)
		for i := range d {
			if r.IntN(4) == 0 {
				overload(d[i].Counters)
			}
		}
		flags := Flags(iter % 4) // SHFallback, SHPort in every combination
		sh, dh := mustNewOpts(t, "sh", d, Options{Flags: flags}), mustNew(t, "dh", d)
		ks, kd := kernelSHTable(w), kernelDHTable(len(w))
		for range 50 {
			f := randFlow(r)
			f.Proto = []uint8{6, 17, 132, 1}[r.IntN(4)]
			if r.IntN(3) == 0 {
				f.Src = [16]byte(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, r.Uint64()), r.Uint64()))
				f.Dst = [16]byte(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, r.Uint64()), r.Uint64()))
			}
			if got, want := sh.Pick(d, &f), kernelSHPick(ks, d, &f, flags); got != want {
				t.Fatalf("sh %v flags %v flow %+v = %d, kernel %d", w, flags, f, got, want)
			}
			// dh: ip_vs_sh_hashkey on the destination, no port, no fallback.
			g := f
			g.Src = f.Dst
			if got, want := dh.Pick(d, &f), kernelSHPick(kd, d, &g, 0); got != want {
				t.Fatalf("dh %v flow %+v = %d, kernel %d", w, f, got, want)
			}
		}
	}
}

// TestSHPort: with sh-port the source port moves a client's flows between
// reals (for TCP, UDP and SCTP only); without it every port of a client
// goes to one real.
func TestSHPort(t *testing.T) {
	d := mkDests(1, 1, 1, 1)
	plain := mustNew(t, "sh", d)
	port := mustNewOpts(t, "sh", d, Options{Flags: SHPort})
	f := Flow{Src: netip.MustParseAddr("::ffff:192.0.2.7").As16(), Proto: protoTCP}
	seen, seenPlain := map[int]bool{}, map[int]bool{}
	for p := range 64 {
		f.SrcPort = uint16(40000 + p)
		seen[port.Pick(d, &f)] = true
		seenPlain[plain.Pick(d, &f)] = true
	}
	if len(seen) < 2 {
		t.Errorf("sh-port: 64 source ports of one client all went to %v", seen)
	}
	if len(seenPlain) != 1 {
		t.Errorf("sh: 64 source ports of one client went to %v, want one real", seenPlain)
	}
	f.Proto = 1 // ICMP: no port
	seen = map[int]bool{}
	for p := range 64 {
		f.SrcPort = uint16(40000 + p)
		seen[port.Pick(d, &f)] = true
	}
	if len(seen) != 1 {
		t.Errorf("sh-port, ICMP: went to %v, want one real", seen)
	}
}

// TestSHFallbackMovesOnlyUnavailable: with sh-fallback, overloading one
// real moves exactly its flows, each to an available real.
func TestSHFallbackMovesOnlyUnavailable(t *testing.T) {
	for _, name := range []string{"sh", "mh"} {
		d := mkDests(1, 2, 3, 4)
		s := mustNewOpts(t, name, d, fallbackOpts)
		r := rand.New(rand.NewPCG(43, 44))
		flows := make([]Flow, 5000)
		before := make([]int, len(flows))
		for k := range flows {
			flows[k] = randFlow(r)
			before[k] = s.Pick(d, &flows[k])
		}
		overload(d[2].Counters)
		moved := 0
		for k := range flows {
			got := s.Pick(d, &flows[k])
			switch {
			case before[k] != 2 && got != before[k]:
				t.Fatalf("%s: flow of available real %d moved to %d", name, before[k], got)
			case before[k] == 2 && (got < 0 || got == 2):
				t.Fatalf("%s: flow of overloaded real 2 went to %d", name, got)
			case before[k] == 2:
				moved++
			}
		}
		if moved == 0 {
			t.Errorf("%s: no flow of real 2 to move", name)
		}
	}
}
