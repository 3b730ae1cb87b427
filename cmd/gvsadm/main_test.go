package main

import (
	"bytes"
	"strings"
	"testing"

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
		{args: []string{"-A", "-t", "1.2.3.4:80"}, want: options{cmd: cmdUnsupported, unsupported: "-A"}},
		{args: []string{"-Ln", "--rate"}, want: options{cmd: cmdUnsupported, unsupported: "--rate"}},
		{args: []string{"-v"}, want: options{cmd: cmdVersion}},
		{args: []string{"-L", "-q"}, wantErr: "unknown option -q"},
		{args: []string{"-L", "-t"}, wantErr: "option -t needs an argument"},
		{args: []string{"--stats"}, wantErr: "go with -L"},
		{args: []string{"-L", "-S"}, wantErr: "cannot be combined"},
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
	Persistence: 300, Netmask: 24,
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
	if code := run([]string{"-E", "-t", "1.2.3.4:80"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "-E is not implemented yet") {
		t.Errorf("-E: exit %d, %q", code, errb.String())
	}
}
