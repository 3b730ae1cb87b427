package realserver

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/arpctl"
)

var (
	docVIP  = netip.MustParseAddr("10.20.0.100")
	docVIP2 = netip.MustParseAddr("10.20.0.101")
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// Interfaces of a typical real server.
var (
	linkLo    = linkState{name: "lo", kind: "device", up: true, loopback: true, addrs: []netip.Prefix{pfx("127.0.0.1/8")}}
	linkEth0  = linkState{name: "eth0", kind: "device", up: true, addrs: []netip.Prefix{pfx("10.20.0.11/24")}}
	linkTunl0 = linkState{name: "tunl0", kind: "ipip", up: true, noARP: true}
)

func withAddrs(l linkState, addrs ...string) linkState {
	l.addrs = append([]netip.Prefix(nil), l.addrs...)
	for _, a := range addrs {
		l.addrs = append(l.addrs, pfx(a))
	}
	return l
}

func down(l linkState) linkState { l.up = false; return l }

// want is the part of a Finding a test checks.
type want struct {
	status string // "ok", "warn" or "FAIL"
	detail string // a substring of Detail
	fix    string // the whole Fix
}

func statusOf(f Finding) string {
	switch {
	case f.Warn:
		return "warn"
	case f.OK:
		return "ok"
	}
	return "FAIL"
}

func checkFindings(t *testing.T, name string, got []Finding, check string, wants ...want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Errorf("%s: %d findings, want %d:\n%s", name, len(got), len(wants), dump(got))
		return
	}
	for i, w := range wants {
		g := got[i]
		if g.Check != check || statusOf(g) != w.status || !strings.Contains(g.Detail, w.detail) || g.Fix != w.fix {
			t.Errorf("%s: finding %d = %s %q %q fix %q\nwant %s %q containing %q, fix %q",
				name, i, statusOf(g), g.Check, g.Detail, g.Fix, w.status, check, w.detail, w.fix)
		}
		if w.status == "ok" && g.Fix != "" {
			t.Errorf("%s: finding %d is ok but has fix %q", name, i, g.Fix)
		}
	}
}

func dump(fs []Finding) string {
	var b bytes.Buffer
	writeFindings(&b, fs)
	return b.String()
}

func TestCheckVIPOnLo(t *testing.T) {
	eth0VIP := withAddrs(linkEth0, "10.20.0.100/24")
	for _, tc := range []struct {
		name  string
		mode  Mode
		links []linkState
		wants []want
	}{
		{"good", DR, []linkState{withAddrs(linkLo, "10.20.0.100/32"), linkEth0}, []want{
			{"ok", "10.20.0.100/32 on lo", ""}}},
		{"missing", DR, []linkState{linkLo, linkEth0}, []want{
			{"FAIL", "10.20.0.100 is not on lo", "ip addr add 10.20.0.100/32 dev lo"}}},
		{"other VIP only", TUN, []linkState{withAddrs(linkLo, "10.20.0.101/32"), linkEth0}, []want{
			{"FAIL", "10.20.0.100 is not on lo", "ip addr add 10.20.0.100/32 dev lo"}}},
		{"wide prefix on lo", DR, []linkState{withAddrs(linkLo, "10.20.0.100/24"), linkEth0}, []want{
			{"FAIL", "10.20.0.100/24 on lo: want /32, or all of 10.20.0.0/24 is local", "ip addr del 10.20.0.100/24 dev lo && ip addr add 10.20.0.100/32 dev lo"}}},
		{"lo down", DR, []linkState{down(withAddrs(linkLo, "10.20.0.100/32")), linkEth0}, []want{
			{"FAIL", "10.20.0.100/32 on lo, but lo is down", "ip link set dev lo up"}}},
		{"DR: on the LAN too", DR, []linkState{withAddrs(linkLo, "10.20.0.100/32"), eth0VIP}, []want{
			{"ok", "10.20.0.100/32 on lo", ""},
			{"FAIL", "10.20.0.100/24 also on eth0: this host answers ARP", "ip addr del 10.20.0.100/24 dev eth0"}}},
		{"DR: on the LAN only", DR, []linkState{linkLo, eth0VIP}, []want{
			{"FAIL", "10.20.0.100 is not on lo", "ip addr add 10.20.0.100/32 dev lo"},
			{"FAIL", "also on eth0", "ip addr del 10.20.0.100/24 dev eth0"}}},
		{"TUN: on the LAN too", TUN, []linkState{withAddrs(linkLo, "10.20.0.100/32"), eth0VIP}, []want{
			{"ok", "on lo", ""},
			{"warn", "10.20.0.100/24 also on eth0", "ip addr del 10.20.0.100/24 dev eth0"}}},
		{"TUN: on tunl0, classic LVS-TUN", TUN, []linkState{linkLo, linkEth0, withAddrs(linkTunl0, "10.20.0.100/32")}, []want{
			{"ok", "10.20.0.100/32 on tunl0 (ipip, NOARP", ""}}},
		{"on a dummy device", DR, []linkState{linkLo, linkEth0, {name: "dummy0", kind: "dummy", up: true, noARP: true, addrs: []netip.Prefix{pfx("10.20.0.100/32")}}}, []want{
			{"ok", "10.20.0.100/32 on dummy0 (dummy, NOARP", ""}}},
		{"on tunl0, down", TUN, []linkState{linkLo, linkEth0, down(withAddrs(linkTunl0, "10.20.0.100/32"))}, []want{
			{"FAIL", "on tunl0, but tunl0 is down", "ip link set dev tunl0 up"}}},
	} {
		checkFindings(t, tc.name, checkVIPOnLo(tc.mode, docVIP, tc.links), nameVIP, tc.wants...)
	}
}

