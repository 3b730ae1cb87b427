//go:build !linux

package control

import "errors"

// setThreadPolicy needs Linux's sched_setattr(2).
func setThreadPolicy(policy string) error {
	if policy == "normal" {
		return nil
	}
	return errors.New("scheduling policies need Linux")
}

func threadPolicy() (string, error) { return "normal", nil }
