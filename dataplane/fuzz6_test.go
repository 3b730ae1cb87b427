package dataplane

import (
	"testing"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/dataplane/header"
)

// FuzzProcess6 feeds arbitrary frames to a dual-stack worker with an IPv6
// service in DR, TUN, NAT or FULLNAT (fwd 1 to 4, as Forward; a UDP and a
// TCP connection from the client's port cport are open first in FULLNAT,
// so replies and ICMPv6 errors find one) or a SYN-proxied FULLNAT one
// (fwd 5), with arbitrary offload metadata. Invariants: no panic and no
// invalid verdict (0, held, only for a later fragment whose first is
// unknown); a forwarded IPv6 frame is as long as its input without
// padding (in TUN, its inner packet is, and the outer header says so; a
// segment the SYN proxy builds may be longer than its input), parses
// again, keeps its partial-checksum offsets inside it, and, when its
// transport checksum was complete and valid on the way in, has a valid one
// on the way out; a Packet Too Big has a valid checksum and fits 1280
// bytes; a relayed ICMPv6 error has a valid checksum.
// Run it with go test -fuzz=FuzzProcess6 -fuzztime=20s ./dataplane.
func FuzzProcess6(f *testing.F) {
	syn := client6(header.ProtoTCP)
	syn.syn = true
	ext := syn
	ext.hbh, ext.dstOpts = true, true
	part := syn.bytes(f)
	f.Add(syn.bytes(f), uint8(ForwardNAT), uint8(0), uint16(0), uint16(0))                                                                 // a SYN to the VIP
	f.Add(client6(header.ProtoUDP).bytes(f), uint8(ForwardDR), uint8(0), uint16(0), uint16(0))                                             // a datagram
	f.Add(ext.bytes(f), uint8(ForwardNAT), uint8(0), uint16(0), uint16(0))                                                                 // extension headers
	f.Add(withHBH6(f, fragments6(f, bigClient6(header.ProtoUDP).bytes(f), 1400, 3)[0]), uint8(ForwardNAT), uint8(0), uint16(0), uint16(0)) // a first fragment behind hop-by-hop
	f.Add(withDOpt6(f, syn.bytes(f)), uint8(ForwardFullNAT), uint8(0), uint16(0), uint16(0))                                               // a SYN behind destination options
	f.Add(reply6(header.ProtoUDP).bytes(f), uint8(ForwardNAT), uint8(0), uint16(0), uint16(0))                                             // a NAT reply
	f.Add(part, uint8(ForwardNAT), header.OffloadNeedsCsum, uint16(header.EthernetLen+header.IPv6MinLen), uint16(16))                      // partial checksum
	f.Add(part[:50], uint8(ForwardDR), uint8(0), uint16(0), uint16(0))                                                                     // truncated IPv6 header
	f.Add(append(syn.bytes(f), 0, 0, 0), uint8(ForwardNAT), header.OffloadNeedsCsum, uint16(0xffff), uint16(0xffff))                       // padding, wild offsets
	f.Add(syn.bytes(f), uint8(ForwardTUN), uint8(0), uint16(0), uint16(0))                                                                 // a SYN through the tunnel
	f.Add(part, uint8(ForwardTUN), header.OffloadNeedsCsum, uint16(header.EthernetLen+header.IPv6MinLen), uint16(16))                      // partial checksum, finished
	bigSyn := syn
	bigSyn.payload = make([]byte, 1500-header.IPv6MinLen-header.TCPMinLen)
	f.Add(bigSyn.bytes(f), uint8(ForwardTUN), uint8(0), uint16(0), uint16(0)) // too big for the tunnel
	fnReply := reply6(header.ProtoUDP)
	fnReply.dst, fnReply.dport = ipLocal6, portLo
	f.Add(fnReply.bytes(f), uint8(ForwardFullNAT), uint8(0), uint16(0), uint16(0)) // a FULLNAT reply
	asReceived := client6(header.ProtoUDP)
	asReceived.src, asReceived.sport, asReceived.dst, asReceived.dport = ipLocal6, portLo, ipRS16, natPort
	f.Add(icmp6Err(f, macRS1, macDir, ipRS16, ipLocal6, header.ICMPv6DestUnreachable, 4, asReceived.bytes(f), 0),
		uint8(ForwardFullNAT), uint8(0), uint16(0), uint16(0)) // a FULLNAT real's port unreachable
	vipReply := reply6(header.ProtoTCP)
	vipReply.src, vipReply.sport = ipVIP6, vport
	f.Add(icmp6Err(f, macRouter, macDir, ipRouter6, ipVIP6, header.ICMPv6PacketTooBig, 0, vipReply.bytes(f), 60),
		uint8(ForwardFullNAT), uint8(0), uint16(0), uint16(0)) // packet too big about a reply
	// Fragments (fragment6.go): a first one, which notes its decision in
	// the worker's fragment table, and a later one of the same datagram,
	// forwarded when an earlier input was its first.
	frags := fragments6(f, bigClient6(header.ProtoUDP).bytes(f), 1500, 42)
	f.Add(frags[0], uint8(ForwardNAT), uint8(0), uint16(0), uint16(0))                 // first fragment
	f.Add(frags[1], uint8(ForwardNAT), uint8(0), uint16(0), uint16(0))                 // later fragment
	f.Add(frags[2], uint8(ForwardTUN), uint8(0), uint16(0), uint16(0))                 // last fragment through the tunnel
	f.Add(frags[0], uint8(ForwardFullNAT), uint8(0), uint16(0), uint16(0))             // first fragment, FULLNAT
	f.Add(syn.bytes(f), uint8(5), uint8(0), uint16(0), uint16(0))                      // a SYN to the SYN proxy
	f.Add(client6(header.ProtoTCP).bytes(f), uint8(5), uint8(0), uint16(0), uint16(0)) // an ACK with no cookie
	// One worker and table per method and protocol, made once: a worker's
	// batch buffers are megabytes. Each input gets a fresh IPv6 shard.
	type world struct {
		w   *Worker
		tbl *Table
	}
	worlds := map[[2]uint8]world{}
	for _, fw := range []Forward{ForwardDR, ForwardNAT, ForwardTUN, ForwardFullNAT} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			tbl := testTable6(fw, proto)
			if fw == ForwardFullNAT {
				tbl = fnTable6(proto)
			}
			worlds[[2]uint8{uint8(fw), proto}] = world{worker6(tbl, 64), tbl}
		}
	}
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		tbl := fnTable6(proto)
		for _, s := range tbl.Services6 {
			s.SynProxy = proto == header.ProtoTCP
		}
		worlds[[2]uint8{5, proto}] = world{worker6(tbl, 64), tbl}
	}
	open := syn.bytes(f) // the connection a FULLNAT world starts with
	openUDP := client6(header.ProtoUDP).bytes(f)
	buf := make([]byte, Headroom+MaxFrame)
	f.Fuzz(func(t *testing.T, in []byte, fwd, flags uint8, csumStart, csumOffset uint16) {
		if len(in) > MaxFrame {
			return
		}
		fw := Forward((fwd+3)%4 + 1) // 1 DR, 2 TUN, 3 NAT, 4 (and 0) FULLNAT
		if fwd == 5 {
			fw = 5 // the SYN proxy's world
		}
		off := header.Offload{Flags: flags, CsumStart: csumStart, CsumOffset: csumOffset}
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			wd := worlds[[2]uint8{uint8(fw), proto}]
			w, tbl := wd.w, wd.tbl
			w.shard6.Store(conntrack.NewShard[[16]byte](64))
			if fw == ForwardFullNAT {
				first := openUDP
				if proto == header.ProtoTCP {
					first = open
				}
				copy(buf[Headroom:], first)
				if _, v := w.process(tbl, buf, len(first), make([]byte, 128), 1); v != VerdictForward {
					t.Fatalf("opening the FULLNAT connection: verdict %v", v)
				}
			}
			w.fragWaiting = w.fragWaiting[:0]
			validIn := false
			var qin parsed6
			pin := parse6(in, &qin)
			if pin == 0 && qin.frag == 0 && off.Flags&header.OffloadNeedsCsum == 0 {
				validIn = transportValid6(&qin) // a fragment's checksum covers the whole datagram
			}
			for i := 0; i < 2; i++ { // the second pass hits the connection the first made
				copy(buf[Headroom:], in)
				out, v := w.processOffload(tbl, buf, len(in), off, make([]byte, 128), 1)
				if v >= numVerdicts || v == verdictHeld && (pin != 0 || qin.frag != fragLater || out != nil) {
					t.Fatalf("invalid verdict %d (parse %v, fragment kind %d)", v, pin, qin.frag)
				}
				if out == nil || header.Ethernet(out).Type() != header.EtherTypeIPv6 {
					continue
				}
				if fw == ForwardTUN {
					w.resetSpare()
					if out = tunnelled6(t, out, v); out == nil {
						continue
					}
					if w.txOff != (header.Offload{}) {
						t.Fatalf("TUN frame sent with offload %+v", w.txOff)
					}
				}
				var q parsed6
				pv := parse6(out, &q)
				if pv == verdictICMPv6 {
					ip := header.IPv6(out[header.EthernetLen:])
					if !header.ICMPv6(out[q.l4:]).IsChecksumValid(ip.Source(), ip.Destination()) || len(out) > len(in) {
						t.Fatalf("verdict %v: relayed ICMPv6 error with a wrong checksum or grown", v)
					}
					continue
				}
				if pv != 0 || len(out) != len(q.frame) || (len(out) > len(in) && v != VerdictSynProxy) {
					t.Fatalf("verdict %v: output of %d bytes (from %d) does not parse again: %v", v, len(out), len(in), pv)
				}
				if o := w.txOff; o.Flags&header.OffloadNeedsCsum != 0 && int(o.CsumStart)+int(o.CsumOffset)+2 > len(out) {
					t.Fatalf("partial checksum at %d+%d outside a %d-byte frame", o.CsumStart, o.CsumOffset, len(out))
				}
				if validIn && !transportValid6(&q) {
					t.Fatalf("verdict %v: a valid transport checksum became invalid", v)
				}
			}
		}
	})
}

