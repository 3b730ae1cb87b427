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

// keepalivedConfig6 is keepalivedConfig for an IPv6 instance: vrrp_version
// 3 and the VIP fd00:20::100, which makes keepalived advertise over IPv6
// from its link-local address to ff02::12.
func keepalivedConfig6(iface string, prio int, interval time.Duration) string {
	return fmt.Sprintf("global_defs {\n  vrrp_version 3\n}\nvrrp_instance gvs_test6 {\n  state BACKUP\n  interface %s\n  virtual_router_id 51\n"+
		"  priority %d\n  advert_int %g\n  virtual_ipaddress {\n    fd00:20::100/128\n  }\n}\n", iface, prio, interval.Seconds())
}

// TestKeepalivedInteropIPv6 is TestKeepalivedInterop for VRRPv3 over IPv6:
// a gvs speaker whose only address is an IPv6 one, against a keepalived
// instance with an IPv6 virtual_ipaddress, both ways: gvs yields to a
// higher-priority keepalived and takes over when it stops; keepalived
// yields to a higher-priority gvs and takes over when gvs stops. Neither
// drops the other's adverts: the link-local source, ff02::12, hop limit
// 255 and the pseudo-header checksum agree with keepalived's.
func TestKeepalivedInteropIPv6(t *testing.T) {
	netnstest.RequireRoot(t)
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("needs keepalived (apt-get install keepalived)")
	}
	const interval = 500 * time.Millisecond
	vip := netip.MustParseAddr("fd00:20::100")
	for _, c := range []struct {
		name         string
		gvsPrio, kaP int
	}{
		{"keepalived higher", 100, 200},
		{"gvs higher", 200, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := netnstest.New(t), netnstest.New(t)
			netnstest.VethPair(t, a, b, "vrrpa", "fd00:20::1/64", "vrrpb", "fd00:20::2/64")
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "keepalived.conf")
			if err := os.WriteFile(cfgPath, []byte(keepalivedConfig6("vrrpb", c.kaP, interval)), 0o600); err != nil {
				t.Fatal(err)
			}
			var kaOut strings.Builder
			cmd := exec.Command(ka, "--vrrp", "--dont-fork", "--log-console", "--log-detail", "--use-file", cfgPath,
				"--pid", filepath.Join(dir, "ka.pid"), "--vrrp_pid", filepath.Join(dir, "vrrp.pid"))
			cmd.Stdout, cmd.Stderr = &kaOut, &kaOut
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			b.Do(t, func() { err = cmd.Start() })
			if err != nil {
				t.Fatal(err)
			}
			kaStart := time.Now()
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
				if t.Failed() || os.Getenv("GVS_KA_LOG") != "" {
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
					addrs, _ := netlink.AddrList(l, netlink.FAMILY_V6)
					for _, ad := range addrs {
						has = has || ad.IP.String() == vip.String()
					}
				})
				return has
			}
			var state atomic.Int32
			var sp *Speaker
			a.Do(t, func() {
				sp, err = NewSpeaker(SpeakerConfig{Interface: "vrrpa", OnState: func(s State) { state.Store(int32(s)) },
					Machine: Config{Version: Version3, VRID: 51, Priority: uint8(c.gvsPrio), Interval: interval, Preempt: true,
						Addresses: []netip.Addr{vip}}})
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			spDone := make(chan error, 1)
			go func() { spDone <- sp.Run(ctx) }()
			defer func() { cancel(); <-spDone }()
			counts := func() string {
				var d []string
				for r := range NumDropReasons {
					if n := sp.C.Dropped[r].Load(); n > 0 {
						d = append(d, fmt.Sprintf("%v %d", r, n))
					}
				}
				return fmt.Sprintf("gvs %v, sent %d, received %d, dropped %v", State(state.Load()), sp.C.Sent.Load(), sp.C.Received.Load(), d)
			}
			wait := func(what string, cond func() bool, limit time.Duration) {
				t.Helper()
				for start := time.Now(); time.Since(start) < limit; time.Sleep(20 * time.Millisecond) {
					if cond() {
						return
					}
				}
				t.Fatalf("%s: not after %v (%s)", what, limit, counts())
			}
			// As TestKeepalivedInterop, plus the link-local addresses'
			// duplicate address detection (about 2 s) before either side
			// can send.
			const margin = 6 * time.Second
			elect := 5*interval + margin
			if c.kaP > c.gvsPrio {
				wait("keepalived master, gvs backup", func() bool { return kaHasVIP() && State(state.Load()) == Backup }, elect)
				wait("gvs hears keepalived", func() bool { return sp.C.Received.Load() > 0 }, 2*interval+margin)
				stopKA()
				wait("gvs master after keepalived stopped", func() bool { return State(state.Load()) == Master }, interval+margin)
			} else {
				wait("gvs master, keepalived backup", func() bool { return State(state.Load()) == Master && !kaHasVIP() }, elect)
				// keepalived must accept gvs's adverts: had it not, it
				// would take the VIP a Master_Down_Interval after its
				// link-local address became usable.
				time.Sleep(time.Until(kaStart.Add(5*interval + 3*time.Second)))
				if kaHasVIP() {
					t.Fatal("keepalived took the VIP while gvs, with the higher priority, was master")
				}
				cancel()
				<-spDone
				spDone <- nil
				wait("keepalived master after gvs stopped", kaHasVIP, interval+margin)
			}
			if sp.C.Invalid.Load() != 0 {
				t.Errorf("gvs dropped keepalived's adverts: %s", counts())
			}
			t.Logf("%s", counts())
		})
	}
}
