package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/offload"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// requireRoot skips tests that build namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

func testPrefix() string { return fmt.Sprintf("gvslab%06d", rand.IntN(1000000)) }

// newTestLab builds a lab and checks at cleanup that Close removed every
// namespace.
func newTestLab(t *testing.T, prefix string, reals int) *Lab {
	t.Helper()
	start := time.Now()
	l, err := New(Options{Prefix: prefix, Reals: reals, Logf: t.Logf})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Logf("lab %s built in %v", prefix, time.Since(start))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertGone(t, prefix, reals)
	})
	return l
}

func labNamespaces(prefix string, reals int) []string {
	names := []string{prefix + "-client", prefix + "-router", prefix + "-lan", prefix + "-director"}
	for i := 1; i <= reals; i++ {
		names = append(names, fmt.Sprintf("%s-rs%d", prefix, i))
	}
	return names
}

func assertGone(t *testing.T, prefix string, reals int) {
	t.Helper()
	for _, name := range labNamespaces(prefix, reals) {
		if h, err := netns.GetFromName(name); err == nil {
			h.Close()
			t.Errorf("namespace %s still exists", name)
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// udpRoundTrip sends msg from h to raddr and checks the echo comes back
// from raddr (the socket is connected: the kernel drops anything else).
func udpRoundTrip(t *testing.T, h *Host, raddr netip.AddrPort, msg string) {
	t.Helper()
	c, err := h.DialUDP(ctx(t), raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	// A few tries: the first datagram may wait for ARP at each hop.
	for try := 0; try < 3; try++ {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("write to %s: %v", raddr, err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			if got := string(buf[:n]); got != msg {
				t.Fatalf("echo from %s = %q, want %q", raddr, got, msg)
			}
			return
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read from %s: %v", raddr, err)
		}
	}
	t.Fatalf("no echo from %s via %s", raddr, h.Name)
}

func TestLab(t *testing.T) {
	requireRoot(t)
	prefix := testPrefix()
	l := newTestLab(t, prefix, 2)

	t.Run("hosts", func(t *testing.T) {
		want := []struct {
			h          *Host
			name, addr string
		}{
			{l.Client, "client", "10.10.0.2"},
			{l.Router, "router", "10.10.0.1"},
			{l.Director, "director", "10.20.0.2"},
			{l.Reals[0], "rs1", "10.20.0.11"},
			{l.Reals[1], "rs2", "10.20.0.12"},
		}
		for _, w := range want {
			if w.h.Name != w.name || w.h.NS != prefix+"-"+w.name || w.h.Iface != "eth0" || w.h.Addr.String() != w.addr {
				t.Errorf("host %+v, want %s in %s-%s with eth0 %s", w.h, w.name, prefix, w.name, w.addr)
			}
		}
		if len(l.Reals) != 2 || l.LAN.String() != "10.20.0.0/24" || l.Gateway.String() != "10.20.0.1" {
			t.Errorf("lab: %d reals, LAN %s, gateway %s", len(l.Reals), l.LAN, l.Gateway)
		}
	})

	t.Run("Do", func(t *testing.T) {
		for _, h := range l.hosts() {
			wantLinks := map[string]bool{"lo": true, "eth0": true}
			if h == l.Router {
				wantLinks["eth1"] = true
			}
			err := h.Do(func() error {
				// The thread is in h's namespace.
				self, err := os.Readlink("/proc/thread-self/ns/net")
				if err != nil {
					return err
				}
				var st unix.Stat_t
				if err := unix.Stat("/run/netns/"+h.NS, &st); err != nil {
					return err
				}
				if want := fmt.Sprintf("net:[%d]", st.Ino); self != want {
					return fmt.Errorf("thread namespace %s, want %s", self, want)
				}
				links, err := netlink.LinkList()
				if err != nil {
					return err
				}
				got := map[string]bool{}
				for _, link := range links {
					got[link.Attrs().Name] = true
					if link.Attrs().OperState != netlink.OperUp && link.Attrs().Name != "lo" {
						t.Errorf("%s/%s is %s", h.Name, link.Attrs().Name, link.Attrs().OperState)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(wantLinks) {
					t.Errorf("%s links %v, want %v", h.Name, got, wantLinks)
				}
				eth, err := netlink.LinkByName(h.Iface)
				if err != nil {
					return err
				}
				if eth.Attrs().HardwareAddr.String() != h.MAC.String() || eth.Attrs().MTU != 1500 {
					t.Errorf("%s/%s: MAC %s MTU %d, want %s 1500", h.Name, h.Iface, eth.Attrs().HardwareAddr, eth.Attrs().MTU, h.MAC)
				}
				addrs, err := netlink.AddrList(eth, netlink.FAMILY_V4)
				if err != nil {
					return err
				}
				if len(addrs) != 1 || addrs[0].IPNet.String() != h.Addr.String()+"/24" {
					t.Errorf("%s/%s addresses %v, want %s/24", h.Name, h.Iface, addrs, h.Addr)
				}
				// The kernel's defaults for a veth stay (Options.OffloadsOff is off).
				for _, f := range []offload.Feature{offload.TxChecksum, offload.TSO, offload.GSO} {
					if on, err := offload.Get(h.Iface, f); err != nil || !on {
						t.Errorf("%s/%s: %s on=%v err=%v, want the kernel's default, on", h.Name, h.Iface, f, on, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s: Do: %v", h.Name, err)
			}
		}
		want := errors.New("from fn")
		if err := l.Client.Do(func() error { return want }); err != want {
			t.Errorf("Do returned %v, want fn's error", err)
		}
		if err := (&Host{Name: "x", NS: prefix + "-nothere"}).Do(func() error { return nil }); err == nil {
			t.Error("Do in a missing namespace succeeded")
		}
	})

	t.Run("LAN bridge", func(t *testing.T) {
		lan := &Host{Name: "lan", NS: prefix + "-lan"}
		err := lan.Do(func() error {
			br, err := netlink.LinkByName("br0")
			if err != nil {
				return err
			}
			if br.Type() != "bridge" || br.Attrs().OperState != netlink.OperUp {
				t.Errorf("br0 is a %s, %s", br.Type(), br.Attrs().OperState)
			}
			for _, port := range []string{"router", "director", "rs1", "rs2"} {
				link, err := netlink.LinkByName(port)
				if err != nil {
					return err
				}
				if link.Attrs().MasterIndex != br.Attrs().Index || link.Type() != "veth" {
					t.Errorf("lan/%s: %s with master %d, want a veth on br0 (%d)", port, link.Type(), link.Attrs().MasterIndex, br.Attrs().Index)
				}
				if on, err := offload.Get(port, offload.TSO); err != nil || !on {
					t.Errorf("lan/%s: TSO on=%v err=%v, want the kernel's default, on", port, on, err)
				}
			}
			v, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6")
			if err == nil && strings.TrimSpace(string(v)) != "1" {
				t.Errorf("IPv6 on in the lan namespace")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Command", func(t *testing.T) {
		if _, err := exec.LookPath("ip"); err != nil {
			t.Skip("ip binary not found")
		}
		out, err := l.Router.Command(ctx(t), "cat", "/proc/sys/net/ipv4/ip_forward").Output()
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Errorf("router ip_forward = %q, %v; want 1", out, err)
		}
		out, err = l.Director.Command(ctx(t), "ip", "-o", "-4", "addr", "show", "dev", "eth0").Output()
		if err != nil || !strings.Contains(string(out), "10.20.0.2/24") {
			t.Errorf("director addresses %q, %v; want 10.20.0.2/24", out, err)
		}
		if err := l.Client.Command(ctx(t), "ip", "link", "show", "eth1").Run(); err == nil {
			t.Error("client has an eth1")
		}
	})

	t.Run("UDP through the router", func(t *testing.T) {
		e, err := l.Reals[0].StartEcho("udp", netip.MustParseAddrPort("0.0.0.0:7"))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		r, err := l.Router.StartEcho("udp", netip.MustParseAddrPort("10.10.0.1:7"))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		udpRoundTrip(t, l.Client, netip.MustParseAddrPort("10.20.0.11:7"), "hello rs1")
		udpRoundTrip(t, l.Client, netip.MustParseAddrPort("10.10.0.1:7"), "hello router")
		s := e.Stats()
		if s.Datagrams < 1 || s.Peers[l.Client.Addr] != s.Datagrams || len(s.Peers) != 1 || s.Bytes != int64(s.Datagrams*len("hello rs1")) {
			t.Errorf("rs1 echo stats %+v, want datagrams all from %s", s, l.Client.Addr)
		}
		if s.Conns != 0 {
			t.Errorf("UDP echo counted %d connections", s.Conns)
		}
	})

	t.Run("TCP through the router", func(t *testing.T) {
		e, err := l.Reals[1].StartEcho("tcp", netip.MustParseAddrPort("10.20.0.12:8080"))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if e.Addr().String() != "10.20.0.12:8080" {
			t.Errorf("echo Addr %s", e.Addr())
		}
		c, err := l.Client.DialTCP(ctx(t), netip.MustParseAddrPort("10.20.0.12:8080"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := []byte("hello over tcp")
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := ioReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
		if la := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); la != l.Client.Addr {
			t.Errorf("client socket address %s, want %s", la, l.Client.Addr)
		}
		s := e.Stats()
		if s.Conns != 1 || s.Peers[l.Client.Addr] != 1 || s.Bytes != int64(len(msg)) || s.Datagrams != 0 {
			t.Errorf("stats %+v, want one connection from %s and %d bytes", s, l.Client.Addr, len(msg))
		}
		// Close with the connection open: the echo ends it.
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(got); err == nil {
			t.Error("connection still open after the echo closed")
		}
		if err := e.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})

	t.Run("UDP answers from the address asked", func(t *testing.T) {
		// rs1 holds the VIP on lo (as a DR real server would); its echo is
		// bound to 0.0.0.0 and must still answer from the VIP.
		rs1 := l.Reals[0]
		err := rs1.Do(func() error {
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			return netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: VIP.AsSlice(), Mask: net.CIDRMask(32, 32)}})
		})
		if err != nil {
			t.Fatalf("add VIP to rs1/lo: %v", err)
		}
		defer rs1.Do(func() error {
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			return netlink.AddrDel(lo, &netlink.Addr{IPNet: &net.IPNet{IP: VIP.AsSlice(), Mask: net.CIDRMask(32, 32)}})
		})
		e, err := rs1.StartEcho("udp", netip.MustParseAddrPort("0.0.0.0:9"))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		// The director reaches the VIP by ARP (rs1 answers: arp_ignore=0).
		udpRoundTrip(t, l.Director, netip.AddrPortFrom(VIP, 9), "to the vip")
		if got := e.Stats().Peers[l.Director.Addr]; got < 1 {
			t.Errorf("echo saw %d datagrams from the director", got)
		}
		// IP_FREEBIND: binding a VIP the host does not have yet works.
		f, err := l.Reals[1].StartEcho("tcp", netip.AddrPortFrom(VIP, 80))
		if err != nil {
			t.Fatalf("echo on a VIP not yet configured: %v", err)
		}
		f.Close()
		if _, err := rs1.StartEcho("sctp", netip.MustParseAddrPort("0.0.0.0:9")); err == nil {
			t.Error("StartEcho accepted sctp")
		}
	})

	t.Run("Capture", func(t *testing.T) {
		rs1 := l.Reals[0]
		e, err := rs1.StartEcho("udp", netip.MustParseAddrPort("10.20.0.11:5000"))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		c, err := rs1.Capture("eth0")
		if err != nil {
			t.Fatal(err)
		}
		udpRoundTrip(t, l.Client, netip.MustParseAddrPort("10.20.0.11:5000"), "captured")
		frames := c.Stop()
		if again := c.Stop(); len(again) != len(frames) {
			t.Errorf("second Stop returned %d frames, first %d", len(again), len(frames))
		}
		path := filepath.Join(t.TempDir(), "rs1.pcap")
		if err := WritePcap(path, frames); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d frames, pcap at %s", len(frames), path)

		var in, out int
		for _, f := range frames {
			if len(f.Data) > 1514 {
				t.Errorf("frame of %d bytes on a 1500-byte MTU link", len(f.Data))
			}
			p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if ip == nil || udp == nil || string(udp.Payload) != "captured" {
				continue
			}
			switch {
			case !f.Outgoing && f.PktType == unix.PACKET_HOST && ip.SrcIP.String() == "10.10.0.2" && ip.DstIP.String() == "10.20.0.11" && udp.DstPort == 5000:
				if eth.DstMAC.String() != rs1.MAC.String() {
					t.Errorf("request to MAC %s, want rs1's %s", eth.DstMAC, rs1.MAC)
				}
				in++
			case f.Outgoing && f.PktType == unix.PACKET_OUTGOING && ip.SrcIP.String() == "10.20.0.11" && ip.DstIP.String() == "10.10.0.2" && udp.SrcPort == 5000:
				if eth.SrcMAC.String() != rs1.MAC.String() {
					t.Errorf("reply from MAC %s, want rs1's %s", eth.SrcMAC, rs1.MAC)
				}
				out++
			default:
				t.Errorf("unexpected frame: outgoing=%v pkttype=%d %s", f.Outgoing, f.PktType, p)
			}
		}
		if in < 1 || out < 1 || in != out {
			t.Errorf("captured %d requests and %d replies, want one or more each, equally many", in, out)
		}
		if c.Dropped() != 0 || c.Err() != nil {
			t.Errorf("capture dropped %d, err %v", c.Dropped(), c.Err())
		}
	})

	t.Run("Sysctl", func(t *testing.T) {
		const key = "net/ipv4/conf/eth0/accept_local"
		read := func(h *Host) string {
			var v []byte
			if err := h.Do(func() (err error) {
				v, err = os.ReadFile("/proc/sys/" + key)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(v))
		}
		before := read(l.Reals[1])
		if err := l.Director.Sysctl(key, "1"); err != nil {
			t.Fatal(err)
		}
		if got := read(l.Director); got != "1" {
			t.Errorf("director %s = %s after Sysctl, want 1", key, got)
		}
		if got := read(l.Reals[1]); got != before {
			t.Errorf("rs2 %s changed from %s to %s", key, before, got)
		}
		if err := l.Director.Sysctl("net.ipv4.conf.eth0.accept_local", "0"); err != nil {
			t.Fatal(err)
		}
		if got := read(l.Director); got != "0" {
			t.Errorf("director %s = %s after dotted Sysctl, want 0", key, got)
		}
		if err := l.Director.Sysctl("net/ipv4/no_such_key", "1"); err == nil {
			t.Error("Sysctl of a missing key succeeded")
		}
	})

	t.Run("SetRealGateway", func(t *testing.T) {
		gateways := func() []string {
			var gws []string
			for _, r := range l.Reals {
				r.Do(func() error {
					routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
					if err != nil {
						t.Error(err)
					}
					for _, rt := range routes {
						if rt.Dst == nil || rt.Dst.String() == "0.0.0.0/0" {
							gws = append(gws, rt.Gw.String())
						}
					}
					return nil
				})
			}
			return gws
		}
		if got := fmt.Sprint(gateways()); got != "[10.20.0.1 10.20.0.1]" {
			t.Errorf("default gateways %s at start", got)
		}
		if err := l.SetRealGateway(l.Director.Addr); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(gateways()); got != "[10.20.0.2 10.20.0.2]" {
			t.Errorf("default gateways %s, want the director's", got)
		}
		if err := l.SetRealGateway(l.Gateway); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(gateways()); got != "[10.20.0.1 10.20.0.1]" {
			t.Errorf("default gateways %s after restoring", got)
		}
		for _, bad := range []string{"10.10.0.1", "10.20.0.11"} {
			if err := l.SetRealGateway(netip.MustParseAddr(bad)); err == nil {
				t.Errorf("SetRealGateway(%s) succeeded", bad)
			}
		}
	})
}

func ioReadFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestClose checks that Close removes everything, stops what is still
// running and is idempotent.
func TestClose(t *testing.T) {
	requireRoot(t)
	goroutines := runtime.NumGoroutine()
	prefix := testPrefix()
	l, err := New(Options{Prefix: prefix, Reals: 1})
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Reals[0].StartEcho("tcp", netip.MustParseAddrPort("0.0.0.0:80"))
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	c, err := l.Director.Capture("eth0")
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	conn, err := l.Client.DialTCP(ctx(t), netip.MustParseAddrPort("10.20.0.11:80"))
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	defer conn.Close()
	for deadline := time.Now().Add(time.Second); e.Stats().Conns == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	assertGone(t, prefix, 1)
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("echo Close after the lab's: %v", err)
	}
	c.Stop()
	if err := c.Err(); err != nil {
		t.Errorf("capture ended with %v", err)
	}
	if err := l.Director.Do(func() error { return nil }); err == nil {
		t.Error("Do after Close succeeded")
	}
	if _, err := l.Reals[0].StartEcho("udp", netip.MustParseAddrPort("0.0.0.0:7")); err == nil {
		t.Error("StartEcho after Close succeeded")
	}
	// The echo's and the capture's goroutines are gone.
	for deadline := time.Now().Add(time.Second); runtime.NumGoroutine() > goroutines; {
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines after Close, %d before New", runtime.NumGoroutine(), goroutines)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStale simulates a crash (New without Close) and checks that the next
// New with the same prefix cleans up and works.
func TestStale(t *testing.T) {
	requireRoot(t)
	prefix := testPrefix()
	crashed, err := New(Options{Prefix: prefix, Reals: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Never closed: the next New must cope. The process that made it
	// ended, and the kernel released its lock.
	crashed.lock.Close()

	// A name file left unmounted by a crash mid-creation, and a namespace
	// file that is not the lab's.
	stray := filepath.Join("/run/netns", prefix+"-rs7")
	other := filepath.Join("/run/netns", prefix+"-other")
	for _, p := range []string{stray, other} {
		if err := os.WriteFile(p, nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Remove(stray); os.Remove(other) })

	l := newTestLab(t, prefix, 1)
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale %s survived New: %v", stray, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("New removed %s, which is not a lab namespace: %v", other, err)
	}
	e, err := l.Reals[0].StartEcho("udp", netip.MustParseAddrPort("0.0.0.0:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	udpRoundTrip(t, l.Client, netip.MustParseAddrPort("10.20.0.11:7"), "after a crash")

	if err := CleanupStale(""); err == nil {
		t.Error("CleanupStale with an empty prefix succeeded")
	}
}

// TestPrefixInUse: a second lab with the prefix of one that is up fails
// at once, naming the holder, and leaves the first one alone; once the
// first is closed the prefix is free.
func TestPrefixInUse(t *testing.T) {
	requireRoot(t)
	prefix := testPrefix()
	first := newTestLab(t, prefix, 1)
	e, err := first.Reals[0].StartEcho("udp", netip.MustParseAddrPort("0.0.0.0:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	second, err := New(Options{Prefix: prefix, Reals: 1})
	if err == nil {
		second.Close()
		t.Fatal("a second lab with a prefix in use was built")
	}
	if want := fmt.Sprintf("in use by another lab (pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("New = %v, want it to say %q", err, want)
	}
	udpRoundTrip(t, first.Client, netip.MustParseAddrPort("10.20.0.11:7"), "after the refused second lab")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(lockDir, "gvs-lab-"+prefix+".lock")
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Errorf("after Close the lock file %s is still there (%v)", lockPath, err)
	}
	again, err := New(Options{Prefix: prefix, Reals: 1})
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	if _, err := New(Options{Prefix: prefix, Reals: 1}); err == nil || !strings.Contains(err.Error(), "in use by another lab") {
		t.Errorf("a second lab beside the one built after Close: %v, want in use", err)
	}
	again.Close()
}

// TestNewFailure checks that a New failing halfway removes what it built.
func TestNewFailure(t *testing.T) {
	requireRoot(t)
	prefix := testPrefix()
	buildFault = func() error { return errors.New("injected fault") }
	defer func() { buildFault = nil }()
	l, err := New(Options{Prefix: prefix, Reals: 2})
	if err == nil || !strings.Contains(err.Error(), "injected fault") {
		if l != nil {
			l.Close()
		}
		t.Fatalf("New = %v, want the injected fault", err)
	}
	assertGone(t, prefix, 2)
}

// TestGenerator checks Options.Generator: a host "gen" on the LAN bridge
// with its address, MAC and a default route, reachable from
// the director and the client, removed by Close and by CleanupStale; built
// with Options.OffloadsOff, it also checks that every offload is then off.
func TestGenerator(t *testing.T) {
	requireRoot(t)
	prefix := fmt.Sprintf("gvsbt%06d", rand.IntN(1000000))
	crashed, err := New(Options{Prefix: prefix, Reals: 1, Generator: true})
	if err != nil {
		t.Fatal(err)
	}
	// Never closed: the next New must remove its gen namespace too. The
	// process that made it ended, and the kernel released its lock.
	crashed.lock.Close()
	l, err := New(Options{Prefix: prefix, Reals: 1, Generator: true, OffloadsOff: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertGone(t, prefix, 1)
		if h, err := netns.GetFromName(prefix + "-gen"); err == nil {
			h.Close()
			t.Errorf("namespace %s-gen still exists", prefix)
		}
	})
	g := l.Generator
	if g == nil {
		t.Fatal("Lab.Generator is nil with Options.Generator")
	}
	if g.Name != "gen" || g.NS != prefix+"-gen" || g.Iface != "eth0" || g.Addr.String() != "10.20.0.250" || g.MAC.String() != "02:00:0a:14:00:fa" {
		t.Errorf("generator host %+v, want gen in %s-gen with eth0 10.20.0.250 02:00:0a:14:00:fa", g, prefix)
	}
	err = g.Do(func() error {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if eth.Attrs().OperState != netlink.OperUp || eth.Attrs().HardwareAddr.String() != g.MAC.String() {
			t.Errorf("gen/eth0 %s MAC %s, want up %s", eth.Attrs().OperState, eth.Attrs().HardwareAddr, g.MAC)
		}
		for _, f := range []offload.Feature{offload.TxChecksum, offload.TSO, offload.GSO, offload.GRO, offload.LRO} {
			if on, err := offload.Get("eth0", f); err != nil || on {
				t.Errorf("gen/eth0: %s on=%v err=%v, want off (Options.OffloadsOff)", f, on, err)
			}
		}
		routes, err := netlink.RouteList(eth, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		var gw string
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				gw = r.Gw.String()
			}
		}
		if gw != "10.20.0.1" {
			t.Errorf("gen default route via %q, want 10.20.0.1", gw)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The LAN (director) and, through the router, the client reach it.
	e, err := g.StartEcho("udp", netip.MustParseAddrPort("0.0.0.0:7"))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	udpRoundTrip(t, l.Director, netip.MustParseAddrPort("10.20.0.250:7"), "director to gen")
	udpRoundTrip(t, l.Client, netip.MustParseAddrPort("10.20.0.250:7"), "client to gen")
	if st := e.Stats(); st.Datagrams < 2 || st.Peers[l.Director.Addr] == 0 || st.Peers[l.Client.Addr] == 0 {
		t.Errorf("gen echo saw %+v, want datagrams from the director and the client", st)
	}
}

// TestDirectors checks Options.Directors and Options.ClientAddrs: three
// directors on the LAN bridge with their own addresses, MACs and default
// routes, reachable from the client; the client's extra addresses, each
// able to dial through the router; the router's L4 multipath hash, which
// spreads flows to an address routed over every director; and the
// namespaces gone after Close and after a crash.
func TestDirectors(t *testing.T) {
	requireRoot(t)
	prefix := fmt.Sprintf("gvsdt%06d", rand.IntN(1000000))
	const directors, clients = 3, 8
	crashed, err := New(Options{Prefix: prefix, Reals: 1, Directors: directors})
	if err != nil {
		t.Fatal(err)
	}
	// Never closed: the next New must remove its director2 and director3.
	crashed.lock.Close()
	l, err := New(Options{Prefix: prefix, Reals: 1, Directors: directors, ClientAddrs: clients, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		assertGone(t, prefix, 1)
		for _, n := range []string{"director2", "director3"} {
			if h, err := netns.GetFromName(prefix + "-" + n); err == nil {
				h.Close()
				t.Errorf("namespace %s-%s still exists", prefix, n)
			}
		}
	})

	if len(l.Directors) != directors || l.Directors[0] != l.Director || l.Backup != l.Directors[1] {
		t.Fatalf("Lab.Directors %v, Director %v, Backup %v: want 3 directors, Director and Backup the first two", l.Directors, l.Director, l.Backup)
	}
	for i, d := range l.Directors {
		name, addr := "director", fmt.Sprintf("10.20.0.%d", 2+i)
		if i > 0 {
			name = fmt.Sprintf("director%d", i+1)
		}
		mac := fmt.Sprintf("02:00:0a:14:00:%02x", 2+i)
		if d.Name != name || d.NS != prefix+"-"+name || d.Iface != "eth0" || d.Addr.String() != addr || d.MAC.String() != mac {
			t.Errorf("director %d: %+v, want %s in %s-%s with eth0 %s %s", i+1, d, name, prefix, name, addr, mac)
		}
		err := d.Do(func() error {
			eth, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			if eth.Attrs().OperState != netlink.OperUp || eth.Attrs().HardwareAddr.String() != mac {
				t.Errorf("%s/eth0 %s MAC %s, want up %s", name, eth.Attrs().OperState, eth.Attrs().HardwareAddr, mac)
			}
			routes, err := netlink.RouteList(eth, netlink.FAMILY_V4)
			if err != nil {
				return err
			}
			var gw string
			for _, r := range routes {
				if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
					gw = r.Gw.String()
				}
			}
			if gw != "10.20.0.1" {
				t.Errorf("%s default route via %q, want 10.20.0.1", name, gw)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(l.ClientAddrs) != clients || l.ClientAddrs[0] != l.Client.Addr || l.ClientAddrs[clients-1].String() != "10.10.0.9" {
		t.Fatalf("Lab.ClientAddrs %v: want 10.10.0.2..10.10.0.9", l.ClientAddrs)
	}
	out, err := l.Client.Command(ctx(t), "ip", "-o", "-4", "addr", "show", "dev", "eth0").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range l.ClientAddrs {
		if !strings.Contains(string(out), " "+a.String()+"/24 ") {
			t.Errorf("client eth0 lacks %s/24:\n%s", a, out)
		}
	}
	out, err = l.Router.Command(ctx(t), "cat", "/proc/sys/net/ipv4/fib_multipath_hash_policy").Output()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("router fib_multipath_hash_policy = %q, %v; want 1", out, err)
	}

	t.Run("directors reachable", func(t *testing.T) {
		for _, d := range l.Directors {
			e, err := d.StartEcho("udp", netip.MustParseAddrPort("0.0.0.0:7"))
			if err != nil {
				t.Fatal(err)
			}
			udpRoundTrip(t, l.Client, netip.AddrPortFrom(d.Addr, 7), "client to "+d.Name)
			udpRoundTrip(t, l.Director, netip.AddrPortFrom(d.Addr, 7), "director to "+d.Name)
			e.Close()
		}
	})

	t.Run("every client address dials", func(t *testing.T) {
		e, err := l.Reals[0].StartEcho("tcp", netip.MustParseAddrPort("10.20.0.11:8080"))
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		for _, a := range l.ClientAddrs {
			c, err := l.Client.DialTCPFrom(ctx(t), a, netip.MustParseAddrPort("10.20.0.11:8080"))
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("from " + a.String())
			c.SetDeadline(time.Now().Add(3 * time.Second))
			got := make([]byte, len(msg))
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			if _, err := ioReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Errorf("echo from %s: %q, %v", a, got, err)
			}
			if la := c.LocalAddr().(*net.TCPAddr).AddrPort().Addr(); la != a {
				t.Errorf("dialled from %s, socket has %s", a, la)
			}
			c.Close()
		}
		st := e.Stats()
		for _, a := range l.ClientAddrs {
			if st.Peers[a] != 1 {
				t.Errorf("rs1 saw %d connections from %s, want 1 (peers %v)", st.Peers[a], a, st.Peers)
			}
		}
	})

	t.Run("ECMP by L4 hash", func(t *testing.T) {
		// An address on every director's lo, routed by the router over
		// all three: flows from one client address, on different ports,
		// reach every director.
		shared := netip.MustParseAddr("10.20.0.200")
		var echoes []*Echo
		for _, d := range l.Directors {
			if out, err := d.Command(ctx(t), "ip", "addr", "add", shared.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", d.Name, err, out)
			}
			e, err := d.StartEcho("udp", netip.AddrPortFrom(shared, 7))
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			echoes = append(echoes, e)
		}
		args := []string{"route", "replace", shared.String() + "/32"}
		for _, d := range l.Directors {
			args = append(args, "nexthop", "via", d.Addr.String(), "dev", "eth1")
		}
		if out, err := l.Router.Command(ctx(t), "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		// 30 flows: one director sees none of them with probability
		// 3 × (2/3)^30, about 1.6e-5.
		const flows = 30
		for i := 0; i < flows; i++ {
			udpRoundTrip(t, l.Client, netip.AddrPortFrom(shared, 7), fmt.Sprintf("flow %d", i))
		}
		total := 0
		for i, e := range echoes {
			n := e.Stats().Datagrams
			total += n
			t.Logf("%s: %d datagrams", l.Directors[i].Name, n)
			if n == 0 {
				t.Errorf("%s got none of %d flows: the router does not spread them", l.Directors[i].Name, flows)
			}
		}
		if total < flows {
			t.Errorf("%d datagrams echoed, want at least %d", total, flows)
		}
	})
}
