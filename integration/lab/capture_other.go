//go:build !linux

package lab

// Capture is unsupported outside Linux.
type Capture struct{}

// Capture is unsupported outside Linux.
func (h *Host) Capture(iface string) (*Capture, error) { return nil, errUnsupported }

// Stop returns nothing outside Linux.
func (c *Capture) Stop() []Frame { return nil }

// Close does nothing outside Linux.
func (c *Capture) Close() error { return nil }

// Dropped is always 0 outside Linux.
func (c *Capture) Dropped() int { return 0 }

// Err is always nil outside Linux.
func (c *Capture) Err() error { return nil }
