package connsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// SocketConfig says where sync messages go and come from.
type SocketConfig struct {
	Interface string     // required: messages leave and arrive here only
	Peer      netip.Addr // unicast peer; the zero Addr = multicast to Group
	// Group is the multicast group messages go to without a Peer, and
	// that the socket joins; the zero Addr = DefaultGroup. An IPv6 group
	// or peer makes the socket IPv6 (ipvsadm's --mcast-group, which the
	// kernel's sync daemon takes in either family since Linux 4.3).
	Group netip.Addr
	Port  uint16 // 0 = DefaultPort
	// TTL (hop limit) of multicast messages; 0 = 1, the kernel's sync_ttl
	// default, so they never leave the link.
	TTL int
}

// Socket is a UDP socket that sends sync messages to the peer or the
// group and receives them from the other directors: bound to the
// interface and to the port, joined to the group, with multicast loopback
// off so that it does not hear itself.
type Socket struct {
	conn *net.UDPConn
	dst  *net.UDPAddr
	own  map[netip.Addr]bool // the interface's addresses
}

// Listen opens the socket.
func Listen(cfg SocketConfig) (*Socket, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("connsync: %w", err)
	}
	port := cfg.Port
	if port == 0 {
		port = DefaultPort
	}
	group := cfg.Group
	if !group.IsValid() {
		group = DefaultGroup
	}
	dst := cfg.Peer
	if !dst.IsValid() {
		dst = group
	}
	six := dst.Is6() && !dst.Is4In6()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = bindToDevice(int(fd), cfg.Interface) }); err != nil {
			return err
		}
		return serr
	}}
	network, unspec := "udp4", netip.IPv4Unspecified()
	if six {
		network, unspec = "udp6", netip.IPv6Unspecified()
	}
	pc, err := lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(unspec, port).String())
	if err != nil {
		return nil, fmt.Errorf("connsync: listen on %s port %d: %w", cfg.Interface, port, err)
	}
	conn := pc.(*net.UDPConn)
	s := &Socket{conn: conn, dst: net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)), own: map[netip.Addr]bool{}}
	addrs, err := ifi.Addrs()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connsync: addresses of %s: %w", cfg.Interface, err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			s.own[p.Addr()] = true
		}
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = 1
	}
	// The group is joined when it is of the socket's family: a unicast
	// IPv6 peer beside the default IPv4 group hears unicast alone.
	join := group.Is6() == six
	if six {
		p := ipv6.NewPacketConn(conn)
		err = errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastLoopback(false), p.SetMulticastHopLimit(ttl))
		if join {
			err = errors.Join(err, p.JoinGroup(ifi, &net.UDPAddr{IP: group.AsSlice()}))
		}
	} else {
		p := ipv4.NewPacketConn(conn)
		err = errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastLoopback(false), p.SetMulticastTTL(ttl))
		if join {
			err = errors.Join(err, p.JoinGroup(ifi, &net.UDPAddr{IP: group.AsSlice()}))
		}
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connsync: multicast on %s: %w", cfg.Interface, err)
	}
	return s, nil
}

// Dest is where Send sends: the peer, or the group, at the port.
func (s *Socket) Dest() netip.AddrPort { return s.dst.AddrPort() }

// IPv6 reports whether the socket sends and receives over IPv6.
func (s *Socket) IPv6() bool { a := s.dst.AddrPort().Addr(); return a.Is6() && !a.Is4In6() }

// Send sends one message.
func (s *Socket) Send(b []byte) error {
	_, err := s.conn.WriteToUDP(b, s.dst)
	return err
}

// Receive reads one datagram into b, waiting at most until deadline. It
// skips datagrams from the interface's own addresses. A timeout returns
// an error that matches os.ErrDeadlineExceeded.
func (s *Socket) Receive(b []byte, deadline time.Time) (int, netip.Addr, error) {
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return 0, netip.Addr{}, err
	}
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(b)
		if err != nil {
			return 0, netip.Addr{}, err
		}
		// A link-local source (IPv6 multicast on ff02::/16) comes with
		// the interface as its zone; the addresses are compared and
		// reported without it.
		if a := from.Addr().Unmap().WithZone(""); !s.own[a] {
			return n, a, nil
		}
	}
}

// Close closes the socket; a Receive in progress returns net.ErrClosed.
func (s *Socket) Close() error { return s.conn.Close() }

// IsTimeout reports whether err is Receive's deadline passing.
func IsTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
