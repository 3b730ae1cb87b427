package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets: how much faster than the kernel baseline gvsd should forward.
const (
	targetDR  = 1.5
	targetNAT = 1.2
)

// Report is everything one bench run measured; -json prints it as is.
type Report struct {
	Generator    string  `json:"generator"` // "trafgen" or "go"
	Traffic      string  `json:"traffic"`
	FrameBytes   int     `json:"frame_bytes"` // without the FCS
	Flows        int     `json:"flows"`
	DurationSec  float64 `json:"duration_s"`
	WarmupSec    float64 `json:"warmup_s"`
	Runs         int     `json:"runs"`
	GeneratorCPU int     `json:"generator_cpu"`
	DirectorCPU  int     `json:"director_cpu"`
	// Pinned is false with -pin=false: nothing placed on CPUs, and
	// GeneratorCPU and DirectorCPU are only the CPUs whose use the
	// samples give.
	Pinned    bool     `json:"pinned"`
	Placement []string `json:"placement"`
	// ZeroLoss says how the zero-loss rates were searched, with
	// -zero-loss.
	ZeroLoss *ZeroLossSearch `json:"zero_loss_search,omitempty"`
	Kernel   string          `json:"kernel"`
	LoadAvg  string          `json:"loadavg_at_start"`
	Configs  []ConfigResult  `json:"configs"`
	Ratios   []Ratio         `json:"ratios"`
}

// ZeroLossSearch is how -zero-loss searched.
type ZeroLossSearch struct {
	MaxLossPct float64 `json:"max_loss_pct"`
	LowPPS     float64 `json:"low_pps"`
	Steps      int     `json:"steps"`
	// QuantumUS is the paced generator's quantum (-zero-loss-quantum).
	QuantumUS float64 `json:"quantum_us"`
	Generator string  `json:"generator"`
}

// ConfigResult is one configuration's runs and their median.
type ConfigResult struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Median      Sample   `json:"median"`
	Runs        []Sample `json:"runs"`
	// ZeroLoss is the zero-loss search, with -zero-loss.
	ZeroLoss *ZeroLoss `json:"zero_loss,omitempty"`
	// Gvsd holds the dataplane counters gvsd logged at exit (whole life,
	// warm-ups and zero-loss steps included).
	Gvsd json.RawMessage `json:"gvsd_counters,omitempty"`
}

// Ratio compares a gvsd configuration's median forwarded rate with the
// kernel baseline's, and, with -zero-loss, its zero-loss rate with the
// baseline's when both were found (ZeroLossNote says why not, or that a
// generator set one of them).
type Ratio struct {
	Name         string   `json:"name"`
	Value        float64  `json:"value"`
	Target       float64  `json:"target"`
	Met          bool     `json:"met"`
	ZeroLoss     *float64 `json:"zero_loss_value,omitempty"`
	ZeroLossNote string   `json:"zero_loss_note,omitempty"`
}

