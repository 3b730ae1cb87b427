package lab

import (
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenControl sets IP_FREEBIND (ip(7); IPV6_FREEBIND, ipv6(7), for an
// IPv6 socket) so an echo server can bind the VIP before gvs-realserver
// puts it on lo.
func listenControl(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
