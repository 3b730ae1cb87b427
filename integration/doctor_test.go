package integration

import (
	"context"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestDoctor: gvsadm doctor passes on the lab's director, with GRO on as
// with it off (gvsd forwards merged frames); when the ingress table is
// deleted behind gvsd's back it fails, naming the problem and a fix.
func TestDoctor(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, "")
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	doctor := func() (string, int) {
		t.Helper()
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "doctor").CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("gvsadm doctor: %v", err)
		}
		return string(out), code
	}
	out, code := doctor()
	if code != 0 {
		t.Fatalf("doctor on a good director: exit %d\n%s", code, out)
	}
	t.Logf("gvsadm doctor:\n%s", out)
	for _, want := range []string{"interface", "generic-receive-offload", "large-receive-offload", "ingress table", "real 10.20.0.11", "real 10.20.0.12", "vip " + scenario.VIP.String()} {
		if !regexp.MustCompile(`(?m)^ok +` + regexp.QuoteMeta(want) + ` `).MatchString(out) {
			t.Errorf("no ok line for %q:\n%s", want, out)
		}
	}

	if _, err := exec.LookPath("ethtool"); err == nil {
		if b, err := l.Director.Command(ctx, "ethtool", "-K", l.Director.Iface, "gro", "on").CombinedOutput(); err != nil {
			t.Fatalf("ethtool gro on: %v %s", err, b)
		}
		// gvsd forwards merged frames as GSO: GRO on is no problem
		// unless director.disable_gro asks for it off.
		out, code = doctor()
		if code != 0 || !regexp.MustCompile(`(?m)^ok +generic-receive-offload +on: `).MatchString(out) {
			t.Fatalf("doctor with GRO on: exit %d\n%s", code, out)
		}
	} else {
		t.Log("no ethtool: the GRO case is not checked")
	}

	if b, err := l.Director.Command(ctx, "nft", "delete", "table", "netdev", "gvs").CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v %s", err, b)
	}
	if out, code = doctor(); code != 1 || !regexp.MustCompile(`(?m)^FAIL +ingress table .*is gone`).MatchString(out) {
		t.Fatalf("doctor without the ingress table: exit %d\n%s", code, out)
	}
}
