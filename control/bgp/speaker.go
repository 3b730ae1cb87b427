package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Tunables.
const (
	// connectRetry is how often a session that is down is dialled again: a
	// restarted router is back in the directors' sessions within seconds
	// (BGP's suggested 120 s would leave it without routes for minutes).
	connectRetry = 5 * time.Second
	// opTimeout bounds one call into the speaker.
	opTimeout = 10 * time.Second
)

// Config is what a Speaker runs with.
type Config struct {
	LocalAS  uint32
	RouterID netip.Addr    // IPv4
	HoldTime time.Duration // 0 or 3s..65535s; keepalives every third of it
	Routes   Routes
	Peers    []Peer
}

// Routes are the attributes every announced prefix carries.
type Routes struct {
	NextHop     netip.Addr // IPv4, of IPv4 prefixes
	NextHop6    netip.Addr // IPv6, of IPv6 prefixes (MP_REACH_NLRI, RFC 4760); invalid = none announced
	MED         int64      // < 0: none
	Communities []uint32   // RFC 1997
	// Standby prefixes are announced as a fallback: with MED plus
	// StandbyMED (StandbyMED without MED), so that a router prefers any
	// other director's announcement of them while there is one.
	Standby []netip.Prefix
}

// StandbyMED is what a Standby prefix adds to the MED.
const StandbyMED = 100

// Peer is one BGP neighbour, dialled by the speaker (it never listens).
type Peer struct {
	Address  netip.Addr
	AS       uint32
	Password string // TCP MD5 key; "" = none
}

// PeerStatus is a peer as the speaker sees it now.
type PeerStatus struct {
	Address     netip.Addr
	AS          uint32
	State       string    // idle, connect, active, opensent, openconfirm, established
	Established bool      // State is established
	Since       time.Time // when the session was last established (zero if never)
	Received    uint64    // UPDATE messages received and sent
	Sent        uint64
}

// Speaker is a running BGP speaker. Its methods are safe for concurrent use.
type Speaker struct {
	srv  *server.BgpServer
	log  *slog.Logger
	done chan struct{} // closed when srv.Serve returned

	mu        sync.Mutex
	cfg       Config
	announced map[netip.Prefix]bool
	closed    bool
}

// Start starts a speaker and dials its peers. It announces nothing until Announce.
func Start(cfg Config, log *slog.Logger) (*Speaker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// GoBGP logs to the daemon's log: peers up and down, notifications, at
	// Info and above (its FSM steps are Debug).
	s := &Speaker{srv: server.NewBgpServer(server.LoggerOption(log.With("component", "gobgp"), nil)), log: log,
		done: make(chan struct{}), cfg: cfg, announced: map[netip.Prefix]bool{}}
	go func() { // bgp: GoBGP's event loop, until Close stops it
		defer close(s.done)
		s.srv.Serve()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// ListenPort -1: no listener. The director dials its peers; a router
	// that dials it would need a port open on every director for nothing.
	err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: cfg.LocalAS, RouterId: cfg.RouterID.String(), ListenPort: -1}})
	if err == nil {
		for _, p := range cfg.Peers {
			if err = s.addPeer(ctx, p); err != nil {
				break
			}
		}
	}
	if err != nil {
		s.srv.Stop()
		<-s.done
		return nil, fmt.Errorf("bgp: %w", err)
	}
	return s, nil
}

func (s *Speaker) addPeer(ctx context.Context, p Peer) error {
	hold := uint64(s.cfg.HoldTime / time.Second)
	err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.AS, AuthPassword: p.Password},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: hold, KeepaliveInterval: hold / 3, ConnectRetry: uint64(connectRetry / time.Second)}},
		Transport: &api.Transport{RemotePort: 179},
		// IPv4 and IPv6 unicast over the one session (RFC 4760): the
		// peer's OPEN decides which it takes, and a reload that adds the
		// first IPv6 VIP needs no new session.
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}},
			{Config: &api.AfiSafiConfig{Enabled: true, Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}}},
		},
	}})
	if err != nil {
		return fmt.Errorf("peer %s: %w", p.Address, err)
	}
	return nil
}

// Update applies a new set of peers and route attributes: peers gone or changed are
// deleted (with a Cease), new ones dialled, and the announced prefixes sent again
// with the new attributes. The local AS, router ID and hold time stay as Start set
// them.
func (s *Speaker) Update(peers []Peer, routes Routes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("bgp: update after close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var errs []error
	for _, old := range s.cfg.Peers {
		if !slices.Contains(peers, old) {
			if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.Address.String()}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: delete peer %s: %w", old.Address, err))
			}
		}
	}
	for _, p := range peers {
		if !slices.Contains(s.cfg.Peers, p) {
			if err := s.addPeer(ctx, p); err != nil {
				errs = append(errs, fmt.Errorf("bgp: %w", err))
			}
		}
	}
	s.cfg.Peers = slices.Clone(peers)
	if !routes.equal(s.cfg.Routes) {
		// IPv6 prefixes left without a next hop are withdrawn (with the
		// attributes they were announced with), the others announced again.
		var prefixes, orphans []netip.Prefix
		for p := range s.announced {
			if p.Addr().Is6() && !routes.NextHop6.IsValid() {
				orphans = append(orphans, p)
				continue
			}
			prefixes = append(prefixes, p)
		}
		if len(orphans) > 0 {
			if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: s.paths(orphans)}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: withdraw %v: %w", orphans, err))
			} else {
				for _, p := range orphans {
					delete(s.announced, p)
					s.log.Info("BGP withdraw", "prefix", p, "reason", "no IPv6 next hop")
				}
			}
		}
		s.cfg.Routes = routes
		if len(prefixes) > 0 {
			if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: s.paths(prefixes)}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: announce again: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func (r Routes) equal(o Routes) bool {
	return r.NextHop == o.NextHop && r.NextHop6 == o.NextHop6 && r.MED == o.MED && slices.Equal(r.Communities, o.Communities) && slices.Equal(r.Standby, o.Standby)
}

