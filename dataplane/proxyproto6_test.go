package dataplane

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// wantProxyHeader6 is the header of the IPv6 test connection, written out
// here from proxy-protocol.txt rather than by putProxyHeader6.
func wantProxyHeader6(v ProxyVersion) []byte {
	if v == ProxyV1 {
		return fmt.Appendf(nil, "PROXY TCP6 %s %s %d %d\r\n", ipClient6, ipVIP6, cport, vport)
	}
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21, 0x21, 0, 36)
	b = append(b, ipClient6.AsSlice()...)
	b = append(b, ipVIP6.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, cport)
	return binary.BigEndian.AppendUint16(b, vport)
}

// TestPutProxyHeader6: both versions as proxy-protocol.txt spells them,
// and the longest v1 header fits ppMaxLen.
func TestPutProxyHeader6(t *testing.T) {
	var b [ppMaxLen]byte
	for _, v := range []ProxyVersion{ProxyV1, ProxyV2} {
		n := putProxyHeader6(b[:], v, ipClient6.As16(), cport, ipVIP6.As16(), vport)
		if want := wantProxyHeader6(v); !bytes.Equal(b[:n], want) {
			t.Errorf("%v: %q, want %q", v, b[:n], want)
		}
	}
	long := netip.MustParseAddr("fd01:2345:6789:abcd:ef01:2345:6789:abcd").As16()
	if n := putProxyHeader6(b[:], ProxyV1, long, 65535, long, 65535); n != ppV1MaxLen6 || ppMaxLen < n {
		t.Errorf("longest v1 header: %d bytes, want %d (ppMaxLen %d)", n, ppV1MaxLen6, ppMaxLen)
	}
	if n := putProxyHeader6(b[:], 9, long, 1, long, 1); n != 0 {
		t.Errorf("unknown version: %d bytes", n)
	}
	if a := testing.AllocsPerRun(100, func() { putProxyHeader6(b[:], ProxyV1, long, 65535, long, 65535) }); a != 0 {
		t.Errorf("putProxyHeader6 v1: %.1f allocations", a)
	}
}

// ppTable6 is fnTable6 (FULLNAT) or testTable6 (NAT) for TCP, its IPv6
// real getting PROXY headers of version v.
func ppTable6(f Forward, v ProxyVersion) *Table {
	tbl := testTable6(ForwardNAT, header.ProtoTCP)
	if f == ForwardFullNAT {
		tbl = fnTable6(header.ProtoTCP)
	}
	tbl.Reals[1].Proxy = v
	return tbl
}

