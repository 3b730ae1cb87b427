package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// Tunables of the users suite.
const (
	// setupTimeout bounds each wait while a configuration is set up: a
	// server listening, gvs-realserver ready.
	setupTimeout = 15 * time.Second
	// probeTimeout bounds the first request through a configuration; a
	// configuration that does not answer it is reported, not measured.
	probeTimeout = 5 * time.Second
	// probeAttempt bounds one attempt of the probe.
	probeAttempt = 2 * time.Second
	// toolGrace is how long a client tool may run past its -duration
	// (connection set-up, iperf3's exchange of results) before it is
	// killed.
	toolGrace = 30 * time.Second
	// wrkTimeout is wrk's --timeout: a response slower than this counts as
	// a timeout error instead of a latency sample.
	wrkTimeout = "2s"
	// iperfConnectTimeout is iperf3's --connect-timeout in milliseconds,
	// so a path that drops SYNs fails in seconds, not minutes.
	iperfConnectTimeout = 3000
	// listenPoll paces the wait for a server's listening socket (one ss(8)
	// per poll).
	listenPoll = 100 * time.Millisecond
	// floodWarmup is how long trafgen floods before wrk starts: the flood
	// at its full rate (and, without a SYN proxy, the tables it fills)
	// before anything is counted.
	floodWarmup = time.Second
	// floodSettle lets the flood's aftermath (queues, SYN-ACK
	// retransmissions to nowhere) drain before row 4.
	floodSettle = time.Second
	// routerLANIface is the router's LAN side (lab.Host.Iface is its
	// client side).
	routerLANIface = "eth1"
)

// The rows of the users suite, as the raw outputs are named.
const (
	rowLatency   = "latency"
	rowKeepAlive = "keepalive"
	rowConn      = "conn"
	rowConnFlood = "conn-synflood"
	rowBulk      = "bulk"
)

// users is one Users call's state.
type users struct {
	o       UsersOptions
	l       *lab.Lab
	rep     *UsersReport
	missing map[string]bool // tools not installed
	secs    int             // o.Duration in whole seconds, as wrk and iperf3 take it
	sources int             // client addresses freshSource handed out
}

// freshSources bounds the client addresses freshSource hands out before it
// starts again at the first: by then the TIME_WAIT sockets of the first
// (60 s) are gone.
const freshSources = 100

// freshSource adds a new address to the client and makes it the source of
// the client's new connections (the default route's src) until undo, in
// IPv6 (fd00:10::1:N, the IPv6 default route) when six is set. A run
// that opens a connection per request leaves tens of thousands of TIME_WAIT
// sockets on the client and on the reals for 60 s, more than the client's
// 28,232 ephemeral ports: a later run to the same VIP:80 from the same
// address spends its time in connect(2) searching for a free port (seen:
// 20-30% of wrk's CPU in __inet_check_established and tcp_twsk_unique), so
// each configuration would pay for the ones measured before it.
func (u *users) freshSource(ctx context.Context, six bool) (undo func() error, err error) {
	c := u.l.Client
	n := u.sources % freshSources
	u.sources++
	addr, gw, bits, fam := freshAddr4(c.Addr, n), u.l.Router.Addr, 24, "-4"
	extra := []string{"noprefixroute"}
	if six {
		// nodad: usable at once, as every lab address.
		addr, gw, bits, fam = freshAddr6(c.Addr6, n), u.l.Router.Addr6, 64, "-6"
		extra = append(extra, "nodad")
	}
	pfx := netip.PrefixFrom(addr, bits).String()
	if _, err := runIn(ctx, c, "", append([]string{"ip", fam, "addr", "add", pfx, "dev", c.Iface}, extra...)...); err != nil {
		return nil, err
	}
	del := func() error {
		_, err := runIn(context.Background(), c, "", "ip", fam, "addr", "del", pfx, "dev", c.Iface)
		return err
	}
	if _, err := runIn(ctx, c, "", "ip", fam, "route", "replace", "default", "via", gw.String(), "dev", c.Iface, "src", addr.String()); err != nil {
		return nil, errors.Join(err, del())
	}
	return func() error {
		_, err := runIn(context.Background(), c, "", "ip", fam, "route", "replace", "default", "via", gw.String(), "dev", c.Iface)
		return errors.Join(err, del())
	}, nil
}

// freshAddr4 is freshSource's IPv4 address n (0 to freshSources-1) beside
// the client's a: 10.10.0.(100+n).
func freshAddr4(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	b[3] = byte(100 + n)
	return netip.AddrFrom4(b)
}

// freshAddr6 is freshSource's IPv6 address n in the client's /64 a is
// in: fd00:10::1:n, clear of the lab's own (fd00:10::2).
func freshAddr6(a netip.Addr, n int) netip.Addr {
	b := a.As16()
	clear(b[8:])
	b[13], b[14], b[15] = 1, byte(n>>8), byte(n)
	return netip.AddrFrom16(b)
}

// connWrk is wrk with a new connection per request (Connection: close)
// from a fresh client address (freshSource).
func (u *users) connWrk(ctx context.Context, c UserConfig, row, url string) (*WrkResult, error) {
	undo, err := u.freshSource(ctx, c.is6())
	if err != nil {
		return nil, fmt.Errorf("a fresh client address: %w", err)
	}
	w, err := u.wrk(ctx, c, row, url, "-t2", "-c32", "-H", "Connection: close")
	return w, errors.Join(err, undo())
}

