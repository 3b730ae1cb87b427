package keepalived

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// vrrpOut is the [vrrp] table, from the first vrrp_instance.
type vrrpOut struct {
	pos         Pos
	name        string
	state       string // comment only
	version     opt[int]
	versionNote string
	vrid        int
	iface       string
	dev         string // the first VIP's dev, a fallback for director.interface

	priority     int
	priorityNote string
	advert       time.Duration
	advertNote   string
	preempt      bool
	preemptDelay time.Duration
	preemptNote  string
	peers        []netip.Addr
	peerPos      []Pos // each peer's
	addrs        []vipAddr
	excluded     []vipAddr
	derived      []netip.Addr // addresses when there are none: service VIPs of its family (vrrpFamilies)
	authPass     string       // auth_type pass when set
	authNote     string
	authPos      Pos
	notify       []string
	notifyNote   string
	garpRepeat   opt[int]
	garpDelay    opt[time.Duration]
	garpRefresh  opt[time.Duration]
	syncIface    opt[string] // lvs_sync_daemon_interface, the old way of naming it
}

// vipAddr is one virtual_ipaddress entry.
type vipAddr struct {
	addr netip.Addr
	dev  string // its dev, if any
	pos  Pos
}

// vrrpReasons say why a vrrp_instance keyword has no gvs equivalent.
var vrrpReasons = map[string]string{
	"unicast_src_ip":             "gvs sends adverts from the interface's address",
	"mcast_src_ip":               "gvs sends adverts from the interface's address",
	"mcast_dst_ip":               "gvs sends adverts to 224.0.0.18 or to unicast_peers",
	"unicast_ttl":                "gvs sends adverts with TTL 255",
	"track_interface":            "gvs has no tracking: its priority is fixed",
	"track_script":               "gvs has no tracking: its priority is fixed",
	"track_file":                 "gvs has no tracking: its priority is fixed",
	"track_process":              "gvs has no tracking: its priority is fixed",
	"track_bfd":                  "gvs has no tracking: its priority is fixed",
	"track_src_ip":               "gvs has no tracking: its priority is fixed",
	"dont_track_primary":         "gvs has no FAULT state",
	"use_vmac":                   "gvs answers for its VIPs with the interface's own MAC",
	"use_vmac_addr":              "gvs answers for its VIPs with the interface's own MAC",
	"vmac_xmit_base":             "gvs answers for its VIPs with the interface's own MAC",
	"use_ipvlan":                 "gvs answers for its VIPs with the interface's own MAC",
	"smtp_alert":                 emailReason,
	"strict_mode":                "gvs has no strict mode",
	"accept":                     "gvs has no accept mode switch",
	"no_accept":                  "gvs has no accept mode switch",
	"skip_check_adv_addr":        "gvs has no such switch",
	"virtual_routes":             "gvs adds no routes",
	"virtual_rules":              "gvs adds no rules",
	"notify_fault":               "gvs has no FAULT state",
	"notify_stop":                "gvs runs notify on MASTER and BACKUP only",
	"notify_deleted":             "gvs runs notify on MASTER and BACKUP only",
	"notify_master_rx_lower_pri": "gvs runs notify on MASTER and BACKUP only",
	"notify_priority_changes":    "gvs's priority is fixed",
	"garp_master_refresh_repeat": "gvs sends one gratuitous ARP per VIP at each refresh",
	"garp_lower_prio_delay":      "gvs sends no gratuitous ARP on a lower-priority advert",
	"garp_lower_prio_repeat":     "gvs sends no gratuitous ARP on a lower-priority advert",
	"garp_extra_if":              "gvs announces VIPs on director.interface only",
	"auth_hmac":                  "gvs has no HMAC authentication",
	"down_timer_adverts":         "gvs waits the RFC's three advert intervals",
	"native_ipv6":                "gvs speaks VRRP over the families of its addresses",
	"promote_secondaries":        "gvs adds each VIP as a /32",
	"no_virtual_ipaddress":       "gvs advertises its service VIPs when addresses is empty",
	"v3_checksum_as_v2":          "gvs computes the RFC 5798 checksum",
	"old_unicast_checksum":       "gvs computes the RFC 5798 checksum",
	"vrf":                        "gvsd uses the interface's own routing table",
	"interfaces":                 "gvs speaks VRRP on one interface",
}

