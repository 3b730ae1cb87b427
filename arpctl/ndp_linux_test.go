package arpctl

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	addrA6 = netip.MustParseAddr("fd00:201::1")
	addrB6 = netip.MustParseAddr("fd00:201::2")
)

// newLab6 is newLab with IPv6 addresses beside the IPv4 ones (without DAD,
// so they are usable at once).
func newLab6(t *testing.T) *lab {
	t.Helper()
	l := newLab(t)
	add := func(name string, a netip.Addr) {
		out, err := exec.Command("ip", "-6", "addr", "add", a.String()+"/64", "dev", name, "nodad").CombinedOutput()
		if err != nil {
			t.Fatalf("ip -6 addr add %s: %v: %s", a, err, out)
		}
	}
	l.a.Do(t, func() { add(l.nameA, addrA6) })
	l.b.Do(t, func() { add(l.nameB, addrB6) })
	return l
}

func TestAddRemoveVIP6(t *testing.T) {
	l := newLab6(t)
	vip := netip.MustParseAddr("fd00:201::100")
	l.a.Do(t, func() {
		added, err := AddVIP(l.nameA, vip)
		if err != nil || !added {
			t.Fatalf("first AddVIP = %v, %v; want true, nil", added, err)
		}
		link, err := netlink.LinkByName(l.nameA)
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range addrs {
			if ip, _ := netip.AddrFromSlice(a.IP); ip == vip {
				found = true
				if ones, _ := a.Mask.Size(); ones != 128 {
					t.Errorf("VIP prefix /%d, want /128", ones)
				}
				if a.Flags&unix.IFA_F_NODAD == 0 || a.Flags&unix.IFA_F_TENTATIVE != 0 {
					t.Errorf("VIP flags %#x: want nodad and not tentative", a.Flags)
				}
				// Deprecated, so never the source of the host's own
				// connections, and valid forever.
				if a.Flags&unix.IFA_F_DEPRECATED == 0 || a.PreferedLft != 0 || uint32(a.ValidLft) != lifetimeForever {
					t.Errorf("VIP flags %#x, preferred %d, valid %d: want deprecated, preferred 0, valid forever", a.Flags, a.PreferedLft, a.ValidLft)
				}
			}
		}
		if !found {
			t.Fatalf("%s not on %s: %v", vip, l.nameA, addrs)
		}
		if has, err := HasVIP(l.nameA, vip); err != nil || !has {
			t.Fatalf("HasVIP = %v, %v", has, err)
		}
		// The host's own connections to the LAN leave from its /64
		// address, not from the /128 VIP, whose prefix matches more.
		if out, err := exec.Command("ip", "-6", "route", "get", addrB6.String()).CombinedOutput(); err != nil || !strings.Contains(string(out), "src "+addrA6.String()+" ") {
			t.Errorf("ip -6 route get %s: %v: %s; want src %s", addrB6, err, out, addrA6)
		}
		if added, err = AddVIP(l.nameA, vip); err != nil || added {
			t.Fatalf("second AddVIP = %v, %v; want false, nil", added, err)
		}
		// The interface's own /64 address is on it, but not as a VIP.
		if has, err := HasVIP(l.nameA, addrA6); err != nil || has {
			t.Fatalf("HasVIP of the /64 address = %v, %v; want false", has, err)
		}
		if err := RemoveVIP(l.nameA, vip); err != nil {
			t.Fatal(err)
		}
		if has, err := HasVIP(l.nameA, vip); err != nil || has {
			t.Fatalf("HasVIP after RemoveVIP = %v, %v", has, err)
		}
		if err := RemoveVIP(l.nameA, vip); err != nil {
			t.Fatalf("RemoveVIP of a missing VIP: %v", err)
		}
		if _, err := AddVIP(l.nameA, netip.MustParseAddr("fe80::1%"+l.nameA)); err == nil {
			t.Fatal("AddVIP accepted a zoned address")
		}
	})
}

