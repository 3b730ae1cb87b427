package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/integration/lab"
)

// The suites of the command: -suite pps (the default) is the forwarding
// rate of bench.go, -suite users the benchmark of users.go.
const (
	suitePPS   = "pps"
	suiteUsers = "users"
)

// suiteArg returns the value of -suite in args, or "" when it is not
// given. It only looks; each suite's flag set parses -suite again and
// rejects a value that is not its own.
func suiteArg(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "suite" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// UserConfig is one configuration of the users suite: what stands between
// the client and the real servers. The zero value is invalid.
type UserConfig int

const (
	// UserDirect is no balancer: the client talks to rs1.
	UserDirect UserConfig = iota + 1
	// UserKernelDNAT is nftables DNAT on the director.
	UserKernelDNAT
	// UserHAProxy is HAProxy in mode tcp on the director.
	UserHAProxy
	// UserGvsDR, UserGvsTUN, UserGvsNAT and UserGvsFullNAT are gvsd in
	// each forwarding mode.
	UserGvsDR
	UserGvsTUN
	UserGvsNAT
	UserGvsFullNAT
	// UserGvsNATSynproxy and UserGvsFullNATSynproxy are gvsd in NAT and
	// FULLNAT with synproxy = true on the HTTP service: the director
	// answers SYNs with SYN cookies and opens the connection to the real
	// only when the client's ACK carries a good one.
	UserGvsNATSynproxy
	UserGvsFullNATSynproxy
)

var userConfigNames = map[UserConfig]string{
	UserDirect:     "direct",
	UserKernelDNAT: "kernel-dnat",
	UserHAProxy:    "haproxy",
	UserGvsDR:      "gvs-dr",
	UserGvsTUN:     "gvs-tun",
	UserGvsNAT:     "gvs-nat",
	UserGvsFullNAT: "gvs-fullnat",

	UserGvsNATSynproxy:     "gvs-nat-synproxy",
	UserGvsFullNATSynproxy: "gvs-fullnat-synproxy",
}

// allUserConfigs is the default -configs of the users suite, in order.
var allUserConfigs = []UserConfig{UserDirect, UserKernelDNAT, UserHAProxy, UserGvsDR, UserGvsTUN, UserGvsNAT, UserGvsFullNAT}

// synproxyUserConfigs follow allUserConfigs in the default -configs when
// -flood is given: what the SYN proxy is for.
var synproxyUserConfigs = []UserConfig{UserGvsNATSynproxy, UserGvsFullNATSynproxy}

// userIPv6 marks a configuration's IPv6 twin (UserConfig.IPv6): the same
// set-up in IPv6, the client talking to the VIP's IPv6 counterpart
// (lab.VIP6) and every balancer forwarding to the reals' IPv6 addresses.
// Its name is the IPv4 one's with "6" (gvs-dr6).
const userIPv6 UserConfig = 1 << 8

// IPv6 returns c's IPv6 twin.
func (c UserConfig) IPv6() UserConfig { return c | userIPv6 }

// is6 says whether c is an IPv6 twin.
func (c UserConfig) is6() bool { return c&userIPv6 != 0 }

// base is c's IPv4 configuration: c itself, or the one c is the twin of.
func (c UserConfig) base() UserConfig { return c &^ userIPv6 }

// ipv6UserConfigs are the configurations that have an IPv6 twin: every
// one, the SYN proxy's too (their flood is of IPv6 SYNs).
var ipv6UserConfigs = append(slices.Clone(allUserConfigs), synproxyUserConfigs...)

// withIPv6 returns cs with each configuration's IPv6 twin right after it
// (-ipv6), where it has one and cs does not list it already: twins
// measured one after the other see the machine in the same state.
func withIPv6(cs []UserConfig) []UserConfig {
	var out []UserConfig
	for _, c := range cs {
		out = append(out, c)
		if t := c.IPv6(); !c.is6() && slices.Contains(ipv6UserConfigs, c) && !slices.Contains(cs, t) {
			out = append(out, t)
		}
	}
	return out
}

// knownUserConfigs are every configuration -configs accepts, in order:
// the IPv4 ones, then the IPv6 twins.
var knownUserConfigs = func() []UserConfig {
	cs := append(slices.Clone(allUserConfigs), synproxyUserConfigs...)
	for _, c := range ipv6UserConfigs {
		cs = append(cs, c.IPv6())
	}
	return cs
}()

// defaultUserConfigs is the default -configs: allUserConfigs, and with a
// SYN flood (-flood) the SYN proxy's configurations too.
func defaultUserConfigs(flood bool) []UserConfig {
	if flood {
		return append(slices.Clone(allUserConfigs), synproxyUserConfigs...)
	}
	return slices.Clone(allUserConfigs)
}

func (c UserConfig) String() string {
	if n, ok := userConfigNames[c.base()]; ok {
		if c.is6() {
			return n + "6"
		}
		return n
	}
	return fmt.Sprintf("UserConfig(%d)", int(c))
}

// forward is the gvsd forwarding mode of a gvs configuration, "" for the
// others.
func (c UserConfig) forward() string {
	switch c.base() {
	case UserGvsDR:
		return "dr"
	case UserGvsTUN:
		return "tun"
	case UserGvsNAT, UserGvsNATSynproxy:
		return "nat"
	case UserGvsFullNAT, UserGvsFullNATSynproxy:
		return "fullnat"
	}
	return ""
}

// synproxy says whether gvsd runs the SYN proxy on the HTTP service.
func (c UserConfig) synproxy() bool {
	return c.base() == UserGvsNATSynproxy || c.base() == UserGvsFullNATSynproxy
}

func (c UserConfig) isGvs() bool { return c.forward() != "" }

// ppsMode is the pps suite's configuration that measures row 5 (LAN UDP
// pps) for c, if there is one: an IPv6 twin's is the mode's IPv6 twin.
func (c UserConfig) ppsMode() (Mode, bool) {
	var m Mode
	switch c.base() {
	case UserGvsDR:
		m = ModeDR
	case UserGvsNAT:
		m = ModeNAT
	case UserKernelDNAT:
		m = ModeKernel
	default:
		return 0, false
	}
	if c.is6() {
		m = m.IPv6()
	}
	return m, true
}

// parseUserConfigs parses a comma-separated list of configuration names.
func parseUserConfigs(s string) ([]UserConfig, error) {
	var out []UserConfig
	for _, f := range strings.Split(s, ",") {
		name := strings.TrimSpace(f)
		c, ok := userConfigByName(name)
		if !ok {
			var names []string
			for _, k := range knownUserConfigs {
				names = append(names, k.String())
			}
			return nil, fmt.Errorf("configuration %q: want %s", name, strings.Join(names, ", "))
		}
		if slices.Contains(out, c) {
			return nil, fmt.Errorf("configuration %q given twice", name)
		}
		out = append(out, c)
	}
	return out, nil
}

// userConfigByName returns the configuration -configs calls name.
func userConfigByName(name string) (UserConfig, bool) {
	for _, c := range knownUserConfigs {
		if c.String() == name {
			return c, true
		}
	}
	return 0, false
}

// UsersOptions configure Users.
type UsersOptions struct {
	Duration time.Duration // of each measurement
	Configs  []UserConfig
	Prefix   string // lab namespace prefix
	Keep     bool   // leave the lab up
	// Gvsd and Realserver are the binaries of gvsd and gvs-realserver.
	Gvsd, Realserver string
	// OffloadsOff builds the lab with every offload off on every veth
	// (lab.Options.OffloadsOff); by default each keeps the kernel's.
	OffloadsOff bool
	// Pin runs the client's tools (wrk, iperf3 -c) on pinClientCPU and
	// everything that answers them (gvsd with one worker, haproxy, nginx,
	// iperf3 -s) on pinServerCPU, so every request crosses between the
	// same two CPUs. Unpinned by default, as users run: then where the
	// scheduler puts wrk and nginx moves the one-connection latency.
	Pin bool
	// Rounds measures every configuration this many times, one round of
	// all of them after another, and reports each figure's median: noise
	// from other work on the machine then falls on every configuration
	// alike. 0 or 1 is one round.
	Rounds int
	// Workers is gvsd's director.workers when above 0 (-pin sets 1).
	Workers int
	// WorkerPolicy is gvsd's director.worker_policy; empty leaves its
	// default.
	WorkerPolicy string
	// BusyPoll is gvsd's director.busy_poll when above 0.
	BusyPoll time.Duration
	// PPS measures row 5, LAN UDP pps, with the pps suite for gvs-dr,
	// gvs-nat and kernel-dnat.
	PPS bool
	// Generator of row 5: genTrafgen or genGo.
	Generator string
	// FloodPPS, if not 0, adds the row "new conn/s under a SYN flood":
	// row 3 again while trafgen sends spoofed SYNs at this rate (packets
	// per second) from the client to the target's port 80.
	FloodPPS uint64
	// Self is the binary that runs the Go generator.
	Self string
	// Dir holds configs, logs and every tool's raw output.
	Dir  string
	Logf func(format string, args ...any)
}

// CPUs of -pin.
const (
	pinClientCPU = 0
	pinServerCPU = 1
)

// toolPackages names the Debian package of each tool the users suite
// runs, for the message when one is missing.
var toolPackages = map[string]string{
	"wrk":     "wrk",
	"nginx":   "nginx-light",
	"iperf3":  "iperf3",
	"haproxy": "haproxy",
	"ss":      "iproute2",
	"trafgen": "netsniff-ng",
}

// runUsers is the command with -suite users: results go to stdout (a
// table, or JSON with -json), progress and errors to stderr.
func runUsers(args []string, stdout, stderr io.Writer) int {
	o, jsonOut, code := parseUsersFlags(args, stderr)
	if code != 0 {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		return code
	}
	var err error
	if os.Geteuid() != 0 {
		return fail(1, "needs root to build network namespaces (try: sudo go run ./integration/bench -suite users)")
	}
	if o.Pin || o.PPS {
		if cpus, err := readCPUTimes(); err != nil {
			return fail(1, "%v", err)
		} else if _, ok := cpus[1]; !ok {
			return fail(1, "-pin and -pps need CPUs 0 and 1 online")
		}
	}
	for _, tool := range []string{"ip", "nft", "bridge", "ethtool", "taskset", "timeout", "sh", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fail(1, "%v", err)
		}
	}
	if o.Self, err = os.Executable(); err != nil {
		return fail(1, "%v", err)
	}
	if o.Dir, err = os.MkdirTemp("", "gvsbench-users-"); err != nil {
		return fail(1, "%v", err)
	}
	if o.Keep {
		fmt.Fprintf(stderr, "bench: configs, logs and raw outputs in %s\n", o.Dir)
	} else {
		defer os.RemoveAll(o.Dir)
	}
	o.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, usersTimeout(o))
	defer cancel()

	if slices.ContainsFunc(o.Configs, UserConfig.isGvs) {
		for _, b := range []struct {
			path *string
			pkg  string
		}{{&o.Gvsd, "cmd/gvsd"}, {&o.Realserver, "cmd/gvs-realserver"}} {
			if *b.path == "" {
				*b.path = filepath.Join(o.Dir, filepath.Base(b.pkg))
				o.Logf("building ./%s", b.pkg)
				if err := goBuild(ctx, *b.path, "github.com/gvs-lb/gvs/"+b.pkg); err != nil {
					return fail(1, "%v (or pass -gvsd and -realserver)", err)
				}
			} else if *b.path, err = filepath.Abs(*b.path); err != nil {
				return fail(1, "%v", err)
			}
		}
	}

	rep, err := Users(ctx, o)
	if jsonOut {
		if jerr := rep.writeJSON(stdout); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		rep.writeTable(stdout)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fail(130, "interrupted: %v", err)
		}
		return fail(1, "%v", err)
	}
	if n := rep.failed(); n > 0 {
		return fail(1, "%d configuration(s) could not be set up; see the notes", n)
	}
	return 0
}

