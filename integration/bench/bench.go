package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/integration/lab"
)

// Mode is one configuration of the director the bench measures. The zero
// value is invalid.
type Mode int

const (
	// ModeDR is gvsd in direct-routing mode.
	ModeDR Mode = iota + 1
	// ModeNAT is gvsd in NAT mode.
	ModeNAT
	// ModeKernel is the baseline: no gvsd, the director's kernel forwards
	// with nftables DNAT.
	ModeKernel
)

// mode6 marks a mode's IPv6 twin: the same set-up with IPv6 frames to
// the VIP's IPv6 counterpart (lab.VIP6) and the reals' IPv6 addresses
// (nftables table ip6 for the kernel baseline).
const mode6 Mode = 1 << 8

// IPv6 returns m's IPv6 twin.
func (m Mode) IPv6() Mode { return m | mode6 }

// is6 says whether m is an IPv6 twin.
func (m Mode) is6() bool { return m&mode6 != 0 }

// base is m's IPv4 mode.
func (m Mode) base() Mode { return m &^ mode6 }

var modeNames = map[Mode]string{ModeDR: "gvsd-dr", ModeNAT: "gvsd-nat", ModeKernel: "kernel-dnat"}

// String is the mode's name, with a 6 for an IPv6 twin: gvsd-dr6.
func (m Mode) String() string {
	if n, ok := modeNames[m.base()]; ok {
		if m.is6() {
			return n + "6"
		}
		return n
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// describe says what the director does in mode m.
func (m Mode) describe() string {
	var s string
	switch m.base() {
	case ModeDR:
		s = "gvsd, 1 worker: MAC rewrite to the real server (VIP on the reals' lo)"
	case ModeNAT:
		s = "gvsd, 1 worker: VIP:53 -> RIP:53 (reals route via the director)"
	case ModeKernel:
		s = "no gvsd: nftables DNAT numgen inc over the reals, ip_forward=1 (reals route via the director)"
	}
	if m.is6() {
		s += "; IPv6: [" + lab.VIP6.String() + "]:53 to the reals' IPv6 addresses"
		if m.base() == ModeKernel {
			s += " (table ip6, net.ipv6.conf.all.forwarding=1)"
		}
	}
	return s
}

// parseModes parses a comma-separated list of dr, nat and kernel, and
// their IPv6 twins dr6, nat6 and kernel6.
func parseModes(s string) ([]Mode, error) {
	var out []Mode
	seen := map[Mode]bool{}
	for _, f := range strings.Split(s, ",") {
		name := strings.TrimSpace(f)
		var m Mode
		switch strings.TrimSuffix(name, "6") {
		case "dr":
			m = ModeDR
		case "nat":
			m = ModeNAT
		case "kernel":
			m = ModeKernel
		default:
			return nil, fmt.Errorf("configuration %q: want dr, nat or kernel, or dr6, nat6 or kernel6 for IPv6", f)
		}
		if strings.HasSuffix(name, "6") {
			m = m.IPv6()
		}
		if seen[m] {
			return nil, fmt.Errorf("configuration %q given twice", f)
		}
		seen[m] = true
		out = append(out, m)
	}
	return out, nil
}

// vip is the service address every configuration forwards.
var vip = lab.VIP

// The service port and where everything runs.
const (
	// vport is the service port; the reals get the same port in every mode,
	// so the kernel baseline does the same work as NAT.
	vport = 53
	// numReals matches the lab's DESIGN.md picture.
	numReals = 2
	// genCPU runs the generator. trafgen -P 1 pins its one worker to CPU 0
	// itself, so this is not a flag.
	genCPU = 0
	// directorCPU runs everything the director does: gvsd (taskset) and the
	// kernel's receive processing of the director's eth0 (RPS).
	directorCPU = 1
	// gvsdStartTimeout bounds gvsd's start, including ARP resolution of the
	// reals (1 s each, in parallel).
	gvsdStartTimeout = 20 * time.Second
	// genStartTimeout bounds the wait for the generator's first frames.
	genStartTimeout = 10 * time.Second
	// settle lets queues drain between runs so one run's backlog does not
	// count in the next.
	settle = 300 * time.Millisecond
)

// Generators.
const (
	genTrafgen = "trafgen"
	genGo      = "go"
)

// Options configure Bench.
type Options struct {
	Duration  time.Duration // measured interval of each run
	Warmup    time.Duration // generator running before the interval starts
	Runs      int           // runs per configuration
	Flows     int
	Modes     []Mode
	Prefix    string // lab namespace prefix
	Keep      bool   // leave the lab up
	Gvsd      string // gvsd binary
	Generator string // genTrafgen or genGo
	// Self is the binary that runs the Go generator (`Self gen ...`).
	Self string
	// Dir holds configs and logs.
	Dir string
	// PerfDir, if set, receives a perf(1) CPU profile of the director's
	// CPU during the first measured interval of each configuration:
	// PerfDir/CONFIG.perf.data, for perf report -i.
	PerfDir string
	// NoRPS leaves the director's receive processing where the frames
	// arrive: on the generator's CPU. gvsd then gets its CPU to itself
	// while the kernel baseline forwards on the generator's CPU; an
	// experiment that shows what the receive path costs, not a fair
	// comparison.
	NoRPS bool
	// LANNAPI moves the LAN side of the director's output (the bridge port
	// facing the director) to a NAPI kernel thread on the generator's CPU,
	// so the director's CPU does only the director's work. An experiment:
	// the generator's CPU then limits what is forwarded.
	LANNAPI bool
	// NAPI receives on the director's eth0 through veth's own NAPI ring,
	// polled by a kernel thread pinned to the director's CPU (threaded
	// NAPI, with GRO on: UDP frames are not merged), instead of RPS: like
	// a NIC's receive queue, with no IPI per batch. gvsd turns GRO off at
	// start; the bench turns it back on after.
	NAPI bool
	// NoPin (-pin=false) places nothing: gvsd and the generator run
	// without taskset (trafgen, which pins its worker itself, gets its
	// affinity reset to the bench's own once it sends), the director's
	// receive processing stays where the kernel puts it (no RPS, no
	// threaded NAPI). The zero value pins, as the users suite's row 5
	// does.
	NoPin bool
	// ZeroLoss searches each configuration's zero-loss rate after its
	// saturation runs: ZeroLossSteps bisection steps between ZeroLossLow
	// pps and the saturation runs' generator rate, each a run of its own
	// (warm-up and Duration) with the Go generator paced at the rate.
	ZeroLoss      bool
	ZeroLossLow   float64
	ZeroLossSteps int
	// PaceQuantum is the paced generator's quantum (see pacer): at most
	// one write per quantum, of every frame due by then.
	PaceQuantum time.Duration
	Logf        func(format string, args ...any)
}

// pinned reports whether the bench places work on CPUs.
func (o Options) pinned() bool { return !o.NoPin }

// bench is one Bench call's state.
type bench struct {
	o  Options
	l  *lab.Lab
	cs *counterSet
	// traffic and genCfg (the trafgen config's path) are per family:
	// [0] IPv4, [1] IPv6 (set only when an IPv6 mode is measured).
	traffic [2]Traffic
	genCfg  [2]string
	lanHost *lab.Host
	rep     *Report
}

// Bench builds the lab, measures every configuration of o.Modes and tears
// the lab down (unless o.Keep). It returns what it measured even when it
// fails halfway.
func Bench(ctx context.Context, o Options) (rep *Report, err error) {
	rep = newReport(o)
	o.Logf("building the lab %s-* (generator on the LAN)", o.Prefix)
	l, err := lab.New(lab.Options{Prefix: o.Prefix, Reals: numReals, Generator: true, IPv6: slices.ContainsFunc(o.Modes, Mode.is6)})
	if err != nil {
		return rep, err
	}
	b := &bench{o: o, l: l, rep: rep, lanHost: &lab.Host{Name: "lan", NS: o.Prefix + "-lan"}}
	defer func() {
		if b.cs != nil {
			b.cs.close()
		}
		// What prepare set lives in the lab's namespaces and goes with them.
		if o.Keep {
			o.Logf("keeping the lab: namespaces %s-* (remove with: ip netns list | grep '^%s-' | cut -d' ' -f1 | xargs -n1 ip netns del)", o.Prefix, o.Prefix)
			return
		}
		err = errors.Join(err, l.Close())
		o.Logf("lab torn down")
	}()
	if err := b.prepare(ctx); err != nil {
		return rep, err
	}
	for _, m := range o.Modes {
		res, err := b.measure(ctx, m)
		if res != nil {
			rep.Configs = append(rep.Configs, *res)
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", m, err)
		}
	}
	rep.computeRatios()
	return rep, nil
}

// prepare does what every configuration shares: a static bridge FDB, the
// generator's wire to the director, RPS on the director, NAPI where the
// director's output is received, packet sinks on the reals, the counters
// and the generator's frames.
func (b *bench) prepare(ctx context.Context) error {
	l := b.l
	// Static FDB entries: the bridge never floods a benchmark frame because
	// an entry aged out, and learns nothing during a run.
	for _, h := range append(append([]*lab.Host{l.Director}, l.Reals...), l.Generator) {
		if _, err := runIn(ctx, b.lanHost, "", "bridge", "fdb", "replace", h.MAC.String(), "dev", h.Name, "master", "static"); err != nil {
			return err
		}
	}
	// Scatter-gather off on the generator's eth0: trafgen's TX ring hands
	// the kernel frames whose bytes after the Ethernet header sit in the
	// ring's pages (skb frags); without SG the device linearises them, a
	// 60-byte copy on the generator's CPU. Left alone, every header read
	// at the director (the dataplane's socket filter, the tap's copy,
	// ip_rcv's pull) would take the slow non-linear path, which frames
	// from a NIC driver do not, and a frame still queued at the director
	// would share a ring slot that trafgen already reuses.
	if _, err := runIn(ctx, l.Generator, "", "ethtool", "-K", l.Generator.Iface, "sg", "off"); err != nil {
		return err
	}
	// The wire from the generator to the director: on the LAN side, frames
	// from the generator to the director's MAC are cloned onto the
	// director's port and the original is freed at once. A veth frame
	// stays charged to the sending socket until it is freed, so without
	// this the director's backlog would push back on the generator (a
	// NIC does not): a full send buffer, which a child namespace cannot
	// enlarge (net.core.wmem_* are read-only there), makes trafgen give up
	// (EAGAIN), and slows the Go generator to the director's pace. With
	// it, a director that cannot keep up loses frames, counted as loss.
	wire := fmt.Sprintf("table netdev gvsbench_wire {\n\tchain gen {\n\t\ttype filter hook ingress device %q priority 0; policy accept;\n\t\tether daddr %s dup to %q drop\n\t}\n}\n",
		l.Generator.Name, l.Director.MAC, l.Director.Name)
	if _, err := runIn(ctx, b.lanHost, wire, "nft", "-f", "-"); err != nil {
		return err
	}
	// RPS: the director's receive processing runs on directorCPU
	// whichever CPU the frame arrived on. Unpinned, the kernel's default:
	// on the CPU that hands the frame to the director's eth0.
	switch {
	case b.o.NoPin:
	case b.o.NAPI:
		if err := threadedNAPI(ctx, l.Director, l.Director.Iface, directorCPU); err != nil {
			return err
		}
	case !b.o.NoRPS:
		if err := setRPS(ctx, l.Director, l.Director.Iface, directorCPU); err != nil {
			return err
		}
	}
	// NAPI on the receiving ends of the director's output: a veth peer
	// without GRO receives through the sending CPU's backlog queue (one per
	// CPU, net.core.netdev_max_backlog long), where the director's output
	// would queue behind its own input, always full when the director is
	// overloaded, and be dropped there, which no NIC does. With GRO on, a
	// veth peer receives through a ring of its own, polled on the sending
	// CPU without an IPI. So the bridge port facing the director and the
	// reals' eth0 get GRO; the director's output is then received (bridge,
	// reals' ingress) on directorCPU, the same in every configuration.
	if _, err := runIn(ctx, b.lanHost, "", "ethtool", "-K", l.Director.Name, "gro", "on"); err != nil {
		return err
	}
	if b.o.LANNAPI {
		// The LAN side of the director's output in a kernel thread on the
		// generator's CPU: without it, each frame gvsd sends makes the
		// kernel poll the peer's ring for that one frame inside gvsd's
		// sendmmsg (veth schedules the peer's NAPI, and the per-frame
		// bottom-half enable runs it), where the kernel's own forwarding,
		// already in softirq, batches it.
		script := `echo 1 > /sys/class/net/` + l.Director.Name + `/threaded && sleep 0.2 && for p in $(pgrep '^napi/` + l.Director.Name + `-'); do taskset -p -c ` + strconv.Itoa(genCPU) + ` $p >/dev/null || exit 1; done; pgrep -c '^napi/` + l.Director.Name + `-'`
		out, err := runIn(ctx, b.lanHost, "", "sh", "-c", script)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) == "0" {
			return fmt.Errorf("bench: no napi/%s kernel thread in %s", l.Director.Name, b.lanHost.Name)
		}
	}
	for _, r := range l.Reals {
		if _, err := runIn(ctx, r, "", "ethtool", "-K", r.Iface, "gro", "on"); err != nil {
			return err
		}
	}
	// Sinks: the reals drop the benchmark's datagrams at ingress, after
	// rx_packets counted them, so no real spends CPU on answering (ICMP
	// port unreachable).
	for _, r := range l.Reals {
		rules := fmt.Sprintf("table netdev gvsbench_sink {\n\tchain ingress {\n\t\ttype filter hook ingress device %q priority 0; policy accept;\n\t\tudp dport %d drop\n\t}\n}\n", r.Iface, vport)
		if _, err := runIn(ctx, r, rules, "nft", "-f", "-"); err != nil {
			return err
		}
	}
	cs, err := openCounters(l, &lab.Host{Name: "lan", NS: b.lanHost.NS, Iface: l.Director.Name})
	if err != nil {
		return err
	}
	b.cs = cs
	var described []string
	for fam, dst := range []netip.Addr{vip, lab.VIP6} {
		if fam == 1 && !slices.ContainsFunc(b.o.Modes, Mode.is6) {
			break
		}
		t := Traffic{DstMAC: l.Director.MAC, SrcMAC: l.Generator.MAC, Dst: netip.AddrPortFrom(dst, vport), Flows: b.o.Flows}
		if err := t.validate(); err != nil {
			return err
		}
		b.traffic[fam] = t
		described = append(described, fmt.Sprintf("%d UDP flows %s -> %s, %d-byte frames (%d with FCS)",
			t.Flows, t.SourceRange(), t.Dst, t.FrameLen(), t.FrameLen()+4))
		if b.o.Generator != genTrafgen {
			continue
		}
		name := "trafgen.cfg"
		if fam == 1 {
			name = "trafgen6.cfg"
		}
		b.genCfg[fam] = filepath.Join(b.o.Dir, name)
		f, err := os.Create(b.genCfg[fam])
		if err != nil {
			return fmt.Errorf("bench: trafgen config: %w", err)
		}
		err = t.WriteTrafgen(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("bench: trafgen config: %w", err)
		}
	}
	b.rep.Traffic = strings.Join(described, "; IPv6: ") + ", from " + l.Generator.Name + " to the director's MAC"
	return nil
}

// family is the index of m's family in bench.traffic and bench.genCfg.
func family(m Mode) int {
	if m.is6() {
		return 1
	}
	return 0
}

// measure sets the lab up for m, runs it o.Runs times and undoes the set-up.
func (b *bench) measure(ctx context.Context, m Mode) (res *ConfigResult, err error) {
	res = &ConfigResult{Name: m.String(), Description: m.describe()}
	b.o.Logf("== %s: %s", m, m.describe())
	undo, err := b.setup(ctx, m)
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			err = errors.Join(err, undo[i]())
		}
		res.Median = medianSample(res.Runs) // also of the runs before a failure
	}()
	if err != nil {
		return res, err
	}
	var gvsd *proc
	if m.base() != ModeKernel {
		if gvsd, err = b.startGvsd(ctx, m); err != nil {
			return res, err
		}
		defer func() {
			serr := gvsd.stop()
			res.Gvsd = finalCounters(gvsd.log())
			if serr != nil {
				err = errors.Join(err, fmt.Errorf("bench: gvsd exited with %v\n%s", serr, tail(gvsd.log())))
			}
		}()
	}
	for run := 1; run <= b.o.Runs; run++ {
		s, err := b.run(ctx, m, strconv.Itoa(run), 0)
		if err != nil {
			return res, err
		}
		if gvsd != nil && gvsd.exited() {
			return res, fmt.Errorf("bench: gvsd exited during run %d (%v)\n%s", run, gvsd.err, tail(gvsd.log()))
		}
		b.o.Logf("  run %d: generator %s pps, director rx %s pps, tx %s pps, forwarded %s pps (loss %.1f%%), %s",
			run, fmtPPS(s.GeneratorPPS), fmtPPS(s.DirectorRxPPS), fmtPPS(s.DirectorTxPPS), fmtPPS(s.ForwardedPPS), s.LossPct, b.cpuLog(s))
		res.Runs = append(res.Runs, s)
	}
	if b.o.ZeroLoss {
		sat := medianSample(res.Runs)
		var zl ZeroLoss
		if passes(sat, zeroLossMaxPct) {
			zl = zeroLossOfSaturation(sat, b.o.ZeroLossLow)
			b.o.Logf("  zero-loss: %s", zl.Note)
		} else {
			b.o.Logf("  zero-loss search: %s to %s pps, %d steps, loss at most %g%%", fmtPPS(b.o.ZeroLossLow), fmtPPS(sat.GeneratorPPS), b.o.ZeroLossSteps, zeroLossMaxPct)
			step := 0
			zl, err = searchZeroLoss(b.o.ZeroLossLow, sat.GeneratorPPS, b.o.ZeroLossSteps, zeroLossMaxPct, func(asked float64) (Sample, error) {
				step++
				s, err := b.run(ctx, m, fmt.Sprintf("zl%d", step), asked)
				if err == nil && gvsd != nil && gvsd.exited() {
					err = fmt.Errorf("bench: gvsd exited during zero-loss step %d (%v)\n%s", step, gvsd.err, tail(gvsd.log()))
				}
				if err != nil {
					return s, err
				}
				verdict := "ok"
				if !passes(s, zeroLossMaxPct) {
					verdict = "lossy"
				}
				b.o.Logf("  zero-loss step %d: asked %s pps, generator %s pps, forwarded %s pps, loss %.2f%%: %s; %s",
					step, fmtPPS(asked), fmtPPS(s.GeneratorPPS), fmtPPS(s.ForwardedPPS), s.LossPct, verdict, b.cpuLog(s))
				return s, nil
			})
			if zl.Found {
				b.o.Logf("  zero-loss: %s pps offered (%s asked), %s forwarded", fmtPPS(zl.PPS), fmtPPS(zl.AskedPPS), fmtPPS(zl.ForwardedPPS))
			} else {
				b.o.Logf("  zero-loss: %s", zl.Note)
			}
		}
		res.ZeroLoss = &zl
		if err != nil {
			return res, fmt.Errorf("zero-loss search: %w", err)
		}
	}
	return res, nil
}

