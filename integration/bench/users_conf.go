package main

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/integration/lab"
)

// The services of the users suite.
const (
	// httpPort is nginx's port on the reals and the service port on the
	// VIP; the reals use the same port in every mode.
	httpPort = 80
	// iperfPort is iperf3's default port, on the reals and on the VIP.
	iperfPort = 5201
	// bodyLen is the size of nginx's response body: a small static
	// answer, so the rows measure the path, not the server.
	bodyLen = 100
	// iperfPersistence keeps both TCP connections of one iperf3 test (the
	// control connection and the data connection) on one real: with plain
	// round robin they would reach different reals and the test fails. The
	// balancers' usual answer to multi-connection protocols: IPVS
	// persistence (-p), HAProxy balance source, a hash of the client
	// address in nftables.
	iperfPersistence = "5m"
)

// responseBody is nginx's whole response body, bodyLen bytes.
var responseBody = func() string {
	s := "gvs bench: a small static response "
	return s + strings.Repeat("x", bodyLen-len(s)-1) + "\n"
}()

// nginxConfig is the configuration of nginx on the real server named
// name: in the foreground, one worker, pid and error log in dir, every
// request answered from memory with responseBody, keep-alive connections
// that are not closed for their request count.
func nginxConfig(name, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# nginx on %s, written by integration/bench -suite users\n", name)
	fmt.Fprintf(&b, "daemon off;\nmaster_process on;\nworker_processes 1;\n")
	fmt.Fprintf(&b, "pid %s;\nerror_log %s warn;\n", filepath.Join(dir, "nginx-"+name+".pid"), filepath.Join(dir, "nginx-"+name+".error.log"))
	fmt.Fprintf(&b, "events {\n\tworker_connections 4096;\n}\n")
	fmt.Fprintf(&b, "http {\n\taccess_log off;\n\tkeepalive_requests 100000000;\n\tkeepalive_timeout 300s;\n\tdefault_type text/plain;\n")
	fmt.Fprintf(&b, "\tserver {\n\t\tlisten 0.0.0.0:%d default_server backlog=4096;\n", httpPort)
	fmt.Fprintf(&b, "\t\tlocation / {\n\t\t\treturn 200 %q;\n\t\t}\n\t}\n}\n", responseBody)
	return b.String()
}

// haproxyConfig is HAProxy in mode tcp bound to the VIP: HTTP round robin
// over the reals, iperf3 by source address (see iperfPersistence).
func haproxyConfig(l *lab.Lab) string {
	var b strings.Builder
	b.WriteString("# HAProxy on the director, written by integration/bench -suite users\n")
	b.WriteString("global\n\tmaxconn 4096\n\ndefaults\n\tmode tcp\n\ttimeout connect 5s\n\ttimeout client 5m\n\ttimeout server 5m\n")
	for _, svc := range []struct {
		name    string
		port    int
		balance string
	}{{"http", httpPort, "roundrobin"}, {"iperf3", iperfPort, "source"}} {
		fmt.Fprintf(&b, "\nfrontend %s\n\tbind %s:%d\n\tdefault_backend %s\n", svc.name, vip, svc.port, svc.name)
		fmt.Fprintf(&b, "\nbackend %s\n\tbalance %s\n", svc.name, svc.balance)
		for _, r := range l.Reals {
			fmt.Fprintf(&b, "\tserver %s %s:%d\n", r.Name, r.Addr, svc.port)
		}
	}
	return b.String()
}

// usersTable is the nftables table of kernel-dnat in the users suite.
const usersTable = "gvsbench_users"

// usersKernelRules is kernel-dnat: VIP:80 DNAT to the reals in turn (as
// the pps suite's kernel-dnat), VIP:5201 by a hash of the client address
// (see iperfPersistence). Conntrack sends a connection's later packets and
// its replies the same way.
func usersKernelRules(l *lab.Lab) string {
	var m []string
	for i, r := range l.Reals {
		m = append(m, fmt.Sprintf("%d : %s", i, r.Addr))
	}
	reals := strings.Join(m, ", ")
	return fmt.Sprintf("table ip %s {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"+
		"\t\tip daddr %s tcp dport %d dnat to numgen inc mod %d map { %s }\n"+
		"\t\tip daddr %s tcp dport %d dnat to jhash ip saddr mod %d map { %s }\n\t}\n}\n",
		usersTable, vip, httpPort, len(l.Reals), reals, vip, iperfPort, len(l.Reals), reals)
}

// gvsdKnobs are the [director] settings the benchmark can change.
type gvsdKnobs struct {
	Policy   string        // worker_policy; empty: gvsd's default
	BusyPoll time.Duration // busy_poll; 0: gvsd's default (off)
}

// usersGvsdConfig is gvsd's configuration for a gvs configuration: TCP
// VIP:80 and VIP:5201 (with persistence, see iperfPersistence), rr over
// the reals in c's forwarding mode, the reals on the same ports, and the
// SYN proxy on VIP:80 for the synproxy configurations. workers 0 leaves
// the default (one per CPU); the zero knobs leave gvsd's defaults.
func usersGvsdConfig(l *lab.Lab, c UserConfig, workers int, k gvsdKnobs) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# gvsd for %s, written by integration/bench -suite users\n", c)
	fmt.Fprintf(&b, "[director]\ninterface = %q\n", l.Director.Iface)
	if workers > 0 {
		fmt.Fprintf(&b, "workers = %d\n", workers)
	}
	if k.Policy != "" {
		fmt.Fprintf(&b, "worker_policy = %q\n", k.Policy)
	}
	if k.BusyPoll > 0 {
		fmt.Fprintf(&b, "busy_poll = %q\n", k.BusyPoll.String())
	}
	for _, svc := range []struct {
		name        string
		port        int
		persistence string
	}{{"http", httpPort, ""}, {"iperf3", iperfPort, iperfPersistence}} {
		fmt.Fprintf(&b, "\n[[service]]\nname = %q\nprotocol = \"tcp\"\naddress = \"%s\"\nscheduler = \"rr\"\nforward = %q\n",
			svc.name, netip.AddrPortFrom(vip, uint16(svc.port)), c.forward())
		if svc.persistence != "" {
			fmt.Fprintf(&b, "persistence = %q\n", svc.persistence)
		}
		if svc.port == httpPort && c.synproxy() {
			b.WriteString("synproxy = true\n")
		}
		for _, r := range l.Reals {
			fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s\"\n", netip.AddrPortFrom(r.Addr, uint16(svc.port)))
		}
	}
	return b.String()
}