// fakeSysctls reads keys from a map, as arpctl.ReadSysctl reads /proc/sys.
func fakeSysctls(m map[string]string) func(string) (string, error) {
	return func(key string) (string, error) {
		v, found := m[key]
		if !found {
			return "", fmt.Errorf("arpctl: read sysctl %s: %w", arpctl.SysctlName(key), fs.ErrNotExist)
		}
		return v, nil
	}
}

// sysctlsOf builds a fake from "dev.name=value" pairs.
func sysctlsOf(pairs ...string) func(string) (string, error) {
	m := map[string]string{}
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		i := strings.LastIndexByte(k, '.')
		dev, name := k[:i], k[i+1:]
		m[confKey(dev, name)] = v
	}
	return fakeSysctls(m)
}

func TestCheckARP(t *testing.T) {
	good := []string{"all.arp_ignore=1", "all.arp_announce=2", "eth0.arp_ignore=1", "eth0.arp_announce=2"}
	for _, tc := range []struct {
		name   string
		egress []string
		read   func(string) (string, error)
		ignore []want // arp_ignore findings: all, then each egress interface
		annc   []want // arp_announce findings
	}{
		{"good", []string{"eth0"}, sysctlsOf(good...),
			[]want{{"ok", "net.ipv4.conf.all.arp_ignore is 1", ""}, {"ok", "net.ipv4.conf.eth0.arp_ignore is 1", ""}},
			[]want{{"ok", "net.ipv4.conf.all.arp_announce is 2", ""}, {"ok", "net.ipv4.conf.eth0.arp_announce is 2", ""}}},
		{"fresh host", []string{"eth0"}, sysctlsOf("all.arp_ignore=0", "all.arp_announce=0", "eth0.arp_ignore=0", "eth0.arp_announce=0"),
			[]want{
				{"FAIL", "net.ipv4.conf.all.arp_ignore is 0, want 1", "sysctl -w net.ipv4.conf.all.arp_ignore=1"},
				{"FAIL", "net.ipv4.conf.eth0.arp_ignore is 0, want 1", "sysctl -w net.ipv4.conf.eth0.arp_ignore=1"}},
			[]want{
				{"FAIL", "net.ipv4.conf.all.arp_announce is 0, want 2", "sysctl -w net.ipv4.conf.all.arp_announce=2"},
				{"FAIL", "net.ipv4.conf.eth0.arp_announce is 0, want 2", "sysctl -w net.ipv4.conf.eth0.arp_announce=2"}}},
		{"all only, as LVS how-tos set it", []string{"eth0"}, sysctlsOf("all.arp_ignore=1", "all.arp_announce=2", "eth0.arp_ignore=0", "eth0.arp_announce=0"),
			[]want{{"ok", "all.arp_ignore is 1", ""}, {"ok", "net.ipv4.conf.eth0.arp_ignore is 0, effective 1 (the larger of it and all)", ""}},
			[]want{{"ok", "all.arp_announce is 2", ""}, {"ok", "net.ipv4.conf.eth0.arp_announce is 0, effective 2", ""}}},
		{"interface only", []string{"eth0"}, sysctlsOf("all.arp_ignore=0", "all.arp_announce=0", "eth0.arp_ignore=1", "eth0.arp_announce=2"),
			[]want{{"FAIL", "all.arp_ignore is 0, want 1", "sysctl -w net.ipv4.conf.all.arp_ignore=1"}, {"ok", "eth0.arp_ignore is 1", ""}},
			[]want{{"FAIL", "all.arp_announce is 0, want 2", "sysctl -w net.ipv4.conf.all.arp_announce=2"}, {"ok", "eth0.arp_announce is 2", ""}}},
		{"interface too strict", []string{"eth0"}, sysctlsOf("all.arp_ignore=1", "all.arp_announce=2", "eth0.arp_ignore=8", "eth0.arp_announce=2"),
			[]want{{"ok", "all.arp_ignore is 1", ""}, {"FAIL", "eth0.arp_ignore is 8, want 1", "sysctl -w net.ipv4.conf.eth0.arp_ignore=1"}},
			[]want{{"ok", "", ""}, {"ok", "", ""}}},
		{"all too strict", []string{"eth0"}, sysctlsOf("all.arp_ignore=2", "all.arp_announce=2", "eth0.arp_ignore=1", "eth0.arp_announce=2"),
			[]want{
				{"FAIL", "all.arp_ignore is 2, want 1", "sysctl -w net.ipv4.conf.all.arp_ignore=1"},
				{"FAIL", "eth0.arp_ignore is 1, effective 2 (the larger of it and all), want 1", "sysctl -w net.ipv4.conf.all.arp_ignore=1"}},
			[]want{{"ok", "", ""}, {"ok", "", ""}}},
		{"VLAN interface", []string{"eth0.100"}, sysctlsOf("all.arp_ignore=1", "all.arp_announce=2", "eth0.100.arp_ignore=0", "eth0.100.arp_announce=1"),
			[]want{{"ok", "", ""}, {"ok", "net.ipv4.conf.eth0/100.arp_ignore is 0, effective 1", ""}},
			[]want{{"ok", "", ""}, {"ok", "net.ipv4.conf.eth0/100.arp_announce is 1, effective 2", ""}}},
		{"no egress interface", nil, sysctlsOf(good...),
			[]want{{"ok", "all.arp_ignore is 1", ""}},
			[]want{{"ok", "all.arp_announce is 2", ""}}},
		{"two interfaces, one unreadable", []string{"eth0", "eth1"}, sysctlsOf(good...),
			[]want{{"ok", "", ""}, {"ok", "", ""}, {"FAIL", "read sysctl net.ipv4.conf.eth1.arp_ignore: file does not exist", ""}},
			[]want{{"ok", "", ""}, {"ok", "", ""}, {"FAIL", "read sysctl net.ipv4.conf.eth1.arp_announce: file does not exist", ""}}},
		{"not a number", []string{"eth0"}, sysctlsOf("all.arp_ignore=x", "all.arp_announce=2", "eth0.arp_ignore=1", "eth0.arp_announce=2"),
			[]want{{"FAIL", `net.ipv4.conf.all.arp_ignore is "x", not a number`, ""}, {"FAIL", `all.arp_ignore is "x"`, ""}},
			[]want{{"ok", "", ""}, {"ok", "", ""}}},
	} {
		got := checkARP(tc.egress, tc.read)
		n := len(tc.ignore)
		if len(got) != n+len(tc.annc) {
			t.Errorf("%s: %d findings, want %d:\n%s", tc.name, len(got), n+len(tc.annc), dump(got))
			continue
		}
		checkFindings(t, tc.name, got[:n], nameARPIgnore, tc.ignore...)
		checkFindings(t, tc.name, got[n:], nameARPAnnounce, tc.annc...)
	}
}

func TestCheckRPFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   Mode
		ifaces []string
		read   func(string) (string, error)
		wants  []want
	}{
		{"TUN off", TUN, []string{"tunl0"}, sysctlsOf("all.rp_filter=0", "tunl0.rp_filter=0"), []want{
			{"ok", "net.ipv4.conf.all.rp_filter is 0", ""}, {"ok", "net.ipv4.conf.tunl0.rp_filter is 0", ""}}},
		{"TUN loose", TUN, []string{"tunl0"}, sysctlsOf("all.rp_filter=2", "tunl0.rp_filter=1"), []want{
			{"ok", "all.rp_filter is 2", ""}, {"ok", "tunl0.rp_filter is 1, effective 2", ""}}},
		{"TUN strict all", TUN, []string{"gvstun0"}, sysctlsOf("all.rp_filter=1", "gvstun0.rp_filter=0"), []want{
			{"FAIL", "net.ipv4.conf.all.rp_filter is 1, want 0 or 2: strict filtering drops decapsulated packets", "sysctl -w net.ipv4.conf.all.rp_filter=2"},
			{"FAIL", "gvstun0.rp_filter is 0, effective 1 (the larger of it and all), want 0 or 2", "sysctl -w net.ipv4.conf.all.rp_filter=2"}}},
		{"TUN strict tunnel", TUN, []string{"tunl0"}, sysctlsOf("all.rp_filter=0", "tunl0.rp_filter=1"), []want{
			{"ok", "all.rp_filter is 0", ""},
			{"FAIL", "net.ipv4.conf.tunl0.rp_filter is 1, want 0 or 2", "sysctl -w net.ipv4.conf.tunl0.rp_filter=2"}}},
		{"TUN no tunnel yet", TUN, nil, sysctlsOf("all.rp_filter=1"), []want{
			{"FAIL", "all.rp_filter is 1, want 0 or 2", "sysctl -w net.ipv4.conf.all.rp_filter=2"}}},
		{"DR strict is a warning", DR, []string{"eth0"}, sysctlsOf("all.rp_filter=1", "eth0.rp_filter=1"), []want{
			{"warn", "net.ipv4.conf.all.rp_filter is 1, want 0 or 2: strict filtering is fine for DR while", "sysctl -w net.ipv4.conf.all.rp_filter=2"},
			{"warn", "net.ipv4.conf.eth0.rp_filter is 1", "sysctl -w net.ipv4.conf.eth0.rp_filter=2"}}},
		{"DR off", DR, []string{"eth0"}, sysctlsOf("all.rp_filter=0", "eth0.rp_filter=2"), []want{
			{"ok", "all.rp_filter is 0", ""}, {"ok", "eth0.rp_filter is 2", ""}}},
		{"DR unreadable is a failure", DR, []string{"eth0"}, sysctlsOf("all.rp_filter=0"), []want{
			{"ok", "", ""}, {"FAIL", "read sysctl net.ipv4.conf.eth0.rp_filter", ""}}},
	} {
		checkFindings(t, tc.name, checkRPFilter(tc.mode, tc.ifaces, tc.read), nameRPFilter, tc.wants...)
	}
}