// Users builds the lab, starts nginx and iperf3 -s on the reals, measures
// every configuration of o.Configs one after another, then row 5 with the
// pps suite, and tears everything down (the lab unless o.Keep). It returns
// what it measured even when it fails halfway; a configuration that cannot
// be set up is reported in its result and the next one runs.
func Users(ctx context.Context, o UsersOptions) (rep *UsersReport, err error) {
	rep = newUsersReport(o)
	defer rep.compare() // also of what was measured before a failure
	u := &users{o: o, rep: rep, missing: map[string]bool{}, secs: int(math.Ceil(o.Duration.Seconds()))}
	tools := []string{"wrk", "nginx", "iperf3", "haproxy"}
	if o.FloodPPS > 0 {
		tools = append(tools, "trafgen")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			u.missing[tool] = true
			o.Logf("bench: %s is not installed (apt-get install %s): what needs it is skipped", tool, toolPackages[tool])
			continue
		}
		rep.Tools[tool] = toolVersion(ctx, tool)
	}
	needPPS := o.PPS && slices.ContainsFunc(o.Configs, func(c UserConfig) bool { _, ok := c.ppsMode(); return ok })
	o.Logf("building the lab %s-* (offloads %s)", o.Prefix, rep.Offloads)
	// IPv6 beside IPv4 only when an IPv6 twin is measured: the lab
	// otherwise turns IPv6 off, as every IPv4-only run had it.
	ipv6 := slices.ContainsFunc(o.Configs, UserConfig.is6)
	l, err := lab.New(lab.Options{Prefix: o.Prefix, Reals: numReals, Generator: needPPS, OffloadsOff: o.OffloadsOff, IPv6: ipv6})
	if err != nil {
		return rep, err
	}
	u.l = l
	defer func() {
		if o.Keep {
			o.Logf("keeping the lab: namespaces %s-* (remove with: ip netns list | grep '^%s-' | cut -d' ' -f1 | xargs -n1 ip netns del)", o.Prefix, o.Prefix)
			return
		}
		err = errors.Join(err, l.Close())
		o.Logf("lab torn down")
	}()

	stopServers, err := u.startServers(ctx)
	defer func() { err = errors.Join(err, stopServers()) }()
	if err != nil {
		return rep, err
	}
	rounds := make([][]UserResult, len(o.Configs))
	merged := false
	merge := func() {
		if merged {
			return
		}
		merged = true
		for _, rs := range rounds {
			if len(rs) > 0 {
				rep.Configs = append(rep.Configs, medianOfRounds(rs))
			}
		}
	}
	defer merge() // also what was measured before a failure
	for r := range max(o.Rounds, 1) {
		if o.Rounds > 1 {
			o.Logf("round %d of %d", r+1, o.Rounds)
		}
		for i, c := range o.Configs {
			rounds[i] = append(rounds[i], u.measure(ctx, c))
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	merge()
	// The pps suite sinks the reals' UDP and needs no servers.
	if err := stopServers(); err != nil {
		return rep, err
	}
	if needPPS {
		if err := u.measurePPS(ctx); err != nil {
			return rep, err
		}
	}
	return rep, ctx.Err()
}

// toolVersion returns the first line a tool prints about its version.
func toolVersion(ctx context.Context, tool string) string {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	arg := "-v"
	if tool == "iperf3" || tool == "wrk" {
		arg = "--version" // wrk prints its version with its usage and exits 1
	}
	out, _ := exec.CommandContext(ctx, tool, arg).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// startServers starts nginx and iperf3 -s on every real server and waits
// until they listen. The function it returns stops them; it may be called
// more than once.
func (u *users) startServers(ctx context.Context) (stop func() error, err error) {
	var procs []*proc
	stop = func() error {
		var errs []error
		for i := len(procs) - 1; i >= 0; i-- {
			errs = append(errs, stopServer(procs[i]))
		}
		procs = nil
		return errors.Join(errs...)
	}
	for _, r := range u.l.Reals {
		if !u.missing["nginx"] {
			conf := filepath.Join(u.o.Dir, "nginx-"+r.Name+".conf")
			ipv6 := r.Addr6.IsValid()
			if err := os.WriteFile(conf, []byte(nginxConfig(r.Name, u.o.Dir, ipv6)), 0o644); err != nil {
				return stop, fmt.Errorf("bench: nginx config: %w", err)
			}
			args := u.pinned(pinServerCPU, "nginx", "-p", u.o.Dir+"/", "-c", conf, "-e", filepath.Join(u.o.Dir, "nginx-"+r.Name+".error.log"))
			p, err := startProc(r, "nginx on "+r.Name, filepath.Join(u.o.Dir, "nginx-"+r.Name+".log"), syscall.SIGTERM, args)
			if err != nil {
				return stop, err
			}
			procs = append(procs, p)
			if err := waitListening(ctx, r, netip.AddrPortFrom(netip.IPv4Unspecified(), httpPort), p); err != nil {
				return stop, err
			}
			if ipv6 {
				if err := waitListening(ctx, r, netip.AddrPortFrom(netip.IPv6Unspecified(), httpPort), p); err != nil {
					return stop, err
				}
			}
		}
		if !u.missing["iperf3"] {
			p, err := startProc(r, "iperf3 -s on "+r.Name, filepath.Join(u.o.Dir, "iperf3-"+r.Name+".log"), syscall.SIGTERM, u.pinned(pinServerCPU, "iperf3", "-s", "-p", strconv.Itoa(iperfPort)))
			if err != nil {
				return stop, err
			}
			procs = append(procs, p)
			if err := waitListening(ctx, r, netip.AddrPortFrom(netip.Addr{}, iperfPort), p); err != nil {
				return stop, err
			}
		}
	}
	if len(procs) > 0 {
		u.o.Logf("nginx and iperf3 -s listening on %d real servers", len(u.l.Reals))
	}
	return stop, nil
}

// waitListening waits until a TCP socket listens on a in h's namespace (an
// invalid address matches any address: iperf3 listens on IPv6's any), p
// exits, ctx ends or setupTimeout passes.
func waitListening(ctx context.Context, h *lab.Host, a netip.AddrPort, p *proc) error {
	deadline := time.Now().Add(setupTimeout)
	for {
		out, err := runIn(ctx, h, "", "ss", "-Hltn", "sport = :"+strconv.Itoa(int(a.Port())))
		if err != nil {
			return err
		}
		// ss writes an IPv6 address in brackets, as AddrPort does.
		local := netip.AddrPortFrom(a.Addr(), 0).String()
		local = local[:len(local)-1] // "10.20.0.100:", "[::]:"
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			// State Recv-Q Send-Q Local:Port Peer:Port
			if len(f) >= 4 && (!a.Addr().IsValid() || strings.HasPrefix(f[3], local) || (a.Addr().IsUnspecified() && strings.HasPrefix(f[3], "*:"))) {
				return nil
			}
		}
		if p != nil && p.exited() {
			return fmt.Errorf("bench: %s exited (%v) before listening on %s\n%s", p.name, p.err, a, tail(p.log()))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: nothing listens on %s in %s after %v", a, h.Name, setupTimeout)
		}
		if err := sleepCtx(ctx, listenPoll); err != nil {
			return err
		}
	}
}

// skip says why c cannot run here, or "".
func (u *users) skip(c UserConfig) string {
	need := []string{"nginx", "wrk"}
	if c.base() == UserHAProxy {
		need = append(need, "haproxy")
	}
	var missing []string
	for _, t := range need {
		if u.missing[t] {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t, toolPackages[t]))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "not installed: " + strings.Join(missing, ", ")
}

// measured are the figures of res that measure fills (rows 1 to 4, and
// the row under a SYN flood when asked for), to mark when none can be.
func (u *users) measured(res *UserResult) []*Figure {
	f := []*Figure{&res.LatencyP50, &res.LatencyP99, &res.KeepAliveRPS, &res.ConnPerS}
	if u.o.FloodPPS > 0 {
		f = append(f, &res.ConnPerSFlood)
	}
	return append(f, &res.BulkGbps)
}

// measure sets the lab up for c, measures rows 1 to 4 (and, with a flood
// rate, row 3 again under a SYN flood) and undoes the set-up. A failure to
// set up is reported in the result.
func (u *users) measure(ctx context.Context, c UserConfig) (res UserResult) {
	res = UserResult{Name: c.String(), Description: u.describe(c), IPv6: c.is6(), config: c}
	u.o.Logf("== %s: %s", c, res.Description)
	if why := u.skip(c); why != "" {
		res.Skipped = why
		u.o.Logf("  skipped: %s", why)
		return res
	}
	if c.is6() && c.isGvs() {
		// IPv6 comes to gvsd's modes one by one: a mode it refuses in
		// IPv6 yet is skipped with its reason, not a failed run.
		if why := u.gvsdRefuses(ctx, c); why != "" {
			res.Skipped = why
			u.o.Logf("  skipped: %s", why)
			return res
		}
	}
	target, undo, err := u.setup(ctx, c, &res)
	defer func() {
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		if err := errors.Join(errs...); err != nil {
			res.Error = strings.TrimSpace(res.Error + "\n" + err.Error())
			u.o.Logf("  %s: tearing down: %v", c, err)
		}
	}()
	if err != nil {
		res.Error = err.Error()
		u.o.Logf("  %s: %v", c, err)
		for _, f := range u.measured(&res) {
			f.Note = "set-up failed"
		}
		return res
	}
	if err := probeHTTP(ctx, u.l.Client, netip.AddrPortFrom(target, httpPort)); err != nil {
		res.Probe = err.Error()
		u.o.Logf("  %s: no answer to a first request, rows 1-4 not measured: %v", c, err)
		for _, f := range u.measured(&res) {
			f.Note = "no answer to a first request"
		}
		return res
	}
	url := "http://" + netip.AddrPortFrom(target, httpPort).String() + "/"

	// Row 1: one connection, one request at a time.
	if w, err := u.runWrk(ctx, c, rowLatency, url, "-t1", "-c1"); err != nil {
		res.LatencyP50.Note, res.LatencyP99.Note = err.Error(), err.Error()
	} else {
		res.Latency = w
		res.LatencyP50, res.LatencyP99 = wrkFigure(w, w.P50Us), wrkFigure(w, w.P99Us)
		u.o.Logf("  latency p50 %.0f µs, p99 %.0f µs (%d requests, %d errors)", w.P50Us, w.P99Us, w.Requests, w.Errors())
	}
	if ctx.Err() != nil {
		return res
	}
	// Row 2: keep-alive requests over 32 connections.
	if w, err := u.runWrk(ctx, c, rowKeepAlive, url, "-t2", "-c32"); err != nil {
		res.KeepAliveRPS.Note = err.Error()
	} else {
		res.KeepAlive = w
		res.KeepAliveRPS = wrkFigure(w, w.RequestsPerS)
		u.o.Logf("  keep-alive %s req/s (%d errors)", fmtPPS(w.RequestsPerS), w.Errors())
	}
	if ctx.Err() != nil {
		return res
	}
	// Row 3: a new connection per request.
	w, err := u.connWrk(ctx, c, rowConn, url)
	if err == nil {
		err = sleepCtx(ctx, settle)
	}
	if err != nil {
		res.ConnPerS.Note = err.Error()
	} else {
		res.Conn = w
		res.ConnPerS = wrkFigure(w, w.RequestsPerS)
		u.o.Logf("  %s conn/s (%d errors)", fmtPPS(w.RequestsPerS), w.Errors())
	}
	if ctx.Err() != nil {
		return res
	}
	// Row 3 again, under a SYN flood (IPv6 SYNs for an IPv6 twin).
	if u.o.FloodPPS > 0 {
		u.measureFlood(ctx, c, target, url, &res)
		if ctx.Err() != nil {
			return res
		}
	}
	// Row 4: one bulk TCP stream, client to server.
	switch ir, err := u.runIperf(ctx, c, target); {
	case u.missing["iperf3"]:
		res.BulkGbps.Note = "iperf3 not installed (apt-get install iperf3)"
	case err != nil:
		res.BulkGbps.Note = err.Error()
		u.o.Logf("  bulk: %v", err)
	default:
		res.Bulk = ir
		v := ir.ReceivedBitsPerS / 1e9
		res.BulkGbps = Figure{Value: &v}
		u.o.Logf("  bulk %.2f Gbit/s (%d retransmits)", v, ir.Retransmits)
	}
	return res
}

// wrkFigure is one figure of a wrk run: none if no request completed.
func wrkFigure(w *WrkResult, v float64) Figure {
	if w.Requests == 0 {
		return Figure{Errors: w.Errors(), Note: fmt.Sprintf("no request completed (%d errors)", w.Errors())}
	}
	return Figure{Value: &v, Errors: w.Errors()}
}

// describe says what stands between the client and the reals in c.
func (u *users) describe(c UserConfig) string {
	workers := "workers = one per CPU"
	if u.o.Workers > 0 {
		workers = fmt.Sprintf("workers = %d", u.o.Workers)
	}
	if u.o.Pin {
		workers = fmt.Sprintf("workers = 1, taskset -c %d", pinServerCPU)
	}
	if u.o.WorkerPolicy != "" {
		workers += ", worker_policy = " + u.o.WorkerPolicy
	}
	if u.o.BusyPoll > 0 {
		workers += ", busy_poll = " + u.o.BusyPoll.String()
	}
	if c.is6() {
		return "as " + c.base().String() + ", " + describe6(c)
	}
	switch c {
	case UserDirect:
		return "no balancer: the client talks to rs1 (10.20.0.11:80) through the router"
	case UserKernelDNAT:
		return "nftables DNAT on the director: VIP:80 numgen inc over rs1, rs2, VIP:5201 jhash of the client address; VIP on the director's eth0, ip_forward=1, the reals route via the director"
	case UserHAProxy:
		return "HAProxy mode tcp on the director bound to VIP:80 (balance roundrobin) and VIP:5201 (balance source); VIP on the director's eth0"
	case UserGvsDR:
		return "gvsd, DR (" + workers + "): VIP:80 rr, VIP:5201 rr with persistence; gvs-realserver -mode dr on the reals"
	case UserGvsTUN:
		return "gvsd, TUN (" + workers + "): VIP:80 rr, VIP:5201 rr with persistence; gvs-realserver -mode tun on the reals"
	case UserGvsNAT:
		return "gvsd, NAT (" + workers + "): VIP:80 rr, VIP:5201 rr with persistence; the reals route via the director"
	case UserGvsFullNAT:
		return "gvsd, FULLNAT (" + workers + "): VIP:80 rr, VIP:5201 rr with persistence; the reals see the director's address"
	case UserGvsNATSynproxy:
		return "gvsd, NAT (" + workers + ") as gvs-nat, with synproxy = true on VIP:80: the director answers SYNs with SYN cookies"
	case UserGvsFullNATSynproxy:
		return "gvsd, FULLNAT (" + workers + ") as gvs-fullnat, with synproxy = true on VIP:80: the director answers SYNs with SYN cookies"
	}
	return ""
}

// describe6 says what the IPv6 twin c changes in its IPv4 configuration's
// set-up.
func describe6(c UserConfig) string {
	s := "over IPv6: client fd00:10::2 (fresh fd00:10::1:N for new conn/s)"
	switch c.base() {
	case UserDirect:
		return s + " to rs1 [fd00:20::11]:80"
	case UserKernelDNAT:
		return s + ", VIP [" + lab.VIP6.String() + "] as a /128 on the director's eth0, nftables table ip6 (jhash ip6 saddr), net.ipv6.conf.all.forwarding=1, the reals' IPv6 route via the director"
	case UserHAProxy:
		return s + ", HAProxy bound to [" + lab.VIP6.String() + "]:80 and :5201, servers at the reals' IPv6 addresses"
	case UserGvsNAT:
		return s + ", IPv6 services [" + lab.VIP6.String() + "]:80 and :5201 over the reals' IPv6 addresses, the reals' IPv6 route via the director"
	}
	return s + ", IPv6 services [" + lab.VIP6.String() + "]:80 and :5201 over the reals' IPv6 addresses"
}

// setup prepares the lab for c and returns the address the client talks
// to and what undoes the set-up, to run in reverse order, also after an
// error.
func (u *users) setup(ctx context.Context, c UserConfig, res *UserResult) (target netip.Addr, undo []func() error, err error) {
	l := u.l
	if c.base() == UserDirect {
		return addrOf(l.Reals[0], c), nil, nil
	}
	vip := vipOf(c)
	gw, routerGW := l.Gateway, l.Gateway
	if c.is6() {
		gw, routerGW = l.Gateway6, l.Gateway6
	}
	if c.base() == UserKernelDNAT || c.forward() == "nat" {
		gw = addrOf(l.Director, c)
	}
	if gw != routerGW {
		if err := l.SetRealGateway(gw); err != nil {
			return vip, undo, err
		}
		undo = append(undo, func() error { return l.SetRealGateway(routerGW) })
	}
	switch c.base() {
	case UserKernelDNAT:
		d := l.Director
		sysctls := [][2]string{
			{"net/ipv4/ip_forward", "1"},
			// Replies leave by the interface they came in on: a router
			// would tell the reals (ICMP redirect) to bypass it.
			{"net/ipv4/conf/all/send_redirects", "0"},
			{"net/ipv4/conf/" + d.Iface + "/send_redirects", "0"},
		}
		if c.is6() {
			// IPv6 has no send_redirects: the kernel sends a redirect
			// only to an on-link target or through a link-local
			// gateway, and the reals' replies go to the router's
			// global address.
			sysctls = [][2]string{{"net/ipv6/conf/all/forwarding", "1"}}
		}
		for _, kv := range sysctls {
			u, err := swapSysctl(d, kv[0], kv[1])
			if err != nil {
				return vip, undo, err
			}
			undo = append(undo, u)
		}
		if err := addVIP(ctx, d, vip, &undo); err != nil {
			return vip, undo, err
		}
		if _, err := runIn(ctx, d, usersKernelRules(l, c), "nft", "-f", "-"); err != nil {
			return vip, undo, err
		}
		undo = append(undo, func() error {
			_, err := runIn(context.Background(), d, "", "nft", "delete", "table", nftFamily(c), usersTable)
			return err
		})
	case UserHAProxy:
		d := l.Director
		if err := addVIP(ctx, d, vip, &undo); err != nil {
			return vip, undo, err
		}
		conf := filepath.Join(u.o.Dir, c.String()+".cfg")
		if err := os.WriteFile(conf, []byte(haproxyConfig(l, c)), 0o644); err != nil {
			return vip, undo, fmt.Errorf("bench: haproxy config: %w", err)
		}
		// -db: stay in the foreground; -Ws would need systemd.
		args := u.pinned(pinServerCPU, "haproxy", "-db", "-f", conf)
		p, err := startProc(d, "haproxy", filepath.Join(u.o.Dir, c.String()+".log"), syscall.SIGTERM, args)
		if err != nil {
			return vip, undo, err
		}
		for _, port := range []uint16{httpPort, iperfPort} {
			if err := waitListening(ctx, d, netip.AddrPortFrom(vip, port), p); err != nil {
				p.stop() // how it ends is in err already
				return vip, undo, err
			}
		}
		undo = append(undo, func() error { return stopServer(p) })
	default:
		if m := c.forward(); m == "dr" || m == "tun" {
			for _, r := range l.Reals {
				p, err := startProc(r, "gvs-realserver on "+r.Name, filepath.Join(u.o.Dir, c.String()+"-realserver-"+r.Name+".log"), syscall.SIGTERM,
					[]string{u.o.Realserver, "-vip", vip.String(), "-mode", m})
				if err != nil {
					return vip, undo, err
				}
				if err := p.waitLog(ctx, "realserver: ready", setupTimeout); err != nil {
					p.stop() // how it ends is in err already
					return vip, undo, fmt.Errorf("%w\n%s", err, tail(p.log()))
				}
				undo = append(undo, func() error { return stopServer(p) })
			}
		}
		p, err := u.startGvsd(ctx, c)
		if err != nil {
			return vip, undo, err
		}
		undo = append(undo, func() error {
			err := p.stop()
			res.Gvsd = finalCounters(p.log())
			if err != nil {
				return fmt.Errorf("bench: gvsd exited with %v\n%s", err, tail(p.log()))
			}
			return nil
		})
	}
	return vip, undo, nil
}

// stopServer stops a server process. How it exits after the stop signal
// is its own business (iperf3 -s exits 1, nginx by the signal); exiting
// before it, or having to be killed, is an error.
func stopServer(p *proc) error {
	if p.exited() {
		return fmt.Errorf("bench: %s exited early (%v)\n%s", p.name, p.err, tail(p.log()))
	}
	err := p.stop()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return fmt.Errorf("%w\n%s", err, tail(p.log()))
	}
	return nil
}

