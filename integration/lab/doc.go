// Package lab owns throwaway network-namespace topologies for tests and
// gvsd demo: the client ── router ── LAN bridge ── director / real servers
// picture of DESIGN.md ("Test topology"), built from named namespaces
// (ip-netns(8)), veth pairs (veth(4)) and a bridge, plus traffic helpers that
// work inside them: echo servers, dialers, and an AF_PACKET capture
// (packet(7)) that writes pcap files.
//
// Addressing is fixed and lives only inside namespaces the lab creates:
//
//	client   eth0 10.10.0.2/24, default via 10.10.0.1; with Options.ClientAddrs N
//	         also 10.10.0.3 .. 10.10.0.(1+N)
//	router   eth0 10.10.0.1/24, eth1 10.20.0.1/24, ip_forward=1,
//	         fib_multipath_hash_policy=1 (ECMP by L4 hash)
//	lan      br0, every LAN veth's peer enslaved to it
//	director eth0 10.20.0.2/24,  default via 10.20.0.1
//	directorN eth0 10.20.0.(1+N)/24, default via 10.20.0.1 (N = 2 .. Options.Directors;
//	         director2 with Options.Backup)
//	rsN      eth0 10.20.0.(10+N)/24, default via 10.20.0.1
//	gen      eth0 10.20.0.250/24, default via 10.20.0.1 (only with Options.Generator)
//
// With Options.IPv6 every host also has an IPv6 ULA address whose last
// group reads as its IPv4 address's last byte, all without DAD: client
// fd00:10::2/64 (default via fd00:10::1), router fd00:10::1/64 and
// fd00:20::1/64 (IPv6 forwarding on), directorN fd00:20::(1+N), rsN
// fd00:20::(10+N), gen fd00:20::250, each on the LAN with default via
// fd00:20::1; SetGateway moves chosen reals' IPv6 (or IPv4) default route.
// Router solicitations, router advertisements and autoconfiguration are
// off, and the bridge does no MLD snooping. VIP6 is fd00:20::100.
//
// The VIP (10.20.0.100 by convention) is not configured: gvsd adds it. Every
// veth end keeps the kernel's default offloads (tx checksumming, TSO, GSO,
// GRO), as users' hosts run: taps see partial checksums and GSO frames
// above the 1500-byte MTU. Options.OffloadsOff turns them all off
// (offload.DisableAll), the extra case. Without Options.IPv6, IPv6 is
// disabled so captures hold only the traffic a test makes. Host MAC
// addresses are 02:00 followed by the host's IPv4 address.
//
// Namespace switching is per OS thread: Host.Do runs a function on a locked
// thread inside the host's namespace. Sockets opened there stay in that
// namespace and keep working from any goroutine afterwards.
package lab
