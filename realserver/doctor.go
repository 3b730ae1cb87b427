package realserver

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/arpctl"
)

// Finding is the outcome of one check of Diagnose.
type Finding struct {
	Check  string `json:"check"`          // what was checked: one of the name* constants below
	OK     bool   `json:"ok"`             // false: the real server does not work as it should
	Warn   bool   `json:"warn,omitempty"` // OK, but worth a look; Fix says what would change it
	Detail string `json:"detail"`         // what was found
	Fix    string `json:"fix"`            // a shell command line that fixes it, or a hint; empty when there is nothing to do
}

// Finding.Check names, as the doctor prints them.
const (
	nameVIP         = "vip on lo"
	nameARPIgnore   = "arp_ignore"
	nameARPAnnounce = "arp_announce"
	nameRPFilter    = "rp_filter"
	nameDecap       = "ipip decap"
	nameListener    = "listener"
	nameNDProxy     = "nd proxy"
)

// DoctorOptions says what Diagnose checks.
type DoctorOptions struct {
	VIPs       []netip.Addr
	Mode       Mode
	Interfaces []string // LAN interfaces for the ARP sysctls; default: the interface of the default route
	Proto      string   // "tcp" or "udp", the protocol of Ports; default "tcp"
	Ports      []uint16 // a listener must take each VIP and port; none: no listener check
}

// check validates o and fills in Proto.
func (o *DoctorOptions) check() error {
	ro := Options{VIPs: o.VIPs, Mode: o.Mode}
	var errs []error
	if err := ro.check(); err != nil {
		errs = append(errs, err)
	}
	if o.Proto == "" {
		o.Proto = "tcp"
	}
	if o.Proto != "tcp" && o.Proto != "udp" {
		errs = append(errs, fmt.Errorf("realserver: protocol %q: want tcp or udp", o.Proto))
	}
	for _, p := range o.Ports {
		if p == 0 {
			errs = append(errs, errors.New("realserver: port 0"))
		}
	}
	for _, n := range o.Interfaces {
		if n == "" || len(n) > 15 || strings.ContainsAny(n, "/ \t\n") || n == "." || n == ".." {
			errs = append(errs, fmt.Errorf("realserver: interface %q: not an interface name", n))
		}
	}
	return errors.Join(errs...)
}

// Diagnose checks, without changing anything, that this host is set up as
// a real server for o in the network namespace of the calling thread: the
// VIPs on lo, the ARP and reverse-path sysctls, in TUN mode something that
// decapsulates IPIP, and listeners on the VIPs. It returns one Finding per
// thing checked; an error means the host could not be read.
func Diagnose(o DoctorOptions) ([]Finding, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	h, err := gatherHost(o)
	if err != nil {
		return nil, err
	}
	return diagnose(o, h), nil
}

// hostState is what the doctor reads from the host, gathered once so that
// every check is a function of it and tests can inject it.
type hostState struct {
	links   []linkState
	egress  []string                         // LAN interfaces for the ARP sysctls
	sysctl  func(key string) (string, error) // reads a key under /proc/sys
	sockets []procNetSocket                  // of o.Proto, IPv4 and IPv6
	procs   []rsProcess                      // gvs-realserver commands running in this network namespace
	// ndProxies are the IPv6 proxy neighbour entries (ip -6 neigh show
	// proxy), read when o has IPv6 VIPs: address and interface.
	ndProxies []ndProxy
}

// ndProxy is one proxy neighbour entry: the kernel answers neighbour
// solicitations for addr on dev (with proxy_ndp on).
type ndProxy struct {
	addr netip.Addr
	dev  string
}

// linkState is one network interface and its IPv4 and IPv6 addresses.
type linkState struct {
	name     string
	kind     string // as netlink names it: "ipip", "tuntap", "veth", "device", ...
	up       bool   // administratively up
	loopback bool
	noARP    bool // IFF_NOARP: tunnels, TUN devices, dummy devices
	addrs    []netip.Prefix
}

// rsProcess is a running gvs-realserver (or gvsd realserver) and its flags.
type rsProcess struct {
	pid  int
	opts Options
}

