package control

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// fakeStatus is a director with one service of two reals (one down), VRRP
// and sync, two workers (the second dropping SYNs), and n 2-second samples
// of a steady 10 connections/s and 100 packets/s on the first real.
type fakeStatus struct {
	resp    *api.Response
	workers []dataplane.Counters
	links   []afpacket.Stats
	rates   estimator
	now     time.Time
}

func newFakeStatus(n int) *fakeStatus {
	f := &fakeStatus{now: time.Unix(1_700_000_000, 0)}
	services := func(i uint64) []api.Service {
		r0 := api.Stats{Conns: 20 * i, InPkts: 200 * i, InBytes: 20000 * i}
		return []api.Service{{Name: "web", Protocol: "tcp", Address: "10.20.0.100:80", Scheduler: "wlc", SchedulerFlags: []string{"flag-1"}, Stats: r0,
			Reals: []api.Real{
				{Address: "10.20.0.11:80", Forward: "dr", Weight: 1, Ready: true, Active: 3, Inactive: 1, Health: "up", HealthChecks: 9, Stats: r0},
				{Address: "10.20.0.12:80", Forward: "dr", Weight: 1, Health: "down", HealthError: "connect: connection refused", HealthChecks: 9},
			}}}
	}
	for i := range n {
		f.rates.sampleAll(services(uint64(i)), f.now.Add(time.Duration(2*i)*time.Second), 2)
	}
	f.resp = &api.Response{TableSize: 1000, Services: services(uint64(n - 1)),
		VRRP: &api.VRRPStatus{State: "MASTER", RouterID: 51, Version: 2, Priority: 150, Master: "10.20.0.2", Sent: 10, Dropped: map[string]uint64{"ttl": 0}},
		Sync: &api.SyncStatus{Role: "master", Interface: "eth0", Group: "224.0.0.81", Port: 8848, MessagesSent: 4, ConnsSent: 40},
		BGP: &api.BGPStatus{LocalAS: 65001, RouterID: "10.20.0.2", NextHop: "10.20.0.2", HoldTime: 9,
			Peers:     []api.BGPPeer{{Address: "10.20.0.1", AS: 65000, State: "established", Established: true, Uptime: 42, UpdatesSent: 3}},
			Announced: []string{"10.20.0.100/32"}}}
	for i := range f.resp.Services {
		s := &f.resp.Services[i]
		s.Rates = f.rates.rates(serviceRateName(s))
		for j := range s.Reals {
			s.Reals[j].Rates = f.rates.rates(realRateName(s, &s.Reals[j]))
		}
	}
	f.workers = []dataplane.Counters{
		{RxFrames: 500, Conns: 3, NewConns: 40, Verdicts: map[string]uint64{"forward": 500, "no_service": 0}, Templates: 2},
		{RxFrames: 300, Conns: 1, NewConns: 20, Verdicts: map[string]uint64{"forward": 290, "malformed": 10}, Templates: 2},
	}
	f.links = []afpacket.Stats{{Packets: 500, TxPackets: 500}, {Packets: 300, SYNPackets: 120, SYNDrops: 17, TxPackets: 290, TxErrors: 1}}
	return f
}

// status is the handler's status function over f, with a fresh list
// answer each call (statusOf fills it in).
func (f *fakeStatus) status() *api.Status {
	b, _ := json.Marshal(f.resp)
	var resp api.Response
	json.Unmarshal(b, &resp)
	return statusOf(&resp, f.workers, f.links, 2, &f.rates, f.now)
}

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

