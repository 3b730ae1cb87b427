package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestFailoverIPv6 is TestFailover's smallest case for an IPv6 service:
// two gvsd directors share the IPv6 VIP through VRRPv3 over IPv6 (adverts
// from their link-local addresses to ff02::12) and sync its connections
// (struct ip_vs_sync_v6 records, sent over IPv6 to the group ff02::8:81);
// through the master run a long-lived TCP
// stream to [VIP6]:80 (an echo every 20 ms) and a new connection every
// 50 ms. Once the backup has installed the stream's connection, the master
// is killed (SIGKILL): the backup takes over (adds the VIP as a /128 and
// announces it with unsolicited neighbour advertisements), the stream
// carries on byte for byte without a reset, and no request started after
// the takeover fails. In NAT mode the reals' IPv6 default route is the
// VIP, so their replies follow it, and the new master must translate them
// with the connection sync gave it. In FULLNAT the reals answer a local
// address that moves with the VIP (vrrp.addresses), and the new master
// must translate the stream's sequence numbers and timestamps with the
// offsets sync gave it, at the local port the master chose; with the SYN
// proxy on (NAT) it must translate them with the proxy's offsets. With
// proxy_protocol = "v2" (NAT and FULLNAT) the master sent the stream's
// real its PROXY header: the new master must shift the client's sequence
// numbers by the header's length and never send the header again (the
// reals close a connection whose header names anyone but the client).
// The kernel's default offloads stay on.
func TestFailoverIPv6(t *testing.T) {
	for _, c := range []failover6Case{
		{config.NAT, false, false}, {config.DR, false, false}, {config.FullNAT, false, false},
		{config.NAT, true, false}, {config.NAT, false, true}, {config.FullNAT, false, true},
	} {
		t.Run(c.name(), func(t *testing.T) { runFailoverIPv6(t, c) })
	}
}

// failoverSyncGroup6 is TestFailoverIPv6's sync group.
const failoverSyncGroup6 = "ff02::8:81"

// failover6Case is one run of TestFailoverIPv6.
type failover6Case struct {
	mode     config.Forward
	synproxy bool // synproxy = true on the service (NAT)
	proxy    bool // proxy_protocol = "v2" on the service, whose reals strip the header and echo (servePROXYEcho)
}

func (c failover6Case) name() string {
	n := c.mode.String()
	if c.synproxy {
		n += "/synproxy"
	}
	if c.proxy {
		n += "/proxy-protocol"
	}
	return n
}

// failoverLocal6 is the IPv6 FULLNAT local address of TestFailoverIPv6:
// VRRP holds it on the master with the VIP.
var failoverLocal6 = netip.MustParseAddr("fd00:20::50")

