package realserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// decap is the userspace IPIP decapsulator of one Run. Everything it uses
// is created by newDecap in the caller's network namespace, so its
// goroutine may run on any thread.
type decap struct {
	tun  *tunDevice
	raw  *os.File        // AF_INET, SOCK_RAW, IPPROTO_IPIP, non-blocking
	nl   *netlink.Handle // for the local-address snapshot
	done chan struct{}   // closed when run returns

	// offloadErr says why the TUN device has no offloads (nil: it has
	// them, and TCP segments are coalesced).
	offloadErr error

	batch *decapBatch // owned by the run goroutine, but for its stats
}

// newDecap creates the TUN device tunName (up, no packet information
// header, virtio_net_hdr and offloads when the kernel takes them), the
// raw socket and a netlink handle, all in the calling thread's network
// namespace.
func newDecap(tunName string, vips []netip.Addr) (_ *decap, err error) {
	set := addrSet{}
	for _, v := range vips {
		set[v.As4()] = struct{}{}
	}
	d := &decap{done: make(chan struct{})}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.tun, d.offloadErr, err = openTUN(tunName, tunOffloads); err != nil {
		return nil, fmt.Errorf("create TUN device %s: %w", tunName, err)
	}
	d.batch = newDecapBatch(set, d.offloadErr == nil)
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
	d.raw = os.NewFile(uintptr(fd), "ipip")
	d.batch.refresh = d.localAddrs
	if d.batch.local, err = d.localAddrs(); err != nil {
		return nil, err
	}
	d.batch.lastRefresh = time.Now()
	return d, nil
}

// decapRcvBuf is the raw IPIP socket's receive buffer.
const decapRcvBuf = 8 << 20

// run reads batches of outer packets with recvmmsg(2) until the raw
// socket is closed, and hands each batch to process. It allocates nothing
// per packet or per batch.
func (d *decap) run() {
	defer close(d.done)
	rc, err := d.raw.SyscallConn()
	if err != nil {
		return
	}
	b := d.batch
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
		b.process(n, d.tun)
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

// stop closes the raw socket, waits for run to return and logs the
// counters.
func (d *decap) stop(logger *slog.Logger) error {
	err := d.raw.Close()
	<-d.done
	d.raw = nil
	s := &d.batch.stats
	bad, notLocal, notVIP := s.bad.Load(), s.notLocal.Load(), s.notVIP.Load()
	logger.Info("realserver: IPIP decapsulation stopped",
		"decapsulated", s.decapsulated.Load(),
		"coalesced_frames", s.coalescedFrames.Load(),
		"coalesced_segments", s.coalescedSegments.Load(),
		"rejected", bad+notLocal+notVIP,
		"malformed", bad, "not_local", notLocal, "not_vip", notVIP,
		"tun_write_errors", s.writeErrors.Load())
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
		errs = append(errs, d.tun.close())
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
