package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gvs-lb/gvs/integration/lab"
)

// TestMain lets the test binary stand in for the bench binary when the
// bench starts its Go generator (`bench gen ...`).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == genCommand {
		os.Exit(genMain(os.Args[2:], os.Stderr))
	}
	os.Exit(m.Run())
}

func testTraffic(flows int) Traffic {
	return Traffic{
		DstMAC: net.HardwareAddr{0x02, 0x00, 10, 20, 0, 2},
		SrcMAC: net.HardwareAddr{0x02, 0x00, 10, 20, 0, 250},
		Dst:    netip.MustParseAddrPort("10.20.0.100:53"),
		Flows:  flows,
	}
}

// TestFrames decodes every frame with gopacket, an encoder independent of
// the bench's, and checks sizes, addresses, flows and both checksums.
func TestFrames(t *testing.T) {
	tr := testTraffic(1024)
	frames, err := tr.Frames()
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 1024 {
		t.Fatalf("%d frames, want 1024", len(frames))
	}
	flows := map[netip.AddrPort]bool{}
	srcs := map[netip.Addr]bool{}
	for i, f := range frames {
		if len(f) != 60 {
			t.Fatalf("frame %d is %d bytes, want 60 (64 with the FCS)", i, len(f))
		}
		// gopacket decodes port 53 payloads as DNS and fails on ours; only
		// the layers up to UDP matter.
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if eth == nil || ip == nil || udp == nil {
			t.Fatalf("frame %d: not Ethernet/IPv4/UDP: %v", i, p)
		}
		if eth.DstMAC.String() != tr.DstMAC.String() || eth.SrcMAC.String() != tr.SrcMAC.String() {
			t.Errorf("frame %d: MACs %s -> %s", i, eth.SrcMAC, eth.DstMAC)
		}
		if ip.Length != 46 || ip.IHL != 5 || ip.TTL != 64 || ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			t.Errorf("frame %d: IPv4 length %d IHL %d TTL %d flags %v offset %d", i, ip.Length, ip.IHL, ip.TTL, ip.Flags, ip.FragOffset)
		}
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		if dst != tr.Dst.Addr() || uint16(udp.DstPort) != tr.Dst.Port() || udp.Length != 26 || len(udp.Payload) != 18 {
			t.Errorf("frame %d: to %s:%d, UDP length %d, payload %d", i, dst, udp.DstPort, udp.Length, len(udp.Payload))
		}
		if !netip.MustParsePrefix("10.20.0.200/30").Contains(src) {
			t.Errorf("frame %d: source %s outside 10.20.0.200-203", i, src)
		}
		srcs[src] = true
		flows[netip.AddrPortFrom(src, uint16(udp.SrcPort))] = true

		// Checksums: the IPv4 header sums to 0xffff; so does the UDP
		// datagram with its pseudo-header.
		if got := onesSum(0, f[ethLen:ethLen+ipv4Len]); got != 0xffff {
			t.Errorf("frame %d: IPv4 header checksum does not verify (sum %#04x)", i, got)
		}
		var pseudo []byte
		pseudo = append(pseudo, ip.SrcIP.To4()...)
		pseudo = append(pseudo, ip.DstIP.To4()...)
		pseudo = append(pseudo, 0, 17, 0, 26)
		if got := onesSum(onesSum(0, pseudo), f[ethLen+ipv4Len:]); got != 0xffff {
			t.Errorf("frame %d: UDP checksum does not verify (sum %#04x)", i, got)
		}
		if udp.Checksum == 0 {
			t.Errorf("frame %d: UDP checksum 0 (none)", i)
		}
	}
	if len(flows) != 1024 || len(srcs) != 4 {
		t.Errorf("%d distinct flows from %d sources, want 1024 from 4", len(flows), len(srcs))
	}
	if got, want := tr.SourceRange(), "10.20.0.200-203:1024-2047"; got != want {
		t.Errorf("SourceRange = %q, want %q", got, want)
	}
	if got, want := testTraffic(2).SourceRange(), "10.20.0.200-201:1024-1025"; got != want {
		t.Errorf("SourceRange of 2 flows = %q, want %q", got, want)
	}
}

