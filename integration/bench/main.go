package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/integration/lab"
)

// Bounds of the flags.
const (
	maxDuration = 10 * time.Minute
	maxRuns     = 50
	// buildTimeout bounds `go build` of gvsd.
	buildTimeout = 5 * time.Minute
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == genCommand {
		os.Exit(genMain(os.Args[2:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches on -suite: users to runUsers, anything else to runPPS,
// which accepts only pps.
func run(args []string, stdout, stderr io.Writer) int {
	if suiteArg(args) == suiteUsers {
		return runUsers(args, stdout, stderr)
	}
	return runPPS(args, stdout, stderr)
}

// runPPS is the command with -suite pps, the default: results go to
// stdout (a table, or JSON with -json), progress and errors to stderr.
func runPPS(args []string, stdout, stderr io.Writer) int {
	o, jsonOut, code := parsePPSFlags(args, stderr)
	if code != 0 {
		return code
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		return code
	}
	var err error
	if os.Geteuid() != 0 {
		return fail(1, "needs root to build network namespaces (try: sudo go run ./integration/bench)")
	}
	if cpus, err := readCPUTimes(); err != nil {
		return fail(1, "%v", err)
	} else if _, ok := cpus[directorCPU]; !ok {
		return fail(1, "needs CPUs %d and %d online (the generator's and the director's)", genCPU, directorCPU)
	}
	tools := []string{"ip", "nft", "bridge", "ethtool", "timeout", "sh"}
	if o.pinned() {
		tools = append(tools, "taskset")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fail(1, "%v", err)
		}
	}
	if o.Self, err = os.Executable(); err != nil {
		return fail(1, "%v", err)
	}
	if o.Dir, err = os.MkdirTemp("", "gvsbench-"); err != nil {
		return fail(1, "%v", err)
	}
	if o.Keep {
		fmt.Fprintf(stderr, "bench: configs and logs in %s\n", o.Dir)
	} else {
		defer os.RemoveAll(o.Dir)
	}
	if o.PerfDir != "" {
		if _, err = exec.LookPath("perf"); err == nil {
			if o.PerfDir, err = filepath.Abs(o.PerfDir); err == nil {
				err = os.MkdirAll(o.PerfDir, 0o755)
			}
		}
		if err != nil {
			return fail(1, "-perf: %v", err)
		}
	}
	o.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, totalTimeout(o))
	defer cancel()

	needGvsd := slices.ContainsFunc(o.Modes, func(m Mode) bool { return m.base() != ModeKernel })
	if o.Gvsd == "" && needGvsd {
		o.Gvsd = filepath.Join(o.Dir, "gvsd")
		if err := buildGvsd(ctx, o.Gvsd); err != nil {
			return fail(1, "%v", err)
		}
	} else if o.Gvsd != "" {
		if o.Gvsd, err = filepath.Abs(o.Gvsd); err != nil {
			return fail(1, "-gvsd: %v", err)
		}
	}

	rep, err := Bench(ctx, o)
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
	return 0
}

// parsePPSFlags parses the pps suite's flags into Options (the generator
// resolved: auto becomes trafgen when it is installed), whether to print
// JSON, and an exit status: 0 to go on, 2 for a usage error, 1 when
// trafgen was asked for and is not installed.
func parsePPSFlags(args []string, stderr io.Writer) (o Options, jsonOut bool, code int) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", suitePPS, "benchmark suite: pps (forwarding rate, 64-byte UDP frames from a LAN generator) or users (latency, req/s, conn/s, Gbit/s from the client against kernel DNAT and HAProxy; see -suite users -h)")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "measured interval of each run")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "generator running before each measured interval")
	fs.IntVar(&o.Runs, "runs", 3, "runs per configuration; the report gives medians")
	fs.IntVar(&o.Flows, "flows", 1024, fmt.Sprintf("UDP flows (source ports from %d, %d source addresses), 1 to %d", firstSrcPort, srcAddrs, MaxFlows))
	fs.StringVar(&o.Prefix, "prefix", "gvsbench", "network namespace name prefix")
	fs.BoolVar(&o.Keep, "keep", false, "keep the lab and the directory of configs and logs")
	fs.StringVar(&o.Gvsd, "gvsd", "", "gvsd binary (default: go build ./cmd/gvsd into a temporary directory)")
	fs.StringVar(&o.Generator, "generator", "auto", "trafgen, go, or auto (trafgen if installed)")
	fs.BoolVar(&o.NAPI, "napi", false, "receive on the director through veth's NAPI ring polled by a kernel thread pinned to its CPU, like a NIC queue, instead of RPS")
	fs.BoolVar(&o.LANNAPI, "lan-napi", false, "experiment: process the LAN side of the director's output in a NAPI thread on the generator's CPU")
	fs.BoolVar(&o.NoRPS, "no-rps", false, "experiment: leave the director's receive path on the generator's CPU (not a fair comparison)")
	fs.StringVar(&o.PerfDir, "perf", "", "directory for a perf record of the director's CPU (every CPU with -pin=false) during each configuration's first run")
	pin := fs.Bool("pin", true, "place the work: the generator on CPU 0, gvsd (taskset) and the director's receive path (RPS) on CPU 1; -pin=false places nothing and leaves the kernel's defaults (no RPS)")
	fs.BoolVar(&o.ZeroLoss, "zero-loss", false, fmt.Sprintf("after each configuration's runs, search its zero-loss rate: the highest offered rate with at most %g%% loss (binary search from -zero-loss-low to the runs' generator rate, with the Go generator paced)", zeroLossMaxPct))
	fs.IntVar(&o.ZeroLossSteps, "zero-loss-steps", defaultZeroLossSteps, fmt.Sprintf("-zero-loss: bisection steps, each a run of -warmup plus -duration, 1 to %d", maxZeroLossSteps))
	fs.DurationVar(&o.PaceQuantum, "zero-loss-quantum", defaultPaceQuantum, fmt.Sprintf("-zero-loss: the paced generator writes at most once per quantum every frame due by then, as a NIC coalescing interrupts; 0: each frame when it is due (the generator spins), up to %v", maxQuantum))
	zeroLow := fs.String("zero-loss-low", "10kpps", "-zero-loss: the low bound of the search (pps, kpps or Mpps), measured only if no step above it passes")
	modes := fs.String("configs", "dr,nat,kernel", "configurations to measure, in order: dr, nat, kernel, and their IPv6 twins dr6, nat6, kernel6 (80-byte IPv6 frames to ["+lab.VIP6.String()+"]:53; the lab gets IPv6)")
	jsonFlag := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return o, false, 2
	}
	fail := func(c int, format string, a ...any) (Options, bool, int) {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		return o, false, c
	}
	if *suite != suitePPS {
		return fail(2, "-suite %q: want pps or users", *suite)
	}
	if fs.NArg() > 0 {
		return fail(2, "unexpected arguments %q", fs.Args())
	}
	var err error
	if o.Modes, err = parseModes(*modes); err != nil {
		return fail(2, "-configs: %v", err)
	}
	switch {
	case o.Duration <= 0 || o.Duration > maxDuration:
		return fail(2, "-duration %v: want more than 0 and at most %v", o.Duration, maxDuration)
	case o.Warmup < 0 || o.Warmup > maxDuration:
		return fail(2, "-warmup %v: want 0 to %v", o.Warmup, maxDuration)
	case o.Runs < 1 || o.Runs > maxRuns:
		return fail(2, "-runs %d: want 1 to %d", o.Runs, maxRuns)
	case o.Flows < 1 || o.Flows > MaxFlows:
		return fail(2, "-flows %d: want 1 to %d", o.Flows, MaxFlows)
	case o.ZeroLossSteps < 1 || o.ZeroLossSteps > maxZeroLossSteps:
		return fail(2, "-zero-loss-steps %d: want 1 to %d", o.ZeroLossSteps, maxZeroLossSteps)
	case o.PaceQuantum < 0 || o.PaceQuantum > maxQuantum:
		return fail(2, "-zero-loss-quantum %v: want 0 to %v", o.PaceQuantum, maxQuantum)
	}
	low, err := parseFloodRate(*zeroLow)
	if err != nil {
		return fail(2, "-zero-loss-low: %v", err)
	}
	o.ZeroLossLow = float64(low)
	if !o.ZeroLoss {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "zero-loss-steps" || f.Name == "zero-loss-low" || f.Name == "zero-loss-quantum" {
				set = append(set, "-"+f.Name)
			}
		})
		if len(set) > 0 {
			return fail(2, "%s: only with -zero-loss", strings.Join(set, ", "))
		}
	}
	o.NoPin = !*pin
	if o.NoPin && (o.NAPI || o.LANNAPI || o.NoRPS) {
		return fail(2, "-pin=false leaves the kernel's placement alone: not with -napi, -lan-napi or -no-rps")
	}
	switch o.Generator {
	case "auto":
		o.Generator = genGo
		if _, err := exec.LookPath("trafgen"); err == nil {
			o.Generator = genTrafgen
		}
	case genTrafgen:
		if _, err := exec.LookPath("trafgen"); err != nil {
			return fail(1, "-generator trafgen: %v (Debian package netsniff-ng)", err)
		}
	case genGo:
	default:
		return fail(2, "-generator %q: want trafgen, go or auto", o.Generator)
	}
	return o, *jsonFlag, 0
}

// totalTimeout bounds a whole bench run: every wait inside is bounded too,
// this catches what is not.
func totalTimeout(o Options) time.Duration {
	perRun := genStartTimeout + o.Warmup + o.Duration + stopGrace + settle
	runs := o.Runs
	if o.ZeroLoss {
		runs += o.ZeroLossSteps + 1 // the low bound when no step passed
	}
	perConfig := gvsdStartTimeout + stopGrace + time.Duration(runs)*perRun + 30*time.Second
	return buildTimeout + time.Duration(len(o.Modes))*perConfig + time.Minute
}

// buildGvsd builds cmd/gvsd to path with the go command.
func buildGvsd(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/gvs-lb/gvs/cmd/gvsd").CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build gvsd (or pass -gvsd): %w\n%s", err, out)
	}
	return nil
}
