package realserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// decap is the userspace decapsulator of one Run: IPIP for its IPv4 VIPs
// and IPv6-in-IPv6 for its IPv6 ones, each read from a raw socket of its
// own by a goroutine of its own, both writing the inner packets to one
// TUN device. Everything it uses is created by newDecap in the caller's
// network namespace, so its goroutines may run on any thread.
type decap struct {
	tun  *tunDevice
	tun6 *tunDevice      // the same device, with buffers of its own for the IPv6 goroutine
	raw  *os.File        // AF_INET, SOCK_RAW, IPPROTO_IPIP, non-blocking; nil without IPv4 VIPs
	raw6 *os.File        // AF_INET6, SOCK_RAW, next header 41, non-blocking; nil without IPv6 VIPs
	nl   *netlink.Handle // for the local-address snapshots
	wg   sync.WaitGroup  // the run goroutines

	// offloadErr says why the TUN device has no offloads (nil: it has
	// them, and TCP segments are coalesced).
	offloadErr error

	// The batches, owned by the run goroutines but for their stats: IPIP
	// (nil without IPv4 VIPs) and IPv6-in-IPv6 (nil without IPv6 VIPs).
	batch, batch6 *decapBatch
}

// newDecap creates the TUN device tunName (up, no packet information
// header, virtio_net_hdr and offloads when the kernel takes them), a raw
// socket per address family of vips and a netlink handle, all in the
// calling thread's network namespace.
func newDecap(tunName string, vips []netip.Addr) (_ *decap, err error) {
	set, set6 := addrSet{}, addrSet6{}
	for _, v := range vips {
		if v.Is4() {
			set[v.As4()] = struct{}{}
		} else {
			set6[v.As16()] = struct{}{}
		}
	}
	d := &decap{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.tun, d.offloadErr, err = openTUN(tunName, tunOffloads); err != nil {
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
	if len(set) > 0 {
		d.batch = newDecapBatch(set, d.offloadErr == nil)
		if d.raw, err = rawSocket(unix.AF_INET, unix.IPPROTO_IPIP, "ipip"); err != nil {
			return nil, err
		}
		d.batch.refresh = d.localAddrs
		if d.batch.local, err = d.localAddrs(); err != nil {
			return nil, err
		}
		d.batch.lastRefresh = time.Now()
	}
	if len(set6) > 0 {
		d.batch6 = newDecapBatch6(set6, d.offloadErr == nil)
		d.tun6 = d.tun.sharing()
		if d.raw6, err = rawSocket(unix.AF_INET6, protoIPv6, "ip6ip6"); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// rawSocket opens a non-blocking raw socket of family for the IP protocol
// (or IPv6 next header) proto, with decapRcvBuf of receive buffer.
func rawSocket(family, proto int, name string) (*os.File, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("raw %s socket: %w", name, err)
	}
	// A bulk TCP stream comes in bursts of dozens of segments (the
	// director cuts its GSO frames), more than the default receive buffer
	// (about 200 KiB of truesize) holds while this goroutine waits for the
	// CPU. Room for a few milliseconds at line rate; SO_RCVBUFFORCE passes
	// net.core.rmem_max as root, and without it the kernel caps SO_RCVBUF
	// there.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, decapRcvBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, decapRcvBuf)
	}
	// A non-blocking descriptor joins the runtime poller, so Close wakes a
	// blocked read.
	return os.NewFile(uintptr(fd), name), nil
}

// decapRcvBuf is a raw socket's receive buffer.
const decapRcvBuf = 8 << 20

// start runs a decapsulation goroutine per raw socket; stop ends them.
func (d *decap) start() {
	if d.raw != nil {
		d.wg.Add(1)
		go d.run(d.raw, d.batch, d.tun)
	}
	if d.raw6 != nil {
		d.wg.Add(1)
		go d.run(d.raw6, d.batch6, d.tun6)
	}
}

// run reads batches of packets from raw with recvmmsg(2) until it is
// closed, and hands each batch to b.process, which writes to w. It
// allocates nothing per packet or per batch.
func (d *decap) run(raw *os.File, b *decapBatch, w tunWriter) {
	defer d.wg.Done()
	rc, err := raw.SyscallConn()
	if err != nil {
		return
	}
	r := newMmsgReader(b.bufs)
	var n int
	var rerr unix.Errno
	read := func(fd uintptr) bool {
		n, rerr = r.read(int(fd), b.sizes)
		return rerr != unix.EAGAIN
	}
	for {
		if err := rc.Read(read); err != nil {
			return // closed
		}
		if rerr != 0 {
			continue // EINTR and the like; a closed socket shows up above
		}
		b.process(n, w)
	}
}

// localAddrs returns a snapshot of the host's IPv4 addresses.
func (d *decap) localAddrs() (addrSet, error) {
	addrs, err := d.nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list local addresses: %w", err)
	}
	local := make(addrSet, len(addrs))
	for _, a := range addrs {
		if ip4 := a.IP.To4(); ip4 != nil {
			local[[4]byte(ip4)] = struct{}{}
		}
	}
	return local, nil
}

// localAddrs6 returns a snapshot of the host's IPv6 addresses.
func (d *decap) localAddrs6() (addrSet6, error) {
	addrs, err := d.nl.AddrList(nil, netlink.FAMILY_V6)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list local IPv6 addresses: %w", err)
	}
	local := make(addrSet6, len(addrs))
	for _, a := range addrs {
		if len(a.IP) == 16 && a.IP.To4() == nil {
			local[[16]byte(a.IP)] = struct{}{}
		}
	}
	return local, nil
}

