package control

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// TestMetrics: a scrape reports the snapshot's numbers under Prometheus
// names and labels, and the registry also carries the Go runtime.
func TestMetrics(t *testing.T) {
	snap := snapshot{
		services: []api.Service{{Protocol: "tcp", Address: "10.20.0.100:80",
			Stats: api.Stats{Conns: 7, InPkts: 70, InBytes: 7000},
			Reals: []api.Real{{Address: "10.20.0.11:80", Weight: 2, Ready: true, Active: 3, Inactive: 4, Stats: api.Stats{Conns: 7, InPkts: 70, InBytes: 7000}}}}},
		workers: []dataplane.Counters{{Verdicts: map[string]uint64{"forward": 70, "table_full": 2}, Conns: 7, NewConns: 7, Evicted: 5, Templates: 1,
			SynProxyCookies: 900, SynProxyOpened: 7, SynProxyBadCookies: 50, SynProxySynAcks: 6, SynProxySynResent: 2, SynProxyHeld: 9, SynProxyHeldDropped: 1,
			ProxyHeaders: 12, ProxyResent: 3, ProxyAcked: 11, ProxyNoSlot: 1, ProxyGaveUp: 1}},
		links: []afpacket.Stats{{Packets: 100, Drops: 0, SYNPackets: 50, SYNDrops: 9, TxPackets: 70}},
		vrrp: &api.VRRPStatus{State: "MASTER", RouterID: 51, Sent: 10, Received: 3, Invalid: 1,
			Dropped: map[string]uint64{"ttl": 1, "vrid": 0, "version": 4, "auth": 2}},
		sync:    &api.SyncStatus{Role: "backup", MessagesReceived: 4, ConnsReceived: 40, Installed: 38, Unknown: 2},
		ingress: &api.Ingress{Taken: 1234, LeftToKernel: 5},
	}
	reg := newMetricsRegistry(func() snapshot { return snap })
	want := `
# HELP gvs_ingress_packets_total Frames the nftables ingress table counted: taken (kept from the kernel for the dataplane) and left_to_kernel (IPv6 frames to a VIP or from a NAT real whose extension headers the dataplane does not walk; the kernel got them).
# TYPE gvs_ingress_packets_total counter
gvs_ingress_packets_total{result="left_to_kernel"} 5
gvs_ingress_packets_total{result="taken"} 1234
# HELP gvs_real_active_connections Active connections (ipvsadm ActiveConn).
# TYPE gvs_real_active_connections gauge
gvs_real_active_connections{port="80",proto="tcp",real="10.20.0.11:80",vip="10.20.0.100"} 3
# HELP gvs_service_connections_total Connections scheduled to the service.
# TYPE gvs_service_connections_total counter
gvs_service_connections_total{port="80",proto="tcp",vip="10.20.0.100"} 7
# HELP gvs_sync_connections_total Connection sync records: sent, dropped (report ring full), received, ignored, installed, unknown (no such service or real), refused (table full), inbox_full, kept (received while master for a connection it has).
# TYPE gvs_sync_connections_total counter
gvs_sync_connections_total{result="dropped"} 0
gvs_sync_connections_total{result="ignored"} 0
gvs_sync_connections_total{result="inbox_full"} 0
gvs_sync_connections_total{result="installed"} 38
gvs_sync_connections_total{result="kept"} 0
gvs_sync_connections_total{result="received"} 40
gvs_sync_connections_total{result="refused"} 0
gvs_sync_connections_total{result="sent"} 0
gvs_sync_connections_total{result="unknown"} 2
# HELP gvs_sync_master 1 while this director sends its connections (holds the VIPs), 0 while it installs its peer's.
# TYPE gvs_sync_master gauge
gvs_sync_master 0
# HELP gvs_vrrp_adverts_dropped_total VRRP adverts dropped, by reason: malformed, ttl, version (neither 2 nor 3, or not ours), checksum, vrid (another virtual router's), auth (VRRPv2: another auth_type or password), interval (VRRPv2: another advert interval).
# TYPE gvs_vrrp_adverts_dropped_total counter
gvs_vrrp_adverts_dropped_total{reason="auth",router_id="51"} 2
gvs_vrrp_adverts_dropped_total{reason="ttl",router_id="51"} 1
gvs_vrrp_adverts_dropped_total{reason="version",router_id="51"} 4
gvs_vrrp_adverts_dropped_total{reason="vrid",router_id="51"} 0
# HELP gvs_vrrp_master 1 while this director is the VRRP master (holds the VIPs), 0 as backup.
# TYPE gvs_vrrp_master gauge
gvs_vrrp_master{router_id="51"} 1
# HELP gvs_worker_synproxy_total SYN proxy events: cookie_sent (a client SYN answered with a SYN cookie), opened (a valid cookie ACK: connection made, SYN sent to a real), bad_cookie (an ACK without a connection whose cookie did not validate, dropped), synack (a real's SYN-ACK answered and spliced), syn_resent (a SYN sent to a real again, its answer late and the client retransmitting), held and held_dropped (client segments kept until the real answered, or dropped for want of room or time).
# TYPE gvs_worker_synproxy_total counter
gvs_worker_synproxy_total{event="bad_cookie",worker="0"} 50
gvs_worker_synproxy_total{event="cookie_sent",worker="0"} 900
gvs_worker_synproxy_total{event="held",worker="0"} 9
gvs_worker_synproxy_total{event="held_dropped",worker="0"} 1
gvs_worker_synproxy_total{event="opened",worker="0"} 7
gvs_worker_synproxy_total{event="syn_resent",worker="0"} 2
gvs_worker_synproxy_total{event="synack",worker="0"} 6
# HELP gvs_worker_proxy_protocol_total PROXY protocol headers to reals (proxy_protocol): sent, resent (not acknowledged in time, or lost), acked (acknowledged by the real), no_slot (a client's first segment, or a real's SYN-ACK to the SYN proxy, dropped: no room to track another unacknowledged header), gave_up (connections dropped, their header never acknowledged).
# TYPE gvs_worker_proxy_protocol_total counter
gvs_worker_proxy_protocol_total{event="acked",worker="0"} 11
gvs_worker_proxy_protocol_total{event="gave_up",worker="0"} 1
gvs_worker_proxy_protocol_total{event="no_slot",worker="0"} 1
gvs_worker_proxy_protocol_total{event="resent",worker="0"} 3
gvs_worker_proxy_protocol_total{event="sent",worker="0"} 12
# HELP gvs_worker_ring_drops_total Frames lost because a worker's ring was full.
# TYPE gvs_worker_ring_drops_total counter
gvs_worker_ring_drops_total{ring="main",worker="0"} 0
gvs_worker_ring_drops_total{ring="syn",worker="0"} 9
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"gvs_real_active_connections", "gvs_service_connections_total", "gvs_worker_ring_drops_total", "gvs_vrrp_master",
		"gvs_sync_connections_total", "gvs_sync_master", "gvs_vrrp_adverts_dropped_total", "gvs_worker_synproxy_total", "gvs_worker_proxy_protocol_total",
		"gvs_ingress_packets_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"gvs_worker_frames_total", "gvs_worker_connection_events_total", "gvs_persistence_templates", "gvs_vrrp_adverts_total", "go_goroutines", "process_resident_memory_bytes"} {
		if !names[n] {
			t.Errorf("no %s in a scrape", n)
		}
	}
	if lint, err := testutil.GatherAndLint(reg); err != nil || len(lint) > 0 {
		t.Errorf("metric lint: %v %v", err, lint)
	}
}

// TestMetricsIPv6: an IPv6 service's labels are its bare VIP (as an IPv4
// service's) and its reals as [RIP]:port, the form gvsadm and the logs
// use; BGP's prefix label is the /128.
func TestMetricsIPv6(t *testing.T) {
	snap := snapshot{
		services: []api.Service{{Protocol: "udp", Address: "[fd00:20::100]:53", Stats: api.Stats{Conns: 2},
			Reals: []api.Real{{Address: "[fd00:20::11]:5353", Weight: 1, Ready: true, Active: 0, Inactive: 2, Health: "up", Stats: api.Stats{Conns: 2}}}}},
		bgp: &api.BGPStatus{Announced: []string{"fd00:20::100/128"}, Withdrawn: []string{"10.20.0.100/32"}},
	}
	reg := newMetricsRegistry(func() snapshot { return snap })
	want := `
# HELP gvs_real_healthy 1 if the real passes its health check, 0 if not; absent for services without a check.
# TYPE gvs_real_healthy gauge
gvs_real_healthy{port="53",proto="udp",real="[fd00:20::11]:5353",vip="fd00:20::100"} 1
# HELP gvs_real_inactive_connections Inactive connections (ipvsadm InActConn).
# TYPE gvs_real_inactive_connections gauge
gvs_real_inactive_connections{port="53",proto="udp",real="[fd00:20::11]:5353",vip="fd00:20::100"} 2
# HELP gvs_service_connections_total Connections scheduled to the service.
# TYPE gvs_service_connections_total counter
gvs_service_connections_total{port="53",proto="udp",vip="fd00:20::100"} 2
# HELP gvs_bgp_announced 1 while the VIP's /32 (IPv6: /128) is announced to the BGP peers, 0 while it is withdrawn (no ready real, or gvsd stopping).
# TYPE gvs_bgp_announced gauge
gvs_bgp_announced{prefix="10.20.0.100/32"} 0
gvs_bgp_announced{prefix="fd00:20::100/128"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"gvs_real_healthy", "gvs_real_inactive_connections", "gvs_service_connections_total", "gvs_bgp_announced"); err != nil {
		t.Error(err)
	}
}
