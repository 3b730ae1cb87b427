//go:build !linux

package afpacket

import (
	"fmt"
	"runtime"

	"github.com/gvs-lb/gvs/dataplane/header"
	"golang.org/x/net/bpf"
)

// errUnsupported is what every operation returns: AF_PACKET is Linux only.
var errUnsupported = fmt.Errorf("afpacket: unsupported on %s", runtime.GOOS)

// Link is an AF_PACKET link; on this platform it cannot be opened.
type Link struct{}

// Open returns an "unsupported on GOOS" error.
func Open(cfg Config) (*Link, error) { return nil, errUnsupported }

// TxMode reports the TX mode the link uses.
func (l *Link) TxMode() TxMode { return TxDefault }

// Read returns an "unsupported on GOOS" error.
func (l *Link) Read(bufs [][]byte, sizes []int, offs []header.Offload, offset int) (int, error) {
	return 0, errUnsupported
}

// Write returns an "unsupported on GOOS" error.
func (l *Link) Write(bufs [][]byte, offs []header.Offload) (int, error) { return 0, errUnsupported }

// SetFilter returns an "unsupported on GOOS" error.
func (l *Link) SetFilter(prog []bpf.RawInstruction) error { return errUnsupported }

// SetSteering returns an "unsupported on GOOS" error.
func (l *Link) SetSteering(prog []bpf.RawInstruction) error { return errUnsupported }

// Stats returns an "unsupported on GOOS" error.
func (l *Link) Stats() (Stats, error) { return Stats{}, errUnsupported }

// Close returns an "unsupported on GOOS" error.
func (l *Link) Close() error { return errUnsupported }