// cpuLog describes a sample's CPU use for the progress log: the
// director's CPU, or both CPUs when nothing is pinned.
func (b *bench) cpuLog(s Sample) string {
	if b.o.pinned() {
		return fmt.Sprintf("CPU %d busy %.0f%%", directorCPU, s.DirectorCPU.Busy)
	}
	return fmt.Sprintf("CPU %d busy %.0f%%, CPU %d %.0f%%", genCPU, s.GeneratorCPU.Busy, directorCPU, s.DirectorCPU.Busy)
}

// setup prepares the reals and the director's kernel for m and returns
// what undoes it, to run in reverse order, also after an error.
func (b *bench) setup(ctx context.Context, m Mode) (undo []func() error, err error) {
	l := b.l
	if m.is6() {
		return b.setup6(ctx, m)
	}
	gw := l.Director.Addr
	if m == ModeDR {
		gw = l.Gateway
	}
	if err := l.SetRealGateway(gw); err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return l.SetRealGateway(l.Gateway) })
	switch m {
	case ModeDR:
		// What gvs-realserver -mode dr does: the VIP on lo, and no ARP
		// answers or announcements for it.
		for _, r := range l.Reals {
			for _, key := range []string{"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/" + r.Iface + "/arp_ignore"} {
				u, err := swapSysctl(r, key, "1")
				if err != nil {
					return undo, err
				}
				undo = append(undo, u)
			}
			for _, key := range []string{"net/ipv4/conf/all/arp_announce", "net/ipv4/conf/" + r.Iface + "/arp_announce"} {
				u, err := swapSysctl(r, key, "2")
				if err != nil {
					return undo, err
				}
				undo = append(undo, u)
			}
			if _, err := runIn(ctx, r, "", "ip", "addr", "add", vip.String()+"/32", "dev", "lo"); err != nil {
				return undo, err
			}
			undo = append(undo, func() error {
				_, err := runIn(context.Background(), r, "", "ip", "addr", "del", vip.String()+"/32", "dev", "lo")
				return err
			})
		}
	case ModeKernel:
		d := l.Director
		for _, kv := range [][2]string{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv4/conf/all/rp_filter", "0"},
			{"net/ipv4/conf/default/rp_filter", "0"},
			{"net/ipv4/conf/" + d.Iface + "/rp_filter", "0"},
			// Frames leave by the interface they came in on: a router
			// would send an ICMP redirect to the (absent) source.
			{"net/ipv4/conf/all/send_redirects", "0"},
			{"net/ipv4/conf/" + d.Iface + "/send_redirects", "0"},
		} {
			u, err := swapSysctl(d, kv[0], kv[1])
			if err != nil {
				return undo, err
			}
			undo = append(undo, u)
		}
		if _, err := runIn(ctx, d, kernelRules(l, m), "nft", "-f", "-"); err != nil {
			return undo, err
		}
		undo = append(undo, func() error {
			_, err := runIn(context.Background(), d, "", "nft", "delete", "table", "ip", kernelTable)
			return err
		})
	}
	return undo, nil
}

