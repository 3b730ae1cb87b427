package afpacket

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds every use of unsafe in the package: the shared-memory
// rings and the two raw system calls that take pointers to Go memory.
//
// The rings are laid out as in <linux/if_packet.h> and
// Documentation/networking/packet_mmap.rst, in host byte order. Ownership of
// a block (RX) or frame (TX) moves between kernel and user space through its
// status word, which is read with an atomic load (acquire) and written with
// an atomic store (release); everything else in the block or frame is only
// touched by the side that owns it.

// struct tpacket_block_desc with struct tpacket_hdr_v1, at the start of
// every RX block.
const (
	bdBlockStatusOff   = 8  // hdr.bh1.block_status
	bdNumPktsOff       = 12 // hdr.bh1.num_pkts
	bdOffsetToFirstPkt = 16 // hdr.bh1.offset_to_first_pkt
	bdHdrLen           = 48 // BLK_HDR_LEN
)

// Status words: block_status of an RX block, tp_status of a TX frame.
const (
	tpStatusKernel      = unix.TP_STATUS_KERNEL // RX block: the kernel's to fill
	tpStatusUser        = unix.TP_STATUS_USER   // RX block: ours to read
	tpStatusAvailable   = unix.TP_STATUS_AVAILABLE
	tpStatusSendRequest = unix.TP_STATUS_SEND_REQUEST
	tpStatusSending     = unix.TP_STATUS_SENDING
	tpStatusWrongFormat = unix.TP_STATUS_WRONG_FORMAT
	// tpStatusTxOwned are the TX status bits meaning "not ours to fill":
	// queued, in flight, or refused and waiting for us to look at it.
	// Timestamp bits may be set on an available frame.
	tpStatusTxOwned = tpStatusSendRequest | tpStatusSending | tpStatusWrongFormat
)

// struct tpacket3_hdr, in front of every frame in both rings.
const (
	t3NextOffsetOff = 0  // tp_next_offset
	t3SnaplenOff    = 12 // tp_snaplen
	t3LenOff        = 16 // tp_len
	t3StatusOff     = 20 // tp_status
	t3MacOff        = 24 // tp_mac
	t3HdrLen        = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): where TX frame data starts
)

// u32 returns a pointer to the 32-bit word at b[off], for atomic access.
// b is ring memory (page aligned) and off a multiple of 4.
func u32(b []byte, off int) *uint32 {
	_ = b[off+3]
	return (*uint32)(unsafe.Pointer(&b[off]))
}

// rxRing walks a TPACKET_V3 RX ring: blocks in order, frames within a block
// by tp_next_offset. It is used by one goroutine at a time (Link.rxMu).
type rxRing struct {
	mem       []byte
	blockSize int
	numBlocks int

	cur  int  // the block being read, or to be read next
	open bool // cur is ours (TP_STATUS_USER) and left/off are valid
	left uint32
	off  int // offset of the next frame header in block cur
}

func (r *rxRing) block(i int) []byte {
	return r.mem[i*r.blockSize : (i+1)*r.blockSize]
}

// next returns the next captured frame and its length on the wire, or ok
// false if the kernel has not handed over the next block yet. The frame
// aliases ring memory: copy it before calling advance.
func (r *rxRing) next() (frame []byte, wireLen uint32, ok bool) {
	for range r.numBlocks + 1 {
		b := r.block(r.cur)
		if !r.open {
			if atomic.LoadUint32(u32(b, bdBlockStatusOff))&tpStatusUser == 0 {
				return nil, 0, false
			}
			r.open = true
			r.left = binary.NativeEndian.Uint32(b[bdNumPktsOff:])
			r.off = int(binary.NativeEndian.Uint32(b[bdOffsetToFirstPkt:]))
		}
		if r.left == 0 {
			r.release()
			continue
		}
		h := r.off
		if h < bdHdrLen || h > len(b)-t3HdrLen {
			r.release() // corrupt block: give it back rather than crash
			continue
		}
		snap := binary.NativeEndian.Uint32(b[h+t3SnaplenOff:])
		wire := binary.NativeEndian.Uint32(b[h+t3LenOff:])
		start := h + int(binary.NativeEndian.Uint16(b[h+t3MacOff:]))
		end := start + int(snap)
		if end > len(b) || snap > uint32(len(b)) {
			r.release()
			continue
		}
		nextOff := int(binary.NativeEndian.Uint32(b[h+t3NextOffsetOff:]))
		r.left--
		r.off = h + nextOff
		if nextOff == 0 {
			r.left = 0
		}
		return b[start:end], wire, true
	}
	return nil, 0, false
}

