// Package afpacket owns the dataplane's AF_PACKET link (packet(7), and the
// kernel's Documentation/networking/packet_mmap.rst): a TPACKET_V3 RX ring,
// batched TX (sendmmsg(2) or a PACKET_TX_RING), PACKET_FANOUT across workers
// with classic-BPF steering, and the classic-BPF socket filter generated
// from the configuration (Documentation/networking/filter.rst).
//
// The socket is bound with ETH_P_ALL because only those taps run before the
// nftables netdev ingress hook in which gvsd drops the frames it consumes.
// The filter is attached before bind, so no unfiltered frame lands in the
// ring, and the socket ignores frames this host sends (PACKET_IGNORE_OUTGOING,
// PACKET_FANOUT_FLAG_IGNORE_OUTGOING, and a PACKET_OUTGOING test in the
// filter).
//
// Match describes what the dataplane takes; FilterProgram and
// SteeringProgram turn it into programs and run anywhere (they are tested in
// golang.org/x/net/bpf's VM). Link is Linux only; elsewhere Open says
// "unsupported". Read and Write are the only I/O, both batched and
// allocation-free; the caller owns every buffer.
package afpacket
