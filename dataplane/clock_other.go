//go:build !linux

package dataplane

import "time"

// bootClock returns the wall clock in nanoseconds where Linux's
// CLOCK_BOOTTIME is missing: it too outlives a restart, but a step of the
// clock moves it.
func bootClock() int64 { return time.Now().UnixNano() }
