//go:build !linux

package main

import (
	"os"
	"syscall"
)

// childAttr asks for nothing outside Linux, where no lab can run.
func childAttr(sig syscall.Signal) *syscall.SysProcAttr { return nil }

// signalGroup kills p outside Linux.
func signalGroup(p *os.Process, sig syscall.Signal) { p.Kill() }

// unpinGroup is unsupported outside Linux.
func unpinGroup(pgid int) error { return errUnsupported }
