package afpacket

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gvs-lb/gvs/dataplane/header"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Tunables of the I/O paths, and how they were chosen.
const (
	// readPollTimeout bounds how long Read waits for a frame: short enough
	// for a worker to notice a new snapshot or a shutdown promptly, long
	// enough that an idle worker wakes only ten times a second.
	readPollTimeout = 100 * time.Millisecond
	// txRingBytes sizes the TX ring: 512 frames of 2 KiB at MTU 1500, room
	// for eight 64-frame batches still in flight in the driver.
	txRingBytes = 1 << 20
	// txMinFrameSize is the smallest TX slot: a 1518-byte frame plus the
	// 32-byte slot header and the 10-byte virtio_net_hdr, rounded up to a
	// power of two. GSO frames longer than a slot cannot use the ring.
	txMinFrameSize = 2048
	// txBlockSize groups TX slots into blocks the kernel allocates as one.
	txBlockSize = 1 << 16
	// mmsgBatchSize is how many frames one sendmmsg(2) call takes; bigger
	// batches are split. Well under UIO_MAXIOV (1024).
	mmsgBatchSize = 256
	// sendTimeout (SO_SNDTIMEO) bounds a blocking send, so Write never
	// hangs when the device stops draining.
	sendTimeout = 100 * time.Millisecond
	// txWaitTimeout is how long Write waits for a TX ring slot when every
	// slot is still in flight, at most maxTxWaits times per Write.
	txWaitTimeout = 10 * time.Millisecond
	maxTxWaits    = 3
	// maxTxRetries bounds how often Write re-kicks frames the kernel could
	// not take (socket buffer or device queue full) before dropping them.
	maxTxRetries = 3
	// maxEINTR bounds retries of a system call interrupted by a signal (the
	// Go runtime preempts goroutines with SIGURG).
	maxEINTR = 8
	// copyRcvBuf is the socket's receive buffer (SO_RCVBUFFORCE), which
	// holds only the copies of frames larger than a ring slot until Read
	// takes them: a GRO or TSO super-frame of up to 64 KiB costs the
	// buffer its truesize, up to about 128 KiB, so 8 MiB holds a burst of
	// at least 64 of them; beyond that the kernel stops copying and the
	// ring slot holds the frame cut short (counted as Truncated).
	copyRcvBuf = 8 << 20
)

// ethPAll is ETH_P_ALL in network byte order, as bind(2) on a packet socket
// wants it. Only ptype_all taps run before the netdev ingress hook where
// gvsd drops the frames it consumes, so binding to ETH_P_IP would see none.
const ethPAll = unix.ETH_P_ALL<<8&0xff00 | unix.ETH_P_ALL>>8

// acceptAll is the filter used when Config.Filter is nil, rejectAll the one
// a fanout member holds until it has joined its group.
var (
	acceptAll = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: Snaplen}}
	rejectAll = []bpf.RawInstruction{{Op: unix.BPF_RET | unix.BPF_K, K: 0}}
)

// Link is one AF_PACKET socket bound to an interface, with a TPACKET_V2 RX
// ring, batched TX and a virtio_net_hdr (PACKET_VNET_HDR) on every frame
// each way. Read, Write, SetFilter, SetSteering and Stats may be
// called from different goroutines; Read and Write are each meant for one
// worker. Close may be called at any time, also while Read blocks.
type Link struct {
	name string
	mode TxMode
	mem  []byte // both rings, one mapping

	closed atomic.Bool

	rxMu      sync.Mutex
	rx        rxRing
	rxCopy    copyReader     // frames larger than a slot (TP_STATUS_COPY)
	rxPoll    [3]unix.PollFd // the socket, the close event and the SYN socket
	nPoll     int            // how many of rxPoll are in use
	holdP     bool           // Config.HoldP
	busyPoll  time.Duration  // Config.BusyPoll
	rxTimeout unix.Timespec

	syn *Link // the SYN ring's receive-only socket, or nil (Config.SYNBlocks)

	txMu      sync.Mutex
	tx        txRing
	txMaxLen  int // the longest frame without GSO the interface sends (MTU, Ethernet header, a VLAN tag)
	mmsg      mmsgBatch
	txPoll    [1]unix.PollFd
	txTimeout unix.Timespec

	// ctlMu guards fd and efd while they are open, and kstats. Close holds
	// rxMu, txMu and ctlMu while it tears down, so holding any one of them
	// with closed still false means fd and the rings are valid.
	ctlMu  sync.Mutex
	fd     int
	efd    int // eventfd that wakes a blocked Read on Close
	kstats Stats

	copied, truncated, txPackets, txErrors atomic.Uint64
}

