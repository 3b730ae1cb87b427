//go:build !linux

package main

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/gvs-lb/gvs/integration/lab"
)

var errUnsupported = fmt.Errorf("bench: unsupported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// counterSet is unsupported outside Linux.
type counterSet struct{}

func openCounters(l *lab.Lab, directorPort *lab.Host) (*counterSet, error) {
	return nil, errUnsupported
}

func (cs *counterSet) read() (counters, error) { return counters{}, errUnsupported }

func (cs *counterSet) close() {}
