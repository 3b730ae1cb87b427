package dataplane

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// The SYN proxy (Service.SynProxy; DPVS's synproxy, after the alibaba/LVS
// fork's) absorbs SYN floods: the director answers a client's SYN itself,
// with a SYN-ACK whose sequence number is a SYN cookie (RFC 4987 section
// 3.6), and keeps nothing for it. Only a client that completes the
// handshake (an ACK whose ack-1 is a valid cookie for its tuple) gets a
// connection entry, a real server and a SYN sent to it, so spoofed SYNs
// cost a hash and a reply each and never fill the connection table or
// reach a real.
//
//	client                 director                      real
//	SYN seq=x       ──►  cookie c, nothing kept
//	                ◄──  SYN-ACK seq=c ack=x+1
//	ACK seq=x+1 ack=c+1 ──►  c valid: schedule, insert, hold the ACK;
//	                         i = clock ISN of the real's tuple, in = i-x
//	                         SYN seq=i (MSS from c)  ──►
//	                         ◄──  SYN-ACK seq=y ack=i+1
//	                         out = y-c; the held ACK, seq=i+1 ack=y+1 ──►
//	data, seq=q ack=a ──►  seq q+in, ack a+out            ──►
//	                ◄──  seq s-out, ack b-in              ◄──  data, seq=s ack=b
//
// The SYN to the real does not carry the client's ISN but one the
// director chooses as RFC 6528 says (proxyISN): a 4 µs clock plus a keyed
// hash of the tuple the real sees (local address and port → real in
// FULLNAT, client → real in NAT). FULLNAT comes back to a local address
// and port within seconds, while the real may still hold a TIME_WAIT
// socket for the tuple, and Linux takes a SYN without timestamps on such a
// tuple only if its sequence number is above the old connection's last
// (tcp_timewait_state_process): the clock's ISN is, as long as the old
// connection sent less than 250 kB a second of its life from the director
// (and the key is the same: a restart of gvsd draws another).
//
// A connection's two Aux words (conntrack.Shard.Aux) hold the offsets:
// auxClient the client's, in = director's ISN - client's ISN, set when
// the connection opens; auxReal the cookie while the real has not answered
// (flagSynPending), then out = real's ISN - cookie. Client segments that
// arrive in between (the handshake ACK, often the first request) wait in a
// few per-worker slots and go to the real, translated, right behind its
// SYN-ACK. From then on every client segment's sequence number gets +in
// and its acknowledgment number +out, every real segment's sequence number
// -out and its acknowledgment number -in, with incremental checksum
// updates (a partial checksum, whose field the kernel finishes over these
// fields later, is left alone). The cookie SYN-ACK offers no window
// scaling, SACK or timestamps, and the SYN to the real asks for none, so
// both ends agree on plain TCP with the client's MSS: no option (no SACK
// block, no timestamp) needs translating, and a connection's window is at
// most 64 KiB. (Timestamps on the SYN to the real would also pass a
// TIME_WAIT socket, but only with the cookie encoding the client's options
// and a third offset, for every timestamp both ways: not done.)

// Entry.Flags of a SYN-proxied connection (bits 0 and 1 are sync.go's).
const (
	flagSynProxy   = 1 << 2 // opened by the SYN proxy: its Aux words are the sequence offsets
	flagSynPending = 1 << 3 // its real has not answered the SYN yet: Aux word auxReal is the cookie
)

// The Aux words of a SYN-proxied connection.
const (
	auxReal   = 0 // real's ISN - cookie (cookie while pending): real's sequence numbers, client's acknowledgments
	auxClient = 1 // director's ISN - client's ISN: client's sequence numbers, real's acknowledgments
)

// isnTick is the clock period of the director's ISNs: RFC 6528's (and RFC
// 793's) 4 µs, so the ISN of a tuple wraps around in 4.77 hours, far
// longer than any TIME_WAIT, and grows faster than a connection of up to
// 250 kB/s sends.
const isnTick = 4000 // ns

// isnDomain is the last SipHash word of an ISN hash: cookie hashes end
// with cookieH0 or t<<8|m (t < 2^32), never this.
const isnDomain = 1<<63 | 1<<62

// isnKey is the key of the ISN hash, shared by the workers: random per
// process until SetISNKey.
var isnKey = newCookieKey()

