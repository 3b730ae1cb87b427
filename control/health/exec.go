package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// execWaitDelay is how long a check waits, after its script has exited or
// been killed, for the script's stderr to close. Killing the process group
// closes it at once; a child that left the group (setsid) and keeps it open
// is cut off after this, so the check still returns about at Timeout. A
// tenth of a second is far longer than the kernel takes to tear down a
// killed group and far shorter than any useful Timeout.
const execWaitDelay = 100 * time.Millisecond

// maxStderrLine bounds the stderr line kept for the failure reason.
const maxStderrLine = 256

// execCheck runs a command; exit status 0 is success.
type execCheck struct {
	argv    []string
	env     []string // GVS_REAL_ADDR=..., GVS_REAL_PORT=...
	timeout time.Duration
}

// newExecCheck builds the check of real. The environment carries the
// real's own address and port, not a Port override: the command line can
// name any other port itself.
func newExecCheck(real netip.AddrPort, cfg Config) *execCheck {
	return &execCheck{
		argv: append([]string(nil), cfg.Command...),
		env: []string{
			"GVS_REAL_ADDR=" + real.Addr().String(),
			"GVS_REAL_PORT=" + strconv.Itoa(int(real.Port())),
		},
		timeout: cfg.Timeout,
	}
}

func (c *execCheck) check(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = append(os.Environ(), c.env...) // later entries win
	var stderr firstLine
	cmd.Stderr = &stderr // stdin and stdout are /dev/null
	cmd.WaitDelay = execWaitDelay
	ownGroup(cmd)
	err := cmd.Run()
	reapGroup(cmd)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("exec %s: %w (killed)", c.argv[0], reason(ctx, ctx.Err(), c.timeout))
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		return nil // exited 0; something it left behind held stderr open
	}
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err // "executable file not found in $PATH"
	}
	if line := stderr.String(); line != "" {
		return fmt.Errorf("exec %s: %w: %s", c.argv[0], err, line)
	}
	return fmt.Errorf("exec %s: %w", c.argv[0], err)
}

// firstLine is a writer that keeps the first line written to it, up to
// maxStderrLine bytes, and discards everything else (it never blocks the
// writer and never grows).
type firstLine struct {
	buf  []byte
	done bool
}

func (w *firstLine) Write(p []byte) (int, error) {
	n := len(p)
	if w.done {
		return n, nil
	}
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		p, w.done = p[:i], true
	}
	if room := maxStderrLine - len(w.buf); len(p) >= room {
		p, w.done = p[:room], true
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

func (w *firstLine) String() string { return string(bytes.TrimSpace(w.buf)) }
