package dataplane

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/schedule"
)

// Dataplane is a set of workers sharing one published Table.
type Dataplane struct {
	table      atomic.Pointer[Table]
	workers    []*Worker
	templates  *conntrack.Templates
	syncOwner  func(e *conntrack.Entry4) int // EnableSync's; nil while sync is off
	syncOwner6 func(e *conntrack.Entry6) int // EnableSync's, for IPv6
	syncWake   chan struct{}
	capture    atomic.Pointer[Capture] // the running capture, nil when none
	frags      fragTable               // first fragments' decisions, for the later fragments
	relinking  atomic.Int32            // workers that have yet to take the links of a Relink
}

// New makes one worker per link. capacity is the connection-table capacity
// shared out evenly between the workers' shards.
func New(links []Link, capacity int) (*Dataplane, error) {
	if len(links) == 0 {
		return nil, errors.New("dataplane: no links")
	}
	if capacity < len(links) {
		return nil, fmt.Errorf("dataplane: capacity %d is less than one connection per worker", capacity)
	}
	// Persistence templates are shared: a client's connections reach
	// several workers. A template stands for a client prefix with recent
	// connections, so an eighth of the connection capacity is room for
	// many clients; its memory (105 bytes a template) is taken a stripe
	// at a time as persistence is used.
	d := &Dataplane{templates: conntrack.NewTemplates(max(capacity/8, 1024))}
	for i, l := range links {
		w := newWorker(i, len(links), l, &d.table, capacity/len(links))
		w.templates = d.templates
		w.capture = &d.capture
		w.frags = &d.frags
		w.relinking = &d.relinking
		d.workers = append(d.workers, w)
	}
	return d, nil
}

// OnLinkError sets what a worker calls after a read failed (the interface
// went down or away), from the worker's goroutine; it must not block. The
// worker goes on reading: a socket resumes when its interface comes back
// up, but after a flap the kernel may have renumbered the fanout group,
// and after the interface was recreated the sockets are bound to nothing:
// then the control plane opens new links and calls Relink. Call it before
// Run.
func (d *Dataplane) OnLinkError(f func(worker int, err error)) {
	for _, w := range d.workers {
		w.linkErr = f
	}
}

// OnWorkerStart sets what each worker calls first, on its own OS thread
// (workers keep theirs), before it reads a frame: the place to set the
// thread's scheduling policy or CPU affinity. Call it before Run.
func (d *Dataplane) OnWorkerStart(f func(worker int)) {
	for _, w := range d.workers {
		w.start = f
	}
}

// Relink hands every worker a new link, in worker order (one per worker);
// the caller then closes the old links, and each worker takes its new one
// when its old one reports closed. Shards, templates and counters stay:
// established connections go on over the new links. It does not wait.
func (d *Dataplane) Relink(links []Link) error {
	if len(links) != len(d.workers) {
		return fmt.Errorf("dataplane: relink with %d links for %d workers", len(links), len(d.workers))
	}
	d.relinking.Store(int32(len(links)))
	for i, w := range d.workers {
		select {
		case <-w.relink: // an earlier relink's link not taken: replaced
		default:
		}
		w.relink <- links[i]
	}
	return nil
}

// Publish makes t the table every worker uses from its next batch on. t
// must not be modified afterwards. A nil t means "no services". The first
// table with an IPv6 service gives every worker its IPv6 connection shard
// first, which takes as much memory again as the IPv4 shards (not safe
// for concurrent use with itself: the control plane publishes from one
// goroutine).
func (d *Dataplane) Publish(t *Table) {
	if t != nil && len(t.Services6) > 0 {
		for _, w := range d.workers {
			w.enableIPv6()
		}
	}
	d.table.Store(t)
}

// Table returns the published table.
func (d *Dataplane) Table() *Table { return d.table.Load() }

// Workers returns the number of workers.
func (d *Dataplane) Workers() int { return len(d.workers) }

// Run runs every worker on its own goroutine until stop is closed or the
// links are closed, and returns the first error a worker had.
func (d *Dataplane) Run(stop <-chan struct{}) error {
	var wg sync.WaitGroup
	errs := make([]error, len(d.workers))
	for i, w := range d.workers {
		wg.Add(1)
		go func() { // dataplane worker i: owns link i and shard i
			defer wg.Done()
			if err := w.run(stop); err != nil {
				errs[i] = fmt.Errorf("dataplane: worker %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Counters returns the sum of every worker's counters.
func (d *Dataplane) Counters() Counters {
	c := Counters{Verdicts: make(map[string]uint64, numVerdicts)}
	for _, w := range d.workers {
		w.C.addTo(&c)
	}
	c.Templates = d.templates.Len()
	return c
}

// flowOf is the scheduler's view of a new connection.
func flowOf(k *conntrack.Key4, now int64) schedule.Flow {
	return schedule.Flow{Src: conntrack.AddrFrom4(k.Src), Dst: conntrack.AddrFrom4(k.Dst), SrcPort: k.SrcPort, DstPort: k.DstPort, Proto: k.Proto, Now: now}
}

// flowHash is a cheap hash of the client side of a key, to spread
// connections over local addresses.
func flowHash(k *conntrack.Key4) uint32 {
	a := k.Src
	h := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) ^ uint32(k.SrcPort)
	h *= 0x9e3779b1
	return h ^ h>>16
}

// WorkerCounters returns each worker's counters, in worker order (the sum
// is Counters; Templates is the shared table's and appears in each).
func (d *Dataplane) WorkerCounters() []Counters {
	out := make([]Counters, len(d.workers))
	for i, w := range d.workers {
		out[i].Verdicts = make(map[string]uint64, numVerdicts)
		w.C.addTo(&out[i])
		out[i].Templates = d.templates.Len()
	}
	return out
}
