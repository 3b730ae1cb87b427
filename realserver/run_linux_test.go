package realserver

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/arpctl"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
)

// The lab: a sender namespace a (testDir, 10.203.0.1/24) and the real
// server namespace b (testRIP, 10.203.0.2/24, default route via a), joined
// by a veth pair. The VIP 10.203.0.100 is on the LAN, as with LVS.
type lab struct {
	a, b         *testNetns
	nameA, nameB string
	ifA, ifB     *net.Interface
}

func newLab(t *testing.T) *lab {
	t.Helper()
	requireRoot(t)
	l := &lab{a: newNetns(t), b: newNetns(t), nameA: testName(t, "a"), nameB: testName(t, "b")}
	l.ifA, l.ifB = vethPair(t, l.a, l.b, l.nameA, testDir.String()+"/24", l.nameB, testRIP.String()+"/24")
	l.b.Do(t, func() {
		if err := netlink.RouteAdd(&netlink.Route{Gw: testDir.AsSlice(), LinkIndex: l.ifB.Index}); err != nil {
			t.Fatalf("default route: %v", err)
		}
	})
	return l
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRun runs Run in b and waits until it logs that it is ready. The
// returned stop cancels it and returns Run's error and its log.
func (l *lab) startRun(t *testing.T, o Options) (stop func() (error, string)) {
	t.Helper()
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	errc := l.b.Go(func() error { return Run(ctx, o, slog.New(slog.NewTextHandler(&logs, nil))) })
	stopped := false
	stop = func() (error, string) {
		if stopped {
			return nil, logs.String()
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err, logs.String()
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5s of cancel")
			return nil, ""
		}
	}
	t.Cleanup(func() { stop() })
	for i := 0; i < 300; i++ {
		if strings.Contains(logs.String(), "realserver: ready") {
			return stop
		}
		select {
		case err := <-errc:
			stopped = true
			t.Fatalf("Run returned before ready: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("Run not ready after 3s:\n%s", logs.String())
	return nil
}

func readSysctl(t *testing.T, key string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + key)
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)), true
}

func writeSysctl(t *testing.T, key, value string) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sysctls reads every key of table that exists, inside the current thread's
// namespace.
func sysctls(t *testing.T, table []arpctl.Sysctl) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, s := range table {
		if v, ok := readSysctl(t, s.Key); ok {
			m[s.Key] = v
		}
	}
	return m
}

func onLo(t *testing.T, ip netip.Addr) bool {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(lo, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IP.Equal(ip.AsSlice()) {
			return true
		}
	}
	return false
}

// capture reads frames on the sender's interface.
type capture struct{ c *packet.Conn }

