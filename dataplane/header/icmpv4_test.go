package header_test

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

func TestWriteICMPv4FragNeeded(t *testing.T) {
	origTCP := serialize(t, gpIPv4(layers.IPProtocolTCP, cip, vip), gpTCP(), gopacket.Payload(bytes.Repeat([]byte("x"), 1500)))
	shortUDP := serialize(t, &layers.IPv4{Version: 4, TTL: 9, Protocol: layers.IPProtocolUDP, SrcIP: ip4(cip), DstIP: ip4(vip)},
		&layers.UDP{SrcPort: 1000, DstPort: 2000}) // 8 bytes of payload exactly
	bare := serialize(t, &layers.IPv4{Version: 4, TOS: 0xff, TTL: 9, Protocol: 253, SrcIP: ip4(cip), DstIP: ip4(vip)},
		gopacket.Payload("abc")) // less than 8 bytes of payload
	for _, tt := range []struct {
		name  string
		orig  []byte
		quote int
	}{
		{"IP options, long payload", origTCP, 28 + 8},
		{"UDP header only", shortUDP, 20 + 8},
		{"3-byte payload", bare, 20 + 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			orig := header.IPv4(tt.orig)
			want := 20 + 8 + tt.quote
			b := make([]byte, 600)
			if n := header.WriteICMPv4FragNeeded(b[:want-1], dirIP, orig, 1400); n != 0 {
				t.Fatalf("buffer one byte short: wrote %d, want 0", n)
			}
			n := header.WriteICMPv4FragNeeded(b, dirIP, orig, 1400)
			if n != want {
				t.Fatalf("wrote %d bytes, want %d", n, want)
			}
			p := decode(t, b[:n], layers.LayerTypeIPv4) // IPv4 and ICMP checksums
			gip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			gicmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if !ok {
				t.Fatal("gopacket finds no ICMPv4 layer")
			}
			if !gip.SrcIP.Equal(ip4(dirIP)) || !gip.DstIP.Equal(ip4(orig.Source())) || gip.TTL != 64 ||
				gip.Protocol != layers.IPProtocolICMPv4 || int(gip.Length) != n || gip.IHL != 5 {
				t.Errorf("IPv4 header %+v", gip)
			}
			if gip.TOS != orig.TOS()&0x1e|0xc0 {
				t.Errorf("TOS %#02x, want internetwork control with the original TOS bits", gip.TOS)
			}
			if gicmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || gicmp.Id != 0 || gicmp.Seq != 1400 {
				t.Errorf("ICMP type/code %v, unused %d, MTU %d", gicmp.TypeCode, gicmp.Id, gicmp.Seq)
			}
			if !bytes.Equal(gicmp.Payload, tt.orig[:tt.quote]) {
				t.Errorf("quote % x, want % x", gicmp.Payload, tt.orig[:tt.quote])
			}
			m := header.ICMPv4(header.IPv4(b[:n]).Payload())
			if !m.IsError() || m.MTU() != 1400 || !m.IsChecksumValid() {
				t.Errorf("view: error %v MTU %d checksum valid %v", m.IsError(), m.MTU(), m.IsChecksumValid())
			}
			quoted := header.IPv4(m.Payload())
			if quoted.Source() != orig.Source() || quoted.Destination() != orig.Destination() || quoted.HeaderLength() != orig.HeaderLength() {
				t.Error("quoted header does not read back")
			}
		})
	}
	if n := header.WriteICMPv4FragNeeded(make([]byte, 100), dirIP, header.IPv4(origTCP[:10]), 1400); n != 0 {
		t.Errorf("truncated original: wrote %d, want 0", n)
	}
}
