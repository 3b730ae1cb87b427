package keepalived

import (
	"fmt"
	"net/netip"
	"slices"
)

// crossCheck compares what VRRP holds with what the services need: gvs holds
// exactly its services' VIPs while master, keepalived exactly its
// virtual_ipaddress list.
func (c *converter) crossCheck() {
	v := c.vrrp
	if v == nil || v.vrid == 0 {
		return
	}
	vips := map[netip.Addr]bool{}
	for _, s := range c.services {
		vips[s.addr.Addr()] = true
	}
	isVIP := func(a netip.Addr) bool { return vips[a] }
	for _, a := range v.addrs {
		if !isVIP(a.addr) {
			c.warnf(a.pos, "%s: advertised but not held (gvs holds the VIPs of its services only, and no virtual_server uses %s)", a.addr, a.addr)
		}
	}
	for _, a := range v.excluded {
		if !isVIP(a.addr) {
			c.warnf(a.pos, "%s: not carried over (gvs holds the VIPs of its services only, and no virtual_server uses %s)", a.addr, a.addr)
		}
	}
	for _, a := range append(slices.Clone(v.addrs), v.excluded...) {
		switch {
		case a.dev != "" && a.dev != c.iface:
			c.warnf(a.pos, "%s: dev %s not carried over (gvs adds every VIP on director.interface, %s)", a.addr, a.dev, c.iface)
		case a.dev == "" && v.iface != "" && v.iface != c.iface:
			c.warnf(a.pos, "%s: interface %s (the instance's) not carried over (gvs adds every VIP on director.interface, %s)", a.addr, v.iface, c.iface)
		}
	}
	listed := map[netip.Addr]bool{}
	for _, a := range append(slices.Clone(v.addrs), v.excluded...) {
		listed[a.addr] = true
	}
	seen := map[netip.Addr]bool{}
	for _, s := range c.services {
		a := s.addr.Addr()
		if !listed[a] && !seen[a] {
			seen[a] = true
			c.warnf(Pos{File: c.main}, "VIP %s of %s is in no virtual_ipaddress: gvs adds it while master (keepalived left it to something else)", a, s.comments[0])
		}
	}
	if len(v.addrs) == 0 && len(c.services) == 0 {
		c.warnf(v.pos, "vrrp_instance %s: no IPv4 virtual_ipaddress and no virtual_server: gvsd has no address to advertise", v.name)
	}
}

// vrrpFamilies handles an instance without virtual_ipaddress: gvs's
// [vrrp] then advertises every service VIP, of both families, which needs
// VRRPv3 for IPv6 ones and, with unicast_peers, a peer of each family. A
// keepalived instance is of one family, so [vrrp] lists the service VIPs of
// the instance's family (its peers', else IPv4) when the default would not
// load; gvs adds the others while master. When there are none, [vrrp] is
// not written.
func (c *converter) vrrpFamilies() {
	v := c.vrrp
	if v == nil || v.vrid == 0 || len(v.addrs) > 0 {
		return
	}
	has4, has6, peer4, peer6 := false, false, false, false
	for _, s := range c.services {
		has4, has6 = has4 || s.addr.Addr().Is4(), has6 || s.addr.Addr().Is6()
	}
	for _, p := range v.peers {
		peer4, peer6 = peer4 || p.Is4(), peer6 || p.Is6()
	}
	if !has6 || v.version.v == 3 && (len(v.peers) == 0 || peer6 && (!has4 || peer4)) {
		return
	}
	v6 := peer6 && !peer4
	for _, s := range c.services {
		if a := s.addr.Addr(); a.Is6() == v6 && !slices.Contains(v.derived, a) {
			v.derived = append(v.derived, a)
		}
	}
	fam, other := familyName(v6), familyName(!v6)
	if len(v.derived) == 0 {
		c.warnf(v.pos, "vrrp_instance %s: not carried over ([vrrp] is not written: the instance has no virtual_ipaddress and is %s, by its unicast_peer, and gvs's [vrrp] would advertise the %s service VIPs, which it cannot; give it a virtual_ipaddress)",
			v.name, fam, other)
		v.vrid = 0
		return
	}
	if v6 && v.version.v == 2 {
		v.version = some(3, v.version.pos)
		v.versionNote = "keepalived speaks VRRPv3 for an IPv6 instance"
	}
	c.warnf(v.pos, "vrrp_instance %s: has no virtual_ipaddress: [vrrp] addresses lists the %s service VIPs (the instance is %s; gvs's default, every service VIP, would advertise the %s ones too); gvs adds those while master",
		v.name, fam, fam, other)
}

