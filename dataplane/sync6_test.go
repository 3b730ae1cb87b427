package dataplane

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

// syncPair6 is syncPair with tbl6 (an IPv4 service and an IPv6 one) on
// both sides.
func syncPair6(t *testing.T, mk6 func() *Table) (master, backup *Dataplane, mt, bt *Table) {
	t.Helper()
	mk := func() (*Dataplane, *Table) {
		d, err := New([]Link{&fakeLink{}}, 1024)
		if err != nil {
			t.Fatal(err)
		}
		d.EnableSync(8, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
		tbl := mk6()
		d.Publish(tbl) // gives the worker its IPv6 shard
		d.workers[0].cur = tbl
		return d, tbl
	}
	master, mt = mk()
	backup, bt = mk()
	return master, backup, mt, bt
}

// from6 sends the IPv6 client packet p through w at now and returns the
// verdict and the real's address the frame went to (zero when dropped).
func from6(t *testing.T, w *Worker, tbl *Table, p pkt6, now int64) (Verdict, netip.Addr) {
	t.Helper()
	b := p.bytes(t)
	buf := make([]byte, Headroom+MaxFrame)
	copy(buf[Headroom:], b)
	w.cur, w.now = tbl, now
	out, v := w.process(tbl, buf, len(b), make([]byte, 128), now)
	if out == nil {
		return v, netip.Addr{}
	}
	verify6(t, out)
	return v, netip.AddrFrom16(header.IPv6(out[header.EthernetLen:]).Destination())
}

func tcp6(sport uint16, syn, fin bool) pkt6 {
	p := client6(header.ProtoTCP)
	p.sport, p.payload, p.syn, p.ack, p.fin = sport, nil, syn, !syn, fin
	return p
}

func synced6(events []SyncConn6, now int64) []SyncConn6 {
	out := make([]SyncConn6, len(events))
	for i, e := range events {
		e.Entry.Expires -= now
		out[i] = e
	}
	return out
}

func entry6(t *testing.T, w *Worker, sport uint16) *conntrack.Entry6 {
	t.Helper()
	k := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: sport, DstPort: vport, Proto: header.ProtoTCP}
	e, _ := w.shard6.Load().Lookup(&k)
	if e == nil {
		t.Fatalf("no IPv6 entry for client port %d", sport)
	}
	return e
}

// TestSyncReportAndInstall6 is TestSyncReportAndInstall for IPv6 DR and
// NAT: the master reports the TCP connection as it leaves NONE and as it
// becomes established, into the IPv6 ring; installed in the backup's IPv6
// shard, it forwards a mid-stream segment (no_conn before), with the
// real's counters in the right class, and a FIN's report makes it
// inactive. Nothing goes through the IPv4 ring.
func TestSyncReportAndInstall6(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardNAT} {
		t.Run(f.String(), func(t *testing.T) {
			master, backup, mt, bt := syncPair6(t, func() *Table { return testTable6(f, header.ProtoTCP) })
			mw, bw := master.workers[0], backup.workers[0]
			now := int64(time.Second)
			for _, syn := range []bool{true, false} {
				if v, _ := from6(t, mw, mt, tcp6(40000, syn, false), now); v != VerdictForward {
					t.Fatalf("syn %v: %v", syn, v)
				}
			}
			select {
			case <-master.SyncWake():
			default:
				t.Fatal("the first IPv6 report did not wake the sender")
			}
			if ev4 := master.SyncEvents(nil); len(ev4) != 0 {
				t.Fatalf("IPv4 reports %+v", ev4)
			}
			ev := master.SyncEvents6(nil)
			if len(ev) != 2 || ev[0].Entry.State != conntrack.TCPSynRecv || ev[1].Entry.State != conntrack.TCPEstablished ||
				ev[1].Entry.Client != ipClient6.As16() || ev[1].Entry.Real != ipRS16.As16() {
				t.Fatalf("reports %+v", ev)
			}
			if v, _ := from6(t, bw, bt, tcp6(40000, false, false), now); v != VerdictNoConn {
				t.Fatalf("backup without sync: %v, want no_conn", v)
			}
			if n := backup.Install6(synced6(ev, now), true); n != 2 {
				t.Fatalf("Install6 queued %d of 2", n)
			}
			bw.serveSync(now)
			if s := backup.SyncStats(); s.Installed != 2 || s.Unknown+s.Refused != 0 {
				t.Fatalf("sync stats %+v", s)
			}
			if e := entry6(t, bw, 40000); e.State != conntrack.TCPEstablished || Forward(e.Forward) != f {
				t.Fatalf("installed %+v", e)
			}
			if bw.C.Conns.Load() != 1 {
				t.Fatalf("backup counts %d connections", bw.C.Conns.Load())
			}
			c := bt.Reals[len(bt.Reals)-1].Counters
			if c.Active.Load() != 1 || c.Inactive.Load() != 0 {
				t.Fatalf("backup counters active %d inactive %d, want 1 0", c.Active.Load(), c.Inactive.Load())
			}
			if v, dst := from6(t, bw, bt, tcp6(40000, false, false), now); v != VerdictForward || (f == ForwardNAT && dst != ipRS16) {
				t.Fatalf("backup after sync: %v to %v", v, dst)
			}
			if backup.SyncEvents6(nil) != nil {
				t.Fatal("an installed connection was reported back")
			}
			backup.Install6(synced6(ev[:1], now), false)
			bw.serveSync(now)
			if e := entry6(t, bw, 40000); e.State != conntrack.TCPEstablished || backup.SyncStats().Kept != 1 {
				t.Fatalf("install without update: %+v, stats %+v", e, backup.SyncStats())
			}
			from6(t, mw, mt, tcp6(40000, false, true), now)
			backup.Install6(synced6(master.SyncEvents6(nil), now), true)
			bw.serveSync(now)
			if e := entry6(t, bw, 40000); conntrack.IsActive(e.State) || c.Active.Load() != 0 || c.Inactive.Load() != 1 {
				t.Fatalf("after FIN: state %v, active %d inactive %d", e.State, c.Active.Load(), c.Inactive.Load())
			}
		})
	}
}

