package ingress

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

func TestMakeKeyLayout(t *testing.T) {
	k := makeKey(protoUDP, [4]byte{10, 0, 0, 1}, 0x1f90)
	want := []byte{10, 0, 0, 1, 17, 0, 0, 0, 0x1f, 0x90, 0, 0}
	if !bytes.Equal(k[:], want) {
		t.Fatalf("key = % x, want % x", k, want)
	}
}

func TestMakeKey6Layout(t *testing.T) {
	addr := [16]byte{0xfd, 0, 0, 0x20, 15: 0x11}
	k := makeKey6(protoTCP, addr, 0x1f90)
	want := append(addr[:], 6, 0, 0, 0, 0x1f, 0x90, 0, 0)
	if !bytes.Equal(k[:], want) {
		t.Fatalf("key = % x, want % x", k, want)
	}
	e, err := compile(&afpacket.Match{
		VIPs6:     []afpacket.Endpoint6{{Proto: protoTCP, Addr: addr, Port: 80}, {Proto: protoTCP, Addr: addr, Port: 80}},
		NATReals6: []afpacket.Endpoint6{{Proto: protoUDP, Addr: addr, Port: 53}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.vips6) != 1 || e.vips6[0] != makeKey6(protoTCP, addr, 80) || len(e.natReals6) != 1 || len(e.vips) != 0 {
		t.Errorf("compile: %+v", e)
	}
}

func TestCompile(t *testing.T) {
	vip := [4]byte{10, 0, 0, 100}
	lip := [4]byte{10, 0, 0, 1}
	m := &afpacket.Match{
		VIPs: []afpacket.Endpoint{
			{Proto: protoTCP, Addr: vip, Port: 80},
			{Proto: protoUDP, Addr: vip, Port: 53},
			{Proto: protoTCP, Addr: vip, Port: 80}, // duplicate
		},
		NATReals: []afpacket.Endpoint{{Proto: protoTCP, Addr: [4]byte{10, 0, 0, 11}, Port: 8080}},
		Locals: []afpacket.LocalRange{
			{Addr: lip, PortLo: 2000, PortHi: 2999},
			{Addr: lip, PortLo: 1000, PortHi: 1999}, // adjacent: merged with the first
			{Addr: lip, PortLo: 1500, PortHi: 1600}, // inside: merged
			{Addr: [4]byte{10, 0, 0, 2}, PortLo: 5000, PortHi: 5000},
		},
	}
	e, err := compile(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := []key{makeKey(protoTCP, vip, 80), makeKey(protoUDP, vip, 53)}; !keysEqual(e.vips, want) {
		t.Errorf("vips = %x, want %x", e.vips, want)
	}
	if len(e.natReals) != 1 || e.natReals[0] != makeKey(protoTCP, [4]byte{10, 0, 0, 11}, 8080) {
		t.Errorf("natReals = %x", e.natReals)
	}
	lip2 := [4]byte{10, 0, 0, 2}
	want := []portRange{
		{lip, protoTCP, 1000, 2999},
		{lip2, protoTCP, 5000, 5000},
		{lip, protoUDP, 1000, 2999},
		{lip2, protoUDP, 5000, 5000},
	}
	if len(e.locals) != len(want) {
		t.Fatalf("locals = %+v, want %+v", e.locals, want)
	}
	for i := range want {
		if e.locals[i] != want[i] {
			t.Errorf("locals[%d] = %+v, want %+v", i, e.locals[i], want[i])
		}
	}

	if e, err := compile(nil); err != nil || len(e.vips)+len(e.natReals)+len(e.locals) != 0 {
		t.Errorf("compile(nil) = %+v, %v; want nothing", e, err)
	}
}

func keysEqual(a, b []key) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCompileRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    afpacket.Match
		want string
	}{
		{"ICMP VIP", afpacket.Match{VIPs: []afpacket.Endpoint{{Proto: 1, Port: 0}}}, "VIPs[0]: protocol 1"},
		{"zero NAT proto", afpacket.Match{NATReals: []afpacket.Endpoint{{}}}, "NATReals[0]: protocol 0"},
		{"reversed range", afpacket.Match{Locals: []afpacket.LocalRange{{PortLo: 9, PortHi: 8}}}, "Locals[0]: port range 9-8"},
	} {
		_, err := compile(&tc.m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

// TestCompileLocals6: IPv6 local ranges are merged per address as IPv4's,
// one range per protocol; a reversed one is refused.
func TestCompileLocals6(t *testing.T) {
	lip := [16]byte{0xfd, 0, 0, 0x20, 15: 2}
	e, err := compile(&afpacket.Match{Locals6: []afpacket.LocalRange6{
		{Addr: lip, PortLo: 2000, PortHi: 2999},
		{Addr: lip, PortLo: 1000, PortHi: 1999},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []portRange6{{addr: lip, proto: protoTCP, lo: 1000, hi: 2999}, {addr: lip, proto: protoUDP, lo: 1000, hi: 2999}}
	if len(e.locals6) != 2 || e.locals6[0] != want[0] || e.locals6[1] != want[1] || len(e.locals) != 0 {
		t.Errorf("locals6 = %+v, want %+v", e.locals6, want)
	}
	if _, err := compile(&afpacket.Match{Locals6: []afpacket.LocalRange6{{Addr: lip, PortLo: 2, PortHi: 1}}}); err == nil || !strings.Contains(err.Error(), "Locals6[0]") {
		t.Errorf("reversed range: %v", err)
	}
}
