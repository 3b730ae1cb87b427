package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/offload"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted, by ip-netns(8) and
// github.com/vishvananda/netns alike.
const netnsDir = "/run/netns"

// New builds the topology: it removes stale namespaces with the same prefix
// first (a lab left behind by a crash), and on any failure tears down what it
// built. It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
func New(o Options) (*Lab, error) {
	o, err := o.normalize()
	if err != nil {
		return nil, err
	}
	lock, err := lockPrefix(o.Prefix)
	if err != nil {
		return nil, err
	}
	if err := CleanupStale(o.Prefix); err != nil {
		lock.Close()
		return nil, err
	}
	l := &Lab{LAN: lanNet, Gateway: routerLAN, prefix: o.Prefix, logf: o.Logf, offloadsOff: o.OffloadsOff, ipv6: o.IPv6, lock: lock}
	if o.IPv6 {
		l.LAN6, l.Gateway6 = lanNet6, routerLAN6
	}
	host := func(name, iface string, addr netip.Addr) *Host {
		h := &Host{Name: name, NS: nsName(o.Prefix, name), Iface: iface, Addr: addr, MAC: hostMAC(addr), lab: l}
		if o.IPv6 {
			h.Addr6 = addr6Of(addr)
		}
		return h
	}
	l.Client = host("client", "eth0", clientAddr)
	l.Router = host("router", "eth0", routerClient)
	for i := 1; i <= o.ClientAddrs; i++ {
		l.ClientAddrs = append(l.ClientAddrs, clientAddrN(i))
	}
	for i := 1; i <= o.Directors; i++ {
		l.Directors = append(l.Directors, host(directorName(i), "eth0", directorAddrN(i)))
	}
	l.Director = l.Directors[0]
	if len(l.Directors) > 1 {
		l.Backup = l.Directors[1]
	}
	for i := 1; i <= o.Reals; i++ {
		l.Reals = append(l.Reals, host(fmt.Sprintf("rs%d", i), "eth0", realAddr(i)))
	}
	if o.Generator {
		l.Generator = host("gen", "eth0", generatorAddr)
	}

	b := &builder{lab: l, ns: make(map[string]netns.NsHandle), nl: make(map[string]*netlink.Handle)}
	err = b.build()
	b.release()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("lab: build %s: %w", o.Prefix, err), l.Close())
	}
	gen := ""
	if l.Generator != nil {
		gen = ", generator " + l.Generator.Addr.String()
	}
	for _, d := range l.Directors[1:] {
		gen += ", " + d.Name + " " + d.Addr.String()
	}
	if n := len(l.ClientAddrs); n > 1 {
		gen += fmt.Sprintf(", %d client addresses %s-%s", n, l.ClientAddrs[0], l.ClientAddrs[n-1])
	}
	if o.IPv6 {
		gen += fmt.Sprintf(", IPv6: client %s, router %s/%s, director %s", l.Client.Addr6, l.Router.Addr6, l.Gateway6, l.Director.Addr6)
	}
	o.Logf("lab %s: ready: client %s, router %s/%s, director %s, %d real servers%s", o.Prefix,
		l.Client.Addr, l.Router.Addr, l.Gateway, l.Director.Addr, len(l.Reals), gen)
	return l, nil
}

// Close stops the lab's echo servers and captures and removes every
// namespace it made (and with them all veths and the bridge). It is
// idempotent.
func (l *Lab) Close() error {
	errs := []error{l.closeTracked()}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	names := l.namespaces
	l.mu.Unlock()
	for i := len(names) - 1; i >= 0; i-- {
		if err := deleteNamed(names[i]); err != nil {
			errs = append(errs, fmt.Errorf("lab: delete namespace %s: %w", names[i], err))
		}
	}
	l.log("removed %d namespaces", len(names))
	if l.lock != nil {
		// The file goes while it is still locked, so that /run/lock does
		// not collect one per lab; lockPrefix checks that the file it
		// locked is still the one at the path.
		os.Remove(l.lock.Name())
		errs = append(errs, l.lock.Close())
	}
	return errors.Join(errs...)
}

