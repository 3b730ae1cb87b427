package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/arpctl"
	"github.com/gvs-lb/gvs/internal/netnstest"
	"github.com/vishvananda/netlink"
)

// TestDoctorFixesTUN runs `gvs-realserver doctor -mode tun` in the real
// server namespace of a fresh pair: it must fail on the VIP, the sysctls
// and the missing decapsulator, and pass after the test has run every fix
// it printed: ip(8) and sysctl(8) commands, and gvs-realserver itself,
// started as a process named gvs-realserver that the doctor must find in
// /proc.
func TestDoctorFixesTUN(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tool := range []string{"ip", "sysctl", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s(8) to run the fixes the doctor prints: %v", tool, err)
		}
	}
	const vip = "10.207.0.100"
	dir, rs := netnstest.New(t), netnstest.New(t)
	nameB := netnstest.Name(t, "gvsrs", "t")
	_, ifB := netnstest.VethPair(t, dir, rs, netnstest.Name(t, "gvsrs", "s"), "10.207.0.1/24", nameB, "10.207.0.2/24")
	rs.Do(t, func() {
		if err := netlink.RouteAdd(&netlink.Route{Gw: []byte{10, 207, 0, 1}, LinkIndex: ifB.Index}); err != nil {
			t.Fatalf("default route: %v", err)
		}
		// A namespace's IPv4 sysctls start as copies of the host's: make
		// them wrong, with strict reverse-path filtering.
		for _, s := range arpctl.RealServerSysctls(nameB) {
			v := "0"
			if strings.HasSuffix(s.Key, "/all/rp_filter") {
				v = "1"
			}
			if err := os.WriteFile("/proc/sys/"+s.Key, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	doctor := func() (code int, out string) {
		var stdout, stderr bytes.Buffer
		rs.Do(t, func() { code = run([]string{"doctor", "-vip", vip, "-mode", "tun"}, &stdout, &stderr) })
		if stderr.Len() != 0 {
			t.Errorf("doctor wrote to stderr:\n%s", stderr.String())
		}
		return code, stdout.String()
	}

	code, out := doctor()
	if code != 1 {
		t.Errorf("first run: exit %d, want 1:\n%s", code, out)
	}
	for _, w := range []string{
		"FAIL  vip on lo            " + vip + " is not on lo\n      fix: ip addr add " + vip + "/32 dev lo\n",
		"FAIL  arp_ignore           net.ipv4.conf.all.arp_ignore is 0, want 1\n      fix: sysctl -w net.ipv4.conf.all.arp_ignore=1\n",
		"FAIL  arp_announce         net.ipv4.conf." + nameB + ".arp_announce is 0, want 2\n      fix: sysctl -w net.ipv4.conf." + nameB + ".arp_announce=2\n",
		"FAIL  rp_filter            net.ipv4.conf.all.rp_filter is 1, want 0 or 2: strict filtering drops decapsulated packets",
		"      fix: sysctl -w net.ipv4.conf.all.rp_filter=2\n",
		"FAIL  ipip decap           ",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("first run lacks %q:\n%s", w, out)
		}
	}

	var child *exec.Cmd
	var lines <-chan string
	rs.Do(t, func() {
		for _, l := range strings.Split(out, "\n") {
			fix, found := strings.CutPrefix(l, "      fix: ")
			if !found {
				continue
			}
			if args := strings.Fields(fix); args[0] == name {
				// Children fork from this thread, so they start inside rs.
				child, lines = startAsMain(t, args)
				continue
			}
			if b, err := exec.Command("sh", "-c", fix).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", fix, err, b)
			}
		}
	})
	if child != nil {
		waitForLine(t, child, lines, "realserver: ready")
	} else {
		t.Log("the fix was not to run gvs-realserver: this kernel has an ipip device")
	}

	code, out = doctor()
	if code != 0 || strings.Contains(out, "FAIL") || strings.Contains(out, "fix:") {
		t.Errorf("after the fixes: exit %d, want 0 and no failures:\n%s", code, out)
	}
	if child != nil && !strings.Contains(out, "ok    ipip decap           gvs-realserver (pid ") {
		t.Errorf("after the fixes, the doctor did not find gvs-realserver:\n%s", out)
	}

	if child != nil {
		if err := child.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for range lines {
		}
		if err := child.Wait(); err != nil {
			t.Errorf("gvs-realserver after SIGTERM: %v", err)
		}
	}
}

// startAsMain starts this test binary as the command args (args[0] becomes
// its argv[0], as /proc/<pid>/cmdline shows it) and returns the lines of
// its stderr. The child is killed when the test ends.
func startAsMain(t *testing.T, args []string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := &exec.Cmd{Path: os.Args[0], Args: args, Env: append(os.Environ(), asMainEnv+"=1")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stderr)
	}()
	return cmd, lines
}

func waitForLine(t *testing.T, cmd *exec.Cmd, lines <-chan string, substr string) {
	t.Helper()
	var log []string
	timeout := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s ended before logging %q:\n%s", cmd.Args[0], substr, strings.Join(log, "\n"))
			}
			log = append(log, l)
			if strings.Contains(l, substr) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within 5s:\n%s", substr, strings.Join(log, "\n"))
		}
	}
}
