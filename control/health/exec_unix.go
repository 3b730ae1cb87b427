//go:build unix

package health

import (
	"os"
	"os/exec"
	"syscall"
)

// ownGroup starts the command as the leader of a process group of its own
// (setpgid(2)) and makes the end of its context kill the whole group with
// SIGKILL (kill(2) with a negative pid): a script that ignores SIGTERM, and
// every child it started, go at Timeout.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
}

// reapGroup kills whatever is left of the command's group after it
// exited: children a check script left running. The leader has been
// reaped by now, but its pid cannot name another group yet: the kernel
// keeps a pid in use while any member of its group lives, and hands out
// pids cyclically otherwise.
func reapGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = killGroup(cmd.Process.Pid)
	}
}

func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		if err == syscall.ESRCH {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}
