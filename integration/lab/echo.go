package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Tunables of the echo server.
const (
	// echoBuf holds the largest UDP datagram.
	echoBuf = 64 << 10
	// maxEchoErrors bounds consecutive non-fatal read or accept errors
	// before an echo loop gives up, so a broken socket cannot spin.
	maxEchoErrors = 100
)

// EchoStats counts what an echo server received.
type EchoStats struct {
	Conns     int                // TCP connections accepted
	Datagrams int                // UDP datagrams received
	Bytes     int64              // payload bytes received (and echoed)
	Peers     map[netip.Addr]int // remote address → connections (TCP) or datagrams (UDP)
}

// Echo is a TCP or UDP echo server on one host. A UDP echo answers from the
// address each datagram was sent to (IP_PKTINFO), so a real server bound to
// 0.0.0.0 still answers a DR or TUN client from the VIP.
type Echo struct {
	proto string
	addr  netip.AddrPort
	ln    net.Listener // tcp
	pc    *net.UDPConn // udp
	lab   *Lab

	mu     sync.Mutex
	stats  EchoStats
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// StartEcho starts an echo server for proto ("tcp" or "udp") listening on
// addr inside h's namespace, e.g. 10.20.0.100:80 (the VIP, which a DR/TUN
// real server has on lo; the socket is IP_FREEBIND, so it may be bound
// before the VIP is added), 0.0.0.0:80, or an IPv6 address such as
// [fd00:20::100]:80 or [::]:80 (IPV6_FREEBIND). Port 0 picks a free port: see
// Addr. Lab.Close stops it if the caller did not.
func (h *Host) StartEcho(proto string, addr netip.AddrPort) (*Echo, error) {
	if proto != "tcp" && proto != "udp" {
		return nil, fmt.Errorf("lab: echo on %s: protocol %q: want tcp or udp", h.Name, proto)
	}
	if !addr.Addr().Is4() && !addr.Addr().Is6() {
		return nil, fmt.Errorf("lab: echo on %s: %s is not an IPv4 or IPv6 address", h.Name, addr)
	}
	e := &Echo{proto: proto, lab: h.lab, conns: make(map[net.Conn]struct{})}
	e.stats.Peers = make(map[netip.Addr]int)
	err := h.Do(func() error {
		lc := net.ListenConfig{Control: listenControl}
		if proto == "tcp" {
			ln, err := lc.Listen(context.Background(), network("tcp", addr.Addr()), addr.String())
			if err != nil {
				return err
			}
			e.ln = ln
			e.addr = ln.Addr().(*net.TCPAddr).AddrPort()
			return nil
		}
		pc, err := lc.ListenPacket(context.Background(), network("udp", addr.Addr()), addr.String())
		if err != nil {
			return err
		}
		e.pc = pc.(*net.UDPConn)
		e.addr = e.pc.LocalAddr().(*net.UDPAddr).AddrPort()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: echo %s on %s %s: %w", proto, h.Name, addr, err)
	}
	if !e.lab.track(e) {
		e.Close()
		return nil, fmt.Errorf("lab: echo %s on %s %s: lab closed", proto, h.Name, addr)
	}
	e.wg.Add(1)
	switch {
	case proto == "tcp":
		go e.acceptLoop()
	case addr.Addr().Is6():
		p := ipv6.NewPacketConn(e.pc)
		if err := p.SetControlMessage(ipv6.FlagDst, true); err != nil {
			e.wg.Done()
			e.Close()
			return nil, fmt.Errorf("lab: echo udp on %s %s: IPV6_RECVPKTINFO: %w", h.Name, addr, err)
		}
		go e.udpLoop6(p)
	default:
		p := ipv4.NewPacketConn(e.pc)
		if err := p.SetControlMessage(ipv4.FlagDst, true); err != nil {
			e.wg.Done()
			e.Close()
			return nil, fmt.Errorf("lab: echo udp on %s %s: IP_PKTINFO: %w", h.Name, addr, err)
		}
		go e.udpLoop(p)
	}
	return e, nil
}

// Addr returns the address the server is bound to.
func (e *Echo) Addr() netip.AddrPort { return e.addr }

// Stats returns a copy of the counters.
func (e *Echo) Stats() EchoStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Peers = make(map[netip.Addr]int, len(e.stats.Peers))
	for a, n := range e.stats.Peers {
		s.Peers[a] = n
	}
	return s
}

// Close stops the server, closes its connections and waits for its
// goroutines. It is idempotent.
func (e *Echo) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	var err error
	if e.ln != nil {
		err = e.ln.Close()
	}
	if e.pc != nil {
		err = e.pc.Close()
	}
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
	e.lab.untrack(e)
	if err != nil {
		return fmt.Errorf("lab: close echo %s %s: %w", e.proto, e.addr, err)
	}
	return nil
}

// acceptLoop is the TCP server's goroutine, owned by the Echo; it ends when
// Close closes the listener.
func (e *Echo) acceptLoop() {
	defer e.wg.Done()
	errs := 0
	for errs < maxEchoErrors {
		c, err := e.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			errs++
			continue
		}
		errs = 0
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			c.Close()
			return
		}
		e.conns[c] = struct{}{}
		e.stats.Conns++
		e.stats.Peers[peerAddr(c.RemoteAddr())]++
		e.wg.Add(1)
		e.mu.Unlock()
		go e.serveTCP(c)
	}
}

// serveTCP echoes one connection until the peer or Close ends it.
func (e *Echo) serveTCP(c net.Conn) {
	defer e.wg.Done()
	defer func() {
		e.mu.Lock()
		delete(e.conns, c)
		e.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, echoBuf)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			e.mu.Lock()
			e.stats.Bytes += int64(n)
			e.mu.Unlock()
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// udpLoop is the UDP server's goroutine, owned by the Echo; it ends when
// Close closes the socket.
func (e *Echo) udpLoop(p *ipv4.PacketConn) {
	defer e.wg.Done()
	buf := make([]byte, echoBuf)
	errs := 0
	for errs < maxEchoErrors {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			errs++
			continue
		}
		errs = 0
		e.countDatagram(n, src)
		var wcm *ipv4.ControlMessage
		if cm != nil && cm.Dst != nil && !cm.Dst.IsMulticast() && !cm.Dst.Equal(net.IPv4bcast) {
			wcm = &ipv4.ControlMessage{Src: cm.Dst}
		}
		p.WriteTo(buf[:n], wcm, src) // a lost echo is the client's to notice
	}
}

// countDatagram counts a datagram of n bytes from src.
func (e *Echo) countDatagram(n int, src net.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Datagrams++
	e.stats.Bytes += int64(n)
	e.stats.Peers[peerAddr(src)]++
}

// udpLoop6 is udpLoop for an IPv6 socket: it answers from the address
// each datagram was sent to (IPV6_PKTINFO).
func (e *Echo) udpLoop6(p *ipv6.PacketConn) {
	defer e.wg.Done()
	buf := make([]byte, echoBuf)
	errs := 0
	for errs < maxEchoErrors {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			errs++
			continue
		}
		errs = 0
		e.countDatagram(n, src)
		var wcm *ipv6.ControlMessage
		if cm != nil && cm.Dst != nil && !cm.Dst.IsMulticast() {
			wcm = &ipv6.ControlMessage{Src: cm.Dst}
		}
		p.WriteTo(buf[:n], wcm, src) // a lost echo is the client's to notice
	}
}

// peerAddr returns the IP of a remote socket address.
func peerAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