// proxyISN returns the ISN of the SYN the director sends a real at
// monotonic time now for the tuple src:sport → dst:dport the real sees:
// RFC 6528's M + F(localip, localport, remoteip, remoteport, secretkey).
func proxyISN(now int64, src [4]byte, sport uint16, dst [4]byte, dport uint16) uint32 {
	return uint32(isnTime(now)/isnTick) + uint32(realTupleHash(src, sport, dst, dport))
}

// The cookie, the sequence number of the director's SYN-ACK, is
//
//	cookie = H0 + ((t mod 8)<<29 | m<<26 | H1 mod 2^26)
//
// where t is the time counter (the monotonic clock in periods of
// 2^cookiePeriodShift ns), m the index in mssTable of the client's MSS,
// H0 = SipHash-2-4(key; client, VIP, ports, client ISN) and H1 the same
// with t and m as well. H0 hides t and m, so the director's ISNs look
// random (RFC 6528); H1 binds the cookie to the tuple, the client's ISN,
// t and m. An ACK's ack-1 validates when it decodes to a t at most
// cookieMaxAge periods old and its H1 matches: a guess passes about once
// in 2^28 tries, and a cookie whose MSS index was changed fails like a
// guess.
const (
	// cookiePeriodShift makes the period 2^36 ns, 68.7 s: Linux's
	// syncookie minute, rounded to a power of two.
	cookiePeriodShift = 36
	// cookieMaxAge: a cookie is honoured in its own period and the next,
	// so for 68.7 to 137 s. A client answers a SYN-ACK within a round
	// trip; a retransmitted SYN gets a fresh cookie.
	cookieMaxAge = 1

	cookieTimeShift = 29
	cookieMSSShift  = 26
	cookieMACMask   = 1<<cookieMSSShift - 1
	// cookieH0 is H0's last message word: H1's is t<<8 | m, never this.
	cookieH0 = 1 << 63
)

// mssTable is the MSS a cookie can carry, 3 bits of it: RFC 9293's
// default (536, also for a client without an MSS option), 1460 for
// 1500-byte Ethernet, and the values below it that PPPoE (1452), tunnels
// and VPNs (1440 down to 1200) leave. A client gets the largest that does
// not exceed its own.
var mssTable = [1 << 3]uint16{536, 1200, 1300, 1360, 1400, 1440, 1452, 1460}

// mssIndex returns the index in mssTable of the largest MSS at most mss,
// or 0 (536) if mss is below them all.
func mssIndex(mss uint16) int {
	i := len(mssTable) - 1
	for i > 0 && mssTable[i] > mss {
		i--
	}
	return i
}

// cookieKey is the SipHash key of the SYN cookies.
type cookieKey struct{ k0, k1 uint64 }

// synCookieKey is the key every worker uses: random per process, and
// shared so that a SYN and its ACK may meet different workers (after a
// relink renumbers the fanout). A restart forgets it: ACKs to the old
// process's cookies are then refused as bad, as expired ones are.
var synCookieKey = newCookieKey()

