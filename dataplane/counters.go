package dataplane

import "sync/atomic"

// RealStats are the traffic counters ipvsadm --stats shows for a service or
// a real server. In is client to real, Out is real to client (seen only in
// NAT and FULLNAT).
type RealStats struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes atomic.Uint64
}

// Verdict is what a worker did with one frame. The zero value is invalid.
type Verdict uint8

// Verdicts. Every frame gets exactly one, and each has a per-worker counter.
const (
	VerdictForward   Verdict = iota + 1 // rewritten and sent
	VerdictMalformed                    // too short, bad IPv4 header or checksum, bad L4 header
	VerdictNotIPv4                      // neither an untagged IPv4 nor an untagged IPv6 frame
	VerdictFragment                     // an IPv4 fragment; LVS services see only whole packets
	VerdictNoService                    // no connection and not to a service
	VerdictNoConn                       // TCP segment other than SYN with no connection
	VerdictNoReal                       // the scheduler found no available real, or the real is gone
	VerdictTableFull                    // the connection table or the local ports are exhausted
	VerdictTooBig                       // would exceed the MTU after encapsulation: ICMP sent back (DF) or dropped
	VerdictTxError                      // the link refused the frame
	VerdictOffload                      // offload metadata (partial checksum, GSO) the rewrites cannot honour
	VerdictSynProxy                     // taken by the SYN proxy: a SYN answered with a cookie, a handshake ACK turned into a SYN to a real, a real's SYN-ACK answered, a client segment held for the real

	// IPv6 frames the dataplane leaves to the kernel (worker6.go).
	VerdictIPv6Unparsed // extension headers it does not walk: malformed, unknown (AH, mobility, ...), routing with segments left
	VerdictIPv6Fragment // an IPv6 fragment not forwarded (fragment6.go): not TCP or UDP, a first fragment without its transport header, a later one whose first was not seen
	numVerdicts
)

var verdictNames = [numVerdicts]string{
	"invalid", "forward", "malformed", "not_ipv4", "fragment", "no_service",
	"no_conn", "no_real", "table_full", "too_big", "tx_error", "offload", "synproxy",
	"ipv6_unparsed", "ipv6_fragment",
}

func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "invalid"
}

// VerdictNames lists the verdicts in counter order, for metrics and logs.
func VerdictNames() []string { return verdictNames[1:] }

// WorkerCounters are one worker's counters. The worker is their only
// writer; readers use the atomic loads.
type WorkerCounters struct {
	RxFrames, TxFrames atomic.Uint64
	Verdicts           [numVerdicts]atomic.Uint64
	NewConns           atomic.Uint64
	ExpiredConns       atomic.Uint64
	ICMPSent           atomic.Uint64
	Conns              atomic.Int64 // entries in the worker's shard
	// TemplatesFull counts connections scheduled without persistence
	// because the template table was full.
	TemplatesFull atomic.Uint64
	// Evicted counts entries removed from a full shard to make room for
	// a new connection (half-open, closing or UDP; never established).
	Evicted atomic.Uint64
	// Reused counts client SYNs that found their tuple's entry closing
	// (TIME_WAIT, FIN_WAIT, CLOSE) and started a new connection at once;
	// Rescheduled those that found it bound to a real that is gone or
	// not ready (IPVS expire_nodest_conn) and were scheduled again.
	Reused, Rescheduled atomic.Uint64
	// LateExpired counts entries found past their time by a packet before
	// the incremental sweep reached them.
	LateExpired atomic.Uint64
	// FragTableFull counts first fragments whose decision the fragment
	// table had no room for: their later fragments are dropped.
	FragTableFull atomic.Uint64
	// OuterFragments counts TUN packets without DF sent as fragments of
	// their outer packet because they did not fit the MTU encapsulated.
	OuterFragments atomic.Uint64
	// Segmented counts GSO frames cut into segments in software because
	// they went into a tunnel (TUN), where the kernel cannot cut them.
	Segmented atomic.Uint64
	// LinkErrors counts failed reads: the interface went down or away.
	LinkErrors atomic.Uint64
	// The SYN proxy's (synproxy.go). SynProxyCookies counts client SYNs
	// answered with a cookie SYN-ACK; SynProxyOpened handshake ACKs whose
	// cookie was valid, each opening a connection and sending its real a
	// SYN; SynProxyBadCookies ACKs without a connection whose cookie was
	// not (forged, or too old), dropped as no_conn; SynProxySynAcks real
	// SYN-ACKs that spliced a connection, answered by the director and
	// not forwarded; SynProxySynResent SYNs sent to a real again, its
	// answer late and the client retransmitting. SynProxyHeld counts
	// client segments kept until their real answered, SynProxyHeldDropped
	// those dropped instead (no room, or the real did not answer in
	// time): the client retransmits them.
	SynProxyCookies, SynProxyOpened, SynProxyBadCookies, SynProxySynAcks atomic.Uint64
	SynProxySynResent, SynProxyHeld, SynProxyHeldDropped                 atomic.Uint64
	// BadTCPOptions counts segments of FULLNAT TCP connections whose
	// option list was malformed: their timestamps and SACK blocks were
	// left untranslated (fullnat.go).
	BadTCPOptions atomic.Uint64
	// PortsReclaimed counts FULLNAT local ports a new connection took,
	// when none was free, from a connection that was over (TIME_WAIT,
	// CLOSE) or stuck half-open (a SYN that never completed): see
	// insertFullNAT.
	PortsReclaimed atomic.Uint64
	// NATReplies counts NAT replies translated without a connection entry
	// (Table.NATReplies, natreply.go).
	NATReplies atomic.Uint64
	// The PROXY protocol's (proxyproto.go). ProxyHeaders counts headers
	// sent to reals, ProxyResent those sent again (lost, or not yet
	// acknowledged in time), ProxyAcked those the real acknowledged;
	// ProxyNoSlot client segments (real SYN-ACKs for a SYN-proxied
	// connection) dropped because the worker had no room to track another
	// unacknowledged header; ProxyGaveUp connections dropped after their
	// header went unacknowledged through every retry.
	ProxyHeaders, ProxyResent, ProxyAcked, ProxyNoSlot, ProxyGaveUp atomic.Uint64
}

