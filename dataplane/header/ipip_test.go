package header_test

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

func TestEncapIPIP(t *testing.T) {
	for _, tt := range []struct {
		name    string
		flags   layers.IPv4Flag
		tos     uint8
		trailer int // bytes after the inner packet (Ethernet padding)
	}{
		{"DF set", layers.IPv4DontFragment, 0x2e, 0},
		{"DF clear", 0, 0x00, 0},
		{"ECN and padding after the inner packet", layers.IPv4DontFragment, 0x03, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inIP := gpIPv4(layers.IPProtocolTCP, cip, vip)
			inIP.Flags, inIP.TOS = tt.flags, tt.tos
			inner := serialize(t, inIP, gpTCP(), gopacket.Payload("tunnel me"))
			b := make([]byte, header.IPIPOverhead+len(inner)+tt.trailer)
			for i := range b[:header.IPIPOverhead] {
				b[i] = 0x5a // headroom holds garbage
			}
			copy(b[header.IPIPOverhead:], inner)

			outer := header.EncapIPIP(b, dirIP, rip, 64)

			if len(outer) != header.IPIPOverhead+len(inner) || &outer[0] != &b[0] {
				t.Fatalf("EncapIPIP returned %d bytes (not a prefix of b?), want %d", len(outer), header.IPIPOverhead+len(inner))
			}
			if !bytes.Equal(b[header.IPIPOverhead:header.IPIPOverhead+len(inner)], inner) {
				t.Fatal("EncapIPIP changed the inner packet")
			}
			if !outer.IsValid(len(outer)) || !outer.IsChecksumValid() || !bytes.Equal(outer.Payload(), inner) {
				t.Fatal("outer header does not validate through the view")
			}
			p := decode(t, outer, layers.LayerTypeIPv4) // checks outer, inner IPv4 and TCP checksums
			ips := []*layers.IPv4{}
			for _, l := range p.Layers() {
				if l, ok := l.(*layers.IPv4); ok {
					ips = append(ips, l)
				}
			}
			if len(ips) != 2 || p.Layer(layers.LayerTypeTCP) == nil {
				t.Fatalf("gopacket sees %d IPv4 layers and TCP %v, want IPv4 in IPv4 carrying TCP", len(ips), p.Layer(layers.LayerTypeTCP) != nil)
			}
			o, in := ips[0], ips[1]
			if o.Protocol != layers.IPProtocolIPv4 || !o.SrcIP.Equal(ip4(dirIP)) || !o.DstIP.Equal(ip4(rip)) ||
				o.TTL != 64 || o.TOS != tt.tos || o.Flags != tt.flags&layers.IPv4DontFragment || o.FragOffset != 0 ||
				o.Id != in.Id || int(o.Length) != len(inner)+20 || o.IHL != 5 {
				t.Errorf("outer header %+v", o)
			}
			if !in.SrcIP.Equal(ip4(cip)) || !in.DstIP.Equal(ip4(vip)) {
				t.Errorf("inner addresses %v → %v", in.SrcIP, in.DstIP)
			}
		})
	}
}

// TestEncapIPv6: the outer header of IPv6-in-IPv6 (RFC 2473) is a prefix
// of the buffer, carries the inner packet untouched, copies the traffic
// class and flow label, and gopacket reads IPv6 in IPv6 carrying TCP.
func TestEncapIPv6(t *testing.T) {
	for _, tc := range []struct {
		hbh     bool // a hop-by-hop header in the inner packet
		trailer int  // bytes after the inner packet (Ethernet padding)
	}{{false, 0}, {true, 6}} {
		trailer := tc.trailer
		inner := serialize6(t, gpIPv6(layers.IPProtocolTCP, cip6, vip6, tc.hbh), gpTCP(), gopacket.Payload("tunnel me"))
		b := make([]byte, header.IPv6TunnelOverhead+len(inner)+trailer)
		for i := range b[:header.IPv6TunnelOverhead] {
			b[i] = 0x5a // headroom holds garbage
		}
		copy(b[header.IPv6TunnelOverhead:], inner)

		outer := header.EncapIPv6(b, dir6, rip6, 64)

		if len(outer) != header.IPv6TunnelOverhead+len(inner) || &outer[0] != &b[0] {
			t.Fatalf("EncapIPv6 returned %d bytes (not a prefix of b?), want %d", len(outer), header.IPv6TunnelOverhead+len(inner))
		}
		if !bytes.Equal(b[header.IPv6TunnelOverhead:header.IPv6TunnelOverhead+len(inner)], inner) {
			t.Fatal("EncapIPv6 changed the inner packet")
		}
		if !outer.IsValid(len(outer)) || !bytes.Equal(outer.Payload(), inner) {
			t.Fatal("outer header does not validate through the view")
		}
		p := gopacket.NewPacket(outer, layers.LayerTypeIPv6, gopacket.Default)
		var ips []*layers.IPv6
		for _, l := range p.Layers() {
			if l, ok := l.(*layers.IPv6); ok {
				ips = append(ips, l)
			}
		}
		if len(ips) != 2 || p.Layer(layers.LayerTypeTCP) == nil {
			t.Fatalf("gopacket sees %d IPv6 layers and TCP %v, want IPv6 in IPv6 carrying TCP", len(ips), p.Layer(layers.LayerTypeTCP) != nil)
		}
		o, in := ips[0], ips[1]
		if o.NextHeader != layers.IPProtocolIPv6 || !o.SrcIP.Equal(ip6(dir6)) || !o.DstIP.Equal(ip6(rip6)) ||
			o.HopLimit != 64 || o.TrafficClass != in.TrafficClass || o.FlowLabel != in.FlowLabel ||
			int(o.Length) != len(inner) || o.HopByHop != nil {
			t.Errorf("outer header %+v", o)
		}
		decode6(t, outer[header.IPv6TunnelOverhead:], layers.LayerTypeIPv6) // the inner checksums, against the inner header
	}
}
