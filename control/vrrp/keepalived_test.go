//go:build linux

package vrrp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/gvs-lb/gvs/internal/netnstest"
)

// keepalivedConfig is a VRRPv3 instance for keepalived (keepalived.conf(5))
// on iface with priority prio, the VIP 192.0.2.100 and the test's interval.
func keepalivedConfig(iface string, prio int, interval time.Duration) string {
	return fmt.Sprintf(`global_defs {
  vrrp_version 3
}
vrrp_instance gvs_test {
  state BACKUP
  interface %s
  virtual_router_id 51
  priority %d
  advert_int %g
  virtual_ipaddress {
    192.0.2.100/32
  }
}
`, iface, prio, interval.Seconds())
}

// TestKeepalivedInterop runs a gvs speaker against a real keepalived
// (--vrrp only) in two namespaces, both ways: gvs yields to a
// higher-priority keepalived and takes over when it stops; keepalived
// yields to a higher-priority gvs and takes over when gvs stops.
func TestKeepalivedInterop(t *testing.T) {
	netnstest.RequireRoot(t)
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("needs keepalived (apt-get install keepalived)")
	}
	const interval = 500 * time.Millisecond
	for _, c := range []struct {
		name            string
		gvsPrio, kaPrio int
	}{
		{"keepalived higher", 100, 200},
		{"gvs higher", 200, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := netnstest.New(t), netnstest.New(t)
			netnstest.VethPair(t, a, b, "vrrpa", "192.0.2.1/24", "vrrpb", "192.0.2.2/24")
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "keepalived.conf")
			if err := os.WriteFile(cfgPath, []byte(keepalivedConfig("vrrpb", c.kaPrio, interval)), 0o600); err != nil {
				t.Fatal(err)
			}
			var kaOut strings.Builder
			cmd := exec.Command(ka, "--vrrp", "--dont-fork", "--log-console", "--log-detail", "--use-file", cfgPath,
				"--pid", filepath.Join(dir, "ka.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
			cmd.Stdout, cmd.Stderr = &kaOut, &kaOut
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			b.Do(t, func() { err = cmd.Start() }) // the child inherits b's namespace
			if err != nil {
				t.Fatal(err)
			}
			kaDone := make(chan struct{})
			go func() { cmd.Wait(); close(kaDone) }()
			stopKA := func() {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
				select {
				case <-kaDone:
				case <-time.After(5 * time.Second):
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-kaDone
				}
			}
			defer func() {
				stopKA()
				if t.Failed() {
					t.Logf("keepalived said:\n%s", kaOut.String())
				}
			}()
			kaHasVIP := func() bool {
				has := false
				b.Do(t, func() {
					l, err := netlink.LinkByName("vrrpb")
					if err != nil {
						return
					}
					addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
					for _, ad := range addrs {
						has = has || ad.IP.String() == "192.0.2.100"
					}
				})
				return has
			}

			var state atomic.Int32
			var sp *Speaker
			a.Do(t, func() {
				sp, err = NewSpeaker(SpeakerConfig{Interface: "vrrpa", OnState: func(s State) { state.Store(int32(s)) },
					Machine: Config{VRID: 51, Priority: uint8(c.gvsPrio), Interval: interval, Preempt: true,
						Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}})
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			spDone := make(chan error, 1)
			go func() { spDone <- sp.Run(ctx) }()
			defer func() { cancel(); <-spDone }()

			wait := func(what string, cond func() bool, limit time.Duration) time.Duration {
				t.Helper()
				start := time.Now()
				for time.Since(start) < limit {
					if cond() {
						return time.Since(start)
					}
					time.Sleep(20 * time.Millisecond)
				}
				t.Fatalf("%s: not after %v (gvs %v, sent %d, received %d, invalid %d)", what, limit, State(state.Load()),
					sp.C.Sent.Load(), sp.C.Received.Load(), sp.C.Invalid.Load())
				return 0
			}
			if c.kaPrio > c.gvsPrio {
				wait("keepalived master, gvs backup", func() bool { return kaHasVIP() && State(state.Load()) == Backup }, 10*time.Second)
				t0 := time.Now()
				stopKA() // SIGTERM: keepalived sends priority 0 and exits
				wait("gvs master after keepalived stopped", func() bool { return State(state.Load()) == Master }, 5*time.Second)
				t.Logf("gvs took over within %v of keepalived being told to stop (Skew_Time %v)", time.Since(t0).Round(time.Millisecond),
					time.Duration(256-c.gvsPrio)*interval/256)
			} else {
				wait("gvs master, keepalived backup", func() bool { return State(state.Load()) == Master && !kaHasVIP() }, 10*time.Second)
				// keepalived has seen gvs's adverts and is a backup: the
				// VIP stays off while gvs runs.
				time.Sleep(3 * interval)
				if kaHasVIP() {
					t.Fatal("keepalived took the VIP while gvs, with the higher priority, was master")
				}
				t0 := time.Now()
				cancel() // gvs sends priority 0
				<-spDone
				spDone <- nil
				wait("keepalived master after gvs stopped", kaHasVIP, 5*time.Second)
				t.Logf("keepalived took over within %v of gvs being told to stop (Skew_Time %v)", time.Since(t0).Round(time.Millisecond),
					time.Duration(256-c.kaPrio)*interval/256)
			}
			if sp.C.Invalid.Load() != 0 {
				t.Errorf("gvs found %d of keepalived's adverts invalid", sp.C.Invalid.Load())
			}
			// A keepalived backup sends nothing: only as master does it
			// advertise to gvs.
			if c.kaPrio > c.gvsPrio && sp.C.Received.Load() == 0 {
				t.Error("gvs received no advert from keepalived")
			}
		})
	}
}