// addVIP adds vip to h's interface as a /32 (an IPv6 one as a /128,
// without duplicate address detection, usable at once), so the kernel
// answers the router's ARP (neighbour solicitation) for it, and appends
// what removes it.
func addVIP(ctx context.Context, h *lab.Host, vip netip.Addr, undo *[]func() error) error {
	pfx := netip.PrefixFrom(vip, vip.BitLen()).String()
	var extra []string
	if vip.Is6() {
		extra = []string{"nodad"}
	}
	if _, err := runIn(ctx, h, "", append([]string{"ip", "addr", "add", pfx, "dev", h.Iface}, extra...)...); err != nil {
		return err
	}
	*undo = append(*undo, func() error {
		_, err := runIn(context.Background(), h, "", "ip", "addr", "del", pfx, "dev", h.Iface)
		return err
	})
	return nil
}

// writeGvsdConfig writes gvsd's configuration for c into the directory
// and returns its path.
func (u *users) writeGvsdConfig(c UserConfig) (string, error) {
	workers := u.o.Workers
	if u.o.Pin {
		workers = 1
	}
	cfg := filepath.Join(u.o.Dir, "gvsd-"+c.String()+".toml")
	if err := os.WriteFile(cfg, []byte(usersGvsdConfig(u.l, c, workers, gvsdKnobs{u.o.WorkerPolicy, u.o.BusyPoll})), 0o644); err != nil {
		return "", fmt.Errorf("bench: gvsd config: %w", err)
	}
	return cfg, nil
}

