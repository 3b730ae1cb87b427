// Command gvs-realserver prepares a Linux host as an LVS real server for a
// gvs director and undoes it on exit: each VIP as a /32 on lo, the ARP and
// reverse-path sysctls (ip-sysctl(7): arp_ignore=1, arp_announce=2,
// rp_filter=0) and, in TUN mode, IP-in-IP decapsulation (RFC 2003), and
// IPv6-in-IPv6 (RFC 2473) for IPv6 VIPs, with eBPF in the kernel or in
// userspace through a TUN device.
//
// Usage:
//
//	gvs-realserver -vip VIP[,VIP...] -mode dr|tun [-interface IF]
//	gvs-realserver doctor -vip VIP[,VIP...] -mode dr|tun [-port N[,N...]] [-proto tcp|udp] [-interface IF[,IF...]] [-json]
//
// It runs until SIGINT or SIGTERM. Bad flags exit with status 2, a failure
// to set up or tear down with status 1.
//
// doctor checks the set-up without changing it: the VIP as a /32 on lo,
// arp_ignore, arp_announce and rp_filter, in TUN mode something that
// decapsulates IPIP, and with -port a socket listening on the VIP or
// 0.0.0.0. It prints one line per check with the command that fixes each
// problem, and exits with status 0 when all is well, 1 when a check fails
// and 2 for bad flags.
package main
