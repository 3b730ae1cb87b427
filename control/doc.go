// Package control is the control plane of gvsd: it compiles a validated
// configuration into the dataplane's immutable Table, publishes it, and
// keeps the host in step with it — the AF_PACKET links and their filters,
// the nftables ingress table that takes the dataplane's frames from the
// kernel, the VIPs on the director interface with gratuitous ARP
// (RFC 5227 announcements), and the next-hop MACs of the real servers.
// The semantics are those of ipvsadm(8).
package control
