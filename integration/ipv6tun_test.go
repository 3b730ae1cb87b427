package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/integration/lab"
	"github.com/gvs-lb/gvs/integration/scenario"
)

// ipv6TUNConfig is testIPv6TUN's gvsd configuration: IPv6 TCP and UDP
// services and an IPv4 TCP one, all tun and rr over both reals.
func ipv6TUNConfig(l *lab.Lab) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[director]\ninterface = %q\nworkers = 2\n", l.Director.Iface)
	service := func(proto string, vip netip.AddrPort, v6 bool) {
		fmt.Fprintf(&b, "\n[[service]]\nprotocol = %q\naddress = %q\nscheduler = \"rr\"\nforward = \"tun\"\n", proto, vip)
		for _, r := range l.Reals {
			a := r.Addr
			if v6 {
				a = r.Addr6
			}
			fmt.Fprintf(&b, "  [[service.real]]\n  address = %q\n", netip.AddrPortFrom(a, vip.Port()))
		}
	}
	service("tcp", netip.AddrPortFrom(lab.VIP6, 80), true)
	service("udp", netip.AddrPortFrom(lab.VIP6, 53), true)
	service("tcp", netip.AddrPortFrom(lab.VIP, 80), false)
	return b.String()
}

// testIPv6TUN runs IPv6 TUN beside IPv4 TUN on one gvsd, the reals
// decapsulating with gvs-realserver and its extra flags: TCP echoes of 1
// MiB per connection come back byte for byte and UDP datagrams echo; rr
// spreads connections and datagrams evenly over both reals, which see the
// client's own address; no reply passes through the director; the reals'
// IPv6-in-IPv6 went the way asked (eBPF or userspace); the director's
// kernel sends no reset or ICMPv6 error for VIP traffic, and the only
// ICMPv6 errors gvsd sends are Packet Too Big from the VIP (a client
// packet too big to travel encapsulated; with GRO most arrive as GSO
// frames that gvsd cuts to fit instead); nothing is left behind.
func testIPv6TUN(t *testing.T, extra []string) {
	l := needLabWith(t, lab.Options{IPv6: true, Reals: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	userspace := strings.Contains(strings.Join(extra, " "), "userspace")

	// The reals: both VIPs on lo and decapsulation through gvs-realserver.
	var realLogs []func() string
	for _, r := range l.Reals {
		args := append(append([]string{bins.realserver}, extra...), "-vip", lab.VIP.String()+","+lab.VIP6.String(), "-mode", "tun")
		p, err := scenario.Start(ctx, r, filepath.Join(dir, r.Name+"-realserver.log"), args)
		if err != nil {
			t.Fatal(err)
		}
		realLogs = append(realLogs, p.Log)
		defer func() { // before ctx ends, which would kill it
			if err := p.Stop(); err != nil {
				t.Errorf("gvs-realserver on %s: %v\n%s", r.Name, err, p.Log())
			}
			checkDecapLog(t, r.Name, p.Log(), userspace)
			if hostHas(ctx, t, r, "lo", lab.VIP6.String()+"/128") {
				t.Errorf("%s: gvs-realserver left %s on lo", r.Name, lab.VIP6)
			}
		}()
	}
	for i, r := range l.Reals {
		if err := waitCond(ctx, 10*time.Second, func() bool { return strings.Contains(realLogs[i](), "realserver: ready") }); err != nil {
			t.Fatalf("%s: gvs-realserver not ready: %v\n%s", r.Name, err, realLogs[i]())
		}
	}

	type echoes struct{ tcp, udp, tcp4 *lab.Echo }
	var svcEchoes []echoes
	for _, r := range l.Reals {
		var e echoes
		var err error
		if e.tcp, err = r.StartEcho("tcp", netip.AddrPortFrom(lab.VIP6, 80)); err == nil {
			if e.udp, err = r.StartEcho("udp", netip.AddrPortFrom(lab.VIP6, 53)); err == nil {
				e.tcp4, err = r.StartEcho("tcp", netip.AddrPortFrom(lab.VIP, 80))
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		svcEchoes = append(svcEchoes, e)
	}

	cfgPath := filepath.Join(dir, "gvs-ipv6-tun.toml")
	if err := os.WriteFile(cfgPath, []byte(ipv6TUNConfig(l)), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath, socket := filepath.Join(dir, "gvsd.log"), filepath.Join(dir, "gvsd.sock")
	gvsd, err := scenario.Start(ctx, l.Director, logPath, []string{bins.gvsd, "-config", cfgPath, "-socket", socket, "-log-json"})
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
	waitReady(ctx, t, socket, 6)
	capture, err := l.Director.Capture(l.Director.Iface)
	if err != nil {
		t.Fatal(err)
	}
	// gvsd's own frames bypass the director's taps (PACKET_QDISC_BYPASS):
	// its Packet Too Big are counted where they arrive.
	clientCap, err := l.Client.Capture(l.Client.Iface)
	if err != nil {
		t.Fatal(err)
	}

	// Traffic: 4 TCP connections of 1 MiB per TCP service, 8 datagrams,
	// one after another so rr's order is the connection order.
	const conns, size, datagrams = 4, 1 << 20, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for _, vip := range []netip.AddrPort{netip.AddrPortFrom(lab.VIP6, 80), netip.AddrPortFrom(lab.VIP, 80)} {
		for i := range conns {
			c, err := l.Client.DialTCP(ctx, vip)
			if err != nil {
				t.Errorf("TCP %s connection %d: %v", vip, i, err)
				continue
			}
			wg.Add(1)
			go func() { // one echo transfer, bounded by its deadline
				defer wg.Done()
				defer c.Close()
				if err := echoBytes(c, size); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("TCP %s connection %d: %v", vip, i, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if ok := udpEchoes(ctx, t, l.Client, netip.AddrPortFrom(lab.VIP6, 53), datagrams); ok != datagrams {
		t.Errorf("UDP %s: %d of %d datagrams echoed intact", netip.AddrPortFrom(lab.VIP6, 53), ok, datagrams)
	}

	for i, e := range svcEchoes {
		r := l.Reals[i]
		check := func(what string, ec *lab.Echo, want int, count func(lab.EchoStats) int, peer netip.Addr) {
			st := ec.Stats()
			if got := count(st); got != want {
				t.Errorf("%s %s: %d, want %d (rr over 2 reals)", r.Name, what, got, want)
			}
			for p := range st.Peers {
				if p != peer {
					t.Errorf("%s %s: peer %s, want only the client %s", r.Name, what, p, peer)
				}
			}
		}
		check("IPv6 TCP connections", e.tcp, conns/2, func(s lab.EchoStats) int { return s.Conns }, l.Client.Addr6)
		check("IPv6 UDP datagrams", e.udp, datagrams/2, func(s lab.EchoStats) int { return s.Datagrams }, l.Client.Addr6)
		check("IPv4 TCP connections", e.tcp4, conns/2, func(s lab.EchoStats) int { return s.Conns }, l.Client.Addr)
		if b := e.tcp.Stats().Bytes; b != int64(conns/2*size) {
			t.Errorf("%s IPv6 TCP: echoed %d bytes, want %d", r.Name, b, conns/2*size)
		}
	}
	for _, s := range gvsStatus(ctx, t, socket).Services {
		for _, r := range s.Reals {
			if r.Stats.Conns == 0 || r.Stats.InPkts == 0 || r.Stats.OutPkts != 0 || r.Forward != "tun" {
				t.Errorf("%s %s -> %s (%s): %d connections, %d packets in, %d replies through the director", s.Protocol, s.Address, r.Address, r.Forward,
					r.Stats.Conns, r.Stats.InPkts, r.Stats.OutPkts)
			}
		}
	}
	out, err := exec.CommandContext(ctx, bins.gvsadm, "--socket", socket, "-L", "-n").Output()
	if err != nil {
		t.Fatalf("gvsadm -L -n: %v", err)
	}
	if re := `(?m)^TCP  \[fd00:20::100\]:80 rr$\n  -> \[fd00:20::11\]:80 +Tunnel  1 +\d+ +\d+ +$\n  -> \[fd00:20::12\]:80 +Tunnel  1 `; !regexp.MustCompile(re).Match(out) {
		t.Errorf("gvsadm -L -n lacks %s:\n%s", re, out)
	}

	// The director's kernel left the VIP traffic alone.
	for _, f := range capture.Stop() {
		p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
		ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !ok || !f.Outgoing {
			continue
		}
		if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && tcp.RST && ip.SrcIP.Equal(lab.VIP6.AsSlice()) {
			t.Errorf("the director's kernel reset a connection: %s:%d -> %s:%d", ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort)
		}
		if ic, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok && ic.TypeCode.Type() < 128 {
			t.Errorf("the director's kernel sent ICMPv6 error %v from %s to %s", ic.TypeCode, ip.SrcIP, ip.DstIP)
		}
	}
	// The client heard only Packet Too Big from the VIP, with the tunnel's
	// MTU: the LAN's 1500 less the outer header. With offloads off, every
	// connection's first full-size segment (1500 bytes, MSS 1440) met one.
	tooBig := 0
	for _, f := range clientCap.Stop() {
		p := gopacket.NewPacket(f.Data, layers.LayerTypeEthernet, gopacket.Default)
		ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		ic, ok2 := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok || !ok2 || f.Outgoing || ic.TypeCode.Type() >= 128 {
			continue
		}
		if ic.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || !ip.SrcIP.Equal(lab.VIP6.AsSlice()) ||
			len(ic.Payload) < 4 || binary.BigEndian.Uint32(ic.Payload) != 1460 {
			t.Errorf("the client got ICMPv6 error %v from %s: % x", ic.TypeCode, ip.SrcIP, ic.LayerPayload())
			continue
		}
		tooBig++
	}
	if os.Getenv("GVS_LAB_OFFLOADS") == "off" && tooBig == 0 {
		t.Error("offloads off: the client got no Packet Too Big for its full-size segments")
	}

	stopped = true
	if err := gvsd.Stop(); err != nil {
		t.Errorf("gvsd exited with %v", err)
	}
	var c struct {
		Dataplane struct {
			Verdicts  map[string]uint64
			WorkerRx  []uint64
			ICMPSent  uint64
			Segmented uint64
		}
		Reals map[string]struct{ Conns, InPkts, OutPkts uint64 }
	}
	counters := finalCountersOf(gvsd.Log())
	if err := json.Unmarshal(counters, &c); err != nil {
		t.Fatalf("final counters %q: %v", counters, err)
	}
	t.Logf("Packet Too Big at the client: %d; dataplane (IPv4 and IPv6): too_big %d, ICMP sent %d, GSO frames segmented %d",
		tooBig, c.Dataplane.Verdicts["too_big"], c.Dataplane.ICMPSent, c.Dataplane.Segmented)
	for _, v := range []string{"malformed", "no_conn", "no_real", "table_full", "tx_error", "offload", "ipv6_unparsed", "ipv6_fragment"} {
		if n := c.Dataplane.Verdicts[v]; n != 0 {
			t.Errorf("verdict %s counted %d frames, want 0", v, n)
		}
	}
	if len(c.Dataplane.WorkerRx) != 2 || c.Dataplane.WorkerRx[0] == 0 || c.Dataplane.WorkerRx[1] == 0 {
		t.Errorf("frames per worker %v: want both workers busy", c.Dataplane.WorkerRx)
	}
	if len(c.Reals) != 6 {
		t.Errorf("final counters of %d reals, want 6 (3 services x 2 reals): %v", len(c.Reals), c.Reals)
	}
	for _, lo := range scenario.Leftovers(ctx, l) {
		t.Errorf("left behind after gvsd stopped: %s", lo)
	}
	if hostHas(ctx, t, l.Director, l.Director.Iface, lab.VIP6.String()+"/128") {
		t.Errorf("%s/128 left on the director after gvsd stopped", lab.VIP6)
	}
}

// checkDecapLog checks a TUN real's gvs-realserver log after it stopped:
// its IPv6-in-IPv6 went through the eBPF program, or with -decap userspace
// through the raw socket, and nothing was rejected or failed.
func checkDecapLog(t *testing.T, name, log string, userspace bool) {
	t.Helper()
	num := func(line, key string) int {
		m := regexp.MustCompile(`(?:^| )` + key + `=(\d+)`).FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s: gvs-realserver log line lacks %s: %s", name, key, line)
			return -1
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	var v6, bpf string
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, "IPv6-in-IPv6 decapsulation stopped"):
			v6 = line
		case strings.Contains(line, "eBPF decapsulation stopped"):
			bpf = line
		}
	}
	if v6 == "" {
		t.Errorf("%s: gvs-realserver did not log its IPv6-in-IPv6 counters:\n%s", name, log)
		return
	}
	t.Logf("%s: %s", name, v6)
	if n := num(v6, "rejected"); n != 0 {
		t.Errorf("%s: %d IPv6-in-IPv6 packets rejected: %s", name, n, v6)
	}
	if n := num(v6, "tun_write_errors"); n != 0 {
		t.Errorf("%s: %d TUN write errors: %s", name, n, v6)
	}
	if userspace {
		if bpf != "" || num(v6, "decapsulated") == 0 {
			t.Errorf("%s: -decap userspace, but userspace decapsulated nothing or eBPF ran:\n%s", name, log)
		}
		return
	}
	if bpf == "" || num(bpf, "bpf_decapsulated") == 0 || num(bpf, "bpf_failed") != 0 {
		t.Errorf("%s: the eBPF program did not decapsulate (or failed):\n%s", name, log)
	}
}