// setup6 is setup for an IPv6 twin: the reals' IPv6 default route via
// the director (NAT, kernel) or the router (DR), the VIP on the reals' lo
// (DR: a /128 there is never announced, Linux answers neighbour
// solicitations only for the receiving interface's addresses), IPv6
// forwarding and an ip6 DNAT table on the director (kernel).
func (b *bench) setup6(ctx context.Context, m Mode) (undo []func() error, err error) {
	l := b.l
	gw := l.Director.Addr6
	if m.base() == ModeDR {
		gw = l.Gateway6
	}
	if err := l.SetRealGateway(gw); err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return l.SetRealGateway(l.Gateway6) })
	switch m.base() {
	case ModeDR:
		for _, r := range l.Reals {
			if _, err := runIn(ctx, r, "", "ip", "-6", "addr", "add", lab.VIP6.String()+"/128", "dev", "lo", "nodad"); err != nil {
				return undo, err
			}
			undo = append(undo, func() error {
				_, err := runIn(context.Background(), r, "", "ip", "-6", "addr", "del", lab.VIP6.String()+"/128", "dev", "lo")
				return err
			})
		}
	case ModeKernel:
		d := l.Director
		u, err := swapSysctl(d, "net/ipv6/conf/all/forwarding", "1")
		if err != nil {
			return undo, err
		}
		undo = append(undo, u)
		if _, err := runIn(ctx, d, kernelRules(l, m), "nft", "-f", "-"); err != nil {
			return undo, err
		}
		undo = append(undo, func() error {
			_, err := runIn(context.Background(), d, "", "nft", "delete", "table", "ip6", kernelTable)
			return err
		})
	}
	return undo, nil
}

