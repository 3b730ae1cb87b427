package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/control/api"
	"github.com/gvs-lb/gvs/control/config"
	connsync "github.com/gvs-lb/gvs/control/sync"
	"github.com/gvs-lb/gvs/dataplane"
	"github.com/gvs-lb/gvs/dataplane/afpacket"
)

// Tunables of connection sync.
const (
	// syncRing is each worker's ring of connection reports: at 10 ms
	// between drains it absorbs bursts of 400,000 new connections a second
	// per worker before dropping.
	syncRing = 4096
	// A worker wakes the sender when it reports into an empty ring; the
	// sender then waits syncBatchWait for more, so a new connection is on
	// the wire within about a millisecond and a burst shares messages.
	// syncFlush is how often it drains the rings regardless.
	syncBatchWait = time.Millisecond
	syncFlush     = 10 * time.Millisecond
	// syncRecvWait bounds a blocking read so the receiver notices a stop.
	syncRecvWait = 200 * time.Millisecond
	// syncPace: during a refresh the sender pauses syncPauseFor after
	// every syncPaceEvery messages (about 130 MB/s at most), so a refresh
	// of millions of connections does not flood the link or the peer's
	// socket buffer.
	syncPaceEvery = 100
	syncPauseFor  = time.Millisecond
	// ipUDPHeaders is what IPv4 and UDP add to a sync message.
	ipUDPHeaders = 20 + 8
	// ip6UDPHeaders is what IPv6 and UDP add (sync over IPv6).
	ip6UDPHeaders = 40 + 8
)

// syncer runs [sync]: while the director holds the VIPs it sends the
// connections its workers report (and all of them every Refresh); while it
// does not, it installs the connections its peer sends.
type syncer struct {
	d       *Daemon
	cfg     config.Sync
	sock    *connsync.Socket
	iface   string
	maxSize int

	msgsSent, connsSent, sendErrors       atomic.Uint64
	msgsRecv, connsRecv, invalid, ignored atomic.Uint64
}

// syncOwner returns the worker the steering program sends a connection's
// packets to (afpacket.SteeringProgram), or -1 for a FULLNAT connection
// whose local port belongs to another worker than its client (the
// directors run different numbers of workers).
func syncOwner(workers int) func(e *conntrack.Entry4) int {
	n := uint32(workers)
	return func(e *conntrack.Entry4) int {
		w := afpacket.SteerHash(e.Client, e.ClientPort) % n
		if e.Local != ([4]byte{}) && uint32(e.LPort)%n != w {
			return -1
		}
		return int(w)
	}
}

// syncOwner6 is syncOwner for IPv6 connections (afpacket.SteerHash6 of
// the client side; a FULLNAT connection's replies, to its local port, go
// to the worker of that port as in IPv4).
func syncOwner6(workers int) func(e *conntrack.Entry6) int {
	n := uint32(workers)
	return func(e *conntrack.Entry6) int {
		w := afpacket.SteerHash6(e.Client, e.ClientPort) % n
		if e.Local != ([16]byte{}) && uint32(e.LPort)%n != w {
			return -1
		}
		return int(w)
	}
}

// startSync opens the sync socket of cfg, if [sync] is on, and runs the
// sender, the refresher and the receiver until the daemon stops. The
// dataplane must have been made with EnableSync.
func (d *Daemon) startSync(cfg *config.Config) error {
	sc := cfg.Sync
	if !sc.Enabled {
		return nil
	}
	iface := sc.Interface
	if iface == "" {
		iface = d.link.Name
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return fmt.Errorf("control: sync: %w", err)
	}
	sock, err := connsync.Listen(connsync.SocketConfig{Interface: iface, Peer: sc.Peer, Group: sc.Group, Port: uint16(sc.Port), TTL: sc.TTL})
	if err != nil {
		return fmt.Errorf("control: sync: %w", err)
	}
	headers := ipUDPHeaders
	if sock.IPv6() {
		headers = ip6UDPHeaders
	}
	s := &syncer{d: d, cfg: sc, sock: sock, iface: iface, maxSize: ifi.MTU - headers}
	d.sync = s
	d.bg.Add(2)
	go s.send()    // sync: sends the workers' reports, and refreshes, until the daemon stops; then closes the socket
	go s.receive() // sync: installs the peer's connections, until the socket closes
	d.log.Info("connection sync on", "interface", iface, "to", sock.Dest(), "sync_id", sc.SyncID, "refresh", sc.Refresh)
	return nil
}

