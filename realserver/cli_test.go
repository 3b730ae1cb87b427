package realserver

import (
	"bytes"
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestDoctorBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-vip is required"},
		{[]string{"-vip", "10.20.0.100"}, "-mode is required"},
		{[]string{"-vip", "10.20.0.100", "-mode", "nat"}, `-mode: "nat": want dr or tun`},
		{[]string{"-vip", "10.20.0.100,x", "-mode", "dr"}, `-vip: "x" is not an IPv4 or IPv6 address`},
		{[]string{"-vip", "fe80::1", "-mode", "dr"}, "fe80::1 is not a unicast address"},
		{[]string{"-vip", "0.0.0.0", "-mode", "dr"}, "0.0.0.0 is not a unicast address"},
		{[]string{"-vip", "10.20.0.100,10.20.0.100", "-mode", "dr"}, "10.20.0.100: listed twice"},
		{[]string{"-vip", "10.20.0.100", "-mode", "dr", "-port", "0"}, `invalid value "0" for flag -port: "0" is not a port`},
		{[]string{"-vip", "10.20.0.100", "-mode", "dr", "-port", "80,http"}, `"http" is not a port`},
		{[]string{"-vip", "10.20.0.100", "-mode", "dr", "-port", "65536"}, `"65536" is not a port`},
		{[]string{"-vip", "10.20.0.100", "-mode", "dr", "-proto", "sctp"}, `-proto: "sctp": want tcp or udp`},
		{[]string{"-vip", "10.20.0.100", "-mode", "dr", "-interface", "eth0,"}, `interface "": not an interface name`},
		{[]string{"-vip", "10.20.0.100", "-mode", "dr", "-interface", "../../x"}, `interface "../../x": not an interface name`},
		{[]string{"-vip", "10.20.0.100", "-mode", "dr", "extra"}, `unexpected argument "extra"`},
		{[]string{"-vip", "10.20.0.100", "-mode", "dr", "-fix"}, "flag provided but not defined: -fix"},
	} {
		var stdout, stderr bytes.Buffer
		if code := Doctor("gvs-realserver doctor", tc.args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "usage: gvs-realserver doctor -vip") {
			t.Errorf("%q: stderr lacks %q and the usage:\n%s", tc.args, tc.want, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: printed to stdout on a usage error: %q", tc.args, stdout.String())
		}
	}
}

func TestDoctorHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Doctor("gvs-realserver doctor", []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
	for _, w := range []string{"-port", "-proto", "-json", "-interface", "Exit status"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("-h lacks %q:\n%s", w, stderr.String())
		}
	}
	// Main hands "doctor" over, so `gvsd realserver doctor` works too.
	stderr.Reset()
	if code := Main("gvsd realserver", []string{"doctor", "-h"}, &stderr); code != 0 {
		t.Errorf("Main doctor -h: exit %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "usage: gvsd realserver doctor -vip") {
		t.Errorf("Main doctor -h printed:\n%s", stderr.String())
	}
	stderr.Reset()
	if code := Main("gvs-realserver", []string{"-h"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "gvs-realserver doctor -vip") {
		t.Errorf("Main -h: exit %d, usage does not mention the doctor:\n%s", code, stderr.String())
	}
}

// TestDoctorThisHost runs the doctor, read-only, on the host running the
// test with a documentation VIP (RFC 5737) that no host has on lo: it must
// fail with exit status 1 and print the fix, in both output formats.
func TestDoctorThisHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("the doctor reads Linux interfaces, sysctls and /proc; this is %s", runtime.GOOS)
	}
	args := []string{"-vip", "192.0.2.200", "-mode", "dr", "-port", "9"}
	var stdout, stderr bytes.Buffer
	if code := Doctor("gvs-realserver doctor", args, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, w := range []string{
		"FAIL  vip on lo            192.0.2.200 is not on lo\n      fix: ip addr add 192.0.2.200/32 dev lo\n",
		"arp_ignore           net.ipv4.conf.all.arp_ignore is ",
		"listener             tcp 192.0.2.200:9: ",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	stdout.Reset()
	if code := Doctor("gvs-realserver doctor", append(args, "-json"), &stdout, &stderr); code != 1 {
		t.Errorf("-json: exit %d, want 1", code)
	}
	var got []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("-json printed no JSON array: %v\n%s", err, stdout.String())
	}
	if len(got) < 4 {
		t.Fatalf("-json: %d results:\n%s", len(got), stdout.String())
	}
	for _, r := range got {
		for _, k := range []string{"check", "ok", "detail", "fix"} {
			if _, found := r[k]; !found {
				t.Errorf("-json result %v lacks %q", r, k)
			}
		}
	}
	first := got[0]
	if first["check"] != "vip on lo" || first["ok"] != false || first["fix"] != "ip addr add 192.0.2.200/32 dev lo" {
		t.Errorf("-json first result = %v", first)
	}
}

func TestPortList(t *testing.T) {
	var p portList
	for _, s := range []string{"80", "443, 8080", "80"} {
		if err := p.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	if !slices.Equal(p, portList{80, 443, 8080}) || p.String() != "80,443,8080" {
		t.Errorf("ports = %v (%q)", []uint16(p), p.String())
	}
	for _, bad := range []string{"", "0", "-1", "65536", "80,", "http"} {
		var q portList
		if err := q.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted: %v", bad, q)
		}
	}
}

func TestMainBadDecap(t *testing.T) {
	var stderr bytes.Buffer
	if code := Main("gvs-realserver", []string{"-vip", "10.20.0.100", "-mode", "tun", "-decap", "kernel"}, &stderr); code != 2 {
		t.Errorf("-decap kernel: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), `decap "kernel": want auto, bpf or userspace`) {
		t.Errorf("-decap kernel: stderr lacks the reason:\n%s", stderr.String())
	}
	for _, d := range []Decap{DecapAuto, DecapBPF, DecapUserspace} {
		if got, err := ParseDecap(d.String()); err != nil || got != d {
			t.Errorf("ParseDecap(%q) = %v, %v", d.String(), got, err)
		}
	}
}
