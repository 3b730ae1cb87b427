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
	testSrc6 = netip.MustParseAddr("fe80::1")
	testDst6 = IPv6Group
)

// goldenAdvert6 is VRID 51, priority 100, interval 1 s, one address
// fd00:20::100, sent from fe80::1 to ff02::12.
var goldenAdvert6 = Advert{
	Version:   Version3,
	VRID:      51,
	Priority:  100,
	Interval:  time.Second,
	Addresses: []netip.Addr{netip.MustParseAddr("fd00:20::100")},
}

// goldenBytes6 is goldenAdvert6 worked out by hand.
//
// Header as goldenBytes: 0x31 (version 3, type 1), VRID 0x33, priority
// 0x64, count 0x01, interval 100 cs = 0x0064; then the address's 16 bytes.
//
// Checksum (RFC 1071 over the IPv6 pseudo-header of RFC 8200 section 8.1
// and the message, checksum field zero), as 16-bit words, zero words left
// out:
//
//	pseudo-header  fe80 0001   (src fe80::1)
//	               ff02 0012   (dst ff02::12)
//	               0018        (upper-layer length 24, as 32 bits)
//	               0070        (three zero bytes, next header 112)
//	message        3133 6401 0064 0000 fd00 0020 0100
//
//	fe80+0001 = fe81; +ff02 = 1fd83; +0012 = 1fd95; +0018 = 1fdad;
//	+0070 = 1fe1d; +3133 = 22f50; +6401 = 29351; +0064 = 293b5;
//	+fd00 = 390b5; +0020 = 390d5; +0100 = 391d5.
//	Fold the carry: 91d5 + 3 = 91d8. Complement: ~91d8 = 6e27.
var goldenBytes6 = []byte{
	0x31, 0x33, 0x64, 0x01,
	0x00, 0x64, 0x6e, 0x27,
	0xfd, 0x00, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
}

func TestMarshalGolden6(t *testing.T) {
	got, err := goldenAdvert6.Marshal(nil, testSrc6, testDst6)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, goldenBytes6) {
		t.Errorf("Marshal:\n got % x\nwant % x", got, goldenBytes6)
	}
	if goldenAdvert6.Len() != len(goldenBytes6) {
		t.Errorf("Len %d, want %d", goldenAdvert6.Len(), len(goldenBytes6))
	}
	a, err := Decode(goldenBytes6, testSrc6, testDst6, TTL)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, goldenAdvert6) {
		t.Errorf("Decode = %+v, want %+v", a, goldenAdvert6)
	}
	// A zone on the source (as a link-local address read from an
	// interface has) changes nothing on the wire.
	if got, err := goldenAdvert6.Marshal(nil, testSrc6.WithZone("eth0"), testDst6); err != nil || !bytes.Equal(got, goldenBytes6) {
		t.Errorf("with a zone: % x, %v", got, err)
	}
}

// naiveChecksum6 is the checksum of an IPv6 VRRP message computed the
// plain way, for TestChecksum6AgainstNaive: the pseudo-header written out
// as bytes before the message, then RFC 1071 over all of it.
func naiveChecksum6(src, dst netip.Addr, msg []byte) uint16 {
	var b []byte
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	n := len(msg)
	b = append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, IPv6NextHeader)
	b = append(b, msg...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// TestRoundTrip6 marshals random IPv6 adverts from random link-local
// sources, checks the checksum against naiveChecksum6, and decodes them
// back.
func TestRoundTrip6(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	addr := func(prefix byte) netip.Addr {
		var a [16]byte
		rng.Read(a[:])
		a[0] = prefix
		if prefix == 0xfe {
			a[1] = 0x80
		}
		return netip.AddrFrom16(a)
	}
	for range 500 {
		a := Advert{Version: Version3, VRID: uint8(rng.Intn(256)), Priority: uint8(rng.Intn(256)),
			Interval:  time.Duration(1+rng.Intn(intervalMask)) * 10 * time.Millisecond,
			Addresses: make([]netip.Addr, 1+rng.Intn(MaxAddresses))}
		for i := range a.Addresses {
			a.Addresses[i] = addr(0x20)
		}
		src := addr(0xfe)
		b, err := a.Marshal(nil, src, IPv6Group)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != a.Len() || len(b) != HeaderLen+16*len(a.Addresses) {
			t.Fatalf("length %d, Len %d", len(b), a.Len())
		}
		zeroed := bytes.Clone(b)
		zeroed[checksumOffset], zeroed[checksumOffset+1] = 0, 0
		if got, want := uint16(b[checksumOffset])<<8|uint16(b[checksumOffset+1]), naiveChecksum6(src, IPv6Group, zeroed); got != want {
			t.Fatalf("checksum %04x, naive %04x", got, want)
		}
		back, err := Decode(b, src, IPv6Group, TTL)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, a) {
			t.Fatalf("round trip: %+v, want %+v", back, a)
		}
	}
}