// TestSyncUDPAndRefresh6: a UDP connection is reported when created, and a
// refresh dump (SyncConnections6) lists it; the backup installs it.
func TestSyncUDPAndRefresh6(t *testing.T) {
	master, backup, mt, _ := syncPair6(t, func() *Table { return testTable6(ForwardNAT, header.ProtoUDP) })
	mw := master.workers[0]
	now := int64(time.Second)
	if v, _ := from6(t, mw, mt, client6(header.ProtoUDP), now); v != VerdictForward {
		t.Fatalf("UDP: %v", v)
	}
	ev := master.SyncEvents6(nil)
	if len(ev) != 1 || ev[0].Entry.Proto != header.ProtoUDP || ev[0].Entry.State != conntrack.UDP {
		t.Fatalf("reports %+v", ev)
	}
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- master.Run(stop) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	dump, err := master.SyncConnections6(ctx, nil)
	cancel()
	close(stop)
	if e := <-errc; e != nil {
		t.Fatal(e)
	}
	if err != nil || len(dump) != 1 || dump[0].Entry.ClientPort != cport {
		t.Fatalf("refresh dump %+v, %v", dump, err)
	}
	backup.Install6(synced6(dump, now), true)
	backup.workers[0].serveSync(now)
	if s := backup.SyncStats(); s.Installed != 1 || backup.workers[0].shard6.Load().Len() != 1 {
		t.Fatalf("backup stats %+v", s)
	}
}

