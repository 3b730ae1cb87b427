package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// failoverCase is one run of TestFailover.
type failoverCase struct {
	mode     config.Forward
	kill     bool          // SIGKILL the master; else SIGTERM (it sends priority 0 and removes its VIPs)
	interval time.Duration // VRRP advert interval of both directors
	sync     bool          // [sync] on both directors
	synproxy bool          // synproxy = true on the TCP service (NAT or FULLNAT)
	proxy    bool          // proxy_protocol = "v2" on the TCP service, whose reals strip the header and echo (proxyproto_test.go)
}

func (c failoverCase) name() string {
	how := "stop"
	if c.kill {
		how = "kill"
	}
	n := fmt.Sprintf("%s/%s/%v", c.mode, how, c.interval)
	if !c.sync {
		n += "/nosync"
	}
	if c.synproxy {
		n += "/synproxy"
	}
	if c.proxy {
		n += "/proxy-protocol"
	}
	return n
}

// TestFailover runs two gvsd directors sharing the VIP through VRRP, with
// connection sync, in DR and in NAT mode (the reals' gateway is then the
// VIP, so it moves with the VIP). Through the master run a long-lived TCP
// stream (an echo round trip every 20 ms) and a request load (a new TCP
// connection every 50 ms); once the backup has installed the stream's
// connection, the master is killed (SIGKILL) or stopped (SIGTERM). The
// backup must take over, the stream must carry on without a reset, and no
// request may fail. The control case without sync shows the stream does
// not survive without it. Each run logs the time to takeover and the gap
// the stream saw.
func TestFailover(t *testing.T) {
	for _, c := range []failoverCase{
		{config.DR, true, 100 * time.Millisecond, true, false, false},
		{config.DR, false, 100 * time.Millisecond, true, false, false},
		{config.NAT, true, 100 * time.Millisecond, true, false, false},
		{config.NAT, false, 100 * time.Millisecond, true, false, false},
		{config.FullNAT, true, 100 * time.Millisecond, true, false, false},
		{config.DR, true, time.Second, true, false, false},
		{config.DR, true, 100 * time.Millisecond, false, false, false},
	} {
		t.Run(c.name(), func(t *testing.T) { runFailover(t, c) })
	}
}

// TestFailoverSynProxy is TestFailover's NAT kill case with the SYN proxy
// on the TCP service: the stream and every request connection are
// spliced by the master, whose sequence offsets the backup learns by
// sync (and the restarted master from a refresh), so the stream's echoes
// come back intact through each takeover. Without the offsets the new
// master would forward the stream untranslated, and the stream would
// break or stall.
func TestFailoverSynProxy(t *testing.T) {
	runFailover(t, failoverCase{config.NAT, true, 100 * time.Millisecond, true, true, false})
}

// failoverLocal is the FULLNAT local address of the failover cases: VRRP
// holds it on the master with the VIP.
var failoverLocal = netip.MustParseAddr("10.20.0.50")

