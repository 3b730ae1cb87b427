package control

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// statusPage is the status page served at GET /: one file with its style
// and script inline, so it works on a director without internet. It reads
// GET /status.json every 2 s.
//
//go:embed status.html
var statusPage []byte

// statusCSP is the page's Content-Security-Policy: nothing from another
// origin, only the page's own script (by its hash) and requests to
// /status.json. A browser enforces what the tests check of the HTML.
var statusCSP = func() string {
	var hashes []string
	for _, m := range regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllSubmatch(statusPage, -1) {
		sum := sha256.Sum256(m[1])
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	return "default-src 'none'; script-src " + strings.Join(hashes, " ") +
		"; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// newStatusMux returns the handler of the metrics listener ([director]
// metrics): /metrics for Prometheus, / the status page and /status.json
// its data. Everything is read-only: GET (and HEAD) only, any other
// method is answered 405.
func newStatusMux(reg prometheus.Gatherer, status func() *api.Status) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", statusCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "status.html", time.Time{}, bytes.NewReader(statusPage))
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) {
		b, err := json.Marshal(status())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		w.Write(append(b, '\n'))
	})
	return mux
}

// statusOf builds what /status.json serves from an OpList answer (which
// it changes: the histories are filled in), each worker's counters and
// each worker's link counters, and the estimator's history.
func statusOf(resp *api.Response, workers []dataplane.Counters, links []afpacket.Stats, relinks uint64, rates *estimator, now time.Time) *api.Status {
	st := &api.Status{Response: *resp, Time: now, Workers: make([]api.WorkerStatus, 0, len(workers)), Relinks: relinks}
	st.History = rates.histories(st.Services)
	for i, w := range workers {
		ws := api.WorkerStatus{Worker: i, RxFrames: w.RxFrames, Conns: w.Conns, Verdicts: w.Verdicts, LinkErrors: w.LinkErrors,
			ConnEvents: map[string]uint64{"new": w.NewConns, "expired": w.ExpiredConns, "evicted": w.Evicted, "reused": w.Reused,
				"rescheduled": w.Rescheduled, "late_expired": w.LateExpired, "templates_full": w.TemplatesFull,
				"bad_tcp_options": w.BadTCPOptions, "ports_reclaimed": w.PortsReclaimed, "nat_replies": w.NATReplies},
			Rings: map[string]api.RingStatus{}}
		if ws.Verdicts == nil {
			ws.Verdicts = map[string]uint64{}
		}
		if i < len(links) {
			l := links[i]
			ws.Rings["main"] = api.RingStatus{Frames: l.Packets, Drops: l.Drops}
			ws.Rings["syn"] = api.RingStatus{Frames: l.SYNPackets, Drops: l.SYNDrops}
			ws.TxFrames, ws.TxErrors = l.TxPackets, l.TxErrors
		}
		if i == 0 {
			st.Templates = w.Templates
		}
		st.Workers = append(st.Workers, ws)
	}
	return st
}

// status is what /status.json serves now.
func (d *Daemon) status() *api.Status {
	return statusOf(d.list(), d.dp.WorkerCounters(), d.LinkStats(), d.relinks.Load(), &d.rates, time.Now())
}
