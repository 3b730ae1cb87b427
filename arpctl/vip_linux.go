package arpctl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddVIP adds vip/32 to ifname. It is idempotent: if vip is already on
// ifname (with any prefix length) nothing changes and added is false, so a
// caller removes only what it added.
func AddVIP(ifname string, vip netip.Addr) (added bool, err error) {
	wrap := func(err error) error { return fmt.Errorf("arpctl: add VIP %s on %s: %w", vip, ifname, err) }
	if !vip.Is4() {
		return false, wrap(errNotIPv4)
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

// RemoveVIP removes vip/32 from ifname. Removing an address that is not
// there is not an error.
func RemoveVIP(ifname string, vip netip.Addr) error {
	wrap := func(err error) error { return fmt.Errorf("arpctl: remove VIP %s on %s: %w", vip, ifname, err) }
	if !vip.Is4() {
		return wrap(errNotIPv4)
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

// HasVIP reports whether vip/32 is on ifname.
func HasVIP(ifname string, vip netip.Addr) (bool, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("arpctl: VIP %s on %s: %w", vip, ifname, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return false, fmt.Errorf("arpctl: VIP %s on %s: %w", vip, ifname, err)
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == vip {
			if ones, _ := a.Mask.Size(); ones == 32 {
				return true, nil
			}
		}
	}
	return false, nil
}

var errNotIPv4 = errors.New("not an IPv4 address")

func vipAddr(vip netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(32, 32)}}
}

func hasAddr(link netlink.Link, ip netip.Addr) (bool, error) {
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
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
