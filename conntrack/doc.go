// Package conntrack owns the connection table of the dataplane: the
// fixed-size, pointer-free connection entries, the IPVS TCP state machine
// and per-state timeouts (net/netfilter/ipvs/ip_vs_proto_tcp.c and
// ip_vs_proto_udp.c, as shown by ipvsadm(8) -L -c and set by --set), the
// per-worker table shards with incremental expiry, eviction and dumps, and
// the persistence templates the workers share.
//
// A [Shard] has exactly one writer, the dataplane worker that owns it; it
// has no locks and is not safe for concurrent use. Both directions of a
// connection are keyed in the same shard (see DESIGN.md, "Steering"), so a
// worker finds a reply without talking to any other.
//
// Layout. A shard is a slab of entries (48 bytes each for IPv4, 96 for
// IPv6: [Entry] is generic in the address type), two 32-bit words beside
// each entry for what only some connections need ([Shard.Aux]), and a bucketed
// cuckoo hash index of 32-bit slots over them, two buckets of eight slots
// per key. Keys are not stored: a connection's forward and reply keys are
// derived from its entry, which is what keeps an IPv4 connection at 65.4
// bytes (48 + 8 + 9.4 for the index at its fullest). The arrays are
// allocated at their full size when the shard is made, made resident at
// once (on transparent huge pages where the kernel allows), and never grow
// or rehash. Nothing in a shard holds a Go pointer, so a table of millions of
// connections costs the garbage collector nothing to scan.
//
// Batches. A lookup in a table of millions waits for two cache misses,
// the index bucket's and then the entry's. [Shard.Warm] loads what the
// lookups of a batch of keys will read, with the misses of all the keys
// in flight at once, so that the lookups that follow find it in the
// cache; the dataplane warms every batch it reads once its shard is too
// large for the caches.
//
// Full tables. When a shard is full, [Shard.Evict] removes the entry that
// expires first among a random sample, considering only entries that are
// not established TCP connections: under a SYN flood the oldest half-open
// entries make room for new connections, and established ones are never
// touched. If the sample holds nothing evictable, the new connection is
// refused.
//
// Times are int64 nanoseconds of a monotonic clock the caller chooses; the
// package never reads a clock itself.
package conntrack