// vrrpShapes are the vrrp_instance keywords gvs carries over.
var vrrpShapes = map[string]shape{
	"state": flat, "interface": flat, "virtual_router_id": flat, "priority": flat, "advert_int": flat,
	"nopreempt": flat, "preempt": flat, "preempt_delay": flat, "version": flat,
	"unicast_peer": block, "virtual_ipaddress": block, "virtual_ipaddress_excluded": block, "authentication": block,
	"notify_master": flat, "notify_backup": flat, "notify": flat,
	"garp_master_repeat": flat, "garp_master_delay": flat, "garp_master_refresh": flat, "lvs_sync_daemon_interface": flat,
}

// vrrpInstance maps the first vrrp_instance onto [vrrp].
func (c *converter) vrrpInstance(inst *node) {
	v := &vrrpOut{pos: inst.pos, name: strings.Join(inst.args(), " "), preempt: true, advert: time.Second}
	c.vrrp = v
	if len(inst.args()) != 1 {
		c.warnf(inst.pos, "%s: want vrrp_instance NAME", inst.text())
	}
	var prio, vrid opt[int]
	var advert, preemptDelay opt[time.Duration]
	var nopreempt opt[bool]
	var notify [3]opt[[]string] // notify_master, notify_backup, notify
	for _, n := range inst.block {
		k := n.keyword()
		if sh, ok := vrrpShapes[k]; ok && !c.shaped(n, sh) {
			continue
		}
		switch k {
		case "state":
			if len(n.args()) != 1 || (n.args()[0] != "MASTER" && n.args()[0] != "BACKUP") {
				c.bad(n, "MASTER or BACKUP")
				continue
			}
			v.state = n.args()[0]
		case "interface":
			if len(n.args()) != 1 || !validIfName(n.args()[0]) {
				c.bad(n, "an interface name")
				continue
			}
			v.iface = n.args()[0]
		case "virtual_router_id":
			if id, ok := c.integer(n, 1, 255); ok {
				vrid = some(id, n.pos)
			}
		case "priority":
			if p, ok := c.integer(n, 1, 255); ok {
				prio = some(p, n.pos)
			}
		case "advert_int":
			if d, ok := c.seconds(n, 10*time.Millisecond, 255*time.Second); ok {
				advert = some(d, n.pos)
			}
		case "nopreempt":
			nopreempt = some(true, n.pos)
		case "preempt":
			nopreempt = some(false, n.pos)
		case "preempt_delay":
			if d, ok := c.seconds(n, 0, 1000*time.Second); ok {
				preemptDelay = some(d, n.pos)
			}
		case "version":
			if ver, ok := versionArg(n); ok {
				v.version = some(ver, n.pos)
			} else {
				c.bad(n, "2 or 3")
			}
		case "unicast_peer":
			c.unicastPeers(n, v)
		case "virtual_ipaddress":
			v.addrs = c.oneFamily(c.vips(n, v, v.addrs))
		case "virtual_ipaddress_excluded":
			v.excluded = c.vips(n, v, v.excluded)
		case "authentication":
			c.authentication(n, v)
		case "notify_master", "notify_backup", "notify":
			if argv, ok := c.script(n); ok {
				notify[slices.Index([]string{"notify_master", "notify_backup", "notify"}, k)] = some(argv, n.pos)
			}
		case "garp_master_repeat":
			if r, ok := c.garpRepeat(n); ok {
				v.garpRepeat = some(r, n.pos)
			}
		case "garp_master_delay":
			if d, ok := c.seconds(n, 0, maxTimer); ok {
				v.garpDelay = some(d, n.pos)
			}
		case "garp_master_refresh":
			if d, ok := c.garpRefresh(n); ok {
				v.garpRefresh = some(d, n.pos)
			}
		case "lvs_sync_daemon_interface":
			if len(n.args()) != 1 || !validIfName(n.args()[0]) {
				c.bad(n, "an interface name")
				continue
			}
			v.syncIface = some(n.args()[0], n.pos)
		default:
			why, ok := vrrpReasons[k]
			if !ok {
				why = "gvs has no equivalent"
			}
			c.drop(n, why)
		}
	}

	c.peersOneFamily(v)
	if !vrid.set {
		c.warnf(inst.pos, "%s: has no virtual_router_id: [vrrp] is not written (keepalived refuses it too)", inst.text())
		c.vrrp = &vrrpOut{name: v.name, pos: v.pos, iface: v.iface, dev: v.dev} // keeps the interface for [director]
		return
	}
	v.vrid = vrid.v
	version := or(2, v.version, c.global.vrrpVersion).v
	ipv6 := false
	for _, a := range v.addrs {
		ipv6 = ipv6 || a.addr.Is6()
	}
	if ipv6 && version == 2 {
		// keepalived, too: "cannot use IPv6 with VRRP version 2;
		// setting version 3".
		version = 3
		v.versionNote = "keepalived speaks VRRPv3 for an IPv6 instance"
	}

	// keepalived derives the priority from the state when none is given, and
	// clears nopreempt and preempt_delay on an instance that starts MASTER.
	switch {
	case prio.set:
		v.priority = prio.v
	case v.state == "MASTER":
		v.priority = 255
	default:
		v.priority = 100
	}
	v.notify = c.notifyCommand(notify, v) // with keepalived's priority, 255 included
	if v.priority == 255 {
		v.priority = 254
		v.priorityNote = "255 in keepalived (the address owner); gvs's highest is 254"
		if prio.set {
			c.warnf(prio.pos, "priority 255: written as 254 (gvs has no address owner: its priorities are 1..254)")
		} else {
			c.warnf(inst.pos, "%s: state MASTER without a priority is 255 in keepalived: written as 254 (gvs has no address owner: its priorities are 1..254)", inst.text())
		}
	}
	if nopreempt.set && nopreempt.v {
		if v.state == "MASTER" {
			v.preemptNote = "keepalived clears nopreempt on an instance with state MASTER"
		} else {
			v.preempt = false
		}
	}
	if preemptDelay.set {
		if v.state == "MASTER" {
			v.preemptNote = "keepalived clears preempt_delay on an instance with state MASTER"
		} else {
			v.preemptDelay = preemptDelay.v
		}
	}

	// VRRPv2 carries the interval in whole seconds (keepalived rounds it,
	// and advert_int is at most 255), v3 in centiseconds up to 40.95s.
	if advert.set {
		d := advert.v
		if version == 2 {
			d = max(time.Second, (d + time.Second/2).Truncate(time.Second))
			if d != advert.v {
				v.advertNote = "rounded to whole seconds, as keepalived does for VRRPv2"
			}
		} else {
			d = max(10*time.Millisecond, (d + 5*time.Millisecond).Truncate(10*time.Millisecond))
			if d > 40950*time.Millisecond {
				c.warnf(advert.pos, "advert_int %s: written as 40.95 (VRRPv3's longest interval; keepalived does the same)", strings.TrimSuffix(formatDuration(d), "s"))
				d = 40950 * time.Millisecond
			} else if d != advert.v {
				v.advertNote = "rounded to centiseconds, as VRRPv3 carries it"
			}
		}
		v.advert = d
	}

	if v.authPass != "" && version == 3 {
		c.warnf(v.authPos, "authentication: not carried over (VRRPv3 has no authentication; keepalived ignores it too)")
		v.authPass = ""
	}
	v.garpRepeat = or(0, v.garpRepeat, c.global.garpRepeat)
	v.garpDelay = or(0, v.garpDelay, c.global.garpDelay)
	v.garpRefresh = or(0, v.garpRefresh, c.global.garpRefresh)
	switch {
	case v.versionNote != "":
	case v.version.set:
		v.versionNote = "version"
	case c.global.vrrpVersion.set:
		v.versionNote = "vrrp_version"
	default:
		v.versionNote = "keepalived's default"
	}
	v.version = some(version, v.pos)
}

