package ingress

import (
	"bytes"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// IPv6 beside the lab's IPv4: the director dirAddr6/64 and the VIP6/128,
// the peer peerAddr6/64 and the NAT real's realAddr6/64, all without DAD.
var (
	dirAddr6  = netip.MustParseAddr("fd00:202::1")
	peerAddr6 = netip.MustParseAddr("fd00:202::2")
	realAddr6 = netip.MustParseAddr("fd00:202::3")
	vip6      = netip.MustParseAddr("fd00:202::100")
)

func ep6(proto uint8, a netip.Addr, port uint16) afpacket.Endpoint6 {
	return afpacket.Endpoint6{Proto: proto, Addr: a.As16(), Port: port}
}

// matchSix owns UDP and TCP [VIP6]:7000 and NAT replies from UDP
// [real6]:8000, beside IPv4's UDP VIP:7000.
var matchSix = &afpacket.Match{
	VIPs:      []afpacket.Endpoint{ep(protoUDP, vip, 7000)},
	VIPs6:     []afpacket.Endpoint6{ep6(protoUDP, vip6, 7000), ep6(protoTCP, vip6, 7000)},
	NATReals6: []afpacket.Endpoint6{ep6(protoUDP, realAddr6, 8000)},
}

func newLab6(t *testing.T) *lab {
	t.Helper()
	l := newLab(t)
	l.dir.Do(t, func() {
		addAddr6(t, l.dirName, dirAddr6.String()+"/64")
		addAddr6(t, l.dirName, vip6.String()+"/128")
	})
	l.peer.Do(t, func() {
		addAddr6(t, l.peerName, peerAddr6.String()+"/64")
		addAddr6(t, l.peerName, realAddr6.String()+"/64")
	})
	return l
}

func addAddr6(t *testing.T, name, addr string) {
	t.Helper()
	out, err := exec.Command("ip", "-6", "addr", "add", addr, "dev", name, "nodad").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -6 addr add %s dev %s nodad: %v: %s", addr, name, err, out)
	}
}

var (
	udp6VIP7000  = flow{src: netip.AddrPortFrom(peerAddr6, 0), dst: netip.AddrPortFrom(vip6, 7000)}
	udp6VIP7001  = flow{src: netip.AddrPortFrom(peerAddr6, 0), dst: netip.AddrPortFrom(vip6, 7001)}
	tcp6VIP7000  = flow{tcp: true, src: netip.AddrPortFrom(peerAddr6, 0), dst: netip.AddrPortFrom(vip6, 7000)}
	tcp6VIP7001  = flow{tcp: true, src: netip.AddrPortFrom(peerAddr6, 0), dst: netip.AddrPortFrom(vip6, 7001)}
	udp6FromReal = flow{src: netip.AddrPortFrom(realAddr6, 8000), dst: netip.AddrPortFrom(dirAddr6, 9000)}
	udp6Real8001 = flow{src: netip.AddrPortFrom(realAddr6, 8001), dst: netip.AddrPortFrom(dirAddr6, 9001)}
	// The IPv4 address's port is not the IPv6 one's.
	udp6ToDir7000 = flow{src: netip.AddrPortFrom(peerAddr6, 0), dst: netip.AddrPortFrom(dirAddr6, 7000)}
)

