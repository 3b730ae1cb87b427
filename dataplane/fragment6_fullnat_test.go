package dataplane

import (
	"testing"

	"github.com/gvs-lb/gvs/dataplane/header"
)

// TestGoldenFragmentsFullNAT6: a UDP datagram in three fragments through
// IPv6 FULLNAT leaves from the local address to the real, the first
// fragment's port and checksum rewritten and the later fragments'
// addresses; the real's reply in fragments comes back from the VIP to the
// client. Each output is the golden fragment of the rewritten datagram.
func TestGoldenFragmentsFullNAT6(t *testing.T) {
	tbl := fnTable6(header.ProtoUDP)
	w := worker6(tbl, 1024)
	in := bigClient6(header.ProtoUDP)
	ins := fragments6(t, in.bytes(t), 1500, 0xf00d)
	var outs [][]byte
	for i, fr := range ins {
		out, _, v := send(t, w, tbl, fr, header.Offload{})
		if v != VerdictForward {
			t.Fatalf("fragment %d: %v", i, v)
		}
		outs = append(outs, out)
	}
	e := w.shard6.Load().DumpRange(nil, 0, w.shard6.Load().Cells())[0]
	want := in
	want.srcMAC, want.dstMAC, want.src, want.sport, want.dst, want.dport = macDir, macRS1, ipLocal6, e.LPort, ipRS16, natPort
	wants := fragments6(t, want.bytes(t), 1500, 0xf00d)
	for i := range wants {
		if string(outs[i]) != string(wants[i]) {
			t.Fatalf("fragment %d: %s", i, diff(outs[i], wants[i]))
		}
	}
	reassemble6(t, outs)

	rep := bigReply6(header.ProtoUDP)
	rep.dst, rep.dport = ipLocal6, e.LPort
	wantRep := bigReply6(header.ProtoUDP)
	wantRep.srcMAC, wantRep.dstMAC, wantRep.src, wantRep.sport = macDir, macRouter, ipVIP6, vport
	rins, rwants := fragments6(t, rep.bytes(t), 1500, 0xbeef), fragments6(t, wantRep.bytes(t), 1500, 0xbeef)
	for i, fr := range rins {
		out, _, v := send(t, w, tbl, fr, header.Offload{})
		if v != VerdictForward || string(out) != string(rwants[i]) {
			t.Fatalf("reply fragment %d: %v %s", i, v, diff(out, rwants[i]))
		}
	}
}
