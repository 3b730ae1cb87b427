package realserver

import (
	"bytes"
	"encoding/json"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/arpctl"
)

// fixesOf returns the commands of the "fix:" lines of the doctor's output,
// in order.
func fixesOf(out string) []string {
	var fixes []string
	for _, l := range strings.Split(out, "\n") {
		if f, found := strings.CutPrefix(l, "      fix: "); found {
			fixes = append(fixes, f)
		}
	}
	return fixes
}

// TestDoctorFixesDR runs the doctor in the real server namespace of a fresh
// lab: it must report the missing VIP and the wrong sysctls, change
// nothing, and pass once the test has run the fixes it printed with ip(8)
// and sysctl(8) and started a listener. That proves the printed commands
// are right.
func TestDoctorFixesDR(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"ip", "sysctl", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s(8) to run the fixes the doctor prints: %v", tool, err)
		}
	}
	l := newLab(t)
	vip := testVIP.String()
	args := []string{"-vip", vip, "-mode", "dr", "-port", "8080"}
	doctor := func(args ...string) (code int, stdout string) {
		var out, stderr bytes.Buffer
		l.b.Do(t, func() { code = Doctor("gvs-realserver doctor", args, &out, &stderr) })
		if stderr.Len() != 0 {
			t.Errorf("doctor %q wrote to stderr:\n%s", args, stderr.String())
		}
		return code, out.String()
	}

	// A namespace's IPv4 sysctls start as copies of the host's: set the
	// real-server ones wrong, and rp_filter strict, which DR only warns of.
	table := arpctl.RealServerSysctls(l.nameB)
	var before map[string]string
	l.b.Do(t, func() {
		for _, s := range table {
			v := "0"
			if strings.HasSuffix(s.Key, "/all/rp_filter") {
				v = "1"
			}
			writeSysctl(t, s.Key, v)
		}
		before = sysctls(t, table)
	})

	code, out := doctor(args...)
	if code != 1 {
		t.Errorf("first run: exit %d, want 1:\n%s", code, out)
	}
	b, c := "net.ipv4.conf."+l.nameB, "net.ipv4.conf.all"
	for _, w := range []string{
		"FAIL  vip on lo            " + vip + " is not on lo\n",
		"FAIL  arp_ignore           " + c + ".arp_ignore is 0, want 1\n",
		"FAIL  arp_ignore           " + b + ".arp_ignore is 0, want 1\n",
		"FAIL  arp_announce         " + c + ".arp_announce is 0, want 2\n",
		"FAIL  arp_announce         " + b + ".arp_announce is 0, want 2\n",
		"warn  rp_filter            " + c + ".rp_filter is 1, want 0 or 2: strict",
		"warn  rp_filter            " + b + ".rp_filter is 0, effective 1 (the larger of it and all), want 0 or 2: strict",
		"FAIL  listener             tcp " + vip + ":8080: nothing listens",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("first run lacks %q:\n%s", w, out)
		}
	}
	fixes := fixesOf(out)
	wantFixes := []string{
		"ip addr add " + vip + "/32 dev lo",
		"sysctl -w " + c + ".arp_ignore=1",
		"sysctl -w " + b + ".arp_ignore=1",
		"sysctl -w " + c + ".arp_announce=2",
		"sysctl -w " + b + ".arp_announce=2",
		"sysctl -w " + c + ".rp_filter=2",
		"sysctl -w " + c + ".rp_filter=2", // again, for b: all makes its effective value 1
		"start the service bound to " + vip + ":8080 or 0.0.0.0:8080",
	}
	if !slices.Equal(fixes, wantFixes) {
		t.Fatalf("fixes:\n%s\nwant:\n%s", strings.Join(fixes, "\n"), strings.Join(wantFixes, "\n"))
	}
	l.b.Do(t, func() {
		if after := sysctls(t, table); !maps.Equal(after, before) {
			t.Errorf("the doctor changed sysctls: %v, were %v", after, before)
		}
		if onLo(t, testVIP) {
			t.Error("the doctor added the VIP")
		}
	})

	// Run the printed commands (all but the last, a hint for a person) in
	// the namespace, then start the service.
	var ln net.Listener
	l.b.Do(t, func() {
		for _, f := range fixes[:len(fixes)-1] {
			cmd := exec.Command("sh", "-c", f) // forked from this thread: inside the namespace
			cmd.Env = append(os.Environ(), "LC_ALL=C")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", f, err, b)
			}
		}
		var err error
		if ln, err = net.Listen("tcp4", netip.AddrPortFrom(testVIP, 8080).String()); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()

	code, out = doctor(args...)
	if code != 0 || strings.Contains(out, "FAIL") || strings.Contains(out, "warn") || strings.Contains(out, "fix:") {
		t.Errorf("after the fixes: exit %d, want 0 and all ok:\n%s", code, out)
	}
	if !strings.Contains(out, "ok    listener             tcp "+vip+":8080: listening on "+vip+":8080\n") {
		t.Errorf("after the fixes, the listener is not found:\n%s", out)
	}

	code, out = doctor(append(args, "-json")...)
	var got []Finding
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("-json: exit %d, %v:\n%s", code, err, out)
	}
	for _, f := range got {
		if !f.OK || f.Warn || f.Fix != "" {
			t.Errorf("-json after the fixes: %+v", f)
		}
	}
}

