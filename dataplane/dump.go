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

// dumpJob asks a worker for copies of its connections, and with withAux
// of their Aux words too, in step.
type dumpJob struct {
	dst     []conntrack.Entry4
	aux     []conntrack.Aux
	withAux bool
	next    int // the next cell to copy
	done    chan *dumpJob
	// v6 asks for the IPv6 shard's connections instead, into dst6.
	v6   bool
	dst6 []conntrack.Entry6
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
	if j.v6 {
		w.serveDump6(j, n)
		return
	}
	if j.withAux {
		j.dst, j.aux = w.shard.DumpRangeAux(j.dst, j.aux, j.next, j.next+n)
	} else {
		j.dst = w.shard.DumpRange(j.dst, j.next, j.next+n)
	}
	j.next += n
	if j.next >= w.shard.Cells() {
		j.done <- j
		w.job = nil
	}
}

// serveDump6 is serveDump for a job on the IPv6 shard: n more cells, or
// none for a worker that has no IPv6 shard.
func (w *Worker) serveDump6(j *dumpJob, n int) {
	s := w.shard6.Load()
	if s != nil {
		if j.withAux {
			j.dst6, j.aux = s.DumpRangeAux(j.dst6, j.aux, j.next, j.next+n)
		} else {
			j.dst6 = s.DumpRange(j.dst6, j.next, j.next+n)
		}
		j.next += n
	}
	if s == nil || j.next >= s.Cells() {
		j.done <- j
		w.job = nil
	}
}

// Connections6 is Connections for the IPv6 connections: it appends copies
// of every worker's IPv6 connections to dst6 and returns it.
func (d *Dataplane) Connections6(ctx context.Context, dst6 []conntrack.Entry6) ([]conntrack.Entry6, error) {
	dst6, _, err := d.dump6(ctx, dst6, nil, false)
	return dst6, err
}

// dump6 is dump for the IPv6 shards.
func (d *Dataplane) dump6(ctx context.Context, dst6 []conntrack.Entry6, aux []conntrack.Aux, withAux bool) ([]conntrack.Entry6, []conntrack.Aux, error) {
	for _, w := range d.workers {
		j := &dumpJob{v6: true, dst6: dst6, aux: aux, withAux: withAux, done: make(chan *dumpJob, 1)}
		select {
		case w.dumps <- j:
		case <-ctx.Done():
			return dst6, aux, ctx.Err()
		}
		select {
		case j = <-j.done:
			dst6, aux = j.dst6, j.aux
		case <-ctx.Done():
			return dst6, aux, ctx.Err() // the worker may still finish it, as in dump
		}
	}
	return dst6, aux, nil
}

// Connections appends copies of every worker's connections to dst and
// returns it (ipvsadm -L -c, and the source of connection sync). Each
// worker copies its own shard a piece at a time between its batches, so
// nothing stops forwarding; the result is not a snapshot of one instant
// but each entry is a consistent copy. The workers must be running (Run);
// ctx bounds the wait.
func (d *Dataplane) Connections(ctx context.Context, dst []conntrack.Entry4) ([]conntrack.Entry4, error) {
	dst, _, err := d.dump(ctx, dst, nil, false)
	return dst, err
}

// SyncConnections is Connections for a connection-sync refresh: it
// appends every connection with its Aux words (a SYN-proxied connection's
// sequence offsets) to dst.
func (d *Dataplane) SyncConnections(ctx context.Context, dst []SyncConn) ([]SyncConn, error) {
	es, aux, err := d.dump(ctx, nil, nil, true)
	for i := range es {
		dst = append(dst, SyncConn{Entry: es[i], Aux: aux[i]})
	}
	return dst, err
}

// dump has every worker append copies of its entries to dst, and with
// withAux of their Aux words to aux.
func (d *Dataplane) dump(ctx context.Context, dst []conntrack.Entry4, aux []conntrack.Aux, withAux bool) ([]conntrack.Entry4, []conntrack.Aux, error) {
	for _, w := range d.workers {
		j := &dumpJob{dst: dst, aux: aux, withAux: withAux, done: make(chan *dumpJob, 1)}
		select {
		case w.dumps <- j:
		case <-ctx.Done():
			return dst, aux, ctx.Err()
		}
		select {
		case j = <-j.done:
			dst, aux = j.dst, j.aux
		case <-ctx.Done():
			// The worker may still finish the job; it writes to a
			// buffered channel nobody reads, and drops it.
			return dst, aux, ctx.Err()
		}
	}
	return dst, aux, nil
}

// Now is the monotonic clock of connection expiry (the one
// conntrack.Entry.Expires counts in), for callers that show how long an
// entry has left.
func Now() int64 { return nanotime() }
