// End-to-end tests of the gvs binaries on the DESIGN.md topology: the
// client behind a router, the director and two real servers on a LAN
// bridge, each in its own network namespace.
package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
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

// bins holds the binaries built once for all tests.
var bins struct {
	gvsd, realserver, gvsadm string
	err                      error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gvs-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.gvsd = filepath.Join(dir, "gvsd")
	bins.realserver = filepath.Join(dir, "gvs-realserver")
	bins.gvsadm = filepath.Join(dir, "gvsadm")
	for bin, pkg := range map[string]string{bins.gvsd: "../cmd/gvsd", bins.realserver: "../cmd/gvs-realserver", bins.gvsadm: "../cmd/gvsadm"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needLab skips without root or the tools the lab uses, and returns a new
// lab torn down at the end of the test.
func needLab(t *testing.T) *lab.Lab {
	t.Helper()
	return needLabWith(t, lab.Options{})
}

// needLabWith is needLab with more of the topology (o's Prefix and Logf
// are set here).
func needLabWith(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install iproute2 nftables)", tool)
		}
	}
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	var rnd [3]byte
	rand.Read(rnd[:])
	o.Prefix, o.Logf = fmt.Sprintf("gvsit%x", rnd), t.Logf
	// GVS_LAB_OFFLOADS=off runs a test in the extra case, every offload
	// off on every veth; by default the lab keeps the kernel's defaults.
	switch v := os.Getenv("GVS_LAB_OFFLOADS"); v {
	case "", "on":
	case "off":
		o.OffloadsOff = true
	default:
		t.Fatalf("GVS_LAB_OFFLOADS=%q: want on or off", v)
	}
	l, err := lab.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	return l
}

// TestForwardingModes runs every forwarding method with TCP and UDP
// traffic and checks what DESIGN.md and the issue ask: every byte echoed
// intact, connections spread over both reals as rr says, no packet at a
// real twice, no RST/ICMP from the director's kernel, NAT and FULLNAT
// replies through the director, the client's address at the reals (a
// local address in FULLNAT), and nothing left behind by a stopped gvsd.
// TUN runs twice: the reals decapsulate with gvs-realserver's default
// (eBPF in the kernel where it loads, as here) and in userspace alone.
func TestForwardingModes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  config.Forward
		extra []string // gvs-realserver flags
	}{
		{"dr", config.DR, nil}, {"tun", config.TUN, nil}, {"tun-userspace", config.TUN, []string{"-decap", "userspace"}},
		{"nat", config.NAT, nil}, {"fullnat", config.FullNAT, nil},
	} {
		mode := tc.mode
		t.Run(tc.name, func(t *testing.T) {
			res := runScenario(t, mode, scenario.Options{Realserver: tc.extra})
			// The counters gvsd logs at exit agree with what was sent.
			var c struct {
				Dataplane struct {
					NewConns uint64
					Verdicts map[string]uint64
					WorkerRx []uint64
				}
				Links []struct{ Packets, Drops, Truncated, TxErrors uint64 }
				Reals map[string]struct{ Conns, InPkts, OutPkts uint64 }
			}
			if err := json.Unmarshal(res.Counters, &c); err != nil {
				t.Fatalf("final counters %q: %v", res.Counters, err)
			}
			if c.Dataplane.NewConns != 8+16 {
				t.Errorf("new connections %d, want 24 (8 TCP + 16 UDP flows)", c.Dataplane.NewConns)
			}
			for _, v := range []string{"malformed", "no_conn", "no_real", "table_full", "tx_error"} {
				if n := c.Dataplane.Verdicts[v]; n != 0 {
					t.Errorf("verdict %s counted %d frames, want 0", v, n)
				}
			}
			// Fanout spread the flows over both workers, and steering kept
			// each connection's two directions on one (else replies would
			// have found no connection: no_conn above, or failed echoes).
			if len(c.Dataplane.WorkerRx) != 2 || c.Dataplane.WorkerRx[0] == 0 || c.Dataplane.WorkerRx[1] == 0 {
				t.Errorf("frames per worker %v: want both of 2 workers busy", c.Dataplane.WorkerRx)
			}
			if len(c.Links) != 2 {
				t.Errorf("stats of %d links, want 2", len(c.Links))
			}
			for i, l := range c.Links {
				if l.Packets == 0 || l.Drops != 0 || l.Truncated != 0 || l.TxErrors != 0 {
					t.Errorf("link of worker %d: %+v, want packets and no drops, truncation or TX errors", i, l)
				}
			}
			if len(c.Reals) != 4 {
				t.Errorf("counters for %d reals, want 4 (2 services x 2 reals)", len(c.Reals))
			}
			for name, r := range c.Reals {
				if r.Conns == 0 || r.InPkts == 0 {
					t.Errorf("%s: %d connections, %d packets in", name, r.Conns, r.InPkts)
				}
				replies := mode == config.NAT || mode == config.FullNAT
				if replies != (r.OutPkts > 0) {
					t.Errorf("%s: %d reply packets through the director in %s mode", name, r.OutPkts, mode)
				}
			}
		})
	}
}