// render writes the gvs configuration.
func (c *converter) render() []byte {
	head := []string{
		"gvs configuration imported from " + c.main + " by `gvsd import-keepalived`.",
		"What it could not carry over is on its stderr; README \"Coming from keepalived\" has the mapping.",
	}
	head = append(head, c.head...)
	var tables []*table

	d := &table{header: "[director]"}
	d.add("interface", tomlString(c.iface), c.ifaceWhy)
	tables = append(tables, d)

	if g := c.global.timeouts; g[0].set || g[1].set || g[2].set {
		t := &table{header: "[timeouts]", comments: []string{c.global.timeoutsPos.String() + ": lvs_timeouts"}}
		for i, k := range []string{"tcp", "tcp_fin", "udp"} {
			if g[i].set {
				t.add(k, tomlDuration(g[i].v), "")
			}
		}
		tables = append(tables, t)
	}

	if v := c.vrrp; v != nil && v.vrid != 0 {
		tables = append(tables, c.vrrpTable(v))
	}
	if s := c.sync; s != nil {
		t := &table{header: "[sync]", comments: []string{s.pos.String() + ": lvs_sync_daemon"}}
		if s.comment != "" {
			t.comments = append(t.comments, s.comment)
		}
		if s.iface != c.iface {
			t.add("interface", tomlString(s.iface), "")
		}
		if s.group.IsValid() {
			t.add("group", tomlString(s.group.String()), "")
		}
		if s.ttl != 0 {
			t.add("ttl", tomlInt(s.ttl), "")
		}
		if s.port != 8848 {
			t.add("port", tomlInt(s.port), "")
		}
		if s.syncID != 0 {
			t.add("sync_id", tomlInt(s.syncID), s.idNote)
		}
		tables = append(tables, t)
	}
	for _, s := range c.services {
		tables = append(tables, serviceTables(s)...)
	}
	return render(head, tables)
}

func (c *converter) vrrpTable(v *vrrpOut) *table {
	t := &table{header: "[vrrp]", comments: []string{v.pos.String() + ": vrrp_instance " + v.name}}
	if v.state != "" {
		t.comments = append(t.comments, "state "+v.state+": gvs has no initial state; it elects the master by priority")
	}
	t.add("version", tomlInt(v.version.v), v.versionNote)
	t.add("router_id", tomlInt(v.vrid), "virtual_router_id")
	if v.iface != "" && v.iface != c.iface {
		t.add("interface", tomlString(v.iface), "")
	}
	t.add("priority", tomlInt(v.priority), v.priorityNote)
	t.add("advert_interval", tomlDuration(v.advert), v.advertNote)
	if !v.preempt || v.preemptNote != "" {
		t.add("preempt", tomlBool(v.preempt), v.preemptNote)
	}
	if v.preemptDelay > 0 {
		t.add("preempt_delay", tomlDuration(v.preemptDelay), "")
	}
	if len(v.peers) > 0 {
		t.add("unicast_peers", tomlStrings(addrStrings(v.peers)), "")
	}
	var addrs []netip.Addr
	for _, a := range v.addrs {
		addrs = append(addrs, a.addr)
	}
	if len(addrs) > 0 {
		t.add("addresses", tomlStrings(addrStrings(addrs)), "virtual_ipaddress")
	} else if len(v.derived) > 0 {
		t.add("addresses", tomlStrings(addrStrings(v.derived)), "no virtual_ipaddress: the service VIPs of the instance's family")
	}
	if v.authPass != "" {
		t.add("auth_type", tomlString("pass"), "")
		t.add("auth_pass", tomlString(v.authPass), v.authNote)
	}
	if v.garpRepeat.set {
		t.add("garp_repeat", tomlInt(v.garpRepeat.v), "")
	}
	if v.garpDelay.set {
		t.add("garp_delay", tomlDuration(v.garpDelay.v), "")
	}
	if v.garpRefresh.set {
		t.add("garp_refresh", tomlDuration(v.garpRefresh.v), "")
	}
	if len(v.notify) > 0 {
		t.add("notify", tomlStrings(v.notify), v.notifyNote)
	}
	return t
}

