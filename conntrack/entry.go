package conntrack

// Entry is one connection. It is fixed-size (96 bytes) and pointer-free.
// The package reads only State and Proto (in Transition) and Expires (in
// Shard.Expire); every other field is the dataplane's.
type Entry struct {
	Client     Addr // original source
	ClientPort uint16
	VIP        Addr // original destination
	VPort      uint16
	Real       Addr
	RPort      uint16
	Local      Addr // FULLNAT source, else zero
	LPort      uint16
	RealID     uint32  // the real's stable id in the dataplane snapshot
	Forward    uint8   // the dataplane's forwarding method (opaque here)
	Proto      uint8   // IP protocol number: 6 TCP, 17 UDP
	ClientMAC  [6]byte // L2 source of the client's latest packet: where NAT/FULLNAT replies go
	State      State
	Flags      uint8 // the dataplane's (opaque here)
	// PersistBits is the prefix length of the client in the persistence
	// template that controls the entry, 0 = none (the dataplane's).
	PersistBits uint8
	Expires     int64 // monotonic nanoseconds (caller's clock)
}
