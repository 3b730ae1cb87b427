package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// generate sends frames round robin out of iface with the dataplane's
// AF_PACKET link (batched sendmmsg, qdisc bypassed) until SIGINT or
// SIGTERM, as fast as it can or, with rate > 0, paced at rate frames per
// second (see pacer), and returns how many the kernel took and how many
// the pacer skipped.
func generate(iface string, frames [][]byte, rate float64, quantum time.Duration) (sent, skipped uint64, took time.Duration, err error) {
	rejectAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench gen: filter: %w", err)
	}
	// The link always has an RX ring; make it one page and let the filter
	// keep every frame out of it.
	l, err := afpacket.Open(afpacket.Config{
		Interface: iface,
		BlockSize: os.Getpagesize(),
		NumBlocks: 1,
		Filter:    rejectAll,
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench gen: %w", err)
	}
	defer l.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var pace *pacer
	if rate > 0 {
		pace = &pacer{rate: rate, quantum: quantum}
	}
	all := make([][]byte, genBatch)
	start := time.Now()
	next := 0
	for {
		select {
		case <-sigs:
			if pace != nil {
				skipped = pace.skipped
			}
			return sent, skipped, time.Since(start), nil
		default:
		}
		batch := all
		if pace != nil {
			n, _ := pace.due(time.Since(start), sent)
			if n == 0 {
				// Spin, but let anything runnable here (ksoftirqd with
				// the kernel's work on our frames) have the CPU.
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
				continue
			}
			batch = all[:n]
		}
		for i := range batch {
			batch[i] = frames[next]
			if next++; next == len(frames) {
				next = 0
			}
		}
		n, err := l.Write(batch, nil)
		sent += uint64(n)
		if err != nil {
			if pace != nil {
				skipped = pace.skipped
			}
			return sent, skipped, time.Since(start), fmt.Errorf("bench gen: %w", err)
		}
	}
}
