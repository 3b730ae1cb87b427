package arpctl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// resendInterval is how often Resolve repeats its ARP request while it
// waits. Linux retransmits every retrans_time_ms (1s by default); a quarter
// of that gives a caller with a one-second timeout four tries, so one lost
// request does not cost the whole timeout.
const resendInterval = 250 * time.Millisecond

// usableNUD are the neighbour states whose MAC the kernel itself would send
// to (rtnetlink(7), NUD_*): confirmed, stale but still used, being
// re-confirmed, or configured.
const usableNUD = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT

// ARP frames are 42 bytes, 60 with Ethernet padding; anything longer is
// still only read up to here.
const arpReadBuf = 128

// Resolve returns the MAC address to send to for ip out of ifname, and the
// next hop it belongs to: ip itself if it is on-link, else the gateway of
// the kernel's route to ip through ifname (ip route get ip oif ifname). It
// reads the kernel neighbour table first; if the next hop is not there in a
// usable state, it sends ARP requests and waits up to timeout for a reply.
// For an IPv6 ip it reads the kernel's IPv6 neighbour table, and when the
// next hop is not there has the kernel run neighbour discovery (RFC 4861)
// by sending ip an ICMPv6 echo request, until the entry appears or timeout
// passes. A timeout error wraps os.ErrDeadlineExceeded.
func Resolve(ifname string, ip netip.Addr, timeout time.Duration) (mac net.HardwareAddr, nextHop netip.Addr, err error) {
	wrap := func(err error) error { return fmt.Errorf("arpctl: resolve %s on %s: %w", ip, ifname, err) }
	if !ip.Is4() && !ip.Is6() || ip.Is4In6() {
		return nil, netip.Addr{}, wrap(errNotUnicast)
	}
	ifi, err := ethernetInterface(ifname)
	if err != nil {
		return nil, netip.Addr{}, wrap(err)
	}
	nextHop, src, err := routeNextHop(ifi, ip)
	if err != nil {
		return nil, netip.Addr{}, wrap(err)
	}
	if mac, err = neighbourMAC(ifi.Index, nextHop); err != nil || mac != nil {
		if err != nil {
			return nil, nextHop, wrap(err)
		}
		return mac, nextHop, nil
	}
	if ip.Is6() {
		mac, err = ndResolve(ifi, ip, nextHop, timeout)
	} else {
		mac, err = arpResolve(ifi, src, nextHop, timeout)
	}
	if err != nil {
		return nil, nextHop, wrap(err)
	}
	return mac, nextHop, nil
}

// routeNextHop asks the kernel for its route to ip through ifi and returns
// the next hop and the preferred source address (invalid if the route has
// none).
func routeNextHop(ifi *net.Interface, ip netip.Addr) (nextHop, src netip.Addr, err error) {
	routes, err := netlink.RouteGetWithOptions(ip.AsSlice(), &netlink.RouteGetOptions{OifIndex: ifi.Index})
	if err != nil {
		return nextHop, src, fmt.Errorf("route lookup: %w", err)
	}
	if len(routes) == 0 {
		return nextHop, src, errors.New("route lookup: no route")
	}
	r := routes[0]
	switch {
	case r.Type == unix.RTN_LOCAL:
		return nextHop, src, errors.New("address is local")
	case r.Type != unix.RTN_UNICAST:
		return nextHop, src, fmt.Errorf("route lookup: route type %d is not unicast", r.Type)
	case r.LinkIndex != ifi.Index:
		return nextHop, src, fmt.Errorf("route lookup: route leaves through interface index %d", r.LinkIndex)
	}
	nextHop = ip
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && gw.Unmap().Is4() == ip.Is4() {
		nextHop = gw.Unmap()
	}
	if s, ok := netip.AddrFromSlice(r.Src); ok {
		src = s.Unmap()
	}
	return nextHop, src, nil
}

