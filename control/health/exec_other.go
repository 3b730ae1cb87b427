//go:build !unix

package health

import "os/exec"

// ownGroup leaves the command as exec.CommandContext made it: without
// process groups the end of the context kills the command alone, and
// WaitDelay cuts off children that keep its stderr open.
func ownGroup(*exec.Cmd) {}

// reapGroup has no group to reap.
func reapGroup(*exec.Cmd) {}
