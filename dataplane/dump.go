package dataplane

import (
	"context"

	"github.com/gvs-lb/gvs/conntrack"
)

// Dump chunks: a busy worker copies dumpChunk entry cells between two
// batches (about 20 µs), an idle one dumpIdleChunk.
const (
	dumpChunk     = 4096
	dumpIdleChunk = 1 << 18
)

// dumpJob asks a worker for copies of its connections.
type dumpJob struct {
	dst  []conntrack.Entry4
	next int // the next cell to copy
	done chan []conntrack.Entry4
}

// serveDump copies the next piece of the shard for a pending dump, and
// hands the result back when the whole shard has been copied.
func (w *Worker) serveDump(idle bool) {
	if w.job == nil {
		select {
		case w.job = <-w.dumps:
		default:
			return
		}
	}
	n := dumpChunk
	if idle {
		n = dumpIdleChunk
	}
	j := w.job
	j.dst = w.shard.DumpRange(j.dst, j.next, j.next+n)
	j.next += n
	if j.next >= w.shard.Cells() {
		j.done <- j.dst
		w.job = nil
	}
}

// Connections appends copies of every worker's connections to dst and
// returns it (ipvsadm -L -c, and the source of connection sync). Each
// worker copies its own shard a piece at a time between its batches, so
// nothing stops forwarding; the result is not a snapshot of one instant
// but each entry is a consistent copy. The workers must be running (Run);
// ctx bounds the wait.
func (d *Dataplane) Connections(ctx context.Context, dst []conntrack.Entry4) ([]conntrack.Entry4, error) {
	for _, w := range d.workers {
		j := &dumpJob{dst: dst, done: make(chan []conntrack.Entry4, 1)}
		select {
		case w.dumps <- j:
		case <-ctx.Done():
			return dst, ctx.Err()
		}
		select {
		case dst = <-j.done:
		case <-ctx.Done():
			// The worker may still finish the job; it writes to a
			// buffered channel nobody reads, and drops it.
			return dst, ctx.Err()
		}
	}
	return dst, nil
}

// Now is the monotonic clock of connection expiry (the one
// conntrack.Entry.Expires counts in), for callers that show how long an
// entry has left.
func Now() int64 { return nanotime() }