// TestInstallIPv6: the ip6 rules drop exactly the IPv6 endpoints of the
// match, neighbour discovery and ICMPv6 echo to the VIP still work, and an
// Update without IPv6 endpoints removes the IPv6 rules.
func TestInstallIPv6(t *testing.T) {
	l := newLab6(t)
	l.expectFlows(t, []flow{udp6VIP7000, tcp6VIP7000, udp6FromReal}, nil)

	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, matchSix); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })

	s := l.readBack(t)
	if s.rules != 11 || s.extRules != 2*2*9 {
		t.Fatalf("after Install: %d+%d rules, want 11 (the two IPv4 set rules, the IPv6 VIPs and NAT replies, whole and first fragments, three jumps to ext6, two counting what is left) and 36 in ext6 (VIPs and NAT replies, whole and first fragments, behind 9 chains)", s.rules, s.extRules)
	}
	for _, want := range []struct {
		set string
		key []byte
	}{
		{setVIPs6, func() []byte { k := makeKey6(protoUDP, vip6.As16(), 7000); return k[:] }()},
		{setVIPs6, func() []byte { k := makeKey6(protoTCP, vip6.As16(), 7000); return k[:] }()},
		{setNATReals6, func() []byte { k := makeKey6(protoUDP, realAddr6.As16(), 8000); return k[:] }()},
	} {
		if !containsKey(s.sets[want.set], want.key) {
			t.Errorf("set %s lacks % x: has % x", want.set, want.key, s.sets[want.set])
		}
	}
	if js := l.nftJSON(t); js != "" {
		for _, want := range []string{`"fd00:202::100", "udp", 7000`, `"fd00:202::3", "udp", 8000`, `"protocol": "ip6"`, `"nexthdr"`} {
			if !strings.Contains(js, want) {
				t.Errorf("nft -j output lacks %s:\n%s", want, js)
			}
		}
	}
	l.expectFlows(t,
		[]flow{udp6VIP7001, tcp6VIP7001, udp6Real8001, udp6ToDir7000, udpVIP7001},
		[]flow{udp6VIP7000, tcp6VIP7000, udp6FromReal, udpVIP7000})
	if !l.ping6VIP(t) {
		t.Error("ping6 to the VIP got no reply: neighbour discovery and ICMPv6 must pass")
	}
	if s := l.readBack(t); len(s.dropped) != 11 || s.dropped[2] < 4 || s.dropped[3] != 0 || s.dropped[7] != 3 || s.dropped[8] != 0 || s.dropped[9] != 0 || s.dropped[10] != 0 {
		t.Errorf("rule counters = %v, want [_ _ >=4 0 _ _ _ 3 0 0 0]", s.dropped)
	}

	if err := tab.Update(matchTwo); err != nil {
		t.Fatal(err)
	}
	if s := l.readBack(t); s.rules != 2 || s.extRules != 0 || len(s.sets[setVIPs6]) != 0 || len(s.sets[setNATReals6]) != 0 {
		t.Fatalf("after an IPv4-only Update: %d rules, %d+%d IPv6 elements; want 2 and none", s.rules, len(s.sets[setVIPs6]), len(s.sets[setNATReals6]))
	}
	l.expectFlows(t, []flow{udp6VIP7000, tcp6VIP7000, udp6FromReal}, nil)
	if err := tab.Update(&afpacket.Match{VIPs6: []afpacket.Endpoint6{{Proto: 58}}}); err == nil || !strings.Contains(err.Error(), "VIPs6[0]") {
		t.Errorf("Update with an ICMPv6 endpoint: %v", err)
	}
}

// ping6VIP sends an ICMPv6 echo request from the peer to the VIP and
// reports whether the reply came back.
func (l *lab) ping6VIP(t *testing.T) bool {
	t.Helper()
	ok := false
	l.peer.Do(t, func() {
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", peerAddr6.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: 0x4756, Seq: 1, Data: []byte("gvs")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: vip6.AsSlice()}); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1500)
		for range 20 {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := icmp.ParseMessage(58, buf[:n])
			if err == nil && m.Type == ipv6.ICMPTypeEchoReply && from.String() == vip6.String() {
				ok = true
				return
			}
		}
	})
	return ok
}

// TestInstallOwn6: what an IPv6 NAT real sends the director's own IPv6
// address (Match.Own6) goes to the kernel, the answers to its health
// checks; the same real's replies to anyone else are still dropped.
func TestInstallOwn6(t *testing.T) {
	l := newLab6(t)
	toOther := flow{src: netip.AddrPortFrom(realAddr6, 8000), dst: netip.AddrPortFrom(vip6, 9000)}
	m := *matchSix
	m.Own6 = [][16]byte{dirAddr6.As16(), dirAddr6.As16()} // duplicates are merged
	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, &m); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })
	if s := l.readBack(t); s.rules != 12 || s.extRules != 2*2*9+1 {
		t.Fatalf("after Install: %d+%d rules; want 12 (the two IPv4 set rules, IPv6 VIPs and their first fragments, three jumps to ext6, own IPv6 address, IPv6 NAT reals and their first fragments, two counting what is left) and 37 in ext6", s.rules, s.extRules)
	}
	l.expectFlows(t, []flow{udp6FromReal, udp6Real8001, udp6ToDir7000}, []flow{toOther, udp6VIP7000, tcp6VIP7000})
	// Without IPv6 NAT reals there is nothing to let through first.
	m.NATReals6 = nil
	if err := tab.Update(&m); err != nil {
		t.Fatal(err)
	}
	if s := l.readBack(t); s.rules != 8 || s.extRules != 2*9 {
		t.Errorf("after an Update without IPv6 NAT reals: %d+%d rules; want 8 and 18", s.rules, s.extRules)
	}
}