// tunnelled6 checks a frame the TUN worker sent: a Packet Too Big (nil
// returned) or IPv6 in IPv6 whose inner packet it returns as a frame.
func tunnelled6(t *testing.T, out []byte, v Verdict) []byte {
	ip := header.IPv6(out[header.EthernetLen:])
	if v == VerdictTooBig {
		m := header.ICMPv6(ip.Payload())
		if len(ip) > header.IPv6MinMTU || ip.NextHeader() != header.ProtoICMPv6 || m.Type() != header.ICMPv6PacketTooBig ||
			!m.IsChecksumValid(ip.Source(), ip.Destination()) {
			t.Fatalf("bad Packet Too Big of %d bytes", len(ip))
		}
		return nil
	}
	if !ip.IsValid(len(ip)) || ip.NextHeader() != header.ProtoIPv6 || len(ip) != header.IPv6MinLen+int(ip.PayloadLength()) {
		t.Fatalf("verdict %v: bad outer header", v)
	}
	inner := append([]byte(nil), out[:header.EthernetLen]...)
	return append(inner, ip.Payload()...)
}

// transportValid6 reports whether the TCP or UDP checksum of a parsed IPv6
// frame is valid.
func transportValid6(q *parsed6) bool {
	ip := header.IPv6(q.frame[header.EthernetLen:])
	l4 := q.frame[q.l4:]
	if q.key.Proto == header.ProtoTCP {
		return header.TCP(l4).IsChecksumValid6(ip.Source(), ip.Destination())
	}
	return header.UDP(l4).IsChecksumValid6(ip.Source(), ip.Destination())
}