// TestStatusJSON: /status.json is the list answer (what gvsadm -L --json
// prints) with each service's and real's history, the workers' verdicts,
// rings and drops, VRRP, sync, BGP, and the history's time axis.
func TestStatusJSON(t *testing.T) {
	f := newFakeStatus(10)
	h := newStatusMux(newMetricsRegistry(func() snapshot { return snapshot{} }), f.status)
	resp := get(t, h, http.MethodGet, "/status.json")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /status.json: %s %v\n%s", resp.Status, resp.Header, body)
	}
	// The shape, as the page reads it.
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "table_size", "services", "vrrp", "sync", "bgp", "workers", "relinks", "templates", "history"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status.json has no %q: %s", k, body)
		}
	}
	if b, ok := m["bgp"].(map[string]any); !ok || b["local_as"] != float64(65001) || len(b["peers"].([]any)) != 1 || b["announced"].([]any)[0] != "10.20.0.100/32" {
		t.Errorf("bgp = %v, want the speaker's status", m["bgp"])
	}
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	// Ten samples: nine intervals with rates, on an axis of ten times
	// two seconds apart, oldest first.
	ax := st.History
	if ax.IntervalSeconds != 2 || ax.Capacity != historyLen || len(ax.Times) != 10 || ax.Times[0] != f.now.UnixMilli() || ax.Times[9] != f.now.Add(18*time.Second).UnixMilli() {
		t.Errorf("history axis %+v", ax)
	}
	if len(st.Services) != 1 || len(st.Services[0].Reals) != 2 {
		t.Fatalf("services %+v", st.Services)
	}
	svc := st.Services[0]
	r0, r1 := svc.Reals[0], svc.Reals[1]
	for name, h := range map[string]*api.History{"service": svc.History, "real 0": r0.History, "real 1": r1.History} {
		if h == nil || len(h.CPS) != 9 || len(h.InPPS) != 9 || len(h.OutPPS) != 9 || len(h.InBPS) != 9 || len(h.OutBPS) != 9 {
			t.Fatalf("%s history %+v, want 9 samples of each rate", name, h)
		}
	}
	for i := range 9 {
		if r0.History.CPS[i] != 10 || r0.History.InPPS[i] != 100 || r0.History.InBPS[i] != 10000 || r0.History.OutPPS[i] != 0 || r1.History.CPS[i] != 0 || svc.History.CPS[i] != 10 {
			t.Fatalf("sample %d: real 0 %+v, real 1 %+v, service %+v", i, r0.History, r1.History, svc.History)
		}
	}
	if r0.Rates.CPS == 0 || r0.Health != "up" || r1.Health != "down" || r1.HealthError != "connect: connection refused" || r0.Active != 3 || r0.Forward != "dr" {
		t.Errorf("reals %+v %+v", r0, r1)
	}
	// Without the histories, the services are gvsadm -L --json's.
	for i := range st.Services {
		st.Services[i].History = nil
		for j := range st.Services[i].Reals {
			st.Services[i].Reals[j].History = nil
		}
	}
	got, _ := json.Marshal(st.Response)
	want, _ := json.Marshal(f.resp)
	if string(got) != string(want) {
		t.Errorf("status.json without histories:\n%s\nwant gvsadm -L --json's:\n%s", got, want)
	}
	if st.VRRP == nil || st.VRRP.State != "MASTER" || st.VRRP.Master != "10.20.0.2" || st.Sync == nil || st.Sync.Role != "master" {
		t.Errorf("vrrp %+v sync %+v", st.VRRP, st.Sync)
	}
	if len(st.Workers) != 2 || st.Templates != 2 || st.Relinks != 2 {
		t.Fatalf("workers %+v templates %d relinks %d", st.Workers, st.Templates, st.Relinks)
	}
	w1 := st.Workers[1]
	if w1.Worker != 1 || w1.Verdicts["malformed"] != 10 || w1.Rings["syn"] != (api.RingStatus{Frames: 120, Drops: 17}) || w1.Rings["main"] != (api.RingStatus{Frames: 300}) ||
		w1.TxErrors != 1 || w1.ConnEvents["new"] != 20 || w1.Conns != 1 || w1.RxFrames != 300 {
		t.Errorf("worker 1 %+v", w1)
	}
}