func runFailoverIPv6(t *testing.T, c failover6Case) {
	mode, label := c.mode, c.name()
	l := needLabWith(t, lab.Options{Backup: true, IPv6: true, Reals: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	vip := netip.AddrPortFrom(lab.VIP6, 80)
	port := uint16(80)
	if mode == config.FullNAT {
		port = 8082
	}
	if c.proxy {
		port = ppFailoverPort
	}
	if mode == config.NAT {
		port = 8081
		// Replies go to whoever holds the VIP.
		if err := l.SetRealGateway(lab.VIP6); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range l.Reals {
		addr := netip.AddrPortFrom(netip.IPv6Unspecified(), port)
		if mode == config.DR {
			addr = vip
			p, err := scenario.Start(ctx, r, filepath.Join(dir, r.Name+"-realserver.log"), []string{bins.realserver, "-vip", lab.VIP6.String(), "-mode", "dr"})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			if err := waitCond(ctx, 10*time.Second, func() bool { return hostHas(ctx, t, r, "lo", lab.VIP6.String()+"/128") }); err != nil {
				t.Fatalf("%s: %s never appeared on lo", r.Name, lab.VIP6)
			}
		}
		if c.proxy {
			stop, err := servePROXYEcho(r, addr, false, l.Client.Addr6)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			continue
		}
		if _, err := r.StartEcho("tcp", addr); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(d *lab.Host, priority int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\n", d.Iface)
		vrrpAddrs := ""
		if mode == config.FullNAT {
			// The reals answer a local address that moves with the VIP.
			fmt.Fprintf(&b, "local_addresses = [%q]\n", failoverLocal6)
			vrrpAddrs = fmt.Sprintf("addresses = [%q, %q]\n", lab.VIP6, failoverLocal6)
		}
		fmt.Fprintf(&b, "\n[[service]]\nprotocol = \"tcp\"\naddress = %q\nscheduler = \"rr\"\nforward = %q\n", vip, mode)
		if c.synproxy {
			b.WriteString("synproxy = true\n")
		}
		if c.proxy {
			b.WriteString("proxy_protocol = \"v2\"\n")
		}
		for _, r := range l.Reals {
			fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, port))
		}
		// Sync over IPv6 as well: to a link-scope group, from the
		// link-local address (TestFailover covers 224.0.0.81).
		fmt.Fprintf(&b, "\n[vrrp]\nrouter_id = 51\nversion = 3\npriority = %d\nadvert_interval = \"100ms\"\ngarp_repeat = 3\n%s\n[sync]\ngroup = %q\nrefresh = \"2s\"\n", priority, vrrpAddrs, failoverSyncGroup6)
		return b.String()
	}
	start := func(d *lab.Host, name string, priority int) (*scenario.Proc, string) {
		path, sock := filepath.Join(dir, name+".toml"), filepath.Join(dir, name+".sock")
		if err := os.WriteFile(path, []byte(cfg(d, priority)), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := scenario.Start(ctx, d, filepath.Join(dir, name+".log"), []string{bins.gvsd, "-config", path, "-socket", sock, "-log-json"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Stop()
			if t.Failed() {
				t.Logf("%s gvsd log:\n%s", name, p.Log())
			}
		})
		if err := p.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
			t.Fatalf("%s gvsd: %v", name, err)
		}
		return p, sock
	}
	master, msock := start(l.Director, "master", 150)
	waitRole(ctx, t, msock, "MASTER", 5*time.Second)
	if !hostHas(ctx, t, l.Director, l.Director.Iface, lab.VIP6.String()+"/128") {
		t.Fatalf("the master does not hold %s/128", lab.VIP6)
	}
	if st := gvsStatus(ctx, t, msock); st.VRRP == nil || !strings.HasPrefix(st.VRRP.Master, "fe80:") {
		t.Errorf("the master names itself %+v, want its link-local address (its adverts' source)", st.VRRP)
	}
	_, bsock := start(l.Backup, "backup", 50)
	waitRole(ctx, t, bsock, "BACKUP", 5*time.Second)
	if hostHas(ctx, t, l.Backup, l.Backup.Iface, lab.VIP6.String()+"/128") {
		t.Fatalf("the backup holds %s/128", lab.VIP6)
	}

	conn, err := l.Client.DialTCP(ctx, vip)
	if err != nil {
		t.Fatal(err)
	}
	st := startStream(conn)
	defer st.stop()
	load := startRequestsEvery(ctx, 50*time.Millisecond, 0, func(int) error { return request6(ctx, l.Client, vip) })
	defer load.stop()

	streamPort := uint16(conn.LocalAddr().(*net.TCPAddr).Port)
	if err := waitCond(ctx, 5*time.Second, func() bool { return hasConn(ctx, t, bsock, streamPort, "ESTABLISHED") }); err != nil {
		t.Fatalf("the backup never installed the stream's IPv6 connection (client port %d): %+v", streamPort, gvsStatus(ctx, t, bsock).Sync)
	}
	if err := waitCond(ctx, 5*time.Second, func() bool { return st.echoes(time.Time{}) >= 10 }); err != nil {
		t.Fatalf("only %d echoes before the failover (error: %v)", st.echoes(time.Time{}), st.failure())
	}

	t0 := time.Now()
	if err := master.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	takeover := waitRole(ctx, t, bsock, "MASTER", 10*time.Second)
	if err := waitCond(ctx, 5*time.Second, func() bool {
		return hostHas(ctx, t, l.Backup, l.Backup.Iface, lab.VIP6.String()+"/128")
	}); err != nil {
		t.Fatalf("the new master does not hold %s/128", lab.VIP6)
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
	// As in TestFailover: a request whose first report was still in the
	// killed master's queue may fail; none started after the takeover.
	inFlight := load.errors(time.Time{})
	if errs := load.errors(t0.Add(takeover)); len(errs) > 0 {
		t.Fatalf("%d requests failed: %v", len(errs), errs)
	}
	resp := gvsStatus(ctx, t, bsock)
	if resp.Sync == nil || resp.Sync.Role != "master" || resp.Sync.Installed == 0 || resp.Sync.Invalid != 0 {
		t.Fatalf("backup sync status after takeover: %+v", resp.Sync)
	}
	if mode == config.NAT || mode == config.FullNAT {
		// The stream's replies went through the new master.
		var out uint64
		for _, s := range resp.Services {
			for _, r := range s.Reals {
				out += r.Stats.OutPkts
			}
		}
		if out == 0 {
			t.Error("no NAT reply went through the new master")
		}
	}
	if resp.Sync == nil || resp.Sync.Group != failoverSyncGroup6 || resp.Sync.ConnsReceived == 0 {
		t.Errorf("the backup's sync: %+v, want connections received on the group %s", resp.Sync, failoverSyncGroup6)
	}
	if mode == config.FullNAT && !hostHas(ctx, t, l.Backup, l.Backup.Iface, failoverLocal6.String()+"/128") {
		t.Errorf("the new master does not hold the local address %s/128", failoverLocal6)
	}
	t.Logf("%s: the backup was master %v after the kill; stream gap %v; %d requests, %d failed (in flight); backup sync: %d messages, %d connections received, %d installed",
		label, takeover.Round(time.Millisecond), gap.Round(time.Millisecond), load.done(), len(inFlight),
		resp.Sync.MessagesReceived, resp.Sync.ConnsReceived, resp.Sync.Installed)
	if mode != config.NAT {
		return
	}

	// The killed director comes back at its old priority, as in
	// TestFailover: it removes the /128 its death left (else it would
	// answer neighbour solicitations for it against the master), learns
	// the IPv6 connections from a refresh while backup, and takes the VIP
	// back without cutting a stream that began on the other director.
	if !hostHas(ctx, t, l.Director, l.Director.Iface, lab.VIP6.String()+"/128") {
		t.Fatal("the killed master's VIP is not on its interface: the restart check below would prove nothing")
	}
	conn2, err := l.Client.DialTCP(ctx, vip)
	if err != nil {
		t.Fatal(err)
	}
	st2 := startStream(conn2)
	defer st2.stop()
	port2 := uint16(conn2.LocalAddr().(*net.TCPAddr).Port)
	_, rsock := start(l.Director, "restarted", 150)
	if hostHas(ctx, t, l.Director, l.Director.Iface, lab.VIP6.String()+"/128") {
		t.Fatal("the restarted director kept the IPv6 VIP its killed run left behind")
	}
	waitRole(ctx, t, rsock, "BACKUP", 5*time.Second)
	if err := waitCond(ctx, 5*time.Second, func() bool { return hasConn(ctx, t, rsock, port2, "ESTABLISHED") }); err != nil {
		t.Fatalf("the restarted director did not learn the new stream's IPv6 connection from a refresh: %+v", gvsStatus(ctx, t, rsock).Sync)
	}
	waitRole(ctx, t, rsock, "MASTER", 10*time.Second)
	t1 := time.Now()
	if err := waitCond(ctx, 10*time.Second, func() bool { return st2.echoes(t1) >= 20 }); err != nil {
		t.Fatalf("the stream did not carry on after the restarted director took the VIP back (error: %v)", st2.failure())
	}
	gap2 := st2.gap(t1)
	st2.stop()
	if err := st2.failure(); err != nil {
		t.Fatalf("the stream broke when the restarted director took the VIP back: %v", err)
	}
	if gap2 > time.Second {
		t.Fatalf("the stream stalled %v when the restarted director took the VIP back", gap2)
	}
	t.Logf("%s: the restarted director took the VIP back; the stream's gap %v", label, gap2.Round(time.Millisecond))
}

// request6 opens a TCP connection from h to vip, echoes 64 bytes and
// closes it, bounded by 20 s (requestFrom for an IPv6 VIP).
func request6(ctx context.Context, h *lab.Host, vip netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := h.DialTCP(ctx, vip)
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

// TestVRRPWithKeepalivedIPv6 is TestVRRPWithKeepalived for an IPv6 VIP:
// gvsd with an IPv6 NAT service and [vrrp] version 3 speaks VRRPv3 over
// IPv6 with a keepalived (--vrrp only) whose vrrp_instance has the IPv6
// VIP, on the router's LAN side, same VRID. gvsd alone is master, holds
// the VIP as a /128 and forwards; it yields (removes the VIP) to the
// higher-priority keepalived, and takes the VIP back and forwards again
// when keepalived stops.
func TestVRRPWithKeepalivedIPv6(t *testing.T) {
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("needs keepalived (apt-get install keepalived)")
	}
	l := needLabWith(t, lab.Options{IPv6: true, Reals: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const interval = 200 * time.Millisecond
	vip := netip.AddrPortFrom(lab.VIP6, 80)
	if err := l.SetGateway(l.Director.Addr6, l.Reals...); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\n\n[[service]]\naddress = %q\nforward = \"nat\"\n", l.Director.Iface, vip)
	for _, r := range l.Reals {
		if _, err := r.StartEcho("tcp", netip.AddrPortFrom(netip.IPv6Unspecified(), 8081)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, 8081))
	}
	fmt.Fprintf(&b, "\n[vrrp]\nrouter_id = 51\nversion = 3\npriority = 100\nadvert_interval = %q\n", interval)
	cfgPath, sock := filepath.Join(dir, "gvs.toml"), filepath.Join(dir, "gvsd.sock")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	gvsd, err := scenario.Start(ctx, l.Director, filepath.Join(dir, "gvsd.log"), []string{bins.gvsd, "-config", cfgPath, "-socket", sock, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		gvsd.Stop()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", gvsd.Log())
		}
	}()
	if err := gvsd.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("gvsd: %v", err)
	}
	state := func() string {
		if r := gvsStatus(ctx, t, sock); r.VRRP != nil {
			return r.VRRP.State
		}
		return ""
	}
	hasVIP := func() bool { return hostHas(ctx, t, l.Director, l.Director.Iface, lab.VIP6.String()+"/128") }
	wait := func(what string, cond func() bool, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		if err := waitCond(ctx, limit, cond); err != nil {
			t.Fatalf("%s: %v (gvsd %s, VIP held %v)", what, err, state(), hasVIP())
		}
		return time.Since(start)
	}
	forwards := func() {
		t.Helper()
		if err := waitCond(ctx, 5*time.Second, func() bool { return request6(ctx, l.Client, vip) == nil }); err != nil {
			t.Fatalf("no request to %s got through: %v", vip, request6(ctx, l.Client, vip))
		}
	}
	wait("gvsd master alone", func() bool { return state() == "MASTER" && hasVIP() }, 5*time.Second)
	forwards()

	stopKA := startKeepalived(ctx, t, l, ka, fmt.Sprintf(`global_defs {
  vrrp_version 3
}
vrrp_instance gvs6 {
  state BACKUP
  interface eth1
  virtual_router_id 51
  priority 200
  advert_int %g
  virtual_ipaddress {
    %s/128
  }
}
`, interval.Seconds(), lab.VIP6))
	yield := wait("gvsd backup, VIP given up", func() bool { return state() == "BACKUP" && !hasVIP() }, 10*time.Second)
	t.Logf("gvsd yielded to keepalived %v after it started", yield.Round(time.Millisecond))
	if st := gvsStatus(ctx, t, sock).VRRP; st.Invalid != 0 || st.Received == 0 || !strings.HasPrefix(st.Master, "fe80:") {
		t.Errorf("gvsd's VRRP status %+v: want keepalived's adverts accepted, from its link-local address", st)
	}

	t0 := time.Now()
	stopKA()
	wait("gvsd master again", func() bool { return state() == "MASTER" && hasVIP() }, 5*time.Second)
	t.Logf("gvsd was master again %v after keepalived was told to stop", time.Since(t0).Round(time.Millisecond))
	forwards()
}