// TestSyncInstallRefusals6: IPv6 connections for a service or real the
// backup does not have, or a backup without IPv6 services, are counted
// as unknown.
func TestSyncInstallRefusals6(t *testing.T) {
	master, _, mt, _ := syncPair6(t, func() *Table { return testTable6(ForwardDR, header.ProtoTCP) })
	now := int64(time.Second)
	from6(t, master.workers[0], mt, tcp6(40000, true, false), now)
	ev := synced6(master.SyncEvents6(nil), now)
	if len(ev) != 1 {
		t.Fatalf("reports %+v", ev)
	}
	otherReal := ev[0]
	otherReal.Entry.Real[15]++
	otherVIP := ev[0]
	otherVIP.Entry.VIP[15]++
	d, err := New([]Link{&fakeLink{}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	d.EnableSync(8, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
	d.Publish(testTable(ForwardDR, header.ProtoTCP)) // IPv4 only: no IPv6 shard
	d.Install6(ev, true)
	d.workers[0].serveSync(now)
	if s := d.SyncStats(); s.Unknown != 1 || s.Installed != 0 {
		t.Fatalf("IPv4-only backup: %+v", s)
	}
	_, backup, _, _ := syncPair6(t, func() *Table { return testTable6(ForwardDR, header.ProtoTCP) })
	backup.Install6([]SyncConn6{otherReal, otherVIP}, true)
	backup.workers[0].serveSync(now)
	if s := backup.SyncStats(); s.Unknown != 2 || s.Installed != 0 {
		t.Fatalf("unknown real and VIP: %+v", s)
	}
	d.EnableSync(8, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 5 })
	if n := d.Install6(ev, true); n != 0 {
		t.Fatalf("queued %d for a worker that does not exist", n)
	}
}

// TestSyncTemplates6: a new template of an IPv6 service with persistence
// is reported into the IPv6 ring, a refresh lists it (and not among the
// IPv4 ones), and on the backup it sends the client's next connection to
// the same real.
func TestSyncTemplates6(t *testing.T) {
	mk := func() *Table {
		tbl := testTable(ForwardDR, header.ProtoTCP)
		for i, a := range []netip.Addr{ipRS16, ipRS26} {
			tbl.Reals = append(tbl.Reals, Real{ID: uint32(1 + i), Addr6: a.As16(), Port: vport, Forward: ForwardDR, MAC: macRS1, Ready: true,
				Counters: new(schedule.Counters), Stats: new(RealStats)})
		}
		svc := addService6(tbl, header.ProtoTCP, vport, "rr", []uint32{1, 2})
		svc.Persist, svc.PersistBits = 5*time.Minute, 64
		return tbl
	}
	master, backup, mt, bt := syncPair6(t, mk)
	now := int64(time.Second)
	other := tcp6(1000, true, false)
	other.src = netip.MustParseAddr("fd00:99::9")
	if v, _ := from6(t, master.workers[0], mt, other, now); v != VerdictForward {
		t.Fatalf("first client: %v", v)
	}
	from6(t, master.workers[0], mt, tcp6(2000, true, false), now)
	var tpl []SyncConn6
	for _, e := range master.SyncEvents6(nil) {
		if e.Entry.Flags&SyncTemplate != 0 {
			tpl = append(tpl, e)
		}
	}
	if len(tpl) != 2 || tpl[1].Entry.Real != ipRS26.As16() || tpl[1].Entry.ClientPort != 0 ||
		tpl[1].Entry.Client != netip.MustParseAddr("fd00:10::").As16() {
		t.Fatalf("template reports %+v", tpl)
	}
	if refresh := master.SyncTemplates6(nil, now); len(refresh) != 2 {
		t.Fatalf("refresh lists %d IPv6 templates, want 2", len(refresh))
	}
	if refresh := master.SyncTemplates(nil, now); len(refresh) != 0 {
		t.Fatalf("IPv4 refresh lists IPv6 templates: %+v", refresh)
	}
	backup.Install6(synced6(tpl[1:], now), true)
	bw := backup.workers[0]
	bw.serveSync(now)
	if backup.templates.Len() != 1 || bt.Reals[2].Counters.Persistent.Load() != 1 {
		t.Fatalf("backup templates %d, persistent on real 2: %d", backup.templates.Len(), bt.Reals[2].Counters.Persistent.Load())
	}
	// The backup's rr would start at real 1; the template says real 2.
	from6(t, bw, bt, tcp6(3000, true, false), now)
	if bt.Reals[2].Stats.Conns.Load() != 1 || bt.Reals[1].Stats.Conns.Load() != 0 {
		t.Fatalf("the client's new connection on the backup: real 1 %d, real 2 %d", bt.Reals[1].Stats.Conns.Load(), bt.Reals[2].Stats.Conns.Load())
	}
}

// TestZeroAllocsSync6: with sync on, a new IPv6 connection (reported into
// the ring, or counted as dropped once it is full) and an established
// one's packet cost no allocation.
func TestZeroAllocsSync6(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardNAT} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			d, err := New([]Link{&fakeLink{}}, 1<<16)
			if err != nil {
				t.Fatal(err)
			}
			d.EnableSync(64, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
			tbl := testTable6(f, proto)
			d.Publish(tbl)
			w := d.workers[0]
			p := client6(proto)
			p.syn = true
			frame := p.bytes(t)
			buf := make([]byte, Headroom+MaxFrame)
			icmp := make([]byte, 128)
			port := uint16(1)
			allocs := testing.AllocsPerRun(500, func() {
				copy(buf[Headroom:], frame)
				ip := header.IPv6(buf[Headroom+header.EthernetLen:])
				if proto == header.ProtoUDP {
					header.UDP(ip.Payload()).SetSourcePortWithChecksumUpdate(port)
				} else {
					header.TCP(ip.Payload()).SetSourcePortWithChecksumUpdate(port)
				}
				port++
				if _, v := w.process(tbl, buf, len(frame), icmp, 2); v != VerdictForward {
					t.Fatalf("%v: verdict %v", f, v)
				}
			})
			if allocs != 0 {
				t.Errorf("%v/%s: %.1f allocations per new IPv6 connection with sync, want 0", f, protoName(proto), allocs)
			}
			if s := d.SyncStats(); s.Queued == 0 || s.Dropped == 0 {
				t.Errorf("%v/%s: sync stats %+v, want reports queued and then dropped", f, protoName(proto), s)
			}
		}
	}
}

