package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
)

// Targets: how much faster than the kernel baseline gvsd should forward.
const (
	targetDR  = 1.5
	targetNAT = 1.2
)

// Report is everything one bench run measured; -json prints it as is.
type Report struct {
	Generator    string         `json:"generator"` // "trafgen" or "go"
	Traffic      string         `json:"traffic"`
	FrameBytes   int            `json:"frame_bytes"` // without the FCS
	Flows        int            `json:"flows"`
	DurationSec  float64        `json:"duration_s"`
	WarmupSec    float64        `json:"warmup_s"`
	Runs         int            `json:"runs"`
	GeneratorCPU int            `json:"generator_cpu"`
	DirectorCPU  int            `json:"director_cpu"`
	Placement    []string       `json:"placement"`
	Kernel       string         `json:"kernel"`
	LoadAvg      string         `json:"loadavg_at_start"`
	Configs      []ConfigResult `json:"configs"`
	Ratios       []Ratio        `json:"ratios"`
}

// ConfigResult is one configuration's runs and their median.
type ConfigResult struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Median      Sample   `json:"median"`
	Runs        []Sample `json:"runs"`
	// Gvsd holds the dataplane counters gvsd logged at exit (whole life,
	// warm-ups included).
	Gvsd json.RawMessage `json:"gvsd_counters,omitempty"`
}

// Ratio compares a gvsd configuration's median forwarded rate with the
// kernel baseline's.
type Ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	Met    bool    `json:"met"`
}

func newReport(o Options) *Report {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	gen := "trafgen (netsniff-ng), TX ring, qdisc bypass, 1 worker"
	if o.Generator == genGo {
		gen = "go: dataplane/afpacket Link.Write, sendmmsg batches of 64, qdisc bypass"
	}
	r := &Report{
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
	return r
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
	base := r.config(ModeKernel.String())
	if base == nil || base.Median.ForwardedPPS <= 0 {
		return
	}
	for _, c := range []struct {
		m      Mode
		target float64
	}{{ModeDR, targetDR}, {ModeNAT, targetNAT}} {
		g := r.config(c.m.String())
		if g == nil {
			continue
		}
		v := g.Median.ForwardedPPS / base.Median.ForwardedPPS
		r.Ratios = append(r.Ratios, Ratio{Name: c.m.String() + " / " + ModeKernel.String(), Value: v, Target: c.target, Met: v >= c.target})
	}
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
	for _, p := range r.Placement {
		fmt.Fprintf(w, "  %s\n", p)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "configuration\tgenerator pps\tdirector rx pps\tdirector tx pps\tforwarded pps\tloss %%\tCPU %d busy %%\tusr %%\tsys %%\tsoftirq %%\tforwarded pps per run\t\n", r.DirectorCPU)
	for _, c := range r.Configs {
		if len(c.Runs) == 0 {
			fmt.Fprintf(tw, "%s\t(no complete run)\t\t\t\t\t\t\t\t\t\t\n", c.Name)
			continue
		}
		m := c.Median
		runs := make([]string, len(c.Runs))
		for i, s := range c.Runs {
			runs[i] = fmtPPS(s.ForwardedPPS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t\n", c.Name,
			fmtPPS(m.GeneratorPPS), fmtPPS(m.DirectorRxPPS), fmtPPS(m.DirectorTxPPS), fmtPPS(m.ForwardedPPS), m.LossPct,
			m.DirectorCPU.Busy, m.DirectorCPU.User, m.DirectorCPU.System, m.DirectorCPU.SoftIRQ, strings.Join(runs, " "))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range r.Configs {
		fmt.Fprintf(w, "%-12s %s\n", c.Name, c.Description)
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
		fmt.Fprintf(w, "%s: %.2fx (target >= %.1fx): %s\n", q.Name, q.Value, q.Target, verdict)
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
