// Package conntrack owns the connection table of the dataplane: the
// fixed-size, pointer-free connection entries, the IPVS TCP state machine
// and per-state timeouts (net/netfilter/ipvs/ip_vs_proto_tcp.c and
// ip_vs_proto_udp.c, as shown by ipvsadm(8) -L -c and set by --set), and the
// per-worker table shards with incremental expiry and dumps.
//
// A [Shard] has exactly one writer, the dataplane worker that owns it; it
// has no locks and is not safe for concurrent use. Both directions of a
// connection are keyed in the same shard (see DESIGN.md, "Steering"), so a
// worker finds a reply without talking to any other.
//
// Each shard is an open-addressing hash table with linear probing and
// backward-shift deletion over 8-byte slots {hash, entry index, reply bit},
// plus a slab of entries with a free list. An entry's keys live beside it in
// the slab, not in the slots: deleting an entry needs its keys anyway, and
// small slots keep a probe run inside a cache line or two, so a miss never
// leaves the slot array. Nothing in a shard holds a Go pointer, so a table
// of millions of connections costs the garbage collector nothing.
//
// Times are int64 nanoseconds of a monotonic clock the caller chooses; the
// package never reads a clock itself.
package conntrack