// Announce makes want the set of announced prefixes: it announces those not yet
// announced and withdraws those no longer in want. It logs each change.
func (s *Speaker) Announce(want []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("bgp: announce after close")
	}
	var add, del []netip.Prefix
	var errs []error
	for _, p := range want {
		if p.Addr().Is6() && !s.cfg.Routes.NextHop6.IsValid() {
			errs = append(errs, fmt.Errorf("bgp: announce %s: no IPv6 next hop", p))
			continue
		}
		if !s.announced[p] && !slices.Contains(add, p) {
			add = append(add, p)
		}
	}
	for p := range s.announced {
		if !slices.Contains(want, p) {
			del = append(del, p)
		}
	}
	if len(del) > 0 {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: s.paths(del)}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %v: %w", del, err))
		} else {
			for _, p := range del {
				delete(s.announced, p)
				s.log.Info("BGP withdraw", "prefix", p)
			}
		}
	}
	if len(add) > 0 {
		if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: s.paths(add)}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: announce %v: %w", add, err))
		} else {
			for _, p := range add {
				s.announced[p] = true
				s.log.Info("BGP announce", "prefix", p, "next_hop", s.cfg.Routes.nextHop(p))
			}
		}
	}
	return errors.Join(errs...)
}

// nextHop is the next hop announced with p: NextHop or NextHop6.
func (r *Routes) nextHop(p netip.Prefix) netip.Addr {
	if p.Addr().Is6() {
		return r.NextHop6
	}
	return r.NextHop
}

// paths are GoBGP's paths of prefixes with the current attributes. An
// IPv6 prefix is of family IPv6 unicast; GoBGP sends its next hop in the
// MP_REACH_NLRI attribute (RFC 4760), and its withdrawal in MP_UNREACH_NLRI.
func (s *Speaker) paths(prefixes []netip.Prefix) []*apiutil.Path {
	r := s.cfg.Routes
	out := make([]*apiutil.Path, 0, len(prefixes))
	for _, p := range prefixes {
		nlri, err := bgppkt.NewIPAddrPrefix(p)
		if err != nil {
			continue // only valid prefixes reach here
		}
		family := bgppkt.RF_IPv4_UC
		if p.Addr().Is6() {
			family = bgppkt.RF_IPv6_UC
		}
		nh, _ := bgppkt.NewPathAttributeNextHop(r.nextHop(p))
		attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP), nh}
		switch {
		case slices.Contains(r.Standby, p):
			attrs = append(attrs, bgppkt.NewPathAttributeMultiExitDisc(uint32(max(r.MED, 0)+StandbyMED)))
		case r.MED >= 0:
			attrs = append(attrs, bgppkt.NewPathAttributeMultiExitDisc(uint32(r.MED)))
		}
		if len(r.Communities) > 0 {
			attrs = append(attrs, bgppkt.NewPathAttributeCommunities(r.Communities))
		}
		out = append(out, &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs})
	}
	return out
}

// Announced returns the announced prefixes, sorted.
func (s *Speaker) Announced() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Prefix, 0, len(s.announced))
	for p := range s.announced {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// Peers returns the state of every configured peer, in the configured order.
func (s *Speaker) Peers() []PeerStatus {
	s.mu.Lock()
	peers := slices.Clone(s.cfg.Peers)
	closed := s.closed
	s.mu.Unlock()
	got := map[netip.Addr]PeerStatus{}
	if !closed {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		_ = s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
			if err != nil {
				return
			}
			st := PeerStatus{Address: a, AS: p.GetConf().GetPeerAsn(), State: "idle"}
			if ps := p.GetState(); ps != nil {
				st.State = sessionState(ps.GetSessionState())
				st.Established = ps.GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
				st.Received = ps.GetMessages().GetReceived().GetUpdate()
				st.Sent = ps.GetMessages().GetSent().GetUpdate()
			}
			if up := p.GetTimers().GetState().GetUptime(); up != nil && st.Established {
				st.Since = up.AsTime()
			}
			got[a] = st
		})
	}
	out := make([]PeerStatus, 0, len(peers))
	for _, p := range peers {
		st, ok := got[p.Address]
		if !ok {
			st = PeerStatus{Address: p.Address, AS: p.AS, State: "idle"}
		}
		out = append(out, st)
	}
	return out
}

// sessionState names a session state as BIRD and RFC 4271 do, in lower case.
func sessionState(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE:
		return "idle"
	case api.PeerState_SESSION_STATE_CONNECT:
		return "connect"
	case api.PeerState_SESSION_STATE_ACTIVE:
		return "active"
	case api.PeerState_SESSION_STATE_OPENSENT:
		return "opensent"
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return "openconfirm"
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return "established"
	}
	return "unknown"
}

// Close closes every session with a Cease notification (its routes go with it) and
// stops the speaker.
func (s *Speaker) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.srv.Stop()
	<-s.done
	return nil
}