// kernelTable is the nftables table of the kernel baseline.
const kernelTable = "gvsbench"

// kernelRules is the kernel baseline of m (ModeKernel or its IPv6 twin):
// DNAT of VIP:53 to the reals in turn, in table ip or ip6.
func kernelRules(l *lab.Lab, m Mode) string {
	family, dst := "ip", vip
	if m.is6() {
		family, dst = "ip6", lab.VIP6
	}
	var rs []string
	for i, r := range l.Reals {
		a := r.Addr
		if m.is6() {
			a = r.Addr6
		}
		rs = append(rs, fmt.Sprintf("%d : %s", i, a))
	}
	return fmt.Sprintf("table %s %s {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\t%s daddr %s udp dport %d dnat to numgen inc mod %d map { %s }\n\t}\n}\n",
		family, kernelTable, family, dst, vport, len(l.Reals), strings.Join(rs, ", "))
}

// gvsdConfig is the configuration gvsd runs with in mode m.
func gvsdConfig(l *lab.Lab, m Mode) string {
	forward := "dr"
	if m.base() == ModeNAT {
		forward = "nat"
	}
	svc := netip.AddrPortFrom(vip, vport)
	if m.is6() {
		svc = netip.AddrPortFrom(lab.VIP6, vport)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "[director]\ninterface = %q\nworkers = 1\n\n", l.Director.Iface)
	fmt.Fprintf(&s, "[[service]]\nname = \"bench\"\nprotocol = \"udp\"\naddress = \"%s\"\nscheduler = \"rr\"\nforward = %q\n", svc, forward)
	for _, r := range l.Reals {
		a := r.Addr
		if m.is6() {
			a = r.Addr6
		}
		fmt.Fprintf(&s, "  [[service.real]]\n  address = \"%s\"\n", netip.AddrPortFrom(a, vport))
	}
	return s.String()
}

