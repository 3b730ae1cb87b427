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
)

// SocketConfig says where sync messages go and come from.
type SocketConfig struct {
	Interface string     // required: messages leave and arrive here only
	Peer      netip.Addr // unicast peer; the zero Addr = multicast to DefaultGroup
	Port      uint16     // 0 = DefaultPort
	// TTL of multicast messages; 0 = 1, the kernel's sync_ttl default, so
	// they never leave the link.
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
	dst := cfg.Peer
	if !dst.IsValid() {
		dst = DefaultGroup
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = bindToDevice(int(fd), cfg.Interface) }); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
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
	p := ipv4.NewPacketConn(conn)
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = 1
	}
	if err := errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastLoopback(false), p.SetMulticastTTL(ttl),
		p.JoinGroup(ifi, &net.UDPAddr{IP: DefaultGroup.AsSlice()})); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connsync: multicast on %s: %w", cfg.Interface, err)
	}
	return s, nil
}

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
		if a := from.Addr().Unmap(); !s.own[a] {
			return n, a, nil
		}
	}
}

// Close closes the socket; a Receive in progress returns net.ErrClosed.
func (s *Socket) Close() error { return s.conn.Close() }

// IsTimeout reports whether err is Receive's deadline passing.
func IsTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
