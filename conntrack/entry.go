package conntrack

// Entry is one connection, IPVS's ip_vs_conn: client, virtual, real and
// (FULLNAT) local address. It is fixed-size and pointer-free: 48 bytes for
// IPv4, 96 for IPv6. A shard derives both keys of a connection from its
// entry, so it stores no keys:
//
//   - forward (client → VIP): Client:ClientPort → VIP:VPort;
//   - reply (real → client), for NAT and FULLNAT: Real:RPort →
//     Local:LPort when Local is set (FULLNAT), else Real:RPort →
//     Client:ClientPort.
//
// The package reads State and Proto (in Transition), Expires (in expiry and
// eviction) and the addresses and ports (for the keys); the other fields
// are the dataplane's. The addresses, ports and Proto of a stored entry
// must not change.
type Entry[A IP] struct {
	Client, VIP, Real, Local        A
	ClientPort, VPort, RPort, LPort uint16
	// RealID is the real's stable id in the dataplane snapshot. In a free
	// slab cell the shard keeps its free list here.
	RealID    uint32
	ClientMAC [6]byte // L2 source of the client's latest packet: where NAT/FULLNAT replies go
	Forward   uint8   // the dataplane's forwarding method (opaque here)
	Proto     uint8   // IP protocol number: 6 TCP, 17 UDP
	State     State
	Flags     uint8 // the dataplane's (opaque here)
	// PersistBits is the prefix length of the client in the persistence
	// template that controls the entry, 0 = none (the dataplane's).
	PersistBits uint8
	keys        uint8 // the shard's: 0 free, 1 forward key only, 2 both
	Expires     int64 // monotonic nanoseconds (caller's clock)
}

// ForwardKey returns the key of the entry's client → VIP direction.
func (e *Entry[A]) ForwardKey() Key[A] {
	return Key[A]{Src: e.Client, Dst: e.VIP, SrcPort: e.ClientPort, DstPort: e.VPort, Proto: e.Proto}
}

// ReplyKey returns the key of the entry's real → client direction, as NAT
// and FULLNAT see it.
func (e *Entry[A]) ReplyKey() Key[A] {
	k := Key[A]{Src: e.Real, Dst: e.Client, SrcPort: e.RPort, DstPort: e.ClientPort, Proto: e.Proto}
	var zero A
	if e.Local != zero {
		k.Dst, k.DstPort = e.Local, e.LPort
	}
	return k
}

// matches reports whether k is the entry's forward key, or its reply key
// if reply.
func (e *Entry[A]) matches(k *Key[A], reply bool) bool {
	if e.Proto != k.Proto {
		return false
	}
	if !reply {
		return e.ClientPort == k.SrcPort && e.VPort == k.DstPort && e.Client == k.Src && e.VIP == k.Dst
	}
	if e.RPort != k.SrcPort || e.Real != k.Src {
		return false
	}
	var zero A
	if e.Local != zero {
		return e.LPort == k.DstPort && e.Local == k.Dst
	}
	return e.ClientPort == k.DstPort && e.Client == k.Dst
}