// diagnose runs every check on h. The ARP and reverse-path sysctls are
// IPv4's: they are checked when o has an IPv4 VIP. For an IPv6 VIP on lo
// the kernel answers neighbour solicitations on no other interface (it
// looks the target up on the interface the solicitation came in on), so
// no sysctl is needed; only a proxy neighbour entry would answer for it.
func diagnose(o DoctorOptions, h hostState) []Finding {
	var fs []Finding
	has4, has6 := false, false
	for _, vip := range o.VIPs {
		fs = append(fs, checkVIPOnLo(o.Mode, vip, h.links)...)
		has4, has6 = has4 || vip.Is4(), has6 || vip.Is6()
	}
	if has6 {
		for _, vip := range o.VIPs {
			if vip.Is6() {
				fs = append(fs, checkNDProxy(vip, h.ndProxies))
			}
		}
	}
	if has4 || !has6 {
		fs = append(fs, checkARP(h.egress, h.sysctl)...)
		rpIfaces := h.egress
		if o.Mode == TUN {
			rpIfaces = tunnelLinks(h.links)
		}
		fs = append(fs, checkRPFilter(o.Mode, rpIfaces, h.sysctl)...)
	}
	if o.Mode == TUN {
		for _, vip := range o.VIPs {
			fs = append(fs, checkDecap(vip, h.links, h.procs))
		}
	}
	for _, vip := range o.VIPs {
		for _, port := range o.Ports {
			fs = append(fs, checkListener(o.Proto, netip.AddrPortFrom(vip, port), h.sockets))
		}
	}
	return fs
}

func ok(check, detail string) Finding { return Finding{Check: check, OK: true, Detail: detail} }

func fail(check, detail, fix string) Finding {
	return Finding{Check: check, Detail: detail, Fix: fix}
}

func warn(check, detail, fix string) Finding {
	return Finding{Check: check, OK: true, Warn: true, Detail: detail, Fix: fix}
}

// checkVIPOnLo checks that vip is a /32 (IPv6: /128) on lo, which is up:
// local, so the kernel accepts packets for it, but on no link where ARP
// (IPv6: neighbour discovery) would announce it. Another NOARP device that is up does as well: a dummy device, or an
// ipip device such as tunl0, where classic LVS-TUN set-ups put the VIP. On
// any other interface the host answers ARP for the VIP: in DR mode it then
// competes with the director for it.
func checkVIPOnLo(mode Mode, vip netip.Addr, links []linkState) []Finding {
	var fs []Finding
	local := false
	ip, bits, arp, nodad := "ip", vip.BitLen(), "ARP", ""
	if vip.Is6() {
		// No duplicate address detection (the director holds the VIP
		// too) and deprecated, as gvs-realserver adds it (arpctl.AddVIP).
		ip, arp, nodad = "ip -6", "neighbour solicitations", " nodad preferred_lft 0"
	}
	for _, l := range links {
		for _, p := range l.addrs {
			if p.Addr() != vip {
				continue
			}
			switch {
			case l.name == loopback && p.Bits() != bits:
				local = true
				fs = append(fs, fail(nameVIP,
					fmt.Sprintf("%s on lo: want /%d, or all of %s is local to this host", p, bits, p.Masked()),
					fmt.Sprintf("%s addr del %s dev lo && %s addr add %s/%d dev lo%s", ip, p, ip, vip, bits, nodad)))
			case (l.name == loopback || l.noARP) && !l.up:
				local = true
				fs = append(fs, fail(nameVIP,
					fmt.Sprintf("%s on %s, but %s is down", p, l.name, l.name),
					"ip link set dev "+l.name+" up"))
			case l.name == loopback:
				local = true
				fs = append(fs, ok(nameVIP, fmt.Sprintf("%s on lo", p)))
			case l.noARP:
				local = true
				fs = append(fs, ok(nameVIP, fmt.Sprintf("%s on %s (%s, NOARP: as good as lo)", p, l.name, l.kind)))
			case mode == DR:
				fs = append(fs, fail(nameVIP,
					fmt.Sprintf("%s also on %s: this host answers %s for the VIP there and takes traffic from the director", p, l.name, arp),
					fmt.Sprintf("%s addr del %s dev %s", ip, p, l.name)))
			default:
				fs = append(fs, warn(nameVIP,
					fmt.Sprintf("%s also on %s: this host answers %s for the VIP there", p, l.name, arp),
					fmt.Sprintf("%s addr del %s dev %s", ip, p, l.name)))
			}
		}
	}
	if !local {
		fs = append([]Finding{fail(nameVIP, vip.String()+" is not on lo", fmt.Sprintf("%s addr add %s/%d dev lo%s", ip, vip, bits, nodad))}, fs...)
	}
	return fs
}