func newCookieKey() cookieKey {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return cookieKey{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

// cookieTime returns the cookie time counter at monotonic time now.
func cookieTime(now int64) uint32 { return uint32(now >> cookiePeriodShift) }

// cookieWords packs what a cookie is bound to into two SipHash message
// words: the client's and the VIP's addresses and ports (k is the client's
// key, client → VIP) and the client's ISN.
func cookieWords(k *conntrack.Key4, isn uint32) (m0, m1 uint64) {
	m0 = uint64(binary.BigEndian.Uint32(k.Src[:]))<<32 | uint64(binary.BigEndian.Uint32(k.Dst[:]))
	m1 = uint64(k.SrcPort)<<48 | uint64(k.DstPort)<<32 | uint64(isn)
	return m0, m1
}

// make returns the cookie for a client SYN of key k and sequence number
// isn, carrying MSS index mss, at time counter t.
func (c *cookieKey) make(k *conntrack.Key4, isn uint32, mss int, t uint32) uint32 {
	m0, m1 := cookieWords(k, isn)
	return c.makeWords(m0, m1, mss, t)
}

// makeWords is make for the message words of a key and client ISN, of
// either family (cookieWords, cookieWords6).
func (c *cookieKey) makeWords(m0, m1 uint64, mss int, t uint32) uint32 {
	h0 := uint32(sipHash24(c, m0, m1, cookieH0))
	h1 := uint32(sipHash24(c, m0, m1, uint64(t)<<8|uint64(mss)))
	return h0 + ((t&7)<<cookieTimeShift | uint32(mss)<<cookieMSSShift | h1&cookieMACMask)
}

// check validates cookie for the key k and client ISN isn of an ACK at
// time counter t, and returns the MSS index it carries.
func (c *cookieKey) check(k *conntrack.Key4, isn, cookie, t uint32) (mss int, ok bool) {
	m0, m1 := cookieWords(k, isn)
	return c.checkWords(m0, m1, cookie, t)
}

// checkWords is check for the message words of a key and client ISN.
func (c *cookieKey) checkWords(m0, m1 uint64, cookie, t uint32) (mss int, ok bool) {
	v := cookie - uint32(sipHash24(c, m0, m1, cookieH0))
	age := (t - v>>cookieTimeShift) & 7
	if age > cookieMaxAge {
		return 0, false
	}
	mss = int(v >> cookieMSSShift & 7)
	h1 := uint32(sipHash24(c, m0, m1, uint64(t-age)<<8|uint64(mss)))
	if v&cookieMACMask != h1&cookieMACMask {
		return 0, false
	}
	return mss, true
}

// sipHash24 is SipHash-2-4 (Aumasson and Bernstein, 2012) of the 24-byte
// message whose little-endian 64-bit words are m0, m1 and m2.
func sipHash24(k *cookieKey, m0, m1, m2 uint64) uint64 {
	v0 := k.k0 ^ 0x736f6d6570736575
	v1 := k.k1 ^ 0x646f72616e646f6d
	v2 := k.k0 ^ 0x6c7967656e657261
	v3 := k.k1 ^ 0x7465646279746573
	// The message words, then the last block: the length (24) in its top
	// byte, no bytes left over.
	for _, m := range [4]uint64{m0, m1, m2, 24 << 56} {
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
	}
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13) ^ v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16) ^ v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21) ^ v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17) ^ v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// Held client segments: a connection's client segments from its
// handshake ACK until its real's SYN-ACK. Tunables.
const (
	// spHoldSlots frames wait per worker. A real on the director's LAN
	// answers a SYN within a millisecond; meanwhile a client sends its
	// handshake ACK and, usually, its first request: 32 slots hold that
	// for 16 connections opening in the same round trip. A slot's buffer
	// (MaxSegment bytes) is allocated on its first use. Without room a
	// segment is dropped and the client retransmits it; a handshake ACK
	// that finds no room is replaced by one the director builds.
	spHoldSlots = 32
	// spHoldPerConn bounds one connection's share (DPVS keeps 3 ACKs).
	spHoldPerConn = 4
	// spResendAfter is how long the director waits for a real's SYN-ACK
	// before a client retransmission makes it send the SYN again: RFC
	// 6298's initial retransmission timeout. A real on the LAN answers
	// within milliseconds; one that has not lost the SYN or its answer,
	// or dropped the SYN with its listen queue full.
	spResendAfter = int64(time.Second)
	// spHoldFor: a held segment whose real has not answered in this
	// long (the real is down, or its SYN was lost) gives its slot up.
	spHoldFor = int64(time.Second)
	// spTTL is the TTL of the segments the director builds.
	spTTL = 64
	// spFallbackWindow is the window of the ACK the director builds for a
	// real when the client's handshake ACK found no slot: an initial
	// window's worth (RFC 6928), until the client's next segment tells
	// the real its own window.
	spFallbackWindow = 14600
	// spSynAckWindow is the window of the cookie SYN-ACK: the most a
	// window without scaling can say. The real's segments then carry its
	// own.
	spSynAckWindow = 65535
)

// heldFrameOf is one slot of held client segments of connections of
// address type A.
type heldFrameOf[A conntrack.IP] struct {
	key   conntrack.Key[A] // forward key of the connection; Proto 0: the slot is free
	order uint64           // arrival order: a connection's frames leave in it
	at    int64            // when it was held
	n     int
	buf   []byte
}

// heldFrame is the slot of an IPv4 connection's segment.
type heldFrame = heldFrameOf[[4]byte]

// heldFrames is a worker's held client segments of one family.
type heldFrames[A conntrack.IP] struct {
	held  [spHoldSlots]heldFrameOf[A]
	order uint64
}

