package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/control/api"
)

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args    []string
		want    options
		wantErr string
	}{
		{args: []string{"-Ln"}, want: options{cmd: cmdList}},
		{args: []string{"-lnc"}, want: options{cmd: cmdList, conns: true}},
		{args: []string{"-L", "-n", "--stats", "--exact"}, want: options{cmd: cmdList, format: fmtStats | fmtExact}},
		{args: []string{"-Lnt", "10.0.0.1:80"}, want: options{cmd: cmdList, proto: "tcp", service: "10.0.0.1:80"}},
		{args: []string{"-Lnt10.0.0.1:80"}, want: options{cmd: cmdList, proto: "tcp", service: "10.0.0.1:80"}},
		{args: []string{"-L", "-u", "10.0.0.1:53", "--socket", "/x.sock"}, want: options{cmd: cmdList, proto: "udp", service: "10.0.0.1:53", socket: "/x.sock"}},
		{args: []string{"--socket=/y.sock", "-Sn"}, want: options{cmd: cmdSave, socket: "/y.sock"}},
		{args: []string{"--fwmark-service", "1"}, want: options{cmd: cmdUnsupported, unsupported: "--fwmark-service"}},
		{args: []string{"-Ln", "--rate"}, want: options{cmd: cmdList, format: fmtRate}},
		{args: []string{"-v"}, want: options{cmd: cmdVersion}},
		{args: []string{"-L", "--daemon"}, want: options{cmd: cmdList, daemon: true}},
		{args: []string{"--daemon"}, wantErr: "go with -L"},
		{args: []string{"--reload"}, want: options{cmd: cmdReload}},
		{args: []string{"--reload", "-L"}, wantErr: "goes alone"},
		{args: []string{"-L", "-q"}, wantErr: "unknown option -q"},
		{args: []string{"-L", "-t"}, wantErr: "option -t needs an argument"},
		{args: []string{"--stats"}, wantErr: "go with -L"},
		{args: []string{"-L", "-S"}, wantErr: "cannot be combined"},
		{args: []string{"-L", "-A", "-t", "1.2.3.4:80"}, wantErr: "only one command"},
		{args: []string{"-a", "-t", "1.2.3.4:80"}, wantErr: "a real server is needed"},
		{args: []string{"-E", "-s", "rr"}, wantErr: "a service is needed"},
		{args: []string{"-A", "-t", "1.2.3.4:80", "-M", "255.0.255.0"}, wantErr: "illegal netmask"},
		{args: []string{"--set", "900", "120"}, wantErr: "three timeouts"},
	} {
		got, err := parseArgs(c.args)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: error %v, want %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
}

func TestLargeNum(t *testing.T) {
	for _, c := range []struct {
		n     uint64
		exact bool
		want  string
	}{
		{0, false, "        0"},
		{99_999_999, false, " 99999999"},
		{123_456_789, false, "  123456K"},
		{12_345_678_901, false, "   12345M"},
		{123_456_789_012_345, false, "     123T"},
		{123_456_789, true, " 123456789"},
		{7, true, "        7"},
	} {
		var b bytes.Buffer
		writeLargeNum(&b, c.n, c.exact)
		if b.String() != c.want {
			t.Errorf("largenum(%d, exact %v) = %q, want %q", c.n, c.exact, b.String(), c.want)
		}
	}
}

var testServices = []api.Service{{
	Protocol: "tcp", Address: "10.20.0.100:80", Scheduler: "sh", SchedulerFlags: []string{"sh-fallback", "sh-port"},
	Persistence: 300, Netmask: 24, Rates: api.Rates{CPS: 12, InPPS: 345, InBPS: 123_456_789},
	Reals: []api.Real{
		{Address: "10.20.0.11:80", Forward: "nat", Weight: 3, UpperThreshold: 100, LowerThreshold: 50, Active: 12, Inactive: 4, Persistent: 2},
		{Address: "10.20.0.12:8080", Forward: "fullnat", Weight: 0, Active: 0, Inactive: 1},
	},
}, {Protocol: "udp", Address: "10.20.0.100:53", Scheduler: "rr", OPS: true, Reals: []api.Real{{Address: "10.20.0.13:53", Forward: "tun", Weight: 1}}}}

