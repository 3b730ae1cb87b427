package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
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
