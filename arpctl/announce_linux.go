package arpctl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// etherTypeARP is the EtherType of ARP frames (RFC 826), the protocol the
// packet sockets here bind to.
const etherTypeARP = 0x0806

// zeroMAC is the target hardware address of an announcement and of a
// request: RFC 5227 section 2.1.1 says it SHOULD be zero.
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// Announce sends count gratuitous ARP requests for vip out of ifname, one
// every interval: an RFC 5227 section 3 announcement, with ifname's MAC as
// sender, sender IP = target IP = vip, a zero target MAC and the Ethernet
// broadcast address as destination.
//
// An IPv6 vip is announced with unsolicited Neighbor Advertisements
// instead (RFC 4861 section 7.2.6; see neighborAdvert).
func Announce(ifname string, vip netip.Addr, count int, interval time.Duration) error {
	wrap := func(err error) error { return fmt.Errorf("arpctl: announce %s on %s: %w", vip, ifname, err) }
	if !vip.Is4() && !vip.Is6() || vip.Is4In6() {
		return wrap(errNotUnicast)
	}
	if count < 1 {
		return wrap(fmt.Errorf("count %d: must be at least 1", count))
	}
	ifi, err := ethernetInterface(ifname)
	if err != nil {
		return wrap(err)
	}
	var frame []byte
	etherType := uint16(etherTypeARP)
	dst := &packet.Addr{HardwareAddr: ethernet.Broadcast}
	if vip.Is6() {
		frame = neighborAdvert(ifi.HardwareAddr, vip)
		etherType = etherTypeIPv6
		dst.HardwareAddr = allNodesMAC
	} else {
		p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, vip, zeroMAC, vip)
		if err != nil {
			return wrap(err)
		}
		if frame, err = arpFrame(p, ethernet.Broadcast); err != nil {
			return wrap(err)
		}
	}
	c, err := packet.Listen(ifi, packet.Raw, int(etherType), nil)
	if err != nil {
		return wrap(err)
	}
	defer c.Close()

	for i := range count {
		if i > 0 {
			time.Sleep(interval)
		}
		if _, err := c.WriteTo(frame, dst); err != nil {
			return wrap(err)
		}
	}
	return nil
}

// ethernetInterface returns ifname if it has a 6-byte MAC address.
func ethernetInterface(ifname string) (*net.Interface, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, errNoMAC
	}
	return ifi, nil
}

var errNoMAC = errors.New("interface has no Ethernet address")

// arpFrame wraps an ARP packet in an Ethernet frame to dst.
func arpFrame(p *arp.Packet, dst net.HardwareAddr) ([]byte, error) {
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := ethernet.Frame{
		Destination: dst,
		Source:      p.SenderHardwareAddr,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	return f.MarshalBinary()
}