// startGvsd runs gvsd on the director, pinned to directorCPU unless
// o.NoPin, and waits until it forwards.
func (b *bench) startGvsd(ctx context.Context, m Mode) (*proc, error) {
	cfg := filepath.Join(b.o.Dir, "gvsd-"+m.String()+".toml")
	if err := os.WriteFile(cfg, []byte(gvsdConfig(b.l, m)), 0o644); err != nil {
		return nil, fmt.Errorf("bench: gvsd config: %w", err)
	}
	args := []string{b.o.Gvsd, "-config", cfg, "-socket", filepath.Join(filepath.Dir(cfg), "gvsd.sock"), "-log-json"}
	if b.o.pinned() {
		args = append([]string{"taskset", "-c", strconv.Itoa(directorCPU)}, args...)
	}
	p, err := startProc(b.l.Director, "gvsd", filepath.Join(b.o.Dir, "gvsd-"+m.String()+".log"), syscall.SIGTERM, args)
	if err != nil {
		return nil, err
	}
	if err := p.waitLog(ctx, "gvsd started", gvsdStartTimeout); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(p.log()))
	}
	if b.o.NAPI {
		// gvsd turned GRO, and with it veth's NAPI, off: back on.
		if err := threadedNAPI(ctx, b.l.Director, b.l.Director.Iface, directorCPU); err != nil {
			p.stop()
			return nil, err
		}
	}
	if log := p.log(); strings.Contains(log, "cannot resolve real server") {
		p.stop()
		return nil, fmt.Errorf("bench: gvsd could not resolve a real server\n%s", tail(log))
	}
	return p, nil
}