func runFailover(t *testing.T, c failoverCase) {
	l := needLabWith(t, lab.Options{Backup: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	base := scenario.Config(l, c.mode, "rr", 2)
	if c.synproxy {
		// The TCP service comes first.
		fwd := fmt.Sprintf("forward = %q\n", c.mode)
		if !strings.Contains(base, fwd) {
			t.Fatalf("no %q in the scenario's config", fwd)
		}
		base = strings.Replace(base, fwd, fwd+"synproxy = true\n", 1)
	}
	if c.proxy {
		base = proxyFailoverConfig(t, base, c.mode)
	}
	vrrpAddrs := ""
	if c.mode == config.FullNAT {
		// The reals answer a local address that moves with the VIP, so
		// they answer whichever director is master.
		if !strings.HasPrefix(base, "[director]\n") {
			t.Fatalf("the scenario's config does not start with [director]:\n%s", base)
		}
		base = strings.Replace(base, "[director]\n", fmt.Sprintf("[director]\nlocal_addresses = [%q]\n", failoverLocal), 1)
		vrrpAddrs = fmt.Sprintf("addresses = [%q, %q]\n", scenario.VIP, failoverLocal)
	}
	cfg := func(priority int) string {
		// version = 3: VRRPv2 (the default) cannot advertise more often than every second.
		s := base + fmt.Sprintf("\n[vrrp]\nrouter_id = 51\nversion = 3\npriority = %d\nadvert_interval = %q\ngarp_repeat = 3\n%s", priority, c.interval, vrrpAddrs)
		if c.sync {
			s += "\n[sync]\nrefresh = \"2s\"\n"
		}
		return s
	}
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: dir, Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, c.mode, o, cfg(150))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("master gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	if c.proxy {
		for _, r := range l.Reals {
			stop, err := servePROXYEcho(r, netip.AddrPortFrom(r.Addr, ppFailoverPort), false, l.Client.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
		}
	}
	if c.mode == config.NAT {
		// Replies go to whoever holds the VIP.
		if err := l.SetRealGateway(scenario.VIP); err != nil {
			t.Fatal(err)
		}
	}
	waitRole(ctx, t, env.SocketPath, "MASTER", 5*time.Second)

	bcfg := filepath.Join(dir, "backup.toml")
	if err := os.WriteFile(bcfg, []byte(cfg(50)), 0o644); err != nil {
		t.Fatal(err)
	}
	bsock := filepath.Join(dir, "backup.sock")
	backup, err := scenario.Start(ctx, l.Backup, filepath.Join(dir, "backup.log"), []string{bins.gvsd, "-config", bcfg, "-socket", bsock, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		backup.Stop()
		if t.Failed() {
			t.Logf("backup gvsd log:\n%s", backup.Log())
		}
	}()
	if err := backup.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("backup gvsd: %v", err)
	}
	waitRole(ctx, t, bsock, "BACKUP", 5*time.Second)
	if c.sync {
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", bsock, "-L", "--daemon").Output()
		if want := "backup sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"; err != nil || string(out) != want {
			t.Fatalf("gvsadm -L --daemon on the backup: %q (%v), want %q", out, err, want)
		}
	}

	conn, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
	if err != nil {
		t.Fatal(err)
	}
	st := startStream(conn)
	defer st.stop()
	load := startRequests(ctx, l.Client)
	defer load.stop()

	// The backup knows the stream before the master goes.
	streamPort := uint16(conn.LocalAddr().(*net.TCPAddr).Port)
	if c.sync {
		if err := waitCond(ctx, 5*time.Second, func() bool { return hasConn(ctx, t, bsock, streamPort, "ESTABLISHED") }); err != nil {
			t.Fatalf("the backup never installed the stream's connection (client port %d)", streamPort)
		}
	} else {
		time.Sleep(time.Second)
	}
	if err := waitCond(ctx, 5*time.Second, func() bool { return st.echoes(time.Time{}) >= 10 }); err != nil {
		t.Fatalf("only %d echoes before the failover (error: %v)", st.echoes(time.Time{}), st.failure())
	}

	t0 := time.Now()
	sig := syscall.SIGTERM
	if c.kill {
		sig = syscall.SIGKILL
	}
	if err := env.Gvsd.Signal(sig); err != nil {
		t.Fatal(err)
	}
	takeover := waitRole(ctx, t, bsock, "MASTER", 10*time.Second)
	t.Logf("%s: the backup was master %v after the master got %v", c.name(), takeover.Round(time.Millisecond), sig)

	if !c.sync {
		// Without sync the new master has no entry for the stream: its
		// segments are not SYNs and are dropped, and it stalls.
		time.Sleep(3 * time.Second)
		if n := st.echoes(t0); n != 0 {
			t.Fatalf("without sync the stream still got %d echoes after the takeover", n)
		}
		load.stop()
		if errs := load.errors(t0.Add(takeover)); len(errs) > 0 {
			t.Fatalf("new connections failed after the takeover: %v", errs)
		}
		t.Logf("%s: the stream stalled after the takeover, as expected without sync", c.name())
		return
	}
	if err := waitCond(ctx, 20*time.Second, func() bool { return st.echoes(t0) >= 20 }); err != nil {
		t.Fatalf("the stream did not carry on after the takeover: %d echoes since (error: %v)", st.echoes(t0), st.failure())
	}
	gap := st.gap(t0)
	load.stop()
	st.stop()
	if err := st.failure(); err != nil {
		t.Fatalf("the stream broke: %v", err)
	}
	// After a kill, a connection whose first report was still in the
	// master's queue (at most about a millisecond's worth) is unknown to
	// the new master and may fail; nothing started after the takeover may,
	// and after a clean stop, which sends every last report, nothing at all.
	inFlight := load.errors(time.Time{})
	since := t0.Add(takeover)
	if !c.kill {
		since = time.Time{}
	}
	if errs := load.errors(since); len(errs) > 0 {
		t.Fatalf("%d requests failed: %v", len(errs), errs)
	}
	t.Logf("%s: stream gap %v (last echo before the failover to first after), %d requests, %d failed (in flight)",
		c.name(), gap.Round(time.Millisecond), load.done(), len(inFlight))
	resp := gvsStatus(ctx, t, bsock)
	if resp.Sync == nil || resp.Sync.Role != "master" || resp.Sync.Installed == 0 {
		t.Fatalf("backup sync status after takeover: %+v", resp.Sync)
	}
	t.Logf("%s: backup sync: %d messages, %d connections received, %d installed", c.name(),
		resp.Sync.MessagesReceived, resp.Sync.ConnsReceived, resp.Sync.Installed)

	if c.kill && c.interval < time.Second {
		// The killed director comes back, at its old priority. It drops
		// the VIP its death left on its interface (else it would answer
		// ARP for it against the master), waits as backup until a
		// refresh has taught it the connections (its preempt delay is at
		// least one refresh), and then takes the VIPs back without
		// cutting a stream that began on the other director.
		if !vipOn(ctx, t, l.Director) {
			t.Fatal("the killed master's VIP is not on its interface: the restart check below would prove nothing")
		}
		conn2, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
		if err != nil {
			t.Fatal(err)
		}
		st2 := startStream(conn2)
		defer st2.stop()
		port2 := uint16(conn2.LocalAddr().(*net.TCPAddr).Port)
		rsock := filepath.Join(dir, "restart.sock")
		again, err := scenario.Start(ctx, l.Director, filepath.Join(dir, "restart.log"), []string{bins.gvsd, "-config", env.ConfigPath, "-socket", rsock, "-log-json"})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			again.Stop()
			if t.Failed() {
				t.Logf("restarted gvsd log:\n%s", again.Log())
			}
		}()
		if err := again.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
			t.Fatalf("restarted gvsd: %v", err)
		}
		if vipOn(ctx, t, l.Director) {
			t.Fatal("the restarted director kept the VIP its killed run left behind")
		}
		waitRole(ctx, t, rsock, "BACKUP", 5*time.Second)
		if err := waitCond(ctx, 5*time.Second, func() bool { return hasConn(ctx, t, rsock, port2, "ESTABLISHED") }); err != nil {
			t.Fatalf("the restarted director did not learn the new stream's connection from a refresh: %+v", gvsStatus(ctx, t, rsock).Sync)
		}
		back := waitRole(ctx, t, rsock, "MASTER", 10*time.Second)
		t1 := time.Now()
		if err := waitCond(ctx, 10*time.Second, func() bool { return st2.echoes(t1) >= 20 }); err != nil {
			t.Fatalf("the stream did not carry on after the restarted director took the VIPs back (error: %v)", st2.failure())
		}
		gap2 := st2.gap(t1)
		st2.stop()
		if err := st2.failure(); err != nil {
			t.Fatalf("the stream broke when the restarted director took the VIPs back: %v", err)
		}
		// Had it taken them before it knew the stream, the stream's
		// segments would have been dropped until the next refresh (2 s).
		if gap2 > time.Second {
			t.Fatalf("the stream stalled %v when the restarted director took the VIPs back", gap2)
		}
		t.Logf("%s: the restarted director was master again %v after it reported BACKUP; the stream's gap %v", c.name(), back.Round(time.Millisecond), gap2.Round(time.Millisecond))
	}
}

