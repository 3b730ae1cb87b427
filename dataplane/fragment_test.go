package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// fragments splits the IPv4 packet of an Ethernet frame into fragments
// of at most mtu bytes of IP, as a sender's kernel does, each a frame.
func fragments(t *testing.T, frame []byte, mtu int) [][]byte {
	t.Helper()
	eth, ip := frame[:header.EthernetLen], header.IPv4(frame[header.EthernetLen:])
	hl := int(ip[0]&0xf) * 4
	payload := ip[hl:ip.TotalLength()]
	per := (mtu - hl) &^ 7
	var out [][]byte
	for off := 0; off < len(payload); off += per {
		n := min(per, len(payload)-off)
		f := append(append([]byte(nil), eth...), ip[:hl]...)
		f = append(f, payload[off:off+n]...)
		fip := header.IPv4(f[header.EthernetLen:])
		binary.BigEndian.PutUint16(fip[2:], uint16(hl+n))
		fo := uint16(off / 8)
		if off+n < len(payload) {
			fo |= 1 << 13 // MF
		}
		binary.BigEndian.PutUint16(fip[6:], fo)
		fip.SetChecksum(0)
		fip.SetChecksum(fip.CalculateChecksum())
		out = append(out, f)
	}
	return out
}

// reassemble puts the IP fragments of frames together (gopacket's
// ip4defrag) and decodes the datagram.
func reassemble(t *testing.T, frames [][]byte) gopacket.Packet {
	t.Helper()
	d := ip4defrag.NewIPv4Defragmenter()
	for _, f := range frames {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil {
			t.Fatalf("not IPv4: % x", f[:34])
		}
		whole, err := d.DefragIPv4(ip)
		if err != nil {
			t.Fatal(err)
		}
		if whole != nil {
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, whole, gopacket.Payload(whole.Payload)); err != nil {
				t.Fatal(err)
			}
			return gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
		}
	}
	t.Fatal("the fragments do not make a whole datagram")
	return nil
}

// udpChecksumOK recomputes the UDP checksum of a reassembled datagram.
func udpChecksumOK(t *testing.T, p gopacket.Packet) bool {
	t.Helper()
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	want := udp.Checksum
	c := *udp
	c.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &c, gopacket.Payload(udp.Payload)); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint16(buf.Bytes()[6:]) == want
}

// fragPair is the owner of the connection and worker 0, sharing the
// fragment table as a Dataplane's workers do.
func fragPair(tbl *Table) (owner, w0 *Worker, link *fakeLink) {
	var ptr atomic.Pointer[Table]
	ptr.Store(tbl)
	link = &fakeLink{}
	owner = newWorker(1, 2, nil, &ptr, 1024)
	w0 = newWorker(0, 2, link, &ptr, 1024)
	w0.frags = owner.frags
	owner.cur, w0.cur = tbl, tbl
	return owner, w0, link
}

func handleFrame(w *Worker, tbl *Table, f []byte, now int64) ([]byte, Verdict) {
	buf := make([]byte, Headroom+MaxFrame)
	n := copy(buf[Headroom:], f)
	out, v := w.process(tbl, buf, n, make([]byte, 128), now)
	if out != nil {
		out = append([]byte(nil), out...)
	}
	return out, v
}