// run is one measured interval: start the generator (at full speed, or
// the Go generator paced at rate pps), wait for its frames and the
// warm-up, read the counters, wait o.Duration, read them again, stop the
// generator. run names the run in log files; the first saturation run,
// "1", is the one perf records.
func (b *bench) run(ctx context.Context, m Mode, run string, rate float64) (Sample, error) {
	gen, err := b.startGenerator(m, run, rate)
	if err != nil {
		return Sample{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			gen.stop()
		}
	}()
	c0, err := b.cs.read()
	if err != nil {
		return Sample{}, err
	}
	err = waitFor(ctx, genStartTimeout, func() bool {
		c, err := b.cs.read()
		return gen.exited() || (err == nil && c.gen.TxPackets > c0.gen.TxPackets)
	})
	if err == nil && gen.exited() {
		err = errors.New("exited")
	}
	if err != nil {
		return Sample{}, fmt.Errorf("bench: generator did not start sending: %w\n%s", err, tail(gen.log()))
	}
	if !b.o.pinned() && b.o.Generator == genTrafgen && rate == 0 {
		// trafgen pins its worker to CPU 0 itself (there is no option
		// against it); by now the worker has done so and sends.
		if err := unpinGroup(gen.cmd.Process.Pid); err != nil {
			return Sample{}, err
		}
	}
	if err := sleepCtx(ctx, b.o.Warmup); err != nil {
		return Sample{}, err
	}
	var perf *proc
	if b.o.PerfDir != "" && run == "1" {
		if perf, err = b.startPerf(m); err != nil {
			return Sample{}, err
		}
		defer perf.stop() // a no-op once stopped below
	}
	a, err := b.snapshot()
	if err != nil {
		return Sample{}, err
	}
	err = sleepCtx(ctx, b.o.Duration)
	if perf != nil {
		if perr := perf.stop(); perr != nil && !isInterrupted(perr) {
			err = errors.Join(err, fmt.Errorf("bench: perf: %w\n%s", perr, tail(perf.log())))
		}
	}
	if err != nil {
		return Sample{}, err
	}
	z, err := b.snapshot()
	if err != nil {
		return Sample{}, err
	}
	if gen.exited() {
		return Sample{}, fmt.Errorf("bench: the generator exited during the run (%v)\n%s", gen.err, tail(gen.log()))
	}
	stopped = true
	if err := gen.stop(); err != nil && !isInterrupted(err) {
		return Sample{}, fmt.Errorf("bench: generator: %w\n%s", err, tail(gen.log()))
	}
	s := sampleOf(a, z, genCPU, directorCPU)
	if s.GeneratorPPS == 0 {
		return s, fmt.Errorf("bench: the generator sent nothing during the run\n%s", tail(gen.log()))
	}
	return s, sleepCtx(ctx, settle)
}