// lockDir holds the labs' lock files.
const lockDir = "/run/lock"

// lockPrefix takes the lock of a lab prefix, an flock on a file named
// after it that the kernel releases when the process ends, or fails at
// once naming the process that holds it: two labs with one prefix share
// namespace names, and the second one's clean-up would tear down the
// first one's hosts under it.
func lockPrefix(prefix string) (*os.File, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: lock %s: %w", prefix, err)
	}
	path := filepath.Join(lockDir, "gvs-lab-"+prefix+".lock")
	for range 3 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lab: lock %s: %w", prefix, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			holder, _ := os.ReadFile(path)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("lab: prefix %q is in use by another lab (pid %s, %s): wait for it or pick another prefix", prefix, strings.TrimSpace(string(holder)), path)
			}
			return nil, fmt.Errorf("lab: lock %s: %w", path, err)
		}
		// A lab that closed meanwhile removed the file it held: ours
		// may be that one, unlinked, and another lab's lock on a new
		// file at the path would not exclude us. Take the path's.
		at, err1 := os.Stat(path)
		locked, err2 := f.Stat()
		if err1 != nil || err2 != nil || !os.SameFile(at, locked) {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		return f, nil
	}
	return nil, fmt.Errorf("lab: lock %s: the lock file kept changing under us", path)
}