// gvsdRefuses asks gvsd -check on the director whether it takes c's
// configuration, and returns why not ("" when it does): what gvsd does
// not forward in IPv6 yet (FULLNAT before it is merged) is refused with
// the field's path.
func (u *users) gvsdRefuses(ctx context.Context, c UserConfig) string {
	cfg, err := u.writeGvsdConfig(c)
	if err != nil {
		return err.Error()
	}
	if out, err := runIn(ctx, u.l.Director, "", u.o.Gvsd, "-check", "-config", cfg); err != nil {
		return "gvsd does not take this configuration: " + strings.TrimSpace(out)
	}
	return ""
}

// startGvsd runs gvsd on the director with c's configuration and waits
// until it has started and resolved the reals.
func (u *users) startGvsd(ctx context.Context, c UserConfig) (*proc, error) {
	cfg, err := u.writeGvsdConfig(c)
	if err != nil {
		return nil, err
	}
	args := u.pinned(pinServerCPU, u.o.Gvsd, "-config", cfg, "-socket", filepath.Join(u.o.Dir, "gvsd-users.sock"), "-log-json")
	p, err := startProc(u.l.Director, "gvsd", filepath.Join(u.o.Dir, "gvsd-"+c.String()+".log"), syscall.SIGTERM, args)
	if err != nil {
		return nil, err
	}
	if err := p.waitLog(ctx, "gvsd started", gvsdStartTimeout); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(p.log()))
	}
	if log := p.log(); strings.Contains(log, "cannot resolve real server") {
		p.stop()
		return nil, fmt.Errorf("bench: gvsd could not resolve a real server\n%s", tail(log))
	}
	return p, nil
}

