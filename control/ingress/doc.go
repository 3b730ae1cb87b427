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
// The table is named TableName ("gvs") and holds one base chain (and the
// chain ext6, below) with a rule for each kind of frame in an
// afpacket.Match, the endpoints in concatenated hash sets:
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
//	ip6 nexthdr {hbh, ip6-opts, ip6-route} jump ext6           extension headers, below
//	ip6 <addr> . meta l4proto . th <port> @vips6|@natreals6 counter   the rest: counted, left to the kernel
//
// The IPv6 rules exist only while the match has IPv6 endpoints. The
// chain ext6 holds the same drops for frames with extension headers, one
// rule per chain of afpacket.ExtensionChains6 (the chains the socket
// filter walks: up to three of hop-by-hop, destination options and
// routing with no segments left, each at most once), followed by TCP,
// UDP or a first fragment's fragment header:
//
//	ip6 nexthdr hbh  exthdr hbh nexthdr ip6-opts  ip6 daddr . exthdr dst nexthdr . th dport @vips6  drop
//
// nftables finds an extension header by its type (exthdr, the kernel's
// ipv6_find_hdr) and th behind the whole chain, so the rules follow the
// chain type by type, which is exact as long as no type repeats; the
// protocol in the key is the last header's Next Header, so a longer
// chain matches no element. What the filter does not take goes through:
// other chains (a fourth header, a type twice, routing with segments
// left, AH), and the last rules count the frames among them for a
// [VIP]:port or from a NAT [RIP]:port (meta l4proto and th find the
// transport header behind any chain). ICMP, ICMPv6 (neighbour
// discovery; errors, which the dataplane relays and the stack gets a copy
// of), ARP, fragments after the first (IPv4 and IPv6) and everything else
// go through.
// Install replaces a table left by a crashed gvsd; Update swaps the
// contents in one transaction, so no frame is ever seen by both the
// dataplane and the stack; Remove deletes the table.
package ingress
