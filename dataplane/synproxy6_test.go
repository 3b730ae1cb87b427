package dataplane

import (
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// spTable6 is the IPv6 TCP service of testTable6 (NAT) or fnTable6
// (FULLNAT) with the SYN proxy on.
func spTable6(f Forward) *Table {
	tbl := testTable6(ForwardNAT, header.ProtoTCP)
	if f == ForwardFullNAT {
		tbl = fnTable6(header.ProtoTCP)
	}
	for _, s := range tbl.Services6 {
		s.SynProxy = true
	}
	return tbl
}

// TestGoldenSynProxy6: an IPv6 client's SYN is answered by the director
// with a cookie SYN-ACK from the VIP (the MSS of the link over IPv6) and
// nothing is kept; its ACK with the cookie opens the connection and sends
// the real a SYN with the director's ISN for the real-side IPv6 tuple and
// the cookie's MSS; the client's data before the real answers waits, and
// follows the ACK behind the real's SYN-ACK, translated; the real's data
// reaches the client in the cookie's sequence space. An ACK with a wrong
// cookie opens nothing.
func TestGoldenSynProxy6(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		for _, withExt := range []bool{false, true} {
			name := f.String()
			// The client's segments with a destination options header:
			// the segments the proxy makes (the cookie SYN-ACK, the SYN to
			// the real) are its own, without; the client's it forwards
			// keep theirs.
			ext := func(b []byte) []byte { return b }
			if withExt {
				name += "/destination options"
				ext = func(b []byte) []byte { return withDOpt6(t, b) }
			}
			t.Run(name, func(t *testing.T) {
				tbl := spTable6(f)
				w := worker6(tbl, 1024)
				now := int64(7 * time.Second)
				key := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
				cookie := synCookieKey.make6(&key, spISN, mssIndex(1440), cookieTime(now))
				src, sport := ipClient6, uint16(cport)
				if f == ForwardFullNAT {
					src, sport = ipLocal6, portLo
				}
				isn := proxyISN6(now, src.As16(), sport, ipRS16.As16(), natPort)
				toReal6 := func(s seg) seg {
					s.srcMAC, s.dstMAC, s.src, s.sport, s.dst, s.dport = macDir, macRS1, src, sport, ipRS16, natPort
					return s
				}

				syn := fromClient6(cport, "S", spISN, 0)
				syn.mss = 1440
				synack := seg{srcMAC: macDir, dstMAC: macRouter, src: ipVIP6, dst: ipClient6, sport: vport, dport: cport,
					seq: cookie, ack: spISN + 1, flags: "SA", window: spSynAckWindow, mss: 1500 - 40 - 20, ttl: 64}
				out, _, v := spSend(t, w, tbl, ext(syn.bytes6(t)), header.Offload{}, now)
				if v != VerdictSynProxy || w.shard6.Load().Len() != 0 {
					t.Fatalf("SYN: verdict %v, %d connections; want synproxy and none", v, w.shard6.Load().Len())
				}
				same(t, "cookie SYN-ACK", out, synack.bytes6(t))
				verify6(t, out)

				ack := fromClient6(cport, "A", spISN+1, cookie+1)
				realSyn := toReal6(seg{seq: isn, flags: "S", window: 5000, mss: 1440, ttl: 64})
				out, _, v = spSend(t, w, tbl, ext(ack.bytes6(t)), header.Offload{}, now)
				if v != VerdictSynProxy {
					t.Fatalf("handshake ACK: verdict %v", v)
				}
				same(t, "SYN to the real", out, realSyn.bytes6(t))
				e := entryOf6(t, w, cport)
				if e.Flags&(flagSynProxy|flagSynPending) != flagSynProxy|flagSynPending || e.State != conntrack.TCPSynRecv {
					t.Fatalf("after the ACK: flags %#x, state %v", e.Flags, e.State)
				}

				data := fromClient6(cport, "PA", spISN+1, cookie+1)
				data.payload = []byte("GET / HTTP/1.0\r\n\r\n")
				if out, _, v := spSend(t, w, tbl, ext(data.bytes6(t)), header.Offload{}, now+1000); v != VerdictSynProxy || out != nil {
					t.Fatalf("data before the real's answer: verdict %v, %d bytes out; want held", v, len(out))
				}

				rsa := fromReal6(t, w, cport, "SA", spRISN, isn+1)
				if f == ForwardNAT {
					rsa.dst, rsa.dport = ipClient6, cport
				}
				wantAck := toReal6(ack)
				wantAck.seq, wantAck.ack = isn+1, spRISN+1
				wantData := toReal6(data)
				wantData.seq, wantData.ack = isn+1, spRISN+1
				out, extra, v := spSend(t, w, tbl, rsa.bytes6(t), header.Offload{}, now+2000)
				if v != VerdictSynProxy || len(extra) != 1 {
					t.Fatalf("real's SYN-ACK: verdict %v, %d frames behind; want synproxy and the held data", v, len(extra))
				}
				same(t, "held ACK", out, ext(wantAck.bytes6(t)))
				same(t, "held data", extra[0], ext(wantData.bytes6(t)))
				if e.Flags&flagSynPending != 0 || e.State != conntrack.TCPEstablished {
					t.Fatalf("after the real's SYN-ACK: flags %#x, state %v", e.Flags, e.State)
				}

				dl := uint32(len(data.payload))
				reply := fromReal6(t, w, cport, "PA", spRISN+1, isn+1+dl)
				if f == ForwardNAT {
					reply.dst, reply.dport = ipClient6, cport
				}
				reply.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
				want := reply
				want.srcMAC, want.dstMAC, want.src, want.sport, want.dst, want.dport = macDir, macRouter, ipVIP6, vport, ipClient6, cport
				want.seq, want.ack = cookie+1, spISN+1+dl
				fnStep6(t, w, tbl, "real's data", reply.bytes6(t), want.bytes6(t), now+3000)

				bad := fromClient6(cport+1, "A", spISN+1, cookie+1)
				if _, _, v := spSend(t, w, tbl, ext(bad.bytes6(t)), header.Offload{}, now); v != VerdictNoConn || w.C.SynProxyBadCookies.Load() != 1 {
					t.Fatalf("ACK with another tuple's cookie: verdict %v, bad cookies %d", v, w.C.SynProxyBadCookies.Load())
				}
				if w.C.SynProxyCookies.Load() != 1 || w.C.SynProxyOpened.Load() != 1 || w.C.SynProxySynAcks.Load() != 1 || w.C.SynProxyHeld.Load() != 2 {
					t.Errorf("counters: cookies %d opened %d synacks %d held %d; want 1 1 1 2", w.C.SynProxyCookies.Load(),
						w.C.SynProxyOpened.Load(), w.C.SynProxySynAcks.Load(), w.C.SynProxyHeld.Load())
				}
			})
		}
	}
}

