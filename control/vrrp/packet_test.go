package vrrp

import (
	"bytes"
	"errors"
	"math/rand"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var (
	testSrc = netip.MustParseAddr("192.168.1.1")
	testDst = IPv4Group
)

// goldenAdvert is VRID 51, priority 100, interval 1 s, one address
// 192.168.1.100, sent from 192.168.1.1 to 224.0.0.18.
var goldenAdvert = Advert{
	Version:   Version3,
	VRID:      51,
	Priority:  100,
	Interval:  time.Second,
	Addresses: []netip.Addr{netip.MustParseAddr("192.168.1.100")},
}

// goldenBytes is goldenAdvert worked out by hand.
//
// Header: version 3 and type 1 give 0x31; VRID 51 = 0x33; priority 100 =
// 0x64; count 1 = 0x01; rsvd 0 and 1 s = 100 cs = 0x064 give 0x0064; the
// address 192.168.1.100 is c0 a8 01 64.
//
// Checksum (RFC 1071 over the pseudo-header and the message, checksum field
// zero), as 16-bit words:
//
//	pseudo-header  c0a8 0101 (src 192.168.1.1)
//	               e000 0012 (dst 224.0.0.18)
//	               0070      (zero, protocol 112)
//	               000c      (VRRP length 12)
//	message        3133 6401 0064 0000 c0a8 0164
//
//	c0a8+0101 = c1a9; +e000 = 1a1a9; +0012 = 1a1bb; +0070 = 1a22b;
//	+000c = 1a237; +3133 = 1d36a; +6401 = 2376b; +0064 = 237cf;
//	+0000 = 237cf; +c0a8 = 2f877; +0164 = 2f9db.
//	Fold the carry: f9db + 2 = f9dd. Complement: ~f9dd = 0622.
var goldenBytes = []byte{
	0x31, 0x33, 0x64, 0x01,
	0x00, 0x64, 0x06, 0x22,
	0xc0, 0xa8, 0x01, 0x64,
}

func TestMarshalGolden(t *testing.T) {
	got, err := goldenAdvert.Marshal(nil, testSrc, testDst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, goldenBytes) {
		t.Errorf("Marshal:\n got % x\nwant % x", got, goldenBytes)
	}
	a, err := Decode(goldenBytes, testSrc, testDst, TTL)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, goldenAdvert) {
		t.Errorf("Decode = %+v, want %+v", a, goldenAdvert)
	}
}

func TestMarshalAppends(t *testing.T) {
	prefix := []byte{0xde, 0xad}
	got, err := goldenAdvert.Marshal(append([]byte(nil), prefix...), testSrc, testDst)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(prefix, goldenBytes...); !bytes.Equal(got, want) {
		t.Errorf("Marshal after a prefix:\n got % x\nwant % x", got, want)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf, _ = goldenAdvert.Marshal(buf[:0], testSrc, testDst) }); n != 0 {
		t.Errorf("Marshal into a buffer with room allocates %v times", n)
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 1000; i++ {
		a := Advert{
			Version:   Version3,
			VRID:      uint8(rng.Intn(256)),
			Priority:  uint8(rng.Intn(256)),
			Interval:  time.Duration(1+rng.Intn(intervalMask)) * 10 * time.Millisecond,
			Addresses: make([]netip.Addr, 1+rng.Intn(MaxAddresses)),
		}
		if i%2 == 1 {
			a.Version = Version2
			a.Interval = time.Duration(1+rng.Intn(255)) * time.Second
			a.AuthType = AuthType(rng.Intn(256)) // any Auth Type goes through the codec; Match judges it
			rng.Read(a.AuthData[:])
		}
		for j := range a.Addresses {
			a.Addresses[j] = netip.AddrFrom4([4]byte{byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256))})
		}
		src := netip.AddrFrom4([4]byte{10, byte(rng.Intn(256)), byte(rng.Intn(256)), byte(rng.Intn(256))})
		b, err := a.Marshal(nil, src, testDst)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != a.Len() {
			t.Fatalf("len %d, Len() %d", len(b), a.Len())
		}
		got, err := Decode(b, src, testDst, TTL)
		if err != nil {
			t.Fatalf("Decode(Marshal(%+v)): %v", a, err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
		}
	}
}