// synProxy is a worker's SYN-proxy state: the held client segments (those
// of IPv6 connections are in Worker.sp6, synproxy6.go).
type synProxy = heldFrames[[4]byte]

// synProxyMiss handles a segment to svc, a SYN-proxied (so TCP) service,
// that found no connection: a SYN is answered with a cookie, an ACK with a
// valid cookie opens the connection, anything else is dropped.
func (w *Worker) synProxyMiss(t *Table, svc *Service, p *parsed, icmp []byte, now int64) ([]byte, Verdict) {
	if p.frag != 0 {
		return nil, VerdictFragment
	}
	switch p.flags & (header.TCPFlagSyn | header.TCPFlagAck | header.TCPFlagRst | header.TCPFlagFin) {
	case header.TCPFlagSyn:
		return w.synCookie(t, p, icmp, now), VerdictSynProxy
	case header.TCPFlagAck:
		return w.synProxyOpen(t, svc, p, icmp, now)
	}
	return nil, VerdictNoConn
}

// synCookie answers the client SYN p with a SYN-ACK from the VIP whose
// sequence number is a cookie, built in b, back to the MAC the SYN came
// from.
func (w *Worker) synCookie(t *Table, p *parsed, b []byte, now int64) []byte {
	eth := header.Ethernet(p.frame)
	tcp := header.TCP(header.IPv4(p.frame[header.EthernetLen:]).Payload())
	isn := tcp.SequenceNumber()
	mss, ok := tcp.MSS()
	if !ok {
		mss = mssTable[0] // RFC 9293 section 3.7.1: 536 without the option
	}
	cookie := synCookieKey.make(&p.key, isn, mssIndex(mss), cookieTime(now))
	w.C.SynProxyCookies.Add(1)
	return buildSegment(b, &segment{
		dstMAC: eth.Source(), srcMAC: t.MAC, src: p.key.Dst, dst: p.key.Src,
		tcp: header.TCPFields{SrcPort: p.key.DstPort, DstPort: p.key.SrcPort, Seq: cookie, Ack: isn + 1,
			Flags: header.TCPFlagSyn | header.TCPFlagAck, Window: spSynAckWindow},
		mss: advertisedMSS(t),
	})
}

// advertisedMSS is the MSS of the cookie SYN-ACK: what the director's link
// carries, which a real on the same LAN takes too.
func advertisedMSS(t *Table) uint16 {
	if m := t.MTU - header.IPv4MinLen - header.TCPMinLen; m > 0 && m <= 0xffff {
		return uint16(m)
	}
	return mssTable[len(mssTable)-1]
}

// synProxyOpen handles the ACK p that may complete a cookie handshake: if
// its ack-1 is a valid cookie for its tuple and its seq-1, the connection
// is scheduled and inserted as a SYN's would be, the ACK is held for the
// real, and a SYN to the real (seq-1, the cookie's MSS), built in b, is
// returned.
func (w *Worker) synProxyOpen(t *Table, svc *Service, p *parsed, b []byte, now int64) ([]byte, Verdict) {
	eth := header.Ethernet(p.frame)
	ip := header.IPv4(p.frame[header.EthernetLen:])
	tcp := header.TCP(ip.Payload())
	cookie, isn := tcp.AckNumber()-1, tcp.SequenceNumber()-1
	mi, ok := synCookieKey.check(&p.key, isn, cookie, cookieTime(now))
	if !ok {
		w.C.SynProxyBadCookies.Add(1)
		return nil, VerdictNoConn
	}
	e, v := w.newConn(t, svc, &p.key, eth, header.TCPFlagSyn, now)
	if e == nil {
		return nil, v
	}
	r := t.real(e.RealID)
	if f := Forward(e.Forward); r == nil || (f != ForwardNAT && f != ForwardFullNAT) {
		// Configuration refuses this (a DR or TUN real never shows the
		// director its SYN-ACK); never forward unspliced.
		w.drop(e)
		return nil, VerdictNoReal
	}
	w.C.SynProxyOpened.Add(1)
	e.Flags |= flagSynProxy | flagSynPending
	src, sport := e.Client, e.ClientPort
	if Forward(e.Forward) == ForwardFullNAT {
		src, sport = e.Local, e.LPort
	}
	aux := w.shard.Aux(e)
	aux[auxReal] = cookie
	aux[auxClient] = proxyISN(now, src, sport, r.Addr, r.Port) - isn
	e.ClientMAC = eth.Source()
	w.setState(t, e, r, conntrack.TCPSynRecv, now)
	w.hold(e, p, now)
	return w.realSYN(t, e, r, b, ip, isn+aux[auxClient], mi), VerdictSynProxy
}

