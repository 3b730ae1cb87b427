package lab

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestOptions(t *testing.T) {
	o, err := Options{}.normalize()
	if err != nil || o.Prefix != "gvs" || o.Reals != 2 || o.Logf == nil {
		t.Errorf("zero Options normalize to %+v, %v; want prefix gvs, 2 reals, a Logf", o, err)
	}
	for _, bad := range []Options{
		{Reals: -1}, {Reals: maxReals + 1},
		{Prefix: "-x"}, {Prefix: "a/b"}, {Prefix: "a b"}, {Prefix: strings.Repeat("a", maxPrefix+1)},
	} {
		if _, err := bad.normalize(); err == nil {
			t.Errorf("Options %+v accepted", bad)
		}
	}
	if _, err := (Options{Prefix: "gvslab_1.x-y", Reals: maxReals, Directors: maxDirectors, ClientAddrs: maxClientAddrs}).normalize(); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
	for _, c := range []struct {
		in            Options
		directors, ca int
	}{
		{Options{}, 1, 1},
		{Options{Backup: true}, 2, 1},
		{Options{Directors: 3, ClientAddrs: 40}, 3, 40},
		{Options{Backup: true, Directors: 3}, 3, 1},
	} {
		o, err := c.in.normalize()
		if err != nil || o.Directors != c.directors || o.ClientAddrs != c.ca {
			t.Errorf("Options %+v normalize to %d directors, %d client addresses (%v); want %d, %d", c.in, o.Directors, o.ClientAddrs, err, c.directors, c.ca)
		}
	}
	for _, bad := range []Options{
		{Directors: -1}, {Directors: maxDirectors + 1}, {Backup: true, Directors: 1},
		{ClientAddrs: -1}, {ClientAddrs: maxClientAddrs + 1},
	} {
		if _, err := bad.normalize(); err == nil {
			t.Errorf("Options %+v accepted", bad)
		}
	}
	if got := realAddr(maxReals); !got.Less(VIP) {
		t.Errorf("last real server %s is not below the VIP %s", got, VIP)
	}
	if d := directorAddrN(1); d != netip.MustParseAddr("10.20.0.2") || directorAddrN(2) != netip.MustParseAddr("10.20.0.3") || !routerLAN.Less(d) {
		t.Errorf("director %s, director2 %s: want 10.20.0.2 and .3", d, directorAddrN(2))
	}
	if last := directorAddrN(maxDirectors); !last.Less(realAddr(1)) {
		t.Errorf("last director %s is not below rs1 %s", last, realAddr(1))
	}
	if clientAddrN(1) != clientAddr || clientAddrN(maxClientAddrs) != netip.MustParseAddr("10.10.0.254") || !routerClient.Less(clientAddr) {
		t.Errorf("client addresses %s..%s: want 10.10.0.2..10.10.0.254", clientAddrN(1), clientAddrN(maxClientAddrs))
	}
	if !VIP.Less(generatorAddr) || !lanNet.Contains(generatorAddr) {
		t.Errorf("generator %s is not on the LAN above the VIP %s", generatorAddr, VIP)
	}
}

func TestIsLabName(t *testing.T) {
	for name, want := range map[string]bool{
		"gvs-client": true, "gvs-router": true, "gvs-lan": true, "gvs-director": true,
		"gvs-rs1": true, "gvs-rs89": true, "gvs-gen": true, "gvs-director2": true,
		"gvs-director3": true, "gvs-director8": true,
		"gvs-director1": false, "gvs-director9": false, "gvs-director0": false, "gvs-director22": false,
		"gvs-rs": false, "gvs-rs0": false, "gvs-rs01": false, "gvs-rsx": false, "gvs-rs1000": false,
		"gvs-other": false, "gvsx-client": false, "gvs-client-2": false, "client": false,
	} {
		if got := isLabName("gvs", name); got != want {
			t.Errorf("isLabName(gvs, %q) = %v, want %v", name, got, want)
		}
	}
}

func TestHostMAC(t *testing.T) {
	got := hostMAC(netip.MustParseAddr("10.20.0.11"))
	if got.String() != "02:00:0a:14:00:0b" {
		t.Errorf("hostMAC(10.20.0.11) = %s", got)
	}
	if got[0]&1 != 0 || got[0]&2 == 0 {
		t.Errorf("hostMAC %s is not a locally administered unicast address", got)
	}
}

func TestWritePcap(t *testing.T) {
	t0 := time.Unix(1700000000, 123456789)
	frames := []Frame{
		{PktType: 0, // PACKET_HOST
			Data: bytes.Repeat([]byte{1}, 60), Time: t0},
		{Outgoing: true, PktType: 4, // PACKET_OUTGOING
			Data: bytes.Repeat([]byte{2}, 1514), Time: t0.Add(time.Millisecond)},
	}
	path := filepath.Join(t.TempDir(), "x.pcap")
	if err := WritePcap(path, frames); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Errorf("link type %v, want Ethernet", r.LinkType())
	}
	for i, want := range frames {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(data, want.Data) || !ci.Timestamp.Equal(want.Time) || ci.Length != len(want.Data) {
			t.Errorf("frame %d: read %d bytes at %v, want %d at %v", i, len(data), ci.Timestamp, len(want.Data), want.Time)
		}
	}
	if _, _, err := r.ReadPacketData(); err == nil {
		t.Error("pcap holds more frames than written")
	}
	if err := WritePcap(filepath.Join(t.TempDir(), "missing", "x.pcap"), frames); err == nil {
		t.Error("WritePcap into a missing directory succeeded")
	}
}
