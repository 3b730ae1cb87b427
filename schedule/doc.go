// Package schedule owns the LVS job-scheduling algorithms of ipvsadm(8)
// (-s rr|wrr|wlc|...), with the semantics of the Linux kernel's
// net/netfilter/ipvs/ip_vs_rr.c, ip_vs_wrr.c and ip_vs_wlc.c, behind one
// small interface, [Scheduler].
//
// A scheduler is built once per configuration snapshot by [New], which
// precomputes whatever the algorithm needs (the eligible reals, the whole
// weighted round-robin sequence), so that [Scheduler.Pick] on the packet
// path only reads immutable data and atomics: it takes no lock, allocates
// nothing and is safe for any number of dataplane workers at once.
//
// Live connection counts ([Counters]) are not part of the snapshot: the
// control plane keeps one per real and hands the same pointer to every
// snapshot, so least-connection schedulers see the load across republishes.
//
// Flow-hashing schedulers (sh, dh, mh, lblc) are not implemented yet; [Flow]
// is passed to Pick so that they fit the same interface.
package schedule
