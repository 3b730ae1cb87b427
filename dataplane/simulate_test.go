package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
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