// Open creates the socket, its rings and filter, binds it to
// cfg.Interface and joins the fanout group, in the order the kernel needs:
// the filter is attached before bind, so no unfiltered frame reaches the
// ring; a fanout member holds a reject-all filter until it has joined, so
// no frame reaches it unsteered.
func Open(cfg Config) (*Link, error) {
	cfg, err := cfg.withDefaults(unix.Getpagesize())
	if err != nil {
		return nil, err
	}
	l := &Link{name: cfg.Interface, mode: cfg.TxMode, fd: -1, efd: -1, holdP: cfg.HoldP, busyPoll: cfg.BusyPoll}
	if err := l.open(cfg, 0); err != nil {
		_ = l.release()
		return nil, fmt.Errorf("afpacket: open %s: %w", cfg.Interface, err)
	}
	if cfg.SYNBlocks > 0 {
		// The SYN socket joins the fanout group right after the main
		// one, so it is member 2w+1 when the main socket is 2w.
		sc := cfg
		sc.NumBlocks, sc.SYNBlocks, sc.TxMode = cfg.SYNBlocks, 0, TxSendmmsg
		syn := &Link{name: cfg.Interface + " (SYN ring)", mode: TxSendmmsg, fd: -1, efd: -1}
		if err := syn.open(sc, synFrameSize); err != nil {
			_ = syn.release()
			_ = l.release()
			return nil, fmt.Errorf("afpacket: open the SYN ring of %s: %w", cfg.Interface, err)
		}
		l.syn = syn
		l.rxPoll[2] = unix.PollFd{Fd: int32(syn.fd), Events: unix.POLLIN}
		l.nPoll = 3
	}
	return l, nil
}

// open sets the socket up. rxFrame is the RX slot size, or 0 for a slot
// that holds a full-MTU frame.
func (l *Link) open(cfg Config, rxFrame int) error {
	// Protocol 0: the socket receives nothing until bind names ETH_P_ALL.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	l.fd = fd
	ifindex, mtu, err := interfaceInfo(fd, cfg.Interface)
	if err != nil {
		return err
	}
	if rxFrame == 0 {
		rxFrame = rxFrameSize(mtu)
	}
	if rxFrame > cfg.BlockSize {
		return fmt.Errorf("block size %d is smaller than one %d-byte frame slot (MTU %d)", cfg.BlockSize, rxFrame, mtu)
	}
	// Both the version and the virtio_net_hdr must be set before the
	// rings are.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fmt.Errorf("set PACKET_VERSION TPACKET_V2: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fmt.Errorf("set PACKET_VNET_HDR: %w", err)
	}
	perBlock := cfg.BlockSize / rxFrame
	rxReq := unix.TpacketReq{
		Block_size: uint32(cfg.BlockSize),
		Block_nr:   uint32(cfg.NumBlocks),
		Frame_size: uint32(rxFrame),
		Frame_nr:   uint32(perBlock * cfg.NumBlocks),
	}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &rxReq); err != nil {
		return fmt.Errorf("set PACKET_RX_RING (%d blocks of %d bytes, %d-byte frames): %w", cfg.NumBlocks, cfg.BlockSize, rxFrame, err)
	}
	// A frame larger than a slot is cut short in the ring, and the whole
	// of it is put on the socket's receive queue (TP_STATUS_COPY) as long
	// as the receive buffer has room.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
		return fmt.Errorf("set PACKET_COPY_THRESH: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, copyRcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, copyRcvBuf) // capped by net.core.rmem_max
	}
	l.rxCopy.init()
	l.txMaxLen = mtu + ethHdrLen + vlanTagLen
	rxSize := cfg.BlockSize * cfg.NumBlocks
	txSize := 0
	if cfg.TxMode == TxRing {
		fs := txMinFrameSize
		for fs < t2HdrLen+vnetHdrLen+l.txMaxLen {
			fs *= 2
		}
		bs := max(fs, txBlockSize)
		nb := max(txRingBytes/bs, 1)
		txReq := unix.TpacketReq{Block_size: uint32(bs), Block_nr: uint32(nb), Frame_size: uint32(fs), Frame_nr: uint32(bs / fs * nb)}
		if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &txReq); err != nil {
			return fmt.Errorf("set PACKET_TX_RING: %w", err)
		}
		txSize = bs * nb
		l.tx = txRing{frameSize: fs, numFrames: bs / fs * nb, maxLen: fs - t2HdrLen - vnetHdrLen}
		// Every frame in flight is charged to the send buffer; make room for
		// the whole ring so a non-blocking kick is not cut short.
		sndbuf := l.tx.numFrames * (fs + 1024)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndbuf); err != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
		}
	} else {
		l.mmsg = newMmsgBatch(mmsgBatchSize)
	}
	mem, err := unix.Mmap(fd, 0, rxSize+txSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap %d bytes of rings: %w", rxSize+txSize, err)
	}
	l.mem = mem
	l.rx = rxRing{mem: mem[:rxSize], blockSize: cfg.BlockSize, frameSize: rxFrame, framesPerBlock: perBlock, numFrames: perBlock * cfg.NumBlocks}
	l.tx.mem = mem[rxSize:]

	filter := cfg.Filter
	if filter == nil {
		filter = acceptAll
	}
	first := filter
	if cfg.FanoutGroup != 0 {
		first = rejectAll
	}
	if err := attachFilter(fd, first); err != nil {
		return err
	}
	// Frames this host sends (ours, or the kernel's) are not for us.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fmt.Errorf("set PACKET_IGNORE_OUTGOING (kernel 4.20 or later): %w", err)
	}
	if !cfg.KeepQdisc {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("set PACKET_QDISC_BYPASS: %w", err)
		}
	}
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("set SO_SNDTIMEO: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifindex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if cfg.FanoutGroup != 0 {
		if err := joinFanout(fd, cfg.FanoutGroup, cfg.Steering); err != nil {
			return err
		}
		if err := attachFilter(fd, filter); err != nil {
			return err
		}
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	l.efd = efd
	l.rxPoll = [3]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(efd), Events: unix.POLLIN}}
	l.nPoll = 2
	l.txPoll = [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	return nil
}

