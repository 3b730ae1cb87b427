package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestIPv6TUNSmallLink: IPv6 TUN on a director link whose MTU (1300) is
// below 1320, so that a 1280-byte client packet, the smallest a client may
// be told to send, does not fit with the 40-byte outer header. gvsd sends
// such packets in outer fragments (RFC 2473 section 7.1); the real's
// kernel reassembles them and gvs-realserver decapsulates. A UDP datagram
// of 1280 bytes (IPv6 packet) echoes whole, and a TCP echo of 256 KiB
// comes back byte for byte once the client has learnt the 1280-byte path
// MTU from gvsd's Packet Too Big. gvsd counts the outer fragments.
func TestIPv6TUNSmallLink(t *testing.T) {
	l := needLabWith(t, lab.Options{IPv6: true, Reals: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	r := l.Reals[0]
	if out, err := l.Director.Command(ctx, "ip", "link", "set", l.Director.Iface, "mtu", "1300").CombinedOutput(); err != nil {
		t.Fatalf("director MTU 1300: %v: %s", err, out)
	}
	rs, err := scenario.Start(ctx, r, filepath.Join(dir, "realserver.log"), []string{bins.realserver, "-vip", lab.VIP6.String(), "-mode", "tun"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rs.Stop(); err != nil {
			t.Errorf("gvs-realserver: %v\n%s", err, rs.Log())
		}
	}()
	if err := waitCond(ctx, 10*time.Second, func() bool { return strings.Contains(rs.Log(), "realserver: ready") }); err != nil {
		t.Fatalf("gvs-realserver not ready: %v\n%s", err, rs.Log())
	}
	tcpEcho, err := r.StartEcho("tcp", netip.AddrPortFrom(lab.VIP6, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer tcpEcho.Close()
	udpEcho, err := r.StartEcho("udp", netip.AddrPortFrom(lab.VIP6, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer udpEcho.Close()

	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 1\n", l.Director.Iface)
	for _, svc := range []struct {
		proto string
		port  uint16
	}{{"tcp", 80}, {"udp", 53}} {
		fmt.Fprintf(&b, "\n[[service]]\nprotocol = %q\naddress = %q\nforward = \"tun\"\n  [[service.real]]\n  address = %q\n",
			svc.proto, netip.AddrPortFrom(lab.VIP6, svc.port), netip.AddrPortFrom(r.Addr6, svc.port))
	}
	cfgPath, socket := filepath.Join(dir, "gvs.toml"), filepath.Join(dir, "gvsd.sock")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	gvsd, err := scenario.Start(ctx, l.Director, filepath.Join(dir, "gvsd.log"), []string{bins.gvsd, "-config", cfgPath, "-socket", socket, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		gvsd.Stop()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", gvsd.Log())
			t.Logf("gvs-realserver log:\n%s", rs.Log())
		}
	}()
	if err := gvsd.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("gvsd did not start: %v", err)
	}
	waitReady(ctx, t, socket, 2)

	// UDP: a 1232-byte datagram is a 1280-byte IPv6 packet.
	c, err := l.Client.DialUDP(ctx, netip.AddrPortFrom(lab.VIP6, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 1280-40-8)
	for i := range msg {
		msg[i] = byte(i * 13)
	}
	got := make([]byte, 2048)
	var n int
	if err := waitCond(ctx, 10*time.Second, func() bool {
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(msg); err != nil {
			return false
		}
		n, err = c.Read(got)
		return err == nil
	}); err != nil {
		t.Fatalf("no echo of a 1280-byte UDP packet through the tunnel: %v", err)
	}
	if string(got[:n]) != string(msg) {
		t.Fatalf("UDP echo: %d bytes back, want the %d sent", n, len(msg))
	}

	// TCP: Packet Too Big brings the client down to 1280, whose packets
	// then go in fragments.
	tc, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(lab.VIP6, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := echoBytes(tc, 256<<10); err != nil {
		t.Fatalf("TCP echo through the tunnel: %v", err)
	}

	if err := gvsd.Stop(); err != nil {
		t.Errorf("gvsd: %v", err)
	}
	counters := finalCountersOf(gvsd.Log())
	if !strings.Contains(string(counters), `"OuterFragments":`) || strings.Contains(string(counters), `"OuterFragments":0,`) {
		t.Errorf("gvsd counted no outer fragments: %s", counters)
	}
}