// advance gives the current block back to the kernel once its last frame
// has been consumed.
func (r *rxRing) advance() {
	if r.open && r.left == 0 {
		r.release()
	}
}

func (r *rxRing) release() {
	atomic.StoreUint32(u32(r.block(r.cur), bdBlockStatusOff), tpStatusKernel)
	r.open = false
	r.cur++
	if r.cur == r.numBlocks {
		r.cur = 0
	}
}

// txRing is a TPACKET_V3 TX ring of fixed-size frames, filled in order; the
// kernel sends them in the same order, so cur is also where the kernel's
// head is once every queued frame has been taken. Used under Link.txMu.
type txRing struct {
	mem       []byte
	frameSize int
	numFrames int
	maxLen    int // frameSize - t3HdrLen
	cur       int
}

// at is the index of the frame n places after frame i.
func (t *txRing) at(i, n int) int {
	return (i + n) % t.numFrames
}

func (t *txRing) frame(i int) []byte {
	return t.mem[i*t.frameSize : (i+1)*t.frameSize]
}

func (t *txRing) status(i int) uint32 {
	return atomic.LoadUint32(u32(t.frame(i), t3StatusOff))
}

func (t *txRing) setStatus(i int, s uint32) {
	atomic.StoreUint32(u32(t.frame(i), t3StatusOff), s)
}

// firstQueued returns the position, counted from frame start, of the first
// of the n frames from start that the kernel has not taken (queued or
// refused), or n if it took them all.
func (t *txRing) firstQueued(start, n int) int {
	for j := range n {
		if t.status(t.at(start, j))&(tpStatusSendRequest|tpStatusWrongFormat) != 0 {
			return j
		}
	}
	return n
}

// put copies p into frame i and queues it for sending.
func (t *txRing) put(i int, p []byte) {
	f := t.frame(i)
	copy(f[t3HdrLen:], p)
	binary.NativeEndian.PutUint32(f[t3LenOff:], uint32(len(p)))
	binary.NativeEndian.PutUint32(f[t3SnaplenOff:], uint32(len(p)))
	t.setStatus(i, tpStatusSendRequest)
}

// move copies queued frame from into frame to (both ours).
func (t *txRing) move(to, from int) {
	src, dst := t.frame(from), t.frame(to)
	n := int(binary.NativeEndian.Uint32(src[t3LenOff:]))
	copy(dst[t3HdrLen:], src[t3HdrLen:t3HdrLen+n])
	binary.NativeEndian.PutUint32(dst[t3LenOff:], uint32(n))
	binary.NativeEndian.PutUint32(dst[t3SnaplenOff:], uint32(n))
}

// kick asks the kernel to send the queued TX ring frames: send(fd, NULL, 0,
// flags). It returns the number of bytes taken.
func kick(fd int, flags int) (int, unix.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, uintptr(flags), 0, 0)
	return int(r), errno
}

// mmsgBatch holds the preallocated message headers for sendmmsg(2).
type mmsgBatch struct {
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newMmsgBatch(n int) mmsgBatch {
	b := mmsgBatch{msgs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n)}
	for i := range b.msgs {
		b.msgs[i].Hdr.Iov = &b.iovs[i]
		b.msgs[i].Hdr.SetIovlen(1)
	}
	return b
}

// set points message i at p (len(p) > 0).
func (b *mmsgBatch) set(i int, p []byte) {
	b.iovs[i].Base = &p[0]
	b.iovs[i].SetLen(len(p))
}

// forget drops the references to the caller's buffers.
func (b *mmsgBatch) forget(n int) {
	for i := range b.iovs[:n] {
		b.iovs[i].Base = nil
	}
}

// send calls sendmmsg(2) for messages [from, to) and returns how many went.
func (b *mmsgBatch) send(fd, from, to int) (int, unix.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
		uintptr(unsafe.Pointer(&b.msgs[from])), uintptr(to-from), 0, 0, 0)
	return int(r), errno
}
