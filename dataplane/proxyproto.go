package dataplane

import (
	"encoding/binary"
	"strconv"
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2)
// tells a NAT or FULLNAT real server who the client is: a real whose
// Real.Proxy is set gets, as the first bytes of every TCP connection, a
// header with the client's address and port and the VIP's. The client
// never sends it, so the director inserts it into the stream:
//
//	client                 director                      real
//	SYN seq=x       ──►  (FULLNAT: seq i, in = i-x)    ──►
//	                ◄──  SYN-ACK ack=x+1 (as always)   ◄──  SYN-ACK seq=y ack=S (S = x+in+1)
//	ACK seq=x+1 ack=y+1 ──►  header, L bytes, seq=S ack=y+1 ──►
//	                         in += L: flagProxyHdr, flagProxyPending
//	                         the ACK, seq x+1+in = S+L  ──►
//	                ◄──  ack b-in                      ◄──  ack=b ≥ S+L: pending cleared
//
// The header goes with the client's first segment after its SYN (the
// handshake's ACK, which a client sends at once, also for a protocol where
// the server speaks first), not with the real's SYN-ACK: the header
// completes the real's handshake, and were the SYN-ACK then lost on its
// way to the client, the client's SYN sent again would meet an
// established connection on the real, which answers it with a bare ACK
// (RFC 5961) and never its SYN-ACK again, and the client would be stuck.
// The handshake's ACK carries all the header segment needs: its sequence
// number S (translated), the real's ISN+1 as its acknowledgment, the
// client's window and timestamps. A SYN-proxied connection, whose client
// is established before its real is asked, sends it with the held
// segments behind the real's SYN-ACK instead (synProxySynAck).
//
// From then on the header's length L is part of the connection's client
// offset (Aux word auxClient): client sequence numbers get +L, the real's
// acknowledgment numbers and SACK edges -L, for the life of the
// connection, by the same translation (fullnat.go, or synproxy.go for a
// SYN-proxied connection). A NAT connection, whose
// numbers are not translated otherwise, becomes a flagSeqXlate one with
// in = L and no timestamp offset. Connection sync carries the offset like
// any other, so a backup translates as the master did.
//
// The header is a segment the director makes, so it may be lost. Until
// the real acknowledges it (flagProxyPending) a slot of the worker's
// proxyState keeps what sending it again takes: its sequence number S, the
// latest acknowledgment and window the client sent, and the timestamps. It
// is sent again when RTO passes without the real's acknowledgment
// (checked on each client segment and by the worker's expiry walk, so a
// protocol where the server speaks first gets it too), at once when the
// real acknowledges S with a SACK block above it (the real holds client
// data but not the header) or sends its SYN-ACK again (it never got the
// header's acknowledgment of it), and no more after ppMaxTries: the
// connection is then dropped. Meanwhile an acknowledgment from the real
// that does not cover the header, translated, would fall before the
// client's ISN+1: it is raised to ISN+1, and SACK edges below it too (a
// block wholly in the header, a D-SACK of a header sent twice, becomes
// empty, which the client ignores), so the client never sees the header's
// bytes.
//
// The header segment carries a timestamp option when the connection has
// them: TSval and TSecr are the latest the client sent, translated, which
// the real cannot take for old ones, since a client segment after the
// header never updates its ts_recent (it lies beyond the real's rcv_nxt
// until the header arrives).
//
// A slot costs no connection-table memory: entries stay 48 bytes and their
// two Aux words, and only connections in their first round trip hold one.
// A client segment that finds no free slot is dropped (ProxyNoSlot): its
// data comes again, and a handshake's ACK with the real's SYN-ACK sent
// again; so is a real's SYN-ACK to the SYN proxy, which the real sends
// again.

// ProxyVersion is the PROXY protocol version a real gets, 0 for none.
type ProxyVersion uint8

// PROXY protocol versions.
const (
	ProxyV1 ProxyVersion = 1 // the text header: "PROXY TCP4 ...\r\n"
	ProxyV2 ProxyVersion = 2 // the binary header
)

func (v ProxyVersion) String() string {
	switch v {
	case ProxyV1:
		return "v1"
	case ProxyV2:
		return "v2"
	}
	return ""
}

// Entry.Flags of a connection whose real gets a PROXY header.
const (
	flagProxyHdr     = 1 << 5 // the header was sent: the client offset includes its length
	flagProxyPending = 1 << 6 // not yet acknowledged: a slot in Worker.pp keeps it
)

