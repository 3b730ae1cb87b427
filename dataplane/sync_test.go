package dataplane

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// syncPair is a master and a backup worker, each alone in a dataplane with
// sync on and the same table (separate counters).
func syncPair(t *testing.T, f Forward, proto uint8) (master, backup *Dataplane, mt, bt *Table) {
	t.Helper()
	mk := func() (*Dataplane, *Table) {
		d, err := New([]Link{&fakeLink{}}, 1024)
		if err != nil {
			t.Fatal(err)
		}
		d.EnableSync(4, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
		tbl := testTable(f, proto)
		d.Publish(tbl)
		d.workers[0].cur = tbl
		return d, tbl
	}
	master, mt = mk()
	backup, bt = mk()
	return master, backup, mt, bt
}

// synced turns what the master reported into what a backup's receiver
// passes to Install: Expires becomes the time left.
func synced(events []SyncConn, now int64) []SyncConn {
	out := make([]SyncConn, len(events))
	for i, e := range events {
		e.Entry.Expires -= now
		out[i] = e
	}
	return out
}

// TestSyncReportAndInstall: the master reports a TCP connection as it
// leaves NONE and as it becomes established, and a UDP one when created;
// installed on the backup, the connection forwards a mid-stream segment
// to the same real (without it: no_conn), and the real's counters count
// it in the right class.
func TestSyncReportAndInstall(t *testing.T) {
	for _, f := range []Forward{ForwardDR, ForwardNAT} {
		t.Run(f.String(), func(t *testing.T) {
			master, backup, mt, bt := syncPair(t, f, header.ProtoTCP)
			mw, bw := master.workers[0], backup.workers[0]
			now := int64(time.Second)
			if v, _ := tcpFrom(t, mw, mt, 40000, "S", now); v != VerdictForward {
				t.Fatalf("SYN: %v", v)
			}
			if v, _ := tcpFrom(t, mw, mt, 40000, "A", now); v != VerdictForward {
				t.Fatalf("ACK: %v", v)
			}
			select {
			case <-master.SyncWake():
			default:
				t.Fatal("the first report did not wake the sender")
			}
			ev := master.SyncEvents(nil)
			wantStates := []conntrack.State{conntrack.TCPSynRecv, conntrack.TCPEstablished}
			if len(ev) != 2 || ev[0].Entry.State != wantStates[0] || ev[1].Entry.State != wantStates[1] || ev[1].Entry.ClientMAC != macRouter {
				t.Fatalf("reports %+v, want states %v with the client MAC", ev, wantStates)
			}
			if more := master.SyncEvents(nil); len(more) != 0 {
				t.Fatalf("drained twice: %+v", more)
			}

			// Before anything is installed the backup drops the segment.
			if v, _ := tcpFrom(t, bw, bt, 40000, "A", now); v != VerdictNoConn {
				t.Fatalf("backup without sync: %v, want no_conn", v)
			}
			if n := backup.Install(synced(ev, now), true); n != 2 {
				t.Fatalf("Install queued %d of 2", n)
			}
			bw.serveSync(now)
			if s := backup.SyncStats(); s.Installed != 2 || s.Unknown+s.Refused != 0 {
				t.Fatalf("sync stats %+v", s)
			}
			if st := entryState(t, bw, 40000); st != conntrack.TCPEstablished {
				t.Fatalf("installed state %v", st)
			}
			c := bt.Reals[0].Counters
			if c.Active.Load() != 1 || c.Inactive.Load() != 0 {
				t.Fatalf("backup counters active %d inactive %d, want 1 0", c.Active.Load(), c.Inactive.Load())
			}
			if v, r := tcpFrom(t, bw, bt, 40000, "A", now); v != VerdictForward || r != 0 {
				t.Fatalf("backup after sync: %v to real %d", v, r)
			}
			if backup.SyncEvents(nil) != nil {
				t.Fatal("an installed connection was reported back")
			}
			// A master keeps its own entry against a late report.
			stale := synced(ev[:1], now)
			backup.Install(stale, false)
			bw.serveSync(now)
			if st := entryState(t, bw, 40000); st != conntrack.TCPEstablished || backup.SyncStats().Kept != 1 {
				t.Fatalf("install without update: state %v, stats %+v", st, backup.SyncStats())
			}
			// The connection closes: the FIN's report moves the backup's
			// entry to an inactive state.
			tcpFrom(t, mw, mt, 40000, "FA", now)
			backup.Install(synced(master.SyncEvents(nil), now), true)
			bw.serveSync(now)
			if st := entryState(t, bw, 40000); conntrack.IsActive(st) || c.Active.Load() != 0 || c.Inactive.Load() != 1 {
				t.Fatalf("after FIN: state %v, active %d inactive %d", st, c.Active.Load(), c.Inactive.Load())
			}
		})
	}
}

// TestSyncPeerUpdates: directors that all forward (ECMP behind BGP, or a
// VRRP master hearing its predecessor's last reports) install without
// update, yet a peer's connection they have not forwarded follows the
// peer's reports: established, then closing. Once one forwards a client
// segment the connection is its own, and a peer's stale report is kept
// out. Before, the copy stayed in SYN_RECV and expired after that state's
// timeout, so a flow that moved later found no connection.
func TestSyncPeerUpdates(t *testing.T) {
	a, b, at, bt := syncPair(t, ForwardDR, header.ProtoTCP)
	aw, bw := a.workers[0], b.workers[0]
	now := int64(time.Second)
	install := func(ev []SyncConn) {
		t.Helper()
		if n := b.Install(synced(ev, now), false); n != len(ev) {
			t.Fatalf("Install queued %d of %d", n, len(ev))
		}
		bw.serveSync(now)
	}
	tcpFrom(t, aw, at, 40000, "S", now)
	install(a.SyncEvents(nil))
	if st := entryState(t, bw, 40000); st != conntrack.TCPSynRecv {
		t.Fatalf("after the SYN's report: %v", st)
	}
	tcpFrom(t, aw, at, 40000, "A", now)
	established := a.SyncEvents(nil)
	install(established)
	if st := entryState(t, bw, 40000); st != conntrack.TCPEstablished {
		t.Fatalf("a peer's connection did not follow its report: %v, stats %+v", st, b.SyncStats())
	}
	c := bt.Reals[0].Counters
	if c.Active.Load() != 1 || c.Inactive.Load() != 0 {
		t.Fatalf("counters active %d inactive %d, want 1 0", c.Active.Load(), c.Inactive.Load())
	}
	tcpFrom(t, aw, at, 40000, "FA", now)
	install(a.SyncEvents(nil))
	if st := entryState(t, bw, 40000); conntrack.IsActive(st) || c.Active.Load() != 0 || c.Inactive.Load() != 1 {
		t.Fatalf("after the FIN's report: %v, active %d inactive %d", st, c.Active.Load(), c.Inactive.Load())
	}
	// The flow moves here: b forwards a segment and owns the connection;
	// a's stale report of it established no longer applies.
	if v, _ := tcpFrom(t, bw, bt, 40000, "A", now); v != VerdictForward {
		t.Fatalf("moved segment: %v", v)
	}
	before := entryState(t, bw, 40000)
	kept := b.SyncStats().Kept
	install(established)
	if st := entryState(t, bw, 40000); st != before || b.SyncStats().Kept != kept+1 {
		t.Fatalf("a stale report moved an owned connection: %v (was %v), stats %+v", st, before, b.SyncStats())
	}
}

// TestSyncNATReplyGoesToGateway: a NAT reply of a synced connection that
// has not seen a client packet on the backup goes to the default gateway;
// once the client's packet came, to the client's next hop.
func TestSyncNATReplyGoesToGateway(t *testing.T) {
	master, backup, mt, bt := syncPair(t, ForwardNAT, header.ProtoUDP)
	gw := mustMAC("02:00:0a:14:00:01")
	bt.GatewayMAC = gw
	now := int64(time.Second)
	p := client(header.ProtoUDP)
	buf := make([]byte, Headroom+MaxFrame)
	n := copy(buf[Headroom:], p.bytes(t))
	if _, v := master.workers[0].process(mt, buf, n, make([]byte, 128), now); v != VerdictForward {
		t.Fatalf("master: %v", v)
	}
	ev := master.SyncEvents(nil)
	if len(ev) != 1 || ev[0].Entry.State != conntrack.UDP {
		t.Fatalf("UDP reports %+v", ev)
	}
	backup.Install(synced(ev, now), true)
	bw := backup.workers[0]
	bw.serveSync(now)
	reply := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport, proto: header.ProtoUDP, payload: []byte("hi")}
	for _, step := range []struct {
		name string
		want [6]byte
	}{{"before the client's packet", gw}, {"after it", macRouter}} {
		if step.want == macRouter {
			n = copy(buf[Headroom:], p.bytes(t))
			if _, v := bw.process(bt, buf, n, make([]byte, 128), now); v != VerdictForward {
				t.Fatalf("client packet on the backup: %v", v)
			}
		}
		n = copy(buf[Headroom:], reply.bytes(t))
		out, v := bw.process(bt, buf, n, make([]byte, 128), now)
		if v != VerdictForward || header.Ethernet(out).Destination() != step.want {
			t.Fatalf("reply %s: %v, to %x, want %x", step.name, v, header.Ethernet(out).Destination(), step.want)
		}
	}
}

