package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// snapshot is what one scrape reads: the services as gvsadm sees them,
// each worker's counters and each worker's socket counters.
type snapshot struct {
	services []api.Service
	workers  []dataplane.Counters
	links    []afpacket.Stats
	vrrp     *api.VRRPStatus // nil without [vrrp]
	sync     *api.SyncStatus // nil without [sync]
	bgp      *api.BGPStatus  // nil without [bgp]
	ingress  *api.Ingress    // nil when the counters cannot be read
	relinks  uint64          // links reopened after the interface came back
}

// collector turns a snapshot into Prometheus metrics at scrape time, so
// the numbers are the dataplane's own counters, never a second copy.
type collector struct {
	snap func() snapshot
}

var (
	svcLabels  = []string{"proto", "vip", "port"}
	realLabels = []string{"proto", "vip", "port", "real"}

	descSvcConns   = prometheus.NewDesc("gvs_service_connections_total", "Connections scheduled to the service.", svcLabels, nil)
	descSvcPackets = prometheus.NewDesc("gvs_service_packets_total", "Packets of the service: in is client to real, out real to client (NAT and FULLNAT).", append(svcLabels, "direction"), nil)
	descSvcBytes   = prometheus.NewDesc("gvs_service_bytes_total", "IP bytes of the service, by direction.", append(svcLabels, "direction"), nil)

	descRealConns      = prometheus.NewDesc("gvs_real_connections_total", "Connections scheduled to the real server.", realLabels, nil)
	descRealPackets    = prometheus.NewDesc("gvs_real_packets_total", "Packets of the real server, by direction.", append(realLabels, "direction"), nil)
	descRealBytes      = prometheus.NewDesc("gvs_real_bytes_total", "IP bytes of the real server, by direction.", append(realLabels, "direction"), nil)
	descRealActive     = prometheus.NewDesc("gvs_real_active_connections", "Active connections (ipvsadm ActiveConn).", realLabels, nil)
	descRealInactive   = prometheus.NewDesc("gvs_real_inactive_connections", "Inactive connections (ipvsadm InActConn).", realLabels, nil)
	descRealPersistent = prometheus.NewDesc("gvs_real_persistent_connections", "Persistence templates naming the real (ipvsadm PersistConn).", realLabels, nil)
	descRealWeight     = prometheus.NewDesc("gvs_real_weight", "Scheduling weight; 0 is quiescent.", realLabels, nil)
	descRealReady      = prometheus.NewDesc("gvs_real_ready", "1 if the real server can take traffic (next hop known).", realLabels, nil)
	descRealOverloaded = prometheus.NewDesc("gvs_real_overloaded", "1 while the real is over its upper connection threshold.", realLabels, nil)
	descRealHealthy    = prometheus.NewDesc("gvs_real_healthy", "1 if the real passes its health check, 0 if not; absent for services without a check.", realLabels, nil)
	descRealChecks     = prometheus.NewDesc("gvs_real_health_checks_total", "Health checks run on the real.", realLabels, nil)

	descFrames      = prometheus.NewDesc("gvs_worker_frames_total", "Frames a worker handled, by verdict (forward, no_service, table_full, malformed, ...).", []string{"worker", "verdict"}, nil)
	descConns       = prometheus.NewDesc("gvs_worker_connections", "Entries in the worker's connection-table shard.", []string{"worker"}, nil)
	descLinkErrors  = prometheus.NewDesc("gvs_worker_link_errors_total", "Failed reads of a worker's socket: the interface went down or away.", []string{"worker"}, nil)
	descRelinks     = prometheus.NewDesc("gvs_relinks_total", "Times the workers' sockets were reopened after the interface came back (a flap, or a recreated interface).", nil, nil)
	descConnEvents  = prometheus.NewDesc("gvs_worker_connection_events_total", "Connection-table events: new, expired, evicted (full table), reused (SYN on a closing entry), rescheduled (real gone), late_expired, templates_full, bad_tcp_options (FULLNAT TCP segments whose options did not parse: not translated), ports_reclaimed (FULLNAT local ports taken, when none was free, from closed or stuck half-open connections), nat_replies (with [bgp]: NAT replies translated by their real's service, for connections another director opened).", []string{"worker", "event"}, nil)
	descSynProxy    = prometheus.NewDesc("gvs_worker_synproxy_total", "SYN proxy events: cookie_sent (a client SYN answered with a SYN cookie), opened (a valid cookie ACK: connection made, SYN sent to a real), bad_cookie (an ACK without a connection whose cookie did not validate, dropped), synack (a real's SYN-ACK answered and spliced), syn_resent (a SYN sent to a real again, its answer late and the client retransmitting), held and held_dropped (client segments kept until the real answered, or dropped for want of room or time).", []string{"worker", "event"}, nil)
	descProxy       = prometheus.NewDesc("gvs_worker_proxy_protocol_total", "PROXY protocol headers to reals (proxy_protocol): sent, resent (not acknowledged in time, or lost), acked (acknowledged by the real), no_slot (a client's first segment, or a real's SYN-ACK to the SYN proxy, dropped: no room to track another unacknowledged header), gave_up (connections dropped, their header never acknowledged).", []string{"worker", "event"}, nil)
	descTemplates   = prometheus.NewDesc("gvs_persistence_templates", "Persistence templates, shared by the workers.", nil, nil)
	descRing        = prometheus.NewDesc("gvs_worker_ring_frames_total", "Frames the kernel put in a worker's AF_PACKET ring (main, or syn for connection-opening SYNs).", []string{"worker", "ring"}, nil)
	descRingDrops   = prometheus.NewDesc("gvs_worker_ring_drops_total", "Frames lost because a worker's ring was full.", []string{"worker", "ring"}, nil)
	descTx          = prometheus.NewDesc("gvs_worker_tx_frames_total", "Frames a worker handed to the kernel to send, and those it refused.", []string{"worker", "result"}, nil)
	descVRRPMaster  = prometheus.NewDesc("gvs_vrrp_master", "1 while this director is the VRRP master (holds the VIPs), 0 as backup.", []string{"router_id"}, nil)
	descVRRPAdvert  = prometheus.NewDesc("gvs_vrrp_adverts_total", "VRRP adverts sent, received, and received but dropped as invalid.", []string{"router_id", "result"}, nil)
	descVRRPDropped = prometheus.NewDesc("gvs_vrrp_adverts_dropped_total", "VRRP adverts dropped, by reason: malformed, ttl, version (neither 2 nor 3, or not ours), checksum, vrid (another virtual router's), auth (VRRPv2: another auth_type or password), interval (VRRPv2: another advert interval).", []string{"router_id", "reason"}, nil)

	descBGPSessionUp = prometheus.NewDesc("gvs_bgp_session_up", "1 while the BGP session to the peer is established, 0 otherwise.", []string{"peer"}, nil)
	descBGPAnnounced = prometheus.NewDesc("gvs_bgp_announced", "1 while the VIP's /32 (IPv6: /128) is announced to the BGP peers, 0 while it is withdrawn (no ready real, or gvsd stopping).", []string{"prefix"}, nil)

	descIngress      = prometheus.NewDesc("gvs_ingress_packets_total", "Frames the nftables ingress table counted: taken (kept from the kernel for the dataplane) and left_to_kernel (IPv6 frames to a VIP or from a NAT real whose extension headers the dataplane does not walk; the kernel got them).", []string{"result"}, nil)
	descSyncMaster   = prometheus.NewDesc("gvs_sync_master", "1 while this director sends its connections (holds the VIPs), 0 while it installs its peer's.", nil, nil)
	descSyncMessages = prometheus.NewDesc("gvs_sync_messages_total", "Connection sync messages: sent, send_error, received, invalid (did not decode).", []string{"result"}, nil)
	descSyncConns    = prometheus.NewDesc("gvs_sync_connections_total", "Connection sync records: sent, dropped (report ring full), received, ignored, installed, unknown (no such service or real), refused (table full), inbox_full, kept (received while master for a connection it has).", []string{"result"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSvcConns, descSvcPackets, descSvcBytes, descRealConns, descRealPackets, descRealBytes,
		descRealActive, descRealInactive, descRealPersistent, descRealWeight, descRealReady, descRealOverloaded, descRealHealthy, descRealChecks,
		descFrames, descConns, descConnEvents, descSynProxy, descProxy, descLinkErrors, descRelinks, descTemplates, descRing, descRingDrops, descTx, descVRRPMaster, descVRRPAdvert, descVRRPDropped,
		descSyncMaster, descSyncMessages, descSyncConns, descBGPSessionUp, descBGPAnnounced, descIngress} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, svc := range s.services {
		ap, err := netip.ParseAddrPort(svc.Address)
		if err != nil {
			continue
		}
		l := []string{svc.Protocol, ap.Addr().String(), strconv.Itoa(int(ap.Port()))}
		counter(descSvcConns, svc.Stats.Conns, l...)
		counter(descSvcPackets, svc.Stats.InPkts, append(l, "in")...)
		counter(descSvcPackets, svc.Stats.OutPkts, append(l, "out")...)
		counter(descSvcBytes, svc.Stats.InBytes, append(l, "in")...)
		counter(descSvcBytes, svc.Stats.OutBytes, append(l, "out")...)
		for _, r := range svc.Reals {
			rl := append(append([]string{}, l...), r.Address)
			counter(descRealConns, r.Stats.Conns, rl...)
			counter(descRealPackets, r.Stats.InPkts, append(rl, "in")...)
			counter(descRealPackets, r.Stats.OutPkts, append(rl, "out")...)
			counter(descRealBytes, r.Stats.InBytes, append(rl, "in")...)
			counter(descRealBytes, r.Stats.OutBytes, append(rl, "out")...)
			gauge(descRealActive, float64(r.Active), rl...)
			gauge(descRealInactive, float64(r.Inactive), rl...)
			gauge(descRealPersistent, float64(r.Persistent), rl...)
			gauge(descRealWeight, float64(r.Weight), rl...)
			gauge(descRealReady, b(r.Ready), rl...)
			gauge(descRealOverloaded, b(r.Overloaded), rl...)
			if r.Health != "" {
				gauge(descRealHealthy, b(r.Health == "up"), rl...)
				counter(descRealChecks, r.HealthChecks, rl...)
			}
		}
	}
	for i, w := range s.workers {
		wl := strconv.Itoa(i)
		for v, n := range w.Verdicts {
			counter(descFrames, n, wl, v)
		}
		gauge(descConns, float64(w.Conns), wl)
		for _, e := range []struct {
			name string
			n    uint64
		}{{"new", w.NewConns}, {"expired", w.ExpiredConns}, {"evicted", w.Evicted}, {"reused", w.Reused},
			{"rescheduled", w.Rescheduled}, {"late_expired", w.LateExpired}, {"templates_full", w.TemplatesFull},
			{"bad_tcp_options", w.BadTCPOptions}, {"ports_reclaimed", w.PortsReclaimed}, {"nat_replies", w.NATReplies}} {
			counter(descConnEvents, e.n, wl, e.name)
		}
		for _, e := range []struct {
			name string
			n    uint64
		}{{"cookie_sent", w.SynProxyCookies}, {"opened", w.SynProxyOpened}, {"bad_cookie", w.SynProxyBadCookies},
			{"synack", w.SynProxySynAcks}, {"syn_resent", w.SynProxySynResent}, {"held", w.SynProxyHeld}, {"held_dropped", w.SynProxyHeldDropped}} {
			counter(descSynProxy, e.n, wl, e.name)
		}
		for _, e := range []struct {
			name string
			n    uint64
		}{{"sent", w.ProxyHeaders}, {"resent", w.ProxyResent}, {"acked", w.ProxyAcked}, {"no_slot", w.ProxyNoSlot}, {"gave_up", w.ProxyGaveUp}} {
			counter(descProxy, e.n, wl, e.name)
		}
		counter(descLinkErrors, w.LinkErrors, wl)
		if i == 0 {
			gauge(descTemplates, float64(w.Templates))
		}
	}
	counter(descRelinks, s.relinks)
	if in := s.ingress; in != nil {
		counter(descIngress, in.Taken, "taken")
		counter(descIngress, in.LeftToKernel, "left_to_kernel")
	}
	if v := s.vrrp; v != nil {
		id := strconv.Itoa(v.RouterID)
		gauge(descVRRPMaster, b(v.State == "MASTER"), id)
		counter(descVRRPAdvert, v.Sent, id, "sent")
		counter(descVRRPAdvert, v.Received, id, "received")
		counter(descVRRPAdvert, v.Invalid, id, "invalid")
		for reason, n := range v.Dropped {
			counter(descVRRPDropped, n, id, reason)
		}
	}
	if v := s.sync; v != nil {
		gauge(descSyncMaster, b(v.Role == "master"))
		for _, m := range []struct {
			name string
			n    uint64
		}{{"sent", v.MessagesSent}, {"send_error", v.SendErrors}, {"received", v.MessagesReceived}, {"invalid", v.Invalid}} {
			counter(descSyncMessages, m.n, m.name)
		}
		for _, c := range []struct {
			name string
			n    uint64
		}{{"sent", v.ConnsSent}, {"dropped", v.Dropped}, {"received", v.ConnsReceived}, {"ignored", v.Ignored},
			{"installed", v.Installed}, {"unknown", v.Unknown}, {"refused", v.Refused}, {"inbox_full", v.InboxFull}, {"kept", v.Kept}} {
			counter(descSyncConns, c.n, c.name)
		}
	}
	if v := s.bgp; v != nil {
		for _, p := range v.Peers {
			gauge(descBGPSessionUp, b(p.Established), p.Address)
		}
		for _, p := range v.Announced {
			gauge(descBGPAnnounced, 1, p)
		}
		for _, p := range v.Withdrawn {
			gauge(descBGPAnnounced, 0, p)
		}
	}
	for i, ls := range s.links {
		wl := strconv.Itoa(i)
		counter(descRing, ls.Packets, wl, "main")
		counter(descRing, ls.SYNPackets, wl, "syn")
		counter(descRingDrops, ls.Drops, wl, "main")
		counter(descRingDrops, ls.SYNDrops, wl, "syn")
		counter(descTx, ls.TxPackets, wl, "sent")
		counter(descTx, ls.TxErrors, wl, "error")
	}
}

// newMetricsRegistry returns a registry with gvs's collector and the Go
// runtime and process collectors.
func newMetricsRegistry(snap func() snapshot) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{snap: snap}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// snapshot reads what a scrape reports.
func (d *Daemon) snapshot() snapshot {
	return snapshot{services: d.list().Services, workers: d.dp.WorkerCounters(), links: d.LinkStats(), vrrp: d.vrrpStatus(), sync: d.syncStatus(),
		bgp: d.bgpStatus(), ingress: d.ingressStatus(), relinks: d.relinks.Load()}
}

// serveMetrics starts the metrics listener on addr ([director] metrics):
// /metrics, and the status page at / with its /status.json. It stops when
// the daemon stops.
func (d *Daemon) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newStatusMux(newMetricsRegistry(d.snapshot), d.status), ReadHeaderTimeout: 10 * time.Second}
	d.bg.Add(2)
	go func() { // metrics: serves until shut down
		defer d.bg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics listener", "err", err)
		}
	}()
	go func() { // metrics: shuts the server down when the daemon stops
		defer d.bg.Done()
		<-d.stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	d.log.Info("metrics and status page", "metrics", "http://"+ln.Addr().String()+"/metrics", "status", "http://"+ln.Addr().String()+"/")
	return nil
}
