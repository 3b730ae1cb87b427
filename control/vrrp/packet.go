package vrrp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// The VRRPv3 message, RFC 5798 section 5.1, for IPv4 (and for IPv6, with
// 16-byte addresses: section 5.2.9):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Version| Type |   Virtual Rtr ID  |   Priority    |Count IPvX Addr|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|(rsvd) |     Max Adver Int     |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      IPv4 Address(es) ...                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The VRRPv2 message, RFC 3768 section 5.1: the same first word, then the
// Auth Type and the interval in whole seconds where version 3 has its
// interval, and 8 bytes of Authentication Data after the addresses:
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Auth Type   |   Adver Int   |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         IP Address (1..n)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Authentication Data (1)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Authentication Data (2)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	versionTypeOffset = 0 // version in the high nibble, type in the low one
	vridOffset        = 1
	priorityOffset    = 2
	countOffset       = 3
	intervalOffset    = 4 // v3: 4 reserved bits, then 12 bits of centiseconds
	authTypeOffset    = 4 // v2: Auth Type
	secondsOffset     = 5 // v2: Adver Int, in seconds
	checksumOffset    = 6
	addressesOffset   = 8

	// HeaderLen is the length of the fixed part, before the addresses.
	HeaderLen = addressesOffset
	// AuthDataLen is the length of VRRPv2's Authentication Data, which
	// follows the addresses whatever the Auth Type.
	AuthDataLen = 8

	intervalMask = 0x0fff // the Max Adver Int bits of the 16-bit word at intervalOffset
)

// Version is a VRRP version, the high nibble of an advert's first byte.
// The zero value is invalid.
type Version uint8

const (
	Version2 Version = 2 // RFC 3768; keepalived's default (vrrp_version 2)
	Version3 Version = 3 // RFC 5798
)

func (v Version) String() string { return "VRRPv" + strconv.Itoa(int(v)) }

// AuthType is a VRRPv2 Auth Type (RFC 2338 section 5.3.6; RFC 3768 keeps
// the values but deprecates their use, keepalived still implements them).
// Its values are the wire's, so here the zero value, AuthNone, is valid.
type AuthType uint8

const (
	AuthNone AuthType = 0 // no authentication; Authentication Data zero
	AuthPass AuthType = 1 // Simple Text Password: up to 8 bytes, zero-padded, in Authentication Data
	AuthAH   AuthType = 2 // IPsec AH: keepalived then sends IP protocol 51, not 112; not implemented here
)

func (t AuthType) String() string {
	switch t {
	case AuthNone:
		return "none"
	case AuthPass:
		return "pass"
	case AuthAH:
		return "ah"
	}
	return "AuthType(" + strconv.Itoa(int(t)) + ")"
}

// Protocol constants (RFC 5798 section 5, RFC 3768 section 5).
const (
	TypeAdvertisement = 1   // the only type, in both versions
	IPProtocol        = 112 // the IPv4 protocol number
	TTL               = 255 // sent with, and required on receipt

	// MinInterval and MaxInterval bound a VRRPv3 Max Adver Int: 12 bits of
	// centiseconds, where 0 is invalid (RFC 5798 section 5.2.7).
	MinInterval = 10 * time.Millisecond
	MaxInterval = intervalMask * 10 * time.Millisecond

	// MinIntervalV2 and MaxIntervalV2 bound a VRRPv2 Adver Int: 8 bits of
	// whole seconds (RFC 3768 section 5.3.7); 0 is invalid.
	MinIntervalV2 = time.Second
	MaxIntervalV2 = 255 * time.Second

	// MaxAddresses is the most addresses one advert can carry: Count
	// IPvX Addr is one byte.
	MaxAddresses = 255

	// IPv6NextHeader is the IPv6 Next Header of VRRP, the same 112 (RFC
	// 5798 section 5.1.2.4); the hop limit must be TTL, 255 (section
	// 5.1.2.3).
	IPv6NextHeader = IPProtocol
)

// IPv4Group is the destination of every IPv4 advertisement, 224.0.0.18
// (RFC 5798 section 5.1.1.2, RFC 3768 section 5.2.2).
var IPv4Group = netip.AddrFrom4([4]byte{224, 0, 0, 18})

// IPv6Group is the destination of every IPv6 advertisement, ff02::12, the
// link-local scope VRRP group (RFC 5798 section 5.1.2.2). An IPv6 advert
// comes from the interface's link-local address (section 5.1.2.1).
var IPv6Group = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})

// ValidInterval reports whether d can be carried as the advertisement
// interval of version v: whole centiseconds in MinInterval..MaxInterval for
// version 3, whole seconds in MinIntervalV2..MaxIntervalV2 for version 2.
func (v Version) ValidInterval(d time.Duration) bool {
	switch v {
	case Version2:
		return d >= MinIntervalV2 && d <= MaxIntervalV2 && d%time.Second == 0
	case Version3:
		return d >= MinInterval && d <= MaxInterval && d%(10*time.Millisecond) == 0
	}
	return false
}

