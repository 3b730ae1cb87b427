//go:build !linux

package lab

import "syscall"

// listenControl does nothing outside Linux, where the lab cannot run anyway.
func listenControl(network, address string, c syscall.RawConn) error { return nil }