func TestListFormats(t *testing.T) {
	for _, c := range []struct {
		f    format
		want string
	}{
		{0, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.20.0.100:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0
  -> 10.20.0.11:80                Masq    3      12         4         
  -> 10.20.0.12:8080              FullNat 0      0          1         
UDP  10.20.0.100:53 rr ops
  -> 10.20.0.13:53                Tunnel  1      0          0         
`},
		{fmtThresholds, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port
  -> RemoteAddress:Port            Uthreshold Lthreshold ActiveConn InActConn
TCP  10.20.0.100:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0
  -> 10.20.0.11:80                100        50         12         4         
  -> 10.20.0.12:8080              0          0          0          1         
UDP  10.20.0.100:53 rr ops
  -> 10.20.0.13:53                0          0          0          0         
`},
		{fmtRate, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  10.20.0.100:80                     12      345        0  123456K        0
  -> 10.20.0.11:80                       0        0        0        0        0
  -> 10.20.0.12:8080                     0        0        0        0        0
UDP  10.20.0.100:53                      0        0        0        0        0
  -> 10.20.0.13:53                       0        0        0        0        0
`},
	} {
		var b bytes.Buffer
		writeList(&b, &api.Response{TableSize: 4096, Services: testServices}, c.f)
		if b.String() != c.want {
			t.Errorf("format %d:\n got:\n%s\nwant:\n%s", c.f, b.String(), c.want)
		}
	}
}

func TestSaveFormat(t *testing.T) {
	var b bytes.Buffer
	writeSave(&b, testServices)
	want := `-A -t 10.20.0.100:80 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0
-a -t 10.20.0.100:80 -r 10.20.0.11:80 -m -w 3 -x 100 -y 50
-a -t 10.20.0.100:80 -r 10.20.0.12:8080 -b -w 0
-A -u 10.20.0.100:53 -s rr -o
-a -u 10.20.0.100:53 -r 10.20.0.13:53 -i -w 1
`
	if b.String() != want {
		t.Errorf("save:\n got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestConnectionsFormat(t *testing.T) {
	var b bytes.Buffer
	writeConnections(&b, []api.Connection{{Protocol: "tcp", Client: "10.10.0.2:40000", Virtual: "10.20.0.100:80", Real: "10.20.0.11:80", State: "ESTABLISHED", Expires: 899}})
	want := `IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 10.10.0.2:40000    10.20.0.100:80     10.20.0.11:80
`
	if b.String() != want {
		t.Errorf("connections:\n got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestRunWithoutGvsd(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--socket", t.TempDir() + "/none.sock", "-Ln"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "is it running?") {
		t.Errorf("exit %d, %q; want 1 and a question whether gvsd runs", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"--fwmark-service", "1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "--fwmark-service is not implemented yet") {
		t.Errorf("--fwmark-service: exit %d, %q", code, errb.String())
	}
}

func ptr[T any](v T) *T { return &v }

// TestParseEdits: ipvsadm's change commands become the Edit gvsd applies.
func TestParseEdits(t *testing.T) {
	for _, c := range []struct {
		args string
		want api.Edit
	}{
		{"-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port -p 600 -M 255.255.255.0", api.Edit{Command: api.AddService, Protocol: "tcp", Address: "10.0.0.1:80",
			Scheduler: "sh", SchedulerFlags: []string{"sh-fallback", "sh-port"}, Persistence: ptr(uint32(600)), Netmask: ptr(24)}},
		{"-A -u 10.0.0.1:53 -o -p", api.Edit{Command: api.AddService, Protocol: "udp", Address: "10.0.0.1:53", OPS: ptr(true), Persistence: ptr(uint32(300))}},
		{"-E -t 10.0.0.1:80 -s wrr -p 0", api.Edit{Command: api.EditService, Protocol: "tcp", Address: "10.0.0.1:80", Scheduler: "wrr", Persistence: ptr(uint32(0))}},
		{"-D -t 10.0.0.1:80", api.Edit{Command: api.DeleteService, Protocol: "tcp", Address: "10.0.0.1:80"}},
		{"-a -t 10.0.0.1:80 -r 10.0.0.11:8080 -m -w 3 -x 100 -y 50", api.Edit{Command: api.AddServer, Protocol: "tcp", Address: "10.0.0.1:80",
			Real: "10.0.0.11:8080", Forward: "nat", Weight: ptr(3), UpperThreshold: ptr(100), LowerThreshold: ptr(50)}},
		{"-a -t 10.0.0.1:80 -r 10.0.0.12 -b -w 0", api.Edit{Command: api.AddServer, Protocol: "tcp", Address: "10.0.0.1:80", Real: "10.0.0.12", Forward: "fullnat", Weight: ptr(0)}},
		{"-e -t10.0.0.1:80 -r10.0.0.11:80 -i -w2", api.Edit{Command: api.EditServer, Protocol: "tcp", Address: "10.0.0.1:80", Real: "10.0.0.11:80", Forward: "tun", Weight: ptr(2)}},
		{"-d -t 10.0.0.1:80 -r 10.0.0.11:80", api.Edit{Command: api.DeleteServer, Protocol: "tcp", Address: "10.0.0.1:80", Real: "10.0.0.11:80"}},
		{"-C", api.Edit{Command: api.Clear}},
		{"-Z -t 10.0.0.1:80", api.Edit{Command: api.Zero, Protocol: "tcp", Address: "10.0.0.1:80"}},
		{"--set 900 0 300", api.Edit{Command: api.SetTimeouts, TCP: 900, UDP: 300}},
	} {
		o, err := parseArgs(strings.Fields(c.args))
		if err != nil || o.cmd != cmdEdit {
			t.Errorf("%s: %+v, %v", c.args, o, err)
			continue
		}
		got, _ := json.Marshal(o.edit)
		want, _ := json.Marshal(&c.want)
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", c.args, got, want)
		}
	}
	// Every line -S writes parses back into a change.
	var b bytes.Buffer
	writeSave(&b, testServices)
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if o, err := parseArgs(strings.Fields(line)); err != nil || o.cmd != cmdEdit {
			t.Errorf("-S line %q does not parse as a command: %v", line, err)
		}
	}
}

func TestHealthFormat(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	svcs := []api.Service{{Protocol: "tcp", Address: "10.20.0.100:80", Scheduler: "rr", Reals: []api.Real{
		{Address: "10.20.0.11:80", Health: "down", HealthChecks: 42, HealthChanged: at, HealthError: "GET http://10.20.0.11:80/: status 503"},
		{Address: "10.20.0.12:80", Health: "up", HealthChecks: 41, HealthChanged: at},
		{Address: "10.20.0.13:80"},
	}}}
	var b bytes.Buffer
	writeList(&b, &api.Response{TableSize: 10, Services: svcs}, fmtHealth)
	want := `IP Virtual Server version 1.2.1 (size=10)
Prot LocalAddress:Port
  -> RemoteAddress:Port           Health Checks     Since                LastError
TCP  10.20.0.100:80 rr
  -> 10.20.0.11:80                down   42         2026-12-01T10:00:00Z GET http://10.20.0.11:80/: status 503
  -> 10.20.0.12:80                up     41         2026-12-01T10:00:00Z 
  -> 10.20.0.13:80                -      0                               
`
	if b.String() != want {
		t.Errorf("health:\n got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestDaemonLine: -L --daemon prints ipvsadm's sync daemon line for the
// role gvsd has now, and nothing without [sync].
func TestDaemonLine(t *testing.T) {
	for _, c := range []struct {
		s    *api.SyncStatus
		want string
	}{
		{nil, ""},
		{&api.SyncStatus{Role: "master", Interface: "eth0", Group: "224.0.0.81", Port: 8848, MaxLen: 1472},
			"master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"},
		{&api.SyncStatus{Role: "backup", Interface: "eth1", Peer: "10.0.0.2", Port: 8849, SyncID: 7, MaxLen: 8972},
			"backup sync daemon (mcast=eth1, syncid=7, maxlen=8972, peer=10.0.0.2, port=8849, ttl=1)\n"},
	} {
		var b bytes.Buffer
		writeDaemon(&b, c.s)
		if b.String() != c.want {
			t.Errorf("%+v: %q, want %q", c.s, b.String(), c.want)
		}
	}
}

// testServices6 is an IPv6 service as gvsd lists it: addresses as
// netip.AddrPort.String() writes them, IPv6 in brackets.
var testServices6 = []api.Service{{
	Protocol: "tcp", Address: "[fd00:20::100]:80", Scheduler: "wrr", Persistence: 300, Netmask: 64,
	Reals: []api.Real{
		{Address: "[fd00:20::11]:80", Forward: "dr", Weight: 1, Active: 2, Inactive: 1},
		{Address: "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:12]:8080", Forward: "nat", Weight: 2},
	},
}, {Protocol: "udp", Address: "[fd00:20::100]:53", Scheduler: "rr", Persistence: 60, Netmask: 128,
	Reals: []api.Real{{Address: "[fd00:20::13]:53", Forward: "dr", Weight: 1}}}}

// TestListFormatsIPv6: ipvsadm's IPv6 listing (print_service_entry): the
// addresses in brackets, not cut to the IPv4 column widths, and the
// persistence mask as a prefix length unless it is 128.
func TestListFormatsIPv6(t *testing.T) {
	for _, c := range []struct {
		f    format
		want string
	}{
		{0, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  [fd00:20::100]:80 wrr persistent 300 mask 64
  -> [fd00:20::11]:80             Route   1      2          1         
  -> [2001:db8:aaaa:bbbb:cccc:dddd:eeee:12]:8080 Masq    2      0          0         
UDP  [fd00:20::100]:53 rr persistent 60
  -> [fd00:20::13]:53             Route   1      0          0         
`},
		{fmtStats, `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  [fd00:20::100]:80                   0        0        0        0        0
  -> [fd00:20::11]:80                    0        0        0        0        0
  -> [2001:db8:aaaa:bbbb:cccc:dddd:eeee:12]:8080        0        0        0        0        0
UDP  [fd00:20::100]:53                   0        0        0        0        0
  -> [fd00:20::13]:53                    0        0        0        0        0
`},
	} {
		var b bytes.Buffer
		writeList(&b, &api.Response{TableSize: 4096, Services: testServices6}, c.f)
		if b.String() != c.want {
			t.Errorf("format %d:\n got:\n%s\nwant:\n%s", c.f, b.String(), c.want)
		}
	}
}

