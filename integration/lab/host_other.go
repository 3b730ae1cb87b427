//go:build !linux

package lab

import (
	"errors"
	"fmt"
	"runtime"
)

// errUnsupported is returned by everything that needs network namespaces.
var errUnsupported = fmt.Errorf("lab: network namespaces are unsupported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Do is unsupported outside Linux.
func (h *Host) Do(fn func() error) error { return errUnsupported }
