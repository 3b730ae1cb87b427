package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/dataplane/afpacket"
	"golang.org/x/net/bpf"
)

// generate sends frames round robin out of iface with the dataplane's
// AF_PACKET link (batched sendmmsg, qdisc bypassed) until SIGINT or
// SIGTERM, and returns how many the kernel took.
func generate(iface string, frames [][]byte) (sent uint64, took time.Duration, err error) {
	rejectAll, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return 0, 0, fmt.Errorf("bench gen: filter: %w", err)
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
		return 0, 0, fmt.Errorf("bench gen: %w", err)
	}
	defer l.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	batch := make([][]byte, genBatch)
	start := time.Now()
	next := 0
	for {
		select {
		case <-sigs:
			return sent, time.Since(start), nil
		default:
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
			return sent, time.Since(start), fmt.Errorf("bench gen: %w", err)
		}
	}
}