func newReport(o Options) *Report {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	gen := "trafgen (netsniff-ng), TX ring, qdisc bypass, 1 worker"
	if o.Generator == genGo {
		gen = "go: dataplane/afpacket Link.Write, sendmmsg batches of 64, qdisc bypass"
	}
	r := &Report{
		Pinned:       o.pinned(),
		Generator:    o.Generator,
		FrameBytes:   FrameLen,
		Flows:        o.Flows,
		DurationSec:  o.Duration.Seconds(),
		WarmupSec:    o.Warmup.Seconds(),
		Runs:         o.Runs,
		GeneratorCPU: genCPU,
		DirectorCPU:  directorCPU,
		Kernel:       strings.TrimSpace(string(kernel)),
		LoadAvg:      strings.TrimSpace(string(load)),
		Placement: []string{
			fmt.Sprintf("CPU %d: the generator (%s) and the LAN side of its frames (scatter-gather off, an nftables dup onto the director's port)", genCPU, gen),
			fmt.Sprintf("CPU %d: the director: gvsd (workers = 1, taskset -c %d) and, by RPS on the director's eth0 (rps_cpus = %x), the kernel's receive path: AF_PACKET taps, gvsd's nftables ingress drop, or conntrack, DNAT and IP forwarding", directorCPU, directorCPU, 1<<directorCPU),
			fmt.Sprintf("CPU %d also, the same in every configuration: the LAN side of the director's output (bridge, reals' ingress drop after rx_packets counted the frame), received through veth NAPI rings", directorCPU),
		},
	}
	if o.NAPI {
		r.Placement[1] = fmt.Sprintf("CPU %d: the director: gvsd (workers = 1, taskset -c %d) and, by threaded NAPI on the director's eth0 (GRO on, a napi kernel thread pinned to CPU %d), the kernel's receive path: AF_PACKET taps, gvsd's nftables ingress drop, or conntrack, DNAT and IP forwarding", directorCPU, directorCPU, directorCPU)
	}
	if o.LANNAPI {
		r.Placement[2] = fmt.Sprintf("-lan-napi: the LAN side of the director's output runs in a NAPI kernel thread on CPU %d with the generator (an experiment: CPU %d then limits what is forwarded)", genCPU, genCPU)
	}
	if o.NoRPS {
		r.Placement[1] = fmt.Sprintf("CPU %d: the director: gvsd (workers = 1, taskset -c %d); -no-rps: the kernel's receive path (AF_PACKET taps and gvsd's ingress drop, or the whole kernel forwarding of the baseline) runs on CPU %d with the generator. NOT a fair comparison", directorCPU, directorCPU, genCPU)
	}
	if !o.pinned() {
		genPin := "no taskset"
		if o.Generator == genTrafgen {
			genPin = "no taskset; trafgen -P 1 pins its worker to CPU 0 itself, and the bench resets the worker's affinity to every CPU as soon as it sends"
		}
		r.Placement = []string{
			fmt.Sprintf("NOT PINNED (-pin=false): the scheduler places everything. The generator (%s): %s", gen, genPin),
			"gvsd (workers = 1): no taskset. The director's eth0: the kernel's defaults, no RPS (rps_cpus = 0), no threaded NAPI: its receive processing (AF_PACKET taps, gvsd's nftables ingress drop, or conntrack, DNAT and IP forwarding) runs on the CPU that sends it the frame, the generator's",
			"the same as pinned: scatter-gather off on the generator's eth0, the nftables dup onto the director's port, GRO (veth NAPI rings) on the LAN port facing the director and on the reals' eth0, static FDB entries",
			fmt.Sprintf("CPU columns: CPU %d and CPU %d are the machine's two CPUs, neither the generator's nor the director's", genCPU, directorCPU),
		}
	}
	if o.ZeroLoss {
		r.ZeroLoss = &ZeroLossSearch{
			MaxLossPct: zeroLossMaxPct, LowPPS: o.ZeroLossLow, Steps: o.ZeroLossSteps,
			QuantumUS: float64(o.PaceQuantum.Microseconds()),
			Generator: "go: dataplane/afpacket Link.Write, paced: " + paceDescription(o.PaceQuantum) + "; " + placedGen(o),
		}
	}
	return r
}

// paceDescription says how the paced generator spaces its frames.
func paceDescription(q time.Duration) string {
	if q <= 0 {
		return "each frame when it is due, one sendmmsg each, spinning in between (sched_yield)"
	}
	return fmt.Sprintf("every %v the frames due by then in one sendmmsg, as a NIC coalescing interrupts, spinning in between (sched_yield)", q)
}

// placedGen says where the paced Go generator runs.
func placedGen(o Options) string {
	if o.pinned() {
		return fmt.Sprintf("taskset -c %d", genCPU)
	}
	return "no taskset"
}

func (r *Report) config(name string) *ConfigResult {
	for i := range r.Configs {
		if r.Configs[i].Name == name {
			return &r.Configs[i]
		}
	}
	return nil
}

// computeRatios compares each gvsd configuration with the kernel baseline,
// when both were measured.
func (r *Report) computeRatios() {
	r.Ratios = nil
	for _, six := range []bool{false, true} {
		fam := func(m Mode) Mode {
			if six {
				return m.IPv6()
			}
			return m
		}
		base := r.config(fam(ModeKernel).String())
		if base == nil || base.Median.ForwardedPPS <= 0 {
			continue
		}
		for _, c := range []struct {
			m      Mode
			target float64
		}{{fam(ModeDR), targetDR}, {fam(ModeNAT), targetNAT}} {
			g := r.config(c.m.String())
			if g == nil {
				continue
			}
			v := g.Median.ForwardedPPS / base.Median.ForwardedPPS
			q := Ratio{Name: c.m.String() + " / " + base.Name, Value: v, Target: c.target, Met: v >= c.target}
			q.ZeroLoss, q.ZeroLossNote = zeroLossRatio(g.ZeroLoss, base.ZeroLoss)
			r.Ratios = append(r.Ratios, q)
		}
	}
}

// zeroLossRatio compares two zero-loss results: nil and why when there is
// no ratio, and a note when a generator set either figure.
func zeroLossRatio(g, base *ZeroLoss) (*float64, string) {
	switch {
	case g == nil && base == nil:
		return nil, ""
	case g == nil || base == nil:
		return nil, "not searched for both"
	case !g.Found || !base.Found || base.PPS <= 0:
		return nil, "not found for both"
	}
	v := g.PPS / base.PPS
	var limited []string
	if g.GeneratorLimited {
		limited = append(limited, "gvsd's")
	}
	if base.GeneratorLimited {
		limited = append(limited, "the kernel's")
	}
	if len(limited) > 0 {
		return &v, "the generator set " + strings.Join(limited, " and ")
	}
	return &v, ""
}

