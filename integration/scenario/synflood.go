package scenario

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// SYNFloodSources is where the spoofed SYNs of SYNFloodTrafgen come from,
// 198.18.x.y: RFC 2544 benchmark space, routed nowhere in the lab, so the
// answers to the flood (SYN-ACKs, cookies) die at the router and nothing
// completes a handshake. The router's reverse-path filter must be off
// (rp_filter = 0 on all and on the interface the flood comes in on), or it
// drops the flood for having no route back.
var SYNFloodSources = netip.MustParsePrefix("198.18.0.0/16")

// SYNFloodSources6 is where the spoofed SYNs come from for an IPv6 target:
// 2001:2::/48, RFC 5180's benchmarking space, routed nowhere in the lab
// either. IPv6 has no reverse-path filter in the kernel.
var SYNFloodSources6 = netip.MustParsePrefix("2001:2::/48")

// SYNFloodTrafgen returns a trafgen(8) configuration of one TCP SYN frame
// from src (MAC) to dst (MAC) for target, whose IP ID, source address (in
// SYNFloodSources), source port and sequence number trafgen draws at
// random for every frame, recomputing both checksums. No padding:
// trafgen's TCP checksum covers everything after the TCP header's offset.
//
//	Ethernet (RFC 894)   0  destination MAC | 6 source MAC | 12 EtherType 0x0800
//	IPv4 (RFC 791)      14  version/IHL | TOS | 16 total length 40 | 18 ID | 20 flags DF
//	                    22  TTL | 23 protocol 6 | 24 header checksum | 26 source | 30 destination
//	TCP (RFC 9293)      34  source port | 36 destination port | 38 sequence | 42 acknowledgment
//	                    46  data offset 5 | 47 flags SYN | 48 window | 50 checksum | 52 urgent
//
// An IPv6 target gets the same SYN behind an IPv6 header from
// SYNFloodSources6, the 80 bits after the /48 drawn at random:
//
//	Ethernet (RFC 894)   0  destination MAC | 6 source MAC | 12 EtherType 0x86DD
//	IPv6 (RFC 8200)     14  version 6, flow label 0 | 18 payload length 20 | 20 next header 6 | 21 hop limit 64
//	                    22  source (16) | 38 destination (16)
//	TCP (RFC 9293)      54  as above, 20 bytes later
func SYNFloodTrafgen(dst, src net.HardwareAddr, target netip.AddrPort) string {
	if target.Addr().Is6() && !target.Addr().Is4In6() {
		return synFloodTrafgen6(dst, src, target)
	}
	const (
		offIP  = 14
		offTCP = 34
	)
	from := SYNFloodSources.Addr().As4()
	a := target.Addr().As4()
	var b strings.Builder
	fmt.Fprintf(&b, "/* gvs SYN flood: TCP SYNs from %d.%d.x.y:random to %s */\n{\n", from[0], from[1], target)
	fmt.Fprintf(&b, "  %s,\n  %s,\n  c16(0x0800),\n", hexBytes(dst), hexBytes(src))
	fmt.Fprintf(&b, "  0x45, 0x00, c16(40), drnd(2), c16(0x4000), 64, 6, csumip(%d, %d),\n", offIP, offTCP-1)
	fmt.Fprintf(&b, "  %d, %d, drnd(2),\n  %s,\n", from[0], from[1], hexBytes(a[:]))
	fmt.Fprintf(&b, "  drnd(2), c16(%d), drnd(4), c32(0),\n", target.Port())
	fmt.Fprintf(&b, "  0x50, 0x02, c16(64240), csumtcp(%d, %d), c16(0),\n}\n", offIP, offTCP)
	return b.String()
}

// hexBytes writes b as trafgen's comma-separated 0xNN bytes.
func hexBytes(b []byte) string {
	s := make([]string, len(b))
	for i, c := range b {
		s[i] = fmt.Sprintf("0x%02x", c)
	}
	return strings.Join(s, ", ")
}

// synFloodTrafgen6 is SYNFloodTrafgen for an IPv6 target.
func synFloodTrafgen6(dst, src net.HardwareAddr, target netip.AddrPort) string {
	const (
		offIP  = 14
		offTCP = 54
	)
	from := SYNFloodSources6.Addr().As16()
	a := target.Addr().As16()
	var b strings.Builder
	fmt.Fprintf(&b, "/* gvs SYN flood: TCP SYNs from %s:random to %s */\n{\n", SYNFloodSources6, target)
	fmt.Fprintf(&b, "  %s,\n  %s,\n  c16(0x86dd),\n", hexBytes(dst), hexBytes(src))
	fmt.Fprintf(&b, "  0x60, 0x00, 0x00, 0x00, c16(20), 6, 64,\n")
	fmt.Fprintf(&b, "  %s, drnd(10),\n  %s,\n", hexBytes(from[:6]), hexBytes(a[:]))
	fmt.Fprintf(&b, "  drnd(2), c16(%d), drnd(4), c32(0),\n", target.Port())
	fmt.Fprintf(&b, "  0x50, 0x02, c16(64240), csumtcp6(%d, %d), c16(0),\n}\n", offIP, offTCP)
	return b.String()
}

// TrafgenArgs is the command line that sends the frames of cfgPath (a
// trafgen configuration such as SYNFloodTrafgen's) out of iface at rate
// (trafgen's -b: "80000pps"; "" or "max" for as fast as it can) until it
// is interrupted (SIGINT), when it prints its statistics (see TrafgenSent).
func TrafgenArgs(iface, cfgPath, rate string) []string {
	// -P 1: one worker, which trafgen pins to CPU 0. --notouch-irq: leave
	// the host's IRQ affinities alone. -S: a TX ring of 256 KiB, as the
	// bench's generator. (trafgen's complaints that it cannot raise
	// net.core.[rw]mem_* are expected: they are read-only in a child
	// namespace.)
	args := []string{"trafgen", "-o", iface, "-i", cfgPath, "-P", "1", "-S", "256KiB", "--notouch-irq"}
	if rate != "" && rate != "max" {
		args = append(args, "-b", rate)
	}
	return args
}

// TrafgenSent returns the frames trafgen reports it sent ("N packets
// outgoing" in the statistics it prints when it stops), or 0.
func TrafgenSent(out string) uint64 {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(strings.TrimSpace(strings.ReplaceAll(sc.Text(), "\r", " ")))
		if len(f) >= 3 && f[1] == "packets" && f[2] == "outgoing" {
			n, _ := strconv.ParseUint(f[0], 10, 64)
			return n
		}
	}
	return 0
}