// ecnMask is the ECN field of the TOS byte (RFC 3168 section 5). The SYN
// to a real leaves it clear: the cookie SYN-ACK negotiated no ECN.
const ecnMask = 3

// realSYN builds in b the SYN that opens e's connection on its real r, as
// the client's segment in ip would have it: sequence number isn (the
// director's), the MSS of index mss, the client's window and TOS (without
// its ECN bits).
func (w *Worker) realSYN(t *Table, e *conntrack.Entry4, r *Real, b []byte, ip header.IPv4, isn uint32, mss int) []byte {
	s := segment{dstMAC: r.MAC, srcMAC: t.MAC, src: e.Client, dst: r.Addr, tos: ip.TOS() &^ ecnMask,
		tcp: header.TCPFields{SrcPort: e.ClientPort, DstPort: r.Port, Seq: isn, Flags: header.TCPFlagSyn,
			Window: header.TCP(ip.Payload()).WindowSize()},
		mss: mssTable[mss]}
	if Forward(e.Forward) == ForwardFullNAT {
		s.src, s.tcp.SrcPort = e.Local, e.LPort
	}
	out := buildSegment(b, &s)
	r.Stats.InPkts.Add(1)
	r.Stats.InBytes.Add(uint64(len(out) - header.EthernetLen))
	return out
}

// resendSYN sends e's real its SYN again when it has not answered in
// spResendAfter and p, a client segment, retransmits from the client's
// ISN+1 with the cookie still valid (a client retransmits from its first
// unacknowledged byte, and the real has acknowledged none): the client's
// retransmission timer stands in for the SYN's. It returns the SYN, or
// nil.
func (w *Worker) resendSYN(t *Table, e *conntrack.Entry4, r *Real, p *parsed, now int64) []byte {
	sent := e.Expires - int64(t.Timeouts.Timeout(conntrack.TCPSynRecv))
	if now-sent < spResendAfter || p.flags&header.TCPFlagAck == 0 {
		return nil
	}
	ip := header.IPv4(p.frame[header.EthernetLen:])
	tcp := header.TCP(ip.Payload())
	aux := w.shard.Aux(e)
	cookie, isn := aux[auxReal], tcp.SequenceNumber()-1
	if tcp.AckNumber() != cookie+1 {
		return nil
	}
	mi, ok := synCookieKey.check(&p.key, isn, cookie, cookieTime(now))
	if !ok {
		return nil
	}
	e.Expires = now + int64(t.Timeouts.Timeout(conntrack.TCPSynRecv))
	w.C.SynProxySynResent.Add(1)
	return w.realSYN(t, e, r, w.spare(header.EthernetLen+header.IPv4MinLen+header.TCPMinLen+header.TCPOptionMSSLen), ip, isn+aux[auxClient], mi)
}

// synProxyConn handles a segment p of the SYN-proxied connection e before
// the usual path does: while the real has not answered, a client segment
// is held and the real's SYN-ACK completes the splice (done true: the
// frame goes no further); afterwards it translates the segment's sequence
// and acknowledgment numbers and the usual path rewrites and sends it.
func (w *Worker) synProxyConn(t *Table, e *conntrack.Entry4, r *Real, reply bool, p *parsed, now int64) (out []byte, v Verdict, done bool) {
	tcp := header.TCP(header.IPv4(p.frame[header.EthernetLen:]).Payload())
	aux := w.shard.Aux(e)
	if e.Flags&flagSynPending != 0 {
		switch {
		case !reply:
			// Until the real answers, its side has no sequence offset:
			// the segment waits (a SYN, a new handshake on a tuple in
			// use, does not), and may be a retransmission that tells
			// the real's SYN was lost.
			if p.flags&header.TCPFlagSyn != 0 {
				return nil, VerdictSynProxy, true
			}
			e.ClientMAC = header.Ethernet(p.frame).Source()
			w.hold(e, p, now)
			return w.resendSYN(t, e, r, p, now), VerdictSynProxy, true
		case p.flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) == header.TCPFlagSyn|header.TCPFlagAck:
			return w.synProxySynAck(t, e, r, p, now), VerdictSynProxy, true
		case p.flags&header.TCPFlagRst != 0:
			// The real refused the SYN. The client, established, takes a
			// reset only at the sequence number it expects next, the
			// cookie's +1: the offset is set so, and the reset goes on
			// as a reply; the held segments are dropped.
			aux[auxReal] = tcp.SequenceNumber() - (aux[auxReal] + 1)
			e.Flags &^= flagSynPending
			w.dropHeld(e)
		default:
			return nil, VerdictSynProxy, true // nothing else is due before the SYN-ACK
		}
	}
	seqD, ackD := aux[auxClient], aux[auxReal]
	if reply {
		seqD, ackD = -aux[auxReal], -aux[auxClient]
	}
	translateSeq(tcp, seqD, ackD, p.flags&header.TCPFlagAck != 0, p.off.Flags&header.OffloadNeedsCsum != 0)
	return nil, 0, false
}

