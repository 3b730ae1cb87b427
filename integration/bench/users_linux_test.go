package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// TestUsersSmoke runs the users suite on one configuration for a second
// (kernel-dnat: a VIP, nftables and sysctls on the director, nginx and
// iperf3 -s on the reals; about 10 s in all), so the command cannot rot,
// and checks that every row got a figure and that nothing is left behind.
// The full suite is a benchmark, not a test.
func TestUsersSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces")
	}
	for _, tool := range []string{"ip", "nft", "bridge", "ethtool", "taskset", "timeout", "ss", "wrk", "nginx", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := toolPackages[tool]
			if pkg == "" {
				pkg = "iproute2, nftables, ethtool or coreutils"
			}
			t.Skipf("needs %s (apt-get install %s): %v", tool, pkg, err)
		}
	}
	prefix := fmt.Sprintf("gvsbu%06d", rand.IntN(1000000))
	args := []string{"-suite", "users", "-configs", "kernel-dnat", "-duration", "1s", "-pps=false", "-json", "-prefix", prefix}
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(args, &stdout, &stderr)
	t.Logf("bench %s: exit %d in %v\n%s", strings.Join(args, " "), code, time.Since(start), stderr.String())
	for _, part := range []string{"client", "router", "lan", "director", "rs1", "rs2"} {
		if h, err := netns.GetFromName(prefix + "-" + part); err == nil {
			h.Close()
			t.Errorf("namespace %s-%s left behind", prefix, part)
		}
	}
	if code != 0 {
		t.Fatalf("bench exited %d", code)
	}
	var rep UsersReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not a JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Configs) != 1 || rep.Configs[0].Name != "kernel-dnat" {
		t.Fatalf("configs %+v", rep.Configs)
	}
	c := rep.Configs[0]
	if c.Error != "" || c.Probe != "" || c.Skipped != "" {
		t.Errorf("kernel-dnat: error %q, probe %q, skipped %q", c.Error, c.Probe, c.Skipped)
	}
	for name, f := range map[string]Figure{"p50": c.LatencyP50, "p99": c.LatencyP99, "keep-alive": c.KeepAliveRPS, "conn/s": c.ConnPerS, "Gbit/s": c.BulkGbps} {
		if f.Value == nil || *f.Value <= 0 {
			t.Errorf("%s: %+v, want a figure", name, f)
		}
	}
	if c.UDPPPS.Value != nil {
		t.Errorf("row 5 measured with -pps=false: %+v", c.UDPPPS)
	}
	if c.Latency == nil || c.Latency.Requests == 0 || c.Conn == nil || c.Conn.Requests == 0 || c.Bulk == nil {
		t.Errorf("raw results missing: %+v", c)
	}
}