// writeJSON prints the report as indented JSON.
func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints the report for humans.
func (r *Report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "gvs forwarding benchmark, kernel %s, load average at start %s\n", r.Kernel, r.LoadAvg)
	fmt.Fprintf(w, "traffic: %s\n", r.Traffic)
	fmt.Fprintf(w, "generator: %s; %d run(s) of %gs per configuration (after %gs warm-up), medians\n", r.Generator, r.Runs, r.DurationSec, r.WarmupSec)
	if r.Pinned {
		fmt.Fprintln(w, "pinned (the default, -pin):")
	}
	for _, p := range r.Placement {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if z := r.ZeroLoss; z != nil {
		fmt.Fprintf(w, "zero-loss (-zero-loss): the highest offered rate with at most %g%% loss, after the saturation runs: binary search from %s pps to the saturation runs' generator pps, %d steps, each a fresh run (%gs warm-up, %gs measured); generator %s\n",
			z.MaxLossPct, fmtPPS(z.LowPPS), z.Steps, r.WarmupSec, r.DurationSec, z.Generator)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	zl := r.ZeroLoss != nil
	head := "configuration\tgenerator pps\tdirector rx pps\tdirector tx pps\tforwarded pps\tloss %\t"
	if zl {
		head += "zero-loss pps\t"
	}
	if !r.Pinned {
		head += fmt.Sprintf("CPU %d busy %%\t", r.GeneratorCPU)
	}
	head += fmt.Sprintf("CPU %d busy %%\tusr %%\tsys %%\tsoftirq %%\tforwarded pps per run\t", r.DirectorCPU)
	fmt.Fprintln(tw, head)
	for _, c := range r.Configs {
		if len(c.Runs) == 0 {
			fmt.Fprintf(tw, "%s\t(no complete run)%s\n", c.Name, strings.Repeat("\t", strings.Count(head, "\t")-1))
			continue
		}
		m := c.Median
		runs := make([]string, len(c.Runs))
		for i, s := range c.Runs {
			runs[i] = fmtPPS(s.ForwardedPPS)
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%.1f\t", c.Name,
			fmtPPS(m.GeneratorPPS), fmtPPS(m.DirectorRxPPS), fmtPPS(m.DirectorTxPPS), fmtPPS(m.ForwardedPPS), m.LossPct)
		if zl {
			row += c.ZeroLoss.cell() + "\t"
		}
		if !r.Pinned {
			row += fmt.Sprintf("%.0f\t", m.GeneratorCPU.Busy)
		}
		row += fmt.Sprintf("%.0f\t%.0f\t%.0f\t%.0f\t%s\t", m.DirectorCPU.Busy, m.DirectorCPU.User, m.DirectorCPU.System, m.DirectorCPU.SoftIRQ, strings.Join(runs, " "))
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range r.Configs {
		fmt.Fprintf(w, "%-12s %s\n", c.Name, c.Description)
		if z := c.ZeroLoss; z != nil {
			if z.Found {
				fmt.Fprintf(w, "%-12s zero-loss: %s pps offered (%s asked), %s forwarded, loss %.2f%%\n", "", fmtPPS(z.PPS), fmtPPS(z.AskedPPS), fmtPPS(z.ForwardedPPS), z.LossPct)
			}
			if z.Note != "" {
				mark := ""
				if z.GeneratorLimited {
					mark = "* "
				}
				fmt.Fprintf(w, "%-12s zero-loss: %s%s\n", "", mark, z.Note)
			}
			if len(z.Steps) > 0 {
				fmt.Fprintf(w, "%-12s zero-loss steps (pps asked): %s\n", "", z.stepsLine())
			}
		}
		if len(c.Gvsd) > 0 {
			fmt.Fprintf(w, "%-12s gvsd counters: %s\n", "", c.Gvsd)
		}
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(w)
	}
	for _, q := range r.Ratios {
		verdict := "met"
		if !q.Met {
			verdict = "NOT met"
		}
		zl := ""
		switch {
		case q.ZeroLoss != nil && q.ZeroLossNote != "":
			zl = fmt.Sprintf("; zero-loss %.2fx (%s)", *q.ZeroLoss, q.ZeroLossNote)
		case q.ZeroLoss != nil:
			zl = fmt.Sprintf("; zero-loss %.2fx", *q.ZeroLoss)
		case q.ZeroLossNote != "":
			zl = "; zero-loss: " + q.ZeroLossNote
		}
		fmt.Fprintf(w, "%s: %.2fx (target >= %.1fx): %s%s\n", q.Name, q.Value, q.Target, verdict, zl)
	}
}

// fmtPPS formats a rate with thousands separators.
func fmtPPS(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