// translateSeq adds seqD to tcp's sequence number and, if ack (the ACK
// flag is set), ackD to its acknowledgment number, updating the checksum
// unless it is partial (the kernel finishes it over the new fields). A
// zero offset leaves its field alone.
func translateSeq(tcp header.TCP, seqD, ackD uint32, ack, partial bool) {
	switch {
	case seqD == 0:
	case partial:
		tcp.SetSequenceNumber(tcp.SequenceNumber() + seqD)
	default:
		tcp.SetSequenceNumberWithChecksumUpdate(tcp.SequenceNumber() + seqD)
	}
	switch {
	case !ack || ackD == 0:
	case partial:
		tcp.SetAckNumber(tcp.AckNumber() + ackD)
	default:
		tcp.SetAckNumberWithChecksumUpdate(tcp.AckNumber() + ackD)
	}
}

// synProxySynAck takes the real's SYN-ACK p for the pending connection e:
// it sets e's sequence offset, and returns what completes the real's
// handshake: the held client segments, translated and rewritten for the
// real (the first returned, the others queued in w.extra), or, if none
// was held, an ACK the director builds. The SYN-ACK itself goes no
// further: the client had the cookie's.
func (w *Worker) synProxySynAck(t *Table, e *conntrack.Entry4, r *Real, p *parsed, now int64) []byte {
	ip := header.IPv4(p.frame[header.EthernetLen:])
	tcp := header.TCP(ip.Payload())
	if r.Proxy != 0 && w.pp.full() {
		// No room to keep the PROXY header until it is acknowledged
		// (proxyproto.go): the real sends its SYN-ACK again.
		w.C.ProxyNoSlot.Add(1)
		return nil
	}
	aux := w.shard.Aux(e)
	cookie := aux[auxReal]
	aux[auxReal] = tcp.SequenceNumber() - cookie
	e.Flags &^= flagSynPending
	w.C.SynProxySynAcks.Add(1)
	r.Stats.OutPkts.Add(1)
	r.Stats.OutBytes.Add(uint64(len(ip)))
	w.setState(t, e, r, conntrack.TCPEstablished, now)
	if h := w.proxySynAck(t, e, r, p, now); h != nil {
		// A PROXY header (proxyproto.go) goes first, and acknowledges
		// the SYN-ACK; the held segments follow it.
		k := len(w.extra)
		if out := w.flushHeld(t, e, r, cookie, now); out != nil {
			w.extra = append(w.extra, nil)
			copy(w.extra[k+1:], w.extra[k:])
			w.extra[k] = out
		}
		return h
	}
	if out := w.flushHeld(t, e, r, cookie, now); out != nil {
		return out
	}
	// As the real's own SYN-ACK, turned around.
	return buildSegment(w.spare(header.EthernetLen+header.IPv4MinLen+header.TCPMinLen), &segment{
		dstMAC: r.MAC, srcMAC: t.MAC, src: ip.Destination(), dst: ip.Source(),
		tcp: header.TCPFields{SrcPort: tcp.DestinationPort(), DstPort: tcp.SourcePort(), Seq: tcp.AckNumber(),
			Ack: tcp.SequenceNumber() + 1, Flags: header.TCPFlagAck, Window: spFallbackWindow},
	})
}