// The PROXY protocol v2 header of a TCP over IPv4 connection
// (proxy-protocol.txt section 2.2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|       signature: \r\n\r\n\0\r\nQUIT\n (12 bytes) ...          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| ver 2 | PROXY |  INET | STREAM|   length of the addresses: 12 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  source address (the client's)                |
//	|               destination address (the VIP's)                 |
//	|          source port          |        destination port       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ppV2SigLen    = 12
	ppV2VerCmd    = 12   // version (high nibble) and command (low)
	ppV2FamProto  = 13   // address family (high nibble) and transport (low)
	ppV2Len       = 14   // length of what follows the 16-byte header, big-endian
	ppV2Addrs     = 16   // the addresses and ports
	ppV2Proxy     = 0x21 // version 2, command PROXY
	ppV2TCP4      = 0x11 // AF_INET, STREAM
	ppV2AddrsLen4 = 12
	ppV2Len4      = ppV2Addrs + ppV2AddrsLen4 // 28
	// ppV1MaxLen is the longest v1 header of TCP over IPv4:
	// "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n".
	ppV1MaxLen = 56
	// ppMaxLen bounds a header of either version and family (IPv6's v1
	// is the longest, proxyproto6.go).
	ppMaxLen = ppV1MaxLen6
)

var ppV2Sig = [ppV2SigLen]byte{'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'}

// putProxyHeader writes the PROXY header of version v for a TCP connection
// from src:sport to dst:dport into b (at least ppMaxLen long) and returns
// its length, or 0 for an unknown version.
func putProxyHeader(b []byte, v ProxyVersion, src [4]byte, sport uint16, dst [4]byte, dport uint16) int {
	switch v {
	case ProxyV2:
		copy(b, ppV2Sig[:])
		b[ppV2VerCmd], b[ppV2FamProto] = ppV2Proxy, ppV2TCP4
		binary.BigEndian.PutUint16(b[ppV2Len:], ppV2AddrsLen4)
		copy(b[ppV2Addrs:], src[:])
		copy(b[ppV2Addrs+4:], dst[:])
		binary.BigEndian.PutUint16(b[ppV2Addrs+8:], sport)
		binary.BigEndian.PutUint16(b[ppV2Addrs+10:], dport)
		return ppV2Len4
	case ProxyV1:
		o := append(b[:0], "PROXY TCP4 "...)
		o = appendIPv4(o, src)
		o = append(o, ' ')
		o = appendIPv4(o, dst)
		o = append(o, ' ')
		o = strconv.AppendUint(o, uint64(sport), 10)
		o = append(o, ' ')
		o = strconv.AppendUint(o, uint64(dport), 10)
		o = append(o, '\r', '\n')
		return len(o)
	}
	return 0
}

// appendIPv4 appends a in dotted decimal.
func appendIPv4(b []byte, a [4]byte) []byte {
	for i, x := range a {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(x), 10)
	}
	return b
}

// Tunables of the header's retransmission.
const (
	// ppSlots is how many connections of a worker may have a header not
	// yet acknowledged. A real on the LAN acknowledges within a round
	// trip (well under a millisecond), so at 10,000 new connections a
	// second a worker holds about ten; 256 leave room for loss and
	// slower reals. A slot is 56 bytes, the table 14 KiB a worker.
	ppSlots = 256
	// ppRTO is the first wait for the real's acknowledgment before the
	// header goes again: Linux's minimum retransmission timeout (200
	// ms). It doubles with each retry, as TCP's does.
	ppRTO = int64(200 * time.Millisecond)
	// ppMaxTries bounds the sends of a header: 8 cover 51 s of waiting
	// (0.2 s doubling), longer than a real's own SYN-ACK retries (Linux's
	// tcp_synack_retries 5: 31 s).
	ppMaxTries = 8
	// ppSynProxyWindow is the window of a SYN-proxied connection's
	// header segment, which goes before the client's held segments say
	// the client's: the SYN proxy's own fallback (no window scaling).
	ppSynProxyWindow = spFallbackWindow
	// ppTSOptLen is the options of a header segment with timestamps:
	// NOP, NOP, timestamps.
	ppTSOptLen = 2 + tcpOptTimestampsLen
)

// ppSlotOf is what resending one connection's header takes, for a
// connection of address type A.
type ppSlotOf[A conntrack.IP] struct {
	key conntrack.Key[A] // the connection's forward key; Proto 0: free
	ppSeg
}

