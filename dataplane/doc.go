// Package dataplane owns the packet path of gvs: the workers that read
// batches of frames from a link, classify them against the published
// [Table] snapshot and the worker's own connection-table shard, schedule new
// connections, rewrite each frame for its LVS forwarding method (DR, TUN,
// NAT, FULLNAT; see ipvsadm(8) and RFC 2003 for IPIP) and write the batch
// back out, counting a verdict for every frame. For a service that asks for
// it, the workers also proxy TCP handshakes with SYN cookies (RFC 4987
// section 3.6; synproxy.go), so a real sees only clients that completed
// one. IPv6 (RFC 8200) services are forwarded in DR, NAT and FULLNAT
// beside the IPv4 ones, from a second shard per worker (worker6.go,
// fullnat6.go), with the SYN proxy and the PROXY protocol, and ICMPv6
// errors (RFC 4443) about their connections are relayed.
//
// Nothing here allocates, locks or logs per packet. Configuration arrives
// only as an immutable *Table behind an atomic pointer, loaded once per
// batch; a nil table means "no services".
package dataplane