// TestGoldenProxy6: an IPv6 NAT or FULLNAT connection with timestamps
// whose real gets a PROXY header. The client's handshake ACK goes to the
// real moved up by the header's length, with the header segment behind it
// (from the client in NAT, the local address in FULLNAT, at the client's
// ISN+1 in the real's numbers, with the ACK's window and timestamps); the
// real's acknowledgment that does not cover the header reaches the client
// as its ISN+1; the one that covers it ends the wait.
func TestGoldenProxy6(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		for _, v := range []ProxyVersion{ProxyV2, ProxyV1} {
			for _, withExt := range []bool{false, true} {
				name := f.String() + "/" + v.String()
				// The client's segments with a destination options header,
				// kept in what is forwarded; the header segment is the
				// director's own, without.
				ext := func(b []byte) []byte { return b }
				if withExt {
					name += "/destination options"
					ext = func(b []byte) []byte { return withDOpt6(t, b) }
				}
				t.Run(name, func(t *testing.T) {
					tbl := ppTable6(f, v)
					w := worker6(tbl, 1024)
					const now = int64(5 * time.Second)
					cisn := uint32(spISN)
					isn, ts := cisn, uint32(fnClientTS) // NAT: nothing translated before the header
					if f == ForwardFullNAT {
						isn, ts = fullnatClocks6(now, ipLocal6.As16(), portLo, ipRS16.As16(), natPort)
					}
					L := uint32(len(wantProxyHeader6(v)))
					toReal6 := func(s seg) seg {
						s.srcMAC, s.dstMAC, s.dst, s.dport = macDir, macRS1, ipRS16, natPort
						if f == ForwardFullNAT {
							s.src, s.sport = ipLocal6, portLo
						}
						return s
					}
					toClient6 := func(s seg) seg {
						s.srcMAC, s.dstMAC = macDir, macRouter
						s.src, s.sport, s.dst, s.dport = ipVIP6, vport, ipClient6, cport
						return s
					}
					fromReal := func(flags string, seq, ack uint32) seg {
						s := fromReal6(t, w, cport, flags, seq, ack)
						if f == ForwardNAT {
							s.dst, s.dport = ipClient6, cport
						}
						return s
					}

					syn := fromClient6(cport, "S", cisn, 0)
					syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
					want := toReal6(syn)
					want.seq = isn
					want.opts = []layers.TCPOption{optNOP, optNOP, optTS(ts, 0)}
					ppStep(t, w, tbl, "SYN", ext(syn.bytes6(t)), ext(want.bytes6(t)), nil, now)

					synack := fromReal("SA", spRISN, isn+1)
					synack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS, ts)}
					want = toClient6(synack)
					want.ack = cisn + 1
					want.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS, fnClientTS)}
					ppStep(t, w, tbl, "SYN-ACK", synack.bytes6(t), want.bytes6(t), nil, now)

					ack := fromClient6(cport, "A", cisn+1, spRISN+1)
					ack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+1, fnRealTS)}
					want = toReal6(ack)
					want.seq = isn + 1 + L
					want.opts = []layers.TCPOption{optNOP, optNOP, optTS(ts+1, fnRealTS)}
					hdr := toReal6(seg{srcMAC: macDir, src: ipClient6, sport: cport, seq: isn + 1, ack: spRISN + 1, flags: "PA", window: 5000,
						opts: []layers.TCPOption{optNOP, optNOP, optTS(ts+1, fnRealTS)}, payload: wantProxyHeader6(v), ttl: 64})
					verify6(t, hdr.bytes6(t))
					ppStep(t, w, tbl, "handshake ACK", ext(ack.bytes6(t)), ext(want.bytes6(t)), [][]byte{hdr.bytes6(t)}, now)
					e := entryOf6(t, w, cport)
					if e.Flags&(flagProxyHdr|flagProxyPending|flagSeqXlate) != flagProxyHdr|flagProxyPending|flagSeqXlate || w.pp6.used != 1 || w.pp.used != 0 {
						t.Fatalf("after the handshake ACK: flags %#x, %d IPv6 and %d IPv4 slots used", e.Flags, w.pp6.used, w.pp.used)
					}

					// The real speaks before it has the header.
					banner := fromReal("PA", spRISN+1, isn+1)
					banner.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, ts+1)}
					banner.payload = []byte("220 hello\r\n")
					want = toClient6(banner)
					want.ack = cisn + 1
					want.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, fnClientTS+1)}
					ppStep(t, w, tbl, "real data before the header's ACK", banner.bytes6(t), want.bytes6(t), nil, now+1000)

					covered := fromReal("A", spRISN+12, isn+1+L)
					covered.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+2, ts+1)}
					want = toClient6(covered)
					want.ack = cisn + 1
					want.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+2, fnClientTS+1)}
					ppStep(t, w, tbl, "acknowledgment of the header", covered.bytes6(t), want.bytes6(t), nil, now+2000)
					if e.Flags&flagProxyPending != 0 || w.pp6.used != 0 || w.C.ProxyAcked.Load() != 1 || w.C.ProxyHeaders.Load() != 1 {
						t.Fatalf("after the header's ACK: flags %#x, %d slots used, ProxyAcked %d, ProxyHeaders %d",
							e.Flags, w.pp6.used, w.C.ProxyAcked.Load(), w.C.ProxyHeaders.Load())
					}
					if st := tbl.Reals[1].Stats; st.InPkts.Load() != 3 {
						t.Errorf("real InPkts %d, want 3 (SYN, ACK, header)", st.InPkts.Load())
					}
				})
			}
		}
	}
}

