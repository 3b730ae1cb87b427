// Package ingress owns the nftables table of family netdev (nft(8),
// "ADDRESS FAMILIES: NETDEV") whose base chain on the ingress hook of the
// director interface drops exactly the frames the gvs dataplane consumes,
// so the kernel does not also answer them.
//
// AF_PACKET is a tap: a packet socket sees a frame and the kernel's own
// stack still receives it. On receive the kernel runs ETH_P_ALL taps
// first, then the netdev ingress hook, then the per-protocol handlers, so
// a drop here hides the frame from the stack but not from the dataplane's
// sockets. Those must bind ETH_P_ALL: sockets bound to ETH_P_IP are
// per-protocol handlers and would run after the drop.
//
// The table is named TableName ("gvs") and holds one chain and three
// concatenated sets, one per kind of afpacket.Endpoint in an
// afpacket.Match:
//
//	set vips     ip daddr . ip protocol . th dport   client packets to VIP:port
//	set natreals ip saddr . ip protocol . th sport   NAT replies from RIP:port
//	set locals   ip daddr . ip protocol . th dport   FULLNAT replies to LIP:lport (port ranges)
//
// ICMP, ARP, fragments after the first and everything else go through.
// Install replaces a table left by a crashed gvsd; Update swaps the
// contents in one transaction, so no frame is ever seen by both the
// dataplane and the stack; Remove deletes the table.
package ingress
