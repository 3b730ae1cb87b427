package arpctl

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
)

// lab is two namespaces joined by a veth pair: a (10.201.0.1/24) and b
// (10.201.0.2/24). The addresses are private to the namespaces.
type lab struct {
	a, b         *testNetns
	nameA, nameB string
	ifA, ifB     *net.Interface
}

var (
	addrA = netip.MustParseAddr("10.201.0.1")
	addrB = netip.MustParseAddr("10.201.0.2")
)

func newLab(t *testing.T) *lab {
	t.Helper()
	requireRoot(t)
	l := &lab{a: newNetns(t), b: newNetns(t), nameA: testName(t, "a"), nameB: testName(t, "b")}
	l.ifA, l.ifB = vethPair(t, l.a, l.b, l.nameA, addrA.String()+"/24", l.nameB, addrB.String()+"/24")
	return l
}

func addrsOf(t *testing.T, ifname string) []netip.Prefix {
	t.Helper()
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out
}

func hasPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func TestAddRemoveVIP(t *testing.T) {
	l := newLab(t)
	vip := netip.MustParseAddr("10.201.0.100")
	l.a.Do(t, func() {
		added, err := AddVIP(l.nameA, vip)
		if err != nil || !added {
			t.Fatalf("first AddVIP = %v, %v; want true, nil", added, err)
		}
		if !hasPrefix(addrsOf(t, l.nameA), netip.PrefixFrom(vip, 32)) {
			t.Fatalf("%s/32 not on %s: %v", vip, l.nameA, addrsOf(t, l.nameA))
		}
		added, err = AddVIP(l.nameA, vip)
		if err != nil || added {
			t.Fatalf("second AddVIP = %v, %v; want false, nil", added, err)
		}
		if has, err := HasVIP(l.nameA, vip); err != nil || !has {
			t.Fatalf("HasVIP of the VIP = %v, %v", has, err)
		}
		if has, err := HasVIP(l.nameA, addrA); err != nil || has {
			t.Fatalf("HasVIP of the /24 interface address = %v, %v; want false", has, err)
		}
		// An address already there with another prefix is not ours to add.
		added, err = AddVIP(l.nameA, addrA)
		if err != nil || added {
			t.Fatalf("AddVIP of the /24 address = %v, %v; want false, nil", added, err)
		}
		if err := RemoveVIP(l.nameA, vip); err != nil {
			t.Fatal(err)
		}
		if hasPrefix(addrsOf(t, l.nameA), netip.PrefixFrom(vip, 32)) {
			t.Fatalf("%s still on %s after RemoveVIP", vip, l.nameA)
		}
		if !hasPrefix(addrsOf(t, l.nameA), netip.PrefixFrom(addrA, 24)) {
			t.Fatalf("RemoveVIP took the interface address too: %v", addrsOf(t, l.nameA))
		}
		if err := RemoveVIP(l.nameA, vip); err != nil {
			t.Fatalf("RemoveVIP of an absent VIP: %v", err)
		}
		if has, err := HasVIP(l.nameA, vip); err != nil || has {
			t.Fatalf("HasVIP after RemoveVIP = %v, %v", has, err)
		}
		_, err = AddVIP(l.nameA+"x", vip)
		if err == nil || !strings.HasPrefix(err.Error(), "arpctl: add VIP 10.201.0.100 on "+l.nameA+"x: ") {
			t.Fatalf("AddVIP on a missing interface: err = %v", err)
		}
		if _, err := AddVIP(l.nameA, netip.MustParseAddr("::ffff:10.201.0.100")); err == nil {
			t.Fatal("AddVIP accepted an IPv4-mapped IPv6 address")
		}
	})
}

func TestAnnounce(t *testing.T) {
	l := newLab(t)
	vip := netip.MustParseAddr("10.201.0.100")
	var c *packet.Conn
	l.b.Do(t, func() {
		var err error
		if c, err = packet.Listen(l.ifB, packet.Raw, etherTypeARP, nil); err != nil {
			t.Fatal(err)
		}
	})
	defer c.Close()

	const count = 3
	l.a.Do(t, func() {
		if err := Announce(l.nameA, vip, count, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	})

	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	got := 0
	for i := 0; i < 50 && got < count; i++ {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d announcements: %v", got, err)
		}
		pkt := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
		a, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
		if !ok || !bytes.Equal(a.SourceProtAddress, vip.AsSlice()) {
			continue // the peer's own ARP traffic
		}
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !bytes.Equal(eth.DstMAC, layers.EthernetBroadcast) {
			t.Errorf("Ethernet destination %s, want broadcast", eth.DstMAC)
		}
		if !bytes.Equal(eth.SrcMAC, l.ifA.HardwareAddr) || !bytes.Equal(a.SourceHwAddress, l.ifA.HardwareAddr) {
			t.Errorf("sender MAC %s / %s, want %s", eth.SrcMAC, net.HardwareAddr(a.SourceHwAddress), l.ifA.HardwareAddr)
		}
		if a.Operation != layers.ARPRequest {
			t.Errorf("operation %d, want request", a.Operation)
		}
		if !bytes.Equal(a.DstProtAddress, vip.AsSlice()) {
			t.Errorf("target IP %v, want the VIP %s", net.IP(a.DstProtAddress), vip)
		}
		if !bytes.Equal(a.DstHwAddress, make([]byte, 6)) {
			t.Errorf("target MAC %s, want zero", net.HardwareAddr(a.DstHwAddress))
		}
		got++
	}
	if got != count {
		t.Fatalf("captured %d announcements, want %d", got, count)
	}

	l.a.Do(t, func() {
		if err := Announce(l.nameA, vip, 0, 0); err == nil {
			t.Error("Announce with count 0 succeeded")
		}
		err := Announce("lo", vip, 1, 0)
		if err == nil || !strings.HasPrefix(err.Error(), "arpctl: announce 10.201.0.100 on lo: ") {
			t.Errorf("Announce on lo: err = %v", err)
		}
	})
}

