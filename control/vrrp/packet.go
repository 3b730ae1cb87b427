package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// The VRRPv3 message, RFC 5798 section 5.1, for IPv4:
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
const (
	versionTypeOffset = 0 // version in the high nibble, type in the low one
	vridOffset        = 1
	priorityOffset    = 2
	countOffset       = 3
	intervalOffset    = 4 // 4 reserved bits, then 12 bits of centiseconds
	checksumOffset    = 6
	addressesOffset   = 8

	// HeaderLen is the length of the fixed part, before the addresses.
	HeaderLen = addressesOffset

	intervalMask = 0x0fff // the Max Adver Int bits of the 16-bit word at intervalOffset
)

// Protocol constants (RFC 5798 section 5).
const (
	Version           = 3   // section 5.2.1
	TypeAdvertisement = 1   // section 5.2.2, the only type
	IPProtocol        = 112 // section 5.1.1.4, the IPv4 protocol number
	TTL               = 255 // section 5.1.1.3: sent with, and required on receipt

	// MinInterval and MaxInterval bound Max Adver Int: 12 bits of
	// centiseconds, where 0 is invalid (section 5.2.7).
	MinInterval = 10 * time.Millisecond
	MaxInterval = intervalMask * 10 * time.Millisecond

	// MaxAddresses is the most IPv4 addresses one advert can carry: Count
	// IPvX Addr is one byte.
	MaxAddresses = 255
)

// IPv4Group is the destination of every IPv4 advertisement, 224.0.0.18
// (section 5.1.1.2).
var IPv4Group = netip.AddrFrom4([4]byte{224, 0, 0, 18})

// Errors from Parse. Each is returned unwrapped so that a caller can count
// them with a switch or errors.Is.
var (
	ErrTooShort  = errors.New("vrrp: packet shorter than the 8-byte header")
	ErrVersion   = errors.New("vrrp: version is not 3")
	ErrType      = errors.New("vrrp: type is not ADVERTISEMENT")
	ErrTTL       = errors.New("vrrp: IP TTL is not 255")
	ErrChecksum  = errors.New("vrrp: bad checksum")
	ErrAddrCount = errors.New("vrrp: address count does not match the packet length")
	ErrInterval  = errors.New("vrrp: advertisement interval is 0")
	ErrNotIPv4   = errors.New("vrrp: IP source or destination is not IPv4")
)

// Advert is a decoded VRRPv3 ADVERTISEMENT for IPv4.
type Advert struct {
	VRID      uint8
	Priority  uint8
	Interval  time.Duration // centisecond resolution, MinInterval..MaxInterval
	Addresses []netip.Addr  // IPv4, 1..MaxAddresses of them
}

// Len is the length of the marshalled advert.
func (a *Advert) Len() int { return HeaderLen + 4*len(a.Addresses) }

// Marshal appends the VRRP packet (not the IP header) to b, computing the
// checksum over the IPv4 pseudo-header (src, dst, protocol 112, VRRP length)
// as RFC 5798 section 5.2.8 says. The interval is truncated to whole
// centiseconds. It allocates only if b lacks the capacity.
func (a *Advert) Marshal(b []byte, src, dst netip.Addr) ([]byte, error) {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.Is4() || !dst.Is4() {
		return b, fmt.Errorf("vrrp: marshal from %s to %s: %w", src, dst, ErrNotIPv4)
	}
	if a.Interval < MinInterval || a.Interval > MaxInterval {
		return b, fmt.Errorf("vrrp: marshal: interval %v is outside %v..%v", a.Interval, MinInterval, MaxInterval)
	}
	if n := len(a.Addresses); n == 0 || n > MaxAddresses {
		return b, fmt.Errorf("vrrp: marshal: %d addresses, want 1..%d", n, MaxAddresses)
	}
	for _, ip := range a.Addresses {
		if !ip.Unmap().Is4() {
			return b, fmt.Errorf("vrrp: marshal: address %s is not IPv4", ip)
		}
	}
	cs := uint16(a.Interval / (10 * time.Millisecond))
	start := len(b)
	b = append(b,
		Version<<4|TypeAdvertisement,
		a.VRID,
		a.Priority,
		uint8(len(a.Addresses)),
		byte(cs>>8), byte(cs), // reserved bits are zero: cs <= intervalMask
		0, 0, // checksum, filled in below
	)
	for _, ip := range a.Addresses {
		v := ip.Unmap().As4()
		b = append(b, v[:]...)
	}
	sum := checksum(src.As4(), dst.As4(), b[start:])
	b[start+checksumOffset] = byte(sum >> 8)
	b[start+checksumOffset+1] = byte(sum)
	return b, nil
}

// Parse validates and decodes a VRRP packet received from src to dst with IP
// TTL ttl. The checks run in the order of RFC 5798 section 7.1 and the first
// failure is returned: ErrNotIPv4, ErrTooShort, ErrVersion, ErrType, ErrTTL,
// ErrChecksum, ErrAddrCount (the count is 0 or does not match the length),
// ErrInterval. The reserved bits are ignored, as section 5.2.6 says. Matching
// the VRID against the configured one is left to the caller.
//
// Parse allocates the Addresses slice; it is meant for the control path,
// where adverts arrive a few times a second.
func Parse(pkt []byte, src, dst netip.Addr, ttl uint8) (Advert, error) {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.Is4() || !dst.Is4() {
		return Advert{}, ErrNotIPv4
	}
	if len(pkt) < HeaderLen {
		return Advert{}, ErrTooShort
	}
	if pkt[versionTypeOffset]>>4 != Version {
		return Advert{}, ErrVersion
	}
	if pkt[versionTypeOffset]&0x0f != TypeAdvertisement {
		return Advert{}, ErrType
	}
	if ttl != TTL {
		return Advert{}, ErrTTL
	}
	// A correct checksum makes the sum over pseudo-header and message, checksum
	// field included, 0xffff; checksum returns its complement.
	if checksum(src.As4(), dst.As4(), pkt) != 0 {
		return Advert{}, ErrChecksum
	}
	n := int(pkt[countOffset])
	if n == 0 || len(pkt) != HeaderLen+4*n {
		return Advert{}, ErrAddrCount
	}
	cs := (uint16(pkt[intervalOffset])<<8 | uint16(pkt[intervalOffset+1])) & intervalMask
	if cs == 0 {
		return Advert{}, ErrInterval
	}
	a := Advert{
		VRID:      pkt[vridOffset],
		Priority:  pkt[priorityOffset],
		Interval:  time.Duration(cs) * 10 * time.Millisecond,
		Addresses: make([]netip.Addr, n),
	}
	for i := range a.Addresses {
		a.Addresses[i] = netip.AddrFrom4([4]byte(pkt[addressesOffset+4*i:]))
	}
	return a, nil
}

// checksum returns the Internet checksum (RFC 1071) of the IPv4 pseudo-header
// of RFC 5798 section 5.2.8 (source, destination, zero, protocol 112, VRRP
// length) followed by msg. Over a message whose checksum field is correct it
// returns 0. An odd trailing byte is padded with zero.
func checksum(src, dst [4]byte, msg []byte) uint16 {
	sum := uint32(src[0])<<8 | uint32(src[1])
	sum += uint32(src[2])<<8 | uint32(src[3])
	sum += uint32(dst[0])<<8 | uint32(dst[1])
	sum += uint32(dst[2])<<8 | uint32(dst[3])
	sum += IPProtocol
	sum += uint32(len(msg)) // at most 8+4*255 bytes in a valid advert; longer inputs fold below
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