// master reports whether this director sends (it holds the VIPs) rather
// than installs.
func (s *syncer) master() bool { return s.d.holdsVIPs(s.d.Config()) }

// send sends the workers' reports as soon as the first of a burst wakes
// it (and every syncFlush in any case), while master: a backup discards
// them, having none but those of connections it forwarded itself. Every
// Refresh it sends every connection. When the daemon stops it waits for
// the workers to finish and sends what they reported last, so a clean
// stop loses no connection, and closes the socket.
func (s *syncer) send() {
	defer s.d.bg.Done()
	defer s.sock.Close()
	flush := time.NewTicker(syncFlush)
	defer flush.Stop()
	var refresh <-chan time.Time
	if s.cfg.Refresh > 0 {
		t := time.NewTicker(s.cfg.Refresh)
		defer t.Stop()
		refresh = t.C
	}
	var entries []dataplane.SyncConn
	var entries6 []dataplane.SyncConn6
	var conns []connsync.Conn
	master := s.master()
	for {
		full, last := false, false
		select {
		case <-s.d.stop:
			<-s.d.runDone
			last = true
		case <-s.d.dp.SyncWake():
			// Let the rest of a burst of new connections join it.
			time.Sleep(syncBatchWait)
		case <-flush.C:
		case <-refresh:
			full = true
		}
		entries = s.d.dp.SyncEvents(entries[:0])
		entries6 = s.d.dp.SyncEvents6(entries6[:0])
		if !last {
			// On the way out the VIPs are already gone: the role is
			// the one the reports were made in.
			master = s.master()
		}
		if master {
			if full {
				ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Refresh)
				var err error
				entries, err = s.d.dp.SyncConnections(ctx, entries)
				if err == nil {
					entries6, err = s.d.dp.SyncConnections6(ctx, entries6)
				}
				cancel()
				if err != nil {
					s.d.log.Warn("sync refresh: dump incomplete", "err", err)
				}
				entries = s.d.dp.SyncTemplates(entries, dataplane.Now())
				entries6 = s.d.dp.SyncTemplates6(entries6, dataplane.Now())
			}
			now := dataplane.Now()
			conns = conns[:0]
			for i := range entries {
				if c, ok := connOf(&entries[i], now); ok {
					conns = append(conns, c)
				}
			}
			for i := range entries6 {
				if c, ok := connOf6(&entries6[i], now); ok {
					conns = append(conns, c)
				}
			}
			s.sendAll(conns, full)
		}
		if last {
			return
		}
	}
}

