package vrrp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Speaker runs a Machine over a raw IP protocol-112 socket on one
// interface: it sends the machine's adverts with TTL 255 and feeds it the
// valid adverts it receives, dropping (and counting) the rest.
type Speaker struct {
	cfg  SpeakerConfig
	m    *Machine
	fd   int // sends, from the primary address
	rfd  int // receives
	C    SpeakerCounters
	dsts []netip.Addr
}

// recvTimeout bounds a blocking read, so Run notices it should stop.
const recvTimeout = 100 * time.Millisecond

// NewSpeaker opens the socket: bound to the interface and to its primary
// address (the advert's source, which the checksum covers), joined to the
// VRRP group, TTL 255 out.
func NewSpeaker(cfg SpeakerConfig) (*Speaker, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp: %w", err)
	}
	if !cfg.Machine.Primary.IsValid() {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("vrrp: addresses of %s: %w", cfg.Interface, err)
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				cfg.Machine.Primary = p.Addr()
				break
			}
		}
		if !cfg.Machine.Primary.IsValid() {
			return nil, fmt.Errorf("vrrp: %s has no IPv4 address", cfg.Interface)
		}
	}
	if err := cfg.Machine.Validate(); err != nil {
		return nil, fmt.Errorf("vrrp: %w", err)
	}
	// Two sockets: one bound to the primary address to send from it (a
	// raw socket bound to an address receives only what is sent to it),
	// one unbound to receive the group's adverts.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		return nil, fmt.Errorf("vrrp: raw socket: %w", err)
	}
	rfd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("vrrp: raw socket: %w", err)
	}
	s := &Speaker{cfg: cfg, m: NewMachine(cfg.Machine), fd: fd, rfd: rfd, dsts: cfg.Peers}
	if len(s.dsts) == 0 {
		s.dsts = []netip.Addr{IPv4Group}
	}
	group := IPv4Group.As4()
	primary := cfg.Machine.Primary.As4()
	mreq := &unix.IPMreqn{Multiaddr: group, Ifindex: int32(ifi.Index)}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	for _, step := range []struct {
		what string
		err  error
	}{
		{"bind to device", unix.BindToDevice(fd, cfg.Interface)},
		{"bind to the primary address", unix.Bind(fd, &unix.SockaddrInet4{Addr: primary})},
		{"IP_TTL", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, TTL)},
		{"IP_MULTICAST_TTL", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, TTL)},
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})},
		{"receive: bind to device", unix.BindToDevice(rfd, cfg.Interface)},
		{"receive: join 224.0.0.18", unix.SetsockoptIPMreqn(rfd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)},
		{"receive: SO_RCVTIMEO", unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)},
	} {
		if step.err != nil {
			unix.Close(fd)
			unix.Close(rfd)
			return nil, fmt.Errorf("vrrp: %s on %s: %w", step.what, cfg.Interface, step.err)
		}
	}
	return s, nil
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
// socket.
func (s *Speaker) Run(ctx context.Context) error {
	defer unix.Close(s.fd)
	defer unix.Close(s.rfd)
	rx := make(chan received, 64)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { // vrrp receiver: feeds valid adverts to rx until rctx ends
		defer close(done)
		s.receive(rctx, rx)
	}()
	defer func() { stop(); <-done }()
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
		src := s.cfg.Machine.Primary
		for _, dst := range s.dsts {
			pkt, err := a.Marshal(nil, src, dst)
			if err != nil {
				continue
			}
			if err := unix.Sendto(s.fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err == nil {
				s.C.Sent.Add(1)
			}
		}
	}
	if (act.BecomeMaster || act.BecomeBackup) && s.cfg.OnState != nil {
		s.cfg.OnState(s.m.State())
	}
}

// receive reads IP packets of protocol 112 and passes on the adverts that
// Decode and Config.Match accept; the rest are dropped and counted by
// reason, and the Mismatches among them are kept in C.Mismatched and
// reported.
func (s *Speaker) receive(ctx context.Context, rx chan<- received) {
	buf := make([]byte, 1500)
	var mismatches mismatchTable
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(s.rfd, buf, 0)
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
		src := netip.AddrFrom4([4]byte(ip[12:16]))
		dst := netip.AddrFrom4([4]byte(ip[16:20]))
		a, err := Decode(ip[hl:], src, dst, ip[8])
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
					l := mismatches.list()
					s.C.Mismatched.Store(&l)
				}
				if report && s.cfg.OnMismatch != nil {
					s.cfg.OnMismatch(m)
				}
			}
			continue
		}
		if mismatches.accepted(src) {
			l := mismatches.list()
			s.C.Mismatched.Store(&l)
		}
		s.C.Received.Add(1)
		select {
		case rx <- received{src, a}:
		case <-ctx.Done():
			return
		}
	}
}