// syncPair6T is syncPair6 with tables made by mk (SYN proxy, FULLNAT,
// PROXY header), and rings big enough for a handshake's reports.
func syncPair6T(t *testing.T, mk func() *Table) (master, backup *Dataplane, mt, bt *Table) {
	t.Helper()
	mkd := func() (*Dataplane, *Table) {
		d, err := New([]Link{&fakeLink{}}, 1024)
		if err != nil {
			t.Fatal(err)
		}
		d.EnableSync(64, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
		tbl := mk()
		d.Publish(tbl)
		d.workers[0].cur = tbl
		return d, tbl
	}
	master, mt = mkd()
	backup, bt = mkd()
	return master, backup, mt, bt
}

// refreshDump6 is refreshDump for SyncConnections6.
func refreshDump6(t *testing.T, d *Dataplane) []SyncConn6 {
	t.Helper()
	res := make(chan []SyncConn6, 1)
	go func() { // test: the sync sender's side of a refresh
		cs, err := d.SyncConnections6(context.Background(), nil)
		if err != nil {
			t.Error(err)
		}
		res <- cs
	}()
	for {
		d.workers[0].serveDump(true)
		select {
		case cs := <-res:
			return cs
		case <-time.After(time.Millisecond):
		}
	}
}

// fromReal6F is fromReal6 for a connection in forwarding method f: a NAT
// real sends to the client, a FULLNAT one to the local address.
func fromReal6F(t testing.TB, w *Worker, f Forward, sport uint16, flags string, seq, ack uint32) seg {
	t.Helper()
	s := fromReal6(t, w, sport, flags, seq, ack)
	if f == ForwardNAT {
		s.dst, s.dport = ipClient6, sport
	}
	return s
}

// handshake6 is handshake for IPv6: the cookie handshake of client port
// sport on the SYN-proxied w, and the real's SYN-ACK. It returns the
// cookie.
func handshake6(t testing.TB, w *Worker, tbl *Table, f Forward, sport uint16, isn, risn uint32, now int64) uint32 {
	t.Helper()
	out, _, v := spSend(t, w, tbl, fromClient6(sport, "S", isn, 0).bytes6(t), header.Offload{}, now)
	if v != VerdictSynProxy || out == nil {
		t.Fatalf("SYN: verdict %v, %d bytes out", v, len(out))
	}
	cookie := tcpOf6(out).SequenceNumber()
	if _, _, v := spSend(t, w, tbl, fromClient6(sport, "A", isn+1, cookie+1).bytes6(t), header.Offload{}, now); v != VerdictSynProxy {
		t.Fatalf("ACK: verdict %v", v)
	}
	synack := fromReal6F(t, w, f, sport, "SA", risn, isn+w.shard6.Load().Aux(entryOf6(t, w, sport))[auxClient]+1)
	synack.mss = 1460
	if out, _, v := spSend(t, w, tbl, synack.bytes6(t), header.Offload{}, now); v != VerdictSynProxy || out == nil {
		t.Fatalf("SYN-ACK: verdict %v, %d bytes out", v, len(out))
	}
	return cookie
}

// TestSyncSynProxy6 is TestSyncSynProxy for IPv6: a SYN-proxied NAT or
// FULLNAT connection opened on the master and synced to the backup (from
// both reports, the spliced one, a refresh dump, or the pending one
// followed by the real's SYN-ACK on the backup) translates there exactly
// as on the master, byte for byte.
func TestSyncSynProxy6(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		for _, variant := range []string{"reports", "spliced report", "refresh", "pending report"} {
			t.Run(f.String()+"/"+variant, func(t *testing.T) {
				master, backup, mt, bt := syncPair6T(t, func() *Table { return spTable6(f) })
				mw, bw := master.workers[0], backup.workers[0]
				const now = int64(time.Second)
				cookie := handshake6(t, mw, mt, f, cport, spISN, spRISN, now)
				me := entryOf6(t, mw, cport)
				in := mw.shard6.Load().Aux(me)[auxClient]
				ev := master.SyncEvents6(nil)
				if len(ev) != 2 || !ev[0].SynPending() || ev[0].Aux != (conntrack.Aux{auxReal: cookie, auxClient: in}) ||
					!ev[1].SynProxied() || ev[1].SynPending() || ev[1].Entry.State != conntrack.TCPEstablished {
					t.Fatalf("reports %+v", ev)
				}
				if len(master.SyncEvents(nil)) != 0 {
					t.Fatal("IPv6 reports in the IPv4 ring")
				}
				if i, o := ev[1].SeqDeltas(); i != in || o != cookie-spRISN {
					t.Fatalf("SeqDeltas %#x %#x, want %#x %#x", i, o, in, cookie-spRISN)
				}
				if ev[1].Entry.Local != me.Local || ev[1].Entry.LPort != me.LPort {
					t.Fatalf("report's local %v:%d, want %v:%d", ev[1].Entry.Local, ev[1].Entry.LPort, me.Local, me.LPort)
				}
				var install []SyncConn6
				switch variant {
				case "reports":
					install = ev
				case "spliced report":
					install = ev[1:]
				case "pending report":
					install = ev[:1]
				case "refresh":
					install = refreshDump6(t, master)
					if len(install) != 1 || install[0].Aux != ev[1].Aux || !install[0].SynProxied() || install[0].SynPending() {
						t.Fatalf("refresh dump %+v, want the spliced connection with Aux %#x", install, ev[1].Aux)
					}
				}
				backup.Install6(synced6(install, now), true)
				bw.serveSync(now)
				if s := backup.SyncStats(); s.Installed != uint64(len(install)) || s.Unknown+s.Refused != 0 {
					t.Fatalf("sync stats %+v", s)
				}
				if variant == "pending report" {
					synack := fromReal6F(t, mw, f, cport, "SA", spRISN, spISN+in+1)
					synack.mss = 1460
					out, _, v := spSend(t, bw, bt, synack.bytes6(t), header.Offload{}, now)
					if v != VerdictSynProxy || out == nil || tcpOf6(out).SequenceNumber() != spISN+in+1 || tcpOf6(out).AckNumber() != spRISN+1 {
						t.Fatalf("SYN-ACK on the backup: verdict %v, %d bytes out", v, len(out))
					}
				}
				be := entryOf6(t, bw, cport)
				if be.Flags&(flagSynProxy|flagSynPending) != flagSynProxy || *bw.shard6.Load().Aux(be) != ev[1].Aux {
					t.Fatalf("backup entry flags %#x aux %#x, want spliced with %#x", be.Flags, *bw.shard6.Load().Aux(be), ev[1].Aux)
				}
				if be.Local != me.Local || be.LPort != me.LPort {
					t.Fatalf("backup's local %v:%d, want %v:%d", be.Local, be.LPort, me.Local, me.LPort)
				}

				req := fromClient6(cport, "AP", spISN+1, cookie+1)
				req.payload = []byte("GET / HTTP/1.0\r\n\r\n")
				resp := fromReal6F(t, mw, f, cport, "AP", spRISN+1, spISN+in+1+uint32(len(req.payload)))
				resp.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
				for _, s := range []struct {
					name     string
					seg      seg
					seq, ack uint32
				}{
					{"client segment", req, spISN + in + 1, spRISN + 1},
					{"real segment", resp, cookie + 1, spISN + 1 + uint32(len(req.payload))},
				} {
					frame := s.seg.bytes6(t)
					want := mustSend6(t, mw, mt, frame, now)
					got := mustSend6(t, bw, bt, frame, now)
					same(t, s.name+" from the backup", got, want)
					verify6(t, got)
					if tcp := tcpOf6(got); tcp.SequenceNumber() != s.seq || tcp.AckNumber() != s.ack {
						t.Fatalf("%s: seq %#x ack %#x, want %#x %#x", s.name, tcp.SequenceNumber(), tcp.AckNumber(), s.seq, s.ack)
					}
				}
				if be.Flags&flagPeer != 0 {
					t.Fatal("the client's segment left the backup's connection a peer's")
				}
			})
		}
	}
}

