//go:build unix

package health

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gone waits up to a second for pid to be gone: no such process, or (on
// Linux) a zombie left for an init that does not reap.
func gone(t *testing.T, pid int) bool {
	t.Helper()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		if runtime.GOOS == "linux" {
			stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			if err != nil || strings.Contains(string(stat), ") Z ") {
				return true
			}
		}
	}
	return false
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the script did not write its child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestExecTimeoutKillsGroup runs a script that ignores SIGTERM and has a
// child holding its stderr: the check must end at Timeout and take the
// child with it.
func TestExecTimeoutKillsGroup(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	script := `trap '' TERM; sleep 60 & echo $! > '` + pidfile + `'; sleep 60`
	const timeout = 300 * time.Millisecond
	tg := target("exec", netip.MustParseAddrPort("127.0.0.1:80"), func(c *Config) {
		c.Command = []string{"sh", "-c", script}
		c.Timeout = timeout
	})
	start := time.Now()
	err := checkOnce(t, tg)
	took := time.Since(start)
	wantErr(t, err, "exec sh: timeout after 300ms (killed)")
	if !errors.Is(err, errTimeout) {
		t.Errorf("%v is not a timeout", err)
	}
	if took < timeout || took > timeout+250*time.Millisecond {
		t.Errorf("check took %v; want about its Timeout, %v", took, timeout)
	}
	if pid := readPid(t, pidfile); !gone(t, pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the script's child %d outlived the check", pid)
	}
}

// TestExecLeftovers runs a script that exits 0 at once, leaving a child
// that holds its stderr: a success, after WaitDelay, and the child is killed.
func TestExecLeftovers(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	script := `sleep 60 & echo $! > '` + pidfile + `'; exit 0`
	tg := target("exec", netip.MustParseAddrPort("127.0.0.1:80"), func(c *Config) {
		c.Command = []string{"sh", "-c", script}
		c.Timeout = 2 * time.Second
		c.Interval = 2 * time.Second
	})
	start := time.Now()
	wantErr(t, checkOnce(t, tg), "")
	if took := time.Since(start); took > execWaitDelay+500*time.Millisecond {
		t.Errorf("check took %v; want about WaitDelay, %v", took, execWaitDelay)
	}
	if pid := readPid(t, pidfile); !gone(t, pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the script's child %d outlived the check", pid)
	}
}
