package ingress

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// The lab: the director namespace dir (table on its veth end, addresses
// dirAddr/24 and the VIP/32, as gvsd puts it) and a peer namespace (peerAddr/24 and a NAT real
// server's address realAddr/24). The addresses exist only inside them.
var (
	dirAddr  = netip.MustParseAddr("10.202.0.1")
	peerAddr = netip.MustParseAddr("10.202.0.2")
	realAddr = netip.MustParseAddr("10.202.0.3")
	vip      = netip.MustParseAddr("10.202.0.100")
)

type lab struct {
	dir, peer         *testNetns
	dirName, peerName string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	requireRoot(t)
	l := &lab{dir: newNetns(t), peer: newNetns(t), dirName: testName(t, "d"), peerName: testName(t, "p")}
	vethPair(t, l.dir, l.peer, l.dirName, dirAddr.String()+"/24", l.peerName, peerAddr.String()+"/24")
	l.dir.Do(t, func() { addAddr(t, l.dirName, vip.String()+"/32") })
	l.peer.Do(t, func() { addAddr(t, l.peerName, realAddr.String()+"/24") })
	return l
}

func addAddr(t *testing.T, name, addr string) {
	t.Helper()
	out, err := exec.Command("ip", "addr", "add", addr, "dev", name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr add %s dev %s: %v: %s", addr, name, err, out)
	}
}

func ep(proto uint8, a netip.Addr, port uint16) afpacket.Endpoint {
	return afpacket.Endpoint{Proto: proto, Addr: a.As4(), Port: port}
}

// matchOne owns UDP VIP:7000, TCP VIP:7100, NAT replies from UDP
// real:8000 and FULLNAT replies to dirAddr:20000-20009.
var matchOne = &afpacket.Match{
	VIPs:     []afpacket.Endpoint{ep(protoUDP, vip, 7000), ep(protoTCP, vip, 7100)},
	NATReals: []afpacket.Endpoint{ep(protoUDP, realAddr, 8000)},
	Locals:   []afpacket.LocalRange{{Addr: dirAddr.As4(), PortLo: 20000, PortHi: 20009}},
}

// matchTwo owns only UDP VIP:7001.
var matchTwo = &afpacket.Match{VIPs: []afpacket.Endpoint{ep(protoUDP, vip, 7001)}}

// flow is one probe from the peer to the director: src port 0 means any.
type flow struct {
	tcp      bool
	src, dst netip.AddrPort
}

func (f flow) String() string {
	p := "udp"
	if f.tcp {
		p = "tcp"
	}
	return p + " " + f.src.String() + " -> " + f.dst.String()
}

var (
	udpVIP7000   = flow{src: netip.AddrPortFrom(peerAddr, 0), dst: netip.AddrPortFrom(vip, 7000)}
	udpVIP7001   = flow{src: netip.AddrPortFrom(peerAddr, 0), dst: netip.AddrPortFrom(vip, 7001)}
	tcpVIP7100   = flow{tcp: true, src: netip.AddrPortFrom(peerAddr, 0), dst: netip.AddrPortFrom(vip, 7100)}
	tcpVIP7000   = flow{tcp: true, src: netip.AddrPortFrom(peerAddr, 0), dst: netip.AddrPortFrom(vip, 7000)}
	udpFromReal  = flow{src: netip.AddrPortFrom(realAddr, 8000), dst: netip.AddrPortFrom(dirAddr, 9000)}
	udpFromReal2 = flow{src: netip.AddrPortFrom(realAddr, 8001), dst: netip.AddrPortFrom(dirAddr, 9001)}
	udpToLocal   = flow{src: netip.AddrPortFrom(peerAddr, 0), dst: netip.AddrPortFrom(dirAddr, 20005)}
	udpToLocal2  = flow{src: netip.AddrPortFrom(peerAddr, 0), dst: netip.AddrPortFrom(dirAddr, 20010)}
	tcpToLocal   = flow{tcp: true, src: netip.AddrPortFrom(peerAddr, 0), dst: netip.AddrPortFrom(dirAddr, 20009)}
)