// ppSeg is what a header segment is sent with, and its sends.
type ppSeg struct {
	seq          uint32 // the header's sequence number, in the real's numbers
	ack          uint32 // the acknowledgment to send: the latest the client sent, in the real's numbers
	tsval, tsecr uint32 // the timestamps to send, if ts
	sent         int64  // when it was last sent
	rto          int64  // how long to wait after sent
	win          uint16 // the window to send: the client's latest
	n            uint8  // the header's length
	ver          ProxyVersion
	ts           bool // the connection has timestamps
	tries        uint8
	fast         bool // resent for a SACK already: wait for RTO now
}

// ppSlot is the slot of an IPv4 connection.
type ppSlot = ppSlotOf[[4]byte]

// proxyTable is an open-addressed table of a worker's unacknowledged PROXY
// headers, keyed by the connection's forward key.
type proxyTable[A conntrack.IP] struct {
	slots [ppSlots]ppSlotOf[A]
	used  int
}

// proxyState is a worker's unacknowledged PROXY headers of IPv4
// connections (those of IPv6 ones are in Worker.pp6, proxyproto6.go).
type proxyState struct {
	proxyTable[[4]byte]
	out [1][]byte // the frame Write gets from the expiry walk
}

// ppStart is where a key's probe starts.
func ppStart[A conntrack.IP](k *conntrack.Key[A]) int {
	switch k := any(k).(type) {
	case *conntrack.Key4:
		return int(flowHash(k) % ppSlots)
	case *conntrack.Key6:
		return int(flowHash6(k) % ppSlots)
	}
	return 0
}

// find returns the slot of key k, or nil.
func (s *proxyTable[A]) find(k *conntrack.Key[A]) *ppSlotOf[A] {
	if s.used == 0 {
		return nil
	}
	for i, j := 0, ppStart(k); i < ppSlots; i, j = i+1, (j+1)%ppSlots {
		if sl := &s.slots[j]; sl.key.Proto != 0 && sl.key == *k {
			return sl
		}
	}
	return nil
}

// alloc returns a free slot for key k, or nil if none is free.
func (s *proxyTable[A]) alloc(k *conntrack.Key[A]) *ppSlotOf[A] {
	if s.used == ppSlots {
		return nil
	}
	for i, j := 0, ppStart(k); i < ppSlots; i, j = i+1, (j+1)%ppSlots {
		if sl := &s.slots[j]; sl.key.Proto == 0 {
			*sl = ppSlotOf[A]{key: *k}
			s.used++
			return sl
		}
	}
	return nil
}

// full reports whether every slot is taken.
func (s *proxyTable[A]) full() bool { return s.used == ppSlots }

// free gives sl back.
func (s *proxyTable[A]) free(sl *ppSlotOf[A]) {
	sl.key.Proto = 0
	s.used--
}

// proxyRelease frees the slot of e, a connection leaving the table or
// done with its header.
func (w *Worker) proxyRelease(e *conntrack.Entry4) {
	k := e.ForwardKey()
	if sl := w.pp.find(&k); sl != nil {
		w.pp.free(sl)
	}
	e.Flags &^= flagProxyPending
}

// wantsProxyHeader reports whether the client's segment p of e, a
// connection not SYN-proxied, is the first after its SYN (the handshake's
// ACK, or whatever comes first with an ACK: the connection is still in
// SYN_RECV), before which e's real r gets its header. A connection
// established before its real got proxy_protocol (a reload) gets none: its
// stream has begun.
func wantsProxyHeader(e *conntrack.Entry4, r *Real, p *parsed) bool {
	return r.Proxy != 0 && e.Proto == header.ProtoTCP && e.Flags&(flagProxyHdr|flagSynProxy) == 0 &&
		e.State == conntrack.TCPSynRecv &&
		(Forward(e.Forward) == ForwardNAT || Forward(e.Forward) == ForwardFullNAT) &&
		p.flags&(header.TCPFlagSyn|header.TCPFlagAck|header.TCPFlagRst) == header.TCPFlagAck
}