// naiveSum is the RFC 1071 checksum of buf, summed plainly in 64 bits.
func naiveSum(buf []byte) uint16 {
	if len(buf)%2 == 1 {
		buf = append(buf, 0)
	}
	var sum uint64
	for i := 0; i < len(buf); i += 2 {
		sum += uint64(buf[i])<<8 | uint64(buf[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// TestChecksumAgainstNaive checks the folding checksum against a plain
// sum over an explicitly built pseudo-header (version 3) and over the
// message alone (version 2), on seeded random input.
func TestChecksumAgainstNaive(t *testing.T) {
	naive := func(src, dst [4]byte, msg []byte) uint16 {
		var buf []byte
		buf = append(buf, src[:]...)
		buf = append(buf, dst[:]...)
		buf = append(buf, 0, IPProtocol, byte(len(msg)>>8), byte(len(msg)))
		buf = append(buf, msg...)
		return naiveSum(buf)
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 2000; i++ {
		msg := make([]byte, rng.Intn(2000))
		rng.Read(msg)
		var src, dst [4]byte
		rng.Read(src[:])
		rng.Read(dst[:])
		if got, want := checksum(pseudoHeaderSum(src, dst, len(msg)), msg), naive(src, dst, msg); got != want {
			t.Fatalf("v3 checksum(% x, % x, %d bytes) = %#04x, naive %#04x", src, dst, len(msg), got, want)
		}
		if got, want := checksum(0, msg), naiveSum(msg); got != want {
			t.Fatalf("v2 checksum(%d bytes) = %#04x, naive %#04x", len(msg), got, want)
		}
	}
}

// fixV3 and fixV2 recompute the checksum after a test has edited the
// bytes, so that the check under test, not the checksum, is what fails.
func fixV3(b []byte) []byte {
	b[checksumOffset], b[checksumOffset+1] = 0, 0
	s := checksum(pseudoHeaderSum(testSrc.As4(), testDst.As4(), len(b)), b)
	b[checksumOffset], b[checksumOffset+1] = byte(s>>8), byte(s)
	return b
}

func fixV2(b []byte) []byte {
	b[checksumOffset], b[checksumOffset+1] = 0, 0
	s := checksum(0, b)
	b[checksumOffset], b[checksumOffset+1] = byte(s>>8), byte(s)
	return b
}

func TestDecodeErrors(t *testing.T) {
	fix := fixV3
	edit := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), goldenBytes...))
	}
	edit2 := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), goldenV2PassBytes...))
	}
	tests := []struct {
		name     string
		pkt      []byte
		src, dst netip.Addr
		ttl      uint8
		want     *DropError
	}{
		{"empty", nil, testSrc, testDst, TTL, ErrTooShort},
		{"7 bytes", goldenBytes[:7], testSrc, testDst, TTL, ErrTooShort},
		{"version 4", edit(func(b []byte) []byte { b[0] = 0x41; return fix(b) }), testSrc, testDst, TTL, ErrVersion},
		{"version 1", edit(func(b []byte) []byte { b[0] = 0x11; return fix(b) }), testSrc, testDst, TTL, ErrVersion},
		{"version 0", edit(func(b []byte) []byte { b[0] = 0x01; return fix(b) }), testSrc, testDst, TTL, ErrVersion},
		{"v3 bytes marked version 2", edit(func(b []byte) []byte { b[0] = 0x21; return fix(b) }), testSrc, testDst, TTL, ErrChecksum},
		{"v2 bytes marked version 3", edit2(func(b []byte) []byte { b[0] = 0x31; return fixV2(b) }), testSrc, testDst, TTL, ErrChecksum},
		{"v2 type 2", edit2(func(b []byte) []byte { b[0] = 0x22; return fixV2(b) }), testSrc, testDst, TTL, ErrType},
		{"v2 ttl 64", goldenV2PassBytes, testSrc, testDst, 64, ErrTTL},
		{"v2 checksum off by one", edit2(func(b []byte) []byte { b[7]++; return b }), testSrc, testDst, TTL, ErrChecksum},
		{"v2 password changed", edit2(func(b []byte) []byte { b[len(b)-1] = 1; return b }), testSrc, testDst, TTL, ErrChecksum},
		{"v2 checksummed with a pseudo-header", edit2(func(b []byte) []byte { return fixV3(b) }), testSrc, testDst, TTL, ErrChecksum},
		{"v2 without auth data", edit2(func(b []byte) []byte { return fixV2(b[:HeaderLen+4]) }), testSrc, testDst, TTL, ErrAddrCount},
		{"v2 auth data short", edit2(func(b []byte) []byte { return fixV2(b[:len(b)-2]) }), testSrc, testDst, TTL, ErrAddrCount},
		{"v2 count 2", edit2(func(b []byte) []byte { b[countOffset] = 2; return fixV2(b) }), testSrc, testDst, TTL, ErrAddrCount},
		{"v2 interval 0", edit2(func(b []byte) []byte { b[secondsOffset] = 0; return fixV2(b) }), testSrc, testDst, TTL, ErrInterval},
		{"v2 IPv6 source", goldenV2PassBytes, netip.MustParseAddr("fe80::1"), testDst, TTL, ErrFamily},
		{"type 2", edit(func(b []byte) []byte { b[0] = 0x32; return fix(b) }), testSrc, testDst, TTL, ErrType},
		{"ttl 64", goldenBytes, testSrc, testDst, 64, ErrTTL},
		{"ttl 254", goldenBytes, testSrc, testDst, 254, ErrTTL},
		{"checksum off by one", edit(func(b []byte) []byte { b[7]++; return b }), testSrc, testDst, TTL, ErrChecksum},
		{"wrong source", goldenBytes, netip.MustParseAddr("192.168.1.2"), testDst, TTL, ErrChecksum},
		{"priority changed", edit(func(b []byte) []byte { b[priorityOffset] = 200; return b }), testSrc, testDst, TTL, ErrChecksum},
		{"count 2, one address", edit(func(b []byte) []byte { b[countOffset] = 2; return fix(b) }), testSrc, testDst, TTL, ErrAddrCount},
		{"count 0", edit(func(b []byte) []byte { b[countOffset] = 0; return fix(b[:HeaderLen]) }), testSrc, testDst, TTL, ErrAddrCount},
		{"trailing bytes", edit(func(b []byte) []byte { return fix(append(b, 1, 2, 3, 4)) }), testSrc, testDst, TTL, ErrAddrCount},
		{"truncated address", edit(func(b []byte) []byte { return fix(b[:10]) }), testSrc, testDst, TTL, ErrAddrCount},
		{"interval 0", edit(func(b []byte) []byte { b[4], b[5] = 0, 0; return fix(b) }), testSrc, testDst, TTL, ErrInterval},
		{"interval 0, reserved set", edit(func(b []byte) []byte { b[4], b[5] = 0xf0, 0; return fix(b) }), testSrc, testDst, TTL, ErrInterval},
		{"IPv6 source", goldenBytes, netip.MustParseAddr("fe80::1"), testDst, TTL, ErrFamily},
		{"zero destination", goldenBytes, testSrc, netip.Addr{}, TTL, ErrFamily},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.pkt, tt.src, tt.dst, tt.ttl)
			if !errors.Is(err, tt.want) {
				t.Errorf("Decode(% x) = %v, want %v", tt.pkt, err, tt.want)
			}
		})
	}
}

