package realserver

import (
	"errors"
	"fmt"
	"net/netip"
)

// Mode is how the director forwards to this real server. The zero value is
// invalid.
type Mode uint8

// Forwarding modes that need a prepared real server.
const (
	DR  Mode = 1 // direct routing: the director rewrites only MAC addresses
	TUN Mode = 2 // IP-in-IP tunnelling (RFC 2003)
)

// String returns the mode as gvs-realserver -mode spells it.
func (m Mode) String() string {
	switch m {
	case DR:
		return "dr"
	case TUN:
		return "tun"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses "dr" or "tun".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "dr":
		return DR, nil
	case "tun":
		return TUN, nil
	}
	return 0, fmt.Errorf("realserver: mode %q: want dr or tun", s)
}

// Decap is how TUN mode decapsulates IPIP.
type Decap uint8

const (
	// DecapAuto (the zero value): in the kernel with eBPF when it takes the
	// program (DecapBPF), with userspace beside it for what the program
	// leaves; userspace alone otherwise.
	DecapAuto Decap = iota
	// DecapBPF: the eBPF program on the LAN interface's TC ingress hook
	// (Linux 6.6 and later), and userspace for what it leaves; Run fails
	// if the kernel refuses the program.
	DecapBPF
	// DecapUserspace: a raw socket and a TUN device alone.
	DecapUserspace
)

// String returns the method as gvs-realserver -decap spells it.
func (d Decap) String() string {
	switch d {
	case DecapAuto:
		return "auto"
	case DecapBPF:
		return "bpf"
	case DecapUserspace:
		return "userspace"
	}
	return fmt.Sprintf("Decap(%d)", uint8(d))
}

// ParseDecap parses "auto", "bpf" or "userspace".
func ParseDecap(s string) (Decap, error) {
	for _, d := range []Decap{DecapAuto, DecapBPF, DecapUserspace} {
		if s == d.String() {
			return d, nil
		}
	}
	return 0, fmt.Errorf("realserver: decap %q: want auto, bpf or userspace", s)
}

// loopback is where a real server keeps its VIPs: local, but never
// answered for by ARP on the LAN once arp_ignore=1. An IPv6 VIP goes there
// as /128 without DAD, and needs no sysctl: Linux answers a neighbour
// solicitation only for an address of the interface it arrived on
// (ndisc_recv_ns looks the target up strictly on that device), so the real
// never claims the VIP on the LAN, yet takes packets to it on any
// interface (TestRunDRIPv6 checks both).
const loopback = "lo"

// has4 reports whether vips holds an IPv4 address: only those need the
// ARP sysctls and, in TUN mode, IPIP decapsulation.
func has4(vips []netip.Addr) bool {
	for _, v := range vips {
		if v.Is4() {
			return true
		}
	}
	return false
}

// has6 reports whether vips holds an IPv6 address: in TUN mode, those need
// IPv6-in-IPv6 decapsulation.
func has6(vips []netip.Addr) bool {
	for _, v := range vips {
		if v.Is6() {
			return true
		}
	}
	return false
}

// DefaultTunName is the TUN device Run creates when Options.TunName is
// empty.
const DefaultTunName = "gvstun0"

// Options says what Run sets up.
type Options struct {
	VIPs      []netip.Addr
	Mode      Mode
	Interface string // the LAN interface for the ARP sysctls; default: the interface of the default route
	TunName   string // TUN mode: the tunnel device; default DefaultTunName
	Decap     Decap  // TUN mode: how to decapsulate
}

// check validates o and fills in TunName.
func (o *Options) check() error {
	var errs []error
	if len(o.VIPs) == 0 {
		errs = append(errs, errors.New("no VIPs"))
	}
	seen := map[netip.Addr]bool{}
	for _, v := range o.VIPs {
		switch {
		case !v.Is4() && !v.Is6() || v.Is4In6() || v.Zone() != "":
			errs = append(errs, fmt.Errorf("VIP %s: not an IPv4 or IPv6 address without a zone", v))
		case v.IsUnspecified() || v.IsLoopback() || v.IsMulticast() || v.IsLinkLocalUnicast() || v == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			errs = append(errs, fmt.Errorf("VIP %s: not a unicast address", v))
		case seen[v]:
			errs = append(errs, fmt.Errorf("VIP %s: listed twice", v))
		}
		seen[v] = true
	}
	if o.Mode != DR && o.Mode != TUN {
		errs = append(errs, fmt.Errorf("mode %d: want DR or TUN", o.Mode))
	}
	if o.TunName == "" {
		o.TunName = DefaultTunName
	}
	if len(o.TunName) > 15 {
		errs = append(errs, fmt.Errorf("tunnel name %q: longer than 15 bytes", o.TunName))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("realserver: %w", err)
	}
	return nil
}