// TestSyncFullNATTranslated6 is TestSyncFullNATTranslated for IPv6: an
// IPv6 FULLNAT TCP connection opened on the master is reported with its
// local address and port and its offsets, and, installed on the backup
// from the report or a refresh dump, translates client and real segments
// (timestamps, SACK blocks) byte for byte as on the master.
func TestSyncFullNATTranslated6(t *testing.T) {
	for _, variant := range []string{"report", "refresh"} {
		t.Run(variant, func(t *testing.T) {
			master, backup, mt, bt := syncPair6T(t, func() *Table { return fnTable6(header.ProtoTCP) })
			mw, bw := master.workers[0], backup.workers[0]
			const now = int64(time.Second)
			syn := fromClient6(cport, "S", spISN, 0)
			syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
			mustSend6(t, mw, mt, syn.bytes6(t), now)
			me := entryOf6(t, mw, cport)
			aux := *mw.shard6.Load().Aux(me)
			ev := master.SyncEvents6(nil)
			if len(ev) != 1 || !ev[0].SeqTranslated() || ev[0].SynProxied() || ev[0].Aux != aux ||
				ev[0].Entry.Local != ipLocal6.As16() || ev[0].Entry.LPort != me.LPort || me.LPort == 0 {
				t.Fatalf("reports %+v, want one translated with Aux %#x from %v:%d", ev, aux, ipLocal6, me.LPort)
			}
			install := ev
			if variant == "refresh" {
				install = refreshDump6(t, master)
				if len(install) != 1 || !install[0].SeqTranslated() || install[0].Aux != aux || install[0].Entry.LPort != me.LPort {
					t.Fatalf("refresh dump %+v", install)
				}
			}
			backup.Install6(synced6(install, now), true)
			bw.serveSync(now)
			be := entryOf6(t, bw, cport)
			if be.Flags&flagSeqXlate == 0 || *bw.shard6.Load().Aux(be) != aux || be.Local != me.Local || be.LPort != me.LPort {
				t.Fatalf("backup entry %+v aux %#x, want translated with %#x from %v:%d", be, *bw.shard6.Load().Aux(be), aux, ipLocal6, me.LPort)
			}
			req := fromClient6(cport, "AP", spISN+1, spRISN+1)
			req.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+4, fnRealTS), optNOP, optNOP, optSACK(spRISN+9, spRISN+19)}
			req.payload = []byte("GET / HTTP/1.0\r\n\r\n")
			resp := fromReal6(t, mw, cport, "AP", spRISN+1, spISN+aux[auxClient]+1)
			resp.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, fnClientTS+4+aux[auxTS]), optNOP, optNOP,
				optSACK(spISN+aux[auxClient]+30, spISN+aux[auxClient]+40)}
			resp.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
			for _, s := range []struct {
				name string
				seg  seg
			}{{"client segment", req}, {"real segment", resp}} {
				frame := s.seg.bytes6(t)
				want := mustSend6(t, mw, mt, frame, now)
				got := mustSend6(t, bw, bt, frame, now)
				same(t, s.name+" from the backup", got, want)
				verify6(t, got)
			}
		})
	}
}

