//go:build !linux

package realserver

import (
	"fmt"
	"runtime"
)

// gatherHost reads the host for Diagnose. Only Linux is supported.
func gatherHost(DoctorOptions) (hostState, error) {
	return hostState{}, fmt.Errorf("realserver: doctor: unsupported on %s", runtime.GOOS)
}
