package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// TestFragmentedUDPIPv6 is TestFragmentedUDP for an IPv6 VIP: UDP
// datagrams of 4000 bytes, which the client's kernel sends as three IPv6
// fragments each, through an IPv6 UDP service in DR, NAT and TUN. Every
// datagram must come back whole: gvsd forwards the first fragment with
// its connection and the later ones where it went (in NAT the real's
// fragmented echo comes back through the director, translated fragment by
// fragment). In TUN a fragment of 1500 bytes does not fit the MTU with the
// outer header: the client is sent Packet Too Big, and its next try,
// fragmented to fit, gets through; the reals' kernels reassemble the
// inner fragments after gvs-realserver decapsulates them, with eBPF (tun)
// and in userspace (tun-userspace). The director's kernel must not
// answer the VIP traffic with an ICMPv6 error, and the dataplane counts
// no IPv6 fragment it could not forward.
func TestFragmentedUDPIPv6(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		extra      []string // gvs-realserver flags
	}{{"dr", "dr", nil}, {"nat", "nat", nil}, {"fullnat", "fullnat", nil}, {"tun", "tun", nil}, {"tun-userspace", "tun", []string{"-decap", "userspace"}}} {
		t.Run(tc.name, func(t *testing.T) { testFragmentedUDP6(t, tc.mode, tc.extra) })
	}
}