// interfaceInfo looks the interface up in the socket's network namespace.
func interfaceInfo(fd int, name string) (ifindex, mtu int, err error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, 0, fmt.Errorf("interface name: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, 0, fmt.Errorf("interface index: %w", err)
	}
	ifindex = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
		return 0, 0, fmt.Errorf("interface MTU: %w", err)
	}
	return ifindex, int(ifr.Uint32()), nil
}

func sockFprog(prog []bpf.RawInstruction) (*unix.SockFprog, error) {
	if len(prog) == 0 || len(prog) > bpfMaxInsns {
		return nil, fmt.Errorf("bpf program of %d instructions: want 1 to %d", len(prog), bpfMaxInsns)
	}
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}, nil
}

// attachFilter attaches or atomically replaces the socket filter.
func attachFilter(fd int, prog []bpf.RawInstruction) error {
	fp, err := sockFprog(prog)
	if err != nil {
		return fmt.Errorf("socket filter: %w", err)
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, fp); err != nil {
		return fmt.Errorf("attach socket filter: %w", err)
	}
	return nil
}

// joinFanout joins group (the socket must be bound) with the CBPF program,
// or PACKET_FANOUT_HASH when steering is nil.
func joinFanout(fd int, group uint16, steering []bpf.RawInstruction) error {
	mode := unix.PACKET_FANOUT_HASH
	if steering != nil {
		mode = unix.PACKET_FANOUT_CBPF
	}
	arg := func(flags int) int { return int(group) | (mode|flags)<<16 }
	// PACKET_IGNORE_OUTGOING is per socket and does not apply to a fanout
	// group, which has a hook of its own: ask the group to ignore outgoing
	// frames too. Kernels without the flag say EINVAL; the filter's
	// PACKET_OUTGOING test still drops those frames.
	err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg(unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING))
	if errors.Is(err, unix.EINVAL) {
		err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg(0))
	}
	if err != nil {
		return fmt.Errorf("join fanout group %d: %w", group, err)
	}
	if steering != nil {
		return setSteering(fd, steering)
	}
	return nil
}

func setSteering(fd int, prog []bpf.RawInstruction) error {
	fp, err := sockFprog(prog)
	if err != nil {
		return fmt.Errorf("steering program: %w", err)
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, fp); err != nil {
		return fmt.Errorf("set PACKET_FANOUT_DATA: %w", err)
	}
	return nil
}

