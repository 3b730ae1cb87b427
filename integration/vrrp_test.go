package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
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
	cfg := drConfig(l, "rr", "", []int{1, 1}, "") + fmt.Sprintf("\n[vrrp]\nrouter_id = 51\npriority = 100\nadvert_interval = %q\n", interval)
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
	dir := t.TempDir()
	kcfg := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(kcfg, []byte(fmt.Sprintf(`global_defs {
  vrrp_version 3
}
vrrp_instance gvs {
  state BACKUP
  interface eth1
  virtual_router_id 51
  priority 200
  advert_int %g
  virtual_ipaddress {
    %s/32
  }
}
`, interval.Seconds(), scenario.VIP)), 0o600); err != nil {
		t.Fatal(err)
	}
	var kaOut strings.Builder
	kcmd := l.Router.Command(ctx, ka, "--vrrp", "--dont-fork", "--log-console", "--use-file", kcfg,
		"--pid", filepath.Join(dir, "ka.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
	kcmd.Stdout, kcmd.Stderr = &kaOut, &kaOut
	if err := kcmd.Start(); err != nil {
		t.Fatal(err)
	}
	kaDone := make(chan struct{})
	go func() { kcmd.Wait(); close(kaDone) }()
	stopKA := func() {
		kcmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-kaDone:
		case <-time.After(5 * time.Second):
			kcmd.Process.Kill()
			<-kaDone
		}
	}
	defer func() {
		stopKA()
		if t.Failed() {
			t.Logf("keepalived said:\n%s", kaOut.String())
		}
	}()
	yield := wait("gvsd backup, VIP given up", func() bool { return state() == "BACKUP" && !hasVIP() }, 10*time.Second)
	t.Logf("gvsd yielded to keepalived %v after it started", yield.Round(time.Millisecond))

	// keepalived stops (priority 0): gvsd takes the VIP back and forwards.
	t0 := time.Now()
	stopKA()
	wait("gvsd master again", func() bool { return state() == "MASTER" && hasVIP() }, 5*time.Second)
	t.Logf("gvsd was master again %v after keepalived was told to stop", time.Since(t0).Round(time.Millisecond))
	echoOnce(ctx, t, l.Client, l.Client.Addr)
}