func TestMarshalRefuses6(t *testing.T) {
	v2 := goldenAdvert6
	v2.Version, v2.Interval = Version2, time.Second
	mixed := goldenAdvert6
	mixed.Addresses = []netip.Addr{netip.MustParseAddr("fd00:20::100"), netip.MustParseAddr("192.0.2.100")}
	v4in6 := goldenAdvert
	for _, c := range []struct {
		name     string
		a        Advert
		src, dst netip.Addr
	}{
		{"VRRPv2 over IPv6", v2, testSrc6, testDst6},
		{"an IPv4 address in an IPv6 advert", mixed, testSrc6, testDst6},
		{"an IPv6 advert to an IPv4 group", goldenAdvert6, testSrc6, IPv4Group},
		{"IPv4 addresses from an IPv6 source", v4in6, testSrc6, testDst6},
	} {
		if _, err := c.a.Marshal(nil, c.src, c.dst); err == nil {
			t.Errorf("%s: marshalled", c.name)
		}
	}
}

func TestDecodeErrors6(t *testing.T) {
	fix := func(b []byte) []byte {
		b[checksumOffset], b[checksumOffset+1] = 0, 0
		sum := checksum(pseudoHeaderSum6(testSrc6.As16(), testDst6.As16(), len(b)), b)
		b[checksumOffset], b[checksumOffset+1] = byte(sum>>8), byte(sum)
		return b
	}
	edit := func(f func([]byte) []byte) []byte { return f(bytes.Clone(goldenBytes6)) }
	for _, tt := range []struct {
		name     string
		pkt      []byte
		src, dst netip.Addr
		ttl      uint8
		want     error
	}{
		{"hop limit 64", goldenBytes6, testSrc6, testDst6, 64, ErrTTL},
		{"hop limit 1", goldenBytes6, testSrc6, testDst6, 1, ErrTTL},
		{"version 2 over IPv6", edit(func(b []byte) []byte { b[0] = 0x21; return fix(b) }), testSrc6, testDst6, TTL, ErrVersion},
		{"checksum off by one", edit(func(b []byte) []byte { b[7]++; return b }), testSrc6, testDst6, TTL, ErrChecksum},
		{"wrong source", goldenBytes6, netip.MustParseAddr("fe80::2"), testDst6, TTL, ErrChecksum},
		{"unicast destination", goldenBytes6, testSrc6, netip.MustParseAddr("fe80::2"), TTL, ErrChecksum},
		{"checksummed as IPv4", goldenBytes, testSrc6, testDst6, TTL, ErrChecksum},
		{"IPv4 address length", edit(func(b []byte) []byte { return fix(b[:HeaderLen+4]) }), testSrc6, testDst6, TTL, ErrAddrCount},
		{"count 2, one address", edit(func(b []byte) []byte { b[countOffset] = 2; return fix(b) }), testSrc6, testDst6, TTL, ErrAddrCount},
		{"interval 0", edit(func(b []byte) []byte { b[4], b[5] = 0, 0; return fix(b) }), testSrc6, testDst6, TTL, ErrInterval},
		{"IPv4 destination", goldenBytes6, testSrc6, IPv4Group, TTL, ErrFamily},
	} {
		if _, err := Decode(tt.pkt, tt.src, tt.dst, tt.ttl); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

// TestMachineDualStack: one machine with IPv4 and IPv6 addresses. An
// IPv6 advert of equal priority is tie-broken against our link-local
// address, an IPv4 one against our IPv4 address; a master without IPv4
// addresses names its link-local address as the master.
func TestMachineDualStack(t *testing.T) {
	cfg := Config{Version: Version3, VRID: 51, Priority: 100, Interval: time.Second, Preempt: true,
		Primary: netip.MustParseAddr("192.0.2.5"), Primary6: netip.MustParseAddr("fe80::5"),
		Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("fd00:20::100")}}
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		src        string
		wantBackup bool
	}{
		{"fe80::9", true},    // higher link-local
		{"fe80::1", false},   // lower link-local
		{"192.0.2.9", true},  // higher IPv4
		{"192.0.2.1", false}, // lower IPv4: fe80:: would be "higher" across families
	} {
		m := NewMachine(cfg)
		m.Start(now)
		m.Tick(now.Add(time.Hour))
		if m.State() != Master {
			t.Fatal("not master when alone")
		}
		adv := m.Advert(100)
		act := m.Receive(now.Add(time.Hour), netip.MustParseAddr(c.src), adv)
		if act.BecomeBackup != c.wantBackup {
			t.Errorf("equal priority from %s: backup %v, want %v", c.src, act.BecomeBackup, c.wantBackup)
		}
	}
	v6only := cfg
	v6only.Primary, v6only.Addresses = netip.Addr{}, cfg.Addresses[1:]
	m := NewMachine(v6only)
	m.Start(now)
	m.Tick(now.Add(time.Hour))
	if m.MasterAddr() != v6only.Primary6 {
		t.Errorf("IPv6-only master names %v", m.MasterAddr())
	}
	for _, bad := range []func(c *Config){
		func(c *Config) { c.Version, c.Interval = Version2, time.Second },
		func(c *Config) { c.Primary6 = netip.MustParseAddr("fd00::5") },
		func(c *Config) { c.Primary6 = netip.Addr{} },
	} {
		c := cfg
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid", c)
		}
	}
}
