package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"time"
)

// genCommand is the hidden subcommand that runs the Go generator: the
// bench starts its own binary with it inside the generator's namespace,
// pinned to the generator's CPU, when trafgen is not installed.
const genCommand = "gen"

// genBatch is the number of frames per Link.Write (one sendmmsg(2)): the
// dataplane's own batch size, which amortises the system call.
const genBatch = 64

// genMain is `bench gen -iface IF -dst-mac MAC -src-mac MAC -dst VIP:PORT
// -flows N [-rate PPS]`: it sends the flows' frames round robin, as fast
// as it can or paced at -rate, until SIGINT or SIGTERM.
func genMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	iface := fs.String("iface", "eth0", "interface to send from")
	dstMAC := fs.String("dst-mac", "", "destination MAC (the director's)")
	srcMAC := fs.String("src-mac", "", "source MAC (the generator's)")
	dst := fs.String("dst", "", "destination VIP:port")
	flows := fs.Int("flows", 1024, "number of flows")
	rate := fs.Float64("rate", 0, "frames per second, evenly spaced; 0: as fast as it can")
	quantum := fs.Duration("quantum", 0, "with -rate: send at most once per quantum, what is due in one write")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var t Traffic
	var err error
	if t.DstMAC, err = net.ParseMAC(*dstMAC); err == nil {
		if t.SrcMAC, err = net.ParseMAC(*srcMAC); err == nil {
			t.Dst, err = netip.ParseAddrPort(*dst)
		}
	}
	if err == nil && (*rate < 0 || *rate > maxGenRate) {
		err = fmt.Errorf("-rate %v: want 0 to %v", *rate, maxGenRate)
	}
	if err == nil && (*quantum < 0 || *quantum > maxQuantum) {
		err = fmt.Errorf("-quantum %v: want 0 to %v", *quantum, maxQuantum)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench gen: %v\n", err)
		return 2
	}
	t.Flows = *flows
	frames, err := t.Frames()
	if err != nil {
		fmt.Fprintf(stderr, "bench gen: %v\n", err)
		return 2
	}
	sent, skipped, took, err := generate(*iface, frames, *rate, *quantum)
	fmt.Fprintf(stderr, "bench gen: sent %d frames in %v (%.0f pps)", sent, took, float64(sent)/max(took.Seconds(), 1e-9))
	if *rate > 0 {
		fmt.Fprintf(stderr, ", paced at %.0f pps (quantum %v), %d frames skipped to stay within %d frames of the schedule", *rate, *quantum, skipped, paceMaxBehind)
	}
	fmt.Fprintln(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench gen: %v\n", err)
		return 1
	}
	return 0
}

// maxQuantum bounds the Go generator's -quantum.
const maxQuantum = 10 * time.Millisecond

// maxGenRate bounds the Go generator's -rate: far above what one CPU
// sends.
const maxGenRate = 100e6

// Pacing of the Go generator at a rate: frame k is due k/rate after the
// start; the generator sends what is due, at most genBatch frames per
// write, and spins in between, yielding the CPU (sched_yield(2)) to
// whatever else is runnable there. It does not sleep: in a VM a vCPU
// that goes idle can take milliseconds to be woken (seen here: with
// nanosleep(2) between 100 µs batches, stalls of over a millisecond cost
// 0.5% of the frames at 100 kpps and 2% at 300 kpps).
const (
	// paceMaxBehind is how far behind its schedule the paced generator
	// may fall before it skips frames: two writes, well within the
	// receiving queues (veth's ring of 256, a backlog of 1000).
	paceMaxBehind = 2 * genBatch
	// defaultPaceQuantum is the bench's quantum for the paced generator:
	// the interrupt interval of a NIC that coalesces (10,000 a second).
	defaultPaceQuantum = 100 * time.Microsecond
)

// pacer schedules frames at a constant rate from a start time. A
// generator that fell behind (descheduled) by more than paceMaxBehind
// frames does not catch up in a burst: the frames beyond are skipped, so
// the rate it achieves, which the interface counters measure, is lower
// instead. With a quantum it sends at most once per quantum, everything
// due by then in one write (up to genBatch frames a write), as a NIC's
// interrupt coalescing hands the kernel a batch: one RPS IPI per batch,
// not per frame.
type pacer struct {
	rate    float64
	quantum time.Duration
	skipped uint64        // frames given up to stay within a batch of the schedule
	last    time.Duration // of the last write
	wrote   bool
	owed    uint64 // frames that were due at the last write and did not fit
}

// due returns how many frames to send now, at most genBatch, after
// elapsed since the start with sent frames sent, or 0 and how long until
// it should ask again.
func (p *pacer) due(elapsed time.Duration, sent uint64) (n int, wait time.Duration) {
	if p.wrote && p.owed == 0 && elapsed < p.last+p.quantum {
		return 0, p.last + p.quantum - elapsed
	}
	// Frames 0..target-1 are due by now (frame 0 at the start).
	target := uint64(elapsed.Seconds()*p.rate) + 1
	if target > sent+p.skipped {
		behind := target - sent - p.skipped
		if behind > paceMaxBehind {
			p.skipped += behind - paceMaxBehind
			behind = paceMaxBehind
		}
		n := min(behind, genBatch)
		// What one write cannot carry goes in the next, at once.
		p.last, p.wrote, p.owed = elapsed, true, behind-n
		return int(n), 0
	}
	p.owed = 0
	next := float64(sent+p.skipped) / p.rate
	return 0, max(time.Duration(math.Ceil(next*1e9))-elapsed, time.Nanosecond)
}
