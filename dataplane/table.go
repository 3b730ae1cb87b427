package dataplane

import (
	"time"

	"github.com/gvs-lb/gvs/conntrack"
	"github.com/gvs-lb/gvs/schedule"
)

// Forward is an LVS forwarding method. The zero value is invalid.
type Forward uint8

// Forwarding methods, as ipvsadm's -g, -i, -m and DPVS's -b.
const (
	ForwardDR Forward = iota + 1
	ForwardTUN
	ForwardNAT
	ForwardFullNAT
)

var forwardNames = [...]string{"invalid", "dr", "tun", "nat", "fullnat"}

func (f Forward) String() string {
	if int(f) < len(forwardNames) {
		return forwardNames[f]
	}
	return "invalid"
}

// Real is one real server of a service as the dataplane needs it. The
// control plane gives each (service, real) a stable ID that indexes
// Table.Reals and is kept across republishes, so connection entries that
// name it stay valid over a reload. A real of an IPv6 service has its
// address in Addr6 (and Addr zero); it is reached only through IPv6
// connections, so each path reads the one address of its family.
type Real struct {
	ID      uint32
	Addr    [4]byte
	Port    uint16
	Forward Forward
	// MAC is the next hop towards the real server: its own MAC when it is
	// on-link, else the gateway's. A real whose MAC is unknown has Ready
	// false and gets no packets.
	MAC   [6]byte
	Ready bool
	// Proxy is the PROXY protocol header the real gets at the start of
	// each TCP connection (NAT and FULLNAT only; proxyproto.go), 0 = none.
	Proxy    ProxyVersion
	Counters *schedule.Counters // live ActiveConn/InActConn, shared by all workers
	Stats    *RealStats         // per-real traffic counters, shared by all workers
	// Addr6 is the address of a real of an IPv6 service. It comes last
	// so that the fields the IPv4 path reads keep their offsets.
	Addr6 [16]byte
}

// Service is one virtual service (VIP:port and protocol). An IPv6 service
// (in Table.Services6) has its VIP in VIP6 and VIP zero.
type Service struct {
	Proto uint8
	VIP   [4]byte
	Port  uint16
	// Reals and Dests are parallel: Dests[i] is what the scheduler sees of
	// the real with ID Reals[i].
	Reals []uint32
	Dests []schedule.Dest
	Sched schedule.Scheduler
	// Persistence: > 0 keeps a client (its address masked to PersistBits,
	// 1..32) on one real for this long after its last connection.
	Persist     time.Duration
	PersistBits uint8
	// OPS is one-packet scheduling: every datagram is scheduled on its
	// own and no connection entry is kept (UDP, DR and TUN reals only).
	OPS bool
	// SynProxy answers the service's client SYNs with SYN cookies and
	// opens a connection only for a client that completes the handshake
	// (synproxy.go). TCP, NAT and FULLNAT reals only: the director must
	// see the real's SYN-ACK and translate every segment after it.
	SynProxy bool
	// VIP6 is the VIP of an IPv6 service; last, like Real.Addr6.
	VIP6 [16]byte
}

// hasReal reports whether id is one of the service's reals.
func (s *Service) hasReal(id uint32) bool {
	for _, r := range s.Reals {
		if r == id {
			return true
		}
	}
	return false
}

// ServiceKey identifies a service on the wire.
type ServiceKey struct {
	Proto uint8
	VIP   [4]byte
	Port  uint16
}

// ServiceKey6 identifies an IPv6 service on the wire. It is a type of its
// own so that the IPv4 lookup keeps its small key.
type ServiceKey6 struct {
	Proto uint8
	VIP   [16]byte
	Port  uint16
}

// Table is the immutable configuration snapshot the workers read. The
// control plane builds a new one for every change and publishes it with
// one atomic store; workers never modify it.
type Table struct {
	// The director's own link: MAC for the source of every frame we send,
	// IPv4 address for the outer source of IPIP, MTU for the TUN size check.
	MAC  [6]byte
	Addr [4]byte
	MTU  int
	// Addr6 is the director's IPv6 address on the link, the outer source
	// of IPv6-in-IPv6; zero unless an IPv6 service has TUN reals.
	Addr6 [16]byte
	// GatewayMAC is the MAC of the director's default gateway, zero if
	// unknown: where a NAT or FULLNAT reply goes while its connection has
	// not seen a client packet yet (one installed by connection sync).
	GatewayMAC [6]byte

	Services map[ServiceKey]*Service
	// Services6 are the IPv6 services (DR, TUN, NAT and FULLNAT reals). A table
	// with any makes Dataplane.Publish give every worker its IPv6
	// connection shard.
	Services6 map[ServiceKey6]*Service
	// Reals is indexed by Real.ID; a removed real leaves a zero Real
	// (Forward 0) so that its old connections are dropped, not misrouted.
	Reals []Real

	// FULLNAT local addresses and port range. Worker w of n uses the ports
	// p with p%n == w so that replies can be steered to it by port.
	Locals         [][4]byte
	PortLo, PortHi uint16
	// Locals6 are the local addresses of IPv6 FULLNAT connections, on
	// the same port range and per-worker slices as Locals.
	Locals6 [][16]byte

	Timeouts conntrack.Timeouts

	// NATReplies, when not nil, lets this director translate the reply of
	// a NAT connection it has no entry for (natreply.go): several
	// directors serve the VIPs at once (BGP and ECMP), and a real answers
	// through whichever holds its route back, often before connection
	// sync has told it of a connection another director opened. It maps
	// a NAT real's protocol, address and port to the one service whose
	// VIP:port the reply leaves with; a real of several services, or of
	// one that translates sequence numbers (synproxy, PROXY protocol),
	// has no mapping.
	NATReplies map[NATReplyKey]NATReply
}

// NATReplyKey is a NAT real as its replies name it: protocol, source
// address and source port.
type NATReplyKey struct {
	Proto uint8
	Addr  [4]byte
	Port  uint16
}

// NATReply is what a reply of NATReplyKey's real leaves as: from VIP:Port,
// counted on the real RealID.
type NATReply struct {
	VIP    [4]byte
	Port   uint16
	RealID uint32
}

func (t *Table) real(id uint32) *Real {
	if int(id) >= len(t.Reals) {
		return nil
	}
	r := &t.Reals[id]
	if r.Forward == 0 {
		return nil
	}
	return r
}
