//go:build !linux

package arpctl

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"
)

var errUnsupported = fmt.Errorf("unsupported on %s", runtime.GOOS)

// AddVIP adds vip/32 (vip/128) to ifname. Only Linux is supported.
func AddVIP(ifname string, vip netip.Addr) (added bool, err error) {
	return false, fmt.Errorf("arpctl: add VIP %s on %s: %w", vip, ifname, errUnsupported)
}

// RemoveVIP removes vip/32 (vip/128) from ifname. Only Linux is supported.
func RemoveVIP(ifname string, vip netip.Addr) error {
	return fmt.Errorf("arpctl: remove VIP %s on %s: %w", vip, ifname, errUnsupported)
}

// Announce sends gratuitous ARP (IPv6: unsolicited neighbour
// advertisements) for vip. Only Linux is supported.
func Announce(ifname string, vip netip.Addr, count int, interval time.Duration) error {
	return fmt.Errorf("arpctl: announce %s on %s: %w", vip, ifname, errUnsupported)
}

// Resolve returns the MAC to send to for ip out of ifname. Only Linux is
// supported.
func Resolve(ifname string, ip netip.Addr, timeout time.Duration) (mac net.HardwareAddr, nextHop netip.Addr, err error) {
	return nil, netip.Addr{}, fmt.Errorf("arpctl: resolve %s on %s: %w", ip, ifname, errUnsupported)
}

// DefaultGateway returns the default route's gateway through ifname. Only
// Linux is supported.
func DefaultGateway(ifname string) (netip.Addr, error) {
	return netip.Addr{}, fmt.Errorf("arpctl: default gateway of %s: %w", ifname, errUnsupported)
}

// HasVIP reports whether vip/32 (vip/128) is on ifname. Only Linux is
// supported.
func HasVIP(ifname string, vip netip.Addr) (bool, error) {
	return false, fmt.Errorf("arpctl: VIP %s on %s: %w", vip, ifname, errUnsupported)
}
