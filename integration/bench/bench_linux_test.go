package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// requireBench skips unless the end-to-end bench can run here.
func requireBench(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces")
	}
	if cpus, err := readCPUTimes(); err != nil || len(cpus) < 2 {
		t.Skipf("needs CPUs %d and %d (%v)", genCPU, directorCPU, err)
	}
	for _, tool := range append([]string{"go", "ip", "nft", "bridge", "ethtool", "taskset", "timeout"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

// buildGvsdForTest builds cmd/gvsd once per test binary run.
func buildGvsdForTest(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gvsd")
	start := time.Now()
	if err := buildGvsd(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	t.Logf("built gvsd in %v", time.Since(start))
	return path
}

// runBench runs the command with -json and returns the parsed report,
// checking that the lab is gone afterwards.
func runBench(t *testing.T, args ...string) *Report {
	t.Helper()
	prefix := fmt.Sprintf("gvsbt%06d", rand.IntN(1000000))
	args = append([]string{"-json", "-prefix", prefix}, args...)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(args, &stdout, &stderr)
	t.Logf("bench %s: exit %d in %v\n%s", strings.Join(args, " "), code, time.Since(start), stderr.String())
	for _, part := range []string{"client", "router", "lan", "director", "rs1", "rs2", "gen"} {
		if h, err := netns.GetFromName(prefix + "-" + part); err == nil {
			h.Close()
			t.Errorf("namespace %s-%s left behind", prefix, part)
		}
	}
	if code != 0 {
		t.Fatalf("bench exited %d", code)
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, stdout.String())
	}
	return &rep
}

// checkConfig asserts that a configuration forwarded traffic to every
// real server.
func checkConfig(t *testing.T, c ConfigResult, runs int) {
	t.Helper()
	if len(c.Runs) != runs {
		t.Errorf("%s: %d runs, want %d", c.Name, len(c.Runs), runs)
	}
	m := c.Median
	if m.GeneratorPPS <= 0 || m.DirectorRxPPS <= 0 || m.DirectorTxPPS <= 0 || m.ForwardedPPS <= 0 {
		t.Errorf("%s: generator %v, director rx %v, director tx %v, forwarded %v pps: want all > 0", c.Name, m.GeneratorPPS, m.DirectorRxPPS, m.DirectorTxPPS, m.ForwardedPPS)
	}
	if len(m.RealPPS) != numReals {
		t.Errorf("%s: %d real servers measured, want %d", c.Name, len(m.RealPPS), numReals)
	}
	for i, r := range m.RealPPS {
		if r <= 0 {
			t.Errorf("%s: rs%d received nothing", c.Name, i+1)
		}
	}
	// Nothing is forwarded that was not sent (a little slack: the
	// counters are read one after another).
	if m.ForwardedPPS > 1.05*m.GeneratorPPS {
		t.Errorf("%s: forwarded %v pps more than the generator's %v", c.Name, m.ForwardedPPS, m.GeneratorPPS)
	}
	if m.DirectorCPU.CPU != directorCPU || m.DirectorCPU.Busy <= 0 {
		t.Errorf("%s: director CPU use %+v", c.Name, m.DirectorCPU)
	}
}

// TestBench runs every configuration for a second with trafgen and checks
// the report, so the command cannot rot.
func TestBench(t *testing.T) {
	requireBench(t, "trafgen")
	gvsd := buildGvsdForTest(t)
	rep := runBench(t, "-gvsd", gvsd, "-duration", "1s", "-warmup", "300ms", "-runs", "1")
	if rep.Generator != genTrafgen {
		t.Errorf("generator %q, want trafgen", rep.Generator)
	}
	var names []string
	for _, c := range rep.Configs {
		names = append(names, c.Name)
		checkConfig(t, c, 1)
		if strings.HasPrefix(c.Name, "gvsd") {
			var counters struct {
				Dataplane struct{ RxFrames, TxFrames uint64 }
			}
			if err := json.Unmarshal(c.Gvsd, &counters); err != nil || counters.Dataplane.TxFrames == 0 {
				t.Errorf("%s: gvsd counters %s (%v): want frames sent", c.Name, c.Gvsd, err)
			}
		}
	}
	if got := strings.Join(names, ","); got != "gvsd-dr,gvsd-nat,kernel-dnat" {
		t.Errorf("configurations %s", got)
	}
	if len(rep.Ratios) != 2 || rep.Ratios[0].Value <= 0 || rep.Ratios[1].Value <= 0 {
		t.Errorf("ratios %+v", rep.Ratios)
	}
}

// TestBenchGoGenerator runs the kernel baseline with the Go generator
// (this test binary, started as `gen`), the fallback without trafgen.
func TestBenchGoGenerator(t *testing.T) {
	requireBench(t)
	rep := runBench(t, "-generator", "go", "-configs", "kernel", "-duration", "1s", "-warmup", "300ms", "-runs", "2")
	if rep.Generator != genGo || len(rep.Configs) != 1 || rep.Configs[0].Name != "kernel-dnat" {
		t.Fatalf("report: generator %q, configs %+v", rep.Generator, rep.Configs)
	}
	checkConfig(t, rep.Configs[0], 2)
	if len(rep.Ratios) != 0 {
		t.Errorf("ratios without gvsd: %+v", rep.Ratios)
	}
}

// TestBenchZeroLoss runs the kernel baseline with a two-step zero-loss
// search, then unpinned, so neither flag can rot.
func TestBenchZeroLoss(t *testing.T) {
	requireBench(t, "trafgen")
	rep := runBench(t, "-configs", "kernel", "-duration", "1s", "-warmup", "300ms", "-runs", "1", "-zero-loss", "-zero-loss-steps", "2")
	if !rep.Pinned || rep.ZeroLoss == nil || rep.ZeroLoss.Steps != 2 || rep.ZeroLoss.QuantumUS != 100 || len(rep.Configs) != 1 {
		t.Fatalf("report: pinned %v, zero-loss %+v, %d configs", rep.Pinned, rep.ZeroLoss, len(rep.Configs))
	}
	c := rep.Configs[0]
	checkConfig(t, c, 1)
	zl := c.ZeroLoss
	if zl == nil {
		t.Fatal("no zero-loss result")
	}
	t.Logf("zero-loss: %s pps, found %v, note %q, steps %s", fmtPPS(zl.PPS), zl.Found, zl.Note, zl.stepsLine())
	searched := c.Median.LossPct > zeroLossMaxPct
	if searched != (len(zl.Steps) > 0) || searched && (len(zl.Steps) < 2 || len(zl.Steps) > 3) {
		t.Errorf("saturation loss %.2f%%: %d steps", c.Median.LossPct, len(zl.Steps))
	}
	for _, s := range zl.Steps {
		if s.AskedPPS < zl.LowPPS || s.AskedPPS > zl.HighPPS || s.Sample.GeneratorPPS <= 0 {
			t.Errorf("step %+v outside %v..%v or without frames", s, zl.LowPPS, zl.HighPPS)
		}
		// The paced generator sends about what it is asked, never far more.
		if s.Sample.GeneratorPPS > 1.05*s.AskedPPS || s.Sample.GeneratorPPS < 0.5*s.AskedPPS {
			t.Errorf("step asked %v pps, the generator sent %v", s.AskedPPS, s.Sample.GeneratorPPS)
		}
	}
	if zl.Found && (zl.PPS <= 0 || zl.LossPct > zeroLossMaxPct) {
		t.Errorf("found %+v", zl)
	}

	rep = runBench(t, "-configs", "kernel", "-duration", "1s", "-warmup", "300ms", "-runs", "1", "-pin=false")
	if rep.Pinned || rep.ZeroLoss != nil || len(rep.Configs) != 1 || !strings.Contains(strings.Join(rep.Placement, "\n"), "NOT PINNED") {
		t.Fatalf("unpinned report: pinned %v, zero-loss %+v, placement %q", rep.Pinned, rep.ZeroLoss, rep.Placement)
	}
	c = rep.Configs[0]
	// Unpinned, the scheduler may run the generator and the director's
	// receive path on one CPU and leave the other idle: the report must
	// give both CPUs' use, and the two together must show the work.
	if m := c.Median; m.GeneratorPPS <= 0 || m.ForwardedPPS <= 0 || m.GeneratorCPU.CPU == m.DirectorCPU.CPU || m.GeneratorCPU.Busy+m.DirectorCPU.Busy <= 0 {
		t.Errorf("unpinned: %+v", m)
	}
}

// TestUnpinGroup: a child that pinned itself (as trafgen's worker does)
// gets the bench's own affinity back.
func TestUnpinGroup(t *testing.T) {
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("needs taskset")
	}
	var own unix.CPUSet
	if err := unix.SchedGetaffinity(0, &own); err != nil || own.Count() < 2 {
		t.Skipf("needs 2 CPUs to unpin from one (%v)", err)
	}
	p, err := startLocal("pinned", filepath.Join(t.TempDir(), "log"), syscall.SIGKILL,
		[]string{"sh", "-c", "taskset -p -c 0 $$ >/dev/null && sh -c 'echo started; sleep 30'"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	if err := p.waitLog(t.Context(), "started", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Both shells run pinned to CPU 0 (the inner one inherited it).
	pinnedCount := func() int {
		n := 0
		for _, pid := range groupPIDs(t, p.cmd.Process.Pid) {
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(pid, &set); err == nil && set.Count() == 1 && set.IsSet(0) {
				n++
			}
		}
		return n
	}
	if n := pinnedCount(); n < 2 {
		t.Fatalf("%d processes pinned to CPU 0 before, want at least 2", n)
	}
	if err := unpinGroup(p.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if n := pinnedCount(); n != 0 {
		t.Errorf("%d processes still pinned to CPU 0", n)
	}
	if err := unpinGroup(1 << 30); err == nil {
		t.Error("unpinning a group that does not exist succeeded")
	}
}

// groupPIDs lists the processes of process group pgid.
func groupPIDs(t *testing.T, pgid int) []int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if g, err := processGroup(pid); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}
