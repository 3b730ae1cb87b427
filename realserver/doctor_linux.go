package realserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/gvs-lb/gvs/arpctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Where the doctor reads sockets and processes. /proc/net is a link to
// /proc/self/net, the tables of the process's main thread; a doctor run
// from a thread in another network namespace (as tests do) must read its
// own thread's tables, which /proc/thread-self (Linux 3.17) gives.
const (
	procRoot   = "/proc"
	procNetDir = "/proc/thread-self/net"
	procNetNS  = "/proc/thread-self/ns/net"
)

// gatherHost reads, in the network namespace of the calling thread, the
// interfaces and their IPv4 and IPv6 addresses, the egress interfaces, the
// sockets of o.Proto when o has ports, in TUN mode the gvs-realserver
// processes, and with IPv6 VIPs the proxy neighbour entries. Sysctls are read later, through arpctl.ReadSysctl.
func gatherHost(o DoctorOptions) (hostState, error) {
	h := hostState{sysctl: arpctl.ReadSysctl}
	links, err := netlink.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return h, fmt.Errorf("realserver: list interfaces: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return h, fmt.Errorf("realserver: list addresses: %w", err)
	}
	byIndex := make(map[int]int, len(links))
	for _, l := range links {
		a := l.Attrs()
		byIndex[a.Index] = len(h.links)
		h.links = append(h.links, linkState{
			name:     a.Name,
			kind:     l.Type(),
			up:       a.Flags&net.FlagUp != 0,
			loopback: a.Flags&net.FlagLoopback != 0,
			noARP:    a.RawFlags&unix.IFF_NOARP != 0,
		})
	}
	for _, a := range addrs {
		i, found := byIndex[a.LinkIndex]
		ip, valid := netip.AddrFromSlice(a.IP)
		if !found || !valid {
			continue
		}
		ones, _ := a.Mask.Size()
		h.links[i].addrs = append(h.links[i].addrs, netip.PrefixFrom(ip.Unmap(), ones))
	}

	switch {
	case len(o.Interfaces) > 0:
		for _, n := range o.Interfaces {
			if _, found := findLink(h.links, n); !found {
				return h, fmt.Errorf("realserver: interface %s: no such interface", n)
			}
		}
		h.egress = o.Interfaces
	default:
		if n, err := ifaceOfDefaultRoute(); err == nil {
			h.egress = []string{n}
		} else {
			h.egress = lanLinks(h.links) // no default route: every interface ARP runs on
		}
	}

	if len(o.Ports) > 0 {
		if h.sockets, err = readProcNet(procNetDir, o.Proto); err != nil {
			return h, err
		}
	}
	for _, v := range o.VIPs {
		if !v.Is6() {
			continue
		}
		ns, err := netlink.NeighProxyList(0, netlink.FAMILY_V6)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return h, fmt.Errorf("realserver: list proxy neighbour entries: %w", err)
		}
		for _, n := range ns {
			ip, valid := netip.AddrFromSlice(n.IP)
			if !valid {
				continue
			}
			dev := fmt.Sprintf("if%d", n.LinkIndex)
			if i, found := byIndex[n.LinkIndex]; found {
				dev = h.links[i].name
			}
			h.ndProxies = append(h.ndProxies, ndProxy{addr: ip, dev: dev})
		}
		break
	}
	if o.Mode == TUN {
		netns, _ := os.Readlink(procNetNS) // unreadable: count every process as ours
		if h.procs, err = realServerProcs(procRoot, netns); err != nil {
			return h, err
		}
	}
	return h, nil
}

func findLink(links []linkState, name string) (linkState, bool) {
	for _, l := range links {
		if l.name == name {
			return l, true
		}
	}
	return linkState{}, false
}