// expectFlows sends every flow from the peer to a socket bound to its
// destination in the director namespace and checks which arrive: the ones
// in delivered must, the ones in dropped must not.
func (l *lab) expectFlows(t *testing.T, delivered, dropped []flow) {
	t.Helper()
	// Dropped probes go first: by the time the delivered ones have arrived,
	// a dropped one that was let through would have arrived too.
	for _, f := range dropped {
		if f.tcp {
			if l.tcpConnects(t, f, 300*time.Millisecond) {
				t.Errorf("%s: connected, want the SYN dropped", f)
			}
		}
	}
	var udpDropped []*net.UDPConn
	for _, f := range dropped {
		if !f.tcp {
			udpDropped = append(udpDropped, l.sendUDP(t, f))
		}
	}
	for _, f := range delivered {
		if f.tcp {
			if !l.tcpConnects(t, f, 2*time.Second) {
				t.Errorf("%s: no connection, want it delivered", f)
			}
			continue
		}
		c := l.sendUDP(t, f)
		if !received(c, 2*time.Second) {
			t.Errorf("%s: not received, want it delivered", f)
		}
		c.Close()
	}
	time.Sleep(100 * time.Millisecond) // one more grace period for reordering across CPUs
	for _, f := range dropped {
		if f.tcp {
			continue
		}
		if received(udpDropped[0], 10*time.Millisecond) {
			t.Errorf("%s: received, want it dropped", f)
		}
		udpDropped[0].Close()
		udpDropped = udpDropped[1:]
	}
}

// sendUDP binds a listener to f.dst in the director namespace, sends three
// datagrams from f.src in the peer namespace and returns the listener for
// the caller to close.
func (l *lab) sendUDP(t *testing.T, f flow) *net.UDPConn {
	t.Helper()
	var ln *net.UDPConn
	l.dir.Do(t, func() {
		var err error
		if ln, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(f.dst)); err != nil {
			t.Fatal(err)
		}
	})
	l.peer.Do(t, func() {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(f.src))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 3 {
			if _, err := c.WriteToUDPAddrPort([]byte("probe"), f.dst); err != nil {
				t.Fatal(err)
			}
		}
	})
	return ln
}

func received(c *net.UDPConn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 64)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	return err == nil && string(buf[:n]) == "probe"
}

// tcpConnects listens on f.dst in the director namespace and reports
// whether a connection from the peer is established within wait.
func (l *lab) tcpConnects(t *testing.T, f flow, wait time.Duration) bool {
	t.Helper()
	var ln net.Listener
	l.dir.Do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", f.dst.String()); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	ok := false
	l.peer.Do(t, func() {
		d := net.Dialer{Timeout: wait, LocalAddr: net.TCPAddrFromAddrPort(f.src)}
		c, err := d.Dial("tcp", f.dst.String())
		if err == nil {
			c.Close()
			ok = true
		}
	})
	return ok
}

// pingVIP sends an ICMP echo request from the peer to the VIP and reports
// whether the reply came back.
func (l *lab) pingVIP(t *testing.T) bool {
	t.Helper()
	ok := false
	l.peer.Do(t, func() {
		c, err := icmp.ListenPacket("ip4:icmp", peerAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x4756, Seq: 1, Data: []byte("gvs")}}
		b, err := msg.Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: vip.AsSlice()}); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		for range 20 {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err == nil && m.Type == ipv4.ICMPTypeEchoReply && from.String() == vip.String() {
				ok = true
				return
			}
		}
	})
	return ok
}

// kernelState is what the kernel holds in the director namespace, read
// back through the library.
type kernelState struct {
	tables  int // netdev tables named gvs
	rules   int
	dropped []uint64 // packets counted by each rule, in order
	// The ext6 chain's (IPv6 with extension headers).
	extRules   int
	extDropped []uint64
	sets       map[string][][]byte // set name -> element keys (and key ends)
}

func (l *lab) readBack(t *testing.T) kernelState {
	t.Helper()
	var s kernelState
	l.dir.Do(t, func() {
		c, err := nftables.New() // this thread's namespace
		if err != nil {
			t.Fatal(err)
		}
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyNetdev)
		if err != nil {
			t.Fatal(err)
		}
		var tab *nftables.Table
		for _, tb := range tables {
			if tb.Name == TableName {
				s.tables++
				tab = tb
			}
		}
		if tab == nil {
			return
		}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chains {
			if ch.Table.Name != TableName {
				continue
			}
			ext := ch.Name == chainExt6 && ch.Hooknum == nil
			if !ext && (ch.Name != chainName || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookIngress) {
				t.Errorf("unexpected chain %q in the table", ch.Name)
				continue
			}
			rules, err := c.GetRules(tab, ch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rules {
				var n uint64
				for _, e := range r.Exprs {
					if c, ok := e.(*expr.Counter); ok {
						n = c.Packets
					}
				}
				if ext {
					s.extDropped = append(s.extDropped, n)
				} else {
					s.dropped = append(s.dropped, n)
				}
			}
			if ext {
				s.extRules += len(rules)
			} else {
				s.rules += len(rules)
			}
		}
		sets, err := c.GetSets(tab)
		if err != nil {
			t.Fatal(err)
		}
		s.sets = map[string][][]byte{}
		for _, set := range sets {
			elems, err := c.GetSetElements(set)
			if err != nil {
				t.Fatal(err)
			}
			s.sets[set.Name] = [][]byte{}
			for _, e := range elems {
				s.sets[set.Name] = append(s.sets[set.Name], append(e.Key, e.KeyEnd...))
			}
		}
	})
	return s
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

func join(k ...key) []byte {
	var b []byte
	for _, x := range k {
		b = append(b, x[:]...)
	}
	return b
}

// nftJSON runs `nft -j list table netdev gvs` in the director namespace
// (a child forked from a thread inside it inherits the namespace).
func (l *lab) nftJSON(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Log("nft not installed: skipping the nft -j cross-check")
		return ""
	}
	var out []byte
	l.dir.Do(t, func() {
		var err error
		if out, err = exec.Command("nft", "-j", "list", "table", "netdev", TableName).Output(); err != nil {
			t.Fatalf("nft -j list table netdev %s: %v", TableName, err)
		}
	})
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("nft -j output is not JSON: %v\n%s", err, out)
	}
	return string(out)
}

