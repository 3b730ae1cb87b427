package keepalived

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestExpandRange6 checks keepalived's IPv6 group entries (alloc_vsg_entry,
// inet_stor): a range's short end is the last 16-bit group, in hex.
func TestExpandRange6(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string // nil: refused
		why  string   // part of the reason, when refused
	}{
		{"2001:db8::50", []string{"2001:db8::50"}, ""},
		{"2001:db8::a-c", []string{"2001:db8::a", "2001:db8::b", "2001:db8::c"}, ""},
		{"2001:db8::a-A", []string{"2001:db8::a"}, ""},
		{"2001:db8::fe-100", []string{"2001:db8::fe", "2001:db8::ff", "2001:db8::100"}, ""},
		{"2001:db8::1:ffff-2001:db8::2:1", []string{"2001:db8::1:ffff", "2001:db8::2:0", "2001:db8::2:1"}, ""},
		{"2001:db8::/126", []string{"2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"}, ""},
		{"2001:db8::5/126", []string{"2001:db8::4", "2001:db8::5", "2001:db8::6", "2001:db8::7"}, ""},
		{"2001:db8::/120", nil, ""}, // 256: the most a range may stand for
		{"2001:db8::/119", nil, "more than 256"},
		{"2001:db8::c-a", nil, "ends before it starts"},
		{"2001:db8::1-10000", nil, "hexadecimal"},
		{"2001:db8::1-g", nil, "hexadecimal"},
		{"2001:db8::1--2", nil, "hexadecimal"},
		{"2001:db8::1-10.0.0.1", nil, "hexadecimal"},
		{"2001:db8::1-2001:db8::zz", nil, "two IPv6 addresses"},
		{"fe80::1", nil, "global or unique-local"},
		{"fe80::1%eth0", nil, "global or unique-local"},
		{"ff02::1-3", nil, "global or unique-local"},
		{"::ffff:10.0.0.1", nil, "global or unique-local"},
		{"2001:db8::x", nil, "not an IPv6 address"},
	} {
		got, why := expandRange(tt.in)
		if tt.in == "2001:db8::/120" {
			if why != "" || len(got) != 256 || got[255] != netip.MustParseAddr("2001:db8::ff") {
				t.Errorf("expandRange(%q) = %d addresses, %q; want 256 up to 2001:db8::ff", tt.in, len(got), why)
			}
			continue
		}
		var gotS []string
		for _, a := range got {
			gotS = append(gotS, a.String())
		}
		if !slices.Equal(gotS, tt.want) || (tt.want == nil) != (why != "") || !strings.Contains(why, tt.why) {
			t.Errorf("expandRange(%q) = %v, %q; want %v, %q", tt.in, gotS, why, tt.want, tt.why)
		}
	}
}

// TestMiscCommandIPv6 checks that an IPv6 real's address in a misc_path
// becomes GVS_REAL_ADDR only where it is the whole address.
func TestMiscCommandIPv6(t *testing.T) {
	real := func(addr string, port uint16) realOut {
		a := netip.MustParseAddr(addr)
		return realOut{addr: netip.AddrPortFrom(a, port), kaPort: port, rs: &rsDef{addr: a, port: port}}
	}
	for _, tt := range []struct {
		argv []string
		r    realOut
		want string // the sh -c script, or the argv joined when unchanged
	}{
		{[]string{"check", "2001:db8::a", "80"}, real("2001:db8::a", 80), `exec check "${GVS_REAL_ADDR}" "${GVS_REAL_PORT}"`},
		{[]string{"check", "[2001:db8::a]:80"}, real("2001:db8::a", 80), `exec check "[${GVS_REAL_ADDR}]:${GVS_REAL_PORT}"`},
		{[]string{"check", "http://[2001:db8::a]:8080/"}, real("2001:db8::a", 80), `exec check "http://[${GVS_REAL_ADDR}]:8080/"`},
		{[]string{"check", "2001:db8::ab"}, real("2001:db8::a", 80), "check 2001:db8::ab"},
		{[]string{"check", "2001:db8::a:1"}, real("2001:db8::a", 80), "check 2001:db8::a:1"},
		{[]string{"check", "2001:db8::a:80"}, real("2001:db8::a", 80), "check 2001:db8::a:80"}, // another address, not a port
		{[]string{"check", "12001:db8::a"}, real("2001:db8::a", 80), "check 12001:db8::a"},
	} {
		got := miscCommand(tt.argv, tt.r)
		s := strings.Join(got, " ")
		if len(got) == 3 && got[0] == "/bin/sh" {
			s = got[2]
		}
		if s != tt.want {
			t.Errorf("miscCommand(%q) = %q, want %q", tt.argv, s, tt.want)
		}
	}
}