func rsProc(pid int, mode Mode, vips ...netip.Addr) rsProcess {
	return rsProcess{pid: pid, opts: Options{VIPs: vips, Mode: mode}}
}

func TestCheckDecap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		links []linkState
		procs []rsProcess
		want  want
	}{
		{"kernel tunl0 up", []linkState{linkLo, linkEth0, linkTunl0}, nil,
			want{"ok", "kernel ipip device tunl0 is up", ""}},
		{"gvs-realserver", []linkState{linkLo, linkEth0, {name: "gvstun0", kind: "tuntap", up: true, noARP: true}},
			[]rsProcess{rsProc(4242, TUN, docVIP2, docVIP)},
			want{"ok", "gvs-realserver (pid 4242) decapsulates for 10.20.0.100", ""}},
		{"both", []linkState{linkLo, linkEth0, linkTunl0}, []rsProcess{rsProc(4242, TUN, docVIP)},
			want{"FAIL", "kernel ipip tunl0 and gvs-realserver (pid 4242) both decapsulate: every packet arrives twice", "ip link set dev tunl0 down"}},
		{"gvs-realserver for other VIPs", []linkState{linkLo, linkEth0}, []rsProcess{rsProc(77, TUN, docVIP2)},
			want{"FAIL", "gvs-realserver (pid 77) decapsulates only for 10.20.0.101: stop it and run it with 10.20.0.100 as well", "gvs-realserver -vip 10.20.0.101,10.20.0.100 -mode tun"}},
		{"gvs-realserver in DR mode", []linkState{linkLo, linkEth0}, []rsProcess{rsProc(77, DR, docVIP)},
			want{"FAIL", "nothing decapsulates IPIP for 10.20.0.100", "gvs-realserver -vip 10.20.0.100 -mode tun"}},
		{"tunl0 down", []linkState{linkLo, linkEth0, down(linkTunl0)}, nil,
			want{"FAIL", "kernel ipip device tunl0 is down and no gvs-realserver -mode tun runs for 10.20.0.100", "ip link set dev tunl0 up"}},
		{"nothing", []linkState{linkLo, linkEth0}, nil,
			want{"FAIL", "nothing decapsulates IPIP for 10.20.0.100: no kernel ipip device and no gvs-realserver -mode tun", "gvs-realserver -vip 10.20.0.100 -mode tun"}},
	} {
		checkFindings(t, tc.name, []Finding{checkDecap(docVIP, tc.links, tc.procs)}, nameDecap, tc.want)
	}
}

