package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// VIP is the conventional virtual IP of the lab's services. The lab never
// configures it: gvsd adds it to the director, gvs-realserver to the reals.
var VIP = netip.AddrFrom4([4]byte{10, 20, 0, 100})

// VIP6 is VIP's IPv6 counterpart on the LAN of a lab with Options.IPv6.
var VIP6 = netip.MustParseAddr("fd00:20::100")

// Addressing of the topology; see the package comment.
var (
	lanNet       = netip.MustParsePrefix("10.20.0.0/24")
	clientAddr   = netip.AddrFrom4([4]byte{10, 10, 0, 2})
	routerClient = netip.AddrFrom4([4]byte{10, 10, 0, 1})
	routerLAN    = netip.AddrFrom4([4]byte{10, 20, 0, 1})
	// generatorAddr is above every rsN (at most .99) and the VIP (.100).
	generatorAddr = netip.AddrFrom4([4]byte{10, 20, 0, 250})

	// With Options.IPv6 every host also has an address of a ULA /64
	// whose last group reads as its IPv4 address's last byte
	// (10.20.0.11 is fd00:20::11).
	lanNet6          = netip.MustParsePrefix("fd00:20::/64")
	routerClient6    = netip.MustParseAddr("fd00:10::1")
	routerLAN6       = netip.MustParseAddr("fd00:20::1")
	clientPrefix6    = "fd00:10::"
	lanPrefix6       = "fd00:20::"
	ipv6PrefixLength = 64
)

// Tunables.
const (
	// defaultPrefix names the demo's namespaces; tests pass their own.
	defaultPrefix = "gvs"
	// defaultReals matches the two real servers of the DESIGN.md picture.
	defaultReals = 2
	// realBase is the host part of rs0's address: rsN has 10.20.0.(10+N).
	realBase = 10
	// maxReals keeps the last real server below the conventional VIP .100.
	maxReals = 89
	// mtu is the MTU of every veth end and the bridge.
	mtu = 1500
	// maxDirectors keeps the last director (10.20.0.9) below rs1 (.11).
	maxDirectors = 8
	// maxClientAddrs keeps the client's addresses in 10.10.0.2..10.10.0.254,
	// clear of the router's .1 and the broadcast address.
	maxClientAddrs = 253
	// maxPrefix bounds Options.Prefix so namespace names stay short.
	maxPrefix = 64
	// linkUpTimeout bounds the wait for every veth to come up in New.
	linkUpTimeout = 5 * time.Second
)

// Options configures New.
type Options struct {
	// Prefix names the namespaces: Prefix+"-client", "-router", "-lan",
	// "-director", "-rs1", "-rs2", ... Default "gvs".
	Prefix string
	// Reals is the number of real servers, default 2; rsN has address
	// 10.20.0.(10+N). At most 89.
	Reals int
	// Generator adds a traffic-generator host "gen" on the LAN bridge,
	// eth0 10.20.0.250/24 (offloads as on every other host), for load
	// tests that send straight at the director.
	Generator bool
	// Backup adds a second director "director2", eth0 10.20.0.3/24, for
	// failover tests: two gvsd that share the VIP through VRRP. It is
	// Directors: 2 (and asks for at least 2 when Directors is set).
	Backup bool
	// Directors is the number of directors, default 1 (2 with Backup), at
	// most 8: "director" 10.20.0.2, then "director2" 10.20.0.3,
	// "director3" 10.20.0.4, ..., each on the LAN bridge with its own MAC,
	// for several active directors behind the router's ECMP route (BGP).
	Directors int
	// ClientAddrs is the number of addresses on the client's eth0,
	// default 1: 10.10.0.2 up to 10.10.0.(1+ClientAddrs), at most 253.
	// Many source addresses make the router's ECMP hash spread flows
	// (Host.DialTCPFrom dials from one of them).
	ClientAddrs int
	// OffloadsOff turns every offload (checksumming, TSO, GSO, GRO, LRO)
	// off on every veth end. By default each keeps the kernel's defaults,
	// as users' hosts, VMs and containers run: frames then carry partial
	// checksums and can be GSO super-frames far above the MTU. Off is the
	// extra case, where every frame is final and within the MTU.
	OffloadsOff bool
	// IPv6 gives every host an IPv6 address beside its IPv4 one (see the
	// package comment: fd00:10::/64 on the client side, fd00:20::/64 on
	// the LAN, Host.Addr6), default routes through the router, which
	// forwards IPv6 too. Off by default: the lab then disables IPv6, so
	// captures hold no neighbour discovery or MLD traffic.
	IPv6 bool
	// Logf, if set, receives progress messages.
	Logf func(format string, args ...any)
}

