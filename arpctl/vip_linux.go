package arpctl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddVIP adds vip/32 (an IPv6 vip: vip/128 without duplicate address
// detection, IFA_F_NODAD, so it is usable at once and a VIP that a real
// server also holds on its loopback is not declared a duplicate) to
// ifname. It is idempotent: if vip is already on ifname (with any prefix
// length) nothing changes and added is false, so a caller removes only
// what it added.
func AddVIP(ifname string, vip netip.Addr) (added bool, err error) {
	wrap := func(err error) error { return fmt.Errorf("arpctl: add VIP %s on %s: %w", vip, ifname, err) }
	if !vip.Is4() && !vip.Is6() || vip.Is4In6() || vip.Zone() != "" {
		return false, wrap(errNotUnicast)
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, wrap(err)
	}
	has, err := hasAddr(link, vip)
	if err != nil {
		return false, wrap(err)
	}
	if has {
		return false, nil
	}
	if err := netlink.AddrAdd(link, vipAddr(vip)); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return false, nil // added concurrently by someone else: theirs to remove
		}
		return false, wrap(err)
	}
	return true, nil
}

// RemoveVIP removes vip/32 (vip/128) from ifname. Removing an address
// that is not there is not an error.
func RemoveVIP(ifname string, vip netip.Addr) error {
	wrap := func(err error) error { return fmt.Errorf("arpctl: remove VIP %s on %s: %w", vip, ifname, err) }
	if !vip.Is4() && !vip.Is6() || vip.Is4In6() || vip.Zone() != "" {
		return wrap(errNotUnicast)
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return wrap(err)
	}
	if err := netlink.AddrDel(link, vipAddr(vip)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return wrap(err)
	}
	return nil
}

// HasVIP reports whether vip/32 (vip/128) is on ifname.
func HasVIP(ifname string, vip netip.Addr) (bool, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("arpctl: VIP %s on %s: %w", vip, ifname, err)
	}
	addrs, err := netlink.AddrList(link, family(vip))
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return false, fmt.Errorf("arpctl: VIP %s on %s: %w", vip, ifname, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == vip {
			if ones, _ := a.Mask.Size(); ones == vip.BitLen() {
				return true, nil
			}
		}
	}
	return false, nil
}

var errNotUnicast = errors.New("not an IPv4 or IPv6 address without a zone")

// family is the netlink address family of ip.
func family(ip netip.Addr) int {
	if ip.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// lifetimeForever is INFINITY_LIFE_TIME (include/net/addrconf.h), a
// valid lifetime that never ends. A variable, converted at run time: on a
// 32-bit int it becomes -1, netlink then sends no lifetimes, and the VIP
// is added preferred (as before the deprecation below).
var lifetimeForever = ^uint32(0)

// vipAddr is vip as a host address: /32, or /128 without DAD and
// deprecated (preferred lifetime 0, valid forever). Deprecated, it still
// receives traffic and answers neighbour solicitations, but the kernel
// does not pick it as the source of the host's own connections (RFC 6724
// rule 3): otherwise its longest-prefix rule, which Linux bounds by each
// address's prefix length, would prefer the /128 VIP over the
// interface's /64 for every neighbour on the LAN. A director's health
// checks then came from the VIP, and a DR real, which holds the VIP on
// lo, answered itself. (On a real server the VIP is on lo, and the rule
// that prefers the outgoing interface's addresses already keeps it out;
// deprecated there too, it costs nothing.) LVS set-up guides add IPv6
// VIPs with "preferred_lft 0" for this reason.
func vipAddr(vip netip.Addr) *netlink.Addr {
	bits := vip.BitLen()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
	if vip.Is6() {
		a.Flags = unix.IFA_F_NODAD
		a.ValidLft, a.PreferedLft = int(lifetimeForever), 0
	}
	return a
}

func hasAddr(link netlink.Link, ip netip.Addr) (bool, error) {
	addrs, err := netlink.AddrList(link, family(ip))
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return false, err
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return true, nil
		}
	}
	return false, nil
}