// TestSynProxy6RealRefuses: a real's reset to the proxied SYN reaches the
// client at the sequence number it expects (the cookie's +1), and the held
// segments are dropped.
func TestSynProxy6RealRefuses(t *testing.T) {
	tbl := spTable6(ForwardNAT)
	w := worker6(tbl, 1024)
	now := int64(7 * time.Second)
	key := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
	cookie := synCookieKey.make6(&key, spISN, mssIndex(536), cookieTime(now))
	if _, _, v := spSend(t, w, tbl, fromClient6(cport, "A", spISN+1, cookie+1).bytes6(t), header.Offload{}, now); v != VerdictSynProxy {
		t.Fatalf("handshake ACK: verdict %v", v)
	}
	isn := proxyISN6(now, ipClient6.As16(), cport, ipRS16.As16(), natPort)
	rst := seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS16, dst: ipClient6, sport: natPort, dport: cport, seq: 0, ack: isn + 1, flags: "RA", ttl: 64}
	out, _, v := spSend(t, w, tbl, rst.bytes6(t), header.Offload{}, now+1000)
	if v != VerdictForward {
		t.Fatalf("real's reset: verdict %v", v)
	}
	if tcp := tcpOf6(out); tcp.SequenceNumber() != cookie+1 || tcp.AckNumber() != spISN+1 || tcp.Flags()&header.TCPFlagRst == 0 {
		t.Fatalf("reset to the client: seq %#x ack %#x flags %#x; want %#x %#x RST", tcp.SequenceNumber(), tcp.AckNumber(), tcp.Flags(), cookie+1, spISN+1)
	}
	verify6(t, out)
	if w.C.SynProxyHeldDropped.Load() != 1 {
		t.Errorf("held segments dropped: %d, want 1 (the handshake ACK)", w.C.SynProxyHeldDropped.Load())
	}
}