// neighbourMAC returns the MAC of ip in the kernel neighbour table of the
// interface, or nil if it is not there in a usable state.
func neighbourMAC(index int, ip netip.Addr) (net.HardwareAddr, error) {
	neighs, err := netlink.NeighList(index, family(ip))
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("neighbour table: %w", err)
	}
	for _, n := range neighs {
		got, ok := netip.AddrFromSlice(n.IP)
		if !ok || got.Unmap() != ip || n.State&usableNUD == 0 || !unicastMAC(n.HardwareAddr) {
			continue
		}
		return n.HardwareAddr, nil
	}
	return nil, nil
}

// arpResolve broadcasts ARP requests for ip from ifi, one every
// resendInterval, until one is answered or timeout passes. Between tries
// it looks at the kernel table again, which may have learned ip meanwhile.
// src may be invalid: then the requests are RFC 5227 probes from 0.0.0.0.
func arpResolve(ifi *net.Interface, src, ip netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	if !src.IsValid() {
		src = netip.IPv4Unspecified()
	}
	p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, src, zeroMAC, ip)
	if err != nil {
		return nil, err
	}
	frame, err := arpFrame(p, ethernet.Broadcast)
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()

	dst := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	buf := make([]byte, arpReadBuf)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := c.WriteTo(frame, dst); err != nil {
			return nil, err
		}
		wait := time.Now().Add(resendInterval)
		if wait.After(deadline) {
			wait = deadline
		}
		if err := c.SetReadDeadline(wait); err != nil {
			return nil, err
		}
		for {
			n, _, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return nil, err
			}
			if mac := arpSenderMAC(buf[:n], ip); mac != nil {
				return mac, nil
			}
		}
		if mac, err := neighbourMAC(ifi.Index, ip); err != nil || mac != nil {
			return mac, err
		}
	}
	return nil, fmt.Errorf("no ARP reply from %s within %v: %w", ip, timeout, os.ErrDeadlineExceeded)
}

// Offsets in an Ethernet II header (IEEE 802.3 clause 3.2.6):
//
//	+--------------------+--------------------+-----------+---------
//	| destination MAC 6  |   source MAC 6     | EtherType | payload
//	+--------------------+--------------------+-----------+---------
const (
	ethTypeOff = 12
	ethHdrLen  = 14
)

// arpSenderMAC returns the sender MAC of frame if it is an ARP request or
// reply sent by ip: either tells where ip lives.
func arpSenderMAC(frame []byte, ip netip.Addr) net.HardwareAddr {
	if len(frame) < ethHdrLen || frame[ethTypeOff] != etherTypeARP>>8 || frame[ethTypeOff+1] != etherTypeARP&0xff {
		return nil
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(frame[ethHdrLen:]); err != nil {
		return nil
	}
	if p.SenderIP != ip || !unicastMAC(p.SenderHardwareAddr) {
		return nil
	}
	if p.Operation != arp.OperationReply && p.Operation != arp.OperationRequest {
		return nil
	}
	return p.SenderHardwareAddr
}

// unicastMAC reports whether mac is a 6-byte unicast, non-zero address.
func unicastMAC(mac net.HardwareAddr) bool {
	if len(mac) != 6 || mac[0]&1 != 0 {
		return false
	}
	for _, b := range mac {
		if b != 0 {
			return true
		}
	}
	return false
}

// DefaultGateway returns the gateway of the main table's IPv4 default
// route through ifname: where replies to clients off the local network
// go. An interface without one is an error.
func DefaultGateway(ifname string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("arpctl: default gateway of %s: %w", ifname, err)
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: ifi.Index, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("arpctl: default gateway of %s: %w", ifname, err)
	}
	for _, r := range routes {
		if ones, _ := maskOf(r.Dst); ones != 0 {
			continue
		}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok && gw.Unmap().Is4() {
			return gw.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("arpctl: %s has no IPv4 default route with a gateway", ifname)
}

// maskOf returns the prefix length of a route destination; nil is the
// default route.
func maskOf(dst *net.IPNet) (int, int) {
	if dst == nil {
		return 0, 32
	}
	return dst.Mask.Size()
}