// setState moves the SYN-proxied connection e to state s as track does for
// a packet: the real's active and inactive counts follow, the timeout
// restarts, and connection sync hears of the change.
func (w *Worker) setState(t *Table, e *conntrack.Entry4, r *Real, s conntrack.State, now int64) {
	old := e.State
	e.State = s
	if a, b := conntrack.IsActive(old), conntrack.IsActive(s); a != b {
		if b {
			r.Counters.Activate()
		} else {
			r.Counters.Deactivate()
		}
	}
	e.Expires = now + int64(t.Timeouts.Timeout(s))
	if old != s {
		w.syncReport(e)
	}
}

// hold keeps a copy of the client frame p of the pending connection e for
// its real, and reports whether it found room. A partial checksum is
// finished in the copy; a GSO frame, which only the kernel can cut, is not
// kept. A slot held longer than spHoldFor is taken back on the way.
func (w *Worker) hold(e *conntrack.Entry4, p *parsed, now int64) bool {
	fk := e.ForwardKey()
	return holdFrame(w, &w.sp, &fk, p.frame, &p.off, false, now)
}

// holdFrame is hold for the frame of the connection of forward key fk, in
// sp; v6 says the frame's family, for its partial checksum.
func holdFrame[A conntrack.IP](w *Worker, sp *heldFrames[A], fk *conntrack.Key[A], frame []byte, off *header.Offload, v6 bool, now int64) bool {
	free, mine := -1, 0
	for i := range sp.held {
		h := &sp.held[i]
		if h.key.Proto != 0 && now-h.at >= spHoldFor {
			h.key.Proto = 0
			w.C.SynProxyHeldDropped.Add(1)
		}
		switch {
		case h.key.Proto == 0:
			if free < 0 {
				free = i
			}
		case h.key == *fk:
			mine++
		}
	}
	if free < 0 || mine >= spHoldPerConn || off.GSOType != header.GSONone || len(frame) > MaxSegment {
		w.C.SynProxyHeldDropped.Add(1)
		return false
	}
	h := &sp.held[free]
	if h.buf == nil {
		h.buf = make([]byte, MaxSegment)
	}
	h.n = copy(h.buf, frame)
	if off.Flags&header.OffloadNeedsCsum != 0 {
		if v6 {
			header.FinishChecksum(h.buf[:h.n], off, false) // TCP
		} else {
			finishChecksum(h.buf[:h.n], off)
		}
	}
	sp.order++
	h.key, h.order, h.at = *fk, sp.order, now
	w.C.SynProxyHeld.Add(1)
	return true
}

// dropHeld frees the slots of e's held segments, counting them dropped.
func (w *Worker) dropHeld(e *conntrack.Entry4) {
	fk := e.ForwardKey()
	dropHeldFrames(w, &w.sp, &fk)
}

// dropHeldFrames is dropHeld for the connection of forward key fk, in sp.
func dropHeldFrames[A conntrack.IP](w *Worker, sp *heldFrames[A], fk *conntrack.Key[A]) {
	for i := range sp.held {
		if h := &sp.held[i]; h.key.Proto != 0 && h.key == *fk {
			h.key.Proto = 0
			w.C.SynProxyHeldDropped.Add(1)
		}
	}
}

// heldInOrder returns the slots in sp of the held segments of the
// connection of forward key fk, in arrival order (at most spHoldPerConn:
// any beyond are dropped).
func heldInOrder[A conntrack.IP](w *Worker, sp *heldFrames[A], fk *conntrack.Key[A]) (idx [spHoldPerConn]int, n int) {
	for i := range sp.held {
		h := &sp.held[i]
		if h.key.Proto == 0 || h.key != *fk {
			continue
		}
		if n == len(idx) { // cannot happen: hold keeps spHoldPerConn at most
			h.key.Proto = 0
			w.C.SynProxyHeldDropped.Add(1)
			continue
		}
		// Insertion in arrival order.
		j := n
		for ; j > 0 && sp.held[idx[j-1]].order > h.order; j-- {
			idx[j] = idx[j-1]
		}
		idx[j] = i
		n++
	}
	return idx, n
}

