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

// vipOf is the VIP of c's family: lab.VIP, or lab.VIP6 for an IPv6 twin.
func vipOf(c UserConfig) netip.Addr {
	if c.is6() {
		return lab.VIP6
	}
	return vip
}

// addrOf is h's address in c's family: Addr, or Addr6 for an IPv6 twin.
func addrOf(h *lab.Host, c UserConfig) netip.Addr {
	if c.is6() {
		return h.Addr6
	}
	return h.Addr
}

// nginxConfig is the configuration of nginx on the real server named
// name: in the foreground, one worker, pid and error log in dir, every
// request answered from memory with responseBody, keep-alive connections
// that are not closed for their request count. With ipv6 it listens on
// IPv6's any address too (a socket of its own, ipv6only).
func nginxConfig(name, dir string, ipv6 bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# nginx on %s, written by integration/bench -suite users\n", name)
	fmt.Fprintf(&b, "daemon off;\nmaster_process on;\nworker_processes 1;\n")
	fmt.Fprintf(&b, "pid %s;\nerror_log %s warn;\n", filepath.Join(dir, "nginx-"+name+".pid"), filepath.Join(dir, "nginx-"+name+".error.log"))
	fmt.Fprintf(&b, "events {\n\tworker_connections 4096;\n}\n")
	fmt.Fprintf(&b, "http {\n\taccess_log off;\n\tkeepalive_requests 100000000;\n\tkeepalive_timeout 300s;\n\tdefault_type text/plain;\n")
	fmt.Fprintf(&b, "\tserver {\n\t\tlisten 0.0.0.0:%d default_server backlog=4096;\n", httpPort)
	if ipv6 {
		fmt.Fprintf(&b, "\t\tlisten [::]:%d default_server ipv6only=on backlog=4096;\n", httpPort)
	}
	fmt.Fprintf(&b, "\t\tlocation / {\n\t\t\treturn 200 %q;\n\t\t}\n\t}\n}\n", responseBody)
	return b.String()
}

// haproxyConfig is HAProxy in mode tcp bound to the VIP of c's family:
// HTTP round robin over the reals' addresses of that family, iperf3 by
// source address (see iperfPersistence).
func haproxyConfig(l *lab.Lab, c UserConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# HAProxy on the director for %s, written by integration/bench -suite users\n", c)
	b.WriteString("global\n\tmaxconn 4096\n\ndefaults\n\tmode tcp\n\ttimeout connect 5s\n\ttimeout client 5m\n\ttimeout server 5m\n")
	for _, svc := range []struct {
		name    string
		port    int
		balance string
	}{{"http", httpPort, "roundrobin"}, {"iperf3", iperfPort, "source"}} {
		// AddrPort brackets an IPv6 address, as HAProxy reads it.
		fmt.Fprintf(&b, "\nfrontend %s\n\tbind %s\n\tdefault_backend %s\n", svc.name, netip.AddrPortFrom(vipOf(c), uint16(svc.port)), svc.name)
		fmt.Fprintf(&b, "\nbackend %s\n\tbalance %s\n", svc.name, svc.balance)
		for _, r := range l.Reals {
			fmt.Fprintf(&b, "\tserver %s %s\n", r.Name, netip.AddrPortFrom(addrOf(r, c), uint16(svc.port)))
		}
	}
	return b.String()
}

// usersTable is the nftables table of kernel-dnat in the users suite.
const usersTable = "gvsbench_users"

// usersKernelRules is kernel-dnat: VIP:80 DNAT to the reals in turn (as
// the pps suite's kernel-dnat), VIP:5201 by a hash of the client address
// (see iperfPersistence). Conntrack sends a connection's later packets and
// its replies the same way. kernel-dnat6 is the same in a table of the
// ip6 family (nftFamily), with the IPv6 VIP and the reals' IPv6
// addresses.
func usersKernelRules(l *lab.Lab, c UserConfig) string {
	var m []string
	for i, r := range l.Reals {
		m = append(m, fmt.Sprintf("%d : %s", i, addrOf(r, c)))
	}
	reals := strings.Join(m, ", ")
	fam, v := nftFamily(c), vipOf(c)
	return fmt.Sprintf("table %s %s {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"+
		"\t\t%s daddr %s tcp dport %d dnat to numgen inc mod %d map { %s }\n"+
		"\t\t%s daddr %s tcp dport %d dnat to jhash %s saddr mod %d map { %s }\n\t}\n}\n",
		fam, usersTable, fam, v, httpPort, len(l.Reals), reals, fam, v, iperfPort, fam, len(l.Reals), reals)
}

// nftFamily is the nftables family (and address expression) of c's
// kernel DNAT: ip, or ip6 for the IPv6 twin.
func nftFamily(c UserConfig) string {
	if c.is6() {
		return "ip6"
	}
	return "ip"
}

// gvsdKnobs are the [director] settings the benchmark can change.
type gvsdKnobs struct {
	Policy   string        // worker_policy; empty: gvsd's default
	BusyPoll time.Duration // busy_poll; 0: gvsd's default (off)
}

// usersGvsdConfig is gvsd's configuration for a gvs configuration: TCP
// VIP:80 and VIP:5201 (the IPv6 VIP and the reals' IPv6 addresses for an
// IPv6 twin; IPv6 FULLNAT takes the interface's IPv6 address as its local
// address) (with persistence, see iperfPersistence), rr over
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
			svc.name, netip.AddrPortFrom(vipOf(c), uint16(svc.port)), c.forward())
		if svc.persistence != "" {
			fmt.Fprintf(&b, "persistence = %q\n", svc.persistence)
		}
		if svc.port == httpPort && c.synproxy() {
			b.WriteString("synproxy = true\n")
		}
		for _, r := range l.Reals {
			fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s\"\n", netip.AddrPortFrom(addrOf(r, c), uint16(svc.port)))
		}
	}
	return b.String()
}