// TestStatusHistoryRing: the history keeps the last historyLen intervals,
// oldest first, whatever the number of samples; a series that started
// later is shorter and ends at the same sample; one that went away is
// forgotten; and more samples reuse the same fixed-size records (memory
// does not grow with time).
func TestStatusHistoryRing(t *testing.T) {
	var e estimator
	t0 := time.Unix(1_700_000_000, 0)
	// In the interval ending at sample k, the real makes k connections
	// per second: its counter is 2 × (1 + 2 + ... + k).
	conns := func(k int) uint64 { return uint64(k * (k + 1)) }
	svcs := func(k int, late bool) []api.Service {
		s := api.Service{Protocol: "udp", Address: "10.0.0.1:53", Reals: []api.Real{{Address: "10.0.0.11:53", Stats: api.Stats{Conns: conns(k)}}}}
		if late {
			s.Reals = append(s.Reals, api.Real{Address: "10.0.0.12:53", Stats: api.Stats{Conns: 3 * uint64(k)}})
		}
		return []api.Service{s}
	}
	const total = 3*historyLen + 7
	const lateFrom = total - 20
	for k := range total {
		e.sampleAll(svcs(k, k >= lateFrom), t0.Add(time.Duration(2*k)*time.Second), 2)
	}
	ax := e.axis()
	if len(ax.Times) != historyLen {
		t.Fatalf("%d times after %d samples, want %d", len(ax.Times), total, historyLen)
	}
	for i, tm := range ax.Times {
		if want := t0.Add(time.Duration(2*(total-historyLen+i)) * time.Second).UnixMilli(); tm != want {
			t.Fatalf("time %d = %d, want %d (oldest first)", i, tm, want)
		}
	}
	s := &svcs(0, true)[0]
	h := e.history(realRateName(s, &s.Reals[0]))
	if h == nil || len(h.CPS) != historyLen {
		t.Fatalf("real 0: %+v, want %d samples", h, historyLen)
	}
	for i, v := range h.CPS {
		if want := float32(total - historyLen + i); v != want {
			t.Fatalf("real 0 sample %d = %v, want %v (oldest first)", i, v, want)
		}
	}
	late := e.history(realRateName(s, &s.Reals[1]))
	if late == nil || len(late.CPS) != total-lateFrom-1 || late.CPS[len(late.CPS)-1] != 1.5 {
		t.Fatalf("late real: %+v, want %d samples ending at the last, of 1.5/s", late, total-lateFrom-1)
	}
	// The late real goes away, and comes back with no history.
	e.sampleAll(svcs(total, false), t0.Add(2*total*time.Second), 2)
	if h := e.history(realRateName(s, &s.Reals[1])); h != nil {
		t.Errorf("a real that is gone still has a history: %+v", h)
	}
	e.sampleAll(svcs(total+1, true), t0.Add(2*(total+1)*time.Second), 2)
	if h := e.history(realRateName(s, &s.Reals[1])); h == nil || len(h.CPS) != 0 {
		t.Errorf("a real that came back: %+v, want an empty history until its second sample", h)
	}
	// Another two windows of samples: the same three series, each still
	// the same fixed-size record, and the same window.
	before := map[string]*rateEst{}
	for k, v := range e.ests {
		before[k] = v
	}
	for k := total + 2; k < total+2+2*historyLen; k++ {
		e.sampleAll(svcs(k, true), t0.Add(time.Duration(2*k)*time.Second), 2)
	}
	if len(e.ests) != 3 || len(e.axis().Times) != historyLen {
		t.Errorf("%d series and %d times, want 3 (service and two reals) and %d", len(e.ests), len(e.axis().Times), historyLen)
	}
	for k, v := range e.ests {
		if before[k] != v {
			t.Errorf("series %s was made anew", k)
		}
	}
}

// TestStatusReadOnly: the listener answers GET (and HEAD) only; any other
// method on the page, its data or /metrics is 405 and changes nothing.
func TestStatusReadOnly(t *testing.T) {
	f := newFakeStatus(3)
	h := newStatusMux(newMetricsRegistry(func() snapshot { return snapshot{} }), f.status)
	for _, path := range []string{"/", "/status.json", "/metrics"} {
		if resp := get(t, h, http.MethodGet, path); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
		if resp := get(t, h, http.MethodHead, path); resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %s", path, resp.Status)
		}
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			resp := get(t, h, m, path)
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
				t.Errorf("%s %s: %s, Allow %q; want 405 allowing GET", m, path, resp.Status, resp.Header.Get("Allow"))
			}
		}
	}
	if resp := get(t, h, http.MethodGet, "/debug/pprof/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/: %s, want 404", resp.Status)
	}
}

// TestStatusPageSelfContained: the page is one HTML document that loads
// nothing from anywhere: no URL of any host (http://, https://, or
// protocol-relative //host), no external script, style, font or image;
// its script reads status.json by a relative path, and the
// Content-Security-Policy allows only that script (by hash) and requests
// to this origin.
func TestStatusPageSelfContained(t *testing.T) {
	h := newStatusMux(newMetricsRegistry(func() snapshot { return snapshot{} }), newFakeStatus(2).status)
	resp := get(t, h, http.MethodGet, "/")
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Fatalf("GET /: %s %q\n%.200s", resp.Status, resp.Header.Get("Content-Type"), page)
	}
	for _, re := range []string{`(?i)https?:`, `(?i)//[a-z0-9-]+(\.[a-z0-9-]+)+`, `(?i)//cdn`, `(?i)<script[^>]+src`, `(?i)<link`, `(?i)<img`, `(?i)<iframe`, `(?i)@import`, `(?i)url\(`, `(?i)@font-face`} {
		if m := regexp.MustCompile(re).FindString(page); m != "" {
			t.Errorf("the page refers to something outside itself: %q matches %s", m, re)
		}
	}
	if !strings.Contains(page, `fetch("status.json"`) {
		t.Error("the page does not read status.json by a relative path")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "script-src 'sha256-"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if n := strings.Count(page, "<script"); n != 1 || strings.Contains(csp, "script-src 'unsafe-inline'") {
		t.Errorf("%d scripts, CSP %q: want one inline script allowed by its hash", n, csp)
	}
}