func TestCheckListener(t *testing.T) {
	ap := netip.MustParseAddrPort
	listen := func(s string) procNetSocket { return procNetSocket{ap(s), ap("0.0.0.0:0"), stateListen} }
	listen6 := func(s string) procNetSocket { return procNetSocket{ap(s), ap("[::]:0"), stateListen} }
	udp := func(s string) procNetSocket { return procNetSocket{ap(s), ap("0.0.0.0:0"), stateClose} }
	conn := procNetSocket{ap("10.20.0.100:80"), ap("192.0.2.7:40000"), 0x01}
	const fix80 = "start the service bound to 10.20.0.100:80 or 0.0.0.0:80"
	for _, tc := range []struct {
		name  string
		proto string
		socks []procNetSocket
		want  want
	}{
		{"on the VIP", "tcp", []procNetSocket{conn, listen("10.20.0.100:80")}, want{"ok", "tcp 10.20.0.100:80: listening on 10.20.0.100:80", ""}},
		{"on 0.0.0.0", "tcp", []procNetSocket{listen("0.0.0.0:80")}, want{"ok", "listening on 0.0.0.0:80", ""}},
		{"v4-mapped", "tcp", []procNetSocket{listen6("[::ffff:10.20.0.100]:80")}, want{"ok", "listening on [::ffff:10.20.0.100]:80", ""}},
		{"udp on 0.0.0.0", "udp", []procNetSocket{udp("0.0.0.0:80")}, want{"ok", "udp 10.20.0.100:80: listening on 0.0.0.0:80", ""}},
		{"[::] only", "tcp", []procNetSocket{listen6("[::]:80")}, want{"warn", "only [::]:80 listens, which takes IPv4 unless it set IPV6_V6ONLY", fix80}},
		{"nothing", "tcp", nil, want{"FAIL", "tcp 10.20.0.100:80: nothing listens on it or on 0.0.0.0:80", fix80}},
		{"established only", "tcp", []procNetSocket{conn}, want{"FAIL", "nothing listens", fix80}},
		{"wrong port", "tcp", []procNetSocket{listen("0.0.0.0:8080")}, want{"FAIL", "nothing listens", fix80}},
		{"other address", "tcp", []procNetSocket{listen("127.0.0.1:80"), listen("10.20.0.11:80")},
			want{"FAIL", "nothing listens on it or on 0.0.0.0:80 (listening: 127.0.0.1:80, 10.20.0.11:80)", fix80}},
		{"udp wanted, tcp listens", "udp", []procNetSocket{listen("0.0.0.0:80")}, want{"FAIL", "udp 10.20.0.100:80: nothing listens", fix80}},
	} {
		checkFindings(t, tc.name, []Finding{checkListener(tc.proto, netip.AddrPortFrom(docVIP, 80), tc.socks)}, nameListener, tc.want)
	}
}

func TestParseRealServerCmdline(t *testing.T) {
	cl := func(args ...string) []byte { return []byte(strings.Join(args, "\x00") + "\x00") }
	for _, tc := range []struct {
		cmdline []byte
		isRS    bool
		mode    Mode
		vips    string
	}{
		{cl("/usr/local/bin/gvs-realserver", "-vip", "10.20.0.100", "-mode", "tun"), true, TUN, "10.20.0.100"},
		{cl("gvs-realserver", "--mode=tun", "--vip=10.20.0.101,10.20.0.100", "-interface", "eth1"), true, TUN, "10.20.0.101,10.20.0.100"},
		{cl("./gvs-realserver", "-vip", "10.20.0.100", "-mode", "dr"), true, DR, "10.20.0.100"},
		{cl("/usr/sbin/gvsd", "realserver", "-vip", "10.20.0.100", "-mode", "tun"), true, TUN, "10.20.0.100"},
		{cl("gvs-realserver", "doctor", "-vip", "10.20.0.100", "-mode", "tun"), false, 0, ""},
		{cl("gvsd", "realserver", "doctor", "-vip", "10.20.0.100", "-mode", "tun"), false, 0, ""},
		{cl("gvsd", "-config", "/etc/gvs/gvs.toml"), false, 0, ""},
		{cl("gvsd"), false, 0, ""},
		{cl("gvs-realserver", "-vip", "10.20.0.100"), false, 0, ""},                           // exits at once: no -mode
		{cl("gvs-realserver", "-vip", "10.20.0.100", "-mode", "tun", "-bogus"), false, 0, ""}, // exits at once
		{cl("vim", "gvs-realserver"), false, 0, ""},
		{cl("/usr/bin/gvs-realserver.sh", "-vip", "10.20.0.100", "-mode", "tun"), false, 0, ""},
		{nil, false, 0, ""}, // a zombie or kernel thread
	} {
		o, isRS := parseRealServerCmdline(tc.cmdline)
		if isRS != tc.isRS {
			t.Errorf("%q: is gvs-realserver = %v, want %v", tc.cmdline, isRS, tc.isRS)
			continue
		}
		if !isRS {
			continue
		}
		var vips []string
		for _, v := range o.VIPs {
			vips = append(vips, v.String())
		}
		if o.Mode != tc.mode || strings.Join(vips, ",") != tc.vips {
			t.Errorf("%q: mode %v VIPs %v, want %v %s", tc.cmdline, o.Mode, vips, tc.mode, tc.vips)
		}
	}
}

