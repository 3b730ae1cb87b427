// Package afpacket owns the dataplane's AF_PACKET link (packet(7), and the
// kernel's Documentation/networking/packet_mmap.rst): a TPACKET_V2 RX ring,
// batched TX (sendmmsg(2) or a PACKET_TX_RING), a virtio_net_hdr on every
// frame each way (PACKET_VNET_HDR), PACKET_FANOUT across workers with
// classic-BPF steering, and the classic-BPF socket filter generated from the
// configuration (Documentation/networking/filter.rst).
//
// The RX ring is TPACKET_V2, one slot per frame, because the kernel wakes a
// reader as each frame lands: a lone frame is read within microseconds,
// where TPACKET_V3 hands over whole blocks and makes it wait for the block
// timeout. Frames larger than a slot (GRO and TSO super-frames) come whole
// through the copy the kernel queues on the socket (PACKET_COPY_THRESH).
// The virtio_net_hdr carries the offloads (dataplane/header.Offload): a
// partial checksum or a GSO super-frame is read as such and handed back to
// the kernel as such, so the interface keeps its offloads.
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