func (l *lab) capture(t *testing.T) *capture {
	t.Helper()
	var c *packet.Conn
	l.a.Do(t, func() {
		var err error
		const ethPAll = 0x0003 // every protocol, see packet(7)
		if c, err = packet.Listen(l.ifA, packet.Raw, ethPAll, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { c.Close() })
	return &capture{c}
}

// watch reads frames for up to wait, stopping early once stopWhen matches
// one (nil: never). It returns whether stopWhen matched and how many ICMP
// protocol-unreachable messages from the real server it saw.
func (c *capture) watch(t *testing.T, wait time.Duration, stopWhen func(gopacket.Packet) bool) (matched bool, protoUnreach int) {
	t.Helper()
	if err := c.c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for range 1000 {
		n, _, err := c.c.ReadFrom(buf)
		if err != nil {
			return false, protoUnreach // deadline
		}
		p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && ip.SrcIP.Equal(testRIP.AsSlice()) {
			if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok &&
				ic.TypeCode == layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeProtocol) {
				protoUnreach++
			}
		}
		if stopWhen != nil && stopWhen(p) {
			return true, protoUnreach
		}
	}
	t.Fatal("capture: more than 1000 frames")
	return false, 0
}

// sendIPIP sends inner from the sender to the real server's address in an
// outer IPv4 header with protocol 4, built by the sender's kernel.
func (l *lab) sendIPIP(t *testing.T, inner ...[]byte) {
	t.Helper()
	l.a.Do(t, func() {
		c, err := net.ListenPacket("ip4:4", testDir.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, p := range inner {
			if _, err := c.WriteTo(p, &net.IPAddr{IP: testRIP.AsSlice()}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestRunTUN runs TUN mode with each decapsulation: in userspace alone, and
// with the eBPF program taking what it can (here the one IPIP packet to the
// VIP) and userspace the rest.
func TestRunTUN(t *testing.T) {
	for _, dm := range []Decap{DecapUserspace, DecapBPF} {
		t.Run(dm.String(), func(t *testing.T) { testRunTUN(t, dm) })
	}
}

func testRunTUN(t *testing.T, dm Decap) {
	l := newLab(t)
	tun := testName(t, "t")
	vipPort := netip.AddrPortFrom(testVIP, 9999)
	toVIP := udpPacket(t, testClient, vipPort, []byte("hello"))
	capt := l.capture(t)

	table := arpctl.RealServerSysctls(l.nameB, tun)
	var before map[string]string
	l.b.Do(t, func() {
		// No per-peer ICMP rate limit in b, so the kernel answering twice
		// would show twice, and the silence below means something.
		writeSysctl(t, "net/ipv4/icmp_ratelimit", "0")
		before = sysctls(t, table)
	})

	// Control: with no raw socket, b's kernel has no handler for protocol 4
	// and answers with ICMP protocol unreachable. This proves the capture
	// would see it.
	l.sendIPIP(t, toVIP)
	isUnreach := func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ic.TypeCode.Type() == layers.ICMPv4TypeDestinationUnreachable
	}
	if ok, n := capt.watch(t, 2*time.Second, isUnreach); !ok || n != 1 {
		t.Fatalf("control: no ICMP protocol unreachable from %s before Run (seen %d): does this kernel have ipip?", testRIP, n)
	}

	stop := l.startRun(t, Options{VIPs: []netip.Addr{testVIP}, Mode: TUN, TunName: tun, Decap: dm})

	var ln *net.UDPConn
	l.b.Do(t, func() {
		if !onLo(t, testVIP) {
			t.Fatalf("VIP %s not on lo", testVIP)
		}
		link, err := netlink.LinkByName(tun)
		if err != nil {
			t.Fatalf("tunnel device: %v", err)
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s is not up", tun)
		}
		for _, s := range table {
			if got, _ := readSysctl(t, s.Key); got != s.Value {
				t.Errorf("%s = %q, want %s", s.Key, got, s.Value)
			}
		}
		if ln, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(vipPort)); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()

	l.sendIPIP(t,
		toVIP,
		udpPacket(t, testClient, netip.MustParseAddrPort("10.203.0.200:9999"), []byte("not a VIP")),
		[]byte("not an IPv4 packet at all, but long enough"),
	)

	ln.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, from, err := ln.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("the VIP's socket got nothing: %v", err)
	}
	if string(buf[:n]) != "hello" || from != testClient {
		t.Fatalf("got %q from %s, want %q from %s", buf[:n], from, "hello", testClient)
	}
	if _, err := ln.WriteToUDPAddrPort([]byte("world"), from); err != nil {
		t.Fatal(err)
	}

	isReply := func(p gopacket.Packet) bool {
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		return eth != nil && ip != nil && udp != nil && bytes.Equal(eth.SrcMAC, l.ifB.HardwareAddr) &&
			ip.SrcIP.Equal(testVIP.AsSlice()) && ip.DstIP.Equal(testClient.Addr().AsSlice()) &&
			udp.SrcPort == 9999 && udp.DstPort == layers.UDPPort(testClient.Port()) && string(udp.Payload) == "world"
	}
	ok, unreach := capt.watch(t, 2*time.Second, isReply)
	if !ok {
		t.Error("the reply from the VIP did not leave the real server on the veth")
	}
	_, late := capt.watch(t, 200*time.Millisecond, nil)
	if unreach+late != 0 {
		t.Errorf("the real server sent %d ICMP protocol unreachable while the raw socket was open", unreach+late)
	}

	err, logs := stop()
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, logs)
	}
	if stacks := allStacks(); strings.Contains(stacks, "(*decap).run") {
		t.Errorf("the decapsulator goroutine outlived Run:\n%s", stacks)
	}
	want := []string{" decapsulated=1", "rejected=2", "malformed=1", "not_vip=1", "coalesced_frames=0", "coalesced_segments=0", "tun_offloads=true", "decap=userspace"}
	if dm == DecapBPF {
		// The packet to the VIP never reached userspace.
		want = []string{" decapsulated=0", "bpf_decapsulated=1", "bpf_failed=0", "rejected=2", "malformed=1", "not_vip=1", "decap=bpf+userspace"}
	}
	for _, want := range want {
		if !strings.Contains(logs, want) {
			t.Errorf("exit log lacks %s:\n%s", want, logs)
		}
	}
	l.b.Do(t, func() {
		if onLo(t, testVIP) {
			t.Error("VIP still on lo after Run")
		}
		if _, err := netlink.LinkByName(tun); err == nil {
			t.Errorf("tunnel device %s still there after Run", tun)
		}
		after := sysctls(t, table)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s = %s after Run, want %s restored", k, after[k], v)
			}
		}
	})
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func TestRunDR(t *testing.T) {
	l := newLab(t)
	keep := netip.MustParseAddr("10.203.0.101") // on lo before Run: must stay
	table := arpctl.RealServerSysctls(l.nameB)
	var before map[string]string
	l.b.Do(t, func() {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: netlink.NewIPNet(keep.AsSlice())}); err != nil {
			t.Fatal(err)
		}
		before = sysctls(t, table)
	})
	// Interface left empty: Run takes it from b's default route.
	stop := l.startRun(t, Options{VIPs: []netip.Addr{testVIP, keep}, Mode: DR})

	var ln *net.UDPConn
	l.b.Do(t, func() {
		for _, s := range table {
			if got, _ := readSysctl(t, s.Key); got != s.Value {
				t.Errorf("%s = %q, want %s", s.Key, got, s.Value)
			}
		}
		if _, err := netlink.LinkByName(DefaultTunName); err == nil {
			t.Error("DR mode created a tunnel device")
		}
		var err error
		if ln, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(testVIP, 9999))); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()

	l.a.Do(t, func() {
		// arp_ignore=1: nobody answers ARP for the VIP on the LAN.
		if mac, hop, err := arpctl.Resolve(l.nameA, testVIP, 300*time.Millisecond); err == nil || hop != testVIP {
			t.Errorf("ARP for the VIP: %s via %s, %v; want no answer", mac, hop, err)
		}
		// The director sends to the VIP by the real server's MAC: a route
		// to the VIP through the real server does the same in a.
		err := netlink.RouteAdd(&netlink.Route{Dst: netlink.NewIPNet(testVIP.AsSlice()), Gw: testRIP.AsSlice(), LinkIndex: l.ifA.Index})
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(testVIP, 9999)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	})
	ln.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	if n, _, err := ln.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("the VIP's socket got %q, %v; want hello", buf[:n], err)
	}

	if err, logs := stop(); err != nil {
		t.Fatalf("Run: %v\n%s", err, logs)
	}
	l.b.Do(t, func() {
		if onLo(t, testVIP) {
			t.Error("VIP still on lo after Run")
		}
		if !onLo(t, keep) {
			t.Error("Run removed a VIP it did not add")
		}
		after := sysctls(t, table)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s = %s after Run, want %s restored", k, after[k], v)
			}
		}
	})
}

