package afpacket

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"github.com/gvs-lb/gvs/dataplane/header"
	"golang.org/x/sys/unix"
)

// This file holds every use of unsafe in the package: the shared-memory
// rings and the raw system calls that take pointers to Go memory.
//
// The rings are laid out as in <linux/if_packet.h> and
// Documentation/networking/packet_mmap.rst, in host byte order, with
// TPACKET_V2 headers (the version is per socket, so both rings have it).
// Ownership of a frame slot moves between kernel and user space through its
// tp_status word, which is read with an atomic load (acquire) and written
// with an atomic store (release); everything else in the slot is only
// touched by the side that owns it.

// struct tpacket2_hdr, at the start of every frame slot in both rings.
const (
	t2StatusOff  = 0  // tp_status
	t2LenOff     = 4  // tp_len
	t2SnaplenOff = 8  // tp_snaplen
	t2MacOff     = 12 // tp_mac, u16
	t2HdrLen     = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): where TX frame data starts
)

// Layout constants the slot sizes are computed from.
const (
	tpacketAlignment = unix.TPACKET_ALIGNMENT
	// tpacket2HdrLen is TPACKET2_HDRLEN: the aligned tpacket2_hdr and the
	// struct sockaddr_ll the kernel writes after it.
	tpacket2HdrLen = t2HdrLen + unix.SizeofSockaddrLinklayer
	vlanTagLen     = 4 // one 802.1Q tag
	// vnetHdrLen is sizeof(struct virtio_net_hdr) (PACKET_VNET_HDR): in
	// front of every frame in both rings and in every message sent or
	// received.
	vnetHdrLen = header.OffloadLen
)

// tpacketAlign is TPACKET_ALIGN.
func tpacketAlign(n int) int {
	return (n + tpacketAlignment - 1) &^ (tpacketAlignment - 1)
}

// rxFrameSize is the RX slot size (tp_frame_size) that holds a whole frame
// of an interface with this MTU. tpacket_rcv puts the network header at
// netoff = TPACKET_ALIGN(TPACKET2_HDRLEN + max(16, link header length)) +
// the virtio_net_hdr, the link header right in front of it and the
// virtio_net_hdr in front of that; so a frame fits when netoff + MTU does.
// With up to two VLAN tags in the frame the link header is at most 22
// bytes and netoff 90: a 1600-byte slot at MTU 1500.
func rxFrameSize(mtu int) int {
	netOff := tpacketAlign(tpacket2HdrLen+ethHdrLen+2*vlanTagLen) + vnetHdrLen
	return tpacketAlign(netOff + mtu)
}

// synFrameSize is the slot of the SYN ring, whose frames are small: 90
// bytes up to the network header (see rxFrameSize), then IPv4 and TCP
// headers with every option (60 + 60 bytes) take 210 bytes, rounded up to
// 256 so that 16 slots fill a page. A SYN carrying data (TCP Fast Open, or
// a flood's padding) takes the copy path like any frame larger than a
// slot.
const synFrameSize = 256

// Status words: tp_status of an RX or a TX frame slot.
const (
	tpStatusKernel      = unix.TP_STATUS_KERNEL // RX: the kernel's to fill
	tpStatusUser        = unix.TP_STATUS_USER   // RX: ours to read
	tpStatusCopy        = unix.TP_STATUS_COPY   // RX: the whole frame is on the socket's receive queue
	tpStatusAvailable   = unix.TP_STATUS_AVAILABLE
	tpStatusSendRequest = unix.TP_STATUS_SEND_REQUEST
	tpStatusSending     = unix.TP_STATUS_SENDING
	tpStatusWrongFormat = unix.TP_STATUS_WRONG_FORMAT
	// tpStatusTxOwned are the TX status bits meaning "not ours to fill":
	// queued, in flight, or refused and waiting for us to look at it.
	// Timestamp bits may be set on an available frame.
	tpStatusTxOwned = tpStatusSendRequest | tpStatusSending | tpStatusWrongFormat
)

// u32 returns a pointer to the 32-bit word at b[off], for atomic access.
// b is ring memory (page aligned) and off a multiple of 4.
func u32(b []byte, off int) *uint32 {
	_ = b[off+3]
	return (*uint32)(unsafe.Pointer(&b[off]))
}

