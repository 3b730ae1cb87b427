package connsync

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestWiresharkDecodes writes our messages into a pcap, as they would
// cross the wire to 224.0.0.81:8848, and has Wireshark's own IPVS
// dissector (tshark) read them back: an independent decoder of the kernel
// format agrees on every field, and finds nothing malformed in records
// carrying gvs's optional parameters or IPVS's OptSeqData. (Wireshark's
// dissector reads no parameter of a version 1 record, OptSeqData
// included: TestGoldenSeqData checks those bytes by hand.)
func TestWiresharkDecodes(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("needs tshark (apt-get install tshark) to check the format against Wireshark's IPVS dissector")
	}
	conns := []Conn{
		goldenConn,
		{Protocol: 17, Flags: FlagMasq | FlagInactive, State: UDPStateNormal, Client: ap("10.10.0.2:5353"), VIP: ap("10.20.0.100:53"),
			Real: ap("10.20.0.12:5353"), Timeout: 300 * time.Second},
		{Protocol: 6, Flags: FlagMasq, State: TCPStateEstablished, Client: ap("10.10.0.3:40001"), VIP: ap("10.20.0.100:80"),
			Real: ap("10.20.0.13:8080"), Timeout: 900 * time.Second, Local: ap("10.20.0.2:5001")},
		{Protocol: 6, Flags: FlagDRoute | FlagTemplate, Client: ap("10.10.0.0:0"), VIP: ap("10.20.0.100:80"),
			Real: ap("10.20.0.11:80"), Timeout: 300 * time.Second},
		goldenSeqConn,
	}
	// The FULLNAT record ends the first message.
	msgs, err := Batch(conns, 7, 1472)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Batch: %d messages, %v", len(msgs), err)
	}
	var pcap bytes.Buffer
	w := pcapgo.NewWriter(&pcap)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 10, 20, 0, 2}, DstMAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 81}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolUDP, SrcIP: netip.MustParseAddr("10.20.0.2").AsSlice(), DstIP: DefaultGroup.AsSlice()}
	udp := &layers.UDP{SrcPort: DefaultPort, DstPort: DefaultPort}
	udp.SetNetworkLayerForChecksum(ip)
	for i, m := range msgs {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(m)); err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(int64(i+1), 0), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "sync.pcap")
	if err := os.WriteFile(file, pcap.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fields := []string{"ipvs.syncid", "ipvs.conncount", "ipvs.version", "ipvs.proto", "ipvs.caddr", "ipvs.cport",
		"ipvs.vaddr", "ipvs.vport", "ipvs.daddr", "ipvs.dport", "ipvs.flags.v1", "ipvs.state", "ipvs.timeout", "ipvs.fwmark", "_ws.malformed", "_ws.expert"}
	args := []string{"-r", file, "-T", "fields", "-E", "occurrence=a", "-E", "separator=|", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // tshark warns about running as root there
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	want := [][]string{
		{"7", "3", "1", "0x06,0x11,0x06", "192.0.2.10,10.10.0.2,10.10.0.3", "40000,5353,40001",
			"198.51.100.1,10.20.0.100,10.20.0.100", "80,53,80", "10.0.0.2,10.20.0.12,10.20.0.13", "8080,5353,8080",
			"0x00000103,0x00000100,0x00000000", "0x0003,0x0000,0x0001", "900,300,900", "0x01020304,0x00000000,0x00000000", "", ""},
		{"7", "2", "1", "0x06,0x06", "10.10.0.0,192.0.2.10", "0,40000", "10.20.0.100,198.51.100.1", "80,80", "10.20.0.11,10.0.0.2", "80,8080",
			"0x00001003,0x00000600", "0x0000,0x0001", "300,900", "0x00000000,0x00000000", "", ""},
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("tshark printed %d packets:\n%s", len(lines), out)
	}
	for p, line := range lines {
		got := strings.Split(line, "|")
		if len(got) != len(fields) {
			t.Fatalf("tshark printed %q", line)
		}
		for i, f := range fields {
			if got[i] != want[p][i] {
				t.Errorf("message %d, %s: Wireshark says %q, we sent %q", p, f, got[i], want[p][i])
			}
		}
	}
}