func (o Options) normalize() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if err := checkPrefix(o.Prefix); err != nil {
		return o, err
	}
	if o.Reals == 0 {
		o.Reals = defaultReals
	}
	if o.Reals < 0 || o.Reals > maxReals {
		return o, fmt.Errorf("lab: %d real servers: want 1 to %d", o.Reals, maxReals)
	}
	if o.Directors == 0 {
		o.Directors = 1
		if o.Backup {
			o.Directors = 2
		}
	}
	if o.Directors < 1 || o.Directors > maxDirectors {
		return o, fmt.Errorf("lab: %d directors: want 1 to %d", o.Directors, maxDirectors)
	}
	if o.Backup && o.Directors < 2 {
		return o, fmt.Errorf("lab: Backup with %d director: Backup is the second director", o.Directors)
	}
	if o.ClientAddrs == 0 {
		o.ClientAddrs = 1
	}
	if o.ClientAddrs < 1 || o.ClientAddrs > maxClientAddrs {
		return o, fmt.Errorf("lab: %d client addresses: want 1 to %d", o.ClientAddrs, maxClientAddrs)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

// checkPrefix accepts prefixes that make valid, unambiguous namespace names.
func checkPrefix(p string) error {
	if p == "" || len(p) > maxPrefix {
		return fmt.Errorf("lab: prefix %q: want 1 to %d characters", p, maxPrefix)
	}
	for i, c := range p {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return fmt.Errorf("lab: prefix %q: want letters, digits and _.- (not first)", p)
		}
	}
	return nil
}

// Host is one namespace of the lab seen as a machine.
type Host struct {
	Name  string           // "client", "router", "director", "rs1", ...
	NS    string           // namespace name, for ip netns exec
	Iface string           // "eth0"; the router's LAN side is "eth1"
	Addr  netip.Addr       // address of Iface
	Addr6 netip.Addr       // IPv6 address of Iface (Options.IPv6), else invalid
	MAC   net.HardwareAddr // of Iface

	lab *Lab
}

// Lab is a built topology. Close removes it.
type Lab struct {
	Client, Router, Director *Host
	Reals                    []*Host
	Generator                *Host        // the LAN traffic generator; nil unless Options.Generator
	Backup                   *Host        // the second director, Directors[1]; nil with one director
	LAN                      netip.Prefix // 10.20.0.0/24
	Gateway                  netip.Addr   // the router's LAN address, 10.20.0.1: the reals' default gateway
	// Directors are every director, Director first (Options.Directors).
	Directors []*Host
	// ClientAddrs are the client's addresses, Client.Addr first
	// (Options.ClientAddrs).
	ClientAddrs []netip.Addr
	// With Options.IPv6: the LAN's IPv6 prefix, fd00:20::/64, and the
	// router's address on it, fd00:20::1 (else invalid).
	LAN6     netip.Prefix
	Gateway6 netip.Addr

	prefix      string
	logf        func(format string, args ...any)
	offloadsOff bool
	ipv6        bool

	mu         sync.Mutex
	namespaces []string // created (or being created), in order
	closed     bool
	lock       *os.File               // the prefix's lock (lockPrefix), held until Close
	closers    map[io.Closer]struct{} // echo servers and captures to stop at Close
}

// log reports progress through Options.Logf.
func (l *Lab) log(format string, args ...any) {
	if l.logf != nil {
		l.logf("lab "+l.prefix+": "+format, args...)
	}
}

// hosts returns every host of the lab.
func (l *Lab) hosts() []*Host {
	return append([]*Host{l.Client, l.Router}, l.lanHosts()...)
}

// lanHosts returns the hosts with an interface on the LAN bridge other
// than the router.
func (l *Lab) lanHosts() []*Host {
	hs := append([]*Host{l.Director}, l.Reals...)
	if l.Generator != nil {
		hs = append(hs, l.Generator)
	}
	if len(l.Directors) > 1 {
		hs = append(hs, l.Directors[1:]...)
	}
	return hs
}

// track registers c to be closed by Lab.Close; it reports false (and does
// not register) if the lab is already closed.
func (l *Lab) track(c io.Closer) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.closers == nil {
		l.closers = make(map[io.Closer]struct{})
	}
	l.closers[c] = struct{}{}
	return true
}