// proxyOpen takes the client's segment p of e (wantsProxyHeader), before
// its numbers are translated: it queues the header for the real (w.extra,
// behind p), adds its length to the client offset and makes e pending.
// Without a free slot it reports false and p must be dropped.
func (w *Worker) proxyOpen(t *Table, e *conntrack.Entry4, r *Real, p *parsed, now int64) bool {
	tcp := header.TCP(header.IPv4(p.frame[header.EthernetLen:]).Payload())
	k := e.ForwardKey()
	sl := w.pp.alloc(&k)
	if sl == nil {
		w.C.ProxyNoSlot.Add(1)
		return false
	}
	aux := w.shard.Aux(e)
	if e.Flags&flagSeqXlate == 0 { // NAT: nothing translated so far
		aux[auxClient], aux[auxTS] = 0, 0
		e.Flags |= flagSeqXlate
	}
	sl.open(tcp, aux, r.Proxy)
	var hdr [ppMaxLen]byte
	sl.n = uint8(putProxyHeader(hdr[:], sl.ver, e.Client, e.ClientPort, e.VIP, e.VPort))
	aux[auxClient] += uint32(sl.n)
	e.Flags |= flagProxyHdr | flagProxyPending
	w.proxySend(t, e, r, sl, now)
	w.C.ProxyHeaders.Add(1)
	return true
}

// open sets up sl from the client's segment tcp that calls for a header
// of version v, before its numbers are translated with the offsets in aux:
// what it says, in the real's numbers. Its sequence number (the client's
// ISN+1) is the header's; it acknowledges the real's ISN.
func (sl *ppSeg) open(tcp header.TCP, aux *conntrack.Aux, v ProxyVersion) {
	sl.seq, sl.ack, sl.win, sl.ver, sl.rto = tcp.SequenceNumber()+aux[auxClient], tcp.AckNumber(), tcp.WindowSize(), v, ppRTO
	if off, ok := findTimestamps(tcp); ok {
		sl.ts, sl.tsval, sl.tsecr = true, tcp.Word32(off+2)+aux[auxTS], tcp.Word32(off+6)
	}
}

// proxySynAck is proxyOpen for a SYN-proxied connection e whose real's
// SYN-ACK p just set its offsets (synProxySynAck, which saw that a slot is
// free): it returns the header segment, which also acknowledges the
// SYN-ACK, or nil if e's real gets none.
func (w *Worker) proxySynAck(t *Table, e *conntrack.Entry4, r *Real, p *parsed, now int64) []byte {
	if r.Proxy == 0 {
		return nil
	}
	tcp := header.TCP(header.IPv4(p.frame[header.EthernetLen:]).Payload())
	k := e.ForwardKey()
	sl := w.pp.alloc(&k)
	if sl == nil {
		w.C.ProxyNoSlot.Add(1)
		return nil
	}
	// The cookie handshake negotiated no timestamps.
	sl.seq, sl.ack, sl.win, sl.ver, sl.rto = tcp.AckNumber(), tcp.SequenceNumber()+1, ppSynProxyWindow, r.Proxy, ppRTO
	var hdr [ppMaxLen]byte
	sl.n = uint8(putProxyHeader(hdr[:], sl.ver, e.Client, e.ClientPort, e.VIP, e.VPort))
	w.shard.Aux(e)[auxClient] += uint32(sl.n)
	e.Flags |= flagProxyHdr | flagProxyPending
	w.C.ProxyHeaders.Add(1)
	sl.sent, sl.tries = now, 1
	return w.proxySegment(t, e, r, sl, w.spare(header.EthernetLen+header.IPv4MinLen+header.TCPMinLen+ppTSOptLen+ppMaxLen))
}

// proxySend queues e's header segment, as sl describes it, behind the
// batch's frame, and notes when it went.
func (w *Worker) proxySend(t *Table, e *conntrack.Entry4, r *Real, sl *ppSlot, now int64) {
	b := w.spare(header.EthernetLen + header.IPv4MinLen + header.TCPMinLen + ppTSOptLen + ppMaxLen)
	w.extra = append(w.extra, w.proxySegment(t, e, r, sl, b))
	sl.sent = now
	sl.tries++
}

