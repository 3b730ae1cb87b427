package realserver

import (
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/arpctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	testDir6 = netip.MustParseAddr("fd00:203::1")
	testRIP6 = netip.MustParseAddr("fd00:203::2")
	testVIP6 = netip.MustParseAddr("fd00:203::100")
)

// TestRunDRIPv6: an IPv6 VIP in DR mode goes on lo as /128 without DAD,
// with no sysctl changed; the real takes packets to it from the LAN (sent
// to its MAC, as a director does), but never answers a neighbour
// solicitation for it, while it answers one for its own address; at exit
// the VIP is gone.
func TestRunDRIPv6(t *testing.T) {
	l := newLab(t)
	add6 := func(name string, a netip.Addr) {
		out, err := exec.Command("ip", "-6", "addr", "add", a.String()+"/64", "dev", name, "nodad").CombinedOutput()
		if err != nil {
			t.Fatalf("ip -6 addr add %s: %v: %s", a, err, out)
		}
	}
	l.a.Do(t, func() { add6(l.nameA, testDir6) })
	var before map[string]string
	l.b.Do(t, func() {
		add6(l.nameB, testRIP6)
		before = sysctls(t, arpctl.RealServerSysctls(l.nameB))
	})

	stop := l.startRun(t, Options{VIPs: []netip.Addr{testVIP6}, Mode: DR})
	var udp *net.UDPConn
	l.b.Do(t, func() {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := netlink.AddrList(lo, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range addrs {
			if ip, _ := netip.AddrFromSlice(a.IP); ip == testVIP6 {
				found = true
				if ones, _ := a.Mask.Size(); ones != 128 || a.Flags&unix.IFA_F_NODAD == 0 {
					t.Errorf("VIP on lo as /%d, flags %#x; want /128 nodad", ones, a.Flags)
				}
			}
		}
		if !found {
			t.Fatalf("%s not on lo: %v", testVIP6, addrs)
		}
		if after := sysctls(t, arpctl.RealServerSysctls(l.nameB)); !equalMaps(before, after) {
			t.Errorf("sysctls changed for an IPv6-only DR real: %v -> %v", before, after)
		}
		if udp, err = net.ListenUDP("udp6", &net.UDPAddr{IP: testVIP6.AsSlice(), Port: 7}); err != nil {
			t.Fatal(err)
		}
	})
	defer udp.Close()

	c := l.capture(t)
	sendUDP := func(dst netip.Addr) {
		t.Helper()
		l.a.Do(t, func() {
			s, err := net.DialUDP("udp6", nil, &net.UDPAddr{IP: dst.AsSlice(), Port: 7})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Write([]byte("probe")); err != nil {
				t.Fatal(err)
			}
		})
	}
	advertises := func(target netip.Addr) func(gopacket.Packet) bool {
		return func(p gopacket.Packet) bool {
			na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
			return ok && na.TargetAddress.Equal(target.AsSlice())
		}
	}
	// The control: the real advertises its own address.
	sendUDP(testRIP6)
	if ok, _ := c.watch(t, 3*time.Second, advertises(testRIP6)); !ok {
		t.Fatalf("no neighbour advertisement for the real's own %s: the capture sees nothing", testRIP6)
	}
	// The VIP: the sender's kernel solicits (every second), nobody answers.
	sendUDP(testVIP6)
	solicited := 0
	naVIP := advertises(testVIP6)
	if ok, _ := c.watch(t, 2500*time.Millisecond, func(p gopacket.Packet) bool {
		if ns, ok := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation); ok && ns.TargetAddress.Equal(testVIP6.AsSlice()) {
			solicited++
		}
		return naVIP(p)
	}); ok {
		t.Fatalf("the real advertised the VIP %s on the LAN", testVIP6)
	}
	if solicited < 2 {
		t.Fatalf("saw %d solicitations for the VIP in 2.5s, want the sender's kernel to have asked at least twice", solicited)
	}
	// A director sends to the real's MAC: the real takes it.
	l.a.Do(t, func() {
		err := netlink.NeighSet(&netlink.Neigh{LinkIndex: l.ifA.Index, Family: netlink.FAMILY_V6,
			State: netlink.NUD_PERMANENT, IP: testVIP6.AsSlice(), HardwareAddr: l.ifB.HardwareAddr})
		if err != nil {
			t.Fatal(err)
		}
	})
	sendUDP(testVIP6)
	udp.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	if n, from, err := udp.ReadFromUDP(buf); err != nil || string(buf[:n]) != "probe" {
		t.Fatalf("the real did not take a datagram to the VIP: %q from %v, %v", buf[:n], from, err)
	}

	if err, logs := stop(); err != nil {
		t.Fatalf("Run: %v\n%s", err, logs)
	}
	l.b.Do(t, func() {
		if onLo(t, testVIP6) {
			t.Error("the VIP is still on lo after Run returned")
		}
	})
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