// isInterrupted reports whether a process ended by the stop signal we sent
// it, or exited 130 (128+SIGINT) after handling it, as timeout(1) does.
func isInterrupted(err error) bool {
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) {
		return false
	}
	switch ee.ExitCode() {
	case 124, 130, -1: // timeout(1) expired; SIGINT; killed by a signal
		return true
	}
	return false
}

func (b *bench) snapshot() (snapshot, error) {
	c, err := b.cs.read()
	if err != nil {
		return snapshot{}, err
	}
	cpu, err := readCPUTimes()
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{at: time.Now(), c: c, cpu: cpu}, nil
}

// startGenerator starts the generator in the generator's namespace,
// pinned to genCPU unless o.NoPin and bounded by timeout(1), so it stops
// even if the bench is killed before it can stop it (timeout signals its
// whole process group). With rate > 0 it is the Go generator paced at
// rate pps whatever o.Generator says: trafgen's -b sends each second's
// frames in one burst and sleeps the rest of the second.
func (b *bench) startGenerator(m Mode, run string, rate float64) (*proc, error) {
	// Generous: on a loaded machine the counters and the namespaces can be
	// slow; the limit only guards against a generator left running.
	limit := b.o.Warmup + b.o.Duration + genStartTimeout + 60*time.Second
	args := []string{"timeout", "-s", "INT", "-k", "5", strconv.Itoa(int(limit.Seconds()) + 1)}
	if b.o.pinned() {
		args = append(args, "taskset", "-c", strconv.Itoa(genCPU))
	}
	generator := b.o.Generator
	if rate > 0 {
		generator = genGo
	}
	switch generator {
	case genTrafgen:
		// -P 1: one worker, on CPU 0. --notouch-irq: leave the host's IRQ
		// affinities alone. The socket memory trafgen raises (so frames in
		// flight do not exhaust its send buffer, which it treats as fatal)
		// is per network namespace: the generator's.
		args = append(args, "trafgen", "-o", b.l.Generator.Iface, "-i", b.genCfg[family(m)], "-P", "1", "-S", "256KiB", "--notouch-irq")
	default:
		t := b.traffic[family(m)]
		args = append(args, b.o.Self, genCommand, "-iface", b.l.Generator.Iface, "-dst-mac", t.DstMAC.String(),
			"-src-mac", t.SrcMAC.String(), "-dst", t.Dst.String(), "-flows", strconv.Itoa(t.Flows))
		if rate > 0 {
			args = append(args, "-rate", strconv.FormatFloat(rate, 'f', 0, 64), "-quantum", b.o.PaceQuantum.String())
		}
	}
	logPath := filepath.Join(b.o.Dir, fmt.Sprintf("generator-%s-%s.log", m, run))
	return startProc(b.l.Generator, generator, logPath, syscall.SIGINT, args)
}

