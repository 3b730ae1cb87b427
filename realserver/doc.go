// Package realserver owns preparing a Linux host as an LVS real server for
// gvs: each VIP as a /32 on lo (an IPv6 VIP as a /128 without DAD, which
// Linux never answers neighbour solicitations for on another interface, so
// no sysctl is needed), the ARP and reverse-path sysctls of ip-sysctl(7)
// (arp_ignore=1, arp_announce=2, rp_filter=0), and, in TUN mode, IP-in-IP
// decapsulation (RFC 2003, IP protocol 4) and, for IPv6 VIPs, IPv6-in-IPv6
// decapsulation (RFC 2473, next header 41) in userspace for kernels
// without the ipip and ip6_tunnel modules, with an eBPF program doing it
// in the kernel where that loads.
//
// Userspace decapsulation reads outer packets from a raw socket
// (raw(7): AF_INET, SOCK_RAW, IPPROTO_IPIP), up to 64 per recvmmsg(2),
// checks that the outer destination is an address of this host and that
// the inner packet is IPv4 to one of the VIPs, and writes the inner
// packet to a TUN device (IFF_TUN|IFF_NO_PI), so the kernel receives it
// as arriving on the tunnel. The TUN device is opened with IFF_VNET_HDR
// and TUNSETOFFLOAD when the kernel takes them: consecutive TCP segments
// of one flow in a batch are then merged, as GRO would, into one write
// of a GSO super-segment (virtio_net_hdr GSO_TCPV4 or GSO_TCPV6 with a
// partial checksum, virtio 1.x section 5.1.6), and other packets carry a
// virtio_net_hdr too, marked DATA_VALID when their TCP checksum was
// verified. Without them, each inner packet is one write. IPv6-in-IPv6
// comes from a raw AF_INET6 socket for next header 41, which hands over
// the inner packet alone (the kernel checked the outer header), read by a
// goroutine of its own and written to the same TUN device, its TCP
// segments merged as IPv4 ones are (GSO_TCPV6). Replies leave by the
// host's normal route, from the VIP. A raw
// socket that takes a packet also keeps the kernel from answering it with
// ICMP protocol unreachable. With a kernel ipip tunnel (tunl0) up as well,
// inner packets would arrive twice: use one or the other.
//
// Run undoes everything it changed when its context ends.
//
// Diagnose, the `gvs-realserver doctor` command, checks the same set-up
// without changing anything and says which ip(8) or sysctl(8) command
// fixes each problem. It also looks for what decapsulates IPIP in TUN mode
// (an ipip device that is up, or a gvs-realserver process found through
// /proc/<pid>/cmdline) and for the service's listening sockets in
// /proc/net/tcp and /proc/net/udp (proc(5)).
package realserver
