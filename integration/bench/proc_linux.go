package main

import (
	"os"
	"syscall"
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