func serviceTables(s *serviceOut) []*table {
	t := &table{header: "[[service]]", comments: s.comments}
	t.add("address", tomlString(s.addr.String()), "")
	t.add("protocol", tomlString(s.proto), s.protoNote)
	t.add("scheduler", tomlString(s.sched), "")
	if len(s.flags) > 0 {
		t.add("scheduler_flags", tomlStrings(s.flags), "")
	}
	t.add("forward", tomlString(s.forward), s.forwardNote)
	if s.persistence > 0 {
		t.add("persistence", tomlDuration(s.persistence), nonEmpty(s.persistNote, "persistence_timeout"))
	}
	if s.netmask != 0 {
		t.add("persistence_netmask", tomlInt(s.netmask), "persistence_granularity")
	}
	if s.ops {
		t.add("ops", "true", "")
	}
	if s.synproxy {
		t.add("synproxy", "true", "syn_proxy")
	}
	if s.sorry.IsValid() {
		t.add("sorry", tomlString(s.sorry.String()), nonEmpty(s.sorryNote, "sorry_server"))
	}
	out := []*table{t}

	if k := s.check; k != nil {
		const in = "  "
		ct := &table{header: "[service.check]", indent: in, comments: []string{fmt.Sprintf("%s: %s", k.from.pos, k.from.keyword())}}
		ct.add("type", tomlString(k.typ), "")
		ct.add("interval", tomlDuration(k.interval), k.intervalNote)
		ct.add("timeout", tomlDuration(k.timeout), k.timeoutNote)
		ct.add("rise", "1", "keepalived puts a real back after one success")
		ct.add("fall", tomlInt(k.fall), k.fallNote)
		if k.port != 0 {
			ct.add("port", tomlInt(k.port), k.portNote)
		}
		if k.typ == "http" || k.typ == "https" {
			ct.add("path", tomlString(k.path), "")
			ct.add("status", tomlInts(k.status, in), k.statusNote)
		}
		if k.typ == "udp" {
			ct.add("send", tomlString(k.send), k.sendNote)
		}
		if k.expect != "" {
			ct.add("expect", tomlString(k.expect), k.expectNote)
		}
		if k.typ == "exec" {
			ct.add("command", tomlStrings(k.command), k.commandNote)
		}
		if k.quiesce {
			ct.add("on_failure", tomlString("quiesce"), "inhibit_on_failure")
		}
		if k.alpha {
			ct.add("alpha", "true", "")
		}
		out = append(out, ct)
	}

	for _, r := range s.reals {
		rt := &table{header: "[[service.real]]", indent: "  ", comments: []string{r.rs.n.pos.String() + ": " + r.rs.n.text()}}
		rt.add("address", tomlString(r.addr.String()), r.comment)
		rt.add("weight", tomlInt(r.weight), "")
		if r.upper != 0 {
			rt.add("upper_threshold", tomlInt(r.upper), "uthreshold")
		}
		if r.lower != 0 {
			rt.add("lower_threshold", tomlInt(r.lower), "lthreshold")
		}
		if r.forward != "" {
			rt.add("forward", tomlString(r.forward), "lb_kind")
		}
		out = append(out, rt)
	}
	return out
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func nonEmpty(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