// TestImportIPv6 imports small files around the family rules and checks
// that each loads and says what it left out.
func TestImportIPv6(t *testing.T) {
	for _, tt := range []struct {
		name, conf string
		want       []string // in the TOML
		warn       []string // in the warnings
		not        []string // not in the TOML
	}{
		{
			name: "ip_family against the address",
			conf: "virtual_server 10.0.0.1 80 { ip_family inet6\nprotocol TCP\nreal_server 10.0.0.2 80 }",
			want: []string{`address = "10.0.0.1:80"`},
			warn: []string{"ip_family inet6: not carried over (the virtual_server's addresses are IPv4; keepalived ignores it too)"},
		},
		{
			name: "mixed group, family of the first real",
			conf: "virtual_server_group G { 10.0.0.1 80\n2001:db8::1 80 }\nvirtual_server group G { protocol TCP\nreal_server 2001:db8::2 80\nreal_server 10.0.0.2 80 }",
			want: []string{`address = "[2001:db8::1]:80"`, `address = "[2001:db8::2]:80"`},
			not:  []string{`10.0.0.`},
			warn: []string{"IPv4 VIPs: not carried over for virtual_server group G", "by the family of its first real_server", "real_server 10.0.0.2 80: not carried over (an IPv4 real of an IPv6 virtual_server"},
		},
		{
			name: "IPv6 prefix length 128 is the default",
			conf: "virtual_server 2001:db8::1 80 { protocol TCP\npersistence_granularity 128\nreal_server 2001:db8::2 80 }",
			want: []string{`persistence = "360s"`},
			not:  []string{"persistence_netmask"},
		},
		{
			name: "IPv6 prefix length out of range",
			conf: "virtual_server 2001:db8::1 80 { protocol TCP\npersistence_granularity 129\nreal_server 2001:db8::2 80 }",
			not:  []string{"persistence"},
			warn: []string{"persistence_granularity 129: not carried over (an IPv6 service takes a prefix length, 1 to 128"},
		},
		{
			name: "VRRPv2 without addresses, IPv4 and IPv6 services",
			conf: "vrrp_instance V {\ninterface eth0\nvirtual_router_id 7\n}\nvirtual_server 10.0.0.1 80 { protocol TCP\nreal_server 10.0.0.2 80 }\nvirtual_server 2001:db8::1 80 { protocol TCP\nreal_server 2001:db8::2 80 }",
			want: []string{"version = 2", `addresses = ["10.0.0.1"]`},
			warn: []string{"vrrp_instance V: has no virtual_ipaddress: [vrrp] addresses lists the IPv4 service VIPs"},
		},
		{
			name: "IPv6 peers without addresses",
			conf: "vrrp_instance V {\ninterface eth0\nvirtual_router_id 7\nunicast_peer { 2001:db8::9 }\n}\nvirtual_server 10.0.0.1 80 { protocol TCP\nreal_server 10.0.0.2 80 }\nvirtual_server 2001:db8::1 80 { protocol TCP\nreal_server 2001:db8::2 80 }",
			want: []string{"version = 3", `addresses = ["2001:db8::1"]`},
		},
		{
			name: "VRRPv2 without addresses, IPv6 services only",
			conf: "vrrp_instance V {\ninterface eth0\nvirtual_router_id 7\n}\nvirtual_server 2001:db8::1 80 { protocol TCP\nreal_server 2001:db8::2 80 }",
			not:  []string{"[vrrp]"},
			warn: []string{"vrrp_instance V: not carried over ([vrrp] is not written"},
		},
		{
			name: "VRRPv3 without addresses or peers runs both families",
			conf: "global_defs { vrrp_version 3 }\nvrrp_instance V {\ninterface eth0\nvirtual_router_id 7\n}\nvirtual_server 10.0.0.1 80 { protocol TCP\nreal_server 10.0.0.2 80 }\nvirtual_server 2001:db8::1 80 { protocol TCP\nreal_server 2001:db8::2 80 }",
			want: []string{"version = 3"},
			not:  []string{"addresses"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Import(mapFiles{"keepalived.conf": []byte(tt.conf)}, "keepalived.conf")
			if err != nil {
				t.Fatal(err)
			}
			mustLoad(t, res.TOML)
			var warns strings.Builder
			for _, w := range res.Warnings {
				warns.WriteString(w.String() + "\n")
			}
			for _, s := range tt.want {
				if !strings.Contains(string(res.TOML), s) {
					t.Errorf("TOML has no %q:\n%s", s, res.TOML)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(string(res.TOML), s) {
					t.Errorf("TOML has %q:\n%s", s, res.TOML)
				}
			}
			for _, s := range tt.warn {
				if !strings.Contains(warns.String(), s) {
					t.Errorf("no warning with %q:\n%s", s, warns.String())
				}
			}
		})
	}
}

// TestVRRPFamiliesLoad imports every combination of VRRP version, unicast
// peers, virtual_ipaddress and service families, and checks that each
// output loads: gvs's [vrrp] runs both families where a keepalived instance
// runs one.
func TestVRRPFamiliesLoad(t *testing.T) {
	lists := map[string][]string{
		"none": nil,
		"v4":   {"10.0.0.9"},
		"v6":   {"2001:db8::9"},
		"both": {"10.0.0.9", "2001:db8::9"},
	}
	services := map[string]string{
		"none": "",
		"v4":   "virtual_server 10.0.0.1 80 { protocol TCP\nreal_server 10.0.0.2 80 }\n",
		"v6":   "virtual_server 2001:db8::1 80 { protocol TCP\nreal_server 2001:db8::2 80 }\n",
	}
	services["both"] = services["v4"] + services["v6"]
	for _, version := range []string{"2", "3"} {
		for peersName, peers := range lists {
			for addrsName, addrs := range lists {
				for svcName, svc := range services {
					conf := "vrrp_instance V {\ninterface eth0\nvirtual_router_id 7\nversion " + version + "\n"
					if len(peers) > 0 {
						conf += "unicast_peer {\n" + strings.Join(peers, "\n") + "\n}\n"
					}
					if len(addrs) > 0 {
						conf += "virtual_ipaddress {\n" + strings.ReplaceAll(strings.Join(addrs, "\n"), "::9", "::1") + "\n}\n"
					}
					conf += "}\n" + svc
					t.Run("v"+version+"/peers-"+peersName+"/addrs-"+addrsName+"/services-"+svcName, func(t *testing.T) {
						res, err := Import(mapFiles{"keepalived.conf": []byte(conf)}, "keepalived.conf")
						if err != nil {
							t.Fatal(err)
						}
						mustLoad(t, res.TOML)
					})
				}
			}
		}
	}
}
