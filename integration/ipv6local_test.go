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

// TestIPv6LocalAddressFollows renumbers a running director: an IPv6
// FULLNAT service without director.local_addresses connects to its real
// from the director's own IPv6 address; when that address is replaced by
// another (a new prefix, an operator's change) while gvsd runs, new
// connections come from the new address within a few resolver periods and
// the real's answers to it reach the client. Before gvsd followed the
// address, it kept sending from the address read at its start, and every
// answer went to an address no host held.
func TestIPv6LocalAddressFollows(t *testing.T) {
	l := needLabWith(t, lab.Options{IPv6: true, Reals: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	r := l.Reals[0]
	echo, err := r.StartEcho("tcp", netip.AddrPortFrom(netip.IPv6Unspecified(), 8082))
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	vip := netip.AddrPortFrom(lab.VIP6, 82)
	cfg := fmt.Sprintf("[director]\ninterface = %q\nworkers = 1\n\n[[service]]\nprotocol = \"tcp\"\naddress = %q\nscheduler = \"rr\"\nforward = \"fullnat\"\n  [[service.real]]\n  address = %q\n",
		l.Director.Iface, vip.String(), netip.AddrPortFrom(r.Addr6, 8082).String())
	cfgPath := filepath.Join(dir, "gvs.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "gvsd.sock")
	gvsd, err := scenario.Start(ctx, l.Director, filepath.Join(dir, "gvsd.log"), []string{bins.gvsd, "-config", cfgPath, "-socket", socket, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := gvsd.Stop(); err != nil {
			t.Errorf("gvsd: %v", err)
		}
		if t.Failed() {
			t.Logf("gvsd log:\n%s", gvsd.Log())
		}
	}()
	if err := gvsd.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("gvsd did not start: %v", err)
	}

	// One short echo through the VIP, bounded well below the wait.
	request := func() error {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := l.Client.DialTCP(dctx, vip)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		return echoBytes(c, 1000)
	}
	// fromAddr waits until a request succeeds and the real has seen a
	// connection from a.
	fromAddr := func(a netip.Addr, limit time.Duration) error {
		var last error
		err := waitCond(ctx, limit, func() bool {
			last = request()
			return last == nil && echo.Stats().Peers[a] > 0
		})
		if err != nil {
			return fmt.Errorf("%w (last request: %v; the real saw %v)", err, last, echo.Stats().Peers)
		}
		return nil
	}
	if err := fromAddr(l.Director.Addr6, 20*time.Second); err != nil {
		t.Fatalf("before renumbering, no connection from the director's %s: %v", l.Director.Addr6, err)
	}

	// Renumber: the new address first, then the old one goes.
	renumbered := netip.MustParseAddr("fd00:20::f00d")
	for _, args := range [][]string{
		{"ip", "-6", "addr", "add", renumbered.String() + "/64", "dev", l.Director.Iface, "nodad"},
		{"ip", "-6", "addr", "del", l.Director.Addr6.String() + "/64", "dev", l.Director.Iface},
	} {
		if out, err := l.Director.Command(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// The resolver looks every 5 s; three periods and a margin.
	if err := fromAddr(renumbered, 20*time.Second); err != nil {
		t.Fatalf("after renumbering to %s: %v", renumbered, err)
	}
	if !strings.Contains(gvsd.Log(), "interface IPv6 address changed") {
		t.Errorf("gvsd did not log the change of address")
	}
}
