//go:build !linux

package vrrp

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
)

// SpeakerConfig says where a Speaker runs its Machine (Linux only).
type SpeakerConfig struct {
	Interface string
	Machine   Config
	Peers     []netip.Addr
	OnState   func(State)
}

// SpeakerCounters count what a Speaker sent and received.
type SpeakerCounters struct {
	Sent, Received, Invalid atomic.Uint64
}

// Speaker is not available on this platform.
type Speaker struct{ C SpeakerCounters }

// NewSpeaker returns an error: raw VRRP sockets are Linux only here.
func NewSpeaker(cfg SpeakerConfig) (*Speaker, error) {
	return nil, errors.New("vrrp: speaker supported on Linux only")
}

// Machine returns nil.
func (s *Speaker) Machine() *Machine { return nil }

// Run returns an error.
func (s *Speaker) Run(ctx context.Context) error {
	return errors.New("vrrp: speaker supported on Linux only")
}
