package afpacket

// Endpoint is one transport endpoint the dataplane owns: a VIP:port that
// clients send to, or a NAT real server's RIP:port whose replies come back
// through the director.
type Endpoint struct {
	Proto uint8 // 6 (TCP) or 17 (UDP)
	Addr  [4]byte
	Port  uint16
}

// LocalRange is a FULLNAT local address and the source ports the director
// uses on it, for TCP and UDP alike.
type LocalRange struct {
	Addr           [4]byte
	PortLo, PortHi uint16
}

// Match describes every frame the dataplane takes from the kernel. The same
// value generates the socket filter, the fanout steering program and the
// nftables ingress rules that keep the kernel from also handling the frames,
// so the three always agree.
type Match struct {
	VIPs     []Endpoint   // client packets to VIP:port
	NATReals []Endpoint   // NAT replies from RIP:port
	Locals   []LocalRange // FULLNAT replies to LIP:lport
}
