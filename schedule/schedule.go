package schedule

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Counters are the live per-real connection counts that schedulers read
// (ipvsadm's ActiveConn, InActConn and PersistConn) and the real's
// connection thresholds (ipvsadm -x/-y) with the overload flag they drive.
// They survive a republish of the snapshot: the control plane keeps one
// per real and reuses it. Do not copy.
//
// The dataplane changes the counts only through Bind, Unbind, Activate,
// Deactivate, BindTemplate and UnbindTemplate, so that the overload flag
// follows them exactly as IPVS's IP_VS_DEST_F_OVERLOAD does.
type Counters struct {
	Active, Inactive atomic.Int64
	// Persistent counts the persistence templates that name the real.
	Persistent atomic.Int64

	upper, lower atomic.Int64 // 0 = no threshold
	overloaded   atomic.Bool
}

// SetThresholds sets the upper and lower connection thresholds (0 = none),
// as ipvsadm -x and -y. As in IPVS, raising or removing the upper
// threshold clears the overload flag.
func (c *Counters) SetThresholds(upper, lower int64) {
	if old := c.upper.Load(); upper == 0 || upper > old {
		c.overloaded.Store(false)
	}
	c.upper.Store(upper)
	c.lower.Store(lower)
}

// Thresholds returns the upper and lower connection thresholds.
func (c *Counters) Thresholds() (upper, lower int64) { return c.upper.Load(), c.lower.Load() }

// Overloaded reports whether the real is over its upper threshold: set
// when a new connection brings Active+Inactive to the upper threshold,
// cleared when a connection ends and the total falls below the lower
// threshold (or, without one, below 3/4 of the upper), as
// ip_vs_bind_dest and ip_vs_unbind_dest do.
func (c *Counters) Overloaded() bool { return c.overloaded.Load() }

// total is ip_vs_dest_totalconns.
func (c *Counters) total() int64 { return c.Active.Load() + c.Inactive.Load() }

// Bind counts a new connection, active or not.
func (c *Counters) Bind(active bool) {
	if active {
		c.Active.Add(1)
	} else {
		c.Inactive.Add(1)
	}
	if u := c.upper.Load(); u != 0 && c.total() >= u {
		c.overloaded.Store(true)
	}
}

// Unbind uncounts a connection that ended, active or not.
func (c *Counters) Unbind(active bool) {
	if active {
		c.Active.Add(-1)
	} else {
		c.Inactive.Add(-1)
	}
	if !c.overloaded.Load() {
		return
	}
	u, l := c.upper.Load(), c.lower.Load()
	switch {
	case l != 0:
		if c.total() < l {
			c.overloaded.Store(false)
		}
	case u != 0:
		if c.total()*4 < u*3 {
			c.overloaded.Store(false)
		}
	default:
		c.overloaded.Store(false)
	}
}

// Activate moves a connection from inactive to active.
func (c *Counters) Activate() {
	c.Inactive.Add(-1)
	c.Active.Add(1)
}

// Deactivate moves a connection from active to inactive.
func (c *Counters) Deactivate() {
	c.Active.Add(-1)
	c.Inactive.Add(1)
}

// BindTemplate and UnbindTemplate count persistence templates.
func (c *Counters) BindTemplate()   { c.Persistent.Add(1) }
func (c *Counters) UnbindTemplate() { c.Persistent.Add(-1) }

// Dest is what a scheduler sees of one real server.
type Dest struct {
	Weight   int32     // 0 = quiescent: never picked
	Counters *Counters // never nil
	// Key is a stable identity of the real, e.g. a hash of its address
	// and port, the same in every snapshot. mh derives the real's
	// permutation of the lookup table from it, so that a real keeps its
	// slots when others are added or removed or the list is reordered.
	// Zero is allowed: mh then uses the real's index in dests, which
	// moves flows whenever a real before it is added or removed. Other
	// schedulers ignore Key.
	Key uint64
}

// available reports whether d may take a new connection: a positive
// weight and not overloaded.
func (d *Dest) available() bool { return d.Weight > 0 && !d.Counters.Overloaded() }

// Flow is the new connection being scheduled. Only flow-hashing and
// locality schedulers read it.
type Flow struct {
	Src, Dst         [16]byte // IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d)
	SrcPort, DstPort uint16
	Proto            uint8
	// Now is the caller's monotonic clock in nanoseconds; lblc and lblcr
	// age their entries with it.
	Now int64
}

// Flags are scheduler flags, as ipvsadm -b.
type Flags uint32

// Scheduler flags (ipvsadm -b sh-fallback,sh-port,mh-fallback,mh-port).
const (
	// SHFallback: sh picks another available real when the hashed one is
	// unavailable (quiescent or overloaded).
	SHFallback Flags = 1 << iota
	// SHPort: sh hashes the source port too.
	SHPort
	// MHFallback and MHPort are the same for mh.
	MHFallback
	MHPort
)