// CleanupStale removes the namespaces a lab with this prefix would create
// (prefix-client, -router, -lan, -director, -rsN), whoever made them.
func CleanupStale(prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab: clean up %s: %w", prefix, err)
	}
	var errs []error
	for _, e := range entries {
		if !isLabName(prefix, e.Name()) {
			continue
		}
		if err := deleteNamed(e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("lab: clean up namespace %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// deleteNamed removes the named namespace; one already gone is no error,
// and a name file left unmounted by a crash mid-creation is removed too.
func deleteNamed(name string) error {
	err := netns.DeleteNamed(name)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EINVAL): // not a mount point
		if err := os.Remove(filepath.Join(netnsDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return err
}

// SetRealGateway replaces the default route of every real server with one
// via gw (NAT mode points it at the director; l.Gateway restores it). An
// IPv6 gw (Options.IPv6) replaces the IPv6 default route and leaves the
// IPv4 one alone, and the other way round.
func (l *Lab) SetRealGateway(gw netip.Addr) error {
	return l.SetGateway(gw, l.Reals...)
}

// SetGateway is SetRealGateway for the real servers reals only: in one lab,
// the reals of a NAT service can route through the director while those of
// a DR service route through the router.
func (l *Lab) SetGateway(gw netip.Addr, reals ...*Host) error {
	lan := l.LAN
	if gw.Is6() {
		lan = l.LAN6
	}
	if !lan.IsValid() || !lan.Contains(gw) {
		return fmt.Errorf("lab: real-server gateway %s is outside the LAN %s", gw, lan)
	}
	for _, r := range reals {
		if gw == r.Addr || gw == r.Addr6 {
			return fmt.Errorf("lab: real-server gateway %s is %s itself", gw, r.Name)
		}
	}
	var names []string
	for _, r := range reals {
		if err := r.setDefaultRoute(gw); err != nil {
			return err
		}
		names = append(names, r.Name)
	}
	l.log("%s route via %s", strings.Join(names, ", "), gw)
	return nil
}

// setDefaultRoute replaces h's default route with one via gw on h.Iface.
func (h *Host) setDefaultRoute(gw netip.Addr) error {
	nl, err := h.netlink()
	if err != nil {
		return err
	}
	defer nl.Close()
	link, err := nl.LinkByName(h.Iface)
	if err != nil {
		return fmt.Errorf("lab: default route of %s: %w", h.Name, err)
	}
	if err := nl.RouteReplace(defaultRoute(link, gw)); err != nil {
		return fmt.Errorf("lab: default route of %s via %s: %w", h.Name, gw, err)
	}
	return nil
}

func defaultRoute(link netlink.Link, gw netip.Addr) *netlink.Route {
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if gw.Is6() {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw.AsSlice()}
}

// buildFault, set only by tests, makes New fail halfway through building.
var buildFault func() error

// builder holds the namespace and netlink handles New needs while building.
type builder struct {
	lab *Lab
	ns  map[string]netns.NsHandle      // by lab part: "lan", "client", ...
	nl  map[string]*netlink.Handle     // sockets inside ns[part]
	up  []func() (netlink.Link, error) // links to wait for
}

func (b *builder) release() {
	for _, h := range b.nl {
		h.Close()
	}
	for _, h := range b.ns {
		h.Close()
	}
}

// veth is one veth pair to create: the end named name in namespace part
// (created by that namespace's netlink handle) and the end peer in peerPart.
type veth struct {
	part, name         string
	peerPart, peerName string
	peerAddr           netip.Addr // the host address on the peer end
	master             int        // bridge index for the first end, or 0
}

func (b *builder) build() error {
	l := b.lab
	parts := []string{"lan", "client", "router"}
	for _, h := range l.lanHosts() {
		parts = append(parts, h.Name)
	}
	for _, p := range parts {
		if err := b.addNamespace(p); err != nil {
			return err
		}
	}

	// The LAN: br0 in its own namespace.
	lan := b.nl["lan"]
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0", MTU: mtu}}
	if l.ipv6 {
		// A plain wire for neighbour discovery's multicast too: no MLD
		// snooping deciding which port hears a solicitation.
		off := false
		br.MulticastSnooping = &off
	}
	if err := lan.LinkAdd(br); err != nil {
		return fmt.Errorf("add br0: %w", err)
	}
	brLink, err := lan.LinkByName("br0")
	if err != nil {
		return fmt.Errorf("find br0: %w", err)
	}
	if err := lan.LinkSetUp(brLink); err != nil {
		return fmt.Errorf("set br0 up: %w", err)
	}
	if err := b.setLoUp("lan"); err != nil {
		return err
	}

	pairs := []veth{{part: "router", name: "eth0", peerPart: "client", peerName: "eth0", peerAddr: clientAddr}}
	for _, h := range append([]*Host{l.Router}, l.lanHosts()...) {
		iface, addr := h.Iface, h.Addr
		if h == l.Router {
			iface, addr = "eth1", routerLAN
		}
		pairs = append(pairs, veth{part: "lan", name: h.Name, peerPart: h.Name, peerName: iface, peerAddr: addr, master: brLink.Attrs().Index})
	}
	for _, v := range pairs {
		if err := b.addVeth(v); err != nil {
			return err
		}
	}
	// The router's client side carries its own address and MAC.
	if err := b.configure("router", "eth0", routerClient); err != nil {
		return err
	}
	// The client's further addresses (Options.ClientAddrs), secondaries
	// of the same /24.
	for _, a := range l.ClientAddrs[1:] {
		if err := b.addAddr("client", "eth0", a); err != nil {
			return err
		}
	}
	if buildFault != nil {
		if err := buildFault(); err != nil {
			return err
		}
	}

	// Addresses, routes, forwarding.
	for _, h := range l.hosts() {
		if err := b.setLoUp(h.Name); err != nil {
			return err
		}
	}
	gateways := []netip.Addr{routerClient}
	if l.ipv6 {
		gateways = append(gateways, routerClient6)
	}
	for _, gw := range gateways {
		if err := b.addRoute("client", "eth0", gw); err != nil {
			return err
		}
	}
	for _, h := range l.lanHosts() {
		for _, gw := range []netip.Addr{routerLAN, l.Gateway6} {
			if !gw.IsValid() {
				continue
			}
			if err := b.addRoute(h.Name, h.Iface, gw); err != nil {
				return err
			}
		}
	}
	if err := doIn(b.ns["router"], l.Router.NS, func() error {
		if l.ipv6 {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0); err != nil {
				return err
			}
		}
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0)
	}); err != nil {
		return fmt.Errorf("router forwarding: %w", err)
	}
	return b.waitUp()
}

// addNamespace creates the named namespace of a lab part, with the
// defaults of nsSysctls, and opens a netlink handle in it.
func (b *builder) addNamespace(part string) error {
	l := b.lab
	name := nsName(l.prefix, part)

	// NewNamed switches the calling thread into the new namespace: do it on
	// a locked thread of its own and switch back.
	type result struct {
		ns  netns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err == nil {
			err = setSysctls(nsSysctls(part, l.ipv6))
		}
		if rerr := netns.Set(orig); rerr != nil {
			done <- result{ns: ns, err: errors.Join(err, rerr)} // the thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		done <- result{ns: ns, err: err}
	}()
	r := <-done
	// Someone else's namespace of that name (created since CleanupStale)
	// is not ours to delete.
	if !errors.Is(r.err, os.ErrExist) {
		l.mu.Lock()
		l.namespaces = append(l.namespaces, name)
		l.mu.Unlock()
	}
	if r.ns.IsOpen() {
		b.ns[part] = r.ns
	}
	if r.err != nil {
		return fmt.Errorf("create namespace %s: %w", name, r.err)
	}
	nl, err := netlink.NewHandleAt(r.ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", name, err)
	}
	b.nl[part] = nl
	l.log("namespace %s", name)
	return nil
}

// sysctl is one setting New makes in a fresh namespace, with its reason.
type sysctl struct{ key, value, why string }

// nsSysctls returns the settings of a lab part's namespace, with IPv6 on
// (Options.IPv6) or off.
func nsSysctls(part string, ipv6 bool) []sysctl {
	s := []sysctl{
		{"net/ipv6/conf/all/disable_ipv6", "1", "captures hold no router solicitations or MLD reports"},
		{"net/ipv6/conf/default/disable_ipv6", "1", "the same for interfaces created later"},
	}
	if ipv6 {
		s = []sysctl{
			{"net/ipv6/conf/default/accept_dad", "0", "addresses (link-local ones too) are usable at once: the lab's are unique"},
			{"net/ipv6/conf/default/router_solicitations", "0", "no router solicitations: routes are static"},
			{"net/ipv6/conf/default/accept_ra", "0", "no addresses or routes from router advertisements"},
			{"net/ipv6/conf/default/autoconf", "0", "the same"},
		}
	}
	if part == "router" {
		// Several directors announce a VIP over BGP and the router's route
		// to it has a next hop per director (ECMP): policy 1 hashes a
		// forwarded flow by its addresses and ports (L4), so a client's
		// connections spread over the directors; the default, 0, hashes
		// addresses only and puts every flow of one client on one director.
		s = append(s, sysctl{"net/ipv4/fib_multipath_hash_policy", "1", "ECMP over the directors by L4 hash"})
	}
	if part == "lan" {
		for _, k := range []string{"iptables", "ip6tables", "arptables"} {
			s = append(s, sysctl{"net/bridge/bridge-nf-call-" + k, "0", "with br_netfilter loaded, the LAN stays a plain wire"})
		}
	}
	return s
}

// setSysctls writes settings in the calling thread's namespace. A key the
// kernel lacks (no IPv6, no br_netfilter) has nothing to set.
func setSysctls(settings []sysctl) error {
	for _, s := range settings {
		err := os.WriteFile("/proc/sys/"+s.key, []byte(s.value), 0)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sysctl %s=%s: %w", s.key, s.value, err)
		}
	}
	return nil
}

// addVeth creates the pair v, enslaves its first end to the bridge if asked,
// turns offloads off on both ends, brings them up and configures the host
// end's address.
func (b *builder) addVeth(v veth) error {
	la := netlink.LinkAttrs{Name: v.name, MTU: mtu, MasterIndex: v.master}
	if v.part == "router" {
		la.HardwareAddr = hostMAC(routerClient)
	}
	link := &netlink.Veth{
		LinkAttrs:        la,
		PeerName:         v.peerName,
		PeerNamespace:    netlink.NsFd(int(b.ns[v.peerPart])),
		PeerHardwareAddr: hostMAC(v.peerAddr),
		PeerMTU:          mtu,
	}
	if err := b.nl[v.part].LinkAdd(link); err != nil {
		return fmt.Errorf("add veth %s/%s -- %s/%s: %w", v.part, v.name, v.peerPart, v.peerName, err)
	}
	if v.part == "lan" {
		if err := b.linkUp(v.part, v.name); err != nil {
			return err
		}
	}
	return b.configure(v.peerPart, v.peerName, v.peerAddr)
}

// configure turns offloads off on the link name in part, brings it up and,
// if addr is valid, gives it addr/24.
func (b *builder) configure(part, name string, addr netip.Addr) error {
	if err := b.linkUp(part, name); err != nil {
		return err
	}
	return b.addAddr(part, name, addr)
}

// addAddr gives the link name in part one more address, addr/24, and with
// Options.IPv6 its IPv6 counterpart (addr6Of) as a /64.
func (b *builder) addAddr(part, name string, addr netip.Addr) error {
	nl := b.nl[part]
	link, err := nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s/%s: %w", part, name, err)
	}
	if err := addAddrTo(nl, link, part, addr); err != nil {
		return err
	}
	if b.lab.ipv6 {
		return addAddr6To(nl, link, part, addr6Of(addr))
	}
	return nil
}

func addAddrTo(nl *netlink.Handle, link netlink.Link, part string, addr netip.Addr) error {
	pfx := netip.PrefixFrom(addr, 24)
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(pfx.Bits(), 32)}}
	if err := nl.AddrAdd(link, a); err != nil {
		return fmt.Errorf("address %s on %s/%s: %w", pfx, part, link.Attrs().Name, err)
	}
	return nil
}