// DropReason is why a received advert was dropped: the label it is counted
// under.
type DropReason int

// Drop reasons, in the order of the checks of RFC 5798 section 7.1 and
// RFC 3768 section 7.1.
const (
	DropMalformed DropReason = iota // too short, bad IP header, wrong type, address count or interval
	DropTTL                         // IP TTL not 255
	DropVersion                     // neither version 2 nor 3, or the version this router does not speak
	DropChecksum                    // bad checksum
	DropVRID                        // another virtual router's advert
	DropAuth                        // VRRPv2: another Auth Type or password
	DropInterval                    // VRRPv2: another Adver Int, which RFC 3768 says to drop
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"malformed", "ttl", "version", "checksum", "vrid", "auth", "interval"}

func (r DropReason) String() string {
	if r >= 0 && r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropError is a reason to drop a received advert, with the counter it
// goes under. The errors of Decode and Config.Match are the DropError
// values below, returned unwrapped, so errors.Is tells them apart and
// [Reason] gives their counter.
type DropError struct {
	Reason DropReason
	text   string
}

func (e *DropError) Error() string { return e.text }

// Reason returns the drop reason of an error of Decode or Config.Match:
// its DropError's, or DropMalformed for any other error.
func Reason(err error) DropReason {
	var e *DropError
	if errors.As(err, &e) {
		return e.Reason
	}
	return DropMalformed
}

// Errors of Decode, which checks a packet on its own.
var (
	ErrTooShort  = &DropError{DropMalformed, "vrrp: packet shorter than the 8-byte header"}
	ErrVersion   = &DropError{DropVersion, "vrrp: version is neither 2 nor 3"}
	ErrType      = &DropError{DropMalformed, "vrrp: type is not ADVERTISEMENT"}
	ErrTTL       = &DropError{DropTTL, "vrrp: IP TTL is not 255"}
	ErrChecksum  = &DropError{DropChecksum, "vrrp: bad checksum"}
	ErrAddrCount = &DropError{DropMalformed, "vrrp: address count does not match the packet length"}
	ErrInterval  = &DropError{DropMalformed, "vrrp: advertisement interval is 0"}
	ErrFamily    = &DropError{DropMalformed, "vrrp: IP source and destination not both IPv4 or both IPv6"}
)

// Errors of Config.Match, which checks a decoded advert against the
// virtual router this host runs. All but ErrVRID mean a peer for our
// virtual router configured differently from us: it cannot hear us, nor we
// it, so both would be master.
var (
	ErrVRID          = &DropError{DropVRID, "vrrp: advert for another virtual router"}
	ErrOtherVersion  = &DropError{DropVersion, "vrrp: advert for our virtual router in the other VRRP version"}
	ErrAuth          = &DropError{DropAuth, "vrrp: VRRPv2 advert whose Auth Type or password is not ours"}
	ErrOtherInterval = &DropError{DropInterval, "vrrp: VRRPv2 advert with another advertisement interval"}
)

// Advert is a decoded VRRP ADVERTISEMENT: for IPv4, of either version, or
// for IPv6, VRRPv3 only (RFC 3768 is IPv4 only).
type Advert struct {
	Version   Version
	VRID      uint8
	Priority  uint8
	Interval  time.Duration // version 3: centiseconds, MinInterval..MaxInterval; version 2: seconds, MinIntervalV2..MaxIntervalV2
	Addresses []netip.Addr  // of the advert's IP family, 1..MaxAddresses of them

	// Version 2 only; zero in version 3.
	AuthType AuthType
	AuthData [AuthDataLen]byte // for AuthPass the password, zero-padded
}

// Len is the length of the marshalled advert (addresses of the family of
// the first one).
func (a *Advert) Len() int {
	w := 4
	if len(a.Addresses) > 0 && is6(a.Addresses[0]) {
		w = 16
	}
	n := HeaderLen + w*len(a.Addresses)
	if a.Version == Version2 {
		n += AuthDataLen
	}
	return n
}

// Marshal appends the VRRP packet (not the IP header) to b, for IPv4 when
// src and dst are IPv4 addresses and for IPv6 when they are IPv6 ones; the
// addresses must be of that family. A version 3 checksum covers the IP
// pseudo-header (IPv4: src, dst, protocol 112, VRRP length; IPv6, RFC 8200
// section 8.1: src, dst, 32-bit VRRP length, next header 112) and the
// message, as RFC 5798 section 5.2.8 says; a version 2 checksum the
// message alone (RFC 3768 section 5.3.8), Authentication Data included,
// which Marshal writes as given. IPv6 takes version 3 only. The interval
// must be one the version can carry (Version.ValidInterval). It allocates
// only if b lacks the capacity.
func (a *Advert) Marshal(b []byte, src, dst netip.Addr) ([]byte, error) {
	src, dst = src.Unmap(), dst.Unmap()
	v6 := is6(src)
	if !src.IsValid() || !dst.IsValid() || is6(dst) != v6 {
		return b, fmt.Errorf("vrrp: marshal from %s to %s: %w", src, dst, ErrFamily)
	}
	if v6 && a.Version != Version3 {
		return b, fmt.Errorf("vrrp: marshal: %v over IPv6: only VRRPv3 (RFC 5798) runs over IPv6", a.Version)
	}
	if a.Version != Version2 && a.Version != Version3 {
		return b, fmt.Errorf("vrrp: marshal: version %d is neither 2 nor 3", a.Version)
	}
	if !a.Version.ValidInterval(a.Interval) {
		if a.Version == Version2 {
			return b, fmt.Errorf("vrrp: marshal: %v interval %v is not whole seconds in %v..%v", a.Version, a.Interval, MinIntervalV2, MaxIntervalV2)
		}
		return b, fmt.Errorf("vrrp: marshal: %v interval %v is not whole centiseconds in %v..%v", a.Version, a.Interval, MinInterval, MaxInterval)
	}
	if a.Version == Version3 && (a.AuthType != AuthNone || a.AuthData != [AuthDataLen]byte{}) {
		return b, errors.New("vrrp: marshal: VRRPv3 has no authentication (RFC 5798 section 9)")
	}
	if n := len(a.Addresses); n == 0 || n > MaxAddresses {
		return b, fmt.Errorf("vrrp: marshal: %d addresses, want 1..%d", n, MaxAddresses)
	}
	for _, ip := range a.Addresses {
		// An IPv6 advert carries 16 bytes whatever they are (an
		// IPv4-mapped address too, as Decode reads it).
		if v6 && !ip.Is6() || !v6 && !ip.Unmap().Is4() {
			return b, fmt.Errorf("vrrp: marshal: address %s is not of the family of %s", ip, src)
		}
	}
	start := len(b)
	var w4, w5 byte // the second word's first two bytes
	if a.Version == Version2 {
		w4, w5 = byte(a.AuthType), byte(a.Interval/time.Second)
	} else {
		cs := uint16(a.Interval / (10 * time.Millisecond))
		w4, w5 = byte(cs>>8), byte(cs) // reserved bits are zero: cs <= intervalMask
	}
	b = append(b,
		byte(a.Version)<<4|TypeAdvertisement,
		a.VRID,
		a.Priority,
		uint8(len(a.Addresses)),
		w4, w5,
		0, 0, // checksum, filled in below
	)
	for _, ip := range a.Addresses {
		if v6 {
			v := ip.As16()
			b = append(b, v[:]...)
		} else {
			v := ip.Unmap().As4()
			b = append(b, v[:]...)
		}
	}
	var sum uint16
	switch {
	case a.Version == Version2:
		b = append(b, a.AuthData[:]...)
		sum = checksum(0, b[start:])
	case v6:
		sum = checksum(pseudoHeaderSum6(src.As16(), dst.As16(), len(b)-start), b[start:])
	default:
		sum = checksum(pseudoHeaderSum(src.As4(), dst.As4(), len(b)-start), b[start:])
	}
	b[start+checksumOffset] = byte(sum >> 8)
	b[start+checksumOffset+1] = byte(sum)
	return b, nil
}

// Decode validates and decodes a VRRP packet of version 2 or 3 received
// from src to dst with IP TTL (IPv6: hop limit) ttl, and reports the
// version it saw in the Advert. src and dst say the family: IPv4, or IPv6
// with 16-byte addresses in the advert and version 3 only (a version 2
// packet over IPv6 is ErrVersion). The checks run in the order of RFC 5798
// section 7.1 and RFC 3768 section 7.1, and the first failure is returned:
// ErrFamily, ErrTooShort, ErrVersion, ErrType, ErrTTL, ErrChecksum
// (computed as the version and the family say),
// ErrAddrCount (the count is 0 or does not match the length, which in
// version 2 includes the Authentication Data), ErrInterval. Version 3's
// reserved bits are ignored, as RFC 5798 section 5.2.6 says. What depends
// on the local configuration (the VRID, the version spoken, version 2's
// authentication and interval) is Config.Match's.
//
// Decode allocates the Addresses slice; it is meant for the control path,
// where adverts arrive a few times a second.
func Decode(pkt []byte, src, dst netip.Addr, ttl uint8) (Advert, error) {
	src, dst = src.Unmap(), dst.Unmap()
	v6 := is6(src)
	if !src.IsValid() || !dst.IsValid() || is6(dst) != v6 {
		return Advert{}, ErrFamily
	}
	if len(pkt) < HeaderLen {
		return Advert{}, ErrTooShort
	}
	v := Version(pkt[versionTypeOffset] >> 4)
	if v != Version3 && (v != Version2 || v6) {
		return Advert{}, ErrVersion
	}
	if pkt[versionTypeOffset]&0x0f != TypeAdvertisement {
		return Advert{}, ErrType
	}
	if ttl != TTL {
		return Advert{}, ErrTTL
	}
	// A correct checksum makes the one's complement sum, checksum field
	// included, 0xffff; checksum returns its complement.
	var sum uint32
	switch {
	case v6:
		sum = pseudoHeaderSum6(src.As16(), dst.As16(), len(pkt))
	case v == Version3:
		sum = pseudoHeaderSum(src.As4(), dst.As4(), len(pkt))
	}
	if checksum(sum, pkt) != 0 {
		return Advert{}, ErrChecksum
	}
	n := int(pkt[countOffset])
	trailer := 0
	if v == Version2 {
		trailer = AuthDataLen
	}
	w := 4
	if v6 {
		w = 16
	}
	if n == 0 || len(pkt) != HeaderLen+w*n+trailer {
		return Advert{}, ErrAddrCount
	}
	a := Advert{Version: v, VRID: pkt[vridOffset], Priority: pkt[priorityOffset]}
	if v == Version2 {
		a.Interval = time.Duration(pkt[secondsOffset]) * time.Second
		a.AuthType = AuthType(pkt[authTypeOffset])
		copy(a.AuthData[:], pkt[HeaderLen+4*n:])
	} else {
		cs := (uint16(pkt[intervalOffset])<<8 | uint16(pkt[intervalOffset+1])) & intervalMask
		a.Interval = time.Duration(cs) * 10 * time.Millisecond
	}
	if a.Interval == 0 {
		return Advert{}, ErrInterval
	}
	a.Addresses = make([]netip.Addr, n)
	for i := range a.Addresses {
		if v6 {
			a.Addresses[i] = netip.AddrFrom16([16]byte(pkt[addressesOffset+16*i:]))
		} else {
			a.Addresses[i] = netip.AddrFrom4([4]byte(pkt[addressesOffset+4*i:]))
		}
	}
	return a, nil
}

// is6 reports whether a is an IPv6 address that is not IPv4-mapped: the
// family of an advert and of its addresses.
func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// Password returns the Authentication Data of a VRRPv2 advert with
// AuthPass and password pw, as keepalived sends it: pw zero-padded (or cut)
// to AuthDataLen bytes.
func Password(pw string) [AuthDataLen]byte {
	var d [AuthDataLen]byte
	copy(d[:], pw)
	return d
}

// authEqual compares Authentication Data in constant time: a password is a
// secret, however weak.
func authEqual(a, b [AuthDataLen]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// pseudoHeaderSum is the one's complement sum, unfolded, of the IPv4
// pseudo-header of RFC 5798 section 5.2.8: source, destination, zero,
// protocol 112 and the VRRP message's length.
func pseudoHeaderSum(src, dst [4]byte, length int) uint32 {
	sum := uint32(src[0])<<8 | uint32(src[1])
	sum += uint32(src[2])<<8 | uint32(src[3])
	sum += uint32(dst[0])<<8 | uint32(dst[1])
	sum += uint32(dst[2])<<8 | uint32(dst[3])
	sum += IPProtocol
	sum += uint32(length) & 0xffff // a valid advert is at most 8+4*255+8 bytes
	return sum
}

// pseudoHeaderSum6 is pseudoHeaderSum for IPv6 (RFC 8200 section 8.1):
// source, destination, the upper-layer packet length as 32 bits, three
// zero bytes and next header 112.
func pseudoHeaderSum6(src, dst [16]byte, length int) uint32 {
	var sum uint32
	for i := 0; i < 16; i += 2 {
		sum += uint32(src[i])<<8 | uint32(src[i+1])
		sum += uint32(dst[i])<<8 | uint32(dst[i+1])
	}
	sum += uint32(length)>>16 + uint32(length)&0xffff
	sum += IPv6NextHeader
	return sum
}

// checksum returns the Internet checksum (RFC 1071) of msg, starting from
// the unfolded sum initial: 0 for VRRPv2, pseudoHeaderSum for VRRPv3. Over
// a message whose checksum field is correct it returns 0. An odd trailing
// byte is padded with zero.
func checksum(initial uint32, msg []byte) uint16 {
	sum := initial
	i := 0
	for ; i+1 < len(msg); i += 2 {
		sum += uint32(msg[i])<<8 | uint32(msg[i+1])
		if sum >= 1<<31 { // fold early so that a long input cannot overflow
			sum = sum&0xffff + sum>>16
		}
	}
	if i < len(msg) {
		sum += uint32(msg[i]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