var flagNames = [...]string{"sh-fallback", "sh-port", "mh-fallback", "mh-port"}

// ParseFlag returns the flag called name, as ipvsadm -b spells it.
func ParseFlag(name string) (Flags, error) {
	for i, n := range flagNames {
		if n == name {
			return 1 << i, nil
		}
	}
	return 0, fmt.Errorf("unknown scheduler flag %q (want one of sh-fallback, sh-port, mh-fallback, mh-port)", name)
}

// String returns the flags as ipvsadm -b prints them, comma-separated.
func (f Flags) String() string {
	s := ""
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if s != "" {
				s += ","
			}
			s += n
		}
	}
	return s
}

// Defaults of Options.
const (
	// DefaultMHTableSize is the default Maglev lookup table size: a
	// prime, as Maglev requires, large enough for 650 reals at 100
	// slots each.
	DefaultMHTableSize = 65537
	// DefaultLBLCExpire is how long an lblc/lblcr entry lives unused
	// (IPVS's lblc_expiration and lblcr_expiration sysctls: 24 hours).
	DefaultLBLCExpire = 24 * time.Hour
)

// Options tune the schedulers that have anything to tune. The zero value
// is the IPVS default for each.
type Options struct {
	Flags       Flags
	MHTableSize int           // mh: lookup table size, a prime >= the reals with a weight, <= 2^24; 0 = DefaultMHTableSize
	LBLCExpire  time.Duration // lblc/lblcr: 0 = DefaultLBLCExpire
}

// Scheduler picks a real server for a new connection.
type Scheduler interface {
	// Pick returns the index in dests of the real for a new connection,
	// or -1 if none can take it. dests must be the slice (or an identical
	// copy of the slice) the scheduler was built for by New; a slice of
	// another length yields -1. Safe for concurrent use by many workers,
	// zero allocations.
	Pick(dests []Dest, f *Flow) int
}

// Peeker is a Scheduler that can tell what Pick would return for a flow
// now without changing anything: no round-robin counter moves, no
// locality cache entry is made, refreshed or replaced. Every scheduler
// New builds is a Peeker. It answers "which real would this client get"
// (gvsadm simulate); a concurrent Pick may of course take that turn
// first. Safe for concurrent use, zero allocations.
type Peeker interface {
	Peek(dests []Dest, f *Flow) int
}

// Errors returned (wrapped) by New.
var (
	ErrUnknown        = errors.New("unknown scheduler")
	ErrNotImplemented = errors.New("scheduler not implemented")
)

// implemented lists the schedulers New builds, in ipvsadm(8)'s order.
var implemented = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}

// known lists the other schedulers of ipvsadm(8): valid names that New
// does not build yet. None at present; New still answers
// ErrNotImplemented for any name listed here.
var known []string

// Implemented returns the names of the schedulers New builds. The caller
// may modify the returned slice.
func Implemented() []string {
	return append([]string(nil), implemented...)
}

// New builds the scheduler called name (as ipvsadm -s) for dests,
// precomputing whatever it needs. It returns an error wrapping
// ErrNotImplemented for a valid ipvsadm scheduler not implemented yet,
// ErrUnknown for any other name, and an error for a negative weight, a
// nil Counters or a bad option. Weights and the length of dests are fixed
// for the life of the scheduler: a change means a new snapshot and a new
// call to New.
func New(name string, dests []Dest, opts Options) (Scheduler, error) {
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
	case "lc":
		return &lc{n: len(dests)}, nil
	case "wlc":
		return &wlc{n: len(dests)}, nil
	case "sed":
		return &sed{n: len(dests)}, nil
	case "nq":
		return &nq{n: len(dests)}, nil
	case "fo":
		return &fo{n: len(dests)}, nil
	case "ovf":
		return &ovf{n: len(dests)}, nil
	case "sh":
		return newSH(dests, opts.Flags), nil
	case "dh":
		return newDH(dests), nil
	case "mh":
		return newMH(dests, opts)
	case "lblc", "lblcr":
		expire := opts.LBLCExpire
		switch {
		case expire < 0:
			return nil, fmt.Errorf("schedule: %s: negative LBLCExpire %v", name, expire)
		case expire == 0:
			expire = DefaultLBLCExpire
		}
		if name == "lblc" {
			return newLBLC(dests, expire), nil
		}
		return newLBLCR(dests, expire), nil
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

// advance moves the counter k positions further after next returned v,
// unless another pick has moved it meanwhile: the pick took position
// v+k, and the sequence goes on after it.
func (c *cursor) advance(v, k uint64) { c.n.CompareAndSwap(v+1, v+1+k) }

// undo takes back the increment of next that returned v, unless another
// pick has moved the counter meanwhile.
func (c *cursor) undo(v uint64) { c.n.CompareAndSwap(v+1, v) }

// zeroFlow stands in for a nil *Flow: the flow-hashing schedulers then
// hash the unspecified address and port 0.
var zeroFlow Flow

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