// TestInstallIPv6Locals: the ip6 FULLNAT rules drop TCP and UDP to the
// local address's port range, and nothing beside it: other ports of the
// address, and the address's ICMPv6 (neighbour discovery, echo).
func TestInstallIPv6Locals(t *testing.T) {
	l := newLab6(t)
	m := &afpacket.Match{Locals6: []afpacket.LocalRange6{{Addr: dirAddr6.As16(), PortLo: 9000, PortHi: 9100}}}
	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, m); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })
	if s := l.readBack(t); s.rules != 9 || s.extRules != 2*2*9 {
		t.Fatalf("after Install: %d+%d rules, want 9 (the two IPv4 set rules, TCP and UDP to the IPv6 range, whole and first fragments, three jumps to ext6) and 36 in ext6", s.rules, s.extRules)
	}
	in := func(tcp bool, port uint16) flow {
		return flow{tcp: tcp, src: netip.AddrPortFrom(realAddr6, 0), dst: netip.AddrPortFrom(dirAddr6, port)}
	}
	l.expectFlows(t,
		[]flow{in(false, 8999), in(false, 9101), in(true, 9101)},
		[]flow{in(false, 9000), in(false, 9100), in(true, 9050)})
	if s := l.readBack(t); len(s.dropped) != 9 || s.dropped[2] < 1 || s.dropped[4] < 2 {
		t.Errorf("rule counters = %v, want [_ _ >=1 _ >=2 _]", s.dropped)
	}
	// A fragmented datagram to the range loses its first fragment; one
	// to another port of the address still reassembles.
	if !l.bigUDPArrives(t, in(false, 9101), 3000, 2*time.Second) {
		t.Error("3000 bytes to a port outside the range did not arrive")
	}
	if l.bigUDPArrives(t, in(false, 9001), 3000, 300*time.Millisecond) {
		t.Error("3000 bytes to the range arrived, want the first fragment dropped")
	}
	if s := l.readBack(t); s.dropped[5] != 3 {
		t.Errorf("rule counters = %v, want 3 first fragments counted by the UDP fragment rule", s.dropped)
	}
}

// TestInstallIPv6Fragments: a UDP datagram of 3000 bytes, which the peer's
// kernel sends in three fragments, is dropped when its first fragment is
// for an IPv6 [VIP]:port or from a NAT [RIP]:port (counted by the first
// fragment rules), and still reassembles to any other port of the same
// addresses: the later fragments, which carry no port, are left to the
// kernel.
func TestInstallIPv6Fragments(t *testing.T) {
	l := newLab6(t)
	const size = 3000
	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, matchSix); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })
	for _, f := range []flow{udp6VIP7001, udp6Real8001, udp6ToDir7000} {
		if !l.bigUDPArrives(t, f, size, 2*time.Second) {
			t.Errorf("%s: %d bytes did not arrive, want them reassembled", f, size)
		}
	}
	for _, f := range []flow{udp6VIP7000, udp6FromReal} {
		if l.bigUDPArrives(t, f, size, 300*time.Millisecond) {
			t.Errorf("%s: %d bytes arrived, want the first fragment dropped", f, size)
		}
	}
	if s := l.readBack(t); len(s.dropped) != 11 || s.dropped[2] != 0 || s.dropped[3] != 3 || s.dropped[7] != 0 || s.dropped[8] != 3 {
		t.Errorf("rule counters = %v, want [_ _ 0 3 _ _ _ 0 3 _ _]: one first fragment of each of 3 datagrams per flow", s.dropped)
	}
}

// bigUDPArrives sends three datagrams of size bytes (fragmented by the
// peer's kernel at the veth's MTU of 1500) of flow f from the peer to a
// socket on f.dst in the director namespace, and reports whether one
// arrives whole within wait.
func (l *lab) bigUDPArrives(t *testing.T, f flow, size int, wait time.Duration) bool {
	t.Helper()
	var ln *net.UDPConn
	l.dir.Do(t, func() {
		var err error
		if ln, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(f.dst)); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	l.peer.Do(t, func() {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(f.src))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 3 {
			if _, err := c.WriteToUDPAddrPort(payload, f.dst); err != nil {
				t.Fatal(err)
			}
		}
	})
	ln.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, size+1)
	n, _, err := ln.ReadFromUDPAddrPort(buf)
	return err == nil && n == size && bytes.Equal(buf[:n], payload)
}
