// Command gvs-realserver prepares a Linux host as an LVS real server for a
// gvs director and undoes it on exit: each VIP as a /32 on lo, the ARP and
// reverse-path sysctls (ip-sysctl(7): arp_ignore=1, arp_announce=2,
// rp_filter=0) and, in TUN mode, IP-in-IP decapsulation (RFC 2003) in
// userspace through a TUN device.
//
// Usage:
//
//	gvs-realserver -vip VIP[,VIP...] -mode dr|tun [-interface IF]
//
// It runs until SIGINT or SIGTERM. Bad flags exit with status 2, a failure
// to set up or tear down with status 1.
package main