// checkNDProxy checks that no proxy neighbour entry makes this host answer
// neighbour solicitations for the IPv6 vip (ip -6 neigh add proxy, with
// net.ipv6.conf.*.proxy_ndp on): it would compete with the director for
// the VIP, as a VIP on the LAN interface would.
func checkNDProxy(vip netip.Addr, proxies []ndProxy) Finding {
	for _, p := range proxies {
		if p.addr == vip {
			return fail(nameNDProxy,
				fmt.Sprintf("a proxy neighbour entry for %s on %s: this host answers neighbour solicitations for the VIP there (with proxy_ndp on) and takes traffic from the director", vip, p.dev),
				fmt.Sprintf("ip -6 neigh del proxy %s dev %s", vip, p.dev))
		}
	}
	return ok(nameNDProxy, fmt.Sprintf("no proxy neighbour entry for %s: only the director answers neighbour solicitations for it", vip))
}

// confKey is the sysctl key of a per-interface IPv4 setting.
func confKey(dev, name string) string { return "net/ipv4/conf/" + dev + "/" + name }

// checkARP checks arp_ignore and arp_announce against
// arpctl.RealServerSysctls on "all" and on each egress interface.
func checkARP(egress []string, read func(string) (string, error)) []Finding {
	table := arpctl.RealServerSysctls(egress...)
	var fs []Finding
	for _, name := range []string{nameARPIgnore, nameARPAnnounce} {
		for _, s := range table {
			if path.Base(s.Key) != name {
				continue
			}
			want, err := strconv.Atoi(s.Value)
			if err != nil {
				panic("realserver: arpctl.RealServerSysctls: " + s.Key + " is not a number: " + s.Value)
			}
			dev := path.Base(path.Dir(s.Key))
			fs = append(fs, checkConf(name, dev, name, func(v int) bool { return v == want }, want, s.Value, read))
		}
	}
	return fs
}

// nameRPFilter checks rp_filter on "all" and on ifaces. Strict filtering
// (1) drops a packet whose source does not route back through the
// interface it came in on; decapsulated TUN packets come in on the tunnel
// and their sources route back through the LAN, so TUN needs 0 (off) or 2
// (loose). In DR mode packets come in where the route back to the client
// leaves on a simple host, so strict filtering only earns a warning.
func checkRPFilter(mode Mode, ifaces []string, read func(string) (string, error)) []Finding {
	good := func(v int) bool { return v != 1 }
	const name = "rp_filter"
	var fs []Finding
	for _, dev := range append([]string{"all"}, ifaces...) {
		f := checkConf(nameRPFilter, dev, name, good, 2, "0 or 2", read)
		if f.OK || f.Fix == "" {
			fs = append(fs, f)
			continue
		}
		if mode == DR {
			f.OK, f.Warn = true, true
			f.Detail += ": strict filtering is fine for DR while the route back to each client leaves by the interface its packets come in on"
		} else {
			f.Detail += ": strict filtering drops decapsulated packets, which come in on the tunnel but route back by the LAN"
		}
		fs = append(fs, f)
	}
	return fs
}

// checkConf checks net.ipv4.conf.<dev>.<name>. For arp_ignore,
// arp_announce and rp_filter the kernel uses the larger of conf/all and
// conf/<dev> (ip-sysctl), so an interface is judged by that effective value.
// A failing interface gets the fix of its own key when its value is wrong
// and of "all" when "all" alone is.
func checkConf(check, dev, name string, good func(int) bool, fixTo int, want string, read func(string) (string, error)) Finding {
	key := confKey(dev, name)
	sname := arpctl.SysctlName(key)
	fixOf := func(k string) string { return fmt.Sprintf("sysctl -w %s=%d", arpctl.SysctlName(k), fixTo) }
	v, err := readInt(read, key)
	if err != nil {
		return fail(check, err.Error(), "")
	}
	if dev == "all" {
		if good(v) {
			return ok(check, fmt.Sprintf("%s is %d", sname, v))
		}
		return fail(check, fmt.Sprintf("%s is %d, want %s", sname, v, want), fixOf(key))
	}
	all, err := readInt(read, confKey("all", name))
	if err != nil {
		return fail(check, err.Error(), "")
	}
	eff := max(v, all)
	detail := fmt.Sprintf("%s is %d", sname, v)
	if eff != v {
		detail += fmt.Sprintf(", effective %d (the larger of it and all)", eff)
	}
	if good(eff) {
		return ok(check, detail)
	}
	fix := fixOf(key)
	if good(v) {
		fix = fixOf(confKey("all", name))
	}
	return fail(check, detail+", want "+want, fix)
}