// TestSyncInstallRefusals: unknown services and reals are counted, not
// installed; a full ring drops and counts reports.
func TestSyncInstallRefusals(t *testing.T) {
	master, backup, mt, _ := syncPair(t, ForwardDR, header.ProtoUDP)
	now := int64(time.Second)
	buf := make([]byte, Headroom+MaxFrame)
	for i := range 6 {
		p := client(header.ProtoUDP)
		p.sport = uint16(30000 + i)
		n := copy(buf[Headroom:], p.bytes(t))
		master.workers[0].process(mt, buf, n, make([]byte, 128), now)
	}
	ev := master.SyncEvents(nil)
	if s := master.SyncStats(); len(ev) != 4 || s.Queued != 4 || s.Dropped != 2 {
		t.Fatalf("ring of 4 after 6 connections: %d drained, stats %+v", len(ev), s)
	}
	bad := synced(ev[:3], now)
	bad[0].Entry.VPort++             // no such service
	bad[1].Entry.Real[3]++           // no such real
	bad[2].Entry.Local = [4]byte{10} // a FULLNAT entry for a DR real
	backup.Install(bad, true)
	backup.workers[0].serveSync(now)
	if s := backup.SyncStats(); s.Unknown != 3 || s.Installed != 0 || backup.workers[0].shard.Len() != 0 {
		t.Fatalf("bad entries: stats %+v, %d in the shard", s, backup.workers[0].shard.Len())
	}
	off, _ := New([]Link{&fakeLink{}}, 16)
	if off.Install(ev, true) != 0 || off.SyncEvents(nil) != nil {
		t.Fatal("a dataplane without sync installed or reported")
	}
}

