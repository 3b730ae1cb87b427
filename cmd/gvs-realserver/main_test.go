package main

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
)

// asMainEnv makes the test binary act as gvs-realserver, so the signal
// test runs the real main in a child process.
const asMainEnv = "GVS_REALSERVER_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-vip is required"},
		{[]string{"-mode", "dr"}, "-vip is required"},
		{[]string{"-vip", "10.0.0.1"}, "-mode is required"},
		{[]string{"-vip", "10.0.0.1", "-mode", "nat"}, `-mode: "nat": want dr or tun`},
		{[]string{"-vip", "10.0.0.1,bogus", "-mode", "dr"}, `-vip: "bogus" is not an IPv4 or IPv6 address`},
		{[]string{"-vip", "fe80::1%eth0", "-mode", "dr"}, "is not an IPv4 or IPv6 address"},
		{[]string{"-vip", "127.0.0.1", "-mode", "dr"}, "127.0.0.1 is not a unicast address"},
		{[]string{"-vip", "10.0.0.1", "-mode", "dr", "extra"}, `unexpected argument "extra"`},
		{[]string{"-vip", "10.0.0.1", "-mode", "dr", "-tunnel", "x"}, "flag provided but not defined: -tunnel"},
	} {
		var stderr bytes.Buffer
		if code := run(tc.args, io.Discard, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "usage: gvs-realserver") {
			t.Errorf("%q: stderr lacks %q and the usage:\n%s", tc.args, tc.want, stderr.String())
		}
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-h"}, io.Discard, &stderr); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "-mode") {
		t.Errorf("-h printed no flags:\n%s", stderr.String())
	}
}

func TestDoctorBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"doctor"}, "-vip is required"},
		{[]string{"doctor", "-vip", "10.20.0.100"}, "-mode is required"},
		{[]string{"doctor", "-vip", "10.20.0.100", "-mode", "nat"}, `-mode: "nat": want dr or tun`},
		{[]string{"doctor", "-vip", "10.20.0.100", "-mode", "dr", "-port", "http"}, `"http" is not a port`},
		{[]string{"doctor", "-vip", "10.20.0.100", "-mode", "dr", "-proto", "icmp"}, `-proto: "icmp": want tcp or udp`},
		{[]string{"doctor", "-vip", "10.20.0.100", "-mode", "dr", "now"}, `unexpected argument "now"`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "usage: gvs-realserver doctor -vip") {
			t.Errorf("%q: stderr lacks %q and the usage:\n%s", tc.args, tc.want, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q on a usage error", tc.args, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"doctor", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-json") {
		t.Errorf("doctor -h: exit %d:\n%s", code, stderr.String())
	}
}

// TestDoctorFails checks, read-only, the host running the test for a
// documentation VIP (RFC 5737) that no host has on lo: exit status 1, the
// report on stdout.
func TestDoctorFails(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("the doctor reads Linux interfaces, sysctls and /proc; this is %s", runtime.GOOS)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"doctor", "-vip", "192.0.2.201", "-mode", "tun"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	for _, w := range []string{
		"FAIL  vip on lo            192.0.2.201 is not on lo\n      fix: ip addr add 192.0.2.201/32 dev lo\n",
		"ipip decap           ",
	} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
		}
	}
}
