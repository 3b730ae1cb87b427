package lab

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// listenControl sets IP_FREEBIND (ip(7)) so an echo server can bind the VIP
// before gvs-realserver puts it on lo.
func listenControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