func (l *Lab) untrack(c io.Closer) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.closers, c)
	l.mu.Unlock()
}

// closeTracked closes every echo server and capture still open.
func (l *Lab) closeTracked() error {
	l.mu.Lock()
	cs := make([]io.Closer, 0, len(l.closers))
	for c := range l.closers {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	var errs []error
	for _, c := range cs {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// nsName returns the namespace name of a lab part.
func nsName(prefix, part string) string { return prefix + "-" + part }

// isLabName reports whether name is one a lab with this prefix creates.
func isLabName(prefix, name string) bool {
	rest, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return false
	}
	switch rest {
	case "client", "router", "lan", "director", "gen":
		return true
	}
	if n, ok := strings.CutPrefix(rest, "director"); ok {
		return len(n) == 1 && n[0] >= '2' && n[0] <= '0'+maxDirectors
	}
	digits, ok := strings.CutPrefix(rest, "rs")
	if !ok || digits == "" || digits[0] == '0' || len(digits) > 3 {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// directorName is the host name of director n (1-based): "director",
// "director2", ...
func directorName(n int) string {
	if n == 1 {
		return "director"
	}
	return fmt.Sprintf("director%d", n)
}

// directorAddrN is director n's address, 10.20.0.(1+n).
func directorAddrN(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 20, 0, byte(1 + n)})
}

// clientAddrN is the client's address n (1-based), 10.10.0.(1+n).
func clientAddrN(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 10, 0, byte(1 + n)})
}

// realAddr is rsN's address, 10.20.0.(10+N).
func realAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 20, 0, byte(realBase + n)})
}

// addr6Of is the IPv6 address of a host whose IPv4 address is a: on the
// client side or the LAN, with a's last byte written as the last group
// (10.20.0.11 -> fd00:20::11).
func addr6Of(a netip.Addr) netip.Addr {
	b := a.As4()
	pfx := lanPrefix6
	if b[1] == 10 {
		pfx = clientPrefix6
	}
	return netip.MustParseAddr(fmt.Sprintf("%s%d", pfx, b[3]))
}

// hostMAC is the MAC address the lab gives a host interface: locally
// administered, 02:00 followed by the IPv4 address, so captures read easily.
func hostMAC(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x00, b[0], b[1], b[2], b[3]}
}

// Command returns a command running name with args inside h's namespace,
// through "ip netns exec".
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// DialTCP connects to raddr from inside h's namespace. The connection keeps
// working from any goroutine; the caller closes it.
func (h *Host) DialTCP(ctx context.Context, raddr netip.AddrPort) (net.Conn, error) {
	return h.DialTCPFrom(ctx, netip.Addr{}, raddr)
}

// DialTCPFrom is DialTCP from the local address laddr, one of h's (any
// when laddr is the zero Addr).
func (h *Host) DialTCPFrom(ctx context.Context, laddr netip.Addr, raddr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var d net.Dialer
		if laddr.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(laddr, 0))
		}
		var err error
		c, err = d.DialContext(ctx, network("tcp", raddr.Addr()), raddr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: dial tcp %s from %s: %w", raddr, h.Name, err)
	}
	return c, nil
}

// DialUDP returns a UDP socket in h's namespace connected to raddr. The
// caller closes it.
func (h *Host) DialUDP(ctx context.Context, raddr netip.AddrPort) (*net.UDPConn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network("udp", raddr.Addr()), raddr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: dial udp %s from %s: %w", raddr, h.Name, err)
	}
	return c.(*net.UDPConn), nil
}

// network returns the address-family-specific network for proto and a.
func network(proto string, a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return proto + "4"
	}
	return proto + "6"
}

// Sysctl writes value to the sysctl key inside h's namespace. key is a path
// under /proc/sys such as "net/ipv4/ip_forward"; the dotted form
// "net.ipv4.ip_forward" is accepted when it has no slash.
func (h *Host) Sysctl(key, value string) error {
	path := key
	if !strings.Contains(path, "/") {
		path = strings.ReplaceAll(path, ".", "/")
	}
	path = "/proc/sys/" + strings.TrimPrefix(path, "/")
	err := h.Do(func() error { return os.WriteFile(path, []byte(value), 0) })
	if err != nil {
		return fmt.Errorf("lab: sysctl %s=%s on %s: %w", key, value, h.Name, err)
	}
	return nil
}