// stop closes the raw sockets, waits for the run goroutines to return and
// logs the counters of each family.
func (d *decap) stop(logger *slog.Logger) error {
	var errs []error
	for _, raw := range []*os.File{d.raw, d.raw6} {
		if raw != nil {
			if err := raw.Close(); err != nil {
				errs = append(errs, fmt.Errorf("realserver: close raw socket %s: %w", raw.Name(), err))
			}
		}
	}
	d.wg.Wait()
	d.raw, d.raw6 = nil, nil
	logStats := func(msg string, s *decapStats) {
		bad, notLocal, notVIP := s.bad.Load(), s.notLocal.Load(), s.notVIP.Load()
		logger.Info(msg,
			"decapsulated", s.decapsulated.Load(),
			"coalesced_frames", s.coalescedFrames.Load(),
			"coalesced_segments", s.coalescedSegments.Load(),
			"rejected", bad+notLocal+notVIP,
			"malformed", bad, "not_local", notLocal, "not_vip", notVIP,
			"tun_write_errors", s.writeErrors.Load())
	}
	if d.batch != nil {
		logStats("realserver: IPIP decapsulation stopped", &d.batch.stats)
	}
	if d.batch6 != nil {
		logStats("realserver: IPv6-in-IPv6 decapsulation stopped", &d.batch6.stats)
	}
	return errors.Join(errs...)
}

// close releases what newDecap created; closing the TUN descriptor
// removes the device.
func (d *decap) close() error {
	var errs []error
	for _, raw := range []*os.File{d.raw, d.raw6} {
		if raw != nil {
			errs = append(errs, raw.Close())
		}
	}
	if d.tun != nil {
		errs = append(errs, d.tun.close())
	}
	if d.nl != nil {
		d.nl.Close()
	}
	return errors.Join(errs...)
}

// ifaceOfDefaultRoute returns the interface of the main table's IPv4
// default route with the lowest metric, or when there is none (an IPv6-only
// host) of the IPv6 one.
func ifaceOfDefaultRoute() (string, error) {
	name, err := ifaceOfDefaultRouteOf(netlink.FAMILY_V4)
	if err != nil {
		if n6, err6 := ifaceOfDefaultRouteOf(netlink.FAMILY_V6); err6 == nil {
			return n6, nil
		}
	}
	return name, err
}

// ifaceOfDefaultRouteOf is ifaceOfDefaultRoute for one address family.
func ifaceOfDefaultRouteOf(family int) (string, error) {
	routes, err := netlink.RouteList(nil, family)
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
		return "", errors.New("realserver: no default route to take the interface from: set Interface")
	}
	ifi, err := net.InterfaceByIndex(routes[best].LinkIndex)
	if err != nil {
		return "", fmt.Errorf("realserver: interface of the default route: %w", err)
	}
	return ifi.Name, nil
}