// TestSaveIPv6RoundTrip: -S writes IPv6 rules as ipvsadm -S -n does (-M a
// prefix length, left out at 128), and each line parses back into the
// change that recreates what was listed.
func TestSaveIPv6RoundTrip(t *testing.T) {
	var b bytes.Buffer
	writeSave(&b, testServices6)
	want := `-A -t [fd00:20::100]:80 -s wrr -p 300 -M 64
-a -t [fd00:20::100]:80 -r [fd00:20::11]:80 -g -w 1
-a -t [fd00:20::100]:80 -r [2001:db8:aaaa:bbbb:cccc:dddd:eeee:12]:8080 -m -w 2
-A -u [fd00:20::100]:53 -s rr -p 60
-a -u [fd00:20::100]:53 -r [fd00:20::13]:53 -g -w 1
`
	if b.String() != want {
		t.Fatalf("save:\n got:\n%s\nwant:\n%s", b.String(), want)
	}
	wantEdits := []api.Edit{
		{Command: api.AddService, Protocol: "tcp", Address: "[fd00:20::100]:80", Scheduler: "wrr", Persistence: ptr(uint32(300)), Netmask: ptr(64)},
		{Command: api.AddServer, Protocol: "tcp", Address: "[fd00:20::100]:80", Real: "[fd00:20::11]:80", Forward: "dr", Weight: ptr(1)},
		{Command: api.AddServer, Protocol: "tcp", Address: "[fd00:20::100]:80", Real: "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:12]:8080", Forward: "nat", Weight: ptr(2)},
		{Command: api.AddService, Protocol: "udp", Address: "[fd00:20::100]:53", Scheduler: "rr", Persistence: ptr(uint32(60))},
		{Command: api.AddServer, Protocol: "udp", Address: "[fd00:20::100]:53", Real: "[fd00:20::13]:53", Forward: "dr", Weight: ptr(1)},
	}
	for i, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		o, err := parseArgs(strings.Fields(line))
		if err != nil || o.cmd != cmdEdit {
			t.Fatalf("%q: %+v, %v", line, o, err)
		}
		got, _ := json.Marshal(o.edit)
		want, _ := json.Marshal(&wantEdits[i])
		if !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", line, got, want)
		}
	}
}