// proxySegment builds in b the segment that carries e's header to its real
// r, as sl describes it, both checksums complete.
func (w *Worker) proxySegment(t *Table, e *conntrack.Entry4, r *Real, sl *ppSlot, b []byte) []byte {
	src, sport := e.Client, e.ClientPort
	if Forward(e.Forward) == ForwardFullNAT {
		src, sport = e.Local, e.LPort
	}
	hl := header.TCPMinLen
	if sl.ts {
		hl += ppTSOptLen
	}
	l4 := header.EthernetLen + header.IPv4MinLen
	n := putProxyHeader(b[l4+hl:cap(b)], sl.ver, e.Client, e.ClientPort, e.VIP, e.VPort)
	b = b[:l4+hl+n]
	eth := header.Ethernet(b)
	eth.SetDestination(r.MAC)
	eth.SetSource(t.MAC)
	eth.SetType(header.EtherTypeIPv4)
	ip := header.IPv4(b[header.EthernetLen:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(header.IPv4MinLen + hl + n), Flags: header.IPv4FlagDontFragment,
		TTL: spTTL, Protocol: header.ProtoTCP, Src: src, Dst: r.Addr})
	tcp := header.TCP(ip[header.IPv4MinLen:])
	tcp.Encode(&header.TCPFields{SrcPort: sport, DstPort: r.Port, Seq: sl.seq, Ack: sl.ack, HeaderLength: hl,
		Flags: header.TCPFlagAck | header.TCPFlagPsh, Window: sl.win})
	if sl.ts {
		o := tcp[header.TCPMinLen:]
		o[0], o[1], o[2], o[3] = header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionTimestamps, tcpOptTimestampsLen
		binary.BigEndian.PutUint32(o[4:], sl.tsval)
		binary.BigEndian.PutUint32(o[8:], sl.tsecr)
	}
	tcp.SetChecksum(tcp.CalculateChecksum(src, r.Addr))
	r.Stats.InPkts.Add(1)
	r.Stats.InBytes.Add(uint64(len(ip)))
	return b
}

// proxyPending handles a segment p of e while its header is not
// acknowledged, after its numbers were translated: a real's segment that
// acknowledges the header ends the wait, one that does not gets its
// acknowledgment (and SACK edges) raised to the client's ISN+1, and may
// call for the header again; a client segment updates what the header is
// sent with and sends it again if RTO has passed.
func (w *Worker) proxyPending(t *Table, e *conntrack.Entry4, r *Real, reply bool, p *parsed, now int64) {
	k := e.ForwardKey()
	sl := w.pp.find(&k)
	if sl == nil {
		e.Flags &^= flagProxyPending
		return
	}
	tcp := header.TCP(header.IPv4(p.frame[header.EthernetLen:]).Payload())
	switch w.pendingSegment(&sl.ppSeg, tcp, w.shard.Aux(e)[auxClient], reply, p.flags, p.off.Flags&header.OffloadNeedsCsum != 0, now) {
	case ppDone:
		w.pp.free(sl)
		e.Flags &^= flagProxyPending
	case ppResend:
		w.proxyResend(t, e, r, sl, now)
	}
}

// What pendingSegment asks of its caller.
const (
	ppWait   = iota // nothing: the header still waits for its acknowledgment
	ppDone          // the header's wait is over (acknowledged, or reset): free the slot
	ppResend        // send the header again
)

// pendingSegment is proxyPending's work on the segment tcp (flags, partial
// checksum) of a connection whose client offset is in, for IPv4 and IPv6
// connections alike: it updates sl from a client segment, translates a
// real's acknowledgment and SACK edges that do not cover the header, and
// says what the caller must do.
func (w *Worker) pendingSegment(sl *ppSeg, tcp header.TCP, in uint32, reply bool, flags uint8, partial bool, now int64) int {
	if !reply && flags&header.TCPFlagRst != 0 {
		return ppDone
	}
	if !reply {
		if flags&header.TCPFlagAck != 0 {
			sl.ack = tcp.AckNumber()
		}
		sl.win = tcp.WindowSize()
		if off, ok := findTimestamps(tcp); ok && sl.ts {
			sl.tsval, sl.tsecr = tcp.Word32(off+2), tcp.Word32(off+6)
		}
		if now-sl.sent >= sl.rto {
			return ppResend
		}
		return ppWait
	}
	// The client's ISN+1, in the client's numbers: where the real's
	// acknowledgment of the header ends, translated.
	floor := sl.seq + uint32(sl.n) - in
	// SACK edges first: the acknowledgment that covers the header may
	// carry a D-SACK of a header sent twice.
	sack := tcp.DataOffset() > header.TCPMinLen && clampSACK(tcp, floor, partial)
	if flags&header.TCPFlagAck != 0 {
		if a := tcp.AckNumber(); int32(a-floor) >= 0 {
			w.C.ProxyAcked.Add(1)
			return ppDone
		}
		setAck(tcp, floor, partial)
	}
	switch {
	case flags&header.TCPFlagRst != 0:
		// The connection ends: nothing to send again.
		return ppDone
	case flags&header.TCPFlagSyn != 0, sack && !sl.fast:
		// The real sent its SYN-ACK again (it never had the header's
		// acknowledgment of it), or holds client data but not the header.
		sl.fast = sack
		return ppResend
	}
	return ppWait
}