// flushHeld sends the held segments of e, just spliced, to its real in the
// order they came: each copied into a spare buffer (its slot is free at
// once), its acknowledgment translated, tracked and rewritten as a client
// segment is. It returns the first, with the others queued in w.extra, or
// nil if none was held. A held segment that does not acknowledge cookie+1
// (an earlier connection's, on the same tuple) is dropped.
func (w *Worker) flushHeld(t *Table, e *conntrack.Entry4, r *Real, cookie uint32, now int64) []byte {
	fk := e.ForwardKey()
	idx, n := heldInOrder(w, &w.sp, &fk)
	aux := w.shard.Aux(e)
	var first []byte
	for _, i := range idx[:n] {
		h := &w.sp.held[i]
		h.key.Proto = 0
		frame := w.spare(h.n)
		copy(frame, h.buf[:h.n])
		ip := header.IPv4(frame[header.EthernetLen:])
		tcp := header.TCP(ip.Payload())
		flags := tcp.Flags()
		if flags&header.TCPFlagAck != 0 && tcp.AckNumber() != cookie+1 {
			w.C.SynProxyHeldDropped.Add(1)
			continue
		}
		// hold finished any partial checksum.
		translateSeq(tcp, aux[auxClient], aux[auxReal], flags&header.TCPFlagAck != 0, false)
		w.track(t, e, r, conntrack.DirInput, flags, now)
		r.Stats.InPkts.Add(1)
		r.Stats.InBytes.Add(uint64(len(ip)))
		if Forward(e.Forward) == ForwardFullNAT {
			rewriteSrc(ip, e.Local, e.LPort, false)
		}
		rewriteDst(ip, r.Addr, r.Port, false)
		eth := header.Ethernet(frame)
		eth.SetDestination(r.MAC)
		eth.SetSource(t.MAC)
		if first == nil {
			first = frame
		} else {
			w.extra = append(w.extra, frame)
		}
	}
	return first
}

// synProxyQuote translates the TCP header quoted by an ICMP error about a
// segment of the SYN-proxied or FULLNAT-translated (flagSeqXlate)
// connection e (at least its first 8 bytes)
// into the sequence spaces of whoever gets the error: toward the real
// (reply false: a segment the director sent the client) the real's own
// sequence number, which Linux checks against its window before it acts
// on an error; toward the client (a segment the director sent the real)
// the client's own. The acknowledgment number follows when it is quoted.
func (w *Worker) synProxyQuote(e *conntrack.Entry4, quote []byte, reply bool) {
	if e.Proto != header.ProtoTCP {
		return
	}
	in, out, ok := w.seqOffsets(e)
	if !ok {
		return
	}
	tcp := header.TCP(quote)
	seqD, ackD := out, in
	if reply {
		seqD, ackD = -in, -out
	}
	tcp.SetSequenceNumber(tcp.SequenceNumber() + seqD)
	if len(quote) >= 12 { // it quotes the acknowledgment number, bytes 8 to 11
		tcp.SetAckNumber(tcp.AckNumber() + ackD)
	}
}

// segment is what buildSegment writes: a TCP segment without payload, with
// an MSS option unless mss is 0.
type segment struct {
	dstMAC, srcMAC [6]byte
	src, dst       [4]byte
	tos            uint8
	tcp            header.TCPFields // HeaderLength is set by buildSegment
	mss            uint16
}

// buildSegment writes the Ethernet frame s describes into b, DF set and
// both checksums complete, and returns it. b must hold 58 bytes.
func buildSegment(b []byte, s *segment) []byte {
	hl := header.TCPMinLen
	if s.mss != 0 {
		hl += header.TCPOptionMSSLen
	}
	b = b[:header.EthernetLen+header.IPv4MinLen+hl]
	eth := header.Ethernet(b)
	eth.SetDestination(s.dstMAC)
	eth.SetSource(s.srcMAC)
	eth.SetType(header.EtherTypeIPv4)
	ip := header.IPv4(b[header.EthernetLen:])
	ip.Encode(&header.IPv4Fields{TOS: s.tos, TotalLength: uint16(header.IPv4MinLen + hl), Flags: header.IPv4FlagDontFragment,
		TTL: spTTL, Protocol: header.ProtoTCP, Src: s.src, Dst: s.dst})
	tcp := header.TCP(ip[header.IPv4MinLen:])
	s.tcp.HeaderLength = hl
	tcp.Encode(&s.tcp)
	if s.mss != 0 {
		header.PutMSSOption(tcp[header.TCPMinLen:], s.mss)
	}
	tcp.SetChecksum(tcp.CalculateChecksum(s.src, s.dst))
	return b
}