// unicastPeers maps `unicast_peer { IP [min_ttl N] [max_ttl N] ... }`.
func (c *converter) unicastPeers(b *node, v *vrrpOut) {
	for _, n := range b.block {
		a, ok := parseIP(n.keyword())
		if !ok || !usableVRRP(a) {
			c.drop(n, "gvs takes IPv4 and IPv6 unicast peers only")
			continue
		}
		if slices.Contains(v.peers, a) {
			c.drop(n, "listed twice")
			continue
		}
		v.peers = append(v.peers, a)
		v.peerPos = append(v.peerPos, n.pos)
		if len(n.args()) > 0 {
			c.warnf(n.pos, "%s: %s: not carried over (gvs checks that adverts come with TTL 255)", a, strings.Join(n.args(), " "))
		}
	}
}

// vips maps virtual_ipaddress entries: `IP[/MASK] [dev IF] [label L] ...`.
func (c *converter) vips(b *node, v *vrrpOut, dst []vipAddr) []vipAddr {
	listed := map[netip.Addr]bool{}
	for _, a := range dst {
		listed[a.addr] = true
	}
	for _, n := range b.block {
		s, mask, hasMask := strings.Cut(n.keyword(), "/")
		a, ok := parseIP(s)
		switch {
		case !ok:
			c.bad(n, "an IP address")
			continue
		case !usableVRRP(a):
			c.drop(n, "gvs's VIPs are IPv4 or IPv6 unicast addresses")
			continue
		case listed[a]:
			c.drop(n, "listed twice")
			continue
		}
		listed[a] = true
		if hasMask && mask != strconv.Itoa(a.BitLen()) {
			c.warnf(n.pos, "%s: prefix length /%s not carried over (gvs adds each VIP as a /%d)", a, mask, a.BitLen())
		}
		vip := vipAddr{addr: a, pos: n.pos}
		args := n.args()
		for i := 0; i < len(args); i++ {
			opt := args[i]
			val := ""
			switch opt {
			case "dev", "brd", "scope", "label", "peer", "preferred_lft":
				if i+1 < len(args) {
					i++
					val = args[i]
				}
			}
			switch {
			case opt == "dev" && validIfName(val):
				vip.dev = val // checked against director.interface once it is known
				if v.dev == "" {
					v.dev = val
				}
			case val != "":
				c.warnf(n.pos, "%s: %s %s not carried over (gvs adds a VIP as a bare /32)", a, opt, val)
			default:
				c.warnf(n.pos, "%s: %s not carried over (gvs adds a VIP as a bare /32)", a, opt)
			}
		}
		dst = append(dst, vip)
	}
	return dst
}

