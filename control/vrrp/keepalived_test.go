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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/gvs-lb/gvs/internal/netnstest"
)

// keepalivedConfig is a keepalived.conf(5) with one VRRP instance on iface
// with priority prio, the VIP 192.0.2.100, VRID 51 and the given interval.
// version 0 leaves vrrp_version out, as a stock configuration does, which
// is keepalived's VRRPv2; a non-empty pass adds
// authentication { auth_type PASS; auth_pass pass }.
func keepalivedConfig(iface string, prio int, interval time.Duration, version int, pass string) string {
	var b strings.Builder
	if version != 0 {
		fmt.Fprintf(&b, "global_defs {\n  vrrp_version %d\n}\n", version)
	}
	fmt.Fprintf(&b, "vrrp_instance gvs_test {\n  state BACKUP\n  interface %s\n  virtual_router_id 51\n  priority %d\n  advert_int %g\n", iface, prio, interval.Seconds())
	if pass != "" {
		fmt.Fprintf(&b, "  authentication {\n    auth_type PASS\n    auth_pass %s\n  }\n", pass)
	}
	b.WriteString("  virtual_ipaddress {\n    192.0.2.100/32\n  }\n}\n")
	return b.String()
}

// TestKeepalivedInterop runs a gvs speaker against a real keepalived
// (--vrrp only) in two namespaces, in each version keepalived speaks: a
// stock configuration (no vrrp_version: VRRPv2, no authentication), VRRPv2
// with auth_type PASS, and VRRPv3. Each both ways: gvs yields to a
// higher-priority keepalived and takes over when it stops; keepalived
// yields to a higher-priority gvs and takes over when gvs stops. Then the
// split-brain guard: a keepalived that speaks VRRPv2 to a gvs set to
// version 3, or with another password, is heard by gvs only as adverts it
// drops, counts (version, auth) and reports.
func TestKeepalivedInterop(t *testing.T) {
	netnstest.RequireRoot(t)
	ka, err := exec.LookPath("keepalived")
	if err != nil {
		t.Skip("needs keepalived (apt-get install keepalived)")
	}
	// The smallest interval VRRPv2 carries is 1 s; VRRPv3 runs faster.
	const v2, v3 = time.Second, 500 * time.Millisecond
	type side struct {
		version int    // keepalived: 0 = no vrrp_version (its default, 2)
		pass    string // auth_pass; "" = no authentication
		prio    int
	}
	for _, c := range []struct {
		name     string
		interval time.Duration
		gvs, ka  side
		guard    bool       // a guard case: gvs must drop keepalived's adverts and report it
		drop     DropReason // ... under this reason
	}{
		{"v2 stock/keepalived higher", v2, side{2, "", 100}, side{0, "", 200}, false, 0},
		{"v2 stock/gvs higher", v2, side{2, "", 200}, side{0, "", 100}, false, 0},
		{"v2 pass/keepalived higher", v2, side{2, "s3cr3t", 100}, side{2, "s3cr3t", 200}, false, 0},
		{"v2 pass/gvs higher", v2, side{2, "s3cr3t", 200}, side{2, "s3cr3t", 100}, false, 0},
		{"v3/keepalived higher", v3, side{3, "", 100}, side{3, "", 200}, false, 0},
		{"v3/gvs higher", v3, side{3, "", 200}, side{3, "", 100}, false, 0},
		{"mismatch/keepalived v2, gvs v3", v2, side{3, "", 100}, side{0, "", 200}, true, DropVersion},
		{"mismatch/another password", v2, side{2, "0ther", 100}, side{2, "s3cr3t", 200}, true, DropAuth},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := netnstest.New(t), netnstest.New(t)
			netnstest.VethPair(t, a, b, "vrrpa", "192.0.2.1/24", "vrrpb", "192.0.2.2/24")
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "keepalived.conf")
			if err := os.WriteFile(cfgPath, []byte(keepalivedConfig("vrrpb", c.ka.prio, c.interval, c.ka.version, c.ka.pass)), 0o600); err != nil {
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
			var mu sync.Mutex
			var reported []Mismatch
			auth := AuthNone
			if c.gvs.pass != "" {
				auth = AuthPass
			}
			var sp *Speaker
			a.Do(t, func() {
				sp, err = NewSpeaker(SpeakerConfig{Interface: "vrrpa", OnState: func(s State) { state.Store(int32(s)) },
					OnMismatch: func(m Mismatch) { mu.Lock(); reported = append(reported, m); mu.Unlock() },
					Machine: Config{Version: Version(c.gvs.version), VRID: 51, Priority: uint8(c.gvs.prio), Interval: c.interval, Preempt: true,
						AuthType: auth, AuthPass: c.gvs.pass, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}})
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
			wait := func(what string, cond func() bool, limit time.Duration) time.Duration {
				t.Helper()
				start := time.Now()
				for time.Since(start) < limit {
					if cond() {
						return time.Since(start)
					}
					time.Sleep(20 * time.Millisecond)
				}
				t.Fatalf("%s: not after %v (%s)", what, limit, counts())
				return 0
			}
			// Both sides start as backup; the first to be master is one
			// Master_Down_Interval (under 4 intervals) after it started.
			// Each bound below is what the protocol needs plus a 4 s margin.
			const margin = 4 * time.Second
			elect := 4*c.interval + c.interval + margin

			if c.guard {
				// keepalived becomes master and advertises; gvs cannot
				// accept those adverts, so it is master too: split brain,
				// which gvs must count and report.
				wait("gvs drops keepalived's adverts as "+c.drop.String(), func() bool { return sp.C.Dropped[c.drop].Load() > 0 }, elect)
				wait("gvs master too", func() bool { return State(state.Load()) == Master }, elect)
				// keepalived restarts its advert timer on each of gvs's
				// adverts it drops, so it falls silent: the mismatch stays
				// open regardless.
				time.Sleep(3 * c.interval)
				mismatched := func() []Mismatch {
					if l := sp.C.Mismatched.Load(); l != nil {
						return *l
					}
					return nil
				}
				if l := mismatched(); len(l) != 1 || l[0].Peer != netip.MustParseAddr("192.0.2.2") || l[0].Reason != c.drop {
					t.Errorf("open mismatches %+v, want one for %v from 192.0.2.2", l, c.drop)
				}
				mu.Lock()
				if len(reported) != 1 || reported[0].Peer != netip.MustParseAddr("192.0.2.2") || reported[0].Reason != c.drop ||
					reported[0].Version != Version(max(c.ka.version, 2)) {
					t.Errorf("reported %+v, want one %v mismatch from 192.0.2.2", reported, c.drop)
				}
				mu.Unlock()
				if sp.C.Received.Load() != 0 {
					t.Errorf("gvs accepted %d adverts from a keepalived configured differently", sp.C.Received.Load())
				}
				t.Logf("as expected: %s; keepalived has the VIP too: %v", counts(), kaHasVIP())
				// keepalived stops: its priority 0, in its version, closes
				// the mismatch.
				stopKA()
				wait("mismatch closed after keepalived stopped", func() bool { return len(mismatched()) == 0 }, c.interval+margin)
				return
			}

			if c.ka.prio > c.gvs.prio {
				wait("keepalived master, gvs backup", func() bool { return kaHasVIP() && State(state.Load()) == Backup }, elect)
				t0 := time.Now()
				stopKA() // SIGTERM: keepalived sends priority 0 and exits
				wait("gvs master after keepalived stopped", func() bool { return State(state.Load()) == Master }, c.interval+margin)
				t.Logf("gvs took over within %v of keepalived being told to stop (Skew_Time %v)", time.Since(t0).Round(time.Millisecond),
					sp.Machine().SkewTime())
			} else {
				wait("gvs master, keepalived backup", func() bool { return State(state.Load()) == Master && !kaHasVIP() }, elect)
				// keepalived must have accepted gvs's adverts: had it not,
				// it would be master one Master_Down_Interval (under 4
				// intervals) after it started. Wait past that.
				time.Sleep(time.Until(kaStart.Add(5 * c.interval)))
				if kaHasVIP() {
					t.Fatal("keepalived took the VIP while gvs, with the higher priority, was master")
				}
				t0 := time.Now()
				cancel() // gvs sends priority 0
				<-spDone
				spDone <- nil
				wait("keepalived master after gvs stopped", kaHasVIP, c.interval+margin)
				t.Logf("keepalived took over within %v of gvs being told to stop", time.Since(t0).Round(time.Millisecond))
			}
			if sp.C.Invalid.Load() != 0 {
				t.Errorf("gvs dropped keepalived's adverts: %s", counts())
			}
			// A keepalived backup sends nothing: only as master does it
			// advertise to gvs.
			if c.ka.prio > c.gvs.prio && sp.C.Received.Load() == 0 {
				t.Error("gvs received no advert from keepalived")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reported) != 0 {
				t.Errorf("mismatches reported: %+v", reported)
			}
		})
	}
}
