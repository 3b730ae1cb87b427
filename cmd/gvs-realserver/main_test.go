package main

import (
	"bytes"
	"os"
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
		{[]string{"-vip", "10.0.0.1,bogus", "-mode", "dr"}, `-vip: "bogus" is not an IPv4 address`},
		{[]string{"-vip", "2001:db8::1", "-mode", "dr"}, "is not an IPv4 address"},
		{[]string{"-vip", "127.0.0.1", "-mode", "dr"}, "127.0.0.1 is not a unicast address"},
		{[]string{"-vip", "10.0.0.1", "-mode", "dr", "extra"}, `unexpected argument "extra"`},
		{[]string{"-vip", "10.0.0.1", "-mode", "dr", "-tunnel", "x"}, "flag provided but not defined: -tunnel"},
	} {
		var stderr bytes.Buffer
		if code := run(tc.args, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "usage: gvs-realserver") {
			t.Errorf("%q: stderr lacks %q and the usage:\n%s", tc.args, tc.want, stderr.String())
		}
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"-h"}, &stderr); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "-mode") {
		t.Errorf("-h printed no flags:\n%s", stderr.String())
	}
}