// TestProxyResendTimer6: the expiry walk sends an IPv6 connection's
// header again after its RTO, doubling, and after ppMaxTries drops the
// connection and frees its slot.
func TestProxyResendTimer6(t *testing.T) {
	tbl := ppTable6(ForwardFullNAT, ProxyV2)
	l := &fakeLink{}
	w := worker6(tbl, 1024)
	w.link, w.cur = l, tbl
	now := int64(time.Second)
	isn := tcpOf6(mustSend6(t, w, tbl, fromClient6(cport, "S", spISN, 0).bytes6(t), now)).SequenceNumber()
	mustSend6(t, w, tbl, fromReal6(t, w, cport, "SA", spRISN, isn+1).bytes6(t), now)
	_, extra, _ := spSend(t, w, tbl, fromClient6(cport, "A", spISN+1, spRISN+1).bytes6(t), header.Offload{}, now)
	if len(extra) != 1 {
		t.Fatalf("handshake ACK: %d frames queued behind, want the header", len(extra))
	}
	w.proxyTimers(now + ppRTO - 1)
	if len(l.sent()) != 0 {
		t.Fatal("header sent again before its RTO")
	}
	w.proxyTimers(now + ppRTO)
	if s := l.sent(); len(s) != 1 || !bytes.Equal(s[0], extra[0]) {
		t.Fatalf("after RTO: %d frames sent, want the header again", len(s))
	}
	at := now + ppRTO
	for i := 2; i <= ppMaxTries; i++ {
		at += ppRTO << (i - 1)
		w.proxyTimers(at)
	}
	if n := len(l.sent()); n != ppMaxTries-1 {
		t.Fatalf("%d resends, want %d", n, ppMaxTries-1)
	}
	k := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: cport, DstPort: vport, Proto: header.ProtoTCP}
	if e, _ := w.shard6.Load().Lookup(&k); e != nil || w.pp6.used != 0 || w.C.ProxyGaveUp.Load() != 1 {
		t.Fatalf("after %d tries: entry %v, %d slots used, ProxyGaveUp %d; want gone", ppMaxTries, e != nil, w.pp6.used, w.C.ProxyGaveUp.Load())
	}
	if c := tbl.Reals[1].Counters; c.Active.Load()+c.Inactive.Load() != 0 {
		t.Error("the dropped connection is still counted on its real")
	}
}

// TestZeroAllocsProxy6: a new IPv6 FULLNAT connection whose handshake ACK
// sends a PROXY header (v1, whose text is the longest) allocates nothing.
func TestZeroAllocsProxy6(t *testing.T) {
	tbl := ppTable6(ForwardFullNAT, ProxyV1)
	w := worker6(tbl, 1<<16)
	synT := fromClient6(1, "S", spISN, 0).bytes6(t)
	synackT := seg{srcMAC: macRS1, dstMAC: macDir, src: ipRS16, dst: ipLocal6, sport: natPort, dport: 1,
		seq: spRISN, ack: 1, flags: "SA", window: 100, ttl: 64}.bytes6(t)
	ackT := fromClient6(1, "A", spISN+1, spRISN+1).bytes6(t)
	buf := make([]byte, Headroom+MaxFrame)
	icmp := make([]byte, 128)
	send := func(tmpl []byte, set func(header.TCP)) []byte {
		copy(buf[Headroom:], tmpl)
		set(tcpOf6(buf[Headroom : Headroom+len(tmpl)]))
		out, v := w.process(tbl, buf, len(tmpl), icmp, 2)
		if v != VerdictForward {
			t.Fatalf("verdict %v", v)
		}
		return out
	}
	port := uint16(1000)
	allocs := testing.AllocsPerRun(200, func() {
		port++
		out := send(synT, func(tcp header.TCP) { tcp.SetSourcePortWithChecksumUpdate(port) })
		lport := tcpOf6(out).SourcePort()
		send(synackT, func(tcp header.TCP) { tcp.SetDestinationPortWithChecksumUpdate(lport) })
		send(ackT, func(tcp header.TCP) { tcp.SetSourcePortWithChecksumUpdate(port) })
		if len(w.extra) != 1 {
			t.Fatalf("handshake ACK: %d frames queued behind, want the header", len(w.extra))
		}
		w.resetSpare()
		w.pp6 = proxyTable[[16]byte]{} // room for the next: nothing acknowledges these
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per proxied IPv6 connection, want 0", allocs)
	}
}
