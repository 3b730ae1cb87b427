//go:build !linux

package lab

import "net/netip"

// New is unsupported outside Linux.
func New(o Options) (*Lab, error) {
	if _, err := o.normalize(); err != nil {
		return nil, err
	}
	return nil, errUnsupported
}

// Close is unsupported outside Linux; a Lab cannot exist there.
func (l *Lab) Close() error { return errUnsupported }

// CleanupStale is unsupported outside Linux.
func CleanupStale(prefix string) error { return errUnsupported }

// SetRealGateway is unsupported outside Linux.
func (l *Lab) SetRealGateway(gw netip.Addr) error { return errUnsupported }

// SetGateway is unsupported outside Linux.
func (l *Lab) SetGateway(gw netip.Addr, reals ...*Host) error { return errUnsupported }
