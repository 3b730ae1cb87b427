// Package arpctl owns the ARP and neighbour work of gvs directors and real
// servers: virtual IPs as /32 addresses (IPv6: /128 without duplicate
// address detection), gratuitous ARP announcements (RFC 826 packets sent as
// RFC 5227 section 3 announcements; for IPv6, unsolicited Neighbor
// Advertisements, RFC 4861 section 7.2.6), next-hop MAC resolution from the
// kernel neighbour table or the wire (for IPv6, the kernel's neighbour
// discovery, provoked by an ICMPv6 echo when the table has no entry), and the
// declarative table of ARP and reverse-path sysctls described in the
// kernel's ip-sysctl documentation (arp_ignore, arp_announce, rp_filter).
//
// Every function works in the network namespace of the calling OS thread:
// a caller inside a namespace must hold runtime.LockOSThread for the call.
// The restore func returned by Apply is the exception: it keeps the sysctl
// files open and so writes back into the namespace they were opened in,
// from any thread.
package arpctl
