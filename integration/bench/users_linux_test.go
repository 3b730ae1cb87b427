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
	rep := runUsersSmoke(t, "kernel-dnat")
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

// TestUsersSmokeIPv6 runs the IPv6 twins kernel-dnat6 (nftables ip6 DNAT)
// and gvs-dr6 (gvsd's IPv6 DR service, gvs-realserver with the IPv6 VIP)
// for a second each on a lab with IPv6 (about 15 s in all, with gvsd and
// gvs-realserver built), and checks that every row got a figure, that
// gvsd forwarded, that gvs-dr6 is set against kernel-dnat6, and that
// nothing is left behind.
func TestUsersSmokeIPv6(t *testing.T) {
	rep := runUsersSmoke(t, "kernel-dnat6,gvs-dr6")
	if len(rep.Configs) != 2 || rep.Configs[0].Name != "kernel-dnat6" || rep.Configs[1].Name != "gvs-dr6" {
		t.Fatalf("configs %+v", rep.Configs)
	}
	for _, c := range rep.Configs {
		if !c.IPv6 || c.Error != "" || c.Probe != "" || c.Skipped != "" {
			t.Errorf("%s: ipv6 %v, error %q, probe %q, skipped %q", c.Name, c.IPv6, c.Error, c.Probe, c.Skipped)
		}
		for name, f := range map[string]Figure{"p50": c.LatencyP50, "p99": c.LatencyP99, "keep-alive": c.KeepAliveRPS, "conn/s": c.ConnPerS, "Gbit/s": c.BulkGbps} {
			if f.Value == nil || *f.Value <= 0 {
				t.Errorf("%s %s: %+v, want a figure", c.Name, name, f)
			}
		}
	}
	var counters struct {
		Dataplane struct{ Verdicts map[string]uint64 }
	}
	if err := json.Unmarshal(rep.Configs[1].Gvsd, &counters); err != nil || counters.Dataplane.Verdicts["forward"] == 0 {
		t.Errorf("gvs-dr6: gvsd's counters %s (%v), want frames forwarded", rep.Configs[1].Gvsd, err)
	}
	if len(rep.Comparisons) != 1 || rep.Comparisons[0].Config != "gvs-dr6" || rep.Comparisons[0].Baseline != "kernel-dnat6" || rep.Comparisons[0].ConnRatio == nil {
		t.Errorf("comparisons %+v, want gvs-dr6 / kernel-dnat6", rep.Comparisons)
	}
	if len(rep.IPv6VsIPv4) != 0 {
		t.Errorf("IPv6 / IPv4 without an IPv4 configuration: %+v", rep.IPv6VsIPv4)
	}
}

// runUsersSmoke runs the users suite on configs for a second each, with
// -json, checks that it exits 0 and leaves no namespace behind, and
// returns its report. It skips without root or a tool the suite needs.
func runUsersSmoke(t *testing.T, configs string) UsersReport {
	t.Helper()
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
	args := []string{"-suite", "users", "-configs", configs, "-duration", "1s", "-pps=false", "-json", "-prefix", prefix}
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
	return rep
}
