package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// childAttr puts a child in its own process group, so signalGroup reaches
// every process it forks (trafgen forks a worker per CPU), and has the
// kernel send it sig if the bench dies first (prctl(2) PR_SET_PDEATHSIG).
func childAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
}

// signalGroup sends sig to the process group p leads.
func signalGroup(p *os.Process, sig syscall.Signal) {
	syscall.Kill(-p.Pid, sig)
}

// unpinGroup gives every thread of every process in process group pgid
// the bench's own CPU affinity, which is what they would have inherited:
// it undoes a child's pinning of itself (trafgen pins its workers). The
// group is found in /proc (the lab's namespaces share the bench's PID
// namespace).
func unpinGroup(pgid int) error {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return fmt.Errorf("bench: unpin: %w", err)
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("bench: unpin: %w", err)
	}
	n := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if g, err := processGroup(pid); err != nil || g != pgid {
			continue // gone, or another group
		}
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue // gone
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("bench: unpin thread %d of %d: %w", tid, pid, err)
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("bench: unpin: no process in group %d", pgid)
	}
	return nil
}

// processGroup reads a process's group from /proc/PID/stat (proc(5): the
// fifth field, after the command in parentheses).
func processGroup(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatPgrp(string(b))
}
