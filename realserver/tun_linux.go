package realserver

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/gvs-lb/gvs/dataplane/header"
	"golang.org/x/sys/unix"
)

// tunOffloads says whether newDecap asks for virtio_net_hdr and offloads
// on the TUN device. Tests turn it off to run the fallback.
var tunOffloads = true

// tunDevice is a TUN device (IFF_TUN|IFF_NO_PI, see
// Documentation/networking/tuntap.rst) that this process created and
// writes inner packets to. With vnet, every write starts with a
// virtio_net_hdr (IFF_VNET_HDR), which lets a write carry a TCP GSO
// super-segment with a partial checksum, as a virtio NIC's would.
type tunDevice struct {
	fd   int // blocking: a write to a TUN device does not wait
	name string
	vnet bool

	hdr  [header.OffloadLen]byte // the virtio_net_hdr of the frame being written
	iovs []unix.Iovec            // writev(2) vector, allocated once
}

var _ tunWriter = (*tunDevice)(nil)

// tunOffloadFlags are the offloads asked of the TUN device
// (TUNSETOFFLOAD), most first. They say what this side takes in frames it
// reads from the device, which it never does: a write of a GSO frame
// needs only virtio_net_hdr. Asking anyway sets the device up the way
// QEMU and wireguard-go do, and a kernel that refuses all of them is
// treated as one without offloads.
var tunOffloadFlags = []int{
	unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6,
	unix.TUN_F_CSUM | unix.TUN_F_TSO4,
}

// openTUN creates the TUN device name in the calling thread's network
// namespace. With offloads it first tries virtio_net_hdr and TCP
// offloads; when the kernel refuses them it creates a plain device and
// returns why in offloadErr.
func openTUN(name string, offloads bool) (t *tunDevice, offloadErr, err error) {
	if offloads {
		t, offloadErr = createTUN(name, true)
		if offloadErr == nil {
			return t, nil, nil
		}
	} else {
		offloadErr = errors.New("offloads not asked for")
	}
	t, err = createTUN(name, false)
	return t, offloadErr, err
}

func createTUN(name string, vnet bool) (*tunDevice, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	t := &tunDevice{fd: fd, vnet: vnet, iovs: make([]unix.Iovec, 0, 2+decapBatchSize)}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if vnet {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	t.name = ifr.Name()
	if !vnet {
		return t, nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, header.OffloadLen); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETVNETHDRSZ: %w", err)
	}
	for _, f := range tunOffloadFlags {
		if err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, f); err == nil {
			return t, nil
		}
	}
	unix.Close(fd)
	return nil, fmt.Errorf("TUNSETOFFLOAD: %w", err)
}

// sharing returns a writer to the same device with buffers of its own, for
// another goroutine: each writev(2) to a TUN device is one packet, so two
// goroutines may write at once. Only t closes the device.
func (t *tunDevice) sharing() *tunDevice {
	return &tunDevice{fd: t.fd, name: t.name, vnet: t.vnet, iovs: make([]unix.Iovec, 0, cap(t.iovs))}
}

// writeFrame writes one frame with writev(2): the virtio_net_hdr (with
// vnet), then parts. Without vnet a frame is a single packet.
func (t *tunDevice) writeFrame(vnet header.Offload, parts [][]byte) error {
	iovs := t.iovs[:0]
	if t.vnet {
		vnet.Encode(t.hdr[:])
		iovs = appendIovec(iovs, t.hdr[:])
	}
	for _, p := range parts {
		iovs = appendIovec(iovs, p)
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(t.fd), uintptr(unsafe.Pointer(&iovs[0])), uintptr(len(iovs)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

func appendIovec(iovs []unix.Iovec, b []byte) []unix.Iovec {
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return append(iovs, v)
}

// close closes the descriptor, which removes the device.
func (t *tunDevice) close() error {
	if err := unix.Close(t.fd); err != nil {
		return fmt.Errorf("realserver: close TUN device %s: %w", t.name, err)
	}
	return nil
}

// mmsgReader reads a batch of datagrams with recvmmsg(2) into buffers
// given once.
type mmsgReader struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
}

func newMmsgReader(bufs [][]byte) *mmsgReader {
	r := &mmsgReader{hdrs: make([]unix.Mmsghdr, len(bufs)), iovs: make([]unix.Iovec, len(bufs))}
	for i, b := range bufs {
		r.iovs[i] = unix.Iovec{Base: &b[0]}
		r.iovs[i].SetLen(len(b))
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	return r
}

// read takes what is queued on the non-blocking socket fd, up to one
// datagram per buffer, without waiting, and stores each one's length in
// sizes. It returns EAGAIN when nothing is queued.
func (r *mmsgReader) read(fd int, sizes []int) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)),
		unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	for i := range int(n) {
		sizes[i] = int(r.hdrs[i].Len)
	}
	return int(n), 0
}