func TestParseIPv6Args(t *testing.T) {
	for _, c := range []struct {
		args string
		want api.Edit
	}{
		{"-A -t [fd00:20::100]:80 -s wrr", api.Edit{Command: api.AddService, Protocol: "tcp", Address: "[fd00:20::100]:80", Scheduler: "wrr"}},
		{"-A -u[fd00:20::100]:53 -p 60 -M 48", api.Edit{Command: api.AddService, Protocol: "udp", Address: "[fd00:20::100]:53", Persistence: ptr(uint32(60)), Netmask: ptr(48)}},
		{"-a -t [fd00:20::100]:80 -r [fd00:20::11] -g", api.Edit{Command: api.AddServer, Protocol: "tcp", Address: "[fd00:20::100]:80", Real: "[fd00:20::11]", Forward: "dr"}},
	} {
		o, err := parseArgs(strings.Fields(c.args))
		if err != nil || o.cmd != cmdEdit {
			t.Errorf("%s: %+v, %v", c.args, o, err)
			continue
		}
		got, _ := json.Marshal(o.edit)
		want, _ := json.Marshal(&c.want)
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", c.args, got, want)
		}
	}
	if _, err := parseArgs(strings.Fields("-A -t [fd00::1]:80 -M 129")); err == nil || !strings.Contains(err.Error(), "illegal netmask") {
		t.Errorf("-M 129: %v, want illegal netmask", err)
	}
	l, err := only(testServices6, "tcp", "[fd00:20:0::100]:80")
	if err != nil || len(l) != 1 || l[0].Address != "[fd00:20::100]:80" {
		t.Errorf("only by another spelling of the address: %v %v", l, err)
	}
	if _, err := only(testServices6, "udp", "[fd00:20::100]:80"); err == nil {
		t.Error("only found a tcp service as udp")
	}
}

