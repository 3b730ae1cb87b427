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

// LocalRange6 is LocalRange for an IPv6 FULLNAT local address.
type LocalRange6 struct {
	Addr           [16]byte
	PortLo, PortHi uint16
}

// Endpoint6 is Endpoint for IPv6.
type Endpoint6 struct {
	Proto uint8 // 6 (TCP) or 17 (UDP)
	Addr  [16]byte
	Port  uint16
}

// Match describes every frame the dataplane takes from the kernel. The same
// value generates the socket filter, the fanout steering program and the
// nftables ingress rules that keep the kernel from also handling the frames,
// so the three always agree.
//
// An IPv6 frame is the dataplane's only when TCP or UDP follows the fixed
// 40-byte header directly, or a fragment header naming TCP or UDP (a
// later fragment is taken by address: to a VIP or local address, from a
// NAT real), or when it is an ICMPv6 error quoting such a packet of one
// of the flows above: frames with other extension headers and other
// ICMPv6 stay with the kernel (see
// filter6.go).
type Match struct {
	VIPs     []Endpoint   // client packets to VIP:port
	NATReals []Endpoint   // NAT replies from RIP:port
	Locals   []LocalRange // FULLNAT replies to LIP:lport

	VIPs6     []Endpoint6   // IPv6 client packets to [VIP]:port
	NATReals6 []Endpoint6   // IPv6 NAT replies from [RIP]:port
	Locals6   []LocalRange6 // IPv6 FULLNAT replies to [LIP]:lport

	// Own are the director's own IPv4 addresses (not its VIPs). A packet
	// from a NAT RIP:port to one of them answers a connection of the
	// director's kernel, a health check: the socket filter takes a copy
	// (the dataplane finds no connection for it), and the ingress table
	// (control/ingress) leaves it to the kernel.
	Own [][4]byte
	// Own6 are the director's own IPv6 addresses, as Own: what a NAT real
	// sends from [RIP]:port to one of them answers a health check.
	Own6 [][16]byte
}

// has6 reports whether m takes any IPv6 frame.
func (m *Match) has6() bool { return len(m.VIPs6)+len(m.NATReals6)+len(m.Locals6) > 0 }
