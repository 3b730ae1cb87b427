package vrrp

import (
	"errors"
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

// SpeakerCounters count what a Speaker sent and received. Invalid is the
// sum of Dropped, which counts the adverts dropped by reason.
type SpeakerCounters struct {
	Sent, Received, Invalid atomic.Uint64
	Dropped                 [NumDropReasons]atomic.Uint64
}

// DropReason is why a received advert was dropped.
type DropReason int

// Drop reasons, in the order of RFC 5798 section 7.1's checks.
const (
	DropMalformed DropReason = iota // too short, bad IP header, wrong type, address count or interval
	DropTTL                         // IP TTL not 255
	DropVersion                     // VRRP version not 3
	DropChecksum                    // bad checksum
	DropVRID                        // another virtual router's advert
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"malformed", "ttl", "version", "checksum", "vrid"}

func (r DropReason) String() string {
	if r >= 0 && r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// dropReason classifies an error of Parse.
func dropReason(err error) DropReason {
	switch {
	case errors.Is(err, ErrTTL):
		return DropTTL
	case errors.Is(err, ErrVersion):
		return DropVersion
	case errors.Is(err, ErrChecksum):
		return DropChecksum
	}
	return DropMalformed
}

// drop counts a dropped advert.
func (c *SpeakerCounters) drop(r DropReason) {
	c.Dropped[r].Add(1)
	c.Invalid.Add(1)
}