func TestInstallUpdateRemove(t *testing.T) {
	l := newLab(t)

	// Without a table every probe gets through.
	all := []flow{udpVIP7000, udpVIP7001, tcpVIP7100, tcpVIP7000, udpFromReal, udpFromReal2, udpToLocal, udpToLocal2, tcpToLocal}
	l.expectFlows(t, all, nil)

	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, matchOne); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })

	s := l.readBack(t)
	if s.tables != 1 || s.rules != 4 {
		t.Fatalf("after Install: %d tables, %d rules; want 1 and 4 (VIPs, NAT reals, local range TCP and UDP)", s.tables, s.rules)
	}
	for _, want := range []struct {
		set string
		key []byte
	}{
		{setVIPs, join(makeKey(protoUDP, vip.As4(), 7000))},
		{setVIPs, join(makeKey(protoTCP, vip.As4(), 7100))},
		{setNATReals, join(makeKey(protoUDP, realAddr.As4(), 8000))},
	} {
		if !containsKey(s.sets[want.set], want.key) {
			t.Errorf("set %s lacks % x: has % x", want.set, want.key, s.sets[want.set])
		}
	}
	if js := l.nftJSON(t); js != "" {
		for _, want := range []string{`"hook": "ingress"`, `"10.202.0.100", "udp", 7000`, `"10.202.0.3", "udp", 8000`, `"range": [20000, 20009]`, `"drop"`} {
			if !strings.Contains(js, want) {
				t.Errorf("nft -j output lacks %s:\n%s", want, js)
			}
		}
	}

	l.expectFlows(t,
		[]flow{udpVIP7001, tcpVIP7000, udpFromReal2, udpToLocal2},
		[]flow{udpVIP7000, tcpVIP7100, udpFromReal, udpToLocal, tcpToLocal})
	if !l.pingVIP(t) {
		t.Error("ping to the VIP got no reply: ICMP must pass")
	}
	// Each rule counted its drops, in the table's order: 3 UDP datagrams
	// plus at least one SYN for the VIPs, at least one SYN and 3 datagrams
	// to the local range, 3 datagrams from the real.
	if s := l.readBack(t); len(s.dropped) != 4 || s.dropped[0] < 4 || s.dropped[1] < 1 || s.dropped[2] != 3 || s.dropped[3] != 3 {
		t.Errorf("rule counters = %v, want [>=4 >=1 3 3]", s.dropped)
	}

	// Update from this goroutine, which is not in the namespace: the table
	// must still change there.
	if err := tab.Update(matchTwo); err != nil {
		t.Fatal(err)
	}
	s = l.readBack(t)
	if s.tables != 1 || s.rules != 2 || len(s.sets[setVIPs]) != 1 || len(s.sets[setNATReals]) != 0 {
		t.Fatalf("after Update: %+v; want the two set rules and one VIP element", s)
	}
	l.expectFlows(t,
		[]flow{udpVIP7000, tcpVIP7100, udpFromReal, udpToLocal},
		[]flow{udpVIP7001})

	if err := tab.Check(); err != nil {
		t.Fatalf("Check of an installed table: %v", err)
	}
	if err := tab.Update(&afpacket.Match{VIPs: []afpacket.Endpoint{{Proto: 1}}}); err == nil {
		t.Error("Update accepted an ICMP endpoint")
	}
	if s := l.readBack(t); len(s.sets[setVIPs]) != 1 {
		t.Errorf("a rejected Update changed the table: %+v", s)
	}

	// Someone deletes the table behind gvsd's back: Check says so.
	l.dir.Do(t, func() {
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		c.DelTable(&nftables.Table{Name: TableName, Family: nftables.TableFamilyNetdev})
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	if err := tab.Check(); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Fatalf("Check after the table was deleted: %v", err)
	}
	if err := tab.Remove(); err != nil {
		t.Fatal(err)
	}
	if s := l.readBack(t); s.tables != 0 {
		t.Fatalf("after Remove: %d tables named %s", s.tables, TableName)
	}
	l.expectFlows(t, []flow{udpVIP7000, udpVIP7001}, nil)
	if err := tab.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := tab.Update(matchOne); err == nil {
		t.Error("Update after Remove succeeded")
	}
}

