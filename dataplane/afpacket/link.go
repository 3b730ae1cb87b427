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

	// BlockSize and NumBlocks size the RX ring: NumBlocks blocks of
	// BlockSize bytes, the units in which the kernel allocates ring
	// memory. BlockSize is a multiple of the page size. The ring holds
	// one frame per slot, BlockSize/slot slots per block, where the slot
	// (tp_frame_size) is chosen from the interface MTU when the link
	// opens so that a full-size frame fits: 90 bytes of slot header,
	// virtio_net_hdr and link header, then the MTU, rounded up to 16
	// (1600 bytes at MTU 1500). A block must hold at least one slot.
	// Frames larger than a slot (GRO or TSO super-frames, or any frame
	// after the MTU was raised) take the kernel's copy path and still
	// arrive whole. Defaults DefaultBlockSize and DefaultNumBlocks.
	BlockSize int
	NumBlocks int

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
	// socket whose ring (of that many blocks of BlockSize, in 256-byte
	// slots: 4,096 SYNs per MiB) takes the TCP segments that open
	// connections (SYN without ACK or RST), which Read takes only once
	// the first ring is empty: a SYN flood then fills, and overflows, the
	// SYN ring alone, while the frames of established connections keep
	// their own ring and are never dropped for it. It needs a FanoutGroup
	// and a program from SteeringProgramSYN, which sends worker w's frames
	// to fanout member 2w and its SYNs to member 2w+1: the link joins the
	// group with its main socket, then with its SYN socket, so open the
	// workers' links in worker order.
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

	// HoldP makes Read wait for frames in a raw ppoll(2) that the Go
	// runtime does not see as a system call: the goroutine keeps its P
	// (the runtime's processor) while it waits, instead of the runtime's
	// monitor taking the P away after 20 µs and handing it to a spinning
	// thread, and the goroutine taking one back when a frame wakes it.
	// That round trip cost each wakeup two futex calls and a thread
	// switch (see dataplane's Worker). The waiting goroutine then holds a
	// P, so the process needs a P more per link waiting this way than it
	// would run otherwise (raise GOMAXPROCS), and it should have its OS
	// thread to itself (runtime.LockOSThread). A signal (the runtime's
	// preemption, a stop-the-world) ends the wait early: Read returns 0,
	// nil and the caller's next call lets the runtime preempt it.
	HoldP bool

	// BusyPoll is how long Read keeps looking at an empty ring before it
	// sleeps in ppoll(2). A frame that arrives meanwhile is taken without
	// a wakeup; the CPU spins while nothing comes. 0: no spinning.
	BusyPoll time.Duration
}

// Defaults for Config, and how they were chosen.
const (
	// DefaultBlockSize (1 MiB) holds 655 slots at MTU 1500 and leaves
	// 0.05% unused at its end; the kernel allocates each block as one run
	// of pages, or with vmalloc when memory is fragmented.
	DefaultBlockSize = 1 << 20
	// DefaultNumBlocks (16, so a 16 MiB ring per socket: 10,480 slots at
	// MTU 1500) buffers 13 ms of 10 Gb/s line rate in full-size frames
	// and 0.7 ms in minimum-size ones (a slot holds one frame whatever
	// its size): enough to ride out a Go GC assist or a scheduling
	// hiccup, small enough for one ring per CPU.
	DefaultNumBlocks = 16
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
	// Packets and Drops come from PACKET_STATISTICS (struct
	// tpacket_stats), which the kernel resets on every read; the link
	// accumulates them. Packets counts frames the filter accepted,
	// including the dropped ones; Drops counts frames lost because the ring
	// was full (or whose offloads the kernel could not describe in a
	// virtio_net_hdr).
	Packets, Drops uint64
	// Copied counts frames larger than a ring slot (GRO or TSO
	// super-frames, or a frame larger than the MTU the link opened with)
	// that Read took whole from the socket's receive queue, where the
	// kernel puts a copy of such a frame (TP_STATUS_COPY).
	Copied uint64
	// Truncated counts accepted frames Read skipped because they were
	// captured incompletely (tp_snaplen < tp_len: the filter cut them, or
	// the socket's receive buffer had no room for the copy of a frame
	// larger than a slot) or did not fit the caller's buffer.
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
	if cfg.TxMode == TxDefault {
		cfg.TxMode = DefaultTxMode
	}
	var errs []string
	if cfg.Interface == "" {
		errs = append(errs, "no interface")
	}
	if cfg.BlockSize < 0 || cfg.BlockSize%pageSize != 0 || cfg.BlockSize > maxBlockSize {
		errs = append(errs, fmt.Sprintf("block size %d is not a multiple of the page size %d up to 1 GiB", cfg.BlockSize, pageSize))
	}
	if cfg.NumBlocks < 0 || cfg.NumBlocks > maxBlocks {
		errs = append(errs, fmt.Sprintf("%d blocks: want 1 to %d", cfg.NumBlocks, maxBlocks))
	}
	if cfg.TxMode != TxSendmmsg && cfg.TxMode != TxRing {
		errs = append(errs, fmt.Sprintf("unknown %v", cfg.TxMode))
	}
	if cfg.Steering != nil && cfg.FanoutGroup == 0 {
		errs = append(errs, "steering program without a fanout group")
	}
	if cfg.SYNBlocks < 0 || cfg.SYNBlocks > maxBlocks {
		errs = append(errs, fmt.Sprintf("%d SYN ring blocks: want 0 to %d", cfg.SYNBlocks, maxBlocks))
	}
	if cfg.SYNBlocks > 0 && (cfg.FanoutGroup == 0 || cfg.Steering == nil) {
		errs = append(errs, "a SYN ring needs a fanout group and a steering program")
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("afpacket: config for %q: %s", cfg.Interface, strings.Join(errs, "; "))
	}
	return cfg, nil
}

// Bounds of the config checks, far above any useful ring, so that a typo is
// reported before the kernel tries to allocate it.
const (
	maxBlockSize = 1 << 30
	maxBlocks    = 1 << 16
)