// parseUsersFlags parses the command line of -suite users into o. It
// returns code 0, or the exit status after printing what is wrong: 2 for
// a usage error, 1 when -generator trafgen asks for a missing trafgen.
func parseUsersFlags(args []string, stderr io.Writer) (o UsersOptions, jsonOut bool, code int) {
	fs := flag.NewFlagSet("bench -suite users", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", suiteUsers, "benchmark suite: pps or users")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "length of each measurement (wrk -d, iperf3 -t, the UDP run)")
	var names, extra []string
	for _, c := range allUserConfigs {
		names = append(names, c.String())
	}
	for _, c := range synproxyUserConfigs {
		extra = append(extra, c.String())
	}
	var twins []string
	for _, c := range ipv6UserConfigs {
		twins = append(twins, c.IPv6().String())
	}
	configs := fs.String("configs", strings.Join(names, ","), "configurations to measure, in order (with -flood the default adds "+strings.Join(extra, ",")+
		"); the IPv6 twins "+strings.Join(twins, ",")+" are the same against the IPv6 VIP ["+lab.VIP6.String()+"] and the reals' IPv6 addresses (nftables ip6 DNAT, HAProxy bound to the IPv6 VIP, IPv6 services in gvsd)")
	ipv6 := fs.Bool("ipv6", false, "measure each configuration's IPv6 twin right after it (gvs-dr, then gvs-dr6, ...) and print IPv6 / IPv4 ratios of every figure; the lab gets IPv6 beside IPv4 (fd00:10::/64 client side, fd00:20::/64 LAN). The SYN flood (-flood) of an IPv6 twin is of IPv6 SYNs (from 2001:2::/48), its LAN UDP pps (-pps) of 80-byte IPv6 frames")
	fs.StringVar(&o.Prefix, "prefix", "gvsbench", "network namespace name prefix")
	fs.BoolVar(&o.Keep, "keep", false, "keep the lab and the directory of configs, logs and raw outputs")
	fs.StringVar(&o.Gvsd, "gvsd", "", "gvsd binary (default: go build ./cmd/gvsd into a temporary directory)")
	fs.StringVar(&o.Realserver, "realserver", "", "gvs-realserver binary (default: go build ./cmd/gvs-realserver)")
	offloads := fs.String("lab-offloads", "on", "on: every veth keeps the kernel's default offloads; off: all off (lab.Options.OffloadsOff)")
	fs.BoolVar(&o.Pin, "pin", false, fmt.Sprintf("pin wrk and iperf3 -c to CPU %d, and gvsd (1 worker), haproxy, nginx and iperf3 -s to CPU %d", pinClientCPU, pinServerCPU))
	fs.IntVar(&o.Rounds, "rounds", 1, "measure every configuration this many times, interleaved (one round of all, then the next), and report medians")
	fs.IntVar(&o.Workers, "workers", 0, "gvsd's director.workers (0: its default, one per CPU; -pin: 1)")
	fs.StringVar(&o.WorkerPolicy, "worker-policy", "", `gvsd's director.worker_policy: "batch" or "normal" (empty: gvsd's default, batch)`)
	fs.DurationVar(&o.BusyPoll, "busy-poll", 0, "gvsd's director.busy_poll (0: its default, off)")
	fs.BoolVar(&o.PPS, "pps", true, "row 5: LAN UDP pps of gvs-dr, gvs-nat and kernel-dnat with the pps suite (generator on the LAN)")
	generator := fs.String("generator", "auto", "generator of row 5: trafgen, go, or auto (trafgen if installed)")
	flood := fs.String("flood", "", "RATE (e.g. 100000pps, 100kpps): add the row new conn/s under a SYN flood, row 3 again while trafgen (netsniff-ng) sends spoofed SYNs to VIP:80 from the client at RATE; empty: off")
	jsonOutFlag := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return o, false, 2
	}
	fail := func(code int, format string, a ...any) (UsersOptions, bool, int) {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		return o, false, code
	}
	if *suite != suiteUsers {
		return fail(2, "-suite %q: want pps or users", *suite)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected arguments %q", fs.Args())
	}
	if o.Rounds < 1 {
		return fail(2, "-rounds %d: want 1 or more", o.Rounds)
	}
	if o.Workers < 0 || o.Pin && o.Workers > 1 {
		return fail(2, "-workers %d: want 0 or more, and at most 1 with -pin", o.Workers)
	}
	var err error
	if *flood != "" {
		if o.FloodPPS, err = parseFloodRate(*flood); err != nil {
			return fail(2, "-flood: %v", err)
		}
	}
	configsSet := false
	fs.Visit(func(f *flag.Flag) { configsSet = configsSet || f.Name == "configs" })
	if !configsSet {
		o.Configs = defaultUserConfigs(o.FloodPPS > 0)
	} else if o.Configs, err = parseUserConfigs(*configs); err != nil {
		return fail(2, "-configs: %v", err)
	}
	if *ipv6 {
		o.Configs = withIPv6(o.Configs)
	}
	if o.Duration < time.Second || o.Duration > maxDuration {
		return fail(2, "-duration %v: want 1s to %v (wrk and iperf3 take whole seconds; more is rounded up)", o.Duration, maxDuration)
	}
	switch *offloads {
	case "on":
	case "off":
		o.OffloadsOff = true
	default:
		return fail(2, "-lab-offloads %q: want on or off", *offloads)
	}
	switch *generator {
	case "auto":
		o.Generator = genGo
		if _, err := exec.LookPath("trafgen"); err == nil {
			o.Generator = genTrafgen
		}
	case genTrafgen:
		if _, err := exec.LookPath("trafgen"); err != nil {
			return fail(1, "-generator trafgen: %v (Debian package netsniff-ng)", err)
		}
		o.Generator = genTrafgen
	case genGo:
		o.Generator = genGo
	default:
		return fail(2, "-generator %q: want trafgen, go or auto", *generator)
	}
	return o, *jsonOutFlag, 0
}