// threadedNAPI makes iface on h receive through veth's NAPI ring (GRO on)
// polled by a kernel thread (threaded NAPI) pinned to cpu.
func threadedNAPI(ctx context.Context, h *lab.Host, iface string, cpu int) error {
	script := `ethtool -K ` + iface + ` gro on >/dev/null && echo 1 > /sys/class/net/` + iface + `/threaded && sleep 0.2 && ` +
		`n=0; for p in $(pgrep '^napi/` + iface + `-'); do taskset -p -c ` + strconv.Itoa(cpu) + ` $p >/dev/null || exit 1; n=$((n+1)); done; echo $n`
	out, err := runIn(ctx, h, "", "sh", "-c", script)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) == "0" {
		return fmt.Errorf("bench: no napi/%s kernel thread on %s", iface, h.Name)
	}
	return nil
}

// setRPS steers the receive processing of every queue of iface on h to
// cpu (rps_cpus, Documentation/networking/scaling.rst). sysfs shows the
// devices of the namespace that mounted it; ip netns exec mounts the
// namespace's own.
func setRPS(ctx context.Context, h *lab.Host, iface string, cpu int) error {
	mask := strconv.FormatUint(1<<cpu, 16)
	dir := "/sys/class/net/" + iface + "/queues"
	out, err := runIn(ctx, h, "", "sh", "-c",
		`for q in `+dir+`/rx-*; do echo `+mask+` > $q/rps_cpus || exit 1; done; cat `+dir+`/rx-*/rps_cpus`)
	if err != nil {
		return err
	}
	for _, line := range strings.Fields(out) {
		if v, err := strconv.ParseUint(strings.ReplaceAll(line, ",", ""), 16, 64); err != nil || v != 1<<cpu {
			return fmt.Errorf("bench: %s/%s rps_cpus reads %q after writing %s", h.Name, iface, strings.TrimSpace(out), mask)
		}
	}
	return nil
}

// startPerf samples the director's CPU (every CPU when nothing is
// pinned) with call graphs until stopped (perf record -e cpu-clock: no
// hardware counters needed, so it works in VMs). It runs in the bench's
// own namespace; -C sees every process.
func (b *bench) startPerf(m Mode) (*proc, error) {
	out := filepath.Join(b.o.PerfDir, m.String()+".perf.data")
	cpus := []string{"-C", strconv.Itoa(directorCPU)}
	if !b.o.pinned() {
		cpus = []string{"-a"}
	}
	args := append(append([]string{"perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g"}, cpus...), "-o", out)
	p, err := startLocal("perf", filepath.Join(b.o.Dir, "perf-"+m.String()+".log"), syscall.SIGINT, args)
	if err != nil {
		return nil, err
	}
	b.o.Logf("  perf record %s -> %s", strings.Join(cpus, " "), out)
	return p, nil
}

// swapSysctl sets key to value in h's namespace and returns what puts the
// old value back.
func swapSysctl(h *lab.Host, key, value string) (func() error, error) {
	var old []byte
	err := h.Do(func() error {
		var err error
		old, err = os.ReadFile("/proc/sys/" + key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: sysctl %s on %s: %w", key, h.Name, err)
	}
	if err := h.Sysctl(key, value); err != nil {
		return nil, err
	}
	prev := strings.TrimSpace(string(old))
	return func() error { return h.Sysctl(key, prev) }, nil
}

// finalCounters extracts the dataplane counters gvsd logs at exit.
func finalCounters(log string) json.RawMessage {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string `json:"msg"`
			Counters string `json:"counters"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "final counters" && json.Valid([]byte(line.Counters)) {
			return json.RawMessage(line.Counters)
		}
	}
	return nil
}

// tail returns the last lines of a log, for error messages.
func tail(s string) string {
	const maxLines = 20
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
