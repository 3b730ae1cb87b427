package dataplane

import (
	"context"
	"net/netip"
	"testing"
	"time"

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
