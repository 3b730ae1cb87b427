package lab

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread locked and switched into h's network namespace,
// and switches the thread back afterwards. fn runs on a goroutine of its own
// (the caller waits for it); goroutines fn starts are not in the namespace,
// but sockets it opens stay there. If switching back fails the thread stays
// locked, so it dies with its goroutine instead of serving other code in the
// wrong namespace. A panic in fn is re-raised in the caller.
func (h *Host) Do(fn func() error) error {
	target, err := netns.GetFromName(h.NS)
	if err != nil {
		return fmt.Errorf("lab: enter namespace %s: %w", h.NS, err)
	}
	defer target.Close()
	return doIn(target, h.NS, fn)
}

// doIn runs fn in the namespace target (named name, for errors); see Do.
func doIn(target netns.NsHandle, name string, fn func() error) error {
	type result struct {
		err      error
		panicked bool
		panicVal any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("lab: current namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("lab: enter namespace %s: %w", name, err)}
			return
		}
		var r result
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.panicked, r.panicVal = true, p
				}
			}()
			r.err = fn()
		}()
		if err := netns.Set(orig); err != nil {
			// Keep the thread locked: it exits with this goroutine.
			r.err = fmt.Errorf("lab: leave namespace %s: %w (after: %v)", name, err, r.err)
		} else {
			runtime.UnlockOSThread()
		}
		done <- r
	}()
	r := <-done
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// netlink returns a netlink handle whose sockets live in h's namespace. The
// caller closes it.
func (h *Host) netlink() (*netlink.Handle, error) {
	ns, err := netns.GetFromName(h.NS)
	if err != nil {
		return nil, fmt.Errorf("lab: open namespace %s: %w", h.NS, err)
	}
	defer ns.Close()
	nl, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("lab: netlink in %s: %w", h.NS, err)
	}
	return nl, nil
}
