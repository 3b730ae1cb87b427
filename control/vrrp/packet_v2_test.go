package vrrp

import (
	"bytes"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// goldenV2 is goldenAdvert in version 2, without authentication, as a
// stock keepalived (no vrrp_version, no authentication block) sends it.
var goldenV2 = Advert{
	Version:   Version2,
	VRID:      51,
	Priority:  100,
	Interval:  time.Second,
	Addresses: []netip.Addr{netip.MustParseAddr("192.168.1.100")},
}

// goldenV2Bytes is goldenV2 worked out by hand (RFC 3768 section 5).
//
// Header: version 2 and type 1 give 0x21; VRID 51 = 0x33; priority 100 =
// 0x64; count 1 = 0x01; Auth Type 0; Adver Int 1 (seconds); the address
// 192.168.1.100 is c0 a8 01 64; then 8 bytes of Authentication Data, zero.
//
// Checksum (RFC 1071 over the VRRP message alone, no pseudo-header,
// checksum field zero), as 16-bit words:
//
//	2133 6401 0001 0000 c0a8 0164 0000 0000 0000 0000
//
//	2133+6401 = 8534; +0001 = 8535; +c0a8 = 145dd; +0164 = 14741.
//	Fold the carry: 4741 + 1 = 4742. Complement: ~4742 = b8bd.
var goldenV2Bytes = []byte{
	0x21, 0x33, 0x64, 0x01,
	0x00, 0x01, 0xb8, 0xbd,
	0xc0, 0xa8, 0x01, 0x64,
	0, 0, 0, 0, 0, 0, 0, 0,
}

// goldenV2Pass is goldenV2 with keepalived's
// authentication { auth_type PASS; auth_pass secret }.
var goldenV2Pass = Advert{
	Version:   Version2,
	VRID:      51,
	Priority:  100,
	Interval:  time.Second,
	Addresses: []netip.Addr{netip.MustParseAddr("192.168.1.100")},
	AuthType:  AuthPass,
	AuthData:  [8]byte{'s', 'e', 'c', 'r', 'e', 't', 0, 0},
}

// goldenV2PassBytes is goldenV2Pass by hand: Auth Type 1, and "secret"
// zero-padded to 8 bytes (73 65 63 72 65 74 00 00) after the address.
//
//	2133 6401 0101 0000 c0a8 0164 7365 6372 6574 0000
//
//	2133+6401 = 8534; +0101 = 8635; +c0a8 = 146dd; +0164 = 14841;
//	+7365 = 1bba6; +6372 = 21f18; +6574 = 2848c.
//	Fold the carry: 848c + 2 = 848e. Complement: ~848e = 7b71.
var goldenV2PassBytes = []byte{
	0x21, 0x33, 0x64, 0x01,
	0x01, 0x01, 0x7b, 0x71,
	0xc0, 0xa8, 0x01, 0x64,
	0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x00, 0x00,
}

func TestMarshalGoldenV2(t *testing.T) {
	for _, tt := range []struct {
		name string
		a    Advert
		want []byte
	}{
		{"no authentication", goldenV2, goldenV2Bytes},
		{"PASS", goldenV2Pass, goldenV2PassBytes},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.Marshal(nil, testSrc, testDst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Marshal:\n got % x\nwant % x", got, tt.want)
			}
			if len(got) != tt.a.Len() {
				t.Errorf("len %d, Len() %d", len(got), tt.a.Len())
			}
			a, err := Decode(tt.want, testSrc, testDst, TTL)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, tt.a) {
				t.Errorf("Decode = %+v, want %+v", a, tt.a)
			}
			// The version 2 checksum does not cover the IP addresses: the
			// same bytes decode from any source.
			if _, err := Decode(tt.want, netip.MustParseAddr("10.9.9.9"), testDst, TTL); err != nil {
				t.Errorf("Decode from another source: %v", err)
			}
			if Password("secret") != goldenV2Pass.AuthData {
				t.Errorf("Password(secret) = % x", Password("secret"))
			}
		})
	}
}

// TestMarshalV2AgainstGopacket decodes our version 2 adverts with
// gopacket's independent VRRPv2 decoder, and checks the checksum with a
// naive sum over the message alone.
func TestMarshalV2AgainstGopacket(t *testing.T) {
	for _, a := range []Advert{goldenV2, goldenV2Pass, {
		Version: Version2, VRID: 255, Priority: 254, Interval: 255 * time.Second, AuthType: AuthPass, AuthData: Password("12345678"),
		Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("172.16.0.3")},
	}} {
		b, err := a.Marshal(nil, testSrc, testDst)
		if err != nil {
			t.Fatal(err)
		}
		pkt := gopacket.NewPacket(b, layers.LayerTypeVRRP, gopacket.Default)
		l, ok := pkt.Layer(layers.LayerTypeVRRP).(*layers.VRRPv2)
		if !ok {
			t.Fatalf("gopacket does not decode % x as VRRPv2: %v", b, pkt.ErrorLayer())
		}
		if l.Version != 2 || l.Type != layers.VRRPv2Advertisement || l.VirtualRtrID != a.VRID || l.Priority != a.Priority ||
			int(l.CountIPAddr) != len(a.Addresses) || uint8(l.AuthType) != uint8(a.AuthType) || time.Duration(l.AdverInt)*time.Second != a.Interval {
			t.Errorf("gopacket decodes % x as %+v, want %+v", b, l, a)
		}
		for i, ip := range l.IPAddress {
			if !ip.Equal(net.IP(a.Addresses[i].AsSlice())) {
				t.Errorf("address %d: gopacket %v, want %v", i, ip, a.Addresses[i])
			}
		}
		if got := b[len(b)-AuthDataLen:]; !bytes.Equal(got, a.AuthData[:]) {
			t.Errorf("Authentication Data % x, want % x", got, a.AuthData)
		}
		if naiveSum(b) != 0 {
			t.Errorf("checksum %#04x does not make the message sum to 0xffff", l.Checksum)
		}
	}
}

func TestReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want DropReason
	}{
		{ErrTooShort, DropMalformed}, {ErrVersion, DropVersion}, {ErrType, DropMalformed}, {ErrTTL, DropTTL},
		{ErrChecksum, DropChecksum}, {ErrAddrCount, DropMalformed}, {ErrInterval, DropMalformed}, {ErrFamily, DropMalformed},
		{ErrVRID, DropVRID}, {ErrOtherVersion, DropVersion}, {ErrAuth, DropAuth}, {ErrOtherInterval, DropInterval},
		{errFake{}, DropMalformed},
	} {
		if got := Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	for r, want := range map[DropReason]string{DropAuth: "auth", DropInterval: "interval", DropVersion: "version", NumDropReasons: "unknown"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(r), r.String(), want)
		}
	}
}

type errFake struct{}

func (errFake) Error() string { return "fake" }