// TestZeroAllocsSynProxy6: cookie SYN-ACKs, and segments of a spliced
// IPv6 connection both ways, allocate nothing.
func TestZeroAllocsSynProxy6(t *testing.T) {
	tbl := spTable6(ForwardFullNAT)
	w := worker6(tbl, 1<<16)
	now := int64(7 * time.Second)
	key := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
	cookie := synCookieKey.make6(&key, spISN, mssIndex(536), cookieTime(now))
	spSend(t, w, tbl, fromClient6(cport, "A", spISN+1, cookie+1).bytes6(t), header.Offload{}, now)
	isn := proxyISN6(now, ipLocal6.As16(), portLo, ipRS16.As16(), natPort)
	spSend(t, w, tbl, fromReal6(t, w, cport, "SA", spRISN, isn+1).bytes6(t), header.Offload{}, now)
	c := fromClient6(cport, "PA", spISN+1, cookie+1)
	c.payload = make([]byte, 100)
	r := fromReal6(t, w, cport, "PA", spRISN+1, isn+1)
	r.payload = make([]byte, 100)
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	for _, x := range []struct {
		name    string
		in      []byte
		verdict Verdict
	}{
		{"SYN", fromClient6(cport+1, "S", spISN, 0).bytes6(t), VerdictSynProxy},
		{"client segment", c.bytes6(t), VerdictForward},
		{"real segment", r.bytes6(t), VerdictForward},
	} {
		allocs := testing.AllocsPerRun(500, func() {
			copy(buf[Headroom:], x.in)
			if _, v := w.process(tbl, buf, len(x.in), icmp, now); v != x.verdict {
				t.Fatalf("%s: verdict %v", x.name, v)
			}
			w.resetSpare()
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per packet, want 0", x.name, allocs)
		}
	}
}

// TestGoldenSynProxyProxy6: a SYN-proxied IPv6 FULLNAT connection whose
// real gets a PROXY header: behind the real's SYN-ACK the header goes
// first (acknowledging it), then the held handshake ACK, moved up by the
// header's length; the real's acknowledgment of the header ends the wait.
func TestGoldenSynProxyProxy6(t *testing.T) {
	for _, v := range []ProxyVersion{ProxyV1, ProxyV2} {
		t.Run(v.String(), func(t *testing.T) {
			tbl := spTable6(ForwardFullNAT)
			tbl.Reals[1].Proxy = v
			w := worker6(tbl, 1024)
			now := int64(7 * time.Second)
			key := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
			cookie := synCookieKey.make6(&key, spISN, mssIndex(536), cookieTime(now))
			ack := fromClient6(cport, "A", spISN+1, cookie+1)
			if _, _, v := spSend(t, w, tbl, ack.bytes6(t), header.Offload{}, now); v != VerdictSynProxy {
				t.Fatalf("handshake ACK: verdict %v", v)
			}
			isn := proxyISN6(now, ipLocal6.As16(), portLo, ipRS16.As16(), natPort)
			L := uint32(len(wantProxyHeader6(v)))
			toReal6 := func(s seg) seg {
				s.srcMAC, s.dstMAC, s.src, s.sport, s.dst, s.dport = macDir, macRS1, ipLocal6, portLo, ipRS16, natPort
				return s
			}
			hdr := toReal6(seg{seq: isn + 1, ack: spRISN + 1, flags: "PA", window: ppSynProxyWindow, payload: wantProxyHeader6(v), ttl: 64})
			held := toReal6(ack)
			held.seq, held.ack = isn+1+L, spRISN+1
			out, extra, verdict := spSend(t, w, tbl, fromReal6(t, w, cport, "SA", spRISN, isn+1).bytes6(t), header.Offload{}, now+1000)
			if verdict != VerdictSynProxy || len(extra) != 1 {
				t.Fatalf("real's SYN-ACK: verdict %v, %d frames behind", verdict, len(extra))
			}
			same(t, "header segment", out, hdr.bytes6(t))
			same(t, "held ACK", extra[0], held.bytes6(t))
			e := entryOf6(t, w, cport)
			if e.Flags&(flagProxyHdr|flagProxyPending) != flagProxyHdr|flagProxyPending || w.pp6.used != 1 {
				t.Fatalf("after the SYN-ACK: flags %#x, %d slots", e.Flags, w.pp6.used)
			}
			covered := fromReal6(t, w, cport, "A", spRISN+1, isn+1+L)
			want := covered
			want.srcMAC, want.dstMAC, want.src, want.sport, want.dst, want.dport = macDir, macRouter, ipVIP6, vport, ipClient6, cport
			want.seq, want.ack = cookie+1, spISN+1
			fnStep6(t, w, tbl, "acknowledgment of the header", covered.bytes6(t), want.bytes6(t), now+2000)
			if e.Flags&flagProxyPending != 0 || w.pp6.used != 0 || w.C.ProxyAcked.Load() != 1 {
				t.Fatalf("after the header's ACK: flags %#x, %d slots, ProxyAcked %d", e.Flags, w.pp6.used, w.C.ProxyAcked.Load())
			}
		})
	}
}
