package dataplane

import (
	"encoding/binary"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// FULLNAT against TIME_WAIT. FULLNAT comes back to a (local address, local
// port) → real tuple within seconds (at 11,000 new connections a second
// one local address's 31,744 ports come round in under 3 s), while the
// real keeps a TIME_WAIT socket for the tuple for 60 s. Linux takes a new
// SYN on a TIME_WAIT tuple only if its sequence number is after the old
// connection's, or its timestamp newer, and PAWS refuses one whose TSval
// is older than the TIME_WAIT's ts_recent (tcp_timewait_state_process).
// The client's ISN and timestamps, chosen for the client's own tuple and,
// on Linux, with a random timestamp offset per connection, are neither:
// about half the SYNs that meet a TIME_WAIT socket were refused, and the
// connection waited a second for the client's SYN retransmission.
//
// So the director gives every FULLNAT TCP connection, at its SYN, numbers
// that grow per real-side tuple, from the same keyed clocks as the SYN
// proxy's (proxyISN):
//
//   - the SYN to the real carries the director's ISN for the tuple the
//     real sees, i = proxyISN; in = i - client's ISN, and for the
//     connection's life the client's sequence numbers get +in and the
//     real's acknowledgment numbers (and the edges of its SACK blocks,
//     which acknowledge the client's data) get -in;
//   - a timestamp option's TSval from the client gets +tsoff, where
//     tsoff = tsClock(tuple) - the client's TSval at the SYN, and the
//     real's TSecr (its echo of that TSval) gets -tsoff. tsClock is a 1 ms
//     clock (RFC 7323 asks 1 ms to 1 s a tick, and a Linux client ticks
//     every 1 ms: no client's clock outruns it) plus a keyed hash of the
//     tuple, so a new SYN's TSval is at least the last one the real saw on
//     the tuple.
//
// The real's own sequence numbers and timestamps reach the client
// unchanged (its SYN-ACK answers the director's SYN and the client's
// alike), so nothing else is translated: the client's acknowledgments and
// SACK blocks and its TSecr pass as they are. Window scaling, SACK and
// timestamps stay as the two ends negotiate them.
//
// The offsets live in the connection's two Aux words (auxClient: in;
// auxTS: tsoff), flagged flagSeqXlate. A SYN-proxied FULLNAT connection
// uses both words for its two sequence offsets instead; its handshake
// negotiates no timestamps or SACK, so it needs no third word, and the
// Aux words stay 8 bytes a connection.
//
// Options are walked within the header's data offset, each kind checked
// against the length Linux accepts for it; a segment with a malformed
// option list (a length below 2 or past the header, a timestamp option
// not 10 bytes long, a SACK option not 2+8n) gets its sequence and
// acknowledgment numbers translated but its options left alone, and is
// counted (WorkerCounters.BadTCPOptions). A partial checksum's field is
// left for the kernel, which sums the header over the new values.

// flagSeqXlate marks a FULLNAT TCP connection whose sequence numbers and
// timestamps the director translates, or a NAT one whose real got a PROXY
// header (proxyproto.go; tsoff 0): its Aux words are auxClient and auxTS
// (bits 0 and 1 are sync.go's, 2 and 3 the SYN proxy's, 5 and 6 the PROXY
// protocol's).
const flagSeqXlate = 1 << 4

// auxTS is the Aux word of a flagSeqXlate connection that holds tsoff (the
// SYN proxy's auxReal, which such a connection does not use).
const auxTS = auxReal

// tsTick is the period of the director's timestamp clock: 1 ms.
const tsTick = 1_000_000 // ns

// Option lengths Linux accepts (tcp_parse_options).
const (
	tcpOptTimestampsLen = 10 // kind, length, TSval, TSecr
	tcpOptSACKBase      = 2  // kind, length
	tcpOptSACKBlock     = 8  // left and right edges
)

// realTupleHash is the keyed hash of the tuple src:sport → dst:dport a real
// sees: its low 32 bits make the ISN of proxyISN, its high 32 bits the
// timestamp clock's offset.
func realTupleHash(src [4]byte, sport uint16, dst [4]byte, dport uint16) uint64 {
	m0 := uint64(binary.BigEndian.Uint32(src[:]))<<32 | uint64(binary.BigEndian.Uint32(dst[:]))
	m1 := uint64(sport)<<16 | uint64(dport)
	return sipHash24(&isnKey, m0, m1, isnDomain)
}

// fullnatClocks returns the ISN and the timestamp the director gives the
// tuple src:sport → dst:dport at monotonic time now.
func fullnatClocks(now int64, src [4]byte, sport uint16, dst [4]byte, dport uint16) (isn, ts uint32) {
	h := realTupleHash(src, sport, dst, dport)
	t := isnTime(now)
	return uint32(t/isnTick) + uint32(h), uint32(t/tsTick) + uint32(h>>32)
}

// fullnatOpen sets up the translation of the new FULLNAT TCP connection e,
// opened by the client SYN p, towards its real r: in from the director's
// ISN, tsoff from its timestamp clock if the SYN carries timestamps.
func (w *Worker) fullnatOpen(e *conntrack.Entry4, r *Real, p *parsed, now int64) {
	tcp := header.TCP(header.IPv4(p.frame[header.EthernetLen:]).Payload())
	isn, ts := fullnatClocks(now, e.Local, e.LPort, r.Addr, r.Port)
	seedXlate(w.shard.Aux(e), tcp, isn, ts)
	e.Flags |= flagSeqXlate
}

// seedXlate sets the offsets of a FULLNAT TCP connection opened by the
// client SYN tcp, given the director's ISN and timestamp for the real-side
// tuple: in from the ISN, tsoff from the timestamp if the SYN carries
// timestamps. IPv4 and IPv6 connections share it.
func seedXlate(aux *conntrack.Aux, tcp header.TCP, isn, ts uint32) {
	aux[auxClient] = isn - tcp.SequenceNumber()
	aux[auxTS] = 0
	if off, ok := findTimestamps(tcp); ok {
		aux[auxTS] = ts - tcp.Word32(off+2)
	}
}

// findTimestamps returns the offset in tcp of its timestamp option, and
// false if it has none or its options are malformed.
func findTimestamps(tcp header.TCP) (int, bool) {
	ts := -1
	if !walkOptions(tcp, tcp.DataOffset(), &ts) || ts < 0 {
		return 0, false
	}
	return ts, true
}

// walkOptions checks the options of tcp, up to its data offset end: it
// reports false for a malformed list. If ts is not nil it gets the offset
// of the (last, as Linux reads it) timestamp option. The walk takes at
// most 40 steps (a 40-byte option space).
func walkOptions(tcp header.TCP, end int, ts *int) bool {
	for o := header.TCPMinLen; o < end; {
		switch tcp[o] {
		case header.TCPOptionEOL:
			return true
		case header.TCPOptionNOP:
			o++
			continue
		}
		if o+2 > end {
			return false
		}
		n := int(tcp[o+1])
		if n < 2 || o+n > end {
			return false
		}
		switch tcp[o] {
		case header.TCPOptionTimestamps:
			if n != tcpOptTimestampsLen {
				return false
			}
			if ts != nil {
				*ts = o
			}
		case header.TCPOptionSACK:
			if n < tcpOptSACKBase+tcpOptSACKBlock || (n-tcpOptSACKBase)%tcpOptSACKBlock != 0 {
				return false
			}
		}
		o += n
	}
	return true
}

// fullnatXlate translates the segment p of the flagSeqXlate connection e:
// a client segment (reply false) on its way to the real, or a real's on
// its way to the client. It runs before the addresses are rewritten.
func (w *Worker) fullnatXlate(e *conntrack.Entry4, reply bool, p *parsed) {
	tcp := header.TCP(header.IPv4(p.frame[header.EthernetLen:]).Payload())
	w.xlateSegment(tcp, w.shard.Aux(e), reply, p.flags, p.off.Flags&header.OffloadNeedsCsum != 0)
}

// xlateSegment is fullnatXlate on the TCP header of the segment, with the
// connection's offsets in aux and its flags: IPv4 and IPv6 connections
// share it.
func (w *Worker) xlateSegment(tcp header.TCP, aux *conntrack.Aux, reply bool, flags uint8, partial bool) {
	in, tsoff := aux[auxClient], aux[auxTS]
	if !reply {
		translateSeq(tcp, in, 0, false, partial)
		if tsoff != 0 && tcp.DataOffset() > header.TCPMinLen && !xlateOptions(tcp, tsoff, 0, 0, partial) {
			w.C.BadTCPOptions.Add(1)
		}
		return
	}
	translateSeq(tcp, 0, -in, flags&header.TCPFlagAck != 0, partial)
	if tcp.DataOffset() > header.TCPMinLen && !xlateOptions(tcp, 0, -tsoff, -in, partial) {
		w.C.BadTCPOptions.Add(1)
	}
}

// xlateOptions adds valD to the TSval and ecrD to the TSecr of tcp's
// timestamp options (an echo of 0, which says there is none, stays 0),
// and sackD to both edges of each of its SACK blocks. It reports false,
// and changes nothing, if the options are malformed: the first pass
// checks, the second writes.
func xlateOptions(tcp header.TCP, valD, ecrD, sackD uint32, partial bool) bool {
	end := tcp.DataOffset()
	if !walkOptions(tcp, end, nil) {
		return false
	}
	for o := header.TCPMinLen; o < end; {
		switch tcp[o] {
		case header.TCPOptionEOL:
			return true
		case header.TCPOptionNOP:
			o++
			continue
		}
		n := int(tcp[o+1])
		switch tcp[o] {
		case header.TCPOptionTimestamps:
			if valD != 0 {
				setWord(tcp, o+2, tcp.Word32(o+2)+valD, partial)
			}
			if ecr := tcp.Word32(o + 6); ecrD != 0 && ecr != 0 {
				setWord(tcp, o+6, ecr+ecrD, partial)
			}
		case header.TCPOptionSACK:
			if sackD != 0 {
				for b := o + tcpOptSACKBase; b < o+n; b += 4 {
					setWord(tcp, b, tcp.Word32(b)+sackD, partial)
				}
			}
		}
		o += n
	}
	return true
}

// setWord sets the 32-bit word at offset off of tcp, updating the checksum
// unless it is partial (the kernel sums the header over the new value).
func setWord(tcp header.TCP, off int, v uint32, partial bool) {
	if partial {
		tcp.SetWord32(off, v)
		return
	}
	tcp.SetWord32WithChecksumUpdate(off, v)
}

// seqOffsets returns the sequence offsets of a connection whose numbers
// the director translates (SYN-proxied or flagSeqXlate), in IPVS's terms:
// in is added to the client's sequence numbers, out to the real's; ok is
// false for other connections and for a SYN-proxied one whose real has not
// answered.
func (w *Worker) seqOffsets(e *conntrack.Entry4) (in, out uint32, ok bool) {
	switch {
	case e.Flags&flagSeqXlate != 0:
		return w.shard.Aux(e)[auxClient], 0, true
	case e.Flags&(flagSynProxy|flagSynPending) == flagSynProxy:
		aux := w.shard.Aux(e)
		return aux[auxClient], aux[auxReal], true
	}
	return 0, 0, false
}