// Counters is a plain-value sum of worker counters.
type Counters struct {
	RxFrames, TxFrames, NewConns, ExpiredConns, ICMPSent uint64
	TemplatesFull                                        uint64
	Evicted, Reused, Rescheduled, LateExpired            uint64
	FragTableFull, OuterFragments, Segmented, LinkErrors uint64
	SynProxyCookies, SynProxyOpened, SynProxyBadCookies  uint64
	SynProxySynAcks, SynProxySynResent                   uint64
	SynProxyHeld, SynProxyHeldDropped                    uint64
	BadTCPOptions, PortsReclaimed, NATReplies            uint64
	ProxyHeaders, ProxyResent, ProxyAcked                uint64
	ProxyNoSlot, ProxyGaveUp                             uint64
	Conns                                                int64
	Templates                                            int // persistence templates (shared)
	Verdicts                                             map[string]uint64
	// WorkerRx is the frames each worker received: how fanout spread them.
	WorkerRx []uint64
}

func (c *WorkerCounters) addTo(s *Counters) {
	s.WorkerRx = append(s.WorkerRx, c.RxFrames.Load())
	s.RxFrames += c.RxFrames.Load()
	s.TxFrames += c.TxFrames.Load()
	s.NewConns += c.NewConns.Load()
	s.ExpiredConns += c.ExpiredConns.Load()
	s.ICMPSent += c.ICMPSent.Load()
	s.TemplatesFull += c.TemplatesFull.Load()
	s.Evicted += c.Evicted.Load()
	s.Reused += c.Reused.Load()
	s.Rescheduled += c.Rescheduled.Load()
	s.LateExpired += c.LateExpired.Load()
	s.FragTableFull += c.FragTableFull.Load()
	s.OuterFragments += c.OuterFragments.Load()
	s.Segmented += c.Segmented.Load()
	s.LinkErrors += c.LinkErrors.Load()
	s.SynProxyCookies += c.SynProxyCookies.Load()
	s.SynProxyOpened += c.SynProxyOpened.Load()
	s.SynProxyBadCookies += c.SynProxyBadCookies.Load()
	s.SynProxySynAcks += c.SynProxySynAcks.Load()
	s.SynProxySynResent += c.SynProxySynResent.Load()
	s.SynProxyHeld += c.SynProxyHeld.Load()
	s.SynProxyHeldDropped += c.SynProxyHeldDropped.Load()
	s.BadTCPOptions += c.BadTCPOptions.Load()
	s.PortsReclaimed += c.PortsReclaimed.Load()
	s.NATReplies += c.NATReplies.Load()
	s.ProxyHeaders += c.ProxyHeaders.Load()
	s.ProxyResent += c.ProxyResent.Load()
	s.ProxyAcked += c.ProxyAcked.Load()
	s.ProxyNoSlot += c.ProxyNoSlot.Load()
	s.ProxyGaveUp += c.ProxyGaveUp.Load()
	s.Conns += c.Conns.Load()
	for v := VerdictForward; v < numVerdicts; v++ {
		s.Verdicts[v.String()] += c.Verdicts[v].Load()
	}
}