// setAck sets tcp's acknowledgment number, updating the checksum unless it
// is partial.
func setAck(tcp header.TCP, v uint32, partial bool) {
	if partial {
		tcp.SetAckNumber(v)
		return
	}
	tcp.SetAckNumberWithChecksumUpdate(v)
}

// clampSACK raises every SACK edge of tcp below floor to floor and reports
// whether tcp has a SACK option. Malformed options are left alone.
func clampSACK(tcp header.TCP, floor uint32, partial bool) bool {
	end := tcp.DataOffset()
	if !walkOptions(tcp, end, nil) {
		return false
	}
	found := false
	for o := header.TCPMinLen; o < end; {
		switch tcp[o] {
		case header.TCPOptionEOL:
			return found
		case header.TCPOptionNOP:
			o++
			continue
		}
		n := int(tcp[o+1])
		if tcp[o] == header.TCPOptionSACK {
			found = true
			for b := o + tcpOptSACKBase; b < o+n; b += 4 {
				if int32(tcp.Word32(b)-floor) < 0 {
					setWord(tcp, b, floor, partial)
				}
			}
		}
		o += n
	}
	return found
}

// proxyResend sends e's header again, unless it went ppMaxTries times
// already: the expiry walk then gives up on the connection.
func (w *Worker) proxyResend(t *Table, e *conntrack.Entry4, r *Real, sl *ppSlot, now int64) {
	if sl.tries >= ppMaxTries {
		return
	}
	sl.rto *= 2
	w.C.ProxyResent.Add(1)
	w.proxySend(t, e, r, sl, now)
}

// proxyTimers sends again, straight to the link, the headers whose RTO has
// passed: the expiry walk's part, for connections whose client is silent.
// A connection whose header went ppMaxTries times unacknowledged is
// dropped.
func (w *Worker) proxyTimers(now int64) {
	w.proxyTimers6(now) // proxyproto6.go
	if w.pp.used == 0 || w.cur == nil {
		return
	}
	for i := range w.pp.slots {
		sl := &w.pp.slots[i]
		if sl.key.Proto == 0 || now-sl.sent < sl.rto {
			continue
		}
		e, _ := w.shard.Lookup(&sl.key)
		var r *Real
		if e != nil {
			r = w.cur.real(e.RealID)
		}
		switch {
		case e == nil || e.Flags&flagProxyPending == 0:
			w.pp.free(sl) // cannot happen: release frees a connection's slot
			continue
		case sl.tries >= ppMaxTries || r == nil || !r.Ready:
			w.C.ProxyGaveUp.Add(1)
			w.drop(e) // and release frees the slot
			continue
		}
		w.proxyResend(w.cur, e, r, sl, now)
		for _, f := range w.extra {
			w.pp.out[0] = f
			sent, _ := w.link.Write(w.pp.out[:], nil)
			w.C.TxFrames.Add(uint64(sent))
			if sent == 0 {
				w.C.Verdicts[VerdictTxError].Add(1)
			}
			w.captureOwn(w.cur, e, f)
		}
		w.pp.out[0] = nil
		w.resetSpare()
	}
}

// translate is handle's translation of the numbers of p, a segment of e,
// a connection not SYN-proxied: the client segment that calls for a PROXY
// header first sends it (proxyOpen), then the offsets apply (fullnat.go),
// then the header's wait (proxyPending). It reports false if p must be
// dropped.
func (w *Worker) translate(t *Table, e *conntrack.Entry4, r *Real, reply bool, p *parsed, now int64) bool {
	if !reply && wantsProxyHeader(e, r, p) && !w.proxyOpen(t, e, r, p, now) {
		return false
	}
	if e.Flags&flagSeqXlate != 0 {
		w.fullnatXlate(e, reply, p)
	}
	if e.Flags&flagProxyPending != 0 {
		w.proxyPending(t, e, r, reply, p, now)
	}
	return true
}
