package control

import (
	"runtime"
	"sync"
)

// procs counts the Ps that workers hold while they wait for frames
// (afpacket.Config.HoldP): each such worker keeps a P of the Go runtime
// even while it sleeps in ppoll(2), so GOMAXPROCS is raised by one per
// worker and the rest of gvsd (the control plane, health checks, VRRP,
// sync) keeps as many Ps as it had.
var procs struct {
	sync.Mutex
	base int // GOMAXPROCS before the first worker held a P
	held int // Ps held by the workers of running daemons
}

// holdProcs makes room for n workers that hold a P each and returns the
// function that gives the room back.
func holdProcs(n int) (release func()) {
	procs.Lock()
	defer procs.Unlock()
	if procs.held == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.held += n
	runtime.GOMAXPROCS(procs.base + procs.held)
	var once sync.Once
	return func() {
		once.Do(func() {
			procs.Lock()
			defer procs.Unlock()
			procs.held -= n
			runtime.GOMAXPROCS(procs.base + procs.held)
		})
	}
}