// rxRing walks a TPACKET_V2 RX ring: fixed-size frame slots, in order,
// framesPerBlock to a block (the rest of a block is unused). The kernel
// fills slots in the same order, so cur is where it will hand over the next
// frame. It is used by one goroutine at a time (Link.rxMu).
type rxRing struct {
	mem            []byte
	blockSize      int
	frameSize      int
	framesPerBlock int
	numFrames      int
	cur            int // the next slot to read
}

func (r *rxRing) slot(i int) []byte {
	off := i/r.framesPerBlock*r.blockSize + i%r.framesPerBlock*r.frameSize
	return r.mem[off : off+r.frameSize]
}

// rxFrame is a frame handed over in slot cur; frame and vnet alias ring
// memory, so copy them before calling release.
type rxFrame struct {
	frame   []byte // the captured bytes from the Ethernet header on
	vnet    []byte // the virtio_net_hdr in front of the frame
	wireLen uint32 // tp_len: the frame's length on the wire
	status  uint32 // tp_status
}

// next returns the frame in slot cur, or ok false when the kernel has not
// handed it over yet. A slot whose header does not describe a frame inside
// it comes back with a nil frame: release it and count it.
func (r *rxRing) next() (f rxFrame, ok bool) {
	s := r.slot(r.cur)
	f.status = atomic.LoadUint32(u32(s, t2StatusOff))
	if f.status&tpStatusUser == 0 {
		return f, false
	}
	f.wireLen = binary.NativeEndian.Uint32(s[t2LenOff:])
	snap := int(binary.NativeEndian.Uint32(s[t2SnaplenOff:]))
	mac := int(binary.NativeEndian.Uint16(s[t2MacOff:]))
	if mac < t2HdrLen+vnetHdrLen || snap > len(s)-mac {
		return f, true
	}
	f.frame = s[mac : mac+snap]
	f.vnet = s[mac-vnetHdrLen : mac]
	return f, true
}

// ready reports whether the kernel has handed slot cur over.
func (r *rxRing) ready() bool {
	return atomic.LoadUint32(u32(r.slot(r.cur), t2StatusOff))&tpStatusUser != 0
}

// release gives slot cur back to the kernel and moves on.
func (r *rxRing) release() {
	atomic.StoreUint32(u32(r.slot(r.cur), t2StatusOff), tpStatusKernel)
	r.cur++
	if r.cur == r.numFrames {
		r.cur = 0
	}
}

// copyReader reads the whole copy of a frame larger than a ring slot from
// the socket's receive queue, where the kernel put it (PACKET_COPY_THRESH,
// TP_STATUS_COPY): one recvmsg(2) with two iovecs, the virtio_net_hdr into
// vnet and the frame straight into the caller's buffer. Preallocated per
// link; used under Link.rxMu.
type copyReader struct {
	msg  unix.Msghdr
	iovs [2]unix.Iovec
	vnet [vnetHdrLen]byte
}

func (c *copyReader) init() {
	c.iovs[0].Base = &c.vnet[0]
	c.iovs[0].SetLen(len(c.vnet))
	c.msg.Iov = &c.iovs[0]
	c.msg.SetIovlen(len(c.iovs))
}

// read takes the frame at the head of fd's receive queue into buf without
// waiting, and returns its length, which is larger than len(buf) when it
// did not fit (the frame is consumed all the same).
func (c *copyReader) read(fd int, buf []byte) (int, unix.Errno) {
	c.iovs[1].Base, c.iovs[1].Len = nil, 0
	if len(buf) > 0 {
		c.iovs[1].Base = &buf[0]
		c.iovs[1].SetLen(len(buf))
	}
	c.msg.Flags = 0
	var r uintptr
	var errno unix.Errno
	for range maxEINTR {
		// MSG_TRUNC: return the frame's real length even when buf is
		// shorter.
		r, _, errno = unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&c.msg)),
			unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if errno != unix.EINTR {
			break
		}
	}
	c.iovs[1].Base = nil // drop the reference to the caller's buffer
	if errno != 0 {
		return 0, errno
	}
	if int(r) < vnetHdrLen {
		return 0, unix.EINVAL
	}
	n := int(r) - vnetHdrLen
	if c.msg.Flags&unix.MSG_TRUNC != 0 && n <= len(buf) {
		n = len(buf) + 1 // cut short, whatever the count says
	}
	return n, 0
}