// pinned prefixes args with taskset -c cpu when -pin asks for it.
func (u *users) pinned(cpu int, args ...string) []string {
	if !u.o.Pin {
		return args
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, args...)
}

// runWrk runs wrk from the client for the measurement's duration, keeps
// its output in the directory and parses it, then lets the queues settle.
func (u *users) runWrk(ctx context.Context, c UserConfig, row, url string, args ...string) (*WrkResult, error) {
	w, err := u.wrk(ctx, c, row, url, args...)
	if err != nil {
		return nil, err
	}
	return w, sleepCtx(ctx, settle)
}

// wrk is runWrk without the settling.
func (u *users) wrk(ctx context.Context, c UserConfig, row, url string, args ...string) (*WrkResult, error) {
	args = append(append([]string{"wrk"}, args...), "-d", strconv.Itoa(u.secs)+"s", "--latency", "--timeout", wrkTimeout, url)
	out, errOut, err := runTool(ctx, u.l.Client, time.Duration(u.secs)*time.Second+toolGrace, u.pinned(pinClientCPU, args...))
	os.WriteFile(filepath.Join(u.o.Dir, c.String()+"-"+row+".wrk.txt"), append(out, errOut...), 0o644)
	if err != nil {
		return nil, fmt.Errorf("wrk: %w: %s", err, strings.TrimSpace(string(errOut)))
	}
	w, err := parseWrk(string(out))
	if err != nil {
		return nil, err
	}
	return &w, nil
}

