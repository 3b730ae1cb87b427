package main

import (
	"bytes"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/gvs-lb/gvs/control/api"
)

func TestParseCapture(t *testing.T) {
	o, err := parseCapture([]string{"-w", "-", "-c", "10", "-G", "2.5", "-t", "10.20.0.100:80", "-r", "10.20.0.11",
		"--host", "10.10.0.0/24", "--port", "80", "--proto", "tcp", "--verdict", "forward,no_conn", "--socket", "/x.sock"})
	if err != nil {
		t.Fatal(err)
	}
	want := captureOptions{write: "-", socket: "/x.sock", req: api.CaptureRequest{Count: 10, Seconds: 2.5, Service: "tcp:10.20.0.100:80",
		Real: "10.20.0.11", Host: "10.10.0.0/24", Port: 80, Protocol: "tcp", Verdicts: []string{"forward", "no_conn"}}}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v\nwant %+v", o, want)
	}
	for _, bad := range [][]string{{"-c", "0"}, {"-G", "x"}, {"--port", "70000"}, {"-w"}, {"-L"}} {
		if _, err := parseCapture(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"capture", "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "gvsadm capture") {
		t.Errorf("capture -h: %d %q", code, out.String())
	}
	if code := run([]string{"capture", "--bogus"}, &out, &errb); code != 2 {
		t.Errorf("capture --bogus: exit %d", code)
	}
	errb.Reset()
	if code := run([]string{"--socket", "/nonexistent/gvsd.sock", "capture", "-c", "1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "cannot reach gvsd at /nonexistent/gvsd.sock") {
		t.Errorf("capture after --socket: exit %d, %q", code, errb.String())
	}
}

// frame builds an Ethernet/IPv4/TCP frame.
func frame(t *testing.T, src, dst string, sport, dport int, syn bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: !syn, Window: 100}
	var ip gopacket.SerializableLayer
	if strings.Contains(src, ":") { // IPv6
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
		tcp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
		tcp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPcapSink: a captured packet becomes two pcapng packets, on the
// "in" and "out" interfaces, each with the verdict in its comment; a
// dropped one only the "in" packet, one gvsd sent on its own (a PROXY
// header) only the "out" packet.
func TestPcapSink(t *testing.T) {
	in := frame(t, "10.10.0.2", "10.20.0.100", 40000, 80, true)
	out := frame(t, "10.10.0.2", "10.20.0.100", 40000, 80, true)
	out[0] = 0x0b // to the real's MAC
	at := time.Unix(1700000000, 123456789)
	var b bytes.Buffer
	s, err := newPcapSink(&b, false)
	if err != nil {
		t.Fatal(err)
	}
	pkts := []*api.CapturedPacket{
		{Time: at, In: in, Out: out, Verdict: "forward", Service: "tcp:10.20.0.100:80", Real: "10.20.0.11:80", Forward: "dr"},
		{Time: at, Worker: 1, In: in, Verdict: "no_conn", Service: "tcp:10.20.0.100:80"},
		{Time: at, Out: out, Verdict: "forward", Service: "tcp:10.20.0.100:80", Real: "10.20.0.11:80", Forward: "fullnat"}, // sent by gvsd on its own
	}
	for _, p := range pkts {
		if err := s.packet(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(&b, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		intf    int
		data    []byte
		comment string
	}
	want := []rec{
		{0, in, "in: verdict=forward service=tcp:10.20.0.100:80 real=10.20.0.11:80 forward=dr worker=0"},
		{1, out, "out: verdict=forward service=tcp:10.20.0.100:80 real=10.20.0.11:80 forward=dr worker=0"},
		{0, in, "in: verdict=no_conn service=tcp:10.20.0.100:80 worker=1"},
		{1, out, "out: verdict=forward service=tcp:10.20.0.100:80 real=10.20.0.11:80 forward=fullnat worker=0"},
	}
	for i, w := range want {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if ci.InterfaceIndex != w.intf || !bytes.Equal(data, w.data) || !ci.Timestamp.Equal(at) || len(opts.Comments) != 1 || opts.Comments[0] != w.comment {
			t.Errorf("packet %d: interface %d, time %v, comments %q", i, ci.InterfaceIndex, ci.Timestamp, opts.Comments)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Errorf("more packets than written: %v", err)
	}
	if n := r.NInterfaces(); n != 2 {
		t.Errorf("%d interfaces", n)
	}
}

func TestLineSink(t *testing.T) {
	var b bytes.Buffer
	s := &lineSink{w: &b}
	at := time.Date(2026, 12, 2, 3, 4, 5, 6000, time.UTC)
	s.packet(&api.CapturedPacket{Time: at, In: frame(t, "10.10.0.2", "10.20.0.100", 40000, 80, true),
		Out: frame(t, "10.10.0.2", "10.20.0.100", 40000, 80, true), Verdict: "forward", Real: "10.20.0.11:80", Forward: "dr"})
	s.packet(&api.CapturedPacket{Time: at, In: []byte{1, 2, 3}, Verdict: "malformed"})
	s.packet(&api.CapturedPacket{Time: at, Out: frame(t, "10.20.0.2", "10.20.0.11", 5000, 8080, false), Verdict: "forward", Real: "10.20.0.11:8080", Forward: "fullnat"})
	s.packet(&api.CapturedPacket{Time: at, In: frame(t, "fd00:10::2", "fd00:20::100", 40000, 80, true),
		Out: frame(t, "fd00:10::2", "fd00:20::11", 40000, 8080, true), Verdict: "forward", Real: "[fd00:20::11]:8080", Forward: "nat"})
	want := "03:04:05.000006 tcp 10.10.0.2:40000 > 10.20.0.100:80 [S] len 0 forward -> 10.20.0.11:80 (dr) | out tcp 10.10.0.2:40000 > 10.20.0.100:80 [S] len 0\n" +
		"03:04:05.000006 non-IP frame, 3 bytes malformed\n" +
		"03:04:05.000006 sent by gvsd: tcp 10.20.0.2:5000 > 10.20.0.11:8080 [.] len 0 -> 10.20.0.11:8080 (fullnat)\n" +
		"03:04:05.000006 tcp [fd00:10::2]:40000 > [fd00:20::100]:80 [S] len 0 forward -> [fd00:20::11]:8080 (nat) | out tcp [fd00:10::2]:40000 > [fd00:20::11]:8080 [S] len 0\n"
	if b.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestWriteChecks: doctor's findings, aligned, a problem's fix under it.
func TestWriteChecks(t *testing.T) {
	var b bytes.Buffer
	writeChecks(&b, []api.Check{
		{Name: "interface", Status: "ok", Detail: "eth0 up, MTU 1500"},
		{Name: "generic-receive-offload", Status: "fail", Detail: "on", Fix: "ethtool -K eth0 gro off"},
		{Name: "sync", Status: "warn", Detail: "no gateway", Fix: "ip route add default via GATEWAY dev eth0"},
	})
	want := "ok    interface                eth0 up, MTU 1500\n" +
		"FAIL  generic-receive-offload  on\n" +
		"      fix: ethtool -K eth0 gro off\n" +
		"WARN  sync                     no gateway\n" +
		"      fix: ip route add default via GATEWAY dev eth0\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if got := socketOf([]string{"--socket", "/a.sock"}); got != "/a.sock" {
		t.Errorf("socketOf = %q", got)
	}
	if got := socketOf([]string{"--socket=/b.sock"}); got != "/b.sock" {
		t.Errorf("socketOf = %q", got)
	}
}