// TestFragments: a UDP datagram of 4000 bytes in three fragments, the
// first handled by the connection's owner and the rest by worker 0, goes
// out whole in every forwarding method: reassembled, it is the datagram
// the real must get, checksum right; a NAT reply in fragments comes back
// from the VIP.
func TestFragments(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 250)
	now := int64(time.Second)
	for _, f := range []Forward{ForwardDR, ForwardNAT, ForwardFullNAT, ForwardTUN} {
		t.Run(f.String(), func(t *testing.T) {
			tbl := testTable(f, header.ProtoUDP)
			owner, w0, _ := fragPair(tbl)
			req := client(header.ProtoUDP)
			req.df, req.id, req.payload = false, 4242, payload
			mtu := 1500
			if f == ForwardTUN {
				mtu = 1480 // room for the outer header
			}
			frags := fragments(t, req.bytes(t), mtu)
			if len(frags) != 3 {
				t.Fatalf("%d fragments", len(frags))
			}
			var outs [][]byte
			for i, fr := range frags {
				w := w0
				if i == 0 {
					w = owner
				}
				out, v := handleFrame(w, tbl, fr, now)
				if v != VerdictForward {
					t.Fatalf("fragment %d: %v", i, v)
				}
				if header.Ethernet(out).Destination() != macRS1 {
					t.Fatalf("fragment %d to %x", i, header.Ethernet(out).Destination())
				}
				if f == ForwardTUN {
					outer := header.IPv4(out[header.EthernetLen:])
					if outer.Protocol() != 4 || outer.Destination() != ipRS1.As4() || !outer.IsChecksumValid() {
						t.Fatalf("fragment %d: outer header % x", i, out[14:34])
					}
					// The inner fragment is the client's, untouched.
					out = append(append([]byte(nil), out[:header.EthernetLen]...), out[header.EthernetLen+20:]...)
					if !bytes.Equal(out[header.EthernetLen:], fr[header.EthernetLen:]) {
						t.Fatalf("fragment %d: the inner packet changed", i)
					}
				}
				if !header.IPv4(out[header.EthernetLen:]).IsChecksumValid() {
					t.Fatalf("fragment %d: bad IP checksum", i)
				}
				outs = append(outs, out)
			}
			wantDst, wantPort := ipVIP, uint16(vport)
			wantSrc := ipClient
			if f == ForwardNAT || f == ForwardFullNAT {
				wantDst, wantPort = ipRS1, natPort
			}
			if f == ForwardFullNAT {
				wantSrc = ipLocal
			}
			for i, out := range outs {
				oip := header.IPv4(out[header.EthernetLen:])
				if oip.Source() != wantSrc.As4() || oip.Destination() != wantDst.As4() {
					t.Fatalf("fragment %d: %v -> %v, want %v -> %v", i, oip.Source(), oip.Destination(), wantSrc, wantDst)
				}
			}
			p := reassemble(t, outs)
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if ip.DstIP.String() != wantDst.String() || ip.SrcIP.String() != wantSrc.String() || uint16(udp.DstPort) != wantPort ||
				!bytes.Equal(udp.Payload, payload) || !udpChecksumOK(t, p) {
				t.Fatalf("reassembled: %v -> %v:%d, %d bytes, checksum ok %v", ip.SrcIP, ip.DstIP, udp.DstPort, len(udp.Payload), udpChecksumOK(t, p))
			}
			if f != ForwardNAT && f != ForwardFullNAT {
				return
			}

			// The real's reply in fragments.
			e := owner.shard.DumpRange(nil, 0, owner.shard.Cells())[0]
			rep := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: netip.AddrFrom4(e.ReplyKey().Dst), sport: natPort,
				dport: e.ReplyKey().DstPort, proto: header.ProtoUDP, id: 777, payload: payload}
			var routs [][]byte
			for i, fr := range fragments(t, rep.bytes(t), 1500) {
				w := w0
				if i == 0 {
					w = owner
				}
				out, v := handleFrame(w, tbl, fr, now)
				if v != VerdictForward || header.Ethernet(out).Destination() != macRouter {
					t.Fatalf("reply fragment %d: %v to %x", i, v, header.Ethernet(out).Destination())
				}
				routs = append(routs, out)
			}
			p = reassemble(t, routs)
			ip = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			udp = p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if ip.SrcIP.String() != ipVIP.String() || ip.DstIP.String() != ipClient.String() || uint16(udp.SrcPort) != vport ||
				uint16(udp.DstPort) != cport || !bytes.Equal(udp.Payload, payload) || !udpChecksumOK(t, p) {
				t.Fatalf("reassembled reply: %v:%d -> %v:%d, checksum ok %v", ip.SrcIP, udp.SrcPort, ip.DstIP, udp.DstPort, udpChecksumOK(t, p))
			}
		})
	}
}

// TestFragmentsOutOfOrder: a later fragment that comes before its first
// waits and goes out once the first is handled; one whose first never
// comes is dropped after fragWait and counted.
func TestFragmentsOutOfOrder(t *testing.T) {
	tbl := testTable(ForwardDR, header.ProtoUDP)
	owner, w0, link := fragPair(tbl)
	req := client(header.ProtoUDP)
	req.df, req.id, req.payload = false, 99, bytes.Repeat([]byte{7}, 3000)
	frags := fragments(t, req.bytes(t), 1500)
	now := int64(time.Second)
	for _, fr := range frags[1:] {
		if _, v := handleFrame(w0, tbl, fr, now); v != verdictHeld {
			t.Fatalf("a later fragment before its first: %v, want held", v)
		}
	}
	w0.retryFragments(tbl, now)
	if len(link.sent()) != 0 {
		t.Fatal("a held fragment went out before its first")
	}
	if _, v := handleFrame(owner, tbl, frags[0], now); v != VerdictForward {
		t.Fatalf("first fragment: %v", v)
	}
	w0.retryFragments(tbl, now+int64(time.Millisecond))
	if sent := link.sent(); len(sent) != 2 || header.Ethernet(sent[0]).Destination() != macRS1 || w0.C.Verdicts[VerdictForward].Load() != 2 {
		t.Fatalf("after the first fragment: %d sent", len(sent))
	}

	// An orphan: its first fragment never comes.
	orphan := client(header.ProtoUDP)
	orphan.df, orphan.id, orphan.payload = false, 100, bytes.Repeat([]byte{8}, 3000)
	if _, v := handleFrame(w0, tbl, fragments(t, orphan.bytes(t), 1500)[1], now); v != verdictHeld {
		t.Fatalf("orphan: %v", v)
	}
	w0.retryFragments(tbl, now+fragWait-1)
	if w0.C.Verdicts[VerdictFragment].Load() != 0 || len(w0.fragWaiting) != 1 {
		t.Fatal("the orphan was dropped before fragWait")
	}
	w0.retryFragments(tbl, now+fragWait)
	if w0.C.Verdicts[VerdictFragment].Load() != 1 || len(w0.fragWaiting) != 0 {
		t.Fatalf("after fragWait: %d dropped, %d waiting", w0.C.Verdicts[VerdictFragment].Load(), len(w0.fragWaiting))
	}
	// At most fragPending wait.
	for i := range fragPending + 1 {
		o := client(header.ProtoUDP)
		o.df, o.id, o.payload = false, uint16(1000+i), bytes.Repeat([]byte{9}, 3000)
		_, v := handleFrame(w0, tbl, fragments(t, o.bytes(t), 1500)[1], now)
		if want := verdictHeld; i == fragPending {
			want = VerdictFragment
			if v != want {
				t.Fatalf("fragment %d beyond the limit: %v", i, v)
			}
		} else if v != want {
			t.Fatalf("fragment %d: %v", i, v)
		}
	}
}
