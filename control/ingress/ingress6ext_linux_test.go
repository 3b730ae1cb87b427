package ingress

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// padN8 is an 8-byte options header holding one PadN option (RFC 8200
// section 4.2): what IPV6_HOPOPTS and IPV6_DSTOPTS take (the kernel fills
// in the Next Header).
var padN8 = []byte{0, 0, 1, 4, 0, 0, 0, 0}

// extOpt is a sticky IPv6 option for a socket: IPV6_HOPOPTS or
// IPV6_DSTOPTS (ipv6(7); setting them needs CAP_NET_RAW).
type extOpt int

func (o extOpt) String() string {
	if o == unix.IPV6_HOPOPTS {
		return "hop-by-hop"
	}
	return "destination options"
}

// withOpts is a net.Dialer / net.ListenConfig Control that sets opts.
func withOpts(opts ...extOpt) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			for _, o := range opts {
				if err = unix.SetsockoptString(int(fd), unix.IPPROTO_IPV6, int(o), string(padN8)); err != nil {
					return
				}
			}
		}); cerr != nil {
			return cerr
		}
		return err
	}
}

// udpWithOpts sends three datagrams of payload from f.src in the peer
// namespace, its socket carrying opts, to a listener on f.dst in the
// director namespace, and reports whether one arrives whole within wait.
func (l *lab) udpWithOpts(t *testing.T, f flow, payload []byte, wait time.Duration, opts ...extOpt) bool {
	t.Helper()
	var ln *net.UDPConn
	l.dir.Do(t, func() {
		var err error
		if ln, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(f.dst)); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	l.peer.Do(t, func() {
		lc := net.ListenConfig{Control: withOpts(opts...)}
		pc, err := lc.ListenPacket(context.Background(), "udp6", net.UDPAddrFromAddrPort(f.src).String())
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		for range 3 {
			if _, err := pc.WriteTo(payload, net.UDPAddrFromAddrPort(f.dst)); err != nil {
				t.Fatal(err)
			}
		}
	})
	ln.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, len(payload)+1)
	n, _, err := ln.ReadFromUDPAddrPort(buf)
	return err == nil && bytes.Equal(buf[:n], payload)
}

// tcpWithOpts is tcpConnects with opts on the peer's socket.
func (l *lab) tcpWithOpts(t *testing.T, f flow, wait time.Duration, opts ...extOpt) bool {
	t.Helper()
	var ln net.Listener
	l.dir.Do(t, func() {
		var err error
		if ln, err = net.Listen("tcp", f.dst.String()); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	ok := false
	l.peer.Do(t, func() {
		d := net.Dialer{Timeout: wait, LocalAddr: net.TCPAddrFromAddrPort(f.src), Control: withOpts(opts...)}
		if c, err := d.Dial("tcp", f.dst.String()); err == nil {
			c.Close()
			ok = true
		}
	})
	return ok
}

// rawUDP6 sends, from the peer namespace through a raw IPv6 socket
// (IPPROTO_RAW: the caller writes the IPv6 header), one UDP datagram of
// flow f (its source port must be set) behind the extension headers exts
// (each an options header of 8 bytes of padding, of the given type), and
// reports whether it reaches a listener on f.dst in the director
// namespace within wait.
func (l *lab) rawUDP6(t *testing.T, f flow, exts []uint8, wait time.Duration) bool {
	t.Helper()
	payload := []byte("probe")
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], f.src.Port())
	binary.BigEndian.PutUint16(udp[2:], f.dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	src, dst := f.src.Addr().As16(), f.dst.Addr().As16()
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += uint32(len(udp)) + unix.IPPROTO_UDP
	add(udp)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], ^uint16(sum))
	var ext []byte
	for i := range exts {
		nh := byte(unix.IPPROTO_UDP)
		if i+1 < len(exts) {
			nh = exts[i+1]
		}
		h := append([]byte(nil), padN8...)
		h[0] = nh
		ext = append(ext, h...)
	}
	pkt := make([]byte, 40, 40+len(ext)+len(udp))
	pkt[0] = 0x60
	binary.BigEndian.PutUint16(pkt[4:], uint16(len(ext)+len(udp)))
	pkt[6] = unix.IPPROTO_UDP
	if len(exts) > 0 {
		pkt[6] = exts[0]
	}
	pkt[7] = 64
	copy(pkt[8:], src[:])
	copy(pkt[24:], dst[:])
	pkt = append(append(pkt, ext...), udp...)

	var ln *net.UDPConn
	l.dir.Do(t, func() {
		var err error
		if ln, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(f.dst)); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	l.peer.Do(t, func() {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		for range 3 {
			if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet6{Addr: dst}); err != nil {
				t.Fatalf("sendto: %v", err)
			}
		}
	})
	ln.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 64)
	n, _, err := ln.ReadFromUDPAddrPort(buf)
	return err == nil && string(buf[:n]) == "probe"
}