func testFragmentedUDP6(t *testing.T, mode string, extra []string) {
	const datagrams, size, servicePort, natPort = 8, 4000, 53, 8053
	l := needLabWith(t, lab.Options{IPv6: true, Reals: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()

	realPort := uint16(servicePort)
	if mode == "fullnat" {
		realPort = natPort
	} else if mode == "nat" {
		realPort = natPort
		if err := l.SetGateway(l.Director.Addr6, l.Reals...); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, r := range l.Reals {
			p, err := scenario.Start(ctx, r, filepath.Join(dir, r.Name+"-realserver.log"),
				append(append([]string{bins.realserver}, extra...), "-vip", lab.VIP6.String(), "-mode", mode))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { // before ctx ends, which would kill it
				if err := p.Stop(); err != nil {
					t.Errorf("gvs-realserver on %s: %v\n%s", r.Name, err, p.Log())
				}
				if mode == "tun" { // the decapsulation went the way asked
					checkDecapLog(t, r.Name, p.Log(), len(extra) > 0)
				}
				if t.Failed() {
					t.Logf("gvs-realserver on %s:\n%s", r.Name, p.Log())
				}
			}()
			if err := waitCond(ctx, 10*time.Second, func() bool { return strings.Contains(p.Log(), "realserver: ready") }); err != nil {
				t.Fatalf("%s: gvs-realserver not ready: %v\n%s", r.Name, err, p.Log())
			}
		}
	}
	// The echo answers from the address each datagram came to: the VIP
	// in DR and TUN, the real's own in NAT.
	var echoes []*lab.Echo
	for _, r := range l.Reals {
		e, err := r.StartEcho("udp", netip.AddrPortFrom(netip.IPv6Unspecified(), realPort))
		if err != nil {
			t.Fatal(err)
		}
		echoes = append(echoes, e)
	}

	vip := netip.AddrPortFrom(lab.VIP6, servicePort)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[director]\ninterface = %q\nworkers = 2\n\n[[service]]\nprotocol = \"udp\"\naddress = %q\nscheduler = \"rr\"\nforward = %q\n",
		l.Director.Iface, vip.String(), mode)
	for _, r := range l.Reals {
		fmt.Fprintf(&cfg, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(r.Addr6, realPort).String())
	}
	cfgPath := filepath.Join(dir, "gvs.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "gvsd.sock")
	gvsd, err := scenario.Start(ctx, l.Director, filepath.Join(dir, "gvsd.log"), []string{bins.gvsd, "-config", cfgPath, "-socket", socket, "-log-json"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			gvsd.Stop()
		}
		if t.Failed() {
			t.Logf("gvsd log:\n%s", gvsd.Log())
		}
	}()
	if err := gvsd.WaitLog(ctx, "gvsd started", 15*time.Second); err != nil {
		t.Fatalf("gvsd did not start: %v", err)
	}
	waitReady(ctx, t, socket, len(l.Reals))
	capture, err := l.Director.Capture(l.Director.Iface)
	if err != nil {
		t.Fatal(err)
	}

	// Each datagram from a socket of its own (a flow of its own), tried
	// up to three times: in TUN the first try meets Packet Too Big.
	ok := 0
	buf := make([]byte, 2*size)
	for i := range datagrams {
		c, err := l.Client.DialUDP(ctx, vip)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		payload := make([]byte, size)
		rand.Read(payload)
		for try := 0; try < 3; try++ {
			if _, err := c.Write(payload); err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := c.Read(buf); err == nil && bytes.Equal(buf[:n], payload) {
				ok++
				break
			}
			t.Logf("datagram %d, try %d: no echo", i, try)
		}
	}
	if ok != datagrams {
		t.Errorf("%d of %d fragmented datagrams came back whole", ok, datagrams)
	}
	for i, e := range echoes {
		if st := e.Stats(); st.Datagrams < datagrams/2 || st.Bytes < int64(datagrams/2*size) {
			t.Errorf("%s echoed %d datagrams (%d bytes), want at least %d whole (rr over 2 reals)", l.Reals[i].Name, st.Datagrams, st.Bytes, datagrams/2)
		}
	}

	// The datagrams reached the director in fragments, later ones
	// included, and its kernel answered none of it with an ICMPv6 error.
	later := 0
	for _, f := range capture.Stop() {
		p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
		ip, isIP := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !isIP {
			continue
		}
		if fr, isFrag := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment); isFrag && !f.Outgoing && fr.FragmentOffset != 0 &&
			ip.DstIP.Equal(lab.VIP6.AsSlice()) {
			later++
		}
		if ic, isICMP := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); isICMP && f.Outgoing && ic.TypeCode.Type() < 128 {
			t.Errorf("the director's kernel sent ICMPv6 error %v to %s", ic.TypeCode, ip.DstIP)
		}
	}
	if later < 2*datagrams {
		t.Errorf("the director saw %d later fragments to the VIP, want at least %d", later, 2*datagrams)
	}

	stopped = true
	if err := gvsd.Stop(); err != nil {
		t.Errorf("gvsd exited with %v", err)
	}
	var c struct {
		Dataplane struct {
			Verdicts       map[string]uint64
			FragTableFull  uint64
			OuterFragments uint64
		}
		Reals map[string]struct{ Conns, InPkts, OutPkts uint64 }
	}
	counters := finalCountersOf(gvsd.Log())
	t.Logf("final counters: %s", counters)
	if err := json.Unmarshal(counters, &c); err != nil {
		t.Fatalf("final counters: %v", err)
	}
	for _, v := range []string{"malformed", "no_conn", "no_real", "table_full", "offload", "ipv6_unparsed", "ipv6_fragment"} {
		if n := c.Dataplane.Verdicts[v]; n != 0 {
			t.Errorf("verdict %s counted %d frames, want 0", v, n)
		}
	}
	if c.Dataplane.FragTableFull != 0 {
		t.Errorf("FragTableFull %d, want 0", c.Dataplane.FragTableFull)
	}
	// Three fragments per datagram in, and in NAT three back out.
	for name, r := range c.Reals {
		if r.InPkts < 3*datagrams/2 || (mode == "nat" || mode == "fullnat") != (r.OutPkts >= 3*datagrams/2) {
			t.Errorf("real %s: %d packets in, %d out; want at least %d in and, in NAT only, as many out", name, r.InPkts, r.OutPkts, 3*datagrams/2)
		}
	}
	if mode == "tun" && c.Dataplane.Verdicts["too_big"] == 0 {
		t.Error("no Packet Too Big in TUN: the 1500-byte fragments fit the tunnel?")
	}
	for _, lo := range scenario.Leftovers(ctx, l) {
		t.Errorf("left behind after gvsd stopped: %s", lo)
	}
}