// maxFloodPPS bounds -flood: far above what trafgen's one worker sends in
// its rate-limited mode.
const maxFloodPPS = 100_000_000

// parseFloodRate parses -flood: a whole number of packets per second with
// the unit pps, kpps or Mpps ("100000pps", "100kpps", "1.5Mpps").
func parseFloodRate(s string) (uint64, error) {
	num, mult := "", 0.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"kpps", 1e3}, {"Mpps", 1e6}, {"pps", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	if mult == 0 {
		return 0, fmt.Errorf("rate %q: want a packet rate such as 100000pps, 100kpps or 1Mpps", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eExXpP_+-") || math.IsNaN(v) {
		return 0, fmt.Errorf("rate %q: want a packet rate such as 100000pps, 100kpps or 1Mpps", s)
	}
	pps := v * mult
	if pps != math.Trunc(pps) || pps < 1 || pps > maxFloodPPS {
		return 0, fmt.Errorf("rate %q: want a whole number of packets per second, 1 to %d", s, maxFloodPPS)
	}
	return uint64(pps), nil
}

// usersTimeout bounds a whole run of the users suite: every wait inside is
// bounded too, this catches what is not.
func usersTimeout(o UsersOptions) time.Duration {
	perConfig := setupTimeout + probeTimeout + 4*(o.Duration+toolGrace) + 3*stopGrace + time.Minute
	if o.FloodPPS > 0 {
		perConfig += 4*cmdTimeout + floodWarmup + o.Duration + toolGrace + stopGrace + floodSettle
	}
	perPPS := gvsdStartTimeout + genStartTimeout + time.Second + o.Duration + 2*stopGrace + 30*time.Second
	return 2*buildTimeout + time.Duration(len(o.Configs))*(perConfig+perPPS) + 2*time.Minute
}

// goBuild builds the package pkg to path with the go command.
func goBuild(ctx context.Context, path, pkg string) error {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", path, pkg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return nil
}
