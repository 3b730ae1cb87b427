package control

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setThreadPolicy sets the scheduling policy of the calling OS thread:
// "batch" is SCHED_BATCH, "normal" SCHED_OTHER (config.Director.WorkerPolicy).
func setThreadPolicy(policy string) error {
	attr := unix.SchedAttr{Policy: unix.SCHED_NORMAL}
	switch policy {
	case "batch":
		attr.Policy = unix.SCHED_BATCH
	case "normal":
	default:
		return fmt.Errorf("unknown scheduling policy %q", policy)
	}
	// nice stays what the thread had (gvsd's, as started).
	nice, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return fmt.Errorf("getpriority: %w", err)
	}
	// getpriority(2) returns 20 - nice.
	attr.Nice = int32(20 - nice)
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("sched_setattr %s: %w", policy, err)
	}
	return nil
}

// threadPolicy returns the calling thread's scheduling policy as
// setThreadPolicy names it, or its number.
func threadPolicy() (string, error) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return "", err
	}
	switch attr.Policy {
	case unix.SCHED_BATCH:
		return "batch", nil
	case unix.SCHED_NORMAL:
		return "normal", nil
	}
	return fmt.Sprintf("policy %d", attr.Policy), nil
}
