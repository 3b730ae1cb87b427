// Command bench owns the forwarding benchmark of gvs: it measures how many
// 64-byte UDP packets per second gvsd forwards in DR and in NAT mode, and
// the Linux kernel's own forwarding with nftables DNAT (nft(8)) as the
// baseline, on the lab topology of package lab with a traffic generator on
// the LAN. Frames are RFC 894 Ethernet, RFC 791 IPv4, RFC 768 UDP; the
// generator is trafgen(8) from netsniff-ng, or, when it is not installed
// (or with -generator go), a Go generator on the dataplane's AF_PACKET
// link (packet(7)); the report says which.
//
//	sudo go run ./integration/bench [-duration 5s] [-runs 3] [-json] [-keep] [-prefix gvsbench]
//	                                [-configs dr,nat,kernel] [-flows 1024] [-warmup 1s]
//	                                [-generator auto|trafgen|go] [-gvsd BIN] [-perf DIR]
//
// In one run it builds the lab (namespaces PREFIX-*, with the generator
// host gen), then for each configuration runs the generator -runs times
// for -warmup plus -duration, reads the interface counters at both ends of
// the -duration interval, and prints the medians: generator pps (its eth0
// tx_packets), director rx pps (the director's eth0 rx_packets), director
// tx pps (rx_packets of the bridge port facing it), forwarded pps (the sum
// of the real servers' eth0 rx_packets), loss, the director CPU's use from
// /proc/stat, and the ratios gvsd-dr / kernel-dnat (target 1.5x) and
// gvsd-nat / kernel-dnat (target 1.2x). -json prints the same as JSON. It
// tears everything down on exit, on Ctrl-C and on failure (gvsd and the
// generator also get a signal if the bench itself is killed); every wait
// is bounded. The exit status says whether the benchmark ran, not whether
// the targets were met.
//
// The configurations, one after another on the same lab:
//
//	gvsd-dr      gvsd, workers = 1, udp VIP:53 rr over rs1 and rs2, DR; the
//	             reals hold the VIP on lo with arp_ignore=1, arp_announce=2
//	gvsd-nat     the same in NAT mode (VIP:53 -> RIP:53); the reals' default
//	             route points at the director
//	kernel-dnat  no gvsd: table ip gvsbench, chain prerouting type nat,
//	             ip daddr VIP udp dport 53 dnat to numgen inc mod 2 map
//	             {0: rs1, 1: rs2}; ip_forward=1, rp_filter=0, send_redirects=0
//	             (frames leave by the interface they came in on); the
//	             reals route via the director; the table is removed after
//
// What runs where (2 CPUs; the director gets exactly one in every
// configuration):
//
//	CPU 0  the generator: trafgen -P 1, which pins its one worker to CPU 0
//	       itself, or the Go generator under taskset -c 0; and the LAN side
//	       of its frames, in CPU 0's softirq.
//	CPU 1  the director: gvsd under taskset -c 1 (GOMAXPROCS follows), and
//	       the kernel's receive processing of the director's eth0, moved
//	       there by RPS (rx-*/rps_cpus = 2, written through ip netns exec,
//	       which mounts the namespace's own sysfs): AF_PACKET taps and
//	       gvsd's nftables ingress drop, or in the baseline conntrack, DNAT
//	       and IP forwarding. Also, equally in every configuration, the
//	       LAN side of the director's output: the bridge and the reals'
//	       ingress.
//
// The plumbing that keeps veth from distorting the comparison, each piece
// explained where it is set up (bench.go, prepare): scatter-gather off on
// the generator's eth0 so frames reach the director linear, as a NIC
// driver delivers them; an nftables netdev dup on the LAN side that hands
// the director a copy of each generator frame, so a loaded director loses
// frames instead of pushing back on the generator's socket (trafgen gives
// up on EAGAIN); GRO on the bridge port facing the director and on the
// reals' eth0, so the director's output is received through per-device
// rings instead of queueing behind its own input in CPU 1's backlog;
// static bridge FDB entries, so nothing is flooded; and an nftables
// ingress drop on the reals after rx_packets counted the frame, so nothing
// answers. /proc/stat is machine-wide: other load on the machine shows in
// the CPU columns and in the rates; -perf DIR records perf(1) profiles of
// CPU 1 to see where the time goes.
package main