// fakeProc builds a /proc with, per pid, a cmdline and an ns/net link.
func fakeProc(t *testing.T, procs map[string][2]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(p[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if p[1] != "" {
			if err := os.Symlink(p[1], filepath.Join(dir, "ns", "net")); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestRealServerProcs(t *testing.T) {
	const ours, theirs = "net:[4026531840]", "net:[4026532999]"
	root := fakeProc(t, map[string][2]string{
		"1":     {"/sbin/init\x00", ours},
		"812":   {"gvs-realserver\x00-vip\x0010.20.0.100\x00-mode\x00tun\x00", ours},
		"95":    {"gvsd\x00realserver\x00-vip\x0010.20.0.101\x00-mode\x00dr\x00", ""}, // link unreadable: ours
		"3000":  {"gvs-realserver\x00-vip\x0010.20.0.100\x00-mode\x00tun\x00", theirs},
		"4000":  {"gvs-realserver\x00doctor\x00-vip\x0010.20.0.100\x00-mode\x00tun\x00", ours},
		"self":  {"gvs-realserver\x00-vip\x0010.20.0.100\x00-mode\x00tun\x00", ours},
		"10000": {"gvs-realserver\x00-vip\x0010.20.0.102\x00-mode\x00tun\x00", ours},
	})
	ps, err := realServerProcs(root, ours)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%d %s %v", p.pid, p.opts.Mode, p.opts.VIPs))
	}
	want := []string{"95 dr [10.20.0.101]", "812 tun [10.20.0.100]", "10000 tun [10.20.0.102]"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("got %q,\nwant %q", got, want)
	}
	ps, err = realServerProcs(root, "") // namespace unknown: every process counts
	if err != nil || len(ps) != 4 {
		t.Errorf("without a namespace: %d processes, %v; want 4", len(ps), err)
	}
	if _, err := realServerProcs(filepath.Join(root, "missing"), ours); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing /proc: %v", err)
	}
}

func TestLinkLists(t *testing.T) {
	links := []linkState{
		linkLo, linkEth0, linkTunl0,
		down(withAddrs(linkState{name: "eth1", kind: "device"}, "10.30.0.2/24")),
		{name: "eth2", kind: "device", up: true}, // no address
		{name: "gvstun0", kind: "tuntap", up: true, noARP: true},
		{name: "tunl1", kind: "ipip"}, // down
		{name: "dummy0", kind: "dummy", up: true, noARP: true, addrs: []netip.Prefix{pfx("10.20.0.100/32")}},
	}
	if got := strings.Join(lanLinks(links), ","); got != "eth0" {
		t.Errorf("lanLinks = %s, want eth0", got)
	}
	if got := strings.Join(tunnelLinks(links), ","); got != "tunl0,gvstun0" {
		t.Errorf("tunnelLinks = %s, want tunl0,gvstun0", got)
	}
}

func TestDoctorOptionsCheck(t *testing.T) {
	o := DoctorOptions{VIPs: []netip.Addr{docVIP}, Mode: DR}
	if err := o.check(); err != nil || o.Proto != "tcp" {
		t.Fatalf("check = %v, Proto %q", err, o.Proto)
	}
	bad := DoctorOptions{Proto: "sctp", Ports: []uint16{80, 0}, Interfaces: []string{"eth0", "", "../x", "a-name-longer-than-ifnamsiz"}}
	err := bad.check()
	if err == nil {
		t.Fatal("check accepted bad options")
	}
	for _, w := range []string{"no VIPs", "mode 0", `protocol "sctp"`, "port 0", `interface ""`, `interface "../x"`, `interface "a-name-longer-than-ifnamsiz"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

// TestDiagnose runs every check over a whole host: the order of the
// findings is the order of the output.
func TestDiagnose(t *testing.T) {
	ap := netip.MustParseAddrPort
	tunHost := hostState{
		links:  []linkState{withAddrs(linkLo, "10.20.0.100/32"), linkEth0, {name: "gvstun0", kind: "tuntap", up: true, noARP: true}},
		egress: []string{"eth0"},
		sysctl: sysctlsOf("all.arp_ignore=1", "all.arp_announce=2", "eth0.arp_ignore=1", "eth0.arp_announce=2",
			"all.rp_filter=0", "gvstun0.rp_filter=0", "eth0.rp_filter=1"),
		sockets: []procNetSocket{{ap("0.0.0.0:80"), ap("0.0.0.0:0"), stateListen}},
		procs:   []rsProcess{rsProc(812, TUN, docVIP)},
	}
	got := diagnose(DoctorOptions{VIPs: []netip.Addr{docVIP}, Mode: TUN, Proto: "tcp", Ports: []uint16{80}}, tunHost)
	wantText := `ok    vip on lo            10.20.0.100/32 on lo
ok    arp_ignore           net.ipv4.conf.all.arp_ignore is 1
ok    arp_ignore           net.ipv4.conf.eth0.arp_ignore is 1
ok    arp_announce         net.ipv4.conf.all.arp_announce is 2
ok    arp_announce         net.ipv4.conf.eth0.arp_announce is 2
ok    rp_filter            net.ipv4.conf.all.rp_filter is 0
ok    rp_filter            net.ipv4.conf.gvstun0.rp_filter is 0
ok    ipip decap           gvs-realserver (pid 812) decapsulates for 10.20.0.100
ok    listener             tcp 10.20.0.100:80: listening on 0.0.0.0:80
`
	if s := dump(got); s != wantText {
		t.Errorf("TUN host:\n%s\nwant:\n%s", s, wantText)
	}

	// The same host checked for DR: eth0's strict rp_filter is a warning,
	// the listener on port 443 is missing for both VIPs, and the second VIP
	// is not on lo.
	got = diagnose(DoctorOptions{VIPs: []netip.Addr{docVIP, docVIP2}, Mode: DR, Proto: "tcp", Ports: []uint16{443}}, tunHost)
	wantText = `ok    vip on lo            10.20.0.100/32 on lo
FAIL  vip on lo            10.20.0.101 is not on lo
      fix: ip addr add 10.20.0.101/32 dev lo
ok    arp_ignore           net.ipv4.conf.all.arp_ignore is 1
ok    arp_ignore           net.ipv4.conf.eth0.arp_ignore is 1
ok    arp_announce         net.ipv4.conf.all.arp_announce is 2
ok    arp_announce         net.ipv4.conf.eth0.arp_announce is 2
ok    rp_filter            net.ipv4.conf.all.rp_filter is 0
warn  rp_filter            net.ipv4.conf.eth0.rp_filter is 1, want 0 or 2: strict filtering is fine for DR while the route back to each client leaves by the interface its packets come in on
      fix: sysctl -w net.ipv4.conf.eth0.rp_filter=2
FAIL  listener             tcp 10.20.0.100:443: nothing listens on it or on 0.0.0.0:443
      fix: start the service bound to 10.20.0.100:443 or 0.0.0.0:443
FAIL  listener             tcp 10.20.0.101:443: nothing listens on it or on 0.0.0.0:443
      fix: start the service bound to 10.20.0.101:443 or 0.0.0.0:443
`
	if s := dump(got); s != wantText {
		t.Errorf("DR host:\n%s\nwant:\n%s", s, wantText)
	}
}

func TestWriteFindings(t *testing.T) {
	var b bytes.Buffer
	err := writeFindings(&b, []Finding{
		ok(nameVIP, "10.20.0.100/32 on lo"),
		fail(nameARPIgnore, "net.ipv4.conf.all.arp_ignore is 0, want 1", "sysctl -w net.ipv4.conf.all.arp_ignore=1"),
		warn(nameRPFilter, "net.ipv4.conf.all.rp_filter is 1", "sysctl -w net.ipv4.conf.all.rp_filter=2"),
	})
	want := `ok    vip on lo            10.20.0.100/32 on lo
FAIL  arp_ignore           net.ipv4.conf.all.arp_ignore is 0, want 1
      fix: sysctl -w net.ipv4.conf.all.arp_ignore=1
warn  rp_filter            net.ipv4.conf.all.rp_filter is 1
      fix: sysctl -w net.ipv4.conf.all.rp_filter=2
`
	if err != nil || b.String() != want {
		t.Errorf("got (%v)\n%s\nwant\n%s", err, b.String(), want)
	}
}

// TestDiagnoseIPv6: an IPv6 VIP must be a /128 on lo, on no LAN interface
// and behind no proxy neighbour entry; a listener on it or on [::] takes
// it (0.0.0.0 does not); the ARP and rp_filter sysctls are checked only
// beside an IPv4 VIP.
func TestDiagnoseIPv6(t *testing.T) {
	ap := netip.MustParseAddrPort
	vip6 := netip.MustParseAddr("fd00:20::100")
	listen := func(s string) procNetSocket { return procNetSocket{ap(s), ap("[::]:0"), stateListen} }
	for _, tc := range []struct {
		name  string
		links []linkState
		wants []want
	}{
		{"on lo", []linkState{withAddrs(linkLo, "fd00:20::100/128"), linkEth0}, []want{{"ok", "fd00:20::100/128 on lo", ""}}},
		{"missing", []linkState{linkLo, linkEth0}, []want{{"FAIL", "fd00:20::100 is not on lo", "ip -6 addr add fd00:20::100/128 dev lo nodad preferred_lft 0"}}},
		{"/64 on lo", []linkState{withAddrs(linkLo, "fd00:20::100/64"), linkEth0},
			[]want{{"FAIL", "want /128, or all of fd00:20::/64 is local", "ip -6 addr del fd00:20::100/64 dev lo && ip -6 addr add fd00:20::100/128 dev lo nodad preferred_lft 0"}}},
		{"also on eth0", []linkState{withAddrs(linkLo, "fd00:20::100/128"), withAddrs(linkEth0, "fd00:20::100/64")},
			[]want{{"ok", "on lo", ""}, {"FAIL", "also on eth0: this host answers neighbour solicitations for the VIP there", "ip -6 addr del fd00:20::100/64 dev eth0"}}},
	} {
		checkFindings(t, tc.name, checkVIPOnLo(DR, vip6, tc.links), nameVIP, tc.wants...)
	}
	checkFindings(t, "no proxy entry", []Finding{checkNDProxy(vip6, []ndProxy{{netip.MustParseAddr("fd00:20::99"), "eth0"}})}, nameNDProxy,
		want{"ok", "no proxy neighbour entry for fd00:20::100", ""})
	checkFindings(t, "proxy entry", []Finding{checkNDProxy(vip6, []ndProxy{{vip6, "eth0"}})}, nameNDProxy,
		want{"FAIL", "a proxy neighbour entry for fd00:20::100 on eth0", "ip -6 neigh del proxy fd00:20::100 dev eth0"})

	const fix = "start the service bound to [fd00:20::100]:80 or [::]:80"
	for _, tc := range []struct {
		name  string
		socks []procNetSocket
		want  want
	}{
		{"on the VIP", []procNetSocket{listen("[fd00:20::100]:80")}, want{"ok", "tcp [fd00:20::100]:80: listening on [fd00:20::100]:80", ""}},
		{"on [::]", []procNetSocket{listen("[::]:80")}, want{"ok", "listening on [::]:80", ""}},
		{"on 0.0.0.0 only", []procNetSocket{{ap("0.0.0.0:80"), ap("0.0.0.0:0"), stateListen}},
			want{"FAIL", "nothing listens on it or on [::]:80 (listening: 0.0.0.0:80)", fix}},
	} {
		checkFindings(t, tc.name, []Finding{checkListener("tcp", netip.AddrPortFrom(vip6, 80), tc.socks)}, nameListener, tc.want)
	}

	h := hostState{
		links:   []linkState{withAddrs(linkLo, "10.20.0.100/32", "fd00:20::100/128"), withAddrs(linkEth0, "fd00:20::11/64")},
		egress:  []string{"eth0"},
		sysctl:  sysctlsOf("all.arp_ignore=1", "all.arp_announce=2", "eth0.arp_ignore=1", "eth0.arp_announce=2", "all.rp_filter=0", "eth0.rp_filter=0"),
		sockets: []procNetSocket{listen("[::]:80")},
	}
	got := dump(diagnose(DoctorOptions{VIPs: []netip.Addr{vip6}, Mode: DR, Proto: "tcp", Ports: []uint16{80}}, h))
	wantText := `ok    vip on lo            fd00:20::100/128 on lo
ok    nd proxy             no proxy neighbour entry for fd00:20::100: only the director answers neighbour solicitations for it
ok    listener             tcp [fd00:20::100]:80: listening on [::]:80
`
	if got != wantText {
		t.Errorf("IPv6 VIP alone:\n%s\nwant:\n%s", got, wantText)
	}
	if got := dump(diagnose(DoctorOptions{VIPs: []netip.Addr{docVIP, vip6}, Mode: DR, Proto: "tcp"}, h)); !strings.Contains(got, "arp_ignore") ||
		!strings.Contains(got, "nd proxy") || !strings.Contains(got, "10.20.0.100/32 on lo") {
		t.Errorf("IPv4 and IPv6 VIPs:\n%s", got)
	}
	// lanLinks counts a link with IPv6 addresses only as not ARP's.
	if got := lanLinks([]linkState{linkLo, withAddrs(linkState{name: "eth1", up: true}, "fd00:1::1/64"), linkEth0}); !slices.Equal(got, []string{"eth0"}) {
		t.Errorf("lanLinks = %v", got)
	}
}
