// Command bench owns the benchmarks of gvs on the lab topology of package
// lab. Two suites:
//
//   - -suite pps (the default): how many 64-byte UDP packets per second
//     gvsd forwards in DR and in NAT mode, against the Linux kernel's own
//     forwarding with nftables DNAT (nft(8)), from a traffic generator on
//     the LAN.
//   - -suite users: what users would measure from the client over TCP
//     (RFC 9293) and HTTP/1.1 (RFC 9112): one-connection latency,
//     keep-alive requests/s, new connections/s and bulk Gbit/s (wrk(1) and
//     iperf3(1) against nginx(8) on the real servers), through every gvsd
//     mode, nftables DNAT and HAProxy (haproxy(1)), plus the pps suite's
//     figure. See "The users suite" below.
//
// Frames are RFC 894 Ethernet, RFC 791 IPv4, RFC 768 UDP (for the IPv6
// twins dr6, nat6 and kernel6: RFC 8200 IPv6, the same datagram in an
// 80-byte frame to [fd00:20::100]:53 from fd00:20::200-203); the
// generator is trafgen(8) from netsniff-ng, or, when it is not installed
// (or with -generator go), a Go generator on the dataplane's AF_PACKET
// link (packet(7)); the report says which.
//
//	sudo go run ./integration/bench [-duration 5s] [-runs 3] [-json] [-keep] [-prefix gvsbench]
//	                                [-configs dr,nat,kernel[,dr6,nat6,kernel6]] [-flows 1024] [-warmup 1s]
//	                                [-generator auto|trafgen|go] [-gvsd BIN] [-perf DIR]
//	                                [-zero-loss [-zero-loss-steps 7] [-zero-loss-low 10kpps] [-zero-loss-quantum 100us]]
//	                                [-pin=false]
//
// In one run it builds the lab (namespaces PREFIX-*, with the generator
// host gen), then for each configuration runs the generator -runs times
// for -warmup plus -duration, reads the interface counters at both ends of
// the -duration interval, and prints the medians: generator pps (its eth0
// tx_packets), director rx pps (the director's eth0 rx_packets), director
// tx pps (rx_packets of the bridge port facing it), forwarded pps (the sum
// of the real servers' eth0 rx_packets), loss, the director CPU's use from
// /proc/stat, and the ratios gvsd-dr / kernel-dnat (target 1.5x) and
// gvsd-nat / kernel-dnat (target 1.2x), and of the IPv6 twins against
// kernel-dnat6 (nftables DNAT in a table ip6, net.ipv6.conf.all.forwarding
// = 1; the lab gets IPv6 when a twin is measured). -json prints the same as JSON. It
// tears everything down on exit, on Ctrl-C and on failure (gvsd and the
// generator also get a signal if the bench itself is killed); every wait
// is bounded. The exit status says whether the benchmark ran, not whether
// the targets were met.
//
// # Zero-loss rate
//
// -zero-loss adds, for each configuration after its -runs saturation
// runs, the zero-loss rate in the manner of RFC 2544 (section 26.1,
// throughput): the highest offered rate at which at most 0.1% of the
// generator's frames reach no real server (loss as above: the
// generator's eth0 tx_packets against the reals' rx_packets over the
// measured interval). A binary search runs between -zero-loss-low
// (10 kpps) and the saturation runs' median generator pps, which lost
// more: -zero-loss-steps (7) steps, each a fresh run, generator started
// anew, -warmup then -duration measured, at the middle of what is left;
// a step that passes moves the bottom up, one that loses more moves the
// top down. On a loss curve that only grows with the rate the answer is
// within (saturation - low)/2^steps below the true one; with noise it is
// still the highest rate that passed, below every rate that failed. If no
// step passes, the low bound itself is measured (one more step) and, if
// it loses too, reported as failed ("< 10,000 (failed)"). If the
// saturation runs lost at most 0.1% themselves, nothing is searched and
// the figure is the generator's full rate, marked "*" (the generator, not
// the director, set it). With -duration 3s and the default -warmup, a
// configuration takes about 7 × 4.5 s of search after its runs.
//
// The steps use the Go generator paced at the rate asked, whatever
// -generator says: trafgen's -b RATEpps sends each second's frames in one
// burst at full speed and sleeps the rest of the second (its shaper counts
// frames per second; seen here: 100,000 frames in under 100 ms, then
// nothing), which is no offered rate. The paced generator schedules frame
// k at k/rate after its start and, every -zero-loss-quantum (100 µs),
// sends the frames due by then in one sendmmsg(2): a steady rate in
// batches of rate × 100 µs, as a NIC that coalesces its interrupts hands
// them to the kernel, and one RPS IPI per batch, not per frame. Between
// batches it spins, yielding its CPU (sched_yield(2)) to anything
// runnable there, such as ksoftirqd with the kernel's work on its frames;
// it does not sleep, since in a VM an idle vCPU can take milliseconds to
// wake (with nanosleep(2) it fell 0.5% short at 100 kpps, 2% at
// 300 kpps). -zero-loss-quantum 0 sends each frame when it is due. A
// generator that falls behind by more than two batches (128 frames) skips
// the frames it missed rather than sending them in a burst (its log
// counts them). The offered rate in the report is what its eth0 sent, as
// in every sample, and the answer is the passing step with the highest
// offered rate; when the generator sent less than 98% of what was asked
// there, the figure is marked "*". The report gives the zero-loss pps of
// each configuration as a column, its steps (pps asked, ok or lossy,
// loss) and the ratio gvsd / kernel of the zero-loss rates beside the
// saturation ratio; -json gives every step's sample.
//
// At 0.1% a 3 s step at 250 kpps fails on 750 frames, fewer than one
// full receive backlog (net.core.netdev_max_backlog, 1000): one stall of
// a few milliseconds of the CPU that should drain it is enough. In a VM
// a vCPU that went idle can take that long to wake up, so an idle-ish
// director (the kernel's forwarding at a fraction of its capacity) can
// fail where a busy one (gvsd, which keeps its CPU awake) passes; the
// step samples give each CPU's use to tell the two apart.
//
// # Unpinned
//
// -pin=false places nothing, to see what the scheduler and the kernel's
// defaults make of it: gvsd and the generator run without taskset (trafgen
// -P 1 pins its worker to CPU 0 itself, with no option against it, so the
// bench resets the worker's affinity to its own, every CPU, as soon as it
// sends), the director's eth0 keeps rps_cpus = 0 and no threaded NAPI, so
// its receive processing runs on the CPU that sends it the frame (the
// generator's, wherever that is). Everything else is as pinned (the
// scatter-gather, dup, GRO and FDB plumbing below, workers = 1). The report
// says so in its header and gives both CPUs' use; -napi, -lan-napi and
// -no-rps are refused with it. The zero value of Options.NoPin pins, as the
// users suite's row 5 does. On veth that receive processing runs inside
// the generator's own sends, so a director that cannot keep up slows the
// generator down instead of losing frames: unpinned, the saturation runs
// here lose nothing and every zero-loss figure is the generator's ("*").
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
// What runs where, pinned (the default; 2 CPUs; the director gets exactly
// one in every configuration):
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
//
// # The users suite
//
//	sudo go run ./integration/bench -suite users [-duration 5s] [-configs direct,kernel-dnat,...] [-json]
//	                                [-ipv6] [-pin] [-pps=false] [-flood RATE] [-lab-offloads on|off] [-keep]
//	                                [-prefix gvsbench] [-gvsd BIN] [-realserver BIN] [-generator auto|trafgen|go]
//
// One run builds one lab (every veth with the kernel's default offloads;
// -lab-offloads off turns them all off, lab.Options.OffloadsOff), starts
// nginx (generated config in the run's temporary directory: daemon off,
// one worker, listen 0.0.0.0:80, a 100-byte body from memory,
// keepalive_requests 100000000) and iperf3 -s on rs1 and rs2, then
// measures the configurations one after another:
//
//	direct       no balancer: the client talks to rs1; the router routes
//	kernel-dnat  nftables DNAT on the director: VIP:80 numgen inc over rs1,
//	             rs2 (as the pps suite's kernel-dnat), VIP:5201 jhash of the
//	             client address; VIP/32 on the director's eth0 (the router
//	             finds it by ARP), ip_forward=1, send_redirects=0, the reals
//	             route via the director
//	haproxy      HAProxy mode tcp on the director bound to VIP:80 (balance
//	             roundrobin) and VIP:5201 (balance source); VIP/32 on eth0
//	gvs-dr, gvs-tun, gvs-nat, gvs-fullnat
//	             gvsd (built from ./cmd/gvsd) with TCP services VIP:80 and
//	             VIP:5201, rr over the reals in that mode; gvs-realserver
//	             -mode dr|tun on the reals for DR and TUN, the reals' default
//	             route via the director for NAT
//	gvs-nat-synproxy, gvs-fullnat-synproxy
//	             gvs-nat and gvs-fullnat with synproxy = true on VIP:80: the
//	             director answers SYNs with SYN cookies and opens the
//	             connection to a real only for a client's ACK that carries a
//	             good one. Not in the default -configs unless -flood is given
//	direct6, kernel-dnat6, haproxy6, gvs-dr6, gvs-tun6, gvs-nat6, gvs-fullnat6,
//	gvs-nat-synproxy6, gvs-fullnat-synproxy6
//	             the IPv6 twins (UserConfig.IPv6): the same against the IPv6
//	             VIP [fd00:20::100] (rs1's [fd00:20::11] for direct6) and the
//	             reals' IPv6 addresses on a lab with IPv6 beside IPv4
//	             (lab.Options.IPv6): nftables DNAT in a table of the ip6
//	             family with net.ipv6.conf.all.forwarding=1, HAProxy bound to
//	             the IPv6 VIP, IPv6 services in gvsd (a twin gvsd -check
//	             refuses is skipped with its reason). -ipv6 measures each
//	             configuration's twin right after it
//
// iperf3 opens two connections per test (control and data) which must
// reach the same real: VIP:5201 is balanced by client address in every
// configuration (IPVS-style persistence in gvsd, balance source, jhash).
//
// Before the rows, one GET must come back through the configuration
// within 5 s; if it does not, rows 1-4 are reported as failed with the
// reason and the next configuration runs. The rows, from the client:
//
//  1. latency: wrk -t1 -c1 --latency (HTTP keep-alive) for -duration: the
//     50% and 99% of its Latency Distribution
//  2. keep-alive req/s: wrk -t2 -c32
//  3. new connections/s: wrk -t2 -c32 -H 'Connection: close'; then, with
//     -flood RATE only (e.g. 100000pps, 100kpps; packets per second), new
//     connections/s under a SYN flood: the same again while
//     trafgen(8) (netsniff-ng; without it the row is skipped with a note)
//     sends spoofed TCP SYNs from the client to VIP:80 (rs1:80 for
//     direct) at RATE: sources 198.18.x.y with random ports, IDs and
//     sequence numbers, the frame of scenario.SYNFloodTrafgen that the
//     integration tests TestSYNFlood and TestSYNProxyFlood send; for an
//     IPv6 twin, IPv6 SYNs to [VIP6]:80 from 2001:2::/48 (RFC 5180's
//     benchmarking space) with the 80 bits after it at random.
//     trafgen -P 1 (its one worker on CPU 0) starts 1 s before wrk and is
//     stopped (SIGINT, killed after 10 s; under timeout(1) in case the
//     bench dies) as soon as wrk ends. Meanwhile the router's rp_filter
//     (all, eth0 and eth1) is 0, or it would drop sources it has no route
//     back to; the answers to the flood die at the router for the same
//     reason. The notes give what trafgen sent, and the table names the
//     configurations whose flood fell short of 90% of RATE: trafgen's CPU
//     also runs the kernel's processing of the frames it sends (veth
//     hands a frame on in the sender's softirq), so a path that costs the
//     kernel more per SYN (conntrack and DNAT in kernel-dnat) slows the
//     flood down. 1 s passes before row 4
//  4. bulk TCP Gbit/s: iperf3 -c -t -duration -J, end.sum_received (in DR
//     and TUN the real answers the client directly)
//  5. LAN UDP pps of gvs-dr, gvs-nat and kernel-dnat (and their IPv6
//     twins, with the pps suite's IPv6 frames): after rows 1-4 of
//     every configuration, the pps suite itself (its prepare and measure,
//     one run, its own gvsd with workers = 1 pinned to CPU 1) on the same
//     lab; -pps=false leaves it out
//
// wrk and iperf3 take whole seconds: -duration is rounded up. The table
// gives rows × configurations ("!" marks a figure whose tool counted
// errors), then each gvs configuration against kernel-dnat and haproxy:
// the difference in µs of p50 and p99 latency, the ratio of p99s and the
// ratio of every rate. With -flood that includes the row under the flood
// against the baseline's, and each configuration's "kept": its new
// connections/s under the flood as a share of its own without it, given
// for the gvs configurations in their comparisons and for direct,
// kernel-dnat and haproxy on a line of their own. With IPv6 twins the
// table has an IPv4 block and an IPv6 block whose columns line up, the gvs
// twins are set against kernel-dnat6 and haproxy6, and a last table gives
// every twin's IPv6 / IPv4 ratio of each figure and whether all are
// within 10% (ipv6Tolerance: latency at most 1.10×, rates at least
// 0.90×), the SYN flood and LAN UDP pps rows included when measured. -json prints the same
// with the raw wrk and iperf3 results and gvsd's final counters; -keep
// keeps the directory with every config, log and raw tool output. A tool
// that is not installed skips what needs it with the Debian package to
// install (wrk, nginx-light, haproxy, iperf3, netsniff-ng for trafgen).
// Every wait is bounded, every client tool is killed -duration + 30 s
// after it started, and everything is torn down on exit, on Ctrl-C and on
// failure. The exit status is 1 if a configuration could not be set up;
// one that was set up but did not answer is a result.
//
// Nothing is pinned unless -pin asks: users do not pin. On a machine with
// few CPUs the one-connection latency then depends on where the scheduler
// puts wrk and nginx: on one CPU a request is answered by a direct switch
// (about 10 µs here), on two each hop is a cross-CPU wake-up (an IPI,
// costly in a VM; 60-100 µs), and a run can move between the two. -pin
// puts wrk and iperf3 -c on CPU 0 and everything that answers them (gvsd
// with workers = 1, haproxy, nginx, iperf3 -s) on CPU 1, so every
// configuration crosses between the same two CPUs.
package main