// vipOn reports whether h has the VIP on its interface.
func vipOn(ctx context.Context, t *testing.T, h *lab.Host) bool {
	out, err := h.Command(ctx, "ip", "-4", "-o", "addr", "show", "dev", h.Iface).Output()
	if err != nil {
		t.Fatalf("ip addr on %s: %v", h.Name, err)
	}
	return strings.Contains(string(out), scenario.VIP.String()+"/32")
}

// gvsStatus runs gvsadm -L --json (and args) against socket.
func gvsStatus(ctx context.Context, t *testing.T, socket string, args ...string) api.Response {
	t.Helper()
	out, err := exec.CommandContext(ctx, bins.gvsadm, append([]string{"--socket", socket, "-L", "-n", "--json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("gvsadm -L --json %v: %v", args, err)
	}
	var resp api.Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("gvsadm -L --json: %v\n%s", err, out)
	}
	return resp
}

// waitReady waits (15 s) until the gvsd at socket lists n reals ready,
// their next hops resolved.
func waitReady(ctx context.Context, t *testing.T, socket string, n int) {
	t.Helper()
	if err := waitCond(ctx, 15*time.Second, func() bool {
		ready := 0
		for _, s := range gvsStatus(ctx, t, socket).Services {
			for _, r := range s.Reals {
				if r.Ready {
					ready++
				}
			}
		}
		return ready == n
	}); err != nil {
		t.Fatalf("not every real became ready (want %d): %v\n%+v", n, err, gvsStatus(ctx, t, socket).Services)
	}
}

// waitRole waits until the gvsd at socket is in VRRP state want, and
// returns how long that took.
func waitRole(ctx context.Context, t *testing.T, socket, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	err := waitCond(ctx, limit, func() bool {
		if r := gvsStatus(ctx, t, socket); r.VRRP != nil {
			last = r.VRRP.State
		}
		return last == want
	})
	if err != nil {
		t.Fatalf("gvsd at %s: VRRP state %q after %v, want %s", socket, last, limit, want)
	}
	return time.Since(start)
}

// hasConn reports whether the gvsd at socket has a TCP connection from the
// client port in state (any state if "").
func hasConn(ctx context.Context, t *testing.T, socket string, port uint16, state string) bool {
	for _, c := range gvsStatus(ctx, t, socket, "-c").Connections {
		if ap, err := netip.ParseAddrPort(c.Client); err == nil && ap.Port() == port && c.Protocol == "tcp" && (state == "" || c.State == state) {
			return true
		}
	}
	return false
}

// waitCond polls cond every 10 ms until it holds or limit passes.
func waitCond(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// stream is a long-lived TCP connection that echoes 256 random bytes every
// 20 ms and records when each echo came back intact.
type stream struct {
	c    net.Conn
	quit chan struct{}
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	at   []time.Time
	err  error
}

func startStream(c net.Conn) *stream {
	s := &stream{c: c, quit: make(chan struct{}), done: make(chan struct{})}
	go s.run() // integration: the stream's round trips, until stop or an error
	return s
}

func (s *stream) run() {
	defer close(s.done)
	msg, got := make([]byte, 256), make([]byte, 256)
	for {
		select {
		case <-s.quit:
			return
		case <-time.After(20 * time.Millisecond):
		}
		rand.Read(msg)
		// Long enough to ride out a takeover at 1 s adverts and TCP's
		// retransmission backoff.
		s.c.SetDeadline(time.Now().Add(30 * time.Second))
		_, err := s.c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(s.c, got)
		}
		if err == nil && !bytes.Equal(got, msg) {
			err = fmt.Errorf("echo differs")
		}
		s.mu.Lock()
		if err != nil {
			select {
			case <-s.quit: // closed by stop
			default:
				s.err = err
			}
			s.mu.Unlock()
			return
		}
		s.at = append(s.at, time.Now())
		s.mu.Unlock()
	}
}

// echoes returns how many echoes came back after since.
func (s *stream) echoes(since time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.at {
		if a.After(since) {
			n++
		}
	}
	return n
}

// gap returns the time between the last echo before t0 and the first
// after it.
func (s *stream) gap(t0 time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var before, after time.Time
	for _, a := range s.at {
		if !a.After(t0) {
			before = a
		} else if after.IsZero() {
			after = a
		}
	}
	if before.IsZero() || after.IsZero() {
		return -1
	}
	return after.Sub(before)
}

func (s *stream) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *stream) stop() {
	s.once.Do(func() {
		close(s.quit)
		s.c.Close()
	})
	<-s.done
}

