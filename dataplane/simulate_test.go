package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
	"github.com/gvs-lb/gvs/schedule"
)

// TestTemplateUsableAsWorker: Table.TemplateUsable answers as the
// worker's usable, which newConn asks, for a real of the service, one not
// ready, one removed from the table and one of no service.
func TestTemplateUsableAsWorker(t *testing.T) {
	tbl := twoRealTable(t, header.ProtoTCP, time.Minute, 24, false)
	svc := tbl.Services[ServiceKey{Proto: header.ProtoTCP, VIP: ipVIP.As4(), Port: vport}]
	stray := tbl.Reals[1]
	stray.ID = 2
	tbl.Reals = append(tbl.Reals, stray, Real{}) // 2: in the table, not the service's; 3: removed
	w := newTestWorker(tbl)
	w.curSvc = svc
	check := func(what string) {
		t.Helper()
		for id := range uint32(5) {
			if got, want := tbl.TemplateUsable(svc, id), w.usable(id); got != want {
				t.Errorf("%s: real %d: TemplateUsable %v, worker %v", what, id, got, want)
			}
		}
	}
	check("all ready")
	if !tbl.TemplateUsable(svc, 0) || tbl.TemplateUsable(svc, 2) || tbl.TemplateUsable(svc, 3) || tbl.TemplateUsable(svc, 4) {
		t.Error("want only the service's reals usable")
	}
	tbl.Reals[0].Ready = false
	check("real 0 not ready")
	if tbl.TemplateUsable(svc, 0) {
		t.Error("a real that is not ready is usable")
	}
}

// TestDataplaneTemplate: Dataplane.Template finds the template a worker made
// for a client's prefix, by the workers' clock, and changes nothing.
func TestDataplaneTemplate(t *testing.T) {
	d, err := New([]Link{&fakeLink{}}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tbl := twoRealTable(t, header.ProtoTCP, time.Minute, 24, false)
	d.Publish(tbl)
	w := d.workers[0]
	w.cur = tbl
	client := netip.MustParseAddr("10.10.0.2")
	k := conntrack.MaskedTemplateKey([4]byte{10, 10, 0, 99}, ipVIP.As4(), vport, header.ProtoTCP, 24)
	if _, ok := d.Template(&k); ok {
		t.Fatal("a template before any connection")
	}
	to := sendFrom(t, w, tbl, header.ProtoTCP, client, 1000, nanotime())
	for range 2 {
		info, ok := d.Template(&k)
		if !ok || info.RealID != uint32(to) || info.Conns != 1 {
			t.Fatalf("Template = %+v, %v; want real %d with one connection", info, ok, to)
		}
	}
	if c := d.Counters(); c.Templates != 1 {
		t.Errorf("%d templates, want 1", c.Templates)
	}
}

// TestDataplaneTemplate6: Dataplane.Template finds the template a worker
// made for an IPv6 client's /64 (conntrack.MaskedTemplateKey6), as gvsadm
// simulate asks for it, and TemplateUsable answers for its IPv6 real.
func TestDataplaneTemplate6(t *testing.T) {
	d, err := New([]Link{&fakeLink{}}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tbl := testTable(ForwardDR, header.ProtoUDP)
	for i, a := range []netip.Addr{ipRS16, ipRS26} {
		tbl.Reals = append(tbl.Reals, Real{ID: uint32(1 + i), Addr6: a.As16(), Port: vport, Forward: ForwardDR, MAC: macRS1, Ready: true,
			Counters: new(schedule.Counters), Stats: new(RealStats)})
	}
	svc := addService6(tbl, header.ProtoUDP, vport, "rr", []uint32{1, 2})
	svc.Persist, svc.PersistBits = time.Minute, 64
	d.Publish(tbl)
	w := d.workers[0]
	w.cur = tbl
	k := conntrack.MaskedTemplateKey6(netip.MustParseAddr("fd00:10::99").As16(), ipVIP6.As16(), vport, header.ProtoUDP, 64)
	if _, ok := d.Template(&k); ok {
		t.Fatal("a template before any connection")
	}
	p := client6(header.ProtoUDP)
	if _, _, v := send(t, w, tbl, p.bytes(t), header.Offload{}); v != VerdictForward {
		t.Fatalf("verdict %v", v)
	}
	to := uint32(1)
	if tbl.Reals[2].Stats.Conns.Load() == 1 {
		to = 2
	}
	for range 2 {
		info, ok := d.Template(&k)
		if !ok || info.RealID != to || info.Conns != 1 {
			t.Fatalf("Template = %+v, %v; want real %d with one connection", info, ok, to)
		}
	}
	if !tbl.TemplateUsable(svc, to) {
		t.Errorf("the template's IPv6 real is not usable")
	}
	tbl.Reals[to].Ready = false
	if tbl.TemplateUsable(svc, to) {
		t.Errorf("a real not ready is usable")
	}
}