// TestSyncTemplates: the master reports a persistence template when it
// creates one, and a refresh lists it; installed on the backup it sends
// the client's next connection to the master's real, not to the one its
// own scheduler would pick.
func TestSyncTemplates(t *testing.T) {
	mk := func() (*Dataplane, *Table) {
		d, err := New([]Link{&fakeLink{}}, 1024)
		if err != nil {
			t.Fatal(err)
		}
		d.EnableSync(64, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
		tbl := twoRealTable(t, header.ProtoTCP, 5*time.Minute, 24, false)
		d.Publish(tbl)
		d.workers[0].cur = tbl
		return d, tbl
	}
	master, mt := mk()
	backup, bt := mk()
	now := int64(time.Second)
	other := netip.MustParseAddr("10.10.9.9")
	if r := sendFrom(t, master.workers[0], mt, header.ProtoTCP, other, 1000, now); r != 0 {
		t.Fatalf("first client went to real %d", r)
	}
	if r := sendFrom(t, master.workers[0], mt, header.ProtoTCP, ipClient, 2000, now); r != 1 {
		t.Fatalf("second client went to real %d", r)
	}
	var tpl []SyncConn
	for _, e := range master.SyncEvents(nil) {
		if e.Entry.Flags&SyncTemplate != 0 {
			tpl = append(tpl, e)
		}
	}
	if len(tpl) != 2 || tpl[1].Entry.Real != mt.Reals[1].Addr || tpl[1].Entry.ClientPort != 0 || tpl[1].Entry.Client != [4]byte{10, 10, 0, 0} {
		t.Fatalf("template reports %+v", tpl)
	}
	if refresh := master.SyncTemplates(nil, now); len(refresh) != 2 {
		t.Fatalf("refresh lists %d templates, want 2", len(refresh))
	}
	backup.Install(synced(tpl[1:], now), true)
	bw := backup.workers[0]
	bw.serveSync(now)
	if backup.templates.Len() != 1 || bt.Reals[1].Counters.Persistent.Load() != 1 {
		t.Fatalf("backup templates %d, persistent on real 1 %d", backup.templates.Len(), bt.Reals[1].Counters.Persistent.Load())
	}
	// The backup's rr would start at real 0; the template says real 1.
	if r := sendFrom(t, bw, bt, header.ProtoTCP, ipClient, 3000, now); r != 1 {
		t.Fatalf("the client's new connection on the backup went to real %d, want 1", r)
	}
}

// spSyncPair is syncPair for a SYN-proxied TCP service.
func spSyncPair(t *testing.T, f Forward) (master, backup *Dataplane, mt, bt *Table) {
	t.Helper()
	mk := func() (*Dataplane, *Table) {
		d, err := New([]Link{&fakeLink{}}, 1024)
		if err != nil {
			t.Fatal(err)
		}
		d.EnableSync(16, func(*conntrack.Entry4) int { return 0 }, func(*conntrack.Entry6) int { return 0 })
		tbl := spTable(f)
		d.Publish(tbl)
		d.workers[0].cur = tbl
		return d, tbl
	}
	master, mt = mk()
	backup, bt = mk()
	return master, backup, mt, bt
}

// refreshDump runs SyncConnections on d, whose single worker is not
// running, by serving its dump by hand.
func refreshDump(t *testing.T, d *Dataplane) []SyncConn {
	t.Helper()
	res := make(chan []SyncConn, 1)
	go func() { // test: the sync sender's side of a refresh
		cs, err := d.SyncConnections(context.Background(), nil)
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

// TestSyncSynProxy: a SYN-proxied connection opened on the master (the
// whole cookie handshake) and synced to the backup translates there
// exactly as on the master: a client segment and a real segment come out
// of the backup byte for byte as they come out of the master, sequence and
// acknowledgment numbers and checksums included. It holds for what the
// reports carry (both: pending, then spliced), for the spliced report
// alone (what goes on the wire), for a refresh dump, and for the pending
// report alone, after which the real's SYN-ACK reaches the backup and the
// backup splices the connection itself.
func TestSyncSynProxy(t *testing.T) {
	for _, f := range []Forward{ForwardNAT, ForwardFullNAT} {
		for _, variant := range []string{"reports", "spliced report", "refresh", "pending report"} {
			t.Run(f.String()+"/"+variant, func(t *testing.T) {
				master, backup, mt, bt := spSyncPair(t, f)
				mw, bw := master.workers[0], backup.workers[0]
				const now = int64(time.Second)
				cookie := handshake(t, mw, mt, cport, spISN, spRISN, now)
				in := clientOffset(t, mw, cport)
				ev := master.SyncEvents(nil)
				if len(ev) != 2 || !ev[0].SynPending() || ev[0].Aux != (conntrack.Aux{auxReal: cookie, auxClient: in}) ||
					!ev[1].SynProxied() || ev[1].SynPending() || ev[1].Entry.State != conntrack.TCPEstablished {
					t.Fatalf("reports %+v", ev)
				}
				if i, o := ev[1].SeqDeltas(); i != in || o != cookie-spRISN {
					t.Fatalf("SeqDeltas %#x %#x, want %#x %#x", i, o, in, cookie-spRISN)
				}
				var c SyncConn
				c.SetSeqDeltas(in, cookie-spRISN)
				if c.Aux != ev[1].Aux || !c.SynProxied() || c.SynPending() {
					t.Fatalf("SetSeqDeltas gives %+v, want the report's Aux %#x", c, ev[1].Aux)
				}
				var install []SyncConn
				switch variant {
				case "reports":
					install = ev
				case "spliced report", "pending report":
					install = ev[1:]
					if variant == "pending report" {
						install = ev[:1]
					}
				case "refresh":
					install = refreshDump(t, master)
					if len(install) != 1 || install[0].Aux != ev[1].Aux || !install[0].SynProxied() || install[0].SynPending() {
						t.Fatalf("refresh dump %+v, want the spliced connection with Aux %#x", install, ev[1].Aux)
					}
				}
				backup.Install(synced(install, now), true)
				bw.serveSync(now)
				if s := backup.SyncStats(); s.Installed != uint64(len(install)) || s.Unknown+s.Refused != 0 {
					t.Fatalf("sync stats %+v", s)
				}
				if variant == "pending report" {
					synack := fromReal(t, mw, cport, "SA", spRISN, spISN+in+1)
					synack.mss = 1460
					out, _, v := spSend(t, bw, bt, synack.bytes(t), header.Offload{}, now)
					if v != VerdictSynProxy || out == nil || tcpOf(out).SequenceNumber() != spISN+in+1 || tcpOf(out).AckNumber() != spRISN+1 {
						t.Fatalf("SYN-ACK on the backup: verdict %v, %d bytes out", v, len(out))
					}
				}
				if e := entryOf(t, bw, cport); e.Flags&(flagSynProxy|flagSynPending) != flagSynProxy || *bw.shard.Aux(e) != ev[1].Aux {
					t.Fatalf("backup entry flags %#x aux %#x, want spliced with %#x", e.Flags, *bw.shard.Aux(e), ev[1].Aux)
				}

				req := fromClient(cport, "AP", spISN+1, cookie+1)
				req.payload = []byte("GET / HTTP/1.0\r\n\r\n")
				resp := fromReal(t, mw, cport, "AP", spRISN+1, spISN+in+1+uint32(len(req.payload)))
				resp.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
				for _, s := range []struct {
					name     string
					seg      seg
					seq, ack uint32
				}{
					{"client segment", req, spISN + in + 1, spRISN + 1},
					{"real segment", resp, cookie + 1, spISN + 1 + uint32(len(req.payload))},
				} {
					frame := s.seg.bytes(t)
					want, _, v := spSend(t, mw, mt, frame, header.Offload{}, now)
					if v != VerdictForward {
						t.Fatalf("%s on the master: verdict %v", s.name, v)
					}
					got, _, v := spSend(t, bw, bt, frame, header.Offload{}, now)
					if v != VerdictForward {
						t.Fatalf("%s on the backup: verdict %v", s.name, v)
					}
					same(t, s.name+" from the backup", got, want)
					checksumsValid(t, s.name, got)
					if tcp := tcpOf(got); tcp.SequenceNumber() != s.seq || tcp.AckNumber() != s.ack {
						t.Fatalf("%s: seq %#x ack %#x, want %#x %#x", s.name, tcp.SequenceNumber(), tcp.AckNumber(), s.seq, s.ack)
					}
				}
			})
		}
	}
}

// TestSyncFullNATTranslated: a FULLNAT TCP connection opened on the master
// (its SYN with timestamps) is reported with its offsets, and, installed
// on the backup from the report or a refresh dump, translates there
// exactly as on the master: a client segment and a real segment with
// timestamps and SACK blocks come out of both byte for byte alike.
func TestSyncFullNATTranslated(t *testing.T) {
	for _, variant := range []string{"report", "refresh"} {
		t.Run(variant, func(t *testing.T) {
			master, backup, mt, bt := syncPair(t, ForwardFullNAT, header.ProtoTCP)
			mw, bw := master.workers[0], backup.workers[0]
			const now = int64(time.Second)
			syn := fromClient(cport, "S", spISN, 0)
			syn.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS, 0)}
			mustSend(t, mw, mt, syn.bytes(t), now)
			aux := *mw.shard.Aux(entryOf(t, mw, cport))
			ev := master.SyncEvents(nil)
			if len(ev) != 1 || !ev[0].SeqTranslated() || ev[0].SynProxied() || ev[0].Aux != aux {
				t.Fatalf("reports %+v, want one translated with Aux %#x", ev, aux)
			}
			install := ev
			if variant == "refresh" {
				install = refreshDump(t, master)
				if len(install) != 1 || !install[0].SeqTranslated() || install[0].Aux != aux {
					t.Fatalf("refresh dump %+v", install)
				}
			}
			backup.Install(synced(install, now), true)
			bw.serveSync(now)
			if e := entryOf(t, bw, cport); e.Flags&flagSeqXlate == 0 || *bw.shard.Aux(e) != aux {
				t.Fatalf("backup entry flags %#x aux %#x, want translated with %#x", e.Flags, *bw.shard.Aux(e), aux)
			}
			req := fromClient(cport, "AP", spISN+1, spRISN+1)
			req.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnClientTS+4, fnRealTS), optNOP, optNOP, optSACK(spRISN+9, spRISN+19)}
			req.payload = []byte("GET / HTTP/1.0\r\n\r\n")
			resp := fromReal(t, mw, cport, "AP", spRISN+1, spISN+aux[auxClient]+1)
			resp.opts = []layers.TCPOption{optNOP, optNOP, optTS(fnRealTS+1, fnClientTS+4+aux[auxTS]), optNOP, optNOP,
				optSACK(spISN+aux[auxClient]+30, spISN+aux[auxClient]+40)}
			resp.payload = []byte("HTTP/1.0 200 OK\r\n\r\n")
			for _, s := range []struct {
				name string
				seg  seg
			}{{"client segment", req}, {"real segment", resp}} {
				frame := s.seg.bytes(t)
				want := mustSend(t, mw, mt, frame, now)
				got := mustSend(t, bw, bt, frame, now)
				same(t, s.name+" from the backup", got, want)
				checksumsValid(t, s.name, got)
			}
		})
	}
}