func readInt(read func(string) (string, error), key string) (int, error) {
	s, err := read(key)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s is %q, not a number", arpctl.SysctlName(key), s)
	}
	return v, nil
}

// tunnelLinks returns the interfaces decapsulated TUN packets come in on:
// kernel ipip devices that are up, and gvs-realserver's TUN device.
func tunnelLinks(links []linkState) []string {
	var names []string
	for _, l := range links {
		if (l.kind == "ipip" && l.up) || l.name == DefaultTunName {
			names = append(names, l.name)
		}
	}
	return names
}

// lanLinks returns the interfaces ARP runs on: up, not loopback, not NOARP,
// with an IPv4 address. The doctor checks them when there is no default
// route to take the egress interface from.
func lanLinks(links []linkState) []string {
	var names []string
	for _, l := range links {
		if l.up && !l.loopback && !l.noARP && slices.ContainsFunc(l.addrs, func(p netip.Prefix) bool { return p.Addr().Is4() }) {
			names = append(names, l.name)
		}
	}
	return names
}

// nameDecap checks that something decapsulates IPIP for vip: an ipip
// device that is up (the kernel's tunl0 takes every IPIP packet to a local
// address), or a running gvs-realserver -mode tun serving vip. Both at once
// deliver every inner packet twice: the raw socket of gvs-realserver gets a
// copy of what the kernel decapsulates.
func checkDecap(vip netip.Addr, links []linkState, procs []rsProcess) Finding {
	var up, down []string
	for _, l := range links {
		if l.kind != "ipip" {
			continue
		}
		if l.up {
			up = append(up, l.name)
		} else {
			down = append(down, l.name)
		}
	}
	var serving, others []rsProcess
	for _, p := range procs {
		if p.opts.Mode != TUN {
			continue
		}
		if containsAddr(p.opts.VIPs, vip) {
			serving = append(serving, p)
		} else {
			others = append(others, p)
		}
	}
	switch {
	case len(up) > 0 && len(serving) > 0:
		cmds := make([]string, len(up))
		for i, n := range up {
			cmds[i] = "ip link set dev " + n + " down"
		}
		return fail(nameDecap,
			fmt.Sprintf("kernel ipip %s and gvs-realserver (pid %d) both decapsulate: every packet arrives twice", strings.Join(up, ", "), serving[0].pid),
			strings.Join(cmds, " && "))
	case len(up) > 0:
		return ok(nameDecap, "kernel ipip device "+strings.Join(up, ", ")+" is up")
	case len(serving) > 0:
		return ok(nameDecap, fmt.Sprintf("gvs-realserver (pid %d) decapsulates for %s", serving[0].pid, vip))
	case len(others) > 0:
		p := others[0]
		vips := make([]string, 0, len(p.opts.VIPs)+1)
		for _, v := range p.opts.VIPs {
			vips = append(vips, v.String())
		}
		have := strings.Join(vips, ",")
		vips = append(vips, vip.String())
		return fail(nameDecap,
			fmt.Sprintf("gvs-realserver (pid %d) decapsulates only for %s: stop it and run it with %s as well", p.pid, have, vip),
			fmt.Sprintf("gvs-realserver -vip %s -mode tun", strings.Join(vips, ",")))
	case len(down) > 0:
		return fail(nameDecap,
			fmt.Sprintf("kernel ipip device %s is down and no gvs-realserver -mode tun runs for %s", down[0], vip),
			"ip link set dev "+down[0]+" up")
	}
	return fail(nameDecap,
		fmt.Sprintf("nothing decapsulates IPIP for %s: no kernel ipip device and no gvs-realserver -mode tun", vip),
		fmt.Sprintf("gvs-realserver -vip %s -mode tun", vip))
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, b := range list {
		if a == b {
			return true
		}
	}
	return false
}