// measureFlood is the row "new conn/s under a SYN flood": row 3's wrk run
// again while trafgen sends spoofed SYNs from the client to the target's
// port 80 (the VIP; rs1 for direct) at the -flood rate.
func (u *users) measureFlood(ctx context.Context, c UserConfig, target netip.Addr, url string, res *UserResult) {
	if u.missing["trafgen"] {
		res.ConnPerSFlood.Note = "trafgen not installed (apt-get install netsniff-ng)"
		return
	}
	var w *WrkResult
	fl, err := u.flooded(ctx, c, netip.AddrPortFrom(target, httpPort), func() error {
		var err error
		// No settle after wrk: the flood stops as soon as it ends, and
		// floodSettle follows.
		w, err = u.connWrk(ctx, c, rowConnFlood, url)
		return err
	})
	res.Flood, res.ConnFlood = fl, w
	if err != nil {
		// A figure without the flood it claims is no figure: the raw
		// result stays in ConnFlood.
		res.ConnPerSFlood = Figure{Note: err.Error()}
		u.o.Logf("  under a SYN flood: %v", err)
	} else {
		res.ConnPerSFlood = wrkFigure(w, w.RequestsPerS)
	}
	if w != nil {
		kept := ""
		if res.ConnPerS.Value != nil && *res.ConnPerS.Value > 0 {
			kept = fmt.Sprintf(", %.0f%% of row 3", 100*w.RequestsPerS / *res.ConnPerS.Value)
		}
		u.o.Logf("  under a SYN flood: %s conn/s (%d errors)%s", fmtPPS(w.RequestsPerS), w.Errors(), kept)
	}
	if fl != nil {
		u.o.Logf("  SYN flood: trafgen sent %s frames to %s in %.1f s (%s pps of %s asked for)", fmtPPS(float64(fl.Sent)), fl.Target, fl.Seconds, fmtPPS(fl.SentPPS), fmtPPS(float64(fl.RatePPS)))
	}
}

