package dataplane

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootClock returns CLOCK_BOOTTIME in nanoseconds: monotonic, counting
// suspend, reset only by a reboot.
func bootClock() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Now().UnixNano()
	}
	return ts.Nano()
}
