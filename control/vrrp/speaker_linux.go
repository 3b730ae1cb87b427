package vrrp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Speaker runs a Machine over raw IP protocol-112 sockets on one
// interface: it sends the machine's adverts with TTL (IPv6: hop limit) 255
// and feeds it the valid adverts it receives, dropping (and counting) the
// rest. It speaks IPv4 for the machine's IPv4 addresses and IPv6 for its
// IPv6 ones, each family on sockets of its own.
type Speaker struct {
	cfg   SpeakerConfig
	m     *Machine
	fams  []*family // one per family with addresses: IPv4 first
	C     SpeakerCounters
	index int // the interface's
}

// family is one IP family's half of a Speaker.
type family struct {
	v6    bool
	fd    int // sends, from src
	rfd   int // receives
	src   netip.Addr
	dsts  []netip.Addr
	addrs []netip.Addr // the machine's addresses of this family, in its adverts
}

// recvTimeout bounds a blocking read, so Run notices it should stop.
const recvTimeout = 100 * time.Millisecond

// bindWait bounds how long NewSpeaker waits for the interface's IPv6
// link-local address to leave duplicate address detection (tentative,
// which cannot be bound): DAD takes about a second after a link comes up.
const bindWait = 5 * time.Second

// NewSpeaker opens the sockets: for each family the machine has addresses
// of, one bound to the interface and to its primary address (the advert's
// source, which the checksum covers: the first IPv4 address, or for IPv6
// the link-local one) to send with TTL 255, and one joined to the VRRP
// group (224.0.0.18, ff02::12) to receive.
func NewSpeaker(cfg SpeakerConfig) (*Speaker, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp: %w", err)
	}
	v4, v6 := SplitFamilies(cfg.Machine.Addresses)
	if (len(v4) > 0 && !cfg.Machine.Primary.IsValid()) || (len(v6) > 0 && !cfg.Machine.Primary6.IsValid()) {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("vrrp: addresses of %s: %w", cfg.Interface, err)
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			switch ip := p.Addr(); {
			case ip.Is4() && !cfg.Machine.Primary.IsValid():
				cfg.Machine.Primary = ip
			case is6(ip) && ip.IsLinkLocalUnicast() && !cfg.Machine.Primary6.IsValid():
				cfg.Machine.Primary6 = ip
			}
		}
		if len(v4) > 0 && !cfg.Machine.Primary.IsValid() {
			return nil, fmt.Errorf("vrrp: %s has no IPv4 address", cfg.Interface)
		}
		if len(v6) > 0 && !cfg.Machine.Primary6.IsValid() {
			return nil, fmt.Errorf("vrrp: %s has no IPv6 link-local address (is IPv6 off on it?)", cfg.Interface)
		}
	}
	if err := cfg.Machine.Validate(); err != nil {
		return nil, fmt.Errorf("vrrp: %w", err)
	}
	s := &Speaker{cfg: cfg, m: NewMachine(cfg.Machine), index: ifi.Index}
	peers4, peers6 := SplitFamilies(cfg.Peers)
	if len(v4) > 0 {
		f := &family{src: cfg.Machine.Primary.Unmap(), addrs: v4, dsts: peers4}
		if len(cfg.Peers) == 0 {
			f.dsts = []netip.Addr{IPv4Group}
		}
		if err := f.open4(cfg.Interface, ifi.Index); err != nil {
			return nil, err
		}
		s.fams = append(s.fams, f)
	}
	if len(v6) > 0 {
		f := &family{v6: true, src: cfg.Machine.Primary6.WithZone(""), addrs: v6, dsts: peers6}
		if len(cfg.Peers) == 0 {
			f.dsts = []netip.Addr{IPv6Group}
		}
		if err := f.open6(cfg.Interface, ifi.Index); err != nil {
			s.close()
			return nil, err
		}
		s.fams = append(s.fams, f)
	}
	return s, nil
}

// open4 opens an IPv4 family's two sockets. Two sockets: one bound to the
// primary address to send from it (a raw socket bound to an address
// receives only what is sent to it), one unbound to receive the group's
// adverts.
func (f *family) open4(iface string, index int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		return fmt.Errorf("vrrp: raw socket: %w", err)
	}
	rfd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("vrrp: raw socket: %w", err)
	}
	f.fd, f.rfd = fd, rfd
	mreq := &unix.IPMreqn{Multiaddr: IPv4Group.As4(), Ifindex: int32(index)}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	for _, step := range []struct {
		what string
		err  error
	}{
		{"bind to device", unix.BindToDevice(fd, iface)},
		{"bind to the primary address", unix.Bind(fd, &unix.SockaddrInet4{Addr: f.src.As4()})},
		{"IP_TTL", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, TTL)},
		{"IP_MULTICAST_TTL", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, TTL)},
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(index)})},
		{"receive: bind to device", unix.BindToDevice(rfd, iface)},
		{"receive: join 224.0.0.18", unix.SetsockoptIPMreqn(rfd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)},
		{"receive: SO_RCVTIMEO", unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)},
	} {
		if step.err != nil {
			f.close()
			return fmt.Errorf("vrrp: %s on %s: %w", step.what, iface, step.err)
		}
	}
	return nil
}

