package arpctl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// IPv6 neighbour work (RFC 4861): unsolicited Neighbor Advertisements for
// VIPs, and next-hop MACs from the kernel's IPv6 neighbour table.

// etherTypeIPv6 is the EtherType of IPv6 frames (RFC 2464).
const etherTypeIPv6 = 0x86dd

// allNodesMAC is the Ethernet address of ff02::1, the all-nodes multicast
// group (RFC 2464 section 7: 33:33 and the low 32 bits of the address).
var allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}

// allNodes is ff02::1, where unsolicited advertisements go.
var allNodes = netip.MustParseAddr("ff02::1")

// An unsolicited Neighbor Advertisement as neighborAdvert builds it,
// offsets from the start of the Ethernet frame: the IPv6 header (RFC 8200
// section 3), the ICMPv6 message (RFC 4861 section 4.4) and one Target
// Link-Layer Address option (section 4.6.1).
//
//	 0      14                  54       58       62        78        86
//	+------+-------------------+--------+--------+---------+---------+
//	| eth  | IPv6 header       |type    |R|S|O|  | target  | option  |
//	|      | nxt 58, hop 255   |code sum|reserved| address | 2 1 MAC |
//	+------+-------------------+--------+--------+---------+---------+
const (
	naIPOff        = ethHdrLen
	naICMPOff      = naIPOff + 40
	naFlagsOff     = naICMPOff + 4
	naTargetOff    = naFlagsOff + 4
	naOptionOff    = naTargetOff + 16
	naLen          = naOptionOff + 8
	naPayloadLen   = naLen - naICMPOff
	icmpv6Proto    = 58
	icmpv6NA       = 136
	naFlagOverride = 0x20 // O, in the first flags byte
	ndHopLimit     = 255  // RFC 4861: a receiver drops ND messages with any other
	optTargetLL    = 2
)

// neighborAdvert returns an unsolicited Neighbor Advertisement (RFC 4861
// section 7.2.6) for vip from mac: to ff02::1 from vip itself, Override
// set and Solicited clear, with a Target Link-Layer Address option, so
// every neighbour that has an entry for vip takes mac for it (the IPv6
// counterpart of a gratuitous ARP; a neighbour without an entry ignores it).
func neighborAdvert(mac net.HardwareAddr, vip netip.Addr) []byte {
	f := make([]byte, naLen)
	copy(f[0:6], allNodesMAC)
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[ethTypeOff:], etherTypeIPv6)
	ip := f[naIPOff:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], naPayloadLen)
	ip[6] = icmpv6Proto
	ip[7] = ndHopLimit
	src, dst := vip.As16(), allNodes.As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
	f[naICMPOff] = icmpv6NA
	f[naFlagsOff] = naFlagOverride
	copy(f[naTargetOff:], src[:])
	f[naOptionOff] = optTargetLL
	f[naOptionOff+1] = 1 // in units of 8 bytes
	copy(f[naOptionOff+2:], mac)
	binary.BigEndian.PutUint16(f[naICMPOff+2:], icmpv6Checksum(src, dst, f[naICMPOff:]))
	return f
}

// icmpv6Checksum is the ICMPv6 checksum (RFC 4443 section 2.3) of msg,
// whose checksum field is zero, sent from src to dst: the RFC 1071 sum
// over the IPv6 pseudo-header (RFC 8200 section 8.1) and the message.
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += uint32(len(msg)) >> 16
	sum += uint32(len(msg)) & 0xffff
	sum += icmpv6Proto
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// ndResolve waits up to timeout for nextHop to appear in the kernel's
// IPv6 neighbour table of ifi, making the kernel resolve it: it sends an
// ICMPv6 echo request to dst (nextHop itself, or the address behind it)
// every resendInterval, and the kernel runs neighbour discovery to send
// it. The echo is a probe only; whether it is answered does not matter.
func ndResolve(ifi *net.Interface, dst, nextHop netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	to := &net.IPAddr{IP: dst.AsSlice()}
	if dst.Is6() && dst.IsLinkLocalUnicast() {
		to.Zone = ifi.Name
	}
	msg := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Data: []byte("gvs neighbour probe")}}
	deadline := time.Now().Add(timeout)
	for seq := 1; time.Now().Before(deadline); seq++ {
		msg.Body.(*icmp.Echo).Seq = seq
		b, err := msg.Marshal(nil) // the kernel fills in the checksum of a raw ICMPv6 socket
		if err != nil {
			return nil, err
		}
		if _, err := c.WriteTo(b, to); err != nil && !errors.Is(err, errHostUnreachable) {
			return nil, fmt.Errorf("probe %s: %w", dst, err)
		}
		resend := time.Now().Add(resendInterval)
		if resend.After(deadline) {
			resend = deadline
		}
		for time.Now().Before(resend) {
			if mac, err := neighbourMAC(ifi.Index, nextHop); err != nil || mac != nil {
				return mac, err
			}
			time.Sleep(ndPoll)
		}
	}
	if mac, err := neighbourMAC(ifi.Index, nextHop); err != nil || mac != nil {
		return mac, err
	}
	return nil, fmt.Errorf("no neighbour entry for %s within %v: %w", nextHop, timeout, os.ErrDeadlineExceeded)
}

// errHostUnreachable is what a probe's send may return while the kernel
// still holds a failed entry for the neighbour: the probe goes on.
var errHostUnreachable = unix.EHOSTUNREACH

// ndPoll is how often ndResolve looks at the neighbour table while it
// waits: the kernel resolves a neighbour on a LAN within a millisecond or
// two, and a netlink dump of one interface's table costs microseconds.
const ndPoll = 10 * time.Millisecond