func TestDecodeIgnoresReserved(t *testing.T) {
	b := append([]byte(nil), goldenBytes...)
	b[intervalOffset] |= 0xa0
	fixV3(b)
	a, err := Decode(b, testSrc, testDst, TTL)
	if err != nil {
		t.Fatal(err)
	}
	if a.Interval != time.Second {
		t.Errorf("interval %v with reserved bits set, want 1s", a.Interval)
	}
}

func TestDecodeAcceptsMappedAddresses(t *testing.T) {
	src := netip.AddrFrom16(testSrc.As16())
	if _, err := Decode(goldenBytes, src, testDst, TTL); err != nil {
		t.Errorf("Decode from %v: %v", src, err)
	}
}

func TestMarshalErrors(t *testing.T) {
	v4 := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	tests := []struct {
		name     string
		a        Advert
		src, dst netip.Addr
	}{
		{"no version", Advert{VRID: 1, Priority: 100, Interval: time.Second, Addresses: v4}, testSrc, testDst},
		{"version 4", Advert{Version: 4, VRID: 1, Priority: 100, Interval: time.Second, Addresses: v4}, testSrc, testDst},
		{"interval 0", Advert{Version: Version3, VRID: 1, Priority: 100, Addresses: v4}, testSrc, testDst},
		{"interval 5ms", Advert{Version: Version3, VRID: 1, Priority: 100, Interval: 5 * time.Millisecond, Addresses: v4}, testSrc, testDst},
		{"interval 15ms", Advert{Version: Version3, VRID: 1, Priority: 100, Interval: 15 * time.Millisecond, Addresses: v4}, testSrc, testDst},
		{"interval 41s", Advert{Version: Version3, VRID: 1, Priority: 100, Interval: 41 * time.Second, Addresses: v4}, testSrc, testDst},
		{"v3 with a password", Advert{Version: Version3, VRID: 1, Priority: 100, Interval: time.Second, Addresses: v4, AuthType: AuthPass, AuthData: Password("x")}, testSrc, testDst},
		{"v2 interval 0", Advert{Version: Version2, VRID: 1, Priority: 100, Addresses: v4}, testSrc, testDst},
		{"v2 interval 100ms", Advert{Version: Version2, VRID: 1, Priority: 100, Interval: 100 * time.Millisecond, Addresses: v4}, testSrc, testDst},
		{"v2 interval 1.5s", Advert{Version: Version2, VRID: 1, Priority: 100, Interval: 1500 * time.Millisecond, Addresses: v4}, testSrc, testDst},
		{"v2 interval 256s", Advert{Version: Version2, VRID: 1, Priority: 100, Interval: 256 * time.Second, Addresses: v4}, testSrc, testDst},
		{"no addresses", Advert{Version: Version3, VRID: 1, Priority: 100, Interval: time.Second}, testSrc, testDst},
		{"v2 no addresses", Advert{Version: Version2, VRID: 1, Priority: 100, Interval: time.Second}, testSrc, testDst},
		{"256 addresses", Advert{Version: Version3, VRID: 1, Priority: 100, Interval: time.Second, Addresses: make([]netip.Addr, 256)}, testSrc, testDst},
		{"IPv6 address", Advert{Version: Version3, VRID: 1, Priority: 100, Interval: time.Second, Addresses: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}, testSrc, testDst},
		{"IPv6 source", Advert{Version: Version3, VRID: 1, Priority: 100, Interval: time.Second, Addresses: v4}, netip.MustParseAddr("2001:db8::1"), testDst},
		{"v2 IPv6 source", Advert{Version: Version2, VRID: 1, Priority: 100, Interval: time.Second, Addresses: v4}, netip.MustParseAddr("2001:db8::1"), testDst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.a.Marshal([]byte{7}, tt.src, tt.dst)
			if err == nil {
				t.Errorf("Marshal(%+v) succeeded: % x", tt.a, b)
			}
			if !bytes.Equal(b, []byte{7}) {
				t.Errorf("Marshal failed but changed b to % x", b)
			}
		})
	}
}

