package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestDoctorIPv6: gvsadm doctor on a director with an IPv6 NAT service
// whose first real routes IPv6 through the director and whose second does
// not: IPv6 on the interface, the /128 VIP and both reals' neighbour
// entries pass; once datagrams have gone to both, the second real is
// warned of with the ip -6 route command that sends its replies back
// through the director, and after that command runs on it (as printed)
// and more datagrams go through, the warning is gone.
func TestDoctorIPv6(t *testing.T) {
	l := needLabWith(t, lab.Options{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	rs1, rs2 := l.Reals[0], l.Reals[1]
	if err := l.SetGateway(l.Director.Addr6, rs1); err != nil {
		t.Fatal(err)
	}
	const realPort = 5353
	for _, r := range l.Reals {
		e, err := r.StartEcho("udp", netip.AddrPortFrom(netip.IPv6Unspecified(), realPort))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
	}
	vip := netip.AddrPortFrom(lab.VIP6, 53)
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 1\n\n[[service]]\nprotocol = \"udp\"\naddress = %q\nscheduler = \"rr\"\nforward = \"nat\"\n", l.Director.Iface, vip)
	for _, r := range l.Reals {
		fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, realPort))
	}
	cfgPath, logPath, socket := filepath.Join(dir, "gvs.toml"), filepath.Join(dir, "gvsd.log"), filepath.Join(dir, "gvsd.sock")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	gvsd, err := scenario.Start(ctx, l.Director, logPath, []string{bins.gvsd, "-config", cfgPath, "-socket", socket, "-log-json"})
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
		t.Fatalf("gvsd did not start: %v", err)
	}
	doctor := func() (string, int) {
		t.Helper()
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", socket, "doctor").CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("gvsadm doctor: %v", err)
		}
		return string(out), code
	}
	var out string
	if err := waitCond(ctx, 15*time.Second, func() bool {
		var code int
		out, code = doctor()
		return code == 0
	}); err != nil {
		t.Fatalf("doctor never passed: %v\n%s", err, out)
	}
	t.Logf("gvsadm doctor:\n%s", out)
	for _, want := range []string{"ipv6 +on " + l.Director.Iface + ", address " + l.Director.Addr6.String(), "vip " + lab.VIP6.String(),
		"real " + rs1.Addr6.String(), "real " + rs2.Addr6.String()} {
		if !regexp.MustCompile(`(?m)^ok +` + want).MatchString(out) {
			t.Errorf("no ok line for %q:\n%s", want, out)
		}
	}

	// send sends n datagrams through the VIP, each from a new port.
	send := func(n int) {
		t.Helper()
		for range n {
			c, err := l.Client.DialUDP(ctx, vip)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("are you there"))
			c.Close()
		}
	}
	rs2Name := "nat return " + netip.AddrPortFrom(rs2.Addr6, realPort).String()
	send(60)
	var fix string
	if err := waitCond(ctx, 10*time.Second, func() bool {
		out, _ = doctor()
		m := regexp.MustCompile(`(?m)^WARN +` + regexp.QuoteMeta(rs2Name) + ` .*\n +fix: on ` + regexp.QuoteMeta(rs2.Addr6.String()) + `: (.*) \(or a route`).FindStringSubmatch(out)
		if m != nil {
			fix = m[1]
		}
		return m != nil
	}); err != nil {
		t.Fatalf("no route-back warning for %s: %v\n%s", rs2.Name, err, out)
	}
	if strings.Contains(out, "nat return "+netip.AddrPortFrom(rs1.Addr6, realPort).String()) {
		t.Errorf("the real routing through the director is warned of too:\n%s", out)
	}
	if want := "ip -6 route replace default via " + l.Director.Addr6.String(); fix != want {
		t.Fatalf("fix %q, want %q", fix, want)
	}
	if b, err := rs2.Command(ctx, "sh", "-c", fix).CombinedOutput(); err != nil {
		t.Fatalf("%s on %s: %v\n%s", fix, rs2.Name, err, b)
	}
	send(20)
	if err := waitCond(ctx, 10*time.Second, func() bool {
		out, _ = doctor()
		return !strings.Contains(out, rs2Name)
	}); err != nil {
		t.Fatalf("the warning stayed after the fix: %v\n%s", err, out)
	}
}