// TxMode reports the TX mode the link uses (never TxDefault).
func (l *Link) TxMode() TxMode { return l.mode }

// Read copies up to len(bufs) received frames (full Ethernet frames) into
// bufs[i][offset:], sets sizes[i] and, when offs is not nil (it is then as
// long as bufs), offs[i] to the frame's offloads: the virtio_net_hdr the
// kernel wrote in front of it, which tells of a partial checksum
// (CHECKSUM_PARTIAL: OffloadNeedsCsum with CsumStart and CsumOffset) or a
// GSO super-frame (GSOType, GSOSize). It takes only frames already queued,
// and when there are none blocks until one arrives or readPollTimeout (100
// ms) passes, and then returns 0, nil. The frames of the SYN ring, if any,
// come only when the main ring is empty.
//
// A frame larger than a ring slot (a GRO or TSO super-frame of up to 64
// KiB) is read whole from the copy the kernel queued on the socket, with
// one more system call, and counted in Stats().Copied. Frames captured
// incompletely (tp_snaplen < tp_len) or too big for bufs[i][offset:] are
// skipped and counted in Stats().Truncated. After Close it returns
// net.ErrClosed. A pending socket error (ENETDOWN when the interface went
// down) is returned once, wrapped; the link resumes when the interface
// comes back, but the kernel may then renumber fanout members. Read does not
// allocate.
func (l *Link) Read(bufs [][]byte, sizes []int, offs []header.Offload, offset int) (int, error) {
	n, err := l.readRings(bufs, sizes, offs, offset)
	if n > 0 || err != nil {
		return n, err
	}
	if l.busyPoll > 0 && l.spin() {
		return l.readRings(bufs, sizes, offs, offset)
	}
	if err := l.waitReadable(); err != nil {
		return 0, err
	}
	return l.readRings(bufs, sizes, offs, offset)
}

// readRings takes what the main ring holds and fills the rest of bufs from
// the SYN ring, if the link has one. It does not wait.
func (l *Link) readRings(bufs [][]byte, sizes []int, offs []header.Offload, offset int) (int, error) {
	n, err := l.drain(bufs, sizes, offs, offset)
	if err != nil || l.syn == nil || n == len(bufs) {
		return n, err
	}
	var synOffs []header.Offload
	if offs != nil {
		synOffs = offs[n:]
	}
	m, err := l.syn.drain(bufs[n:], sizes[n:], synOffs, offset)
	if err != nil && n+m == 0 {
		return 0, err
	}
	return n + m, nil
}

// drain copies up to len(bufs) frames that are in the ring without
// waiting; see Read.
func (l *Link) drain(bufs [][]byte, sizes []int, offs []header.Offload, offset int) (int, error) {
	l.rxMu.Lock()
	defer l.rxMu.Unlock()
	if l.closed.Load() {
		return 0, net.ErrClosed
	}
	n, copied, truncated := 0, 0, 0
	for n < len(bufs) {
		f, ok := l.rx.next()
		if !ok {
			break
		}
		dst := bufs[n][offset:]
		switch {
		case f.status&tpStatusCopy != 0:
			// The slot holds the frame cut short; the whole frame, with
			// its virtio_net_hdr, waits on the socket's receive queue,
			// in slot order.
			l.rx.release()
			size, errno := l.rxCopy.read(l.fd, dst)
			if errno != 0 || size > len(dst) {
				truncated++
				continue
			}
			sizes[n] = size
			if offs != nil {
				offs[n].Decode(l.rxCopy.vnet[:])
			}
			copied++
			n++
			continue
		case f.frame == nil || uint32(len(f.frame)) < f.wireLen || len(f.frame) > len(dst):
			truncated++
		default:
			sizes[n] = copy(dst, f.frame)
			if offs != nil {
				offs[n].Decode(f.vnet)
			}
			n++
		}
		l.rx.release()
	}
	if copied > 0 {
		l.copied.Add(uint64(copied))
	}
	if truncated > 0 {
		l.truncated.Add(uint64(truncated))
	}
	return n, nil
}

