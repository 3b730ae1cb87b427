package dataplane

import (
	"bytes"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// TestTUNOuterFragments: a packet without DF that does not fit the MTU
// once encapsulated goes out as fragments of its outer packet, each within
// the MTU, addressed to the real; reassembled they are the IPIP packet of
// the client's packet, untouched. A 9000-byte jumbo frame needs seven.
func TestTUNOuterFragments(t *testing.T) {
	for _, size := range []int{1500, 9000} {
		tbl := testTable(ForwardTUN, header.ProtoUDP)
		w := newTestWorker(tbl)
		p := client(header.ProtoUDP)
		p.df, p.id = false, 555
		p.payload = bytes.Repeat([]byte{0xab}, size-20-8)
		in := p.bytes(t)
		buf := make([]byte, Headroom+MaxFrame)
		n := copy(buf[Headroom:], in)
		first, v := w.process(tbl, buf, n, make([]byte, 128), int64(time.Second))
		if v != VerdictForward {
			t.Fatalf("%d bytes: %v", size, v)
		}
		frames := append([][]byte{first}, w.extra...)
		if want := (size + 20 + 1479) / 1480; len(frames) != want {
			t.Fatalf("%d bytes: %d outer fragments, want %d", size, len(frames), want)
		}
		var id uint16
		for i, f := range frames {
			ip := header.IPv4(f[header.EthernetLen:])
			if len(ip) > tbl.MTU || !ip.IsChecksumValid() || ip.Protocol() != header.ProtoIPIP || ip.Destination() != ipRS1.As4() ||
				header.Ethernet(f).Destination() != macRS1 || header.Ethernet(f).Source() != macDir {
				t.Fatalf("%d bytes: fragment %d: %d bytes, header % x", size, i, len(ip), f[:34])
			}
			if i == 0 {
				id = ip.ID()
			} else if ip.ID() != id {
				t.Fatalf("fragment %d has ID %d, the first %d", i, ip.ID(), id)
			}
		}
		whole := reassemble(t, frames)
		outer := whole.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if outer.Protocol != layers.IPProtocolIPv4 || !bytes.Equal(outer.Payload, in[header.EthernetLen:]) {
			t.Fatalf("%d bytes: reassembled outer packet does not carry the client's packet", size)
		}
		if w.C.OuterFragments.Load() != 1 {
			t.Fatalf("OuterFragments = %d", w.C.OuterFragments.Load())
		}
	}
}
