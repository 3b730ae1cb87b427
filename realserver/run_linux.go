package realserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/arpctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Run sets the host up as a real server for o, blocks until ctx is done,
// then undoes everything it changed: VIPs it added are removed from lo,
// sysctls are restored, the tunnel device is removed. It works in the
// network namespace of the calling thread. logger may be nil.
//
// Set-up order keeps the host from ever answering ARP for a VIP: the
// sysctls come before the VIPs, and leave after them. IPv6 VIPs go on lo
// as /128 without DAD, with no ARP sysctl (see loopback); in TUN mode they
// are reached by IPv6-in-IPv6, decapsulated like IPIP.
func Run(ctx context.Context, o Options, logger *slog.Logger) (err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := o.check(); err != nil {
		return err
	}
	// The LAN interface is for the ARP sysctls (IPv4 VIPs) and the eBPF
	// decapsulation (TUN mode): IPv6 VIPs in DR mode alone need neither.
	need4 := has4(o.VIPs)
	ifname := o.Interface
	if ifname == "" && (need4 || o.Mode == TUN) {
		if ifname, err = ifaceOfDefaultRoute(); err != nil {
			return err
		}
	} else if ifname != "" {
		if _, err := net.InterfaceByName(ifname); err != nil {
			return fmt.Errorf("realserver: interface %s: %w", ifname, err)
		}
	}

	// undo holds the inverse of every step taken, run last to first.
	var undo []func() error
	teardown := func() error {
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		undo = nil
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, teardown())
		}
	}()

	var d *decap
	var bpf *bpfDecap
	sysctlIfaces := []string{ifname}
	if o.Mode == TUN {
		if d, err = newDecap(o.TunName, o.VIPs); err != nil {
			return fmt.Errorf("realserver: %w", err)
		}
		undo = append(undo, d.close)
		sysctlIfaces = append(sysctlIfaces, o.TunName)
		if d.offloadErr != nil {
			logger.Warn("realserver: TUN device without offloads: one write per inner packet, no TCP coalescing",
				"tun", o.TunName, "reason", d.offloadErr)
		}
		if has6(o.VIPs) {
			// The inner IPv6 packets arrive on the TUN device: IPv6 must be
			// on there, whatever the host's default for new interfaces.
			restore, err := arpctl.Apply([]arpctl.Sysctl{{Key: "net/ipv6/conf/" + o.TunName + "/disable_ipv6", Value: "0",
				Why: "the TUN device takes the decapsulated IPv6 packets"}})
			if err != nil {
				return fmt.Errorf("realserver: %w", err)
			}
			undo = append(undo, restore)
		}
		if o.Decap != DecapUserspace {
			vips, vips6 := addrSet{}, addrSet6{}
			for _, v := range o.VIPs {
				if v.Is4() {
					vips[v.As4()] = struct{}{}
				} else {
					vips6[v.As16()] = struct{}{}
				}
			}
			var b *bpfDecap
			local, err := d.localAddrs()
			var local6 addrSet6
			if err == nil {
				local6, err = d.localAddrs6()
			}
			if err == nil {
				b, err = newBPFDecap(ifname, vips, vips6, local, local6)
			}
			switch {
			case err != nil && o.Decap == DecapBPF:
				return fmt.Errorf("realserver: decapsulation in the kernel (-decap bpf): %w", err)
			case err != nil:
				logger.Info("realserver: decapsulation in userspace only: the kernel did not take the eBPF program", "reason", err)
			default:
				bpf = b
				bpf.follow(d.localAddrs, d.localAddrs6)
				undo = append(undo, func() error {
					dec, failed := bpf.counts()
					logger.Info("realserver: eBPF decapsulation stopped", "interface", ifname,
						"bpf_decapsulated", dec, "bpf_failed", failed)
					return bpf.close()
				})
			}
		}
	}

	if need4 {
		restore, err := arpctl.Apply(arpctl.RealServerSysctls(sysctlIfaces...))
		if err != nil {
			return fmt.Errorf("realserver: %w", err)
		}
		undo = append(undo, restore)
	}

	for _, vip := range o.VIPs {
		added, err := arpctl.AddVIP(loopback, vip)
		if err != nil {
			return fmt.Errorf("realserver: %w", err)
		}
		if added {
			undo = append(undo, func() error { return arpctl.RemoveVIP(loopback, vip) })
		} else {
			logger.Info("realserver: VIP already on lo; leaving it there at exit", "vip", vip)
		}
	}

	for _, vip := range o.VIPs {
		if vip.Is6() && !waitLocal(ctx, vip) {
			logger.Warn("realserver: the kernel has not made the IPv6 VIP local yet: packets to it may be lost for a while",
				"vip", vip, "waited", localWait)
		}
	}

	if d != nil {
		d.start() // goroutines owned by Run; stopped by the undo below
		undo = append(undo, func() error { return d.stop(logger) })
	}
	attrs := []any{"mode", o.Mode, "vips", o.VIPs, "interface", ifname}
	if d != nil {
		attrs = append(attrs, "tun", o.TunName, "tun_offloads", d.offloadErr == nil, "decap", "userspace")
		if bpf != nil {
			attrs[len(attrs)-1] = "bpf+userspace"
		}
	}
	logger.Info("realserver: ready", attrs...)

	<-ctx.Done()
	logger.Info("realserver: stopping")
	return teardown()
}

// localWait bounds how long Run waits for an IPv6 VIP to become local: the
// kernel inserts the local route of a new IPv6 address from a work queue
// (addrconf's DAD work, which runs even with nodad), usually within a
// millisecond, and until then a packet to the VIP is not taken.
const localWait = 2 * time.Second

// waitLocal waits, within localWait, until the kernel routes vip as local
// (RTN_LOCAL), so that "ready" means a packet to it is taken, and reports
// whether it is.
func waitLocal(ctx context.Context, vip netip.Addr) bool {
	deadline := time.Now().Add(localWait)
	for {
		if rs, err := netlink.RouteGet(vip.AsSlice()); err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}