// spin watches the rings for up to Config.BusyPoll and reports whether a
// frame came, or false when the link is closed.
func (l *Link) spin() bool {
	l.rxMu.Lock()
	defer l.rxMu.Unlock()
	syn := l.syn
	if syn != nil {
		syn.rxMu.Lock()
		defer syn.rxMu.Unlock()
	}
	if l.closed.Load() || syn != nil && syn.closed.Load() {
		return false
	}
	deadline := time.Now().Add(l.busyPoll)
	for i := 1; ; i++ {
		if l.rx.ready() || syn != nil && syn.rx.ready() {
			return true
		}
		// A clock read costs more than a look at the ring.
		if i%32 == 0 && (l.closed.Load() || time.Now().After(deadline)) {
			return false
		}
	}
}

// waitReadable polls the socket (and the SYN socket) and the close event
// for up to readPollTimeout.
func (l *Link) waitReadable() error {
	l.rxMu.Lock()
	defer l.rxMu.Unlock()
	if l.closed.Load() {
		return net.ErrClosed
	}
	// ppoll(2) writes the time left back, so reset it every time.
	l.rxTimeout = unix.NsecToTimespec(readPollTimeout.Nanoseconds())
	for range maxEINTR {
		l.rxPoll[0].Revents, l.rxPoll[1].Revents, l.rxPoll[2].Revents = 0, 0, 0
		if l.holdP {
			if err := rawPpoll(l.rxPoll[:l.nPoll], &l.rxTimeout); err == unix.EINTR {
				// Most likely the runtime wants the P: return, so that
				// the caller's next function call lets it take it.
				return nil
			} else if err != 0 {
				return fmt.Errorf("afpacket: read %s: poll: %w", l.name, err)
			}
			break
		}
		_, err := unix.Ppoll(l.rxPoll[:l.nPoll], &l.rxTimeout, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("afpacket: read %s: poll: %w", l.name, err)
		}
		break
	}
	if l.closed.Load() {
		return net.ErrClosed
	}
	if l.rxPoll[0].Revents&unix.POLLERR != 0 {
		// Reading SO_ERROR clears it, so poll stops reporting it.
		serr, err := unix.GetsockoptInt(l.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return fmt.Errorf("afpacket: read %s: get SO_ERROR: %w", l.name, err)
		}
		if serr != 0 {
			return fmt.Errorf("afpacket: read %s: %w", l.name, unix.Errno(serr))
		}
	}
	return nil
}

// rawPpoll is ppoll(2) without the runtime's system call bookkeeping
// (Config.HoldP): the calling goroutine keeps its P until it returns.
func rawPpoll(fds []unix.PollFd, timeout *unix.Timespec) unix.Errno {
	_, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(timeout)), 0, 0, 0)
	return errno
}

// Write sends each bufs[i], a complete Ethernet frame, out of the interface
// in one system call per batch (sendmmsg(2), or one send(2) kicking the TX
// ring) and returns how many the kernel took. Each frame goes with a
// virtio_net_hdr encoded from offs[i] (offs nil, or a zero Offload: a plain
// frame with a complete checksum), so the kernel, or the NIC, finishes a
// partial checksum (OffloadNeedsCsum) and cuts a GSO frame, which may be
// up to 64 KiB, into segments that fit the MTU. Frames it could not send
// are skipped and counted in Stats().TxErrors: too short, longer than the
// MTU without GSO, offloads the kernel rejects, with TxRing any frame
// longer than a ring slot (2 KiB at MTU 1500), and frames the kernel
// dropped. The error is net.ErrClosed after Close, or the wrapped errno
// when the interface is gone or down. Write does not allocate.
func (l *Link) Write(bufs [][]byte, offs []header.Offload) (int, error) {
	l.txMu.Lock()
	defer l.txMu.Unlock()
	if l.closed.Load() {
		return 0, net.ErrClosed
	}
	var sent, failed int
	var err error
	if l.mode == TxRing {
		sent, failed, err = l.writeRing(bufs, offs)
	} else {
		sent, failed, err = l.writeMmsg(bufs, offs)
	}
	if sent > 0 {
		l.txPackets.Add(uint64(sent))
	}
	if failed > 0 {
		l.txErrors.Add(uint64(failed))
	}
	return sent, err
}

// linkGone reports errors after which no frame of the batch can be sent.
func linkGone(errno unix.Errno) bool {
	return errno == unix.ENETDOWN || errno == unix.ENXIO || errno == unix.ENODEV || errno == unix.EBADF
}

// offload returns &offs[i], or nil when offs is nil.
func offload(offs []header.Offload, i int) *header.Offload {
	if offs == nil {
		return nil
	}
	return &offs[i]
}

