package realserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// localRefreshEvery bounds how often a packet to an address not in the
// local-address snapshot makes the decapsulator re-read the host's
// addresses: often enough to follow an address added at run time within a
// second, rarely enough that a flood of stray packets costs one netlink
// dump per second.
const localRefreshEvery = time.Second

// decap is the userspace IPIP decapsulator of one Run. Everything it uses
// is created by newDecap in the caller's network namespace, so its
// goroutine may run on any thread.
type decap struct {
	tun  *water.Interface
	raw  *os.File        // AF_INET, SOCK_RAW, IPPROTO_IPIP, non-blocking
	nl   *netlink.Handle // for the local-address snapshot
	vips addrSet
	done chan struct{} // closed when run returns

	// Owned by the run goroutine.
	local       addrSet
	lastRefresh time.Time

	decapsulated, bad, notLocal, notVIP, writeErrors atomic.Uint64
}

// newDecap creates the TUN device tunName (up, no packet information
// header), the raw socket and a netlink handle, all in the calling
// thread's network namespace.
func newDecap(tunName string, vips []netip.Addr) (_ *decap, err error) {
	d := &decap{vips: addrSet{}, done: make(chan struct{})}
	for _, v := range vips {
		d.vips[v.As4()] = struct{}{}
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	cfg := water.Config{DeviceType: water.TUN}
	cfg.Name = tunName
	if d.tun, err = water.New(cfg); err != nil {
		return nil, fmt.Errorf("create TUN device %s: %w", tunName, err)
	}
	if d.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	link, err := d.nl.LinkByName(tunName)
	if err != nil {
		return nil, fmt.Errorf("TUN device %s: %w", tunName, err)
	}
	if err := d.nl.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set %s up: %w", tunName, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
	if err != nil {
		return nil, fmt.Errorf("raw IPIP socket: %w", err)
	}
	// The decapsulation is a read and a write per packet: a bulk TCP
	// stream comes in bursts of dozens of segments (the director cuts its
	// GSO frames), more than the default receive buffer (about 200 KiB of
	// truesize) holds while this goroutine waits for the CPU. Room for a
	// few milliseconds at line rate; SO_RCVBUFFORCE passes net.core.rmem_max
	// as root, and without it the kernel caps SO_RCVBUF there.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, decapRcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, decapRcvBuf)
	}
	// A non-blocking descriptor joins the runtime poller, so Close wakes a
	// blocked read.
	d.raw = os.NewFile(uintptr(fd), "ipip")
	if err := d.refreshLocal(); err != nil {
		return nil, err
	}
	return d, nil
}

// decapRcvBuf is the raw IPIP socket's receive buffer.
const decapRcvBuf = 8 << 20

// run reads outer packets until the raw socket is closed. It allocates
// nothing per packet.
func (d *decap) run() {
	defer close(d.done)
	rc, err := d.raw.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, maxPacket)
	var n int
	var rerr error
	read := func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return rerr != unix.EAGAIN
	}
	for {
		if err := rc.Read(read); err != nil {
			return // closed
		}
		if rerr != nil {
			continue // EINTR and the like; a closed socket shows up above
		}
		inner, v := decapsulate(buf[:n], d.local, d.vips)
		if v == verdictNotLocal && time.Since(d.lastRefresh) >= localRefreshEvery && d.refreshLocal() == nil {
			inner, v = decapsulate(buf[:n], d.local, d.vips)
		}
		switch v {
		case verdictDecap:
			if _, err := d.tun.Write(inner); err != nil {
				d.writeErrors.Add(1)
				continue
			}
			d.decapsulated.Add(1)
		case verdictNotLocal:
			d.notLocal.Add(1)
		case verdictNotVIP:
			d.notVIP.Add(1)
		default:
			d.bad.Add(1)
		}
	}
}

// refreshLocal replaces the snapshot of the host's IPv4 addresses.
func (d *decap) refreshLocal() error {
	d.lastRefresh = time.Now()
	addrs, err := d.nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list local addresses: %w", err)
	}
	local := make(addrSet, len(addrs))
	for _, a := range addrs {
		if ip4 := a.IP.To4(); ip4 != nil {
			local[[4]byte(ip4)] = struct{}{}
		}
	}
	d.local = local
	return nil
}

// stop closes the raw socket, waits for run to return and logs the
// counters.
func (d *decap) stop(logger *slog.Logger) error {
	err := d.raw.Close()
	<-d.done
	d.raw = nil
	bad, notLocal, notVIP := d.bad.Load(), d.notLocal.Load(), d.notVIP.Load()
	logger.Info("realserver: IPIP decapsulation stopped",
		"decapsulated", d.decapsulated.Load(),
		"rejected", bad+notLocal+notVIP,
		"malformed", bad, "not_local", notLocal, "not_vip", notVIP,
		"tun_write_errors", d.writeErrors.Load())
	if err != nil {
		return fmt.Errorf("realserver: close raw IPIP socket: %w", err)
	}
	return nil
}

// close releases what newDecap created; closing the TUN descriptor
// removes the device.
func (d *decap) close() error {
	var errs []error
	if d.raw != nil {
		errs = append(errs, d.raw.Close())
	}
	if d.tun != nil {
		if err := d.tun.Close(); err != nil {
			errs = append(errs, fmt.Errorf("realserver: close TUN device %s: %w", d.tun.Name(), err))
		}
	}
	if d.nl != nil {
		d.nl.Close()
	}
	return errors.Join(errs...)
}

// ifaceOfDefaultRoute returns the interface of the main table's IPv4
// default route with the lowest metric.
func ifaceOfDefaultRoute() (string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return "", fmt.Errorf("realserver: list routes: %w", err)
	}
	best := -1
	for i, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex > 0 && (best < 0 || r.Priority < routes[best].Priority) {
			best = i
		}
	}
	if best < 0 {
		return "", errors.New("realserver: no IPv4 default route to take the interface from: set Interface")
	}
	ifi, err := net.InterfaceByIndex(routes[best].LinkIndex)
	if err != nil {
		return "", fmt.Errorf("realserver: interface of the default route: %w", err)
	}
	return ifi.Name, nil
}
