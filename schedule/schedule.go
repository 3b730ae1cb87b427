package schedule

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Counters are the live per-real connection counts that schedulers read
// (ipvsadm's ActiveConn and InActConn). They survive a republish of the
// snapshot: the control plane keeps one per real and reuses it. Do not copy.
type Counters struct {
	Active, Inactive atomic.Int64
}

// Dest is what a scheduler sees of one real server.
type Dest struct {
	Weight   int32     // 0 = quiescent: never picked
	Counters *Counters // never nil
}

// Flow is the new connection being scheduled. Only flow-hashing schedulers
// read it.
type Flow struct {
	Src, Dst         [16]byte // IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d)
	SrcPort, DstPort uint16
	Proto            uint8
}

// Scheduler picks a real server for a new connection.
type Scheduler interface {
	// Pick returns the index in dests of the real for a new connection,
	// or -1 if none can take it. dests must be the slice (or an identical
	// copy of the slice) the scheduler was built for by New; a slice of
	// another length yields -1. Safe for concurrent use by many workers
	// (lock-free: atomics only), zero allocations.
	Pick(dests []Dest, f *Flow) int
}

// Errors returned (wrapped) by New.
var (
	ErrUnknown        = errors.New("unknown scheduler")
	ErrNotImplemented = errors.New("scheduler not implemented")
)

// implemented lists the schedulers New builds, in ipvsadm(8)'s order.
var implemented = []string{"rr", "wrr", "wlc"}

// known lists the other schedulers of ipvsadm(8): valid names that New
// does not build yet.
var known = []string{"lc", "sed", "nq", "sh", "dh", "lblc", "lblcr", "mh", "fo", "ovf"}

// Implemented returns the names of the schedulers New builds ("rr",
// "wrr", "wlc"). The caller may modify the returned slice.
func Implemented() []string {
	return append([]string(nil), implemented...)
}

// New builds the scheduler called name (as ipvsadm -s) for dests,
// precomputing whatever it needs. It returns an error wrapping
// ErrNotImplemented for a valid ipvsadm scheduler not implemented yet,
// ErrUnknown for any other name, and an error for a negative weight or a
// nil Counters. Weights and the length of dests are fixed for the life of
// the scheduler: a change means a new snapshot and a new call to New.
func New(name string, dests []Dest) (Scheduler, error) {
	for i := range dests {
		if dests[i].Weight < 0 {
			return nil, fmt.Errorf("schedule: %s: real %d: negative weight %d", name, i, dests[i].Weight)
		}
		if dests[i].Counters == nil {
			return nil, fmt.Errorf("schedule: %s: real %d: nil Counters", name, i)
		}
	}
	switch name {
	case "rr":
		return newRR(dests), nil
	case "wrr":
		return newWRR(dests, maxWRRSequence), nil
	case "wlc":
		return newWLC(dests), nil
	}
	for _, k := range known {
		if name == k {
			return nil, fmt.Errorf("schedule: %q: %w", name, ErrNotImplemented)
		}
	}
	return nil, fmt.Errorf("schedule: %q: %w", name, ErrUnknown)
}

// cacheLine is the size the shared pick counters are padded to so that
// workers bumping one scheduler's counter do not invalidate the line that
// holds another's read-only tables: 64 bytes on amd64 and arm64, and
// harmlessly generous elsewhere.
const cacheLine = 64

// cursor is a pick counter alone on its cache line.
type cursor struct {
	_ [cacheLine]byte
	n atomic.Uint64
	_ [cacheLine - 8]byte
}

// next returns the counter's value before an increment.
func (c *cursor) next() uint64 { return c.n.Add(1) - 1 }

// eligible returns the indexes of the reals with a positive weight.
func eligible(dests []Dest) []int32 {
	var idx []int32
	for i := range dests {
		if dests[i].Weight > 0 {
			idx = append(idx, int32(i))
		}
	}
	return idx
}