// TestRunFailsClean checks Run leaves nothing behind when it fails to set
// up and when it is stopped before it starts.
func TestRunFailsClean(t *testing.T) {
	l := newLab(t)
	table := arpctl.RealServerSysctls(l.nameB)
	l.b.Do(t, func() {
		before := sysctls(t, table)
		// The tunnel name is taken by the veth: creating the TUN fails.
		err := Run(context.Background(), Options{VIPs: []netip.Addr{testVIP}, Mode: TUN, TunName: l.nameB}, nil)
		if err == nil || !strings.Contains(err.Error(), "TUN") {
			t.Fatalf("Run with a taken tunnel name: err = %v", err)
		}
		err = Run(context.Background(), Options{VIPs: []netip.Addr{testVIP}, Mode: DR, Interface: l.nameB + "x"}, nil)
		if err == nil || !strings.Contains(err.Error(), "interface "+l.nameB+"x") {
			t.Fatalf("Run with a missing interface: err = %v", err)
		}
		// A context that is already done: set up, then undo at once.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Run(ctx, Options{VIPs: []netip.Addr{testVIP}, Mode: TUN, TunName: testName(t, "t"), Interface: l.nameB}, nil); err != nil {
			t.Fatalf("Run with a done context: %v", err)
		}
		if onLo(t, testVIP) {
			t.Error("a failed Run left the VIP on lo")
		}
		after := sysctls(t, table)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s = %s after a failed Run, want %s", k, after[k], v)
			}
		}
	})
}