// TestInstallIPv6ExtensionHeaders sends real packets with extension
// headers through the table: TCP and UDP to an IPv6 [VIP]:port behind a
// hop-by-hop or destination options header (or both), NAT replies behind
// destination options and the first fragment of a datagram behind a
// hop-by-hop header are dropped, as the socket filter takes them; the same
// to other ports reach the kernel; and a chain the filter does not walk
// (destination options twice) reaches the kernel and is counted.
func TestInstallIPv6ExtensionHeaders(t *testing.T) {
	l := newLab6(t)
	var tab *Table
	l.dir.Do(t, func() {
		var err error
		if tab, err = Install(l.dirName, matchSix); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { tab.Remove() })
	if js := l.nftJSON(t); js != "" {
		for _, want := range []string{`"exthdr"`, `"hbh"`, `"dst"`, `"rt"`, `"frag"`, `"jump"`, `"l4proto"`} {
			if !strings.Contains(js, want) {
				t.Errorf("nft -j output lacks %s", want)
			}
		}
	}
	hbh, dst := extOpt(unix.IPV6_HOPOPTS), extOpt(unix.IPV6_DSTOPTS)
	probe := []byte("probe")
	for _, opts := range [][]extOpt{{hbh}, {dst}, {hbh, dst}} {
		for _, tc := range []struct {
			f    flow
			want bool
		}{
			{udp6VIP7000, false},
			{udp6VIP7001, true},
			{udp6FromReal, false},
			{udp6Real8001, true},
		} {
			wait := 2 * time.Second
			if !tc.want {
				wait = 300 * time.Millisecond
			}
			if got := l.udpWithOpts(t, tc.f, probe, wait, opts...); got != tc.want {
				t.Errorf("%s with %v: arrived %v, want %v", tc.f, opts, got, tc.want)
			}
		}
		if l.tcpWithOpts(t, tcp6VIP7000, 300*time.Millisecond, opts...) {
			t.Errorf("%s with %v: connected, want the SYN dropped", tcp6VIP7000, opts)
		}
		if !l.tcpWithOpts(t, tcp6VIP7001, 2*time.Second, opts...) {
			t.Errorf("%s with %v: no connection, want it delivered", tcp6VIP7001, opts)
		}
	}
	// A datagram bigger than the MTU with a hop-by-hop header: its
	// fragment header comes behind the hop-by-hop header.
	big := make([]byte, 3000)
	for i := range big {
		big[i] = byte(i)
	}
	if l.udpWithOpts(t, udp6VIP7000, big, 300*time.Millisecond, hbh) {
		t.Error("3000 bytes with hop-by-hop to the VIP's port arrived, want the first fragment dropped")
	}
	if !l.udpWithOpts(t, udp6VIP7001, big, 2*time.Second, hbh) {
		t.Error("3000 bytes with hop-by-hop to another port did not arrive")
	}
	s := l.readBack(t)
	var extDropped uint64
	for _, n := range s.extDropped {
		extDropped += n
	}
	// Three chains of 3 UDP and 1 to 3 TCP SYNs each (retransmits) to the
	// VIP, 3 NAT replies each, 3 first fragments.
	if extDropped < 3*(3+1+3)+3 {
		t.Errorf("ext6 counters = %v, want at least %d drops", s.extDropped, 3*(3+1+3)+3)
	}
	left := s.dropped[len(s.dropped)-2]
	if left != 0 {
		t.Errorf("left-to-the-kernel counter = %d before any such frame, want 0", left)
	}
	// Destination options twice: not a chain the filter walks, so the
	// kernel gets it, and the last rules count it.
	f := udp6VIP7000
	f.src = netip.AddrPortFrom(peerAddr6, 40000)
	if !l.rawUDP6(t, f, []uint8{unix.IPPROTO_DSTOPTS, unix.IPPROTO_DSTOPTS}, 2*time.Second) {
		t.Error("UDP behind two destination options headers did not reach the kernel")
	}
	if l.rawUDP6(t, f, []uint8{unix.IPPROTO_DSTOPTS}, 300*time.Millisecond) {
		t.Error("raw UDP behind one destination options header reached the kernel, want it dropped")
	}
	if s := l.readBack(t); s.dropped[len(s.dropped)-2] != 3 {
		t.Errorf("left-to-the-kernel counter = %d, want 3", s.dropped[len(s.dropped)-2])
	}
	// Table.Counters says the same, and keeps its totals across an
	// Update, which replaces the rules and their counters.
	c, err := tab.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Left != 3 || c.Taken < extDropped {
		t.Errorf("Counters = %+v, want 3 left and at least the %d ext6 drops taken", c, extDropped)
	}
	if err := tab.Update(matchSix); err != nil {
		t.Fatal(err)
	}
	if !l.rawUDP6(t, f, []uint8{unix.IPPROTO_DSTOPTS, unix.IPPROTO_DSTOPTS}, 2*time.Second) {
		t.Error("after the Update, UDP behind two destination options headers did not reach the kernel")
	}
	after, err := tab.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after.Left != c.Left+3 || after.Taken < c.Taken {
		t.Errorf("after an Update: Counters = %+v, want %d left and at least %d taken", after, c.Left+3, c.Taken)
	}
}
