//go:build !linux

package main

import "time"

// generate is unsupported outside Linux.
func generate(iface string, frames [][]byte, rate float64, quantum time.Duration) (uint64, uint64, time.Duration, error) {
	return 0, 0, 0, errUnsupported
}