func testTraffic6(flows int) Traffic {
	t := testTraffic(flows)
	t.Dst = netip.MustParseAddrPort("[fd00:20::100]:53")
	return t
}

// TestFrames6 decodes every IPv6 frame with gopacket and checks sizes,
// addresses and flows, and that gopacket, serializing the same layers with
// its own checksum, builds the same bytes.
func TestFrames6(t *testing.T) {
	tr := testTraffic6(256)
	frames, err := tr.Frames()
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 256 {
		t.Fatalf("%d frames, want 256", len(frames))
	}
	flows := map[netip.AddrPort]bool{}
	srcs := map[netip.Addr]bool{}
	for i, f := range frames {
		if len(f) != 80 {
			t.Fatalf("frame %d is %d bytes, want 80 (84 with the FCS)", i, len(f))
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if eth == nil || ip == nil || udp == nil {
			t.Fatalf("frame %d: not Ethernet/IPv6/UDP: %v", i, p)
		}
		if eth.EthernetType != layers.EthernetTypeIPv6 || ip.Length != 26 || ip.HopLimit != 64 || ip.NextHeader != layers.IPProtocolUDP {
			t.Errorf("frame %d: EtherType %v, payload length %d, hop limit %d, next header %v", i, eth.EthernetType, ip.Length, ip.HopLimit, ip.NextHeader)
		}
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		if dst != tr.Dst.Addr() || uint16(udp.DstPort) != tr.Dst.Port() || udp.Length != 26 || len(udp.Payload) != 18 {
			t.Errorf("frame %d: to %s:%d, UDP length %d, payload %d", i, dst, udp.DstPort, udp.Length, len(udp.Payload))
		}
		if !netip.MustParsePrefix("fd00:20::200/126").Contains(src) {
			t.Errorf("frame %d: source %s outside fd00:20::200-203", i, src)
		}
		srcs[src] = true
		flows[netip.AddrPortFrom(src, uint16(udp.SrcPort))] = true
		if udp.Checksum == 0 {
			t.Errorf("frame %d: UDP checksum 0, which IPv6 forbids", i)
		}
		udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), f) {
			t.Fatalf("flow %d: gopacket serializes\n%x\nthe bench built\n%x", i, buf.Bytes(), f)
		}
	}
	if len(flows) != 256 || len(srcs) != 4 {
		t.Errorf("%d distinct flows from %d sources, want 256 from 4", len(flows), len(srcs))
	}
	if got, want := tr.SourceRange(), "fd00:20::200-203:1024-1279"; got != want {
		t.Errorf("SourceRange = %q, want %q", got, want)
	}
}

// TestChecksumAgainstGopacket compares the bench's checksums with the ones
// gopacket computes when it serializes the same packet.
func TestChecksumAgainstGopacket(t *testing.T) {
	tr := testTraffic(64)
	frames, err := tr.Frames()
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), f) {
			t.Fatalf("flow %d: gopacket serializes\n%x\nthe bench built\n%x", i, buf.Bytes(), f)
		}
	}
}

func TestTrafficValidate(t *testing.T) {
	for _, bad := range []Traffic{
		{SrcMAC: testTraffic(1).SrcMAC, Dst: testTraffic(1).Dst, Flows: 1},
		func() Traffic {
			x := testTraffic(1)
			x.Dst = netip.MustParseAddrPort("[::ffff:10.20.0.100]:53")
			return x
		}(),
		testTraffic(0),
		testTraffic(MaxFlows + 1),
	} {
		if _, err := bad.Frames(); err == nil {
			t.Errorf("Frames accepted %+v", bad)
		}
	}
	if fr, err := testTraffic(MaxFlows).Frames(); err != nil || len(fr) != MaxFlows {
		t.Errorf("MaxFlows: %d frames, %v", len(fr), err)
	}
}