// TestSyncProxyHeader6 is TestSyncProxyHeader for IPv6: a NAT or FULLNAT
// connection whose real got its PROXY header on the master is reported
// with the header in its client offset and flagged; installed on the
// backup, from the report or as the wire gives it back, it translates
// client and real segments byte for byte as the master does, and the
// backup never sends the header again.
func TestSyncProxyHeader6(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		for _, variant := range []string{"report", "wire"} {
			t.Run(f.String()+"/"+variant, func(t *testing.T) {
				master, backup, mt, bt := syncPair6T(t, func() *Table { return ppTable6(f, ProxyV2) })
				mw, bw := master.workers[0], backup.workers[0]
				const now = int64(time.Second)
				L := uint32(len(wantProxyHeader6(ProxyV2)))
				syn := fromClient6(cport, "S", spISN, 0)
				syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
				isn := tcpOf6(mustSend6(t, mw, mt, syn.bytes6(t), now)).SequenceNumber()
				synack := fromReal6F(t, mw, f, cport, "SA", spRISN, isn+1)
				synack.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS, fnClientTS)}
				mustSend6(t, mw, mt, synack.bytes6(t), now)
				if _, extra, _ := spSend(t, mw, mt, fromClient6(cport, "A", spISN+1, spRISN+1).bytes6(t), header.Offload{}, now); len(extra) != 1 {
					t.Fatalf("no header from the master")
				}
				mustSend6(t, mw, mt, fromReal6F(t, mw, f, cport, "A", spRISN+1, isn+1+L).bytes6(t), now)
				aux := *mw.shard6.Load().Aux(entryOf6(t, mw, cport))
				ev := master.SyncEvents6(nil)
				last := ev[len(ev)-1]
				if last.Entry.State != conntrack.TCPEstablished || !last.ProxyHeader() || !last.SeqTranslated() || last.Aux != aux {
					t.Fatalf("last report %+v, want established, flagged, Aux %#x", last, aux)
				}
				if in, _ := last.SeqDeltas(); in != isn-spISN+L && f == ForwardFullNAT || in != L && f == ForwardNAT {
					t.Fatalf("reported in %#x", in)
				}
				install := []SyncConn6{last}
				if variant == "wire" {
					var c SyncConn6
					c.Entry = last.Entry
					c.Entry.Flags = 0
					in, _ := last.SeqDeltas()
					c.SetFullNATOffsets(in, last.TSOffset())
					c.SetProxyHeader()
					install = []SyncConn6{c}
				}
				backup.Install6(synced6(install, now), true)
				bw.serveSync(now)
				if s := backup.SyncStats(); s.Installed != 1 {
					t.Fatalf("sync stats %+v", s)
				}
				if e := entryOf6(t, bw, cport); e.Flags&(flagProxyHdr|flagSeqXlate) != flagProxyHdr|flagSeqXlate || *bw.shard6.Load().Aux(e) != aux {
					t.Fatalf("backup entry flags %#x aux %#x, want %#x", e.Flags, *bw.shard6.Load().Aux(e), aux)
				}
				req := fromClient6(cport, "AP", spISN+1, spRISN+1)
				req.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+4, fnRealTS)}
				req.payload = []byte("GET / HTTP/1.0\r\n\r\n")
				resp := fromReal6F(t, mw, f, cport, "AP", spRISN+1, isn+1+L+18)
				resp.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, fnClientTS+4+aux[auxTS]), optNOP, optNOP,
					optSACK(isn+L+30, isn+L+40)}
				resp.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
				cisn := uint32(spISN)
				fin := fromClient6(cport, "FA", cisn+19, spRISN+20)
				for _, s := range []struct {
					name string
					seg  seg
				}{{"client segment", req}, {"real segment", resp}, {"client FIN", fin}} {
					frame := s.seg.bytes6(t)
					want := mustSend6(t, mw, mt, frame, now)
					got := mustSend6(t, bw, bt, frame, now)
					same(t, s.name+" from the backup", got, want)
					verify6(t, got)
				}
				if _, extra, _ := spSend(t, bw, bt, fromClient6(cport, "A", spISN+1, spRISN+1).bytes6(t), header.Offload{}, now); len(extra) != 0 || bw.C.ProxyHeaders.Load() != 0 {
					t.Fatalf("the backup sent a header for a synced connection")
				}
			})
		}
	}
}