func TestIntervalLimits(t *testing.T) {
	for _, tt := range []struct {
		a Advert
		d time.Duration
	}{
		{goldenAdvert, MinInterval}, {goldenAdvert, MaxInterval}, {goldenAdvert, 40950 * time.Millisecond},
		{goldenV2, MinIntervalV2}, {goldenV2, MaxIntervalV2}, {goldenV2, 255 * time.Second},
	} {
		a := tt.a
		a.Interval = tt.d
		b, err := a.Marshal(nil, testSrc, testDst)
		if err != nil {
			t.Fatalf("%v interval %v: %v", a.Version, tt.d, err)
		}
		got, err := Decode(b, testSrc, testDst, TTL)
		if err != nil || got.Interval != tt.d {
			t.Errorf("%v interval %v came back as %v, %v", a.Version, tt.d, got.Interval, err)
		}
	}
}

func TestValidInterval(t *testing.T) {
	for _, tt := range []struct {
		v    Version
		d    time.Duration
		want bool
	}{
		{Version3, 10 * time.Millisecond, true}, {Version3, 100 * time.Millisecond, true}, {Version3, 40950 * time.Millisecond, true},
		{Version3, 0, false}, {Version3, 5 * time.Millisecond, false}, {Version3, 15 * time.Millisecond, false}, {Version3, 41 * time.Second, false},
		{Version2, time.Second, true}, {Version2, 3 * time.Second, true}, {Version2, 255 * time.Second, true},
		{Version2, 0, false}, {Version2, 100 * time.Millisecond, false}, {Version2, 1500 * time.Millisecond, false}, {Version2, 256 * time.Second, false},
		{0, time.Second, false}, {4, time.Second, false},
	} {
		if got := tt.v.ValidInterval(tt.d); got != tt.want {
			t.Errorf("%v.ValidInterval(%v) = %v, want %v", tt.v, tt.d, got, tt.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(goldenBytes, testSrc.AsSlice(), testDst.AsSlice(), uint8(TTL))     // the golden advert
	f.Add(goldenBytes[:7], testSrc.AsSlice(), testDst.AsSlice(), uint8(TTL)) // too short
	f.Add(goldenBytes, testSrc.AsSlice(), testDst.AsSlice(), uint8(64))      // wrong TTL
	f.Add([]byte{0x31, 0x01, 0xff, 0x02, 0x0f, 0xff, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2},
		[]byte{10, 0, 0, 9}, testDst.AsSlice(), uint8(TTL)) // two addresses, bad checksum
	f.Add(goldenV2Bytes, testSrc.AsSlice(), testDst.AsSlice(), uint8(TTL))          // version 2, no authentication
	f.Add(goldenV2PassBytes, testSrc.AsSlice(), testDst.AsSlice(), uint8(TTL))      // version 2, PASS
	f.Add(goldenV2PassBytes[:12], testSrc.AsSlice(), testDst.AsSlice(), uint8(TTL)) // version 2 without its Authentication Data
	f.Add(goldenBytes6, testSrc6.AsSlice(), testDst6.AsSlice(), uint8(TTL))         // IPv6
	f.Add(goldenBytes, testSrc6.AsSlice(), testDst6.AsSlice(), uint8(TTL))          // IPv4 addresses over IPv6
	f.Fuzz(func(t *testing.T, pkt, src, dst []byte, ttl uint8) {
		s, _ := netip.AddrFromSlice(src)
		d, _ := netip.AddrFromSlice(dst)
		checkReparse(t, pkt, s, d, ttl)
		// Random bytes rarely carry a right checksum, so also try the input
		// with its checksum made right for either version, to reach the
		// checks behind it.
		var initials []uint32
		switch {
		case s.Is4() && d.Is4():
			initials = []uint32{pseudoHeaderSum(s.As4(), d.As4(), len(pkt)), 0}
		case s.Is6() && d.Is6():
			initials = []uint32{pseudoHeaderSum6(s.As16(), d.As16(), len(pkt))}
		}
		if len(pkt) >= HeaderLen {
			for _, initial := range initials {
				fixed := append([]byte(nil), pkt...)
				fixed[checksumOffset], fixed[checksumOffset+1] = 0, 0
				c := checksum(initial, fixed)
				fixed[checksumOffset], fixed[checksumOffset+1] = byte(c>>8), byte(c)
				checkReparse(t, fixed, s, d, ttl)
			}
		}
	})
}

// checkReparse asserts that whatever Decode accepts, Marshal turns back into
// the same bytes.
func checkReparse(t *testing.T, pkt []byte, s, d netip.Addr, ttl uint8) {
	t.Helper()
	a, err := Decode(pkt, s, d, ttl)
	if err != nil {
		return
	}
	out, err := a.Marshal(nil, s, d)
	if err != nil {
		t.Fatalf("Decode accepted % x as %+v, which Marshal rejects: %v", pkt, a, err)
	}
	// Marshal writes version 3's reserved bits as zero, and a checksum of
	// 0x0000 where the sender may have written its other ones'-complement
	// form, 0xffff. Otherwise the bytes must be the same.
	want := append([]byte(nil), pkt...)
	if a.Version == Version3 {
		want[intervalOffset] &= intervalMask >> 8
	}
	if !bytes.Equal(out[:checksumOffset], want[:checksumOffset]) || !bytes.Equal(out[HeaderLen:], want[HeaderLen:]) {
		t.Fatalf("re-marshal differs:\n got % x\nwant % x", out, want)
	}
	if want[intervalOffset] == pkt[intervalOffset] && !bytes.Equal(out[checksumOffset:HeaderLen], pkt[checksumOffset:HeaderLen]) {
		if pkt[checksumOffset] != 0xff || pkt[checksumOffset+1] != 0xff || out[checksumOffset] != 0 || out[checksumOffset+1] != 0 {
			t.Fatalf("re-marshal checksum % x, received % x", out[checksumOffset:HeaderLen], pkt[checksumOffset:HeaderLen])
		}
	}
	if b, err := Decode(out, s, d, TTL); err != nil || !reflect.DeepEqual(b, a) {
		t.Fatalf("re-decode = %+v, %v; want %+v", b, err, a)
	}
}