// oneFamily keeps the virtual_ipaddress entries of the first one's
// family, as keepalived does: an instance is IPv4 or IPv6 (keepalived
// ignores the others), and gvs's [vrrp], which runs both, takes what the
// instance advertises.
func (c *converter) oneFamily(addrs []vipAddr) []vipAddr {
	if len(addrs) == 0 {
		return addrs
	}
	fam := family
	first := fam(addrs[0].addr)
	out := addrs[:1]
	for _, a := range addrs[1:] {
		if fam(a.addr) != first {
			c.warnf(a.pos, "%s: not carried over (the instance is %s, by its first virtual_ipaddress, and keepalived ignores an address of the other family: give it its own vrrp_instance)", a.addr, first)
			continue
		}
		out = append(out, a)
	}
	return out
}

// peersOneFamily keeps the unicast peers of the instance's family, that of
// its first virtual_ipaddress: keepalived skips a peer of the other family
// ("MUST be of the same family !!! Skipping..."), and gvs's [vrrp] sends
// each family's adverts to that family's peers only, so an IPv6 instance
// with IPv4 peers alone would not load.
func (c *converter) peersOneFamily(v *vrrpOut) {
	if len(v.addrs) == 0 {
		return
	}
	v6 := v.addrs[0].addr.Is6()
	peers, pos := v.peers[:0], v.peerPos[:0]
	for i, p := range v.peers {
		if p.Is6() != v6 {
			c.warnf(v.peerPos[i], "%s: not carried over (the instance is %s, by its first virtual_ipaddress, and keepalived skips a unicast_peer of the other family)", p, familyName(v6))
			continue
		}
		peers, pos = append(peers, p), append(pos, v.peerPos[i])
	}
	v.peers, v.peerPos = peers, pos
}