// sendAll batches conns into messages and sends them, pacing a refresh.
func (s *syncer) sendAll(conns []connsync.Conn, paced bool) {
	if len(conns) == 0 {
		return
	}
	msgs, err := connsync.Batch(conns, uint8(s.cfg.SyncID), s.maxSize)
	if err != nil {
		s.d.log.Error("sync: encoding failed", "err", err)
		return
	}
	for i, m := range msgs {
		if err := s.sock.Send(m); err != nil {
			s.sendErrors.Add(1)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.msgsSent.Add(1)
		if paced && (i+1)%syncPaceEvery == 0 {
			select {
			case <-s.d.stop:
				return
			case <-time.After(syncPauseFor):
			}
		}
	}
	s.connsSent.Add(uint64(len(conns)))
}

// receive reads messages until the socket closes and installs their
// connections.
func (s *syncer) receive() {
	defer s.d.bg.Done()
	buf := make([]byte, 1<<16)
	var m connsync.Message
	var entries []dataplane.SyncConn
	var entries6 []dataplane.SyncConn6
	var timeouts conntrack.Timeouts
	for {
		n, _, err := s.sock.Receive(buf, time.Now().Add(syncRecvWait))
		if err != nil {
			if connsync.IsTimeout(err) {
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				s.d.log.Error("sync: receive failed", "err", err)
			}
			return
		}
		if err := m.Decode(buf[:n]); err != nil {
			s.invalid.Add(1)
			continue
		}
		s.msgsRecv.Add(1)
		s.connsRecv.Add(uint64(len(m.Conns)))
		if s.cfg.SyncID != 0 && int(m.SyncID) != s.cfg.SyncID {
			s.ignored.Add(uint64(len(m.Conns)))
			continue
		}
		if t := s.d.dp.Table(); t != nil {
			timeouts = t.Timeouts
		}
		entries, entries6 = entries[:0], entries6[:0]
		for i := range m.Conns {
			c := &m.Conns[i]
			if c.Is6() {
				if e, ok := entryOf6(c, &timeouts); ok {
					entries6 = append(entries6, e)
				} else {
					s.ignored.Add(1)
				}
				continue
			}
			if e, ok := entryOf(c, &timeouts); ok {
				entries = append(entries, e)
			} else {
				s.ignored.Add(1)
			}
		}
		// A master still takes what a peer reports (the last reports of
		// a director that has just stopped arrive after the takeover, and
		// behind ECMP every director forwards), but updates only
		// connections it has not forwarded a client packet of itself
		// (dataplane's flagPeer).
		upd := !s.master()
		s.d.dp.Install(entries, upd)
		s.d.dp.Install6(entries6, upd)
	}
}

// status is what gvsadm -L --json shows of sync.
func (s *syncer) status() *api.SyncStatus {
	st := s.d.dp.SyncStats()
	role := "backup"
	if s.master() {
		role = "master"
	}
	as := &api.SyncStatus{Role: role, Interface: s.iface, Port: s.cfg.Port, SyncID: s.cfg.SyncID, MaxLen: s.maxSize,
		MessagesSent: s.msgsSent.Load(), ConnsSent: s.connsSent.Load(), SendErrors: s.sendErrors.Load(), Dropped: st.Dropped,
		MessagesReceived: s.msgsRecv.Load(), ConnsReceived: s.connsRecv.Load(), Invalid: s.invalid.Load(), Ignored: s.ignored.Load(),
		Installed: st.Installed, Unknown: st.Unknown, Refused: st.Refused, InboxFull: st.InboxFull, Kept: st.Kept}
	if to := s.sock.Dest().Addr().String(); s.cfg.Peer.IsValid() {
		as.Peer = to
	} else {
		as.Group = to
	}
	return as
}

// syncStatus returns the sync status, or nil without [sync].
func (d *Daemon) syncStatus() *api.SyncStatus {
	if d.sync == nil {
		return nil
	}
	return d.sync.status()
}

// connOf is the sync record of a connection whose expiry is at its
// Expires on the clock now. As IPVS does, a record carries the flags of
// the forwarding method (FULLNAT as masquerading, with its local address
// as a parameter) and FlagInactive for a connection that is not
// established. The timeout is the time left, in whole seconds rounded up.
// A SYN-proxied connection carries its sequence offsets as IPVS carries
// those of a connection whose segments an application helper resized:
// FlagInSeq and FlagOutSeq, and in_seq and out_seq with init_seq 0 and
// delta = previous_delta (one offset for the whole connection). One whose
// real has not answered the director's SYN yet is not sent: it has no
// out offset yet, IPVS no field for the cookie that will make it, and its
// next report, when the real answers a round trip later, carries both.
// A FULLNAT TCP connection whose numbers the director translates
// (fullnat.go) carries its client offset the same way (out_seq's delta
// 0) and its timestamp offset in gvs's OptTSOffset, which also tells a
// gvs backup that it is not SYN-proxied; a kernel backup, which forwards
// no FULLNAT, skips it. A NAT connection whose real got a PROXY header
// (dataplane/proxyproto.go) is translated the same way, its header's
// length as its client offset. A connection whose real got the header
// says so in gvs's OptProxyHeader, so that a backup never sends it again.
func connOf(sc *dataplane.SyncConn, now int64) (connsync.Conn, bool) {
	e := &sc.Entry
	left := e.Expires - now
	if left <= 0 || sc.SynPending() {
		return connsync.Conn{}, false
	}
	c := connsync.Conn{
		Protocol: e.Proto,
		Client:   netip.AddrPortFrom(netip.AddrFrom4(e.Client), e.ClientPort),
		VIP:      netip.AddrPortFrom(netip.AddrFrom4(e.VIP), e.VPort),
		Real:     netip.AddrPortFrom(netip.AddrFrom4(e.Real), e.RPort),
		Timeout:  (time.Duration(left) + time.Second - 1).Truncate(time.Second),
	}
	switch dataplane.Forward(e.Forward) {
	case dataplane.ForwardDR:
		c.Flags = connsync.FlagDRoute
	case dataplane.ForwardTUN:
		c.Flags = connsync.FlagTunnel
	case dataplane.ForwardNAT:
		c.Flags = connsync.FlagMasq
	case dataplane.ForwardFullNAT:
		c.Flags = connsync.FlagMasq
		c.Local = netip.AddrPortFrom(netip.AddrFrom4(e.Local), e.LPort)
	default:
		return connsync.Conn{}, false
	}
	if e.Flags&dataplane.SyncTemplate != 0 {
		// A persistence template: IPVS's ip_vs_conn with cport 0, in
		// state NONE (TCP) or NORMAL (UDP).
		c.Flags |= connsync.FlagTemplate
		c.Local = netip.AddrPort{}
		return c, true
	}
	connState(&c, sc)
	return c, true
}

// connState puts the state of the connection sc into its record c (connOf,
// connOf6): FlagInactive and the IPVS state, and the sequence offsets,
// timestamp offset and PROXY-header flag of a SYN-proxied or translated
// connection.
func connState[A conntrack.IP](c *connsync.Conn, sc *dataplane.SyncConnOf[A]) {
	e := &sc.Entry
	if !conntrack.IsActive(e.State) {
		c.Flags |= connsync.FlagInactive
	}
	if sc.SynProxied() || sc.SeqTranslated() {
		in, out := sc.SeqDeltas()
		c.Flags |= connsync.FlagInSeq | connsync.FlagOutSeq
		c.InSeq = connsync.Seq{Delta: in, PreviousDelta: in}
		c.OutSeq = connsync.Seq{Delta: out, PreviousDelta: out}
	}
	if sc.SeqTranslated() {
		c.TSOffset, c.HasTSOffset = sc.TSOffset(), true
	}
	c.ProxyHeader = sc.ProxyHeader()
	switch e.State {
	case conntrack.UDP:
		c.State = connsync.UDPStateNormal
	default:
		c.State = uint16(e.State)
	}
}

// entryOf is the connection a backup installs for a sync record, Expires
// holding the time left (dataplane.Install): the record's timeout, or
// when it is 0 the backup's own timeout for the state (for a template,
// its service's persistence). It refuses connections without a client
// port yet (FlagNoCport), protocols other than TCP and UDP, and TCP states
// past the table. A TCP record with FlagInSeq or FlagOutSeq becomes a
// SYN-proxied connection with the record's deltas (a direction without
// its flag has none), unless it carries gvs's OptTSOffset: then it is a
// FULLNAT connection (or a NAT one with a PROXY header) with the record's
// in delta and timestamp offset. One with gvs's OptProxyHeader had its
// real's PROXY header: the backup does not send it again. Either is
// translated as the peer did: gvs's own records have
// init_seq 0 and previous_delta = delta, and a delta that changed in the
// middle of a connection (an IPVS application helper's) is taken as it
// now stands.
func entryOf(c *connsync.Conn, t *conntrack.Timeouts) (dataplane.SyncConn, bool) {
	if c.Flags&connsync.FlagNoCport != 0 {
		return dataplane.SyncConn{}, false
	}
	if c.Flags&connsync.FlagTemplate != 0 {
		if c.Protocol != 6 && c.Protocol != 17 {
			return dataplane.SyncConn{}, false
		}
		return dataplane.SyncConn{Entry: conntrack.Entry4{Proto: c.Protocol, Client: c.Client.Addr().As4(), VIP: c.VIP.Addr().As4(), VPort: c.VIP.Port(),
			Real: c.Real.Addr().As4(), RPort: c.Real.Port(), Flags: dataplane.SyncTemplate, Expires: int64(c.Timeout)}}, true
	}
	e := conntrack.Entry4{
		Proto:  c.Protocol,
		Client: c.Client.Addr().As4(), ClientPort: c.Client.Port(),
		VIP: c.VIP.Addr().As4(), VPort: c.VIP.Port(),
		Real: c.Real.Addr().As4(), RPort: c.Real.Port(),
	}
	switch c.Protocol {
	case 6:
		if c.State >= connsync.TCPStateLast {
			return dataplane.SyncConn{}, false
		}
		e.State = conntrack.State(c.State)
	case 17:
		e.State = conntrack.UDP
	default:
		return dataplane.SyncConn{}, false
	}
	if c.Local.IsValid() {
		e.Local, e.LPort = c.Local.Addr().As4(), c.Local.Port()
	}
	e.Expires = int64(c.Timeout)
	if c.Timeout == 0 {
		e.Expires = int64(t.Timeout(e.State))
	}
	sc := dataplane.SyncConn{Entry: e}
	setSeqOptions(&sc, c)
	return sc, true
}

// setSeqOptions gives sc, the connection of the TCP record c, the
// translation its options say (entryOf, entryOf6): FULLNAT's (or NAT with
// a PROXY header) with OptTSOffset, else the SYN proxy's with FlagInSeq or
// FlagOutSeq, and the PROXY-header flag with OptProxyHeader.
func setSeqOptions[A conntrack.IP](sc *dataplane.SyncConnOf[A], c *connsync.Conn) {
	if c.Protocol != 6 {
		return
	}
	if c.HasTSOffset {
		var in uint32
		if c.Flags&connsync.FlagInSeq != 0 {
			in = c.InSeq.Delta
		}
		sc.SetFullNATOffsets(in, c.TSOffset)
	} else if c.Flags&connsync.FlagSeqMask != 0 {
		var in, out uint32
		if c.Flags&connsync.FlagInSeq != 0 {
			in = c.InSeq.Delta
		}
		if c.Flags&connsync.FlagOutSeq != 0 {
			out = c.OutSeq.Delta
		}
		sc.SetSeqDeltas(in, out)
	}
	if c.ProxyHeader {
		sc.SetProxyHeader()
	}
}

// connOf6 is connOf for an IPv6 connection: a struct ip_vs_sync_v6
// record, with the same flags and options as IPv4's (a FULLNAT
// connection's 18-byte OptLocal, the sequence offsets of a SYN-proxied or
// translated one, OptTSOffset and OptProxyHeader).
func connOf6(sc *dataplane.SyncConn6, now int64) (connsync.Conn, bool) {
	e := &sc.Entry
	left := e.Expires - now
	if left <= 0 || sc.SynPending() {
		return connsync.Conn{}, false
	}
	c := connsync.Conn{
		Protocol: e.Proto,
		Client:   netip.AddrPortFrom(netip.AddrFrom16(e.Client), e.ClientPort),
		VIP:      netip.AddrPortFrom(netip.AddrFrom16(e.VIP), e.VPort),
		Real:     netip.AddrPortFrom(netip.AddrFrom16(e.Real), e.RPort),
		Timeout:  (time.Duration(left) + time.Second - 1).Truncate(time.Second),
	}
	switch dataplane.Forward(e.Forward) {
	case dataplane.ForwardDR:
		c.Flags = connsync.FlagDRoute
	case dataplane.ForwardTUN:
		c.Flags = connsync.FlagTunnel
	case dataplane.ForwardNAT:
		c.Flags = connsync.FlagMasq
	case dataplane.ForwardFullNAT:
		c.Flags = connsync.FlagMasq
		c.Local = netip.AddrPortFrom(netip.AddrFrom16(e.Local), e.LPort)
	default:
		return connsync.Conn{}, false
	}
	if e.Flags&dataplane.SyncTemplate != 0 {
		c.Flags |= connsync.FlagTemplate
		c.Local = netip.AddrPort{}
		return c, true
	}
	connState(&c, sc)
	return c, true
}

// entryOf6 is entryOf for an IPv6 record: the connection a backup installs
// in its IPv6 shard, with its local address (OptLocal, FULLNAT) and the
// translation its options say, as entryOf does.
func entryOf6(c *connsync.Conn, t *conntrack.Timeouts) (dataplane.SyncConn6, bool) {
	if c.Flags&connsync.FlagNoCport != 0 {
		return dataplane.SyncConn6{}, false
	}
	if c.Protocol != 6 && c.Protocol != 17 {
		return dataplane.SyncConn6{}, false
	}
	e := conntrack.Entry6{
		Proto:  c.Protocol,
		Client: c.Client.Addr().As16(), ClientPort: c.Client.Port(),
		VIP: c.VIP.Addr().As16(), VPort: c.VIP.Port(),
		Real: c.Real.Addr().As16(), RPort: c.Real.Port(),
		Expires: int64(c.Timeout),
	}
	if c.Flags&connsync.FlagTemplate != 0 {
		e.ClientPort, e.Flags = 0, dataplane.SyncTemplate
		return dataplane.SyncConn6{Entry: e}, true
	}
	switch c.Protocol {
	case 6:
		if c.State >= connsync.TCPStateLast {
			return dataplane.SyncConn6{}, false
		}
		e.State = conntrack.State(c.State)
	case 17:
		e.State = conntrack.UDP
	}
	if c.Local.IsValid() {
		if !c.Local.Addr().Is6() {
			return dataplane.SyncConn6{}, false
		}
		e.Local, e.LPort = c.Local.Addr().As16(), c.Local.Port()
	}
	if c.Timeout == 0 {
		e.Expires = int64(t.Timeout(e.State))
	}
	sc := dataplane.SyncConn6{Entry: e}
	setSeqOptions(&sc, c)
	return sc, true
}
