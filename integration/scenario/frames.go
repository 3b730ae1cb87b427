package scenario

import (
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/integration/lab"
)

// checkFrames counts, from the captures, the replies that left the
// director, the resets and ICMP errors its kernel sent for VIP traffic,
// and packets with data that reached a real server twice.
func checkFrames(l *lab.Lab, hosts []*lab.Host, frames [][]lab.Frame, v6 bool, res *Result) {
	if v6 {
		checkFrames6(l, hosts, frames, res)
		return
	}
	vip := VIP.As4()
	for i, h := range hosts {
		seen := map[string]int{}
		for _, f := range frames[i] {
			ip, ok := ipv4Of(f.Data)
			if !ok {
				continue
			}
			if h == l.Director {
				directorFrame(l, f, ip, vip, res)
				continue
			}
			if f.Outgoing || !hasData(ip) {
				continue
			}
			k := string(ip)
			seen[k]++
			if seen[k] == 2 {
				res.Duplicates++
			}
		}
	}
}

// directorFrame classifies a frame captured on the director. gvsd's own
// transmissions bypass the qdisc and so the capture; what the capture shows
// is what arrived (replies from real servers, in NAT and FULLNAT) and what
// the director's kernel sent (which must never be an RST or ICMP error for
// VIP traffic).
func directorFrame(l *lab.Lab, f lab.Frame, ip header.IPv4, vip [4]byte, res *Result) {
	l4 := ip.Payload()
	if !f.Outgoing {
		for _, r := range l.Reals {
			if ip.Source() == r.Addr.As4() && (ip.Protocol() == header.ProtoTCP || ip.Protocol() == header.ProtoUDP) {
				res.DirectorReplies++
			}
		}
		return
	}
	switch ip.Protocol() {
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		if tcp.IsValid(len(l4)) && ip.Source() == vip && tcp.Flags()&header.TCPFlagRst != 0 {
			res.KernelResets++
		}
	case header.ProtoICMP:
		icmp := header.ICMPv4(l4)
		if len(icmp) >= header.ICMPv4MinLen && icmp.IsError() &&
			!(icmp.Type() == header.ICMPv4DestUnreachable && icmp.Code() == header.ICMPv4FragmentationNeeded) {
			res.KernelResets++
		}
	}
}

func ipv4Of(b []byte) (header.IPv4, bool) {
	if len(b) < header.EthernetLen+header.IPv4MinLen || header.Ethernet(b).Type() != header.EtherTypeIPv4 {
		return nil, false
	}
	ip := header.IPv4(b[header.EthernetLen:])
	if !ip.IsValid(len(ip)) {
		return nil, false
	}
	return ip[:ip.TotalLength()], true
}

// hasData reports whether a packet (or the packet inside IPIP) carries
// TCP or UDP payload: only those are never legitimately sent twice
// byte for byte.
func hasData(ip header.IPv4) bool {
	if ip.Protocol() == header.ProtoIPIP {
		inner := header.IPv4(ip.Payload())
		if !inner.IsValid(len(inner)) {
			return false
		}
		ip = inner[:inner.TotalLength()]
	}
	if ip.IsFragment() {
		return true
	}
	l4 := ip.Payload()
	switch ip.Protocol() {
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		return tcp.IsValid(len(l4)) && len(l4) > tcp.DataOffset()
	case header.ProtoUDP:
		return len(l4) > header.UDPLen
	}
	return false
}

// checkFrames6 is checkFrames for a scenario over IPv6 (Options.IPv6):
// the same counts of IPv6 frames, the VIP being lab.VIP6.
func checkFrames6(l *lab.Lab, hosts []*lab.Host, frames [][]lab.Frame, res *Result) {
	vip := lab.VIP6.As16()
	for i, h := range hosts {
		seen := map[string]int{}
		for _, f := range frames[i] {
			ip, ok := ipv6Of(f.Data)
			if !ok {
				continue
			}
			if h == l.Director {
				directorFrame6(l, f, ip, vip, res)
				continue
			}
			if f.Outgoing || !hasData6(ip) {
				continue
			}
			k := string(ip)
			seen[k]++
			if seen[k] == 2 {
				res.Duplicates++
			}
		}
	}
}

// directorFrame6 is directorFrame for an IPv6 frame: a reply from a real
// server's IPv6 address arriving, or a reset or ICMPv6 error (other than
// Packet Too Big) that the director's kernel sent from the VIP.
func directorFrame6(l *lab.Lab, f lab.Frame, ip header.IPv6, vip [16]byte, res *Result) {
	l4 := ip.Payload()
	nh := ip.NextHeader()
	if !f.Outgoing {
		for _, r := range l.Reals {
			if ip.Source() == r.Addr6.As16() && (nh == header.ProtoTCP || nh == header.ProtoUDP) {
				res.DirectorReplies++
			}
		}
		return
	}
	switch nh {
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		if tcp.IsValid(len(l4)) && ip.Source() == vip && tcp.Flags()&header.TCPFlagRst != 0 {
			res.KernelResets++
		}
	case header.ProtoICMPv6:
		icmp := header.ICMPv6(l4)
		if icmp.IsValid() && icmp.IsError() && icmp.Type() != header.ICMPv6PacketTooBig {
			res.KernelResets++
		}
	}
}

func ipv6Of(b []byte) (header.IPv6, bool) {
	if len(b) < header.EthernetLen+header.IPv6MinLen || header.Ethernet(b).Type() != header.EtherTypeIPv6 {
		return nil, false
	}
	ip := header.IPv6(b[header.EthernetLen:])
	if !ip.IsValid(len(ip)) {
		return nil, false
	}
	return ip[:header.IPv6MinLen+int(ip.PayloadLength())], true
}

// hasData6 is hasData for an IPv6 packet, or the IPv6 packet inside
// IPv6-in-IPv6; a fragment counts as data.
func hasData6(ip header.IPv6) bool {
	if ip.NextHeader() == header.ProtoIPv6 {
		inner := header.IPv6(ip.Payload())
		if !inner.IsValid(len(inner)) {
			return false
		}
		ip = inner[:header.IPv6MinLen+int(inner.PayloadLength())]
	}
	l4 := ip.Payload()
	switch ip.NextHeader() {
	case header.ProtoIPv6Frag:
		return true
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		return tcp.IsValid(len(l4)) && len(l4) > tcp.DataOffset()
	case header.ProtoUDP:
		return len(l4) > header.UDPLen
	}
	return false
}