// authentication maps `authentication { auth_type PASS|AH; auth_pass P }`.
func (c *converter) authentication(b *node, v *vrrpOut) {
	var typ, pass *node
	for _, n := range b.block {
		switch n.keyword() {
		case "auth_type":
			typ = n
		case "auth_pass":
			pass = n
		default:
			c.drop(n, "not an authentication keyword")
		}
	}
	switch {
	case typ == nil:
		c.drop(b, "no auth_type")
	case len(typ.args()) != 1 || typ.args()[0] != "PASS" && typ.args()[0] != "AH":
		c.bad(typ, "PASS or AH")
	case typ.args()[0] == "AH":
		c.drop(typ, "gvs has no IPsec AH authentication; its auth_type is none or pass")
	case pass == nil || len(pass.args()) == 0 || pass.args()[0] == "":
		c.drop(typ, "no auth_pass; keepalived ignores it too")
	default:
		p := strings.Join(pass.args(), " ")
		if len(p) > 8 {
			// keepalived uses the first eight bytes only.
			p = p[:8]
			v.authNote = "keepalived uses the first 8 characters only"
		}
		if !utf8.ValidString(p) {
			c.drop(pass, "TOML carries text only, and these 8 bytes are not UTF-8")
			return
		}
		v.authPass, v.authPos = p, b.pos
	}
}

// garpRepeat parses a gratuitous ARP count; gvs sends 1..100.
func (c *converter) garpRepeat(n *node) (int, bool) {
	r, ok := c.integer(n, 0, 10000)
	if !ok {
		return 0, false
	}
	if r < 1 || r > 100 {
		c.warnf(n.pos, "%s: written as %d (gvs sends 1..100 at a time)", n.text(), min(max(r, 1), 100))
	}
	return min(max(r, 1), 100), true
}

// garpRefresh parses a refresh interval; gvs refreshes no faster than 100ms.
func (c *converter) garpRefresh(n *node) (time.Duration, bool) {
	d, ok := c.seconds(n, 0, maxTimer)
	if ok && d > 0 && d < 100*time.Millisecond {
		c.warnf(n.pos, "%s: written as 0.1 (gvs refreshes at most every 100ms)", n.text())
		d = 100 * time.Millisecond
	}
	return d, ok
}

// script parses a notify or misc_path statement: the command line (one
// word, quoted if it has arguments) and an optional user and group, which
// gvs does not carry over.
func (c *converter) script(n *node) ([]string, bool) {
	if len(n.args()) == 0 {
		c.bad(n, "a command")
		return nil, false
	}
	argv, ok := splitScript(n.args()[0])
	if !ok {
		c.bad(n, "a command line keepalived can split")
		return nil, false
	}
	if len(n.args()) > 1 {
		c.warnf(n.pos, "%s: user %s not carried over (gvsd runs scripts as its own user)", n.keyword(), strings.Join(n.args()[1:], " "))
	}
	return argv, true
}

// notifyCommand folds notify_master, notify_backup and notify into gvs's one
// notify command, which gvsd runs with the new state (MASTER, BACKUP)
// appended: a sh(1) script that runs notify_master or notify_backup, then
// notify with keepalived's arguments (INSTANCE, the name, the state, the
// priority), in keepalived's order.
func (c *converter) notifyCommand(scripts [3]opt[[]string], v *vrrpOut) []string {
	if !scripts[0].set && !scripts[1].set && !scripts[2].set {
		return nil
	}
	run := func(o opt[[]string]) string {
		if !o.set {
			return ":"
		}
		return shellJoin(o.v)
	}
	sh := `case "$1" in MASTER) ` + run(scripts[0]) + `;; BACKUP) ` + run(scripts[1]) + `;; *) exit 0;; esac`
	if scripts[2].set {
		sh += "; " + shellJoin(scripts[2].v) + " INSTANCE " + shellQuote(v.name) + ` "$1" ` + fmt.Sprint(v.priority)
	}
	v.notifyNote = "notify_master, notify_backup and notify as keepalived runs them"
	return []string{"/bin/sh", "-c", sh, "keepalived-notify"}
}

// syncOut is the [sync] table, from lvs_sync_daemon.
type syncOut struct {
	pos     Pos
	iface   string
	syncID  int
	idNote  string
	port    int
	group   netip.Addr // a multicast group other than 224.0.0.81
	ttl     int        // other than 1
	comment string
}