// nameListener checks that a socket of proto takes want: one bound to the
// VIP or to 0.0.0.0 on its port. An IPv6 wildcard socket ([::]) takes IPv4
// too unless it set IPV6_V6ONLY, which /proc does not show: a warning. An
// IPv6 VIP is taken by a socket bound to it or to [::].
func checkListener(proto string, want netip.AddrPort, socks []procNetSocket) Finding {
	if want.Addr().Is6() {
		return checkListener6(proto, want, socks)
	}
	mapped := netip.AddrFrom16(want.Addr().As16())
	var v6any bool
	var elsewhere []string
	for _, s := range socks {
		if !s.listening(proto) || s.Local.Port() != want.Port() {
			continue
		}
		a := s.Local.Addr()
		switch {
		case a == want.Addr() || a == netip.IPv4Unspecified() || a == mapped:
			return ok(nameListener, fmt.Sprintf("%s %s: listening on %s", proto, want, s.Local))
		case a == netip.IPv6Unspecified():
			v6any = true
		default:
			elsewhere = append(elsewhere, s.Local.String())
		}
	}
	fix := fmt.Sprintf("start the service bound to %s or 0.0.0.0:%d", want, want.Port())
	if v6any {
		return warn(nameListener,
			fmt.Sprintf("%s %s: only [::]:%d listens, which takes IPv4 unless it set IPV6_V6ONLY", proto, want, want.Port()), fix)
	}
	detail := fmt.Sprintf("%s %s: nothing listens on it or on 0.0.0.0:%d", proto, want, want.Port())
	if len(elsewhere) > 0 {
		detail += " (listening: " + strings.Join(elsewhere, ", ") + ")"
	}
	return fail(nameListener, detail, fix)
}

// checkListener6 is checkListener for an IPv6 VIP.
func checkListener6(proto string, want netip.AddrPort, socks []procNetSocket) Finding {
	var elsewhere []string
	for _, s := range socks {
		if !s.listening(proto) || s.Local.Port() != want.Port() {
			continue
		}
		if a := s.Local.Addr(); a == want.Addr() || a == netip.IPv6Unspecified() {
			return ok(nameListener, fmt.Sprintf("%s %s: listening on %s", proto, want, s.Local))
		}
		elsewhere = append(elsewhere, s.Local.String())
	}
	detail := fmt.Sprintf("%s %s: nothing listens on it or on [::]:%d", proto, want, want.Port())
	if len(elsewhere) > 0 {
		detail += " (listening: " + strings.Join(elsewhere, ", ") + ")"
	}
	return fail(nameListener, detail, fmt.Sprintf("start the service bound to %s or [::]:%d", want, want.Port()))
}

// realServerProcs finds the running gvs-realserver (and gvsd realserver)
// commands under procRoot (proc(5): /proc/<pid>/cmdline) that share the
// network namespace netns (the target of a /proc/<pid>/ns/net link); an
// empty netns, or a process whose link cannot be read, counts as shared.
// Processes that end meanwhile are skipped.
func realServerProcs(procRoot, netns string) ([]rsProcess, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("realserver: list processes: %w", err)
	}
	var ps []rsProcess
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := procRoot + "/" + e.Name()
		b, err := os.ReadFile(dir + "/cmdline")
		if err != nil {
			continue
		}
		o, isRS := parseRealServerCmdline(b)
		if !isRS {
			continue
		}
		if netns != "" {
			if ns, err := os.Readlink(dir + "/ns/net"); err == nil && ns != netns {
				continue
			}
		}
		ps = append(ps, rsProcess{pid: pid, opts: o})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].pid < ps[j].pid })
	return ps, nil
}

// parseRealServerCmdline reads a /proc/<pid>/cmdline (arguments, each
// ending in a NUL byte) and reports whether it is a gvs-realserver or gvsd
// realserver command that sets up a real server (not the doctor), and with
// which options.
func parseRealServerCmdline(b []byte) (Options, bool) {
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	switch path.Base(args[0]) {
	case "gvs-realserver":
		args = args[1:]
	case "gvsd":
		if len(args) < 2 || args[1] != "realserver" {
			return Options{}, false
		}
		args = args[2:]
	default:
		return Options{}, false
	}
	if len(args) > 0 && args[0] == doctorCommand {
		return Options{}, false
	}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f runFlags
	f.register(fs)
	if fs.Parse(args) != nil {
		return Options{}, false
	}
	o, err := options(fs, f.vips, f.mode, f.iface)
	if err != nil {
		return Options{}, false
	}
	return o, true
}

// writeFindings prints one aligned line per finding, and under each one
// that has a fix a "fix:" line:
//
//	ok    vip on lo            10.20.0.100/32 on lo
//	FAIL  arp_ignore           net.ipv4.conf.all.arp_ignore is 0, want 1
//	      fix: sysctl -w net.ipv4.conf.all.arp_ignore=1
func writeFindings(w io.Writer, fs []Finding) error {
	var b strings.Builder
	for _, f := range fs {
		status := "FAIL"
		switch {
		case f.Warn:
			status = "warn"
		case f.OK:
			status = "ok"
		}
		fmt.Fprintf(&b, "%-6s%-21s%s\n", status, f.Check, f.Detail)
		if f.Fix != "" {
			fmt.Fprintf(&b, "      fix: %s\n", f.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
