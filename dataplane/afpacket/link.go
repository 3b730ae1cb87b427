package afpacket

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/net/bpf"
)

// Config describes one AF_PACKET link. The zero value of every field but
// Interface picks the default below.
type Config struct {
	Interface string // the interface to capture on and send from; required

	// BlockSize is the size of one TPACKET_V3 RX ring block: a multiple of
	// the page size, and the largest frame the ring can hold (minus 48
	// bytes of block header). Default DefaultBlockSize.
	BlockSize int
	// NumBlocks is the number of RX ring blocks. Default DefaultNumBlocks.
	NumBlocks int
	// FrameSize is tp_frame_size: a multiple of 16 that, with TPACKET_V3,
	// only sets how many frame slots the kernel counts per block (V3 packs
	// frames by their real size). Default DefaultFrameSize.
	FrameSize int
	// BlockTimeout is retire_blk_tov: how long the kernel waits before it
	// hands a partly filled block to userspace, so it bounds the latency a
	// frame gains in the ring when traffic is light. Millisecond
	// granularity. Default DefaultBlockTimeout.
	BlockTimeout time.Duration

	// FanoutGroup joins the socket to this PACKET_FANOUT group (ids are per
	// network namespace); 0 means no fanout. Members are numbered in the
	// order they join, which is the index Steering returns, so open the
	// workers' links in worker order. When a member leaves (Close, or the
	// interface going down) the kernel moves the last member into its
	// place, so after that reopen the whole group.
	FanoutGroup uint16
	// Steering is the PACKET_FANOUT_CBPF program (see SteeringProgram).
	// Nil with FanoutGroup != 0 means PACKET_FANOUT_HASH.
	Steering []bpf.RawInstruction
	// Filter is the socket filter (see FilterProgram), attached before the
	// socket is bound so no unfiltered frame reaches the ring. Nil accepts
	// every frame that is not our own outgoing one.
	Filter []bpf.RawInstruction

	// SYNBlocks, when above 0, gives the link a second, receive-only
	// socket whose ring (of that many blocks) takes the TCP segments that
	// open connections (SYN without ACK or RST), which Read takes only
	// once the first ring is empty: a SYN flood then fills, and
	// overflows, the SYN ring alone, while the frames of established
	// connections keep their own ring and are never dropped for it. It
	// needs a FanoutGroup and a program from SteeringProgramSYN, which
	// sends worker w's frames to fanout member 2w and its SYNs to member
	// 2w+1: the link joins the group with its main socket, then with its
	// SYN socket, so open the workers' links in worker order.
	SYNBlocks int

	// TxMode picks how Write hands frames to the kernel. The zero value
	// picks DefaultTxMode.
	TxMode TxMode
	// KeepQdisc makes transmitted frames go through the interface's queueing
	// discipline. By default the link sets PACKET_QDISC_BYPASS: frames go
	// straight to the driver, like a switch's, which is what a forwarding
	// dataplane wants (no tc shaping applies, and a full driver queue drops
	// the frame, counted in Stats.TxErrors).
	KeepQdisc bool
}

// Defaults for Config, and how they were chosen.
const (
	// DefaultBlockSize (1 MiB) holds about 6,500 64-byte or 650 1500-byte
	// frames, so handing a block back and forth (one poll wakeup, two
	// atomic stores) is amortised over hundreds of frames, and a GRO
	// super-frame (up to 64 KiB) fits with room to spare.
	DefaultBlockSize = 1 << 20
	// DefaultNumBlocks (16, so a 16 MiB ring per worker) buffers about 13 ms
	// of 10 Gb/s line rate: enough to ride out a Go GC assist or a
	// scheduling hiccup without drops, small enough for one ring per CPU.
	DefaultNumBlocks = 16
	// DefaultFrameSize is the customary tp_frame_size; with TPACKET_V3 it
	// does not limit the frame length.
	DefaultFrameSize = 2048
	// DefaultBlockTimeout (2 ms) bounds the latency a lone frame waits in a
	// partly filled block; at high rates blocks fill long before it fires.
	DefaultBlockTimeout = 2 * time.Millisecond
)

// TxMode is how Write hands frames to the kernel.
type TxMode int

const (
	// TxDefault is the zero value: use DefaultTxMode.
	TxDefault TxMode = iota
	// TxSendmmsg sends a batch with one sendmmsg(2) on the link's socket.
	TxSendmmsg
	// TxRing copies a batch into a PACKET_TX_RING and kicks it with one
	// send(2) (Documentation/networking/packet_mmap.rst, "TX ring").
	TxRing
)