// addAddr6To gives link addr/64 without duplicate address detection.
func addAddr6To(nl *netlink.Handle, link netlink.Link, part string, addr netip.Addr) error {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(ipv6PrefixLength, 128)}, Flags: unix.IFA_F_NODAD}
	if err := nl.AddrAdd(link, a); err != nil {
		return fmt.Errorf("address %s/%d on %s/%s: %w", addr, ipv6PrefixLength, part, link.Attrs().Name, err)
	}
	return nil
}

// linkUp brings the link name in part up (with Options.OffloadsOff, after
// turning its offloads off), and remembers it for waitUp.
func (b *builder) linkUp(part, name string) error {
	nsName := nsName(b.lab.prefix, part)
	if b.lab.offloadsOff {
		if err := doIn(b.ns[part], nsName, func() error { return offload.DisableAll(name) }); err != nil {
			return fmt.Errorf("offloads of %s/%s: %w", part, name, err)
		}
	}
	nl := b.nl[part]
	link, err := nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s/%s: %w", part, name, err)
	}
	if err := nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s/%s up: %w", part, name, err)
	}
	b.up = append(b.up, func() (netlink.Link, error) { return nl.LinkByName(name) })
	return nil
}

func (b *builder) setLoUp(part string) error {
	nl := b.nl[part]
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find %s/lo: %w", part, err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set %s/lo up: %w", part, err)
	}
	return nil
}

func (b *builder) addRoute(part, iface string, gw netip.Addr) error {
	nl := b.nl[part]
	link, err := nl.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("find %s/%s: %w", part, iface, err)
	}
	if err := nl.RouteAdd(defaultRoute(link, gw)); err != nil {
		return fmt.Errorf("default route of %s via %s: %w", part, gw, err)
	}
	return nil
}

// waitUp waits, bounded by linkUpTimeout, until every veth end reports
// operational state up, so the first packet a test sends is not dropped
// while the kernel activates the link.
func (b *builder) waitUp() error {
	deadline := time.Now().Add(linkUpTimeout)
	for _, get := range b.up {
		for {
			link, err := get()
			if err != nil {
				return fmt.Errorf("wait for links: %w", err)
			}
			if link.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("link %s still %s after %v", link.Attrs().Name, link.Attrs().OperState, linkUpTimeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}
