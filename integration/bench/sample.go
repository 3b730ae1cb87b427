package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// linkStats are the cumulative counters of one interface.
type linkStats struct {
	RxPackets, TxPackets, RxDropped, TxDropped uint64
}

// counters is one reading of every interface a sample looks at.
type counters struct {
	gen, director, directorPort linkStats
	reals                       []linkStats
}

// cpuTimes is one CPU's line of /proc/stat (proc(5)), in USER_HZ ticks.
type cpuTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

func (c cpuTimes) total() uint64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// procStat is where CPU times are read; tests point it at a fixture.
var procStat = "/proc/stat"

// readCPUTimes returns the times of every CPU, indexed by CPU number.
func readCPUTimes() (map[int]cpuTimes, error) {
	b, err := os.ReadFile(procStat)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu times: %w", err)
	}
	out := map[int]cpuTimes{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("bench: cpu times: %s: %q: %w", f[0], f[i+1], err)
			}
		}
		out[n] = cpuTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}
	}
	return out, nil
}

// CPUUse is how one CPU spent a measured interval, in percent of it.
type CPUUse struct {
	CPU     int     `json:"cpu"`
	Busy    float64 `json:"busy_pct"` // everything but idle and iowait
	User    float64 `json:"user_pct"` // user and nice
	System  float64 `json:"system_pct"`
	SoftIRQ float64 `json:"softirq_pct"` // includes hard IRQ time
	Steal   float64 `json:"steal_pct"`   // taken by the hypervisor
}

func cpuUse(cpu int, a, b cpuTimes) CPUUse {
	total := float64(b.total() - a.total())
	if total <= 0 {
		return CPUUse{CPU: cpu}
	}
	pct := func(v uint64) float64 { return 100 * float64(v) / total }
	return CPUUse{
		CPU:     cpu,
		Busy:    100 - pct((b.Idle-a.Idle)+(b.IOWait-a.IOWait)),
		User:    pct((b.User - a.User) + (b.Nice - a.Nice)),
		System:  pct(b.System - a.System),
		SoftIRQ: pct((b.SoftIRQ - a.SoftIRQ) + (b.IRQ - a.IRQ)),
		Steal:   pct(b.Steal - a.Steal),
	}
}

// snapshot is what is read at each end of a measured interval.
type snapshot struct {
	at  time.Time
	c   counters
	cpu map[int]cpuTimes
}

// Sample is one measured interval of one configuration.
type Sample struct {
	Seconds float64 `json:"seconds"`
	// GeneratorPPS counts frames the generator's eth0 sent (the LAN took
	// them); DirectorRxPPS frames the director's eth0 received (its
	// receive backlog took them; more are lost there when the director's
	// CPU cannot keep up); DirectorTxPPS frames the director sent (the
	// LAN's port facing it received them); ForwardedPPS frames the real
	// servers' eth0 received, summed, with RealPPS per real server.
	GeneratorPPS  float64   `json:"generator_pps"`
	DirectorRxPPS float64   `json:"director_rx_pps"`
	DirectorTxPPS float64   `json:"director_tx_pps"`
	ForwardedPPS  float64   `json:"forwarded_pps"`
	RealPPS       []float64 `json:"real_pps"`
	// LossPct is the share of the generator's frames that reached no
	// real server.
	LossPct      float64 `json:"loss_pct"`
	DirectorCPU  CPUUse  `json:"director_cpu"`
	GeneratorCPU CPUUse  `json:"generator_cpu"`
}

// sampleOf turns two snapshots into rates.
func sampleOf(a, b snapshot, genCPU, dirCPU int) Sample {
	secs := b.at.Sub(a.at).Seconds()
	rate := func(x, y uint64) float64 {
		if secs <= 0 || y < x {
			return 0
		}
		return float64(y-x) / secs
	}
	s := Sample{
		Seconds:       secs,
		GeneratorPPS:  rate(a.c.gen.TxPackets, b.c.gen.TxPackets),
		DirectorRxPPS: rate(a.c.director.RxPackets, b.c.director.RxPackets),
		DirectorTxPPS: rate(a.c.directorPort.RxPackets, b.c.directorPort.RxPackets),
		DirectorCPU:   cpuUse(dirCPU, a.cpu[dirCPU], b.cpu[dirCPU]),
		GeneratorCPU:  cpuUse(genCPU, a.cpu[genCPU], b.cpu[genCPU]),
	}
	for i := range min(len(a.c.reals), len(b.c.reals)) {
		r := rate(a.c.reals[i].RxPackets, b.c.reals[i].RxPackets)
		s.RealPPS = append(s.RealPPS, r)
		s.ForwardedPPS += r
	}
	s.LossPct = lossPct(s.GeneratorPPS, s.ForwardedPPS)
	return s
}

func lossPct(sent, got float64) float64 {
	if sent <= 0 {
		return 0
	}
	return max(0, 100*(sent-got)/sent)
}

// median returns the median of v (the mean of the middle two for an even
// count), 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianSample returns the field-by-field median of runs.
func medianSample(runs []Sample) Sample {
	if len(runs) == 0 {
		return Sample{}
	}
	field := func(get func(Sample) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		return median(v)
	}
	cpu := func(get func(Sample) CPUUse) CPUUse {
		return CPUUse{
			CPU:     get(runs[0]).CPU,
			Busy:    field(func(s Sample) float64 { return get(s).Busy }),
			User:    field(func(s Sample) float64 { return get(s).User }),
			System:  field(func(s Sample) float64 { return get(s).System }),
			SoftIRQ: field(func(s Sample) float64 { return get(s).SoftIRQ }),
			Steal:   field(func(s Sample) float64 { return get(s).Steal }),
		}
	}
	m := Sample{
		Seconds:       field(func(s Sample) float64 { return s.Seconds }),
		GeneratorPPS:  field(func(s Sample) float64 { return s.GeneratorPPS }),
		DirectorRxPPS: field(func(s Sample) float64 { return s.DirectorRxPPS }),
		DirectorTxPPS: field(func(s Sample) float64 { return s.DirectorTxPPS }),
		ForwardedPPS:  field(func(s Sample) float64 { return s.ForwardedPPS }),
		DirectorCPU:   cpu(func(s Sample) CPUUse { return s.DirectorCPU }),
		GeneratorCPU:  cpu(func(s Sample) CPUUse { return s.GeneratorCPU }),
	}
	for i := range len(runs[0].RealPPS) {
		m.RealPPS = append(m.RealPPS, field(func(s Sample) float64 {
			if i < len(s.RealPPS) {
				return s.RealPPS[i]
			}
			return 0
		}))
	}
	m.LossPct = lossPct(m.GeneratorPPS, m.ForwardedPPS)
	return m
}
