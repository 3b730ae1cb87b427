package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestVRRPWithKeepalived runs gvsd with [vrrp] on the director and a
// keepalived (--vrrp only, VRRPv3) of higher priority on the router's LAN
// side, for the same VRID and VIP: gvsd is master and forwards while it
// is alone, yields the VIP (removes it from its interface) when keepalived
// comes, and takes it back, forwarding again, when keepalived stops.
func TestVRRPWithKeepalived(t *testing.T) {
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("needs keepalived (apt-get install keepalived)")
	}
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const interval = 200 * time.Millisecond
	// VRRPv3 on both sides (keepalived's vrrp_version 3), for a 0.2 s interval.
	cfg := drConfig(l, "rr", "", []int{1, 1}, "") + fmt.Sprintf("\n[vrrp]\nrouter_id = 51\nversion = 3\npriority = 100\nadvert_interval = %q\n", interval)
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	state := func() string {
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "-L", "--json").Output()
		if err != nil {
			t.Fatalf("gvsadm -L --json: %v", err)
		}
		var resp api.Response
		if err := json.Unmarshal(out, &resp); err != nil || resp.VRRP == nil {
			t.Fatalf("gvsadm -L --json has no vrrp: %v\n%s", err, out)
		}
		return resp.VRRP.State
	}
	hasVIP := func() bool {
		out, _ := l.Director.Command(ctx, "ip", "-4", "-o", "addr", "show", "dev", l.Director.Iface).Output()
		return strings.Contains(string(out), scenario.VIP.String()+"/32")
	}
	wait := func(what string, cond func() bool, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < limit {
			if cond() {
				return time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: not after %v (gvsd %s, VIP held %v)", what, limit, state(), hasVIP())
		return 0
	}

	// Alone: master, VIP held, traffic forwarded.
	wait("gvsd master alone", func() bool { return state() == "MASTER" && hasVIP() }, 5*time.Second)
	echoOnce(ctx, t, l.Client, l.Client.Addr)

	// keepalived of priority 200 on the router's LAN side.
	stopKA := startKeepalived(ctx, t, l, ka, `global_defs {
  vrrp_version 3
}
`+keepalivedInstance(200, interval))
	yield := wait("gvsd backup, VIP given up", func() bool { return state() == "BACKUP" && !hasVIP() }, 10*time.Second)
	t.Logf("gvsd yielded to keepalived %v after it started", yield.Round(time.Millisecond))

	// keepalived stops (priority 0): gvsd takes the VIP back and forwards.
	t0 := time.Now()
	stopKA()
	wait("gvsd master again", func() bool { return state() == "MASTER" && hasVIP() }, 5*time.Second)
	t.Logf("gvsd was master again %v after keepalived was told to stop", time.Since(t0).Round(time.Millisecond))
	echoOnce(ctx, t, l.Client, l.Client.Addr)
}

// keepalivedInstance is the vrrp_instance of a keepalived on the router's
// LAN side for the lab's VIP, VRID 51, with priority prio.
func keepalivedInstance(prio int, interval time.Duration) string {
	return fmt.Sprintf(`vrrp_instance gvs {
  state BACKUP
  interface eth1
  virtual_router_id 51
  priority %d
  advert_int %g
  virtual_ipaddress {
    %s/32
  }
}
`, prio, interval.Seconds(), scenario.VIP)
}

// startKeepalived runs keepalived (binary ka, --vrrp only) with config conf
// on the router until the test ends or the returned stop is called (it
// sends SIGTERM: a master sends priority 0 and exits). What keepalived
// said is logged if the test failed.
func startKeepalived(ctx context.Context, t *testing.T, l *lab.Lab, ka, conf string) (stop func()) {
	t.Helper()
	dir := t.TempDir()
	kcfg := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(kcfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var kaOut strings.Builder
	// Not killed with ctx: stop (at the latest in the cleanup, before the
	// lab goes) ends it with SIGTERM, as an operator would.
	kcmd := l.Router.Command(context.WithoutCancel(ctx), ka, "--vrrp", "--dont-fork", "--log-console", "--use-file", kcfg,
		"--pid", filepath.Join(dir, "ka.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	kcmd.Stdout, kcmd.Stderr = &kaOut, &kaOut
	if err := kcmd.Start(); err != nil {
		t.Fatal(err)
	}
	kaDone := make(chan struct{})
	go func() { kcmd.Wait(); close(kaDone) }()
	stop = func() {
		kcmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-kaDone:
		case <-time.After(5 * time.Second):
			kcmd.Process.Kill()
			<-kaDone
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("keepalived said:\n%s", kaOut.String())
		}
	})
	return stop
}

// TestVRRPVersionMismatch is issue 15's split brain, caught: gvsd set to
// VRRPv3 and a stock keepalived (no vrrp_version: VRRPv2) for the same
// router_id cannot hear each other, and both become master. gvsd drops
// keepalived's adverts, counts them as version drops in gvsadm -L --json
// and lists the peer there, logs it once with the fix, and gvsadm doctor
// fails its vrrp line with that fix until keepalived stops (its priority 0
// closes the mismatch).
func TestVRRPVersionMismatch(t *testing.T) {
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("needs keepalived (apt-get install keepalived)")
	}
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := drConfig(l, "rr", "", []int{1, 1}, "") + "\n[vrrp]\nrouter_id = 51\nversion = 3\npriority = 100\nadvert_interval = \"1s\"\n"
	o := scenario.Options{Gvsd: []string{bins.gvsd}, Realserver: []string{bins.realserver}, Dir: t.TempDir(), Logf: t.Logf}
	env, err := scenario.Setup(ctx, l, config.DR, o, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		env.Close()
		if t.Failed() {
			t.Logf("gvsd log:\n%s", env.Gvsd.Log())
		}
	}()
	status := func() *api.VRRPStatus {
		resp := gvsStatus(ctx, t, env.SocketPath)
		if resp.VRRP == nil {
			t.Fatalf("gvsadm -L --json has no vrrp: %+v", resp)
		}
		return resp.VRRP
	}
	doctor := func() (string, int) {
		out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", env.SocketPath, "doctor").CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("gvsadm doctor: %v", err)
		}
		return string(out), 0
	}
	waitFor := func(what string, cond func(*api.VRRPStatus) bool, limit time.Duration) *api.VRRPStatus {
		t.Helper()
		for deadline := time.Now().Add(limit); ; time.Sleep(100 * time.Millisecond) {
			st := status()
			if cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after %v: %+v", what, limit, st)
			}
		}
	}
	stopKA := startKeepalived(ctx, t, l, ka, keepalivedInstance(200, time.Second))

	// keepalived is master one Master_Down_Interval (3.2 s) after it
	// starts, and advertises; 4 s of margin.
	st := waitFor("gvsd drops keepalived's VRRPv2 adverts", func(st *api.VRRPStatus) bool { return st.Dropped["version"] > 0 }, 3200*time.Millisecond+4*time.Second)
	// gvsd hears no master it accepts: it is master too.
	st = waitFor("gvsd master too", func(st *api.VRRPStatus) bool { return st.State == "MASTER" }, 4*time.Second)
	if st.Version != 3 || st.Received != 0 || len(st.Mismatches) != 1 || st.Mismatches[0].Reason != "version" ||
		st.Mismatches[0].Version != 2 || st.Mismatches[0].Peer != l.Gateway.String() {
		t.Errorf("gvsadm -L --json vrrp: %+v; want version drops and one mismatch from %s's VRRPv2", st, l.Gateway)
	}
	out, code := doctor()
	failing := regexp.MustCompile(`(?m)^FAIL +vrrp +` + regexp.QuoteMeta(l.Gateway.String()+" sends VRRPv2 for router_id 51"))
	if code != 1 || !failing.MatchString(out) || !strings.Contains(out, "set [vrrp] version = 2") {
		t.Errorf("gvsadm doctor: exit %d, want 1 and a failing vrrp line with the fix:\n%s", code, out)
	}
	t.Logf("gvsadm doctor:\n%s", out)

	// keepalived stops: its priority 0 (VRRPv2, dropped too) says it
	// resigns, and the mismatch closes.
	stopKA()
	waitFor("mismatch closed", func(st *api.VRRPStatus) bool { return len(st.Mismatches) == 0 }, 4*time.Second)
	if out, _ := doctor(); !regexp.MustCompile(`(?m)^ok +vrrp +VRRPv3 router_id 51`).MatchString(out) {
		t.Errorf("gvsadm doctor after keepalived stopped:\n%s", out)
	}
	line := "sends VRRPv2 for router_id 51 (this director: VRRPv3): set [vrrp] version = 2"
	if n := strings.Count(env.Gvsd.Log(), line); n != 1 {
		t.Errorf("gvsd logged %q %d times, want once", line, n)
	}
}
