package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/integration/lab"
)

// Tunables of child processes.
const (
	// stopGrace is how long a child gets to exit after SIGINT/SIGTERM
	// before its process group is killed: gvsd removes its nftables table
	// and VIP in well under a second.
	stopGrace = 10 * time.Second
	// pollEvery paces the waits for a log line or a counter.
	pollEvery = 20 * time.Millisecond
)

// proc is a child process (usually inside a lab namespace) in a process
// group of its own, its output in a log file. If the bench dies, the
// kernel sends the child its stop signal (PR_SET_PDEATHSIG), so gvsd still
// cleans up and the generator stops.
type proc struct {
	name    string
	cmd     *exec.Cmd
	stopSig syscall.Signal
	logPath string
	done    chan struct{} // closed when the process has been reaped
	err     error         // how it exited, once done is closed
}

// startLocal runs args in the bench's own namespace; see startProc.
func startLocal(name, logPath string, stopSig syscall.Signal, args []string) (*proc, error) {
	return start(exec.Command(args[0], args[1:]...), name, logPath, stopSig)
}

// startProc runs args in h's namespace (ip netns exec, which also mounts
// the namespace's own /sys) with output to logPath. stopSig is what stop
// sends first.
func startProc(h *lab.Host, name, logPath string, stopSig syscall.Signal, args []string) (*proc, error) {
	// Not CommandContext: stop, not a context, ends the process, so that
	// teardown after Ctrl-C still runs in order.
	return start(h.Command(context.Background(), args[0], args[1:]...), name, logPath, stopSig)
}

func start(cmd *exec.Cmd, name, logPath string, stopSig syscall.Signal) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr(stopSig)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, stopSig: stopSig, logPath: logPath, done: make(chan struct{})}
	go func() { // reaps one child process
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// stop sends the stop signal to the process group, waits up to stopGrace,
// then kills the group. It returns how the process exited; a process that
// had to be killed is an error.
func (p *proc) stop() error {
	if p.exited() {
		return p.err
	}
	signalGroup(p.cmd.Process, p.stopSig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopGrace):
	}
	signalGroup(p.cmd.Process, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("bench: %s did not stop within %v after %v; killed", p.name, stopGrace, p.stopSig)
}

// waitLog waits until the log contains s, the process exits, ctx ends or d
// passes.
func (p *proc) waitLog(ctx context.Context, s string, d time.Duration) error {
	err := waitFor(ctx, d, func() bool { return p.exited() || strings.Contains(p.log(), s) })
	if err != nil {
		return fmt.Errorf("bench: %s: waiting for %q: %w", p.name, s, err)
	}
	if !strings.Contains(p.log(), s) {
		<-p.done
		return fmt.Errorf("bench: %s exited (%v) before logging %q", p.name, p.err, s)
	}
	return nil
}

// waitFor polls cond until it holds, ctx ends or d passes.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	return nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runIn runs a short command in h's namespace, bounded by ctx, with stdin,
// and returns an error with its output when it fails.
func runIn(ctx context.Context, h *lab.Host, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := h.Command(ctx, args[0], args[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return string(out), fmt.Errorf("bench: %s on %s: %w: %s", strings.Join(args, " "), h.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// cmdTimeout bounds one setup command (ip, nft, sh).
const cmdTimeout = 10 * time.Second

// parseStatPgrp returns the process group of a /proc/PID/stat line: the
// third field after the command, which is in parentheses and may itself
// hold spaces and parentheses.
func parseStatPgrp(stat string) (int, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: stat %q: no command", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 3 {
		return 0, fmt.Errorf("bench: stat %q: too short", stat)
	}
	return strconv.Atoi(f[2])
}