// syncDaemon maps `lvs_sync_daemon IF [[inst] NAME] [id N] [maxlen N] [port N]
// [ttl N] [group IP]` (and an instance's lvs_sync_daemon_interface).
func (c *converter) syncDaemon() {
	n := c.global.syncd
	if n == nil {
		if c.vrrp != nil && c.vrrp.syncIface.set {
			c.sync = &syncOut{pos: c.vrrp.syncIface.pos, iface: c.vrrp.syncIface.v, syncID: c.vrrp.vrid, port: 8848,
				idNote: "the VRID of vrrp_instance " + c.vrrp.name + ", keepalived's default"}
		}
		return
	}
	args := n.args()
	if len(args) == 0 || !validIfName(args[0]) {
		c.bad(n, "lvs_sync_daemon INTERFACE [inst] INSTANCE ...")
		return
	}
	s := &syncOut{pos: n.pos, iface: args[0], port: 8848}
	inst := ""
	id := -1
	for i := 1; i < len(args); i++ {
		k, val := args[i], ""
		if i+1 < len(args) {
			val = args[i+1]
		}
		switch {
		case k == "inst" && val != "":
			inst = val
			i++
		case k == "id" && val != "":
			i++
			if x, ok := parseUint(val, 0, 255); ok {
				id = x
			} else {
				c.warnf(n.pos, "lvs_sync_daemon id %s: not carried over (want 0..255)", val)
			}
		case k == "port" && val != "":
			i++
			if x, ok := parseUint(val, 1, 65535); ok {
				s.port = x
			} else {
				c.warnf(n.pos, "lvs_sync_daemon port %s: not carried over (want 1..65535)", val)
			}
		case k == "group" && val != "":
			i++
			if a, err := netip.ParseAddr(val); err == nil && a.IsMulticast() && !a.Is4In6() && a.Zone() == "" {
				if a != netip.AddrFrom4([4]byte{224, 0, 0, 81}) {
					s.group = a
				}
			} else {
				c.warnf(n.pos, "lvs_sync_daemon group %s: not carried over (not a multicast address)", val)
			}
		case k == "ttl" && val != "":
			i++
			if x, ok := parseUint(val, 1, 255); ok {
				if x != 1 {
					s.ttl = x
				}
			} else {
				c.warnf(n.pos, "lvs_sync_daemon ttl %s: not carried over (want 1..255)", val)
			}
		case k == "maxlen" && val != "":
			i++
			c.warnf(n.pos, "lvs_sync_daemon maxlen %s: not carried over (gvs sends messages up to the interface's MTU)", val)
		case i == 1:
			inst = k // the old form: lvs_sync_daemon IF INSTANCE [SYNCID]
		case i == 2:
			if x, ok := parseUint(k, 0, 255); ok {
				id = x
			} else {
				c.warnf(n.pos, "lvs_sync_daemon %s: not carried over (not a sync id)", k)
			}
		default:
			c.warnf(n.pos, "lvs_sync_daemon %s: not carried over (not an lvs_sync_daemon option)", k)
		}
	}
	switch {
	case inst == "":
		s.comment = "keepalived without an instance runs the master and backup sync daemons together; gvs sends while it holds the VIPs and receives while it does not"
	case c.vrrp == nil || c.vrrp.name != inst || c.vrrp.vrid == 0:
		c.warnf(n.pos, "lvs_sync_daemon inst %s: not carried over (gvs's sync follows [vrrp], which is not that instance)", inst)
	}
	switch {
	case id >= 0:
		s.syncID = id
	case inst != "" && c.vrrp != nil && c.vrrp.name == inst:
		s.syncID, s.idNote = c.vrrp.vrid, "the VRID of vrrp_instance "+inst+", keepalived's default"
	}
	c.sync = s
}

// usableVRRP reports whether a can be a VRRP address or peer: a usable
// IPv4 address, or a global or unique-local IPv6 unicast one (VRRPv3 over
// IPv6).
func usableVRRP(a netip.Addr) bool {
	if a.Is6() && !a.Is4In6() {
		return usable6(a)
	}
	return usable(a)
}