func (l *Link) writeMmsg(bufs [][]byte, offs []header.Offload) (sent, failed int, err error) {
	b := &l.mmsg
	for done := 0; done < len(bufs); {
		chunk := bufs[done:min(len(bufs), done+len(b.msgs))]
		m := 0
		for j, p := range chunk {
			if len(p) < ethHdrLen {
				failed++
				continue
			}
			// The kernel checks the length against the MTU itself (a
			// frame without GSO longer than that is EMSGSIZE).
			b.set(m, p, offload(offs, done+j))
			m++
		}
		done += len(chunk)
		intr := 0
		for i := 0; i < m; {
			r, errno := b.send(l.fd, i, m)
			switch {
			case errno == 0 && r > 0:
				sent += r
				i += r
			case errno == unix.EINTR && intr < maxEINTR:
				intr++
			case linkGone(errno):
				b.forget(m)
				failed += m - i + len(bufs) - done
				return sent, failed, fmt.Errorf("afpacket: write %s: %w", l.name, errno)
			default:
				// The kernel refused message i (EMSGSIZE, EINVAL, or
				// ENOBUFS/EAGAIN from a full queue): skip it.
				failed++
				i++
			}
		}
		b.forget(m)
	}
	return sent, failed, nil
}

func (l *Link) writeRing(bufs [][]byte, offs []header.Offload) (sent, failed int, err error) {
	t := &l.tx
	waits := 0
	for i := 0; i < len(bufs); {
		start, queued, bytes := t.cur, 0, 0
		for ; i < len(bufs) && queued < t.numFrames; i++ {
			p, o := bufs[i], offload(offs, i)
			// With a virtio_net_hdr the kernel does not check a ring
			// frame's length against the MTU (tpacket_snd), so check here.
			if len(p) < ethHdrLen || len(p) > t.maxLen || len(p) > l.txMaxLen && (o == nil || !o.GSO()) {
				failed++
				continue
			}
			if t.status(t.cur)&tpStatusTxOwned != 0 {
				break // every slot is in flight
			}
			t.put(t.cur, p, o)
			t.cur = t.at(t.cur, 1)
			queued++
			bytes += len(p)
		}
		if queued > 0 {
			s, f, err := l.flushRing(start, queued, bytes)
			sent += s
			failed += f
			if err != nil {
				return sent, failed + len(bufs) - i, err
			}
			waits = 0
			continue
		}
		if i == len(bufs) {
			break
		}
		if waits == maxTxWaits {
			failed += len(bufs) - i
			break
		}
		waits++
		l.waitWritable()
	}
	return sent, failed, nil
}

// flushRing kicks the n frames queued from slot start (t.cur is just past
// them; bytes is the sum of their lengths without the virtio_net_hdr,
// which is what send(2) returns when it takes them all) and returns how many the kernel took and how many it refused or
// could not take. On return no slot is left queued, so t.cur is again where
// the kernel's head is.
func (l *Link) flushRing(start, n, bytes int) (sent, failed int, err error) {
	t := &l.tx
	retries := 0
	var errno unix.Errno
	for range n + maxTxRetries + 1 { // each pass sends, drops a frame or retries
		flags := unix.MSG_DONTWAIT
		if retries > 0 {
			flags = 0 // wait for socket buffer space, bounded by SO_SNDTIMEO
		}
		var r int
		r, errno = kick(l.fd, flags)
		if errno == 0 && r == bytes {
			return n, failed, nil
		}
		bytes = -1 // from now on, look at the slots
		k := t.firstQueued(start, n)
		if k == n {
			return n, failed, nil
		}
		if t.status(t.at(start, k))&tpStatusWrongFormat != 0 {
			// The kernel refused frame k and its head stays there: move
			// the frames after it up by one and send again.
			for j := k; j+1 < n; j++ {
				t.move(t.at(start, j), t.at(start, j+1))
			}
			if k+1 < n {
				t.setStatus(t.at(start, k), tpStatusSendRequest)
			}
			last := t.at(start, n-1)
			t.setStatus(last, tpStatusAvailable)
			t.cur = last
			n--
			failed++
			if k == n {
				return n, failed, nil
			}
			continue
		}
		// Frame k is still queued: the socket buffer or device queue is
		// full, or the interface is down.
		if retries == maxTxRetries || linkGone(errno) {
			break
		}
		retries++
	}
	// Give up on the frames still queued: take them back and rewind.
	k := t.firstQueued(start, n)
	for j := k; j < n; j++ {
		t.setStatus(t.at(start, j), tpStatusAvailable)
	}
	t.cur = t.at(start, k)
	failed += n - k
	if linkGone(errno) {
		err = fmt.Errorf("afpacket: write %s: %w", l.name, errno)
	}
	return k, failed, err
}

