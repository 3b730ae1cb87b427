package dataplane

import "github.com/gvs-lb/gvs/dataplane/header"

// natReply translates the reply p of a NAT connection this director has no
// entry for, when Table.NATReplies names its real's one service: the
// source becomes that service's VIP:port, and the frame goes to the
// default gateway (the client's next hop is unknown without an entry).
// No entry is made: the connection is the director's that scheduled it,
// which sync tells the others of for its client's packets; its replies
// need nothing but the service's address, as the real's kernel chose the
// route back, not the director.
//
// Behind ECMP a real's replies come back through the director that holds
// its route (a VRRP gateway address, say), which rarely scheduled the
// connection and, for a connection's first reply (the SYN-ACK, a round
// trip after the SYN), never knows of it yet: sync reports leave about a
// millisecond later. Without this the real's SYN-ACK would be dropped and
// every connection would wait for its retransmission, a second later.
func (w *Worker) natReply(t *Table, frame []byte, p *parsed) ([]byte, bool) {
	k := &p.key
	if k.Dst == t.Addr {
		return nil, false // the answer to the director's own health check: the kernel's
	}
	m, ok := t.NATReplies[NATReplyKey{Proto: k.Proto, Addr: k.Src, Port: k.SrcPort}]
	if !ok {
		return nil, false
	}
	r := t.real(m.RealID)
	if r == nil || r.Forward != ForwardNAT || r.Addr != k.Src || r.Port != k.SrcPort || t.GatewayMAC == ([6]byte{}) {
		return nil, false
	}
	ip := header.IPv4(frame[header.EthernetLen:])
	rewriteSrc(ip, m.VIP, m.Port, p.off.Flags&header.OffloadNeedsCsum != 0)
	w.passOffload(frame, &p.off)
	eth := header.Ethernet(frame)
	eth.SetDestination(t.GatewayMAC)
	eth.SetSource(t.MAC)
	r.Stats.OutPkts.Add(1)
	r.Stats.OutBytes.Add(uint64(len(ip)))
	w.C.NATReplies.Add(1)
	return frame, true
}
