package offload

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ifreqData is struct ifreq (netdevice(7)) with the ifr_data member of its
// union in use, as SIOCETHTOOL expects.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	// The rest of the union, whose largest member (struct ifmap) is 24 bytes
	// on 64-bit platforms; this keeps the struct at least sizeof(struct
	// ifreq) everywhere, so the kernel never reads past it.
	_ [24 - unsafe.Sizeof(uintptr(0))]byte
}

// ethtoolIoctl issues SIOCETHTOOL on the interface named ifname, in the
// network namespace of the socket fd. buf holds the command's struct (its
// first word is the ETHTOOL_* command) and receives the kernel's answer. This
// is the only unsafe code of the package.
func ethtoolIoctl(fd int, ifname string, buf []byte) error {
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(unsafe.SliceData(buf))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(buf)
	runtime.KeepAlive(&ifr)
	if errno != 0 {
		return errno
	}
	return nil
}