// TestWriteTrafgen checks the trafgen config: one {...} packet per flow,
// whose bytes are the frame's.
func TestWriteTrafgen(t *testing.T) {
	tr := testTraffic(16)
	var b bytes.Buffer
	if err := tr.WriteTrafgen(&b); err != nil {
		t.Fatal(err)
	}
	frames, _ := tr.Frames()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 17 || !strings.HasPrefix(lines[0], "/*") || !strings.HasSuffix(lines[0], "*/") {
		t.Fatalf("config has %d lines, want a comment and 16 packets:\n%s", len(lines), b.String())
	}
	byteRE := regexp.MustCompile(`^0x[0-9a-f]{2}$`)
	for i, line := range lines[1:] {
		if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
			t.Fatalf("packet %d: %q", i, line)
		}
		fields := strings.Split(strings.Trim(line, "{}"), ",")
		var got []byte
		for _, f := range fields {
			if !byteRE.MatchString(f) {
				t.Fatalf("packet %d: field %q", i, f)
			}
			var v byte
			fmt.Sscanf(f, "0x%02x", &v)
			got = append(got, v)
		}
		if !bytes.Equal(got, frames[i]) {
			t.Errorf("packet %d: %x, want %x", i, got, frames[i])
		}
	}
	if err := testTraffic(0).WriteTrafgen(&b); err == nil {
		t.Error("WriteTrafgen with 0 flows succeeded")
	}
}

func TestParseModes(t *testing.T) {
	got, err := parseModes("dr, nat,kernel")
	if err != nil || fmt.Sprint(got) != "[gvsd-dr gvsd-nat kernel-dnat]" {
		t.Errorf("parseModes = %v, %v", got, err)
	}
	got, err = parseModes("kernel6,dr6,nat6,dr")
	if err != nil || fmt.Sprint(got) != "[kernel-dnat6 gvsd-dr6 gvsd-nat6 gvsd-dr]" || !got[0].is6() || got[3].is6() || got[1].base() != ModeDR {
		t.Errorf("parseModes of IPv6 twins = %v, %v", got, err)
	}
	for _, bad := range []string{"", "dr,dr", "tun", "dr,,nat", "dr6,dr6", "tun6", "dr66", "6"} {
		if _, err := parseModes(bad); err == nil {
			t.Errorf("parseModes(%q) succeeded", bad)
		}
	}
	if Mode(0).String() != "Mode(0)" {
		t.Errorf("Mode(0) = %q", Mode(0))
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	in := []float64{3, 1, 2}
	median(in)
	if fmt.Sprint(in) != "[3 1 2]" {
		t.Errorf("median reordered its input: %v", in)
	}
}

// TestSampleOf checks rates, loss and CPU shares from two snapshots.
func TestSampleOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := snapshot{at: t0, c: counters{
		gen: linkStats{TxPackets: 1000}, director: linkStats{RxPackets: 500}, directorPort: linkStats{RxPackets: 40},
		reals: []linkStats{{RxPackets: 10}, {RxPackets: 20}},
	}, cpu: map[int]cpuTimes{0: {User: 100, Idle: 100}, 1: {User: 10, System: 10, SoftIRQ: 10, Idle: 70}}}
	b := snapshot{at: t0.Add(2 * time.Second), c: counters{
		gen: linkStats{TxPackets: 201000}, director: linkStats{RxPackets: 160500}, directorPort: linkStats{RxPackets: 140040},
		reals: []linkStats{{RxPackets: 60010}, {RxPackets: 60020}},
	}, cpu: map[int]cpuTimes{0: {User: 300, Idle: 100}, 1: {User: 60, System: 50, SoftIRQ: 70, IRQ: 10, Idle: 100, IOWait: 10}}}
	s := sampleOf(a, b, 0, 1)
	if s.Seconds != 2 || s.GeneratorPPS != 100000 || s.DirectorRxPPS != 80000 || s.DirectorTxPPS != 70000 || s.ForwardedPPS != 60000 {
		t.Errorf("rates %+v", s)
	}
	if fmt.Sprint(s.RealPPS) != "[30000 30000]" || s.LossPct != 40 {
		t.Errorf("per real %v, loss %v", s.RealPPS, s.LossPct)
	}
	// CPU 1: 200 ticks, 40 idle or iowait: 80% busy, 25% user, 20% system,
	// 35% softirq+irq.
	if d := s.DirectorCPU; d.CPU != 1 || d.Busy != 80 || d.User != 25 || d.System != 20 || d.SoftIRQ != 35 {
		t.Errorf("director CPU %+v", d)
	}
	if g := s.GeneratorCPU; g.CPU != 0 || g.Busy != 100 || g.User != 100 {
		t.Errorf("generator CPU %+v", g)
	}
	// A counter that went backwards (an interface recreated) gives 0, not
	// a huge rate.
	b.c.gen.TxPackets = 0
	if s := sampleOf(a, b, 0, 1); s.GeneratorPPS != 0 || s.LossPct != 0 {
		t.Errorf("backwards counter: %+v", s)
	}

	m := medianSample([]Sample{
		{GeneratorPPS: 100, ForwardedPPS: 50, RealPPS: []float64{25, 25}, DirectorCPU: CPUUse{CPU: 1, Busy: 90}},
		{GeneratorPPS: 300, ForwardedPPS: 90, RealPPS: []float64{45, 45}, DirectorCPU: CPUUse{CPU: 1, Busy: 100}},
		{GeneratorPPS: 200, ForwardedPPS: 60, RealPPS: []float64{30, 30}, DirectorCPU: CPUUse{CPU: 1, Busy: 95}},
	})
	if m.GeneratorPPS != 200 || m.ForwardedPPS != 60 || fmt.Sprint(m.RealPPS) != "[30 30]" || m.DirectorCPU.Busy != 95 || m.DirectorCPU.CPU != 1 || m.LossPct != 70 {
		t.Errorf("median sample %+v", m)
	}
}

func TestReadCPUTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	os.WriteFile(path, []byte("cpu  10 0 20 300 4 0 5 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 9 0 1 100 0 0 2 0 0 0\nintr 12345\nctxt 1\n"), 0o644)
	old := procStat
	procStat = path
	defer func() { procStat = old }()
	got, err := readCPUTimes()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]cpuTimes{0: {1, 2, 3, 4, 5, 6, 7, 8}, 1: {User: 9, System: 1, Idle: 100, SoftIRQ: 2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("readCPUTimes = %v, want %v", got, want)
	}
	os.WriteFile(path, []byte("cpu0 1 2 x 4 5 6 7 8\n"), 0o644)
	if _, err := readCPUTimes(); err == nil {
		t.Error("a malformed line was accepted")
	}
}

// TestReport checks the ratios, the JSON round trip and the table.
func TestReport(t *testing.T) {
	r := newReport(Options{Generator: genTrafgen, Flows: 1024, Duration: 5 * time.Second, Runs: 3})
	r.Configs = []ConfigResult{
		{Name: "gvsd-dr", Median: Sample{GeneratorPPS: 2e6, ForwardedPPS: 1.6e6}, Runs: []Sample{{ForwardedPPS: 1.6e6}}, Gvsd: json.RawMessage(`{"Dataplane":{}}`)},
		{Name: "gvsd-nat", Median: Sample{GeneratorPPS: 2e6, ForwardedPPS: 1.1e6}},
		{Name: "kernel-dnat", Median: Sample{GeneratorPPS: 2e6, ForwardedPPS: 1e6}},
	}
	r.computeRatios()
	if len(r.Ratios) != 2 || r.Ratios[0].Name != "gvsd-dr / kernel-dnat" || math.Abs(r.Ratios[0].Value-1.6) > 1e-9 || !r.Ratios[0].Met ||
		r.Ratios[1].Name != "gvsd-nat / kernel-dnat" || r.Ratios[1].Target != 1.2 || r.Ratios[1].Met {
		t.Errorf("ratios %+v", r.Ratios)
	}
	var b bytes.Buffer
	if err := r.writeJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, b.String())
	}
	if back.Generator != "trafgen" || back.FrameBytes != 60 || len(back.Configs) != 3 || back.Configs[0].Median.ForwardedPPS != 1.6e6 || len(back.Ratios) != 2 {
		t.Errorf("round trip lost data: %+v", back)
	}
	b.Reset()
	r.writeTable(&b)
	for _, want := range []string{"gvsd-dr", "1,600,000", "gvsd-dr / kernel-dnat: 1.60x (target >= 1.5x): met", "gvsd-nat / kernel-dnat: 1.10x (target >= 1.2x): NOT met", `gvsd counters: {"Dataplane":{}}`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	r.Configs = append(r.Configs, ConfigResult{Name: "interrupted"})
	b.Reset()
	r.writeTable(&b)
	if !regexp.MustCompile(`interrupted +\(no complete run\)`).MatchString(b.String()) {
		t.Errorf("a configuration without runs is not marked:\n%s", b.String())
	}
	// Without the baseline there are no ratios.
	r.Configs = r.Configs[:2]
	r.computeRatios()
	if len(r.Ratios) != 0 {
		t.Errorf("ratios without a baseline: %+v", r.Ratios)
	}
}

