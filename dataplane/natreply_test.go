package dataplane

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// natReplyTable is a NAT table for proto whose real's replies may be
// translated without an entry, as compile makes it with [bgp].
func natReplyTable(proto uint8) *Table {
	tbl := testTable(ForwardNAT, proto)
	tbl.GatewayMAC = macGateway
	tbl.NATReplies = map[NATReplyKey]NATReply{{Proto: proto, Addr: ipRS1.As4(), Port: natPort}: {VIP: ipVIP.As4(), Port: vport, RealID: 0}}
	return tbl
}

var macGateway = mustMAC("02:00:0a:14:00:01")

// TestNATReplyWithoutConnection: behind ECMP a real's reply reaches a
// director that did not schedule its connection (and has not heard of it
// from sync yet: the SYN-ACK always comes first). With Table.NATReplies it
// leaves from VIP:port to the default gateway, byte for byte as the
// director that has the entry would send it but for the next hop, with a
// complete or (passed on) partial checksum; no entry is made. Without the
// mapping, a real of several services or an unknown gateway: dropped as
// before.
func TestNATReplyWithoutConnection(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		t.Run(map[uint8]string{header.ProtoTCP: "tcp", header.ProtoUDP: "udp"}[proto], func(t *testing.T) {
			reply := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport, proto: proto,
				syn: true, ack: true, df: true, id: 9, payload: []byte("hello, client")}
			want := pkt{srcMAC: macDir, dstMAC: macGateway, src: ipVIP, dst: ipClient, sport: vport, dport: cport, proto: proto,
				syn: true, ack: true, df: true, id: 9, payload: []byte("hello, client")}.bytes(t)
			tbl := natReplyTable(proto)
			w := offloadWorker(tbl)
			got, off, v := send(t, w, tbl, reply.bytes(t), header.Offload{})
			if v != VerdictForward || off != (header.Offload{}) {
				t.Fatalf("verdict %v, offload %+v", v, off)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("sent:\n%s\nwant:\n%s\n%s", hex.Dump(got), hex.Dump(want), diff(got, want))
			}
			if w.shard.Len() != 0 || w.C.NATReplies.Load() != 1 || tbl.Reals[0].Stats.OutPkts.Load() != 1 {
				t.Fatalf("entries %d, nat_replies %d, real out packets %d; want 0, 1, 1", w.shard.Len(), w.C.NATReplies.Load(), tbl.Reals[0].Stats.OutPkts.Load())
			}

			p := reply.bytes(t)
			po := partial(t, p)
			got, off, v = send(t, w, tbl, p, po)
			if v != VerdictForward || off.Flags != header.OffloadNeedsCsum || off.CsumStart != po.CsumStart || off.CsumOffset != po.CsumOffset {
				t.Fatalf("partial checksum: verdict %v, offload %+v", v, off)
			}
			if done := finish(t, got, off); !bytes.Equal(done, want) {
				t.Fatalf("partial checksum, finished:\n%s\nwant:\n%s\n%s", hex.Dump(done), hex.Dump(want), diff(done, want))
			}

			for _, c := range []struct {
				name string
				edit func(*Table)
			}{
				{"no mapping (one director)", func(t *Table) { t.NATReplies = nil }},
				{"another port", func(t *Table) {
					t.NATReplies = map[NATReplyKey]NATReply{{Proto: proto, Addr: ipRS1.As4(), Port: natPort + 1}: {VIP: ipVIP.As4(), Port: vport}}
				}},
				{"gateway unknown", func(t *Table) { t.GatewayMAC = [6]byte{} }},
				{"real gone", func(t *Table) { t.Reals[0].Forward = 0 }},
				{"to the director itself (a health check's answer)", func(t *Table) { t.Addr = ipClient.As4() }},
			} {
				tbl := natReplyTable(proto)
				c.edit(tbl)
				if _, _, v := send(t, offloadWorker(tbl), tbl, reply.bytes(t), header.Offload{}); v != VerdictNoService {
					t.Errorf("%s: verdict %v, want no_service", c.name, v)
				}
			}
		})
	}
}

// TestZeroAllocsNATReply: the translation allocates nothing.
func TestZeroAllocsNATReply(t *testing.T) {
	tbl := natReplyTable(header.ProtoTCP)
	w := offloadWorker(tbl)
	in := pkt{srcMAC: macRS1, dstMAC: macDir, src: ipRS1, dst: ipClient, sport: natPort, dport: cport, proto: header.ProtoTCP,
		ack: true, payload: []byte("data")}.bytes(t)
	buf, icmp := make([]byte, Headroom+MaxFrame), make([]byte, 128)
	allocs := testing.AllocsPerRun(1000, func() {
		copy(buf[Headroom:], in)
		if _, v := w.process(tbl, buf, len(in), icmp, 1); v != VerdictForward {
			t.Fatalf("verdict %v", v)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per reply", allocs)
	}
}
