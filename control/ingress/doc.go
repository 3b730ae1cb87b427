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
// The table is named TableName ("gvs") and holds one base chain with a
// rule for each kind of frame in an afpacket.Match, the endpoints in
// concatenated hash sets:
//
//	ip daddr . ip protocol . th dport @vips      client packets to VIP:port
//	ip saddr . ip protocol . th sport @natreals  NAT replies from RIP:port
//	ip daddr A ip protocol P th dport LO-HI      FULLNAT replies to LIP:lport, a rule per range
//	ip6 daddr . ip6 nexthdr . th dport @vips6    IPv6 client packets to [VIP]:port
//	ip6 saddr . ip6 nexthdr . th sport @natreals6 IPv6 NAT replies from [RIP]:port
//	ip6 daddr A ip6 nexthdr P th dport LO-HI     IPv6 FULLNAT replies to [LIP]:lport, a rule per range
//	ip6 nexthdr 44 ip6 daddr . @nh,320,8 . th dport @vips6     their first fragments,
//	ip6 nexthdr 44 ip6 saddr . @nh,320,8 . th sport @natreals6 by the fragment header's
//	ip6 daddr A ip6 nexthdr 44 @nh,320,8 P th dport LO-HI      Next Header
//
// The IPv6 rules exist only while the match has IPv6 endpoints. They test
// the fixed header's Next Header, so an IPv6 frame with extension headers
// other than a fragment header goes through, as the dataplane leaves it
// too. ICMP, ICMPv6 (neighbour discovery; errors, which the dataplane
// relays and the stack gets a copy of), ARP, fragments after the first
// (IPv4 and IPv6) and everything else go through.
// Install replaces a table left by a crashed gvsd; Update swaps the
// contents in one transaction, so no frame is ever seen by both the
// dataplane and the stack; Remove deletes the table.
package ingress