// flooded runs measure while trafgen floods target with spoofed SYNs
// (scenario.SYNFloodTrafgen) from the client at the -flood rate: trafgen
// starts floodWarmup before measure and is stopped (SIGINT, then killed
// after stopGrace) right after it, under timeout(1) in case the bench dies
// first. The router's reverse-path filter is off meanwhile: it would drop
// sources it has no route back to. It returns what trafgen did, once it
// has started, and measure's error with any of its own.
func (u *users) flooded(ctx context.Context, c UserConfig, target netip.AddrPort, measure func() error) (fl *FloodResult, err error) {
	l := u.l
	var undo []func() error
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			err = errors.Join(err, undo[i]())
		}
	}()
	for _, iface := range []string{"all", l.Router.Iface, routerLANIface} {
		if target.Addr().Is6() {
			break // IPv6 has no reverse-path filter
		}
		restore, err := swapSysctl(l.Router, "net/ipv4/conf/"+iface+"/rp_filter", "0")
		if err != nil {
			return nil, err
		}
		undo = append(undo, restore)
	}
	cfg := filepath.Join(u.o.Dir, c.String()+"-synflood.trafgen")
	if err := os.WriteFile(cfg, []byte(scenario.SYNFloodTrafgen(l.Router.MAC, l.Client.MAC, target)), 0o644); err != nil {
		return nil, fmt.Errorf("bench: trafgen config: %w", err)
	}
	// The limit only guards against a trafgen left running.
	limit := floodWarmup + time.Duration(u.secs)*time.Second + toolGrace
	args := append([]string{"timeout", "-s", "INT", "-k", "5", strconv.Itoa(int(limit.Seconds()))},
		scenario.TrafgenArgs(l.Client.Iface, cfg, strconv.FormatUint(u.o.FloodPPS, 10)+"pps")...)
	p, err := startProc(l.Client, "trafgen", filepath.Join(u.o.Dir, c.String()+"-synflood.trafgen.log"), syscall.SIGINT, args)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	stopped := false
	defer func() {
		if !stopped {
			p.stop() // after an error that says more
		}
	}()
	if err := sleepCtx(ctx, floodWarmup); err != nil {
		return nil, err
	}
	if p.exited() {
		return nil, fmt.Errorf("bench: trafgen exited (%v) within its %v warm-up\n%s", p.err, floodWarmup, tail(p.log()))
	}
	err = measure()
	exited := p.exited()
	took := time.Since(start)
	stopped = true
	serr := p.stop()
	fl = &FloodResult{Target: target.String(), RatePPS: u.o.FloodPPS, Sent: scenario.TrafgenSent(p.log()), Seconds: took.Seconds()}
	fl.SentPPS = float64(fl.Sent) / took.Seconds()
	switch {
	case exited:
		err = errors.Join(err, fmt.Errorf("bench: trafgen exited (%v) before the measurement ended\n%s", p.err, tail(p.log())))
	case serr != nil && !isInterrupted(serr):
		err = errors.Join(err, fmt.Errorf("bench: trafgen: %w\n%s", serr, tail(p.log())))
	case fl.Sent == 0:
		err = errors.Join(err, fmt.Errorf("bench: trafgen reports no frame sent\n%s", tail(p.log())))
	}
	return fl, errors.Join(err, sleepCtx(ctx, floodSettle))
}