func TestInstallReplacesStale(t *testing.T) {
	l := newLab(t)
	// A stale table as a crashed gvsd with other ideas might leave it: an
	// extra chain and set, and a rule that drops the VIP's UDP port 7001.
	l.dir.Do(t, func() {
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		old := newTable(l.dirName, -1, c)
		c.AddTable(old.table)
		c.AddChain(old.chain)
		c.AddChain(&nftables.Chain{Name: "junk", Table: old.table})
		for _, s := range []*nftables.Set{old.vips, old.nat} {
			if err := c.AddSet(s, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := old.queueContents(mustCompile(t, matchTwo)); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	l.expectFlows(t, []flow{udpVIP7000}, []flow{udpVIP7001})

	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, matchOne); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })
	if s := l.readBack(t); s.tables != 1 || s.rules != 4 || len(s.sets[setVIPs]) != 2 {
		t.Fatalf("after Install over a stale table: %+v", s)
	}
	if js := l.nftJSON(t); strings.Contains(js, "junk") {
		t.Errorf("the stale chain survived:\n%s", js)
	}
	l.expectFlows(t, []flow{udpVIP7001}, []flow{udpVIP7000})

	// And a gvsd that crashed with this very table: Install again.
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, matchTwo); err != nil {
			t.Fatal(err)
		}
	})
	if s := l.readBack(t); s.tables != 1 || len(s.sets[setVIPs]) != 1 {
		t.Fatalf("after a second Install: %+v", s)
	}
	l.expectFlows(t, []flow{udpVIP7000}, []flow{udpVIP7001})
}

func TestInstallMissingInterface(t *testing.T) {
	l := newLab(t)
	l.dir.Do(t, func() {
		_, err := Install(l.dirName+"x", matchOne)
		if err == nil || !strings.HasPrefix(err.Error(), "ingress: install table netdev gvs on "+l.dirName+"x: ") {
			t.Fatalf("Install on a missing interface: err = %v", err)
		}
	})
	if s := l.readBack(t); s.tables != 0 {
		t.Fatalf("a failed Install left %d tables", s.tables)
	}
}

func mustCompile(t *testing.T, m *afpacket.Match) elements {
	t.Helper()
	e, err := compile(m)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestInstallLarge installs more endpoints than fit the default netlink
// buffers, or one element-list attribute, to keep the batching honest.
func TestInstallLarge(t *testing.T) {
	l := newLab(t)
	const n = 6000 // per set: 12,000 elements, past the ~8,000 of default buffers
	m := &afpacket.Match{}
	for i := range n {
		a := [4]byte{10, 100 + byte(i>>16), byte(i >> 8), byte(i)}
		m.VIPs = append(m.VIPs, afpacket.Endpoint{Proto: protoTCP, Addr: a, Port: 443})
		m.NATReals = append(m.NATReals, afpacket.Endpoint{Proto: protoUDP, Addr: a, Port: 53})
	}
	for i := range 50 {
		m.Locals = append(m.Locals, afpacket.LocalRange{Addr: [4]byte{10, 99, 0, byte(i)}, PortLo: 1024, PortHi: 32767})
	}
	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, m); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })
	if err := tab.Update(m); err != nil {
		t.Fatal(err)
	}
	s := l.readBack(t)
	if len(s.sets[setVIPs]) != n || len(s.sets[setNATReals]) != n || s.rules != 2+2*50 {
		t.Fatalf("after Update: %d VIP and %d NAT elements, %d rules; want %d, %d, %d",
			len(s.sets[setVIPs]), len(s.sets[setNATReals]), s.rules, n, n, 2+2*50)
	}
}

// TestInstallOwn: with the director's own address in Match.Own, what a NAT
// real sends that address (the answer to the director's health check)
// reaches the kernel, while the same real's packets to another address of
// the director (a client's, as far as the table knows) are still dropped,
// and the FULLNAT local range on the own address still is.
func TestInstallOwn(t *testing.T) {
	l := newLab(t)
	toOther := flow{src: netip.AddrPortFrom(realAddr, 8000), dst: netip.AddrPortFrom(vip, 9000)}
	m := *matchOne
	m.Own = [][4]byte{dirAddr.As4()}
	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, &m); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })
	if s := l.readBack(t); s.rules != 5 {
		t.Fatalf("after Install: %d rules; want 5 (VIPs, local range TCP and UDP, own address, NAT reals)", s.rules)
	}
	l.expectFlows(t, []flow{udpFromReal, udpFromReal2}, []flow{toOther, udpToLocal, tcpToLocal, udpVIP7000})
}
