// Package header owns zero-copy views of the Ethernet, IPv4 (RFC 791), IPv6
// with its extension headers (RFC 8200), TCP (RFC 793, with its MSS option:
// RFC 9293 section 3.2), UDP (RFC 768), ICMPv4 (RFC 792) and ICMPv6 (RFC
// 4443) headers, the Internet checksum with its incremental update (RFC
// 1071, RFC 1624) and the IPv4 and IPv6 pseudo-headers, and IPv4-in-IPv4
// encapsulation (RFC 2003).
//
// A view is a named []byte (IPv4, TCP, ...) over a packet buffer the caller
// owns; nothing is copied or allocated. The model is gVisor's
// pkg/tcpip/header: validate a view once with its IsValid method, then use
// the accessors, which do no bounds checks of their own beyond Go's and may
// panic on a slice that IsValid rejected. IsValid itself never panics.
//
// Rewrites that change a checksummed field come as one function that writes
// the field and updates the checksum incrementally (RFC 1624, eqn. 3), for
// example [IPv4.SetSourceWithChecksumUpdate] and
// [TCP.SetDestinationPortWithChecksumUpdate]. A transport checksum also
// covers the IPv4 pseudo-header, so an address rewrite updates both the IPv4
// header and, with UpdateChecksumPseudoHeaderAddress, the TCP or UDP header.
// Over IPv4 a UDP checksum of 0 means "no checksum" and is left alone; a
// computed UDP checksum of 0 is written as 0xFFFF (RFC 768).
//
// Checksum sums are ones-complement 16-bit sums that are not yet complemented,
// as in gVisor: [Checksum] over a whole header that carries a valid checksum
// returns 0xFFFF, and the value to store in a checksum field is the
// complement of the sum over the covered data with that field set to zero.
//
// IPv6 has no header checksum: an address rewrite sets the address
// (IPv6.SetDestination) and updates the transport checksum for the
// pseudo-header (UpdateChecksumPseudoHeaderAddress6 and its partial
// variant); the IPv6 variants of the TCP, UDP and ICMPv6 methods end in 6
// where the IPv4 ones take [4]byte addresses. IPv6.WalkExtensions finds the
// upper-layer header behind hop-by-hop, destination options, routing (with
// no segments left) and fragment headers, and refuses anything else.
//
// The package imports only the standard library.
package header