// TestAnnounce6: the advertisements are well-formed on the wire, and the
// peer's kernel, which has a stale entry for the VIP with another MAC,
// takes the announcer's MAC for it (it checks hop limit, checksum and
// Override).
func TestAnnounce6(t *testing.T) {
	l := newLab6(t)
	vip := netip.MustParseAddr("fd00:201::100")
	old := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42}
	var c *packet.Conn
	l.b.Do(t, func() {
		err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.ifB.Index, Family: netlink.FAMILY_V6,
			State: netlink.NUD_STALE, IP: vip.AsSlice(), HardwareAddr: old})
		if err != nil {
			t.Fatal(err)
		}
		if c, err = packet.Listen(l.ifB, packet.Raw, etherTypeIPv6, nil); err != nil {
			t.Fatal(err)
		}
	})
	defer c.Close()
	l.a.Do(t, func() {
		if _, err := AddVIP(l.nameA, vip); err != nil {
			t.Fatal(err)
		}
	})

	const count = 2
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
			t.Fatalf("after %d advertisements: %v", got, err)
		}
		pkt := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
		na, ok := pkt.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
		if !ok || !na.TargetAddress.Equal(vip.AsSlice()) {
			continue // the peer's own ND and MLD traffic
		}
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !bytes.Equal(eth.DstMAC, allNodesMAC) || !ip.DstIP.Equal(net.ParseIP("ff02::1")) || !ip.SrcIP.Equal(vip.AsSlice()) {
			t.Errorf("sent %s -> %s (%s), want from the VIP to ff02::1 (%s)", ip.SrcIP, ip.DstIP, eth.DstMAC, allNodesMAC)
		}
		if ip.HopLimit != 255 {
			t.Errorf("hop limit %d, want 255", ip.HopLimit)
		}
		if !na.Override() || na.Solicited() || na.Router() {
			t.Errorf("flags %#x, want Override only", na.Flags)
		}
		if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, l.ifA.HardwareAddr) {
			t.Errorf("options %v, want the target link-layer address %s", na.Options, l.ifA.HardwareAddr)
		}
		got++
	}
	if got != count {
		t.Fatalf("captured %d advertisements, want %d", got, count)
	}
	l.b.Do(t, func() {
		deadline := time.Now().Add(2 * time.Second)
		for {
			mac, err := neighbourMAC(l.ifB.Index, vip)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(mac, l.ifA.HardwareAddr) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the peer's entry for the VIP is still %s, want %s", mac, l.ifA.HardwareAddr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestNeighborAdvertChecksum(t *testing.T) {
	vip := netip.MustParseAddr("fd00:20::100")
	f := neighborAdvert(net.HardwareAddr{2, 1, 2, 3, 4, 5}, vip)
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	icmp, ok := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if !ok || ip == nil {
		t.Fatalf("not an ICMPv6 packet:\n%s", pkt.Dump())
	}
	// Recompute with gopacket, an independent encoder.
	want := icmp.Checksum
	re := &layers.ICMPv6{TypeCode: icmp.TypeCode}
	if err := re.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, re, gopacket.Payload(f[naFlagsOff:])); err != nil {
		t.Fatal(err)
	}
	if re.Checksum != want {
		t.Fatalf("checksum %#04x, gopacket computes %#04x", want, re.Checksum)
	}
}

func TestResolve6(t *testing.T) {
	l := newLab6(t)

	t.Run("NeighbourTable", func(t *testing.T) {
		ip := netip.MustParseAddr("fd00:201::9")
		fake := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x09}
		l.a.Do(t, func() {
			err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.ifA.Index, Family: netlink.FAMILY_V6,
				State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: fake})
			if err != nil {
				t.Fatal(err)
			}
			mac, hop, err := Resolve(l.nameA, ip, time.Second)
			if err != nil || !bytes.Equal(mac, fake) || hop != ip {
				t.Fatalf("Resolve = %s via %s, %v; want %s via %s", mac, hop, err, fake, ip)
			}
		})
	})

	t.Run("OnTheWire", func(t *testing.T) {
		l.a.Do(t, func() {
			if mac, err := neighbourMAC(l.ifA.Index, addrB6); err != nil || mac != nil {
				t.Fatalf("neighbour table already has %s: %s, %v", addrB6, mac, err)
			}
			mac, hop, err := Resolve(l.nameA, addrB6, 2*time.Second)
			if err != nil || !bytes.Equal(mac, l.ifB.HardwareAddr) || hop != addrB6 {
				t.Fatalf("Resolve = %s via %s, %v; want %s via %s", mac, hop, err, l.ifB.HardwareAddr, addrB6)
			}
		})
	})

	t.Run("Gateway", func(t *testing.T) {
		l.a.Do(t, func() {
			err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.ifA.Index,
				Dst: &net.IPNet{IP: net.ParseIP("2001:db8:9::"), Mask: net.CIDRMask(64, 128)}, Gw: addrB6.AsSlice()})
			if err != nil {
				t.Fatal(err)
			}
			mac, hop, err := Resolve(l.nameA, netip.MustParseAddr("2001:db8:9::9"), 2*time.Second)
			if err != nil || !bytes.Equal(mac, l.ifB.HardwareAddr) || hop != addrB6 {
				t.Fatalf("Resolve = %s via %s, %v; want the gateway's %s via %s", mac, hop, err, l.ifB.HardwareAddr, addrB6)
			}
		})
	})

	t.Run("Silent", func(t *testing.T) {
		l.a.Do(t, func() {
			const timeout = 300 * time.Millisecond
			silent := netip.MustParseAddr("fd00:201::77")
			start := time.Now()
			mac, hop, err := Resolve(l.nameA, silent, timeout)
			elapsed := time.Since(start)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Resolve of a silent address = %s, %v; want a deadline error", mac, err)
			}
			if !strings.HasPrefix(err.Error(), "arpctl: resolve fd00:201::77 on "+l.nameA+": ") || hop != silent {
				t.Errorf("err %v, next hop %s", err, hop)
			}
			if elapsed < timeout || elapsed > timeout+time.Second {
				t.Errorf("gave up after %v, want about %v", elapsed, timeout)
			}
		})
	})

	t.Run("Local", func(t *testing.T) {
		l.a.Do(t, func() {
			if _, _, err := Resolve(l.nameA, addrA6, time.Second); err == nil || !strings.Contains(err.Error(), "local") {
				t.Fatalf("Resolve of a local address: err = %v", err)
			}
		})
	})
}
