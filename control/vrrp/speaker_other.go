//go:build !linux

package vrrp

import (
	"context"
	"errors"
)

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
