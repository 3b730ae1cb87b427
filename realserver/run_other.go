//go:build !linux

package realserver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
)

// Run sets the host up as a real server. Only Linux is supported.
func Run(ctx context.Context, o Options, logger *slog.Logger) error {
	if err := o.check(); err != nil {
		return err
	}
	return fmt.Errorf("realserver: unsupported on %s", runtime.GOOS)
}