func TestResolve(t *testing.T) {
	l := newLab(t)

	t.Run("NeighbourTable", func(t *testing.T) {
		// A permanent entry for an address nobody owns: only the table
		// can answer, the wire cannot.
		ip := netip.MustParseAddr("10.201.0.9")
		fake := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x09}
		l.a.Do(t, func() {
			err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.ifA.Index, Family: netlink.FAMILY_V4,
				State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: fake})
			if err != nil {
				t.Fatal(err)
			}
			mac, hop, err := Resolve(l.nameA, ip, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mac, fake) || hop != ip {
				t.Fatalf("Resolve = %s via %s, want %s via %s", mac, hop, fake, ip)
			}
		})
	})

	t.Run("OnTheWire", func(t *testing.T) {
		l.a.Do(t, func() {
			if mac, err := neighbourMAC(l.ifA.Index, addrB); err != nil || mac != nil {
				t.Fatalf("neighbour table already has %s: %s, %v", addrB, mac, err)
			}
			mac, hop, err := Resolve(l.nameA, addrB, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mac, l.ifB.HardwareAddr) || hop != addrB {
				t.Fatalf("Resolve = %s via %s, want %s via %s", mac, hop, l.ifB.HardwareAddr, addrB)
			}
		})
	})

	t.Run("Gateway", func(t *testing.T) {
		l.a.Do(t, func() {
			dst := netip.MustParsePrefix("198.51.100.0/24")
			err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.ifA.Index,
				Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(24, 32)}, Gw: addrB.AsSlice()})
			if err != nil {
				t.Fatal(err)
			}
			mac, hop, err := Resolve(l.nameA, netip.MustParseAddr("198.51.100.9"), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mac, l.ifB.HardwareAddr) || hop != addrB {
				t.Fatalf("Resolve = %s via %s, want the gateway's %s via %s", mac, hop, l.ifB.HardwareAddr, addrB)
			}
		})
	})

	t.Run("DefaultGateway", func(t *testing.T) {
		l.a.Do(t, func() {
			if _, err := DefaultGateway(l.nameA); err == nil {
				t.Fatal("a default gateway before there is a default route")
			}
			if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.ifA.Index, Gw: addrB.AsSlice()}); err != nil {
				t.Fatal(err)
			}
			defer netlink.RouteDel(&netlink.Route{LinkIndex: l.ifA.Index, Gw: addrB.AsSlice()})
			if gw, err := DefaultGateway(l.nameA); err != nil || gw != addrB {
				t.Fatalf("DefaultGateway = %v, %v; want %v", gw, err, addrB)
			}
		})
	})

	t.Run("Silent", func(t *testing.T) {
		l.a.Do(t, func() {
			const timeout = 300 * time.Millisecond
			start := time.Now()
			mac, hop, err := Resolve(l.nameA, netip.MustParseAddr("10.201.0.77"), timeout)
			elapsed := time.Since(start)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Resolve of a silent address = %s, %v; want a deadline error", mac, err)
			}
			if !strings.HasPrefix(err.Error(), "arpctl: resolve 10.201.0.77 on "+l.nameA+": ") {
				t.Errorf("error not wrapped with context: %v", err)
			}
			if hop != netip.MustParseAddr("10.201.0.77") {
				t.Errorf("next hop %s, want the address itself", hop)
			}
			if elapsed < timeout || elapsed > timeout+time.Second {
				t.Errorf("gave up after %v, want about %v", elapsed, timeout)
			}
		})
	})

	t.Run("Local", func(t *testing.T) {
		l.a.Do(t, func() {
			if _, _, err := Resolve(l.nameA, addrA, time.Second); err == nil || !strings.Contains(err.Error(), "local") {
				t.Fatalf("Resolve of a local address: err = %v", err)
			}
		})
	})
}

func readSysctl(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile(procSys + "/" + key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestApplyInNetns(t *testing.T) {
	l := newLab(t)
	table := RealServerSysctls(l.nameA)
	rootBefore := map[string]string{}
	for _, s := range table {
		if !strings.Contains(s.Key, l.nameA) {
			rootBefore[s.Key] = readSysctl(t, s.Key)
		}
	}

	nsBefore := map[string]string{}
	var restore func() error
	l.a.Do(t, func() {
		for _, s := range table {
			nsBefore[s.Key] = readSysctl(t, s.Key)
		}
		var err error
		if restore, err = Apply(table); err != nil {
			t.Fatal(err)
		}
		for _, s := range table {
			if got := readSysctl(t, s.Key); got != s.Value {
				t.Errorf("in the namespace %s = %s, want %s", s.Key, got, s.Value)
			}
		}
	})
	for k, v := range rootBefore {
		if got := readSysctl(t, k); got != v {
			t.Errorf("Apply in a namespace changed the host's %s: %s -> %s", k, v, got)
		}
	}

	// restore runs on this goroutine, outside the namespace: the open files
	// still write into the namespace they came from.
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	l.a.Do(t, func() {
		for k, v := range nsBefore {
			if got := readSysctl(t, k); got != v {
				t.Errorf("after restore %s = %s, want %s", k, got, v)
			}
		}
	})
	for k, v := range rootBefore {
		if got := readSysctl(t, k); got != v {
			t.Errorf("restore changed the host's %s: %s -> %s", k, v, got)
		}
	}
}
