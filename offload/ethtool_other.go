//go:build !linux

package offload

import (
	"errors"
	"fmt"
	"runtime"
)

// Get is unsupported outside Linux.
func Get(ifname string, f Feature) (bool, error) {
	return false, fmt.Errorf("offload: get %s on %s: unsupported on %s: %w", f, ifname, runtime.GOOS, errors.ErrUnsupported)
}

// Set is unsupported outside Linux.
func Set(ifname string, f Feature, on bool) error {
	return fmt.Errorf("offload: turn %s %s on %s: unsupported on %s: %w", onOff(on), f, ifname, runtime.GOOS, errors.ErrUnsupported)
}

// DisableForCapture is unsupported outside Linux.
func DisableForCapture(ifname string) (restore func() error, err error) {
	return nil, fmt.Errorf("offload: disable for capture on %s: unsupported on %s: %w", ifname, runtime.GOOS, errors.ErrUnsupported)
}