// open6 opens an IPv6 family's two sockets, as open4: the sending one
// bound to the link-local address (once duplicate address detection let
// go of it), hop limit 255 for multicast and unicast; the receiving one
// joined to ff02::12 and asking for each packet's hop limit and
// destination, which a raw IPv6 socket does not hand over in a header.
// The kernel neither computes nor checks the checksum (no IPV6_CHECKSUM):
// Marshal and Decode do.
func (f *family) open6(iface string, index int) error {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		return fmt.Errorf("vrrp: raw IPv6 socket: %w", err)
	}
	rfd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("vrrp: raw IPv6 socket: %w", err)
	}
	f.fd, f.rfd = fd, rfd
	mreq := &unix.IPv6Mreq{Multiaddr: IPv6Group.As16(), Interface: uint32(index)}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	for _, step := range []struct {
		what string
		err  error
	}{
		{"bind to device", unix.BindToDevice(fd, iface)},
		{"bind to the link-local address", bindLinkLocal(fd, f.src, index)},
		{"IPV6_UNICAST_HOPS", unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, TTL)},
		{"IPV6_MULTICAST_HOPS", unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, TTL)},
		{"IPV6_MULTICAST_LOOP", unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0)},
		{"IPV6_MULTICAST_IF", unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, index)},
		{"receive: bind to device", unix.BindToDevice(rfd, iface)},
		{"receive: join ff02::12", unix.SetsockoptIPv6Mreq(rfd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, mreq)},
		{"receive: IPV6_RECVHOPLIMIT", unix.SetsockoptInt(rfd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)},
		{"receive: IPV6_RECVPKTINFO", unix.SetsockoptInt(rfd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)},
		{"receive: SO_RCVTIMEO", unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)},
	} {
		if step.err != nil {
			f.close()
			return fmt.Errorf("vrrp: %s on %s: %w", step.what, iface, step.err)
		}
	}
	return nil
}

// bindLinkLocal binds fd to the link-local address src of the interface,
// waiting up to bindWait while the kernel refuses it as tentative
// (EADDRNOTAVAIL during duplicate address detection).
func bindLinkLocal(fd int, src netip.Addr, index int) error {
	sa := &unix.SockaddrInet6{Addr: src.As16(), ZoneId: uint32(index)}
	deadline := time.Now().Add(bindWait)
	for {
		err := unix.Bind(fd, sa)
		if !errors.Is(err, unix.EADDRNOTAVAIL) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *family) close() {
	unix.Close(f.fd)
	unix.Close(f.rfd)
}

func (s *Speaker) close() {
	for _, f := range s.fams {
		f.close()
	}
}

// Machine returns the speaker's state machine, for reading its state
// (only from OnState, or after Run returned).
func (s *Speaker) Machine() *Machine { return s.m }

type received struct {
	src netip.Addr
	a   Advert
}

// Run runs the machine until ctx is done, then shuts it down (a master
// sends priority 0, so a backup takes over after Skew_Time) and closes the
// sockets.
func (s *Speaker) Run(ctx context.Context) error {
	defer s.close()
	rx := make(chan received, 64)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, len(s.fams))
	for _, f := range s.fams {
		go func() { // vrrp receiver: feeds one family's valid adverts to rx until rctx ends
			defer func() { done <- struct{}{} }()
			s.receive(rctx, f, rx)
		}()
	}
	defer func() {
		stop()
		for range s.fams {
			<-done
		}
	}()
	act := s.m.Start(time.Now())
	s.apply(act)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Stop()
		var tc <-chan time.Time
		if !act.NextTimer.IsZero() {
			timer.Reset(time.Until(act.NextTimer))
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			s.apply(s.m.Shutdown(time.Now()))
			return nil
		case r := <-rx:
			act = s.m.Receive(time.Now(), r.src, r.a)
		case <-tc:
			act = s.m.Tick(time.Now())
		}
		s.apply(act)
	}
}