// txRing is a TPACKET_V2 TX ring of fixed-size frames, filled in order; the
// kernel sends them in the same order, so cur is also where the kernel's
// head is once every queued frame has been taken. Each frame's data is a
// virtio_net_hdr followed by the Ethernet frame. Used under Link.txMu.
type txRing struct {
	mem       []byte
	frameSize int
	numFrames int
	maxLen    int // the longest Ethernet frame a slot takes: frameSize - t2HdrLen - vnetHdrLen
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
	return atomic.LoadUint32(u32(t.frame(i), t2StatusOff))
}

func (t *txRing) setStatus(i int, s uint32) {
	atomic.StoreUint32(u32(t.frame(i), t2StatusOff), s)
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

// put copies o (nil: none) and p into frame i and queues it for sending.
func (t *txRing) put(i int, p []byte, o *header.Offload) {
	f := t.frame(i)
	vnet := f[t2HdrLen : t2HdrLen+vnetHdrLen]
	if o != nil {
		o.Encode(vnet)
	} else {
		clear(vnet)
	}
	copy(f[t2HdrLen+vnetHdrLen:], p)
	n := uint32(vnetHdrLen + len(p))
	binary.NativeEndian.PutUint32(f[t2LenOff:], n)
	binary.NativeEndian.PutUint32(f[t2SnaplenOff:], n)
	t.setStatus(i, tpStatusSendRequest)
}

// move copies queued frame from into frame to (both ours).
func (t *txRing) move(to, from int) {
	src, dst := t.frame(from), t.frame(to)
	n := int(binary.NativeEndian.Uint32(src[t2LenOff:]))
	copy(dst[t2HdrLen:], src[t2HdrLen:t2HdrLen+n])
	binary.NativeEndian.PutUint32(dst[t2LenOff:], uint32(n))
	binary.NativeEndian.PutUint32(dst[t2SnaplenOff:], uint32(n))
}

// kick asks the kernel to send the queued TX ring frames: send(fd, NULL, 0,
// flags). It returns the number of bytes taken.
func kick(fd int, flags int) (int, unix.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, uintptr(flags), 0, 0)
	return int(r), errno
}

// mmsgBatch holds the preallocated message headers for sendmmsg(2): each
// message is two iovecs, the frame's virtio_net_hdr (encoded into vnet) and
// the caller's frame, which is not copied.
type mmsgBatch struct {
	msgs []unix.Mmsghdr
	iovs []unix.Iovec // 2 per message
	vnet [][vnetHdrLen]byte
}

func newMmsgBatch(n int) mmsgBatch {
	b := mmsgBatch{msgs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, 2*n), vnet: make([][vnetHdrLen]byte, n)}
	for i := range b.msgs {
		b.iovs[2*i].Base = &b.vnet[i][0]
		b.iovs[2*i].SetLen(vnetHdrLen)
		b.msgs[i].Hdr.Iov = &b.iovs[2*i]
		b.msgs[i].Hdr.SetIovlen(2)
	}
	return b
}

// set points message i at o (nil: none) and p (len(p) > 0).
func (b *mmsgBatch) set(i int, p []byte, o *header.Offload) {
	if o != nil {
		o.Encode(b.vnet[i][:])
	} else {
		b.vnet[i] = [vnetHdrLen]byte{}
	}
	b.iovs[2*i+1].Base = &p[0]
	b.iovs[2*i+1].SetLen(len(p))
}

// forget drops the references to the caller's buffers.
func (b *mmsgBatch) forget(n int) {
	for i := range n {
		b.iovs[2*i+1].Base = nil
	}
}

// send calls sendmmsg(2) for messages [from, to) and returns how many went.
func (b *mmsgBatch) send(fd, from, to int) (int, unix.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
		uintptr(unsafe.Pointer(&b.msgs[from])), uintptr(to-from), 0, 0, 0)
	return int(r), errno
}