func TestFmtPPS(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -12345: "-12,345"} {
		if got := fmtPPS(in); got != want {
			t.Errorf("fmtPPS(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestFinalCounters(t *testing.T) {
	log := `{"msg":"gvsd started"}
not json
{"msg":"final counters","counters":"{\"Dataplane\":{\"RxFrames\":5}}"}
`
	if got := string(finalCounters(log)); got != `{"Dataplane":{"RxFrames":5}}` {
		t.Errorf("finalCounters = %q", got)
	}
	if got := finalCounters(`{"msg":"final counters","counters":"{broken"}`); got != nil {
		t.Errorf("finalCounters of broken JSON = %q", got)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "0s"}, {"-runs", "0"}, {"-flows", "0"}, {"-configs", "tun"},
		{"-generator", "pktgen"}, {"extra"}, {"-warmup", "-1s"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (usage); stderr %s", args, code, errb.String())
		}
	}
}

func TestKernelRulesAndConfig(t *testing.T) {
	// A lab value without namespaces: only names and addresses are used.
	l := &lab.Lab{
		Director: &lab.Host{Name: "director", Iface: "eth0", Addr: netip.MustParseAddr("10.20.0.2")},
		Reals: []*lab.Host{
			{Name: "rs1", Iface: "eth0", Addr: netip.MustParseAddr("10.20.0.11")},
			{Name: "rs2", Iface: "eth0", Addr: netip.MustParseAddr("10.20.0.12")},
		},
	}
	l.Reals[0].Addr6 = netip.MustParseAddr("fd00:20::11")
	l.Reals[1].Addr6 = netip.MustParseAddr("fd00:20::12")
	rules := kernelRules(l, ModeKernel)
	if !strings.Contains(rules, "ip daddr 10.20.0.100 udp dport 53 dnat to numgen inc mod 2 map { 0 : 10.20.0.11, 1 : 10.20.0.12 }") ||
		!strings.Contains(rules, "type nat hook prerouting priority dstnat") || !strings.Contains(rules, "table ip gvsbench") {
		t.Errorf("kernel rules:\n%s", rules)
	}
	rules = kernelRules(l, ModeKernel.IPv6())
	if !strings.Contains(rules, "ip6 daddr fd00:20::100 udp dport 53 dnat to numgen inc mod 2 map { 0 : fd00:20::11, 1 : fd00:20::12 }") ||
		!strings.Contains(rules, "type nat hook prerouting priority dstnat") || !strings.Contains(rules, "table ip6 gvsbench") {
		t.Errorf("IPv6 kernel rules:\n%s", rules)
	}
	for m, want := range map[Mode]string{ModeDR: `forward = "dr"`, ModeNAT: `forward = "nat"`} {
		cfg := gvsdConfig(l, m)
		for _, w := range []string{want, "workers = 1", `address = "10.20.0.100:53"`, `address = "10.20.0.11:53"`, `address = "10.20.0.12:53"`, `protocol = "udp"`} {
			if !strings.Contains(cfg, w) {
				t.Errorf("%s config lacks %s:\n%s", m, w, cfg)
			}
		}
		cfg = gvsdConfig(l, m.IPv6())
		for _, w := range []string{want, "workers = 1", `address = "[fd00:20::100]:53"`, `address = "[fd00:20::11]:53"`, `address = "[fd00:20::12]:53"`, `protocol = "udp"`} {
			if !strings.Contains(cfg, w) {
				t.Errorf("%s config lacks %s:\n%s", m.IPv6(), w, cfg)
			}
		}
	}
}