// requests opens a new TCP connection to the VIP every 50 ms, each on its
// own goroutine, echoes 64 bytes over it and records failures with the
// time the request started.
type requests struct {
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	mu   sync.Mutex
	n    int
	errs []reqErr
}

type reqErr struct {
	start time.Time
	err   error
}

func (e reqErr) String() string {
	return fmt.Sprintf("started %s: %v", e.start.Format("15:04:05.000"), e.err)
}

// startRequests opens a TCP connection to the VIP from h every 50 ms
// until stopped (see startRequestsEvery).
func startRequests(ctx context.Context, h *lab.Host) *requests {
	return startRequestsEvery(ctx, 50*time.Millisecond, 0, func(int) error { return request(ctx, h) })
}

// request is requestFrom any of h's addresses.
func request(ctx context.Context, h *lab.Host) error { return requestFrom(ctx, h, netip.Addr{}) }

// startRequestsEvery runs request(i) on its own goroutine every interval, i = 0,
// 1, ..., until stop, ctx ends or, if limit > 0, limit requests; it
// records failures with the time each request started.
func startRequestsEvery(ctx context.Context, every time.Duration, limit int, request func(i int) error) *requests {
	r := &requests{quit: make(chan struct{})}
	r.wg.Add(1)
	go func() { // integration: request generator, until stop
		defer r.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; limit <= 0 || i < limit; i++ {
			select {
			case <-r.quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r.wg.Add(1)
			go func() { // integration: one request, bounded by its deadline
				defer r.wg.Done()
				start := time.Now()
				err := request(i)
				r.mu.Lock()
				r.n++
				if err != nil {
					r.errs = append(r.errs, reqErr{start, err})
				}
				r.mu.Unlock()
			}()
		}
	}()
	return r
}

// requestFrom opens a TCP connection to the VIP from laddr (any address
// when zero), echoes 64 bytes and closes it, bounded by 20 s: SYN
// retransmissions at 1, 3 and 7 s cover a takeover at 1 s adverts, or a
// next hop that went away.
func requestFrom(ctx context.Context, h *lab.Host, laddr netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := h.DialTCPFrom(ctx, laddr, netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	msg, got := make([]byte, 64), make([]byte, 64)
	rand.Read(msg)
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("from %s: %w", c.LocalAddr(), err)
	}
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("from %s: %w", c.LocalAddr(), err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("from %s: echo differs", c.LocalAddr())
	}
	return nil
}

func (r *requests) stop() {
	r.once.Do(func() { close(r.quit) })
	r.wg.Wait()
}

// errors returns the failures of requests started after since.
func (r *requests) errors(since time.Time) []reqErr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []reqErr
	for _, e := range r.errs {
		if e.start.After(since) {
			out = append(out, e)
		}
	}
	return out
}

func (r *requests) done() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