// TestReadProcNetLive checks the parser against the kernel: sockets this
// test opens must show up in its thread's tables, in any byte order.
func TestReadProcNetLive(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, tc := range []struct {
		proto string
		addr  netip.AddrPort
	}{
		{"tcp", ln.Addr().(*net.TCPAddr).AddrPort()},
		{"udp", pc.LocalAddr().(*net.UDPAddr).AddrPort()},
	} {
		socks, err := readProcNet(procNetDir, tc.proto)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range socks {
			found = found || (s.Local == tc.addr && s.listening(tc.proto))
		}
		if !found {
			t.Errorf("%s %s not among the %d listening sockets of %s", tc.proto, tc.addr, len(socks), procNetDir)
		}
	}
}

// TestDoctorFixesDRIPv6 is TestDoctorFixesDR for an IPv6 VIP: the doctor
// reports the VIP missing from lo, a proxy neighbour entry that would
// answer solicitations for it on the LAN, and no listener; it checks no
// IPv4 sysctl (an IPv6 VIP needs none); the printed fixes, run with
// ip(8), and a listener on [VIP]:port make every check pass.
func TestDoctorFixesDRIPv6(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"ip", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s(8) to run the fixes the doctor prints: %v", tool, err)
		}
	}
	l := newLab(t)
	vip := testVIP6.String()
	args := []string{"-vip", vip, "-mode", "dr", "-port", "8080"}
	doctor := func(args ...string) (code int, stdout string) {
		var out, stderr bytes.Buffer
		l.b.Do(t, func() { code = Doctor("gvs-realserver doctor", args, &out, &stderr) })
		if stderr.Len() != 0 {
			t.Errorf("doctor %q wrote to stderr:\n%s", args, stderr.String())
		}
		return code, out.String()
	}
	l.b.Do(t, func() {
		for _, c := range [][]string{
			{"ip", "-6", "addr", "add", testRIP6.String() + "/64", "dev", l.nameB, "nodad"},
			{"ip", "-6", "neigh", "add", "proxy", vip, "dev", l.nameB},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v: %s", c, err, out)
			}
		}
	})

	code, out := doctor(args...)
	if code != 1 {
		t.Errorf("first run: exit %d, want 1:\n%s", code, out)
	}
	for _, w := range []string{
		"FAIL  vip on lo            " + vip + " is not on lo\n",
		"FAIL  nd proxy             a proxy neighbour entry for " + vip + " on " + l.nameB,
		"FAIL  listener             tcp [" + vip + "]:8080: nothing listens",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("first run lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "arp_") || strings.Contains(out, "rp_filter") {
		t.Errorf("IPv4 sysctls checked for an IPv6 VIP:\n%s", out)
	}
	fixes := fixesOf(out)
	wantFixes := []string{
		"ip -6 addr add " + vip + "/128 dev lo nodad preferred_lft 0",
		"ip -6 neigh del proxy " + vip + " dev " + l.nameB,
		"start the service bound to [" + vip + "]:8080 or [::]:8080",
	}
	if !slices.Equal(fixes, wantFixes) {
		t.Fatalf("fixes:\n%s\nwant:\n%s", strings.Join(fixes, "\n"), strings.Join(wantFixes, "\n"))
	}
	var ln net.Listener
	l.b.Do(t, func() {
		for _, f := range fixes[:len(fixes)-1] {
			if b, err := exec.Command("sh", "-c", f).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", f, err, b)
			}
		}
		var err error
		if ln, err = net.Listen("tcp6", netip.AddrPortFrom(testVIP6, 8080).String()); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()

	code, out = doctor(args...)
	if code != 0 || strings.Contains(out, "FAIL") || strings.Contains(out, "warn") || strings.Contains(out, "fix:") {
		t.Errorf("after the fixes: exit %d, want 0 and all ok:\n%s", code, out)
	}
	for _, w := range []string{
		"ok    vip on lo            " + vip + "/128 on lo\n",
		"ok    listener             tcp [" + vip + "]:8080: listening on [" + vip + "]:8080\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("after the fixes, the output lacks %q:\n%s", w, out)
		}
	}
}