// waitWritable waits up to txWaitTimeout for the frame at the kernel's head
// of the TX ring to come back (POLLOUT).
func (l *Link) waitWritable() {
	l.txTimeout = unix.NsecToTimespec(txWaitTimeout.Nanoseconds())
	l.txPoll[0].Revents = 0
	_, _ = unix.Ppoll(l.txPoll[:], &l.txTimeout, nil)
}

// SetFilter replaces the socket filter atomically (config reload); nil
// accepts every frame that is not our own outgoing one.
func (l *Link) SetFilter(prog []bpf.RawInstruction) error {
	l.ctlMu.Lock()
	defer l.ctlMu.Unlock()
	if l.closed.Load() {
		return net.ErrClosed
	}
	if prog == nil {
		prog = acceptAll
	}
	if err := attachFilter(l.fd, prog); err != nil {
		return fmt.Errorf("afpacket: set filter on %s: %w", l.name, err)
	}
	if l.syn != nil {
		return l.syn.SetFilter(prog)
	}
	return nil
}

// SetSteering replaces the fanout group's PACKET_FANOUT_CBPF program (for
// every member: calling it on one link is enough). The link must have been
// opened with a Steering program.
func (l *Link) SetSteering(prog []bpf.RawInstruction) error {
	l.ctlMu.Lock()
	defer l.ctlMu.Unlock()
	if l.closed.Load() {
		return net.ErrClosed
	}
	if err := setSteering(l.fd, prog); err != nil {
		return fmt.Errorf("afpacket: set steering on %s: %w", l.name, err)
	}
	return nil
}

// Stats returns the link's cumulative counters. After Close it returns the
// final values.
func (l *Link) Stats() (Stats, error) {
	l.ctlMu.Lock()
	defer l.ctlMu.Unlock()
	var err error
	if !l.closed.Load() {
		err = l.pullStats()
	}
	s := l.kstats
	s.Copied = l.copied.Load()
	s.Truncated = l.truncated.Load()
	s.TxPackets = l.txPackets.Load()
	s.TxErrors = l.txErrors.Load()
	if l.syn != nil {
		ss, serr := l.syn.Stats()
		s.SYNPackets, s.SYNDrops = ss.Packets, ss.Drops
		s.Copied += ss.Copied
		s.Truncated += ss.Truncated
		err = errors.Join(err, serr)
	}
	return s, err
}

// pullStats adds the kernel's counters, which reset on every read, to
// kstats. Called with ctlMu held and fd open.
func (l *Link) pullStats() error {
	st, err := unix.GetsockoptTpacketStats(l.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return fmt.Errorf("afpacket: stats of %s: %w", l.name, err)
	}
	l.kstats.Packets += uint64(st.Packets)
	l.kstats.Drops += uint64(st.Drops)
	return nil
}

// Close wakes a blocked Read, waits for Read, Write and the control calls
// to leave, collects the final statistics and releases the socket and
// rings. Closing twice is a no-op.
func (l *Link) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	if l.syn != nil {
		defer l.syn.Close()
	}
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; 1 is non-zero either way
	_, _ = unix.Write(l.efd, one[:])
	l.rxMu.Lock()
	defer l.rxMu.Unlock()
	l.txMu.Lock()
	defer l.txMu.Unlock()
	l.ctlMu.Lock()
	defer l.ctlMu.Unlock()
	_ = l.pullStats()
	if err := l.release(); err != nil {
		return fmt.Errorf("afpacket: close %s: %w", l.name, err)
	}
	return nil
}

// release unmaps the rings and closes the descriptors (Open's error path
// and Close).
func (l *Link) release() error {
	var errs []error
	if l.mem != nil {
		errs = append(errs, unix.Munmap(l.mem))
		l.mem, l.rx.mem, l.tx.mem = nil, nil, nil
	}
	if l.fd >= 0 {
		errs = append(errs, unix.Close(l.fd))
		l.fd = -1
	}
	if l.efd >= 0 {
		errs = append(errs, unix.Close(l.efd))
		l.efd = -1
	}
	return errors.Join(errs...)
}