// TestProxyProtocolFormats: a service with --proxy-protocol shows it in
// the Flags of -L, and a real whose own differs at the end of its line;
// -S writes --proxy-protocol for both, and its lines parse back into the
// edits that make them. Listings without it are the ones above.
func TestProxyProtocolFormats(t *testing.T) {
	svcs := []api.Service{{Protocol: "tcp", Address: "10.20.0.100:80", Scheduler: "rr", ProxyProtocol: "v2", Reals: []api.Real{
		{Address: "10.20.0.11:8080", Forward: "fullnat", ProxyProtocol: "v2", Weight: 1},
		{Address: "10.20.0.12:8080", Forward: "nat", ProxyProtocol: "v1", Weight: 1},
		{Address: "10.20.0.13:8080", Forward: "fullnat", Weight: 1},
	}}, {Protocol: "tcp", Address: "10.20.0.100:443", Scheduler: "rr", Reals: []api.Real{
		{Address: "10.20.0.11:8443", Forward: "fullnat", ProxyProtocol: "v1", Weight: 1},
	}}}
	var b bytes.Buffer
	writeList(&b, &api.Response{TableSize: 4096, Services: svcs}, 0)
	want := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.20.0.100:80 rr proxy-protocol v2
  -> 10.20.0.11:8080              FullNat 1      0          0         
  -> 10.20.0.12:8080              Masq    1      0          0          proxy-protocol v1
  -> 10.20.0.13:8080              FullNat 1      0          0          proxy-protocol none
TCP  10.20.0.100:443 rr
  -> 10.20.0.11:8443              FullNat 1      0          0          proxy-protocol v1
`
	if b.String() != want {
		t.Errorf("-L:\n got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	writeSave(&b, svcs)
	want = `-A -t 10.20.0.100:80 -s rr --proxy-protocol v2
-a -t 10.20.0.100:80 -r 10.20.0.11:8080 -b -w 1
-a -t 10.20.0.100:80 -r 10.20.0.12:8080 -m -w 1 --proxy-protocol v1
-a -t 10.20.0.100:80 -r 10.20.0.13:8080 -b -w 1 --proxy-protocol none
-A -t 10.20.0.100:443 -s rr
-a -t 10.20.0.100:443 -r 10.20.0.11:8443 -b -w 1 --proxy-protocol v1
`
	if b.String() != want {
		t.Errorf("-S:\n got:\n%s\nwant:\n%s", b.String(), want)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	for i, w := range []*string{ptr("v2"), nil, ptr("v1"), ptr(""), nil, ptr("v1")} {
		o, err := parseArgs(strings.Fields(lines[i]))
		if err != nil || o.cmd != cmdEdit {
			t.Fatalf("%q: %v", lines[i], err)
		}
		if got := o.edit.ProxyProtocol; (got == nil) != (w == nil) || (got != nil && *got != *w) {
			t.Errorf("%q: ProxyProtocol %v, want %v", lines[i], got, w)
		}
	}
	if _, err := parseArgs(strings.Fields("-A -t 10.0.0.1:80 --proxy-protocol v3")); err == nil {
		t.Errorf("--proxy-protocol v3 accepted")
	}
}