// runIperf runs one iperf3 stream from the client to target for the
// measurement's duration, keeps its JSON in the directory and parses it.
func (u *users) runIperf(ctx context.Context, c UserConfig, target netip.Addr) (*IperfResult, error) {
	if u.missing["iperf3"] {
		return nil, nil
	}
	args := u.pinned(pinClientCPU, "iperf3", "-c", target.String(), "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(u.secs),
		"-J", "--connect-timeout", strconv.Itoa(iperfConnectTimeout))
	out, errOut, err := runTool(ctx, u.l.Client, time.Duration(u.secs)*time.Second+toolGrace, args)
	os.WriteFile(filepath.Join(u.o.Dir, c.String()+"-"+rowBulk+".iperf3.json"), out, 0o644)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r, perr := parseIperf3(out)
	if perr != nil {
		// iperf3 exits 1 with its error in the JSON: that one says more.
		return nil, errors.Join(perr, errorsIf(err, strings.TrimSpace(string(errOut))))
	}
	return &r, sleepCtx(ctx, settle)
}

// errorsIf wraps err with detail, or returns nil.
func errorsIf(err error, detail string) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if detail == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, detail)
}

// runTool runs a client tool in h's namespace in a process group of its
// own, killed with the group when limit passes or ctx ends (and by the
// kernel if the bench dies), and returns its stdout and stderr.
func runTool(ctx context.Context, h *lab.Host, limit time.Duration, args []string) (stdout, stderr []byte, err error) {
	tctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := h.Command(tctx, args[0], args[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = childAttr(syscall.SIGKILL)
	cmd.Cancel = func() error {
		signalGroup(cmd.Process, syscall.SIGKILL)
		return nil
	}
	cmd.WaitDelay = stopGrace
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case tctx.Err() != nil:
		err = fmt.Errorf("killed after %v: %w", limit, tctx.Err())
	}
	return out.Bytes(), errb.Bytes(), err
}

// probeHTTP sends one GET from h to target until a 200 with nginx's body
// comes back, for at most probeTimeout: the path works (ARP resolved,
// gvsd forwarding) before anything is measured.
func probeHTTP(ctx context.Context, h *lab.Host, target netip.AddrPort) error {
	deadline := time.Now().Add(probeTimeout)
	for {
		err := getOnce(ctx, h, target)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func getOnce(ctx context.Context, h *lab.Host, target netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, probeAttempt)
	defer cancel()
	c, err := h.DialTCP(ctx, target)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeAttempt))
	// Host: the address alone, an IPv6 one in brackets (RFC 9110 7.2).
	host := target.Addr().String()
	if target.Addr().Is6() {
		host = "[" + host + "]"
	}
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host); err != nil {
		return fmt.Errorf("probe %s: %w", target, err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 64<<10))
	if err != nil {
		return fmt.Errorf("probe %s: read after %d bytes: %w", target, len(b), err)
	}
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 200 ")) || !bytes.HasSuffix(b, []byte(responseBody)) {
		return fmt.Errorf("probe %s: unexpected answer %q", target, b)
	}
	return nil
}

// measurePPS is row 5: the pps suite's own measurement (bench.prepare and
// bench.measure, one run) of gvs-dr, gvs-nat and kernel-dnat, on the same
// lab after rows 1 to 4 of every configuration.
func (u *users) measurePPS(ctx context.Context) error {
	var modes []Mode
	var results []*UserResult
	for i := range u.rep.Configs {
		r := &u.rep.Configs[i]
		if m, ok := r.config.ppsMode(); ok && r.Skipped == "" {
			modes = append(modes, m)
			results = append(results, r)
		}
	}
	if len(modes) == 0 {
		return nil
	}
	po := Options{Duration: u.o.Duration, Warmup: time.Second, Runs: 1, Flows: 1024, Modes: modes, Prefix: u.o.Prefix,
		Gvsd: u.o.Gvsd, Generator: u.o.Generator, Self: u.o.Self, Dir: u.o.Dir, Logf: u.o.Logf}
	b := &bench{o: po, l: u.l, rep: newReport(po), lanHost: &lab.Host{Name: "lan", NS: u.o.Prefix + "-lan"}}
	defer func() {
		if b.cs != nil {
			b.cs.close()
		}
	}()
	u.rep.UDPGenerator = po.Generator
	u.o.Logf("== row 5, LAN UDP pps: the pps suite (generator %s on the LAN, %d flows, gvsd workers = 1 on CPU %d)", po.Generator, po.Flows, directorCPU)
	if err := b.prepare(ctx); err != nil {
		for _, r := range results {
			r.UDPPPS.Note = err.Error()
		}
		return err
	}
	for i, m := range modes {
		r := results[i]
		pr, err := b.measure(ctx, m)
		if pr != nil && len(pr.Runs) > 0 {
			s := pr.Median
			r.UDP = &s
			r.UDPGvsd = pr.Gvsd
			v := s.ForwardedPPS
			r.UDPPPS = Figure{Value: &v}
		}
		if err != nil {
			r.UDPPPS.Note = err.Error()
			u.o.Logf("  %s: %v", m, err)
			if ctx.Err() != nil {
				return err
			}
		}
	}
	return nil
}
