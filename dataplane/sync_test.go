package dataplane

import (
	"net/netip"
	"testing"
	"time"

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
		d.EnableSync(4, func(*conntrack.Entry4) int { return 0 })
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
func synced(events []conntrack.Entry4, now int64) []conntrack.Entry4 {
	out := make([]conntrack.Entry4, len(events))
	for i, e := range events {
		e.Expires -= now
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
			if len(ev) != 2 || ev[0].State != wantStates[0] || ev[1].State != wantStates[1] || ev[1].ClientMAC != macRouter {
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
	if len(ev) != 1 || ev[0].State != conntrack.UDP {
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
	bad[0].VPort++             // no such service
	bad[1].Real[3]++           // no such real
	bad[2].Local = [4]byte{10} // a FULLNAT entry for a DR real
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
		d.EnableSync(64, func(*conntrack.Entry4) int { return 0 })
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
	var tpl []conntrack.Entry4
	for _, e := range master.SyncEvents(nil) {
		if e.Flags&SyncTemplate != 0 {
			tpl = append(tpl, e)
		}
	}
	if len(tpl) != 2 || tpl[1].Real != mt.Reals[1].Addr || tpl[1].ClientPort != 0 || tpl[1].Client != [4]byte{10, 10, 0, 0} {
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
