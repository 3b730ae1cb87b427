package vrrp

import (
	"net/netip"
	"sync/atomic"
)

// SpeakerConfig says where a Speaker runs its Machine.
type SpeakerConfig struct {
	Interface string
	// Machine is the router's configuration; its Primary, when not set,
	// is the interface's first IPv4 address.
	Machine Config
	// Peers are unicast peers; empty means the 224.0.0.18 group.
	Peers []netip.Addr
	// OnState is called with every new state, from Run's goroutine.
	OnState func(State)
}

// SpeakerCounters count what a Speaker sent and received.
type SpeakerCounters struct {
	Sent, Received, Invalid atomic.Uint64
}
