// Package schedule owns the LVS job-scheduling algorithms of ipvsadm(8)
// (-s rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh), with the
// semantics of the Linux kernel's net/netfilter/ipvs/ip_vs_*.c, behind one
// small interface, [Scheduler]. Each scheduler's type comment names its
// kernel source and every deliberate difference from it.
//
// A scheduler is built once per configuration snapshot by [New], which
// precomputes whatever the algorithm needs (the weighted round-robin
// sequence, the sh and dh bucket tables, the Maglev lookup table), so
// that [Scheduler.Pick] on the packet path allocates nothing and is safe
// for any number of dataplane workers at once. Most schedulers read only
// immutable data and atomics there; rr and wrr bump one atomic counter;
// lblc and lblcr keep a bounded cache of destination addresses, striped
// over per-set mutexes.
//
// Live connection counts and the overload flag ([Counters]) are not part
// of the snapshot: the control plane keeps one per real and hands the same
// pointer to every snapshot, so least-connection schedulers see the load
// across republishes. A real is available for a new connection when its
// weight is positive and it is not overloaded; the least-connection
// family (lc, wlc, sed, nq, fo, ovf and lblc/lblcr's choices) scans all
// reals, O(reals) per pick, as the kernel does.
//
// The flow-hashing schedulers (sh, dh, mh) and the locality ones (lblc,
// lblcr) read the [Flow] passed to Pick; a nil Flow is the zero flow.
//
// Every scheduler is also a [Peeker]: Peek returns what Pick would return
// now without moving anything, and [Explain] says why, in the
// scheduler's own terms, for gvsadm simulate.
package schedule