func (s *Speaker) apply(act Action) {
	if act.SendAdvert {
		a := s.m.Advert(act.AdvertPriority)
		for _, f := range s.fams {
			a.Addresses = f.addrs
			for _, dst := range f.dsts {
				pkt, err := a.Marshal(nil, f.src, dst)
				if err != nil {
					continue
				}
				var sa unix.Sockaddr
				if f.v6 {
					sa = &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(s.index)}
				} else {
					sa = &unix.SockaddrInet4{Addr: dst.As4()}
				}
				if err := unix.Sendto(f.fd, pkt, 0, sa); err == nil {
					s.C.Sent.Add(1)
				}
			}
		}
	}
	if (act.BecomeMaster || act.BecomeBackup) && s.cfg.OnState != nil {
		s.cfg.OnState(s.m.State())
	}
}

// receive reads IP packets of protocol 112 of f's family and passes on
// the adverts that Decode and Config.Match accept; the rest are dropped
// and counted by reason, and the Mismatches among them are kept in
// C.Mismatched and reported. The Mismatch table is per family: a peer's
// IPv4 and IPv6 addresses are two peers.
func (s *Speaker) receive(ctx context.Context, f *family, rx chan<- received) {
	buf := make([]byte, 1500)
	oob := make([]byte, 128)
	var mismatches mismatchTable
	for ctx.Err() == nil {
		var src, dst netip.Addr
		var ttl uint8
		var pkt []byte
		if f.v6 {
			n, oobn, _, from, err := unix.Recvmsg(f.rfd, buf, oob, 0)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			sa, ok := from.(*unix.SockaddrInet6)
			hops, to, ok2 := parseIPv6Control(oob[:oobn])
			if !ok || !ok2 {
				s.C.drop(DropMalformed)
				continue
			}
			src, dst, ttl, pkt = netip.AddrFrom16(sa.Addr), to, hops, buf[:n]
		} else {
			n, _, err := unix.Recvfrom(f.rfd, buf, 0)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			ip := buf[:n]
			if n < 20 || ip[0]>>4 != 4 || int(ip[0]&0xf)*4 > n {
				s.C.drop(DropMalformed)
				continue
			}
			hl := int(ip[0]&0xf) * 4
			src = netip.AddrFrom4([4]byte(ip[12:16]))
			dst = netip.AddrFrom4([4]byte(ip[16:20]))
			ttl, pkt = ip[8], ip[hl:]
		}
		a, err := Decode(pkt, src, dst, ttl)
		if err == nil {
			err = s.cfg.Machine.Match(&a)
		}
		if err != nil {
			s.C.drop(Reason(err))
			if isMismatch(err) {
				now := time.Now()
				m := Mismatch{Peer: src, Reason: Reason(err), Version: a.Version, Interval: a.Interval, Since: now, At: now}
				report, changed := mismatches.heard(m, a.Priority)
				if changed {
					s.storeMismatches(f, mismatches.list())
				}
				if report && s.cfg.OnMismatch != nil {
					s.cfg.OnMismatch(m)
				}
			}
			continue
		}
		if mismatches.accepted(src) {
			s.storeMismatches(f, mismatches.list())
		}
		s.C.Received.Add(1)
		select {
		case rx <- received{src, a}:
		case <-ctx.Done():
			return
		}
	}
}

// storeMismatches publishes family f's open Mismatches in C.Mismatched,
// beside the other family's.
func (s *Speaker) storeMismatches(f *family, l []Mismatch) {
	for {
		old := s.C.Mismatched.Load()
		var all []Mismatch
		if old != nil {
			for _, m := range *old {
				if is6(m.Peer) != f.v6 {
					all = append(all, m)
				}
			}
		}
		all = append(all, l...)
		if s.C.Mismatched.CompareAndSwap(old, &all) {
			return
		}
	}
}

// parseIPv6Control reads the hop limit (IPV6_HOPLIMIT) and the destination
// address (IPV6_PKTINFO) from a received packet's control messages.
func parseIPv6Control(oob []byte) (hops uint8, dst netip.Addr, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, netip.Addr{}, false
	}
	haveHops := false
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IPV6 {
			continue
		}
		switch m.Header.Type {
		case unix.IPV6_HOPLIMIT:
			if len(m.Data) >= 4 {
				hops, haveHops = uint8(binary.NativeEndian.Uint32(m.Data)), true
			}
		case unix.IPV6_PKTINFO:
			if len(m.Data) >= unix.SizeofInet6Pktinfo {
				dst = netip.AddrFrom16([16]byte(m.Data[:16]))
			}
		}
	}
	return hops, dst, haveHops && dst.IsValid()
}