// DefaultTxMode is the TX mode picked for TxDefault: sendmmsg, because it
// was the faster one. BenchmarkWrite (batches of 64 frames over a veth pair,
// PACKET_QDISC_BYPASS on, 2-vCPU VM shared with other jobs, kernel 6.18;
// range of 4 runs):
//
//	                64-byte frames       1514-byte frames
//	TxSendmmsg      1.81-2.04 Mpps       1.70-1.92 Mpps
//	TxRing          1.57-1.70 Mpps       0.90-1.48 Mpps
//
// The ring saves the copy into the kernel but pays per frame for page
// references, a completion callback and a paged skb that the receiver must
// pull headers out of; for short frames the copy is cheaper than all that.
// Keeping the qdisc made no measurable difference on veth (its qdisc is
// noqueue). Re-measure on real NICs before changing this.
const DefaultTxMode = TxSendmmsg

func (m TxMode) String() string {
	switch m {
	case TxDefault:
		return "default"
	case TxSendmmsg:
		return "sendmmsg"
	case TxRing:
		return "ring"
	}
	return fmt.Sprintf("TxMode(%d)", int(m))
}

// Stats are a link's cumulative counters.
type Stats struct {
	// Packets, Drops and FreezeQueue come from PACKET_STATISTICS
	// (tpacket_stats_v3), which the kernel resets on every read; the link
	// accumulates them. Packets counts frames the filter accepted,
	// including the dropped ones; Drops counts frames lost because the ring
	// was full; FreezeQueue counts the times the ring filled up.
	Packets, Drops, FreezeQueue uint64
	// Truncated counts accepted frames Read skipped because they were
	// captured incompletely (tp_snaplen < tp_len) or did not fit the
	// caller's buffer.
	Truncated uint64
	// TxPackets counts frames Write handed to the kernel; TxErrors counts
	// frames it could not (too short, too long, rejected or dropped by the
	// kernel, or no room in the TX ring).
	TxPackets, TxErrors uint64
	// SYNPackets and SYNDrops are Packets and Drops of the SYN ring (see
	// Config.SYNBlocks): under a SYN flood the drops are here, and Drops
	// stays 0.
	SYNPackets, SYNDrops uint64
}

// withDefaults returns cfg with zero fields replaced by the defaults, or an
// error naming every invalid field.
func (cfg Config) withDefaults(pageSize int) (Config, error) {
	if cfg.BlockSize == 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.NumBlocks == 0 {
		cfg.NumBlocks = DefaultNumBlocks
	}
	if cfg.FrameSize == 0 {
		cfg.FrameSize = DefaultFrameSize
	}
	if cfg.BlockTimeout == 0 {
		cfg.BlockTimeout = DefaultBlockTimeout
	}
	if cfg.TxMode == TxDefault {
		cfg.TxMode = DefaultTxMode
	}
	var errs []string
	if cfg.Interface == "" {
		errs = append(errs, "no interface")
	}
	if cfg.BlockSize < 0 || cfg.BlockSize%pageSize != 0 || cfg.BlockSize > 1<<30 {
		errs = append(errs, fmt.Sprintf("block size %d is not a multiple of the page size %d up to 1 GiB", cfg.BlockSize, pageSize))
	}
	if cfg.NumBlocks < 0 || cfg.NumBlocks > 1<<16 {
		errs = append(errs, fmt.Sprintf("%d blocks: want 1 to 65536", cfg.NumBlocks))
	}
	if cfg.FrameSize < tpacket3HdrLen || cfg.FrameSize%tpacketAlignment != 0 || cfg.FrameSize > cfg.BlockSize {
		errs = append(errs, fmt.Sprintf("frame size %d is not a multiple of %d between %d and the block size", cfg.FrameSize, tpacketAlignment, tpacket3HdrLen))
	}
	if cfg.BlockTimeout < time.Millisecond || cfg.BlockTimeout > time.Minute {
		errs = append(errs, fmt.Sprintf("block timeout %v: want 1ms to 1m", cfg.BlockTimeout))
	}
	if cfg.TxMode != TxSendmmsg && cfg.TxMode != TxRing {
		errs = append(errs, fmt.Sprintf("unknown %v", cfg.TxMode))
	}
	if cfg.Steering != nil && cfg.FanoutGroup == 0 {
		errs = append(errs, "steering program without a fanout group")
	}
	if cfg.SYNBlocks < 0 || cfg.SYNBlocks > 1<<16 {
		errs = append(errs, fmt.Sprintf("%d SYN ring blocks: want 0 to 65536", cfg.SYNBlocks))
	}
	if cfg.SYNBlocks > 0 && (cfg.FanoutGroup == 0 || cfg.Steering == nil) {
		errs = append(errs, "a SYN ring needs a fanout group and a steering program")
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("afpacket: config for %q: %s", cfg.Interface, strings.Join(errs, "; "))
	}
	return cfg, nil
}

// TPACKET_V3 layout constants shared by the config checks and the ring code
// (<linux/if_packet.h>).
const (
	tpacketAlignment = 16 // TPACKET_ALIGNMENT
	tpacket3HdrLen   = 68 // TPACKET3_HDRLEN: TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct sockaddr_ll)
)