// TestSyncPeerUpdates6: an IPv6 FULLNAT connection installed from a
// peer's report is updated by the peer's later reports even where Install
// is told not to update (flagPeer), until this director forwards a client
// packet of it; from then on such reports are kept out.
func TestSyncPeerUpdates6(t *testing.T) {
	master, backup, mt, bt := syncPair6T(t, func() *Table { return fnTable6(header.ProtoTCP) })
	mw, bw := master.workers[0], backup.workers[0]
	const now = int64(time.Second)
	mustSend6(t, mw, mt, fromClient6(cport, "S", spISN, 0).bytes6(t), now)
	ev := master.SyncEvents6(nil)
	backup.Install6(synced6(ev, now), false)
	bw.serveSync(now)
	be := entryOf6(t, bw, cport)
	if be.Flags&flagPeer == 0 || be.State != conntrack.TCPSynRecv {
		t.Fatalf("installed flags %#x state %v, want a peer's in SYN_RECV", be.Flags, be.State)
	}
	up := ev[0]
	up.Entry.State = conntrack.TCPEstablished
	backup.Install6(synced6([]SyncConn6{up}, now), false)
	bw.serveSync(now)
	if be.State != conntrack.TCPEstablished {
		t.Fatalf("a peer's update of a peer's connection: state %v, want established", be.State)
	}
	aux := *mw.shard6.Load().Aux(entryOf6(t, mw, cport))
	mustSend6(t, bw, bt, fromClient6(cport, "A", spISN+1, spRISN+1).bytes6(t), now)
	if be.Flags&flagPeer != 0 {
		t.Fatalf("flags %#x after a client packet, want flagPeer cleared", be.Flags)
	}
	up.Entry.State = conntrack.TCPFinWait
	backup.Install6(synced6([]SyncConn6{up}, now), false)
	bw.serveSync(now)
	if be.State != conntrack.TCPEstablished || *bw.shard6.Load().Aux(be) != aux || backup.SyncStats().Kept != 1 {
		t.Fatalf("state %v aux %#x kept %d, want established, %#x, 1", be.State, *bw.shard6.Load().Aux(be), aux, backup.SyncStats().Kept)
	}
}

