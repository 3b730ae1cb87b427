package scenario

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
)

// The service addresses every scenario uses.
var (
	VIP     = netip.MustParseAddr("10.20.0.100")
	TCPPort = uint16(80)
	UDPPort = uint16(53)
)

// Options says how to run the binaries and how much traffic to send.
type Options struct {
	// Gvsd is the command that runs gvsd (binary and leading args).
	Gvsd []string
	// Realserver is the command that runs gvs-realserver (binary and
	// leading args); the scenario appends -vip and -mode.
	Realserver []string
	// MoreVIPs are given to gvs-realserver beside VIP (DR and TUN), for
	// a test's own services: lab.VIP6, say.
	MoreVIPs []netip.Addr
	// IPv6 runs the scenario over IPv6: services on lab.VIP6 over the
	// reals' IPv6 addresses, the client's traffic over IPv6 (the lab must
	// have Options.IPv6). FULLNAT's local address is then the director's
	// IPv6 address.
	IPv6 bool
	// Conns TCP connections each echo PayloadSize random bytes;
	// Datagrams UDP datagrams of DatagramSize bytes come from distinct
	// source ports. Defaults 8, 64 KiB, 16, 512.
	Conns, PayloadSize, Datagrams, DatagramSize int
	// Scheduler of both services, default "rr" (the spread is exact).
	Scheduler string
	// Workers of gvsd, default 2.
	Workers int
	// ReplyPathMTU, if set, is the MTU of the router's route to the client
	// (locked, so the client's MSS still says 1460): full-size replies make
	// the router send ICMP fragmentation-needed to the VIP, which gvsd must
	// relay to the real server for path MTU discovery to work.
	ReplyPathMTU int
	// Dir receives the config, gvsd's log and pcaps of failed runs.
	Dir  string
	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Conns == 0 {
		o.Conns = 8
	}
	if o.PayloadSize == 0 {
		o.PayloadSize = 64 << 10
	}
	if o.Datagrams == 0 {
		o.Datagrams = 16
	}
	if o.DatagramSize == 0 {
		o.DatagramSize = 512
	}
	if o.Scheduler == "" {
		o.Scheduler = "rr"
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Result is what one run saw.
type Result struct {
	Mode                 config.Forward
	TCPOK, TCPFailed     int // connections whose echo came back intact / not
	UDPOK, UDPFailed     int
	BytesSent, BytesBack int64
	Reals                []RealResult
	// Director traffic seen on the director's interface.
	DirectorReplies int // frames from the real servers that reached the director (NAT/FULLNAT replies)
	KernelResets    int // TCP RST or ICMP errors the director's kernel sent for VIP traffic
	Duplicates      int // identical IP packets that reached a real server more than once
	Counters        json.RawMessage
	// Leftovers after gvsd stopped: VIPs, nft tables, packet sockets.
	Leftovers []string
	Failures  []string
	Log       string // gvsd's log
}

// RealResult is one real server's view.
type RealResult struct {
	Name             string
	Addr             netip.Addr
	Conns, Datagrams int
	Bytes            int64
	Peers            []netip.Addr
}

// OK reports whether every check passed.
func (r *Result) OK() bool { return len(r.Failures) == 0 }

func (r *Result) failf(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// realPort is the port the real servers listen on: DR and TUN cannot
// change the port; NAT and FULLNAT map VIP:80 to RIP:8080 to prove the
// rewrite.
func realPort(mode config.Forward, vport uint16) uint16 {
	if mode == config.NAT || mode == config.FullNAT {
		return vport + 8000
	}
	return vport
}

// Config returns the gvsd configuration of a scenario.
func Config(l *lab.Lab, mode config.Forward, scheduler string, workers int) string {
	return config6(l, mode, scheduler, workers, false)
}

// config6 is Config, over IPv6 when v6 is set (Options.IPv6).
func config6(l *lab.Lab, mode config.Forward, scheduler string, workers int, v6 bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = %d\n\n", l.Director.Iface, workers)
	for _, svc := range []struct {
		proto string
		port  uint16
	}{{"tcp", TCPPort}, {"udp", UDPPort}} {
		fmt.Fprintf(&b, "[[service]]\nprotocol = %q\naddress = \"%s\"\nscheduler = %q\nforward = %q\n", svc.proto, netip.AddrPortFrom(vipOf(v6), svc.port), scheduler, mode)
		for _, r := range l.Reals {
			fmt.Fprintf(&b, "  [[service.real]]\n  address = \"%s\"\n", netip.AddrPortFrom(addrOf(r, v6), realPort(mode, svc.port)))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// vipOf is the VIP of the scenario's family: VIP, or lab.VIP6 over IPv6.
func vipOf(v6 bool) netip.Addr {
	if v6 {
		return lab.VIP6
	}
	return VIP
}

// addrOf is h's address of the scenario's family.
func addrOf(h *lab.Host, v6 bool) netip.Addr {
	if v6 {
		return h.Addr6
	}
	return h.Addr
}

// Env is a running scenario: the real servers prepared for a forwarding
// method, an echo service on each (TCP TCPPort and UDP UDPPort, moved by
// realPort in NAT and FULLNAT), and gvsd running on the director.
type Env struct {
	Lab        *lab.Lab
	Mode       config.Forward
	Gvsd       *Proc
	ConfigPath string
	LogPath    string
	SocketPath string      // gvsd's control socket, for gvsadm
	echoes     []*lab.Echo // per real: TCP, UDP
	cleanups   []func()
	stopped    bool
	v6         bool // Options.IPv6
}

// Setup prepares l for mode and starts gvsd with cfg (Config's when
// empty). The caller must Close the Env.
func Setup(ctx context.Context, l *lab.Lab, mode config.Forward, o Options, cfg string) (env *Env, err error) {
	o.defaults()
	env = &Env{Lab: l, Mode: mode, v6: o.IPv6}
	defer func() {
		if err != nil {
			env.Close()
			env = nil
		}
	}()

	// Real servers: routing, VIP on lo and decapsulation, echo services.
	if o.IPv6 && !l.Director.Addr6.IsValid() {
		return env, errors.New("scenario: IPv6 asked of a lab without IPv6 (lab.Options.IPv6)")
	}
	gw, gw6 := l.Gateway, l.Gateway6
	if mode == config.NAT {
		gw, gw6 = l.Director.Addr, l.Director.Addr6
	}
	if err := l.SetRealGateway(gw); err != nil {
		return env, err
	}
	if gw6.IsValid() {
		if err := l.SetRealGateway(gw6); err != nil {
			return env, err
		}
	}
	vip := vipOf(o.IPv6)
	if mode == config.DR || mode == config.TUN {
		m := "dr"
		if mode == config.TUN {
			m = "tun"
		}
		for _, r := range l.Reals {
			vips := vip.String()
			for _, v := range o.MoreVIPs {
				vips += "," + v.String()
			}
			args := append(append([]string{}, o.Realserver...), "-vip", vips, "-mode", m)
			p, err := Start(ctx, r, filepath.Join(o.Dir, r.Name+"-realserver.log"), args)
			if err != nil {
				return env, err
			}
			env.cleanups = append(env.cleanups, p.stop)
		}
		for _, r := range l.Reals {
			for _, v := range append([]netip.Addr{vip}, o.MoreVIPs...) {
				if err := waitFor(ctx, 5*time.Second, func() bool { return hasAddr(ctx, r, "lo", v) }); err != nil {
					return env, fmt.Errorf("scenario: %s: VIP %s never appeared on lo: %w", r.Name, v, err)
				}
			}
		}
	}
	for _, r := range l.Reals {
		bind := netip.IPv4Unspecified()
		if o.IPv6 {
			bind = netip.IPv6Unspecified()
		}
		if mode == config.DR || mode == config.TUN {
			bind = vip // replies must come from the VIP
		}
		for _, proto := range []string{"tcp", "udp"} {
			port := TCPPort
			if proto == "udp" {
				port = UDPPort
			}
			e, err := r.StartEcho(proto, netip.AddrPortFrom(bind, realPort(mode, port)))
			if err != nil {
				return env, err
			}
			env.echoes = append(env.echoes, e)
			env.cleanups = append(env.cleanups, func() { e.Close() })
		}
	}

	// The director.
	if cfg == "" {
		cfg = config6(l, mode, o.Scheduler, o.Workers, o.IPv6)
	}
	env.ConfigPath = filepath.Join(o.Dir, "gvs-"+mode.String()+".toml")
	if err := os.WriteFile(env.ConfigPath, []byte(cfg), 0o644); err != nil {
		return env, err
	}
	env.LogPath = filepath.Join(o.Dir, "gvsd-"+mode.String()+".log")
	env.SocketPath = filepath.Join(o.Dir, "gvsd.sock")
	env.Gvsd, err = Start(ctx, l.Director, env.LogPath, append(append([]string{}, o.Gvsd...), "-config", env.ConfigPath, "-socket", env.SocketPath, "-log-json"))
	if err != nil {
		return env, err
	}
	if err := waitFor(ctx, 15*time.Second, func() bool {
		return env.Gvsd.exited() || strings.Contains(readFile(env.LogPath), "gvsd started")
	}); err != nil || env.Gvsd.exited() {
		return env, fmt.Errorf("scenario: gvsd did not start: %v\n%s", err, readFile(env.LogPath))
	}
	return env, nil
}

// Reload writes cfg over the configuration file, sends gvsd SIGHUP and
// waits until it logs the reload (or its refusal, an error).
func (e *Env) Reload(ctx context.Context, cfg string) error {
	done := strings.Count(e.Gvsd.Log(), "configuration reloaded")
	refused := strings.Count(e.Gvsd.Log(), "reload refused")
	if err := os.WriteFile(e.ConfigPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := e.Gvsd.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	var outcome error
	err := waitFor(ctx, 10*time.Second, func() bool {
		log := e.Gvsd.Log()
		if strings.Count(log, "reload refused") > refused {
			outcome = fmt.Errorf("scenario: gvsd refused the reload:\n%s", log)
			return true
		}
		return strings.Count(log, "configuration reloaded") > done || e.Gvsd.exited()
	})
	if err == nil {
		err = outcome
	}
	return err
}

// Reals returns what each real server's echo services have seen so far.
func (e *Env) Reals() []RealResult {
	var out []RealResult
	for i, r := range e.Lab.Reals {
		rr := RealResult{Name: r.Name, Addr: addrOf(r, e.v6)}
		peers := map[netip.Addr]bool{}
		for _, ec := range e.echoes[2*i : 2*i+2] {
			st := ec.Stats()
			rr.Conns += st.Conns
			rr.Datagrams += st.Datagrams
			rr.Bytes += st.Bytes
			for p := range st.Peers {
				peers[p] = true
			}
		}
		for p := range peers {
			rr.Peers = append(rr.Peers, p)
		}
		sort.Slice(rr.Peers, func(a, b int) bool { return rr.Peers[a].Less(rr.Peers[b]) })
		out = append(out, rr)
	}
	return out
}

// PeerCounts returns, for real i, the TCP connections plus UDP datagrams
// each client address has sent it so far.
func (e *Env) PeerCounts(i int) map[netip.Addr]int {
	out := map[netip.Addr]int{}
	for _, ec := range e.echoes[2*i : 2*i+2] {
		for p, n := range ec.Stats().Peers {
			out[p] += n
		}
	}
	return out
}

// StopGvsd stops gvsd and returns how it exited.
func (e *Env) StopGvsd() error {
	e.stopped = true
	if e.Gvsd == nil {
		return nil
	}
	return e.Gvsd.Stop()
}

// Close stops gvsd, the real servers' helpers and the echo services.
func (e *Env) Close() {
	if !e.stopped {
		e.StopGvsd()
	}
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
}

// Run runs one forwarding method end to end on l. An error means the run
// could not be carried out; failed checks are in Result.Failures.
func Run(ctx context.Context, l *lab.Lab, mode config.Forward, o Options) (res *Result, err error) {
	o.defaults()
	res = &Result{Mode: mode}
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	env, err := Setup(ctx, l, mode, o, "")
	if err != nil {
		return res, err
	}
	defer env.Close()
	logPath := env.LogPath

	// Captures on every real server and on the director.
	var caps []*lab.Capture
	var capHosts []*lab.Host
	for _, h := range append([]*lab.Host{l.Director}, l.Reals...) {
		c, err := h.Capture(h.Iface)
		if err != nil {
			return nil, err
		}
		caps = append(caps, c)
		capHosts = append(capHosts, h)
	}

	if o.ReplyPathMTU > 0 {
		client := l.Client.Addr.String() + "/24"
		route := func(args ...string) error {
			a := append([]string{"route", "replace", netip.MustParsePrefix(client).Masked().String(), "dev", "eth0"}, args...)
			if out, err := l.Router.Command(context.Background(), "ip", a...).CombinedOutput(); err != nil {
				return fmt.Errorf("scenario: router route: %v: %s", err, out)
			}
			return nil
		}
		if err := route("mtu", "lock", fmt.Sprint(o.ReplyPathMTU)); err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func() { route() })
		o.Logf("%s: the router's route to the client has MTU %d", mode, o.ReplyPathMTU)
	}

	// Traffic.
	o.Logf("%s: %d TCP connections x %d bytes, %d UDP datagrams x %d bytes", mode, o.Conns, o.PayloadSize, o.Datagrams, o.DatagramSize)
	runTCP(ctx, l, o, res)
	runUDP(ctx, l, o, res)
	time.Sleep(200 * time.Millisecond) // let the last FINs and echoes land before the captures stop

	frames := make([][]lab.Frame, len(caps))
	for i, c := range caps {
		frames[i] = c.Stop()
	}
	checkFrames(l, capHosts, frames, o.IPv6, res)

	// Stop gvsd and look for anything it left behind.
	if err := env.StopGvsd(); err != nil {
		res.failf("gvsd exited with %v", err)
	}
	res.Log = readFile(logPath)
	res.Counters = finalCounters(res.Log)
	res.Leftovers = leftovers(ctx, l, vipOf(o.IPv6))
	for _, lo := range res.Leftovers {
		res.failf("left behind after gvsd stopped: %s", lo)
	}

	// What each real server saw.
	res.Reals = env.Reals()
	check(l, mode, o, res)
	if !res.OK() && o.Dir != "" {
		for i, h := range capHosts {
			p := filepath.Join(o.Dir, fmt.Sprintf("%s-%s.pcap", mode, h.Name))
			if lab.WritePcap(p, frames[i]) == nil {
				o.Logf("capture of %s written to %s", h.Name, p)
			}
		}
	}
	return res, nil
}

// check turns what was seen into failures.
func check(l *lab.Lab, mode config.Forward, o Options, res *Result) {
	if res.TCPFailed > 0 || res.TCPOK != o.Conns {
		res.failf("TCP: %d of %d connections echoed every byte intact", res.TCPOK, o.Conns)
	}
	if res.UDPFailed > 0 || res.UDPOK != o.Datagrams {
		res.failf("UDP: %d of %d datagrams echoed intact", res.UDPOK, o.Datagrams)
	}
	wantPeer := addrOf(l.Client, o.IPv6)
	if mode == config.FullNAT {
		wantPeer = addrOf(l.Director, o.IPv6) // the default local address
	}
	for _, r := range res.Reals {
		// rr over n reals spreads exactly.
		if o.Scheduler == "rr" {
			if w := o.Conns / len(l.Reals); r.Conns != w {
				res.failf("%s accepted %d TCP connections, want %d (rr over %d reals)", r.Name, r.Conns, w, len(l.Reals))
			}
			if w := o.Datagrams / len(l.Reals); r.Datagrams != w {
				res.failf("%s received %d UDP datagrams, want %d (rr over %d reals)", r.Name, r.Datagrams, w, len(l.Reals))
			}
		}
		for _, p := range r.Peers {
			if p != wantPeer {
				res.failf("%s saw peer %s, want only %s in %s mode", r.Name, p, wantPeer, mode)
			}
		}
	}
	if res.Duplicates > 0 {
		res.failf("%d packets reached a real server more than once", res.Duplicates)
	}
	if res.KernelResets > 0 {
		res.failf("the director's kernel sent %d RST/ICMP errors for VIP traffic", res.KernelResets)
	}
	switch mode {
	case config.NAT, config.FullNAT:
		if res.DirectorReplies == 0 {
			res.failf("no reply passed through the director in %s mode", mode)
		}
	default:
		if res.DirectorReplies != 0 {
			res.failf("%d replies passed through the director in %s mode; they should go direct", res.DirectorReplies, mode)
		}
	}
}

func runTCP(ctx context.Context, l *lab.Lab, o Options, res *Result) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := 0; i < o.Conns; i++ {
		// Connections are opened one after another so that rr's order is
		// the connection order; their transfers then overlap.
		c, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(vipOf(o.IPv6), TCPPort))
		if err != nil {
			mu.Lock()
			res.TCPFailed++
			res.failf("TCP dial %d: %v", i, err)
			mu.Unlock()
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() { // one TCP echo transfer, bounded by its deadline
			defer wg.Done()
			defer func() { <-sem }()
			defer c.Close()
			sent, back, err := echoTCP(c, o.PayloadSize)
			mu.Lock()
			defer mu.Unlock()
			res.BytesSent += int64(sent)
			res.BytesBack += int64(back)
			if err != nil {
				res.TCPFailed++
				res.failf("TCP connection %d: %v", i, err)
				return
			}
			res.TCPOK++
		}()
	}
	wg.Wait()
}

func echoTCP(c net.Conn, size int) (sent, back int, err error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	payload := make([]byte, size)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() { // writer half of one echo transfer
		n, err := c.Write(payload)
		sent = n
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	got, rerr := io.ReadAll(c)
	back = len(got)
	if werr := <-errc; werr != nil {
		return sent, back, fmt.Errorf("write: %w", werr)
	}
	if rerr != nil {
		return sent, back, fmt.Errorf("read after %d bytes: %w", len(got), rerr)
	}
	if !bytes.Equal(got, payload) {
		return sent, back, fmt.Errorf("echo differs: sent %d bytes, got %d back", len(payload), len(got))
	}
	return sent, back, nil
}

func runUDP(ctx context.Context, l *lab.Lab, o Options, res *Result) {
	buf := make([]byte, 65536)
	// Every flow's socket stays open until the last datagram: a closed
	// one's port may be handed out again at once, and the datagram would
	// then belong to the earlier flow's connection (and real server).
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := 0; i < o.Datagrams; i++ {
		c, err := l.Client.DialUDP(ctx, netip.AddrPortFrom(vipOf(o.IPv6), UDPPort))
		if err != nil {
			res.UDPFailed++
			res.failf("UDP dial %d: %v", i, err)
			continue
		}
		payload := make([]byte, o.DatagramSize)
		rand.Read(payload)
		ok := false
		// One datagram per flow; a lost one is retried once so that a
		// single drop in the lab shows as a failure only if it repeats.
		for try := 0; try < 2 && !ok; try++ {
			if try == 0 {
				res.BytesSent += int64(len(payload))
			}
			if _, err := c.Write(payload); err != nil {
				break
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			if err == nil && bytes.Equal(buf[:n], payload) {
				res.BytesBack += int64(n)
				ok = true
			}
		}
		open = append(open, c)
		if ok {
			res.UDPOK++
		} else {
			res.UDPFailed++
		}
	}
}

// Proc is a process running in a lab namespace, its output going to a log
// file.
type Proc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	log     *os.File
	logPath string
}

// Start runs args in h's namespace with stdout and stderr to logPath. The
// process gets SIGTERM when ctx ends.
func Start(ctx context.Context, h *lab.Host, logPath string, args []string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := h.Command(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("scenario: start %s on %s: %w", args[0], h.Name, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{}), log: f, logPath: logPath}
	go func() { // waits for one child process
		p.exitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Log returns what the process has written so far.
func (p *Proc) Log() string { return readFile(p.logPath) }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool { return p.exited() }

// Pid returns the process ID. "ip netns exec" execs the command in place,
// so it is the program's own (gvsd's, not ip's), valid in /proc until the
// process has exited.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM, waits (up to 10 s, then SIGKILL) and returns how it
// exited.
func (p *Proc) Stop() error {
	p.stop()
	return p.exitErr
}

// WaitLog waits until the log contains s or the process exits.
func (p *Proc) WaitLog(ctx context.Context, s string, d time.Duration) error {
	err := waitFor(ctx, d, func() bool { return p.exited() || strings.Contains(p.Log(), s) })
	if err == nil && !strings.Contains(p.Log(), s) {
		return fmt.Errorf("exited (%v) before logging %q", p.exitErr, s)
	}
	return err
}

func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits (up to 10 s, then SIGKILL).
func (p *Proc) stop() {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func hasAddr(ctx context.Context, h *lab.Host, iface string, a netip.Addr) bool {
	family := "-4"
	if a.Is6() {
		family = "-6"
	}
	out, err := h.Command(ctx, "ip", family, "-o", "addr", "show", "dev", iface).Output()
	return err == nil && strings.Contains(string(out), " "+a.String()+"/")
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// finalCounters extracts the counters gvsd logs at exit.
func finalCounters(log string) json.RawMessage {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string `json:"msg"`
			Counters string `json:"counters"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "final counters" {
			return json.RawMessage(line.Counters)
		}
	}
	return nil
}

// leftovers lists what a stopped gvsd left on the director.
// Leftovers lists what a stopped gvsd left on the director: the VIP, an
// nftables table, packet sockets.
func Leftovers(ctx context.Context, l *lab.Lab) []string { return leftovers(ctx, l, VIP) }

func leftovers(ctx context.Context, l *lab.Lab, vip netip.Addr) []string {
	var out []string
	if hasAddr(ctx, l.Director, l.Director.Iface, vip) {
		out = append(out, "VIP "+vip.String()+" on "+l.Director.Iface)
	}
	if b, err := l.Director.Command(ctx, "nft", "list", "tables").Output(); err == nil && strings.Contains(string(b), "gvs") {
		out = append(out, "nft table: "+strings.TrimSpace(string(b)))
	}
	if b, err := l.Director.Command(ctx, "cat", "/proc/net/packet").Output(); err == nil {
		if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) > 1 {
			out = append(out, fmt.Sprintf("%d packet sockets", len(lines)-1))
		}
	}
	return out
}
