package dataplane

import (
	"sync/atomic"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// FuzzProcess feeds arbitrary frames to a worker in every forwarding
// method. Invariants: no panic; only a later fragment is held (verdict
// 0) for its first; a forwarded frame is a valid IPv4 packet
// whose header checksum verifies, inside the buffer, no longer than the
// input plus an IPIP header; TCP and UDP checksums of NAT rewrites stay
// valid when they were valid on the way in.
func FuzzProcess(f *testing.F) {
	// Seeds: a SYN to the VIP, a UDP datagram to it, a NAT reply, and
	// broken versions of them.
	syn := client(header.ProtoTCP)
	syn.syn = true
	f.Add(syn.bytes(f), uint8(ForwardNAT))
	f.Add(client(header.ProtoUDP).bytes(f), uint8(ForwardFullNAT))
	reply := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport, proto: header.ProtoTCP, ack: true}
	f.Add(reply.bytes(f), uint8(ForwardNAT))
	icmpReply := pkt{srcMAC: macDir, dstMAC: macRouter, src: ipVIP, dst: ipClient, sport: vport, dport: cport, proto: header.ProtoTCP, ack: true}
	f.Add(icmpErr(f, macRouter, macDir, ipRouter, ipVIP, 3, 4, icmpReply.bytes(f)), uint8(ForwardFullNAT))
	f.Add(syn.bytes(f)[:30], uint8(ForwardDR))              // truncated IPv4 header
	f.Add(append(syn.bytes(f), 0, 0, 0), uint8(ForwardTUN)) // trailing bytes
	f.Fuzz(func(t *testing.T, in []byte, fwd uint8) {
		if len(in) > MaxFrame {
			return
		}
		fw := Forward(fwd%4 + 1)
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			tbl := testTable(fw, proto)
			var ptr atomic.Pointer[Table]
			ptr.Store(tbl)
			w := newWorker(0, 1, nil, &ptr, 64)
			for i := 0; i < 2; i++ { // the second pass hits the connection the first made
				buf := make([]byte, Headroom+MaxFrame)
				copy(buf[Headroom:], in)
				p := parse(buf, len(in))
				out, v := w.process(tbl, buf, len(in), make([]byte, 128), 1)
				if v >= numVerdicts || v == verdictHeld && (p.frag != fragLater || out != nil) {
					t.Fatalf("invalid verdict %d (fragment kind %d)", v, p.frag)
				}
				if out == nil {
					continue
				}
				if len(out) > len(in)+header.IPIPOverhead && v != VerdictTooBig {
					t.Fatalf("output %d bytes from %d in", len(out), len(in))
				}
				ip := header.IPv4(out[header.EthernetLen:])
				if !ip.IsValid(len(ip)) || !ip.IsChecksumValid() {
					t.Fatalf("verdict %v: output IPv4 header invalid", v)
				}
			}
		}
	})
}
