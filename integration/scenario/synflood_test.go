package scenario

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestSYNFloodTrafgen is a golden check of the flood's frame: the
// addresses in place and every field trafgen draws or computes.
func TestSYNFloodTrafgen(t *testing.T) {
	dst := net.HardwareAddr{0x02, 0x00, 0x0a, 0x0a, 0x00, 0x01}
	src := net.HardwareAddr{0x02, 0x00, 0x0a, 0x0a, 0x00, 0x02}
	got := SYNFloodTrafgen(dst, src, netip.MustParseAddrPort("10.20.0.100:80"))
	want := `/* gvs SYN flood: TCP SYNs from 198.18.x.y:random to 10.20.0.100:80 */
{
  0x02, 0x00, 0x0a, 0x0a, 0x00, 0x01,
  0x02, 0x00, 0x0a, 0x0a, 0x00, 0x02,
  c16(0x0800),
  0x45, 0x00, c16(40), drnd(2), c16(0x4000), 64, 6, csumip(14, 33),
  198, 18, drnd(2),
  0x0a, 0x14, 0x00, 0x64,
  drnd(2), c16(80), drnd(4), c32(0),
  0x50, 0x02, c16(64240), csumtcp(14, 34), c16(0),
}
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// The frame is 54 bytes: Ethernet 14, IPv4 20 (total length 40), TCP
	// 20.
	if n := trafgenBytes(got); n != 54 {
		t.Errorf("the frame is %d bytes, want 54", n)
	}
	if got := SYNFloodTrafgen(dst, src, netip.MustParseAddrPort("10.20.0.11:8080")); !strings.Contains(got, "  0x0a, 0x14, 0x00, 0x0b,\n  drnd(2), c16(8080),") {
		t.Errorf("another target:\n%s", got)
	}
}

// TestSYNFloodTrafgen6 is the golden check of the IPv6 flood's frame
// (its checksums were checked once with tcpdump -vv: "cksum ... (correct)").
func TestSYNFloodTrafgen6(t *testing.T) {
	dst := net.HardwareAddr{0x02, 0x00, 0x0a, 0x0a, 0x00, 0x01}
	src := net.HardwareAddr{0x02, 0x00, 0x0a, 0x0a, 0x00, 0x02}
	got := SYNFloodTrafgen(dst, src, netip.MustParseAddrPort("[fd00:20::100]:80"))
	want := `/* gvs SYN flood: TCP SYNs from 2001:2::/48:random to [fd00:20::100]:80 */
{
  0x02, 0x00, 0x0a, 0x0a, 0x00, 0x01,
  0x02, 0x00, 0x0a, 0x0a, 0x00, 0x02,
  c16(0x86dd),
  0x60, 0x00, 0x00, 0x00, c16(20), 6, 64,
  0x20, 0x01, 0x00, 0x02, 0x00, 0x00, drnd(10),
  0xfd, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
  drnd(2), c16(80), drnd(4), c32(0),
  0x50, 0x02, c16(64240), csumtcp6(14, 54), c16(0),
}
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// 74 bytes: Ethernet 14, IPv6 40, TCP 20.
	if n := trafgenBytes(got); n != 74 {
		t.Errorf("the frame is %d bytes, want 74", n)
	}
	if got := SYNFloodTrafgen(dst, src, netip.MustParseAddrPort("[::ffff:10.20.0.100]:80")); !strings.Contains(got, "c16(0x0800)") {
		t.Errorf("an IPv4-mapped target is IPv4:\n%s", got)
	}
}

// trafgenBytes counts the bytes of a one-frame trafgen configuration: hex
// bytes and plain numbers are 1, c16 2, c32 4, drnd(n) n, the checksums 2.
func trafgenBytes(cfg string) int {
	n := 0
	for _, f := range strings.FieldsFunc(cfg[strings.Index(cfg, "{")+1:strings.LastIndex(cfg, "}")], func(r rune) bool { return r == ',' || r == '\n' || r == ' ' }) {
		switch {
		case strings.HasPrefix(f, "c16("), strings.HasPrefix(f, "csum"):
			n += 2
		case strings.HasPrefix(f, "c32("):
			n += 4
		case strings.HasPrefix(f, "drnd("):
			k, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(f, "drnd("), ")"))
			n += k
		case strings.HasSuffix(f, ")"): // the second argument of a checksum
		default:
			n++
		}
	}
	return n
}

func TestTrafgenArgs(t *testing.T) {
	base := []string{"trafgen", "-o", "eth0", "-i", "/tmp/f.cfg", "-P", "1", "-S", "256KiB", "--notouch-irq"}
	for _, c := range []struct {
		rate string
		want []string
	}{
		{"", base},
		{"max", base},
		{"100000pps", append(slices.Clone(base), "-b", "100000pps")},
	} {
		if got := TrafgenArgs("eth0", "/tmp/f.cfg", c.rate); !slices.Equal(got, c.want) {
			t.Errorf("rate %q: %q, want %q", c.rate, got, c.want)
		}
	}
}

func TestTrafgenSent(t *testing.T) {
	// The end of what trafgen 0.6.8 printed when the bench stopped it.
	out := "Cannot set system socket memory in /proc/sys/net/core/wmem_default: Permission denied\n\n" +
		"\r      258411 packets outgoing\n\r    13954194 bytes outgoing\n\r           4 sec, 66988 usec on CPU0 (258411 packets)\n"
	if got := TrafgenSent(out); got != 258411 {
		t.Errorf("TrafgenSent = %d, want 258411", got)
	}
	if got := TrafgenSent("trafgen: cannot open eth9\n"); got != 0 {
		t.Errorf("TrafgenSent of a failure = %d, want 0", got)
	}
}