// TestZeroAllocsSyncTranslated6: reports of IPv6 connections with Aux
// words allocate nothing: FULLNAT connections opening (TCP, translated,
// and UDP), and SYN-proxied ones opened by the cookie's ACK.
func TestZeroAllocsSyncTranslated6(t *testing.T) {
	const runs = 300
	for _, tc := range []struct {
		name    string
		tbl     *Table
		frames  func(w *Worker, now int64) [][]byte
		verdict Verdict
	}{
		{"FULLNAT TCP", fnTable6(header.ProtoTCP), func(w *Worker, now int64) [][]byte {
			var fs [][]byte
			for i := range runs + 1 {
				s := fromClient6(uint16(2000+i), "S", spISN, 0)
				s.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
				fs = append(fs, s.bytes6(t))
			}
			return fs
		}, VerdictForward},
		{"SYN proxy NAT", spTable6(ForwardNAT), func(w *Worker, now int64) [][]byte {
			var fs [][]byte
			for i := range runs + 1 {
				port := uint16(2000 + i)
				key := conntrack.Key6{Src: ipClient6.As16(), Dst: ipVIP6.As16(), SrcPort: port, DstPort: vport, Proto: header.ProtoTCP}
				cookie := synCookieKey.make6(&key, spISN, mssIndex(536), cookieTime(now))
				fs = append(fs, fromClient6(port, "A", spISN+1, cookie+1).bytes6(t))
			}
			return fs
		}, VerdictSynProxy},
	} {
		d, err := New([]Link{&fakeLink{}}, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		d.EnableSync(64, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
		d.Publish(tc.tbl)
		w := d.workers[0]
		now := int64(7 * time.Second)
		w.cur, w.now = tc.tbl, now
		frames := tc.frames(w, now)
		buf := make([]byte, Headroom+MaxFrame)
		icmp := make([]byte, 128)
		i := 0
		allocs := testing.AllocsPerRun(runs, func() {
			f := frames[i%len(frames)]
			i++
			copy(buf[Headroom:], f)
			if _, v := w.process(tc.tbl, buf, len(f), icmp, now); v != tc.verdict {
				t.Fatalf("%s: verdict %v", tc.name, v)
			}
			w.resetSpare()
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per new IPv6 connection with sync, want 0", tc.name, allocs)
		}
		ev := d.SyncEvents6(nil)
		if len(ev) == 0 || ev[0].Aux == (conntrack.Aux{}) {
			t.Errorf("%s: reports %d, the first with Aux %#x; want reports with Aux", tc.name, len(ev), ev)
		}
	}
}