// TestPathMTU narrows the router's route to the client to 1400 bytes while
// the client's MSS still allows 1460: the real servers' full-size replies
// make the router send ICMP fragmentation-needed to the VIP, and only if
// gvsd relays it to the right real server, translated for its forwarding
// method, does the real server lower its path MTU and the echo complete.
func TestPathMTU(t *testing.T) {
	for _, mode := range []config.Forward{config.DR, config.TUN, config.NAT, config.FullNAT} {
		t.Run(mode.String(), func(t *testing.T) {
			runScenario(t, mode, scenario.Options{ReplyPathMTU: 1400, Conns: 4, Datagrams: 2})
		})
	}
}

// runScenario runs one forwarding method on a new lab with the test's
// binaries, reports every failed check, and returns the result.
func runScenario(t *testing.T, mode config.Forward, o scenario.Options) *scenario.Result {
	t.Helper()
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o.Gvsd = []string{bins.gvsd}
	o.Realserver = append([]string{bins.realserver}, o.Realserver...) // o's: extra flags
	o.Dir = t.TempDir()
	o.Logf = t.Logf
	res, err := scenario.Run(ctx, l, mode, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	if !res.OK() {
		t.Logf("gvsd log:\n%s", res.Log)
	}
	return res
}

// TestReloadKeepsConnections changes the configuration under a live TCP
// connection: adding a service and re-weighting the reals must not break
// it, and a bad configuration is refused with its field path while
// traffic goes on.
func TestReloadKeepsConnections(t *testing.T) {
	l := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.SetRealGateway(l.Director.Addr); err != nil {
		t.Fatal(err)
	}
	for _, r := range l.Reals {
		e, err := r.StartEcho("tcp", netip.MustParseAddrPort("0.0.0.0:8080"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "gvs.toml")
	base := scenario.Config(l, config.NAT, "rr", 2)
	if err := os.WriteFile(cfgPath, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	gvsd, err := scenario.Start(ctx, l.Director, filepath.Join(dir, "gvsd.log"), []string{bins.gvsd, "-config", cfgPath, "-socket", filepath.Join(dir, "gvsd.sock"), "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := gvsd.Stop(); err != nil {
			t.Errorf("gvsd exit: %v", err)
		}
		if lo := scenario.Leftovers(context.Background(), l); len(lo) > 0 {
			t.Errorf("left behind: %v", lo)
		}
		if t.Failed() {
			t.Logf("gvsd log:\n%s", gvsd.Log())
		}
	}()
	if err := gvsd.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("gvsd: %v\n%s", err, gvsd.Log())
	}

	c, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(scenario.VIP, scenario.TCPPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip := func(step string) {
		t.Helper()
		msg := make([]byte, 3000)
		rand.Read(msg)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("%s: write: %v", step, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("%s: read: %v", step, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%s: echo differs", step)
		}
	}
	roundTrip("before reload")

	// SIGUSR1 logs the live counters: one connection, in the table.
	if err := gvsd.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := gvsd.WaitLog(ctx, `"msg":"counters"`, 5*time.Second); err != nil {
		t.Fatalf("SIGUSR1: %v", err)
	}
	if log := gvsd.Log(); !strings.Contains(log, `\"NewConns\":1,`) {
		t.Errorf("counters after one connection:\n%s", log)
	}

	// A good reload: one more service, new weights.
	changed := strings.ReplaceAll(base, "  address = \"10.20.0.12:8080\"\n", "  address = \"10.20.0.12:8080\"\n  weight = 3\n") +
		"[[service]]\nprotocol = \"tcp\"\naddress = \"10.20.0.100:81\"\nforward = \"nat\"\n  [[service.real]]\n  address = \"10.20.0.11:8080\"\n"
	if err := os.WriteFile(cfgPath, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := gvsd.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := gvsd.WaitLog(ctx, "configuration reloaded", 10*time.Second); err != nil {
		t.Fatalf("reload: %v", err)
	}
	roundTrip("after reload")
	// The new service works.
	c81, err := l.Client.DialTCP(ctx, netip.AddrPortFrom(scenario.VIP, 81))
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	c81.Close()

	// A bad reload is refused with the field path; traffic goes on.
	if err := os.WriteFile(cfgPath, []byte(changed+"[[service]]\naddress = \"10.20.0.100\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := gvsd.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := gvsd.WaitLog(ctx, "reload refused", 10*time.Second); err != nil {
		t.Fatalf("bad reload: %v", err)
	}
	if log := gvsd.Log(); !strings.Contains(log, "service[3].address") {
		t.Errorf("refusal does not name service[3].address:\n%s", log)
	}
	roundTrip("after refused reload")

	// The table is sized at start: a reload that resizes it is refused.
	if err := os.WriteFile(cfgPath, []byte(changed+"[limits]\nconnections = 12345\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := gvsd.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := gvsd.WaitLog(ctx, "limits.connections", 10*time.Second); err != nil {
		t.Fatalf("resizing reload: %v", err)
	}
	roundTrip("after refused resize")
	if gvsd.Exited() {
		t.Fatal("gvsd exited")
	}
}

// TestBadConfigRefused needs no root: gvsd exits non-zero and names every
// problem with its path, before touching the host.
func TestBadConfigRefused(t *testing.T) {
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	p := filepath.Join(t.TempDir(), "bad.toml")
	bad := "[director]\nworkers = -1\n[[service]]\naddress = \"10.20.0.100:80\"\nsheduler = \"rr\"\n  [[service.real]]\n  address = \"nope\"\n"
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bins.gvsd, "-config", p).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("gvsd with a bad config: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"director.interface", "director.workers", "service[0].sheduler", "service[0].real[0].address"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not name %s:\n%s", want, out)
		}
	}
	// -check accepts the shipped example.
	out, err = exec.Command(bins.gvsd, "-check", "-config", "../configs/gvs.toml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Errorf("gvsd -check configs/gvs.toml: %v\n%s", err, out)
	}
}

// TestDemo runs the newcomer's command, `gvsd demo`, as the README says,
// and checks it passes every mode and cleans up after itself.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces")
	}
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	var rnd [3]byte
	rand.Read(rnd[:])
	prefix := fmt.Sprintf("gvsdemo%x", rnd)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins.gvsd, "demo", "-prefix", prefix).CombinedOutput()
	if err != nil {
		t.Fatalf("gvsd demo: %v\n%s", err, out)
	}
	var want []string
	for _, fam := range []string{"IPv4", "IPv6"} {
		for _, m := range []string{"DR", "TUN", "NAT", "FULLNAT"} {
			want = append(want, "== "+m+", "+fam)
		}
	}
	for _, w := range append(want, "all 8 runs passed (4 modes, 2 families)", "lab torn down", "from fd00:10::2", "from fd00:20::2") {
		if !strings.Contains(string(out), w) {
			t.Errorf("demo output lacks %q:\n%s", w, out)
		}
	}
	if n := strings.Count(string(out), "PASS"); n != 8 {
		t.Errorf("%d runs passed, want 8:\n%s", n, out)
	}
	names, _ := os.ReadDir("/run/netns")
	for _, n := range names {
		if strings.HasPrefix(n.Name(), prefix) {
			t.Errorf("namespace %s left behind", n.Name())
		}
	}
}
