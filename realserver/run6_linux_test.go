package realserver

import (
	"bytes"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/arpctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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

// sendIP6IP6 sends inner from the sender to the real server's IPv6
// address in an outer IPv6 header with next header 41, built by the
// sender's kernel.
func (l *lab) sendIP6IP6(t *testing.T, inner ...[]byte) {
	t.Helper()
	l.a.Do(t, func() {
		c, err := net.ListenPacket("ip6:41", testDir6.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, p := range inner {
			if _, err := c.WriteTo(p, &net.IPAddr{IP: testRIP6.AsSlice()}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// newLab6 is newLab with IPv6 on the veth (testDir6 and testRIP6, no DAD)
// and the real's IPv6 default route through the sender.
func newLab6(t *testing.T) *lab {
	t.Helper()
	l := newLab(t)
	add6 := func(name string, a netip.Addr) {
		out, err := exec.Command("ip", "-6", "addr", "add", a.String()+"/64", "dev", name, "nodad").CombinedOutput()
		if err != nil {
			t.Fatalf("ip -6 addr add %s: %v: %s", a, err, out)
		}
	}
	l.a.Do(t, func() { add6(l.nameA, testDir6) })
	l.b.Do(t, func() {
		add6(l.nameB, testRIP6)
		if out, err := exec.Command("ip", "-6", "route", "add", "default", "via", testDir6.String(), "dev", l.nameB).CombinedOutput(); err != nil {
			t.Fatalf("IPv6 default route: %v: %s", err, out)
		}
	})
	return l
}

// TestRunTUNIPv6 is TestRunTUN for an IPv6 VIP: IPv6-in-IPv6 to the real
// reaches the VIP's socket, decapsulated in userspace alone or by the eBPF
// program, the reply leaves from the VIP on the LAN, the kernel sends no
// ICMPv6 error for next header 41 while Run lasts, the counters say what
// was taken and refused, and everything is undone at exit.
func TestRunTUNIPv6(t *testing.T) {
	for _, dm := range []Decap{DecapUserspace, DecapBPF} {
		t.Run(dm.String(), func(t *testing.T) { testRunTUNIPv6(t, dm) })
	}
}

func testRunTUNIPv6(t *testing.T, dm Decap) {
	l := newLab6(t)
	tun := testName(t, "t")
	vipPort := netip.AddrPortFrom(testVIP6, 9999)
	toVIP := udpPacket6(t, testClient6, vipPort, []byte("hello"))
	capt := l.capture(t)
	l.b.Do(t, func() { writeSysctl(t, "net/ipv6/icmp/ratelimit", "0") })

	// Control: with no raw socket, b's kernel has no handler for next
	// header 41 and answers with Parameter Problem (unrecognized next
	// header). This proves the capture would see it.
	l.sendIP6IP6(t, toVIP)
	paramProblems := 0
	isParamProblem := func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if ok && ip != nil && ip.SrcIP.Equal(testRIP6.AsSlice()) && ic.TypeCode.Type() == layers.ICMPv6TypeParameterProblem {
			paramProblems++
			return true
		}
		return false
	}
	if ok, _ := capt.watch(t, 2*time.Second, isParamProblem); !ok {
		t.Fatalf("control: no ICMPv6 parameter problem from %s before Run: does this kernel have ip6_tunnel?", testRIP6)
	}

	stop := l.startRun(t, Options{VIPs: []netip.Addr{testVIP6}, Mode: TUN, TunName: tun, Decap: dm})
	var ln *net.UDPConn
	l.b.Do(t, func() {
		if !onLo(t, testVIP6) {
			t.Fatalf("VIP %s not on lo", testVIP6)
		}
		link, err := netlink.LinkByName(tun)
		if err != nil {
			t.Fatalf("tunnel device: %v", err)
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is not up", tun)
		}
		if v, _ := readSysctl(t, "net/ipv6/conf/"+tun+"/disable_ipv6"); v != "0" {
			t.Errorf("IPv6 off on %s", tun)
		}
		if ln, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(vipPort)); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()

	l.sendIP6IP6(t,
		toVIP,
		udpPacket6(t, testClient6, netip.AddrPortFrom(testVIP6b, 9999), []byte("not a VIP")),
		[]byte("not an IPv6 packet at all, but long enough for its header"),
	)
	ln.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, from, err := ln.ReadFromUDPAddrPort(buf)
	if err != nil {
		_, logs := stop()
		t.Fatalf("the VIP's socket got nothing: %v\n%s", err, logs)
	}
	if string(buf[:n]) != "hello" || from != testClient6 {
		t.Fatalf("got %q from %s, want %q from %s", buf[:n], from, "hello", testClient6)
	}
	if _, err := ln.WriteToUDPAddrPort([]byte("world"), from); err != nil {
		t.Fatal(err)
	}
	isReply := func(p gopacket.Packet) bool {
		isParamProblem(p)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		return eth != nil && ip != nil && udp != nil && bytes.Equal(eth.SrcMAC, l.ifB.HardwareAddr) &&
			ip.SrcIP.Equal(testVIP6.AsSlice()) && ip.DstIP.Equal(testClient6.Addr().AsSlice()) &&
			udp.SrcPort == 9999 && udp.DstPort == layers.UDPPort(testClient6.Port()) && string(udp.Payload) == "world"
	}
	paramProblems = 0
	if ok, _ := capt.watch(t, 2*time.Second, isReply); !ok {
		t.Error("the reply from the VIP did not leave the real server on the veth")
	}
	capt.watch(t, 200*time.Millisecond, func(p gopacket.Packet) bool { isParamProblem(p); return false })
	if paramProblems != 0 {
		t.Errorf("the real server sent %d ICMPv6 parameter problems while the raw socket was open", paramProblems)
	}

	err, logs := stop()
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, logs)
	}
	if stacks := allStacks(); strings.Contains(stacks, "(*decap).run") {
		t.Errorf("a decapsulator goroutine outlived Run:\n%s", stacks)
	}
	if strings.Contains(logs, "IPIP decapsulation stopped") {
		t.Errorf("an IPIP decapsulator ran for IPv6 VIPs alone:\n%s", logs)
	}
	want := []string{"IPv6-in-IPv6 decapsulation stopped", " decapsulated=1", "rejected=2", "malformed=1", "not_vip=1", "tun_offloads=true", "decap=userspace"}
	if dm == DecapBPF {
		// The packet to the VIP never reached userspace.
		want = []string{"IPv6-in-IPv6 decapsulation stopped", " decapsulated=0", "bpf_decapsulated=1", "bpf_failed=0", "rejected=2", "malformed=1", "not_vip=1", "decap=bpf+userspace"}
	}
	for _, want := range want {
		if !strings.Contains(logs, want) {
			t.Errorf("exit log lacks %s:\n%s", want, logs)
		}
	}
	l.b.Do(t, func() {
		if onLo(t, testVIP6) {
			t.Error("VIP still on lo after Run")
		}
		if _, err := netlink.LinkByName(tun); err == nil {
			t.Errorf("tunnel device %s still there after Run", tun)
		}
	})
}
