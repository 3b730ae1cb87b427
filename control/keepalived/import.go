package keepalived

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Warning is something of the keepalived.conf that the gvs configuration does
// not carry over, or carries over changed, at the statement's position.
type Warning struct {
	Pos Pos // Line 0: about the file as a whole
	Msg string
}

// String returns "file:line: msg" ("file: msg" for the file as a whole).
func (w Warning) String() string {
	if w.Pos.Line == 0 {
		return w.Pos.File + ": " + w.Msg
	}
	return w.Pos.String() + ": " + w.Msg
}

// Result is a translated keepalived.conf.
type Result struct {
	TOML     []byte    // the gvs configuration; control/config loads it
	Warnings []Warning // in file order, each once
}

// Import reads the keepalived.conf at path, with the files it includes, from
// files, and translates it. It fails with a *SyntaxError for a file keepalived's
// grammar cannot read, or with the error of reading path itself.
func Import(files Files, path string) (*Result, error) {
	c := &converter{main: path, byKey: map[serviceKey]*serviceOut{}}
	r := reader{files: files, warn: c.warnf, order: map[string]int{}}
	if err := r.read(path, nil); err != nil {
		if _, ok := err.(*SyntaxError); ok {
			return nil, err
		}
		return nil, fmt.Errorf("keepalived: %w", err)
	}
	top, err := build(r.lines)
	if err != nil {
		return nil, err
	}
	c.convert(top)
	toml := c.render()

	// Each warning once (a group's services share their virtual_server's),
	// in file order: files in the order they were first read, then lines.
	seen := map[Warning]bool{}
	warns := c.warns[:0]
	for _, w := range c.warns {
		if !seen[w] {
			seen[w] = true
			warns = append(warns, w)
		}
	}
	slices.SortStableFunc(warns, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(r.order[a.Pos.File], r.order[b.Pos.File]), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
	return &Result{TOML: toml, Warnings: warns}, nil
}

// converter maps the statement tree onto the gvs schema, collecting warnings.
type converter struct {
	main  string // the file Import was given
	warns []Warning
	head  []string // comments at the top of the output

	global   globals
	iface    string // director.interface
	ifaceWhy string
	vrrp     *vrrpOut
	sync     *syncOut
	services []*serviceOut
	byKey    map[serviceKey]*serviceOut
}

func (c *converter) warnf(p Pos, format string, args ...any) {
	c.warns = append(c.warns, Warning{p, fmt.Sprintf(format, args...)})
}

// drop warns that a statement is not carried over, and why.
func (c *converter) drop(n *node, why string) {
	c.warnf(n.pos, "%s: not carried over (%s)", n.text(), why)
}

// bad warns that a statement's value is not one keepalived accepts either.
func (c *converter) bad(n *node, want string) {
	c.warnf(n.pos, "%s: not carried over (want %s)", n.text(), want)
}

// note adds a comment to the top of the output.
func (c *converter) note(p Pos, format string, args ...any) {
	c.head = append(c.head, p.String()+": "+fmt.Sprintf(format, args...))
}

// shape is whether a keyword takes a { } block.
type shape uint8

const (
	flat   shape = iota + 1 // never
	block                   // always
	either                  // may (real_server, TCP_CHECK)
)

// shaped checks a statement whose keyword gvs carries over against the shape
// keepalived gives it, and warns if it does not fit. (A keyword that gvs does
// not carry over is dropped whole, block and all, without this check.)
func (c *converter) shaped(n *node, s shape) bool {
	switch {
	case s == flat && n.hasBlock:
		c.drop(n, "a block where keepalived expects none")
		return false
	case s == block && !n.hasBlock:
		c.drop(n, "no { } block")
		return false
	}
	return true
}

// withShapes returns the union of shape tables.
func withShapes(tables ...map[string]shape) map[string]shape {
	out := map[string]shape{}
	for _, t := range tables {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}

// topReasons say why a top-level block of keepalived has no gvs equivalent.
var topReasons = map[string]string{
	"vrrp_script":              "gvs has no tracking scripts: its VRRP priority is fixed",
	"vrrp_track_file":          "gvs has no tracking: its VRRP priority is fixed",
	"track_file":               "gvs has no tracking: its VRRP priority is fixed",
	"vrrp_track_process":       "gvs has no tracking: its VRRP priority is fixed",
	"vrrp_sync_group":          "gvs runs one VRRP instance, so there is nothing to group",
	"static_ipaddress":         "gvs adds only its VIPs",
	"static_routes":            "gvs adds no routes",
	"static_rules":             "gvs adds no rules",
	"static_track_group":       "gvs has no tracking",
	"track_group":              "gvs has no tracking",
	"linkbeat_interfaces":      "gvs watches its interface itself",
	"interface_up_down_delays": "gvs has no FAULT state",
	"garp_group":               "gvs announces VIPs on director.interface only",
	"bfd_instance":             "gvs has no BFD",
	"SSL":                      "gvs's https check does not verify certificates and sends none",
	"net_namespace":            "gvsd runs in the network namespace it is started in",
}

// convert walks the top level: global_defs first wherever it stands, then the
// first vrrp_instance, then the virtual servers with their groups.
func (c *converter) convert(top []*node) {
	var instances, servers []*node
	groups := map[string]*node{}
	for _, n := range top {
		switch n.keyword() {
		case "global_defs":
			if c.shaped(n, block) {
				c.globalDefs(n)
			}
		case "vrrp_instance":
			if c.shaped(n, block) {
				instances = append(instances, n)
			}
		case "virtual_server_group":
			if !c.shaped(n, block) {
				continue
			}
			if len(n.args()) != 1 {
				c.bad(n, "virtual_server_group NAME { ... }")
				continue
			}
			if g, ok := groups[n.args()[0]]; ok {
				c.drop(n, "a second group of that name; the first is at "+g.pos.String())
				continue
			}
			groups[n.args()[0]] = n
		case "virtual_server":
			if c.shaped(n, block) {
				servers = append(servers, n)
			}
		default:
			if why, ok := topReasons[n.keyword()]; ok {
				c.drop(n, why)
			} else {
				c.drop(n, "not a keepalived keyword gvs knows")
			}
		}
	}

	if len(instances) > 0 {
		c.vrrpInstance(instances[0])
		for _, n := range instances[1:] {
			c.drop(n, fmt.Sprintf("gvs runs one VRRP instance, [vrrp]: the first, %s at %s", c.vrrp.name, c.vrrp.pos))
		}
	}
	c.syncDaemon()
	used := map[string]bool{}
	for _, n := range servers {
		c.virtualServer(n, groups, used)
	}
	for name, g := range groups {
		if !used[name] {
			c.drop(g, "no virtual_server uses it")
		}
	}
	c.director()
	c.vrrpFamilies()
	c.crossCheck()
}

// globals is what global_defs sets for the rest of the file.
type globals struct {
	vrrpVersion opt[int]
	garpRepeat  opt[int]
	garpDelay   opt[time.Duration]
	garpRefresh opt[time.Duration]
	syncd       *node // lvs_sync_daemon
	timeouts    [3]opt[time.Duration]
	timeoutsPos Pos
}

// opt is a value a keepalived.conf may set, with where it set it.
type opt[T any] struct {
	v   T
	set bool
	pos Pos
}

func some[T any](v T, p Pos) opt[T] { return opt[T]{v, true, p} }

// or returns the first set value of opts, else def.
func or[T any](def T, opts ...opt[T]) opt[T] {
	for _, o := range opts {
		if o.set {
			return o
		}
	}
	return opt[T]{v: def}
}

const emailReason = "gvs sends no email: use [vrrp] notify, the logs or the metrics"

// globalReasons say why a global_defs keyword has no gvs equivalent.
var globalReasons = map[string]string{
	"notification_email":              emailReason,
	"notification_email_from":         emailReason,
	"smtp_server":                     emailReason,
	"smtp_helo_name":                  emailReason,
	"smtp_connect_timeout":            emailReason,
	"smtp_alert":                      emailReason,
	"smtp_alert_vrrp":                 emailReason,
	"smtp_alert_checker":              emailReason,
	"no_email_faults":                 emailReason,
	"enable_script_security":          "gvsd runs scripts as its own user",
	"script_user":                     "gvsd runs scripts as its own user",
	"enable_snmp_vrrp":                "gvs has no SNMP: use the metrics ([director] metrics)",
	"enable_snmp_checker":             "gvs has no SNMP: use the metrics ([director] metrics)",
	"enable_snmp_keepalived":          "gvs has no SNMP: use the metrics ([director] metrics)",
	"enable_snmp_rfc":                 "gvs has no SNMP: use the metrics ([director] metrics)",
	"enable_snmp_rfcv2":               "gvs has no SNMP: use the metrics ([director] metrics)",
	"enable_snmp_rfcv3":               "gvs has no SNMP: use the metrics ([director] metrics)",
	"enable_traps":                    "gvs has no SNMP: use the metrics ([director] metrics)",
	"snmp_socket":                     "gvs has no SNMP: use the metrics ([director] metrics)",
	"enable_dbus":                     "gvs has no D-Bus interface: use gvsadm -L --json",
	"vrrp_mcast_group4":               "gvs sends adverts to 224.0.0.18 or to unicast_peers",
	"vrrp_mcast_group6":               "gvs sends IPv6 adverts to ff02::12 or to unicast_peers",
	"vrrp_iptables":                   "gvs installs no firewall rules for VRRP",
	"vrrp_ipsets":                     "gvs installs no firewall rules for VRRP",
	"nftables":                        "gvs installs no firewall rules for VRRP",
	"nftables_ipvs":                   "gvs forwards in userspace, not through IPVS",
	"vrrp_strict":                     "gvs has no strict mode",
	"vrrp_skip_check_adv_addr":        "gvs has no such switch",
	"vrrp_garp_master_refresh_repeat": "gvs sends one gratuitous ARP per VIP at each refresh",
	"vrrp_garp_interval":              "gvs paces gratuitous ARPs itself",
	"vrrp_gna_interval":               "gvs paces unsolicited neighbour advertisements itself",
	"vrrp_garp_lower_prio_delay":      "gvs sends no gratuitous ARP on a lower-priority advert",
	"vrrp_garp_lower_prio_repeat":     "gvs sends no gratuitous ARP on a lower-priority advert",
	"checker_log_all_failures":        "gvs logs each health transition once; every check is in gvsadm -Ln --health",
	"net_namespace":                   "gvsd runs in the network namespace it is started in",
	"net_namespace_ipvs":              "gvsd runs in the network namespace it is started in",
	"default_interface":               "gvs adds VIPs on director.interface only",
}

func (c *converter) globalDefs(g *node) {
	for _, n := range g.block {
		switch k := n.keyword(); k {
		case "router_id":
			c.note(n.pos, "%s (gvs has no router_id; kept as this comment)", n.text())
		case "vrrp_version":
			if v, ok := versionArg(n); ok {
				c.global.vrrpVersion = some(v, n.pos)
			} else {
				c.bad(n, "2 or 3")
			}
		case "vrrp_garp_master_repeat":
			if v, ok := c.garpRepeat(n); ok {
				c.global.garpRepeat = some(v, n.pos)
			}
		case "vrrp_garp_master_delay":
			if d, ok := c.seconds(n, 0, maxTimer); ok {
				c.global.garpDelay = some(d, n.pos)
			}
		case "vrrp_garp_master_refresh":
			if d, ok := c.garpRefresh(n); ok {
				c.global.garpRefresh = some(d, n.pos)
			}
		case "vrrp_min_garp":
			if on, ok := parseBool(n.args()); !ok {
				c.bad(n, "a boolean")
			} else if on {
				// keepalived: one gratuitous ARP and no second round.
				c.global.garpRepeat = some(1, n.pos)
				c.global.garpDelay = some(time.Duration(0), n.pos)
			}
		case "lvs_sync_daemon":
			if c.global.syncd != nil {
				c.drop(n, "keepalived takes the first, at "+c.global.syncd.pos.String())
				continue
			}
			c.global.syncd = n
		case "lvs_timeouts":
			c.lvsTimeouts(n)
		case "lvs_flush", "lvs_flush_on_stop", "lvs_flush_onstop":
			// gvsd starts from an empty table of its own and removes its
			// VIPs when it stops: nothing to carry over.
		default:
			why, ok := globalReasons[k]
			if !ok {
				why = "gvs has no equivalent"
			}
			c.drop(n, why)
		}
	}
}

// lvsTimeouts maps `lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]`.
func (c *converter) lvsTimeouts(n *node) {
	args := n.args()
	if len(args) == 0 || len(args)%2 != 0 {
		c.bad(n, "lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]")
		return
	}
	for i := 0; i < len(args); i += 2 {
		k := slices.Index([]string{"tcp", "tcpfin", "udp"}, args[i])
		secs, ok := parseUint(args[i+1], 1, 31*24*3600) // ipvsadm's bound: a month
		if k < 0 || !ok {
			c.warnf(n.pos, "lvs_timeouts %s %s: not carried over (want tcp, tcpfin or udp and 1..2678400 seconds)", args[i], args[i+1])
			continue
		}
		c.global.timeouts[k] = some(time.Duration(secs)*time.Second, n.pos)
		c.global.timeoutsPos = n.pos
	}
}

// director picks director.interface, where the VIPs live, which keepalived
// has no one word for: the first VIP's dev, else the VRRP instance's
// interface (where keepalived adds a VIP without a dev), else the sync
// daemon's; else it warns and writes eth0.
func (c *converter) director() {
	switch {
	case c.vrrp != nil && c.vrrp.dev != "":
		c.iface, c.ifaceWhy = c.vrrp.dev, "the dev of the first virtual_ipaddress"
	case c.vrrp != nil && c.vrrp.iface != "":
		c.iface, c.ifaceWhy = c.vrrp.iface, "the interface of vrrp_instance "+c.vrrp.name
	case c.sync != nil && c.sync.iface != "":
		c.iface, c.ifaceWhy = c.sync.iface, "the interface of lvs_sync_daemon"
	default:
		c.iface, c.ifaceWhy = "eth0", "a guess: check it"
		c.warnf(Pos{File: c.main}, "names no interface for VRRP, VIPs or sync: director.interface is eth0, a guess (set it)")
	}
}

// seconds parses a statement's one <TIMER> argument in lo..hi.
func (c *converter) seconds(n *node, lo, hi time.Duration) (time.Duration, bool) {
	if len(n.args()) != 1 {
		c.bad(n, "one value in seconds")
		return 0, false
	}
	d, ok := parseSeconds(n.args()[0])
	if !ok || d < lo || d > hi {
		c.bad(n, fmt.Sprintf("seconds in %s..%s", strings.TrimSuffix(formatDuration(lo), "s"), strings.TrimSuffix(formatDuration(hi), "s")))
		return 0, false
	}
	return d, true
}

// integer parses a statement's one integer argument in lo..hi.
func (c *converter) integer(n *node, lo, hi int) (int, bool) {
	if len(n.args()) != 1 {
		c.bad(n, fmt.Sprintf("one integer in %d..%d", lo, hi))
		return 0, false
	}
	v, ok := parseUint(n.args()[0], lo, hi)
	if !ok {
		c.bad(n, fmt.Sprintf("an integer in %d..%d", lo, hi))
	}
	return v, ok
}

// flag parses a statement that is a <BOOL>, true when it stands alone.
func (c *converter) flag(n *node) (bool, bool) {
	v, ok := parseBool(n.args())
	if !ok {
		c.bad(n, "on, off, true, false, yes or no")
	}
	return v, ok
}

func versionArg(n *node) (int, bool) {
	if len(n.args()) != 1 {
		return 0, false
	}
	return parseUint(n.args()[0], 2, 3)
}
