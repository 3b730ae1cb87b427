package control

import (
	"runtime"
	"testing"
)

// TestThreadPolicy: setThreadPolicy changes the calling thread's policy,
// and only that thread's.
func TestThreadPolicy(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread ends with the goroutine (it stays locked), so its
		// policy goes with it.
		runtime.LockOSThread()
		for _, p := range []string{"batch", "normal", "batch"} {
			if err := setThreadPolicy(p); err != nil {
				t.Errorf("setThreadPolicy(%q): %v", p, err)
				return
			}
			if got, err := threadPolicy(); err != nil || got != p {
				t.Errorf("after setThreadPolicy(%q): policy %q, %v", p, got, err)
			}
		}
		if err := setThreadPolicy("fifo"); err == nil {
			t.Error(`setThreadPolicy("fifo") succeeded`)
		}
	}()
	<-done
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if got, err := threadPolicy(); err != nil || got != "normal" {
		t.Errorf("another thread's policy: %q, %v; want normal", got, err)
	}
}
